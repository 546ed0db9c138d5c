//! Rust: a crate (`Cargo.toml` with `[package]`) is a service per binary target.
//!
//! A workspace's members are built from the workspace root (`-p`), and its root directory is the
//! services' directory; binaries are the explicit `[[bin]]` targets plus, unless `autobins =
//! false`, `src/main.rs` and `src/bin/*.rs`. The port comes from an address literal in the
//! binary's source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::{
    add_client, join, parent, port_in, sanitize_name, source_of, App, Backing, Scan, Service,
    ServiceKind,
};

static RS_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(?:0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\])?:(\d{2,5})""#).expect("regex")
});

/// The parsed manifests, by directory.
type Manifests<'a> = BTreeMap<&'a str, toml::Table>;

/// One crate whose binaries are services: what every binary's service shares.
struct Crate<'a> {
    /// The crate's directory.
    dir: &'a str,
    /// The workspace root it is built from (its own directory outside a workspace).
    root: String,
    package: String,
    manifest: String,
    version: Option<String>,
    locked: bool,
    /// A single crate in the standard layout: its manifests alone can fetch the dependencies.
    stub_fetch: bool,
    dependencies: Vec<String>,
    clients: Vec<(String, Option<Backing>)>,
}

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let parsed = manifests(scan);
    let member_of = workspaces(scan, &parsed);
    let mut out = Vec::new();
    for (dir, t) in &parsed {
        let root = member_of
            .get(*dir)
            .cloned()
            .unwrap_or_else(|| dir.to_string());
        if scan.taken.contains(root.as_str()) || scan.taken.contains(*dir) {
            if root == *dir {
                scan.second_language(dir, "Rust");
            }
            continue;
        }
        let Some(package) = t.get("package").and_then(|p| p.as_table()) else {
            continue;
        };
        let Some(pkg) = package.get("name").and_then(|n| n.as_str()) else {
            scan.note(format!(
                "{}: [package] without a name: not packaged",
                join(dir, "Cargo.toml")
            ));
            continue;
        };
        let bins = binaries(scan, dir, t, package, pkg);
        if bins.is_empty() {
            if root == *dir {
                scan.note(format!(
                    "{}: a library crate without binaries: not packaged",
                    join(dir, "Cargo.toml")
                ));
            }
            continue;
        }
        let krate = describe(scan, dir, root, t, &parsed);
        for (bin, file) in bins {
            out.push(binary(scan, &krate, &bin, &file));
        }
    }
    // The services of one workspace share its root directory: claim it once.
    out
}

fn rust_client(name: &str, features: &[&str]) -> Option<Backing> {
    match name {
        "postgres" | "tokio-postgres" | "deadpool-postgres" | "bb8-postgres" => {
            Some(Backing::Postgres)
        }
        "sqlx" | "diesel" | "sea-orm" if features.iter().any(|f| f.contains("postgres")) => {
            Some(Backing::Postgres)
        }
        "sqlx" | "diesel" | "sea-orm" if features.iter().any(|f| f.contains("mysql")) => {
            Some(Backing::Mysql)
        }
        "redis" | "deadpool-redis" | "fred" => Some(Backing::Redis),
        "mongodb" => Some(Backing::Mongo),
        "mysql" | "mysql_async" => Some(Backing::Mysql),
        _ => None,
    }
}

/// Every `Cargo.toml` that parses; the others are notes.
fn manifests<'a>(scan: &mut Scan<'a>) -> Manifests<'a> {
    let mut parsed = Manifests::new();
    for dir in scan.index.dirs_with("Cargo.toml") {
        let p = join(dir, "Cargo.toml");
        match scan.read_text(&p).and_then(|t| {
            t.parse::<toml::Table>()
                .map_err(|e| format!("{p}: not valid TOML: {}", e.message()))
        }) {
            Ok(t) => {
                parsed.insert(dir, t);
            }
            Err(e) => scan.note(format!("{e}: not used as a Rust crate")),
        }
    }
    parsed
}

/// Workspace roots and their members: member directory → root directory (a root maps to
/// itself); a member belongs to its workspace's service set.
fn workspaces(scan: &mut Scan, parsed: &Manifests) -> BTreeMap<String, String> {
    let mut member_of: BTreeMap<String, String> = BTreeMap::new();
    for (dir, t) in parsed {
        let Some(ws) = t.get("workspace").and_then(|w| w.as_table()) else {
            continue;
        };
        let excluded: Vec<String> = ws
            .get("exclude")
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(|e| join(dir, e.trim_end_matches('/')))
                    .collect()
            })
            .unwrap_or_default();
        let members = ws.get("members").and_then(|m| m.as_array());
        for m in members.into_iter().flatten().filter_map(|v| v.as_str()) {
            for d in members_matching(scan, parsed, dir, m.trim_end_matches('/')) {
                if !excluded.contains(&d) {
                    member_of.insert(d, dir.to_string());
                }
            }
        }
        member_of.insert(dir.to_string(), dir.to_string());
    }
    member_of
}

/// The crate directories a `members` entry names: a path, or `prefix/*`; other globs are a note.
fn members_matching(scan: &mut Scan, parsed: &Manifests, dir: &str, m: &str) -> Vec<String> {
    if let Some(prefix) = m.strip_suffix("/*") {
        let pdir = join(dir, prefix);
        parsed
            .keys()
            .filter(|d| parent(d) == pdir)
            .map(|d| d.to_string())
            .collect()
    } else if m.contains('*') || m.contains('?') || m.contains('[') {
        scan.note(format!(
            "{}: workspace member pattern {m:?} not understood by init: its crates are not packaged",
            join(dir, "Cargo.toml")
        ));
        vec![]
    } else {
        vec![join(dir, m)]
    }
}

/// The crate's binary targets: (name, the file that declares it).
fn binaries(
    scan: &Scan,
    dir: &str,
    t: &toml::Table,
    package: &toml::Table,
    pkg: &str,
) -> Vec<(String, String)> {
    let manifest = join(dir, "Cargo.toml");
    let mut bins: Vec<(String, String)> = Vec::new();
    // Paths that explicit [[bin]] targets already build: cargo does not infer them again.
    let mut explicit: BTreeSet<String> = BTreeSet::new();
    if let Some(list) = t.get("bin").and_then(|b| b.as_array()) {
        for b in list {
            if let Some(n) = b.get("name").and_then(|n| n.as_str()) {
                bins.push((n.to_owned(), manifest.clone()));
                let path = b
                    .get("path")
                    .and_then(|p| p.as_str())
                    .map(|p| p.trim_start_matches("./").to_owned())
                    .unwrap_or_else(|| format!("src/bin/{n}.rs"));
                explicit.insert(path);
            }
        }
    }
    if package.get("autobins").and_then(|a| a.as_bool()) == Some(false) {
        return bins;
    }
    let main = join(dir, "src/main.rs");
    if scan.index.has(&join(dir, "src"), "main.rs")
        && !explicit.contains("src/main.rs")
        && !bins.iter().any(|(n, _)| n == pkg)
    {
        bins.push((pkg.to_owned(), main));
    }
    let bindir = join(dir, "src/bin");
    if let Some(names) = scan.index.dirs.get(bindir.as_str()) {
        for n in names.iter().filter_map(|n| n.strip_suffix(".rs")) {
            if !bins.iter().any(|(b, _)| b == n) && !explicit.contains(&format!("src/bin/{n}.rs")) {
                bins.push((n.to_owned(), join(&bindir, &format!("{n}.rs"))));
            }
        }
    }
    bins
}

/// What the crate's binaries share: its version, lock file, dependencies and clients.
fn describe<'a>(
    scan: &mut Scan,
    dir: &'a str,
    root: String,
    t: &toml::Table,
    parsed: &Manifests,
) -> Crate<'a> {
    let package = t.get("package").and_then(|p| p.as_table());
    let root_toml = parsed.get(root.as_str());
    let version = package
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .or_else(|| {
            root_toml
                .and_then(|r| r.get("workspace"))
                .and_then(|w| w.get("package"))
                .and_then(|p| p.get("rust-version"))
                .and_then(|v| v.as_str())
        })
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."));
    let locked = scan.index.has(&root, "Cargo.lock");
    if !locked {
        scan.note(format!(
            "{}: no Cargo.lock: `cargo build` resolves versions anew at each build; commit the lock file",
            source_of(&root)
        ));
    }
    let (dependencies, clients) = dependencies(t);
    let stub_fetch = root == dir && t.get("bin").is_none() && t.get("lib").is_none();
    if root != dir && root_toml.is_some_and(|r| r.contains_key("workspace")) {
        let note = format!(
            "{}: a workspace: its dependencies build with the sources (copying every member's manifest first needs a tool such as cargo-chef), so a code change fetches them again",
            join(&root, "Cargo.toml")
        );
        if !scan.notes.contains(&note) {
            scan.note(note);
        }
    }
    Crate {
        dir,
        root,
        package: package
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned(),
        manifest: join(dir, "Cargo.toml"),
        version,
        locked,
        stub_fetch,
        dependencies,
        clients,
    }
}

/// The manifests copied before the sources and the command that fetches the dependencies from
/// them (a stub `main.rs` stands for the sources, removed once fetched: it never reaches the
/// build, so no stale artifact can), or nothing for a workspace.
fn fetch_first(krate: &Crate) -> (Vec<String>, Vec<String>) {
    if !krate.stub_fetch {
        return (Vec::new(), Vec::new());
    }
    let mut manifests = vec!["Cargo.toml".to_owned()];
    let mut fetch = "cargo fetch".to_owned();
    if krate.locked {
        manifests.push("Cargo.lock".to_owned());
        fetch.push_str(" --locked");
    }
    let install =
        format!("mkdir -p src && echo 'fn main() {{}}' > src/main.rs && {fetch} && rm -rf src");
    (manifests, vec![install])
}

/// `name version` of each dependency, and the client library each is, if any.
fn dependencies(t: &toml::Table) -> (Vec<String>, Vec<(String, Option<Backing>)>) {
    let mut deps: Vec<String> = Vec::new();
    let mut clients: Vec<(String, Option<Backing>)> = Vec::new();
    let Some(d) = t.get("dependencies").and_then(|d| d.as_table()) else {
        return (deps, clients);
    };
    for (name, spec) in d {
        let version = match spec {
            toml::Value::String(v) => v.clone(),
            toml::Value::Table(tb) => tb
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    if tb.contains_key("workspace") {
                        "workspace".into()
                    } else {
                        "path".into()
                    }
                }),
            _ => "*".into(),
        };
        deps.push(format!("{name} {version}"));
        let features: Vec<&str> = spec
            .get("features")
            .and_then(|f| f.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        clients.push((name.clone(), rust_client(name, &features)));
    }
    (deps, clients)
}

/// The service of binary `bin` (declared in `file`) of `krate`.
fn binary(scan: &Scan, krate: &Crate, bin: &str, file: &str) -> Service {
    let Crate {
        dir,
        root,
        package: pkg,
        manifest,
        version,
        locked,
        ..
    } = krate;
    let in_ws = root.as_str() != *dir;
    let mut build = "cargo build --release".to_owned();
    if *locked {
        build.push_str(" --locked");
    }
    if in_ws {
        build.push_str(&format!(" -p {pkg}"));
    }
    build.push_str(&format!(" --bin {bin}"));
    let name = sanitize_name(bin, "app");
    let (manifests, install) = fetch_first(krate);
    let mut s = Service::new(
        name.clone(),
        root,
        ServiceKind::Generated(App {
            kind: Some("binary".to_owned()),
            manifests,
            install,
            build_commands: vec![build.clone()],
            run_command: Some(vec![format!("/usr/local/bin/{name}")]),
            artifact: Some(format!("/src/target/release/{bin}")),
            dependencies: krate.dependencies.clone(),
            version: version.clone(),
            ..App::new("rust", source_of(root))
        }),
    );
    if krate.stub_fetch {
        s.why(
            manifest,
            "Cargo.toml (and Cargo.lock) copied first: `cargo fetch` on a stub main.rs downloads the dependencies in a layer that caches",
        );
    }
    s.why(
        manifest,
        "a build stage compiles; the runtime stage (distroless cc) holds only the binary",
    );
    if in_ws {
        s.why(
            join(root, "Cargo.toml"),
            format!(
                "a Rust workspace: member {} is built from the workspace root",
                source_of(dir)
            ),
        );
    }
    s.why(manifest, format!("language rust, package {pkg}"));
    s.why(file, format!("binary `{bin}`: {build}"));
    if let Some(v) = version {
        s.why(manifest, format!("rust-version {v}: Rust {v}"));
    }
    if *locked {
        s.why(join(root, "Cargo.lock"), "lock file: --locked");
    }
    for (n, b) in &krate.clients {
        add_client(&mut s, manifest, n, *b);
    }
    let main_file = if file.ends_with(".rs") {
        file.to_owned()
    } else {
        join(dir, "src/main.rs")
    };
    if let Ok(text) = scan.read_text(&main_file) {
        if let Some(p) = port_in(&RS_PORT, &text) {
            s.why(&main_file, format!("port {p} (found in the code)"));
            s.ports.insert(p);
        }
    }
    s
}
