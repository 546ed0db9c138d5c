//! The logs of a stage's containers on a Docker engine: `cookbook logs` and the stream of
//! `cookbook dev`.
//!
//! Which containers: the stage's own, found as deploy finds them — by the deploy labels
//! (`labels::SCHEMES`: project, site, stage), never by name alone — its pods' members included.
//! Each is shown under a short name: the cookbook's container (`api`; `api-2` for a second
//! replica), and a pod member under its pod's (`api/proxy`).
//!
//! Following: the engine's events are asked for *from a moment before* the containers are listed
//! (`since`: bollard's event stream is lazy, its request goes out on the first poll, after the
//! list), so a container started in between is not missed; every `start` of a container carrying
//! the stage's labels (a redeploy's replacement, a pod member) gets a stream of its own, from its
//! first line. An engine log stream ends when its container *stops*, so a `start` of a container
//! already followed (a restart policy's restart, a crash loop) that is later than the moment its
//! stream began follows it again, from that start's second (a line the old run wrote in that same
//! second may show twice: the engine's log `since` is whole seconds). The follow ends when the
//! caller's token is cancelled. Lines are split on `\n` per container and stream (the engine's
//! frames need not end on one; bytes are decoded per line, so a character split across frames
//! survives), stdout and stderr stay apart, and a line longer than [`LINE_CAP`] is cut there and
//! sent as a line marked `cut`: output that never writes a newline does not grow without limit.
//! Lines go into a bounded channel: a slow reader slows the engine's streams, nothing piles up.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::engine::{DockerEngine, EngineError};
use crate::labels::{deploy as label, Scheme, SCHEMES};

/// A stage on a site, as the deploy labels name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRef {
    pub project: String,
    pub site: String,
    pub stage: String,
}

impl StageRef {
    /// The `key=value` label filters selecting the stage's objects, one set per label scheme.
    pub fn filters(&self) -> Vec<Vec<String>> {
        SCHEMES
            .iter()
            .map(|s| {
                vec![
                    format!("{}={}", s.project, self.project),
                    format!("{}={}", s.site, self.site),
                    format!("{}={}", s.stage, self.stage),
                ]
            })
            .collect()
    }

    /// The scheme under which `labels` name this stage, if they do.
    pub fn owns(&self, labels: &HashMap<String, String>) -> Option<Scheme> {
        let get = |k: &str| labels.get(k).map(String::as_str);
        SCHEMES.into_iter().find(|s| {
            get(s.project) == Some(self.project.as_str())
                && get(s.site) == Some(self.site.as_str())
                && get(s.stage) == Some(self.stage.as_str())
        })
    }

    /// The short name of one of the stage's containers, from its engine name and labels:
    /// `api`, `api-2` (a second replica), `api/proxy` (a pod member).
    pub fn short_name(&self, engine_name: &str, labels: &HashMap<String, String>) -> String {
        let scheme = self.owns(labels).unwrap_or(SCHEMES[0]);
        let container = labels
            .get(scheme.container)
            .cloned()
            .unwrap_or_else(|| engine_name.to_owned());
        match labels.get(label::POD) {
            Some(pod) => format!("{}/{container}", self.instance_name(pod)),
            None => self.instance_name(engine_name),
        }
    }

    /// `<project>-<site>-<stage>-<container>-<n>` (or an earlier version's site-less name) →
    /// `<container>`, or `<container>-<n>` past the first replica.
    pub fn instance_name(&self, engine_name: &str) -> String {
        let engine_name = engine_name.trim_start_matches('/');
        let with_site = format!("{}-{}-{}-", self.project, self.site, self.stage);
        let without = format!("{}-{}-", self.project, self.stage);
        let rest = engine_name
            .strip_prefix(&with_site)
            .or_else(|| engine_name.strip_prefix(&without))
            .unwrap_or(engine_name);
        match rest.rsplit_once('-') {
            Some((container, "1")) => container.to_owned(),
            Some((_, n)) if n.parse::<u32>().is_ok() => rest.to_owned(),
            _ => rest.to_owned(),
        }
    }
}

/// Which stream of a container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The longest line passed on whole, in bytes; a longer one is cut into lines of this size.
pub const LINE_CAP: usize = 64 * 1024;

/// One line a container wrote (without its newline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The container's short name ([`StageRef::short_name`]).
    pub container: String,
    pub stream: Stream,
    pub text: String,
    /// The container wrote more without a newline: this is its first [`LINE_CAP`] bytes, the
    /// rest follows as the next line.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

/// What to read of each container's log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Keep streaming (and pick up containers started later) until cancelled.
    pub follow: bool,
    /// Only the last `n` lines of each container present at the start (none: all).
    pub tail: Option<u64>,
    /// Only lines since this UNIX time, for containers present at the start.
    pub since: Option<i64>,
    /// The engine's RFC 3339 timestamp before each line.
    pub timestamps: bool,
}

/// One of the stage's containers whose log is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub id: String,
    /// Its short name.
    pub name: String,
}

/// One of a stage's containers as the engine lists it: what `logs` and `exec` need of it.
pub struct Listed {
    pub id: String,
    /// The engine's name, without its leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    /// The scheme its labels name the stage under.
    pub scheme: Scheme,
    /// The engine's state (`running`, `exited`, …).
    pub state: String,
}

impl StageRef {
    /// The stage's containers now (running or not, pod members included), by its labels under
    /// every scheme, each once: listed by label filter, then checked again by [`Self::owns`].
    pub async fn list(&self, engine: &DockerEngine) -> Result<Vec<Listed>, EngineError> {
        let mut out: Vec<Listed> = Vec::new();
        for filter in self.filters() {
            let filters = HashMap::from([("label".to_owned(), filter)]);
            let list = engine
                .client()
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await
                .map_err(|e| engine.classify_error("list containers", e))?;
            for c in list {
                let (Some(id), Some(name)) = (c.id, c.names.and_then(|n| n.into_iter().next()))
                else {
                    continue;
                };
                let labels = c.labels.unwrap_or_default();
                let Some(scheme) = self.owns(&labels) else {
                    continue;
                };
                if !out.iter().any(|l| l.id == id) {
                    out.push(Listed {
                        id,
                        name: name.trim_start_matches('/').to_owned(),
                        labels,
                        scheme,
                        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The stage's containers now (running or not, pod members included), sorted by short name.
pub async fn stage_containers(
    engine: &DockerEngine,
    stage: &StageRef,
) -> Result<Vec<LogSource>, EngineError> {
    let mut out: Vec<LogSource> = stage
        .list(engine)
        .await?
        .into_iter()
        .map(|l| LogSource {
            name: stage.short_name(&l.name, &l.labels),
            id: l.id,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sends the log lines of the stage's containers whose short name `wanted` accepts to `tx`:
/// what they wrote so far (as `query` limits it) and, with `query.follow`, what they and
/// containers started (or restarted) later write, until `cancel`. Returns when every stream ended
/// (without `follow`), when `cancel` is cancelled, or when `tx`'s receiver is gone.
pub async fn stream(
    engine: &DockerEngine,
    stage: &StageRef,
    wanted: &(dyn Fn(&str) -> bool + Sync),
    query: &LogQuery,
    tx: Sender<LogLine>,
    cancel: CancellationToken,
) -> Result<(), EngineError> {
    // From a moment before the list: a container started in between is in one or the other.
    let listed_at = unix_nanos() - EVENTS_LOOKBACK_NANOS;
    let mut events = query
        .follow
        .then(|| started_events(engine, stage, listed_at));
    let present = stage_containers(engine, stage).await?;
    let mut followed = Followed::default();
    let mut tasks = tokio::task::JoinSet::new();
    for source in present.into_iter().filter(|s| wanted(&s.name)) {
        followed.begin(&source.id, unix_nanos());
        let options = logs_options(query, None);
        tasks.spawn(follow_one(engine.clone(), source, options, tx.clone()));
    }
    let Some(events) = events.as_mut() else {
        drain(&mut tasks, &cancel).await;
        return Ok(());
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tx.closed() => break,
            event = events.next() => {
                let Some(event) = event else { break };
                let event = event.map_err(|e| engine.classify_error("engine events", e))?;
                let Some((source, at)) = started(stage, event) else { continue };
                if !wanted(&source.name) || !followed.starts_again(&source.id, at) {
                    continue;
                }
                followed.begin(&source.id, at);
                let options = logs_options(query, Some(at / 1_000_000_000));
                tasks.spawn(follow_one(engine.clone(), source, options, tx.clone()));
            }
        }
    }
    tasks.abort_all();
    Ok(())
}

/// How far before the container list the event subscription starts (the clock read and the
/// engine's may differ by a little; a start seen twice is ignored by [`Followed`]).
const EVENTS_LOOKBACK_NANOS: i64 = 1_000_000_000;

/// The current UNIX time in nanoseconds.
fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The container a `start` event names, if it carries the stage's labels, and when it started
/// (UNIX nanoseconds).
fn started(stage: &StageRef, event: bollard::models::EventMessage) -> Option<(LogSource, i64)> {
    let at = event
        .time_nano
        .or(event.time.map(|t| t.saturating_mul(1_000_000_000)))
        .unwrap_or_else(unix_nanos);
    let actor = event.actor?;
    let (id, labels) = (actor.id?, actor.attributes.unwrap_or_default());
    stage.owns(&labels)?;
    let name = labels.get("name").cloned().unwrap_or_else(|| id.clone());
    let name = stage.short_name(&name, &labels);
    Some((LogSource { id, name }, at))
}

/// The containers followed, each with when its current stream began (UNIX nanoseconds).
#[derive(Debug, Default)]
struct Followed(HashMap<String, i64>);

impl Followed {
    fn begin(&mut self, id: &str, at: i64) {
        self.0.insert(id.to_owned(), at);
    }

    /// Whether a `start` of `id` at `at` needs a stream: a container not followed yet, or one
    /// whose stream ended with it and that started again since (a start replayed from before
    /// its stream began is not one).
    fn starts_again(&self, id: &str, at: i64) -> bool {
        self.0.get(id).is_none_or(|&began| at > began)
    }
}

/// Waits for every stream, or for `cancel`.
async fn drain(tasks: &mut tokio::task::JoinSet<()>, cancel: &CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => { tasks.abort_all(); return; }
            next = tasks.join_next() => if next.is_none() { return },
        }
    }
}

/// The engine's `start` events of containers carrying the stage's current labels (an earlier
/// version's labels are never written again: a container started now carries the current ones).
fn started_events(
    engine: &DockerEngine,
    stage: &StageRef,
    since_nanos: i64,
) -> impl futures_util::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>>
{
    let labels = stage.filters().swap_remove(0);
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["start".to_owned()]),
        ("label".to_owned(), labels),
    ]);
    engine
        .client()
        .events(Some(events_options(filters, since_nanos)))
}

/// The events query: `filters`, from `since_nanos` (the engine takes `seconds.nanoseconds`).
fn events_options(filters: HashMap<String, Vec<String>>, since_nanos: i64) -> EventsOptions {
    let (secs, nanos) = (
        since_nanos.div_euclid(1_000_000_000),
        since_nanos.rem_euclid(1_000_000_000),
    );
    EventsOptions {
        since: Some(format!("{secs}.{nanos:09}")),
        filters: Some(filters),
        ..Default::default()
    }
}

/// How far before its start event a container started while following is read. The engine
/// logs the event a moment after the process may have written its first line, and takes `since`
/// in whole seconds: a line written just before a second boundary that the event falls after
/// would be lost (a container `dev` added showed no first line, once in a CI run). A container
/// restarted within that second may repeat the last lines of its previous run.
const START_MARGIN_SECS: i64 = 1;

/// The engine's log options: a container started while following (`started_at`: UNIX seconds)
/// is read from [`START_MARGIN_SECS`] before that start on, every line of it.
fn logs_options(query: &LogQuery, started_at: Option<i64>) -> LogsOptions {
    let clamp = |t: i64| i32::try_from(t).unwrap_or(if t < 0 { 0 } else { i32::MAX });
    LogsOptions {
        follow: query.follow,
        stdout: true,
        stderr: true,
        since: match started_at {
            Some(at) => clamp(at - START_MARGIN_SECS),
            None => query.since.map_or(0, clamp),
        },
        until: 0,
        timestamps: query.timestamps,
        tail: match (started_at, query.tail) {
            (None, Some(n)) => n.to_string(),
            _ => "all".to_owned(),
        },
    }
}

/// Streams one container's log into `tx`, line by line; ends with the engine's stream (the
/// container stopped or removed, or its log read to the end without following) or when `tx` is
/// closed. A failure to read is the end of that container's stream, not of the others'.
async fn follow_one(
    engine: DockerEngine,
    source: LogSource,
    options: LogsOptions,
    tx: Sender<LogLine>,
) {
    let mut logs = engine.client().logs(&source.id, Some(options));
    let mut split = [Splitter::default(), Splitter::default()];
    let line = |stream, (text, cut)| LogLine {
        container: source.name.clone(),
        stream,
        text,
        cut,
    };
    while let Some(Ok(frame)) = logs.next().await {
        let (stream, bytes) = match frame {
            LogOutput::StdErr { message } => (Stream::Stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, message)
            }
            LogOutput::StdIn { .. } => continue,
        };
        for piece in split[stream as usize].push(&bytes) {
            if tx.send(line(stream, piece)).await.is_err() {
                return;
            }
        }
    }
    for (stream, rest) in [Stream::Stdout, Stream::Stderr].into_iter().zip(split) {
        if let Some(piece) = rest.finish() {
            let _ = tx.send(line(stream, piece)).await;
        }
    }
}

/// One stream's bytes cut into lines: on `\n` (a `\r` before it dropped), or at [`LINE_CAP`]
/// bytes without one (marked cut, at a character boundary). Each line is decoded on its own.
#[derive(Debug, Default)]
struct Splitter {
    partial: Vec<u8>,
}

impl Splitter {
    /// The lines `bytes` completes, each with whether it was cut.
    fn push(&mut self, bytes: &[u8]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.partial.extend_from_slice(chunk);
            while self.partial.len() > LINE_CAP && !self.partial[..=LINE_CAP].contains(&b'\n') {
                let at = char_boundary(&self.partial, LINE_CAP);
                let head: Vec<u8> = self.partial.drain(..at).collect();
                out.push((String::from_utf8_lossy(&head).into_owned(), true));
            }
            if self.partial.last() == Some(&b'\n') {
                let text = String::from_utf8_lossy(&self.partial);
                out.push((text.trim_end_matches(['\n', '\r']).to_owned(), false));
                self.partial.clear();
            }
        }
        out
    }

    /// What is left without a newline at the stream's end.
    fn finish(self) -> Option<(String, bool)> {
        (!self.partial.is_empty())
            .then(|| (String::from_utf8_lossy(&self.partial).into_owned(), false))
    }
}

/// `at`, or the start of the UTF-8 character `at` falls inside (so a cut splits no character).
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut i = at;
    while i > 0 && at - i < 4 && bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80) {
        i -= 1;
    }
    if bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80) || i == 0 {
        at
    } else {
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> StageRef {
        StageRef {
            project: "shop".into(),
            site: "local".into(),
            stage: "dev".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn short_names_say_container_replica_and_pod_member() {
        let s = stage();
        let own = labels(&[
            ("dev.cookbook.project", "shop"),
            ("dev.cookbook.site", "local"),
            ("dev.cookbook.stage", "dev"),
            ("dev.cookbook.container", "api"),
        ]);
        assert_eq!(s.short_name("/shop-local-dev-api-1", &own), "api");
        assert_eq!(s.short_name("shop-local-dev-api-2", &own), "api-2");
        assert_eq!(
            s.short_name("shop-dev-api-1", &own),
            "api",
            "a site-less name"
        );
        let mut member = own.clone();
        member.insert("dev.cookbook.container".into(), "proxy".into());
        member.insert("dev.cookbook.pod".into(), "shop-local-dev-api-1".into());
        assert_eq!(
            s.short_name("shop-local-dev-api-1-sidecar-proxy", &member),
            "api/proxy"
        );
    }

    #[test]
    fn only_the_stages_labels_are_ours() {
        let s = stage();
        let other_stage = labels(&[
            ("dev.cookbook.project", "shop"),
            ("dev.cookbook.site", "local"),
            ("dev.cookbook.stage", "prod"),
        ]);
        assert!(s.owns(&other_stage).is_none());
        let legacy = labels(&[
            ("io.cookbook.project", "shop"),
            ("io.cookbook.site", "local"),
            ("io.cookbook.stage", "dev"),
        ]);
        assert_eq!(s.owns(&legacy), Some(crate::labels::LEGACY));
    }

    #[test]
    fn a_container_started_while_following_is_read_from_its_first_line() {
        let q = LogQuery {
            follow: true,
            tail: Some(5),
            since: Some(1_700_000_000),
            timestamps: false,
        };
        let first = logs_options(&q, None);
        assert_eq!((first.tail.as_str(), first.since), ("5", 1_700_000_000));
        let later = logs_options(&q, Some(1_800_000_000));
        assert_eq!(
            (later.tail.as_str(), later.since),
            ("all", 1_800_000_000 - START_MARGIN_SECS as i32)
        );
    }

    /// The events are asked for from a moment before the list (a lazy stream's request goes
    /// out after it), as `seconds.nanoseconds`.
    #[test]
    fn events_are_asked_for_from_before_the_list() {
        let options = events_options(HashMap::new(), 1_700_000_000_000_000_042);
        assert_eq!(options.since.as_deref(), Some("1700000000.000000042"));
    }

    /// A restart of a followed container (its stream ended when it stopped) is followed again;
    /// a start replayed from before its stream began is not.
    #[test]
    fn a_restarted_container_is_followed_again_and_a_replayed_start_is_not() {
        let mut followed = Followed::default();
        assert!(followed.starts_again("a", 10), "not followed yet");
        followed.begin("a", 100);
        assert!(
            !followed.starts_again("a", 90),
            "started before its stream began"
        );
        assert!(!followed.starts_again("a", 100));
        assert!(followed.starts_again("a", 150), "a restart");
    }

    #[test]
    fn lines_split_across_frames_keep_their_characters() {
        let mut s = Splitter::default();
        let e = "é".as_bytes();
        assert!(s.push(&[b'a', e[0]]).is_empty());
        let lines = s.push(&[e[1], b'\r', b'\n', b'b', b'\n', b'c']);
        assert_eq!(
            lines,
            vec![("aé".to_owned(), false), ("b".to_owned(), false)]
        );
        assert_eq!(s.finish(), Some(("c".to_owned(), false)));
    }

    /// Output without a newline does not grow without limit: it is cut at `LINE_CAP` bytes
    /// (at a character boundary), each cut marked.
    #[test]
    fn a_line_without_end_is_cut_at_the_cap() {
        let mut s = Splitter::default();
        let mut lines = Vec::new();
        for _ in 0..5 {
            lines.extend(s.push(&vec![b'x'; LINE_CAP / 2 + 1]));
        }
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|(t, cut)| *cut && t.len() == LINE_CAP));
        assert!(s.partial.len() <= LINE_CAP);
        let mut s = Splitter::default();
        let mut bytes = vec![b'x'; LINE_CAP - 1];
        bytes.extend("é\n".as_bytes());
        let lines = s.push(&bytes);
        assert_eq!(
            lines[0],
            ("x".repeat(LINE_CAP - 1), true),
            "not inside the é"
        );
        assert_eq!(lines[1], ("é".to_owned(), false));
    }
}
