//! Serde types mirroring the latest format version's JSON exactly.
//!
//! Only `model::cookbook` reads these, converting them once into the validated model. The schema
//! has already refused unknown keys; `deny_unknown_fields` repeats it so that the two never drift.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookbookWire {
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    pub manifest_version: String,
    /// Optional since the skeleton of the format has none: the directory's name stands in.
    pub project: Option<ProjectWire>,
    #[serde(default)]
    pub applications: BTreeMap<String, ApplicationWire>,
    pub containers: BTreeMap<String, ContainerWire>,
    #[serde(default)]
    pub packaging: PackagingWire,
    pub federation: Option<FederationWire>,
    /// Format 1.1: stages, progression, checkpoints, rollback, per-stage runtime settings.
    pub lifecycle: Option<LifecycleWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectWire {
    pub name: String,
    pub repository: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationWire {
    pub language: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub entrypoint: Option<String>,
    pub dependencies: Option<DependenciesWire>,
    #[serde(default)]
    pub build_commands: Vec<String>,
    pub run_command: Option<RunCommandWire>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// An application's dependencies: package specs, or the name of a dependency file in its source.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DependenciesWire {
    Packages(Vec<String>),
    File(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RunCommandWire {
    Shell(String),
    Exec(Vec<String>),
}

/// Both container kinds in one struct: the schema has already checked which keys go together
/// (a `dockerfile` key selects the Dockerfile-based kind).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerWire {
    pub base_image: Option<String>,
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub ports: Vec<Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub dockerfile: Option<String>,
    pub context: Option<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub ci_name: Option<String>,
    #[serde(default)]
    pub ci_capabilities: Vec<String>,
    /// Format 1.1 (runtime only, never hashed): capabilities a site must offer.
    #[serde(default)]
    pub require: Vec<String>,
    /// Format 1.1 (runtime only, never hashed): how to tell the container is healthy.
    pub health: Option<HealthWire>,
    /// Format 1.1 (runtime only, never hashed): how long a stop waits after the stop signal
    /// before killing the container.
    pub stop_grace: Option<String>,
    /// Format 1.1 (runtime only): containers run to completion, in order, before this one.
    #[serde(default)]
    pub init: Vec<String>,
    /// Format 1.1 (runtime only): containers started with this one, in its network namespace.
    #[serde(default)]
    pub sidecars: Vec<String>,
    /// Format 1.1 (runtime only): the volumes of this container's pod.
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeWire>,
    /// Format 1.1 (runtime only): pod volume → where this container sees it.
    #[serde(default)]
    pub mounts: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeWire {
    #[serde(default)]
    pub persistent: bool,
    pub size: Option<String>,
    pub storage_class: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagingWire {
    pub registry: Option<String>,
    pub tagging: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub latest: bool,
    pub build_order: Option<Vec<String>>,
    #[serde(default)]
    pub builders: Vec<BuilderWire>,
}

/// A builder of a pool (format 1.1): an engine, with a name for reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderWire {
    pub name: Option<String>,
    pub host: Option<String>,
    pub context: Option<String>,
    pub tls: Option<TlsWire>,
}

/// A TCP engine's TLS files (paths relative to the cookbook's directory).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsWire {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationWire {
    #[serde(default)]
    pub sites: BTreeMap<String, SiteWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteWire {
    pub containers: Vec<String>,
    /// Format 1.1: where and what the site is.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub target: Option<TargetWire>,
    #[serde(default)]
    pub stages: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub schedule: Vec<WindowWire>,
    /// Format 1.1: where a Docker site reads the secrets its stages reference.
    pub secrets: Option<SecretsWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsWire {
    pub directory: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetWire {
    /// Exactly one of the two (the schema says so).
    pub docker: Option<DockerTargetWire>,
    pub kubernetes: Option<KubernetesTargetWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesTargetWire {
    pub context: Option<String>,
    pub namespace: String,
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub create_namespace: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerTargetWire {
    /// Exactly one of `host` and `context` (the schema says so).
    pub host: Option<String>,
    pub context: Option<String>,
    pub tls: Option<TlsWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowWire {
    #[serde(default)]
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthWire {
    pub command: Option<RunCommandWire>,
    pub http: Option<HttpProbeWire>,
    pub tcp: Option<TcpProbeWire>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbeWire {
    pub port: u16,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbeWire {
    pub port: u16,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleWire {
    pub stages: Option<Vec<String>>,
    #[serde(default)]
    pub progression: BTreeMap<String, String>,
    pub checkpoint: Option<String>,
    pub rollback: Option<RollbackWire>,
    #[serde(default)]
    pub stage_config: BTreeMap<String, StageConfigWire>,
    #[serde(default)]
    pub approvers: BTreeMap<String, Vec<ApproverWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverWire {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackWire {
    pub on_failure: Option<String>,
    pub keep: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfigWire {
    #[serde(default)]
    pub containers: BTreeMap<String, RuntimeWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeWire {
    #[serde(default)]
    pub env: BTreeMap<String, EnvValueWire>,
    #[serde(default)]
    pub ports: Vec<String>,
    pub replicas: Option<u32>,
    pub resources: Option<ResourcesWire>,
    pub ingress: Option<IngressWire>,
}

/// A stage's environment value: text, or a reference to a secret the site holds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EnvValueWire {
    Text(String),
    Secret(SecretWire),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretWire {
    pub secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressWire {
    pub host: String,
    pub path: Option<String>,
    pub port: Option<u16>,
    pub tls_secret: Option<String>,
    pub class: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesWire {
    pub cpus: Option<f64>,
    pub memory: Option<String>,
}
