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
    pub project: ProjectWire,
    #[serde(default)]
    pub applications: BTreeMap<String, ApplicationWire>,
    pub containers: BTreeMap<String, ContainerWire>,
    #[serde(default)]
    pub packaging: PackagingWire,
    pub federation: Option<FederationWire>,
    /// Format 1.0 reserves `lifecycle` as an empty placeholder (the schema refuses any content);
    /// it is read only so that the two stay in step.
    pub lifecycle: Option<serde_json::Map<String, Value>>,
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
}
