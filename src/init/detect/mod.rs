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
//! One module per rule: `rust`, `go`, `java`, `python`, `node` and `site` each take the one
//! `Scan` (the listing's index, the file reader, the directories already claimed, the notes) and
//! return the services they found; `compose` then edits that list and `clients` adds the edges.
//! This module holds the types they share and the order they run in.
//!
//! A file that cannot be used (binary, not UTF-8, too large, malformed) is a note, never a panic.

mod clients;
mod compose;
mod compose_runtime;
mod go;
mod java;
mod node;
mod python;
mod rust;
mod site;

use std::collections::{BTreeMap, BTreeSet};

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

/// An application detected from source: what its generated Dockerfile needs to know.
///
/// The Dockerfile (see [`crate::init::dockerfile`]) copies `manifests` and runs `install` before
/// it copies the sources (the layer that caches), then runs `build_commands`; when `artifact` is
/// set, a runtime stage without the toolchain takes only that file from the build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The language key for base images: one of [`super::LANGUAGES`].
    pub language: &'static str,
    /// The framework or kind (`flask`, `express`…), when recognized.
    pub kind: Option<String>,
    /// The source directory, project-relative (`.` for the root).
    pub source: String,
    /// The files that declare the dependencies, relative to `source`, copied before the sources.
    pub manifests: Vec<String>,
    /// What installs the dependencies from `manifests` alone (shell commands, one `RUN` each).
    pub install: Vec<String>,
    /// What runs once the sources are copied (a compile, `npm run build`).
    pub build_commands: Vec<String>,
    /// The command the image runs (exec form), relative to the working directory `/app`.
    pub run_command: Option<Vec<String>>,
    /// The build stage's output the runtime stage keeps (a binary, a jar), when the toolchain
    /// is not needed at run time.
    pub artifact: Option<String>,
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
            manifests: Vec::new(),
            install: Vec::new(),
            build_commands: Vec::new(),
            run_command: None,
            artifact: None,
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
    /// What a compose file said about it (`None`: no compose service names it).
    pub compose: Option<Compose>,
}

/// What a compose service gives its container beyond ports, environment and edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compose {
    /// Published ports as a stage publishes them: `HOST:CONTAINER`, `IP:HOST:CONTAINER`.
    pub published: BTreeSet<String>,
    /// Named volumes: volume name → the path the container mounts it at.
    pub volumes: BTreeMap<String, String>,
    /// The health check, as format 1.1's `health`.
    pub health: Option<Health>,
    /// The `command:` override (exec form).
    pub command: Option<Vec<String>>,
    /// `stop_grace_period`, as format 1.1's `stop_grace`.
    pub stop_grace: Option<String>,
}

/// A container's `health`, as format 1.1 writes it (only the keys init fills).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<HealthCommand>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// A health command: run as it is (exec form), or by `/bin/sh -c` (text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum HealthCommand {
    Exec(Vec<String>),
    Shell(String),
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
            compose: None,
        }
    }
    fn why(&mut self, file: impl Into<String>, decision: impl Into<String>) {
        self.evidence.push(Evidence {
            file: file.into(),
            decision: decision.into(),
        });
    }
}

/// What detection found: the services, the notes, and which directories already hold a
/// `.dockerignore` (init never replaces one).
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub services: Vec<Service>,
    pub notes: Vec<String>,
    /// Project-relative directories (`` for the root) with a `.dockerignore`.
    pub dockerignores: BTreeSet<String>,
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

/// What every detector reads and writes, so each takes one value instead of five: the listing's
/// index, the file reader, the project's name, the directories already claimed by a service, and
/// the notes.
struct Scan<'a> {
    index: Index<'a>,
    files: &'a dyn Files,
    root_name: &'a str,
    /// Directories that hold a service: a later language there is only a note.
    taken: BTreeSet<String>,
    notes: Vec<String>,
}

impl<'a> Scan<'a> {
    fn new(listing: &'a Listing, files: &'a dyn Files) -> Scan<'a> {
        Scan {
            index: Index::new(listing),
            files,
            root_name: &listing.root_name,
            taken: BTreeSet::new(),
            notes: Vec::new(),
        }
    }
    fn read_text(&self, path: &str) -> Result<String, String> {
        read_text(self.files, path)
    }
    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
    /// Adds `found` to `services` and marks their directories taken.
    fn claim(&mut self, services: &mut Vec<Service>, found: Vec<Service>) {
        for s in found {
            self.taken.insert(s.dir.clone());
            services.push(s);
        }
    }
    /// A directory's service name: its own name, or the project's for the root.
    fn dir_name(&self, dir: &str) -> String {
        if dir.is_empty() {
            sanitize_name(self.root_name, "app")
        } else {
            sanitize_name(base(dir), "app")
        }
    }
    /// A language found in a directory that already holds a service.
    fn second_language(&mut self, dir: &str, lang: &str) {
        self.notes.push(format!(
            "{}: {lang} files too, but the directory already holds a service: not packaged separately",
            source_of(dir)
        ));
    }
}

/// A generated service being decided: the service and its application, kept apart until
/// [`Draft::finish`] puts the application in.
struct Draft {
    service: Service,
    app: App,
}

impl Draft {
    fn new(name: String, dir: &str, language: &'static str) -> Draft {
        Draft {
            service: Service::new(
                name,
                dir,
                ServiceKind::Generated(App::new(language, source_of(dir))),
            ),
            app: App::new(language, source_of(dir)),
        }
    }
    fn why(&mut self, file: impl Into<String>, decision: impl Into<String>) {
        self.service.why(file, decision);
    }
    fn finish(mut self) -> Service {
        self.service.kind = ServiceKind::Generated(self.app);
        self.service
    }
}

const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// One language's detector: the services it finds in the directories not yet taken.
type Detector = fn(&mut Scan) -> Vec<Service>;

/// Detects the services of a project.
pub fn detect(listing: &Listing, files: &dyn Files) -> Detection {
    let mut scan = Scan::new(listing, files);
    let mut services: Vec<Service> = Vec::new();

    // Dockerfiles first: a project's own Dockerfile wins over anything init would generate.
    let kept = dockerfiles(&scan);
    scan.claim(&mut services, kept);
    other_dockerfiles(listing, &mut scan);

    // Languages, one per directory, in this order.
    let detectors: [Detector; 6] = [
        rust::detect,
        go::detect,
        java::detect,
        python::detect,
        node::detect,
        site::detect,
    ];
    for detector in detectors {
        let found = detector(&mut scan);
        scan.claim(&mut services, found);
    }

    // Compose files rename, extend and add services.
    let mut composes: Vec<&String> = listing
        .files
        .iter()
        .filter(|f| COMPOSE_FILES.contains(&base(f)))
        .collect();
    composes.sort();
    for c in composes {
        compose::apply(c, &mut scan, &mut services);
    }

    let mut notes = scan.notes;
    unique_names(&mut services, &mut notes);
    clients::edges(&mut services, &mut notes);
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let dockerignores = listing
        .files
        .iter()
        .filter(|f| base(f) == ".dockerignore")
        .map(|f| parent(f).to_owned())
        .collect();
    Detection {
        services,
        notes,
        dockerignores,
    }
}

/// A Dockerfile container for each directory with a `Dockerfile`.
fn dockerfiles(scan: &Scan) -> Vec<Service> {
    let mut out = Vec::new();
    for dir in scan.index.dirs_with("Dockerfile") {
        let path = join(dir, "Dockerfile");
        let from = scan.read_text(&path).ok().and_then(|t| dockerfile_from(&t));
        let mut s = Service::new(
            scan.dir_name(dir),
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
            if scan.index.has(dir, marker) {
                s.why(
                    join(dir, marker),
                    "a language marker beside the Dockerfile: nothing generated, the Dockerfile builds it",
                );
            }
        }
        out.push(s);
    }
    out
}

/// A note naming the Dockerfiles under other names (`Dockerfile.dev`, `api.Dockerfile`).
fn other_dockerfiles(listing: &Listing, scan: &mut Scan) {
    let mut others: Vec<&str> = listing
        .files
        .iter()
        .map(String::as_str)
        .filter(|f| {
            let b = base(f);
            b != "Dockerfile"
                && (b.starts_with("Dockerfile.")
                    || b.ends_with(".Dockerfile")
                    || b.ends_with(".dockerfile"))
        })
        .collect();
    others.sort();
    if !others.is_empty() {
        scan.note(format!(
            "other Dockerfiles not used (only files named `Dockerfile` are kept; point a container at one by hand if it is the one to build): {}",
            others.join(", ")
        ));
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

/// The first port `re` captures in `text` that is a valid port number.
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

#[cfg(test)]
mod tests {
    use super::compose::compose_port;
    use super::node::node_major;
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
        assert_eq!(a.manifests, ["pom.xml"]);
        assert_eq!(a.install, ["mvn -B -q dependency:go-offline"]);
        assert_eq!(
            a.build_commands,
            [
                "mvn -B -DskipTests package",
                "mkdir -p /out && cp target/orders-1.2.0.jar /out/app.jar"
            ]
        );
        assert_eq!(a.artifact.as_deref(), Some("/out/app.jar"));
        assert_eq!(
            a.run_command.as_deref().unwrap(),
            ["java", "-jar", "app.jar"]
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
            ("shop/manage.py", ""),
            ("shop/shop/wsgi.py", ""),
            ("shop/requirements.txt", "Django==5.0\ngunicorn==22.0\n"),
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
        assert!(d.notes.iter().any(|n| n.contains("development server")));
        assert_eq!(
            app(&d, "shop").run_command.as_deref().unwrap(),
            [
                "gunicorn",
                "--bind",
                "0.0.0.0:8000",
                "--workers",
                "2",
                "shop.wsgi"
            ],
            "gunicorn, a dependency, on the project's wsgi module"
        );
        let fe = app(&d, "frontend");
        assert_eq!(fe.manifests, ["package.json", "yarn.lock"]);
        assert_eq!(
            fe.install,
            ["corepack enable", "yarn install --frozen-lockfile"]
        );
        assert_eq!(
            fe.build_commands,
            [
                "yarn run build",
                "yarn install --frozen-lockfile --production"
            ]
        );
        assert_eq!(fe.run_command.as_deref().unwrap(), ["yarn", "start"]);
        assert!(d.notes.iter().any(|n| n.contains("yarn as PID 1")));
        assert_eq!(
            d.services.len(),
            3,
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
