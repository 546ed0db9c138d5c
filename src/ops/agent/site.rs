//! What the agent knows of its site, as the status document's views: the sync state, the
//! current revision's plan, and each stage's release and containers as the site runs them.
//!
//! Read from the state directory and the site itself each time it is asked (the engine or the
//! cluster answers in milliseconds); the agent caches nothing that could go stale but its own
//! rounds.

use std::collections::BTreeMap;

use super::status::{ContainerView, Health, PlanView, StageView, SyncView};
use crate::deploy::docker::InstanceStatus;
use crate::deploy::kubernetes::cluster::{UnitState, UnitStatus};
use crate::deploy::session;
use crate::ops::deploy::Status;
use crate::ops::pipeline::{site_stages, Pipeline};
use crate::ops::Workspace;
use crate::sync::state::SyncState;

/// The sync part: what the state records, the branch head last fetched (`master`) and how far
/// the current revision is behind it.
pub fn sync_view(pipeline: &Pipeline, state: &SyncState, master: Option<&str>) -> SyncView {
    let options = &pipeline.options().sync;
    let current = state.current.as_ref();
    let attempt = state.last_attempt.as_ref();
    let behind = match (current, master) {
        (Some(current), Some(master)) => {
            crate::git::commits_behind(&pipeline.state().mirror(), &current.commit, master)
        }
        _ => None,
    };
    SyncView {
        remote: redact(&options.remote),
        branch: options.branch.clone(),
        path: options.path.clone(),
        current: current.map(|t| t.commit.clone()),
        current_at: current.map(|t| t.at.clone()),
        last_applied: state.last_applied.as_ref().map(|a| a.commit.clone()),
        last_applied_at: state.last_applied.as_ref().map(|a| a.at.clone()),
        last_attempted: attempt.map(|a| a.commit.clone()),
        last_attempt_at: attempt.map(|a| a.at.clone()),
        last_attempt_outcome: attempt.map(|a| a.outcome.as_str().to_owned()),
        refused: attempt.map(|a| a.errors.clone()).unwrap_or_default(),
        master: master.map(str::to_owned),
        behind,
    }
}

/// A remote URL without the credentials it may carry (`https://user:token@host/…`); a path or
/// an scp-like `host:path` as it is.
pub fn redact(remote: &str) -> String {
    match reqwest::Url::parse(remote) {
        Ok(url) if url.has_host() => crate::registry::redact(&url),
        _ => remote.to_owned(),
    }
}

/// The current revision's plan for the site: its waves and edges.
pub fn plan_view(ws: &Workspace, site: &str) -> Option<PlanView> {
    let plan = ws.site_plan(Some(site)).ok()?;
    let waves: Vec<Vec<String>> = plan
        .waves()
        .iter()
        .map(|wave| wave.iter().map(|n| n.to_string()).collect())
        .collect();
    let mut edges = Vec::new();
    for name in plan.order() {
        for (needed, _) in plan.needs(name.as_str()) {
            edges.push((name.to_string(), needed.to_string()));
        }
    }
    Some(PlanView { waves, edges })
}

/// Each stage the site deploys: its current release (the last record in the state directory)
/// and its containers as the site runs them now. A stage the site cannot be asked about carries
/// the reason in `error` and no containers; one never deployed has neither.
///
/// `services`: also what each container offers (an exec in each on a Docker site); the periodic
/// health refresh leaves it out.
pub fn stage_views(
    pipeline: &Pipeline,
    ws: &Workspace,
    site: &str,
    services: bool,
) -> Vec<StageView> {
    let records = session::known_site(&ws.cookbook, site)
        .and_then(|name| session::releases(pipeline.state().root(), &name));
    site_stages(ws, site)
        .into_iter()
        .map(|stage| {
            let current = match &records {
                // A stage torn down (`cookbook down`) runs no release: as one never deployed.
                Ok(records) => records
                    .stages
                    .get(&stage)
                    .and_then(|list| list.last())
                    .filter(|r| r.down_at.is_none()),
                Err(_) => None,
            };
            // A stage never deployed here runs nothing to ask about.
            // Against the release the stage runs: a lock that moved on since (a stage waiting for an
            // approval) is not drift.
            let asked = current.map(|r| {
                crate::ops::deploy::status_for(ws, &r.desired.with_current_names(), services)
            });
            let (containers, in_sync, error) = match asked {
                None => (Vec::new(), false, None),
                Some(asked) => match asked {
                    Ok(Status::Docker(report)) => {
                        (docker(&report.containers), report.in_sync, None)
                    }
                    Ok(Status::Kubernetes(report)) => {
                        (kubernetes(&report.containers), report.in_sync, None)
                    }
                    Err(e) => (Vec::new(), false, Some(e.to_string())),
                },
            };
            StageView {
                name: stage,
                release: current.map(|r| r.release.clone()),
                deployed_at: current.map(|r| r.deployed_at.clone()),
                images: current.map_or_else(BTreeMap::new, |r| r.desired.digests()),
                containers,
                in_sync,
                error,
            }
        })
        .collect()
}

fn docker(list: &[InstanceStatus]) -> Vec<ContainerView> {
    list.iter()
        .map(|s| ContainerView {
            container: s.container.clone(),
            name: s.name.clone(),
            state: s.state.clone(),
            health: match (s.state.as_str(), s.health.as_str()) {
                ("running", "healthy") => Health::Healthy,
                ("running", "unhealthy") => Health::Unhealthy,
                ("running", "starting") => Health::Starting,
                ("running", _) => Health::None,
                _ => Health::Down,
            },
            drift: s.drift,
            restarts: s.restarts,
            services: s
                .services
                .as_ref()
                .map(|services| {
                    let ports = services.listening.iter().map(|p| format!("tcp/{p}"));
                    let kinds = services.kinds.iter().map(|k| k.as_str().to_owned());
                    ports.chain(kinds).collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

fn kubernetes(list: &[UnitStatus]) -> Vec<ContainerView> {
    list.iter()
        .map(|u| ContainerView {
            container: u.container.clone(),
            name: u.name.clone(),
            state: u.state.as_str().to_owned(),
            health: match u.state {
                UnitState::Available => Health::Healthy,
                UnitState::Progressing => Health::Starting,
                UnitState::Failed => Health::Unhealthy,
                UnitState::Missing | UnitState::Foreign => Health::Down,
            },
            drift: u.drift,
            restarts: u.restarts,
            services: Vec::new(),
        })
        .collect()
}

/// `text` (an error's message) with every occurrence of the remote as given replaced by the
/// remote without its credentials: git's errors name the URL they were handed.
pub fn redact_remote_in(text: &str, remote: &str) -> String {
    let redacted = redact(remote);
    if redacted == remote || remote.is_empty() {
        return text.to_owned();
    }
    text.replace(remote, &redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_loses_its_credentials_and_a_path_stays() {
        let redacted = redact("https://bot:s3cret@git.example.invalid/org/cookbooks.git");
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(redacted.contains("git.example.invalid"), "{redacted}");
        assert_eq!(redact("/srv/git/cookbooks.git"), "/srv/git/cookbooks.git");
        assert_eq!(redact("git@host:org/repo.git"), "git@host:org/repo.git");
        let remote = "https://bot:s3cret@git.example.invalid/org/cookbooks.git";
        let message = format!("cannot reach {remote}: connection refused");
        let shown = redact_remote_in(&message, remote);
        assert!(
            !shown.contains("s3cret") && shown.contains("connection refused"),
            "{shown}"
        );
    }
}
