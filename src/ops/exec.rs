//! `cookbook exec --site S --stage ST CONTAINER [--] CMD...`: a command in a stage's running
//! container, as `docker compose exec`.
//!
//! Options and the command's streams in, its exit code out (the CLI ends with it). A Docker
//! site: the container is found by the stage's labels (`deploy::docker::exec::find`), a pod
//! member as `CONTAINER/MEMBER`; one the stage does not have is a usage error (2) with a "did you
//! mean" among those it has. A Kubernetes site: kube's `ws` feature (the exec subprotocol) is not
//! built in, so the answer is a refusal (2) naming the `kubectl exec` command that does it, with
//! the stage's real namespace, Deployment and container names.

use std::io::Write;

use tokio::io::AsyncRead;

use super::deploy::connect_options;
use super::down::suggest;
use super::Workspace;
use crate::deploy::backend::{connect, Site};
use crate::deploy::docker::exec::{find, run, Request, Stage};
use crate::deploy::session;
use crate::deploy::BackendError;
use crate::error::Error;
use crate::model::lifecycle::{kubernetes_name, Target};
use crate::model::Name;

/// `cookbook exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub site: String,
    pub stage: String,
    /// The cookbook's container, or a pod member as `CONTAINER/MEMBER`.
    pub container: String,
    /// Which replica (from 1).
    pub replica: u32,
    pub command: Vec<String>,
    /// Allocate a TTY (the CLI's stdin is a terminal and `-T` was not given).
    pub tty: bool,
    /// The terminal's rows and columns, for the TTY.
    pub size: Option<(u16, u16)>,
}

/// The process's streams the command is attached to.
pub struct Streams<'a, R> {
    pub stdin: R,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// `cookbook exec`: runs the command; `Ok(code)` is its exit code.
pub fn exec<R>(ws: &Workspace, opts: &ExecOptions, streams: Streams<'_, R>) -> Result<i64, Error>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let site = session::known_site(&ws.cookbook, &opts.site)?;
    let stage = stage_name(ws, &opts.stage)?;
    let target = session::target(&ws.cookbook, &site)?;
    if let Target::Kubernetes(k) = &target {
        return Err(kubectl(ws, &site, &stage, &k.namespace, opts));
    }
    let options = connect_options(ws, false);
    let project = ws.cookbook.project.name.to_string();
    super::runtime()?.block_on(async {
        let Site::Docker(docker) = connect(&target, &options).await.map_err(backend)? else {
            unreachable!("a Docker target connects to a Docker site");
        };
        let at = Stage {
            project: &project,
            site: site.as_str(),
            stage: stage.as_str(),
            replica: opts.replica,
        };
        let found = find(docker.engine(), &at).await?;
        let Some(one) = found.iter().find(|c| c.handle == opts.container) else {
            return Err(Error::Usage {
                message: format!(
                    "no container `{}` (replica {}) in {site}/{stage}",
                    opts.container, opts.replica
                ),
                help: suggest(
                    &opts.container,
                    "it has",
                    found.iter().map(|c| c.handle.as_str()),
                )
                .or_else(|| {
                    Some(format!(
                        "nothing of {site}/{stage} is on this engine: deploy it first"
                    ))
                }),
            });
        };
        if one.state != "running" {
            return Err(Error::Failed(format!(
                "`{}` ({}) is not running in {site}/{stage}: it is {}",
                opts.container, one.name, one.state
            )));
        }
        let request = Request {
            command: &opts.command,
            tty: opts.tty,
            size: opts.size,
        };
        Ok(run(
            docker.engine(),
            &one.id,
            &request,
            streams.stdin,
            streams.stdout,
            streams.stderr,
        )
        .await?)
    })
}

fn backend(e: BackendError) -> Error {
    Error::from(session::DeployError::Backend(e))
}

/// The stage as the cookbook names it; an unknown one is a usage error with a "did you mean".
fn stage_name(ws: &Workspace, stage: &str) -> Result<Name, Error> {
    let stages = &ws.cookbook.lifecycle.stages;
    stages
        .iter()
        .find(|s| s.as_str() == stage)
        .cloned()
        .ok_or_else(|| Error::Usage {
            message: format!("unknown stage `{stage}`"),
            help: suggest(stage, "stages", stages.iter().map(Name::as_str)),
        })
}

/// The refusal on a Kubernetes site, naming the `kubectl exec` that does it.
fn kubectl(
    ws: &Workspace,
    site: &Name,
    stage: &Name,
    namespace: &str,
    opts: &ExecOptions,
) -> Error {
    let (main, member) = opts
        .container
        .split_once('/')
        .unwrap_or((opts.container.as_str(), opts.container.as_str()));
    let deployment = kubernetes_name(
        ws.cookbook.project.name.as_str(),
        site.as_str(),
        stage.as_str(),
        main,
    );
    let tty = if opts.tty { "-it" } else { "-i" };
    let command = opts
        .command
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    Error::Usage {
        message: format!(
            "`cookbook exec` does not reach into a Kubernetes site's pods ({site} is one): kube's exec (its `ws` feature) is not built in"
        ),
        help: Some(format!(
            "run: kubectl exec {tty} -n {namespace} deploy/{deployment} -c {member} -- {command}"
        )),
    }
}

/// `arg` as a POSIX shell reads it back: bare when it is plainly safe, else single-quoted.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_a_shell_only_when_needed() {
        assert_eq!(shell_quote("ls"), "ls");
        assert_eq!(shell_quote("-la"), "-la");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
