//! `cookbook update [CONTAINER…]`: arguments and output of re-resolving base images on purpose.
//!
//! The flow is `crate::ops::update`. Text: one line per base (`pinned`, `unchanged` or `moved`),
//! warnings about bases not asked for and a summary on stderr; JSON: one document.

use std::io::Write;
use std::path::Path;

use super::args::UpdateArgs;
use super::output::json_sorted;
use super::{locate, Format};
use crate::error::Error;
use crate::ops::update::{Name, UpdateOptions, UpdateReport, UpdateWarning};

pub fn run(
    file: &Path,
    args: &UpdateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let mut ws = super::output::open_file(locate::cookbook_file(file.to_path_buf()), err)?;
    ws.engine = args.engine.selector();
    let opts = UpdateOptions {
        containers: args.containers.clone(),
    };
    let report = crate::ops::update::update(&ws, &opts)?;
    match args.format {
        Format::Text => print_text(&report, out),
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
    }
    for w in &report.warnings {
        let _ = writeln!(err, "{}", warning(w));
    }
    let _ = writeln!(
        err,
        "{}",
        if report.rebuilds.is_empty() {
            "update: no base moved; the next apply rebuilds nothing for it".to_owned()
        } else {
            format!(
                "update: {} base(s) moved; the next apply rebuilds {}",
                report.moved.len(),
                names(&report.rebuilds, ", ")
            )
        }
    );
    Ok(())
}

fn print_text(report: &UpdateReport, out: &mut dyn Write) {
    let width = report.bases.keys().map(String::len).max().unwrap_or(0);
    for (reference, base) in &report.bases {
        let now = &base.pinned;
        let what = match &base.before {
            None => format!("pinned     {} ({})", now.digest, now.source.as_str()),
            Some(b) if b == now => format!("unchanged  {} ({})", now.digest, now.source.as_str()),
            Some(b) => format!(
                "moved      {} → {} ({})",
                b.digest,
                now.digest,
                now.source.as_str()
            ),
        };
        let _ = writeln!(out, "{reference:<width$}  {what}");
    }
}

fn warning(w: &UpdateWarning) -> String {
    match w {
        UpdateWarning::Moved(moved) => format!(
            "warning: base image {} moved under its tag too (pinned {}, now {}): \
             `cookbook update {}` moves it",
            moved.reference,
            moved.pinned.digest,
            moved.now.digest,
            names(&moved.containers, " ")
        ),
        UpdateWarning::Unchecked { reference, why } => {
            format!("warning: cannot check base image {reference}: {why}")
        }
    }
}

fn names(names: &[Name], separator: &str) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(separator)
}
