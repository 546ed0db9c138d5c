//! The logs of a stage's containers on a Docker engine: `cookbook logs` and the stream of
//! `cookbook dev`.
//!
//! Which containers: the stage's own, found as deploy finds them — by the deploy labels
//! (`labels::SCHEMES`: project, site, stage), never by name alone — its pods' members included.
//! Each is shown under a short name: the cookbook's container (`api`; `api-2` for a second
//! replica), and a pod member under its pod's (`api/proxy`).
//!
//! Following: the engine's events are subscribed to *before* the containers are listed, so a
//! container started in between is not missed; every `start` of a container carrying the stage's
//! labels (a redeploy's replacement, a pod member) gets a stream of its own, from its first line.
//! A stream ends when its container is removed; the follow ends when the caller's token is
//! cancelled. Lines are split on `\n` per container and stream (the engine's frames need not end
//! on one), and stdout and stderr stay apart.

use std::collections::{BTreeSet, HashMap};

use bollard::container::LogOutput;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
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

/// One line a container wrote (without its newline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The container's short name ([`StageRef::short_name`]).
    pub container: String,
    pub stream: Stream,
    pub text: String,
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

/// The stage's containers now (running or not, pod members included), sorted by short name.
pub async fn stage_containers(
    engine: &DockerEngine,
    stage: &StageRef,
) -> Result<Vec<LogSource>, EngineError> {
    let mut out: Vec<LogSource> = Vec::new();
    for filter in stage.filters() {
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
            let (Some(id), Some(name)) = (c.id, c.names.and_then(|n| n.into_iter().next())) else {
                continue;
            };
            let labels = c.labels.unwrap_or_default();
            if stage.owns(&labels).is_some() && !out.iter().any(|s| s.id == id) {
                let name = stage.short_name(&name, &labels);
                out.push(LogSource { id, name });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sends the log lines of the stage's containers whose short name `wanted` accepts to `tx`:
/// what they wrote so far (as `query` limits it) and, with `query.follow`, what they and
/// containers started later write, until `cancel`. Returns when every stream ended (without
/// `follow`), when `cancel` is cancelled, or when `tx`'s receiver is gone.
pub async fn stream(
    engine: &DockerEngine,
    stage: &StageRef,
    wanted: &(dyn Fn(&str) -> bool + Sync),
    query: &LogQuery,
    tx: UnboundedSender<LogLine>,
    cancel: CancellationToken,
) -> Result<(), EngineError> {
    // Subscribed before the list: a container started in between is in one or the other.
    let mut events = query.follow.then(|| started_events(engine, stage));
    let present = stage_containers(engine, stage).await?;
    let mut followed: BTreeSet<String> = BTreeSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for source in present.into_iter().filter(|s| wanted(&s.name)) {
        followed.insert(source.id.clone());
        let options = logs_options(query, false);
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
                let Some(actor) = event.actor else { continue };
                let (Some(id), labels) = (actor.id, actor.attributes.unwrap_or_default()) else {
                    continue;
                };
                if stage.owns(&labels).is_none() || followed.contains(&id) {
                    continue;
                }
                let name = labels.get("name").cloned().unwrap_or_else(|| id.clone());
                let source = LogSource { name: stage.short_name(&name, &labels), id };
                if wanted(&source.name) {
                    followed.insert(source.id.clone());
                    let options = logs_options(query, true);
                    tasks.spawn(follow_one(engine.clone(), source, options, tx.clone()));
                }
            }
        }
    }
    tasks.abort_all();
    Ok(())
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
) -> impl futures_util::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>>
{
    let labels = stage.filters().swap_remove(0);
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["start".to_owned()]),
        ("label".to_owned(), labels),
    ]);
    engine.client().events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }))
}

/// The engine's log options: a container started while following is read from its first line.
fn logs_options(query: &LogQuery, started_later: bool) -> LogsOptions {
    let clamp = |t: i64| i32::try_from(t).unwrap_or(if t < 0 { 0 } else { i32::MAX });
    LogsOptions {
        follow: query.follow,
        stdout: true,
        stderr: true,
        since: if started_later {
            0
        } else {
            query.since.map_or(0, clamp)
        },
        until: 0,
        timestamps: query.timestamps,
        tail: match (started_later, query.tail) {
            (false, Some(n)) => n.to_string(),
            _ => "all".to_owned(),
        },
    }
}

/// Streams one container's log into `tx`, line by line; ends with the engine's stream (the
/// container removed, or its log read to the end without following) or when `tx` is closed.
/// A failure to read is the end of that container's stream, not of the others'.
async fn follow_one(
    engine: DockerEngine,
    source: LogSource,
    options: LogsOptions,
    tx: UnboundedSender<LogLine>,
) {
    let mut logs = engine.client().logs(&source.id, Some(options));
    let mut partial = [String::new(), String::new()];
    while let Some(Ok(frame)) = logs.next().await {
        let (stream, bytes) = match frame {
            LogOutput::StdErr { message } => (Stream::Stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, message)
            }
            LogOutput::StdIn { .. } => continue,
        };
        let buffer = &mut partial[stream as usize];
        buffer.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(at) = buffer.find('\n') {
            let text: String = buffer.drain(..=at).collect();
            let line = LogLine {
                container: source.name.clone(),
                stream,
                text: text.trim_end_matches(['\n', '\r']).to_owned(),
            };
            if tx.send(line).is_err() {
                return;
            }
        }
    }
    for (i, rest) in partial.into_iter().enumerate() {
        if !rest.is_empty() {
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let _ = tx.send(LogLine {
                container: source.name.clone(),
                stream,
                text: rest,
            });
        }
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
        let first = logs_options(&q, false);
        assert_eq!((first.tail.as_str(), first.since), ("5", 1_700_000_000));
        let later = logs_options(&q, true);
        assert_eq!((later.tail.as_str(), later.since), ("all", 0));
    }
}
