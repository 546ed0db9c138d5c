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
static FLASK_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\w+)\s*=\s*Flask\(").expect("regex"));
static FLASK_FACTORY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^def\s+create_app\(").expect("regex"));

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
    run_command(scan, dir, &mut d, &scripts, &names);
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
            d.app.manifests.push("requirements.txt".to_owned());
            d.app
                .install
                .push("pip install --no-cache-dir -r requirements.txt".to_owned());
            d.why(
                &req,
                "language python; dependencies: pip install -r requirements.txt, before the sources are copied",
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
    if d.app.install.is_empty() {
        d.app
            .build_commands
            .push("pip install --no-cache-dir .".to_owned());
        d.why(&pyproject, "language python; build: pip install .");
        scan.note(format!(
            "{pyproject}: no requirements.txt: the dependencies install with the project (`pip install .`) after the sources are copied, so a code change reinstalls them; export them to requirements.txt (e.g. `uv export` or `pip-compile`) to cache them in their own layer"
        ));
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

/// How many worker processes a generated gunicorn or uvicorn command starts.
const WORKERS: &str = "2";

/// The run command: a production server the dependencies name (gunicorn for Flask and Django,
/// uvicorn for FastAPI), else Django's `manage.py`, an entry file, or the first project script.
fn run_command(
    scan: &mut Scan,
    dir: &str,
    d: &mut Draft,
    scripts: &[String],
    names: &BTreeSet<String>,
) {
    let gunicorn = names.contains("gunicorn");
    if scan.index.has(dir, "manage.py") {
        django(scan, dir, d, gunicorn);
        return;
    }
    match ENTRY_FILES.into_iter().find(|f| scan.index.has(dir, f)) {
        Some(f) => {
            let path = join(dir, f);
            let text = scan.read_text(&path).unwrap_or_default();
            if d.app.kind.as_deref() == Some("fastapi") {
                uvicorn(scan, f, &path, &text, d, names);
            } else if gunicorn && d.app.kind.as_deref() == Some("flask") {
                flask_gunicorn(scan, f, &path, &text, d);
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
                "{}: no entry point found (app.py, main.py, wsgi.py, server.py, run.py, a [project.scripts] entry): set the CMD of the generated Dockerfile",
                source_of(dir)
            )),
        },
    }
}

/// Django: gunicorn on the project's `wsgi` module when gunicorn is a dependency, else the
/// development server (and a note).
fn django(scan: &mut Scan, dir: &str, d: &mut Draft, gunicorn: bool) {
    let manage = join(dir, "manage.py");
    d.service.ports.insert("8000".into());
    let wsgi = scan
        .index
        .dirs
        .iter()
        .filter(|(sub, names)| {
            super::parent(sub) == dir && *sub != &dir && names.contains("wsgi.py")
        })
        .map(|(sub, _)| super::base(sub).to_owned())
        .next();
    if let (true, Some(package)) = (gunicorn, &wsgi) {
        d.app.run_command = Some(gunicorn_command("8000", &format!("{package}.wsgi")));
        d.why(
            join(&join(dir, package), "wsgi.py"),
            format!("Django with gunicorn in the dependencies: gunicorn {package}.wsgi on port 8000, {WORKERS} workers"),
        );
        return;
    }
    d.app.run_command = Some(vec![
        "python".into(),
        "manage.py".into(),
        "runserver".into(),
        "0.0.0.0:8000".into(),
    ]);
    d.why(
        &manage,
        "Django: run manage.py runserver 0.0.0.0:8000, port 8000",
    );
    scan.note(format!(
        "{manage}: runs Django's development server; for production add gunicorn to the dependencies (init then runs gunicorn PROJECT.wsgi) or set the Dockerfile's CMD to a WSGI server"
    ));
}

/// `gunicorn --bind 0.0.0.0:PORT --workers N TARGET`.
fn gunicorn_command(port: &str, target: &str) -> Vec<String> {
    [
        "gunicorn",
        "--bind",
        &format!("0.0.0.0:{port}"),
        "--workers",
        WORKERS,
        target,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A Flask app run by gunicorn (a dependency): `module:app`, or `module:create_app()` for an
/// application factory; the port the code names, else 8000.
fn flask_gunicorn(scan: &mut Scan, file: &str, path: &str, text: &str, d: &mut Draft) {
    let module = file.trim_end_matches(".py");
    let target = if let Some(c) = FLASK_VAR.captures(text) {
        format!("{module}:{}", &c[1])
    } else if FLASK_FACTORY.is_match(text) {
        format!("{module}:create_app()")
    } else {
        scan.note(format!("{path}: gunicorn is a dependency but no `app = Flask(...)` or `create_app()` was found: the Dockerfile runs `python {file}`; set its CMD to gunicorn MODULE:APP"));
        entry_file(scan, file, path, text, d);
        return;
    };
    let port = port_in(&PY_PORT, text).unwrap_or_else(|| "8000".into());
    d.app.run_command = Some(gunicorn_command(&port, &target));
    d.service.ports.insert(port.clone());
    d.why(
        path,
        format!("Flask with gunicorn in the dependencies: gunicorn {target} on port {port}, {WORKERS} workers (not the development server)"),
    );
}

/// A FastAPI app, run by uvicorn on the port the code names (8000 by default).
fn uvicorn(
    scan: &mut Scan,
    file: &str,
    path: &str,
    text: &str,
    d: &mut Draft,
    names: &BTreeSet<String>,
) {
    let var = FASTAPI_VAR
        .captures(text)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| "app".to_owned());
    let module = file.trim_end_matches(".py");
    let port = port_in(&PY_PORT, text).unwrap_or_else(|| "8000".into());
    d.app.run_command = Some(
        [
            "uvicorn",
            &format!("{module}:{var}"),
            "--host",
            "0.0.0.0",
            "--port",
            &port,
            "--workers",
            WORKERS,
        ]
        .map(str::to_owned)
        .to_vec(),
    );
    d.service.ports.insert(port.clone());
    d.why(
        path,
        format!("FastAPI app `{var}`: run with uvicorn on port {port}, {WORKERS} workers"),
    );
    if !names.contains("uvicorn") && !names.contains("uvicorn[standard]") {
        scan.note(format!(
            "{path}: a FastAPI app run by uvicorn, but uvicorn is not in the dependencies: add it (the image would not start without it)"
        ));
    }
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
    if d.app.kind.as_deref() == Some("flask") {
        scan.note(format!("{path}: runs Flask's development server (`python {file}`); add gunicorn to the dependencies for production (init then runs gunicorn {}:app)", file.trim_end_matches(".py")));
    }
    if flask_run && !text.contains("0.0.0.0") {
        scan.note(format!("{path}: app.run() listens on 127.0.0.1 unless given host=\"0.0.0.0\": unreachable from outside the container"));
    }
}
