//! The flows that change what a site runs: `deploy`, `promote`, `rollback`, each from typed
//! options to a [`DeployReport`], and the step `sync --deploy` takes per stage ([`stage`]).
//!
//! Each flow works out what should run (`deploy::desired`, or `deploy::approvals::promotion`, or a
//! recorded release), then hands it to `deploy::session` on the process's one runtime. A stop
//! request (the CLI cancels `stop` on SIGINT/SIGTERM) ends a deploy between steps, rolled back like
//! a failure; which signal it was is the caller's to say. Errors are `crate::error::Error`,
//! converted once (`From<DeployError>`, `From<DesiredError>` in `error.rs`).
//!
//! Each flow that changes a stage or its approvals (`deploy`, `promote`, `rollback`, `approve`,
//! `stage`) appends one event to the event log of the state directory it used, whether it
//! succeeded or not ([`Happened::record`]). An event that cannot be written never fails what
//! happened: it becomes one of the report's `warnings`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::stop::Stop;
use serde::Serialize;

use super::Workspace;
// What the command line names when it renders a status (the CLI imports only `ops`).
use crate::attest::key::{read_signing_key, Signer};
use crate::deploy::approval_referrers;
use crate::deploy::approvals::{self, Approval, ApproveError, Request, Subject, Unapproved};
use crate::deploy::backend::{ConnectOptions, SiteStatus};
use crate::deploy::desired::{desired, Desired};
pub use crate::deploy::detect::{Class, Cluster, Detected, Engine};
pub use crate::deploy::docker::InstanceStatus;
pub use crate::deploy::kubernetes::cluster::UnitStatus;
use crate::deploy::kubernetes::objects::{objects, Objects};
pub use crate::deploy::services::Services;
use crate::deploy::session::{self, DeployError, Outcome, Recovery, Step, WaveError};
use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::model::lifecycle::{Progression, Target};
use crate::model::Name;
use crate::schema::span::SpanIndex;
use crate::state::events::{Event, EventKind, EventLog, EventOutcome, Who};
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
    /// Refuse images whose attestations do not verify with this public key.
    pub require_attestations: Option<PathBuf>,
    /// Stop a replaced or removed container within at most this many seconds (`cookbook dev`);
    /// `None`: its own `stop_grace`.
    pub stop_cap: Option<u32>,
}

/// `cookbook promote`: a stage's current release to a later stage.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub site: String,
    pub from: String,
    pub to: String,
    /// Refuse images whose attestations do not verify with this public key.
    pub require_attestations: Option<PathBuf>,
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
    /// What went wrong beside the deploy without undoing it (its event not recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
            warnings: Vec::new(),
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

impl DeployReport {
    /// Something was started or removed: the stage changed.
    pub fn changed(&self) -> bool {
        !self.started.is_empty() || !self.removed.is_empty()
    }
}

/// A deploy that failed (or was stopped) after changing something, and whose wave was rolled
/// back to what ran before.
pub fn rolled_back(e: &Error) -> bool {
    match e {
        Error::Deploy { error, .. } => matches!(
            error.as_ref(),
            DeployError::Stopped(stopped) if matches!(stopped.recovery, Recovery::RolledBack { .. })
        ),
        _ => false,
    }
}

/// How a command on `ws`'s cookbook reaches its sites (relative kubeconfigs start at its
/// directory).
pub fn connect_options(ws: &Workspace, force_conflicts: bool) -> ConnectOptions {
    ConnectOptions {
        base: ws
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into()),
        force_conflicts,
        engine: ws.engine.clone(),
        stop_cap: None,
    }
}

/// `cookbook deploy`.
pub fn deploy(ws: &Workspace, opts: &DeployOptions, stop: &Stop) -> Result<DeployReport, Error> {
    let mut tried = None;
    let result = deploy_lock(ws, opts, stop, &mut tried);
    let happened = Happened {
        kind: EventKind::Deploy,
        who: &Who::current("cli"),
        site: &opts.site,
        stage: &opts.stage,
        // The checkout's commit, whose lock this is; another lock file's revision is unknown.
        revision: match opts.release {
            None => crate::git::head_commit(ws.base_dir()),
            Some(_) => None,
        },
    };
    happened.record(&ws.state_dir(), tried.as_ref(), result)
}

/// [`deploy`]'s flow; `tried` is what it set out to run, once that is known.
fn deploy_lock(
    ws: &Workspace,
    opts: &DeployOptions,
    stop: &Stop,
    tried: &mut Option<Desired>,
) -> Result<DeployReport, Error> {
    let named;
    let lock = match &opts.release {
        Some(path) => {
            named = lock_at(path)?;
            &named
        }
        None => ws.published()?,
    };
    let desired = tried.insert(desired(
        &ws.cookbook,
        &ws.plan,
        lock,
        &opts.site,
        &opts.stage,
    )?);
    if let Some(key) = &opts.require_attestations {
        require_attestations(ws, Some(lock), desired, key)?;
    }
    let options = ConnectOptions {
        stop_cap: opts.stop_cap,
        ..connect_options(ws, opts.force_conflicts)
    };
    converge(ws, &ws.state_dir(), desired, &options, stop)
        .map(|outcome| DeployReport::new(Verb::Deployed, desired, outcome, None))
}

/// `cookbook promote`: the images that ran in `from` (whatever the lock says now), with `to`'s
/// runtime settings, if `to`'s rule is met.
pub fn promote(ws: &Workspace, opts: &PromoteOptions, stop: &Stop) -> Result<DeployReport, Error> {
    let mut tried = None;
    let result = promote_release(ws, opts, stop, &mut tried);
    let happened = Happened {
        kind: EventKind::Promotion,
        who: &Who::current("cli"),
        site: &opts.site,
        stage: &opts.to,
        // What ran in `from`, which no revision is recorded with.
        revision: None,
    };
    happened.record(&ws.state_dir(), tried.as_ref(), result)
}

/// [`promote`]'s flow; `tried` is what it set out to run, once that is known.
fn promote_release(
    ws: &Workspace,
    opts: &PromoteOptions,
    stop: &Stop,
    tried: &mut Option<Desired>,
) -> Result<DeployReport, Error> {
    let state_dir = ws.state_dir();
    let promotion = approvals::promoted(
        &state_dir,
        &ws.cookbook,
        &ws.plan,
        &opts.site,
        &opts.from,
        &opts.to,
    )?;
    let desired = &*tried.insert(promotion.desired.clone());
    // Before the rule, which reads the records: an approval found beside the images in their
    // registry is recorded here first.
    signed_approval(ws, &state_dir, desired)?;
    promotion.check_rule(&state_dir, &ws.cookbook)?;
    if let Some(key) = &opts.require_attestations {
        require_attestations(ws, ws.lock()?, desired, key)?;
    }
    let options = connect_options(ws, false);
    converge(ws, &state_dir, desired, &options, stop)
        .map(|outcome| DeployReport::new(Verb::Promoted, desired, outcome, None))
}

/// `cookbook rollback`: a recorded release, exactly as it ran.
pub fn rollback(ws: &Workspace, opts: &RollbackOptions) -> Result<DeployReport, Error> {
    let result = restore(ws, opts);
    let happened = Happened {
        kind: EventKind::Rollback,
        who: &Who::current("cli"),
        site: &opts.site,
        stage: &opts.stage,
        // A recorded release keeps no revision.
        revision: None,
    };
    let (result, restored) = match result {
        Ok((report, desired)) => (Ok(report), Some(desired)),
        Err(e) => (Err(e), None),
    };
    happened.record(&ws.state_dir(), restored.as_ref(), result)
}

/// [`rollback`]'s flow: its report, and what runs now.
fn restore(ws: &Workspace, opts: &RollbackOptions) -> Result<(DeployReport, Desired), Error> {
    let site = session::known_site(&ws.cookbook, &opts.site)?;
    let restored = super::runtime()?.block_on(session::rollback(
        &ws.state_dir(),
        &ws.cookbook,
        &site,
        &opts.stage,
        opts.to.as_deref(),
        &connect_options(ws, false),
    ))?;
    let desired = restored.release.desired.with_current_names();
    let report = DeployReport::new(
        Verb::Restored,
        &desired,
        restored.outcome,
        Some(restored.from),
    );
    Ok((report, desired))
}

/// `--require-attestations --key PUB`: every image `desired` would run has a provenance
/// statement and an SBOM signed by the key, about its digest, whose input hash the sources give
/// now (hashed as `lock` was: its version and pins), whose bases `lock` pins and whose commit
/// the checkout contains — what `verify --attestations` checks. Nothing is deployed otherwise.
fn require_attestations(
    ws: &Workspace,
    lock: Option<&Lock>,
    desired: &Desired,
    key: &Path,
) -> Result<(), Error> {
    let key = crate::attest::key::read_public_key(key)?;
    let pins = match lock {
        Some(lock) => lock.bases.clone(),
        None => ws.pins()?,
    };
    let version = lock.map_or(crate::hash::HASH_VERSION, |l| l.hash_version);
    let pinning = crate::hash::Pinning::of_lock(version, &pins);
    let prints = ws.fingerprints_pinned(&ws.plan, pinning)?;
    let dir = ws.base_dir().to_path_buf();
    let contains = move |commit: &str| crate::git::contains_commit(&dir, commit);
    let mut refused = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    super::runtime()?.block_on(async {
        let client = crate::registry::RegistryClient::new()?;
        // Every image of the release: pods' init containers and sidecars too.
        for (container, (image, digest)) in desired.images() {
            if !seen.insert(container.clone()) {
                continue;
            }
            let running = Running {
                container,
                image,
                digest,
            };
            let reasons = image_reasons(&client, &key, &running, &prints, &pins, &contains);
            let reasons = reasons.await?;
            if !reasons.is_empty() {
                refused.push((container.to_string(), reasons));
            }
        }
        Ok::<_, Error>(())
    })?;
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::Unattested {
        stage: format!("{}/{}", desired.site, desired.stage),
        refused,
    })
}

/// Why one instance's image is not vouched for (see [`require_attestations`]).
/// An image a release runs, for its container.
struct Running<'a> {
    container: &'a crate::model::Name,
    image: &'a str,
    digest: &'a str,
}

async fn image_reasons(
    client: &crate::registry::RegistryClient,
    key: &crate::attest::key::PublicKey,
    instance: &Running<'_>,
    prints: &std::collections::BTreeMap<crate::model::Name, crate::hash::Fingerprint>,
    pins: &crate::hash::BasePins,
    contains: &(dyn Fn(&str) -> Option<bool> + Sync),
) -> Result<Vec<crate::verify::Reason>, Error> {
    use crate::verify::{attestations, Reason};
    let not_published = || {
        vec![Reason::NotPublished {
            image: instance.image.to_owned(),
        }]
    };
    let (Ok(image), Ok(digest)) = (
        crate::oci::WrittenReference::parse(instance.image),
        crate::oci::Digest::parse(instance.digest),
    ) else {
        return Ok(not_published());
    };
    if crate::model::is_local_image(image.as_str()) {
        return Ok(not_published());
    }
    let Some(print) = prints.get(instance.container) else {
        return Ok(vec![Reason::NotInCookbook]);
    };
    let expected = attestations::Expected {
        digest: &digest,
        container: instance.container.as_str(),
        input_hash: print.input_hash(),
        pins,
        contains_commit: contains,
    };
    Ok(attestations::image_reasons(client, &image, key, expected).await?)
}

/// A lock file named on the command line (`deploy --release LOCK`).
fn lock_at(path: &Path) -> Result<Lock, Error> {
    Lock::read(path)?.ok_or_else(|| Error::Usage {
        message: format!("--release {}: no such lock file", path.display()),
        help: Some("name a cookbook.lock written by `cookbook apply`".to_owned()),
    })
}

/// Deploys `desired` through the session; release records and approvals live in `state_dir`.
/// A stage with approvers first takes only a signed approval ([`signed_approval`]).
fn converge(
    ws: &Workspace,
    state_dir: &Path,
    desired: &Desired,
    options: &ConnectOptions,
    stop: &Stop,
) -> Result<Outcome, Error> {
    signed_approval(ws, state_dir, desired)?;
    let deployed = super::runtime()?.block_on(session::deploy(
        state_dir,
        &ws.cookbook,
        desired,
        options,
        &stop.token(),
    ));
    deployed.map_err(|e| signalled(e.into(), stop))
}

/// A deploy a stop request cut short (and rolled back) names the signal that asked, and ends
/// with its code.
fn signalled(mut e: Error, stop: &Stop) -> Error {
    if let (Error::Deploy { error, signal }, Some(Error::Interrupted { signal: s, code })) =
        (&mut e, stop.error())
    {
        if error.interrupted() {
            *signal = Some((s, code));
        }
    }
    e
}

/// Why a stage was not deployed although nothing failed: its progression rule is not met yet.
#[derive(Debug, Clone)]
pub enum NotReady {
    /// The stage takes an approval these images do not have.
    NotApproved(Unapproved),
    /// The `automatic` rule: the images do not yet run healthy in the stage before (why).
    RuleNotMet(String),
    /// A stage with approvers: no approval of these images is signed by one of them (why).
    NotSigned(Box<approvals::SignedRefusal>),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::NotApproved(u) => write!(f, "{u}; {}", u.help()),
            NotReady::RuleNotMet(why) => f.write_str(why),
            NotReady::NotSigned(r) => write!(f, "{r}; {}", r.help()),
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
/// the state directory that keeps the release records, approvals and event log.
pub struct StageTarget<'a> {
    pub ws: &'a Workspace,
    pub lock: &'a Lock,
    pub state_dir: &'a Path,
    pub site: &'a str,
    /// The git revision the cookbook and lock are of (the round's commit), for the event log.
    pub revision: Option<&'a str>,
    /// Who deploys: the event log names them (a webhook's delivery, the timer, `sync`).
    pub who: &'a Who,
}

/// `sync --deploy`'s step for one stage: deploys the lock's images to `stage` when its
/// progression rule is met, and says why not otherwise. `Err`: the stage could not be worked out,
/// its rule could not be checked, or the deploy failed (and was rolled back).
pub fn stage(target: &StageTarget, stage: &str, stop: &Stop) -> Result<StageOutcome, Error> {
    let mut tried = None;
    let result = stage_lock(target, stage, stop, &mut tried);
    let happened = Happened {
        kind: EventKind::Deploy,
        who: target.who,
        site: target.site,
        stage,
        revision: target.revision.map(str::to_owned),
    };
    match result {
        Ok(StageOutcome::NotReady(why)) => {
            let mut event = happened.event(tried.as_ref(), EventOutcome::Skipped);
            event.release = tried.as_ref().map(|d| d.release.clone());
            event.message = Some(why.to_string());
            // Nothing changed, so nothing is lost when this is not recorded but the line.
            let _ = record(target.state_dir, &event);
            Ok(StageOutcome::NotReady(why))
        }
        Ok(StageOutcome::Deployed(report)) => happened
            .record(target.state_dir, tried.as_ref(), Ok(report))
            .map(StageOutcome::Deployed),
        Err(e) => happened
            .record(target.state_dir, tried.as_ref(), Err(e))
            .map(StageOutcome::Deployed),
    }
}

/// [`stage`]'s flow; `tried` is what it set out to run, once that is known.
fn stage_lock(
    target: &StageTarget,
    stage: &str,
    stop: &Stop,
    tried: &mut Option<Desired>,
) -> Result<StageOutcome, Error> {
    let StageTarget {
        ws,
        lock,
        state_dir,
        site,
        ..
    } = *target;
    let desired = &*tried.insert(desired(&ws.cookbook, &ws.plan, lock, site, stage)?);
    let options = connect_options(ws, false);
    // Before the rule, which reads the records: an approval found beside the images in their
    // registry is recorded here first.
    match signed_approval(ws, state_dir, desired) {
        Ok(()) => {}
        Err(Error::Approval(refusal)) => {
            return Ok(StageOutcome::NotReady(NotReady::NotSigned(refusal)))
        }
        Err(other) => return Err(other),
    }
    let checked = super::runtime()?.block_on(session::check_progression(
        state_dir,
        &ws.cookbook,
        desired,
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
    let outcome = converge(ws, state_dir, desired, &options, stop)?;
    Ok(StageOutcome::Deployed(DeployReport::new(
        Verb::Deployed,
        desired,
        outcome,
        None,
    )))
}

/// A flow that changes a stage, as the event log names it: what kind, who, where, and the
/// revision when one is known.
struct Happened<'a> {
    kind: EventKind,
    who: &'a Who,
    site: &'a str,
    stage: &'a str,
    revision: Option<String>,
}

impl Happened<'_> {
    /// The event, now, with the digests of what was (or was to be) deployed.
    fn event(&self, tried: Option<&Desired>, outcome: EventOutcome) -> Event {
        let mut event = Event::now(self.kind, self.who, outcome);
        event.site = Some(self.site.to_owned());
        event.stage = Some(self.stage.to_owned());
        event.revision = self.revision.clone();
        event.digests = tried.map(digests).unwrap_or_default();
        event
    }

    /// Appends the event of `result` to `state_dir`'s log and passes `result` on: a deploy that
    /// started or removed something is `ok`, one that changed nothing `unchanged`; a failure
    /// whose wave was rolled back `rolled_back`, any other `failed`, with its message. An event
    /// that cannot be written is a warning of the report (of a failure, it is lost: the
    /// failure is what the caller must hear).
    fn record(
        &self,
        state_dir: &Path,
        tried: Option<&Desired>,
        result: Result<DeployReport, Error>,
    ) -> Result<DeployReport, Error> {
        match result {
            Ok(mut report) => {
                let outcome = if report.changed() {
                    EventOutcome::Ok
                } else {
                    EventOutcome::Unchanged
                };
                let mut event = self.event(tried, outcome);
                event.release = Some(report.release.clone());
                event.message = Some(report.to_string());
                report.warnings.extend(record(state_dir, &event));
                Ok(report)
            }
            Err(e) => {
                let mut event = self.event(tried, EventOutcome::Failed);
                event.release = tried.map(|d| d.release.clone());
                if let Error::Deploy { error, .. } = &e {
                    if let DeployError::Stopped(stopped) = error.as_ref() {
                        event.release = Some(stopped.release.clone());
                    }
                }
                if rolled_back(&e) {
                    event.outcome = EventOutcome::RolledBack;
                }
                event.message = Some(e.to_string());
                let _ = record(state_dir, &event);
                Err(e)
            }
        }
    }
}

/// Container → the digest `desired` runs it from.
fn digests(desired: &Desired) -> BTreeMap<String, String> {
    desired.digests()
}

/// Appends `event` to `state_dir`'s event log; the warning to report when it cannot be.
fn record(state_dir: &Path, event: &Event) -> Option<String> {
    let log = EventLog::in_dir(state_dir);
    let e = log.append(event).err()?;
    Some(format!(
        "the {} event was not recorded: {e}",
        event.kind.as_str()
    ))
}

/// `cookbook status` and `cookbook render`: a site's stage.
#[derive(Debug, Clone)]
pub struct StageOptions {
    pub site: String,
    pub stage: String,
}

/// `cookbook status`: each container the lock wants in the stage, as the site runs it, and what
/// is not as the lock says (`problems`: the CLI then exits 1, `Status::not_as_locked`; a flow
/// that reads a status — the agent's view, `automatic` progression — judges it itself). Its
/// serialization is the `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport<C> {
    pub project: String,
    pub site: String,
    pub stage: String,
    /// The lock's release for the stage.
    pub release: String,
    /// Every container runs what the lock wants, healthy.
    pub in_sync: bool,
    /// No problem: the stage is what the lock says (`cookbook status` exits 0 only then).
    pub ok: bool,
    /// What is not as the lock says, one entry per container.
    pub problems: Vec<Problem>,
    pub containers: Vec<C>,
}

/// What is wrong with one container of a stage (`cookbook status`'s lines, and its exit 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The cookbook's container (its engine name when the stage runs several replicas of it).
    pub container: String,
    /// `missing`, `foreign`, `exited`, `restarting`, `unhealthy`, `drifted`, `pod`, `failed`,
    /// `progressing`.
    pub kind: &'static str,
    /// The line `status` prints after `CONTAINER: `.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.container, self.message)
    }
}

/// The problem of a Docker instance that is not in sync (`None`: it is).
fn instance_problem(s: &InstanceStatus, label: String) -> Option<Problem> {
    if s.in_sync() {
        return None;
    }
    let short = |id: &Option<String>| id.clone().unwrap_or_else(|| "nothing".to_owned());
    let (kind, message) = match s.state.as_str() {
        "missing" => (
            "missing",
            "missing: the lock has it, the engine runs no container of it".to_owned(),
        ),
        "foreign" => (
            "foreign",
            format!(
                "missing: `{}` is held by a container that is not the stage's",
                s.name
            ),
        ),
        "running" if s.health == "unhealthy" => {
            ("unhealthy", "unhealthy: its health check fails".to_owned())
        }
        "running" if s.drift && s.running_image != s.desired_image => (
            "drifted",
            match &s.desired_image {
                Some(_) => format!(
                    "drifted: runs {} but the lock says {}",
                    short(&s.running_image),
                    short(&s.desired_image)
                ),
                None => {
                    "drifted: the lock's image is not on this engine (deploy pulls it)".to_owned()
                }
            },
        ),
        "running" if s.drift => (
            "drifted",
            "drifted: runs the lock's image with other runtime settings than the cookbook's"
                .to_owned(),
        ),
        "running" => (
            "pod",
            s.members
                .iter()
                .find(|m| match m.role.as_str() {
                    "init" => m.exit_code != Some(0),
                    _ => m.state != "running" || m.health == "unhealthy",
                })
                .map_or_else(
                    || "its pod is not complete".to_owned(),
                    |m| {
                        let code = m
                            .exit_code
                            .map_or_else(String::new, |c| format!(" (exit code {c})"));
                        format!("its {} `{}` is {}{code}", m.role, m.container, m.state)
                    },
                ),
        ),
        "restarting" => (
            "restarting",
            format!("restarting ({} restart(s))", s.restarts),
        ),
        state => {
            let code = s
                .exit_code
                .map_or_else(String::new, |c| format!(" (exit code {c})"));
            let since = s
                .finished_at
                .as_deref()
                .map_or_else(String::new, |t| format!(" since {t}"));
            ("exited", format!("{state}{code}{since}"))
        }
    };
    Some(Problem {
        container: label,
        kind,
        message,
    })
}

/// The problem of a Kubernetes unit that is not in sync (`None`: it is).
fn unit_problem(u: &UnitStatus) -> Option<Problem> {
    use crate::deploy::kubernetes::cluster::UnitState;
    if u.in_sync() {
        return None;
    }
    let warning = u
        .warnings
        .last()
        .map_or_else(String::new, |w| format!(" ({w})"));
    let (kind, message) = match u.state {
        UnitState::Missing => (
            "missing",
            format!(
                "missing: the lock has it, the cluster has no Deployment `{}`",
                u.name
            ),
        ),
        UnitState::Foreign => (
            "foreign",
            format!("missing: Deployment `{}` is not the stage's", u.name),
        ),
        UnitState::Failed => (
            "failed",
            format!("failed: its rollout exceeded its progress deadline{warning}"),
        ),
        UnitState::Available | UnitState::Progressing if u.drift => (
            "drifted",
            format!(
                "drifted: runs {} but the lock says {}",
                u.running_digest.as_deref().unwrap_or("another image"),
                u.desired_digest
            ),
        ),
        _ => (
            "progressing",
            format!(
                "not ready: {}/{} replica(s) ready{warning}",
                u.ready_replicas, u.replicas
            ),
        ),
    };
    Some(Problem {
        container: u.container.clone(),
        kind,
        message,
    })
}

/// The Docker rows' problems, each named by its container (by its engine name when the
/// container has several replicas).
fn docker_problems(list: &[InstanceStatus]) -> Vec<Problem> {
    list.iter()
        .filter_map(|s| {
            let replicas = list.iter().filter(|o| o.container == s.container).count();
            let label = if replicas > 1 {
                s.name.clone()
            } else {
                s.container.clone()
            };
            instance_problem(s, label)
        })
        .collect()
}

/// [`StatusReport`] by the kind of site: per container, the engine's container or the cluster's
/// Deployment.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Status {
    Docker(StatusReport<InstanceStatus>),
    Kubernetes(StatusReport<UnitStatus>),
}

impl<C> StatusReport<C> {
    fn new(desired: &Desired, in_sync: bool, problems: Vec<Problem>, containers: Vec<C>) -> Self {
        StatusReport {
            project: desired.project.to_string(),
            site: desired.site.to_string(),
            stage: desired.stage.to_string(),
            release: desired.release.clone(),
            in_sync,
            ok: problems.is_empty(),
            problems,
            containers,
        }
    }

    /// The summary line after the problems: `local/dev: 2 of 3 container(s) not as cookbook.lock says`.
    pub fn summary(&self) -> String {
        if self.ok {
            format!(
                "{}/{}: all {} container(s) as cookbook.lock says",
                self.site,
                self.stage,
                self.containers.len()
            )
        } else {
            format!(
                "{}/{}: {} of {} container(s) not as cookbook.lock says",
                self.site,
                self.stage,
                self.problems.len(),
                self.containers.len()
            )
        }
    }
}

impl Status {
    /// The stage is what the lock says.
    pub fn ok(&self) -> bool {
        match self {
            Status::Docker(r) => r.ok,
            Status::Kubernetes(r) => r.ok,
        }
    }

    /// What `cookbook status` exits 1 with when the stage is not what the lock says.
    pub fn not_as_locked(&self) -> Option<Error> {
        let (site, stage, problems) = match self {
            Status::Docker(r) => (&r.site, &r.stage, r.problems.len()),
            Status::Kubernetes(r) => (&r.site, &r.stage, r.problems.len()),
        };
        (problems > 0).then(|| Error::NotAsLocked {
            stage: format!("{site}/{stage}"),
            problems,
        })
    }
}

/// `cookbook status`: asks the site; a stage whose images are not published yet is
/// [`Error::NotPublished`] (1), as for `deploy`.
pub fn status(ws: &Workspace, opts: &StageOptions) -> Result<Status, Error> {
    let desired = desired(
        &ws.cookbook,
        &ws.plan,
        ws.published()?,
        &opts.site,
        &opts.stage,
    )?;
    status_for(ws, &desired, true)
}

/// Each container of `desired` (a recorded release: what a stage was deployed with) as the site
/// runs it now: its drift is from that release, not from a lock that may have moved on since.
/// Without `services`, nothing is asked of the containers themselves (no exec: what they offer
/// is left out), as the agent's periodic health check asks.
pub fn status_for(ws: &Workspace, desired: &Desired, services: bool) -> Result<Status, Error> {
    let options = connect_options(ws, false);
    let asked = async {
        if services {
            session::status(&ws.cookbook, desired, &options).await
        } else {
            session::status_without_services(&ws.cookbook, desired, &options).await
        }
    };
    let status = super::runtime()?.block_on(asked)?;
    Ok(match status {
        SiteStatus::Docker(list) => {
            let in_sync = list.iter().all(InstanceStatus::in_sync);
            let problems = docker_problems(&list);
            Status::Docker(StatusReport::new(desired, in_sync, problems, list))
        }
        SiteStatus::Kubernetes(units) => {
            let in_sync = units.iter().all(UnitStatus::in_sync);
            let problems = units.iter().filter_map(unit_problem).collect();
            Status::Kubernetes(StatusReport::new(desired, in_sync, problems, units))
        }
    })
}

/// `cookbook releases`: a site's recorded releases, stage by stage, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct ReleasesReport {
    pub site: String,
    pub stages: BTreeMap<String, Vec<ReleaseRow>>,
}

/// One recorded release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    pub release: String,
    pub deployed_at: String,
    /// A rollback's record: the release it replaced.
    pub rolled_back_from: Option<String>,
    /// The stage where these images became a rollback point.
    pub checkpoint: Option<String>,
    /// The last record of its stage, and the stage not torn down since: what runs there.
    pub current: bool,
    /// `cookbook down` tore the stage down then (the last record only): nothing runs, and
    /// `rollback` without `--to` brings this release back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_at: Option<String>,
    /// Container → the digest it ran.
    pub containers: BTreeMap<String, String>,
}

pub fn releases(ws: &Workspace, site: &str) -> Result<ReleasesReport, Error> {
    let site = session::known_site(&ws.cookbook, site)?;
    let records = session::releases(&ws.state_dir(), &site)?;
    let stages = records
        .stages
        .into_iter()
        .map(|(stage, list)| {
            let last = list.len();
            let rows = list
                .into_iter()
                .enumerate()
                .map(|(i, r)| ReleaseRow {
                    containers: r.desired.digests().into_iter().collect(),
                    release: r.release,
                    deployed_at: r.deployed_at,
                    rolled_back_from: r.rolled_back_from,
                    checkpoint: r.checkpoint,
                    current: i + 1 == last && r.down_at.is_none(),
                    down_at: r.down_at,
                })
                .collect();
            (stage, rows)
        })
        .collect();
    Ok(ReleasesReport {
        site: site.to_string(),
        stages,
    })
}

/// `cookbook approve`: what to approve for which stage, by whom.
#[derive(Debug, Clone)]
pub struct ApproveOptions {
    pub stage: String,
    pub by: String,
    pub ci: bool,
    pub site: Option<String>,
    /// A recorded release; `None` (and not `lock`): the one `promote` would carry.
    pub release: Option<String>,
    /// The lock's images instead (what `deploy` runs).
    pub lock: bool,
    /// A private key (PKCS#8 PEM) that signs the approval.
    pub signing_key: Option<PathBuf>,
}

/// What `cookbook approve` did: the approval recorded, and for a signed one, where it was
/// attached beside its images.
#[derive(Debug, Clone, Serialize)]
pub struct ApproveReport {
    pub approval: Approval,
    /// One per approved image published in a registry (a signed approval only).
    pub attached: Vec<AttachedApproval>,
    /// What could not be attached (the approval is recorded all the same).
    pub warnings: Vec<String>,
}

/// A signed approval attached to one image as a referrer.
#[derive(Debug, Clone, Serialize)]
pub struct AttachedApproval {
    pub container: String,
    /// `repository@digest` of the image.
    pub image: String,
    /// The artifact manifest's digest.
    pub referrer: String,
    /// Whether anything was written (`false`: it was attached already).
    pub pushed: bool,
}

/// `cookbook approve`: records the approval; a signed one is then attached to each approved
/// image that is published in a registry, so that a site sharing that registry sees it. The
/// record comes first and stands: an image the registry does not take it for (unreachable,
/// refused credentials, anything) is a warning, and `approve` run again attaches the new one.
pub fn approve(ws: &Workspace, opts: &ApproveOptions) -> Result<ApproveReport, Error> {
    let result = approve_images(ws, opts);
    let approval = result.as_ref().ok().map(|r| &r.approval);
    let release = approval.and_then(|a| a.release.as_ref());
    let site = opts.site.as_deref().or(release.map(|r| r.site.as_str()));
    let mut event = Event::now(EventKind::Approval, &Who::current("cli"), EventOutcome::Ok);
    event.site = site.map(str::to_owned);
    event.stage = Some(opts.stage.clone());
    event.release = release.map(|r| r.id.clone());
    event.digests = approval.map(|a| a.digests.clone()).unwrap_or_default();
    let ci = if opts.ci { " (a CI job)" } else { "" };
    event.message = Some(match &result {
        Ok(_) => format!("approved for stage {} by {}{ci}", opts.stage, opts.by),
        Err(e) => {
            event.outcome = EventOutcome::Failed;
            e.to_string()
        }
    });
    let warning = record(&ws.state_dir(), &event);
    result.map(|mut report| {
        report.warnings.extend(warning);
        report
    })
}

/// [`approve`]'s flow.
fn approve_images(ws: &Workspace, opts: &ApproveOptions) -> Result<ApproveReport, Error> {
    let subject = match (opts.lock, &opts.release) {
        (true, _) => Subject::Lock(ws.published()?),
        (false, Some(id)) => Subject::Release(id),
        (false, None) => Subject::Current,
    };
    let key = opts
        .signing_key
        .as_deref()
        .map(read_signing_key)
        .transpose()?;
    let request = Request {
        stage: &opts.stage,
        by: &opts.by,
        ci: opts.ci,
        site: opts.site.as_deref(),
        subject,
        signer: key.as_ref().map(|k| k as &dyn Signer),
    };
    let approved =
        approvals::approve(&ws.state_dir(), &ws.cookbook, &request).map_err(|e| match e {
            ApproveError::Deploy(e) => Error::from(e),
            ApproveError::Sign(e) => e.into(),
        })?;
    let mut report = ApproveReport {
        approval: approved.approval.clone(),
        attached: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(envelope) = &approved.approval.envelope else {
        return Ok(report);
    };
    let shared: Vec<_> = approved
        .images
        .iter()
        .filter_map(|(c, i)| approval_referrers::published(i).map(|p| (c, p)))
        .collect();
    if shared.is_empty() {
        return Ok(report);
    }
    super::runtime()?.block_on(async {
        let client = match crate::registry::RegistryClient::new() {
            Ok(client) => client,
            Err(e) => {
                report
                    .warnings
                    .push(format!("the approval is not attached to the images: {e}"));
                return;
            }
        };
        for (container, (image, digest)) in shared {
            let name = format!("{}@{digest}", image.reference().repository());
            match approval_referrers::attach(&client, &image, &digest, envelope, &opts.stage).await
            {
                Ok(attached) => report.attached.push(AttachedApproval {
                    container: container.clone(),
                    image: name,
                    referrer: attached.manifest.to_string(),
                    pushed: attached.pushed,
                }),
                Err(e) => report.warnings.push(format!(
                    "the approval is recorded here but not attached to {name}: {e}"
                )),
            }
        }
    });
    Ok(report)
}

/// A stage with `lifecycle.approvers` takes only an approval signed by one of them
/// (`approvals::judge`); other stages are left to their rule (`session`). The records here are
/// judged first; when none holds and the images are published, the approvals attached to them
/// in their registry are fetched and judged by the same judgement, and one that holds is
/// recorded here (so the rule, which reads the records, opens, and the records say why). No
/// approval anywhere is the rule's refusal, which names the command that approves. An
/// approver's key file that cannot be used is a problem of the cookbook, located at its entry.
fn signed_approval(ws: &Workspace, state_dir: &Path, desired: &Desired) -> Result<(), Error> {
    let cookbook = &ws.cookbook;
    let stage = desired.stage.as_str();
    let takes_signatures = cookbook.lifecycle.progression.get(&desired.stage)
        == Some(&Progression::Manual)
        && cookbook.lifecycle.approvers.contains_key(&desired.stage);
    if !takes_signatures {
        return Ok(());
    }
    let approvers = approvals::read_approver_keys(ws.base_dir(), cookbook, stage)
        .map_err(|unreadable| unreadable_approvers(ws, &unreadable))?;
    let path = approvals::Approvals::path(state_dir);
    let recorded = approvals::Approvals::load(&path).map_err(DeployError::from)?;
    let digests: BTreeMap<String, String> = desired.digests();
    let project = cookbook.project.name.as_str();
    let mut candidates: Vec<approvals::Candidate> = approvals::covering(&recorded, stage, &digests)
        .into_iter()
        .map(Approval::candidate)
        .collect();
    let local = approvals::judge(project, stage, &digests, &candidates, &approvers);
    if let Ok(Some(_)) = local {
        return Ok(());
    }
    let attached = attached_approvals(desired)?;
    if attached.is_empty() {
        local?;
        return Ok(());
    }
    candidates.extend(attached);
    match approvals::judge(project, stage, &digests, &candidates, &approvers)? {
        None => Ok(()),
        Some((i, statement)) => {
            let found = &candidates[i];
            // A candidate holds only with an envelope; were it otherwise, nothing is recorded
            // and the rule refuses.
            if let Ok(envelope) = &found.envelope {
                let from = found.origin.to_string();
                let record = Approval::from_statement(statement, envelope.clone(), from);
                approvals::Approvals::update(&path, |a| a.approvals.push(record))
                    .map_err(DeployError::from)?;
            }
            Ok(())
        }
    }
}

/// The approvals attached to `desired`'s published images in their registry, each envelope
/// once (the same approval is attached to every image it approves).
fn attached_approvals(desired: &Desired) -> Result<Vec<approvals::Candidate>, Error> {
    let mut published = BTreeMap::new();
    for (container, (image, digest)) in desired.images() {
        let image = approvals::ApprovedImage {
            image: image.to_owned(),
            digest: digest.to_owned(),
        };
        if let Some(p) = approval_referrers::published(&image) {
            published.entry(container.to_string()).or_insert(p);
        }
    }
    if published.is_empty() {
        return Ok(Vec::new());
    }
    super::runtime()?.block_on(async {
        let client = crate::registry::RegistryClient::new()?;
        let mut found: Vec<approvals::Candidate> = Vec::new();
        for (image, digest) in published.values() {
            for candidate in approval_referrers::fetch(&client, image, digest).await? {
                let seen = found
                    .iter()
                    .any(|f| match (&f.envelope, &candidate.envelope) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => false,
                    });
                if !seen {
                    found.push(candidate);
                }
            }
        }
        Ok(found)
    })
}

/// The cookbook's approver entries whose key files cannot be used, as located diagnostics.
fn unreadable_approvers(ws: &Workspace, unreadable: &[approvals::UnreadableApprover]) -> Error {
    let mut diagnostics: Vec<Diagnostic> = unreadable
        .iter()
        .map(|u| {
            let pointer = format!("/lifecycle/approvers/{}/{}/key", u.stage, u.index);
            let mut d = Diagnostic::new(
                "approver/key",
                pointer,
                format!("approver {:?}'s key: {}", u.name, u.error),
            );
            if let Some(help) = u.error.help() {
                d = d.with_help(help);
            }
            d
        })
        .collect();
    // Located in the cookbook's text when it can be read again (it was read a moment ago).
    let text = match ws.file.bytes {
        Some(bytes) => Some(bytes.to_vec()),
        None => crate::context::file::read_regular(ws.path(), crate::load::COOKBOOK_MAX)
            .ok()
            .flatten(),
    };
    if let Some(text) = text.as_deref().and_then(|t| std::str::from_utf8(t).ok()) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let spans = SpanIndex::scan(text);
        for d in &mut diagnostics {
            d.location = Some(spans.locate(text, &d.pointer, false));
        }
    }
    Error::Invalid {
        file: ws.file.label.clone(),
        diagnostics,
    }
}

/// `cookbook render`: the Kubernetes objects `deploy` applies to a site's stage (the site's
/// namespace in them when its target is a cluster).
pub fn render(ws: &Workspace, opts: &StageOptions) -> Result<Objects, Error> {
    let desired = desired(
        &ws.cookbook,
        &ws.plan,
        ws.published()?,
        &opts.site,
        &opts.stage,
    )?;
    let (namespace, create) = match &ws.cookbook.lifecycle.sites[&desired.site].target {
        Some(Target::Kubernetes(k)) => (Some(k.namespace.as_str()), k.create_namespace),
        _ => (None, false),
    };
    Ok(objects(&desired, namespace, create))
}

/// `cookbook site detect`: what an engine offers, in the vocabulary of `capabilities`, and with
/// a site what it declares and lacks. Its serialization is the `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    #[serde(flatten)]
    pub detected: Detected,
    pub capabilities: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteFit>,
}

/// A site's declared capabilities against what its engine offers.
#[derive(Debug, Clone, Serialize)]
pub struct SiteFit {
    pub site: String,
    pub declared: BTreeSet<String>,
    pub missing: Vec<String>,
}

/// `site detect`: asks `site`'s target (of `ws`'s cookbook), or without a site the engine
/// `engine` chooses.
pub fn detect(
    site: Option<(&Workspace, &str)>,
    engine: &crate::engine::Selector,
) -> Result<DetectReport, Error> {
    let mut connect = ConnectOptions {
        engine: engine.clone(),
        ..ConnectOptions::default()
    };
    let mut target = Target::Docker(crate::model::EngineSpec::default());
    let mut fit = None;
    if let Some((ws, site)) = site {
        let name = session::known_site(&ws.cookbook, site)?;
        target = session::target(&ws.cookbook, &name)?;
        connect = connect_options(ws, false);
        let declared = ws.cookbook.lifecycle.sites[&name].capabilities.clone();
        fit = Some((name.to_string(), declared));
    }
    let detected = super::runtime()?
        .block_on(session::detect(&target, &connect))?
        .ok_or_else(|| {
            Error::Failed("this site's target reports no capabilities to detect".to_owned())
        })?;
    let site = fit.map(|(site, declared)| SiteFit {
        missing: detected
            .missing(&declared)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        site,
        declared,
    });
    Ok(DetectReport {
        capabilities: detected.capabilities().into_iter().collect(),
        detected,
        site,
    })
}

/// The `--format json` document of a deploy that stopped once it had changed something: the error
/// document (`result: "error"`), plus what failed and what the stage was put back on.
#[derive(Debug, Serialize)]
pub struct StoppedDocument<'a> {
    pub result: Failure,
    pub exit_code: i32,
    pub errors: [StoppedError; 1],
    pub deploy: StoppedDeploy<'a>,
}

/// A failure's `result` (`"error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    Error,
}

/// The one error of a stopped deploy's document (code `deploy`).
#[derive(Debug, Serialize)]
pub struct StoppedError {
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StoppedDeploy<'a> {
    pub project: String,
    pub site: String,
    pub stage: String,
    pub release: &'a str,
    /// What it (re)created before it stopped.
    pub started: &'a [String],
    pub failed: FailedStep<'a>,
    pub recovery: RecoveryDocument<'a>,
}

/// Where the deploy stopped: the wave and unit when known, and why.
#[derive(Debug, Serialize)]
pub struct FailedStep<'a> {
    pub wave: Option<usize>,
    pub unit: Option<&'a str>,
    pub message: String,
}

/// What the stopped deploy did about it (`lifecycle.rollback.on_failure`).
#[derive(Debug, Serialize)]
pub struct RecoveryDocument<'a> {
    pub action: RecoveryAction,
    /// The release rolled back to (or that could not be).
    pub release: Option<&'a str>,
    pub started: &'a [String],
    pub unchanged: &'a [String],
    pub removed: &'a [String],
    /// Why the rollback failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryAction {
    NothingChanged,
    LeftAsIs,
    NothingToRestore,
    RolledBack,
    RollbackFailed,
}

/// [`StoppedDocument`] of `e` when it is a deploy of `project` that stopped; `None` for any
/// other error (the plain error document tells it).
pub fn stopped_document<'a>(project: &Name, e: &'a Error) -> Option<StoppedDocument<'a>> {
    let Error::Deploy { error, .. } = e else {
        return None;
    };
    let DeployError::Stopped(stopped) = error.as_ref() else {
        return None;
    };
    let (wave, unit) = match &stopped.cause {
        WaveError::Unhealthy { wave, unit, .. } => (Some(*wave), Some(unit.as_str())),
        WaveError::Backend { at, .. } | WaveError::Interrupted { at } => match at {
            Step::Wave(n) => (Some(*n), None),
            _ => (None, None),
        },
    };
    let none: &[String] = &[];
    let recovery =
        |action, release: Option<&'a String>, restored: Option<&'a Outcome>| RecoveryDocument {
            action,
            release: release.map(String::as_str),
            started: restored.map_or(none, |o| &o.started),
            unchanged: restored.map_or(none, |o| &o.unchanged),
            removed: restored.map_or(none, |o| &o.removed),
            error: None,
        };
    let recovery = match &stopped.recovery {
        Recovery::NothingChanged => recovery(RecoveryAction::NothingChanged, None, None),
        Recovery::LeftAsIs => recovery(RecoveryAction::LeftAsIs, None, None),
        Recovery::NothingToRestore => recovery(RecoveryAction::NothingToRestore, None, None),
        Recovery::RolledBack { release, outcome } => {
            recovery(RecoveryAction::RolledBack, Some(release), Some(outcome))
        }
        Recovery::RollbackFailed { release, cause } => RecoveryDocument {
            error: Some(cause.to_string()),
            ..recovery(RecoveryAction::RollbackFailed, Some(release), None)
        },
    };
    Some(StoppedDocument {
        result: Failure::Error,
        exit_code: e.exit_code(),
        errors: [StoppedError {
            code: "deploy",
            message: e.to_string(),
            help: None,
        }],
        deploy: StoppedDeploy {
            project: project.to_string(),
            site: stopped.site.to_string(),
            stage: stopped.stage.to_string(),
            release: &stopped.release,
            started: &stopped.started,
            failed: FailedStep {
                wave,
                unit,
                message: stopped.cause.to_string(),
            },
            recovery,
        },
    })
}
