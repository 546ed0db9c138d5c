//! Detected services → a format 1.1 cookbook (the latest), generated Dockerfiles,
//! `.dockerignore`s and notes. Pure.
//!
//! Every container is a Dockerfile container: a language service gets the Dockerfile
//! [`super::dockerfile`] writes (why a Dockerfile and not a generated container: see there) in
//! its directory (`Dockerfile`, or `NAME.Dockerfile` when one directory holds several services)
//! with a `.dockerignore` beside it (unless the directory has one); a project's own Dockerfile is
//! kept; a compose `image:` service gets `docker/NAME/Dockerfile` (`FROM image`, its ports and
//! compose command).
//!
//! Compose services also give: `health`, persistent `volumes` and `mounts`; and, as soon as a
//! compose file names a service, a `local` Docker site (`{"docker": {"host": "env"}}`) serving
//! stage `dev`, whose `stage_config` carries the published ports and the environment — never
//! the image, which is the same on every stage. An environment value that is a secret (its name
//! says so: `*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*_KEY`…, or a URL with a password) becomes a
//! reference `{"secret": "CONTAINER/VAR"}` and a note saying how to provide it.
//!
//! Base image policy: one pinned default per language, a tag that names a version line (never
//! `latest`), so a rebuild next month starts from the same major.minor line:
//! `python:3.12-slim`, `node:22-slim`, `golang:1.23`, `rust:1.88-slim`,
//! `maven:3.9-eclipse-temurin-21` / `gradle:8-jdk21`, `busybox:1.36` (static sites). A version the
//! project itself pins (`.python-version`, `requires-python ==3.11`, `engines.node`, `go 1.22` in
//! go.mod, `rust-version`) picks that line instead; `--base LANG=IMAGE` overrides both.
//!
//! The document is serialized from typed structs (field order is the README's order) and then
//! parsed by [`crate::load::parse`]: a document that does not validate is an error, never output.

use std::collections::BTreeMap;

use serde::Serialize;

use super::detect::{App, Detection, Health, Service, ServiceKind};
use super::dockerfile::{self, Spec};
use super::{Evidence, InitError, Options};

/// Language keys of `--base`.
pub const LANGUAGES: &[&str] = &["go", "java", "node", "python", "rust", "static"];

/// The chosen base image per language (for tests and docs).
pub struct BaseImages;

impl BaseImages {
    /// The policy default for an application, and why.
    pub fn default_for(app: &App) -> (String, String) {
        let v = app.version.as_deref();
        match app.language {
            "python" => match v {
                Some(v) => (
                    format!("python:{v}-slim"),
                    format!("Python {v}, pinned by the project"),
                ),
                None => ("python:3.12-slim".into(), "default Python line".into()),
            },
            "node" => match v {
                Some(v) => (
                    format!("node:{v}-slim"),
                    format!("Node {v}, from engines.node"),
                ),
                None => ("node:22-slim".into(), "default Node line (an LTS)".into()),
            },
            "go" => match v {
                Some(v) => (format!("golang:{v}"), format!("Go {v}, from go.mod")),
                None => ("golang:1.23".into(), "default Go line".into()),
            },
            "rust" => match v {
                Some(v) => (
                    format!("rust:{v}-slim"),
                    format!("Rust {v}, from rust-version"),
                ),
                None => ("rust:1.88-slim".into(), "default Rust line".into()),
            },
            "java" => {
                if app.build_commands.iter().any(|c| c.contains("mvn")) {
                    (
                        "maven:3.9-eclipse-temurin-21".into(),
                        "Maven with Java 21".into(),
                    )
                } else {
                    ("gradle:8-jdk21".into(), "Gradle with Java 21".into())
                }
            }
            _ => (
                "busybox:1.36".into(),
                "busybox (httpd) for a static site".into(),
            ),
        }
    }
}

#[derive(Serialize)]
struct Doc {
    manifest_version: &'static str,
    project: ProjectOut,
    containers: BTreeMap<String, ContainerOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    packaging: Option<PackagingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<LifecycleOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    federation: Option<FederationOut>,
}

#[derive(Serialize)]
struct ProjectOut {
    name: String,
}

#[derive(Serialize)]
struct PackagingOut {
    registry: String,
    tagging: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PortOut {
    Number(u16),
    Text(String),
}

/// A Dockerfile container, as format 1.1 writes it.
#[derive(Serialize)]
struct ContainerOut {
    dockerfile: String,
    context: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<PortOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_grace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, VolumeOut>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    mounts: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct VolumeOut {
    persistent: bool,
}

#[derive(Serialize)]
struct LifecycleOut {
    stage_config: BTreeMap<&'static str, StageOut>,
}

#[derive(Serialize)]
struct StageOut {
    containers: BTreeMap<String, RuntimeOut>,
}

#[derive(Serialize)]
struct RuntimeOut {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, EnvOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EnvOut {
    Text(String),
    Secret { secret: String },
}

#[derive(Serialize)]
struct FederationOut {
    sites: BTreeMap<&'static str, SiteOut>,
}

#[derive(Serialize)]
struct SiteOut {
    target: serde_json::Value,
    stages: Vec<&'static str>,
    containers: Vec<String>,
}

/// The site and stage a compose project gets.
const SITE: &str = "local";
const STAGE: &str = "dev";

/// What `init` produced, already checked by the real parser.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    /// The cookbook, pretty-printed JSON ending in a newline.
    #[serde(skip)]
    pub cookbook: String,
    /// Generated files (Dockerfiles, `.dockerignore`s), by project-relative path.
    pub files: BTreeMap<String, String>,
    /// What `init` could not decide or skipped.
    pub notes: Vec<String>,
    /// Per container, the files behind each decision.
    pub explain: BTreeMap<String, Vec<Evidence>>,
    /// The plan's waves, as the parser computed them.
    pub waves: Vec<Vec<String>>,
}

/// Ports sorted by number, then protocol.
fn ports(s: &Service) -> Vec<PortOut> {
    let mut v: Vec<(u16, String)> = s
        .ports
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, ""));
            n.parse().ok().map(|n| (n, proto.to_owned()))
        })
        .collect();
    v.sort();
    v.into_iter()
        .map(|(n, proto)| {
            if proto.is_empty() {
                PortOut::Number(n)
            } else {
                PortOut::Text(format!("{n}/{proto}"))
            }
        })
        .collect()
}

/// The ports as `EXPOSE` writes them, in the same order.
fn expose(s: &Service) -> Vec<String> {
    ports(s)
        .into_iter()
        .map(|p| match p {
            PortOut::Number(n) => n.to_string(),
            PortOut::Text(t) => t,
        })
        .collect()
}

fn image_dockerfile(s: &Service, image: &str) -> String {
    let mut d = format!(
        "# Generated by `cookbook init` for container {}: the compose service's image, run as it is\n# (its environment is the stage's, never the image's).\nFROM {image}\n",
        s.name
    );
    for p in expose(s) {
        d.push_str(&format!("EXPOSE {p}\n"));
    }
    if let Some(cmd) = s.compose.as_ref().and_then(|c| c.command.as_ref()) {
        d.push_str(&format!(
            "CMD {}\n",
            serde_json::to_string(cmd).expect("strings serialize")
        ));
    }
    d
}

/// What [`generate`] gathers from the services, besides the containers.
#[derive(Default)]
struct Gathered {
    notes: Vec<String>,
    /// Generated files, by project-relative path.
    files: BTreeMap<String, String>,
    /// The `dev` stage's settings, by container.
    stage: BTreeMap<String, RuntimeOut>,
    /// The containers a compose file names: the `local` site's.
    site: Vec<String>,
}

/// Builds the cookbook for `project` from `detection`, checks it, and returns it with its notes.
pub fn generate(
    project: &str,
    detection: &Detection,
    options: &Options,
) -> Result<Generated, InitError> {
    let mut out = Gathered {
        notes: detection.notes.clone(),
        ..Gathered::default()
    };
    let mut containers = BTreeMap::new();
    let mut explain = BTreeMap::new();
    for s in &detection.services {
        let mut evidence = s.evidence.clone();
        let mut container = match &s.kind {
            ServiceKind::Generated(app) => {
                generated(s, app, detection, options, &mut out, &mut evidence)
            }
            ServiceKind::Dockerfile {
                dockerfile,
                context,
                ..
            } => kept_dockerfile(s, dockerfile, context, &mut out),
            ServiceKind::Image { image } => from_image(s, image, &mut out, &mut evidence),
        };
        runtime(s, &mut container, &mut out, &mut evidence);
        containers.insert(s.name.clone(), container);
        explain.insert(s.name.clone(), evidence);
    }
    let packaging = match &options.registry {
        Some(r) => Some(PackagingOut {
            registry: r.clone(),
            tagging: "content-hash",
        }),
        None => {
            out.notes.push(
                "no packaging.registry: set it (or run init with --registry HOST/NAMESPACE) before `cookbook apply`".to_owned(),
            );
            None
        }
    };
    let (lifecycle, federation) = site(&mut out);
    let doc = Doc {
        manifest_version: "1.1",
        project: ProjectOut {
            name: project.to_owned(),
        },
        containers,
        packaging,
        lifecycle,
        federation,
    };
    let mut cookbook = serde_json::to_string_pretty(&doc).expect("the document serializes");
    cookbook.push('\n');
    let waves = checked_waves(&cookbook)?;
    Ok(Generated {
        cookbook,
        files: out.files,
        notes: out.notes,
        explain,
        waves,
    })
}

/// The `local` site and its `dev` stage, when a compose file named a service.
fn site(out: &mut Gathered) -> (Option<LifecycleOut>, Option<FederationOut>) {
    if out.site.is_empty() {
        return (None, None);
    }
    let stage = std::mem::take(&mut out.stage);
    let lifecycle = (!stage.is_empty()).then(|| LifecycleOut {
        stage_config: BTreeMap::from([(STAGE, StageOut { containers: stage })]),
    });
    let site = SiteOut {
        target: serde_json::json!({"docker": {"host": "env"}}),
        stages: vec![STAGE],
        containers: std::mem::take(&mut out.site),
    };
    let federation = FederationOut {
        sites: BTreeMap::from([(SITE, site)]),
    };
    (lifecycle, Some(federation))
}

/// The base image of `app`'s build (or only) stage: `--base`, else the policy's.
fn base_of(app: &App, options: &Options, evidence: &mut Vec<Evidence>) -> String {
    let (image, why) = match options.bases.get(app.language) {
        Some(i) => (i.clone(), format!("--base {}={i}", app.language)),
        None => BaseImages::default_for(app),
    };
    let runtime = dockerfile::runtime_base(app.language)
        .map(|r| format!("; runs on {r}"))
        .unwrap_or_default();
    evidence.push(Evidence {
        file: "(base image policy)".into(),
        decision: format!("base image {image} ({why}){runtime}"),
    });
    image
}

/// A language service: its generated Dockerfile (and `.dockerignore`) in its directory.
fn generated(
    s: &Service,
    app: &App,
    detection: &Detection,
    options: &Options,
    out: &mut Gathered,
    evidence: &mut Vec<Evidence>,
) -> ContainerOut {
    let image = base_of(app, options, evidence);
    let shared = detection
        .services
        .iter()
        .filter(|o| o.dir == s.dir && matches!(o.kind, ServiceKind::Generated(_)))
        .count()
        > 1;
    let name = if shared {
        format!("{}.Dockerfile", s.name)
    } else {
        "Dockerfile".to_owned()
    };
    let path = join(&s.dir, &name);
    let compose_command = s.compose.as_ref().and_then(|c| c.command.as_deref());
    let text = dockerfile::render(&Spec {
        container: &s.name,
        app,
        base: &image,
        ports: &expose(s),
        command: compose_command.or(app.run_command.as_deref()),
    });
    out.files.insert(path.clone(), text);
    evidence.push(Evidence {
        file: path.clone(),
        decision: "generated: dependencies before sources, a non-root user, the production command"
            .into(),
    });
    let ignore = join(&s.dir, ".dockerignore");
    if detection.dockerignores.contains(&s.dir) {
        evidence.push(Evidence {
            file: ignore,
            decision: "the project's own .dockerignore, kept".into(),
        });
    } else {
        out.files
            .insert(ignore.clone(), dockerfile::dockerignore(app.language));
        evidence.push(Evidence {
            file: ignore,
            decision: format!("generated: {}'s ignores and .git", app.language),
        });
    }
    ContainerOut::new(path, app.source.clone(), s)
}

impl ContainerOut {
    fn new(dockerfile: String, context: String, s: &Service) -> ContainerOut {
        ContainerOut {
            dockerfile,
            context,
            ports: ports(s),
            depends_on: s.depends_on.iter().cloned().collect(),
            health: None,
            stop_grace: None,
            volumes: BTreeMap::new(),
            mounts: BTreeMap::new(),
        }
    }
}

/// A Dockerfile container, kept as it is; a compose command it cannot carry is a note.
fn kept_dockerfile(
    s: &Service,
    dockerfile: &str,
    context: &str,
    out: &mut Gathered,
) -> ContainerOut {
    if let Some(cmd) = s.compose.as_ref().and_then(|c| c.command.as_ref()) {
        out.notes.push(format!(
            "{}: the compose command {cmd:?} is not carried over: {dockerfile} is the project's own; put it in its CMD if the image should run it",
            s.name
        ));
    }
    ContainerOut::new(dockerfile.to_owned(), context.to_owned(), s)
}

/// A compose image, packaged through a generated `docker/<name>/Dockerfile`.
fn from_image(
    s: &Service,
    image: &str,
    out: &mut Gathered,
    evidence: &mut Vec<Evidence>,
) -> ContainerOut {
    let dir = format!("docker/{}", s.name);
    let path = format!("{dir}/Dockerfile");
    out.files.insert(path.clone(), image_dockerfile(s, image));
    evidence.push(Evidence {
        file: path.clone(),
        decision: format!(
            "generated: FROM {image}, with the compose service's ports and command (its env is the stage's)"
        ),
    });
    ContainerOut::new(path, dir, s)
}

/// What a compose service gives its container at run time: health, volumes, and (for the `dev`
/// stage) its published ports and environment, secrets as references.
fn runtime(
    s: &Service,
    container: &mut ContainerOut,
    out: &mut Gathered,
    evidence: &mut Vec<Evidence>,
) {
    let Some(c) = &s.compose else {
        return;
    };
    out.site.push(s.name.clone());
    container.health = c.health.clone();
    container.stop_grace = c.stop_grace.clone();
    for (volume, at) in &c.volumes {
        container
            .volumes
            .insert(volume.clone(), VolumeOut { persistent: true });
        container.mounts.insert(volume.clone(), at.clone());
    }
    let mut env = BTreeMap::new();
    for (k, v) in &s.env {
        match secret_reason(k, v) {
            Some(why) => {
                let reference = format!("{}/{k}", secret_name(&s.name));
                out.notes.push(secret_note(s, k, why, &reference));
                evidence.push(Evidence {
                    file: "(compose environment)".into(),
                    decision: format!("env {k}: a secret ({why}), the reference {reference}"),
                });
                env.insert(k.clone(), EnvOut::Secret { secret: reference });
            }
            None => {
                env.insert(k.clone(), EnvOut::Text(v.clone()));
            }
        }
    }
    let ports: Vec<String> = c.published.iter().cloned().collect();
    if !env.is_empty() || !ports.is_empty() {
        out.stage.insert(s.name.clone(), RuntimeOut { env, ports });
    }
}

/// Why an environment variable holds a secret, if it seems to: its name, or a password inside
/// a URL.
pub fn secret_reason(name: &str, value: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if value.is_empty() || upper.ends_with("_FILE") {
        return None;
    }
    let named = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || upper.ends_with("_KEY")
        || upper == "KEY";
    if named {
        return Some("its name says so");
    }
    let url_password = value.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            && rest
                .split(['/', '?', '#'])
                .next()
                .and_then(|authority| authority.rsplit_once('@'))
                .is_some_and(|(userinfo, _)| {
                    userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty())
                })
    });
    url_password.then_some("a password inside the URL")
}

/// A container name as a secret's name (`[a-z0-9]([-a-z0-9.]*[a-z0-9])?`).
fn secret_name(container: &str) -> String {
    let mapped: String = container
        .chars()
        .map(|c| if c == '_' { '-' } else { c })
        .collect();
    let trimmed = mapped.trim_end_matches(['-', '.']);
    if trimmed.is_empty() {
        "secret".to_owned()
    } else {
        trimmed.chars().take(253).collect()
    }
}

/// The note for a secret turned into a reference: where its value is read from.
fn secret_note(s: &Service, var: &str, why: &str, reference: &str) -> String {
    let (name, key) = reference.split_once('/').expect("NAME/KEY");
    format!(
        "{}: {var} holds a secret ({why}): not written into the cookbook or an image; stage {STAGE}'s env references it as {{\"secret\": \"{reference}\"}}. Provide the whole value at deploy time: the variable {} in the deploying environment, or the file DIR/{name}/{key} (mode 0600) with `\"secrets\": {{\"directory\": \"DIR\"}}` on site {SITE} (see the README's secrets)",
        s.name,
        crate::deploy::secrets::variable_of(name, key)
    )
}

/// `dir` joined with `name` (`dir` may be the root, ``).
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The generated cookbook's waves, once the parser has accepted it.
fn checked_waves(cookbook: &str) -> Result<Vec<Vec<String>>, InitError> {
    let parsed = crate::load::parse(cookbook.as_bytes())
        .map_err(|diagnostics| InitError::Invalid { diagnostics })?;
    Ok(parsed
        .plan
        .waves()
        .iter()
        .map(|w| w.iter().map(|n| n.as_str().to_owned()).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_by_name_or_by_a_password_in_a_url() {
        assert!(secret_reason("POSTGRES_PASSWORD", "example").is_some());
        assert!(secret_reason("API_KEY", "x").is_some());
        assert!(secret_reason("GITHUB_TOKEN", "x").is_some());
        assert!(secret_reason("DATABASE_URL", "postgres://u:p@db:5432/x").is_some());
        assert!(secret_reason("DATABASE_URL", "postgres://u@db:5432/x").is_none());
        assert!(secret_reason("REDIS_URL", "redis://cache:6379").is_none());
        assert!(secret_reason("POSTGRES_PASSWORD_FILE", "/run/secrets/pw").is_none());
        assert!(secret_reason("POSTGRES_DB", "shop").is_none());
        assert!(secret_reason("MONKEY", "x").is_none());
        assert_eq!(secret_name("my_db"), "my-db");
    }
}
