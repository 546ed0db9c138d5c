//! `cookbook verify`: arguments and output of the release engineer's check.
//!
//! Text: one line per container, `ok` with its input hash or `MISMATCH` with the first (most
//! specific) reason; a summary on stderr. JSON: one document with every container's status, all
//! its reasons and the hashes. GitHub (`cli::github`): an error annotation per container that
//! does not match, on its line of the cookbook, the text lines on stderr. `--junit FILE`
//! writes the report as JUnit XML too (`cli::junit`), whatever the format. The flow is
//! `crate::ops::verify`, the checking `crate::verify`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::args::VerifyArgs;
use super::output::json_sorted;
use super::{github, junit, locate, CiFormat};
use crate::error::Error;
use crate::ops::verify::{VerifyOptions, VerifyReport};
use crate::ops::{CookbookFile, Workspace};

pub fn run(
    file: &Path,
    args: &VerifyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let cookbook = locate::cookbook_file(file.to_path_buf());
    let opts = VerifyOptions {
        lock: args.lock.clone(),
        rev: args.rev.clone(),
        registry: args.registry,
        locked: args.locked,
        rebuild: args.rebuild,
        containers: args.containers.clone(),
        attestations: args.key.clone().filter(|_| args.attestations),
        engine: args.engine.selector(),
    };
    let started = Instant::now();
    let report = crate::ops::verify::verify(&cookbook, &opts);
    if let (CiFormat::Github, Err(e)) = (args.format, &report) {
        github::failure("verify", e, out);
    }
    let report = report?;
    let mismatch = if args.locked { "STALE" } else { "MISMATCH" };
    match args.format {
        CiFormat::Text => print_text(&report, mismatch, out),
        CiFormat::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
        // The annotations are the output; the lines text mode prints go with the summary.
        CiFormat::Github => {
            print_text(&report, mismatch, err);
            annotate(&cookbook, &report, out);
        }
    }
    if let Some(path) = &args.junit {
        let document = junit::document(&report, started.elapsed());
        crate::ops::verify::write_report(path, &document)?;
    }
    let _ = writeln!(err, "{}", summary_line(&report));
    report.into_result()
}

/// `--format github`: each container that does not match, an error on its line of the
/// cookbook (of the working tree: the one the pull request shows, also for `--rev`) with every
/// reason.
fn annotate(cookbook: &CookbookFile, report: &VerifyReport, out: &mut dyn Write) {
    let paths = github::Paths::from_env();
    // Opened again: the flow keeps no text. A working tree that no longer opens (`--rev` of an
    // older revision) leaves the annotations on the file without a line.
    let sources = Workspace::open(cookbook.clone())
        .map(|ws| crate::ops::inspect::container_sources(&ws))
        .unwrap_or_default();
    let what = if report.locked {
        format!("is stale in {}", report.lock)
    } else {
        format!("does not match {}", report.lock)
    };
    for (name, verdict) in &report.containers {
        if verdict.reasons.is_empty() {
            continue;
        }
        let reasons: Vec<String> = verdict.reasons.iter().map(|r| r.to_string()).collect();
        let (file, location) = github::container_site(name, &cookbook.path, &sources, &paths);
        // The container's key, not its Dockerfile: a mismatch is about the whole entry.
        let location = location.or_else(|| {
            let (_, s) = sources.iter().find(|(n, _)| n.as_str() == name)?;
            Some(s.location)
        });
        let file = match location {
            Some(_) => paths.relative(&cookbook.path),
            None => file,
        };
        let annotation = github::Annotation::error(
            format!("cookbook verify: {name} {what}"),
            format!("{name}: {}", reasons.join("\n")),
        )
        .at(file, location);
        let _ = writeln!(out, "{annotation}");
    }
}

/// The summary on stderr: in the terms of a lock check (up to date, stale) for `--locked`.
fn summary_line(report: &VerifyReport) -> String {
    let total = report.containers.len();
    let bad = report.mismatches();
    if report.locked {
        return format!("verify --locked: {} up to date, {bad} stale", total - bad);
    }
    format!(
        "verify: {} ok, {bad} mismatch(es){}{}{}",
        total - bad,
        match &report.revision {
            Some(c) => format!(" at revision {}", &c[..c.len().min(12)]),
            None => String::new(),
        },
        if report.registry_checked {
            ", registry checked"
        } else {
            ""
        },
        if report.rebuild_checked {
            ", rebuilt"
        } else {
            ""
        }
    )
}

/// `mismatch` is the word for a container that does not match: `MISMATCH`, or `STALE` for
/// `--locked`.
fn print_text(report: &VerifyReport, mismatch: &str, out: &mut dyn Write) {
    let width = report.containers.keys().map(String::len).max().unwrap_or(0);
    for (name, v) in &report.containers {
        match v.reasons.first() {
            None => {
                let _ = writeln!(
                    out,
                    "ok        {name:<width$}  {}",
                    v.input_hash.as_deref().unwrap_or_default()
                );
            }
            Some(first) => {
                let more = match v.reasons.len() - 1 {
                    0 => String::new(),
                    n => format!(" (+{n} more; --format json lists all)"),
                };
                let _ = writeln!(out, "{:<8}  {name:<width$}  {first}{more}", mismatch);
            }
        }
    }
}
