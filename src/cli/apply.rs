//! `cookbook apply`: arguments, progress output and the summary.
//!
//! Three kinds of output, chosen once: on a terminal (and not `CI=true`), a live line per running
//! container (indicatif) with finished containers printed above; otherwise plain lines, one per
//! event, with the build output of a container only when it fails (or with `--verbose`); and with
//! `--format json`, the same plain lines on stderr and one summary document on stdout.
//!
//! The summary is printed whatever the run came to: success, failed containers, a failure of
//! the whole run (it still lists what was built, pushed and tagged before it), or a cancellation
//! by SIGINT/SIGTERM, which this module turns into the library's cancellation token (exit 130 or
//! 143, see `crate::error`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use tokio_util::sync::CancellationToken;

use super::interrupt::Interrupt;
use super::{base_dir, containers_named, load_reporting, site_plan, Format};
use crate::apply::{self, ApplyFailure, Event, Options, Outcome, Report, Reporter};
use crate::error::Error;
use crate::load::Loaded;
use crate::model::Name;
use crate::state;

/// `apply --help`'s exit codes: the common ones (`crate::error`) and the two of a cancelled run.
pub const APPLY_HELP: &str = "Exit codes:
  0    success
  1    the work failed (a build, a push, a verification)
  2    invalid input (the cookbook, an argument, a path)
  3    an external service (Docker engine, registry, git remote) is unreachable
  130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: running builds are cancelled, temporary
       files removed, what completed is written to cookbook.lock, no mutable tag moves.
       A second signal exits at once.";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply only these containers and what they need (their parents and runtime dependencies)
    /// [default: all]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Apply only this federation site's containers (and what they need).
    #[arg(long)]
    pub site: Option<String>,
    /// Builds at once [default: the number of cores].
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Build and tag locally; push nothing (cache hits are looked up in the local engine).
    #[arg(long)]
    pub no_push: bool,
    /// After a failure, go on with containers that do not need the failed one.
    #[arg(long)]
    pub keep_going: bool,
    /// Take containers that cookbook.lock records as published, with the same input hash, as
    /// cached without asking the registry (it trusts that nobody deleted them there).
    #[arg(long, conflicts_with = "no_push")]
    pub trust_lock: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Say per container what apply would do (cached, or build; what it would push and tag),
    /// from the registry (or the engine with --no-push); build, push, tag and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print every build's output as it arrives, not only a failed build's.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Plain lines, for logs without a terminal.
struct Plain {
    err: Mutex<Box<dyn Write + Send>>,
    verbose: bool,
}

impl Plain {
    fn line(&self, s: &str) {
        let mut err = self.err.lock().expect("no panics while printing");
        let _ = writeln!(err, "{s}");
    }
}

fn describe(event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::Checked { containers, waves } => {
            format!("apply: {containers} container(s) in {waves} wave(s)")
        }
        Event::Cached { name, source } => format!("[{name}] cached ({source})"),
        Event::Started { name, wave } => format!("[{name}] building (wave {})", wave + 1),
        Event::Built { name, millis } => {
            format!("[{name}] built in {:.1}s", *millis as f64 / 1000.0)
        }
        Event::Pushed {
            name,
            reference,
            digest,
        } => format!("[{name}] pushed {reference} ({digest})"),
        Event::Tagged { name, reference } => format!("[{name}] tagged {reference}"),
        Event::Skipped { name, reason } => format!("[{name}] skipped: {reason}"),
        Event::Cancelled { name, reason } => format!("[{name}] cancelled: {reason}"),
        Event::NeedsEngine { name, reason } => format!("[{name}] NOT BUILT: {reason}"),
        Event::WithoutEngine { why } => format!(
            "warning: no Docker engine ({why}); building only the containers that need none"
        ),
        Event::Failed { name, reason, log } => {
            let mut s = format!("[{name}] FAILED: {reason}");
            if !log.is_empty() {
                s.push_str(&format!("\n[{name}] build output:"));
                for l in log.iter() {
                    s.push_str(&format!("\n[{name}] | {l}"));
                }
            }
            s
        }
        Event::BasePinned {
            reference,
            before,
            pin,
        } => match before {
            None => format!(
                "pinned base image {reference} to {} ({})",
                pin.digest,
                pin.source.as_str()
            ),
            Some(b) if b == pin => format!(
                "base image {reference}: still {} ({})",
                pin.digest,
                pin.source.as_str()
            ),
            Some(b) => format!(
                "re-pinned base image {reference}: {} → {} ({})",
                b.digest,
                pin.digest,
                pin.source.as_str()
            ),
        },
        Event::BaseMoved { moved } => format!(
            "warning: base image {} moved under its tag: pinned {}, now {}; {} still build on \
             the pin — run `cookbook update` to rebuild on the new image",
            moved.reference,
            moved.pinned.digest,
            moved.now.digest,
            moved
                .containers
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::BaseUnchecked { reference, why } => format!(
            "warning: cannot check whether base image {reference} moved under its tag ({why}); \
             building on its pin"
        ),
        Event::Line { .. } => return None,
    })
}

impl Reporter for Plain {
    fn event(&self, event: Event<'_>) {
        match (&event, self.verbose) {
            (Event::Line { name, line }, true) => self.line(&format!("[{name}] | {line}")),
            _ => {
                if let Some(s) = describe(&event) {
                    self.line(&s);
                }
            }
        }
    }
}

/// A live line per running container, on a terminal.
struct Live {
    multi: MultiProgress,
    bars: Mutex<std::collections::BTreeMap<Name, ProgressBar>>,
}

impl Reporter for Live {
    fn event(&self, event: Event<'_>) {
        let mut bars = self.bars.lock().expect("no panics while printing");
        match event {
            Event::Started { name, wave } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(name.to_string());
                bar.set_message(format!("building (wave {})", wave + 1));
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(name.clone(), bar);
            }
            Event::Line { name, line } => {
                if let Some(bar) = bars.get(name) {
                    bar.set_message(line.trim().to_owned());
                }
            }
            other => {
                let name = match &other {
                    Event::Built { name, .. }
                    | Event::Failed { name, .. }
                    | Event::Skipped { name, .. }
                    | Event::Cancelled { name, .. }
                    | Event::NeedsEngine { name, .. } => Some(*name),
                    _ => None,
                };
                if let Some(bar) = name.and_then(|n| bars.remove(n)) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(s) = describe(&other) {
                    let _ = self.multi.println(s);
                }
            }
        }
    }
}

/// `result` is `ok`, `failed` (a container failed), `error` (the whole run failed: `error` says
/// why) or `cancelled` (a signal stopped it).
fn summary_json(report: &Report, error: Option<&Error>) -> String {
    let result = match (error, report.cancelled, report.ok()) {
        (Some(_), _, _) => "error",
        (None, true, _) => "cancelled",
        (None, false, true) => "ok",
        (None, false, false) => "failed",
    };
    let mut doc = serde_json::json!({
        "result": result,
        "built": report.count(|o| matches!(o, Outcome::Built { .. })),
        "cached": report.count(|o| matches!(o, Outcome::Cached { .. })),
        "failed": report.count(|o| matches!(o, Outcome::Failed { .. })),
        "skipped": report.count(|o| matches!(o, Outcome::Skipped { .. })),
        "cancelled": report.count(|o| matches!(o, Outcome::Cancelled { .. })),
        "needs_engine": report.count(|o| matches!(o, Outcome::NeedsEngine { .. })),
        "lock_changed": report.lock_changed,
        "containers": report.containers,
    });
    if let Some(e) = error {
        doc["error"] = serde_json::Value::String(e.to_string());
    }
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON");
    s.push('\n');
    s
}

/// Progress lines on stderr (none with `--quiet`). The events come from the run's tasks, so the
/// reporter owns its own handle to stderr rather than the command's borrowed writer.
fn plain_reporter(verbose: bool, quiet: bool) -> Plain {
    let err: Box<dyn Write + Send> = if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    Plain {
        err: Mutex::new(err),
        verbose,
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Fingerprints `plan` and applies it; the shared core of `cookbook apply` and `sync --apply`.
/// The outer `Err` is a failure before the run started; the inner one the run's own, with its
/// partial report.
fn apply_plan(
    file: &Path,
    cookbook: &crate::model::Cookbook,
    plan: &crate::graph::Plan,
    options: Options,
    reporter: &dyn Reporter,
    cancel: CancellationToken,
) -> Result<Result<Report, ApplyFailure>, Error> {
    let state_dir = state::dir_for(file);
    let job = apply::Job {
        cookbook,
        plan,
        // Computed once the bases are pinned (`fingerprinter`).
        fingerprints: Default::default(),
        cookbook_file: file,
        state_dir: &state_dir,
        options,
        cancel,
    };
    Ok(apply::apply_with_docker(
        job,
        &fingerprinter(file, cookbook, plan),
        reporter,
    )?)
}

/// Fingerprints `plan` under the current hash version with the pins the run resolved.
fn fingerprinter<'f>(
    file: &'f Path,
    cookbook: &'f crate::model::Cookbook,
    plan: &'f crate::graph::Plan,
) -> impl Fn(
    &crate::hash::BasePins,
) -> Result<std::collections::BTreeMap<Name, crate::hash::Fingerprint>, apply::ApplyError>
       + 'f {
    move |pins| {
        crate::load::fingerprints(file, cookbook, plan, crate::hash::Pinning::current(pins))
            .map_err(apply::ApplyError::from)
    }
}

/// Prints the summary of what the run did (also after a failure of the whole run) and turns
/// the run's end into the command's result.
fn finish(
    result: Result<Report, ApplyFailure>,
    interrupt: &Interrupt,
    json: Option<&mut dyn Write>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (report, error) = match result {
        Ok(report) => (report, None),
        Err(ApplyFailure { report, error }) => (report, Some(Error::Apply(error))),
    };
    if let Some(out) = json {
        let _ = out.write_all(summary_json(&report, error.as_ref()).as_bytes());
    }
    let _ = writeln!(err, "{}", summary_line(&report));
    if let Some(e) = error {
        return Err(e);
    }
    if report.cancelled {
        return Err(interrupt.error().unwrap_or(Error::Interrupted {
            signal: "a cancellation",
            code: crate::error::EXIT_SIGINT,
        }));
    }
    outcome(&report)
}

fn summary_line(report: &Report) -> String {
    let cancelled = report.count(|o| matches!(o, Outcome::Cancelled { .. }));
    let needs_engine = report.count(|o| matches!(o, Outcome::NeedsEngine { .. }));
    format!(
        "apply: {} built, {} cached, {} failed, {} skipped{}{}{}",
        report.count(|o| matches!(o, Outcome::Built { .. })),
        report.count(|o| matches!(o, Outcome::Cached { .. })),
        report.count(|o| matches!(o, Outcome::Failed { .. })),
        report.count(|o| matches!(o, Outcome::Skipped { .. })),
        if cancelled > 0 {
            format!(", {cancelled} cancelled")
        } else {
            String::new()
        },
        if needs_engine > 0 {
            format!(", {needs_engine} not built (no engine)")
        } else {
            String::new()
        },
        if report.lock_changed {
            "; cookbook.lock updated"
        } else {
            ""
        }
    )
}

/// 0 when every container is built or cached; 1 when one failed; 3 when none failed but some
/// were not built for want of an engine (an unreachable service: running again with one helps).
fn outcome(report: &Report) -> Result<(), Error> {
    if report.ok() {
        return Ok(());
    }
    let failed = report.count(|o| matches!(o, Outcome::Failed { .. }));
    let without_engine: Vec<&str> = report
        .containers
        .iter()
        .filter(|(_, c)| matches!(c.outcome, Outcome::NeedsEngine { .. }))
        .map(|(name, _)| name.as_str())
        .collect();
    if failed == 0 && !without_engine.is_empty() {
        return Err(Error::Apply(apply::ApplyError::EngineNeeded {
            containers: without_engine.join(", "),
        }));
    }
    Err(Error::Failed(format!("{failed} container(s) failed")))
}

/// The plan `apply` acts on: the whole cookbook's, a site's portion, and within it the named
/// containers with everything they need (the lock merge keeps the other containers' entries).
fn selected_plan(
    cookbook: &crate::model::Cookbook,
    plan: &crate::graph::Plan,
    args: &ApplyArgs,
) -> Result<crate::graph::Plan, Error> {
    let plan = site_plan(cookbook, plan, args.site.as_deref())?;
    let wanted = containers_named(cookbook, &args.containers)?;
    if wanted.is_empty() {
        return Ok(plan);
    }
    if let (Some(site), Some(outside)) = (
        args.site.as_deref(),
        wanted.iter().find(|n| !plan.order().any(|m| m == *n)),
    ) {
        return Err(Error::Usage {
            message: format!("container `{outside}` is not part of site `{site}`"),
            help: Some(format!(
                "site `{site}` applies: {}",
                plan.order()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    }
    Ok(plan.restrict(&wanted))
}

pub fn run(
    file: &Path,
    args: &ApplyArgs,
    quiet: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    // Opening the repository starts libgit2, whose TLS library reads the whole CA bundle: ~6 ms
    // of a no-op apply, spent while the cookbook loads instead of after.
    let revision = {
        let dir = base_dir(file).to_path_buf();
        std::thread::spawn(move || crate::git::head_commit(&dir))
    };
    let Loaded { cookbook, plan, .. } = load_reporting(file, err)?;
    let plan = selected_plan(&cookbook, &plan, args)?;
    let options = Options {
        jobs: args.jobs.unwrap_or_else(default_jobs),
        push: !args.no_push,
        keep_going: args.keep_going,
        revision: revision
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        trust_lock: args.trust_lock,
    };
    if args.dry_run {
        return dry_run(file, &cookbook, &plan, options, args.format, out, err);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let live = args.format == Format::Text
        && !ci
        && !args.verbose
        && !quiet
        && std::io::stderr().is_terminal();
    let reporter: Box<dyn Reporter> = if live {
        Box::new(Live {
            multi: MultiProgress::new(),
            bars: Mutex::new(Default::default()),
        })
    } else {
        Box::new(plain_reporter(args.verbose, quiet))
    };
    let interrupt = Interrupt::install()?;
    let result = apply_plan(
        file,
        &cookbook,
        &plan,
        options,
        reporter.as_ref(),
        interrupt.token(),
    )?;
    let json = (args.format == Format::Json).then_some(out);
    finish(result, &interrupt, json, err)
}

/// `apply --dry-run`: the library's [`apply::dry_run`], printed. Text: one line per container
/// (`cached` with where it was found, or `build` with what would be pushed), one `tag` line per
/// mutable tag that would move, and a count on stderr; JSON: one document.
fn dry_run(
    file: &Path,
    cookbook: &crate::model::Cookbook,
    plan: &crate::graph::Plan,
    options: Options,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let state_dir = state::dir_for(file);
    let job = apply::Job {
        cookbook,
        plan,
        fingerprints: Default::default(),
        cookbook_file: file,
        state_dir: &state_dir,
        options,
        cancel: CancellationToken::new(),
    };
    // What the run would pin, and bases that moved, on stderr.
    let notes = DryRunNotes(plain_reporter(false, false));
    let planned = apply::dry_run_with_docker(job, &fingerprinter(file, cookbook, plan), &notes)?;
    let build = planned
        .values()
        .filter(|p| p.action == apply::Action::Build)
        .count();
    let cached = planned.len() - build;
    match format {
        Format::Json => {
            let doc = serde_json::json!({
                "result": "dry_run",
                "build": build,
                "cached": cached,
                "containers": planned,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
        Format::Text => {
            let width = planned.keys().map(|n| n.as_str().len()).max().unwrap_or(0);
            for (name, p) in &planned {
                let what = match (p.action, p.source, &p.push) {
                    (apply::Action::Cached, Some(source), _) => {
                        format!("cached  {name:<width$}  {} (in the {source})", p.image)
                    }
                    (_, _, Some(push)) => format!("build   {name:<width$}  {push} (push)"),
                    _ => format!("build   {name:<width$}  {}", p.image),
                };
                let _ = writeln!(out, "{what}");
                for tag in &p.tags {
                    let _ = writeln!(out, "tag     {name:<width$}  {tag}");
                }
            }
            let _ = writeln!(
                err,
                "apply --dry-run: {build} to build, {cached} cached; nothing was built, \
                 pushed or tagged"
            );
        }
    }
    Ok(())
}

/// The pin step's lines for `apply --dry-run`, which records nothing: "would pin".
struct DryRunNotes(Plain);

impl Reporter for DryRunNotes {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::BasePinned {
                reference,
                before: None,
                pin,
            } => self.0.line(&format!(
                "would pin base image {reference} to {} ({})",
                pin.digest,
                pin.source.as_str()
            )),
            other => self.0.event(other),
        }
    }
}

/// `cookbook sync --apply`: applies a taken revision's portion with the same engine, pushing to
/// the cookbook's registry. The revision counts as applied only when every container succeeded.
/// The sync's signal handling cancels a running apply through `interrupt`.
pub struct SyncApplier<'a> {
    pub interrupt: &'a Interrupt,
}

impl crate::sync::Applier for SyncApplier<'_> {
    fn apply(
        &mut self,
        request: &crate::sync::ApplyRequest<'_>,
    ) -> Result<(), crate::sync::ApplierError> {
        let options = Options {
            jobs: default_jobs(),
            push: true,
            keep_going: false,
            trust_lock: false,
            revision: Some(request.commit.to_owned()),
        };
        let reporter = plain_reporter(false, false);
        let result = apply_plan(
            request.cookbook_file,
            request.cookbook,
            request.plan,
            options,
            &reporter,
            self.interrupt.token(),
        )?;
        // The summary goes where the progress lines went.
        let mut summary = Vec::new();
        let result = finish(result, self.interrupt, None, &mut summary);
        reporter.line(String::from_utf8_lossy(&summary).trim_end());
        result?;
        Ok(())
    }
}
