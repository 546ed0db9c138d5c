//! `cookbook logs`: the logs of a site's stage's containers, each line under its container's
//! short name (`api`, `api/proxy` for a pod member), stdout and stderr kept apart.
//!
//! The flow: the stage as `status` sees it (`deploy::desired` over the published lock: which
//! containers, pod members included, and so the names a `CONTAINER` argument may give), then the
//! Docker edge's streams (`deploy::docker::logs`), found by the deploy labels. Lines go to a
//! [`LogSink`] the caller owns (the CLI renders them; this prints nothing). With `follow`, it
//! streams until the stop request and picks up a replaced container (a redeploy's) from its first
//! line; a stop ends it with `Ok` — Ctrl-C is how a follow is meant to end.
//!
//! A Kubernetes site is refused (exit 2) with the `kubectl logs` command that reads the same pods:
//! their namespace and the labels deploy puts on them.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::stop::Stop;
use super::Workspace;
use crate::deploy::desired::{desired, Desired};
use crate::deploy::docker::logs::{self as edge, LogQuery, StageRef};
pub use crate::deploy::docker::logs::{LogLine, Stream};
use crate::engine::DockerEngine;
use crate::error::Error;
use crate::model::lifecycle::Target;

/// `cookbook logs`'s options.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub site: String,
    pub stage: String,
    /// Only these containers (a cookbook container, a replica `api-2`, a member `api/proxy`);
    /// none: all of the stage's.
    pub containers: Vec<String>,
    pub follow: bool,
    pub tail: Option<u64>,
    /// A duration back from now (`10m`) or an RFC 3339 time.
    pub since: Option<String>,
    pub timestamps: bool,
}

/// Where log lines go; called from the runtime's threads, in each container's order.
pub trait LogSink: Send + Sync {
    /// Before any line: the short names of every container the stage has (for a prefix width
    /// and stable colours).
    fn start(&self, _names: &[String]) {}
    fn line(&self, line: &LogLine);
}

/// What a `logs` run read.
#[derive(Debug, Clone, Serialize)]
pub struct LogsReport {
    /// The containers' short names it was asked to show.
    pub containers: Vec<String>,
    pub lines: usize,
}

/// `cookbook logs`.
pub fn logs(
    ws: &Workspace,
    opts: &LogsOptions,
    sink: &dyn LogSink,
    stop: &Stop,
) -> Result<LogsReport, Error> {
    let stage = stage_ref_of(ws, &opts.site, &opts.stage)?;
    let spec = match site_target(ws, &opts.site)? {
        Target::Docker(spec) => spec,
        Target::Kubernetes(k) => return Err(kubectl_refusal(&stage, &k.namespace, opts)),
    };
    let desired = desired(
        &ws.cookbook,
        &ws.plan,
        ws.published()?,
        &opts.site,
        &opts.stage,
    )?;
    let names = short_names(&desired);
    check_wanted(&names, &opts.containers)?;
    let query = LogQuery {
        follow: opts.follow,
        tail: opts.tail,
        since: opts.since.as_deref().map(parse_since).transpose()?,
        timestamps: opts.timestamps,
    };
    sink.start(&names);
    let selector = crate::engine::Selector::from_spec(&spec, ws.base_dir(), &ws.engine);
    let wanted = opts.containers.clone();
    let filter = move |name: &str| wanted.is_empty() || wanted.iter().any(|w| matches(name, w));
    let run = async {
        let engine = DockerEngine::connect_selected(&selector).await?;
        forward(
            &engine,
            &stage_ref(&desired),
            &filter,
            &query,
            sink,
            stop.token(),
        )
        .await
    };
    let lines = super::runtime()?.block_on(run)?;
    let mut containers = names;
    containers
        .retain(|n| opts.containers.is_empty() || opts.containers.iter().any(|w| matches(n, w)));
    Ok(LogsReport { containers, lines })
}

/// How many lines may wait between the engine's streams and the sink (beyond it, the streams
/// wait: a slow terminal slows the reading, nothing piles up).
const QUEUED_LINES: usize = 1024;

/// Runs the edge's stream and hands each line to `sink` on this task; the count of lines.
async fn forward(
    engine: &DockerEngine,
    stage: &StageRef,
    filter: &(dyn Fn(&str) -> bool + Sync),
    query: &LogQuery,
    sink: &dyn LogSink,
    cancel: CancellationToken,
) -> Result<usize, Error> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUED_LINES);
    let streaming = edge::stream(engine, stage, filter, query, tx, cancel.clone());
    tokio::pin!(streaming);
    let mut count = 0;
    let mut done = false;
    loop {
        tokio::select! {
            result = &mut streaming, if !done => { result?; done = true; }
            line = rx.recv() => match line {
                Some(line) => { sink.line(&line); count += 1; }
                None => break,
            },
        }
    }
    Ok(count)
}

/// Follows the stage's logs on the runtime until `cancel`, handing every line to `sink`
/// (`cookbook dev`'s stream: containers a redeploy starts are picked up). The engine is
/// connected to inside the task: a connection made on another `block_on` is not shared.
pub(crate) fn spawn_follow(
    engine: crate::engine::Selector,
    stage: StageRef,
    sink: Arc<dyn LogSink>,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<usize, Error>>, Error> {
    let query = LogQuery {
        follow: true,
        tail: None,
        since: None,
        timestamps: false,
    };
    Ok(super::runtime()?.spawn(async move {
        let engine = DockerEngine::connect_selected(&engine).await?;
        forward(&engine, &stage, &|_| true, &query, sink.as_ref(), cancel).await
    }))
}

/// The stage's project, site and stage, as the labels name them.
pub(crate) fn stage_ref(desired: &Desired) -> StageRef {
    StageRef {
        project: desired.project.to_string(),
        site: desired.site.to_string(),
        stage: desired.stage.to_string(),
    }
}

/// The stage's labels for `site` and `stage` of `ws`'s project, the stage checked to be one the
/// site serves (no lock needed: `dev` starts before anything is published).
pub(crate) fn stage_ref_of(ws: &Workspace, site: &str, stage: &str) -> Result<StageRef, Error> {
    let name = crate::deploy::session::known_site(&ws.cookbook, site)?;
    let serves = &ws.cookbook.lifecycle.sites[&name].stages;
    if !serves.iter().any(|s| s.as_str() == stage) {
        return Err(Error::Usage {
            message: format!("site `{site}` does not serve stage `{stage}`"),
            help: Some(format!(
                "its stages: {}",
                serves
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    }
    Ok(StageRef {
        project: ws.cookbook.project.name.to_string(),
        site: site.to_owned(),
        stage: stage.to_owned(),
    })
}

/// The site's target (a site without one is refused as `deploy` refuses it).
pub(crate) fn site_target(ws: &Workspace, site: &str) -> Result<Target, Error> {
    let site = crate::deploy::session::known_site(&ws.cookbook, site)?;
    Ok(crate::deploy::session::target(&ws.cookbook, &site)?)
}

/// Every short name the stage's containers have: instances, then their pods' members.
pub(crate) fn short_names(desired: &Desired) -> Vec<String> {
    let stage = stage_ref(desired);
    let mut names = Vec::new();
    for instance in desired.instances() {
        let main = stage.instance_name(&instance.name);
        for m in &instance.members {
            names.push(format!("{main}/{}", m.container));
        }
        names.push(main);
    }
    names.sort();
    names.dedup();
    names
}

/// Whether the container shown as `name` is one a user's `wanted` asks for: the name itself, a
/// pod's main (its members too), or a cookbook container (every replica).
fn matches(name: &str, wanted: &str) -> bool {
    let main = name.split('/').next().unwrap_or(name);
    wanted == name
        || wanted == main
        || main
            .rsplit_once('-')
            .is_some_and(|(c, n)| c == wanted && n.parse::<u32>().is_ok())
}

/// Every asked-for name must be one of the stage's; else exit 2 with the nearest.
fn check_wanted(names: &[String], wanted: &[String]) -> Result<(), Error> {
    for w in wanted {
        if names.iter().any(|n| matches(n, w)) {
            continue;
        }
        let nearest = names
            .iter()
            .map(|n| (strsim::damerau_levenshtein(w, n), n))
            .filter(|(d, _)| *d <= 3)
            .min();
        let mut help = format!("the stage's containers: {}", names.join(", "));
        if let Some((_, n)) = nearest {
            help = format!("did you mean `{n}`? {help}");
        }
        return Err(Error::Usage {
            message: format!("container `{w}` is not in this stage"),
            help: Some(help),
        });
    }
    Ok(())
}

/// `--since`: a duration back from now (`90s`, `10m`, `1h`) or an RFC 3339 time → UNIX seconds.
fn parse_since(text: &str) -> Result<i64, Error> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_duration(text) {
        Ok(back) => now.checked_sub(back),
        Err(_) => humantime::parse_rfc3339_weak(text).ok(),
    };
    at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Error::Usage {
            message: format!("--since {text}: neither a duration nor a time"),
            help: Some(
                "give a duration back from now (`10m`, `1h30m`) or an RFC 3339 time \
                        (`2026-12-06T15:00:00Z`)"
                    .to_owned(),
            ),
        })
}

/// The refusal for a Kubernetes site, naming the `kubectl logs` that reads the same pods (their
/// namespace, and the labels deploy puts on every pod: `kubernetes::objects`' pod labels).
fn kubectl_refusal(stage: &StageRef, namespace: &str, opts: &LogsOptions) -> Error {
    use crate::labels::deploy::{CONTAINER, PROJECT, SITE, STAGE};
    let mut selector = format!(
        "{PROJECT}={},{SITE}={},{STAGE}={}",
        stage.project, stage.site, stage.stage
    );
    if let [one] = opts.containers.as_slice() {
        selector.push_str(&format!(",{CONTAINER}={one}"));
    }
    let follow = if opts.follow { " --follow" } else { "" };
    Error::Usage {
        message: format!(
            "site `{}` is a Kubernetes cluster: `cookbook logs` reads Docker sites only",
            stage.site
        ),
        help: Some(format!(
            "read the same pods with: kubectl logs -n {namespace} -l {selector} \
             --all-containers --prefix{follow}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wanted_name_selects_replicas_and_pod_members() {
        assert!(matches("api", "api"));
        assert!(matches("api-2", "api"));
        assert!(matches("api/proxy", "api"));
        assert!(matches("api/proxy", "api/proxy"));
        assert!(!matches("api", "api/proxy"));
        assert!(!matches("web", "api"));
        assert!(!matches("api-worker", "api"), "not a replica number");
    }

    #[test]
    fn an_unknown_container_gets_the_nearest_name() {
        let names = vec!["api".to_owned(), "api/proxy".to_owned(), "web".to_owned()];
        assert!(check_wanted(&names, &["api".to_owned()]).is_ok());
        match check_wanted(&names, &["wbe".to_owned()]) {
            Err(Error::Usage { message, help }) => {
                assert!(message.contains("`wbe`"), "{message}");
                assert!(help.unwrap().starts_with("did you mean `web`?"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn since_takes_a_duration_or_a_time_and_refuses_the_rest() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let ten_minutes = parse_since("10m").unwrap();
        assert!((now - 600 - ten_minutes).abs() <= 2);
        assert_eq!(parse_since("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert!(matches!(parse_since("yesterday"), Err(Error::Usage { .. })));
    }
}
