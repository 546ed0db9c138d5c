//! Go: a module (`go.mod`) is a service per `main` package in it (nested modules excluded).
//!
//! Only the package clause of the first non-test `.go` file of each directory is read to find
//! the `main` packages; the port comes from a `Listen…(":8080")` in one of the command's files.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    add_client, base, join, port_in, sanitize_name, source_of, within, App, Backing, Scan, Service,
    ServiceKind,
};

static GO_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:ListenAndServe(?:TLS)?|Listen|Run)\([^)]*?"[\w.\-]*:(\d{2,5})""#)
        .expect("regex")
});
static GO_PACKAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^package\s+(\w+)").expect("regex"));

/// What `go.mod` declares.
struct GoMod {
    /// The module path, or the directory's name when `go.mod` names none.
    module: String,
    /// `go 1.22.3` → `1.22`.
    version: Option<String>,
    /// `path version` lines of the `require` directives.
    requires: Vec<String>,
}

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let modules = scan.index.dirs_with("go.mod");
    let mut out = Vec::new();
    for dir in &modules {
        let dir = *dir;
        if scan.taken.contains(dir) {
            scan.second_language(dir, "Go");
            continue;
        }
        let gomod = join(dir, "go.mod");
        let text = match scan.read_text(&gomod) {
            Ok(t) => t,
            Err(e) => {
                scan.note(format!("{e}: not used as a Go module"));
                continue;
            }
        };
        let declared = parse_go_mod(&text, || scan.dir_name(dir));
        let mains = mains(scan, &modules, dir);
        if mains.is_empty() {
            scan.note(format!(
                "{gomod}: a Go module without a `main` package (a library): not packaged"
            ));
            continue;
        }
        if !declared.requires.is_empty() && !scan.index.has(dir, "go.sum") {
            scan.note(format!(
                "{gomod}: requires modules but there is no go.sum: `go mod download` cannot check what it fetches; run `go mod tidy` and commit go.sum"
            ));
        }
        for m in mains {
            out.push(command(scan, dir, m, &declared));
        }
    }
    out
}

fn go_client(module: &str) -> Option<Backing> {
    if module.starts_with("github.com/lib/pq") || module.starts_with("github.com/jackc/pgx") {
        Some(Backing::Postgres)
    } else if module.starts_with("github.com/redis/go-redis")
        || module.starts_with("github.com/go-redis/redis")
        || module.starts_with("github.com/gomodule/redigo")
    {
        Some(Backing::Redis)
    } else if module.starts_with("go.mongodb.org/mongo-driver") {
        Some(Backing::Mongo)
    } else if module.starts_with("github.com/go-sql-driver/mysql") {
        Some(Backing::Mysql)
    } else {
        None
    }
}

fn parse_go_mod(text: &str, fallback: impl FnOnce() -> String) -> GoMod {
    let mut module = None;
    let mut version = None;
    let mut requires = Vec::new();
    let mut in_require = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if in_require {
            if line == ")" {
                in_require = false;
            } else if !line.is_empty() {
                requires.push(line.to_owned());
            }
            continue;
        }
        if let Some(m) = line.strip_prefix("module ") {
            module = Some(m.trim().trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("go ") {
            version = Some(v.trim().split('.').take(2).collect::<Vec<_>>().join("."));
        } else if line == "require (" {
            in_require = true;
        } else if let Some(r) = line.strip_prefix("require ") {
            requires.push(r.trim().to_owned());
        }
    }
    GoMod {
        module: module.unwrap_or_else(fallback),
        version,
        requires,
    }
}

/// The directories of module `dir` whose package is `main`.
fn mains<'a>(scan: &mut Scan<'a>, modules: &[&str], dir: &str) -> Vec<&'a str> {
    // Nested modules are their own services; their directories are not this module's.
    let nested: Vec<&str> = modules
        .iter()
        .copied()
        .filter(|m| *m != dir && within(m, dir))
        .collect();
    let mut mains = Vec::new();
    for (d, names) in &scan.index.dirs {
        if !within(d, dir) || nested.iter().any(|n| within(d, n)) {
            continue;
        }
        if d.split('/')
            .any(|c| c == "testdata" || c == "vendor" || c.starts_with('_'))
        {
            continue;
        }
        let Some(first) = names
            .iter()
            .find(|n| n.ends_with(".go") && !n.ends_with("_test.go"))
        else {
            continue;
        };
        let p = join(d, first);
        match scan.files.read(&p, 16 * 1024) {
            Ok(bytes) => {
                let head = String::from_utf8_lossy(&bytes);
                if GO_PACKAGE.captures(&head).is_some_and(|c| &c[1] == "main") {
                    mains.push(*d);
                }
            }
            Err(e) => scan.notes.push(format!("{p}: cannot read it ({e})")),
        }
    }
    mains
}

/// The service of the `main` package in `m`, in module `dir`.
fn command(scan: &Scan, dir: &str, m: &str, declared: &GoMod) -> Service {
    let GoMod {
        module,
        version,
        requires,
    } = declared;
    let gomod = join(dir, "go.mod");
    let rel = m.strip_prefix(dir).unwrap_or(m).trim_start_matches('/');
    let cmd = if rel.is_empty() {
        module.rsplit('/').next().unwrap_or(module).to_owned()
    } else {
        base(rel).to_owned()
    };
    let name = sanitize_name(&cmd, "app");
    let target = if rel.is_empty() {
        ".".to_owned()
    } else {
        format!("./{rel}")
    };
    let build =
        format!("CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/{name} {target}");
    let mut manifests = vec!["go.mod".to_owned()];
    if scan.index.has(dir, "go.sum") {
        manifests.push("go.sum".to_owned());
    }
    let mut s = Service::new(
        name.clone(),
        dir,
        ServiceKind::Generated(App {
            kind: Some("command".to_owned()),
            manifests,
            install: vec!["go mod download".to_owned()],
            build_commands: vec![build.clone()],
            run_command: Some(vec![format!("/usr/local/bin/{name}")]),
            artifact: Some(format!("/out/{name}")),
            dependencies: requires.clone(),
            version: version.clone(),
            ..App::new("go", source_of(dir))
        }),
    );
    s.why(&gomod, format!("language go, module {module}"));
    if let Some(v) = version {
        s.why(&gomod, format!("go {v}: Go {v}"));
    }
    s.why(
        join(m, "*.go"),
        format!(
            "package main in {}: command `{name}`, a static binary ({build}) in a build stage; the runtime stage holds only the binary",
            source_of(m)
        ),
    );
    for r in requires {
        let path = r.split_whitespace().next().unwrap_or("");
        add_client(&mut s, &gomod, path, go_client(path));
    }
    port(scan, m, &mut s);
    s
}

/// The first port found in the command's first 20 non-test files.
fn port(scan: &Scan, m: &str, s: &mut Service) {
    let Some(names) = scan.index.dirs.get(m) else {
        return;
    };
    for f in names
        .iter()
        .filter(|n| n.ends_with(".go") && !n.ends_with("_test.go"))
        .take(20)
    {
        let p = join(m, f);
        if let Ok(t) = scan.read_text(&p) {
            if let Some(port) = port_in(&GO_PORT, &t) {
                s.why(&p, format!("port {port} (found in the code)"));
                s.ports.insert(port);
                break;
            }
        }
    }
}
