//! `cookbook down --site S --stage ST [--volumes]`: a stage torn down, as `docker compose down`.
//!
//! Options in, a [`DownReport`] out (its serialization is the `--format json` document). The
//! stage is named by the cookbook (its site and stage must exist, and the site must serve the
//! stage), but what is removed is found by the labels on the site, not from the lock: whatever
//! release made them, and whether or not the lock still names their container, the stage's
//! objects go. Docker: `deploy::docker::teardown` (containers with their pod members, networks,
//! scratch volumes; persistent volumes only with `volumes`). Kubernetes: `KubeSite::down` (every
//! object of ours, claims only with `volumes`; the Namespace stays).
//!
//! Records: the event log gets a `down` event (`ok`, or `unchanged` when nothing was there, or
//! `failed`), and the stage's last release record is marked `down_at`: it stays, so that
//! `rollback` without `--to` brings that release back, and `releases` shows it as no longer
//! current (nothing runs). A second `down` finds nothing, changes nothing and succeeds.

use std::path::Path;

use serde::Serialize;

use super::deploy::connect_options;
use super::Workspace;
use crate::deploy::backend::{connect, Site};
use crate::deploy::desired::{network_name, Desired};
use crate::deploy::docker::teardown::{teardown, TeardownReport};
use crate::deploy::kubernetes::cluster::Down;
use crate::deploy::releases::{now, Releases};
use crate::deploy::session;
use crate::deploy::BackendError;
use crate::error::Error;
use crate::model::Name;
use crate::state::events::{Event, EventKind, EventLog, EventOutcome, Who};

/// `cookbook down`: which stage, and whether its persistent volumes (claims) go too.
#[derive(Debug, Clone)]
pub struct DownOptions {
    pub site: String,
    pub stage: String,
    /// Also the persistent volumes (Docker) or PersistentVolumeClaims (Kubernetes).
    pub volumes: bool,
}

/// What was removed, by kind of site.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "target", rename_all = "lowercase")]
pub enum Removed {
    Docker(TeardownReport),
    Kubernetes(Down),
}

/// `cookbook down`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub project: String,
    pub site: String,
    pub stage: String,
    /// Nothing of the stage was there: the stage was down already.
    pub unchanged: bool,
    pub removed: Removed,
    /// The release record marked down (the one `rollback` brings back), if one was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// What went wrong beside the teardown without undoing it (its event or record not written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `cookbook down`.
pub fn down(ws: &Workspace, opts: &DownOptions) -> Result<DownReport, Error> {
    let (site, stage) = stage_of(ws, &opts.site, &opts.stage)?;
    let result = tear_down(ws, &site, &stage, opts.volumes);
    let mut event = Event::now(EventKind::Down, &Who::current("cli"), EventOutcome::Failed);
    event.site = Some(site.to_string());
    event.stage = Some(stage.to_string());
    let state_dir = ws.state_dir();
    match result {
        Ok(mut report) => {
            if !report.unchanged {
                match mark_down(&state_dir, &site, &stage) {
                    Ok(release) => report.release = release,
                    Err(e) => report
                        .warnings
                        .push(format!("the release record was not marked down: {e}")),
                }
            }
            event.outcome = if report.unchanged {
                EventOutcome::Unchanged
            } else {
                EventOutcome::Ok
            };
            event.release.clone_from(&report.release);
            event.message = Some(summary(&report));
            if let Err(e) = EventLog::in_dir(&state_dir).append(&event) {
                report
                    .warnings
                    .push(format!("the down event was not recorded: {e}"));
            }
            Ok(report)
        }
        Err(e) => {
            event.message = Some(e.to_string());
            let _ = EventLog::in_dir(&state_dir).append(&event);
            Err(e)
        }
    }
}

/// The one-line summary: `down local/dev: 3 container(s), 1 network(s), 1 volume(s) removed`.
pub fn summary(report: &DownReport) -> String {
    let place = format!("{}/{}", report.site, report.stage);
    if report.unchanged {
        return format!("{place} was down already: nothing of it to remove");
    }
    match &report.removed {
        Removed::Docker(t) => format!(
            "down {place}: {} container(s), {} network(s), {} volume(s) removed",
            t.containers.len(),
            t.networks.len(),
            t.volumes.len()
        ),
        Removed::Kubernetes(d) => format!("down {place}: {} object(s) deleted", d.removed.len()),
    }
}

/// The site and stage as the cookbook names them; an unknown one, or a stage the site does not
/// serve, is a usage error (2) with a "did you mean".
fn stage_of(ws: &Workspace, site: &str, stage: &str) -> Result<(Name, Name), Error> {
    let site = session::known_site(&ws.cookbook, site)?;
    let lifecycle = &ws.cookbook.lifecycle;
    let Some(stage_name) = lifecycle.stages.iter().find(|s| s.as_str() == stage) else {
        return Err(Error::Usage {
            message: format!("unknown stage `{stage}`"),
            help: suggest(stage, "stages", lifecycle.stages.iter().map(Name::as_str)),
        });
    };
    if let Some(served) = lifecycle.sites.get(&site).map(|s| &s.stages) {
        if !served.is_empty() && !served.contains(stage_name) {
            return Err(Error::Usage {
                message: format!("site `{site}` does not serve stage `{stage}`"),
                help: session::listed(
                    "it serves",
                    &served.iter().map(Name::to_string).collect::<Vec<_>>(),
                ),
            });
        }
    }
    Ok((site, stage_name.clone()))
}

/// The stage as `Desired` with no instances: who owns what (its labels), nothing to run.
fn stage_only(ws: &Workspace, site: &Name, stage: &Name) -> Desired {
    let project = ws.cookbook.project.name.clone();
    Desired {
        network: network_name(project.as_str(), site.as_str(), stage.as_str()),
        project,
        site: site.clone(),
        stage: stage.clone(),
        release: String::new(),
        waves: Vec::new(),
    }
}

/// Connects to the site and removes what is the stage's.
fn tear_down(
    ws: &Workspace,
    site: &Name,
    stage: &Name,
    volumes: bool,
) -> Result<DownReport, Error> {
    let target = session::target(&ws.cookbook, site)?;
    let options = connect_options(ws, false);
    let desired = stage_only(ws, site, stage);
    let removed = super::runtime()?.block_on(async {
        match connect(&target, &options).await? {
            Site::Docker(docker) => teardown(
                docker.engine(),
                desired.project.as_str(),
                site.as_str(),
                stage.as_str(),
                volumes,
            )
            .await
            .map(Removed::Docker)
            .map_err(BackendError::from),
            Site::Kubernetes(kube) => kube
                .down(&desired, volumes)
                .await
                .map(Removed::Kubernetes)
                .map_err(BackendError::from),
        }
    });
    let removed = removed.map_err(|e| Error::from(session::DeployError::Backend(e)))?;
    let unchanged = match &removed {
        Removed::Docker(t) => t.is_empty(),
        Removed::Kubernetes(d) => d.removed.is_empty(),
    };
    Ok(DownReport {
        project: desired.project.to_string(),
        site: site.to_string(),
        stage: stage.to_string(),
        unchanged,
        removed,
        release: None,
        warnings: Vec::new(),
    })
}

/// Marks the stage's last release record down; the release it names, if any.
fn mark_down(state_dir: &Path, site: &Name, stage: &Name) -> Result<Option<String>, Error> {
    let path = Releases::path(state_dir, site.as_str());
    let at = now();
    let marked = Releases::update(&path, |records| {
        records
            .mark_down(stage.as_str(), &at)
            .then(|| records.current(stage.as_str()).map(|r| r.release.clone()))
            .flatten()
    })
    .map_err(|e| Error::from(session::DeployError::Records(e)))?;
    Ok(marked)
}

/// "did you mean `x`?" for a name within two edits of `unknown` (strsim's Damerau–Levenshtein),
/// else the list of `kind` known, so the help always says what would have been accepted.
pub(crate) fn suggest<'n>(
    unknown: &str,
    kind: &str,
    known: impl Iterator<Item = &'n str> + Clone,
) -> Option<String> {
    let close = known
        .clone()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("did you mean `{k}`?"));
    close.or_else(|| {
        let names: Vec<&str> = known.collect();
        (!names.is_empty()).then(|| format!("{kind}: {}", names.join(", ")))
    })
}
