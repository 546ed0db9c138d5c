//! The pod template of a unit's Deployment (pure): the main container, then its pod's members as
//! `initContainers` — the init containers in order, then the sidecars as native sidecars (init
//! containers with `restartPolicy: Always`, Kubernetes 1.29+) — and the pod's volumes
//! (`emptyDir` for scratch, the unit's PersistentVolumeClaim for a persistent one), each container
//! mounting the volumes its `mounts` name.
//!
//! Invariants: every image is the lock's, by digest; a secret is a `secretKeyRef` (its value
//! never passes through here); lists are in declaration order or `BTreeMap` order, so the same
//! `Instance` gives the same bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, PersistentVolumeClaimVolumeSource, PodSpec, Probe as KubeProbe,
    ResourceRequirements, SecretKeySelector, TCPSocketAction, Volume as KubeVolume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::deploy::desired::{Instance, Member};
use crate::model::lifecycle::{Health, Probe};
use crate::model::pod::{EnvValue, Role};
use crate::model::Name;

/// Whole seconds, rounded up, at least 1 (what probe fields take).
pub(super) fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX)
}

/// The probe of a health check; `None` for `running` (no probe). With `initial_delay`, failed
/// probes do not count during the grace period (Docker's start period).
pub(super) fn probe(health: &Health, initial_delay: bool) -> Option<KubeProbe> {
    let mut p = KubeProbe {
        period_seconds: Some(seconds(health.interval)),
        timeout_seconds: Some(seconds(health.timeout)),
        failure_threshold: Some(i32::try_from(health.retries.max(1)).unwrap_or(i32::MAX)),
        initial_delay_seconds: initial_delay.then(|| seconds(health.grace)),
        ..Default::default()
    };
    match &health.probe {
        Probe::Running => return None,
        Probe::Command(argv) => {
            p.exec = Some(ExecAction {
                command: Some(argv.clone()),
            })
        }
        Probe::Shell(s) => {
            p.exec = Some(ExecAction {
                command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()]),
            })
        }
        Probe::Http { port, path } => {
            p.http_get = Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: IntOrString::Int(i32::from(*port)),
                ..Default::default()
            })
        }
        Probe::Tcp { port } => {
            p.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(*port)),
                ..Default::default()
            })
        }
    }
    Some(p)
}

/// A sidecar's startup probe: the kubelet starts the next init container (and in the end the
/// main one) only once a native sidecar has *started*, which its startup probe decides. It allows
/// the grace period plus the retries, as the Docker backend waits for a sidecar's health.
fn startup_probe(health: &Health) -> Option<KubeProbe> {
    let mut p = probe(health, false)?;
    let period = health.interval.max(Duration::from_secs(1));
    let grace =
        u32::try_from(health.grace.as_millis().div_ceil(period.as_millis())).unwrap_or(u32::MAX);
    p.failure_threshold =
        Some(i32::try_from(health.retries.max(1).saturating_add(grace)).unwrap_or(i32::MAX));
    Some(p)
}

fn cpu(nano: i64) -> Quantity {
    Quantity(format!("{}m", (nano + 999_999) / 1_000_000))
}

fn memory(bytes: i64) -> Quantity {
    const MI: i64 = 1 << 20;
    Quantity(if bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    })
}

/// `tcp` → `TCP`: Kubernetes' spelling of a protocol.
pub(super) fn protocol(p: &str) -> String {
    p.to_ascii_uppercase()
}

/// An image by digest: the lock's repository (its tag dropped) `@` the digest.
pub(super) fn by_digest(image: &str, digest: &str) -> String {
    let repository = image
        .rsplit_once(':')
        .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
        .map_or(image, |(repo, _)| repo);
    format!("{repository}@{digest}")
}

/// The environment: text as a value, a secret as a `secretKeyRef` (the kubelet reads the value
/// from the namespace's Secret: it never passes through cookbook).
fn env(env: &BTreeMap<String, EnvValue>) -> Option<Vec<EnvVar>> {
    let vars = env.iter().map(|(k, v)| match v {
        EnvValue::Text(t) => EnvVar {
            name: k.clone(),
            value: Some(t.clone()),
            ..Default::default()
        },
        EnvValue::Secret { secret } => EnvVar {
            name: k.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name().to_owned(),
                    key: secret.key().to_owned(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    });
    (!env.is_empty()).then(|| vars.collect())
}

fn mounts(mounts: &BTreeMap<Name, String>) -> Option<Vec<VolumeMount>> {
    let list = mounts.iter().map(|(volume, path)| VolumeMount {
        name: volume.to_string(),
        mount_path: path.clone(),
        ..Default::default()
    });
    (!mounts.is_empty()).then(|| list.collect())
}

/// The main container: the image by digest, the stage's env and limits, the ports it listens on
/// (never a Docker site's host ports), its mounts, and the probes of its health check.
fn main(instance: &Instance) -> Container {
    let mut limits = BTreeMap::new();
    if let Some(n) = instance.nano_cpus {
        limits.insert("cpu".to_owned(), cpu(n));
    }
    if let Some(m) = instance.memory {
        limits.insert("memory".to_owned(), memory(m));
    }
    let ports = instance.listens.iter().map(|l| ContainerPort {
        container_port: i32::from(l.port),
        protocol: Some(protocol(&l.protocol)),
        ..Default::default()
    });
    Container {
        name: instance.container.to_string(),
        image: Some(by_digest(&instance.image, &instance.digest)),
        env: env(&instance.env),
        ports: (!instance.listens.is_empty()).then(|| ports.collect()),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        }),
        readiness_probe: probe(&instance.health, false),
        liveness_probe: probe(&instance.health, true),
        volume_mounts: mounts(&instance.mounts),
        ..Default::default()
    }
}

/// A member as an init container: an init container runs to completion (the API server refuses
/// probes on it); a sidecar is a native sidecar, restarted whenever it stops, with probes.
fn member(m: &Member) -> Container {
    let mut c = Container {
        name: m.container.to_string(),
        image: Some(by_digest(&m.image, &m.digest)),
        env: env(&m.env),
        volume_mounts: mounts(&m.mounts),
        ..Default::default()
    };
    if m.role == Role::Sidecar {
        c.restart_policy = Some("Always".to_owned());
        c.startup_probe = startup_probe(&m.health);
        c.readiness_probe = probe(&m.health, false);
        c.liveness_probe = probe(&m.health, false);
    }
    c
}

/// The pod's volumes: scratch ones as `emptyDir`, persistent ones as the claim `claims` names
/// for them (volume → claim name).
fn volumes(instance: &Instance, claims: &BTreeMap<Name, String>) -> Option<Vec<KubeVolume>> {
    let list = instance.volumes.iter().map(|(name, v)| {
        let mut volume = KubeVolume {
            name: name.to_string(),
            ..Default::default()
        };
        match (&v.persistent, claims.get(name)) {
            (Some(_), Some(claim)) => {
                volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                })
            }
            _ => volume.empty_dir = Some(EmptyDirVolumeSource::default()),
        }
        volume
    });
    (!instance.volumes.is_empty()).then(|| list.collect())
}

/// The pod of `instance`: its main container, its members as init containers (init ones first,
/// in order, then sidecars, as `Instance.members` holds them), its volumes, and its grace on
/// termination.
pub(super) fn spec(instance: &Instance, claims: &BTreeMap<Name, String>) -> PodSpec {
    PodSpec {
        containers: vec![main(instance)],
        init_containers: (!instance.members.is_empty())
            .then(|| instance.members.iter().map(member).collect()),
        volumes: volumes(instance, claims),
        termination_grace_period_seconds: termination_grace(instance),
        ..Default::default()
    }
}

/// The pod's `terminationGracePeriodSeconds`: Kubernetes has one for the whole pod (its
/// sidecars stop after the main container, within the same period), so the longest `stop_grace`
/// among the main container and its sidecars, one that sets none counting as the cluster's
/// default (so a sidecar's short grace never cuts the main container's); `None` (that default)
/// when none sets one.
fn termination_grace(instance: &Instance) -> Option<i64> {
    let sidecars = instance
        .members
        .iter()
        .filter(|m| m.role == Role::Sidecar)
        .map(|m| m.stop_grace);
    let graces: Vec<Option<u32>> = std::iter::once(instance.stop_grace)
        .chain(sidecars)
        .collect();
    if graces.iter().all(Option::is_none) {
        return None;
    }
    graces
        .into_iter()
        .map(|g| g.unwrap_or(KUBERNETES_DEFAULT_GRACE))
        .max()
        .map(i64::from)
}

/// Kubernetes' `terminationGracePeriodSeconds` when a pod sets none.
const KUBERNETES_DEFAULT_GRACE: u32 = 30;

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes has one grace for the pod: the longest of the main container's and its
    /// sidecars' `stop_grace` (an init container has exited before the pod runs); none set, the
    /// cluster's default.
    #[test]
    fn a_pods_termination_grace_is_its_longest_stop_grace() {
        let cookbook = r#"{
          "manifest_version": "1.1",
          "project": { "name": "p" },
          "packaging": { "registry": "r/p" },
          "applications": { "a": {} },
          "containers": {
            "setup": { "base_image": "b", "applications": ["a"], "stop_grace": "5m" },
            "proxy": { "base_image": "b", "applications": ["a"], "stop_grace": "45s" },
            "api": { "base_image": "b", "applications": ["a"], "stop_grace": "20s",
                     "init": ["setup"], "sidecars": ["proxy"] },
            "web": { "base_image": "b", "applications": ["a"] }
          },
          "federation": { "sites": { "here": { "containers": ["api", "web"] } } }
        }"#;
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(cookbook.as_bytes()).unwrap();
        let lock = crate::deploy::desired::tests::lock(&[
            ("setup", "sha256:1"),
            ("proxy", "sha256:2"),
            ("api", "sha256:3"),
            ("web", "sha256:4"),
        ]);
        let d = crate::deploy::desired::desired(&cookbook, &plan, &lock, "here", "dev").unwrap();
        let grace = |c: &str| {
            let i = d.instances().find(|i| i.container.as_str() == c).unwrap();
            spec(i, &BTreeMap::new()).termination_grace_period_seconds
        };
        assert_eq!(grace("api"), Some(45));
        assert_eq!(grace("web"), None);
        // A sidecar's short grace does not cut the main container's default 30 s.
        let mut short = d
            .instances()
            .find(|i| i.container.as_str() == "api")
            .unwrap()
            .clone();
        short.stop_grace = None;
        short
            .members
            .iter_mut()
            .for_each(|m| m.stop_grace = Some(5));
        assert_eq!(termination_grace(&short), Some(30));
    }

    /// The Docker backend requests a probe path literally (exec-form `wget`, no shell); so does
    /// Kubernetes' httpGet: `&`, `;` and `$()` are characters of the path, never commands.
    #[test]
    fn an_http_probe_is_a_literal_get_of_its_path() {
        let path = "/health&x;y$(touch$IFS/tmp/pwned)";
        let health = Health {
            probe: Probe::Http {
                port: 8080,
                path: crate::model::lifecycle::HttpPath::parse(path).unwrap(),
            },
            ..Health::default()
        };
        let p = probe(&health, true).unwrap();
        let get = p.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(8080));
        assert!(p.exec.is_none());
    }

    /// A sidecar's startup probe tolerates the grace period on top of the retries: 3 s of grace
    /// at one probe a second are 3 more failures allowed.
    #[test]
    fn a_sidecars_startup_probe_allows_its_grace_period() {
        let health = Health {
            probe: Probe::Tcp { port: 8080 },
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(3),
            retries: 2,
            ..Health::default()
        };
        let p = startup_probe(&health).unwrap();
        assert_eq!(p.failure_threshold, Some(5));
        assert_eq!(p.initial_delay_seconds, None);
        let running = Health {
            probe: Probe::Running,
            ..Health::default()
        };
        assert!(
            startup_probe(&running).is_none(),
            "no probe, no startup probe"
        );
    }

    #[test]
    fn an_image_by_digest_drops_the_tag_but_not_a_registry_port() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            by_digest("127.0.0.1:5000/p/api:tag", &d),
            format!("127.0.0.1:5000/p/api@{d}")
        );
        assert_eq!(
            by_digest("127.0.0.1:5000/p/api", &d),
            format!("127.0.0.1:5000/p/api@{d}")
        );
    }
}
