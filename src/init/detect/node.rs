//! Node: a directory with `package.json`.
//!
//! The package manager comes from the lock file (none is a note: versions resolve anew at each
//! build); the version from `engines.node` when it names one major; the run command from
//! `scripts.start`, else `main` or a conventional entry file, whose code also gives the port.

use std::sync::LazyLock;

use regex::Regex;

use super::{add_client, join, port_in, Backing, Draft, Scan, Service};

static JS_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\.listen\(\s*|PORT\s*(?:\|\||\?\?)\s*|\bport\s*[:=]\s*)(\d{2,5})\b")
        .expect("regex")
});
static NODE_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bnode\s+(?:--\S+\s+)*([\w./-]+\.[cm]?js)\b").expect("regex"));

/// The package manager, its install commands, and the lock file it read.
struct Install {
    pm: &'static str,
    commands: Vec<&'static str>,
    lock: Option<&'static str>,
}

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let mut out = Vec::new();
    for dir in scan.index.dirs_with("package.json") {
        if scan.taken.contains(dir) {
            scan.second_language(dir, "Node");
            continue;
        }
        if let Some(pkg) = package_json(scan, dir) {
            out.push(service(scan, dir, &pkg));
        }
    }
    out
}

fn node_client(name: &str) -> Option<Backing> {
    match name {
        "pg" | "postgres" | "pg-promise" | "@prisma/client" => Some(Backing::Postgres),
        "redis" | "ioredis" => Some(Backing::Redis),
        "mongodb" | "mongoose" => Some(Backing::Mongo),
        "mysql" | "mysql2" => Some(Backing::Mysql),
        _ => None,
    }
}

/// `package.json` as a JSON object, or a note saying why the directory is not a Node project.
fn package_json(scan: &mut Scan, dir: &str) -> Option<serde_json::Value> {
    let path = join(dir, "package.json");
    match scan.read_text(&path).and_then(|t| {
        serde_json::from_str::<serde_json::Value>(&t)
            .map_err(|e| format!("{path}:{}:{}: not valid JSON: {e}", e.line(), e.column()))
    }) {
        Ok(v) if v.is_object() => Some(v),
        Ok(_) => {
            scan.note(format!(
                "{path}: not a JSON object: not used as a Node project"
            ));
            None
        }
        Err(e) => {
            scan.note(format!("{e}: not used as a Node project"));
            None
        }
    }
}

fn service(scan: &mut Scan, dir: &str, pkg: &serde_json::Value) -> Service {
    let path = join(dir, "package.json");
    let mut d = Draft::new(scan.dir_name(dir), dir, "node");
    d.why(&path, "language node");
    let scripts = pkg.get("scripts").and_then(|v| v.as_object());
    let build = scripts.and_then(|s| s.get("build")).is_some();
    let install = install(scan, dir, build);
    match install.lock {
        Some(l) => d.why(
            join(dir, l),
            format!(
                "lock file: {}; install with {}, before the sources are copied",
                install.pm,
                install.commands.last().expect("one")
            ),
        ),
        None => scan.note(format!(
            "{path}: no lock file (package-lock.json, yarn.lock, pnpm-lock.yaml): `npm install` resolves versions anew at each build; commit a lock file"
        )),
    }
    let pm = install.pm;
    d.app.manifests.push("package.json".to_owned());
    d.app.manifests.extend(install.lock.map(str::to_owned));
    d.app
        .install
        .extend(install.commands.iter().map(|c| c.to_string()));
    if build {
        d.app.build_commands.push(format!("{pm} run build"));
        d.app.build_commands.push(prune(pm).to_owned());
        let dev = pkg
            .get("devDependencies")
            .and_then(|v| v.as_object())
            .map_or(0, |m| m.len());
        d.why(
            &path,
            format!("scripts.build: a build stage installs all {dev} devDependencies too, runs `{pm} run build`, then `{}`; the runtime stage takes the result", prune(pm)),
        );
    }
    dependencies(&path, pkg, &mut d);
    if let Some(engine) = pkg
        .get("engines")
        .and_then(|e| e.get("node"))
        .and_then(|v| v.as_str())
    {
        match node_major(engine) {
            Some(m) => {
                d.why(&path, format!("engines.node {engine:?}: Node {m}"));
                d.app.version = Some(m);
            }
            None => scan.note(format!(
                "{path}: engines.node {engine:?} names no single major version: the default Node image is used"
            )),
        }
    }
    run_command(scan, dir, pkg, pm, &mut d);
    d.finish()
}

/// What removes the devDependencies after a build.
fn prune(pm: &str) -> &'static str {
    match pm {
        "yarn" => "yarn install --frozen-lockfile --production",
        "pnpm" => "pnpm prune --prod",
        _ => "npm prune --omit=dev",
    }
}

/// How the dependencies are installed, by the lock file beside `package.json`: with the
/// devDependencies when a build needs them (`build`), else without.
fn install(scan: &Scan, dir: &str, build: bool) -> Install {
    let (pm, lock) = if scan.index.has(dir, "package-lock.json") {
        ("npm", Some("package-lock.json"))
    } else if scan.index.has(dir, "npm-shrinkwrap.json") {
        ("npm", Some("npm-shrinkwrap.json"))
    } else if scan.index.has(dir, "yarn.lock") {
        ("yarn", Some("yarn.lock"))
    } else if scan.index.has(dir, "pnpm-lock.yaml") {
        ("pnpm", Some("pnpm-lock.yaml"))
    } else {
        ("npm", None)
    };
    let commands = match (pm, lock.is_some(), build) {
        ("yarn", _, true) => vec!["corepack enable", "yarn install --frozen-lockfile"],
        ("yarn", _, false) => vec![
            "corepack enable",
            "yarn install --frozen-lockfile --production",
        ],
        ("pnpm", _, true) => vec!["corepack enable", "pnpm install --frozen-lockfile"],
        ("pnpm", _, false) => vec!["corepack enable", "pnpm install --frozen-lockfile --prod"],
        (_, true, true) => vec!["npm ci"],
        (_, true, false) => vec!["npm ci --omit=dev && npm cache clean --force"],
        (_, false, true) => vec!["npm install"],
        (_, false, false) => vec!["npm install --omit=dev && npm cache clean --force"],
    };
    Install { pm, commands, lock }
}

/// The dependencies, the client libraries among them, and the framework they name.
fn dependencies(path: &str, pkg: &serde_json::Value, d: &mut Draft) {
    let deps = pkg.get("dependencies").and_then(|v| v.as_object());
    if let Some(deps) = deps {
        for (name, spec) in deps {
            d.app
                .dependencies
                .push(format!("{name}@{}", spec.as_str().unwrap_or("*")));
            add_client(&mut d.service, path, name, node_client(name));
        }
    }
    for (dep, kind) in [
        ("next", "next"),
        ("@nestjs/core", "nestjs"),
        ("express", "express"),
        ("fastify", "fastify"),
        ("koa", "koa"),
    ] {
        if deps.is_some_and(|d| d.contains_key(dep)) {
            d.app.kind = Some(kind.to_owned());
            d.why(path, format!("type {kind} (dependency {dep})"));
            break;
        }
    }
}

/// The run command (`scripts.start`, else `node` on the entry file) and the port the entry
/// file's code names.
fn run_command(scan: &mut Scan, dir: &str, pkg: &serde_json::Value, pm: &str, d: &mut Draft) {
    let path = join(dir, "package.json");
    let start = pkg
        .get("scripts")
        .and_then(|s| s.get("start"))
        .and_then(|v| v.as_str());
    let main = pkg.get("main").and_then(|v| v.as_str());
    let start_file: Option<String> = start
        .and_then(|s| {
            NODE_START
                .captures(s)
                .map(|c| c[1].trim_start_matches("./").to_owned())
        })
        .or_else(|| main.map(|m| m.trim_start_matches("./").to_owned()))
        .or_else(|| {
            ["server.js", "app.js", "index.js"]
                .into_iter()
                .find(|f| scan.index.has(dir, f))
                .map(str::to_owned)
        });
    let node_start = start.is_some_and(|s| NODE_START.is_match(s));
    match (&start_file, start) {
        (Some(f), Some(start)) if node_start => {
            d.app.run_command = Some(vec!["node".to_owned(), f.clone()]);
            d.why(
                &path,
                format!("run: node {f} (scripts.start: {start}), node as PID 1, not {pm} start"),
            );
        }
        (_, Some(start)) => {
            d.app.run_command = Some(vec![pm.to_owned(), "start".to_owned()]);
            d.why(&path, format!("run: {pm} start (scripts.start: {start})"));
            scan.note(format!(
                "{path}: scripts.start ({start}) is not `node FILE`: the image runs `{pm} start`, and {pm} as PID 1 does not pass SIGTERM on; set the Dockerfile's CMD to the server's own command"
            ));
        }
        (Some(f), None) => {
            d.app.run_command = Some(vec!["node".to_owned(), f.clone()]);
            d.why(&path, format!("run: node {f}"));
        }
        (None, None) => scan.note(format!(
            "{path}: no scripts.start, main, server.js, app.js or index.js: set the CMD of the generated Dockerfile",
        )),
    }
    if let Some(f) = start_file {
        let fp = join(dir, &f);
        if let Ok(text) = scan.read_text(&fp) {
            if let Some(p) = port_in(&JS_PORT, &text) {
                d.why(&fp, format!("port {p} (found in the code)"));
                d.service.ports.insert(p);
            }
        }
    }
}

/// The one major version an `engines.node` range names (`20`, `20.x`, `^20.1`, `~20`, `>=20`).
pub(super) fn node_major(spec: &str) -> Option<String> {
    let spec = spec.trim();
    if spec.contains("||") || spec.contains(' ') && !spec.starts_with(">=") {
        return None;
    }
    let digits: String = spec
        .trim_start_matches(['^', '~', '=', 'v', '>'])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() {
        None
    } else {
        Some(digits)
    }
}
