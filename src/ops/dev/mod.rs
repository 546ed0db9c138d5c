//! `cookbook dev`: the developer loop on a Docker site's stage — build, deploy, watch, rebuild
//! what moved, redeploy, and stream the logs, until a stop request.
//!
//! A round is the flows the commands run, nothing of its own: `ops::apply::apply` (the first
//! round the site's containers, later rounds only those whose input hash moved, with what they
//! need) then `ops::deploy::deploy` of the stage (an unchanged container is not restarted: deploy
//! converges by config hash). The images stay in the engine that builds them (`apply
//! --no-push`) when the site's engine is that engine; otherwise they are pushed, as the site
//! must pull them. What moved is decided by the input hashes (`Workspace::fingerprints`, through
//! the stat cache: milliseconds), never by which file an event named: an edit that changes no
//! input (a file `.dockerignore` leaves out) rebuilds nothing.
//!
//! Watching (`watch`): notify's recommended watcher over every tree and file the stage's
//! containers' contexts copy (as their fingerprints' context plans list them) and the cookbook
//! file — a file through its directory, so that an editor's save by rename is seen every time —,
//! set again after every look at the sources (a container the cookbook adds is watched from then
//! on); an event batch ends [`DEBOUNCE`] after its last *file* event (log lines share the channel
//! but never extend it: a chatty container does not hold an edit back). The stop request is
//! looked at on every message, so the first Ctrl-C is seen however busy the channel is.
//! `.cookbook/`, `.git` and the lock are ignored (the loop writes the first two itself).
//!
//! Logs: the stage's containers' logs are followed on the runtime from the start
//! (`ops::logs::spawn_follow`: a replaced container is picked up from its first line) and handed
//! to the reporter. While a round runs nobody reads them: at most [`LOG_BACKLOG`] lines wait, the
//! rest are dropped and counted, and the count is reported where the gap is
//! ([`DevEvent::LogsDropped`]). A failed build or deploy is reported and the loop goes on; the
//! next edit tries again. A stop request (Ctrl-C) ends the loop with `Ok`: the stage keeps
//! running, or with `down` is taken down by `ops::down` (without its persistent volumes), so it is
//! recorded as `cookbook down` records it: a `down` event, the release record marked down. This
//! prints nothing: progress goes to the [`DevReporter`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::apply::{ApplyOptions, RunResult};
use super::deploy::DeployOptions;
use super::down::DownOptions;
pub use super::down::DownReport;
use super::logs::LogSink;
use super::stop::Stop;
use super::{CookbookFile, Workspace};
use crate::apply::ContainerOutcome;
use crate::engine::Selector;
use crate::error::Error;
use crate::model::lifecycle::Target;
use crate::model::Name;

mod watch;
use watch::Watched;

/// How long an event batch waits for quiet before a round starts (an editor's save is several
/// events: a temp file, a rename, an attribute change).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// How often the loop looks at the stop request while nothing happens.
const POLL: Duration = Duration::from_millis(100);

/// At most this many seconds for a round's deploy to stop a container it replaces: the loop does
/// not wait out a whole `stop_grace` (Docker's 10 s for a process that ignores SIGTERM, as a
/// shell or `python app.py` as PID 1 does). `cookbook down` and `dev --down` keep the grace.
pub const DEV_STOP_CAP: u32 = 1;

/// How many log lines may wait while a round runs; later ones are dropped and counted.
pub const LOG_BACKLOG: usize = 10_000;

/// `cookbook dev`'s options.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub site: String,
    pub stage: String,
    /// Tear the stage down when stopped.
    pub down: bool,
    /// Stream the containers' logs.
    pub logs: bool,
    /// The engine builds run on (`--context`), and a `host: env` site's.
    pub engine: Selector,
}

/// What a round did, for the reporter.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DevEvent {
    /// The loop is watching these roots (relative to the cookbook's directory); `push`: images
    /// go to the registry (the site's engine is not the one that builds).
    Watching { roots: Vec<String>, push: bool },
    /// A round ended with the stage running: `containers` were rebuilt (the first round: every
    /// container applied) for `paths`; `started` are the containers deploy (re)created.
    Running {
        first: bool,
        containers: Vec<String>,
        paths: Vec<String>,
        built_seconds: f64,
        /// From the first event of the edit (the first round: its start) to the stage running.
        running_seconds: f64,
        started: Vec<String>,
    },
    /// A build failed: nothing was deployed; the loop waits for the next edit.
    BuildFailed {
        containers: Vec<String>,
        paths: Vec<String>,
        message: String,
    },
    /// The deploy failed (rolled back as `deploy` rolls back); the loop goes on.
    DeployFailed { message: String },
    /// Log lines were dropped while nobody read them (a round ran): `lines` of them, after the
    /// lines shown before this.
    LogsDropped { lines: usize },
    /// A source could not be watched (the system's watch limit, a directory gone meanwhile):
    /// edits there are not seen until a later look at the sources watches it.
    WatchFailed { message: String },
    /// The stage was torn down (`down`), as `cookbook down` does it and records it.
    TornDown(DownReport),
}

/// Receives the loop's events and its stage's log lines (from the runtime's threads).
pub trait DevReporter: LogSink {
    fn event(&self, event: &DevEvent);
}

/// What a `dev` session did.
#[derive(Debug, Clone, Serialize)]
pub struct DevReport {
    pub rounds: usize,
    pub failed_rounds: usize,
    /// What `down` removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn_down: Option<DownReport>,
}

/// `cookbook dev`: runs until `stop` is requested; `Ok` then (the stage left running, or torn
/// down with `down`). An `Err` is a loop that could not start (no such site, not a Docker site,
/// no engine, nothing to watch).
pub fn dev(
    file: CookbookFile,
    opts: &DevOptions,
    reporter: Arc<dyn DevReporter>,
    stop: &Stop,
) -> Result<DevReport, Error> {
    let ws = open(&file, opts)?;
    let site_engine = docker_site(&ws, &opts.site)?;
    let push = site_engine != opts.engine;
    let stage = super::logs::stage_ref_of(&ws, &opts.site, &opts.stage)?;
    let (tx, events) = std::sync::mpsc::channel();
    let inbox = Inbox {
        events,
        backlog: Arc::new(Backlog::new(LOG_BACKLOG)),
    };
    let to_loop = tx.clone();
    let mut watched = Watched::new(move |event| {
        let _ = to_loop.send(Input::Fs(event));
    })?;
    let (_, roots) = look(&ws, &opts.site)?;
    watched.set(&roots)?;
    let base = std::fs::canonicalize(ws.base_dir()).unwrap_or_else(|_| ws.base_dir().into());
    reporter.event(&watching(&watched, &base, push));
    let follow = tokio_util::sync::CancellationToken::new();
    if opts.logs {
        let names: Vec<String> = (ws.cookbook.site_deploy_set(&opts.site))
            .unwrap_or_default()
            .iter()
            .map(Name::to_string)
            .collect();
        reporter.start(&names);
        let sink: Arc<dyn LogSink> = Arc::new(ChannelSink(tx, inbox.backlog.clone()));
        super::logs::spawn_follow(site_engine, stage, sink, follow.clone())?;
    }
    let mut session = Session {
        file,
        opts,
        reporter: reporter.as_ref(),
        stop,
        push,
        watched,
        hashes: BTreeMap::new(),
        report: DevReport {
            rounds: 0,
            failed_rounds: 0,
            torn_down: None,
        },
    };
    session.round(None, Vec::new(), Instant::now());
    session.watch_loop(&inbox, &base);
    drop(session.watched);
    follow.cancel();
    while let Ok(input) = inbox.events.try_recv() {
        if let Input::Log(line) = input {
            inbox.shown(&line, reporter.as_ref());
        }
    }
    let mut report = session.report;
    if opts.down {
        let down = DownOptions {
            site: opts.site.clone(),
            stage: opts.stage.clone(),
            volumes: false,
        };
        let torn = super::down::down(&open(&session.file, opts)?, &down)?;
        reporter.event(&DevEvent::TornDown(torn.clone()));
        report.torn_down = Some(torn);
    }
    Ok(report)
}

/// What the loop's thread waits on: the watcher's events and the followed log lines (handed to
/// the reporter from this thread only: the CLI's streams are locked by its main thread).
enum Input {
    Fs(notify::Result<notify::Event>),
    Log(super::logs::LogLine),
}

/// The follow task's end of the loop's channel: a line is queued only while the backlog has
/// room (file events are never dropped: they go straight into the channel).
struct ChannelSink(std::sync::mpsc::Sender<Input>, Arc<Backlog>);

impl LogSink for ChannelSink {
    fn line(&self, line: &super::logs::LogLine) {
        if self.1.admit() && self.0.send(Input::Log(line.clone())).is_err() {
            self.1.taken();
        }
    }
}

/// The bound on the log lines waiting in the loop's channel, and the count of those dropped.
#[derive(Debug)]
struct Backlog {
    capacity: usize,
    queued: AtomicUsize,
    dropped: AtomicUsize,
}

impl Backlog {
    fn new(capacity: usize) -> Backlog {
        Backlog {
            capacity,
            queued: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Whether one more line may wait; if not, it is counted as dropped.
    fn admit(&self) -> bool {
        let room = self
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < self.capacity).then_some(q + 1)
            })
            .is_ok();
        if !room {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        room
    }

    /// A line left the channel; the lines dropped since the last report when it was the last
    /// one waiting (the gap is right after it).
    fn taken(&self) -> usize {
        if self.queued.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.dropped.swap(0, Ordering::SeqCst)
        } else {
            0
        }
    }
}

/// The loop's end of the channel.
struct Inbox {
    events: Receiver<Input>,
    backlog: Arc<Backlog>,
}

impl Inbox {
    /// Hands a received line to the reporter, then the count of lines dropped after it, if any.
    fn shown(&self, line: &super::logs::LogLine, reporter: &dyn DevReporter) {
        reporter.line(line);
        let lines = self.backlog.taken();
        if lines > 0 {
            reporter.event(&DevEvent::LogsDropped { lines });
        }
    }
}

/// The loop's state between rounds.
struct Session<'a> {
    file: CookbookFile,
    opts: &'a DevOptions,
    reporter: &'a dyn DevReporter,
    stop: &'a Stop,
    push: bool,
    /// What is watched: what the stage's containers were made of at the last look.
    watched: Watched,
    /// The input hashes of the last round that ran (what an edit is compared with).
    hashes: Hashes,
    report: DevReport,
}

impl Session<'_> {
    /// Waits for edits until the stop request; each batch that moves an input hash is a round.
    fn watch_loop(&mut self, inbox: &Inbox, base: &Path) {
        while !self.stop.requested() {
            let watched = &self.watched;
            let Some((first, paths)) =
                batch(inbox, self.stop, self.reporter, |p| watched.covers(p))
            else {
                continue;
            };
            self.watched.recheck(&paths);
            let moved = match self.moved(base) {
                Ok(moved) => moved,
                Err(e) => {
                    let paths = paths.iter().map(|p| relative(base, p)).collect();
                    self.failed_build(Vec::new(), paths, e.to_string());
                    continue;
                }
            };
            if moved.0.is_empty() {
                continue;
            }
            let paths = paths.iter().map(|p| relative(base, p)).collect();
            self.round(Some(moved), paths, first);
        }
    }

    /// The containers whose input hash differs from the last round's, and the hashes now; the
    /// watch is set to what they are made of now (reported when that changed).
    fn moved(&mut self, base: &Path) -> Result<(Vec<String>, Hashes), Error> {
        let ws = open(&self.file, self.opts)?;
        let (now, roots) = look(&ws, &self.opts.site)?;
        match self.watched.set(&roots) {
            Ok(true) => self
                .reporter
                .event(&watching(&self.watched, base, self.push)),
            Ok(false) => {}
            // The loop goes on with what it watches; the next look tries again.
            Err(e) => self.reporter.event(&DevEvent::WatchFailed {
                message: e.to_string(),
            }),
        }
        let moved = now
            .iter()
            .filter(|(name, hash)| self.hashes.get(*name) != Some(*hash))
            .map(|(name, _)| name.to_string())
            .collect();
        Ok((moved, now))
    }

    /// Applies `moved` (none: everything the stage runs), then deploys the stage. The hashes
    /// recorded for the next comparison are those the round started from (an edit made while it
    /// builds is the next round's); the first round's, once its bases are pinned.
    fn round(&mut self, moved: Option<(Vec<String>, Hashes)>, paths: Vec<String>, since: Instant) {
        self.report.rounds += 1;
        let first = moved.is_none();
        let (containers, started_from) = match moved {
            Some((containers, hashes)) => (containers, Some(hashes)),
            None => (Vec::new(), None),
        };
        let built = Instant::now();
        let applied = self.apply(&containers);
        let built_seconds = built.elapsed().as_secs_f64();
        let built_names = match applied {
            Ok(Some(names)) => names,
            Ok(None) => return,
            Err(message) => return self.failed_build(containers, paths, message),
        };
        let deployed = open(&self.file, self.opts).and_then(|ws| {
            let hashes = match started_from {
                Some(hashes) => hashes,
                None => look(&ws, &self.opts.site)?.0,
            };
            let report = super::deploy::deploy(&ws, &self.deploy_options(), self.stop)?;
            Ok((report, hashes))
        });
        match deployed {
            Ok((report, hashes)) => {
                self.hashes = hashes;
                self.reporter.event(&DevEvent::Running {
                    first,
                    containers: if first { built_names } else { containers },
                    paths,
                    built_seconds,
                    running_seconds: since.elapsed().as_secs_f64(),
                    started: report.started,
                });
            }
            Err(_) if self.stop.requested() => {}
            Err(e) => {
                self.report.failed_rounds += 1;
                let message = e.to_string();
                self.reporter.event(&DevEvent::DeployFailed { message });
            }
        }
    }

    /// `Ok(Some(containers applied))`; `Ok(None)`: stopped; `Err(why)`: a build failed.
    fn apply(&self, containers: &[String]) -> Result<Option<Vec<String>>, String> {
        let ws = open(&self.file, self.opts).map_err(|e| e.to_string())?;
        let containers = if containers.is_empty() {
            stage_plan(&ws, &self.opts.site)
                .map_err(|e| e.to_string())?
                .order()
                .map(Name::to_string)
                .collect()
        } else {
            containers.to_vec()
        };
        let options = ApplyOptions {
            containers,
            push: self.push,
            engine: self.opts.engine.clone(),
            ..ApplyOptions::default()
        };
        let summary = super::apply::apply(&ws, &options, &Quiet, self.stop.token())
            .map_err(|e| e.to_string())?;
        match summary.result {
            RunResult::Ok => Ok(Some(
                summary.containers.keys().map(Name::to_string).collect(),
            )),
            RunResult::Cancelled => Ok(None),
            RunResult::Failed | RunResult::Error => Err(failure_text(&summary)),
        }
    }

    fn failed_build(&mut self, containers: Vec<String>, paths: Vec<String>, message: String) {
        self.report.failed_rounds += 1;
        self.reporter.event(&DevEvent::BuildFailed {
            containers,
            paths,
            message,
        });
    }

    fn deploy_options(&self) -> DeployOptions {
        DeployOptions {
            site: self.opts.site.clone(),
            stage: self.opts.stage.clone(),
            release: None,
            force_conflicts: false,
            require_attestations: None,
            stop_cap: Some(DEV_STOP_CAP),
        }
    }
}

/// Progress of the apply inside a round: the round's event says what came of it.
struct Quiet;

impl super::apply::Reporter for Quiet {
    fn event(&self, _event: super::apply::Event<'_>) {}
}

/// What a failed apply says: each failed container's reason and the end of its build log.
fn failure_text(summary: &super::apply::ApplySummary) -> String {
    let mut text: Vec<String> = summary.error.iter().cloned().collect();
    for (name, c) in &summary.containers {
        if let ContainerOutcome::Failed { reason } = &c.outcome {
            text.push(format!("{name}: {reason}"));
            let tail = c.log.len().saturating_sub(10);
            text.extend(c.log[tail..].iter().map(|l| format!("  {l}")));
        }
    }
    text.join("\n")
}

/// The workspace, reopened (the lock and the cookbook move between rounds).
fn open(file: &CookbookFile, opts: &DevOptions) -> Result<Workspace, Error> {
    let mut ws = Workspace::open(file.clone())?;
    ws.engine = opts.engine.clone();
    Ok(ws)
}

/// The engine of `site`, which must be a Docker site.
fn docker_site(ws: &Workspace, site: &str) -> Result<Selector, Error> {
    match super::logs::site_target(ws, site)? {
        Target::Docker(spec) => Ok(Selector::from_spec(&spec, ws.base_dir(), &ws.engine)),
        Target::Kubernetes(_) => Err(Error::Usage {
            message: format!(
                "site `{site}` is a Kubernetes cluster: `cookbook dev` runs a Docker site's stage"
            ),
            help: Some(
                "give the loop a site whose target is `docker` (e.g. a local engine: \
                        \"target\": {\"docker\": {\"host\": \"env\"}})"
                    .to_owned(),
            ),
        }),
    }
}

/// The plan of what the site's stages run: its containers, what they depend on and their pods'
/// members (`Cookbook::site_deploy_set`), with everything those are built from.
fn stage_plan(ws: &Workspace, site: &str) -> Result<crate::graph::Plan, Error> {
    let set = ws.cookbook.site_deploy_set(site).unwrap_or_default();
    Ok(ws.plan.restrict(&set))
}

/// Each container's input hash.
type Hashes = BTreeMap<Name, String>;

/// What the stage's containers are made of now: the input hash of each one (as the lock's pins
/// make it), and the roots to watch — every directory and file their contexts copy, and the
/// cookbook file, absolute and resolved as the watcher names what changed, none inside another.
fn look(ws: &Workspace, site: &str) -> Result<(Hashes, Vec<PathBuf>), Error> {
    let plan = stage_plan(ws, site)?;
    let fingerprints = ws.fingerprints(&plan)?;
    let base = ws.base_dir();
    let mut roots = vec![ws.path().to_path_buf()];
    // A symlinked cookbook: the link's own path too, so a save by rename there is seen.
    let written = std::path::absolute(ws.path()).ok();
    for f in fingerprints.values() {
        roots.extend(f.context.trees.iter().map(|t| t.source.under(base)));
        roots.extend(f.context.files.iter().map(|(_, p)| p.under(base)));
    }
    for root in &mut roots {
        if let Ok(real) = std::fs::canonicalize(&*root) {
            *root = real;
        }
    }
    roots.extend(written);
    roots.sort();
    roots.dedup();
    // A root inside another is watched through it.
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o) && o.is_dir()));
    let hashes = fingerprints
        .into_iter()
        .map(|(name, f)| (name, f.input_hash))
        .collect();
    Ok((hashes, roots))
}

/// The event that says what the loop watches.
fn watching(watched: &Watched, base: &Path, push: bool) -> DevEvent {
    DevEvent::Watching {
        roots: watched.roots().iter().map(|r| relative(base, r)).collect(),
        push,
    }
}

/// The next batch of relevant changes: waits for a change, then collects until [`DEBOUNCE`]
/// passes after the last one (log lines are shown meanwhile and do not extend it). `None`:
/// stopped (looked at on every message), or the channel closed.
fn batch(
    inbox: &Inbox,
    stop: &Stop,
    reporter: &dyn DevReporter,
    covers: impl Fn(&Path) -> bool,
) -> Option<(Instant, Vec<PathBuf>)> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut first = None;
    let mut deadline: Option<Instant> = None;
    loop {
        if stop.requested() {
            return None;
        }
        let wait = match deadline {
            Some(at) if Instant::now() >= at => break,
            Some(at) => at - Instant::now(),
            None => POLL,
        };
        match inbox.events.recv_timeout(wait) {
            Ok(Input::Log(line)) => inbox.shown(&line, reporter),
            Ok(Input::Fs(Ok(event))) if relevant(&event.kind) => {
                let before = paths.len();
                paths.extend(event.paths.into_iter().filter(|p| !ignored(p) && covers(p)));
                if paths.len() > before {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    deadline = Some(now + DEBOUNCE);
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
    paths.sort();
    paths.dedup();
    first.map(|at| (at, paths))
}

/// A change to content or names (reading a file — as hashing and builds do — is not one).
fn relevant(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Paths the loop never reacts to: the state directory, git's, the lock and its temp siblings.
fn ignored(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c == ".cookbook" || c == ".git" || c.starts_with("cookbook.lock")
    })
}

/// `path` relative to `base` when inside it, as `/`-separated text.
fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    let text = rel.to_string_lossy().replace('\\', "/");
    if text.is_empty() {
        ".".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loops_own_writes_are_ignored() {
        assert!(ignored(Path::new("/p/.cookbook/stat-cache-v3-x.bin")));
        assert!(ignored(Path::new("/p/.git/index")));
        assert!(ignored(Path::new("/p/cookbook.lock")));
        assert!(ignored(Path::new("/p/cookbook.lock.tmp123")));
        assert!(!ignored(Path::new("/p/services/api/app.py")));
    }

    #[test]
    fn reading_is_not_a_change() {
        use notify::event::{AccessKind, ModifyKind};
        assert!(!relevant(&notify::EventKind::Access(AccessKind::Any)));
        assert!(relevant(&notify::EventKind::Modify(ModifyKind::Any)));
    }

    /// Counts what it is handed.
    #[derive(Default)]
    struct Counting {
        lines: AtomicUsize,
        dropped: std::sync::Mutex<Vec<usize>>,
    }
    impl LogSink for Counting {
        fn line(&self, _: &super::super::logs::LogLine) {
            self.lines.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl DevReporter for Counting {
        fn event(&self, event: &DevEvent) {
            if let DevEvent::LogsDropped { lines } = event {
                self.dropped.lock().unwrap().push(*lines);
            }
        }
    }

    fn inbox(capacity: usize) -> (std::sync::mpsc::Sender<Input>, Inbox) {
        let (tx, events) = std::sync::mpsc::channel();
        let backlog = Arc::new(Backlog::new(capacity));
        (tx, Inbox { events, backlog })
    }

    fn change(p: &str) -> Input {
        Input::Fs(Ok(notify::Event::new(notify::EventKind::Modify(
            notify::event::ModifyKind::Any,
        ))
        .add_path(PathBuf::from(p))))
    }

    fn line(text: &str) -> super::super::logs::LogLine {
        super::super::logs::LogLine {
            container: "api".into(),
            stream: super::super::logs::Stream::Stdout,
            text: text.into(),
            cut: false,
        }
    }

    #[test]
    fn a_batch_ends_after_quiet_and_names_each_path_once() {
        let (tx, inbox) = inbox(LOG_BACKLOG);
        tx.send(change("/p/a.txt")).unwrap();
        tx.send(change("/p/.cookbook/x")).unwrap();
        tx.send(change("/p/a.txt")).unwrap();
        tx.send(change("/p/b.txt")).unwrap();
        let (_, paths) = batch(&inbox, &Stop::new(), &Counting::default(), |_| true).unwrap();
        assert_eq!(
            paths,
            vec![PathBuf::from("/p/a.txt"), PathBuf::from("/p/b.txt")]
        );
    }

    /// A change the watch does not cover (another file in a watched file's directory) neither
    /// opens a batch nor joins one.
    #[test]
    fn a_change_outside_the_sources_is_not_one() {
        let (tx, inbox) = inbox(LOG_BACKLOG);
        tx.send(change("/p/README.md")).unwrap();
        tx.send(change("/p/cookbook.json")).unwrap();
        tx.send(change("/p/notes.txt")).unwrap();
        let covers = |p: &Path| p == Path::new("/p/cookbook.json");
        let (_, paths) = batch(&inbox, &Stop::new(), &Counting::default(), covers).unwrap();
        assert_eq!(paths, vec![PathBuf::from("/p/cookbook.json")]);
        tx.send(change("/p/README.md")).unwrap();
        drop(tx);
        assert!(batch(&inbox, &Stop::new(), &Counting::default(), covers).is_none());
    }

    /// A container logging without pause on the loop's channel, through the sink the follow
    /// task uses, until `enough` is set or it has sent `limit` lines (then `exhausted`).
    struct Flood {
        enough: Arc<std::sync::atomic::AtomicBool>,
        exhausted: Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Flood {
        fn start(tx: std::sync::mpsc::Sender<Input>, backlog: Arc<Backlog>) -> Flood {
            let enough = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let exhausted = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (e, x) = (enough.clone(), exhausted.clone());
            let thread = std::thread::spawn(move || {
                let sink = ChannelSink(tx, backlog);
                for _ in 0..20_000 {
                    if e.load(Ordering::SeqCst) {
                        return;
                    }
                    sink.line(&line("busy"));
                    std::thread::sleep(Duration::from_millis(1));
                }
                x.store(true, Ordering::SeqCst);
            });
            Flood {
                enough,
                exhausted,
                thread,
            }
        }

        /// Whether the flood was still going when the caller got its answer.
        fn stop(self) -> bool {
            let going = !self.exhausted.load(Ordering::SeqCst);
            self.enough.store(true, Ordering::SeqCst);
            self.thread.join().unwrap();
            going
        }
    }

    /// An edit starts a round however much a container logs: log lines do not extend the batch.
    #[test]
    fn log_lines_do_not_hold_an_edit_back() {
        let (tx, inbox) = inbox(LOG_BACKLOG);
        tx.send(change("/p/a.txt")).unwrap();
        let flood = Flood::start(tx, inbox.backlog.clone());
        let reporter = Counting::default();
        let got = batch(&inbox, &Stop::new(), &reporter, |_| true);
        assert!(flood.stop(), "the batch ended only when the logging did");
        assert_eq!(got.unwrap().1, vec![PathBuf::from("/p/a.txt")]);
    }

    /// The first stop request is seen while lines keep arriving and no batch is open.
    #[test]
    fn a_stop_is_seen_while_logs_arrive() {
        let (tx, inbox) = inbox(LOG_BACKLOG);
        let flood = Flood::start(tx, inbox.backlog.clone());
        let stop = Stop::new();
        stop.request(2);
        let got = batch(&inbox, &stop, &Counting::default(), |_| true);
        assert!(
            flood.stop(),
            "the stop was seen only when the logging ended"
        );
        assert!(got.is_none());
    }

    /// Lines beyond the backlog are dropped, and their count is reported after the last line
    /// that waited; file events are never dropped.
    #[test]
    fn lines_beyond_the_backlog_are_dropped_and_counted() {
        let (tx, inbox) = inbox(3);
        let sink = ChannelSink(tx.clone(), inbox.backlog.clone());
        for n in 0..8 {
            sink.line(&line(&n.to_string()));
        }
        tx.send(change("/p/a.txt")).unwrap();
        let reporter = Counting::default();
        let (_, paths) = batch(&inbox, &Stop::new(), &reporter, |_| true).unwrap();
        assert_eq!(paths, vec![PathBuf::from("/p/a.txt")]);
        assert_eq!(reporter.lines.load(Ordering::SeqCst), 3);
        assert_eq!(*reporter.dropped.lock().unwrap(), vec![5]);
        sink.line(&line("after"));
        assert!(
            matches!(inbox.events.try_recv(), Ok(Input::Log(_))),
            "room again"
        );
    }

    #[test]
    fn relative_paths_are_slash_separated_from_the_base() {
        assert_eq!(relative(Path::new("/p"), Path::new("/p/s/a.py")), "s/a.py");
        assert_eq!(relative(Path::new("/p"), Path::new("/p")), ".");
    }
}
