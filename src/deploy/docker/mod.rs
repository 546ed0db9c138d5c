//! The Docker edge of a deploy: the first `deploy::Backend` (`DockerSite`), carrying out
//! `desired::Changes` on a site's engine.
//!
//! Pipeline position: `Desired` + the engine's containers → `changes` → `deploy::session` →
//! **here**: one network per project, site and stage, then wave by wave: (re)create the wave's
//! changed instances, start them, and report when every instance it created is healthy;
//! containers no longer wanted are removed last. Instances whose config hash is unchanged are not
//! touched, so an unchanged deploy restarts nothing.
//!
//! Ownership: the stage's containers and network are the ones labelled with its project, site and
//! stage (`Desired::labels`). Only those are ever removed or replaced, and by id, as listed with
//! those labels; a name the stage needs that anything else holds (docker compose's container,
//! another site's, one made by hand) stops the deploy before anything changes, naming the holder
//! (`BackendError::NotOurs`).
//!
//! Health: a probe becomes the container's Docker HEALTHCHECK, run inside the container. `http`
//! and `tcp` are exec-form commands built from validated parts, never shell text: `wget -q -O
//! /dev/null http://127.0.0.1:<port><path>` (busybox's wget: healthy on 2xx/3xx, as Kubernetes'
//! `httpGet`) and `nc -w 1 127.0.0.1 <port> -e true` (busybox's nc: connected, it runs `true` on
//! the socket and exits 0; a plain `nc` would wait on the health check's stdin, which Docker
//! never closes). Only a `command` written as a string is run by a shell: the author's own.
//! The wave waits for the engine's `healthy` of each instance it created; without a probe,
//! healthy means running and not restarting for the grace period. A restart counts only since
//! the container was created by this deploy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions,
    RemoveContainerOptions, StartContainerOptions, TopOptions,
};
use futures_util::StreamExt;

pub mod exec;
pub mod logs;
mod pod;
mod stop;
pub mod teardown;

use crate::deploy::backend::{Backend, BackendError, Unhealthy};
use crate::deploy::desired::{changes, replaced_by, Changes, Desired, Instance, Running};
use crate::deploy::detect::Detected;
use crate::deploy::services::{classify, listening_ports, main_tree, Services};
use crate::engine::{DockerEngine, EngineError};
use crate::labels::{Scheme, CURRENT, SCHEMES};
use crate::model::lifecycle::{Health, Probe};
use crate::model::pod::EnvValue;

/// What the engine says about one desired instance (`cookbook status`; serialized, a row of its
/// JSON document).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub container: String,
    /// `missing` when the engine has no such container.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` (no probe).
    pub health: String,
    pub restarts: i64,
    pub started_at: Option<String>,
    /// How it ended, when it is not running: its exit code and when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The image id the lock's digest resolves to on this engine (`None`: not there).
    pub desired_image: Option<String>,
    pub running_image: Option<String>,
    /// The running container differs from the desired one: another image, or other runtime
    /// settings (its config hash label), or it is missing.
    pub drift: bool,
    /// What it offers (listening ports, processes, their classes), when it runs.
    pub services: Option<Services>,
    /// Its pod's members (init containers first, then sidecars); empty for a pod of one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
}

/// What the engine says about one member of an instance's pod (a row under its instance).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberStatus {
    /// The engine's container name (`<instance>-<role>-<container>`).
    pub name: String,
    /// The cookbook's container.
    pub container: String,
    /// `init` or `sidecar`.
    pub role: String,
    /// `missing` when the engine has no such container of ours.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` (no probe).
    pub health: String,
    /// How an init container ended (`None`: it has not, or it is a sidecar that runs).
    pub exit_code: Option<i64>,
}

impl InstanceStatus {
    /// Running what the lock wants, and not unhealthy, its sidecars running and its init
    /// containers done with exit code 0.
    pub fn in_sync(&self) -> bool {
        !self.drift
            && self.health != "unhealthy"
            && self.state == "running"
            && self.members.iter().all(|m| match m.role.as_str() {
                "init" => m.exit_code == Some(0),
                _ => m.state == "running" && m.health != "unhealthy",
            })
    }

    /// The row of an instance nothing of ours runs for: `state` says why (`missing`, `foreign`).
    fn absent(instance: &Instance, state: &str, desired_image: Option<String>) -> InstanceStatus {
        InstanceStatus {
            name: instance.name.clone(),
            container: instance.container.to_string(),
            state: state.to_owned(),
            health: "none".to_owned(),
            restarts: 0,
            started_at: None,
            exit_code: None,
            finished_at: None,
            desired_image,
            running_image: None,
            drift: true,
            services: None,
            members: Vec::new(),
        }
    }
}

/// How much of a probe's output a failure quotes.
const PROBE_OUTPUT_CHARS: usize = 400;

/// "; the last probe exited with code N: OUTPUT" from the engine's health log (`State.Health.Log`,
/// its last probes), empty when it has none. The output is the probe's own (run in the
/// container: it may print anything), so it is trimmed, capped at `PROBE_OUTPUT_CHARS` and its
/// control characters escaped, newlines included: one line, safe for a terminal.
fn last_probe(health: &bollard::models::Health) -> String {
    let Some(probe) = health.log.as_ref().and_then(|l| l.last()) else {
        return String::new();
    };
    let code = probe
        .exit_code
        .map_or_else(|| "an unknown code".to_owned(), |c| format!("code {c}"));
    let output = probe.output.as_deref().unwrap_or("").trim();
    let mut shown = crate::deploy::escape_controls(output.chars().take(PROBE_OUTPUT_CHARS));
    if output.chars().count() > PROBE_OUTPUT_CHARS {
        shown.push('…');
    }
    if shown.is_empty() {
        format!("; the last probe exited with {code} and printed nothing")
    } else {
        format!("; the last probe exited with {code}: {shown}")
    }
}

/// How often a wave's health is polled.
const POLL: Duration = Duration::from_millis(100);

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The HEALTHCHECK of a probe (`None` when there is none).
fn healthcheck(health: &Health) -> Option<HealthConfig> {
    let exec = |argv: &[&str]| -> Vec<String> {
        std::iter::once("CMD")
            .chain(argv.iter().copied())
            .map(str::to_owned)
            .collect()
    };
    let test = match &health.probe {
        Probe::Running => return None,
        Probe::Command(argv) => [vec!["CMD".to_owned()], argv.clone()].concat(),
        Probe::Shell(s) => vec!["CMD-SHELL".to_owned(), s.clone()],
        // One argument: the path cannot reach past the URL (it starts with `/`, holds no
        // space, and no shell reads it).
        Probe::Http { port, path } => exec(&[
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &format!("http://127.0.0.1:{port}{path}"),
        ]),
        Probe::Tcp { port } => exec(&[
            "nc",
            "-w",
            "1",
            "127.0.0.1",
            &port.to_string(),
            "-e",
            "true",
        ]),
    };
    let h = health;
    Some(HealthConfig {
        test: Some(test),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(h.grace)),
        // Needs API 1.44; older engines use `interval` during the start period too.
        start_interval: None,
    })
}

/// The longest a wave may take to become healthy: every retry timing out, plus the grace period.
fn health_deadline(h: &Health) -> Duration {
    h.grace + (h.interval + h.timeout) * (h.retries + 1) + Duration::from_secs(5)
}

/// How long a container has run, from the engine's `StartedAt` (zero when it cannot be read).
fn up_for(started_at: Option<&str>) -> Duration {
    started_at
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// The label filter that lists the stage's containers and networks (`key=value` each), in the
/// scheme deploy writes: what an error names as ours.
fn ours_filter(desired: &Desired) -> Vec<String> {
    desired.filters().swap_remove(0)
}

/// The scheme under which `labels` carry the stage's project, site and stage (the current one, or
/// an earlier version's: still ours, and replaced by the next deploy).
fn scheme_of(desired: &Desired, labels: &HashMap<String, String>) -> Option<Scheme> {
    desired.owning_scheme(|k| labels.get(k).map(String::as_str))
}

/// Whether `labels` carry the stage's project, site and stage.
fn is_ours(desired: &Desired, labels: &HashMap<String, String>) -> bool {
    scheme_of(desired, labels).is_some()
}

/// Whether a container's config carries the labels of `instance` in the stage of `desired`.
fn is_instance(
    desired: &Desired,
    instance: &Instance,
    config: Option<&bollard::models::ContainerConfig>,
) -> bool {
    config
        .and_then(|c| c.labels.as_ref())
        .is_some_and(|labels| {
            scheme_of(desired, labels).is_some_and(|s| {
                labels.get(s.container).map(String::as_str) == Some(instance.container.as_str())
            })
        })
}

/// The config hash a container of ours carries, when it is one deploy can trust: an earlier
/// version's label scheme reads as none, so that the next deploy replaces the container and it
/// carries the current labels from then on.
fn config_hash(desired: &Desired, labels: &HashMap<String, String>) -> Option<String> {
    scheme_of(desired, labels)
        .filter(|s| *s == CURRENT)
        .and_then(|s| labels.get(s.config_hash).cloned())
}

/// The engine's `name` filter (a regular expression over `/<name>`) that narrows a list to the
/// names a stage's containers have, today's and the earlier site-less ones.
fn name_pattern(desired: &Desired) -> String {
    format!(
        "^/{}-({}-)?{}-",
        regex::escape(desired.project.as_str()),
        regex::escape(desired.site.as_str()),
        regex::escape(desired.stage.as_str())
    )
}

/// docker compose's labels (what `docker compose` puts on every container and network it makes).
const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// Whose an object is, as its labels say.
fn owner(labels: &HashMap<String, String>) -> String {
    let label = |k: &str| labels.get(k).map(String::as_str);
    if let Some(project) = label(COMPOSE_PROJECT) {
        return match label(COMPOSE_SERVICE) {
            Some(service) => {
                format!("it belongs to docker compose project `{project}` (service `{service}`)")
            }
            None => format!("it belongs to docker compose project `{project}`"),
        };
    }
    // The project key alone is also on every cookbook image, so a hand-made container of one
    // carries it: cookbook's deploys are the objects that also name a site.
    for scheme in SCHEMES {
        if let (Some(project), Some(site)) = (label(scheme.project), label(scheme.site)) {
            return format!(
                "it belongs to cookbook project `{project}`, site `{site}`, stage `{}`",
                label(scheme.stage).unwrap_or("?")
            );
        }
    }
    "it carries neither cookbook's nor docker compose's labels (made by hand?)".to_owned()
}

fn not_ours(
    desired: &Desired,
    kind: &'static str,
    name: &str,
    labels: &HashMap<String, String>,
) -> BackendError {
    BackendError::NotOurs {
        kind,
        name: name.to_owned(),
        owner: owner(labels),
        stage: format!("{}/{}", desired.site, desired.stage),
        labels: ours_filter(desired).join(", "),
    }
}

pub struct Deployer<'a> {
    engine: &'a DockerEngine,
    /// At most this many seconds for stopping a container it removes (`cookbook dev`'s
    /// deploys); `None`: each container's own grace.
    stop_cap: Option<u32>,
}

impl<'a> Deployer<'a> {
    pub fn new(engine: &'a DockerEngine) -> Self {
        Deployer {
            engine,
            stop_cap: None,
        }
    }

    fn err(&self, operation: &str) -> impl Fn(BollardError) -> EngineError + '_ {
        let operation = operation.to_owned();
        move |e| self.engine.classify_error(&operation, e)
    }

    /// The engine's containers of this project, stage and site (another site deploying to the
    /// same engine keeps its own: they are never this deploy's orphans); a pod's members are
    /// not units of their own, and are not listed.
    /// One list call, by name (today's `<project>-<site>-<stage>-…` and the earlier
    /// `<project>-<stage>-…`), then kept when its labels say it is ours under any scheme deploy
    /// recognises (an upgrade finds what an earlier version deployed): the name filter is only
    /// a narrowing, ownership is the labels'.
    pub async fn running(&self, desired: &Desired) -> Result<Vec<Running>, EngineError> {
        let mut out: Vec<Running> = Vec::new();
        let filters = HashMap::from([("name".to_owned(), vec![name_pattern(desired)])]);
        let list = self
            .engine
            .client()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(self.err("list containers"))?;
        {
            for c in list {
                let (Some(id), Some(name)) = (c.id, c.names.and_then(|n| n.into_iter().next()))
                else {
                    continue;
                };
                let labels = c.labels.unwrap_or_default();
                let Some(scheme) = scheme_of(desired, &labels) else {
                    continue;
                };
                if labels.contains_key(crate::labels::deploy::POD) {
                    continue;
                }
                out.push(Running {
                    id,
                    name: name.trim_start_matches('/').to_owned(),
                    container: labels.get(scheme.container).cloned(),
                    config_hash: config_hash(desired, &labels),
                    running: c.state.is_some_and(|s| s.to_string() == "running"),
                });
            }
        }
        Ok(out)
    }

    /// Refuses, before anything changes, a desired name that a container not listed as ours
    /// holds.
    async fn check_names(&self, desired: &Desired, ours: &[Running]) -> Result<(), BackendError> {
        for instance in desired.instances() {
            if !ours.iter().any(|r| r.name == instance.name) {
                self.refuse_holder(desired, &instance.name).await?;
            }
        }
        Ok(())
    }

    /// `Err(NotOurs)` naming the owner of the container called `name`, if one without the
    /// stage's labels holds it.
    async fn refuse_holder(&self, desired: &Desired, name: &str) -> Result<(), BackendError> {
        match self.engine.client().inspect_container(name, None).await {
            Ok(info) => {
                let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
                if is_ours(desired, &labels) {
                    // Made just now by a concurrent deploy of the stage: not someone else's.
                    return Ok(());
                }
                Err(not_ours(desired, "container", name, &labels))
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.engine.classify_error("inspect container", e).into()),
        }
    }

    async fn ensure_network(&self, desired: &Desired) -> Result<(), BackendError> {
        let docker = self.engine.client();
        match docker.inspect_network(&desired.network, None).await {
            Ok(network) => return self.network_is_ours(desired, network.labels),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(self.engine.classify_error("inspect network", e).into()),
        }
        let request = NetworkCreateRequest {
            name: desired.network.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(desired.labels(None).into_iter().collect()),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Created in between (a concurrent deploy of the stage, or someone else): as good
            // only if it is ours.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                let network = docker
                    .inspect_network(&desired.network, None)
                    .await
                    .map_err(self.err("inspect network"))?;
                self.network_is_ours(desired, network.labels)
            }
            Err(e) => Err(self.engine.classify_error("create network", e).into()),
        }
    }

    fn network_is_ours(
        &self,
        desired: &Desired,
        labels: Option<HashMap<String, String>>,
    ) -> Result<(), BackendError> {
        let labels = labels.unwrap_or_default();
        if is_ours(desired, &labels) {
            Ok(())
        } else {
            Err(not_ours(desired, "network", &desired.network, &labels))
        }
    }

    /// Removes the stage's networks by an earlier name (`<project>-<stage>`, shared by every site
    /// then): labelled as this site's stage, but not `desired.network`. One that containers
    /// still use (another site's, not converged yet) is left for later.
    async fn prune_networks(&self, desired: &Desired) -> Result<(), EngineError> {
        let docker = self.engine.client();
        let mut networks = Vec::new();
        for filter in desired.filters() {
            let filters = HashMap::from([("label".to_owned(), filter)]);
            let found = docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filters),
                }))
                .await
                .map_err(self.err("list networks"))?;
            networks.extend(found);
        }
        for network in networks {
            let (Some(id), Some(name)) = (network.id, network.name) else {
                continue;
            };
            if name == desired.network {
                continue;
            }
            match docker.remove_network(&id).await {
                Ok(()) => {}
                // In use (403 "has active endpoints"), or gone (404): not ours to force.
                Err(BollardError::DockerResponseServerError {
                    status_code: 403 | 404 | 409,
                    ..
                }) => {}
                Err(e) => return Err(self.engine.classify_error("remove network", e)),
            }
        }
        Ok(())
    }

    /// The image to run: the lock's digest as a registry digest of its repository, else as a
    /// local image id; pulled by digest when the engine has neither.
    async fn image_of(&self, image: &str, digest: &str) -> Result<String, EngineError> {
        let docker = self.engine.client();
        let repository = image
            .rsplit_once(':')
            .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
            .map_or(image, |(repo, _)| repo);
        let by_digest = format!("{repository}@{digest}");
        for candidate in [by_digest.as_str(), digest] {
            if let Ok(found) = docker.inspect_image(candidate).await {
                if let Some(id) = found.id {
                    return Ok(id);
                }
            }
        }
        let mut pull = docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(by_digest.clone()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = pull.next().await {
            item.map_err(self.err("pull"))?;
        }
        let found = docker
            .inspect_image(&by_digest)
            .await
            .map_err(self.err("inspect image"))?;
        Ok(found.id.unwrap_or(by_digest))
    }

    /// Removes some of the stage's containers by id (as listed with the stage's labels), with
    /// their pods' members and scratch volumes, each stopped first within its grace: the main
    /// containers all at once (their longest grace, not the sum), then each pod's members, as
    /// on Kubernetes: its sidecars serve it until it has stopped.
    async fn remove_all(&self, desired: &Desired, going: &[&Running]) -> Result<(), EngineError> {
        let ids: Vec<String> = going.iter().map(|ours| ours.id.clone()).collect();
        stop::stop_all(self.engine, &ids, self.stop_cap).await?;
        for ours in going {
            self.remove(desired, ours).await?;
        }
        Ok(())
    }

    /// Removes one of the stage's containers, stopped already, with its pod.
    async fn remove(&self, desired: &Desired, ours: &Running) -> Result<(), EngineError> {
        self.remove_pod(desired, &ours.name).await?;
        self.remove_main(ours).await?;
        self.remove_pod_volumes(desired, &ours.name).await
    }

    async fn remove_main(&self, ours: &Running) -> Result<(), EngineError> {
        match self
            .engine
            .client()
            .remove_container(
                &ours.id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.engine.classify_error("remove container", e)),
        }
    }

    /// Creates and starts `instance` and its pod, first removing the containers of ours it
    /// replaces; `Ok(Err(why))`: an init container failed, and the main container was not
    /// created. `member_envs`: each member's environment, in `instance.members`' order.
    async fn create_and_start(
        &self,
        desired: &Desired,
        instance: &Instance,
        env: &[String],
        member_envs: &[Vec<String>],
        replaces: &[&Running],
    ) -> Result<Result<(), String>, BackendError> {
        let image = self.image_of(&instance.image, &instance.digest).await?;
        self.remove_all(desired, replaces).await?;
        let pod = !instance.members.is_empty() || !instance.volumes.is_empty();
        if pod {
            // What a failed attempt left (its init containers, its scratch volumes) when no main
            // container was there to be replaced.
            self.remove_pod(desired, &instance.name).await?;
            self.remove_pod_volumes(desired, &instance.name).await?;
            self.ensure_volumes(desired, instance).await?;
            let deadline = health_deadline(&instance.health);
            if let Err(why) = self
                .run_init(desired, instance, member_envs, deadline)
                .await?
            {
                return Ok(Err(why));
            }
        }
        let body = main_container_body(desired, instance, image, env);
        let docker = self.engine.client();
        let created = match docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(instance.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
        {
            Ok(created) => created,
            // The name was taken since `changes` looked: say by whom.
            Err(
                e @ BollardError::DockerResponseServerError {
                    status_code: 409, ..
                },
            ) => {
                self.refuse_holder(desired, &instance.name).await?;
                return Err(self.engine.classify_error("create container", e).into());
            }
            Err(e) => return Err(self.engine.classify_error("create container", e).into()),
        };
        docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
            .map_err(self.err("start container"))?;
        self.start_sidecars(desired, instance, member_envs, &created.id)
            .await?;
        Ok(Ok(()))
    }

    /// Waits until `instance` and its sidecars are healthy; `Err(why)` when one cannot become so.
    async fn wait_pod(&self, instance: &Instance) -> Result<Result<(), String>, EngineError> {
        let deadline = Instant::now() + health_deadline(&instance.health);
        let sidecars = instance
            .members
            .iter()
            .filter(|m| m.role == crate::model::pod::Role::Sidecar);
        let waits = std::iter::once(self.wait_healthy(&instance.name, &instance.health, deadline))
            .chain(sidecars.map(|m| {
                let deadline = deadline.max(Instant::now() + health_deadline(&m.health));
                self.wait_healthy(&m.name, &m.health, deadline)
            }));
        let named = instance
            .members
            .iter()
            .filter(|m| m.role == crate::model::pod::Role::Sidecar);
        let names: Vec<Option<&str>> = std::iter::once(None)
            .chain(named.map(|m| Some(m.container.as_str())))
            .collect();
        for (i, result) in futures_util::future::join_all(waits)
            .await
            .into_iter()
            .enumerate()
        {
            if let Err(why) = result? {
                return Ok(Err(match names[i] {
                    None => why,
                    Some(sidecar) => format!("its sidecar `{sidecar}`: {why}"),
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Waits until the container `name` is healthy by `health`; `Err(why)` when it cannot
    /// become so by `deadline`.
    async fn wait_healthy(
        &self,
        name: &str,
        health: &Health,
        deadline: Instant,
    ) -> Result<Result<(), String>, EngineError> {
        loop {
            let info = self
                .engine
                .client()
                .inspect_container(name, None)
                .await
                .map_err(self.err("inspect container"))?;
            let state = info.state.unwrap_or_default();
            let restarts = info.restart_count.unwrap_or(0);
            if restarts > 0 || state.restarting == Some(true) {
                return Ok(Err(format!("it restarted ({restarts} time(s))")));
            }
            if state.running != Some(true) {
                return Ok(Err(format!(
                    "it exited with code {}",
                    state.exit_code.unwrap_or(-1)
                )));
            }
            let last = state.health.as_ref().map(last_probe).unwrap_or_default();
            match state.health.and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) => return Ok(Ok(())),
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Ok(Err(format!("its health check failed{last}")))
                }
                // No probe: running, not restarting, for the grace period since it started.
                None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY)
                    if up_for(state.started_at.as_deref()) >= health.grace =>
                {
                    return Ok(Ok(()))
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Ok(Err(format!("it did not become healthy in time{last}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The image id a lock digest resolves to here, without pulling.
    async fn local_image(&self, instance: &Instance) -> Option<String> {
        let docker = self.engine.client();
        let repository = instance
            .image
            .rsplit_once(':')
            .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
            .map_or(instance.image.as_str(), |(repo, _)| repo);
        for candidate in [
            format!("{repository}@{}", instance.digest),
            instance.digest.clone(),
        ] {
            if let Ok(found) = docker.inspect_image(&candidate).await {
                return found.id;
            }
        }
        None
    }

    /// What a running container offers, asked through the engine API only (so a remote engine
    /// answers as well as a local one): its processes (`docker top`) and its listening sockets
    /// (`cat /proc/net/tcp /proc/net/tcp6` run inside it).
    /// `main_pid` is the engine's `State.Pid`: only its process tree counts (not health checks).
    pub async fn services(&self, name: &str, main_pid: u32) -> Result<Services, EngineError> {
        let top = self
            .engine
            .client()
            .top_processes(name, None::<TopOptions>)
            .await
            .map_err(self.err("list processes"))?;
        let titles = top.titles.unwrap_or_default();
        let at = |name: &str| titles.iter().position(|t| t == name);
        let command = at("CMD")
            .or_else(|| at("COMMAND"))
            .unwrap_or(titles.len().saturating_sub(1));
        let (pid, ppid) = (at("PID"), at("PPID"));
        let rows: Vec<(u32, u32, String)> = top
            .processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| {
                let number = |i: Option<usize>| row.get(i?)?.trim().parse::<u32>().ok();
                Some((number(pid)?, number(ppid)?, row.get(command)?.clone()))
            })
            .collect();
        let commands = main_tree(&rows, main_pid);
        let (listening, note) = match self.read_sockets(name).await? {
            Ok(text) => (Some(listening_ports(&text)), None),
            Err(why) => (None, Some(why)),
        };
        Ok(classify(listening, &commands, note))
    }

    /// The text of the container's `/proc/net/tcp` and `/proc/net/tcp6`, read by `cat` inside
    /// it; `Err(why)` when that cannot be done (no `cat` in the image): then nothing is guessed.
    async fn read_sockets(&self, name: &str) -> Result<Result<String, String>, EngineError> {
        let docker = self.engine.client();
        let exec = docker
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(vec!["cat", "/proc/net/tcp", "/proc/net/tcp6"]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(self.err("exec in container"))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        match docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .map_err(self.err("exec in container"))?
        {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(item) = output.next().await {
                    match item.map_err(self.err("exec in container"))? {
                        LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                        LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                        _ => {}
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let code = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(self.err("exec in container"))?
            .exit_code;
        // 126/127: the runtime found no `cat` to run (an image FROM scratch with one binary).
        if matches!(code, Some(126 | 127)) {
            return Ok(Err(
                "the image has no `cat` to read /proc/net/tcp: listening ports unknown".to_owned(),
            ));
        }
        let text = String::from_utf8_lossy(&stdout).into_owned();
        // `cat` fails on a missing tcp6 (IPv6 off) after printing tcp: what it printed counts.
        if text.trim().is_empty() {
            let why = String::from_utf8_lossy(&stderr).trim().to_owned();
            return Ok(Err(format!(
                "cannot read /proc/net/tcp in the container ({}): listening ports unknown",
                if why.is_empty() { "no output" } else { &why }
            )));
        }
        Ok(Ok(text))
    }

    /// Each desired instance as the engine runs it, with the services it offers.
    pub async fn status(&self, desired: &Desired) -> Result<Vec<InstanceStatus>, EngineError> {
        self.status_of(desired, true).await
    }

    /// Each desired instance as the engine runs it; `services`: also what it offers (an exec per
    /// running container).
    pub async fn status_of(
        &self,
        desired: &Desired,
        services: bool,
    ) -> Result<Vec<InstanceStatus>, EngineError> {
        let with_services = services;
        let mut out = Vec::new();
        for instance in desired.instances() {
            let desired_image = self.local_image(instance).await;
            let status = match self
                .engine
                .client()
                .inspect_container(&instance.name, None)
                .await
            {
                // A namesake that is not ours (compose's, another site's) is neither inspected
                // further nor exec'd into, and never counts as this instance running.
                Ok(info) if !is_instance(desired, instance, info.config.as_ref()) => {
                    InstanceStatus::absent(instance, "foreign", desired_image)
                }
                Ok(info) => {
                    let state = info.state.unwrap_or_default();
                    let config = info
                        .config
                        .and_then(|c| c.labels)
                        .and_then(|l| config_hash(desired, &l));
                    let running_image = info.image;
                    let up = state.running == Some(true) && state.restarting != Some(true);
                    let services = if with_services && up {
                        let pid = state.pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
                        match self.services(&instance.name, pid).await {
                            Ok(services) => Some(services),
                            // It stopped or began restarting since it was inspected (the engine
                            // answers 409): nothing to ask it now; the rest of the row says so.
                            Err(EngineError::Api { status: 409, .. }) => None,
                            Err(e) => return Err(e),
                        }
                    } else {
                        None
                    };
                    InstanceStatus {
                        name: instance.name.clone(),
                        container: instance.container.to_string(),
                        state: state
                            .status
                            .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                        health: state
                            .health
                            .and_then(|h| h.status)
                            .map(|h| h.to_string())
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| "none".to_owned()),
                        restarts: info.restart_count.unwrap_or(0),
                        exit_code: (state.running != Some(true))
                            .then_some(state.exit_code)
                            .flatten(),
                        finished_at: (state.running != Some(true))
                            .then(|| state.finished_at.clone())
                            .flatten()
                            .filter(|t| !t.starts_with("0001-")),
                        started_at: state.started_at,
                        drift: running_image.is_none()
                            || running_image != desired_image
                            || config.as_deref() != Some(&instance.config_hash),
                        desired_image,
                        running_image,
                        services,
                        members: Vec::new(),
                    }
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => InstanceStatus::absent(instance, "missing", desired_image),
                Err(e) => return Err(self.engine.classify_error("inspect container", e)),
            };
            let members = self.member_status(desired, instance).await?;
            out.push(InstanceStatus { members, ..status });
        }
        Ok(out)
    }

    /// Each member of `instance`'s pod as the engine has it.
    async fn member_status(
        &self,
        desired: &Desired,
        instance: &Instance,
    ) -> Result<Vec<MemberStatus>, EngineError> {
        let mut out = Vec::new();
        for m in &instance.members {
            let mut row = MemberStatus {
                name: m.name.clone(),
                container: m.container.to_string(),
                role: m.role.as_str().to_owned(),
                state: "missing".to_owned(),
                health: "none".to_owned(),
                exit_code: None,
            };
            match self.engine.client().inspect_container(&m.name, None).await {
                Ok(info) => {
                    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
                    let of_pod = labels.get(crate::labels::deploy::POD) == Some(&instance.name);
                    if !(is_ours(desired, &labels) && of_pod) {
                        row.state = "foreign".to_owned();
                    } else {
                        let state = info.state.unwrap_or_default();
                        row.state = state
                            .status
                            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                        if let Some(h) = state.health.and_then(|h| h.status) {
                            let h = h.to_string();
                            if !h.is_empty() {
                                row.health = h;
                            }
                        }
                        if state.running != Some(true) {
                            row.exit_code = state.exit_code;
                        }
                    }
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(self.engine.classify_error("inspect container", e)),
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// The Docker engine as a `deploy::Backend`: its units are containers, one per replica, named
/// `<project>-<site>-<stage>-<container>-<n>`.
pub struct DockerSite {
    engine: DockerEngine,
    /// Where the stage's secrets are read.
    secrets: crate::deploy::secrets::Source,
    /// Their values, read by `prepare` (before anything changes) and used to start containers.
    resolved: std::sync::Mutex<
        std::collections::BTreeMap<crate::model::pod::SecretRef, crate::deploy::secrets::Value>,
    >,
    /// What this deploy did so far (boxed: a `Site` holds either target's backend by value).
    progress: Box<Progress>,
    /// At most this many seconds for stopping a container (`ConnectOptions::stop_cap`).
    stop_cap: Option<u32>,
}

/// What a `DockerSite`'s deploy did so far, for its later steps.
#[derive(Default)]
struct Progress {
    /// The network `apply` made sure of (once per site: an unchanged deploy never asks).
    network: tokio::sync::Mutex<Option<String>>,
    /// Units whose init container failed in `apply`: `wait` reports them (unit → why).
    failed: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// `apply` changed something: `remove` then also prunes networks of earlier names.
    applied: std::sync::atomic::AtomicBool,
}

impl DockerSite {
    /// Connects to the engine `selector` chooses.
    pub async fn connect(selector: &crate::engine::Selector) -> Result<DockerSite, EngineError> {
        Ok(DockerSite {
            engine: DockerEngine::connect_selected(selector).await?,
            secrets: crate::deploy::secrets::Source::default(),
            resolved: std::sync::Mutex::default(),
            progress: Box::default(),
            stop_cap: None,
        })
    }

    /// The site, stopping a container it removes within at most `cap` seconds (`None`: each
    /// container's own grace).
    pub fn with_stop_cap(self, cap: Option<u32>) -> DockerSite {
        DockerSite {
            stop_cap: cap,
            ..self
        }
    }

    /// The site, reading secrets from `source`.
    pub fn with_secrets(self, source: crate::deploy::secrets::Source) -> DockerSite {
        DockerSite {
            secrets: source,
            ..self
        }
    }

    fn deployer(&self) -> Deployer<'_> {
        Deployer {
            engine: &self.engine,
            stop_cap: self.stop_cap,
        }
    }

    /// The site's engine (`cookbook down` and `exec` reach it directly).
    pub fn engine(&self) -> &DockerEngine {
        &self.engine
    }

    /// Makes sure of the stage's network once per site and network name.
    async fn ensure_network(&self, desired: &Desired) -> Result<(), BackendError> {
        let mut network = self.progress.network.lock().await;
        if network.as_deref() != Some(desired.network.as_str()) {
            self.deployer().ensure_network(desired).await?;
            *network = Some(desired.network.clone());
        }
        Ok(())
    }

    /// An environment (an instance's or a member's) with its secrets' values (read by
    /// `prepare`).
    fn environment(
        &self,
        env: &std::collections::BTreeMap<String, EnvValue>,
    ) -> Result<Vec<String>, BackendError> {
        let resolved = self.resolved.lock().expect("not poisoned");
        env.iter()
            .map(|(k, v)| match v {
                EnvValue::Text(t) => Ok(format!("{k}={t}")),
                EnvValue::Secret { secret } => match resolved.get(secret) {
                    Some(value) => Ok(format!("{k}={}", value.as_str())),
                    None => Err(crate::deploy::secrets::SecretError::Missing {
                        reference: secret.to_string(),
                        looked: "it was not read before the deploy started".to_owned(),
                    }
                    .into()),
                },
            })
            .collect()
    }

    /// Each desired instance as the engine runs it, without what it offers: no exec in the
    /// containers (the agent's periodic health check).
    pub async fn status_without_services(
        &self,
        desired: &Desired,
    ) -> Result<Vec<InstanceStatus>, EngineError> {
        self.deployer().status_of(desired, false).await
    }

    /// Whether `desired` runs here healthy, with its images (`automatic` progression): `Err`
    /// names the first instance that does not (`approvals::live_verdict`).
    pub async fn healthy(&self, desired: &Desired) -> Result<Result<(), String>, BackendError> {
        let list = self.status_without_services(desired).await?;
        Ok(crate::deploy::approvals::live_verdict(&list))
    }
}

impl Backend for DockerSite {
    type Status = Vec<InstanceStatus>;

    async fn prepare(&self, desired: &Desired) -> Result<(), BackendError> {
        let values = crate::deploy::secrets::resolve(desired.secrets(), &self.secrets, |v| {
            std::env::var(v).ok()
        })?;
        *self.resolved.lock().expect("not poisoned") = values;
        // The network is made sure of by `changes` when something will be created: a deploy
        // that changes nothing asks the engine for nothing but its list of containers.
        Ok(())
    }

    async fn changes(&self, desired: &Desired) -> Result<Changes, BackendError> {
        let deployer = self.deployer();
        let ours = deployer.running(desired).await?;
        deployer.check_names(desired, &ours).await?;
        let changes = changes(desired, &ours);
        // Something will be created: the network must be ours before anything changes (a
        // namesake stops the deploy here, with nothing replaced); an unchanged deploy never
        // asks about it.
        if changes.waves.iter().any(|w| !w.is_empty()) {
            self.ensure_network(desired).await?;
        }
        Ok(changes)
    }

    async fn apply(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<(), BackendError> {
        let deployer = self.deployer();
        self.ensure_network(desired).await?;
        self.progress
            .applied
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Listed again: what is replaced is what carries the stage's labels now.
        let ours = deployer.running(desired).await?;
        // The wave's units at once, as docker compose starts a wave's services: each is
        // independent of the others (they depend on earlier waves only).
        let starts = desired.waves[wave]
            .iter()
            .filter(|i| units.contains(&i.name))
            .map(|instance| {
                let deployer = &deployer;
                let ours = &ours;
                async move {
                    let replaces = replaced_by(desired, instance, ours);
                    let env = self.environment(&instance.env)?;
                    let member_envs = instance
                        .members
                        .iter()
                        .map(|m| self.environment(&m.env))
                        .collect::<Result<Vec<_>, _>>()?;
                    let started = deployer
                        .create_and_start(desired, instance, &env, &member_envs, &replaces)
                        .await?;
                    let mut failed = self.progress.failed.lock().expect("not poisoned");
                    match started {
                        Ok(()) => failed.remove(&instance.name),
                        Err(why) => failed.insert(instance.name.clone(), why),
                    };
                    Ok::<(), BackendError>(())
                }
            });
        futures_util::future::try_join_all(starts).await?;
        Ok(())
    }

    async fn wait(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<Result<(), Unhealthy>, BackendError> {
        let deployer = self.deployer();
        let wave: Vec<&Instance> = desired.waves[wave]
            .iter()
            .filter(|i| units.contains(&i.name))
            .collect();
        {
            let failed = self.progress.failed.lock().expect("not poisoned");
            if let Some((unit, why)) = wave
                .iter()
                .find_map(|i| failed.get(&i.name).map(|why| (&i.name, why)))
            {
                return Ok(Err(Unhealthy {
                    unit: unit.clone(),
                    why: why.clone(),
                }));
            }
        }
        // Waited for together; the first to fail ends the wait (the others' outcome no longer
        // matters: the wave has failed).
        let waits = wave.iter().map(|instance| {
            let deployer = &deployer;
            async move {
                match deployer.wait_pod(instance).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => Err(Ok(Unhealthy {
                        unit: instance.name.clone(),
                        why,
                    })),
                    Err(e) => Err(Err(BackendError::from(e))),
                }
            }
        });
        match futures_util::future::try_join_all(waits).await {
            Ok(_) => Ok(Ok(())),
            Err(Ok(unhealthy)) => Ok(Err(unhealthy)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn remove(&self, desired: &Desired, units: &[String]) -> Result<(), BackendError> {
        // Nothing to remove and nothing changed: no call at all (an unchanged deploy costs one
        // list).
        if units.is_empty()
            && !self
                .progress
                .applied
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let deployer = self.deployer();
        let running = deployer.running(desired).await?;
        let going: Vec<&Running> = running
            .iter()
            .filter(|ours| units.contains(&ours.name))
            .collect();
        deployer.remove_all(desired, &going).await?;
        deployer.prune_networks(desired).await?;
        Ok(())
    }

    async fn status(&self, desired: &Desired) -> Result<Vec<InstanceStatus>, BackendError> {
        Ok(self.deployer().status(desired).await?)
    }

    async fn detect(&self) -> Result<Option<Detected>, BackendError> {
        let info = self
            .engine
            .client()
            .info()
            .await
            .map_err(|e| self.engine.classify_error("info", e))?;
        Ok(Some(Detected::from_info(&info)))
    }
}

/// The engine's create request for `instance`'s main container: its image, environment, labels,
/// health check, published ports, resources, pod mounts, restart policy, and its alias on the
/// stage's network (reached by its cookbook name, like compose's service names).
fn main_container_body(
    desired: &Desired,
    instance: &Instance,
    image: String,
    env: &[String],
) -> ContainerCreateBody {
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = instance
        .ports
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.container, p.protocol),
                Some(vec![PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(p.host.to_string()),
                }]),
            )
        })
        .collect();
    ContainerCreateBody {
        image: Some(image),
        env: (!env.is_empty()).then(|| env.to_vec()),
        labels: Some(desired.labels(Some(instance)).into_iter().collect()),
        healthcheck: healthcheck(&instance.health),
        stop_timeout: instance.stop_grace.map(i64::from),
        exposed_ports: (!port_bindings.is_empty()).then(|| port_bindings.keys().cloned().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(desired.network.clone()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            nano_cpus: instance.nano_cpus,
            memory: instance.memory,
            mounts: pod::mounts(desired, instance, &instance.mounts),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                desired.network.clone(),
                EndpointSettings {
                    // Reached by its cookbook name, like compose's service names.
                    aliases: Some(vec![instance.container.to_string()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{Health, HealthcheckResult};

    fn health(results: &[(i64, &str)]) -> Health {
        Health {
            log: Some(
                results
                    .iter()
                    .map(|(code, output)| HealthcheckResult {
                        exit_code: Some(*code),
                        output: Some((*output).to_owned()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// The last probe is quoted, on one line, its control characters escaped and its length
    /// capped; no log, no quote.
    #[test]
    fn a_failed_gate_quotes_the_last_probe_escaped_and_capped() {
        assert_eq!(last_probe(&Health::default()), "");
        let h = health(&[
            (0, "fine"),
            (1, "wget: server returned error: HTTP/1.1 500\n"),
        ]);
        assert_eq!(
            last_probe(&h),
            "; the last probe exited with code 1: wget: server returned error: HTTP/1.1 500"
        );
        let h = health(&[(7, "a\nb\u{1b}[31mred\u{7}")]);
        assert_eq!(
            last_probe(&h),
            "; the last probe exited with code 7: a\\nb\\u{1b}[31mred\\u{7}"
        );
        let long = "x".repeat(PROBE_OUTPUT_CHARS * 3);
        let quoted = last_probe(&health(&[(1, &long)]));
        assert!(quoted.ends_with('…'), "{quoted}");
        assert!(quoted.chars().count() < PROBE_OUTPUT_CHARS + 60);
        assert_eq!(
            last_probe(&health(&[(2, "  ")])),
            "; the last probe exited with code 2 and printed nothing"
        );
    }
}
