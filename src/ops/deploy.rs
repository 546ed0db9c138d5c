//! The flows that change what a site runs: `deploy`, `promote`, `rollback`, each from typed
//! options to a [`DeployReport`], and the step `sync --deploy` takes per stage ([`stage`]).
//!
//! Each flow works out what should run (`deploy::desired`, or `deploy::approvals::promotion`, or a
//! recorded release), then hands it to `deploy::session` on the process's one runtime. A stop
//! request (the CLI cancels `stop` on SIGINT/SIGTERM) ends a deploy between steps, rolled back like
//! a failure; which signal it was is the caller's to say. Errors are `crate::error::Error`,
//! converted once (`From<DeployError>`, `From<DesiredError>` in `error.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Workspace;
use crate::deploy::approvals::{self, Unapproved};
use crate::deploy::backend::ConnectOptions;
use crate::deploy::desired::{desired, Desired};
use crate::deploy::session::{self, DeployError, Outcome};
use crate::error::Error;
use crate::model::Cookbook;
use crate::state::lock::Lock;

/// `cookbook deploy`: the lock's images (or `release`'s) to a site's stage.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub site: String,
    pub stage: String,
    /// Another lock file's digests instead of the lock beside the cookbook.
    pub release: Option<PathBuf>,
    /// Kubernetes: let server-side apply take fields other managers own.
    pub force_conflicts: bool,
}

/// `cookbook promote`: a stage's current release to a later stage.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub site: String,
    pub from: String,
    pub to: String,
}

/// `cookbook rollback`: a recorded release of a stage, again.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub site: String,
    pub stage: String,
    /// The release to restore; `None`: the one before the current.
    pub to: Option<String>,
}

/// Which flow a report is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Deployed,
    Promoted,
    Restored,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Deployed => "deployed",
            Verb::Promoted => "promoted",
            Verb::Restored => "restored",
        }
    }
}

/// A successful flow's `result` (`"ok"`): a failure is an `Error`, never a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Done {
    Ok,
}

/// What a deploy, promote or rollback left running; its serialization is the command's
/// `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub result: Done,
    pub project: String,
    pub site: String,
    pub stage: String,
    pub release: String,
    pub network: String,
    /// (Re)created and started, in order.
    pub started: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// A rollback: the release it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<String>,
    #[serde(skip)]
    pub verb: Verb,
}

impl DeployReport {
    fn new(verb: Verb, desired: &Desired, outcome: Outcome, from: Option<String>) -> Self {
        DeployReport {
            result: Done::Ok,
            project: desired.project.to_string(),
            site: desired.site.to_string(),
            stage: desired.stage.to_string(),
            release: outcome.release,
            network: desired.network.clone(),
            started: outcome.started,
            unchanged: outcome.unchanged,
            removed: outcome.removed,
            rolled_back_from: from,
            verb,
        }
    }
}

/// The summary line: `deployed release R of P to S/ST: 1 started, 2 unchanged, 0 removed`.
impl fmt::Display for DeployReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} release {} of {} to {}/{}: {} started, {} unchanged, {} removed",
            self.verb.as_str(),
            self.release,
            self.project,
            self.site,
            self.stage,
            self.started.len(),
            self.unchanged.len(),
            self.removed.len()
        )
    }
}

/// How a command on `ws`'s cookbook reaches its sites (relative kubeconfigs start at its
/// directory).
pub fn connect_options(ws: &Workspace, force_conflicts: bool) -> ConnectOptions {
    connect_options_at(ws.path(), force_conflicts)
}

fn connect_options_at(file: &Path, force_conflicts: bool) -> ConnectOptions {
    ConnectOptions {
        base: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into()),
        force_conflicts,
    }
}

/// `cookbook deploy`.
pub fn deploy(
    ws: &Workspace,
    opts: &DeployOptions,
    stop: &CancellationToken,
) -> Result<DeployReport, Error> {
    let named;
    let lock = match &opts.release {
        Some(path) => {
            named = lock_at(path)?;
            &named
        }
        None => ws.published()?,
    };
    let desired = desired(&ws.cookbook, &ws.plan, lock, &opts.site, &opts.stage)?;
    let options = connect_options(ws, opts.force_conflicts);
    converge(&ws.state_dir(), &ws.cookbook, &desired, &options, stop)
        .map(|outcome| DeployReport::new(Verb::Deployed, &desired, outcome, None))
}

/// `cookbook promote`: the images that ran in `from` (whatever the lock says now), with `to`'s
/// runtime settings, if `to`'s rule is met.
pub fn promote(
    ws: &Workspace,
    opts: &PromoteOptions,
    stop: &CancellationToken,
) -> Result<DeployReport, Error> {
    let state_dir = ws.state_dir();
    let desired = approvals::promotion(
        &state_dir,
        &ws.cookbook,
        &ws.plan,
        &opts.site,
        &opts.from,
        &opts.to,
    )?;
    let options = connect_options(ws, false);
    converge(&state_dir, &ws.cookbook, &desired, &options, stop)
        .map(|outcome| DeployReport::new(Verb::Promoted, &desired, outcome, None))
}

/// `cookbook rollback`: a recorded release, exactly as it ran.
pub fn rollback(ws: &Workspace, opts: &RollbackOptions) -> Result<DeployReport, Error> {
    let site = session::known_site(&ws.cookbook, &opts.site)?;
    let restored = super::runtime()?.block_on(session::rollback(
        &ws.state_dir(),
        &ws.cookbook,
        &site,
        &opts.stage,
        opts.to.as_deref(),
        &connect_options(ws, false),
    ))?;
    Ok(DeployReport::new(
        Verb::Restored,
        &restored.release.desired.with_current_names(),
        restored.outcome,
        Some(restored.from),
    ))
}

/// A lock file named on the command line (`deploy --release LOCK`).
fn lock_at(path: &Path) -> Result<Lock, Error> {
    Lock::read(path)?.ok_or_else(|| Error::Usage {
        message: format!("--release {}: no such lock file", path.display()),
        help: Some("name a cookbook.lock written by `cookbook apply`".to_owned()),
    })
}

/// Deploys `desired` through the session; release records and approvals live in `state_dir`.
fn converge(
    state_dir: &Path,
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
    stop: &CancellationToken,
) -> Result<Outcome, Error> {
    Ok(super::runtime()?.block_on(session::deploy(state_dir, cookbook, desired, options, stop))?)
}

/// Why a stage was not deployed although nothing failed: its progression rule is not met yet.
#[derive(Debug, Clone)]
pub enum NotReady {
    /// The stage takes an approval these images do not have.
    NotApproved(Unapproved),
    /// The `automatic` rule: the images do not yet run healthy in the stage before (why).
    RuleNotMet(String),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::NotApproved(u) => write!(f, "{u}; {}", u.help()),
            NotReady::RuleNotMet(why) => f.write_str(why),
        }
    }
}

/// What [`stage`] did with one stage.
#[derive(Debug)]
pub enum StageOutcome {
    Deployed(DeployReport),
    NotReady(NotReady),
}

/// Where [`stage`] deploys: a site's stage of a revision's cookbook, with the lock beside it and
/// the state directory that keeps the release records and approvals.
pub struct StageTarget<'a> {
    pub ws: &'a Workspace,
    pub lock: &'a Lock,
    pub state_dir: &'a Path,
    pub site: &'a str,
}

/// `sync --deploy`'s step for one stage: deploys the lock's images to `stage` when its
/// progression rule is met, and says why not otherwise. `Err`: the stage could not be worked out,
/// its rule could not be checked, or the deploy failed (and was rolled back).
pub fn stage(
    target: &StageTarget,
    stage: &str,
    stop: &CancellationToken,
) -> Result<StageOutcome, Error> {
    let StageTarget {
        ws,
        lock,
        state_dir,
        site,
    } = *target;
    let desired = desired(&ws.cookbook, &ws.plan, lock, site, stage)?;
    let options = connect_options(ws, false);
    let checked = super::runtime()?.block_on(session::check_progression(
        state_dir,
        &ws.cookbook,
        &desired,
        &options,
    ));
    match checked {
        Ok(()) => {}
        Err(DeployError::Unapproved(u)) => {
            return Ok(StageOutcome::NotReady(NotReady::NotApproved(u)))
        }
        Err(DeployError::RuleNotMet(why)) => {
            return Ok(StageOutcome::NotReady(NotReady::RuleNotMet(why)))
        }
        Err(other) => return Err(other.into()),
    }
    let outcome = converge(state_dir, &ws.cookbook, &desired, &options, stop)?;
    Ok(StageOutcome::Deployed(DeployReport::new(
        Verb::Deployed,
        &desired,
        outcome,
        None,
    )))
}
