//! SSH to an engine, as the docker CLI does it (docker/cli `cli/connhelper`): each connection is
//! the system's `ssh` running `docker system dial-stdio` on the remote machine, and HTTP is
//! spoken over the child's stdin and stdout. The user's keys, ssh-agent, `known_hosts` and
//! `~/.ssh/config` then behave as they do for `docker` and `ssh` themselves.
//!
//! - The command line is argv, never a shell string: `ssh -o ConnectTimeout=30 -T [-l USER]
//!   [-p PORT] -- HOST docker system dial-stdio`; `endpoint.rs` refuses users and hosts that
//!   ssh could read as options, and `--` ends ssh's options before the host.
//! - ssh's stderr is kept (its last few kilobytes): when the connection ends before the engine
//!   answered a byte, reading or writing fails with ssh's own words, classified by [`cause`]
//!   (host key, login, anything else). The remote side may write anything there, so the words
//!   are cut to a few lines with control characters removed before they reach a terminal.
//! - The child dies with its connection: dropping an [`SshStream`] kills it and reaps it on
//!   the runtime, so no ssh process outlives its connection and none is left a zombie.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use super::{ConnectFailure, ConnectionCause};
use crate::engine::endpoint::SshDestination;

/// How much of ssh's stderr is kept: its last words are what explain a failure.
const STDERR_KEPT: usize = 8 * 1024;
/// How long to wait for ssh to finish writing its stderr once its stdout has closed.
const STDERR_WAIT: Duration = Duration::from_secs(5);
/// How many of ssh's last lines a message quotes.
const LINES_QUOTED: usize = 3;

/// The ssh command line for one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Command {
    program: String,
    args: Vec<String>,
}

impl Command {
    pub(super) fn new(destination: &SshDestination) -> Command {
        let mut args = vec![
            "-o".to_owned(),
            "ConnectTimeout=30".to_owned(),
            "-T".to_owned(),
        ];
        if let Some(user) = &destination.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        if let Some(port) = destination.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(["--", &destination.host, "docker", "system", "dial-stdio"].map(str::to_owned));
        Command {
            program: "ssh".to_owned(),
            args,
        }
    }

    /// A new connection: a running `ssh`, its stderr collected in the background. Fails only
    /// when ssh cannot be started (not installed: the error says so).
    pub(super) fn spawn(&self) -> io::Result<SshStream> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A backstop for a drop outside the runtime; `SshStream`'s drop kills and reaps.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::other(ConnectFailure(ConnectionCause::Ssh(format!(
                    "cannot run `{}`: {e}",
                    self.program
                ))))
            })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three streams were asked to be piped");
        };
        let words = Arc::new(Mutex::new(Vec::new()));
        let collected = words.clone();
        let collector = tokio::spawn(async move {
            let mut chunk = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
                let mut kept = collected
                    .lock()
                    .expect("never poisoned: no panics under it");
                kept.extend_from_slice(&chunk[..n]);
                let over = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..over);
            }
        });
        Ok(SshStream {
            child: Some(child),
            stdin,
            stdout,
            words,
            collector: Some(collector),
            answered: false,
            failing: None,
            failed: None,
        })
    }
}

/// One connection: HTTP over a running ssh's stdin and stdout.
pub(super) struct SshStream {
    child: Option<Child>,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The tail of ssh's stderr, filled by `collector`.
    words: Arc<Mutex<Vec<u8>>>,
    collector: Option<JoinHandle<()>>,
    /// Whether the engine sent a byte yet: a connection that ends before is explained from
    /// ssh's stderr, one that ends after is an ordinary close.
    answered: bool,
    /// The explanation being waited for (ssh's stderr to end).
    failing: Option<Pin<Box<dyn Future<Output = ConnectionCause> + Send>>>,
    /// The explanation, once known: every later read or write fails with it.
    failed: Option<ConnectionCause>,
}

impl SshStream {
    /// The error to answer with from now on, once ssh's stderr has ended (or after
    /// [`STDERR_WAIT`]).
    fn poll_failure(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let failed = |cause: &ConnectionCause| io::Error::other(ConnectFailure(cause.clone()));
        if let Some(cause) = &self.failed {
            return Poll::Ready(failed(cause));
        }
        if self.failing.is_none() {
            let collector = self.collector.take();
            let words = self.words.clone();
            self.failing = Some(Box::pin(async move {
                if let Some(collector) = collector {
                    let _ = tokio::time::timeout(STDERR_WAIT, collector).await;
                }
                let words = words.lock().expect("never poisoned").clone();
                cause(&String::from_utf8_lossy(&words))
            }));
        }
        let failing = self.failing.as_mut().expect("set above");
        let cause = std::task::ready!(failing.as_mut().poll(cx));
        let error = failed(&cause);
        self.failing = None;
        self.failed = Some(cause);
        Poll::Ready(error)
    }

    /// Whether the connection has failed already, or is finding out why.
    fn failing(&self) -> bool {
        self.failing.is_some() || self.failed.is_some()
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failing() {
            return this.poll_failure(cx).map(Err);
        }
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        match Pin::new(&mut this.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.answered = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(result) if !this.answered && (wanted || result.is_err()) => {
                this.poll_failure(cx).map(Err)
            }
            other => other,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failing() {
            return this.poll_failure(cx).map(Err);
        }
        match Pin::new(&mut this.stdin).poll_write(cx, data) {
            // ssh has gone (a broken pipe): say why, from its words.
            Poll::Ready(Err(_)) if !this.answered => this.poll_failure(cx).map(Err),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failing() {
            return this.poll_failure(cx).map(Err);
        }
        match Pin::new(&mut this.stdin).poll_flush(cx) {
            Poll::Ready(Err(_)) if !this.answered => this.poll_failure(cx).map(Err),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

impl Drop for SshStream {
    fn drop(&mut self) {
        // An ssh `ControlPersist` master inherits ssh's stderr and keeps it open: the collector
        // would outlive the connection.
        if let Some(collector) = self.collector.take() {
            collector.abort();
        }
        if let Some(mut child) = self.child.take() {
            // It may have exited already; then there is nothing to kill, only to reap.
            let _ = child.start_kill();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
    }
}

/// What ssh's stderr says about the step that failed.
pub(super) fn cause(stderr: &str) -> ConnectionCause {
    let quoted = last_lines(stderr);
    if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        ConnectionCause::HostKey(quoted)
    } else if stderr.contains("Permission denied (") {
        ConnectionCause::SshAuthentication(quoted)
    } else if quoted.is_empty() {
        ConnectionCause::Ssh(
            "the connection ended before the engine answered, and ssh said nothing".to_owned(),
        )
    } else {
        ConnectionCause::Ssh(quoted)
    }
}

/// ssh's last non-empty lines, without control characters (the remote side wrote some of them),
/// joined on one line.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect();
    lines[lines.len().saturating_sub(LINES_QUOTED)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_the_docker_clis() {
        let full = Command::new(&SshDestination {
            user: Some("deploy".into()),
            host: "builder.example".into(),
            port: Some(2222),
        });
        assert_eq!(
            full.args.join(" "),
            "-o ConnectTimeout=30 -T -l deploy -p 2222 -- builder.example docker system dial-stdio"
        );
        let bare = Command::new(&SshDestination {
            user: None,
            host: "::1".into(),
            port: None,
        });
        assert_eq!(
            bare.args.join(" "),
            "-o ConnectTimeout=30 -T -- ::1 docker system dial-stdio"
        );
    }

    #[test]
    fn ssh_words_name_the_step() {
        let host_key = "No ED25519 host key is known for [127.0.0.1]:2222 and you have \
                        requested strict checking.\r\nHost key verification failed.\r\n";
        assert_eq!(
            cause(host_key),
            ConnectionCause::HostKey(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested \
                 strict checking.; Host key verification failed."
                    .into()
            )
        );
        assert!(matches!(
            cause("root@127.0.0.1: Permission denied (publickey).\n"),
            ConnectionCause::SshAuthentication(_)
        ));
        assert_eq!(
            cause("one\ntwo\n\nthree\x1b[2J\nbash: line 1: docker: command not found\n"),
            ConnectionCause::Ssh("two; three[2J; bash: line 1: docker: command not found".into())
        );
        assert!(matches!(cause(""), ConnectionCause::Ssh(why) if why.contains("said nothing")));
    }

    /// A stand-in for ssh that fails as ssh does: what the connection answers is its words.
    /// (The real ssh is exercised by tests/it/remote_engine.rs.)
    #[tokio::test]
    async fn a_connection_that_ends_unanswered_says_why_and_leaves_no_process() {
        use tokio::io::AsyncWriteExt;
        let command = Command {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "echo 'root@h: Permission denied (publickey).' >&2; exit 255".into(),
            ],
        };
        let mut stream = command.spawn().unwrap();
        let pid = stream.child.as_ref().unwrap().id().unwrap();
        let _ = stream.write_all(b"GET /_ping HTTP/1.1\r\n\r\n").await;
        let mut answer = Vec::new();
        let error = stream.read_to_end(&mut answer).await.unwrap_err();
        let failure = error.get_ref().unwrap().downcast_ref::<ConnectFailure>();
        assert!(
            matches!(failure, Some(ConnectFailure(ConnectionCause::SshAuthentication(why))) if why == "root@h: Permission denied (publickey)."),
            "{error:?}"
        );
        // Asked again (hyper reads after a failed write): the same answer.
        let again = stream.write_all(b"more").await.unwrap_err();
        assert_eq!(again.to_string(), error.to_string());
        drop(stream);
        gone(pid).await;

        // A connection dropped while its ssh still runs: killed, then reaped.
        let running = Command {
            program: "sleep".into(),
            args: vec!["30".into()],
        };
        let stream = running.spawn().unwrap();
        let pid = stream.child.as_ref().unwrap().id().unwrap();
        drop(stream);
        gone(pid).await;
    }

    /// Waits for process `pid` to be gone, zombie included (a zombie keeps its /proc entry).
    async fn gone(pid: u32) {
        let proc = format!("/proc/{pid}");
        for _ in 0..100 {
            if !std::path::Path::new(&proc).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the child {pid} was not killed and reaped");
    }
}
