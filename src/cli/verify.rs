//! `cookbook verify`: arguments and output of the release engineer's check.
//!
//! Text: one line per container, `ok` with its input hash or `MISMATCH` with the first (most
//! specific) reason; a summary on stderr. JSON: one document with every container's status, all
//! its reasons and the hashes. The flow is `crate::ops::verify`, the checking `crate::verify`.

use std::io::Write;
use std::path::Path;

use super::args::VerifyArgs;
use super::output::json_sorted;
use super::{locate, Format};
use crate::error::Error;
use crate::ops::verify::{VerifyOptions, VerifyReport};

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
    let report = crate::ops::verify::verify(&cookbook, &opts)?;
    match args.format {
        Format::Text => print_text(&report, if args.locked { "STALE" } else { "MISMATCH" }, out),
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
    }
    let _ = writeln!(err, "{}", summary_line(&report));
    report.into_result()
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
