//! A pod on a Docker engine: the members and volumes of an instance (format 1.1), around the main
//! container that `super` creates as it always has.
//!
//! Order (what docker compose does with `depends_on: condition: service_completed_successfully`
//! and `network_mode: service:main`): the pod's volumes; each init container as a one-shot
//! container, in order, each waited for and required to exit 0 (else the main container is never
//! created and the wave fails naming the init container, its exit code and the last lines of its
//! log); the main container; each sidecar in the main container's network namespace
//! (`network_mode: container:<main id>`: it answers on the main's 127.0.0.1, and the main's
//! network alias reaches both).
//!
//! Names and ownership: members are `member_name(instance, role, container)`, labelled with the
//! stage's labels, their own container, `dev.cookbook.pod=<main name>` and `dev.cookbook.role`;
//! `running` never lists them as units: they go with their pod, by the pod label and by id.
//! Scratch volumes are `<main name>-<volume>` (labelled with the pod: removed and recreated with
//! it). Persistent volumes are `<project>-<site>-<stage>-<container>-<volume>`, labelled with the
//! container and the volume but no pod, so nothing that removes a pod's objects ever finds them:
//! a redeploy, a new image, a rollback and a prune keep them. A volume of that name that is not
//! ours is refused (`NotOurs`), never mounted.
//!
//! Logs: an init container's log is its own output, which cookbook never fills with a secret,
//! but a program may print its environment: only its last `LOG_LINES` lines, each cut to
//! `LOG_LINE_CHARS`, enter the failure message, and the environment is never printed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, LogsOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::{healthcheck, is_ours, not_ours, Deployer};
use crate::deploy::backend::BackendError;
use crate::deploy::desired::{Desired, Instance, Member};
use crate::engine::EngineError;
use crate::labels::deploy as label;
use crate::model::pod::Role;

/// How many of an init container's last log lines a failure quotes, and how long each may be.
const LOG_LINES: usize = 10;
const LOG_LINE_CHARS: usize = 200;

/// The engine's name of a pod volume: scratch volumes belong to the instance, persistent ones to
/// the stage's container (every replica and every release of it).
pub fn volume_name(desired: &Desired, instance: &Instance, volume: &str) -> String {
    let persistent = instance
        .volumes
        .iter()
        .any(|(name, v)| name.as_str() == volume && v.persistent.is_some());
    if persistent {
        format!(
            "{}-{}-{}-{}-{volume}",
            desired.project, desired.site, desired.stage, instance.container
        )
    } else {
        format!("{}-{volume}", instance.name)
    }
}

/// The labels a volume carries: the stage's, and its pod (scratch) or its container
/// (persistent).
fn volume_labels(desired: &Desired, instance: &Instance, volume: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = desired.labels(None).into_iter().collect();
    labels.insert(label::VOLUME.to_owned(), volume.to_owned());
    let persistent = instance
        .volumes
        .get(volume)
        .is_some_and(|v| v.persistent.is_some());
    if persistent {
        labels.insert(label::CONTAINER.to_owned(), instance.container.to_string());
    } else {
        labels.insert(label::POD.to_owned(), instance.name.clone());
    }
    labels
}

/// The engine mounts for `mounts` (pod volume → path in the container).
pub fn mounts(
    desired: &Desired,
    instance: &Instance,
    mounts: &std::collections::BTreeMap<crate::model::Name, String>,
) -> Option<Vec<Mount>> {
    (!mounts.is_empty()).then(|| {
        mounts
            .iter()
            .map(|(volume, path)| Mount {
                target: Some(path.clone()),
                source: Some(volume_name(desired, instance, volume.as_str())),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            })
            .collect()
    })
}

/// The labels of a pod member: the pod's (its config hash included), with the member's own
/// container, the pod and the role.
fn member_labels(
    desired: &Desired,
    instance: &Instance,
    member: &Member,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = desired.labels(Some(instance)).into_iter().collect();
    labels.insert(label::CONTAINER.to_owned(), member.container.to_string());
    labels.insert(label::POD.to_owned(), instance.name.clone());
    labels.insert(label::ROLE.to_owned(), member.role.as_str().to_owned());
    labels
}

/// The label filter of the stage's objects that belong to the pod of the instance `pod`.
fn pod_filter(desired: &Desired, pod: &str) -> HashMap<String, Vec<String>> {
    let mut filter = super::ours_filter(desired);
    filter.push(format!("{}={pod}", label::POD));
    HashMap::from([("label".to_owned(), filter)])
}

/// The last lines of a log, each cut short.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_LINES)..]
        .iter()
        .map(|l| l.chars().take(LOG_LINE_CHARS).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Deployer<'_> {
    /// Removes the members and scratch volumes of the pod of the instance named `pod` (those
    /// carrying the stage's labels and the pod's), by id, each stopped first within its grace;
    /// the pod's main container is the caller's.
    pub(super) async fn remove_pod(&self, desired: &Desired, pod: &str) -> Result<(), EngineError> {
        let docker = self.engine.client();
        let members = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(pod_filter(desired, pod)),
                ..Default::default()
            }))
            .await
            .map_err(self.err("list containers"))?;
        let ids: Vec<String> = members.into_iter().filter_map(|c| c.id).collect();
        super::stop::stop_all(self.engine, &ids, self.stop_cap).await?;
        for id in ids {
            match docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(())
                | Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(self.engine.classify_error("remove container", e)),
            }
        }
        Ok(())
    }

    /// Removes the scratch volumes of the pod `pod` (after its containers are gone).
    pub(super) async fn remove_pod_volumes(
        &self,
        desired: &Desired,
        pod: &str,
    ) -> Result<(), EngineError> {
        let docker = self.engine.client();
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(pod_filter(desired, pod)),
            }))
            .await
            .map_err(self.err("list volumes"))?;
        for v in volumes.volumes.unwrap_or_default() {
            // The filter asked for the pod label; a persistent volume never carries one, and
            // this check keeps it so whatever the engine's filter does.
            if v.labels.get(label::POD).map(String::as_str) != Some(pod) {
                continue;
            }
            match docker
                .remove_volume(&v.name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(())
                | Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(self.engine.classify_error("remove volume", e)),
            }
        }
        Ok(())
    }

    /// Creates the pod's scratch volumes and ensures its persistent ones (reused when ours,
    /// refused when anyone else's).
    pub(super) async fn ensure_volumes(
        &self,
        desired: &Desired,
        instance: &Instance,
    ) -> Result<(), BackendError> {
        let docker = self.engine.client();
        for volume in instance.volumes.keys() {
            let name = volume_name(desired, instance, volume.as_str());
            let labels = volume_labels(desired, instance, volume.as_str());
            match docker.inspect_volume(&name).await {
                Ok(found) => {
                    let ours = is_ours(desired, &found.labels)
                        && labels.iter().all(|(k, v)| found.labels.get(k) == Some(v));
                    if !ours {
                        return Err(not_ours(desired, "volume", &name, &found.labels));
                    }
                    continue;
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(self.engine.classify_error("inspect volume", e).into()),
            }
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(name),
                    labels: Some(labels),
                    ..Default::default()
                })
                .await
                .map_err(self.err("create volume"))?;
        }
        Ok(())
    }

    /// Creates (not starts) a member of the pod; `network`: its network mode.
    async fn create_member(
        &self,
        desired: &Desired,
        instance: &Instance,
        member: &Member,
        env: &[String],
        network: String,
    ) -> Result<String, BackendError> {
        let image = self.image_of(&member.image, &member.digest).await?;
        let sidecar = member.role == Role::Sidecar;
        let body = ContainerCreateBody {
            image: Some(image),
            env: (!env.is_empty()).then(|| env.to_vec()),
            labels: Some(member_labels(desired, instance, member)),
            healthcheck: if sidecar {
                healthcheck(&member.health)
            } else {
                None
            },
            stop_timeout: member.stop_grace.map(i64::from),
            host_config: Some(HostConfig {
                network_mode: Some(network),
                mounts: mounts(desired, instance, &member.mounts),
                restart_policy: sidecar.then_some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .engine
            .client()
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(member.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        match created {
            Ok(c) => Ok(c.id),
            Err(
                e @ BollardError::DockerResponseServerError {
                    status_code: 409, ..
                },
            ) => {
                self.refuse_holder(desired, &member.name).await?;
                Err(self.engine.classify_error("create container", e).into())
            }
            Err(e) => Err(self.engine.classify_error("create container", e).into()),
        }
    }

    /// Runs the pod's init containers in order, each to its exit, on the stage's network (with
    /// no alias: nothing reaches an init container). `Ok(Err(why))`: one failed (exit code, or
    /// the deadline), naming it and quoting the end of its log; the rest are not run.
    pub(super) async fn run_init(
        &self,
        desired: &Desired,
        instance: &Instance,
        envs: &[Vec<String>],
        deadline: Duration,
    ) -> Result<Result<(), String>, BackendError> {
        let docker = self.engine.client();
        let until = Instant::now() + deadline;
        for (member, env) in instance.members.iter().zip(envs) {
            if member.role != Role::Init {
                continue;
            }
            let id = self
                .create_member(desired, instance, member, env, desired.network.clone())
                .await?;
            docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(self.err("start container"))?;
            let left = until.saturating_duration_since(Instant::now());
            let mut waiting = docker.wait_container(&id, None::<WaitContainerOptions>);
            let code = match tokio::time::timeout(left, waiting.next()).await {
                Err(_) => {
                    let _ = docker.kill_container(&id, None).await;
                    return Ok(Err(format!(
                        "init container `{}` did not finish in {}s{}",
                        member.container,
                        deadline.as_secs(),
                        self.log_tail(&id).await
                    )));
                }
                Ok(Some(Ok(response))) => response.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Ok(Some(Err(BollardError::DockerContainerWaitError { code, .. }))) => code,
                Ok(Some(Err(e))) => {
                    return Err(self.engine.classify_error("wait for container", e).into())
                }
                Ok(None) => -1,
            };
            if code != 0 {
                return Ok(Err(format!(
                    "init container `{}` exited with code {code}{}",
                    member.container,
                    self.log_tail(&id).await
                )));
            }
        }
        Ok(Ok(()))
    }

    /// "; its last log lines: …" for a failed init container (empty when it printed nothing or
    /// the log cannot be read: the failure is the exit code, not its log).
    async fn log_tail(&self, id: &str) -> String {
        let mut logs = self.engine.client().logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: LOG_LINES.to_string(),
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            if text.len() > LOG_LINES * LOG_LINE_CHARS * 2 {
                break;
            }
        }
        let text = tail(text.trim_end());
        if text.is_empty() {
            String::new()
        } else {
            format!("; its last log lines:\n{text}")
        }
    }

    /// Creates and starts the pod's sidecars in the network namespace of its main container.
    pub(super) async fn start_sidecars(
        &self,
        desired: &Desired,
        instance: &Instance,
        envs: &[Vec<String>],
        main_id: &str,
    ) -> Result<(), BackendError> {
        for (member, env) in instance.members.iter().zip(envs) {
            if member.role != Role::Sidecar {
                continue;
            }
            let id = self
                .create_member(
                    desired,
                    instance,
                    member,
                    env,
                    format!("container:{main_id}"),
                )
                .await?;
            self.engine
                .client()
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(self.err("start container"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_tail_keeps_the_last_lines_each_cut_short() {
        let log: String = (1..=15).map(|i| format!("line {i}\n")).collect();
        let t = tail(log.trim_end());
        assert_eq!(t.lines().count(), LOG_LINES);
        assert!(t.starts_with("line 6\n") && t.ends_with("line 15"));
        let long = "x".repeat(1000);
        assert_eq!(tail(&long).len(), LOG_LINE_CHARS);
    }
}
