//! Detected services → a format 1.1 cookbook (the latest), generated Dockerfiles and notes. Pure.
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

use super::detect::{App, Detection, Service, ServiceKind};
use super::{Evidence, InitError, Options};
use crate::context::dockerfile::DEFAULT_WORKDIR;

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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    applications: BTreeMap<String, AppOut>,
    containers: BTreeMap<String, ContainerOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    packaging: Option<PackagingOut>,
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
struct AppOut {
    language: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_commands: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_command: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PortOut {
    Number(u16),
    Text(String),
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContainerOut {
    Generated {
        base_image: String,
        applications: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ports: Vec<PortOut>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        depends_on: Vec<String>,
    },
    Dockerfile {
        dockerfile: String,
        context: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        depends_on: Vec<String>,
    },
}

/// What `init` produced, already checked by the real parser.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    /// The cookbook, pretty-printed JSON ending in a newline.
    #[serde(skip)]
    pub cookbook: String,
    /// Generated files (Dockerfiles), by project-relative path.
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

fn image_dockerfile(s: &Service, image: &str) -> String {
    let mut d = format!(
        "# Generated by `cookbook init` for container {}: the compose service runs this image as it is.\nFROM {image}\n",
        s.name
    );
    for (k, v) in &s.env {
        let quoted: String = v
            .chars()
            .flat_map(|c| {
                let esc = matches!(c, '\\' | '"' | '$');
                esc.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        d.push_str(&format!("ENV {k}=\"{quoted}\"\n"));
    }
    for p in ports(s) {
        match p {
            PortOut::Number(n) => d.push_str(&format!("EXPOSE {n}\n")),
            PortOut::Text(t) => d.push_str(&format!("EXPOSE {t}\n")),
        }
    }
    d
}

/// What [`generate`] gathers from the services, besides the containers.
#[derive(Default)]
struct Gathered {
    notes: Vec<String>,
    applications: BTreeMap<String, AppOut>,
    /// Generated Dockerfiles, by project-relative path.
    files: BTreeMap<String, String>,
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
        let container = match &s.kind {
            ServiceKind::Generated(app) => generated(s, app, options, &mut out, &mut evidence),
            ServiceKind::Dockerfile {
                dockerfile,
                context,
                ..
            } => kept_dockerfile(s, dockerfile, context, &mut out),
            ServiceKind::Image { image } => from_image(s, image, &mut out, &mut evidence),
        };
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
    let doc = Doc {
        manifest_version: "1.1",
        project: ProjectOut {
            name: project.to_owned(),
        },
        applications: out.applications,
        containers,
        packaging,
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

/// A generated container and its application, on the base image the policy (or `--base`) picks.
fn generated(
    s: &Service,
    app: &App,
    options: &Options,
    out: &mut Gathered,
    evidence: &mut Vec<Evidence>,
) -> ContainerOut {
    let (image, why) = match options.bases.get(app.language) {
        Some(i) => (i.clone(), format!("--base {}={i}", app.language)),
        None => BaseImages::default_for(app),
    };
    evidence.push(Evidence {
        file: "(base image policy)".into(),
        decision: format!("base image {image} ({why})"),
    });
    let app_dir = format!("{DEFAULT_WORKDIR}/{}", s.name);
    out.applications.insert(
        s.name.clone(),
        AppOut {
            language: app.language,
            kind: app.kind.clone(),
            source: app.source.clone(),
            dependencies: app.dependencies.clone(),
            build_commands: app.build_commands.clone(),
            run_command: app
                .run_command
                .as_ref()
                .map(|r| r.iter().map(|a| a.replace("{app_dir}", &app_dir)).collect()),
        },
    );
    ContainerOut::Generated {
        base_image: image,
        applications: vec![s.name.clone()],
        ports: ports(s),
        env: s.env.clone(),
        depends_on: s.depends_on.iter().cloned().collect(),
    }
}

/// A Dockerfile container, kept as it is; compose ports and env it cannot carry are a note.
fn kept_dockerfile(
    s: &Service,
    dockerfile: &str,
    context: &str,
    out: &mut Gathered,
) -> ContainerOut {
    let mut given = Vec::new();
    if !s.ports.is_empty() {
        let p: Vec<&str> = s.ports.iter().map(String::as_str).collect();
        given.push(format!("ports {}", p.join(", ")));
    }
    if !s.env.is_empty() {
        let e: Vec<&str> = s.env.keys().map(String::as_str).collect();
        given.push(format!("environment {}", e.join(", ")));
    }
    if !given.is_empty() {
        out.notes.push(format!(
            "{}: {} from compose: a Dockerfile container has no ports or env of its own in the cookbook; put them in {dockerfile} (EXPOSE, ENV) if the image needs them, or per stage under lifecycle.stage_config",
            s.name,
            given.join(" and ")
        ));
    }
    ContainerOut::Dockerfile {
        dockerfile: dockerfile.to_owned(),
        context: context.to_owned(),
        depends_on: s.depends_on.iter().cloned().collect(),
    }
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
        decision: format!("generated: FROM {image}, with the compose service's env and ports"),
    });
    if !s.env.is_empty() {
        out.notes.push(format!(
            "{path}: the compose environment of {} ({}) is baked into the image: move secrets out before publishing it",
            s.name,
            s.env.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    ContainerOut::Dockerfile {
        dockerfile: path,
        context: dir,
        depends_on: s.depends_on.iter().cloned().collect(),
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
