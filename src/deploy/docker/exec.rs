//! A command run in a stage's container through the engine's exec API (`cookbook exec`, as
//! `docker compose exec`).
//!
//! Which container: found by the stage's labels (`find`), never by its name alone, so a
//! namesake that is not ours is never exec'd into. A pod member is `CONTAINER/MEMBER`: the
//! member labelled with the replica's pod. The command's streams are the caller's: its stdin is
//! copied into the exec until it ends (then the write side is closed, so the command reads EOF),
//! its output written as it comes; the exit code is the engine's `ExitCode` of the exec.

use std::io::Write;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::engine::{DockerEngine, EngineError};
use crate::labels::deploy as label;

/// One container of a stage on the engine, as `find` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageContainer {
    pub id: String,
    /// The engine's name.
    pub name: String,
    /// How `exec` names it: `api`, or a pod member `api/proxy`.
    pub handle: String,
    /// The engine's state (`running`, `exited`, …).
    pub state: String,
}

/// Where a stage is, and which replica (from 1) a handle means.
pub struct Stage<'a> {
    pub project: &'a str,
    pub site: &'a str,
    pub stage: &'a str,
    pub replica: u32,
}

/// The main container's name in the cookbook, from its engine name `pod`.
fn main_of<'p>(pod: &'p str, at: &Stage<'_>) -> &'p str {
    let with_site = format!("{}-{}-{}-", at.project, at.site, at.stage);
    let without = format!("{}-{}-", at.project, at.stage);
    let rest = pod
        .strip_prefix(&with_site)
        .or_else(|| pod.strip_prefix(&without))
        .unwrap_or(pod);
    rest.rsplit_once('-')
        .map_or(rest, |(container, _)| container)
}

/// The stage's containers of replica `replica` (its mains and their pods' members), by their
/// labels, each with its handle.
pub async fn find(
    engine: &DockerEngine,
    at: &Stage<'_>,
) -> Result<Vec<StageContainer>, EngineError> {
    let stage = super::logs::StageRef {
        project: at.project.to_owned(),
        site: at.site.to_owned(),
        stage: at.stage.to_owned(),
    };
    let suffix = format!("-{}", at.replica);
    let mut out: Vec<StageContainer> = Vec::new();
    for c in stage.list(engine).await? {
        let Some(container) = c.labels.get(c.scheme.container) else {
            continue;
        };
        // A member's pod is its main's engine name, `<project>-<site>-<stage>-<container>-<n>`
        // (an earlier version's without the site): the container is what lies between the
        // stage's prefix and the replica, hyphens and all (`web-api`).
        let (pod, handle) = match c.labels.get(label::POD) {
            Some(pod) => (pod.as_str(), format!("{}/{container}", main_of(pod, at))),
            None => (c.name.as_str(), container.clone()),
        };
        if pod.ends_with(&suffix) {
            out.push(StageContainer {
                handle,
                state: c.state,
                id: c.id,
                name: c.name,
            });
        }
    }
    out.sort_by(|a, b| a.handle.cmp(&b.handle));
    Ok(out)
}

/// How to run the command.
pub struct Request<'a> {
    pub command: &'a [String],
    /// Allocate a TTY (stdin is a terminal); `size`: its rows and columns.
    pub tty: bool,
    pub size: Option<(u16, u16)>,
}

/// Runs `request` in the container `id` with the given streams; returns the command's exit code.
pub async fn run(
    engine: &DockerEngine,
    id: &str,
    request: &Request<'_>,
    mut stdin: impl AsyncRead + Unpin + Send + 'static,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i64, EngineError> {
    let docker = engine.client();
    let err = |op: &'static str| move |e| engine.classify_error(op, e);
    let exec = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(request.command.to_vec()),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(request.tty),
                ..Default::default()
            },
        )
        .await
        .map_err(err("exec in container"))?;
    let started = docker
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: false,
                tty: request.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(err("exec in container"))?;
    if let (true, Some((height, width))) = (request.tty, request.size) {
        // A terminal of the wrong size only looks wrong: not worth failing the command.
        let _ = docker
            .resize_exec(&exec.id, ResizeExecOptions { height, width })
            .await;
    }
    if let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    {
        let feeding = tokio::spawn(async move {
            // The command may exit before its stdin ends: a write failing then is no error.
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
            let _ = input.shutdown().await;
        });
        while let Some(item) = output.next().await {
            match item.map_err(err("exec in container"))? {
                LogOutput::StdErr { message } => {
                    let _ = stderr.write_all(&message);
                    let _ = stderr.flush();
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let _ = stdout.write_all(&message);
                    let _ = stdout.flush();
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        feeding.abort();
    }
    let inspected = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(err("exec in container"))?;
    Ok(inspected.exit_code.unwrap_or(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_handle_keeps_its_mains_hyphens() {
        let at = Stage {
            project: "shop",
            site: "local",
            stage: "dev",
            replica: 1,
        };
        assert_eq!(main_of("shop-local-dev-web-api-1", &at), "web-api");
        assert_eq!(main_of("shop-local-dev-api-2", &at), "api");
        // An earlier version's name, without the site.
        assert_eq!(main_of("shop-dev-web-api-1", &at), "web-api");
    }
}
