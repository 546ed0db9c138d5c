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
//!
//! Ownership: what a site runs for a stage is found by its labels (project, site and stage), never
//! by name alone, and `changes` only ever replaces or removes such a container. Names include the
//! site, so two sites deploying the same stage to one engine never want the same name. A
//! container an earlier version named `<project>-<stage>-<container>-<n>` (no site), but labelled
//! as ours, is taken over by the instance with the same container and replica number: removed just
//! before that instance is created, so it never holds the instance's ports alongside it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::graph::Plan;
use crate::labels::{deploy as label, Scheme, SCHEMES};
use crate::model::lifecycle::{Health, Probe, PublishedPort, RuntimeOverride};
use crate::model::pod::{EnvValue, Ingress, Role, SecretRef, Volume};
use crate::model::{Cookbook, Name};
use crate::state::lock::Lock;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    /// A lock entry naming an image outside the container's own repository: `apply` never
    /// writes one, so the lock was edited to run someone else's image.
    #[error("cookbook.lock names the image {image} for container `{container}`, outside its repository {expected}")]
    ForeignImage {
        container: String,
        image: String,
        expected: String,
    },
}

/// What should run in one stage of one site (also what a release record keeps, to restore it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub project: Name,
    pub site: Name,
    pub stage: Name,
    /// Derived from every instance's config hash: the same lock and settings give the same id.
    pub release: String,
    /// The network the stage's containers share (one per project, site and stage:
    /// `<project>-<site>-<stage>`).
    pub network: String,
    /// Bottom-up: every wave depends only on earlier ones.
    pub waves: Vec<Vec<Instance>>,
}

/// One container instance to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The cookbook's container.
    pub container: Name,
    /// The engine's container name: `<project>-<site>-<stage>-<container>-<n>`.
    pub name: String,
    /// The image reference from the lock (`registry/repo:tag`), for pulling when absent.
    pub image: String,
    /// The lock's digest: the registry manifest digest, or the local image id.
    pub digest: String,
    /// Text, or secrets by reference: a backend reads a secret's value only to start the
    /// container, and it is never serialized (release records hold the reference).
    pub env: BTreeMap<String, EnvValue>,
    pub ports: Vec<PublishedPort>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    pub health: Health,
    /// Seconds a stop waits after the stop signal before the kill (`None`: the target's
    /// default). A release recorded before it does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace: Option<u32>,
    /// SHA-256 over the digest and every runtime setting (hex), the pod's members and volumes
    /// included.
    pub config_hash: String,
    /// The pod's other members: init containers first, in order, then sidecars (format 1.1;
    /// empty: a pod of one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// The pod's volumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<Name, Volume>,
    /// Where the main container sees the pod's volumes (volume → absolute path).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<Name, String>,
    /// The ports the container listens on: its `ports` and its published ports' container side
    /// (a Kubernetes Service's ports; never the host side), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listens: Vec<Listen>,
    /// Another container of the stage depends on it (a Kubernetes Service even without ports).
    /// A release recorded before pods does not say: then it may be, so that restoring it keeps
    /// the Service its dependents resolve (a headless one, when it listens on nothing).
    #[serde(default = "unknown_is_depended_on")]
    pub depended_on: bool,
    /// The stage's Ingress for it (Kubernetes sites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
}

fn unknown_is_depended_on() -> bool {
    true
}

/// A port a container listens on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listen {
    pub port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// A member of an instance's pod: an init container or a sidecar, with the image the lock names
/// for its own container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    /// The cookbook's container.
    pub container: Name,
    /// The engine's container name: `<instance>-<role>-<container>` (`member_name`).
    pub name: String,
    pub image: String,
    pub digest: String,
    pub env: BTreeMap<String, EnvValue>,
    /// Pod volume → where this member sees it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<Name, String>,
    /// A sidecar's health check (an init container's is its exit code).
    pub health: Health,
    /// A sidecar's own `stop_grace` (seconds; `None`: the target's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace: Option<u32>,
}

/// The engine's name of a pod member: `<instance>-<init|sidecar>-<container>`.
pub fn member_name(instance: &str, role: Role, container: &str) -> String {
    format!("{instance}-{}-{container}", role.as_str())
}

/// The engine's name of replica `n` (from 1) of `container` in a site's stage.
pub fn instance_name(project: &str, site: &str, stage: &str, container: &str, n: u32) -> String {
    format!("{project}-{site}-{stage}-{container}-{n}")
}

/// The name of the network a site's stage shares.
pub fn network_name(project: &str, site: &str, stage: &str) -> String {
    format!("{project}-{site}-{stage}")
}

impl Desired {
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.waves.iter().flatten()
    }

    /// Every image the stage runs, once per container: its instances' and their pods' members'
    /// (container → (image reference, digest)). What approvals, attestations, progression and
    /// release ids judge: a sidecar's image is as much the release as its main container's.
    pub fn images(&self) -> BTreeMap<&Name, (&str, &str)> {
        let mut out = BTreeMap::new();
        for i in self.instances() {
            out.insert(&i.container, (i.image.as_str(), i.digest.as_str()));
            for m in &i.members {
                out.insert(&m.container, (m.image.as_str(), m.digest.as_str()));
            }
        }
        out
    }

    /// Container → digest of every image the stage runs ([`Desired::images`]).
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.images()
            .into_iter()
            .map(|(c, (_, digest))| (c.to_string(), digest.to_owned()))
            .collect()
    }

    /// Every secret the stage's containers reference (instances and their pods' members).
    pub fn secrets(&self) -> BTreeSet<&SecretRef> {
        let mut out = BTreeSet::new();
        for i in self.instances() {
            out.extend(i.env.values().filter_map(EnvValue::secret));
            for m in &i.members {
                out.extend(m.env.values().filter_map(EnvValue::secret));
            }
        }
        out
    }

    /// Which replica (from 1) of its container `instance` is: its place among the instances of
    /// the same container.
    pub fn replica(&self, instance: &Instance) -> u32 {
        let earlier = self
            .instances()
            .take_while(|i| !std::ptr::eq(*i, instance))
            .filter(|i| i.container == instance.container)
            .count();
        u32::try_from(earlier + 1).unwrap_or(u32::MAX)
    }

    /// The same desired state under today's names: a release recorded by an earlier version
    /// (names without the site) is restored under the names a deploy would give it now, so a
    /// rollback never brings the old, site-less names back.
    pub fn with_current_names(&self) -> Desired {
        let mut renamed = self.clone();
        let (project, site, stage) = (
            self.project.as_str(),
            self.site.as_str(),
            self.stage.as_str(),
        );
        renamed.network = network_name(project, site, stage);
        for (wave, instances) in renamed.waves.iter_mut().enumerate() {
            for (i, instance) in instances.iter_mut().enumerate() {
                let n = self.replica(&self.waves[wave][i]);
                instance.name = instance_name(project, site, stage, instance.container.as_str(), n);
                // A release recorded before `listens` existed: the container side of its
                // published ports (a record since then lists those among `listens` already).
                if instance.listens.is_empty() {
                    instance.listens = instance
                        .ports
                        .iter()
                        .map(|p| Listen {
                            port: p.container,
                            protocol: p.protocol.clone(),
                        })
                        .collect();
                    instance.listens.sort();
                    instance.listens.dedup();
                }
                for m in &mut instance.members {
                    m.name = member_name(&instance.name, m.role, m.container.as_str());
                }
            }
        }
        renamed
    }

    /// The labels of an instance (and, without its container, release and config hash, the
    /// network's), in the scheme deploy writes (`crate::labels`).
    pub fn labels(&self, instance: Option<&Instance>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (label::PROJECT.to_owned(), self.project.to_string()),
            (label::STAGE.to_owned(), self.stage.to_string()),
            (label::SITE.to_owned(), self.site.to_string()),
        ]);
        if let Some(i) = instance {
            labels.insert(label::RELEASE.to_owned(), self.release.clone());
            labels.insert(label::CONTAINER.to_owned(), i.container.to_string());
            labels.insert(label::CONFIG_HASH.to_owned(), i.config_hash.clone());
        }
        labels
    }

    /// The label scheme (`crate::labels::SCHEMES`: the one deploy writes, or an earlier
    /// version's) under which an object's labels, looked up by `label`, name this project, site
    /// and stage; `None` when neither does.
    pub fn owning_scheme<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> Option<Scheme> {
        SCHEMES.into_iter().find(|s| {
            label(s.project) == Some(self.project.as_str())
                && label(s.site) == Some(self.site.as_str())
                && label(s.stage) == Some(self.stage.as_str())
        })
    }

    /// The `key=value` label filters that select this stage's objects, one set per scheme
    /// deploy recognises (newest first).
    pub fn filters(&self) -> Vec<Vec<String>> {
        SCHEMES
            .iter()
            .map(|s| {
                vec![
                    format!("{}={}", s.project, self.project),
                    format!("{}={}", s.site, self.site),
                    format!("{}={}", s.stage, self.stage),
                ]
            })
            .collect()
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

/// SHA-256 (hex) over the image digest and every runtime setting of an instance, canonical JSON.
/// A pod's members, volumes and mounts, and a `stop_grace`, enter it only when it has them, so
/// that a container without them keeps the hash earlier versions gave it (an upgrade restarts
/// nothing). A secret enters as its reference, never its value.
fn config_hash(
    digest: &str,
    runtime: &RuntimeOverride,
    health: &Health,
    stop_grace: Option<u32>,
    network: &str,
    pod: &PodSettings<'_>,
) -> String {
    let mut settings = json!({
        "digest": digest,
        "env": runtime.env,
        "ports": runtime.ports.iter().map(|p| json!([p.host_ip, p.host, p.container, p.protocol])).collect::<Vec<_>>(),
        "nano_cpus": runtime.nano_cpus,
        "memory": runtime.memory,
        "health": probe_json(health),
        "network": network,
    });
    if let Some(seconds) = stop_grace {
        settings["stop_grace_s"] = json!(seconds);
    }
    if !pod.members.is_empty() {
        settings["members"] = pod
            .members
            .iter()
            .map(|m| {
                let mut member = json!({
                    "role": m.role,
                    "container": m.container,
                    "digest": m.digest,
                    "env": m.env,
                    "mounts": m.mounts,
                    "health": probe_json(&m.health),
                });
                if let Some(seconds) = m.stop_grace {
                    member["stop_grace_s"] = json!(seconds);
                }
                member
            })
            .collect();
    }
    if !pod.volumes.is_empty() {
        settings["volumes"] = json!(pod.volumes);
    }
    if !pod.mounts.is_empty() {
        settings["mounts"] = json!(pod.mounts);
    }
    let mut canonical = Vec::new();
    serde_json_canonicalizer::to_writer(&settings, &mut canonical)
        .expect("serializing to memory cannot fail");
    hex::encode(Sha256::digest(&canonical))
}

/// What a pod adds to an instance's settings.
struct PodSettings<'a> {
    members: &'a [Member],
    volumes: &'a BTreeMap<Name, Volume>,
    mounts: &'a BTreeMap<Name, String>,
}

/// The deploy waves of a site: the plan's waves restricted to the containers that run as units
/// (the deploy set without pod members), each unit moved later, when it must, until it comes
/// after everything its pod's members depend on (and so does what depends on it). Without pods
/// these are exactly the plan's waves.
fn deploy_waves(cookbook: &Cookbook, plan: &Plan, deploy_set: &BTreeSet<Name>) -> Vec<Vec<Name>> {
    let members = cookbook.pod_members();
    let runtimes = &cookbook.lifecycle.containers;
    let mut level: BTreeMap<&Name, usize> = BTreeMap::new();
    let mut deps: BTreeMap<&Name, Vec<&Name>> = BTreeMap::new();
    for (w, wave) in plan.waves().iter().enumerate() {
        for c in wave.iter().filter(|c| deploy_set.contains(*c)) {
            let mut needs: Vec<&Name> = cookbook.containers[c].depends_on.iter().collect();
            for (_, m) in runtimes.get(c).into_iter().flat_map(|r| r.pod.members()) {
                needs.extend(&cookbook.containers[m].depends_on);
            }
            level.insert(c, w);
            deps.insert(c, needs);
        }
    }
    // Relaxed to a fixed point: a member's dependency is no edge of the plan, so plan order
    // alone does not settle it. The model refuses a pod whose members' dependencies lead back
    // to it, so this ends; the bound only guards that promise.
    for _ in 0..=level.len() {
        let mut moved = false;
        for (c, needs) in &deps {
            let after = needs
                .iter()
                .filter_map(|d| level.get(d))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            if after > level[c] {
                level.insert(c, after);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut waves: Vec<Vec<Name>> = Vec::new();
    for wave in plan.waves() {
        for c in wave {
            let Some(&l) = level.get(c) else { continue };
            if members.contains_key(c) {
                continue;
            }
            if waves.len() <= l {
                waves.resize(l + 1, Vec::new());
            }
            waves[l].push(c.clone());
        }
    }
    waves.retain(|w| !w.is_empty());
    waves
}

/// The members of `container`'s pod as instance `instance` runs them, in `stage`.
fn members(
    cookbook: &Cookbook,
    lock: &Lock,
    stage: &str,
    container: &Name,
    instance: &str,
) -> Result<Vec<Member>, DesiredError> {
    let lifecycle = &cookbook.lifecycle;
    let Some(rt) = lifecycle.containers.get(container) else {
        return Ok(Vec::new());
    };
    rt.pod
        .members()
        .map(|(role, m)| {
            let (image, digest) = locked_image(cookbook, lock, m)?;
            let member = lifecycle.containers.get(m);
            Ok(Member {
                role,
                container: m.clone(),
                name: member_name(instance, role, m.as_str()),
                image,
                digest,
                env: lifecycle.runtime(stage, m.as_str()).env,
                mounts: member.map(|r| r.mounts.clone()).unwrap_or_default(),
                health: member.map(|r| r.health.clone()).unwrap_or_default(),
                // An init container has exited before the pod runs: nothing stops it.
                stop_grace: member
                    .and_then(|r| r.stop_grace)
                    .filter(|_| role == Role::Sidecar),
            })
        })
        .collect()
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
    let stage_name = served_stage(cookbook, lock, site, stage)?;
    let project = &cookbook.project.name;
    let network = network_name(project.as_str(), site, stage);
    let depended_on: BTreeSet<&Name> = deploy_set
        .iter()
        .flat_map(|c| &cookbook.containers[c].depends_on)
        .collect();
    let mut waves = Vec::new();
    let mut hashes = Vec::new();
    for wave in deploy_waves(cookbook, plan, &deploy_set) {
        let mut instances = Vec::new();
        for container in &wave {
            let (image, digest) = locked_image(cookbook, lock, container)?;
            let runtime = lifecycle.runtime(stage, container.as_str());
            let own = lifecycle.containers.get(container);
            let health = own.map(|c| c.health.clone()).unwrap_or_default();
            let stop_grace = own.and_then(|c| c.stop_grace);
            let volumes = own.map(|c| c.pod.volumes.clone()).unwrap_or_default();
            let mounts = own.map(|c| c.mounts.clone()).unwrap_or_default();
            let listens = listens(own, &runtime);
            // The hash does not depend on the instance's name: members are named per replica
            // below.
            let pod_members = members(cookbook, lock, stage, container, "")?;
            let config_hash = config_hash(
                &digest,
                &runtime,
                &health,
                stop_grace,
                &network,
                &PodSettings {
                    members: &pod_members,
                    volumes: &volumes,
                    mounts: &mounts,
                },
            );
            for n in 1..=runtime.replicas.unwrap_or(1) {
                hashes.push(config_hash.clone());
                let name = instance_name(project.as_str(), site, stage, container.as_str(), n);
                let members = pod_members
                    .iter()
                    .map(|m| Member {
                        name: member_name(&name, m.role, m.container.as_str()),
                        ..m.clone()
                    })
                    .collect();
                instances.push(Instance {
                    container: container.clone(),
                    name,
                    image: image.clone(),
                    digest: digest.clone(),
                    env: runtime.env.clone(),
                    ports: runtime.ports.clone(),
                    nano_cpus: runtime.nano_cpus,
                    memory: runtime.memory,
                    health: health.clone(),
                    stop_grace,
                    config_hash: config_hash.clone(),
                    members,
                    volumes: volumes.clone(),
                    mounts: mounts.clone(),
                    listens: listens.clone(),
                    depended_on: depended_on.contains(container),
                    ingress: runtime.ingress.clone(),
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
        network,
        waves,
    })
}

/// The ports a container listens on: those its runtime declares, and the container side of
/// those the stage publishes; sorted, each once.
fn listens(
    own: Option<&crate::model::lifecycle::ContainerRuntime>,
    runtime: &RuntimeOverride,
) -> Vec<Listen> {
    let mut listens: Vec<Listen> = own
        .into_iter()
        .flat_map(|c| &c.ports)
        .map(|p| Listen {
            port: p.number,
            protocol: p.to_string().rsplit('/').next().unwrap_or("tcp").to_owned(),
        })
        .chain(runtime.ports.iter().map(|p| Listen {
            port: p.container,
            protocol: p.protocol.clone(),
        }))
        .collect();
    listens.sort();
    listens.dedup();
    listens
}

/// The stage `stage` of the lifecycle, if `site` serves it and `lock` is this project's.
fn served_stage<'a>(
    cookbook: &'a Cookbook,
    lock: &Lock,
    site: &str,
    stage: &str,
) -> Result<&'a Name, DesiredError> {
    let lifecycle = &cookbook.lifecycle;
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
    Ok(stage_name)
}

/// The lock's image of `container` (its reference, and its identity: the registry's manifest
/// digest when it was published, else, after `apply --no-push`, the local image id). The lock
/// chooses a digest, never a repository: an entry is run only from the repository the cookbook
/// names for its container.
fn locked_image(
    cookbook: &Cookbook,
    lock: &Lock,
    container: &Name,
) -> Result<(String, String), DesiredError> {
    let not_published = || DesiredError::NotPublished {
        container: container.to_string(),
    };
    let locked = lock
        .containers
        .get(container.as_str())
        .ok_or_else(not_published)?;
    if !cookbook.owns(container, locked.image.reference()) {
        return Err(DesiredError::ForeignImage {
            container: container.to_string(),
            image: locked.image.to_string(),
            expected: cookbook.repository(container),
        });
    }
    let digest = locked
        .digest
        .as_ref()
        .or(locked.image_id.as_ref())
        .map(ToString::to_string)
        .ok_or_else(not_published)?;
    Ok((locked.image.to_string(), digest))
}

/// A container the engine has for this project, site and stage: found by those labels, so ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The engine's id: what removal goes by, so that a name taken over by something else in
    /// the meantime is never what gets removed.
    pub id: String,
    pub name: String,
    /// Its container label (`crate::labels::deploy::CONTAINER`).
    pub container: Option<String>,
    /// Its config hash label, `None` when missing or written by an earlier version (which the next
    /// deploy replaces).
    pub config_hash: Option<String>,
    pub running: bool,
}

impl Running {
    /// The replica number its name ends with (`…-<container>-<n>`, in today's names and the
    /// earlier site-less ones alike).
    fn replica(&self) -> Option<u32> {
        let container = self.container.as_deref()?;
        let (rest, n) = self.name.rsplit_once('-')?;
        rest.strip_suffix(container)?.strip_suffix('-')?;
        n.parse().ok()
    }
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
    /// Instance to create → the containers of ours under another name it takes over (an earlier
    /// version's names): removed just before it is created.
    pub replaced: BTreeMap<String, Vec<String>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.waves.iter().all(Vec::is_empty) && self.orphans.is_empty()
    }
}

/// The containers of ours (`running`, found by label) that creating `instance` replaces: the one
/// with its name, and one an earlier version named differently for the same container and
/// replica.
pub fn replaced_by<'a>(
    desired: &Desired,
    instance: &Instance,
    running: &'a [Running],
) -> Vec<&'a Running> {
    let n = desired.replica(instance);
    running
        .iter()
        .filter(|r| {
            r.name == instance.name
                || (r.container.as_deref() == Some(instance.container.as_str())
                    && r.replica() == Some(n))
        })
        .collect()
}

/// Compares what should run with what runs (`running`: our containers, found by label), the way
/// `docker compose up` converges: an instance whose config hash and running state match is kept;
/// any other is (re)created, replacing what `replaced_by` names.
pub fn changes(desired: &Desired, running: &[Running]) -> Changes {
    let mut out = Changes::default();
    let mut claimed = BTreeSet::new();
    for wave in &desired.waves {
        let mut create = Vec::new();
        for instance in wave {
            let kept = running.iter().find(|r| {
                r.name == instance.name
                    && r.running
                    && r.config_hash.as_deref() == Some(&instance.config_hash)
            });
            if kept.is_some() {
                claimed.insert(instance.name.as_str());
                out.unchanged.push(instance.name.clone());
                continue;
            }
            for r in replaced_by(desired, instance, running) {
                claimed.insert(r.name.as_str());
                if r.name != instance.name {
                    out.replaced
                        .entry(instance.name.clone())
                        .or_default()
                        .push(r.name.clone());
                }
            }
            create.push(instance.name.clone());
        }
        out.waves.push(create);
    }
    out.orphans = running
        .iter()
        .filter(|r| !claimed.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::lock::LockedImage;

    const COOKBOOK: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "packaging": { "registry": "r/p" },
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
    pub(crate) fn lock(digests: &[(&str, &str)]) -> Lock {
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
            vec![
                vec!["p-here-dev-db-1"],
                vec!["p-here-dev-api-1"],
                vec!["p-here-dev-web-1"]
            ]
        );
        assert_eq!(d.network, "p-here-dev");
        let prod = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        assert_eq!(
            names(&prod),
            vec![
                vec!["p-here-prod-db-1"],
                vec!["p-here-prod-api-1", "p-here-prod-api-2"],
                vec!["p-here-prod-web-1"]
            ]
        );
        assert_eq!(prod.waves[1][0].env["M"], "prod".into());
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
        // The lock picks a digest, not a repository: `db` pointed at another registry's image
        // (same path, other host) is refused, naming both.
        let mut foreign = l.clone();
        foreign.containers.get_mut("db").unwrap().image =
            crate::oci::WrittenReference::parse("evil.example/r/p/db:x").unwrap();
        assert_eq!(
            desired(&cookbook, &plan, &foreign, "devonly", "dev"),
            Err(DesiredError::ForeignImage {
                container: "db".to_owned(),
                image: "evil.example/r/p/db:x".to_owned(),
                expected: "r/p/db".to_owned(),
            })
        );
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
            vec![
                vec!["p-here-dev-db-1"],
                vec!["p-here-dev-api-1"],
                vec!["p-here-dev-web-1"]
            ]
        );
        // Everything runs as wanted: nothing to do.
        let running: Vec<Running> = d.instances().map(ours).collect();
        let c = changes(&d, &running);
        assert!(c.is_empty());
        assert_eq!(c.unchanged.len(), 3);
        // A new api image: only api is recreated; a stopped web is started again; a leftover goes.
        let l2 = lock(&[("db", "sha256:1"), ("api", "sha256:9"), ("web", "sha256:3")]);
        let d2 = desired(&cookbook, &plan, &l2, "here", "dev").unwrap();
        let mut running = running;
        running[2].running = false;
        running.push(Running {
            id: "id-old".to_owned(),
            name: "p-here-dev-old-1".to_owned(),
            container: Some("old".to_owned()),
            config_hash: None,
            running: true,
        });
        let c = changes(&d2, &running);
        assert_eq!(
            c.waves,
            vec![
                vec![] as Vec<String>,
                vec!["p-here-dev-api-1".to_owned()],
                vec!["p-here-dev-web-1".to_owned()]
            ]
        );
        assert_eq!(c.unchanged, vec!["p-here-dev-db-1"]);
        assert_eq!(c.orphans, vec!["p-here-dev-old-1"]);
        assert!(c.replaced.is_empty());
    }

    const POD: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "packaging": { "registry": "r/p" },
      "applications": { "a": {} },
      "containers": {
        "db": { "base_image": "b", "applications": ["a"], "ports": [5432],
                "volumes": { "data": { "persistent": true } }, "mounts": { "data": "/var/lib/db" } },
        "migrate": { "base_image": "b", "applications": ["a"], "depends_on": ["db"],
                     "mounts": { "content": "/out" } },
        "proxy": { "base_image": "b", "applications": ["a"] },
        "app": { "base_image": "b", "applications": ["a"], "ports": ["8080"],
                 "init": ["migrate"], "sidecars": ["proxy"],
                 "volumes": { "content": {} }, "mounts": { "content": "/srv" } },
        "web": { "base_image": "b", "applications": ["a"], "depends_on": ["app"] }
      },
      "lifecycle": {
        "stages": ["dev"],
        "stage_config": { "dev": { "containers": {
          "migrate": { "env": { "PASSWORD": { "secret": "db/password" } } },
          "app": { "env": { "MODE": "dev" }, "ingress": { "host": "app.example.com" } }
        } } }
      },
      "federation": { "sites": { "here": { "containers": ["web"] } } }
    }"#;

    /// A pod is one unit: its members run inside it, never alone; it comes after what its
    /// members depend on, and so does what depends on it; its members, volumes and secrets are
    /// part of it.
    #[test]
    fn a_pod_is_one_unit_after_what_its_members_need() {
        let crate::load::Parsed { cookbook, plan } = crate::load::parse(POD.as_bytes()).unwrap();
        let l = lock(&[
            ("db", "sha256:1"),
            ("migrate", "sha256:2"),
            ("proxy", "sha256:3"),
            ("app", "sha256:4"),
            ("web", "sha256:5"),
        ]);
        let d = desired(&cookbook, &plan, &l, "here", "dev").unwrap();
        assert_eq!(
            names(&d),
            vec![
                vec!["p-here-dev-db-1"],
                vec!["p-here-dev-app-1"],
                vec!["p-here-dev-web-1"]
            ]
        );
        let app = &d.waves[1][0];
        let members: Vec<(Role, &str, &str)> = app
            .members
            .iter()
            .map(|m| (m.role, m.container.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(
            members,
            vec![
                (Role::Init, "migrate", "p-here-dev-app-1-init-migrate"),
                (Role::Sidecar, "proxy", "p-here-dev-app-1-sidecar-proxy"),
            ]
        );
        assert_eq!(app.members[0].mounts["content"], "/out");
        assert_eq!(app.mounts["content"], "/srv");
        assert!(app.volumes["content"].persistent.is_none());
        assert_eq!(app.ingress.as_ref().unwrap().port, 8080);
        assert_eq!(
            app.listens,
            vec![Listen {
                port: 8080,
                protocol: "tcp".to_owned()
            }]
        );
        assert!(app.depended_on && d.waves[0][0].depended_on && !d.waves[2][0].depended_on);
        let db = &d.waves[0][0];
        assert_eq!(db.volumes["data"].persistent.as_ref().unwrap().size, "1Gi");
        assert_eq!(
            d.secrets()
                .into_iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["db/password"]
        );
        // A member's new image is a new pod; the record keeps references, never values.
        let mut l2 = l.clone();
        l2.containers.get_mut("proxy").unwrap().digest =
            Some(crate::oci::Digest::parse(&format!("sha256:{}", "9".repeat(64))).unwrap());
        let d2 = desired(&cookbook, &plan, &l2, "here", "dev").unwrap();
        assert_ne!(d2.waves[1][0].config_hash, app.config_hash);
        assert_eq!(d2.waves[0][0].config_hash, db.config_hash);
        let record = serde_json::to_string(&d).unwrap();
        assert!(
            record.contains(r#""PASSWORD":{"secret":"db/password"}"#),
            "{record}"
        );
        assert_eq!(serde_json::from_str::<Desired>(&record).unwrap(), d);
    }

    /// A release recorded before pods (no `listens`, `depended_on`, members) still reads, and
    /// restores with a Service for every container (headless without ports) and its published
    /// ports' container side as what it listens on.
    #[test]
    fn a_release_recorded_before_pods_restores_its_services() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        let mut old = serde_json::to_value(&d).unwrap();
        for i in old["waves"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .flat_map(|w| w.as_array_mut().unwrap())
        {
            let i = i.as_object_mut().unwrap();
            i.remove("depended_on");
            i.remove("listens");
            i.insert(
                "ports".to_owned(),
                json!([{"host_ip": null, "host": 8080, "container": 80, "protocol": "tcp"}]),
            );
        }
        let read: Desired = serde_json::from_value(old).unwrap();
        let restored = read.with_current_names();
        assert!(restored.instances().all(|i| i.depended_on));
        assert!(restored.instances().all(|i| i.listens
            == vec![Listen {
                port: 80,
                protocol: "tcp".to_owned()
            }]));
    }

    const PRE_POD_API_HASH: &str =
        "a03cf02204f63c091d3bc7514a4ddf7e27dccb9b954c2a4524dfa11857adb629";

    /// A container without a pod hashes as it did before pods existed: upgrading restarts
    /// nothing.
    #[test]
    fn a_container_without_a_pod_keeps_its_config_hash() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        // Computed by the version before pods, for the same cookbook and lock.
        assert_eq!(d.waves[1][0].config_hash, PRE_POD_API_HASH);
    }

    /// `stop_grace` is whole seconds, rounded up (what Docker and Kubernetes count); `0s` is
    /// a kill at once; past an hour is a located problem.
    #[test]
    fn stop_grace_is_whole_seconds_rounded_up_and_at_most_an_hour() {
        let of = |grace: &str| {
            let text = format!(
                r#"{{ "manifest_version": "1.1", "project": {{ "name": "p" }},
                     "applications": {{ "a": {{}} }},
                     "containers": {{ "c": {{ "base_image": "b", "applications": ["a"],
                                            "stop_grace": "{grace}" }} }} }}"#
            );
            crate::load::parse(text.as_bytes())
                .map(|p| p.cookbook.lifecycle.containers[&Name::parse("c").unwrap()].stop_grace)
        };
        assert_eq!(of("0s").unwrap(), Some(0));
        assert_eq!(of("1ms").unwrap(), Some(1));
        assert_eq!(of("2000ms").unwrap(), Some(2));
        assert_eq!(of("60m").unwrap(), Some(3600));
        let refused = of("61m").unwrap_err();
        let problem = &refused[0];
        assert_eq!(problem.pointer, "/containers/c/stop_grace");
        assert!(
            problem.message.contains("at most 60m"),
            "{}",
            problem.message
        );
    }

    /// `stop_grace` reaches the instance and its pod's sidecars in whole seconds, rounded up;
    /// it enters the config hash only when set, so a cookbook without one keeps its hashes.
    #[test]
    fn a_stop_grace_reaches_the_instance_and_its_hash_only_when_set() {
        let with = COOKBOOK
            .replace(
                r#""api": { "base_image": "b", "applications": ["a"], "depends_on": ["db"] }"#,
                r#""api": { "base_image": "b", "applications": ["a"], "depends_on": ["db"], "stop_grace": "1500ms" }"#,
            )
            .replace(
                r#""db": { "base_image": "b", "applications": ["a"] }"#,
                r#""db": { "base_image": "b", "applications": ["a"], "stop_grace": "0s" }"#,
            );
        assert_ne!(with, COOKBOOK);
        let crate::load::Parsed { cookbook, plan } = crate::load::parse(with.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        assert_eq!(d.waves[0][0].stop_grace, Some(0));
        assert_eq!(d.waves[1][0].stop_grace, Some(2));
        assert_eq!(d.waves[2][0].stop_grace, None);
        assert_ne!(d.waves[1][0].config_hash, PRE_POD_API_HASH);
        // A release recorded before `stop_grace` reads back without one.
        let mut record = serde_json::to_value(&d).unwrap();
        assert_eq!(record["waves"][1][0]["stop_grace"], 2);
        assert!(record["waves"][2][0].get("stop_grace").is_none());
        record["waves"][1][0]
            .as_object_mut()
            .unwrap()
            .remove("stop_grace");
        let old: Desired = serde_json::from_value(record).unwrap();
        assert_eq!(old.waves[1][0].stop_grace, None);
    }

    /// A container as the engine lists it when it runs `i` as wanted.
    fn ours(i: &Instance) -> Running {
        Running {
            id: format!("id-{}", i.name),
            name: i.name.clone(),
            container: Some(i.container.to_string()),
            config_hash: Some(i.config_hash.clone()),
            running: true,
        }
    }

    #[test]
    fn two_sites_never_share_a_name() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let here = desired(&cookbook, &plan, &l, "here", "dev").unwrap();
        let other = desired(&cookbook, &plan, &l, "devonly", "dev").unwrap();
        assert_eq!(names(&other), vec![vec!["p-devonly-dev-db-1"]]);
        assert_eq!(other.network, "p-devonly-dev");
        assert_ne!(here.network, other.network);
        assert!(here.instances().all(|i| i.name != other.waves[0][0].name));
        // The network is part of every instance's settings: another site is another config.
        assert_ne!(here.waves[0][0].config_hash, other.waves[0][0].config_hash);
    }

    /// What an earlier version deployed (`<project>-<stage>-<container>-<n>`, labelled ours) is
    /// taken over replica by replica, each just before its successor is created; a record of it
    /// is restored under today's names.
    #[test]
    fn containers_named_by_an_earlier_version_are_taken_over() {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let l = lock(&[("db", "sha256:1"), ("api", "sha256:2"), ("web", "sha256:3")]);
        let d = desired(&cookbook, &plan, &l, "here", "prod").unwrap();
        let legacy = |container: &str, n: u32| Running {
            id: format!("id-{container}-{n}"),
            name: format!("p-prod-{container}-{n}"),
            container: Some(container.to_owned()),
            config_hash: Some("0".repeat(64)),
            running: true,
        };
        let mut running: Vec<Running> = ["db", "api", "web"].iter().map(|c| legacy(c, 1)).collect();
        running.push(legacy("api", 2));
        // db already runs under its new name: the old db is a leftover, not a predecessor.
        running.push(ours(&d.waves[0][0]));
        let c = changes(&d, &running);
        assert_eq!(
            c.waves,
            vec![
                vec![] as Vec<String>,
                vec![
                    "p-here-prod-api-1".to_owned(),
                    "p-here-prod-api-2".to_owned()
                ],
                vec!["p-here-prod-web-1".to_owned()]
            ]
        );
        assert_eq!(
            c.replaced,
            BTreeMap::from([
                (
                    "p-here-prod-api-1".to_owned(),
                    vec!["p-prod-api-1".to_owned()]
                ),
                (
                    "p-here-prod-api-2".to_owned(),
                    vec!["p-prod-api-2".to_owned()]
                ),
                (
                    "p-here-prod-web-1".to_owned(),
                    vec!["p-prod-web-1".to_owned()]
                ),
            ])
        );
        assert_eq!(c.orphans, vec!["p-prod-db-1"]);
        let second = &d.waves[1][1];
        assert_eq!(d.replica(second), 2);
        assert_eq!(
            replaced_by(&d, second, &running)
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            vec!["id-api-2"]
        );

        // A release recorded under the old names comes back under today's.
        let mut recorded = d.clone();
        recorded.network = "p-prod".to_owned();
        for i in recorded.waves.iter_mut().flatten() {
            let n = i.name.rsplit_once('-').unwrap().1.to_owned();
            i.name = format!("p-prod-{}-{n}", i.container);
        }
        assert_eq!(recorded.with_current_names(), d);
    }
}
