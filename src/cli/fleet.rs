//! Rendering `cookbook fleet status` (its flow is `ops::fleet`): a table of site, stage,
//! release, health, revision and how far behind, with each unreachable site's error on stderr;
//! or the report as JSON (`master`, `sites`, `rows`).
//!
//! Everything in the table came from a peer, which may be hostile: control characters are
//! printed escaped, never raw to a terminal.

use std::io::Write;

use serde::Serialize;

use super::args::FleetCommand;
use super::output;
use crate::error::Error;
use crate::ops::fleet::{status, FleetOptions, FleetReport, FleetRow, FleetSite};

/// The `--format json` document: the report and its rows.
#[derive(Serialize)]
struct Document<'a> {
    master: Option<&'a str>,
    sites: &'a [FleetSite],
    rows: &'a [FleetRow],
}

pub fn run(command: &FleetCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    match command {
        FleetCommand::Status {
            sites,
            ca,
            cert,
            key,
            format,
        } => {
            let report = status(&FleetOptions {
                sites: sites.clone(),
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })?;
            let rows = report.rows();
            if format.is_json() {
                output::json(
                    &Document {
                        master: report.master.as_deref(),
                        sites: &report.sites,
                        rows: &rows,
                    },
                    out,
                );
            } else {
                print_table(&report, &rows, out);
            }
            for site in report.sites.iter().filter(|s| s.status.is_none()) {
                let _ = writeln!(
                    err,
                    "{}: {}",
                    clean(&site.name),
                    clean(site.error.as_deref().unwrap_or("no answer"))
                );
            }
            report.into_result()
        }
    }
}

const HEADER: [&str; 6] = ["SITE", "STAGE", "RELEASE", "HEALTH", "REVISION", "BEHIND"];

fn print_table(report: &FleetReport, rows: &[FleetRow], out: &mut dyn Write) {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                clean(&r.site),
                clean(r.stage.as_deref().unwrap_or("-")),
                clean(r.release.as_deref().unwrap_or("-")),
                clean(&r.health),
                clean(r.revision.as_deref().map_or("-", short)),
                r.behind.map_or("-".to_owned(), |n| n.to_string()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text
    };
    let _ = writeln!(out, "{}", line(&HEADER));
    for row in &cells {
        let _ = writeln!(out, "{}", line(&row.each_ref().map(String::as_str)));
    }
    if let Some(master) = &report.master {
        let _ = writeln!(out, "master: {}", clean(short(master)));
    }
}

/// A revision as the table shows it: its first 12 characters.
fn short(revision: &str) -> &str {
    match revision.char_indices().nth(12) {
        Some((at, _)) => &revision[..at],
        None => revision,
    }
}

/// A peer's text with its control characters escaped.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}
