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
//! 143, see `crate::error`). The flow itself is `crate::ops::apply`; its summary is the JSON
//! document.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::args::ApplyArgs;
use super::interrupt::Interrupt;
use super::output::json_sorted;
use super::{github, locate, output, CiFormat, Format};
use crate::error::Error;
use crate::ops::apply::{ApplyOptions, ApplySummary, DryRunReport, Event, Name, Reporter};

/// Plain lines, for logs without a terminal.
pub(super) struct Plain {
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
        Event::Started {
            name,
            wave,
            builder: None,
        } => format!("[{name}] building (wave {})", wave + 1),
        Event::Started {
            name,
            wave,
            builder: Some(builder),
        } => format!("[{name}] building (wave {}) on {builder}", wave + 1),
        Event::Built { name, millis } => {
            format!("[{name}] built in {:.1}s", *millis as f64 / 1000.0)
        }
        Event::Pushed {
            name,
            reference,
            digest,
        } => format!("[{name}] pushed {reference} ({digest})"),
        Event::Attested { name, pushed: true } => {
            format!("[{name}] attested (provenance and SBOM signed and attached)")
        }
        Event::Attested {
            name,
            pushed: false,
        } => format!("[{name}] attested already"),
        Event::Tagged { name, reference } => format!("[{name}] tagged {reference}"),
        Event::Skipped { name, reason } => format!("[{name}] skipped: {reason}"),
        Event::Cancelled { name, reason } => format!("[{name}] cancelled: {reason}"),
        Event::NeedsEngine { name, reason } => format!("[{name}] NOT BUILT: {reason}"),
        Event::WithoutEngine { why } => format!(
            "warning: no Docker engine ({why}); building only the containers that need none"
        ),
        Event::BuilderDown { builder, why } => format!(
            "warning: builder {builder} does not answer ({why}); its builds go to the others"
        ),
        Event::PoolIgnored { builders } => format!(
            "warning: --no-push builds on one engine, not on the {builders} builder(s) of \
             packaging.builders: a pool's builders meet in the registry"
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
            Event::Started {
                name,
                wave,
                builder,
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(name.to_string());
                bar.set_message(match builder {
                    Some(builder) => format!("building (wave {}) on {builder}", wave + 1),
                    None => format!("building (wave {})", wave + 1),
                });
                bar.enable_steady_tick(Duration::from_millis(120));
                // Started again on another builder (its first one stopped answering).
                if let Some(old) = bars.insert(name.clone(), bar) {
                    old.finish_and_clear();
                    self.multi.remove(&old);
                }
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

fn summary_line(summary: &ApplySummary) -> String {
    format!(
        "apply: {} built, {} cached, {} failed, {} skipped{}{}{}{}",
        summary.built,
        summary.cached,
        summary.failed,
        summary.skipped,
        if summary.cancelled > 0 {
            format!(", {} cancelled", summary.cancelled)
        } else {
            String::new()
        },
        if summary.needs_engine > 0 {
            format!(", {} not built (no engine)", summary.needs_engine)
        } else {
            String::new()
        },
        if summary.unattested > 0 {
            format!(", {} not attested", summary.unattested)
        } else {
            String::new()
        },
        if summary.lock_changed {
            "; cookbook.lock updated"
        } else {
            ""
        }
    )
}

pub fn run(
    file: &Path,
    args: &ApplyArgs,
    quiet: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let cookbook = locate::cookbook_file(file.to_path_buf());
    // Found while the cookbook loads (see `ops::apply::checkout_revision`).
    let revision = {
        let dir = cookbook.base_dir().to_path_buf();
        std::thread::spawn(move || crate::ops::apply::checkout_revision(&dir))
    };
    let opened = output::open_file(cookbook, err);
    if args.format == CiFormat::Github {
        github::opened("apply", &opened, out);
    }
    let ws = opened?;
    let opts = ApplyOptions {
        containers: args.containers.clone(),
        site: args.site.clone(),
        jobs: args.jobs,
        push: !args.no_push,
        keep_going: args.keep_going,
        trust_lock: args.trust_lock,
        signing_key: args.signing_key.clone(),
        engine: args.engine.selector(),
        builders: args
            .builders
            .iter()
            .map(|b| crate::ops::engine::Selector::parse_argument(b))
            .collect(),
        revision: revision
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        strict: args.strict,
    };
    if args.dry_run {
        // What the run would pin, and bases that moved, on stderr.
        let notes = DryRunNotes(plain_reporter(false, false));
        let report = crate::ops::apply::dry_run(&ws, &opts, &notes)?;
        output::warnings(&ws.file.label, &report.warnings, err);
        print_dry_run(&report, args.format.plain(), out, err);
        return Ok(());
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let live = args.format == CiFormat::Text
        && !ci
        && !args.verbose
        && !quiet
        && std::io::stderr().is_terminal();
    let reporter: Box<dyn Reporter> = if live {
        Box::new(Live {
            multi: MultiProgress::new(),
            bars: Mutex::new(Default::default()),
        })
    } else if args.format == CiFormat::Github {
        let sources = crate::ops::inspect::container_sources(&ws);
        let mut plain = plain_reporter(args.verbose, quiet);
        if !quiet {
            // The runner reads stderr for workflow commands too (`github::Inert`).
            plain.err = Mutex::new(Box::new(github::Inert::new(std::io::stderr())));
        }
        Box::new(github::Builds::new(Box::new(plain), ws.path(), sources))
    } else {
        Box::new(plain_reporter(args.verbose, quiet))
    };
    let interrupt = Interrupt::install()?;
    let summary = crate::ops::apply::apply(&ws, &opts, reporter.as_ref(), interrupt.token());
    if let (CiFormat::Github, Err(e)) = (args.format, &summary) {
        github::failure("apply", e, out);
    }
    if let Err(e) = &summary {
        no_push_note(e, err);
    }
    let summary = summary?;
    output::warnings(&ws.file.label, &summary.warnings, err);
    if args.format == CiFormat::Json {
        let _ = out.write_all(json_sorted(&summary).as_bytes());
    }
    let _ = writeln!(err, "{}", summary_line(&summary));
    let result = summary.into_result(interrupt.error());
    if let Err(e) = &result {
        no_push_note(e, err);
    }
    result
}

/// Under a registry that cannot be reached: the way to build without one.
fn no_push_note(e: &Error, err: &mut dyn Write) {
    if crate::ops::apply::registry_unreachable(e) {
        let _ = writeln!(
            err,
            "note: `cookbook apply --no-push` builds into the local engine only, without a registry"
        );
    }
}

/// `apply --dry-run`'s report. Text: one line per container (`cached` with where it was found,
/// or `build` with what would be pushed and, with a pool, on which builder), one `tag` line per mutable tag that would move, and a
/// count on stderr; JSON: one document.
fn print_dry_run(report: &DryRunReport, format: Format, out: &mut dyn Write, err: &mut dyn Write) {
    use crate::ops::apply::Action;
    if format == Format::Json {
        let _ = out.write_all(json_sorted(report).as_bytes());
        return;
    }
    let planned = &report.containers;
    let width = planned.keys().map(|n| n.as_str().len()).max().unwrap_or(0);
    for (name, p) in planned {
        let mut what = match (p.action, p.source, &p.push) {
            (Action::Unchecked, _, _) => {
                format!(
                    "unchecked  {name:<width$}  {} (registry not reached)",
                    p.image
                )
            }
            (Action::Cached, Some(source), _) => {
                format!("cached  {name:<width$}  {} (in the {source})", p.image)
            }
            (_, _, Some(push)) => format!("build   {name:<width$}  {push} (push)"),
            _ => format!("build   {name:<width$}  {}", p.image),
        };
        if let Some(builder) = &p.builder {
            what.push_str(&format!(" on {builder}"));
        }
        let _ = writeln!(out, "{what}");
        for tag in &p.tags {
            let _ = writeln!(out, "tag     {name:<width$}  {tag}");
        }
    }
    if let Some(why) = planned.values().find_map(|p| p.unchecked.as_ref()) {
        let _ = writeln!(
            err,
            "could not check: {} image(s), the registry cannot be reached ({why}); planned on \
             the lock's pins",
            report.unchecked
        );
    }
    for (base, why) in &report.unchecked_bases {
        let _ = writeln!(
            err,
            "could not check: base image {base} ({why}); planned on its pin"
        );
    }
    // "unchecked" only when the registry could not be asked: an online dry run reads as before.
    let unchecked = match report.unchecked {
        0 => String::new(),
        n => format!(", {n} unchecked"),
    };
    let _ = writeln!(
        err,
        "apply --dry-run: {} to build, {} cached{unchecked}; nothing was built, pushed or tagged",
        report.build, report.cached
    );
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

/// `cookbook sync --apply`'s apply progress: printed as `apply` prints without a terminal
/// (progress lines, then each apply's summary line, on stderr).
pub(super) fn sync_reporter() -> Plain {
    plain_reporter(false, false)
}

/// An apply of a sync round ended: its summary line, where its progress went.
pub(super) fn sync_summary(reporter: &Plain, summary: &ApplySummary) {
    reporter.line(&summary_line(summary));
}
