//! The validated cookbook: names resolved, paths normalized, defaults applied.
//!
//! Types here are `#[non_exhaustive]` with public fields: code outside the crate can read every
//! field but cannot build one, so a `Cookbook` only ever comes out of `Cookbook::parse` and always
//! satisfies its invariants (every reference names something that exists, paths stay inside the
//! cookbook's directory, the container graph is acyclic).

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{excerpt, pointer_push, Diagnostic};
use crate::graph::Plan;
use crate::model::name::Name;
use crate::model::relpath::{RelPath, RelPathError};
use crate::model::wire::{ContainerWire, CookbookWire, RunCommandWire};

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Cookbook {
    pub manifest_version: String,
    pub project: Project,
    pub applications: BTreeMap<Name, Application>,
    pub containers: BTreeMap<Name, Container>,
    pub packaging: Packaging,
    pub sites: BTreeMap<Name, Site>,
    /// Format 1.1's deployment settings (defaults for a 1.0 cookbook); runtime only, never hashed.
    pub lifecycle: crate::model::lifecycle::Lifecycle,
    /// The dependency plan of every container, sealed when the cookbook was checked.
    pub plan: Plan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    pub name: Name,
    pub repository: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Application {
    pub name: Name,
    pub language: Option<String>,
    pub kind: Option<String>,
    /// The application's source directory, relative to the cookbook's directory.
    pub source: RelPath,
    pub entrypoint: Option<String>,
    /// Package dependencies, kept as metadata (and hashed: they describe the build).
    pub dependencies: Vec<String>,
    pub build_commands: Vec<String>,
    pub run_command: Option<RunCommand>,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// `CMD cmd` — run by `/bin/sh -c`.
    Shell(String),
    /// `CMD ["exe", "arg"]`.
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Container {
    pub name: Name,
    pub kind: ContainerKind,
    /// Runtime order (bottom-up deploy): these must be up before this container. Sorted.
    pub depends_on: Vec<Name>,
    pub ci_name: Option<String>,
    pub ci_capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerKind {
    Generated(Generated),
    Dockerfile(DockerfileBuild),
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Generated {
    pub base: BaseImage,
    pub applications: Vec<Name>,
    pub ports: Vec<Port>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
    pub workdir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// An image reference resolved by the engine (`debian:12`, `registry/x@sha256:…`).
    Image(String),
    /// `container:<name>`: built FROM that container of this cookbook (a build-time edge).
    Container(Name),
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DockerfileBuild {
    pub dockerfile: RelPath,
    pub context: RelPath,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        write!(f, "{}/{proto}", self.number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    ContentHash,
    GitSha,
    Semver,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Packaging {
    pub registry: Option<String>,
    pub tagging: Tagging,
    pub version: Option<String>,
    pub latest: bool,
    pub build_order: Vec<Name>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Site {
    pub name: Name,
    pub containers: Vec<Name>,
}

impl Container {
    /// The build-time parent: the container this one is built FROM, if any.
    pub fn build_parent(&self) -> Option<&Name> {
        match &self.kind {
            ContainerKind::Generated(Generated {
                base: BaseImage::Container(parent),
                ..
            }) => Some(parent),
            _ => None,
        }
    }
}

/// Collects diagnostics during conversion; a dangling reference is reported and dropped so that
/// later checks (the plan's cycle search) still run over what is left.
struct Converter<'a> {
    wire: &'a CookbookWire,
    diagnostics: Vec<Diagnostic>,
}

/// A "did you mean" for a close name, else the list of known names when it is short enough to
/// read, so that the help always says what would have been accepted.
pub(crate) fn suggest<'n>(
    unknown: &str,
    kind: &str,
    known: impl Iterator<Item = &'n str> + Clone,
) -> Option<String> {
    const LIST_AT_MOST: usize = 12;
    let close = known
        .clone()
        // Cheap lower bound first: the distance is at least the difference in length.
        .filter(|k| unknown.len().abs_diff(k.len()) <= 2)
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("did you mean `{k}`?"));
    close.or_else(|| {
        let names: Vec<&str> = known.take(LIST_AT_MOST + 1).collect();
        match names.len() {
            0 => None,
            n if n > LIST_AT_MOST => None,
            _ => Some(format!("{kind} in this cookbook: {}", names.join(", "))),
        }
    })
}

impl Converter<'_> {
    fn name(&mut self, pointer: &str, s: &str) -> Option<Name> {
        let name = Name::parse(s);
        if name.is_none() {
            self.diagnostics.push(Diagnostic::new(
                "schema/name",
                pointer,
                format!("invalid name {}", excerpt(s)),
            ));
        }
        name
    }

    // Pointers are passed as closures: they are built only for a diagnostic, so that a valid
    // 10,000-container cookbook does not allocate one per reference.
    fn path(&mut self, pointer: impl FnOnce() -> String, s: &str) -> RelPath {
        RelPath::parse(s).unwrap_or_else(|why| {
            let help = match why {
                RelPathError::Backslash => match RelPath::parse(&s.replace('\\', "/")) {
                    Ok(fixed) => format!("separate path components with `/`: {}", excerpt(fixed.as_str())),
                    Err(_) => "separate path components with `/`; paths stay inside the cookbook's directory".to_owned(),
                },
                RelPathError::Absolute => "write the path relative to the directory of the cookbook file".to_owned(),
                RelPathError::Escapes => "a cookbook may only use files inside its own directory: move the files there, or the cookbook up".to_owned(),
                RelPathError::Empty => "use \".\" for the cookbook's own directory".to_owned(),
            };
            self.diagnostics.push(
                Diagnostic::new("model/path", pointer(), format!("path {} {why}", excerpt(s)))
                    .with_help(help),
            );
            RelPath::default()
        })
    }

    fn container_ref(
        &mut self,
        pointer: impl FnOnce() -> String,
        s: &str,
        what: impl FnOnce() -> String,
    ) -> Option<Name> {
        if self.wire.containers.contains_key(s) {
            return Name::parse(s);
        }
        let what = what();
        let mut d = Diagnostic::new(
            "model/unknown-container",
            pointer(),
            format!("{what} names unknown container {}", excerpt(s)),
        );
        if let Some(help) = suggest(
            s,
            "containers",
            self.wire.containers.keys().map(String::as_str),
        ) {
            d = d.with_help(if what == "base_image" {
                format!("{help} (`container:NAME` means a container of this cookbook; for an image from a registry, drop the `container:` prefix)")
            } else {
                help
            });
        }
        self.diagnostics.push(d);
        None
    }

    fn port(&mut self, pointer: impl FnOnce() -> String, v: &serde_json::Value) -> Option<Port> {
        let (number, protocol) = match v {
            serde_json::Value::Number(n) => (n.as_u64().unwrap_or(0), Protocol::Tcp),
            serde_json::Value::String(s) => {
                let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
                let protocol = match proto {
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => Protocol::Tcp,
                };
                (num.parse().unwrap_or(0), protocol)
            }
            _ => (0, Protocol::Tcp),
        };
        match u16::try_from(number) {
            Ok(number) if number > 0 => Some(Port { number, protocol }),
            _ => {
                self.diagnostics.push(Diagnostic::new(
                    "schema/port",
                    pointer(),
                    format!("port {v} is outside 1-65535"),
                ));
                None
            }
        }
    }

    fn container(&mut self, key: &str, c: &ContainerWire) -> Option<Container> {
        let at = pointer_push("/containers", key);
        let name = self.name(&at, key)?;
        let mut depends_on: Vec<Name> = Vec::new();
        for (i, dep) in c.depends_on.iter().enumerate() {
            let p = || pointer_push(&pointer_push(&at, "depends_on"), &i.to_string());
            depends_on.extend(self.container_ref(p, dep, || "depends_on".to_owned()));
        }
        depends_on.sort();
        depends_on.dedup();

        let kind = if let Some(dockerfile) = &c.dockerfile {
            ContainerKind::Dockerfile(DockerfileBuild {
                dockerfile: self.path(|| pointer_push(&at, "dockerfile"), dockerfile),
                context: self.path(
                    || pointer_push(&at, "context"),
                    c.context.as_deref().unwrap_or("."),
                ),
                build_args: c.build_args.clone(),
                target: c.target.clone(),
            })
        } else {
            let base_text = c.base_image.as_deref().unwrap_or_default();
            let base_at = || pointer_push(&at, "base_image");
            let base = match base_text.strip_prefix("container:") {
                Some(parent) => {
                    BaseImage::Container(
                        self.container_ref(base_at, parent, || "base_image".to_owned())?,
                    )
                }
                None if base_text.chars().any(char::is_whitespace) => {
                    self.diagnostics.push(Diagnostic::new(
                        "model/image",
                        base_at(),
                        format!(
                            "image reference {} contains white space",
                            excerpt(base_text)
                        ),
                    ));
                    return None;
                }
                None => BaseImage::Image(base_text.to_owned()),
            };
            let mut applications = Vec::new();
            for (i, app) in c.applications.iter().enumerate() {
                if self.wire.applications.contains_key(app) {
                    applications.extend(Name::parse(app));
                } else {
                    let mut d = Diagnostic::new(
                        "model/unknown-application",
                        pointer_push(&pointer_push(&at, "applications"), &i.to_string()),
                        format!("unknown application {}", excerpt(app)),
                    );
                    if let Some(help) = suggest(
                        app,
                        "applications",
                        self.wire.applications.keys().map(String::as_str),
                    ) {
                        d = d.with_help(help);
                    }
                    self.diagnostics.push(d);
                }
            }
            let commands: Vec<&Name> = applications
                .iter()
                .filter(|a| self.wire.applications[a.as_str()].run_command.is_some())
                .collect();
            if commands.len() > 1 {
                let names: Vec<String> = commands.iter().map(|n| format!("`{n}`")).collect();
                self.diagnostics.push(
                    Diagnostic::new(
                        "model/run-command",
                        pointer_push(&at, "applications"),
                        format!("applications {} all have a run_command; a container runs one", names.join(" and ")),
                    )
                    .with_help("keep run_command on the application this container runs, or split the container"),
                );
            }
            let mut ports = Vec::new();
            for (i, p) in c.ports.iter().enumerate() {
                ports.extend(self.port(
                    || pointer_push(&pointer_push(&at, "ports"), &i.to_string()),
                    p,
                ));
            }
            ContainerKind::Generated(Generated {
                base,
                applications,
                ports,
                env: c.env.clone(),
                labels: c.labels.clone(),
                build_args: c.build_args.clone(),
                workdir: c.workdir.clone(),
            })
        };
        Some(Container {
            name,
            kind,
            depends_on,
            ci_name: c.ci_name.clone(),
            ci_capabilities: c.ci_capabilities.clone(),
        })
    }
}

/// Converts wire types into the model. Returns the model built from whatever was valid, and every
/// problem found; the caller refuses the cookbook if there is any.
pub(crate) fn convert(wire: &CookbookWire) -> (Cookbook, Vec<Diagnostic>) {
    let mut cv = Converter {
        wire,
        diagnostics: Vec::new(),
    };
    let project = Project {
        name: cv
            .name("/project/name", &wire.project.name)
            .unwrap_or_else(|| Name::parse("invalid").expect("valid")),
        repository: wire.project.repository.clone(),
    };

    let mut applications = BTreeMap::new();
    for (key, a) in &wire.applications {
        let at = pointer_push("/applications", key);
        let Some(name) = cv.name(&at, key) else {
            continue;
        };
        let source = cv.path(
            || pointer_push(&at, "source"),
            a.source.as_deref().unwrap_or("."),
        );
        applications.insert(
            name.clone(),
            Application {
                name,
                language: a.language.clone(),
                kind: a.kind.clone(),
                source,
                entrypoint: a.entrypoint.clone(),
                dependencies: a.dependencies.clone(),
                build_commands: a.build_commands.clone(),
                run_command: a.run_command.as_ref().map(|r| match r {
                    RunCommandWire::Shell(s) => RunCommand::Shell(s.clone()),
                    RunCommandWire::Exec(v) => RunCommand::Exec(v.clone()),
                }),
                env: a.env.clone(),
            },
        );
    }

    let mut containers = BTreeMap::new();
    for (key, c) in &wire.containers {
        if let Some(container) = cv.container(key, c) {
            containers.insert(container.name.clone(), container);
        }
    }

    let packaging = &wire.packaging;
    let mut build_order = Vec::new();
    for (i, n) in packaging.build_order.iter().flatten().enumerate() {
        build_order.extend(cv.container_ref(
            || format!("/packaging/build_order/{i}"),
            n,
            || "build_order".to_owned(),
        ));
    }
    let packaging = Packaging {
        registry: packaging.registry.clone(),
        tagging: match packaging.tagging.as_deref() {
            Some("git-sha") => Tagging::GitSha,
            Some("semver") => Tagging::Semver,
            _ => Tagging::ContentHash,
        },
        version: packaging.version.clone(),
        latest: packaging.latest,
        build_order,
    };

    let mut sites = BTreeMap::new();
    for (key, s) in wire.federation.iter().flat_map(|f| &f.sites) {
        let at = pointer_push("/federation/sites", key);
        let Some(name) = cv.name(&at, key) else {
            continue;
        };
        let mut names = BTreeSet::new();
        for (i, c) in s.containers.iter().enumerate() {
            let p = || pointer_push(&pointer_push(&at, "containers"), &i.to_string());
            names.extend(cv.container_ref(p, c, || format!("site `{name}`")));
        }
        sites.insert(
            name.clone(),
            Site {
                name,
                containers: names.into_iter().collect(),
            },
        );
    }

    let lifecycle =
        crate::model::lifecycle::convert(wire, &containers, &sites, &mut cv.diagnostics);
    let (plan, plan_diagnostics) = Plan::build(&containers, &packaging.build_order);
    cv.diagnostics.extend(plan_diagnostics);
    let cookbook = Cookbook {
        manifest_version: wire.manifest_version.clone(),
        project,
        applications,
        containers,
        packaging,
        sites,
        lifecycle,
        plan,
    };
    (cookbook, cv.diagnostics)
}
