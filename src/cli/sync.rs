//! `cookbook sync` and `cookbook sync status`: arguments and output.
//!
//! The round and the loop of rounds are the library's (`ops::pipeline`: sync, apply, deploy);
//! this module parses flags into its options, installs the signal handlers (which request the
//! pipeline's stop), and renders its progress: each round as plain log lines (stdout: what
//! happened; stderr: why a revision was refused or a round failed) or its JSON document.

use std::cell::RefCell;
use std::io::Write;
use std::time::Duration;

use super::args::{StatusFormat, SyncAction, SyncArgs};
use super::interrupt::Interrupt;
use crate::error::Error;
use crate::ops;
use crate::ops::pipeline::{
    ApplySettings, DeployStep, Pipeline, PipelineOptions, Progress, Round, StepResult,
};
use crate::ops::sync::{
    ApplyOutcome, Holder, Outcome, RelPath, Report as RoundReport, Schedule, StateDir, SyncOptions,
    SyncState, Wait,
};

pub fn execute(args: &SyncArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    if let Some(SyncAction::Status { state, format }) = &args.action {
        return status(state, *format, out);
    }
    let sync = options(args)?;
    let interrupt = Interrupt::install()?;
    // Read before the first round: a bad key is refused now, not an hour from now.
    let signer = match &args.signing_key {
        Some(path) if args.apply => Some(ops::apply::read_signer(path)?),
        _ => None,
    };
    let pipeline = Pipeline::new(PipelineOptions {
        state: args.state.clone(),
        sync,
        apply: args.apply.then_some(ApplySettings {
            signer,
            engine: args.engine.selector(),
        }),
        deploy: args.deploy,
        wait: if args.wait { Wait::Yes } else { Wait::No },
        holder: Holder::me(command_line()),
    })?;
    let stop = interrupt.stop();
    let log = SyncLog {
        format: args.format,
        looping: args.interval.is_some(),
        apply: super::apply::sync_reporter(),
        out: RefCell::new(out),
        err: RefCell::new(err),
    };
    let Some(interval) = args.interval else {
        let round = pipeline.round(&ops::sync::Who::current("sync"), stop, &log)?;
        return round.result();
    };
    let schedule = Schedule {
        interval,
        splay: args.splay.unwrap_or(interval / 10),
    };
    let result = pipeline.run_every(schedule, &ops::sync::Who::current("sync"), stop, &log);
    let mut out = log.out.borrow_mut();
    let mut err = log.err.borrow_mut();
    let logs = logs(args.format, &mut **out, &mut **err);
    match &result {
        Err(_) => log_line(
            logs,
            "stopped by a signal; the running apply or deploy was cancelled (a deploy rolled back; the next start retries it)",
        ),
        Ok(()) => log_line(logs, "stopped by a signal"),
    }
    result
}

/// `sync`'s rendering of a pipeline's progress: plain log lines (stdout: what happened; stderr:
/// why a revision was refused or a round failed), or with `--format json` one document per
/// round on stdout and every log line on stderr. The apply's progress prints as `apply` does
/// without a terminal.
pub(super) struct SyncLog<'w> {
    format: StatusFormat,
    /// `--interval`: a round that cannot run is logged and retried; once, it is the error.
    looping: bool,
    apply: super::apply::Plain,
    out: RefCell<&'w mut dyn Write>,
    err: RefCell<&'w mut dyn Write>,
}

impl<'w> SyncLog<'w> {
    /// The rendering of rounds on an interval (`sync --interval`, `agent`): a round that cannot
    /// run is logged and retried.
    pub(super) fn looping(
        name: &'static str,
        out: &'w mut dyn Write,
        err: &'w mut dyn Write,
    ) -> SyncLog<'w> {
        let _ = LOG_NAME.set(name);
        SyncLog {
            format: StatusFormat::Text,
            looping: true,
            apply: super::apply::sync_reporter(),
            out: RefCell::new(out),
            err: RefCell::new(err),
        }
    }

    /// Writes one log line where the rounds' lines go.
    pub(super) fn line(&self, line: &str) {
        let mut out = self.out.borrow_mut();
        let mut err = self.err.borrow_mut();
        log_line(logs(self.format, &mut **out, &mut **err), line);
    }
}

impl ops::pipeline::Reporter for SyncLog<'_> {
    fn progress(&self, progress: Progress<'_>) {
        let mut out = self.out.borrow_mut();
        let mut err = self.err.borrow_mut();
        let (out, err) = (&mut **out, &mut **err);
        match progress {
            Progress::Waiting(holder) => waiting(holder, err),
            // The summary goes where the progress lines went.
            Progress::Applied(summary) => super::apply::sync_summary(&self.apply, summary),
            Progress::Round(round) => render_round(round, self.format, out, err),
            Progress::RoundError(e) if self.looping => {
                log_line(err, &format!("round failed, retrying next round: {e}"))
            }
            Progress::RoundError(_) => {}
            Progress::RoundFailed(e) => log_line(err, &format!("round failed: {e}")),
            Progress::Next(wait) => {
                let wait = humantime::format_duration(round_secs(wait));
                log_line(
                    logs(self.format, out, err),
                    &format!("next round in {wait}"),
                );
            }
        }
    }

    fn apply(&self) -> &dyn ops::apply::Reporter {
        &self.apply
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

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn waiting(holder: Option<&Holder>, err: &mut dyn Write) {
    match holder {
        Some(h) => log_line(err, &format!("waiting for the sync lock, held by {h}")),
        None => log_line(err, "waiting for the sync lock"),
    }
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// What the log lines name as their source: `sync`, or `agent` in `cookbook agent`'s process.
static LOG_NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn log_line(w: &mut dyn Write, line: &str) {
    let name = LOG_NAME.get().copied().unwrap_or("sync");
    let _ = writeln!(w, "{} {name}: {line}", ops::sync::now());
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn render_deploy(steps: &[DeployStep], out: &mut dyn Write, err: &mut dyn Write) {
    for step in steps {
        match (&step.result, step.stage.as_deref()) {
            (StepResult::Failed(e), Some(stage)) => {
                log_line(err, &format!("deploy of stage {stage} failed: {e}"))
            }
            (StepResult::Failed(e), None) => log_line(err, &format!("deploy failed: {e}")),
            (StepResult::Skipped(why), Some(stage)) => {
                log_line(out, &format!("not deploying stage {stage}: {why}"))
            }
            (result, _) => log_line(out, &result.to_string()),
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
    let Round { report, deploy, .. } = round;
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
        log_line(
            err,
            &format!(
                "recovered: `current` pointed at {} ahead of the record (an interrupted round); recorded it",
                short(recovered)
            ),
        );
    }
    let head = short(&report.remote_commit);
    match &report.outcome {
        Outcome::UpToDate => log_line(out, &format!("up to date at {head}")),
        Outcome::Taken {
            previous: None,
            forced: _,
        } => log_line(out, &format!("took {head} (first sync)")),
        Outcome::Taken {
            previous: Some(previous),
            forced: false,
        } => log_line(
            out,
            &format!("took {head} (fast-forward from {})", short(previous)),
        ),
        Outcome::Taken {
            previous: Some(previous),
            forced: true,
        } => {
            log_line(
                out,
                &format!(
                    "took {head} over a history rewrite (was {}; --allow-force)",
                    short(previous)
                ),
            );
            log_line(
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
            log_line(
                err,
                &format!("refused {head}: {}; {kept}", refusal.summary()),
            );
        }
    }
    match &report.apply {
        None => {}
        Some(ApplyOutcome::Applied) => log_line(out, &format!("applied {head}")),
        Some(ApplyOutcome::AlreadyApplied) => log_line(out, &format!("{head} already applied")),
        Some(ApplyOutcome::Failed(e)) => log_line(err, &format!("apply of {head} failed: {e}")),
    }
    for warning in &report.warnings {
        log_line(err, &format!("warning: {warning}"));
    }
}

fn status(state: &std::path::Path, format: StatusFormat, out: &mut dyn Write) -> Result<(), Error> {
    let (dir, record) = ops::sync::status(state)?;
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
