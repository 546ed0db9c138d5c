//! What a site's target offers: `cookbook site detect`, deploy's refusal of a Docker site that
//! declares a capability its engine does not have, and of a Kubernetes stage whose objects need
//! what its cluster lacks.
//!
//! Pipeline position: the engine's `/info` answer, or a cluster's discovery (version, API
//! groups and resources, storage and ingress classes) → **`Detected`** (pure, tested with plain
//! values) → printed, or compared with a site's declared capabilities (Docker) or with what a
//! stage's objects need (`Needs`, Kubernetes) before a deploy.
//!
//! On a Docker engine only capabilities this module can observe are checked: the CPU
//! architecture (`amd64`, `arm64`, …, as Docker names platforms) and `gpu` (an NVIDIA runtime
//! registered with the engine). Any other declared capability (`ssd`, `eu-west`) is the site
//! author's word and is not refused. A cluster's nodes are not observed: declared capabilities
//! are taken on their word there, and what is checked is the API the stage's objects use.

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::SystemInfo;

/// The capabilities this module can observe.
pub const OBSERVABLE: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "gpu",
];

/// What a target offers, per kind of target (serialized flat, with `target`: `docker` or
/// `kubernetes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "target", rename_all = "lowercase")]
pub enum Detected {
    Docker(Engine),
    Kubernetes(Cluster),
}

/// A Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Engine {
    /// Docker's platform name for the engine's CPU (`amd64`, `arm64`).
    pub architecture: String,
    pub cores: i64,
    pub memory_bytes: i64,
    pub engine_version: String,
    pub os: String,
    pub gpu: bool,
}

/// `uname -m` names (what `/info` reports) to Docker platform names.
fn platform(machine: &str) -> String {
    match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv6l" | "arm" => "arm",
        "i386" | "i686" => "386",
        other => other,
    }
    .to_owned()
}

impl Detected {
    pub fn from_info(info: &SystemInfo) -> Detected {
        Detected::Docker(Engine::from_info(info))
    }

    /// The observable capabilities the target has (a cluster's: none observed).
    pub fn capabilities(&self) -> BTreeSet<String> {
        match self {
            Detected::Docker(e) => e.capabilities(),
            Detected::Kubernetes(_) => BTreeSet::new(),
        }
    }

    /// The declared capabilities this target is seen not to have.
    pub fn missing<'a>(&self, declared: &'a BTreeSet<String>) -> Vec<&'a str> {
        match self {
            Detected::Docker(e) => e.missing(declared),
            Detected::Kubernetes(_) => Vec::new(),
        }
    }
}

impl Engine {
    pub fn from_info(info: &SystemInfo) -> Engine {
        Engine {
            architecture: platform(info.architecture.as_deref().unwrap_or("unknown")),
            cores: info.ncpu.unwrap_or(0),
            memory_bytes: info.mem_total.unwrap_or(0),
            engine_version: info.server_version.clone().unwrap_or_default(),
            os: info.os_type.clone().unwrap_or_default(),
            gpu: info
                .runtimes
                .as_ref()
                .is_some_and(|r| r.keys().any(|k| k.contains("nvidia"))),
        }
    }

    /// The observable capabilities the engine has.
    pub fn capabilities(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::from([self.architecture.clone()]);
        if self.gpu {
            out.insert("gpu".to_owned());
        }
        out
    }

    /// The declared capabilities this engine is seen not to have.
    pub fn missing<'a>(&self, declared: &'a BTreeSet<String>) -> Vec<&'a str> {
        let have = self.capabilities();
        declared
            .iter()
            .filter(|c| OBSERVABLE.contains(&c.as_str()) && !have.contains(*c))
            .map(String::as_str)
            .collect()
    }
}

/// A Kubernetes cluster, as its API server describes itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cluster {
    /// `v1.34.0` (`/version`'s `gitVersion`).
    pub server_version: String,
    /// `/version`'s minor version, its digits (`29+` on some providers is 29).
    pub minor: Option<u32>,
    /// Each served group version (`v1`, `apps/v1`) with its resources (`deployments`), sorted.
    pub groups: BTreeMap<String, Vec<String>>,
    pub storage_classes: Vec<Class>,
    pub ingress_classes: Vec<Class>,
}

/// A StorageClass or IngressClass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Class {
    pub name: String,
    /// Its `…/is-default-class` annotation is `true`.
    pub default: bool,
    /// Its provisioner (StorageClass) or controller (IngressClass).
    pub by: Option<String>,
}

/// What a stage's objects need from a cluster (derived from them by the cluster edge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The `ingressClassName` of each Ingress (`None`: the default class).
    pub ingress_classes: Vec<Option<String>>,
    /// The `storageClassName` of each PersistentVolumeClaim (`None`: the default class).
    pub storage_classes: Vec<Option<String>>,
    /// Some pod runs a native sidecar (an init container with `restartPolicy: Always`).
    pub sidecars: bool,
    /// Some unit has a PodDisruptionBudget.
    pub budgets: bool,
}

/// The first server minor version with native sidecars enabled by default (Kubernetes 1.29,
/// `SidecarContainers` beta: https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/).
pub const SIDECARS_SINCE: u32 = 29;

impl Cluster {
    fn serves(&self, group_version: &str, resource: &str) -> bool {
        self.groups
            .get(group_version)
            .is_some_and(|r| r.iter().any(|x| x == resource))
    }

    /// What the cluster lacks of `needs`, each in words naming it; empty when it has it all.
    pub fn lacks(&self, needs: &Needs) -> Vec<String> {
        let mut out = Vec::new();
        let class =
            |kind: &str, classes: &[Class], wanted: &[Option<String>], out: &mut Vec<String>| {
                let mut seen = BTreeSet::new();
                for w in wanted {
                    if !seen.insert(w.clone()) {
                        continue;
                    }
                    match w {
                        Some(name) if !classes.iter().any(|c| &c.name == name) => {
                            out.push(format!("{kind} `{name}` (it has: {})", listed(classes)))
                        }
                        None if !classes.iter().any(|c| c.default) => {
                            out.push(format!("a default {kind} (it has: {})", listed(classes)))
                        }
                        _ => {}
                    }
                }
            };
        if !needs.ingress_classes.is_empty() {
            if self.serves("networking.k8s.io/v1", "ingresses") {
                class(
                    "IngressClass",
                    &self.ingress_classes,
                    &needs.ingress_classes,
                    &mut out,
                );
            } else {
                out.push("the API networking.k8s.io/v1 ingresses (for an Ingress)".to_owned());
            }
        }
        if !needs.storage_classes.is_empty() {
            class(
                "StorageClass",
                &self.storage_classes,
                &needs.storage_classes,
                &mut out,
            );
        }
        if needs.sidecars && self.minor.is_none_or(|m| m < SIDECARS_SINCE) {
            out.push(format!(
                "native sidecars, which need Kubernetes 1.{SIDECARS_SINCE} or later (it runs {})",
                self.server_version
            ));
        }
        if needs.budgets && !self.serves("policy/v1", "poddisruptionbudgets") {
            out.push(
                "the API policy/v1 poddisruptionbudgets (for a PodDisruptionBudget)".to_owned(),
            );
        }
        out
    }
}

fn listed(classes: &[Class]) -> String {
    if classes.is_empty() {
        return "none".to_owned();
    }
    classes
        .iter()
        .map(|c| {
            if c.default {
                format!("{} (default)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The digits a `/version` minor starts with (`29+` → 29).
pub fn minor_version(minor: &str) -> Option<u32> {
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_and_missing() {
        let info = SystemInfo {
            architecture: Some("x86_64".to_owned()),
            ncpu: Some(4),
            mem_total: Some(8 << 30),
            server_version: Some("20.10.24".to_owned()),
            os_type: Some("linux".to_owned()),
            ..Default::default()
        };
        let Detected::Docker(e) = Detected::from_info(&info) else {
            panic!("an engine")
        };
        assert_eq!(e.architecture, "amd64");
        let d = Detected::Docker(e);
        assert!(matches!(&d, Detected::Docker(e) if !e.gpu));
        assert_eq!(d.capabilities(), BTreeSet::from(["amd64".to_owned()]));
        let declared: BTreeSet<String> = ["amd64", "gpu", "ssd", "arm64"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        // `ssd` cannot be observed: taken on the author's word.
        assert_eq!(d.missing(&declared), vec!["arm64", "gpu"]);

        let mut info = info;
        info.architecture = Some("aarch64".to_owned());
        info.runtimes = Some(std::collections::HashMap::from([(
            "nvidia".to_owned(),
            Default::default(),
        )]));
        let d = Detected::from_info(&info);
        assert_eq!(
            d.capabilities(),
            BTreeSet::from(["arm64".to_owned(), "gpu".to_owned()])
        );
    }

    fn cluster(minor: u32) -> Cluster {
        let class = |name: &str, default| Class {
            name: name.to_owned(),
            default,
            by: None,
        };
        Cluster {
            server_version: format!("v1.{minor}.0"),
            minor: Some(minor),
            groups: BTreeMap::from([
                ("v1".to_owned(), vec!["services".to_owned()]),
                (
                    "networking.k8s.io/v1".to_owned(),
                    vec!["ingresses".to_owned()],
                ),
            ]),
            storage_classes: vec![class("standard", true), class("fast", false)],
            ingress_classes: vec![class("nginx", false)],
        }
    }

    #[test]
    fn a_cluster_lacks_what_it_does_not_serve_or_name() {
        let all = Needs {
            ingress_classes: vec![Some("nginx".to_owned())],
            storage_classes: vec![None, Some("fast".to_owned())],
            sidecars: true,
            budgets: false,
        };
        assert_eq!(cluster(29).lacks(&all), Vec::<String>::new());
        let needs = Needs {
            ingress_classes: vec![None, Some("traefik".to_owned())],
            storage_classes: vec![Some("slow".to_owned())],
            sidecars: true,
            budgets: true,
        };
        assert_eq!(
            cluster(28).lacks(&needs),
            vec![
                "a default IngressClass (it has: nginx)",
                "IngressClass `traefik` (it has: nginx)",
                "StorageClass `slow` (it has: standard (default), fast)",
                "native sidecars, which need Kubernetes 1.29 or later (it runs v1.28.0)",
                "the API policy/v1 poddisruptionbudgets (for a PodDisruptionBudget)",
            ]
        );
        let mut bare = cluster(34);
        bare.groups.remove("networking.k8s.io/v1");
        bare.storage_classes.clear();
        let needs = Needs {
            ingress_classes: vec![None],
            storage_classes: vec![None],
            ..Needs::default()
        };
        assert_eq!(
            bare.lacks(&needs),
            vec![
                "the API networking.k8s.io/v1 ingresses (for an Ingress)",
                "a default StorageClass (it has: none)",
            ]
        );
        assert_eq!(minor_version("29+"), Some(29));
        assert_eq!(minor_version("x"), None);
    }
}
