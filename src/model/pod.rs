//! Format 1.1's pods, volumes, secrets by reference and ingress: what a deployed container runs
//! beside it and what it keeps.
//!
//! Pipeline position: wire types → **these checks** → part of the sealed `Cookbook`'s lifecycle
//! (`ContainerRuntime::pod`, `::mounts`, `::ports`; `RuntimeOverride::env`, `::ingress`;
//! `SiteDeploy::secrets`). Pure like the rest of `model`; runtime only, never hashed.
//!
//! A pod is a deployed container (its *main*) with the containers it names in `init` (run to
//! completion, in order, before it starts) and `sidecars` (started with it, in its network
//! namespace), and the `volumes` they share. Members are containers of the cookbook like any
//! other — built, hashed and locked as such — that never run alone.
//!
//! Invariants, once a `Cookbook` exists: every member names another container; a member has no
//! members or volumes of its own; no container depends on a member and no site lists one (they
//! run inside their pods); a container's `mounts` name volumes of its pod (a member's: of every
//! pod it is in), at absolute, distinct paths; a pod's members' own dependencies never lead back
//! to it; a container with a persistent volume runs one replica in every stage; a member's
//! stage settings hold only `env`; an `ingress` port is one the container listens on.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::diagnostic::{excerpt, pointer_push, Diagnostic};
use crate::model::cookbook::{suggest, Port, Protocol};
use crate::model::lifecycle::{ContainerRuntime, RuntimeOverride};
use crate::model::name::Name;
use crate::model::wire::{ContainerWire, CookbookWire, IngressWire, VolumeWire};

/// A container's pod: what runs with it (empty for a pod of one, the usual case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pod {
    /// Run to completion, in this order, before the main container starts; each must exit 0.
    pub init: Vec<Name>,
    /// Started with the main container, sharing its network namespace (`localhost`).
    pub sidecars: Vec<Name>,
    /// The pod's volumes, by name.
    pub volumes: BTreeMap<Name, Volume>,
}

impl Pod {
    pub fn is_empty(&self) -> bool {
        self.init.is_empty() && self.sidecars.is_empty() && self.volumes.is_empty()
    }

    /// Every member, init containers first (in order), then sidecars.
    pub fn members(&self) -> impl Iterator<Item = (Role, &Name)> {
        self.init
            .iter()
            .map(|n| (Role::Init, n))
            .chain(self.sidecars.iter().map(|n| (Role::Sidecar, n)))
    }

    pub fn has_persistent(&self) -> bool {
        self.volumes.values().any(|v| v.persistent.is_some())
    }
}

/// What a member is to its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Init,
    Sidecar,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Sidecar => "sidecar",
        }
    }
}

/// A volume of a pod: scratch (lives as long as the pod: a Docker volume recreated with it, an
/// `emptyDir`), or persistent (kept across redeploys, new images and rollbacks: a Docker named
/// volume never removed by a deploy, a PersistentVolumeClaim).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Volume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<Persistent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Persistent {
    /// A Kubernetes quantity (`1Gi`, `500Mi`): the claim's request. Docker volumes have no size.
    pub size: String,
    /// The claim's storage class (`None`: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// The size of a persistent volume that names none.
pub const DEFAULT_VOLUME_SIZE: &str = "1Gi";

/// An environment value of a stage: text, or a reference to a secret the site holds, whose value
/// is read only where the container is started (never hashed, locked, rendered or reported).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Text(String),
    Secret { secret: SecretRef },
}

impl EnvValue {
    pub fn secret(&self) -> Option<&SecretRef> {
        match self {
            EnvValue::Text(_) => None,
            EnvValue::Secret { secret } => Some(secret),
        }
    }
}

impl From<&str> for EnvValue {
    fn from(s: &str) -> Self {
        EnvValue::Text(s.to_owned())
    }
}

/// `NAME/KEY`: key `KEY` of secret `NAME`. `NAME` is a DNS-1123 subdomain (a Kubernetes Secret's
/// name, and a directory's on a Docker site), `KEY` is made of `-`, `.`, `_` and ASCII letters and
/// digits but is not `.` or `..` (a Secret's data key, and a file's name): either is safe as one
/// path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretRef {
    name: String,
    key: String,
}

/// Why a secret reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("is not NAME/KEY")]
    Shape,
    #[error(
        "names secret {0}, which is not a DNS-1123 subdomain (a-z, 0-9, `-`, `.`; at most 253)"
    )]
    Name(String),
    #[error("names key {0}, which is not made of a-z, A-Z, 0-9, `-`, `_` and `.` (at most 253, not `.` or `..`)")]
    Key(String),
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, SecretRefError> {
        let (name, key) = s.split_once('/').ok_or(SecretRefError::Shape)?;
        if !is_dns_subdomain(name) {
            return Err(SecretRefError::Name(excerpt(name)));
        }
        let key_ok = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if !key_ok {
            return Err(SecretRefError::Key(excerpt(key)));
        }
        Ok(SecretRef {
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.key)
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SecretRef::parse(&s).map_err(|e| format!("secret reference {} {e}", excerpt(&s)))
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

/// A stage's Ingress for a container (Kubernetes sites; a Docker site publishes ports instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ingress {
    /// A DNS name (the schema checks its shape).
    pub host: String,
    /// A path prefix, `/` by default.
    pub path: String,
    /// The container port it routes to (one the container listens on).
    pub port: u16,
    /// The Secret holding the host's certificate (`kubernetes.io/tls`), for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// The IngressClass (`None`: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

pub(crate) fn volume(v: &VolumeWire) -> Volume {
    Volume {
        persistent: v.persistent.then(|| Persistent {
            size: v
                .size
                .clone()
                .unwrap_or_else(|| DEFAULT_VOLUME_SIZE.to_owned()),
            storage_class: v.storage_class.clone(),
        }),
    }
}

/// The ports a container listens on, as the cookbook says: a generated container's `ports`
/// (also its image's `EXPOSE`), a Dockerfile container's `ports` (runtime only).
pub(crate) fn listening(c: &ContainerWire) -> Vec<Port> {
    let mut out: Vec<Port> = c
        .ports
        .iter()
        .filter_map(|p| {
            let (number, protocol) = match p {
                serde_json::Value::Number(n) => (n.as_u64()?, Protocol::Tcp),
                serde_json::Value::String(s) => {
                    let (n, proto) = s.split_once('/').unwrap_or((s, "tcp"));
                    let protocol = match proto {
                        "udp" => Protocol::Udp,
                        "sctp" => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    };
                    (n.parse().ok()?, protocol)
                }
                _ => return None,
            };
            Some(Port {
                number: u16::try_from(number).ok().filter(|&n| n > 0)?,
                protocol,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The pod checks that need every container's runtime and every stage's settings.
pub(crate) struct PodCheck<'a> {
    pub wire: &'a CookbookWire,
    pub runtimes: &'a BTreeMap<Name, ContainerRuntime>,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl PodCheck<'_> {
    fn push(&mut self, code: &'static str, at: String, message: String, help: Option<String>) {
        let mut d = Diagnostic::new(code, at, message);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.diagnostics.push(d);
    }

    /// The pod of the wire container `key` (members resolved to names, unknown ones reported).
    pub(crate) fn pod(&mut self, key: &str, c: &ContainerWire) -> Pod {
        let at = pointer_push("/containers", key);
        let mut seen = BTreeSet::new();
        let mut members = |field: &str, list: &[String], this: &mut Self| -> Vec<Name> {
            let mut out = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let p = pointer_push(&pointer_push(&at, field), &i.to_string());
                if m == key {
                    this.push(
                        "model/pod",
                        p,
                        format!("container `{key}` names itself in its `{field}`"),
                        None,
                    );
                    continue;
                }
                if !this.wire.containers.contains_key(m) {
                    let help = suggest(
                        m,
                        "containers",
                        this.wire.containers.keys().map(String::as_str),
                    );
                    this.push(
                        "model/unknown-container",
                        p,
                        format!(
                            "`{field}` of `{key}` names unknown container {}",
                            excerpt(m)
                        ),
                        help,
                    );
                    continue;
                }
                if !seen.insert(m.clone()) {
                    this.push(
                        "model/pod",
                        p,
                        format!("container `{m}` is named twice in the pod of `{key}`"),
                        Some(
                            "a container is an init container or a sidecar of a pod, once"
                                .to_owned(),
                        ),
                    );
                    continue;
                }
                out.extend(Name::parse(m));
            }
            out
        };
        let init = members("init", &c.init, self);
        let sidecars = members("sidecars", &c.sidecars, self);
        let volumes = c
            .volumes
            .iter()
            .filter_map(|(n, v)| Some((Name::parse(n)?, volume(v))))
            .collect();
        Pod {
            init,
            sidecars,
            volumes,
        }
    }

    /// The checks across pods: nesting, members run alone, mounts, replicas of persistent
    /// volumes, members' stage settings, cycles through members' dependencies.
    pub(crate) fn across(
        &mut self,
        stage_config: &BTreeMap<Name, BTreeMap<Name, RuntimeOverride>>,
    ) {
        // member → the pods it is in.
        let mut pods_of: BTreeMap<&Name, Vec<&Name>> = BTreeMap::new();
        for (main, rt) in self.runtimes {
            for (_, m) in rt.pod.members() {
                pods_of.entry(m).or_default().push(main);
            }
        }
        let runtimes = self.runtimes;
        for (member, pods) in &pods_of {
            let at = pointer_push("/containers", member.as_str());
            let rt = &runtimes[*member];
            if !rt.pod.is_empty() {
                self.push(
                    "model/pod",
                    at.clone(),
                    format!(
                        "container `{member}` runs in the pod of `{}` and cannot have a pod of its own (init, sidecars or volumes)",
                        pods[0]
                    ),
                    Some("declare the volumes on the pod's main container, and its members there too".to_owned()),
                );
            }
            for volume in rt.mounts.keys() {
                for pod in pods {
                    if !runtimes[*pod].pod.volumes.contains_key(volume) {
                        self.push(
                            "model/mount",
                            pointer_push(&pointer_push(&at, "mounts"), volume.as_str()),
                            format!("container `{member}` mounts volume `{volume}`, which the pod of `{pod}` does not have"),
                            Some(format!("declare it in `volumes` of `{pod}`")),
                        );
                    }
                }
            }
        }
        for (key, c) in &self.wire.containers {
            let at = pointer_push("/containers", key);
            for (i, d) in c.depends_on.iter().enumerate() {
                if let Some((_, pods)) = pods_of.iter().find(|(m, _)| m.as_str() == d) {
                    self.push(
                        "model/pod",
                        pointer_push(&pointer_push(&at, "depends_on"), &i.to_string()),
                        format!("container `{key}` depends on `{d}`, which runs only inside the pod of `{}`", pods[0]),
                        Some(format!("depend on `{}` instead", pods[0])),
                    );
                }
            }
            let Some(name) = Name::parse(key) else {
                continue;
            };
            let Some(rt) = runtimes.get(&name) else {
                continue;
            };
            if pods_of.contains_key(&name) {
                continue;
            }
            for volume in rt.mounts.keys() {
                if !rt.pod.volumes.contains_key(volume) {
                    let help = suggest(
                        volume.as_str(),
                        "volumes",
                        rt.pod.volumes.keys().map(Name::as_str),
                    );
                    self.push(
                        "model/mount",
                        pointer_push(&pointer_push(&at, "mounts"), volume.as_str()),
                        format!("container `{key}` mounts volume `{volume}`, which its pod does not have"),
                        help.or_else(|| Some(format!("declare it: \"volumes\": {{\"{volume}\": {{}}}}"))),
                    );
                }
            }
        }
        for (key, s) in self.wire.federation.iter().flat_map(|f| &f.sites) {
            for (i, c) in s.containers.iter().enumerate() {
                if let Some((_, pods)) = pods_of.iter().find(|(m, _)| m.as_str() == c) {
                    self.push(
                        "model/pod",
                        pointer_push(
                            &pointer_push(&pointer_push("/federation/sites", key), "containers"),
                            &i.to_string(),
                        ),
                        format!(
                            "site `{key}` lists `{c}`, which runs only inside the pod of `{}`",
                            pods[0]
                        ),
                        Some(format!("list `{}`: its pod brings `{c}`", pods[0])),
                    );
                }
            }
        }
        for (stage, containers) in stage_config {
            for (container, runtime) in containers {
                let at = pointer_push(
                    &pointer_push(
                        &pointer_push("/lifecycle/stage_config", stage.as_str()),
                        "containers",
                    ),
                    container.as_str(),
                );
                if let Some(pods) = pods_of.get(container) {
                    let extra = [
                        (!runtime.ports.is_empty()).then_some("ports"),
                        runtime.replicas.map(|_| "replicas"),
                        (runtime.nano_cpus.is_some() || runtime.memory.is_some())
                            .then_some("resources"),
                        runtime.ingress.as_ref().map(|_| "ingress"),
                    ];
                    for field in extra.into_iter().flatten() {
                        self.push(
                            "model/pod",
                            pointer_push(&at, field),
                            format!("`{container}` runs in the pod of `{}`: its `{field}` are the pod's", pods[0]),
                            Some(format!("set `{field}` on `{}` in this stage", pods[0])),
                        );
                    }
                }
                let persistent = runtimes
                    .get(container)
                    .is_some_and(|r| r.pod.has_persistent());
                if persistent && runtime.replicas.is_some_and(|r| r > 1) {
                    self.push(
                        "model/volume",
                        pointer_push(&at, "replicas"),
                        format!("`{container}` has a persistent volume: its data is one container's, so it runs one replica"),
                        Some("keep `replicas` at 1, or make the volume a scratch one".to_owned()),
                    );
                }
            }
        }
        self.cycles();
    }

    /// A pod's members' dependencies (run before the pod) never lead back to the pod.
    fn cycles(&mut self) {
        let deps = |n: &Name| -> Vec<Name> {
            self.wire
                .containers
                .get(n.as_str())
                .map(|c| c.depends_on.iter().filter_map(|d| Name::parse(d)).collect())
                .unwrap_or_default()
        };
        let mut found = Vec::new();
        for (main, rt) in self.runtimes {
            for (_, member) in rt.pod.members() {
                // Everything the member runs after, through pods (a dependency's own members).
                let mut seen = BTreeSet::new();
                let mut todo = deps(member);
                while let Some(n) = todo.pop() {
                    if &n == main {
                        found.push((main.clone(), member.clone()));
                        break;
                    }
                    if !seen.insert(n.clone()) {
                        continue;
                    }
                    todo.extend(deps(&n));
                    if let Some(r) = self.runtimes.get(&n) {
                        for (_, m) in r.pod.members() {
                            todo.extend(deps(m));
                        }
                    }
                }
            }
        }
        for (main, member) in found {
            self.push(
                "model/pod",
                pointer_push(&pointer_push("/containers", member.as_str()), "depends_on"),
                format!("`{member}` runs in the pod of `{main}`, but what it depends on depends on `{main}`: the pod could never start"),
                None,
            );
        }
    }
}

/// An ingress as written, checked against the container's ports (the default port: the one it
/// listens on, when it listens on exactly one).
pub(crate) fn ingress(
    at: &str,
    w: &IngressWire,
    listening: &[Port],
    published: &[u16],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Ingress> {
    let mut ports: BTreeSet<u16> = listening.iter().map(|p| p.number).collect();
    ports.extend(published.iter().copied());
    let port = match (w.port, ports.len()) {
        (Some(p), _) if ports.contains(&p) => p,
        (Some(p), _) => {
            let help = if ports.is_empty() {
                "list the port in the container's `ports`".to_owned()
            } else {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!("it listens on {}", list.join(", "))
            };
            diagnostics.push(
                Diagnostic::new(
                    "model/ingress",
                    pointer_push(&pointer_push(at, "ingress"), "port"),
                    format!(
                        "the ingress routes to port {p}, which the container does not listen on"
                    ),
                )
                .with_help(help),
            );
            return None;
        }
        (None, 1) => *ports.iter().next().expect("one port"),
        (None, _) => {
            diagnostics.push(
                Diagnostic::new(
                    "model/ingress",
                    pointer_push(at, "ingress"),
                    "the ingress names no `port`, and the container does not listen on exactly one",
                )
                .with_help("add \"port\": the container port it routes to"),
            );
            return None;
        }
    };
    if let Some(secret) = &w.tls_secret {
        if !is_dns_subdomain(secret) {
            diagnostics.push(Diagnostic::new(
                "model/ingress",
                pointer_push(&pointer_push(at, "ingress"), "tls_secret"),
                format!("tls_secret {} is not a DNS-1123 subdomain", excerpt(secret)),
            ));
        }
    }
    Some(Ingress {
        host: w.host.clone(),
        path: w.path.clone().unwrap_or_else(|| "/".to_owned()),
        port,
        tls_secret: w.tls_secret.clone(),
        class: w.class.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_are_one_path_component_each() {
        let r = SecretRef::parse("db-credentials/password").unwrap();
        assert_eq!((r.name(), r.key()), ("db-credentials", "password"));
        assert_eq!(r.to_string(), "db-credentials/password");
        for bad in [
            "nokey", "a/", "/k", "A/k", "a/..", "a/.", "a/b/c", "a/b c", "-a/k",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
        assert!(SecretRef::parse("a.b/TLS_KEY.pem").is_ok());
        let v: EnvValue = serde_json::from_str(r#"{"secret": "s/k"}"#).unwrap();
        assert_eq!(v.secret().map(ToString::to_string).as_deref(), Some("s/k"));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"secret":"s/k"}"#);
        let t: EnvValue = serde_json::from_str(r#""x""#).unwrap();
        assert_eq!(t, EnvValue::from("x"));
        assert!(serde_json::from_str::<EnvValue>(r#"{"secret": "../k"}"#).is_err());
    }
}
