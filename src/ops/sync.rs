//! `cookbook sync`'s round as a flow: take the remote's revision (and apply it, through the
//! applier the caller passes in), then, with `--deploy`, deploy the site's stages through the
//! library's deploy ([`super::deploy::stage`]), each stage's result a [`StepResult`].
//!
//! The revision's cookbook is opened once (a [`Workspace`] named after the working copy's
//! directory, as the apply named it), with the lock the apply wrote beside it. Release records and
//! approvals live in the sync state directory (`<state>/deploy/`), which outlives the revisions'
//! checkouts.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::SerializeStruct;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

// What the command line names when it renders a round and its state (the CLI imports only `ops`).
pub use crate::model::RelPath;
pub use crate::sync::lock::Holder;
pub use crate::sync::schedule::{self, Schedule, Tick};
pub use crate::sync::state::{now, SyncState};
pub use crate::sync::{Outcome, RoundReport as Report};

use super::deploy::{DeployReport, NotReady, StageOutcome, StageTarget};
use super::{CookbookFile, Workspace};
use crate::error::Error;
use crate::model::lifecycle::Window;
use crate::state::lock::Lock;
pub use crate::sync::lock::Wait;
pub use crate::sync::state::StateDir;
use crate::sync::{sync_once, RoundReport};
pub use crate::sync::{Applier, ApplyOutcome, SyncError, SyncOptions};

/// One round's settings: where the state is, what to follow, who runs it.
pub struct RoundOptions<'a> {
    pub dir: &'a StateDir,
    pub sync: &'a SyncOptions,
    pub me: &'a Holder,
    pub wait: Wait,
    /// `--deploy`: deploy the site's stages after a successful apply.
    pub deploy: bool,
    /// Set by a stop request: the round stops between steps.
    pub stop_flag: &'a AtomicBool,
    /// Cancelled by a stop request: a running deploy stops between steps (and rolls back).
    pub stop: &'a CancellationToken,
}

/// What one round did: the revision taken (or not) and applied (or not), and with `--deploy`
/// what each stage did (`None`: nothing to deploy this round).
#[derive(Debug)]
pub struct Round {
    pub report: RoundReport,
    pub deploy: Option<Vec<DeployStep>>,
}

/// One round: takes the remote's revision, applies it through `applier` (when given), then deploys
/// (with `deploy`).
pub fn round(
    opts: &RoundOptions,
    applier: Option<&mut dyn Applier>,
    on_busy: &mut dyn FnMut(Option<&Holder>),
) -> Result<Round, SyncError> {
    let report = sync_once(
        opts.dir,
        opts.sync,
        applier,
        opts.me,
        opts.wait,
        on_busy,
        opts.stop_flag,
    )?;
    let deploy = opts
        .deploy
        .then(|| deploy_after(opts.dir, opts.sync, &report, opts.stop))
        .flatten();
    Ok(Round { report, deploy })
}

/// What `sync --deploy` did with one stage, or with the whole site (`stage: None`).
#[derive(Debug)]
pub struct DeployStep {
    pub stage: Option<String>,
    pub result: StepResult,
}

#[derive(Debug)]
pub enum StepResult {
    Deployed(DeployReport),
    /// The stage's progression rule is not met (an approval missing, the stage before not
    /// healthy yet): not a failure; the next round asks again.
    Skipped(NotReady),
    /// The site's schedule is closed now: nothing deployed.
    OutsideWindow {
        site: String,
        opens_at: SystemTime,
    },
    /// The stage (or the site) could not be deployed; a deploy that changed something was rolled
    /// back. The stages after it are not attempted.
    Failed(Error),
}

impl StepResult {
    /// The document's `result`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepResult::Deployed(_) => "deployed",
            StepResult::Skipped(_) => "skipped",
            StepResult::OutsideWindow { .. } => "outside_window",
            StepResult::Failed(_) => "failed",
        }
    }
}

/// The document's `message`, and the log line's text.
impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepResult::Deployed(report) => report.fmt(f),
            StepResult::Skipped(why) => why.fmt(f),
            StepResult::OutsideWindow { site, opens_at } => write!(
                f,
                "outside site {site}'s deploy windows: nothing deployed; the next window opens at {}",
                humantime::format_rfc3339_seconds(*opens_at)
            ),
            StepResult::Failed(e) => e.fmt(f),
        }
    }
}

/// `{"stage": …, "result": "deployed" | "skipped" | "outside_window" | "failed", "message": …}`.
impl Serialize for DeployStep {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("DeployStep", 3)?;
        s.serialize_field("stage", &self.stage)?;
        s.serialize_field("result", self.result.as_str())?;
        s.serialize_field("message", &self.result.to_string())?;
        s.end()
    }
}

impl DeployStep {
    fn site(result: StepResult) -> Self {
        DeployStep {
            stage: None,
            result,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.result, StepResult::Failed(_))
    }
}

/// `--deploy`: once the current revision is applied (now or in an earlier round), deploys the
/// site's stages in lifecycle order — each only when its progression rule is met — if the site's
/// schedule is open now; otherwise deploys nothing and says when the next window opens. The first
/// stage that fails ends the progression. `None` when there is nothing to deploy this round.
pub fn deploy_after(
    dir: &StateDir,
    options: &SyncOptions,
    report: &RoundReport,
    stop: &CancellationToken,
) -> Option<Vec<DeployStep>> {
    if !matches!(
        report.apply,
        Some(ApplyOutcome::Applied | ApplyOutcome::AlreadyApplied)
    ) {
        return None;
    }
    let commit = report.current.as_deref()?;
    let site = options.site.as_deref()?;
    let file = dir.checkout(commit).join(&options.path);
    let ws = match open_revision(&file, options) {
        Ok(ws) => ws,
        Err(e) => return Some(vec![DeployStep::site(StepResult::Failed(e))]),
    };
    let lifecycle = &ws.cookbook.lifecycle;
    let Some(deploy) = lifecycle.sites.get(site) else {
        let e = Error::Usage {
            message: format!("unknown site `{site}`"),
            help: None,
        };
        return Some(vec![DeployStep::site(StepResult::Failed(e))]);
    };
    if let Some(opens_at) = next_window(&deploy.schedule) {
        let site = site.to_owned();
        return Some(vec![DeployStep::site(StepResult::OutsideWindow {
            site,
            opens_at,
        })]);
    }
    // Read as the file it is: the revision's lock, written by the apply just now or earlier.
    let lock = match Lock::read(&ws.lock_path()) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            let e = Error::Failed("no cookbook.lock after the apply".to_owned());
            return Some(vec![DeployStep::site(StepResult::Failed(e))]);
        }
        Err(e) => return Some(vec![DeployStep::site(StepResult::Failed(e.into()))]),
    };
    let stages: Vec<String> = if deploy.stages.is_empty() {
        lifecycle.stages.iter().map(|s| s.to_string()).collect()
    } else {
        deploy.stages.iter().map(|s| s.to_string()).collect()
    };
    let who = crate::state::events::Who::current("sync");
    let target = StageTarget {
        ws: &ws,
        lock: &lock,
        state_dir: dir.root(),
        site,
        revision: Some(commit),
        who: &who,
    };
    let mut steps = Vec::new();
    for stage in stages {
        let result = match super::deploy::stage(&target, &stage, stop) {
            Ok(StageOutcome::Deployed(report)) => StepResult::Deployed(report),
            Ok(StageOutcome::NotReady(why)) => StepResult::Skipped(why),
            Err(e) => StepResult::Failed(e),
        };
        let failed = matches!(result, StepResult::Failed(_));
        steps.push(DeployStep {
            stage: Some(stage),
            result,
        });
        if failed {
            break;
        }
    }
    Some(steps)
}

/// The revision's cookbook, named after the working copy's directory (as its apply named it).
fn open_revision(file: &std::path::Path, options: &SyncOptions) -> Result<Workspace, Error> {
    let directory = options.project_directory();
    Workspace::open_as(CookbookFile::on_disk(file), directory.as_deref())
}

/// When the site's schedule next opens; `None` when it is open now.
fn next_window(schedule: &[Window]) -> Option<SystemTime> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let next = crate::deploy::schedule::next_open(schedule, now)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(next).unwrap_or(0)))
}

/// One round as `sync --format json` prints it (one document per round): what the round did, in
/// fields.
#[derive(Debug, Serialize)]
pub struct RoundDocument<'a> {
    /// `failed` when the revision was refused, its apply failed or a stage's deploy failed.
    pub result: RoundResult,
    pub outcome: RoundOutcome,
    pub remote_commit: &'a str,
    pub current: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub forced: bool,
    pub refusal: Option<RefusalDocument>,
    pub apply: Option<ApplyDocument>,
    pub recovered: Option<&'a str>,
    pub warnings: &'a [String],
    pub deploy: Option<&'a [DeployStep]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundResult {
    Ok,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundOutcome {
    UpToDate,
    Taken,
    Refused,
}

/// Why the revision was refused: the summary, and every problem.
#[derive(Debug, Serialize)]
pub struct RefusalDocument {
    pub reason: String,
    pub errors: Vec<String>,
}

/// What the apply did: `{"result": "applied" | "already_applied"}`, or a failure with its error.
#[derive(Debug, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ApplyDocument {
    Applied,
    AlreadyApplied,
    Failed { error: String },
}

impl Round {
    /// Whether the round failed: the revision refused, its apply failed, or a stage's deploy.
    pub fn failed(&self) -> bool {
        self.report.failed() || self.deploy.iter().flatten().any(DeployStep::failed)
    }

    pub fn document(&self) -> RoundDocument<'_> {
        use crate::sync::Outcome;
        let report = &self.report;
        let (outcome, previous, forced, refusal) = match &report.outcome {
            Outcome::UpToDate => (RoundOutcome::UpToDate, None, false, None),
            Outcome::Taken { previous, forced } => {
                (RoundOutcome::Taken, previous.as_deref(), *forced, None)
            }
            Outcome::Refused(r) => (
                RoundOutcome::Refused,
                None,
                false,
                Some(RefusalDocument {
                    reason: r.summary(),
                    errors: r.errors(),
                }),
            ),
        };
        let apply = report.apply.as_ref().map(|a| match a {
            ApplyOutcome::Applied => ApplyDocument::Applied,
            ApplyOutcome::AlreadyApplied => ApplyDocument::AlreadyApplied,
            ApplyOutcome::Failed(e) => ApplyDocument::Failed {
                error: e.to_string(),
            },
        });
        RoundDocument {
            result: if self.failed() {
                RoundResult::Failed
            } else {
                RoundResult::Ok
            },
            outcome,
            remote_commit: &report.remote_commit,
            current: report.current.as_deref(),
            previous,
            forced,
            refusal,
            apply,
            recovered: report.recovered.as_deref(),
            warnings: &report.warnings,
            deploy: self.deploy.as_deref(),
        }
    }
}

/// A state directory serves one site: its checkout, record and applied revision are that site's.
/// Syncing another site into it would say "up to date" and keep the first site's portion.
pub fn refuse_other_site(dir: &StateDir, site: Option<&str>) -> Result<(), Error> {
    let state = dir.read()?;
    if state.current.is_none() || state.site.as_deref() == site {
        return Ok(());
    }
    let name = |s: Option<&str>| match s {
        Some(s) => format!("site `{s}`"),
        None => "the whole cookbook (no --site)".to_owned(),
    };
    Err(Error::Usage {
        message: format!(
            "the sync state in {} was made for {}, not {}",
            dir.root().display(),
            name(state.site.as_deref()),
            name(site)
        ),
        help: Some(format!(
            "each site keeps its own state: pass `--state` with a new directory for {} \
             (e.g. --state .cookbook/sync-{}), or the same --site as before",
            name(site),
            site.unwrap_or("all")
        )),
    })
}

impl Round {
    /// What the round means for the command: a refused revision or a failed apply first, then
    /// the first failed deploy step (one a signal stopped keeps the signal's code).
    pub fn result(self) -> Result<(), Error> {
        revision_result(&self.report)?;
        deploy_result(self.deploy)
    }
}

/// The round's result for its revision: a refused revision, a failed apply (one a signal
/// cancelled ends with that signal's code).
fn revision_result(report: &RoundReport) -> Result<(), Error> {
    if let Outcome::Refused(refusal) = &report.outcome {
        return Err(Error::SyncRefused {
            commit: report.remote_commit.clone(),
            reason: refusal.summary(),
        });
    }
    if let Some(ApplyOutcome::Failed(e)) = &report.apply {
        // A signal cancelled the apply: the command ends with that signal's code.
        if let Some(Error::Interrupted { signal, code }) = e.downcast_ref::<Error>() {
            return Err(Error::Interrupted {
                signal,
                code: *code,
            });
        }
        return Err(Error::SyncApplyFailed {
            commit: report.remote_commit.clone(),
            message: e.to_string(),
        });
    }
    Ok(())
}

/// The round's result for its deploy: the first failed step's error; one a signal stopped as
/// it is (its code is the signal's).
fn deploy_result(steps: Option<Vec<DeployStep>>) -> Result<(), Error> {
    let Some(step) = steps.into_iter().flatten().find(DeployStep::failed) else {
        return Ok(());
    };
    match step.result {
        StepResult::Failed(
            e @ Error::Deploy {
                signal: Some(_), ..
            },
        ) => Err(e),
        StepResult::Failed(e) => Err(Error::SyncDeployFailed {
            stage: step.stage,
            source: Box::new(e),
        }),
        _ => Ok(()),
    }
}
