//! Python: a directory with `pyproject.toml`, `requirements.txt`, `manage.py` or `setup.py`.
//!
//! Dependencies come from `requirements.txt` when there is one (it then drives the install),
//! else from `[project.dependencies]`; the version from `requires-python` (`==`/`~=` only) or
//! `.python-version`; the run command from `manage.py` (Django), an entry file (FastAPI through
//! uvicorn), or the first `[project.scripts]` entry.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{add_client, join, port_in, source_of, Backing, Draft, Scan, Service};

static PY_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"port\s*=\s*(\d{2,5})\b").expect("regex"));
static FASTAPI_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\w+)\s*=\s*FastAPI\(").expect("regex"));

/// The files whose entry point `python` runs, in order of preference.
const ENTRY_FILES: [&str; 6] = [
    "app.py",
    "main.py",
    "wsgi.py",
    "server.py",
    "run.py",
    "__main__.py",
];

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let markers = [
        "pyproject.toml",
        "requirements.txt",
        "manage.py",
        "setup.py",
    ];
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for m in markers {
        dirs.extend(scan.index.dirs_with(m));
    }
    let mut out = Vec::new();
    for dir in dirs {
        if scan.taken.contains(dir) {
            scan.second_language(dir, "Python");
            continue;
        }
        out.push(service(scan, dir));
    }
    out
}

fn python_client(name: &str) -> Option<Backing> {
    match name {
        "psycopg2" | "psycopg2-binary" | "psycopg" | "psycopg-binary" | "asyncpg" | "pg8000" => {
            Some(Backing::Postgres)
        }
        "redis" | "aioredis" => Some(Backing::Redis),
        "pymongo" | "motor" | "mongoengine" => Some(Backing::Mongo),
        "mysqlclient" | "pymysql" | "mysql-connector-python" | "aiomysql" => Some(Backing::Mysql),
        _ => None,
    }
}

/// The distribution name of a requirement (`Flask>=2; python_version>"3"` → `flask`).
fn requirement_name(spec: &str) -> String {
    spec.split(|c: char| "<>=!~[;@ (".contains(c))
        .next()
        .unwrap_or("")
        .trim()
        .to_lowercase()
        .replace('_', "-")
}

/// The file that names the dependencies: `requirements.txt` when there is one.
fn deps_file(scan: &Scan, dir: &str) -> String {
    if scan.index.has(dir, "requirements.txt") {
        join(dir, "requirements.txt")
    } else {
        join(dir, "pyproject.toml")
    }
}

fn service(scan: &mut Scan, dir: &str) -> Service {
    let mut d = Draft::new(scan.dir_name(dir), dir, "python");
    let mut deps = requirements(scan, dir, &mut d);
    let scripts = pyproject(scan, dir, &mut d, &mut deps);
    if d.app.version.is_none() {
        python_version_file(scan, dir, &mut d);
    }
    let names: BTreeSet<String> = deps.iter().map(|d| requirement_name(d)).collect();
    let file = deps_file(scan, dir);
    for n in &names {
        add_client(&mut d.service, &file, n, python_client(n));
    }
    d.app.dependencies = deps;
    d.app.kind = if scan.index.has(dir, "manage.py") || names.contains("django") {
        Some("django".to_owned())
    } else if names.contains("fastapi") {
        Some("fastapi".to_owned())
    } else if names.contains("flask") {
        Some("flask".to_owned())
    } else {
        None
    };
    run_command(scan, dir, &mut d, &scripts);
    if let Some(k) = d.app.kind.clone() {
        d.why(&file, format!("type {k}"));
    }
    d.finish()
}

/// The requirements of `requirements.txt`, and its install command.
fn requirements(scan: &mut Scan, dir: &str, d: &mut Draft) -> Vec<String> {
    let mut deps = Vec::new();
    if !scan.index.has(dir, "requirements.txt") {
        return deps;
    }
    let req = join(dir, "requirements.txt");
    match scan.read_text(&req) {
        Ok(text) => {
            for line in text.lines() {
                let line = line.split(" #").next().unwrap_or("").trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                    continue;
                }
                deps.push(line.to_owned());
            }
            d.app
                .build_commands
                .push("pip install --no-cache-dir -r requirements.txt".to_owned());
            d.why(
                &req,
                "language python; build: pip install -r requirements.txt",
            );
        }
        Err(e) => scan.note(format!("{e}; its dependencies are not installed")),
    }
    deps
}

/// What `pyproject.toml` says: dependencies (when `requirements.txt` named none), the version,
/// the install command; returns its `[project.scripts]` names.
fn pyproject(scan: &mut Scan, dir: &str, d: &mut Draft, deps: &mut Vec<String>) -> Vec<String> {
    let mut scripts = Vec::new();
    if !scan.index.has(dir, "pyproject.toml") {
        return scripts;
    }
    let pyproject = join(dir, "pyproject.toml");
    let table = match scan.read_text(&pyproject).and_then(|t| {
        t.parse::<toml::Table>()
            .map_err(|e| format!("{pyproject}: not valid TOML: {}", e.message()))
    }) {
        Ok(t) => t,
        Err(e) => {
            scan.note(e);
            return scripts;
        }
    };
    let project = table.get("project").and_then(|p| p.as_table());
    if let Some(list) = project
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
    {
        if deps.is_empty() {
            deps.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
    }
    if let Some(sc) = project
        .and_then(|p| p.get("scripts"))
        .and_then(|s| s.as_table())
    {
        scripts.extend(sc.keys().cloned());
    }
    if let Some(rp) = project
        .and_then(|p| p.get("requires-python"))
        .and_then(|v| v.as_str())
    {
        requires_python(rp.trim(), &pyproject, d);
    }
    if d.app.build_commands.is_empty() {
        d.app
            .build_commands
            .push("pip install --no-cache-dir .".to_owned());
        d.why(&pyproject, "language python; build: pip install .");
    } else {
        d.why(
            &pyproject,
            "language python (requirements.txt drives the install)",
        );
    }
    scripts
}

/// The version `requires-python` pins (`==3.11`, `~=3.11.2`); a range pins none.
fn requires_python(rp: &str, pyproject: &str, d: &mut Draft) {
    if let Some(v) = rp.strip_prefix("==").or_else(|| rp.strip_prefix("~=")) {
        let mm: Vec<&str> = v.trim().split('.').take(2).collect();
        if mm.len() == 2 && mm.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
            d.app.version = Some(mm.join("."));
            d.why(
                pyproject,
                format!("requires-python {rp}: Python {}", mm.join(".")),
            );
        }
    }
}

/// The version `.python-version` names (its major and minor).
fn python_version_file(scan: &Scan, dir: &str, d: &mut Draft) {
    if !scan.index.has(dir, ".python-version") {
        return;
    }
    let pv = join(dir, ".python-version");
    if let Ok(t) = scan.read_text(&pv) {
        let mm: Vec<&str> = t.trim().split('.').take(2).collect();
        if mm.len() == 2
            && mm
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            d.app.version = Some(mm.join("."));
            d.why(&pv, format!("Python {}", mm.join(".")));
        }
    }
}

/// The run command: Django's `manage.py`, an entry file, or the first project script.
fn run_command(scan: &mut Scan, dir: &str, d: &mut Draft, scripts: &[String]) {
    if scan.index.has(dir, "manage.py") {
        let manage = join(dir, "manage.py");
        d.app.run_command = Some(vec![
            "python".into(),
            "manage.py".into(),
            "runserver".into(),
            "0.0.0.0:8000".into(),
        ]);
        d.service.ports.insert("8000".into());
        d.why(
            &manage,
            "Django: run manage.py runserver 0.0.0.0:8000, port 8000",
        );
        scan.note(format!(
            "{manage}: runs Django's development server; for production set run_command to a WSGI server (gunicorn, uwsgi)"
        ));
        return;
    }
    match ENTRY_FILES.into_iter().find(|f| scan.index.has(dir, f)) {
        Some(f) => {
            let path = join(dir, f);
            let text = scan.read_text(&path).unwrap_or_default();
            if d.app.kind.as_deref() == Some("fastapi") {
                uvicorn(f, &path, &text, d);
            } else {
                entry_file(scan, f, &path, &text, d);
            }
        }
        None => match scripts.first() {
            Some(script) => {
                d.app.run_command = Some(vec![script.clone()]);
                d.why(
                    join(dir, "pyproject.toml"),
                    format!("run: the project script `{script}`"),
                );
            }
            None => scan.note(format!(
                "{}: no entry point found (app.py, main.py, wsgi.py, server.py, run.py, a [project.scripts] entry): set applications.{}.run_command",
                source_of(dir),
                d.service.name
            )),
        },
    }
}

/// A FastAPI app, run by uvicorn on the port the code names (8000 by default).
fn uvicorn(file: &str, path: &str, text: &str, d: &mut Draft) {
    let var = FASTAPI_VAR
        .captures(text)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| "app".to_owned());
    let module = file.trim_end_matches(".py");
    let port = port_in(&PY_PORT, text).unwrap_or_else(|| "8000".into());
    d.app.run_command = Some(vec![
        "uvicorn".into(),
        format!("{module}:{var}"),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        port.clone(),
    ]);
    d.service.ports.insert(port.clone());
    d.why(
        path,
        format!("FastAPI app `{var}`: run with uvicorn on port {port}"),
    );
}

/// An entry file run by `python`, with the port its code names (Flask's 5000 when `app.run()`).
fn entry_file(scan: &mut Scan, file: &str, path: &str, text: &str, d: &mut Draft) {
    let flask_run = d.app.kind.as_deref() == Some("flask") && text.contains(".run(");
    d.app.run_command = Some(vec!["python".into(), file.to_owned()]);
    d.why(path, format!("entry point: python {file}"));
    if let Some(p) = port_in(&PY_PORT, text) {
        d.why(path, format!("port {p} (port={p} in the code)"));
        d.service.ports.insert(p);
    } else if flask_run {
        d.why(
            path,
            "port 5000 (Flask's default: app.run() without a port)",
        );
        d.service.ports.insert("5000".into());
    }
    if flask_run && !text.contains("0.0.0.0") {
        scan.note(format!("{path}: app.run() listens on 127.0.0.1 unless given host=\"0.0.0.0\": unreachable from outside the container"));
    }
}
