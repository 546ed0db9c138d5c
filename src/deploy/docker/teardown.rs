//! Tearing a stage down on a Docker engine: every container, network and scratch volume of the
//! stage that is ours (`cookbook dev --down`; `cookbook down` reuses it).
//!
//! Ours: labelled with the stage's project, site and stage under a scheme deploy recognises
//! (`labels::SCHEMES`), as listed by those labels; each object is removed by the id the list
//! gave. Containers first (forced: a dev loop's stage is not drained), their pods' members
//! included, then volumes, then networks (a network still used by something else — not ours —
//! is left, and said). A persistent volume (one with no pod label: it outlives every release)
//! is removed only when `volumes` asks for it, as `docker compose down --volumes`.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};
use serde::Serialize;

use super::logs::StageRef;
use crate::engine::{DockerEngine, EngineError};
use crate::labels::deploy as label;

/// What a teardown removed (engine names), and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeardownReport {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
    /// Persistent volumes kept (asked to keep them: `volumes` false).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_volumes: Vec<String>,
    /// Networks left because something that is not ours still uses them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks_in_use: Vec<String>,
}

/// Removes every container, scratch volume and network of `project`'s `stage` on `site` that
/// carries the stage's labels; persistent volumes too when `volumes`. Nothing without those
/// labels is touched. Removing what is already gone is not an error.
pub async fn teardown(
    docker: &DockerEngine,
    project: &str,
    site: &str,
    stage: &str,
    volumes: bool,
) -> Result<TeardownReport, EngineError> {
    let stage = StageRef {
        project: project.to_owned(),
        site: site.to_owned(),
        stage: stage.to_owned(),
    };
    let mut report = TeardownReport::default();
    remove_containers(docker, &stage, &mut report).await?;
    remove_volumes(docker, &stage, volumes, &mut report).await?;
    remove_networks(docker, &stage, &mut report).await?;
    report.containers.sort();
    report.volumes.sort();
    report.networks.sort();
    Ok(report)
}

fn gone(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn remove_containers(
    docker: &DockerEngine,
    stage: &StageRef,
    report: &mut TeardownReport,
) -> Result<(), EngineError> {
    for filter in stage.filters() {
        let list = docker
            .client()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_owned(), filter)])),
                ..Default::default()
            }))
            .await
            .map_err(|e| docker.classify_error("list containers", e))?;
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let (Some(id), Some(_)) = (c.id, stage.owns(&labels)) else {
                continue;
            };
            let options = RemoveContainerOptions {
                force: true,
                v: false,
                ..Default::default()
            };
            match docker.client().remove_container(&id, Some(options)).await {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(docker.classify_error("remove container", e)),
            }
            let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or(id);
            report
                .containers
                .push(name.trim_start_matches('/').to_owned());
        }
    }
    Ok(())
}

async fn remove_volumes(
    docker: &DockerEngine,
    stage: &StageRef,
    persistent: bool,
    report: &mut TeardownReport,
) -> Result<(), EngineError> {
    for filter in stage.filters() {
        let list = docker
            .client()
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(HashMap::from([("label".to_owned(), filter)])),
            }))
            .await
            .map_err(|e| docker.classify_error("list volumes", e))?;
        for v in list.volumes.unwrap_or_default() {
            if stage.owns(&v.labels).is_none() {
                continue;
            }
            if !v.labels.contains_key(label::POD) && !persistent {
                report.kept_volumes.push(v.name);
                continue;
            }
            match docker
                .client()
                .remove_volume(&v.name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => report.volumes.push(v.name),
                Err(e) if gone(&e) => {}
                Err(e) => return Err(docker.classify_error("remove volume", e)),
            }
        }
    }
    Ok(())
}

async fn remove_networks(
    docker: &DockerEngine,
    stage: &StageRef,
    report: &mut TeardownReport,
) -> Result<(), EngineError> {
    for filter in stage.filters() {
        let list = docker
            .client()
            .list_networks(Some(ListNetworksOptions {
                filters: Some(HashMap::from([("label".to_owned(), filter)])),
            }))
            .await
            .map_err(|e| docker.classify_error("list networks", e))?;
        for n in list {
            let labels = n.labels.unwrap_or_default();
            let (Some(id), Some(_)) = (n.id, stage.owns(&labels)) else {
                continue;
            };
            let name = n.name.unwrap_or_else(|| id.clone());
            match docker.client().remove_network(&id).await {
                Ok(()) => report.networks.push(name),
                Err(e) if gone(&e) => {}
                // Something that is not ours still has an endpoint on it.
                Err(BollardError::DockerResponseServerError {
                    status_code: 403 | 409,
                    ..
                }) => report.networks_in_use.push(name),
                Err(e) => return Err(docker.classify_error("remove network", e)),
            }
        }
    }
    Ok(())
}
