//! `cookbook down`: its arguments into `ops::down`'s options, its report rendered.

use std::io::Write;
use std::path::Path;

use super::args::DownArgs;
use super::output::json_sorted;
use super::Format;
use crate::error::Error;
use crate::ops::down::{summary, DownOptions, DownReport, Removed};
use crate::ops::{self, Workspace};

/// Tears the stage down and prints what went: one line per object, then the summary (text), or
/// the report (`--format json`). Warnings (an event not recorded) go to stderr.
pub fn run(
    file: &Path,
    args: &DownArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let mut ws = Workspace::open(super::locate::cookbook_file(file.to_path_buf()))?;
    ws.engine = args.engine.selector();
    let report = ops::down::down(
        &ws,
        &DownOptions {
            site: args.site.clone(),
            stage: args.stage.clone(),
            volumes: args.volumes,
        },
    )?;
    for w in &report.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    match args.format {
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
        Format::Text => text(out, &report),
    }
    Ok(())
}

fn text(out: &mut dyn Write, report: &DownReport) {
    let mut line = |verb: &str, what: &str, name: &str| {
        let _ = writeln!(out, "  {verb:<8} {what:<10} {name}");
    };
    match &report.removed {
        Removed::Docker(t) => {
            for c in &t.containers {
                line("removed", "container", c);
            }
            for n in &t.networks {
                line("removed", "network", n);
            }
            for v in &t.volumes {
                line("removed", "volume", v);
            }
            for n in &t.kept_networks {
                line("kept", "network", n);
            }
            for v in &t.kept_volumes {
                line(
                    "kept",
                    "volume",
                    &format!("{v} (persistent: --volumes removes it)"),
                );
            }
        }
        Removed::Kubernetes(d) => {
            for o in &d.removed {
                line("deleted", "", o);
            }
            for o in &d.kept {
                line(
                    "kept",
                    "",
                    &format!("{o} (persistent: --volumes deletes it)"),
                );
            }
        }
    }
    let _ = writeln!(out, "{}", summary(report));
    if let Some(release) = &report.release {
        let _ = writeln!(
            out,
            "release {release} is recorded as down: `cookbook rollback --site {} --stage {}` brings it back",
            report.site, report.stage
        );
    }
}
