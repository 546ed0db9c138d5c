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
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};

use super::logs::StageRef;
use crate::engine::{DockerEngine, EngineError};
use crate::labels::deploy as label;

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

/// The engine's `label` filters of the stage's objects, one per label scheme deploy recognises.
fn label_filters(stage: &StageRef) -> Vec<HashMap<String, Vec<String>>> {
    (stage.filters().into_iter())
        .map(|f| HashMap::from([("label".to_owned(), f)]))
        .collect()
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
    let stage = StageRef {
        project: project.to_owned(),
        site: site.to_owned(),
        stage: stage.to_owned(),
    };
    let mut report = TeardownReport {
        containers: remove_containers(engine, &stage).await?,
        ..TeardownReport::default()
    };
    (report.networks, report.kept_networks) = remove_networks(engine, &stage).await?;
    (report.volumes, report.kept_volumes) = remove_volumes(engine, &stage, volumes).await?;
    Ok(report)
}

/// Stops the stage's containers, then removes them by id: pod members first, then the main
/// containers.
async fn remove_containers(
    engine: &DockerEngine,
    stage: &StageRef,
) -> Result<Vec<String>, EngineError> {
    let docker = engine.client();
    // (is a pod member, id, name), each container once.
    let mut found: Vec<(bool, String, String)> = (stage.list(engine).await?)
        .into_iter()
        .map(|c| (c.labels.contains_key(label::POD), c.id, c.name))
        .collect();
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
    stage: &StageRef,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let docker = engine.client();
    let mut found: Vec<(String, String)> = Vec::new();
    for filter in label_filters(stage) {
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
            if stage.owns(&labels).is_some() && !found.iter().any(|f| f.0 == id) {
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
    stage: &StageRef,
    persistent: bool,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let docker = engine.client();
    let mut found: Vec<(String, bool)> = Vec::new();
    for filter in label_filters(stage) {
        let list = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| engine.classify_error("list volumes", e))?;
        for v in list.volumes.unwrap_or_default() {
            if stage.owns(&v.labels).is_some() && !found.iter().any(|f| f.0 == v.name) {
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
    use crate::labels::SCHEMES;

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
        let stage = |name: &str| StageRef {
            project: "p".into(),
            site: "local".into(),
            stage: name.into(),
        };
        let is_stage =
            |labels: &HashMap<String, String>, name: &str| stage(name).owns(labels).is_some();
        assert!(is_stage(&ours, "dev"));
        assert!(!is_stage(&ours, "prod"));
        let legacy = labels(&[
            ("io.cookbook.project", "p"),
            ("io.cookbook.site", "local"),
            ("io.cookbook.stage", "dev"),
        ]);
        assert!(is_stage(&legacy, "dev"));
        let mixed = labels(&[
            ("dev.cookbook.project", "p"),
            ("io.cookbook.site", "local"),
            ("dev.cookbook.stage", "dev"),
        ]);
        assert!(!is_stage(&mixed, "dev"));
        let compose = labels(&[("com.docker.compose.project", "p")]);
        assert!(!is_stage(&compose, "dev"));
        assert_eq!(label_filters(&stage("dev")).len(), SCHEMES.len());
    }
}
