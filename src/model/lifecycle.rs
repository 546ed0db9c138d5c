//! Format 1.1's deployment model: stages, progression rules, checkpoints, rollback, per-stage
//! runtime settings, deploy sites and per-container health.
//!
//! Pipeline position: wire types → **this validation** → part of the sealed `Cookbook`
//! (`Cookbook::lifecycle`). Pure like the rest of `model`.
//!
//! Invariants, once a `Cookbook` exists: every stage named anywhere is one of `stages`; every
//! container named in a stage's settings exists; `progression` has a rule for every stage;
//! `containers` has a runtime entry for every container; no site is given a container that
//! `require`s a capability the site does not offer; every stage with `approvers` is a `manual`
//! stage, and its approvers' names are distinct (their key files are read by the deploy flows,
//! which alone touch the disk; `Cookbook::paths` lists them for `load`'s disk checks).
//!
//! Everything here is runtime: none of it is read by `hash`, so a cookbook's input hashes do not
//! depend on it (tests/it/hashing.rs and tests/it/migrate.rs hold that).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{excerpt, pointer_push, Diagnostic};
use crate::model::cookbook::{suggest, Container, Cookbook, Port, Site};
use crate::model::name::Name;
use crate::model::pod::{EnvValue, Ingress, Pod, PodCheck};
use crate::model::relpath::RelPath;
use crate::model::wire::{
    CookbookWire, EnvValueWire, HealthWire, LifecycleWire, RunCommandWire, RuntimeWire, SiteWire,
};

/// The stages a cookbook without `lifecycle.stages` has.
pub const DEFAULT_STAGES: &[&str] = &["dev", "test", "pre-deploy", "stage", "prod"];
/// The default checkpoint stage, when the cookbook has a stage of that name.
pub const DEFAULT_CHECKPOINT: &str = "pre-deploy";
/// How many releases per stage are kept when `rollback.keep` is not given.
pub const DEFAULT_KEEP: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Lifecycle {
    /// In order: a release moves from the first to the last.
    pub stages: Vec<Name>,
    /// The rule to enter each stage (every stage has one).
    pub progression: BTreeMap<Name, Progression>,
    /// The stage at which a release becomes a rollback point.
    pub checkpoint: Name,
    pub rollback: Rollback,
    /// Runtime overrides: stage → container → settings.
    pub stage_config: BTreeMap<Name, BTreeMap<Name, RuntimeOverride>>,
    /// Deploy settings of every federation site (1.0 sites get the defaults: no target).
    pub sites: BTreeMap<Name, SiteDeploy>,
    /// Runtime settings of every container.
    pub containers: BTreeMap<Name, ContainerRuntime>,
    /// Per `manual` stage, the people whose signed approval it takes (none listed: any
    /// approval by a person, signed or not).
    pub approvers: BTreeMap<Name, Vec<Approver>>,
}

/// Someone whose signature approves a release into a `manual` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub name: String,
    /// Their public key (a PEM `PUBLIC KEY` file), relative to the cookbook's directory.
    pub key: RelPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progression {
    /// The release is healthy in the previous stage.
    Automatic,
    /// A recorded approval by CI.
    CiApproved,
    /// A recorded approval naming a person.
    Manual,
}

impl Progression {
    pub fn as_str(self) -> &'static str {
        match self {
            Progression::Automatic => "automatic",
            Progression::CiApproved => "ci-approved",
            Progression::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Go back to the stage's previous release.
    Previous,
    /// Leave the failed release as it is.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rollback {
    pub on_failure: OnFailure,
    /// Releases kept per stage (at least 1).
    pub keep: u32,
}

/// A container's runtime settings in one stage. Absent fields keep the image's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeOverride {
    /// Text, or secrets by reference (`{"secret": "NAME/KEY"}`), read only where it runs.
    pub env: BTreeMap<String, EnvValue>,
    pub ports: Vec<PublishedPort>,
    pub replicas: Option<u32>,
    /// CPU limit in billionths of a core (Docker's `NanoCpus`).
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// The stage's Ingress for the container (Kubernetes sites).
    pub ingress: Option<Ingress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PublishedPort {
    /// The host address to bind, when given (`127.0.0.1:8080:80`).
    pub host_ip: Option<String>,
    pub host: u16,
    pub container: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteKind {
    Aws,
    Gcp,
    Azure,
    BareMetal,
    Edge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Docker engine: a host (`unix:///…`, `tcp://…` with TLS files, `ssh://…`, or `env`: the
    /// engine of the deploying process) or a docker context.
    Docker(super::EngineSpec),
    /// A Kubernetes cluster, reached through kube's own configuration loading: the kubeconfig
    /// (`kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, at `context` or its current one), or
    /// the in-cluster service account when there is no kubeconfig.
    Kubernetes(KubernetesTarget),
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KubernetesTarget {
    pub context: Option<String>,
    /// A DNS-1123 label (the schema checks it).
    pub namespace: String,
    /// As written in the cookbook: relative paths are relative to the cookbook's directory.
    pub kubeconfig: Option<String>,
    /// Whether deploy applies the Namespace object too (else it must exist).
    pub create_namespace: bool,
}

/// The longest name a Kubernetes Service may have (a DNS-1123 label).
pub const KUBERNETES_NAME_MAX: usize = 63;

/// The name of a container's Deployment and Service in a site's stage:
/// `<project>-<site>-<stage>-<container>`. The site is in it because several sites (of one
/// cookbook or of several) may share a namespace, and a name is all Kubernetes keys an object by.
/// A name too long for a DNS-1123 label keeps its first characters and ends in `-` and 10 hex
/// digits of the SHA-256 of the whole name, so two long names stay two names (Kubernetes' own
/// generated names do the same).
pub fn kubernetes_name(project: &str, site: &str, stage: &str, container: &str) -> String {
    use sha2::Digest as _;
    let name = format!("{project}-{site}-{stage}-{container}");
    if name.len() <= KUBERNETES_NAME_MAX {
        return name;
    }
    let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    // Validation asks this of names that may not be `Name`s yet: cut on a character boundary.
    let mut cut = KUBERNETES_NAME_MAX - 11;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let keep = name[..cut].trim_end_matches(['-', '_', '.']);
    format!("{keep}-{}", &hash[..10])
}

/// Whether `s` is a DNS-1123 label, what a Service's name must be.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= KUBERNETES_NAME_MAX
        && b.iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A window (UTC) in which automatic progression may deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Window {
    /// Days of the week, 0 = Monday; empty means every day.
    pub days: Vec<u8>,
    /// Minutes after midnight; `to < from` wraps past midnight.
    pub from: u16,
    pub to: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SiteDeploy {
    pub name: Name,
    pub kind: Option<SiteKind>,
    pub target: Option<Target>,
    /// The stages the site serves, in lifecycle order.
    pub stages: Vec<Name>,
    pub capabilities: BTreeSet<String>,
    pub schedule: Vec<Window>,
    /// A Docker site's directory of secrets (`<dir>/<NAME>/<KEY>`), as written: relative to the
    /// cookbook's directory. `None`: secrets come from the deploying process's environment.
    pub secrets: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerRuntime {
    pub require: BTreeSet<String>,
    pub health: Health,
    /// How long stopping it waits after the stop signal (the image's `STOPSIGNAL`, else
    /// SIGTERM) before killing it, in whole seconds. `None`: the target's default (Docker's
    /// 10 s, Kubernetes' 30 s).
    pub stop_grace: Option<u32>,
    /// What runs with it when it is deployed (empty: a pod of one).
    pub pod: Pod,
    /// Pod volume → the absolute path where this container sees it.
    pub mounts: BTreeMap<Name, String>,
    /// The ports it listens on (what a Service offers on Kubernetes), sorted.
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    /// How long a container must run without restarting to count as healthy (no probe), or the
    /// start period before failed probes count (with one).
    pub grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// No probe: running and not restarting for the grace period.
    Running,
    /// Run inside the container: exit 0 is healthy.
    Command(Vec<String>),
    /// Run by `/bin/sh -c` inside the container.
    Shell(String),
    /// An HTTP GET of `path` on `127.0.0.1:port` inside the container answers 2xx/3xx.
    Http { port: u16, path: HttpPath },
    /// A TCP connect to a port inside the container succeeds.
    Tcp { port: u16 },
}

/// The path (and query) an `http` probe asks for: `/` then only RFC 3986 path and query
/// characters (unreserved, sub-delims, `:`, `@`, `/`, `?`, and `%` with two hex digits), so at
/// most 4096 of them. It is one argument of the probe's command on Docker and the `httpGet`
/// path on Kubernetes, never shell text; a record read back (release records) is checked again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpPath(String);

/// The longest probe path accepted (the schema's `maxLength`).
pub const HTTP_PATH_MAX: usize = 4096;

/// Why a probe path was refused: the first offending character and its (0-based) byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpPathError {
    #[error("must start with `/`")]
    NoSlash,
    #[error("is longer than {HTTP_PATH_MAX} bytes")]
    TooLong,
    #[error("has {} at byte {at}, which a URL path or query cannot hold", describe(*.found))]
    Character { found: char, at: usize },
    #[error("has a `%` at byte {at} not followed by two hex digits")]
    Escape { at: usize },
}

fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

impl HttpPath {
    pub fn parse(s: &str) -> Result<HttpPath, HttpPathError> {
        if !s.starts_with('/') {
            return Err(HttpPathError::NoSlash);
        }
        if s.len() > HTTP_PATH_MAX {
            return Err(HttpPathError::TooLong);
        }
        let b = s.as_bytes();
        for (at, c) in s.char_indices() {
            let allowed = c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c);
            if !allowed {
                return Err(HttpPathError::Character { found: c, at });
            }
            let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
            if c == '%' && !(hex(at + 1) && hex(at + 2)) {
                return Err(HttpPathError::Escape { at });
            }
        }
        Ok(HttpPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for HttpPath {
    fn default() -> Self {
        HttpPath("/".to_owned())
    }
}

impl TryFrom<String> for HttpPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HttpPath::parse(&s).map_err(|e| format!("probe path {s:?} {e}"))
    }
}

impl From<HttpPath> for String {
    fn from(p: HttpPath) -> String {
        p.0
    }
}

impl std::fmt::Display for HttpPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest `stop_grace`: a stop waits this long at most before the engine kills.
pub const MAX_STOP_GRACE: Duration = Duration::from_secs(3600);

impl Default for Health {
    fn default() -> Self {
        Health {
            probe: Probe::Running,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            retries: 3,
            grace: Duration::from_secs(3),
        }
    }
}

impl Lifecycle {
    /// The settings a container runs with in a stage (the defaults when the stage has none).
    pub fn runtime(&self, stage: &str, container: &str) -> RuntimeOverride {
        self.stage_config
            .get(stage)
            .and_then(|s| s.get(container))
            .cloned()
            .unwrap_or_default()
    }

    pub fn has_stage(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s.as_str() == stage)
    }
}

/// Parses `500ms`, `5s`, `1m` (the schema has checked the shape).
pub fn duration(s: &str) -> Option<Duration> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

fn clock(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn memory(s: &str) -> Option<i64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1 << 10),
        b'm' => (&s[..s.len() - 1], 1 << 20),
        b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<i64>().ok()?.checked_mul(scale)
}

fn published(s: &str) -> Option<PublishedPort> {
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, "udp")) => (spec, "udp"),
        Some((spec, "sctp")) => (spec, "sctp"),
        Some((spec, _)) => (spec, "tcp"),
        None => (s, "tcp"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => (Some((*ip).to_owned()), *h, *c),
        _ => return None,
    };
    let host: u16 = host.parse().ok().filter(|&p| p > 0)?;
    let container: u16 = container.parse().ok().filter(|&p| p > 0)?;
    if let Some(ip) = &host_ip {
        ip.parse::<std::net::Ipv4Addr>().ok()?;
    }
    Some(PublishedPort {
        host_ip,
        host,
        container,
        protocol: protocol.to_owned(),
    })
}

struct Check<'a> {
    stages: &'a [Name],
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    /// A stage reference: the stage, or a located "unknown stage" with a suggestion.
    fn stage(&mut self, pointer: impl FnOnce() -> String, s: &str, what: &str) -> Option<Name> {
        if let Some(stage) = self.stages.iter().find(|st| st.as_str() == s) {
            return Some(stage.clone());
        }
        let mut d = Diagnostic::new(
            "model/unknown-stage",
            pointer(),
            format!("{what} names unknown stage {}", excerpt(s)),
        );
        if let Some(help) = suggest(s, "stages", self.stages.iter().map(Name::as_str)) {
            d = d.with_help(help);
        }
        self.diagnostics.push(d);
        None
    }

    fn container(
        &mut self,
        wire: &CookbookWire,
        pointer: impl FnOnce() -> String,
        s: &str,
        what: &str,
    ) -> Option<Name> {
        if wire.containers.contains_key(s) {
            return Name::parse(s);
        }
        let mut d = Diagnostic::new(
            "model/unknown-container",
            pointer(),
            format!("{what} names unknown container {}", excerpt(s)),
        );
        if let Some(help) = suggest(s, "containers", wire.containers.keys().map(String::as_str)) {
            d = d.with_help(help);
        }
        self.diagnostics.push(d);
        None
    }

    fn health(&mut self, at: &str, h: Option<&HealthWire>) -> Health {
        let default = Health::default();
        let Some(h) = h else {
            return default;
        };
        let at = pointer_push(at, "health");
        let probes: Vec<&str> = [
            h.command.as_ref().map(|_| "command"),
            h.http.as_ref().map(|_| "http"),
            h.tcp.as_ref().map(|_| "tcp"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if probes.len() > 1 {
            self.diagnostics.push(
                Diagnostic::new(
                    "model/health",
                    at.clone(),
                    format!(
                        "health has {} probes; a container has at most one",
                        probes.join(" and ")
                    ),
                )
                .with_help("keep one of `command`, `http` and `tcp`"),
            );
        }
        let probe = if let Some(c) = &h.command {
            match c {
                RunCommandWire::Shell(s) => Probe::Shell(s.clone()),
                RunCommandWire::Exec(v) => Probe::Command(v.clone()),
            }
        } else if let Some(http) = &h.http {
            Probe::Http {
                port: http.port,
                path: self.http_path(&at, http.path.as_deref()),
            }
        } else if let Some(tcp) = &h.tcp {
            Probe::Tcp { port: tcp.port }
        } else {
            Probe::Running
        };
        let mut time = |key: &str, value: &Option<String>, default: Duration| match value {
            None => default,
            Some(s) => match duration(s).filter(|d| !d.is_zero()) {
                Some(d) => d,
                None => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            "model/duration",
                            pointer_push(&at, key),
                            format!("{key} {} is not a positive duration", excerpt(s)),
                        )
                        .with_help("write a number and `ms`, `s` or `m`: `500ms`, `5s`, `1m`"),
                    );
                    default
                }
            },
        };
        Health {
            probe,
            interval: time("interval", &h.interval, default.interval),
            timeout: time("timeout", &h.timeout, default.timeout),
            grace: time("grace", &h.grace, default.grace),
            retries: h.retries.unwrap_or(default.retries),
        }
    }

    /// A container's `stop_grace` in whole seconds (rounded up: both Docker's `StopTimeout` and
    /// Kubernetes' `terminationGracePeriodSeconds` count seconds); zero kills at once. At most
    /// [`MAX_STOP_GRACE`], so that a stop is an engine request with a deadline.
    fn stop_grace(&mut self, at: &str, value: Option<&str>) -> Option<u32> {
        let s = value?;
        match duration(s).filter(|d| *d <= MAX_STOP_GRACE) {
            Some(d) => Some(d.as_millis().div_ceil(1000) as u32),
            None => {
                self.diagnostics.push(
                    Diagnostic::new(
                        "model/duration",
                        pointer_push(at, "stop_grace"),
                        format!("stop_grace {} is not a duration of at most 60m", excerpt(s)),
                    )
                    .with_help(
                        "write a number and `ms`, `s` or `m`, at most `60m`: `0s`, `30s`, `2m`",
                    ),
                );
                None
            }
        }
    }

    /// An `http` probe's path, or `/` (with a located problem when one was given and refused).
    fn http_path(&mut self, at: &str, path: Option<&str>) -> HttpPath {
        let Some(path) = path else {
            return HttpPath::default();
        };
        HttpPath::parse(path).unwrap_or_else(|e| {
            self.diagnostics.push(
                Diagnostic::new(
                    "model/health-path",
                    pointer_push(&pointer_push(at, "http"), "path"),
                    format!("probe path {} {e}", excerpt(path)),
                )
                .with_help(
                    "write a URL path and query starting with `/`; percent-encode anything else \
                     (a space is %20, `{` is %7B)",
                ),
            );
            HttpPath::default()
        })
    }

    fn runtime(&mut self, at: &str, r: &RuntimeWire, listening: &[Port]) -> RuntimeOverride {
        let mut ports = Vec::new();
        for (i, p) in r.ports.iter().enumerate() {
            match published(p) {
                Some(p) => ports.push(p),
                None => self.diagnostics.push(
                    Diagnostic::new(
                        "model/port",
                        pointer_push(&pointer_push(at, "ports"), &i.to_string()),
                        format!(
                            "published port {} is not HOST:CONTAINER with ports in 1-65535",
                            excerpt(p)
                        ),
                    )
                    .with_help("write `8080:80`, `127.0.0.1:8080:80` or `5353:53/udp`"),
                ),
            }
        }
        let resources = r.resources.as_ref();
        let memory_limit = resources
            .and_then(|res| res.memory.as_deref())
            .and_then(|m| {
                let bytes = memory(m);
                if bytes.is_none() {
                    self.diagnostics.push(Diagnostic::new(
                        "model/memory",
                        pointer_push(&pointer_push(at, "resources"), "memory"),
                        format!("memory {} is too large", excerpt(m)),
                    ));
                }
                bytes
            });
        let mut env = BTreeMap::new();
        for (k, v) in &r.env {
            let value = match v {
                EnvValueWire::Text(t) => EnvValue::Text(t.clone()),
                EnvValueWire::Secret(s) => match crate::model::pod::SecretRef::parse(&s.secret) {
                    Ok(secret) => EnvValue::Secret { secret },
                    Err(e) => {
                        self.diagnostics.push(
                            Diagnostic::new(
                                "model/secret",
                                pointer_push(&pointer_push(&pointer_push(at, "env"), k), "secret"),
                                format!("secret reference {} {e}", excerpt(&s.secret)),
                            )
                            .with_help("write {\"secret\": \"NAME/KEY\"}: key KEY of secret NAME"),
                        );
                        continue;
                    }
                },
            };
            env.insert(k.clone(), value);
        }
        let published: Vec<u16> = ports.iter().map(|p: &PublishedPort| p.container).collect();
        let ingress = r.ingress.as_ref().and_then(|w| {
            crate::model::pod::ingress(at, w, listening, &published, self.diagnostics)
        });
        RuntimeOverride {
            env,
            ingress,
            ports,
            replicas: r.replicas,
            // The schema bounds cpus to (0, 1024]: the product fits an i64.
            nano_cpus: resources
                .and_then(|res| res.cpus)
                .map(|c| (c * 1e9).round() as i64),
            memory: memory_limit,
        }
    }

    /// A Kubernetes site's object names (`<project>-<site>-<stage>-<container>`) must be
    /// DNS-1123 labels: one located problem per name that is not (a long one is shortened, so
    /// only its characters can be at fault). A container that gets a Service (another container
    /// of the site depends on it, or it listens on a port, in the cookbook or in a stage) gives
    /// the Service its own name, which must be a DNS-1035 label (what the API server asks of a
    /// Service's name: a DNS-1123 label starting with a letter): else one located problem too;
    /// and so does a pod volume whose name is no DNS-1123 label (a pod's volume name, and part of
    /// its claim's).
    fn kubernetes_names(
        &mut self,
        at: &str,
        project: &Name,
        site: &SiteDeploy,
        containers: Option<&BTreeSet<Name>>,
        wire: &CookbookWire,
        runtimes: &BTreeMap<Name, ContainerRuntime>,
    ) {
        let stages = if site.stages.is_empty() {
            self.stages
        } else {
            &site.stages[..]
        };
        let containers: Vec<&Name> = containers.into_iter().flatten().collect();
        self.kubernetes_object_names(at, project, site, stages, &containers);
        self.kubernetes_volume_names(site, &containers, runtimes);
        self.kubernetes_service_names(site, stages, &containers, wire, runtimes);
    }

    /// Each stage's object names of each container: DNS-1123 labels.
    fn kubernetes_object_names(
        &mut self,
        at: &str,
        project: &Name,
        site: &SiteDeploy,
        stages: &[Name],
        containers: &[&Name],
    ) {
        for stage in stages {
            for container in containers {
                let object = kubernetes_name(
                    project.as_str(),
                    site.name.as_str(),
                    stage.as_str(),
                    container.as_str(),
                );
                if !is_dns_label(&object) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            "model/kubernetes-name",
                            pointer_push(&pointer_push(at, "target"), "kubernetes"),
                            format!(
                                "site `{}` would name container `{container}`'s Kubernetes objects in stage `{stage}` {}, which is not a DNS-1123 label",
                                site.name,
                                excerpt(&object)
                            ),
                        )
                        .with_help(format!(
                            "Kubernetes names are made of a-z, 0-9 and `-` (one longer than {KUBERNETES_NAME_MAX} characters is shortened): rename the project, site, stage or container"
                        )),
                    );
                }
            }
        }
    }

    /// A pod's volume is named in the pod (a DNS-1123 label there) and in its claim's name.
    fn kubernetes_volume_names(
        &mut self,
        site: &SiteDeploy,
        containers: &[&Name],
        runtimes: &BTreeMap<Name, ContainerRuntime>,
    ) {
        for container in containers {
            let volumes = runtimes.get(*container).map(|r| &r.pod.volumes);
            for volume in volumes.into_iter().flat_map(|v| v.keys()) {
                if is_dns_label(volume.as_str()) {
                    continue;
                }
                self.diagnostics.push(
                    Diagnostic::new(
                        "model/kubernetes-name",
                        pointer_push(
                            &pointer_push(&pointer_push("/containers", container.as_str()), "volumes"),
                            volume.as_str(),
                        ),
                        format!(
                            "site `{}` runs container `{container}`'s pod on Kubernetes, where its volume {} is no DNS-1123 label",
                            site.name,
                            excerpt(volume.as_str())
                        ),
                    )
                    .with_help(format!(
                        "a pod's volume names are made of a-z, 0-9 and `-` (at most {KUBERNETES_NAME_MAX} characters): rename the volume"
                    )),
                );
            }
        }
    }

    /// A container that gets a Service (depended on, or listening on a port) names it: a
    /// DNS-1035 label.
    fn kubernetes_service_names(
        &mut self,
        site: &SiteDeploy,
        stages: &[Name],
        containers: &[&Name],
        wire: &CookbookWire,
        runtimes: &BTreeMap<Name, ContainerRuntime>,
    ) {
        for container in containers {
            let name = container.as_str();
            if is_dns_label(name) && name.as_bytes()[0].is_ascii_lowercase() {
                continue;
            }
            let depended_on = containers.iter().any(|c| {
                wire.containers
                    .get(c.as_str())
                    .is_some_and(|w| w.depends_on.iter().any(|d| d == name))
            });
            let listens = runtimes
                .get(*container)
                .is_some_and(|r| !r.ports.is_empty())
                || wire
                    .lifecycle
                    .iter()
                    .flat_map(|l| &l.stage_config)
                    .filter(|(stage, _)| stages.iter().any(|s| s.as_str() == stage.as_str()))
                    .any(|(_, st)| st.containers.get(name).is_some_and(|r| !r.ports.is_empty()));
            if !depended_on && !listens {
                continue;
            }
            let why = if depended_on {
                "another container depends on it"
            } else {
                "it listens on a port"
            };
            self.diagnostics.push(
                Diagnostic::new(
                    "model/kubernetes-name",
                    pointer_push("/containers", name),
                    format!(
                        "site `{}` gives container {} a Kubernetes Service named like it ({why}), and that name is not a DNS-1035 label",
                        site.name,
                        excerpt(name)
                    ),
                )
                .with_help(format!(
                    "a Service's name is made of a-z, 0-9 and `-`, starts with a letter and has at most {KUBERNETES_NAME_MAX} characters: rename the container"
                )),
            );
        }
    }

    fn site(&mut self, at: &str, name: Name, s: &SiteWire) -> SiteDeploy {
        let kind = s.kind.as_deref().map(|k| match k {
            "aws" => SiteKind::Aws,
            "gcp" => SiteKind::Gcp,
            "azure" => SiteKind::Azure,
            "edge" => SiteKind::Edge,
            _ => SiteKind::BareMetal,
        });
        let mut stages = Vec::new();
        for (i, st) in s.stages.iter().enumerate() {
            let p = || pointer_push(&pointer_push(at, "stages"), &i.to_string());
            stages.extend(self.stage(p, st, &format!("site `{name}`")));
        }
        // Lifecycle order, whatever order the site lists them in.
        stages.sort_by_key(|st| self.stages.iter().position(|s| s == st));
        let schedule = s
            .schedule
            .iter()
            .map(|w| Window {
                days: w
                    .days
                    .iter()
                    .filter_map(|d| {
                        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                            .iter()
                            .position(|x| x == d)
                            .and_then(|i| u8::try_from(i).ok())
                    })
                    .collect(),
                from: clock(&w.from).unwrap_or(0),
                to: clock(&w.to).unwrap_or(0),
            })
            .collect();
        SiteDeploy {
            name,
            kind,
            target: s
                .target
                .as_ref()
                .and_then(|t| match (&t.docker, &t.kubernetes) {
                    (Some(d), _) => Some(Target::Docker(super::EngineSpec::from_wire(
                        d.host.as_ref(),
                        d.context.as_ref(),
                        d.tls.as_ref(),
                    ))),
                    (None, Some(k)) => Some(Target::Kubernetes(KubernetesTarget {
                        context: k.context.clone(),
                        namespace: k.namespace.clone(),
                        kubeconfig: k.kubeconfig.clone(),
                        create_namespace: k.create_namespace,
                    })),
                    // The schema has reported the empty target.
                    (None, None) => None,
                }),
            stages,
            capabilities: s.capabilities.iter().cloned().collect(),
            schedule,
            secrets: s.secrets.as_ref().map(|d| d.directory.clone()),
        }
    }
}

/// The containers a deploy of `roots` runs: them and, transitively, what they `depends_on` (run
/// time edges only: a container used only as a build parent is not started) and the members of
/// their pods (`runtimes`; run inside their pods, never alone) with what those depend on.
pub fn runtime_closure<'a>(
    containers: &BTreeMap<Name, Container>,
    runtimes: &BTreeMap<Name, ContainerRuntime>,
    roots: impl IntoIterator<Item = &'a Name>,
) -> BTreeSet<Name> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&Name> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(containers.get(n).into_iter().flat_map(|c| &c.depends_on));
            todo.extend(
                runtimes
                    .get(n)
                    .into_iter()
                    .flat_map(|r| r.pod.members().map(|(_, m)| m)),
            );
        }
    }
    seen
}

impl Cookbook {
    /// The containers a site runs: its own and what they depend on at run time, with the members
    /// of their pods.
    pub fn site_deploy_set(&self, site: &str) -> Option<BTreeSet<Name>> {
        let site = self.sites.get(site)?;
        Some(runtime_closure(
            &self.containers,
            &self.lifecycle.containers,
            &site.containers,
        ))
    }

    /// The containers that run inside another's pod: member → the pods (their mains) it is in.
    pub fn pod_members(&self) -> BTreeMap<&Name, Vec<&Name>> {
        let mut out: BTreeMap<&Name, Vec<&Name>> = BTreeMap::new();
        for (main, rt) in &self.lifecycle.containers {
            for (_, m) in rt.pod.members() {
                out.entry(m).or_default().push(main);
            }
        }
        out
    }
}

/// Builds and checks the lifecycle part of a cookbook, given its already converted containers
/// and sites.
pub(crate) fn convert(
    wire: &CookbookWire,
    project: &Name,
    model_containers: &BTreeMap<Name, Container>,
    model_sites: &BTreeMap<Name, Site>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Lifecycle {
    let empty = LifecycleWire::default();
    let lw = wire.lifecycle.as_ref().unwrap_or(&empty);
    let stages = stage_names(lw);
    let mut check = Check {
        stages: &stages,
        diagnostics,
    };
    let progression = check.progression(lw);
    let checkpoint = check.checkpoint(lw);
    let stage_config = check.stage_config(wire, lw);
    let containers = check.container_runtimes(wire);
    PodCheck {
        wire,
        runtimes: &containers,
        diagnostics: check.diagnostics,
    }
    .across(&stage_config);
    let deploys: BTreeMap<&Name, BTreeSet<Name>> = model_sites
        .iter()
        .map(|(n, s)| {
            (
                n,
                runtime_closure(model_containers, &containers, &s.containers),
            )
        })
        .collect();
    let sites = check.sites(wire, project, &deploys, &containers);
    let approvers = check.approvers(lw, &progression);
    Lifecycle {
        stages,
        progression,
        checkpoint,
        rollback: rollback(lw),
        stage_config,
        sites,
        containers,
        approvers,
    }
}

/// The stages, in order: the cookbook's, or the default ones.
fn stage_names(lw: &LifecycleWire) -> Vec<Name> {
    match &lw.stages {
        // The schema has checked the names' shape and uniqueness.
        Some(stages) => stages.iter().filter_map(|s| Name::parse(s)).collect(),
        None => DEFAULT_STAGES
            .iter()
            .filter_map(|s| Name::parse(s))
            .collect(),
    }
}

fn rollback(lw: &LifecycleWire) -> Rollback {
    Rollback {
        on_failure: match lw.rollback.as_ref().and_then(|r| r.on_failure.as_deref()) {
            Some("none") => OnFailure::None,
            _ => OnFailure::Previous,
        },
        keep: lw
            .rollback
            .as_ref()
            .and_then(|r| r.keep)
            .unwrap_or(DEFAULT_KEEP),
    }
}

impl Check<'_> {
    /// Each stage's progression rule: automatic unless the cookbook says otherwise.
    fn progression(&mut self, lw: &LifecycleWire) -> BTreeMap<Name, Progression> {
        let mut progression: BTreeMap<Name, Progression> = self
            .stages
            .iter()
            .map(|s| (s.clone(), Progression::Automatic))
            .collect();
        for (stage, rule) in &lw.progression {
            let p = || pointer_push("/lifecycle/progression", stage);
            if let Some(stage) = self.stage(p, stage, "progression") {
                let rule = match rule.as_str() {
                    "ci-approved" => Progression::CiApproved,
                    "manual" => Progression::Manual,
                    _ => Progression::Automatic,
                };
                progression.insert(stage, rule);
            }
        }
        progression
    }

    /// Each stage's approvers: only a `manual` stage takes them (a CI job or a health check
    /// signs nothing), each name once, each key a path inside the cookbook's directory.
    fn approvers(
        &mut self,
        lw: &LifecycleWire,
        progression: &BTreeMap<Name, Progression>,
    ) -> BTreeMap<Name, Vec<Approver>> {
        let mut approvers = BTreeMap::new();
        for (stage, list) in &lw.approvers {
            let at = pointer_push("/lifecycle/approvers", stage);
            let Some(stage) = self.stage(|| at.clone(), stage, "the approvers list") else {
                continue;
            };
            let rule = progression[&stage];
            if rule != Progression::Manual {
                self.diagnostics.push(
                    Diagnostic::new(
                        "model/approvers-not-manual",
                        at.clone(),
                        format!(
                            "approvers are listed for stage {stage}, which is entered by rule `{}`: only a `manual` stage takes a person's signed approval",
                            rule.as_str()
                        ),
                    )
                    .at_key()
                    .with_help(format!(
                        "set \"progression\": {{\"{stage}\": \"manual\"}}, or remove its approvers"
                    )),
                );
                continue;
            }
            // Every entry is kept, a refused one too, so that the list's indices stay the
            // cookbook's: `Cookbook::paths` points at `/lifecycle/approvers/<stage>/<i>/key`.
            let mut seen = BTreeSet::new();
            let mut listed = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let entry = pointer_push(&at, &i.to_string());
                if !seen.insert(a.name.as_str()) {
                    self.diagnostics.push(Diagnostic::new(
                        "model/duplicate-approver",
                        pointer_push(&entry, "name"),
                        format!(
                            "approver {} is listed twice for stage {stage}",
                            excerpt(&a.name)
                        ),
                    ));
                }
                let key = RelPath::parse(&a.key).unwrap_or_else(|why| {
                    self.diagnostics.push(
                        Diagnostic::new(
                            "model/path",
                            pointer_push(&entry, "key"),
                            format!("path {} {why}", excerpt(&a.key)),
                        )
                        .with_help("write the public key's path relative to the cookbook's directory, inside it"),
                    );
                    // Refused here, so `load` does not look for it on disk.
                    RelPath::default()
                });
                listed.push(Approver {
                    name: a.name.clone(),
                    key,
                });
            }
            approvers.insert(stage, listed);
        }
        approvers
    }

    /// The checkpoint stage: the cookbook's, else the default one when it is a stage, else the
    /// last stage.
    fn checkpoint(&mut self, lw: &LifecycleWire) -> Name {
        let stages = self.stages;
        match &lw.checkpoint {
            Some(c) => self.stage(|| "/lifecycle/checkpoint".to_owned(), c, "checkpoint"),
            None => stages
                .iter()
                .find(|s| s.as_str() == DEFAULT_CHECKPOINT)
                .cloned()
                .or(stages.last().cloned()),
        }
        .or_else(|| stages.first().cloned())
        .unwrap_or_else(|| Name::parse(DEFAULT_CHECKPOINT).expect("valid name"))
    }

    /// Per stage, per container, the runtime settings that stage overrides.
    fn stage_config(
        &mut self,
        wire: &CookbookWire,
        lw: &LifecycleWire,
    ) -> BTreeMap<Name, BTreeMap<Name, RuntimeOverride>> {
        let mut stage_config = BTreeMap::new();
        for (stage, config) in &lw.stage_config {
            let at = pointer_push("/lifecycle/stage_config", stage);
            let Some(stage) = self.stage(|| at.clone(), stage, "stage_config") else {
                continue;
            };
            let mut containers = BTreeMap::new();
            for (c, r) in &config.containers {
                let at = pointer_push(&pointer_push(&at, "containers"), c);
                let what = format!("stage_config of `{stage}`");
                if let Some(c) = self.container(wire, || at.clone(), c, &what) {
                    let listening = crate::model::pod::listening(&wire.containers[c.as_str()]);
                    containers.insert(c, self.runtime(&at, r, &listening));
                }
            }
            stage_config.insert(stage, containers);
        }
        stage_config
    }

    /// Each container's runtime needs: the capabilities it requires and its health check.
    fn container_runtimes(&mut self, wire: &CookbookWire) -> BTreeMap<Name, ContainerRuntime> {
        let mut containers = BTreeMap::new();
        for (key, c) in &wire.containers {
            let Some(name) = Name::parse(key) else {
                continue;
            };
            let at = pointer_push("/containers", key);
            let health = self.health(&at, c.health.as_ref());
            let stop_grace = self.stop_grace(&at, c.stop_grace.as_deref());
            let pod = PodCheck {
                wire,
                runtimes: &BTreeMap::new(),
                diagnostics: self.diagnostics,
            }
            .pod(key, c);
            let mut mounts = BTreeMap::new();
            let mut paths = BTreeSet::new();
            for (volume, path) in &c.mounts {
                let p = pointer_push(&pointer_push(&at, "mounts"), volume);
                if !paths.insert(path.as_str()) {
                    self.diagnostics.push(Diagnostic::new(
                        "model/mount",
                        p,
                        format!("container `{key}` mounts two volumes at {}", excerpt(path)),
                    ));
                    continue;
                }
                mounts.extend(Name::parse(volume).map(|v| (v, path.clone())));
            }
            containers.insert(
                name,
                ContainerRuntime {
                    require: c.require.iter().cloned().collect(),
                    health,
                    stop_grace,
                    pod,
                    mounts,
                    ports: crate::model::pod::listening(c),
                },
            );
        }
        containers
    }

    /// The federation's sites, each checked against the containers it deploys.
    fn sites(
        &mut self,
        wire: &CookbookWire,
        project: &Name,
        deploys: &BTreeMap<&Name, BTreeSet<Name>>,
        containers: &BTreeMap<Name, ContainerRuntime>,
    ) -> BTreeMap<Name, SiteDeploy> {
        let mut sites = BTreeMap::new();
        for (key, s) in wire.federation.iter().flat_map(|f| &f.sites) {
            let Some(name) = Name::parse(key) else {
                continue;
            };
            let at = pointer_push("/federation/sites", key);
            let site = self.site(&at, name.clone(), s);
            if matches!(site.target, Some(Target::Kubernetes(_))) {
                self.kubernetes_names(&at, project, &site, deploys.get(&name), wire, containers);
            }
            for container in deploys.get(&name).into_iter().flatten() {
                if let Some(runtime) = containers.get(container) {
                    self.capabilities(&at, s, &site, container, runtime);
                }
            }
            sites.insert(name, site);
        }
        sites
    }

    /// A located error when `site` lacks a capability `container` requires.
    fn capabilities(
        &mut self,
        at: &str,
        s: &SiteWire,
        site: &SiteDeploy,
        container: &Name,
        runtime: &ContainerRuntime,
    ) {
        let missing: Vec<&str> = runtime
            .require
            .difference(&site.capabilities)
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return;
        }
        let name = &site.name;
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.diagnostics.push(
            Diagnostic::new(
                "model/capability",
                if s.capabilities.is_empty() {
                    at.to_owned()
                } else {
                    pointer_push(at, "capabilities")
                },
                format!(
                    "site `{name}` cannot run container `{container}`: it requires {list}, which the site does not offer"
                ),
            )
            .with_help(format!(
                "add {list} to the site's capabilities if it has them, or run `{container}` on another site"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(duration("5"), None);
        assert_eq!(clock("23:59"), Some(23 * 60 + 59));
        assert_eq!(clock("24:00"), None);
        assert_eq!(memory("64m"), Some(64 << 20));
        assert_eq!(memory("1000"), Some(1000));
        let p = published("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_deref(), p.host, p.container, p.protocol),
            (Some("127.0.0.1"), 8080, 80, "udp".to_owned())
        );
        assert_eq!(published("0:80"), None);
        assert_eq!(published("999.1.1.1:80:80"), None);
    }

    #[test]
    fn kubernetes_names_carry_the_site_and_fit_a_dns_label() {
        assert_eq!(
            kubernetes_name("shop", "eu", "dev", "api"),
            "shop-eu-dev-api"
        );
        let long = "a".repeat(60);
        let one = kubernetes_name(&long, "site", "dev", "api");
        let other = kubernetes_name(&long, "site", "dev", "web");
        assert_eq!(one.len(), KUBERNETES_NAME_MAX);
        assert!(is_dns_label(&one) && is_dns_label(&other), "{one} {other}");
        assert_ne!(one, other, "shortened names stay distinct");
        assert_eq!(one, kubernetes_name(&long, "site", "dev", "api"), "stable");
        // A cut that would end in `-` drops it: the label still ends in an alphanumeric.
        let dashed = kubernetes_name(&"b".repeat(51), "s", "dev", "api");
        assert!(is_dns_label(&dashed), "{dashed}");
    }

    #[test]
    fn probe_paths_are_rfc_3986_paths_and_queries() {
        for ok in [
            "/",
            "/index.html",
            "/cgi-bin/orders?x=1&y=2",
            "/a;b=c/%7Bx%7D",
            "/$(touch$IFS/tmp/x)",
            "/~user/@:!*'+,",
        ] {
            assert_eq!(HttpPath::parse(ok).map(String::from), Ok(ok.to_owned()));
        }
        use HttpPathError as E;
        let refused = [
            ("index.html", E::NoSlash),
            ("", E::NoSlash),
            ("/a b", E::Character { found: ' ', at: 2 }),
            ("/a\tb", E::Character { found: '\t', at: 2 }),
            (
                "/a\u{1}",
                E::Character {
                    found: '\u{1}',
                    at: 2,
                },
            ),
            ("/x`id`", E::Character { found: '`', at: 2 }),
            ("/a|b", E::Character { found: '|', at: 2 }),
            ("/a>b", E::Character { found: '>', at: 2 }),
            ("/${IFS}", E::Character { found: '{', at: 2 }),
            ("/#top", E::Character { found: '#', at: 1 }),
            ("/é", E::Character { found: 'é', at: 1 }),
            ("/%zz", E::Escape { at: 1 }),
            ("/%4", E::Escape { at: 1 }),
        ];
        for (bad, why) in refused {
            assert_eq!(HttpPath::parse(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            HttpPath::parse(&format!("/{}", "a".repeat(HTTP_PATH_MAX))),
            Err(E::TooLong)
        );
        // A record read back is checked as the cookbook was.
        let probe: Result<Probe, _> =
            serde_json::from_str(r#"{"http": {"port": 80, "path": "/x;reboot now"}}"#);
        assert!(probe.is_err());
        assert_eq!(
            E::Character { found: '\t', at: 2 }.to_string(),
            "has the character U+0009 at byte 2, which a URL path or query cannot hold"
        );
    }
}
