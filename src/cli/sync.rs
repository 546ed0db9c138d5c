//! `cookbook sync` and `cookbook sync status`: arguments and output.
//!
//! The round is `ops::sync::round` (`crate::sync`'s round, then `--deploy` through
//! `ops::deploy`); this module parses flags, installs the signal handlers, passes the apply engine
//! in, renders each `Round` as plain log lines (stdout: what happened; stderr: why a revision was
//! refused or a round failed) or its JSON document, and turns outcomes into `Error`s, which
//! `Error::exit_code` maps to exit codes.

use std::io::Write;
use std::time::Duration;

use super::args::{StatusFormat, SyncAction, SyncArgs};
use super::interrupt::Interrupt;
use crate::error::Error;
use crate::ops;
use crate::ops::sync::{
    schedule, Applier, ApplyOutcome, DeployStep, Holder, Outcome, RelPath, Report as RoundReport,
    Round, RoundOptions, Schedule, StateDir, StepResult, SyncError, SyncOptions, SyncState, Tick,
    Wait,
};

/// The apply engine a sync round hands a taken revision to.
///
/// `cookbook apply`'s engine: build, tag and push the site's portion to the cookbook's registry.
/// A signal cancels a running apply through `interrupt`.
fn apply_engine<'a>(
    interrupt: &'a Interrupt,
    signer: Option<std::sync::Arc<dyn ops::apply::Signer>>,
) -> Box<dyn Applier + 'a> {
    Box::new(super::apply::SyncApplier { interrupt, signer })
}

pub fn execute(args: &SyncArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    if let Some(SyncAction::Status { state, format }) = &args.action {
        return status(state, *format, out);
    }
    let options = options(args)?;
    let interrupt = Interrupt::install()?;
    // Read before the first round: a bad key is refused now, not an hour from now.
    let signer = match &args.signing_key {
        Some(path) if args.apply => Some(ops::apply::read_signer(path)?),
        _ => None,
    };
    let mut applier = args.apply.then(|| apply_engine(&interrupt, signer));
    let dir = StateDir::new(&args.state);
    ops::sync::refuse_other_site(&dir, args.site.as_deref())?;
    let me = Holder::me(command_line());
    let stop = interrupt.token();
    let round = RoundOptions {
        dir: &dir,
        sync: &options,
        me: &me,
        wait: if args.wait { Wait::Yes } else { Wait::No },
        deploy: args.deploy,
        stop_flag: interrupt.flag(),
        stop: &stop,
    };
    let run = |applier: &mut Option<Box<dyn Applier + '_>>, err: &mut dyn Write| {
        ops::sync::round(&round, reborrow(applier), &mut |holder| {
            waiting(holder, err)
        })
    };
    let Some(interval) = args.interval else {
        let round = run(&mut applier, err)?;
        return finish_round(round, &interrupt, args.format, out, err);
    };
    let schedule = Schedule {
        interval,
        splay: args.splay.unwrap_or(interval / 10),
    };
    // Errors here are logged and retried next round: a network outage must not end the loop.
    // Set when a signal cancelled a running apply: the loop then ends with the signal's code.
    let mut cut_short = None;
    schedule::run_every(schedule, interrupt.flag(), |tick| {
        if let Tick::Wait(wait) = tick {
            let wait = humantime::format_duration(round_secs(wait));
            log(
                logs(args.format, out, err),
                &format!("next round in {wait}"),
            );
            return;
        }
        match run(&mut applier, err) {
            Ok(round) => match finish_round(round, &interrupt, args.format, out, err) {
                Err(
                    e @ (Error::Interrupted { .. }
                    | Error::Deploy {
                        signal: Some(_), ..
                    }),
                ) => cut_short = Some(e),
                Err(e) => log(err, &format!("round failed: {e}")),
                Ok(()) => {}
            },
            Err(SyncError::Interrupted) => {}
            Err(e) => log(err, &format!("round failed, retrying next round: {e}")),
        }
    });
    let logs = logs(args.format, out, err);
    match cut_short {
        Some(e) => {
            log(
                logs,
                "stopped by a signal; the running apply or deploy was cancelled (a deploy rolled back; the next start retries it)",
            );
            Err(e)
        }
        None => {
            log(logs, "stopped by a signal");
            Ok(())
        }
    }
}

/// Where the log lines go: stdout, or stderr when stdout carries the JSON documents.
fn logs<'a>(
    format: StatusFormat,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
) -> &'a mut dyn Write {
    match format {
        StatusFormat::Text => out,
        StatusFormat::Json => err,
    }
}

/// Renders a round and turns it into the command's result: a refused revision or a failed apply
/// first, then a failed deploy (a deploy a signal stopped ends with the signal's code).
fn finish_round(
    mut round: Round,
    interrupt: &Interrupt,
    format: StatusFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if let Some(steps) = &mut round.deploy {
        for step in steps.iter_mut() {
            if let StepResult::Failed(e) = &mut step.result {
                mark_signal(e, interrupt);
            }
        }
    }
    render_round(&round, format, out, err);
    round.result()
}

/// A deploy a signal stopped (and rolled back) says which signal, and exits with its code.
fn mark_signal(e: &mut Error, interrupt: &Interrupt) {
    if let (Error::Deploy { error, signal }, Some(Error::Interrupted { signal: s, code })) =
        (&mut *e, interrupt.error())
    {
        if error.interrupted() {
            *signal = Some((s, code));
        }
    }
}

fn options(args: &SyncArgs) -> Result<SyncOptions, Error> {
    let Some(remote) = args.remote.clone() else {
        return Err(Error::Usage {
            message: "cookbook sync needs --remote".to_owned(),
            help: Some("e.g. --remote https://github.com/org/cookbooks.git".to_owned()),
        });
    };
    if let Err(e) = RelPath::parse(&args.path) {
        return Err(Error::Usage {
            message: format!("--path {:?}: {e}", args.path),
            help: Some("a relative, `/`-separated path inside the repository".to_owned()),
        });
    }
    if args.interval == Some(Duration::ZERO) {
        return Err(Error::Usage {
            message: "--interval must be longer than zero".to_owned(),
            help: Some("e.g. --interval 1h".to_owned()),
        });
    }
    Ok(SyncOptions {
        remote,
        branch: args.branch.clone(),
        path: args.path.clone(),
        site: args.site.clone(),
        allow_force: args.allow_force,
        require_signed: args.require_signed,
    })
}

fn reborrow<'a>(applier: &'a mut Option<Box<dyn Applier + '_>>) -> Option<&'a mut dyn Applier> {
    match applier {
        Some(a) => Some(&mut **a),
        None => None,
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn waiting(holder: Option<&Holder>, err: &mut dyn Write) {
    match holder {
        Some(h) => log(err, &format!("waiting for the sync lock, held by {h}")),
        None => log(err, "waiting for the sync lock"),
    }
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

fn log(w: &mut dyn Write, line: &str) {
    let _ = writeln!(w, "{} sync: {line}", ops::sync::now());
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn render_deploy(steps: &[DeployStep], out: &mut dyn Write, err: &mut dyn Write) {
    for step in steps {
        match (&step.result, step.stage.as_deref()) {
            (StepResult::Failed(e), Some(stage)) => {
                log(err, &format!("deploy of stage {stage} failed: {e}"))
            }
            (StepResult::Failed(e), None) => log(err, &format!("deploy failed: {e}")),
            (StepResult::Skipped(why), Some(stage)) => {
                log(out, &format!("not deploying stage {stage}: {why}"))
            }
            (result, _) => log(out, &result.to_string()),
        }
    }
}

/// One round as a JSON document (`sync --format json`), on one line: its keys sorted, as the
/// documents have always been.
fn round_json(round: &Round) -> String {
    let value = serde_json::to_value(round.document()).expect("a round serializes");
    let mut s = serde_json::to_string(&value).expect("JSON");
    s.push('\n');
    s
}

/// Renders a round: log lines, and with `--format json` its document on stdout (the log lines
/// then all go to stderr, so stdout is the documents alone).
fn render_round(round: &Round, format: StatusFormat, out: &mut dyn Write, err: &mut dyn Write) {
    let Round { report, deploy } = round;
    match format {
        StatusFormat::Text => {
            render(report, out, err);
            render_deploy(deploy.as_deref().unwrap_or_default(), out, err);
        }
        StatusFormat::Json => {
            let mut log_lines = Vec::new();
            render(report, &mut log_lines, err);
            render_deploy(deploy.as_deref().unwrap_or_default(), &mut log_lines, err);
            let _ = err.write_all(&log_lines);
            let _ = out.write_all(round_json(round).as_bytes());
        }
    }
}

fn render(report: &RoundReport, out: &mut dyn Write, err: &mut dyn Write) {
    if let Some(recovered) = &report.recovered {
        log(
            err,
            &format!(
                "recovered: `current` pointed at {} ahead of the record (an interrupted round); recorded it",
                short(recovered)
            ),
        );
    }
    let head = short(&report.remote_commit);
    match &report.outcome {
        Outcome::UpToDate => log(out, &format!("up to date at {head}")),
        Outcome::Taken {
            previous: None,
            forced: _,
        } => log(out, &format!("took {head} (first sync)")),
        Outcome::Taken {
            previous: Some(previous),
            forced: false,
        } => log(
            out,
            &format!("took {head} (fast-forward from {})", short(previous)),
        ),
        Outcome::Taken {
            previous: Some(previous),
            forced: true,
        } => {
            log(
                out,
                &format!(
                    "took {head} over a history rewrite (was {}; --allow-force)",
                    short(previous)
                ),
            );
            log(
                err,
                &format!(
                    "warning: forced update {} -> {head} recorded in the state",
                    short(previous)
                ),
            );
        }
        Outcome::Refused(refusal) => {
            for line in refusal.errors() {
                let _ = writeln!(err, "{line}");
            }
            let kept = match &report.current {
                Some(current) => format!("keeping {}", short(current)),
                None => "no revision taken yet".to_owned(),
            };
            log(
                err,
                &format!("refused {head}: {}; {kept}", refusal.summary()),
            );
        }
    }
    match &report.apply {
        None => {}
        Some(ApplyOutcome::Applied) => log(out, &format!("applied {head}")),
        Some(ApplyOutcome::AlreadyApplied) => log(out, &format!("{head} already applied")),
        Some(ApplyOutcome::Failed(e)) => log(err, &format!("apply of {head} failed: {e}")),
    }
    for warning in &report.warnings {
        log(err, &format!("warning: {warning}"));
    }
}

fn status(state: &std::path::Path, format: StatusFormat, out: &mut dyn Write) -> Result<(), Error> {
    if !state.is_dir() {
        return Err(Error::Usage {
            message: format!("no sync state in {}", state.display()),
            help: Some("run `cookbook sync --remote URL` first, or pass --state DIR".to_owned()),
        });
    }
    let dir = StateDir::new(state);
    let record = dir.read()?;
    let text = match format {
        StatusFormat::Json => {
            let mut s = serde_json::to_string_pretty(&record).expect("the state serializes");
            s.push('\n');
            s
        }
        StatusFormat::Text => render_status(&dir, &record),
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

fn render_status(dir: &StateDir, s: &SyncState) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let none = "-";
    let _ = writeln!(o, "state:         {}", dir.root().display());
    let _ = writeln!(
        o,
        "remote:        {} (branch {}, file {}{})",
        s.remote.as_deref().unwrap_or(none),
        s.branch.as_deref().unwrap_or(none),
        s.path.as_deref().unwrap_or(none),
        s.site
            .as_deref()
            .map(|site| format!(", site {site}"))
            .unwrap_or_default()
    );
    match &s.current {
        Some(t) => {
            let forced = if t.forced { " (forced)" } else { "" };
            let _ = writeln!(o, "current:       {} taken {}{forced}", t.commit, t.at);
        }
        None => {
            let _ = writeln!(o, "current:       none (nothing taken yet)");
        }
    }
    let _ = writeln!(
        o,
        "previous:      {}",
        s.previous.as_deref().unwrap_or(none)
    );
    match &s.last_applied {
        Some(a) => {
            let _ = writeln!(o, "last applied:  {} at {}", a.commit, a.at);
        }
        None => {
            let _ = writeln!(o, "last applied:  never");
        }
    }
    match &s.last_attempt {
        Some(a) => {
            let _ = writeln!(
                o,
                "last attempt:  {} at {}: {}",
                a.commit,
                a.at,
                a.outcome.as_str()
            );
            for e in &a.errors {
                for line in e.lines() {
                    let _ = writeln!(o, "    {line}");
                }
            }
        }
        None => {
            let _ = writeln!(o, "last attempt:  none");
        }
    }
    if let Some(f) = s.forced.last() {
        let _ = writeln!(
            o,
            "forced:        {} update(s); last {} -> {} at {}",
            s.forced.len(),
            f.from,
            f.to,
            f.at
        );
    }
    o
}
