//! `cookbook events`: the event log of a state directory, filtered, as a report.
//!
//! The log is `state::events`' (`events.jsonl` and its rotated files); this flow finds which
//! state directory to read — `--state DIR` (a sync or agent state directory), else `.cookbook/`
//! beside the cookbook `ops::locate` finds — reads it, and keeps the events asked for. The
//! cookbook itself is not opened: the log of a cookbook that no longer validates still reads.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::Error;
use crate::state::events::EventLog;
pub use crate::state::events::{Event, EventKind, EventOutcome, Who};

/// What `cookbook events` reads and keeps.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// `-f` as given: the cookbook whose state directory to read (when `state` is not given).
    pub cookbook: Option<PathBuf>,
    /// `--state DIR`: a state directory named outright.
    pub state: Option<PathBuf>,
    /// Events at or after this time only.
    pub since: Option<SystemTime>,
    /// These kinds only (any kind when empty).
    pub kinds: Vec<EventKind>,
    pub site: Option<String>,
    pub stage: Option<String>,
}

/// The events kept, oldest first, and the log's lines that were not events (`path:line: why`).
/// Its serialization is the `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct EventsReport {
    pub events: Vec<Event>,
    pub skipped: Vec<String>,
}

/// `cookbook events`. A state directory without a log (or none at all) has no events; one that
/// is a file is input at fault (exit 2).
pub fn list(opts: &EventsOptions) -> Result<EventsReport, Error> {
    let dir = match &opts.state {
        Some(dir) => dir.clone(),
        None => crate::state::dir_for(&super::locate::resolve(opts.cookbook.as_deref())?),
    };
    let read = EventLog::in_dir(&dir).read(opts.since)?;
    let wanted = |e: &Event| {
        (opts.kinds.is_empty() || opts.kinds.contains(&e.kind))
            && opts
                .site
                .as_ref()
                .is_none_or(|s| e.site.as_ref() == Some(s))
            && opts
                .stage
                .as_ref()
                .is_none_or(|s| e.stage.as_ref() == Some(s))
    };
    Ok(EventsReport {
        events: read.events.into_iter().filter(wanted).collect(),
        skipped: read.skipped,
    })
}

/// `--since WHEN`: a duration (`90s`, `30m`, `1h`, `2days`: that long before `now`) or an RFC 3339
/// time (`2026-01-31T12:00:00Z`). Anything else is a usage error saying what is accepted.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, Error> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    Err(Error::Usage {
        message: format!("--since {text:?}: neither a duration nor an RFC 3339 time"),
        help: Some(
            "give how long ago (`30m`, `1h`, `2days`) or a time (`2026-01-31T12:00:00Z`)"
                .to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_ago_or_a_time() {
        let now = humantime::parse_rfc3339("2026-02-01T12:00:00Z").unwrap();
        let at = |s: &str| humantime::format_rfc3339_seconds(parse_since(s, now).unwrap());
        assert_eq!(at("1h").to_string(), "2026-02-01T11:00:00Z");
        assert_eq!(at("30m").to_string(), "2026-02-01T11:30:00Z");
        assert_eq!(at("2days").to_string(), "2026-01-30T12:00:00Z");
        assert_eq!(
            at("2026-01-31T08:00:00Z").to_string(),
            "2026-01-31T08:00:00Z"
        );
        for bad in ["", "yesterday", "1 fortnight", "2026-13-01T00:00:00Z"] {
            let e = parse_since(bad, now).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn filters_keep_the_kinds_site_and_stage_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::in_dir(dir.path());
        for (kind, site, stage) in [
            (EventKind::Deploy, "a", "dev"),
            (EventKind::Rollback, "a", "dev"),
            (EventKind::Deploy, "b", "prod"),
        ] {
            let mut e = Event::now(kind, &Who::default(), EventOutcome::Ok);
            e.site = Some(site.into());
            e.stage = Some(stage.into());
            log.append(&e).unwrap();
        }
        let list = |f: &dyn Fn(&mut EventsOptions)| {
            let mut opts = EventsOptions {
                state: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            f(&mut opts);
            list(&opts).unwrap().events.len()
        };
        assert_eq!(list(&|_| {}), 3);
        assert_eq!(list(&|o| o.kinds = vec![EventKind::Deploy]), 2);
        assert_eq!(list(&|o| o.site = Some("a".into())), 2);
        assert_eq!(list(&|o| o.stage = Some("prod".into())), 1);
        let missing = EventsOptions {
            state: Some(dir.path().join("none")),
            ..Default::default()
        };
        assert!(list_is_empty(&missing));
    }

    fn list_is_empty(opts: &EventsOptions) -> bool {
        let report = list(opts).unwrap();
        report.events.is_empty() && report.skipped.is_empty()
    }
}
