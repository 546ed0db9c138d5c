//! The pure half of a deploy: what should run (from the cookbook, its lock, a site and a stage),
//! and what to do about what does run.
//!
//! Pipeline position: `Cookbook` + `Lock` → **`Desired`** (waves of container instances, each
//! with a config hash) → **`Changes`** against the engine's containers → the Docker edge
//! (`deploy::docker`) carries them out. No I/O here: tests use plain values.
//!
//! Invariants: the config hash covers exactly what makes a running container different (the
//! image digest and every runtime setting), so an unchanged deploy finds every hash equal and
//! changes nothing; waves are the plan's waves restricted to the site's run-time closure, so a
//! container starts only after everything it `depends_on`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::graph::Plan;
use crate::model::lifecycle::{Health, Probe, PublishedPort};
use crate::model::{Cookbook, Name};
use crate::state::lock::Lock;

/// Labels every deployed container and network carries.
pub const LABEL_PROJECT: &str = "io.cookbook.project";
pub const LABEL_STAGE: &str = "io.cookbook.stage";
pub const LABEL_SITE: &str = "io.cookbook.site";
pub const LABEL_RELEASE: &str = "io.cookbook.release";
pub const LABEL_CONTAINER: &str = "io.cookbook.container";
pub const LABEL_CONFIG: &str = "io.cookbook.config-hash";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("unknown site `{site}`")]
    UnknownSite { site: String, known: Vec<String> },
    #[error("unknown stage `{stage}`")]
    UnknownStage { stage: String, known: Vec<String> },
    #[error("site `{site}` does not serve stage `{stage}`")]
    StageNotServed {
        site: String,
        stage: String,
        served: Vec<String>,
    },
    #[error("container `{container}` is not in cookbook.lock: it has not been published yet")]
    NotPublished { container: String },
    #[error("cookbook.lock was written for project `{lock}`, not `{cookbook}`")]
    OtherProject { lock: String, cookbook: String },
}

/// What should run in one stage of one site (also what a release record keeps, to restore it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub project: Name,
    pub site: Name,
    pub stage: Name,
    /// Derived from every instance's config hash: the same lock and settings give the same id.
    pub release: String,
    /// The network the stage's containers share (one per project and stage).
    pub network: String,
    /// Bottom-up: every wave depends only on earlier ones.
    pub waves: Vec<Vec<Instance>>,
}

/// One container instance to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The cookbook's container.
    pub container: Name,
    /// The engine's container name: `<project>-<stage>-<container>-<n>`.
    pub name: String,
    /// The image reference from the lock (`registry/repo:tag`), for pulling when absent.
    pub image: String,
    /// The lock's digest: the registry manifest digest, or the local image id.
    pub digest: String,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PublishedPort>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    pub health: Health,
    /// SHA-256 over the digest and every runtime setting (hex).
    pub config_hash: String,
}

impl Desired {
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.waves.iter().flatten()
    }

    /// The labels of an instance (and, without `LABEL_CONTAINER`/`LABEL_CONFIG`, the network's).
    pub fn labels(&self, instance: Option<&Instance>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (LABEL_PROJECT.to_owned(), self.project.to_string()),
            (LABEL_STAGE.to_owned(), self.stage.to_string()),
            (LABEL_SITE.to_owned(), self.site.to_string()),
        ]);
        if let Some(i) = instance {
            labels.insert(LABEL_RELEASE.to_owned(), self.release.clone());
            labels.insert(LABEL_CONTAINER.to_owned(), i.container.to_string());
            labels.insert(LABEL_CONFIG.to_owned(), i.config_hash.clone());
        }
        labels
    }
}

fn probe_json(health: &Health) -> serde_json::Value {
    let probe = match &health.probe {
        Probe::Running => json!("running"),
        Probe::Command(v) => json!({ "command": v }),
        Probe::Shell(s) => json!({ "shell": s }),
        Probe::Http { port, path } => json!({ "http": { "port": port, "path": path } }),
        Probe::Tcp { port } => json!({ "tcp": port }),
    };
    json!({
        "probe": probe,
        "interval_ms": health.interval.as_millis() as u64,
        "timeout_ms": health.timeout.as_millis() as u64,
        "retries": health.retries,
        "grace_ms": health.grace.as_millis() as u64,
    })
}

/// Computes what should run for `site` in `stage`.
pub fn desired(
    cookbook: &Cookbook,
    plan: &Plan,
    lock: &Lock,
    site: &str,
    stage: &str,
) -> Result<Desired, DesiredError> {
    let lifecycle = &cookbook.lifecycle;
    let Some(deploy_set) = cookbook.site_deploy_set(site) else {
        return Err(DesiredError::UnknownSite {
            site: site.to_owned(),
            known: cookbook.sites.keys().map(Name::to_string).collect(),
        });
    };
    let Some(stage_name) = lifecycle.stages.iter().find(|s| s.as_str() == stage) else {
        return Err(DesiredError::UnknownStage {
            stage: stage.to_owned(),
            known: lifecycle.stages.iter().map(Name::to_string).collect(),
        });
    };
    let site_deploy = &lifecycle.sites[site];
    if !site_deploy.stages.is_empty() && !site_deploy.stages.contains(stage_name) {
        return Err(DesiredError::StageNotServed {
            site: site.to_owned(),
            stage: stage.to_owned(),
            served: site_deploy.stages.iter().map(Name::to_string).collect(),
        });
    }
    if lock.project != cookbook.project.name {
        return Err(DesiredError::OtherProject {
            lock: lock.project.to_string(),
            cookbook: cookbook.project.name.to_string(),
        });
    }
    let project = &cookbook.project.name;
    let mut waves = Vec::new();
    let mut hashes = Vec::new();
    for wave in plan.waves() {
        let mut instances = Vec::new();
        for container in wave.iter().filter(|c| deploy_set.contains(*c)) {
            let locked = lock.containers.get(container.as_str()).ok_or_else(|| {
                DesiredError::NotPublished {
                    container: container.to_string(),
                }
            })?;
            // The image by its identity: the registry's manifest digest when it was published,
            // else (`apply --no-push`) the local image id.
            let digest = locked
                .digest
                .as_ref()
                .or(locked.image_id.as_ref())
                .map(ToString::to_string)
                .ok_or_else(|| DesiredError::NotPublished {
                    container: container.to_string(),
                })?;
            let runtime = lifecycle.runtime(stage, container.as_str());
            let health = lifecycle
                .containers
                .get(container)
                .map(|c| c.health.clone())
                .unwrap_or_default();
            let settings = json!({
                "digest": digest,
                "env": runtime.env,
                "ports": runtime.ports.iter().map(|p| json!([p.host_ip, p.host, p.container, p.protocol])).collect::<Vec<_>>(),
                "nano_cpus": runtime.nano_cpus,
                "memory": runtime.memory,
                "health": probe_json(&health),
                "network": format!("{project}-{stage}"),
            });
            let mut canonical = Vec::new();
            serde_json_canonicalizer::to_writer(&settings, &mut canonical)
                .expect("serializing to memory cannot fail");
            let config_hash = hex::encode(Sha256::digest(&canonical));
            for n in 1..=runtime.replicas.unwrap_or(1) {
                hashes.push(config_hash.clone());
                instances.push(Instance {
                    container: container.clone(),
                    name: format!("{project}-{stage}-{container}-{n}"),
                    image: locked.image.to_string(),
                    digest: digest.clone(),
                    env: runtime.env.clone(),
                    ports: runtime.ports.clone(),
                    nano_cpus: runtime.nano_cpus,
                    memory: runtime.memory,
                    health: health.clone(),
                    config_hash: config_hash.clone(),
                });
            }
        }
        if !instances.is_empty() {
            waves.push(instances);
        }
    }
    let release = hex::encode(Sha256::digest(hashes.join("\n").as_bytes()))[..12].to_owned();
    Ok(Desired {
        project: project.clone(),
        site: Name::parse(site).expect("a site's key is a name"),
        stage: stage_name.clone(),
        release,
        network: format!("{project}-{stage}"),
        waves,
    })
}

/// A container the engine has for this project and stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    /// Its `LABEL_CONFIG`.
    pub config_hash: Option<String>,
    pub running: bool,
}

/// What to do, wave by wave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// For each wave: the instances to (re)create, by name; the others are left as they run.
    pub waves: Vec<Vec<String>>,
    /// Instances running with the wanted config: left alone.
    pub unchanged: Vec<String>,
    /// The engine's containers no desired instance has (removed after the last wave).
    pub orphans: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.waves.iter().all(Vec::is_empty) && self.orphans.is_empty()
    }
}

/// Compares what should run with what runs, the way `docker compose up` converges: an instance
/// whose config hash and running state match is kept; any other is (re)created.
pub fn changes(desired: &Desired, running: &[Running]) -> Changes {
    let by_name: BTreeMap<&str, &Running> = running.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut out = Changes::default();
    for wave in &desired.waves {
        let mut create = Vec::new();
        for instance in wave {
            match by_name.get(instance.name.as_str()) {
                Some(r) if r.running && r.config_hash.as_deref() == Some(&instance.config_hash) => {
                    out.unchanged.push(instance.name.clone())
                }
                _ => create.push(instance.name.clone()),
            }
        }
        out.waves.push(create);
    }
    let wanted: BTreeSet<&str> = desired.instances().map(|i| i.name.as_str()).collect();
    out.orphans = running
        .iter()
        .filter(|r| !wanted.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::lock::LockedImage;

    const COOKBOOK: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "applications": { "a": {} },
      "containers": {
        "db": { "base_image": "b", "applications": ["a"] },
        "api": { "base_image": "b", "applications": ["a"], "depends_on": ["db"] },
        "web": { "base_image": "b", "applications": ["a"], "depends_on": ["api"] },
        "tool": { "base_image": "container:api", "applications": ["a"] }
      },
      "lifecycle": {
        "stages": ["dev", "prod"],
        "stage_config": { "prod": { "containers": { "api": { "replicas": 2, "env": { "M": "prod" } } } } }
      },
      "federation": { "sites": {
        "here": { "containers": ["web"], "stages": ["dev", "prod"] },
        "devonly": { "containers": ["db"], "stages": ["dev"] }
      } }
    }"#;

    /// A lock of `(container, "sha256:N")`: digest N is the hex digit N 64 times.
    fn lock(digests: &[(&str, &str)]) -> Lock {
        let mut lock = Lock::new(&Name::parse("p").unwrap());
        for (name, digest) in digests {
            let digit = digest.trim_start_matches("sha256:");
            lock.containers.insert(
                Name::parse(name).unwrap(),
                LockedImage {
                    input_hash: crate::hash::InputHash::parse(&"00".repeat(32)).unwrap(),
                    image: crate::oci::WrittenReference::parse(&format!("r/p/{name}:x")).unwrap(),
                    tags: vec![],
                    digest: Some(
                        crate::oci::Digest::parse(&format!("sha256:{}", digit.repeat(64))).unwrap(),
                    ),
                    image_id: None,
                },
            );
        }
        lock
    }

    fn names(d: &Desired) -> Vec<Vec<&str>> {
        d.waves
            .iter()
            .map(|w| w.iter().map(|i| i.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn waves_bottom_up_without_build_only_containers() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "dev").unwrap();
        assert_eq!(
            names(&d),
            vec![vec!["p-dev-db-1"], vec!["p-dev-api-1"], vec!["p-dev-web-1"]]
        );
        assert_eq!(d.network, "p-dev");
        let prod = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        assert_eq!(
            names(&prod),
            vec![
                vec!["p-prod-db-1"],
                vec!["p-prod-api-1", "p-prod-api-2"],
                vec!["p-prod-web-1"]
            ]
        );
        assert_eq!(prod.waves[1][0].env["M"], "prod");
        // Same inputs, same release; another digest, another release and config hash.
        assert_eq!(desired(&cookbook, &plan, &l, "here", "dev").unwrap(), d);
        let l2 = lock(&[("db", "sha256:1"), ("api", "sha256:9"), ("web", "sha256:3")]);
        let d2 = desired(&cookbook, &plan, &l2, "here", "dev").unwrap();
        assert_ne!(d2.release, d.release);
        assert_eq!(d2.waves[0][0].config_hash, d.waves[0][0].config_hash);
        assert_ne!(d2.waves[1][0].config_hash, d.waves[1][0].config_hash);
    }

    #[test]
    fn refusals() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2")]);
        assert_eq!(
            desired(&cookbook, &plan, &l, "here", "dev"),
            Err(DesiredError::NotPublished {
                container: "web".to_owned()
            })
        );
        assert!(matches!(
            desired(&cookbook, &plan, &l, "devonly", "prod"),
            Err(DesiredError::StageNotServed { .. })
        ));
        assert!(matches!(
            desired(&cookbook, &plan, &l, "nowhere", "dev"),
            Err(DesiredError::UnknownSite { .. })
        ));
        assert!(matches!(
            desired(&cookbook, &plan, &l, "devonly", "qa"),
            Err(DesiredError::UnknownStage { .. })
        ));
        let mut other = l.clone();
        other.project = Name::parse("q").unwrap();
        assert!(matches!(
            desired(&cookbook, &plan, &other, "devonly", "dev"),
            Err(DesiredError::OtherProject { .. })
        ));
    }

    #[test]
    fn converges_like_compose() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "dev").unwrap();
        // Nothing runs: everything is created, wave by wave.
        let c = changes(&d, &[]);
        assert_eq!(
            c.waves,
            vec![vec!["p-dev-db-1"], vec!["p-dev-api-1"], vec!["p-dev-web-1"]]
        );
        // Everything runs as wanted: nothing to do.
        let running: Vec<Running> = d
            .instances()
            .map(|i| Running {
                name: i.name.clone(),
                config_hash: Some(i.config_hash.clone()),
                running: true,
            })
            .collect();
        let c = changes(&d, &running);
        assert!(c.is_empty());
        assert_eq!(c.unchanged.len(), 3);
        // A new api image: only api is recreated; a stopped web is started again; a leftover goes.
        let l2 = lock(&[("db", "sha256:1"), ("api", "sha256:9"), ("web", "sha256:3")]);
        let d2 = desired(&cookbook, &plan, &l2, "here", "dev").unwrap();
        let mut running = running;
        running[2].running = false;
        running.push(Running {
            name: "p-dev-old-1".to_owned(),
            config_hash: None,
            running: true,
        });
        let c = changes(&d2, &running);
        assert_eq!(
            c.waves,
            vec![
                vec![] as Vec<String>,
                vec!["p-dev-api-1".to_owned()],
                vec!["p-dev-web-1".to_owned()]
            ]
        );
        assert_eq!(c.unchanged, vec!["p-dev-db-1"]);
        assert_eq!(c.orphans, vec!["p-dev-old-1"]);
    }
}
