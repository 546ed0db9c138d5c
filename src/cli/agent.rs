//! `cookbook agent`: arguments into the agent's options, and its log lines.
//!
//! The agent is the library's (`ops::agent`: the round loop, the server, the webhook, the
//! metrics); this module reads the files the flags name, installs the signal handlers (whose stop
//! request the agent honours between rounds or by cancelling the running one), and logs rounds
//! as `sync --interval` does, plus the agent's own notices.

use std::io::Write;
use std::time::Duration;

use super::args::AgentArgs;
use super::interrupt::Interrupt;
use super::sync::SyncLog;
use crate::error::Error;
use crate::ops;
use crate::ops::agent::{AgentOptions, AgentReporter, Notice, Peers, Trigger};
use crate::ops::pipeline::{ApplySettings, PipelineOptions, Progress, Reporter};
use crate::ops::sync::{Holder, RelPath, Schedule, SyncOptions, Wait};

pub fn run(args: &AgentArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let options = options(args)?;
    let interrupt = Interrupt::install()?;
    let log = AgentLog(SyncLog::looping("agent", out, err));
    let report = ops::agent::run(options, interrupt.stop(), &log)?;
    log.0.line(&format!(
        "stopped by a signal after {} round(s)",
        report.rounds
    ));
    Ok(())
}

fn options(args: &AgentArgs) -> Result<AgentOptions, Error> {
    if let Err(e) = RelPath::parse(&args.path) {
        return Err(Error::Usage {
            message: format!("--path {:?}: {e}", args.path),
            help: Some("a relative, `/`-separated path inside the repository".to_owned()),
        });
    }
    // Bounded: a round's next time is computed by adding these to now.
    const YEAR: Duration = Duration::from_secs(366 * 24 * 3600);
    for (flag, value, least) in [
        ("--interval", args.interval, Duration::from_secs(1)),
        ("--splay", args.splay.unwrap_or_default(), Duration::ZERO),
        ("--health-every", args.health_every, Duration::from_secs(1)),
    ] {
        if value < least || value > YEAR {
            return Err(Error::Usage {
                message: format!("{flag} {}: out of range", humantime::format_duration(value)),
                help: Some(format!(
                    "between {} and a year, e.g. {flag} 1h",
                    humantime::format_duration(least)
                )),
            });
        }
    }
    // Read now: a bad key, secret or certificate is refused at start, not at the first push.
    let signer = args
        .signing_key
        .as_deref()
        .map(ops::apply::read_signer)
        .transpose()?;
    let webhook_secret = ops::agent::webhook_secret(args.webhook_secret_file.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ops::agent::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        _ => None,
    };
    let peers = match &args.peers {
        Some(file) => Some(peers(file, args)?),
        None => None,
    };
    Ok(AgentOptions {
        pipeline: PipelineOptions {
            state: args.state.clone(),
            sync: SyncOptions {
                remote: args.remote.clone(),
                branch: args.branch.clone(),
                path: args.path.clone(),
                site: Some(args.site.clone()),
                allow_force: args.allow_force,
                require_signed: args.require_signed,
            },
            apply: Some(ApplySettings {
                signer,
                engine: args.engine.selector(),
            }),
            deploy: true,
            // Not `Yes`: a wait for another process's lock would not see a stop request. A
            // round that finds the state locked is retried at the next one.
            wait: Wait::No,
            // Written to the lock file others read: without the remote's credentials.
            holder: Holder::me(ops::agent::site::redact_remote_in(
                &std::env::args().collect::<Vec<_>>().join(" "),
                &args.remote,
            )),
        },
        listen: args.listen,
        schedule: Schedule {
            interval: args.interval,
            splay: args.splay.unwrap_or(args.interval / 10),
        },
        webhook_secret,
        tls,
        peers,
        health_every: args.health_every,
    })
}

/// `--peers FILE`: the sites file, asked with its own client identity, or else the agent's own
/// (its certificate and key, trusting its client CA).
fn peers(file: &std::path::Path, args: &AgentArgs) -> Result<Peers, Error> {
    let sites = ops::fleet::read_sites(file)?;
    let own = match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(ops::agent::tls::ClientFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let Some(files) = sites.client.or(own) else {
        return Err(Error::Usage {
            message: format!(
                "--peers {}: no client certificate to ask the peers with",
                file.display()
            ),
            help: Some(
                "name `ca`, `cert` and `key` in the sites file, or serve mutual TLS \
                 (--tls-cert, --tls-key, --tls-client-ca): the agent asks its peers as itself"
                    .to_owned(),
            ),
        });
    };
    Ok(Peers {
        peers: sites.sites,
        client: ops::agent::tls::client(&files)?,
    })
}

/// The agent's log: rounds as `sync --interval` logs them, and its notices.
struct AgentLog<'w>(SyncLog<'w>);

impl Reporter for AgentLog<'_> {
    fn progress(&self, progress: Progress<'_>) {
        self.0.progress(progress);
    }

    fn apply(&self) -> &dyn ops::apply::Reporter {
        self.0.apply()
    }
}

impl AgentReporter for AgentLog<'_> {
    fn notice(&self, notice: Notice<'_>) {
        let line = match notice {
            Notice::Listening { addr, tls } => {
                let scheme = if tls { "https" } else { "http" };
                format!("listening on {scheme}://{addr}")
            }
            Notice::Starting(Trigger::Webhook { provider, delivery }) => format!(
                "round started by a {provider} push (delivery {})",
                delivery.as_deref().unwrap_or("without an id")
            ),
            Notice::Starting(trigger) => format!("round started ({})", trigger.as_str()),
            Notice::Stopping => "stopping".to_owned(),
        };
        self.0.line(&line);
    }
}
