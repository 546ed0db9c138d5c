//! `cookbook agent`: the hourly sync as a long-running service.
//!
//! It runs [`super::pipeline`]'s rounds on an interval with splay, and serves over HTTP(S)
//! (`server`): a webhook that starts a round at once (`webhook`), Prometheus metrics
//! (`metrics`), the status document (`status`, built by `site`), health checks, a dashboard
//! (`dashboard`) and, given peers, the fleet view (`super::fleet`), with TLS and mutual TLS from
//! `tls`.
//!
//! Threads: the caller's thread runs the rounds (as `sync --interval` does: a round blocks on
//! git, the engine and the registry, and reports through the caller's non-`Sync` reporter); the
//! server runs on the process's runtime. They meet in [`Shared`]: a webhook delivery sets the
//! pending trigger and wakes the round loop; a round's end updates the metrics and the list of
//! rounds the status shows. A stop request (SIGTERM) ends the loop between rounds, or cancels the
//! running round as `sync` does, then shuts the server down gracefully.

pub mod dashboard;
pub mod metrics;
mod server;
pub mod site;
pub mod status;
pub mod tls;
pub mod webhook;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use self::metrics::{BuildCounts, DeployObservation, Metrics, RoundObservation};
use self::status::{AgentInfo, RoundView, SiteStatus, ROUNDS_KEPT, SCHEMA};
use super::fleet::Peer;
use super::pipeline::{Pipeline, PipelineOptions, Reporter, Round, StepResult};
use super::stop::Stop;
use crate::error::Error;
use crate::state::events::{EventLog, Who};
use crate::sync::schedule::Schedule;
use crate::sync::state::now;
use crate::sync::SyncError;

/// What an agent runs and serves.
pub struct AgentOptions {
    /// The site's pipeline: sync, apply and deploy (`site` set).
    pub pipeline: PipelineOptions,
    /// Where to listen (loopback unless told otherwise).
    pub listen: SocketAddr,
    /// The timed rounds' interval and splay.
    pub schedule: Schedule,
    /// The webhook's secret; without one `POST /hooks/git` answers 404 (no hook is served).
    pub webhook_secret: Option<webhook::Secret>,
    /// Serve HTTPS (with a client CA: mutual TLS).
    pub tls: Option<tls::TlsFiles>,
    /// `--peers`: the fleet view's sites, and the client that asks them.
    pub peers: Option<Peers>,
    /// How often, between rounds, the agent asks its site how its containers are (for the
    /// health metrics).
    pub health_every: Duration,
}

/// The sites `/fleet` asks, and the mutual-TLS client it asks them with.
pub struct Peers {
    pub peers: Vec<Peer>,
    pub client: reqwest::Client,
}

/// What the agent tells its front end besides the rounds' progress.
pub enum Notice<'a> {
    /// The server listens (the address bound: a port of 0 chose one).
    Listening { addr: SocketAddr, tls: bool },
    /// A round starts, and why.
    Starting(&'a Trigger),
    /// The stop request was seen: the server stops taking requests.
    Stopping,
}

/// The agent's front end: the rounds' progress (as `sync` renders it) and the agent's notices.
pub trait AgentReporter: Reporter {
    fn notice(&self, notice: Notice<'_>);
}

/// Why a round runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The first round, at start.
    Start,
    /// The interval elapsed.
    Timer,
    /// A push reached the webhook.
    Webhook {
        provider: String,
        delivery: Option<String>,
    },
}

impl Trigger {
    /// `start`, `timer`, `webhook` (the status's `trigger`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Timer => "timer",
            Trigger::Webhook { .. } => "webhook",
        }
    }

    fn delivery(&self) -> Option<String> {
        match self {
            Trigger::Webhook { delivery, .. } => delivery.clone(),
            _ => None,
        }
    }
}

/// How the agent ended.
#[derive(Debug)]
pub struct AgentReport {
    pub rounds: u64,
}

/// The round loop's control: what it should do next.
#[derive(Default)]
struct Control {
    /// A round asked for (a webhook delivery) and not started yet: several coalesce into one.
    pending: Option<Trigger>,
    running: bool,
    /// When the next timed round starts.
    next_at: Option<SystemTime>,
}

/// What the server and the round loop share.
pub(crate) struct Shared {
    pipeline: Pipeline,
    site: String,
    started_at: String,
    interval: Duration,
    metrics: Metrics,
    rounds: Mutex<VecDeque<RoundView>>,
    control: Mutex<Control>,
    wake: Condvar,
    secret: Option<webhook::Secret>,
    replays: Mutex<webhook::Replays>,
    /// The first round has ended (whatever its outcome): the agent knows its site.
    ready: AtomicBool,
    /// The followed branch's head when last fetched.
    master: Mutex<Option<String>>,
    peers: Option<Peers>,
    events: EventLog,
    /// Bounds the status documents built at once (`server::STATUS_BUILDS`).
    status_builds: Arc<tokio::sync::Semaphore>,
}

/// The variable a webhook secret may come from when no file is named.
pub const SECRET_VARIABLE: &str = "COOKBOOK_WEBHOOK_SECRET";

/// The webhook's secret: the file named (`--webhook-secret-file`), else the variable
/// [`SECRET_VARIABLE`]; `None` when neither is given (the agent then serves no webhook).
pub fn webhook_secret(file: Option<&std::path::Path>) -> Result<Option<webhook::Secret>, Error> {
    if let Some(file) = file {
        return Ok(Some(webhook::Secret::read(file)?));
    }
    match std::env::var_os(SECRET_VARIABLE) {
        Some(value) => {
            let bytes = value.into_encoded_bytes();
            Ok(Some(webhook::Secret::from_bytes(bytes)?))
        }
        None => Ok(None),
    }
}

/// A poisoned lock still holds consistent data here (every critical section is a few field
/// writes): take it rather than take the agent down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the agent until `stop` is requested: the server on the process's runtime, the rounds on
/// this thread. `Err` when it cannot start (the address taken, a TLS file unreadable), or when a
/// stop cut a running round short (the signal's code, as `sync` ends).
pub fn run(
    options: AgentOptions,
    stop: &Stop,
    reporter: &dyn AgentReporter,
) -> Result<AgentReport, Error> {
    let AgentOptions {
        pipeline,
        listen,
        schedule,
        webhook_secret,
        tls,
        peers,
        health_every,
    } = options;
    let Some(site) = pipeline.sync.site.clone() else {
        return Err(Error::Usage {
            message: "cookbook agent needs --site".to_owned(),
            help: Some("the agent runs one site's portion: e.g. --site paris".to_owned()),
        });
    };
    let tls = tls.as_ref().map(tls::server_config).transpose()?;
    let pipeline = Pipeline::new(pipeline)?;
    let events = EventLog::in_dir(pipeline.state().root());
    let shared = Arc::new(Shared {
        pipeline,
        site,
        started_at: now(),
        interval: schedule.interval,
        metrics: Metrics::new(),
        rounds: Mutex::new(VecDeque::new()),
        control: Mutex::new(Control {
            pending: Some(Trigger::Start),
            ..Control::default()
        }),
        wake: Condvar::new(),
        secret: webhook_secret,
        replays: Mutex::new(webhook::Replays::new(4096)),
        ready: AtomicBool::new(false),
        master: Mutex::new(None),
        peers,
        events,
        status_builds: Arc::new(tokio::sync::Semaphore::new(server::STATUS_BUILDS)),
    });
    let runtime = super::runtime()?;
    let server = runtime.block_on(server::Server::bind(listen, tls))?;
    reporter.notice(Notice::Listening {
        addr: server.addr(),
        tls: server.tls(),
    });
    let shutdown = stop.token();
    let served = runtime.spawn(server.serve(Arc::clone(&shared), shutdown.clone()));
    // The round loop waits on a condition variable; the stop request wakes it.
    {
        let shared = Arc::clone(&shared);
        let token = stop.token();
        runtime.spawn(async move {
            token.cancelled().await;
            let _guard = lock(&shared.control);
            shared.wake.notify_all();
        });
    }
    let result = rounds(&shared, schedule, health_every, stop, reporter);
    reporter.notice(Notice::Stopping);
    shutdown.cancel();
    // Requests in flight get a few seconds to finish; the server task ends with them.
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), served).await });
    result
}

/// The round loop: a round at start, then one per interval (with splay) or per webhook push,
/// whichever comes first; between rounds, the site's health every `health_every`.
fn rounds(
    shared: &Shared,
    schedule: Schedule,
    health_every: Duration,
    stop: &Stop,
    reporter: &dyn AgentReporter,
) -> Result<AgentReport, Error> {
    let mut count = 0;
    let mut next_health = Instant::now() + health_every;
    loop {
        let trigger = {
            let mut control = lock(&shared.control);
            loop {
                if stop.requested() {
                    return Ok(AgentReport { rounds: count });
                }
                if let Some(trigger) = control.pending.take() {
                    control.running = true;
                    break trigger;
                }
                let now = SystemTime::now();
                let next_at = *control.next_at.get_or_insert(now + schedule.next_wait());
                if now >= next_at {
                    control.running = true;
                    break Trigger::Timer;
                }
                let until_round = next_at.duration_since(now).unwrap_or_default();
                let until_health = next_health.saturating_duration_since(Instant::now());
                if until_health.is_zero() {
                    drop(control);
                    refresh_health(shared);
                    next_health = Instant::now() + health_every;
                    control = lock(&shared.control);
                    continue;
                }
                control = shared
                    .wake
                    .wait_timeout(control, until_round.min(until_health))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        reporter.notice(Notice::Starting(&trigger));
        let outcome = round(shared, &trigger, stop, reporter);
        count += 1;
        {
            let mut control = lock(&shared.control);
            control.running = false;
            control.next_at = Some(SystemTime::now() + schedule.next_wait());
        }
        shared.ready.store(true, Ordering::SeqCst);
        if let Some(e) = outcome {
            return Err(e);
        }
        refresh_health(shared);
        next_health = Instant::now() + health_every;
    }
}

/// One round, recorded in the status and the metrics. `Some`: a stop cut it short (the error
/// the agent ends with).
fn round(
    shared: &Shared,
    trigger: &Trigger,
    stop: &Stop,
    reporter: &dyn AgentReporter,
) -> Option<Error> {
    let started_at = now();
    let who =
        Who::current(&format!("agent:{}", trigger.as_str())).with_delivery(trigger.delivery());
    let started = Instant::now();
    let result = shared.pipeline.round(&who, stop, reporter);
    let finished_at = now();
    let (view, cut_short) = match result {
        Ok(round) => {
            *lock(&shared.master) = Some(round.report.remote_commit.clone());
            observe(shared, &round);
            let remote = &shared.pipeline.options().sync.remote;
            let view = round_view(&round, trigger, &started_at, &finished_at, remote);
            let cut_short = match round.result() {
                Err(e) if e.stopped_by_signal() => Some(e),
                _ => None,
            };
            (view, cut_short)
        }
        Err(e) => {
            observe_error(shared, started.elapsed());
            let cut_short = matches!(e, SyncError::Interrupted)
                .then(|| stop.error())
                .flatten();
            let view = RoundView {
                started_at,
                finished_at,
                trigger: trigger.as_str().to_owned(),
                delivery: trigger.delivery(),
                commit: None,
                result: "failed".to_owned(),
                outcome: "error".to_owned(),
                // git's errors name the remote as given, credentials and all.
                message: site::redact_remote_in(
                    &e.to_string(),
                    &shared.pipeline.options().sync.remote,
                ),
            };
            (view, cut_short)
        }
    };
    let mut rounds = lock(&shared.rounds);
    rounds.push_front(view);
    rounds.truncate(ROUNDS_KEPT);
    cut_short
}

fn round_view(
    round: &Round,
    trigger: &Trigger,
    started_at: &str,
    finished_at: &str,
    remote: &str,
) -> RoundView {
    let document = round.document();
    let message = site::redact_remote_in(&round_message(round), remote);
    RoundView {
        started_at: started_at.to_owned(),
        finished_at: finished_at.to_owned(),
        trigger: trigger.as_str().to_owned(),
        delivery: trigger.delivery(),
        commit: Some(round.report.remote_commit.clone()),
        result: serde_plain(&document.result),
        outcome: serde_plain(&document.outcome),
        message,
    }
}

/// A unit enum's serialized name (`up_to_date`, `failed`).
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One line for the round: what it took, applied and deployed, or what failed first.
fn round_message(round: &Round) -> String {
    let short = |c: &str| c[..c.len().min(12)].to_owned();
    let mut parts = Vec::new();
    let document = round.document();
    if let Some(refusal) = &document.refusal {
        parts.push(format!("refused: {}", refusal.reason));
    }
    match &round.report.outcome {
        crate::sync::Outcome::UpToDate => parts.push(format!(
            "up to date at {}",
            short(&round.report.remote_commit)
        )),
        crate::sync::Outcome::Taken { .. } => {
            parts.push(format!("took {}", short(&round.report.remote_commit)))
        }
        crate::sync::Outcome::Refused(_) => {}
    }
    if let Some(applied) = &round.applied {
        parts.push(format!(
            "applied: {} built, {} cached, {} failed",
            applied.built, applied.cached, applied.failed
        ));
    }
    if let Some(crate::sync::ApplyOutcome::Failed(e)) = &round.report.apply {
        parts.push(format!("apply failed: {e}"));
    }
    for step in round.deploy.iter().flatten() {
        let stage = step.stage.as_deref().unwrap_or("site");
        parts.push(format!("{stage}: {}", step.result.as_str()));
    }
    parts.join("; ")
}

fn observe(shared: &Shared, round: &Round) {
    let document = round.document();
    let result = serde_plain(&document.result);
    let outcome = serde_plain(&document.outcome);
    // A closed window is one step for the whole site: it counts for each of the site's stages.
    let closed = round.deploy.iter().flatten().any(|step| {
        step.stage.is_none() && matches!(step.result, StepResult::OutsideWindow { .. })
    });
    let closed_stages: Vec<String> = match shared.pipeline.current_workspace() {
        Ok(Some(ws)) if closed => super::pipeline::site_stages(&ws, &shared.site),
        _ => Vec::new(),
    };
    let mut deploys: Vec<DeployObservation> = round
        .deploy
        .iter()
        .flatten()
        .filter_map(|step| {
            let stage = step.stage.as_deref()?;
            let (result, rolled_back) = match &step.result {
                StepResult::Deployed(report) if report.changed() => ("deployed", false),
                StepResult::Deployed(_) => ("unchanged", false),
                StepResult::Skipped(_) => ("skipped", false),
                StepResult::OutsideWindow { .. } => ("outside_window", false),
                StepResult::Failed(e) => ("failed", super::deploy::rolled_back(e)),
            };
            Some(DeployObservation {
                stage,
                result,
                rolled_back,
            })
        })
        .collect();
    deploys.extend(closed_stages.iter().map(|stage| DeployObservation {
        stage,
        result: "outside_window",
        rolled_back: false,
    }));
    let branch = shared.pipeline.options().sync.branch.as_str();
    shared.metrics.round(&RoundObservation {
        result: &result,
        outcome: &outcome,
        finished: SystemTime::now(),
        duration: round.duration,
        revision: round.report.current.as_deref().map(|c| (c, branch)),
        builds: round.applied.as_ref().map(|a| BuildCounts {
            built: a.built as u64,
            cached: a.cached as u64,
            failed: a.failed as u64,
        }),
        deploys: &deploys,
    });
}

/// A round that could not run: counted failed, the revision the site runs unchanged.
fn observe_error(shared: &Shared, duration: Duration) {
    let current = shared.pipeline.state().current_commit().ok().flatten();
    let branch = shared.pipeline.options().sync.branch.as_str();
    shared.metrics.round(&RoundObservation {
        result: "failed",
        outcome: "error",
        finished: SystemTime::now(),
        duration,
        revision: current.as_deref().map(|c| (c, branch)),
        builds: None,
        deploys: &[],
    });
}

/// Asks the site how its stages' containers are, for the health metrics.
fn refresh_health(shared: &Shared) {
    if let Ok(Some(ws)) = shared.pipeline.current_workspace() {
        // Health and drift only: no exec in the containers every `health_every`.
        let stages = site::stage_views(&shared.pipeline, &ws, &shared.site, false);
        shared.metrics.stages(&stages);
    }
}

impl Shared {
    /// The status document, built now: the sync state, the site's stages asked now, the
    /// rounds kept. Blocking (the engine or cluster is asked): call it off the runtime's workers.
    fn status(&self) -> SiteStatus {
        let state = self.pipeline.state().read().unwrap_or_default();
        let master = lock(&self.master).clone();
        let sync = site::sync_view(&self.pipeline, &state, master.as_deref());
        let (project, plan, stages) = match self.pipeline.current_workspace() {
            Ok(Some(ws)) => {
                let stages = site::stage_views(&self.pipeline, &ws, &self.site, true);
                self.metrics.stages(&stages);
                (
                    Some(ws.cookbook.project.name.to_string()),
                    site::plan_view(&ws, &self.site),
                    stages,
                )
            }
            _ => (None, None, Vec::new()),
        };
        let control = lock(&self.control);
        let agent = AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.started_at.clone(),
            interval_seconds: self.interval.as_secs(),
            round_running: control.running,
            next_round_at: control
                .next_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        };
        drop(control);
        SiteStatus {
            schema: SCHEMA,
            project,
            site: self.site.clone(),
            agent,
            sync,
            stages,
            plan,
            rounds: lock(&self.rounds).iter().cloned().collect(),
        }
    }

    /// A push for the followed branch: a round starts at once, or right after the running
    /// one (several pushes meanwhile make one round). True when it coalesced into a round
    /// already asked for.
    fn trigger(&self, trigger: Trigger) -> bool {
        let mut control = lock(&self.control);
        let coalesced = control.pending.is_some();
        if !coalesced {
            control.pending = Some(trigger);
        }
        self.wake.notify_all();
        coalesced
    }

    fn branch(&self) -> &str {
        &self.pipeline.options().sync.branch
    }
}
