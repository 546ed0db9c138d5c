//! The validated cookbook: names resolved, paths normalized, defaults applied.
//!
//! Types here are `#[non_exhaustive]` with public fields: code outside the crate can read every
//! field but cannot build one, so a `Cookbook` only ever comes out of `crate::load::parse` and
//! always satisfies its invariants (every reference names something that exists, paths cannot
//! name anything outside the cookbook's directory as text, the container graph is acyclic — the
//! plan built beside it checked that — and every value written into a generated Dockerfile can
//! be written there).
//!
//! What the text alone cannot tell — whether a path exists, and where it leads once symlinks
//! are followed — is checked by the load stage (`crate::load`) over [`Cookbook::paths`]: the
//! model stays pure, and lists the paths for the edge to resolve.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{excerpt, pointer_push, Diagnostic};
use crate::model::name::Name;
use crate::model::relpath::{RelPath, RelPathError};
use crate::model::wire::{ContainerWire, CookbookWire, DependenciesWire, RunCommandWire};
use crate::oci::{reference_reason, WrittenReference};

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    pub name: Name,
    pub repository: Option<String>,
    /// The cookbook names no project: `name` is its directory's (see [`Name::from_directory`]),
    /// and a warning says so.
    pub named_after_directory: bool,
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
    /// Package specs, or the application's dependency file (hashed either way: in the recipe,
    /// and a file as one of the source's files).
    pub dependencies: Dependencies,
    pub build_commands: Vec<String>,
    pub run_command: Option<RunCommand>,
    pub env: BTreeMap<String, String>,
}

/// An application's `dependencies`: package specs, or a file naming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependencies {
    /// `["fastapi==0.110", "uvicorn"]`: metadata, part of the build's identity.
    Packages(Vec<String>),
    /// `"requirements.txt"`: a file inside the application's source, relative to it. It is sent
    /// and hashed as one of the source's files; the load stage checks that it exists there.
    File(RelPath),
}

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies::Packages(Vec::new())
    }
}

/// As written in the cookbook: an array of specs, or the file's path as a string. The recipe
/// hashes this form, so a cookbook that lists packages hashes exactly as before files were
/// allowed.
impl serde::Serialize for Dependencies {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dependencies::Packages(specs) => specs.serialize(s),
            Dependencies::File(path) => path.serialize(s),
        }
    }
}

/// Whether a path the cookbook names must be a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Directory,
    File,
}

/// A path the cookbook names, which must exist on disk and, with every symlink followed, stay
/// inside the cookbook's directory. Listed by [`Cookbook::paths`] for the load stage to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathUse {
    /// The JSON pointer of the field that names it (its nearest ancestor locates a default).
    pub pointer: String,
    /// What it is, in the cookbook's words: `source`, `context`, `dockerfile`, `dependency file`.
    pub field: &'static str,
    /// Relative to the cookbook's directory.
    pub path: RelPath,
    pub kind: PathKind,
    /// For a file that must be sent in a tree's context (a dependency file): that tree, whose
    /// `.dockerignore` must not exclude it.
    pub sent_from: Option<RelPath>,
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
    /// An image reference resolved by the engine (`debian:12`, `registry/x@sha256:…`), kept as
    /// written and known to follow Docker's reference grammar.
    Image(WrittenReference),
    /// `scratch`: no image at all (Docker's reserved name for an empty base). Never pinned,
    /// never looked up in a registry; the image is only what the container adds.
    Scratch,
    /// `container:<name>`: built FROM that container of this cookbook (a build-time edge).
    Container(Name),
}

/// Docker's reserved name for the empty base image (`FROM scratch`).
pub const SCRATCH: &str = "scratch";

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
    /// A pool of engines to spread builds over (format 1.1); empty: the one engine of the
    /// environment.
    pub builders: Vec<Builder>,
}

/// A Docker engine as a cookbook names one (a site's `docker` target, a builder): a `host` or
/// a docker `context` by name (exactly one; the schema says so), and for a `tcp://` host the
/// TLS files. Text as written: the engine edge parses it (`engine::endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineSpec {
    /// `unix:///…`, `tcp://…`, `ssh://…`, or `env`: the deploying process's engine.
    pub host: Option<String>,
    pub context: Option<String>,
    pub tls: Option<TlsSpec>,
}

/// TLS files of a TCP engine, relative to the cookbook's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Verify the engine's certificate against `ca` (default true).
    pub verify: bool,
}

/// One engine of `packaging.builders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// What reports call it: as written, else its context's name or host.
    pub name: String,
    pub engine: EngineSpec,
}

impl EngineSpec {
    /// The engine spec a wire target or builder writes.
    pub(crate) fn from_wire(
        host: Option<&String>,
        context: Option<&String>,
        tls: Option<&super::wire::TlsWire>,
    ) -> EngineSpec {
        EngineSpec {
            host: host.cloned(),
            context: context.cloned(),
            tls: tls.map(|t| TlsSpec {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
                verify: t.verify,
            }),
        }
    }

    /// How messages name it: the context's name or the host.
    pub fn describe(&self) -> String {
        match (&self.context, &self.host) {
            (Some(context), _) => context.clone(),
            (None, Some(host)) => host.clone(),
            (None, None) => "env".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Site {
    pub name: Name,
    pub containers: Vec<Name>,
}

/// The label keys `apply` stamps on every image (tests/it/cli_ux.rs checks each draws this
/// warning). A container's own label of one of these keys has no effect.
const STAMPED_LABELS: [&str; 3] = crate::labels::image::ALL;

/// Where generated images live in a local engine, independent of any registry
/// (`cookbook.local/<project>/<container>`).
pub const LOCAL_REPOSITORY_PREFIX: &str = "cookbook.local";

/// Whether `reference` names an image under [`LOCAL_REPOSITORY_PREFIX`]: one that lives in a
/// local engine only (`apply --no-push`, or a `container:` parent's build name), never in a
/// registry.
pub fn is_local_image(reference: &str) -> bool {
    reference
        .strip_prefix(LOCAL_REPOSITORY_PREFIX)
        .is_some_and(|rest| rest.starts_with('/'))
}

impl Cookbook {
    /// The repository a container's image is published to (`<packaging.registry>/<container>`),
    /// or its local name without a registry: what `apply` names, and the only repository a lock
    /// may point a container at.
    pub fn repository(&self, name: &Name) -> String {
        match &self.packaging.registry {
            Some(r) => format!("{}/{name}", r.trim_end_matches('/')),
            None => format!("{LOCAL_REPOSITORY_PREFIX}/{}/{name}", self.project.name),
        }
    }

    /// Whether `image` is in the repository this cookbook gives `container` (Docker's
    /// normalization applied to both: `busybox` is `docker.io/library/busybox`). A lock entry
    /// outside it was not written by `apply`: nothing of it is pulled, checked or run.
    pub fn owns(&self, container: &Name, image: &crate::oci::ImageReference) -> bool {
        crate::oci::Repository::parse(&self.repository(container))
            .is_ok_and(|own| own == *image.repository())
    }

    /// Every path the cookbook names, in file order of containers and applications: what the
    /// load stage resolves on disk. Pure.
    pub fn paths(&self) -> Vec<PathUse> {
        let mut uses = Vec::new();
        for (name, app) in &self.applications {
            let at = pointer_push("/applications", name.as_str());
            uses.push(PathUse {
                pointer: pointer_push(&at, "source"),
                field: "source",
                path: app.source.clone(),
                kind: PathKind::Directory,
                sent_from: None,
            });
            if let Dependencies::File(file) = &app.dependencies {
                uses.push(PathUse {
                    pointer: pointer_push(&at, "dependencies"),
                    field: "dependency file",
                    path: app.source.join(file),
                    kind: PathKind::File,
                    sent_from: Some(app.source.clone()),
                });
            }
        }
        for (name, c) in &self.containers {
            if let ContainerKind::Dockerfile(d) = &c.kind {
                let at = pointer_push("/containers", name.as_str());
                uses.push(PathUse {
                    pointer: pointer_push(&at, "context"),
                    field: "context",
                    path: d.context.clone(),
                    kind: PathKind::Directory,
                    sent_from: None,
                });
                uses.push(PathUse {
                    pointer: pointer_push(&at, "dockerfile"),
                    field: "dockerfile",
                    path: d.dockerfile.clone(),
                    kind: PathKind::File,
                    sent_from: None,
                });
            }
        }
        for (stage, approvers) in &self.lifecycle.approvers {
            let at = pointer_push("/lifecycle/approvers", stage.as_str());
            for (i, a) in approvers.iter().enumerate() {
                uses.push(PathUse {
                    pointer: pointer_push(&pointer_push(&at, &i.to_string()), "key"),
                    field: "approver key",
                    path: a.key.clone(),
                    kind: PathKind::File,
                    sent_from: None,
                });
            }
        }
        uses
    }

    /// What is worth saying about a valid cookbook (unlocated, like every model diagnostic).
    pub fn warnings(&self) -> Vec<Diagnostic> {
        let mut warnings = Vec::new();
        if self.project.named_after_directory {
            warnings.push(self.project_from_directory());
        }
        if self.containers.is_empty() {
            warnings.push(
                Diagnostic::new(
                    "model/nothing-to-build",
                    "/containers",
                    "the cookbook has no containers: there is nothing to build",
                )
                .with_help("add a container under `containers` to build an image")
                .warning(),
            );
        }
        warnings.extend(self.overridden_labels());
        warnings.extend(self.unused_applications());
        warnings
    }

    fn project_from_directory(&self) -> Diagnostic {
        Diagnostic::new(
            "model/project-from-directory",
            "",
            format!(
                "`project.name` is not set: the project is named `{}` after the cookbook's directory",
                self.project.name
            ),
        )
        .with_help(format!(
            "image names, labels and input hashes include the project's name, so they change with the directory a checkout lies in: add `\"project\": {{\"name\": \"{}\"}}` to keep them",
            self.project.name
        ))
        .warning()
    }

    /// `apply` labels every image with these, overriding a LABEL of the same key from the
    /// generated Dockerfile: a container's own is lost.
    fn overridden_labels(&self) -> Vec<Diagnostic> {
        let mut warnings = Vec::new();
        for (name, c) in &self.containers {
            let ContainerKind::Generated(g) = &c.kind else {
                continue;
            };
            for key in g
                .labels
                .keys()
                .filter(|k| STAMPED_LABELS.contains(&k.as_str()))
            {
                warnings.push(
                    Diagnostic::new(
                        "model/label-overridden",
                        pointer_push(
                            &pointer_push(&pointer_push("/containers", name.as_str()), "labels"),
                            key,
                        ),
                        format!(
                            "label `{key}` has no effect: cookbook sets it on every image it \
                             builds"
                        ),
                    )
                    .with_help("use a key of your own namespace")
                    .at_key()
                    .warning(),
                );
            }
        }
        warnings
    }

    /// Applications no generated container lists: never built.
    fn unused_applications(&self) -> Vec<Diagnostic> {
        // An application reaches an image only through a generated container's `applications`.
        let used: std::collections::BTreeSet<&Name> = self
            .containers
            .values()
            .filter_map(|c| match &c.kind {
                ContainerKind::Generated(g) => Some(&g.applications),
                ContainerKind::Dockerfile(_) => None,
            })
            .flatten()
            .collect();
        self.applications
            .keys()
            .filter(|n| !used.contains(n))
            .map(|name| {
                Diagnostic::new(
                    "model/unused-application",
                    pointer_push("/applications", name.as_str()),
                    format!("application `{name}` is used by no container: it is never built"),
                )
                .with_help(format!(
                    "list it in a container's `applications` (\"applications\": [\"{name}\"]), or remove it"
                ))
                .at_key()
                .warning()
            })
            .collect()
    }
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
    /// The help for each unknown container name already met: a suggestion compares the name
    /// with every container, and a generated cookbook may repeat one wrong name thousands of
    /// times.
    container_help: BTreeMap<String, Option<String>>,
}

/// A "did you mean" for a close name, else the list of known names when it is short enough to
/// read, so that the help always says what would have been accepted.
pub fn suggest<'n>(
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
    fn project(&mut self, directory: Option<&str>) -> Project {
        let invalid = || Name::parse("invalid").expect("valid");
        if let Some(project) = &self.wire.project {
            return Project {
                name: self
                    .name("/project/name", &project.name)
                    .unwrap_or_else(invalid),
                repository: project.repository.clone(),
                named_after_directory: false,
            };
        }
        let named = directory.and_then(Name::from_directory);
        if named.is_none() {
            let (what, help) = match directory {
                Some(dir) => (
                    format!("missing required key `project`: the directory name {} gives no project name", excerpt(dir)),
                    "add `\"project\": {\"name\": \"…\"}` (a name is lowercase letters, digits, `_`, `.` and `-`)",
                ),
                None => (
                    "missing required key `project`".to_owned(),
                    "add `\"project\": {\"name\": \"…\"}`; a cookbook read from a file is otherwise named after its directory",
                ),
            };
            self.diagnostics
                .push(Diagnostic::new("schema/required", "", what).with_help(help));
        }
        Project {
            name: named.clone().unwrap_or_else(invalid),
            repository: None,
            named_after_directory: named.is_some(),
        }
    }

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

    /// Refuses a value that a generated Dockerfile cannot carry: a NUL byte anywhere (the
    /// instruction parser and `exec` both end a string there), and, where `one_line`, a line
    /// break (it would end the instruction and start another).
    fn dockerfile_value(
        &mut self,
        pointer: impl FnOnce() -> String,
        what: &str,
        value: &str,
        one_line: bool,
    ) {
        let (problem, help) = if value.contains('\0') {
            ("contains a NUL byte", "remove the NUL (\\u0000) characters")
        } else if one_line && value.contains(['\n', '\r']) {
            ("spans several lines", "write the value on one line")
        } else {
            return;
        };
        self.diagnostics.push(
            Diagnostic::new(
                "model/dockerfile-value",
                pointer(),
                format!(
                    "{what} {} {problem}, which a Dockerfile cannot carry",
                    excerpt(value)
                ),
            )
            .with_help(help),
        );
    }

    /// Checks every value of a map that is written into the Dockerfile (keys too, for labels).
    fn dockerfile_map(
        &mut self,
        at: &str,
        field: &str,
        map: &BTreeMap<String, String>,
        keys_too: bool,
    ) {
        for (k, v) in map {
            let p = || pointer_push(&pointer_push(at, field), k);
            if keys_too {
                let before = self.diagnostics.len();
                self.dockerfile_value(p, "key", k, true);
                if self.diagnostics.len() > before {
                    let d = self.diagnostics.pop().expect("just pushed").at_key();
                    self.diagnostics.push(d);
                }
            }
            self.dockerfile_value(p, "value", v, true);
        }
    }

    /// Checks the commands of an application that go into RUN and CMD (JSON form: lines are
    /// fine there, NUL is not).
    fn dockerfile_commands(&mut self, at: &str, build: &[String], run: Option<&RunCommandWire>) {
        for (i, cmd) in build.iter().enumerate() {
            let p = || pointer_push(&pointer_push(at, "build_commands"), &i.to_string());
            self.dockerfile_value(p, "command", cmd, false);
        }
        match run {
            Some(RunCommandWire::Shell(cmd)) => {
                self.dockerfile_value(|| pointer_push(at, "run_command"), "command", cmd, false)
            }
            Some(RunCommandWire::Exec(args)) => {
                for (i, arg) in args.iter().enumerate() {
                    let p = || pointer_push(&pointer_push(at, "run_command"), &i.to_string());
                    self.dockerfile_value(p, "argument", arg, false);
                }
            }
            None => {}
        }
    }

    fn dependencies(&mut self, at: &str, deps: Option<&DependenciesWire>) -> Dependencies {
        match deps {
            None => Dependencies::default(),
            Some(DependenciesWire::Packages(specs)) => Dependencies::Packages(specs.clone()),
            Some(DependenciesWire::File(file)) => match RelPath::parse(file) {
                Ok(path) if !path.is_root() => Dependencies::File(path),
                _ => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            "model/path",
                            pointer_push(at, "dependencies"),
                            format!(
                                "dependency file {} is not a file path inside the application's source",
                                excerpt(file)
                            ),
                        )
                        .with_help("name the file relative to the application's `source`, with `/` between components, e.g. \"requirements.txt\""),
                    );
                    Dependencies::default()
                }
            },
        }
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
        let wire = self.wire;
        let help = self
            .container_help
            .entry(s.to_owned())
            .or_insert_with(|| suggest(s, "containers", wire.containers.keys().map(String::as_str)))
            .clone();
        if let Some(help) = help {
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

    /// A generated container's parts (`at`: its pointer).
    fn generated(&mut self, at: &str, c: &ContainerWire) -> Generated {
        self.dockerfile_map(at, "env", &c.env, false);
        self.dockerfile_map(at, "labels", &c.labels, true);
        self.dockerfile_map(at, "build_args", &c.build_args, false);
        if let Some(workdir) = &c.workdir {
            self.dockerfile_value(|| pointer_push(at, "workdir"), "workdir", workdir, true);
        }
        let base = self.base_image(at, c.base_image.as_deref());
        let applications = self.applications_of(at, &c.applications);
        let mut ports = Vec::new();
        for (i, p) in c.ports.iter().enumerate() {
            ports.extend(self.port(
                || pointer_push(&pointer_push(at, "ports"), &i.to_string()),
                p,
            ));
        }
        Generated {
            base,
            applications,
            ports,
            env: c.env.clone(),
            labels: c.labels.clone(),
            build_args: c.build_args.clone(),
            workdir: c.workdir.clone(),
        }
    }

    /// A generated container's `base_image`. One that cannot be used is reported and stands as
    /// `scratch`: the cookbook is refused anyway, and the container's other edges stay in the
    /// plan, so that a cycle through it is still found. A missing one is the schema's to report.
    fn base_image(&mut self, at: &str, base: Option<&str>) -> BaseImage {
        let Some(text) = base else {
            return BaseImage::Scratch;
        };
        let base_at = || pointer_push(at, "base_image");
        if let Some(parent) = text.strip_prefix("container:") {
            return self
                .container_ref(base_at, parent, || "base_image".to_owned())
                .map_or(BaseImage::Scratch, BaseImage::Container);
        }
        if text == SCRATCH {
            return BaseImage::Scratch;
        }
        let e = match WrittenReference::parse(text) {
            Ok(reference) => return BaseImage::Image(reference),
            Err(e) => e,
        };
        let problem = if text.contains('\0') {
            "contains a NUL byte".to_owned()
        } else if text.chars().any(char::is_whitespace) {
            "contains white space".to_owned()
        } else {
            format!("is not a valid image reference: {}", reference_reason(&e))
        };
        let mut d = Diagnostic::new(
            "model/image",
            base_at(),
            format!("image reference {} {problem}", excerpt(text)),
        );
        if !text.contains('\0') && !text.chars().any(char::is_whitespace) {
            d = d.with_help(
                "write it as `docker pull` takes it, \
                 [HOST[:PORT]/]PATH[:TAG][@sha256:HEX] with PATH in lowercase; \
                 `container:NAME` for a container of this cookbook, `scratch` for \
                 no base image",
            );
        }
        self.diagnostics.push(d);
        BaseImage::Scratch
    }

    /// A generated container's `applications`: each known, at most one with a `run_command`.
    fn applications_of(&mut self, at: &str, names: &[String]) -> Vec<Name> {
        let mut applications = Vec::new();
        for (i, app) in names.iter().enumerate() {
            if self.wire.applications.contains_key(app) {
                applications.extend(Name::parse(app));
            } else {
                let mut d = Diagnostic::new(
                    "model/unknown-application",
                    pointer_push(&pointer_push(at, "applications"), &i.to_string()),
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
                    pointer_push(at, "applications"),
                    format!("applications {} all have a run_command; a container runs one", names.join(" and ")),
                )
                .with_help("keep run_command on the application this container runs, or split the container"),
            );
        }
        applications
    }

    fn container(&mut self, key: &str, c: &ContainerWire) -> Option<Container> {
        let at = pointer_push("/containers", key);
        // A bad name drops the container only after the rest of it is checked: one problem must
        // not hide the others of the same entry.
        let name = self.name(&at, key);
        let mut depends_on: Vec<Name> = Vec::new();
        for (i, dep) in c.depends_on.iter().enumerate() {
            let p = || pointer_push(&pointer_push(&at, "depends_on"), &i.to_string());
            depends_on.extend(self.container_ref(p, dep, || "depends_on".to_owned()));
        }
        depends_on.sort();
        depends_on.dedup();

        let kind = if let Some(dockerfile) = &c.dockerfile {
            // Sent to the engine as build arguments, which its Dockerfile expands.
            self.dockerfile_map(&at, "build_args", &c.build_args, false);
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
            ContainerKind::Generated(self.generated(&at, c))
        };
        Some(Container {
            name: name?,
            kind,
            depends_on,
            ci_name: c.ci_name.clone(),
            ci_capabilities: c.ci_capabilities.clone(),
        })
    }
}

/// Converts wire types into the model. Returns the model built from whatever was valid, and every
/// problem found; the caller refuses the cookbook if there is any. `directory` is the name of the
/// directory the cookbook lies in, when the caller knows one: it names a project the cookbook
/// does not name.
pub(crate) fn convert(wire: &CookbookWire, directory: Option<&str>) -> (Cookbook, Vec<Diagnostic>) {
    let mut cv = Converter {
        wire,
        diagnostics: Vec::new(),
        container_help: BTreeMap::new(),
    };
    // In this order, so diagnostics come in the file's order of sections.
    let project = cv.project(directory);
    let applications = cv.applications();
    let containers = cv.containers();
    let packaging = cv.packaging();
    let sites = cv.sites();
    let lifecycle = crate::model::lifecycle::convert(
        wire,
        &project.name,
        &containers,
        &sites,
        &mut cv.diagnostics,
    );
    let cookbook = Cookbook {
        manifest_version: wire.manifest_version.clone(),
        project,
        applications,
        containers,
        packaging,
        sites,
        lifecycle,
    };
    (cookbook, cv.diagnostics)
}

impl Converter<'_> {
    fn applications(&mut self) -> BTreeMap<Name, Application> {
        let mut applications = BTreeMap::new();
        for (key, a) in &self.wire.applications {
            let at = pointer_push("/applications", key);
            // A bad name leaves the application out only after its fields are checked.
            let name = self.name(&at, key);
            let source = self.path(
                || pointer_push(&at, "source"),
                a.source.as_deref().unwrap_or("."),
            );
            self.dockerfile_map(&at, "env", &a.env, false);
            self.dockerfile_commands(&at, &a.build_commands, a.run_command.as_ref());
            let dependencies = self.dependencies(&at, a.dependencies.as_ref());
            let Some(name) = name else {
                continue;
            };
            applications.insert(
                name.clone(),
                Application {
                    name,
                    language: a.language.clone(),
                    kind: a.kind.clone(),
                    source,
                    entrypoint: a.entrypoint.clone(),
                    dependencies,
                    build_commands: a.build_commands.clone(),
                    run_command: a.run_command.as_ref().map(|r| match r {
                        RunCommandWire::Shell(s) => RunCommand::Shell(s.clone()),
                        RunCommandWire::Exec(v) => RunCommand::Exec(v.clone()),
                    }),
                    env: a.env.clone(),
                },
            );
        }
        applications
    }

    fn containers(&mut self) -> BTreeMap<Name, Container> {
        let mut containers = BTreeMap::new();
        for (key, c) in &self.wire.containers {
            if let Some(container) = self.container(key, c) {
                containers.insert(container.name.clone(), container);
            }
        }
        containers
    }

    fn packaging(&mut self) -> Packaging {
        let packaging = &self.wire.packaging;
        let mut build_order = Vec::new();
        for (i, n) in packaging.build_order.iter().flatten().enumerate() {
            build_order.extend(self.container_ref(
                || format!("/packaging/build_order/{i}"),
                n,
                || "build_order".to_owned(),
            ));
        }
        Packaging {
            registry: packaging.registry.clone(),
            tagging: match packaging.tagging.as_deref() {
                Some("git-sha") => Tagging::GitSha,
                Some("semver") => Tagging::Semver,
                _ => Tagging::ContentHash,
            },
            version: packaging.version.clone(),
            latest: packaging.latest,
            build_order,
            builders: self.builders(),
        }
    }

    /// `packaging.builders`; two with one name (written, or the context or host they default
    /// to) are refused: a report could not say which built what.
    fn builders(&mut self) -> Vec<Builder> {
        let mut builders: Vec<Builder> = Vec::new();
        for (i, b) in self.wire.packaging.builders.iter().enumerate() {
            let engine = EngineSpec::from_wire(b.host.as_ref(), b.context.as_ref(), b.tls.as_ref());
            let name = b.name.clone().unwrap_or_else(|| engine.describe());
            if builders.iter().any(|other| other.name == name) {
                let at = format!("/packaging/builders/{i}");
                let at = if b.name.is_some() {
                    pointer_push(&at, "name")
                } else {
                    at
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        "model/duplicate-builder",
                        at,
                        format!(
                            "builder {} is named twice in packaging.builders",
                            excerpt(&name)
                        ),
                    )
                    .with_help("give each builder a name of its own (\"name\")"),
                );
                continue;
            }
            builders.push(Builder { name, engine });
        }
        builders
    }

    fn sites(&mut self) -> BTreeMap<Name, Site> {
        let mut sites = BTreeMap::new();
        for (key, s) in self.wire.federation.iter().flat_map(|f| &f.sites) {
            let at = pointer_push("/federation/sites", key);
            let valid_name = self.name(&at, key);
            let mut names = BTreeSet::new();
            for (i, c) in s.containers.iter().enumerate() {
                let p = || pointer_push(&pointer_push(&at, "containers"), &i.to_string());
                names.extend(self.container_ref(p, c, || format!("site `{key}`")));
            }
            let Some(name) = valid_name else {
                continue;
            };
            sites.insert(
                name.clone(),
                Site {
                    name,
                    containers: names.into_iter().collect(),
                },
            );
        }
        sites
    }
}

#[cfg(test)]
mod tests {
    use super::is_local_image;

    #[test]
    fn only_names_under_the_local_prefix_are_local_images() {
        assert!(is_local_image("cookbook.local/shop/api:abc"));
        assert!(!is_local_image("cookbook.localhost/shop/api:abc"));
        assert!(!is_local_image("127.0.0.1:5000/cookbook.local/api:abc"));
        assert!(!is_local_image("cookbook.local"));
    }
}
