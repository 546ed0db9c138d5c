//! Rendering `cookbook diff` (its flow is `ops::diff`).
//!
//! Differences are the normal answer, not an error: they are printed, and the exit code is 1 as
//! with diff(1) — with no `error:` line. Changed texts (a Dockerfile, a generated recipe, run
//! commands) are shown as a unified line diff.

use std::io::Write;
use std::path::Path;

use super::args::DiffArgs;
use super::output::json;
use crate::error::Error;
use crate::ops::diff::{self as ops, DiffReport};
use crate::ops::Workspace;

pub fn run(args: &DiffArgs, top: Option<&Path>, out: &mut dyn Write) -> Result<(), Error> {
    let report = match &args.rev {
        Some(rev) => {
            let ws = Workspace::open(args.cookbook.locate(top)?)?;
            ops::against_revision(&ws, rev, &args.args)?
        }
        None => {
            let [a, b] = args.args.as_slice() else {
                return Err(Error::Usage {
                    message: format!(
                        "`cookbook diff` takes two explain documents, got {}",
                        args.args.len()
                    ),
                    help: Some(
                        "`cookbook diff A.json B.json`, or `cookbook diff --rev REV [CONTAINER…]` \
                         to compare the working tree with a git revision"
                            .to_owned(),
                    ),
                });
            };
            ops::manifests(Path::new(a), Path::new(b))?
        }
    };
    if args.format.is_json() {
        json(&report, out);
    } else {
        text(&report, out);
    }
    match report.differences() {
        0 => Ok(()),
        n => Err(Error::Differences(n)),
    }
}

fn text(report: &DiffReport, out: &mut dyn Write) {
    let hash = |h: &Option<String>| h.clone().unwrap_or_else(|| "(absent)".to_owned());
    for c in &report.containers {
        match (&c.from, &c.to) {
            (Some(a), Some(_)) if c.identical => {
                let _ = writeln!(out, "{}: identical ({a})", c.container);
                continue;
            }
            (None, _) | (_, None) => {
                let _ = writeln!(
                    out,
                    "{}: {} → {} (container {})",
                    c.container,
                    hash(&c.from),
                    hash(&c.to),
                    if c.from.is_none() { "added" } else { "removed" }
                );
                continue;
            }
            _ => {}
        }
        let _ = writeln!(out, "{}: {} → {}", c.container, hash(&c.from), hash(&c.to));
        for change in &c.changes {
            let _ = writeln!(out, "  {}", change.message);
            for line in change.unified_diff.iter().flat_map(|d| d.lines()) {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}
