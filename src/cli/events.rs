//! `cookbook events`: its arguments as `ops::events` options, and the event log as aligned
//! columns or the report's JSON document. Lines of the log that were not events are warnings on
//! stderr (and the `skipped` list of the JSON document).

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::args::{EventKindArg, EventsArgs};
use super::output::json_sorted;
use super::Format;
use crate::error::Error;
use crate::ops::events::{self, Event, EventKind, EventsOptions, EventsReport};

pub fn run(
    cookbook: Option<&Path>,
    args: &EventsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let since = args
        .since
        .as_deref()
        .map(|s| events::parse_since(s, SystemTime::now()))
        .transpose()?;
    let opts = EventsOptions {
        cookbook: cookbook.map(Path::to_path_buf),
        state: args.state.clone(),
        since,
        kinds: args.kind.iter().map(|k| kind(*k)).collect(),
        site: args.site.clone(),
        stage: args.stage.clone(),
    };
    let report = events::list(&opts)?;
    for line in &report.skipped {
        let _ = writeln!(err, "warning: skipped {line}");
    }
    match args.format {
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
        Format::Text => text(&report, out),
    }
    Ok(())
}

fn kind(arg: EventKindArg) -> EventKind {
    match arg {
        EventKindArg::SyncRound => EventKind::SyncRound,
        EventKindArg::Apply => EventKind::Apply,
        EventKindArg::Deploy => EventKind::Deploy,
        EventKindArg::Approval => EventKind::Approval,
        EventKindArg::Promotion => EventKind::Promotion,
        EventKindArg::Rollback => EventKind::Rollback,
        EventKindArg::Down => EventKind::Down,
    }
}

/// One row per event under a header, each column as wide as its widest cell; the message last,
/// unpadded.
fn text(report: &EventsReport, out: &mut dyn Write) {
    if report.events.is_empty() {
        return;
    }
    let header = [
        "TIME",
        "KIND",
        "SITE/STAGE",
        "OUTCOME",
        "RELEASE",
        "REVISION",
        "WHO",
        "MESSAGE",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = std::iter::once(header)
        .chain(report.events.iter().map(row))
        .collect();
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (cell, w) in r.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&r[7]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn row(e: &Event) -> [String; 8] {
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let place = match (&e.site, &e.stage) {
        (Some(site), Some(stage)) => format!("{site}/{stage}"),
        (Some(site), None) => site.clone(),
        (None, Some(stage)) => format!("-/{stage}"),
        (None, None) => "-".to_owned(),
    };
    let revision = e
        .revision
        .as_deref()
        .map(|r| r.chars().take(12).collect::<String>());
    let who = &e.who;
    let mut by = dash(who.user.as_deref());
    if let Some(via) = &who.via {
        by.push_str(&format!(" ({via})"));
    }
    if let Some(delivery) = &who.delivery {
        by.push_str(&format!(" delivery {delivery}"));
    }
    if let Some(job) = &who.ci_job {
        by.push_str(&format!(" ci {job}"));
    }
    [
        e.time.clone(),
        e.kind.as_str().to_owned(),
        place,
        e.outcome.as_str().to_owned(),
        dash(e.release.as_deref()),
        dash(revision.as_deref()),
        by,
        dash(e.message.as_deref()),
    ]
    .map(|cell| printable(&cell))
}

/// A cell as the terminal may show it: the log is read back as hostile input (a hand edit), so
/// a control character (an escape sequence, a newline) is shown escaped, never sent.
fn printable(cell: &str) -> String {
    cell.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
