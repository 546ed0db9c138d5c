//! Tearing a stage down on a Docker engine (`cookbook down`, as `docker compose down`).
//!
//! Pipeline position: `ops::down` → **here** → the engine. Works from the labels alone (the
//! project, site and stage), not from the lock: what a stage runs may predate the lock (an
//! earlier release, a container since removed from the cookbook), and all of it is the stage's.
//!
//! Ownership: an object is the stage's when its labels carry the stage's project, site and stage
//! under a scheme deploy recognises (`crate::labels::SCHEMES`: `dev.cookbook.*`, or an earlier
//! version's `io.cookbook.*`). Every object is listed by those labels and removed by its id, so
//! a namesake without them (docker compose's, one made by hand) is never touched, whatever its
//! name. Order: pod members (init containers, sidecars in the main's network namespace), then
//! main containers, then networks (a network still in use by a container that is not ours is
//! kept and said so: it is not ours to disconnect), then volumes: a pod's scratch volumes always
//! (they carry `dev.cookbook.pod`), a persistent volume only when asked (`volumes`), else kept
//! and named. Removing what is gone already (404) is not an error, so two `down`s at once, or a
//! second one, both end with nothing of the stage left.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use crate::engine::{DockerEngine, EngineError};
use crate::labels::{deploy as label, SCHEMES};

/// What `teardown` removed and what it kept; its serialization is part of `cookbook down`'s
/// `--format json` document. Every list is of engine names, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TeardownReport {
    /// Containers removed, pod members included.
    pub containers: Vec<String>,
    /// Networks removed.
    pub networks: Vec<String>,
    /// Volumes removed: scratch volumes, and persistent ones with `--volumes`.
    pub volumes: Vec<String>,
    /// Persistent volumes left in place (no `--volumes`): their data outlives a `down`.
    pub kept_volumes: Vec<String>,
    /// Networks of the stage left in place, with why (in use by a container that is not ours).
    pub kept_networks: Vec<String>,
}

impl TeardownReport {
    /// Nothing of the stage was there to remove.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// The `label` filters of the stage's objects, one per label scheme deploy recognises.
fn filters(project: &str, site: &str, stage: &str) -> Vec<HashMap<String, Vec<String>>> {
    SCHEMES
        .iter()
        .map(|s| {
            HashMap::from([(
                "label".to_owned(),
                vec![
                    format!("{}={project}", s.project),
                    format!("{}={site}", s.site),
                    format!("{}={stage}", s.stage),
                ],
            )])
        })
        .collect()
}

/// Whether `labels` carry the stage's project, site and stage under a scheme deploy recognises
/// (checked again on what the engine's filter returned: ownership is the labels', read here).
fn is_stage(labels: &HashMap<String, String>, project: &str, site: &str, stage: &str) -> bool {
    SCHEMES.iter().any(|s| {
        labels.get(s.project).map(String::as_str) == Some(project)
            && labels.get(s.site).map(String::as_str) == Some(site)
            && labels.get(s.stage).map(String::as_str) == Some(stage)
    })
}

/// Removes every container, network and scratch volume of the stage `project`/`site`/`stage`
/// that is ours by its labels, and its persistent volumes with `volumes`; see the module header.
pub async fn teardown(
    engine: &DockerEngine,
    project: &str,
    site: &str,
    stage: &str,
    volumes: bool,
) -> Result<TeardownReport, EngineError> {
    let mut report = TeardownReport {
        containers: remove_containers(engine, project, site, stage).await?,
        ..TeardownReport::default()
    };
    (report.networks, report.kept_networks) = remove_networks(engine, project, site, stage).await?;
    (report.volumes, report.kept_volumes) =
        remove_volumes(engine, project, site, stage, volumes).await?;
    Ok(report)
}

/// Stops the stage's containers, then removes them by id: pod members first, then the main
/// containers.
async fn remove_containers(
    engine: &DockerEngine,
    project: &str,
    site: &str,
    stage: &str,
) -> Result<Vec<String>, EngineError> {
    let docker = engine.client();
    // (is a pod member, id, name), each container once.
    let mut found: Vec<(bool, String, String)> = Vec::new();
    for filter in filters(project, site, stage) {
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine.classify_error("list containers", e))?;
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let (Some(id), Some(name)) = (c.id, c.names.and_then(|n| n.into_iter().next())) else {
                continue;
            };
            if !is_stage(&labels, project, site, stage) || found.iter().any(|f| f.1 == id) {
                continue;
            }
            let member = labels.contains_key(label::POD);
            found.push((member, id, name.trim_start_matches('/').to_owned()));
        }
    }
    // Every container is stopped within its own grace before anything is removed: the main
    // containers all at once (the stage is going away as a whole: its longest grace, not their
    // sum), then the pods' members, as on Kubernetes: a sidecar serves its main container
    // until that has stopped.
    for members in [false, true] {
        let ids: Vec<String> = found
            .iter()
            .filter(|f| f.0 == members)
            .map(|f| f.1.clone())
            .collect();
        super::stop::stop_all(engine, &ids, None).await?;
    }
    // Members (`true`) before their mains.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut removed = Vec::new();
    for (_, id, name) in found {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => removed.push(name),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(engine.classify_error("remove container", e)),
        }
    }
    removed.sort();
    Ok(removed)
}

/// Removes the stage's networks by id; one still in use (by a container that is not ours,
/// connected by hand) is kept, with why.
async fn remove_networks(
    engine: &DockerEngine,
    project: &str,
    site: &str,
    stage: &str,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let docker = engine.client();
    let mut found: Vec<(String, String)> = Vec::new();
    for filter in filters(project, site, stage) {
        let list = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| engine.classify_error("list networks", e))?;
        for n in list {
            let (Some(id), Some(name)) = (n.id, n.name) else {
                continue;
            };
            let labels = n.labels.unwrap_or_default();
            if is_stage(&labels, project, site, stage) && !found.iter().any(|f| f.0 == id) {
                found.push((id, name));
            }
        }
    }
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for (id, name) in found {
        match docker.remove_network(&id).await {
            Ok(()) => removed.push(name),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            // "has active endpoints": something not ours is still connected.
            Err(BollardError::DockerResponseServerError {
                status_code: 403 | 409,
                message,
            }) => kept.push(format!("{name} ({message})")),
            Err(e) => return Err(engine.classify_error("remove network", e)),
        }
    }
    removed.sort();
    kept.sort();
    Ok((removed, kept))
}

/// Removes the stage's scratch volumes, and its persistent ones when `persistent`; returns the
/// removed and the kept.
async fn remove_volumes(
    engine: &DockerEngine,
    project: &str,
    site: &str,
    stage: &str,
    persistent: bool,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let docker = engine.client();
    let mut found: Vec<(String, bool)> = Vec::new();
    for filter in filters(project, site, stage) {
        let list = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| engine.classify_error("list volumes", e))?;
        for v in list.volumes.unwrap_or_default() {
            if is_stage(&v.labels, project, site, stage) && !found.iter().any(|f| f.0 == v.name) {
                // A pod's scratch volume carries its pod; a persistent one never does.
                let scratch = v.labels.contains_key(label::POD);
                found.push((v.name, scratch));
            }
        }
    }
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for (name, scratch) in found {
        if !scratch && !persistent {
            kept.push(name);
            continue;
        }
        match docker
            .remove_volume(&name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => removed.push(name),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(engine.classify_error("remove volume", e)),
        }
    }
    removed.sort();
    kept.sort();
    Ok((removed, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ownership is the three labels under one scheme: a compose container, another stage's or
    /// a mix of the two schemes is not the stage's.
    #[test]
    fn only_the_stages_labels_make_an_object_its_own() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let ours = labels(&[
            ("dev.cookbook.project", "p"),
            ("dev.cookbook.site", "local"),
            ("dev.cookbook.stage", "dev"),
        ]);
        assert!(is_stage(&ours, "p", "local", "dev"));
        assert!(!is_stage(&ours, "p", "local", "prod"));
        let legacy = labels(&[
            ("io.cookbook.project", "p"),
            ("io.cookbook.site", "local"),
            ("io.cookbook.stage", "dev"),
        ]);
        assert!(is_stage(&legacy, "p", "local", "dev"));
        let mixed = labels(&[
            ("dev.cookbook.project", "p"),
            ("io.cookbook.site", "local"),
            ("dev.cookbook.stage", "dev"),
        ]);
        assert!(!is_stage(&mixed, "p", "local", "dev"));
        let compose = labels(&[("com.docker.compose.project", "p")]);
        assert!(!is_stage(&compose, "p", "local", "dev"));
        assert_eq!(filters("p", "local", "dev").len(), SCHEMES.len());
    }
}
