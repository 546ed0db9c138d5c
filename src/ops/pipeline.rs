//! One `sync → apply → deploy` round as a library value: options in, a [`Round`] out, progress
//! through a [`Reporter`]. `cookbook sync` (once, or every interval) and `cookbook agent` (on its
//! interval and on a webhook) both run it; neither composes the steps itself.
//!
//! A round takes the remote's revision (`crate::sync`), applies it with `cookbook apply`'s engine
//! (`crate::apply`, through [`super::apply::SyncApplier`]), then, with `deploy`, deploys the
//! site's stages through the library's deploy ([`super::deploy::stage`], over `crate::deploy`),
//! each stage's result a [`StepResult`]. The revision's cookbook is opened once (a [`Workspace`]
//! named after the working copy's directory, as the apply named it), with the lock the apply
//! wrote beside it. Release records and approvals live in the sync state directory
//! (`<state>/deploy/`), which outlives the revisions' checkouts.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::ser::SerializeStruct;
use serde::Serialize;

use super::apply::{ApplySummary, Signer, SyncApplier};
use super::deploy::{DeployReport, NotReady, StageOutcome, StageTarget};
use super::stop::Stop;
use super::sync::refuse_other_site;
use super::{CookbookFile, Workspace};
use crate::error::Error;
use crate::model::lifecycle::Window;
use crate::state::events::{Event, EventKind, EventLog, EventOutcome, Who};
use crate::state::lock::Lock;
use crate::sync::lock::{Holder, Wait};
use crate::sync::schedule::{self, Schedule, Tick};
use crate::sync::state::StateDir;
use crate::sync::{sync_once, Applier, ApplyOutcome, Outcome, RoundReport, SyncError, SyncOptions};

/// What a pipeline runs: the sync to follow, and what to do with a taken revision.
pub struct PipelineOptions {
    /// The sync state directory (one per site).
    pub state: PathBuf,
    pub sync: SyncOptions,
    /// Apply each taken revision (`None`: take it only).
    pub apply: Option<ApplySettings>,
    /// Deploy the site's stages after a successful apply.
    pub deploy: bool,
    /// Wait for another process's sync lock instead of failing.
    pub wait: Wait,
    /// Who holds the sync lock during a round (what a waiting process is told).
    pub holder: Holder,
}

/// How a round applies its revision.
#[derive(Clone, Default)]
pub struct ApplySettings {
    /// Signs and attaches the provenance and SBOM of every image published.
    pub signer: Option<Arc<dyn Signer>>,
    /// The engine to build on (`--context`; default: the environment's).
    pub engine: crate::engine::Selector,
}

/// What a round tells while it runs; the front end renders it (log lines, metrics, a page).
pub enum Progress<'a> {
    /// Another process holds the sync lock; the round waits for it.
    Waiting(Option<&'a Holder>),
    /// An apply ended: what it built, took from the cache and published.
    Applied(&'a ApplySummary),
    /// A round ended.
    Round(&'a Round),
    /// A round could not run (the remote unreachable, the state locked): the loop retries at
    /// its next round.
    RoundError(&'a SyncError),
    /// A round failed (its revision refused, its apply or a deploy failed): the loop goes on.
    RoundFailed(&'a Error),
    /// The loop's next round starts in this long.
    Next(Duration),
}

/// Where a pipeline's progress goes. Rounds report from the thread that runs them; the apply's
/// events come from its workers, through [`Reporter::apply`].
pub trait Reporter {
    fn progress(&self, progress: Progress<'_>);
    /// Where the apply's events go (a container queued, built, pushed, …).
    fn apply(&self) -> &dyn crate::apply::Reporter;
}

/// A site's pipeline: its options and state directory, checked once.
pub struct Pipeline {
    options: PipelineOptions,
    dir: StateDir,
}

/// What one round did: the revision taken (or not) and applied (or not), what the apply built,
/// and with `deploy` what each stage did (`None`: nothing to deploy this round).
#[derive(Debug)]
pub struct Round {
    pub report: RoundReport,
    /// What this round's apply built and published (`None`: no apply ran).
    pub applied: Option<Applied>,
    pub deploy: Option<Vec<DeployStep>>,
    pub duration: Duration,
}

/// What an apply built, took from the cache and failed, and the digests it published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub built: usize,
    pub cached: usize,
    pub failed: usize,
    /// Container → the digest published (those that have one).
    pub digests: std::collections::BTreeMap<String, String>,
}

impl Applied {
    fn of(summary: &ApplySummary) -> Applied {
        Applied {
            built: summary.built,
            cached: summary.cached,
            failed: summary.failed,
            digests: summary
                .containers
                .iter()
                .filter_map(|(name, c)| Some((name.to_string(), c.digest.clone()?)))
                .collect(),
        }
    }
}

impl Pipeline {
    /// Checks the options against the state directory: it serves one site.
    pub fn new(options: PipelineOptions) -> Result<Pipeline, Error> {
        let dir = StateDir::new(&options.state);
        refuse_other_site(&dir, options.sync.site.as_deref())?;
        Ok(Pipeline { options, dir })
    }

    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    pub fn state(&self) -> &StateDir {
        &self.dir
    }

    /// One round: takes the remote's revision, applies it (with `apply`), then deploys (with
    /// `deploy`). A stop request ends it between steps, cancels a running apply, and rolls a
    /// running deploy's wave back; the state stays as `sync` promises.
    ///
    /// Each round leaves its events in the state directory's log (`state::events`): the round,
    /// its apply, and each stage's deploy, caused by `who`.
    pub fn round(
        &self,
        who: &Who,
        stop: &Stop,
        reporter: &dyn Reporter,
    ) -> Result<Round, SyncError> {
        let started = Instant::now();
        let applied = Mutex::new(None);
        let finished = |summary: &ApplySummary| {
            reporter.progress(Progress::Applied(summary));
            *applied.lock().unwrap_or_else(|p| p.into_inner()) = Some(Applied::of(summary));
        };
        let interrupted = || stop.error();
        let mut applier = self.options.apply.as_ref().map(|settings| SyncApplier {
            cancel: stop.token(),
            reporter: reporter.apply(),
            finished: &finished,
            interrupted: &interrupted,
            signer: settings.signer.clone(),
            engine: settings.engine.clone(),
        });
        let report = sync_once(
            &self.dir,
            &self.options.sync,
            applier.as_mut().map(|a| a as &mut dyn Applier),
            &self.options.holder,
            self.options.wait,
            &mut |holder| reporter.progress(Progress::Waiting(holder)),
            stop.flag(),
        );
        let mut report = match report {
            Ok(report) => report,
            // A round that could not run (the remote unreachable, the state locked) changed
            // nothing and leaves the state directory as it was, byte for byte: no event.
            Err(e) => {
                reporter.progress(Progress::RoundError(&e));
                return Err(e);
            }
        };
        drop(applier);
        let applied = applied.into_inner().unwrap_or_else(|p| p.into_inner());
        for event in self.round_events(&report, applied.as_ref(), who) {
            report.warnings.extend(self.record(&event));
        }
        let deploy = self
            .options
            .deploy
            .then(|| deploy_after(&self.dir, &self.options.sync, &report, who, stop))
            .flatten();
        let round = Round {
            report,
            applied,
            deploy,
            duration: started.elapsed(),
        };
        reporter.progress(Progress::Round(&round));
        Ok(round)
    }

    /// The round's events: the round itself, and its apply when one ran.
    fn round_events(
        &self,
        report: &RoundReport,
        applied: Option<&Applied>,
        who: &Who,
    ) -> Vec<Event> {
        let outcome = match &report.outcome {
            Outcome::UpToDate => EventOutcome::Unchanged,
            Outcome::Taken { .. } => EventOutcome::Ok,
            Outcome::Refused(_) => EventOutcome::Refused,
        };
        let mut round = self.event(EventKind::SyncRound, who, outcome);
        round.revision = Some(report.remote_commit.clone());
        round.message = Some(match &report.outcome {
            Outcome::UpToDate => "up to date".to_owned(),
            Outcome::Taken { forced: true, .. } => "taken over a history rewrite".to_owned(),
            Outcome::Taken { .. } => "taken".to_owned(),
            Outcome::Refused(refusal) => refusal.summary(),
        });
        let mut events = vec![round];
        let revision = report.current.clone();
        let apply = match &report.apply {
            Some(ApplyOutcome::Applied) => {
                let built = applied.is_some_and(|a| a.built > 0);
                let mut event = self.event(
                    EventKind::Apply,
                    who,
                    if built {
                        EventOutcome::Ok
                    } else {
                        EventOutcome::Unchanged
                    },
                );
                if let Some(a) = applied {
                    event.digests = a.digests.clone();
                    event.message = Some(format!(
                        "{} built, {} cached, {} failed",
                        a.built, a.cached, a.failed
                    ));
                }
                Some(event)
            }
            Some(ApplyOutcome::Failed(e)) => {
                let mut event = self.event(EventKind::Apply, who, EventOutcome::Failed);
                event.message = Some(e.to_string());
                Some(event)
            }
            // Nothing ran.
            Some(ApplyOutcome::AlreadyApplied) | None => None,
        };
        events.extend(apply.map(|mut event| {
            event.revision = revision;
            event
        }));
        events
    }

    fn event(&self, kind: EventKind, who: &Who, outcome: EventOutcome) -> Event {
        let mut event = Event::now(kind, who, outcome);
        event.site = self.options.sync.site.clone();
        event
    }

    /// Appends to the state directory's event log; the warning when it cannot.
    fn record(&self, event: &Event) -> Option<String> {
        let e = EventLog::in_dir(self.dir.root()).append(event).err()?;
        Some(format!(
            "the {} event was not recorded: {e}",
            event.kind.as_str()
        ))
    }

    /// Rounds on `schedule` until a stop is asked. A round that fails or cannot run is
    /// reported and the next one retries: an outage must not end the loop. `Err` only when a
    /// stop cut a running apply or deploy short (the command then ends with the signal's code).
    pub fn run_every(
        &self,
        schedule: Schedule,
        who: &Who,
        stop: &Stop,
        reporter: &dyn Reporter,
    ) -> Result<(), Error> {
        let mut cut_short = None;
        schedule::run_every(schedule, stop.flag(), |tick| {
            if let Tick::Wait(wait) = tick {
                reporter.progress(Progress::Next(wait));
                return;
            }
            // A round that could not run was reported as `RoundError`.
            let Ok(round) = self.round(who, stop, reporter) else {
                return;
            };
            match round.result() {
                Ok(()) => {}
                Err(e) if e.stopped_by_signal() => cut_short = Some(e),
                Err(e) => reporter.progress(Progress::RoundFailed(&e)),
            }
        });
        cut_short.map_or(Ok(()), Err)
    }
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
fn deploy_after(
    dir: &StateDir,
    options: &SyncOptions,
    report: &RoundReport,
    who: &Who,
    stop: &Stop,
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
            help: crate::model::suggest(site, "sites", lifecycle.sites.keys().map(|s| s.as_str())),
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
    let stages = site_stages(&ws, site);
    let target = StageTarget {
        ws: &ws,
        lock: &lock,
        state_dir: dir.root(),
        site,
        revision: Some(commit),
        who,
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

/// The stages `site` deploys, in lifecycle order: those its deploy settings name, or every
/// stage of the lifecycle.
pub fn site_stages(ws: &Workspace, site: &str) -> Vec<String> {
    let lifecycle = &ws.cookbook.lifecycle;
    match lifecycle.sites.get(site) {
        Some(deploy) if !deploy.stages.is_empty() => {
            deploy.stages.iter().map(|s| s.to_string()).collect()
        }
        _ => lifecycle.stages.iter().map(|s| s.to_string()).collect(),
    }
}

impl Pipeline {
    /// The cookbook of the revision the site runs now (`current`), opened as its apply opened
    /// it; `None` before the first revision is taken.
    pub fn current_workspace(&self) -> Result<Option<Workspace>, Error> {
        let Some(commit) = self.dir.current_commit()? else {
            return Ok(None);
        };
        let file = self.dir.checkout(&commit).join(&self.options.sync.path);
        open_revision(&file, &self.options.sync).map(Some)
    }
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
