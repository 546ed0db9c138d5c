//! Service detection: pure, from a [`Listing`] and the contents of the files it asks for.
//!
//! Reads only marker files (manifests, lock files, compose files, Dockerfiles, one entry file per
//! service for ports, and the package clause of one Go file per directory), each capped at
//! [`MAX_READ`] bytes, so the work is bounded by the number of services, not the size of the tree.
//!
//! Rules, in the order they apply:
//! - a directory with a `Dockerfile` is a Dockerfile container (the file is kept as it is);
//! - else one language per directory, first match of Rust (`Cargo.toml`, workspace members
//!   included), Go (`go.mod`, one service per `main` package), Java (`pom.xml`, `build.gradle`),
//!   Python (`pyproject.toml`, `requirements.txt`, `manage.py`, `setup.py`), Node
//!   (`package.json`); a second language in the same directory is a note;
//! - a directory with `index.html` that no other service contains is a static site;
//! - compose files: a service with `build:` names (and gets the ports, env and `depends_on` of)
//!   the service detected in that directory; a service with only `image:` becomes a container
//!   from a generated one-line Dockerfile;
//! - client libraries (a Postgres driver, a Redis client…) add `depends_on` on the project's one
//!   container of that kind, or a note when there are none or several.
//!
//! A file that cannot be used (binary, not UTF-8, too large, malformed) is a note, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::walk::Listing;
use super::Evidence;

/// The most `init` reads of one file.
pub const MAX_READ: usize = 1 << 20;

/// File contents by project-relative path (the walk's disk reader, or a map in tests).
pub trait Files {
    /// At most `max + 1` bytes of the file (more than `max` means "too large").
    fn read(&self, path: &str, max: usize) -> std::io::Result<Vec<u8>>;
}

impl Files for BTreeMap<String, Vec<u8>> {
    fn read(&self, path: &str, max: usize) -> std::io::Result<Vec<u8>> {
        self.get(path)
            .map(|b| b[..b.len().min(max + 1)].to_vec())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// A backing service that client libraries point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backing {
    Postgres,
    Redis,
    Mongo,
    Mysql,
}

impl Backing {
    pub fn label(self) -> &'static str {
        match self {
            Backing::Postgres => "Postgres",
            Backing::Redis => "Redis",
            Backing::Mongo => "MongoDB",
            Backing::Mysql => "MySQL",
        }
    }
    /// Image repository names of this kind of server.
    fn images(self) -> &'static [&'static str] {
        match self {
            Backing::Postgres => &["postgres", "postgis", "timescaledb"],
            Backing::Redis => &["redis", "valkey", "keydb"],
            Backing::Mongo => &["mongo"],
            Backing::Mysql => &["mysql", "mariadb"],
        }
    }
    /// Container names that conventionally are this kind of server.
    fn names(self) -> &'static [&'static str] {
        match self {
            Backing::Postgres => &["db", "postgres", "postgresql", "pg", "database"],
            Backing::Redis => &["redis", "cache"],
            Backing::Mongo => &["mongo", "mongodb"],
            Backing::Mysql => &["mysql", "mariadb"],
        }
    }
}

/// An application detected from source (a generated container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The language key for base images: one of [`super::LANGUAGES`].
    pub language: &'static str,
    /// The framework or kind (`flask`, `express`…), when recognized.
    pub kind: Option<String>,
    /// The source directory, project-relative (`.` for the root).
    pub source: String,
    pub build_commands: Vec<String>,
    /// Exec form; `{app_dir}` stands for the application's directory in the image.
    pub run_command: Option<Vec<String>>,
    pub dependencies: Vec<String>,
    /// The language version the project pins (`3.11`, `20`, `1.22`), if any.
    pub version: Option<String>,
}

impl App {
    /// An application of `language` in `source`, nothing else decided yet.
    pub fn new(language: &'static str, source: String) -> App {
        App {
            language,
            kind: None,
            source,
            build_commands: Vec::new(),
            run_command: None,
            dependencies: Vec::new(),
            version: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    Generated(App),
    /// An existing Dockerfile, kept. `from` is its first stage's image, when readable.
    Dockerfile {
        dockerfile: String,
        context: String,
        from: Option<String>,
    },
    /// A compose service with only an image: packaged through a generated Dockerfile.
    Image {
        image: String,
    },
}

/// One detected service: a container (and for generated ones, its application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The directory it was found in, project-relative (`` for the root).
    pub dir: String,
    pub kind: ServiceKind,
    /// `"8080"`, `"53/udp"`.
    pub ports: BTreeSet<String>,
    pub env: BTreeMap<String, String>,
    pub depends_on: BTreeSet<String>,
    /// Client libraries found: kind → (file, library).
    pub clients: BTreeMap<Backing, (String, String)>,
    pub evidence: Vec<Evidence>,
}

impl Service {
    fn new(name: String, dir: &str, kind: ServiceKind) -> Service {
        Service {
            name,
            dir: dir.to_owned(),
            kind,
            ports: BTreeSet::new(),
            env: BTreeMap::new(),
            depends_on: BTreeSet::new(),
            clients: BTreeMap::new(),
            evidence: Vec::new(),
        }
    }
    fn why(&mut self, file: impl Into<String>, decision: impl Into<String>) {
        self.evidence.push(Evidence {
            file: file.into(),
            decision: decision.into(),
        });
    }
}

#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub services: Vec<Service>,
    pub notes: Vec<String>,
}

/// Makes a valid cookbook name (`[a-z0-9][a-z0-9_.-]{0,127}`) out of any text.
pub fn sanitize_name(raw: &str, fallback: &str) -> String {
    let mapped: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(128)
        .collect();
    if trimmed.is_empty() {
        fallback.to_owned()
    } else {
        trimmed
    }
}

/// `dir` joined with `name` (`dir` may be the root, ``).
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn base(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

/// The source path as the cookbook writes it.
fn source_of(dir: &str) -> String {
    if dir.is_empty() {
        ".".to_owned()
    } else {
        dir.to_owned()
    }
}

/// Whether `path` is `dir` or below it.
fn within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/')
}

/// Reads a text file, or says in a note-ready sentence why it cannot be used.
fn read_text(files: &dyn Files, path: &str) -> Result<String, String> {
    let bytes = files
        .read(path, MAX_READ)
        .map_err(|e| format!("{path}: cannot read it ({e})"))?;
    if bytes.len() > MAX_READ {
        return Err(format!(
            "{path}: larger than {} MiB, not read",
            MAX_READ >> 20
        ));
    }
    if bytes.contains(&0) {
        return Err(format!("{path}: a binary file, not text"));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{path}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The listing's directories and the names of the files directly in each.
struct Index<'a> {
    dirs: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

impl<'a> Index<'a> {
    fn new(listing: &'a Listing) -> Index<'a> {
        let mut dirs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for f in &listing.files {
            let (d, n) = f.rsplit_once('/').unwrap_or(("", f.as_str()));
            dirs.entry(d).or_default().insert(n);
        }
        Index { dirs }
    }
    fn has(&self, dir: &str, name: &str) -> bool {
        self.dirs.get(dir).is_some_and(|s| s.contains(name))
    }
    fn dirs_with(&self, name: &str) -> Vec<&'a str> {
        self.dirs
            .iter()
            .filter(|(_, names)| names.contains(name))
            .map(|(d, _)| *d)
            .collect()
    }
}

const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Detects the services of a project.
pub fn detect(listing: &Listing, files: &dyn Files) -> Detection {
    let index = Index::new(listing);
    let mut d = Detection::default();
    let mut taken: BTreeSet<String> = BTreeSet::new(); // directories that hold a service
    let mut services: Vec<Service> = Vec::new();

    // Dockerfiles first: a project's own Dockerfile wins over anything init would generate.
    for dir in index.dirs_with("Dockerfile") {
        let path = join(dir, "Dockerfile");
        let from = read_text(files, &path)
            .ok()
            .and_then(|t| dockerfile_from(&t));
        let mut s = Service::new(
            dir_name(dir, &listing.root_name),
            dir,
            ServiceKind::Dockerfile {
                dockerfile: path.clone(),
                context: source_of(dir),
                from: from.clone(),
            },
        );
        s.why(
            &path,
            format!(
                "existing Dockerfile kept: a Dockerfile container with context {}",
                source_of(dir)
            ),
        );
        if let Some(f) = from {
            s.why(&path, format!("builds FROM {f}"));
        }
        for marker in [
            "package.json",
            "requirements.txt",
            "pyproject.toml",
            "go.mod",
            "Cargo.toml",
            "pom.xml",
        ] {
            if index.has(dir, marker) {
                s.why(
                    join(dir, marker),
                    "a language marker beside the Dockerfile: nothing generated, the Dockerfile builds it",
                );
            }
        }
        taken.insert(dir.to_owned());
        services.push(s);
    }
    let mut others: Vec<String> = listing
        .files
        .iter()
        .filter(|f| {
            let b = base(f);
            b != "Dockerfile"
                && (b.starts_with("Dockerfile.")
                    || b.ends_with(".Dockerfile")
                    || b.ends_with(".dockerfile"))
        })
        .cloned()
        .collect();
    others.sort();
    if !others.is_empty() {
        d.notes.push(format!(
            "other Dockerfiles not used (only files named `Dockerfile` are kept; point a container at one by hand if it is the one to build): {}",
            others.join(", ")
        ));
    }

    // Languages, one per directory.
    let rust = detect_rust(&index, files, &taken, &mut d.notes);
    claim(&mut taken, &mut services, rust);
    let go = detect_go(&index, listing, files, &taken, &mut d.notes);
    claim(&mut taken, &mut services, go);
    let java = detect_java(&index, files, &taken, &listing.root_name, &mut d.notes);
    claim(&mut taken, &mut services, java);
    let python = detect_python(&index, files, &taken, &listing.root_name, &mut d.notes);
    claim(&mut taken, &mut services, python);
    let node = detect_node(&index, files, &taken, &listing.root_name, &mut d.notes);
    claim(&mut taken, &mut services, node);
    let statics = detect_static(&index, &taken, &listing.root_name);
    claim(&mut taken, &mut services, statics);

    // Compose files rename, extend and add services.
    let mut composes: Vec<String> = listing
        .files
        .iter()
        .filter(|f| COMPOSE_FILES.contains(&base(f)))
        .cloned()
        .collect();
    composes.sort();
    for c in &composes {
        apply_compose(c, files, &index, &mut services, &mut d.notes);
    }

    unique_names(&mut services, &mut d.notes);
    client_edges(&mut services, &mut d.notes);
    services.sort_by(|a, b| a.name.cmp(&b.name));
    d.services = services;
    d
}

fn claim(taken: &mut BTreeSet<String>, services: &mut Vec<Service>, found: Vec<Service>) {
    for s in found {
        taken.insert(s.dir.clone());
        services.push(s);
    }
}

/// A directory's service name: its own name, or the project's for the root.
fn dir_name(dir: &str, root_name: &str) -> String {
    if dir.is_empty() {
        sanitize_name(root_name, "app")
    } else {
        sanitize_name(base(dir), "app")
    }
}

/// The first `FROM` image of a Dockerfile (flags such as `--platform` skipped).
fn dockerfile_from(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("FROM") {
            return None;
        }
        words.find(|w| !w.starts_with("--")).map(str::to_owned)
    })
}

// ---- ports found in code ----

static PY_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"port\s*=\s*(\d{2,5})\b").expect("regex"));
static JS_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\.listen\(\s*|PORT\s*(?:\|\||\?\?)\s*|\bport\s*[:=]\s*)(\d{2,5})\b")
        .expect("regex")
});
static GO_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:ListenAndServe(?:TLS)?|Listen|Run)\([^)]*?"[\w.\-]*:(\d{2,5})""#)
        .expect("regex")
});
static RS_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(?:0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\])?:(\d{2,5})""#).expect("regex")
});
static FASTAPI_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\w+)\s*=\s*FastAPI\(").expect("regex"));
static NODE_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bnode\s+(?:--\S+\s+)*([\w./-]+\.[cm]?js)\b").expect("regex"));
static POM_STRIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<parent>.*?</parent>|<dependencies>.*|<build>.*").expect("regex")
});
static POM_ARTIFACT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<artifactId>\s*([^<\s]+)\s*</artifactId>").expect("regex"));
static POM_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<version>\s*([^<\s]+)\s*</version>").expect("regex"));
static JAVA_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*server\.port\s*[=:]\s*(\d{2,5})\s*$").expect("regex"));

fn port_in(re: &Regex, text: &str) -> Option<String> {
    re.captures_iter(text)
        .filter_map(|c| c[1].parse::<u32>().ok())
        .find(|p| (1..=65535).contains(p))
        .map(|p| p.to_string())
}

fn add_client(s: &mut Service, file: &str, lib: &str, backing: Option<Backing>) {
    if let Some(b) = backing {
        s.clients
            .entry(b)
            .or_insert_with(|| (file.to_owned(), lib.to_owned()));
    }
}

// ---- Python ----

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

fn detect_python(
    index: &Index,
    files: &dyn Files,
    taken: &BTreeSet<String>,
    root_name: &str,
    notes: &mut Vec<String>,
) -> Vec<Service> {
    let markers = [
        "pyproject.toml",
        "requirements.txt",
        "manage.py",
        "setup.py",
    ];
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for m in markers {
        dirs.extend(index.dirs_with(m));
    }
    let mut out = Vec::new();
    for dir in dirs {
        if taken.contains(dir) {
            note_second_language(dir, "Python", taken, notes);
            continue;
        }
        let mut app = App {
            language: "python",
            kind: None,
            source: source_of(dir),
            build_commands: Vec::new(),
            run_command: None,
            dependencies: Vec::new(),
            version: None,
        };
        let mut s = Service::new(
            dir_name(dir, root_name),
            dir,
            ServiceKind::Generated(App { ..app.clone() }),
        );
        let mut deps: Vec<String> = Vec::new();
        let mut scripts: Vec<String> = Vec::new();
        let req = join(dir, "requirements.txt");
        if index.has(dir, "requirements.txt") {
            match read_text(files, &req) {
                Ok(text) => {
                    for line in text.lines() {
                        let line = line.split(" #").next().unwrap_or("").trim();
                        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                            continue;
                        }
                        deps.push(line.to_owned());
                    }
                    app.build_commands
                        .push("pip install --no-cache-dir -r requirements.txt".to_owned());
                    s.why(
                        &req,
                        "language python; build: pip install -r requirements.txt",
                    );
                }
                Err(e) => notes.push(format!("{e}; its dependencies are not installed")),
            }
        }
        let pyproject = join(dir, "pyproject.toml");
        if index.has(dir, "pyproject.toml") {
            match read_text(files, &pyproject).and_then(|t| {
                t.parse::<toml::Table>()
                    .map_err(|e| format!("{pyproject}: not valid TOML: {}", e.message()))
            }) {
                Ok(t) => {
                    let project = t.get("project").and_then(|p| p.as_table());
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
                        let rp = rp.trim();
                        if let Some(v) = rp.strip_prefix("==").or_else(|| rp.strip_prefix("~=")) {
                            let mm: Vec<&str> = v.trim().split('.').take(2).collect();
                            if mm.len() == 2
                                && mm.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
                            {
                                app.version = Some(mm.join("."));
                                s.why(
                                    &pyproject,
                                    format!("requires-python {rp}: Python {}", mm.join(".")),
                                );
                            }
                        }
                    }
                    if app.build_commands.is_empty() {
                        app.build_commands
                            .push("pip install --no-cache-dir .".to_owned());
                        s.why(&pyproject, "language python; build: pip install .");
                    } else {
                        s.why(
                            &pyproject,
                            "language python (requirements.txt drives the install)",
                        );
                    }
                }
                Err(e) => notes.push(e),
            }
        }
        let pv = join(dir, ".python-version");
        if app.version.is_none() && index.has(dir, ".python-version") {
            if let Ok(t) = read_text(files, &pv) {
                let mm: Vec<&str> = t.trim().split('.').take(2).collect();
                if mm.len() == 2
                    && mm
                        .iter()
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                {
                    app.version = Some(mm.join("."));
                    s.why(&pv, format!("Python {}", mm.join(".")));
                }
            }
        }
        let names: BTreeSet<String> = deps.iter().map(|d| requirement_name(d)).collect();
        for n in &names {
            let file = if index.has(dir, "requirements.txt") {
                &req
            } else {
                &pyproject
            };
            add_client(&mut s, file, n, python_client(n));
        }
        app.dependencies = deps;
        let manage = join(dir, "manage.py");
        if index.has(dir, "manage.py") || names.contains("django") {
            app.kind = Some("django".to_owned());
        } else if names.contains("fastapi") {
            app.kind = Some("fastapi".to_owned());
        } else if names.contains("flask") {
            app.kind = Some("flask".to_owned());
        }
        if index.has(dir, "manage.py") {
            app.run_command = Some(vec![
                "python".into(),
                "manage.py".into(),
                "runserver".into(),
                "0.0.0.0:8000".into(),
            ]);
            s.ports.insert("8000".into());
            s.why(
                &manage,
                "Django: run manage.py runserver 0.0.0.0:8000, port 8000",
            );
            notes.push(format!(
                "{manage}: runs Django's development server; for production set run_command to a WSGI server (gunicorn, uwsgi)"
            ));
        } else {
            let entry = [
                "app.py",
                "main.py",
                "wsgi.py",
                "server.py",
                "run.py",
                "__main__.py",
            ]
            .into_iter()
            .find(|f| index.has(dir, f));
            match entry {
                Some(f) => {
                    let path = join(dir, f);
                    let text = read_text(files, &path).unwrap_or_default();
                    if app.kind.as_deref() == Some("fastapi") {
                        let var = FASTAPI_VAR.captures(&text)
                            .map(|c| c[1].to_owned())
                            .unwrap_or_else(|| "app".to_owned());
                        let module = f.trim_end_matches(".py");
                        let port = port_in(&PY_PORT, &text).unwrap_or_else(|| "8000".into());
                        app.run_command = Some(vec![
                            "uvicorn".into(),
                            format!("{module}:{var}"),
                            "--host".into(),
                            "0.0.0.0".into(),
                            "--port".into(),
                            port.clone(),
                        ]);
                        s.ports.insert(port.clone());
                        s.why(&path, format!("FastAPI app `{var}`: run with uvicorn on port {port}"));
                    } else {
                        app.run_command = Some(vec!["python".into(), f.to_owned()]);
                        s.why(&path, format!("entry point: python {f}"));
                        if let Some(p) = port_in(&PY_PORT, &text) {
                            s.why(&path, format!("port {p} (port={p} in the code)"));
                            s.ports.insert(p);
                        } else if app.kind.as_deref() == Some("flask") && text.contains(".run(") {
                            s.why(&path, "port 5000 (Flask's default: app.run() without a port)");
                            s.ports.insert("5000".into());
                        }
                        if app.kind.as_deref() == Some("flask") && text.contains(".run(") && !text.contains("0.0.0.0") {
                            notes.push(format!("{path}: app.run() listens on 127.0.0.1 unless given host=\"0.0.0.0\": unreachable from outside the container"));
                        }
                    }
                }
                None => match scripts.first() {
                    Some(script) => {
                        app.run_command = Some(vec![script.clone()]);
                        s.why(&pyproject, format!("run: the project script `{script}`"));
                    }
                    None => notes.push(format!(
                        "{}: no entry point found (app.py, main.py, wsgi.py, server.py, run.py, a [project.scripts] entry): set applications.{}.run_command",
                        source_of(dir),
                        s.name
                    )),
                },
            }
        }
        if let Some(k) = &app.kind {
            s.why(
                if index.has(dir, "requirements.txt") {
                    &req
                } else {
                    &pyproject
                },
                format!("type {k}"),
            );
        }
        s.kind = ServiceKind::Generated(app);
        out.push(s);
    }
    out
}

fn note_second_language(dir: &str, lang: &str, _taken: &BTreeSet<String>, notes: &mut Vec<String>) {
    notes.push(format!(
        "{}: {lang} files too, but the directory already holds a service: not packaged separately",
        source_of(dir)
    ));
}

// ---- Node ----

fn node_client(name: &str) -> Option<Backing> {
    match name {
        "pg" | "postgres" | "pg-promise" | "@prisma/client" => Some(Backing::Postgres),
        "redis" | "ioredis" => Some(Backing::Redis),
        "mongodb" | "mongoose" => Some(Backing::Mongo),
        "mysql" | "mysql2" => Some(Backing::Mysql),
        _ => None,
    }
}

fn detect_node(
    index: &Index,
    files: &dyn Files,
    taken: &BTreeSet<String>,
    root_name: &str,
    notes: &mut Vec<String>,
) -> Vec<Service> {
    let mut out = Vec::new();
    for dir in index.dirs_with("package.json") {
        let path = join(dir, "package.json");
        if taken.contains(dir) {
            note_second_language(dir, "Node", taken, notes);
            continue;
        }
        let pkg: serde_json::Value = match read_text(files, &path).and_then(|t| {
            serde_json::from_str::<serde_json::Value>(&t)
                .map_err(|e| format!("{path}:{}:{}: not valid JSON: {e}", e.line(), e.column()))
        }) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                notes.push(format!(
                    "{path}: not a JSON object: not used as a Node project"
                ));
                continue;
            }
            Err(e) => {
                notes.push(format!("{e}: not used as a Node project"));
                continue;
            }
        };
        let mut s = Service::new(
            dir_name(dir, root_name),
            dir,
            ServiceKind::Generated(App::new("node", source_of(dir))),
        );
        let mut app = App {
            language: "node",
            kind: None,
            source: source_of(dir),
            build_commands: vec![],
            run_command: None,
            dependencies: vec![],
            version: None,
        };
        s.why(&path, "language node");
        let (pm, install, lock) = if index.has(dir, "package-lock.json") {
            ("npm", vec!["npm ci"], Some("package-lock.json"))
        } else if index.has(dir, "npm-shrinkwrap.json") {
            ("npm", vec!["npm ci"], Some("npm-shrinkwrap.json"))
        } else if index.has(dir, "yarn.lock") {
            (
                "yarn",
                vec!["corepack enable", "yarn install --frozen-lockfile"],
                Some("yarn.lock"),
            )
        } else if index.has(dir, "pnpm-lock.yaml") {
            (
                "pnpm",
                vec!["corepack enable", "pnpm install --frozen-lockfile"],
                Some("pnpm-lock.yaml"),
            )
        } else {
            ("npm", vec!["npm install"], None)
        };
        match lock {
            Some(l) => s.why(join(dir, l), format!("lock file: {pm}; install with {}", install.last().expect("one"))),
            None => notes.push(format!(
                "{path}: no lock file (package-lock.json, yarn.lock, pnpm-lock.yaml): `npm install` resolves versions anew at each build; commit a lock file"
            )),
        }
        app.build_commands
            .extend(install.iter().map(|c| c.to_string()));
        let scripts = pkg.get("scripts").and_then(|v| v.as_object());
        let script = |name: &str| scripts.and_then(|s| s.get(name)).and_then(|v| v.as_str());
        if script("build").is_some() {
            app.build_commands.push(format!("{pm} run build"));
            s.why(&path, format!("scripts.build: build with `{pm} run build`"));
        }
        let deps = pkg.get("dependencies").and_then(|v| v.as_object());
        if let Some(deps) = deps {
            for (name, spec) in deps {
                app.dependencies
                    .push(format!("{name}@{}", spec.as_str().unwrap_or("*")));
                add_client(&mut s, &path, name, node_client(name));
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
                app.kind = Some(kind.to_owned());
                s.why(&path, format!("type {kind} (dependency {dep})"));
                break;
            }
        }
        if let Some(engine) = pkg
            .get("engines")
            .and_then(|e| e.get("node"))
            .and_then(|v| v.as_str())
        {
            match node_major(engine) {
                Some(m) => {
                    s.why(&path, format!("engines.node {engine:?}: Node {m}"));
                    app.version = Some(m);
                }
                None => notes.push(format!(
                    "{path}: engines.node {engine:?} names no single major version: the default Node image is used"
                )),
            }
        }
        let main = pkg.get("main").and_then(|v| v.as_str());
        let start_file: Option<String> = script("start")
            .and_then(|s| {
                NODE_START
                    .captures(s)
                    .map(|c| c[1].trim_start_matches("./").to_owned())
            })
            .or_else(|| main.map(|m| m.trim_start_matches("./").to_owned()))
            .or_else(|| {
                ["server.js", "app.js", "index.js"]
                    .into_iter()
                    .find(|f| index.has(dir, f))
                    .map(str::to_owned)
            });
        if let Some(start) = script("start") {
            app.run_command = Some(vec![pm.to_owned(), "start".to_owned()]);
            s.why(&path, format!("run: {pm} start (scripts.start: {start})"));
        } else if let Some(f) = &start_file {
            app.run_command = Some(vec!["node".to_owned(), f.clone()]);
            s.why(&path, format!("run: node {f}"));
        } else {
            notes.push(format!(
                "{path}: no scripts.start, main, server.js, app.js or index.js: set applications.{}.run_command",
                s.name
            ));
        }
        if let Some(f) = start_file {
            let fp = join(dir, &f);
            if let Ok(text) = read_text(files, &fp) {
                if let Some(p) = port_in(&JS_PORT, &text) {
                    s.why(&fp, format!("port {p} (found in the code)"));
                    s.ports.insert(p);
                }
            }
        }
        s.kind = ServiceKind::Generated(app);
        out.push(s);
    }
    out
}

/// The one major version an `engines.node` range names (`20`, `20.x`, `^20.1`, `~20`, `>=20`).
fn node_major(spec: &str) -> Option<String> {
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

// ---- Go ----

static GO_PACKAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^package\s+(\w+)").expect("regex"));

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

fn detect_go(
    index: &Index,
    listing: &Listing,
    files: &dyn Files,
    taken: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> Vec<Service> {
    let modules = index.dirs_with("go.mod");
    let mut out = Vec::new();
    for dir in &modules {
        let dir = *dir;
        if taken.contains(dir) {
            note_second_language(dir, "Go", taken, notes);
            continue;
        }
        let gomod = join(dir, "go.mod");
        let text = match read_text(files, &gomod) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{e}: not used as a Go module"));
                continue;
            }
        };
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
        let module = module.unwrap_or_else(|| dir_name(dir, &listing.root_name));
        // Nested modules are their own services; their directories are not this module's.
        let nested: Vec<&str> = modules
            .iter()
            .copied()
            .filter(|m| *m != dir && within(m, dir))
            .collect();
        let mut mains: Vec<&str> = Vec::new();
        for (d, names) in &index.dirs {
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
            match files.read(&p, 16 * 1024) {
                Ok(bytes) => {
                    let head = String::from_utf8_lossy(&bytes);
                    if GO_PACKAGE.captures(&head).is_some_and(|c| &c[1] == "main") {
                        mains.push(d);
                    }
                }
                Err(e) => notes.push(format!("{p}: cannot read it ({e})")),
            }
        }
        if mains.is_empty() {
            notes.push(format!(
                "{gomod}: a Go module without a `main` package (a library): not packaged"
            ));
            continue;
        }
        for m in mains {
            let rel = m.strip_prefix(dir).unwrap_or(m).trim_start_matches('/');
            let cmd = if rel.is_empty() {
                module.rsplit('/').next().unwrap_or(&module).to_owned()
            } else {
                base(rel).to_owned()
            };
            let name = sanitize_name(&cmd, "app");
            let target = if rel.is_empty() {
                ".".to_owned()
            } else {
                format!("./{rel}")
            };
            let mut s = Service::new(
                name.clone(),
                dir,
                ServiceKind::Generated(App {
                    language: "go",
                    kind: Some("command".to_owned()),
                    source: source_of(dir),
                    build_commands: vec![format!(
                        "CGO_ENABLED=0 go build -trimpath -o /usr/local/bin/{name} {target}"
                    )],
                    run_command: Some(vec![format!("/usr/local/bin/{name}")]),
                    dependencies: requires.clone(),
                    version: version.clone(),
                }),
            );
            s.why(&gomod, format!("language go, module {module}"));
            if let Some(v) = &version {
                s.why(&gomod, format!("go {v}: Go {v}"));
            }
            s.why(
                join(m, "*.go"),
                format!(
                    "package main in {}: command `{name}`, go build {target}",
                    source_of(m)
                ),
            );
            for r in &requires {
                let path = r.split_whitespace().next().unwrap_or("");
                add_client(&mut s, &gomod, path, go_client(path));
            }
            if let Some(names) = index.dirs.get(m) {
                for f in names
                    .iter()
                    .filter(|n| n.ends_with(".go") && !n.ends_with("_test.go"))
                    .take(20)
                {
                    let p = join(m, f);
                    if let Ok(t) = read_text(files, &p) {
                        if let Some(port) = port_in(&GO_PORT, &t) {
                            s.why(&p, format!("port {port} (found in the code)"));
                            s.ports.insert(port);
                            break;
                        }
                    }
                }
            }
            out.push(s);
        }
    }
    out
}

// ---- Rust ----

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

fn detect_rust(
    index: &Index,
    files: &dyn Files,
    taken: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> Vec<Service> {
    let manifests = index.dirs_with("Cargo.toml");
    let mut parsed: BTreeMap<&str, toml::Table> = BTreeMap::new();
    for dir in &manifests {
        let p = join(dir, "Cargo.toml");
        match read_text(files, &p).and_then(|t| {
            t.parse::<toml::Table>()
                .map_err(|e| format!("{p}: not valid TOML: {}", e.message()))
        }) {
            Ok(t) => {
                parsed.insert(dir, t);
            }
            Err(e) => notes.push(format!("{e}: not used as a Rust crate")),
        }
    }
    // Workspace roots and their members; a member belongs to its workspace's service set.
    let mut member_of: BTreeMap<String, String> = BTreeMap::new();
    for (dir, t) in &parsed {
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
            let m = m.trim_end_matches('/');
            let matched: Vec<String> = if let Some(prefix) = m.strip_suffix("/*") {
                let pdir = join(dir, prefix);
                parsed
                    .keys()
                    .filter(|d| parent(d) == pdir)
                    .map(|d| d.to_string())
                    .collect()
            } else if m.contains('*') || m.contains('?') || m.contains('[') {
                notes.push(format!("{}: workspace member pattern {m:?} not understood by init: its crates are not packaged", join(dir, "Cargo.toml")));
                vec![]
            } else {
                vec![join(dir, m)]
            };
            for d in matched {
                if !excluded.contains(&d) {
                    member_of.insert(d, dir.to_string());
                }
            }
        }
        member_of.insert(dir.to_string(), dir.to_string());
    }
    let mut out = Vec::new();
    for (dir, t) in &parsed {
        let root = member_of
            .get(*dir)
            .cloned()
            .unwrap_or_else(|| dir.to_string());
        if taken.contains(root.as_str()) || taken.contains(*dir) {
            if root == *dir {
                note_second_language(dir, "Rust", taken, notes);
            }
            continue;
        }
        let Some(package) = t.get("package").and_then(|p| p.as_table()) else {
            continue;
        };
        let Some(pkg) = package.get("name").and_then(|n| n.as_str()) else {
            notes.push(format!(
                "{}: [package] without a name: not packaged",
                join(dir, "Cargo.toml")
            ));
            continue;
        };
        let manifest = join(dir, "Cargo.toml");
        let mut bins: Vec<(String, String)> = Vec::new(); // (name, evidence file)
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
        let autobins = package.get("autobins").and_then(|a| a.as_bool()) != Some(false);
        if autobins {
            let main = join(dir, "src/main.rs");
            if index.has(&join(dir, "src"), "main.rs")
                && !explicit.contains("src/main.rs")
                && !bins.iter().any(|(n, _)| n == pkg)
            {
                bins.push((pkg.to_owned(), main));
            }
            let bindir = join(dir, "src/bin");
            if let Some(names) = index.dirs.get(bindir.as_str()) {
                for n in names.iter().filter_map(|n| n.strip_suffix(".rs")) {
                    if !bins.iter().any(|(b, _)| b == n)
                        && !explicit.contains(&format!("src/bin/{n}.rs"))
                    {
                        bins.push((n.to_owned(), join(&bindir, &format!("{n}.rs"))));
                    }
                }
            }
        }
        if bins.is_empty() {
            if root == *dir {
                notes.push(format!(
                    "{manifest}: a library crate without binaries: not packaged"
                ));
            }
            continue;
        }
        let root_toml = parsed.get(root.as_str());
        let version = package
            .get("rust-version")
            .and_then(|v| v.as_str())
            .or_else(|| {
                root_toml
                    .and_then(|r| r.get("workspace"))
                    .and_then(|w| w.get("package"))
                    .and_then(|p| p.get("rust-version"))
                    .and_then(|v| v.as_str())
            })
            .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."));
        let locked = index.has(&root, "Cargo.lock");
        if !locked {
            notes.push(format!(
                "{}: no Cargo.lock: `cargo build` resolves versions anew at each build; commit the lock file",
                source_of(&root)
            ));
        }
        let mut deps: Vec<String> = Vec::new();
        let mut clients: Vec<(String, Option<Backing>)> = Vec::new();
        if let Some(d) = t.get("dependencies").and_then(|d| d.as_table()) {
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
        }
        let in_ws = root != *dir;
        for (bin, file) in bins {
            let name = sanitize_name(&bin, "app");
            let mut build = "cargo build --release".to_owned();
            if locked {
                build.push_str(" --locked");
            }
            if in_ws {
                build.push_str(&format!(" -p {pkg}"));
            }
            build.push_str(&format!(" --bin {bin}"));
            let mut s = Service::new(
                name,
                &root,
                ServiceKind::Generated(App {
                    language: "rust",
                    kind: Some("binary".to_owned()),
                    source: source_of(&root),
                    build_commands: vec![build.clone()],
                    run_command: Some(vec![format!("{{app_dir}}/target/release/{bin}")]),
                    dependencies: deps.clone(),
                    version: version.clone(),
                }),
            );
            if in_ws {
                s.why(
                    join(&root, "Cargo.toml"),
                    format!(
                        "a Rust workspace: member {} is built from the workspace root",
                        source_of(dir)
                    ),
                );
            }
            s.why(&manifest, format!("language rust, package {pkg}"));
            s.why(&file, format!("binary `{bin}`: {build}"));
            if let Some(v) = &version {
                s.why(&manifest, format!("rust-version {v}: Rust {v}"));
            }
            if locked {
                s.why(join(&root, "Cargo.lock"), "lock file: --locked");
            }
            for (n, b) in &clients {
                add_client(&mut s, &manifest, n, *b);
            }
            let main_file = if file.ends_with(".rs") {
                file.clone()
            } else {
                join(dir, "src/main.rs")
            };
            if let Ok(text) = read_text(files, &main_file) {
                if let Some(p) = port_in(&RS_PORT, &text) {
                    s.why(&main_file, format!("port {p} (found in the code)"));
                    s.ports.insert(p);
                }
            }
            out.push(s);
        }
    }
    // The services of one workspace share its root directory: claim it once.
    out
}

// ---- Java ----

fn detect_java(
    index: &Index,
    files: &dyn Files,
    taken: &BTreeSet<String>,
    root_name: &str,
    notes: &mut Vec<String>,
) -> Vec<Service> {
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for m in ["pom.xml", "build.gradle", "build.gradle.kts"] {
        dirs.extend(index.dirs_with(m));
    }
    let roots: Vec<&str> = dirs
        .iter()
        .copied()
        .filter(|d| !dirs.iter().any(|o| o != d && within(d, o)))
        .collect();
    let mut out = Vec::new();
    for dir in roots {
        if taken.contains(dir) {
            note_second_language(dir, "Java", taken, notes);
            continue;
        }
        let maven = index.has(dir, "pom.xml");
        let marker = if maven {
            join(dir, "pom.xml")
        } else if index.has(dir, "build.gradle") {
            join(dir, "build.gradle")
        } else {
            join(dir, "build.gradle.kts")
        };
        let text = match read_text(files, &marker) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{e}: not used as a Java project"));
                continue;
            }
        };
        let mut s = Service::new(
            dir_name(dir, root_name),
            dir,
            ServiceKind::Generated(App::new("java", source_of(dir))),
        );
        let (build, run) = if maven {
            let without_parent = POM_STRIP.replace_all(&text, "");
            let tag = |re: &Regex| re.captures(&without_parent).map(|c| c[1].to_owned());
            let tool = if index.has(dir, "mvnw") {
                "./mvnw"
            } else {
                "mvn"
            };
            let run = match (tag(&POM_ARTIFACT), tag(&POM_VERSION)) {
                (Some(a), Some(v)) if !v.contains("${") => {
                    s.why(&marker, format!("artifact {a}-{v}.jar"));
                    vec!["java".into(), "-jar".into(), format!("target/{a}-{v}.jar")]
                }
                _ => {
                    notes.push(format!("{marker}: the jar's name could not be read: run_command uses target/*.jar through a shell"));
                    vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        "exec java -jar target/*.jar".into(),
                    ]
                }
            };
            s.why(
                &marker,
                format!("language java (Maven): {tool} -B -DskipTests package"),
            );
            (format!("{tool} -B -DskipTests package"), run)
        } else {
            let tool = if index.has(dir, "gradlew") {
                "./gradlew"
            } else {
                "gradle"
            };
            s.why(
                &marker,
                format!("language java (Gradle): {tool} build -x test"),
            );
            notes.push(format!("{marker}: Gradle's jar name is not read by init: run_command uses build/libs/*.jar through a shell"));
            (
                format!("{tool} build -x test --no-daemon"),
                vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "exec java -jar build/libs/*.jar".into(),
                ],
            )
        };
        let spring = text.contains("spring-boot");
        let props = join(dir, "src/main/resources/application.properties");
        let port = if index.has(&join(dir, "src/main/resources"), "application.properties") {
            read_text(files, &props)
                .ok()
                .and_then(|t| port_in(&JAVA_PORT, &t))
                .inspect(|p| {
                    s.why(&props, format!("port {p} (server.port)"));
                })
        } else {
            None
        };
        match (port, spring) {
            (Some(p), _) => {
                s.ports.insert(p);
            }
            (None, true) => {
                s.why(&marker, "port 8080 (Spring Boot's default)");
                s.ports.insert("8080".into());
            }
            _ => {}
        }
        if spring {
            s.why(&marker, "type spring-boot");
        }
        for (needle, b) in [
            ("org.postgresql", Backing::Postgres),
            ("jedis", Backing::Redis),
            ("lettuce", Backing::Redis),
            ("mongodb-driver", Backing::Mongo),
            ("mysql-connector", Backing::Mysql),
        ] {
            if text.contains(needle) {
                add_client(&mut s, &marker, needle, Some(b));
            }
        }
        s.kind = ServiceKind::Generated(App {
            language: "java",
            kind: spring.then(|| "spring-boot".to_owned()),
            source: source_of(dir),
            build_commands: vec![build],
            run_command: Some(run),
            dependencies: vec![],
            version: None,
        });
        out.push(s);
    }
    out
}

// ---- static sites ----

fn detect_static(index: &Index, taken: &BTreeSet<String>, root_name: &str) -> Vec<Service> {
    let mut roots: Vec<&str> = Vec::new();
    for dir in index.dirs_with("index.html") {
        if taken.iter().any(|t| within(dir, t)) || roots.iter().any(|r| within(dir, r)) {
            continue;
        }
        // A directory that contains another service is a project, not a site.
        if taken.iter().any(|t| within(t, dir)) {
            continue;
        }
        roots.push(dir);
    }
    roots
        .into_iter()
        .map(|dir| {
            let mut s = Service::new(
                dir_name(dir, root_name),
                dir,
                ServiceKind::Generated(App {
                    language: "static",
                    kind: Some("static-site".to_owned()),
                    source: source_of(dir),
                    build_commands: vec![],
                    run_command: Some(vec![
                        "httpd".into(),
                        "-f".into(),
                        "-p".into(),
                        "8080".into(),
                        "-h".into(),
                        "{app_dir}".into(),
                    ]),
                    dependencies: vec![],
                    version: None,
                }),
            );
            s.why(
                join(dir, "index.html"),
                "a static site (index.html, no build): served by busybox httpd on port 8080",
            );
            s.ports.insert("8080".into());
            s
        })
        .collect()
}

// ---- compose ----

/// `base/rel` normalized; `None` when it leaves the project.
fn resolve(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = if base.is_empty() {
        vec![]
    } else {
        base.split('/').collect()
    };
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn yaml_scalar(v: &yaml_serde::Value) -> Option<String> {
    match v {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The container side of a compose port (`"8080:80/udp"` → `80/udp`); `None` for a range.
fn compose_port(v: &yaml_serde::Value) -> Result<String, String> {
    let (target, proto) = match v {
        yaml_serde::Value::Mapping(m) => (
            m.get("target").and_then(yaml_scalar).unwrap_or_default(),
            m.get("protocol").and_then(yaml_scalar),
        ),
        other => {
            let s = yaml_scalar(other).unwrap_or_default();
            let (spec, proto) = match s.split_once('/') {
                Some((a, p)) => (a.to_owned(), Some(p.to_owned())),
                None => (s.clone(), None),
            };
            (spec.rsplit(':').next().unwrap_or("").to_owned(), proto)
        }
    };
    let n: u32 = target
        .parse()
        .map_err(|_| format!("port {target:?} (a range or not a number)"))?;
    if !(1..=65535).contains(&n) {
        return Err(format!("port {n} out of range"));
    }
    Ok(match proto.as_deref() {
        None | Some("tcp") => n.to_string(),
        Some(p @ ("udp" | "sctp")) => format!("{n}/{p}"),
        Some(p) => return Err(format!("port {n}/{p}: unknown protocol")),
    })
}

static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$").expect("regex"));

fn apply_compose(
    path: &str,
    files: &dyn Files,
    index: &Index,
    services: &mut Vec<Service>,
    notes: &mut Vec<String>,
) {
    let doc: yaml_serde::Value = match read_text(files, path)
        .and_then(|t| yaml_serde::from_str(&t).map_err(|e| format!("{path}: not valid YAML: {e}")))
    {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("{e}: its services are not used"));
            return;
        }
    };
    let Some(list) = doc.get("services").and_then(|s| s.as_mapping()) else {
        notes.push(format!("{path}: no `services` mapping: not used"));
        return;
    };
    let cdir = parent(path);
    let mut renames: BTreeMap<String, String> = BTreeMap::new(); // compose name → container name
    let mut pending: Vec<(String, usize)> = Vec::new(); // (compose name, service index)
    for (key, spec) in list {
        let Some(raw) = key.as_str() else { continue };
        let name = sanitize_name(raw, "service");
        if name != raw {
            notes.push(format!("{path}: service {raw:?} is named {name:?} (cookbook names are lowercase letters, digits, `_`, `.`, `-`)"));
        }
        let build = spec.get("build");
        let (ctx, dockerfile) = match build {
            Some(b) if b.as_str().is_some() => (b.as_str().map(str::to_owned), None),
            Some(b) => (
                b.get("context")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
                    .or(Some(".".into())),
                b.get("dockerfile")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned),
            ),
            None => (None, None),
        };
        let image = spec
            .get("image")
            .and_then(|i| i.as_str())
            .map(str::to_owned);
        let idx = if let Some(ctx) = ctx {
            let Some(dir) = resolve(cdir, &ctx) else {
                notes.push(format!(
                    "{path}: service {raw}: build context {ctx:?} leaves the project: not packaged"
                ));
                continue;
            };
            let df = match &dockerfile {
                Some(f) => resolve(&dir, f),
                None => Some(join(&dir, "Dockerfile")),
            };
            let existing = services
                .iter()
                .position(|s| s.dir == dir && !matches!(s.kind, ServiceKind::Image { .. }));
            let df_exists = df.as_deref().is_some_and(|f| index.has(parent(f), base(f)));
            match (existing, df_exists) {
                (Some(i), true)
                    if matches!(services[i].kind, ServiceKind::Dockerfile { .. })
                        || dockerfile.is_none() =>
                {
                    i
                }
                (_, true) => {
                    let df = df.expect("exists");
                    let mut s = Service::new(
                        name.clone(),
                        &dir,
                        ServiceKind::Dockerfile {
                            dockerfile: df.clone(),
                            context: source_of(&dir),
                            from: read_text(files, &df).ok().and_then(|t| dockerfile_from(&t)),
                        },
                    );
                    s.why(&df, format!("the Dockerfile of compose service {raw}"));
                    if let Some(i) = existing {
                        services.remove(i);
                    }
                    services.push(s);
                    services.len() - 1
                }
                (Some(i), false) => {
                    notes.push(format!("{path}: service {raw}: builds {} but there is no {}: the detected {} service is used instead", source_of(&dir), df.unwrap_or_default(), language_of(&services[i])));
                    i
                }
                (None, false) => {
                    notes.push(format!("{path}: service {raw}: nothing to build in {} (no Dockerfile, no detected language): not packaged", source_of(&dir)));
                    continue;
                }
            }
        } else if let Some(image) = image.clone() {
            let mut s = Service::new(
                name.clone(),
                cdir,
                ServiceKind::Image {
                    image: image.clone(),
                },
            );
            s.why(path, format!("compose service {raw}: image {image}, packaged through a generated Dockerfile (FROM {image})"));
            if !image.contains(':') && !image.contains('@') {
                notes.push(format!("{path}: service {raw}: image {image} has no tag: pin one (e.g. {image}:<version>) for reproducible builds"));
            }
            services.push(s);
            services.len() - 1
        } else {
            notes.push(format!(
                "{path}: service {raw}: neither `build` nor `image`: not packaged"
            ));
            continue;
        };
        let s = &mut services[idx];
        if s.name != name {
            s.why(
                path,
                format!("named {name} after compose service {raw} (was {})", s.name),
            );
            s.name = name.clone();
        } else {
            s.why(path, format!("compose service {raw}"));
        }
        renames.insert(raw.to_owned(), name.clone());
        for key in ["ports", "expose"] {
            for p in spec
                .get(key)
                .and_then(|p| p.as_sequence())
                .into_iter()
                .flatten()
            {
                match compose_port(p) {
                    Ok(p) => {
                        s.why(path, format!("port {p} (compose {key})"));
                        s.ports.insert(p);
                    }
                    Err(e) => notes.push(format!("{path}: service {raw}: {e}: not carried")),
                }
            }
        }
        let mut env: Vec<(String, Option<String>)> = Vec::new();
        match spec.get("environment") {
            Some(yaml_serde::Value::Mapping(m)) => {
                for (k, v) in m {
                    if let Some(k) = k.as_str() {
                        env.push((k.to_owned(), yaml_scalar(v)));
                    }
                }
            }
            Some(yaml_serde::Value::Sequence(items)) => {
                for i in items.iter().filter_map(|i| i.as_str()) {
                    match i.split_once('=') {
                        Some((k, v)) => env.push((k.to_owned(), Some(v.to_owned()))),
                        None => env.push((i.to_owned(), None)),
                    }
                }
            }
            _ => {}
        }
        for (k, v) in env {
            match v {
                Some(v) if ENV_NAME.is_match(&k) && !v.contains(['\n', '\r']) => {
                    if v.contains("${") || v.contains('$') {
                        notes.push(format!("{path}: service {raw}: {k}={v} uses compose interpolation: kept literally"));
                    }
                    s.why(path, format!("env {k} (compose environment)"));
                    s.env.insert(k, v);
                }
                Some(_) => notes.push(format!("{path}: service {raw}: environment {k}: not a valid variable or a multi-line value: not carried")),
                None => notes.push(format!("{path}: service {raw}: environment {k} has no value (taken from the shell by compose): not carried")),
            }
        }
        if spec.get("env_file").is_some() {
            notes.push(format!(
                "{path}: service {raw}: env_file is not read by init: add its variables by hand"
            ));
        }
        let deps: Vec<String> = match spec.get("depends_on") {
            Some(yaml_serde::Value::Sequence(items)) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(str::to_owned)
                .collect(),
            Some(yaml_serde::Value::Mapping(m)) => m
                .keys()
                .filter_map(|k| k.as_str())
                .map(str::to_owned)
                .collect(),
            _ => vec![],
        };
        for dep in deps {
            s.depends_on.insert(dep);
        }
        pending.push((raw.to_owned(), idx));
    }
    // depends_on names compose services: map them to container names once all are known.
    for (raw, idx) in pending {
        let deps = std::mem::take(&mut services[idx].depends_on);
        for d in deps {
            match renames.get(&d) {
                Some(n) => {
                    services[idx].why(path, format!("depends_on {n} (compose depends_on)"));
                    services[idx].depends_on.insert(n.clone());
                }
                None if services.iter().any(|s| s.name == d) => {
                    services[idx].depends_on.insert(d);
                }
                None => notes.push(format!(
                    "{path}: service {raw}: depends_on {d:?}, which is not packaged: edge dropped"
                )),
            }
        }
    }
}

fn language_of(s: &Service) -> &'static str {
    match &s.kind {
        ServiceKind::Generated(a) => a.language,
        ServiceKind::Dockerfile { .. } => "Dockerfile",
        ServiceKind::Image { .. } => "image",
    }
}

/// Two services with one name: the later ones get `-2`, `-3`… and a note.
fn unique_names(services: &mut [Service], notes: &mut Vec<String>) {
    services.sort_by(|a, b| (&a.name, &a.dir).cmp(&(&b.name, &b.dir)));
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for i in 0..services.len() {
        let name = services[i].name.clone();
        if seen.insert(name.clone()) {
            continue;
        }
        let mut n = 2;
        let renamed = loop {
            let candidate = format!("{name}-{n}");
            if !seen.contains(&candidate) && !services.iter().any(|s| s.name == candidate) {
                break candidate;
            }
            n += 1;
        };
        notes.push(format!(
            "two services named {name}: the one in {} is named {renamed}",
            source_of(&services[i].dir)
        ));
        services[i].name = renamed.clone();
        seen.insert(renamed);
    }
}

/// The kind of server a container is: by its image, and by its name.
type ServerKind = (Option<Backing>, Option<Backing>);

/// The kind of server a container is, from its image or its name.
fn backing_of(s: &Service) -> (Option<Backing>, Option<Backing>) {
    let image = match &s.kind {
        ServiceKind::Image { image } => Some(image.as_str()),
        ServiceKind::Dockerfile { from, .. } => from.as_deref(),
        ServiceKind::Generated(_) => None,
    };
    let repo = image.map(|i| {
        let no_tag = i.split(['@']).next().unwrap_or(i);
        let last = no_tag.rsplit('/').next().unwrap_or(no_tag);
        last.split(':').next().unwrap_or(last).to_owned()
    });
    let all = [
        Backing::Postgres,
        Backing::Redis,
        Backing::Mongo,
        Backing::Mysql,
    ];
    let by_image = repo.and_then(|r| {
        all.into_iter()
            .find(|b| b.images().iter().any(|i| r.starts_with(i)))
    });
    let by_name = matches!(s.kind, ServiceKind::Generated(_))
        .then_some(None)
        .unwrap_or_else(|| {
            all.into_iter()
                .find(|b| b.names().contains(&s.name.as_str()))
        });
    (by_image, by_name)
}

/// depends_on edges from client libraries to the project's one server of that kind.
fn client_edges(services: &mut [Service], notes: &mut Vec<String>) {
    let kinds: Vec<(String, ServerKind)> = services
        .iter()
        .map(|s| (s.name.clone(), backing_of(s)))
        .collect();
    for s in services.iter_mut() {
        for (backing, (file, lib)) in s.clients.clone() {
            let mut servers: Vec<&str> = kinds
                .iter()
                .filter(|(n, (img, _))| *img == Some(backing) && *n != s.name)
                .map(|(n, _)| n.as_str())
                .collect();
            if servers.is_empty() {
                servers = kinds
                    .iter()
                    .filter(|(n, (_, by_name))| *by_name == Some(backing) && *n != s.name)
                    .map(|(n, _)| n.as_str())
                    .collect();
            }
            match servers.as_slice() {
                [one] => {
                    if s.depends_on.insert(one.to_string()) {
                        s.why(&file, format!("{} client {lib}: depends_on {one}", backing.label()));
                    } else {
                        s.why(&file, format!("{} client {lib}: already depends_on {one}", backing.label()));
                    }
                }
                [] => notes.push(format!(
                    "{file}: {} uses the {} client {lib}, but the project has no {} container: add one (e.g. a compose service) or set depends_on by hand",
                    s.name,
                    backing.label(),
                    backing.label()
                )),
                many => notes.push(format!(
                    "{file}: {} uses the {} client {lib} and the project has several {} containers ({}): set depends_on by hand",
                    s.name,
                    backing.label(),
                    backing.label(),
                    many.join(", ")
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (Listing, BTreeMap<String, Vec<u8>>) {
        let listing = Listing::from_paths("proj", files.iter().map(|(p, _)| *p));
        let map = files
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect();
        (listing, map)
    }

    #[test]
    fn names_are_made_valid() {
        assert_eq!(sanitize_name("My App!", "x"), "my-app-");
        assert_eq!(sanitize_name("__", "x"), "x");
        assert_eq!(sanitize_name("-web", "x"), "web");
    }

    #[test]
    fn compose_ports_keep_the_container_side() {
        let p = |s: &str| compose_port(&yaml_serde::Value::String(s.into()));
        assert_eq!(p("8080:80").unwrap(), "80");
        assert_eq!(p("127.0.0.1:5353:53/udp").unwrap(), "53/udp");
        assert_eq!(p("3000").unwrap(), "3000");
        assert!(p("3000-3005").is_err());
    }

    #[test]
    fn node_majors() {
        assert_eq!(node_major("20.x").as_deref(), Some("20"));
        assert_eq!(node_major("^18.2.0").as_deref(), Some("18"));
        assert_eq!(node_major(">=16 <19"), Some("16".into()));
        assert_eq!(node_major("16 || 18"), None);
    }

    #[test]
    fn a_postgres_driver_depends_on_the_db_container() {
        let (l, f) = project(&[
            (
                "api/requirements.txt",
                "flask==3.0.0\npsycopg2-binary==2.9.9\n",
            ),
            ("api/app.py", "app.run(host=\"0.0.0.0\", port=8000)\n"),
            (
                "compose.yaml",
                "services:\n  db:\n    image: postgres:16\n  api:\n    build: ./api\n",
            ),
        ]);
        let d = detect(&l, &f);
        let api = d.services.iter().find(|s| s.name == "api").unwrap();
        assert_eq!(api.depends_on.iter().collect::<Vec<_>>(), ["db"]);
        assert!(api.ports.contains("8000"));
    }

    #[test]
    fn a_driver_without_a_database_is_a_note() {
        let (l, f) = project(&[(
            "package.json",
            r#"{"dependencies":{"pg":"8"},"main":"index.js"}"#,
        )]);
        let d = detect(&l, &f);
        assert!(d.services[0].depends_on.is_empty());
        assert!(
            d.notes.iter().any(|n| n.contains("no Postgres container")),
            "{:?}",
            d.notes
        );
    }

    fn app<'a>(d: &'a Detection, name: &str) -> &'a App {
        match &d.services.iter().find(|s| s.name == name).expect(name).kind {
            ServiceKind::Generated(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maven_builds_the_jar_named_in_the_pom() {
        let (l, f) = project(&[
            (
                "svc/pom.xml",
                "<project><parent><artifactId>spring-boot-starter-parent</artifactId><version>3.3.0</version></parent>\n<artifactId>orders</artifactId><version>1.2.0</version>\n<dependencies><dependency><artifactId>spring-boot-starter-web</artifactId></dependency><dependency><groupId>org.postgresql</groupId></dependency></dependencies></project>",
            ),
            ("svc/src/main/resources/application.properties", "server.port=9090\n"),
        ]);
        let d = detect(&l, &f);
        let a = app(&d, "svc");
        assert_eq!(a.build_commands, ["mvn -B -DskipTests package"]);
        assert_eq!(
            a.run_command.as_deref().unwrap(),
            ["java", "-jar", "target/orders-1.2.0.jar"]
        );
        assert_eq!(a.kind.as_deref(), Some("spring-boot"));
        assert!(d.services[0].ports.contains("9090"));
        assert!(d.notes.iter().any(|n| n.contains("no Postgres container")));
    }

    #[test]
    fn django_and_yarn_are_recognized() {
        let (l, f) = project(&[
            ("backend/manage.py", ""),
            ("backend/requirements.txt", "Django==5.0\n"),
            (
                "frontend/package.json",
                r#"{"scripts":{"build":"vite build","start":"vite preview"}}"#,
            ),
            ("frontend/yarn.lock", ""),
            ("frontend/index.html", "<html>"),
        ]);
        let d = detect(&l, &f);
        let b = app(&d, "backend");
        assert_eq!(b.kind.as_deref(), Some("django"));
        assert_eq!(
            b.run_command.as_deref().unwrap(),
            ["python", "manage.py", "runserver", "0.0.0.0:8000"]
        );
        let fe = app(&d, "frontend");
        assert_eq!(
            fe.build_commands,
            [
                "corepack enable",
                "yarn install --frozen-lockfile",
                "yarn run build"
            ]
        );
        assert_eq!(fe.run_command.as_deref().unwrap(), ["yarn", "start"]);
        assert_eq!(
            d.services.len(),
            2,
            "index.html inside a Node project is not a site"
        );
    }

    #[test]
    fn binary_junk_named_package_json_is_a_note() {
        let listing = Listing::from_paths("p", ["package.json"]);
        let mut f = BTreeMap::new();
        f.insert(
            "package.json".to_owned(),
            vec![0x7f, b'E', b'L', b'F', 0, 1, 2],
        );
        let d = detect(&listing, &f);
        assert!(d.services.is_empty());
        assert_eq!(
            d.notes,
            ["package.json: a binary file, not text: not used as a Node project"]
        );
    }
}
