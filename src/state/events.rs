//! The event log: the audit trail of what happened to a site, one JSON object per line.
//!
//! `events.jsonl` in a state directory (`.cookbook/`, or a sync state directory), appended to —
//! never rewritten — one event per sync round, apply, deploy, approval, promotion and rollback.
//! `cookbook events` prints it and the agent's dashboard draws its timeline from it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The log's file name in a state directory.
pub const FILE: &str = "events.jsonl";

/// One event: what happened, where, to which revision and images, who caused it, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, whole seconds (`state::now`'s form).
    pub time: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The cookbook's git revision, where known (a sync round's commit, an apply's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A deploy's release id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Container → image digest (`sha256:…`): what was deployed or published.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
    pub who: Who,
    pub outcome: EventOutcome,
    /// One line for a person: what happened, or why it failed. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SyncRound,
    Apply,
    Deploy,
    Approval,
    Promotion,
    Rollback,
    /// `cookbook down`: a stage torn down.
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Done as asked (a round that took or found its revision, a deploy that converged, …).
    Ok,
    /// Nothing to do: a round up to date, an apply that built nothing, a deploy that changed nothing.
    Unchanged,
    /// Not done, and not a failure: a stage whose progression rule is not met yet, a closed window.
    Skipped,
    /// A revision the sync refused (invalid, unsigned, a history rewrite).
    Refused,
    /// Failed; a deploy that changed something was rolled back (`RolledBack` says so).
    Failed,
    /// A failed deploy whose wave was rolled back to what ran before.
    RolledBack,
}

/// Who caused an event: the user the process runs as, the CI job it runs in, and the webhook
/// delivery that started the round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// What started it: `cli`, `sync`, `agent:timer`, `agent:webhook`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl EventKind {
    /// The name the log and `--kind` use (`sync_round`, `deploy`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SyncRound => "sync_round",
            EventKind::Apply => "apply",
            EventKind::Deploy => "deploy",
            EventKind::Approval => "approval",
            EventKind::Promotion => "promotion",
            EventKind::Rollback => "rollback",
            EventKind::Down => "down",
        }
    }
}

impl EventOutcome {
    /// The name the log uses (`ok`, `rolled_back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Ok => "ok",
            EventOutcome::Unchanged => "unchanged",
            EventOutcome::Skipped => "skipped",
            EventOutcome::Refused => "refused",
            EventOutcome::Failed => "failed",
            EventOutcome::RolledBack => "rolled_back",
        }
    }
}

impl Event {
    /// An event of `kind` happening now, caused by `who`, ended as `outcome`; the caller fills in
    /// where and what.
    pub fn now(kind: EventKind, who: &Who, outcome: EventOutcome) -> Event {
        Event {
            // `sync::state::now`'s form; `state` is below `sync` and `deploy`, so it cannot
            // import their helpers without an import cycle.
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            kind,
            site: None,
            stage: None,
            revision: None,
            release: None,
            digests: BTreeMap::new(),
            who: who.clone(),
            outcome,
            message: None,
        }
    }

    /// When it happened; `None` for a time that is not RFC 3339.
    pub fn at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.time).ok()
    }
}

impl Who {
    /// This process: the user it runs as, the CI job it runs in (when the environment names
    /// one), started through `via`.
    pub fn current(via: &str) -> Who {
        Who::from_env(
            |name| std::env::var(name).ok().filter(|v| !v.is_empty()),
            via,
        )
    }

    /// The webhook delivery that started it.
    pub fn with_delivery(self, delivery: Option<String>) -> Who {
        Who { delivery, ..self }
    }

    /// [`Who::current`] over any environment (tests pass a map).
    fn from_env(var: impl Fn(&str) -> Option<String>, via: &str) -> Who {
        let user = var("USER")
            .or_else(|| var("LOGNAME"))
            .or_else(|| uid().map(|uid| format!("uid:{uid}")));
        let github = || {
            let repository = var("GITHUB_REPOSITORY")?;
            let run = var("GITHUB_RUN_ID")?;
            let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
            let mut job = format!("{server}/{repository}/actions/runs/{run}");
            if let Some(name) = var("GITHUB_JOB") {
                job.push_str(&format!(" ({name})"));
            }
            Some(job)
        };
        // A bare `$CI=true` says there is a CI, not which job: it names nothing.
        let ci_job = github()
            .or_else(|| var("CI_JOB_URL"))
            .or_else(|| var("CI_JOB_ID").map(|id| format!("gitlab job {id}")))
            .or_else(|| var("BUILD_URL"));
        Who {
            user,
            ci_job,
            delivery: None,
            via: Some(via.to_owned()),
        }
    }
}

/// The process's user id, from the owner of `/proc/self` (the effective uid on Linux): std has
/// no `getuid`, and this spares a dependency for a fallback used only without `$USER`.
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The longest line read back (and written): a longer one is not an event of ours.
pub const LINE_MAX: usize = 64 * 1024;
/// The longest message kept in an event; the rest is cut (an error's Display can be long).
const MESSAGE_MAX: usize = 4 * 1024;
/// Where the log is rotated, and how many rotated files are kept.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_KEEP: usize = 5;

/// Why the log could not be read or written. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{}: not a directory (the event log lives in a state directory)", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read the event log {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the event log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: an event of {len} bytes is longer than a line may be ({LINE_MAX})", path.display())]
    TooLong { path: PathBuf, len: usize },
}

/// What [`EventLog::read`] and [`EventLog::tail`] found: the events, oldest first, and the lines
/// that were not events (`path:line: why`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    pub events: Vec<Event>,
    pub skipped: Vec<String>,
}

/// A state directory's event log: `events.jsonl` and its rotated files `events.jsonl.1` (the
/// newest) … `events.jsonl.<keep>` (the oldest).
///
/// Writers append whole lines under an exclusive `flock` on the log file itself, taken after
/// opening it and checked against the path afterwards (a writer that waited while another
/// rotated holds a lock on what is now `.1`, and opens the new file instead). So two processes
/// appending at once neither lose nor interleave lines, a killed writer leaves no stale lock, and
/// no lock file sits beside the log. Readers take no lock: a line is written by one `write_all`
/// on an `O_APPEND` file, so a reader sees whole lines, or a torn last one after a crash, which
/// it skips.
#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
}

impl EventLog {
    /// `<state_dir>/events.jsonl`, rotated at 8 MiB, 5 rotated files kept.
    pub fn in_dir(state_dir: &Path) -> EventLog {
        EventLog::with_limits(state_dir, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    pub fn with_limits(state_dir: &Path, max_bytes: u64, keep: usize) -> EventLog {
        EventLog {
            dir: state_dir.to_path_buf(),
            max_bytes,
            keep,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The `n`th rotated file (1: the newest); 0 is the live log.
    fn file(&self, n: usize) -> PathBuf {
        if n == 0 {
            self.path()
        } else {
            self.dir.join(format!("{FILE}.{n}"))
        }
    }

    /// Appends one line (creating the directory and file, mode 0600 for a new file); never
    /// rewrites a line. When the line would take the file past `max_bytes`, the file is rotated
    /// first (events.jsonl → .1 → .2 …, the oldest beyond `keep` removed).
    pub fn append(&self, event: &Event) -> Result<(), EventsError> {
        let path = self.path();
        let write_err = |source| EventsError::Write {
            path: path.clone(),
            source,
        };
        let mut event = event.clone();
        if let Some(message) = &mut event.message {
            *message = one_line(message);
        }
        let mut line = serde_json::to_vec(&event).expect("an event serializes");
        line.push(b'\n');
        if line.len() > LINE_MAX {
            return Err(EventsError::TooLong {
                path,
                len: line.len(),
            });
        }
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(EventsError::NotADirectory {
                path: self.dir.clone(),
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(write_err)?;
        let mut file = self.open_locked().map_err(write_err)?;
        let mut size = file.metadata().map_err(write_err)?.len();
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate().map_err(write_err)?;
            // Locked before the old one is let go, so a writer that waited on the old one finds
            // the new one held and waits again.
            let fresh = self.open_locked().map_err(write_err)?;
            drop(std::mem::replace(&mut file, fresh));
            size = file.metadata().map_err(write_err)?.len();
        }
        // A writer killed mid-line left a torn last line: end it first, so that it stays one
        // skipped line and this event is a line of its own.
        if size > 0 {
            let mut last = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut last, size - 1)
                .map_err(write_err)?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        file.write_all(&line).map_err(write_err)?;
        Ok(())
    }

    /// The live log, opened for appending and exclusively locked: the file the path names when
    /// the lock is granted (not one rotated away while this waited).
    fn open_locked(&self) -> std::io::Result<File> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let path = self.path();
        loop {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)?;
            fs4::FileExt::lock(&file)?;
            let held = file.metadata()?;
            match std::fs::metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(file),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Shifts the files by one: the oldest beyond `keep` goes, the live log becomes `.1`. Called
    /// with the live log locked.
    fn rotate(&self) -> std::io::Result<()> {
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.keep == 0 {
            return gone(std::fs::remove_file(self.path()));
        }
        gone(std::fs::remove_file(self.file(self.keep)))?;
        for n in (0..self.keep).rev() {
            gone(std::fs::rename(self.file(n), self.file(n + 1)))?;
        }
        Ok(())
    }

    /// The files to read, oldest first, each as it exists; a missing state directory has none.
    fn files(&self) -> Result<Vec<PathBuf>, EventsError> {
        match std::fs::metadata(&self.dir) {
            Ok(m) if !m.is_dir() => {
                return Err(EventsError::NotADirectory {
                    path: self.dir.clone(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(EventsError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        }
        Ok((0..=self.keep)
            .rev()
            .map(|n| self.file(n))
            .filter(|p| p.is_file())
            .collect())
    }

    /// The most any one file is read: a file this log wrote is at most `max_bytes` and one more
    /// line; a larger one was grown by hand, and its rest is not read.
    fn file_cap(&self) -> u64 {
        self.max_bytes.saturating_add(LINE_MAX as u64)
    }

    /// Every event at or after `since`, oldest first, across the rotated files. A line that does
    /// not parse (a torn last line after a crash, a hand edit) is skipped and named in
    /// `Events::skipped` as `path:line: why`; lines are capped (64 KiB) and so is each file.
    pub fn read(&self, since: Option<SystemTime>) -> Result<Events, EventsError> {
        let mut found = Events::default();
        for path in self.files()? {
            let read_err = |source| EventsError::Read {
                path: path.clone(),
                source,
            };
            // A rotated file is never written again, so its mtime is its last event's time
            // (or later): one wholly before `since` need not be read.
            if let (Some(since), true) = (since, path != self.path()) {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified());
                if modified.is_ok_and(|m| m < since) {
                    continue;
                }
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(read_err(source)),
            };
            let size = file.metadata().map_err(read_err)?.len();
            let mut reader = BufReader::new(file.take(self.file_cap()));
            let mut number = 0;
            loop {
                number += 1;
                let line = match next_line(&mut reader).map_err(read_err)? {
                    None => break,
                    Some(line) => line,
                };
                let event = match line.and_then(|l| parse(&l)) {
                    Ok(event) => event,
                    Err(why) => {
                        found
                            .skipped
                            .push(format!("{}:{number}: {why}", path.display()));
                        continue;
                    }
                };
                if since.is_none_or(|since| event.at().is_some_and(|at| at >= since)) {
                    found.events.push(event);
                }
            }
            if size > self.file_cap() {
                found.skipped.push(format!(
                    "{}: longer than {} bytes: the rest is not read",
                    path.display(),
                    self.file_cap()
                ));
            }
        }
        Ok(found)
    }

    /// The newest `n` events, oldest first (the dashboard's timeline): reads each file from its
    /// end, a growing window at a time, and goes to an older file only when the newer ones hold
    /// fewer than `n` events. Lines skipped in what was read are named by byte offset.
    pub fn tail(&self, n: usize) -> Result<Events, EventsError> {
        let mut newest_first: Vec<Event> = Vec::new();
        let mut skipped = Vec::new();
        for path in self.files()?.into_iter().rev() {
            if newest_first.len() >= n {
                break;
            }
            let want = n - newest_first.len();
            let (events, bad) = self.tail_of(&path, want)?;
            newest_first.extend(events.into_iter().rev().take(want));
            skipped.extend(bad);
        }
        newest_first.reverse();
        Ok(Events {
            events: newest_first,
            skipped,
        })
    }

    /// The last events of one file (oldest first; at least `want` when it holds that many) and
    /// the lines skipped on the way.
    fn tail_of(&self, path: &Path, want: usize) -> Result<(Vec<Event>, Vec<String>), EventsError> {
        let read_err = |source| EventsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(source) => return Err(read_err(source)),
        };
        let size = file.metadata().map_err(read_err)?.len();
        let floor = size.saturating_sub(self.file_cap());
        let mut window = (LINE_MAX as u64).max(256 * want as u64);
        loop {
            let start = size.saturating_sub(window).max(floor);
            file.seek(SeekFrom::Start(start)).map_err(read_err)?;
            let mut bytes = Vec::new();
            (&mut file)
                .take(size - start)
                .read_to_end(&mut bytes)
                .map_err(read_err)?;
            // From the middle of the file, the first piece is the end of a line cut in two.
            let mut offset = start;
            let mut body = &bytes[..];
            if start > 0 {
                match body.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        offset += i as u64 + 1;
                        body = &body[i + 1..];
                    }
                    None => body = &[],
                }
            }
            let mut events = Vec::new();
            let mut skipped = Vec::new();
            for piece in body.split_inclusive(|&b| b == b'\n') {
                let at = offset;
                offset += piece.len() as u64;
                let line = if piece.ends_with(b"\n") {
                    Ok(piece[..piece.len() - 1].to_vec())
                } else {
                    Err("a torn line (no newline at its end)".to_owned())
                };
                let line = line.and_then(|l| {
                    if l.len() > LINE_MAX {
                        Err(format!("a line longer than {LINE_MAX} bytes"))
                    } else {
                        Ok(l)
                    }
                });
                match line.and_then(|l| parse(&l)) {
                    Ok(event) => events.push(event),
                    Err(why) => skipped.push(format!("{}: byte {at}: {why}", path.display())),
                }
            }
            if events.len() >= want || start == floor {
                return Ok((events, skipped));
            }
            window = window.saturating_mul(4);
        }
    }
}

/// A message as one line of at most [`MESSAGE_MAX`] bytes: a multi-line error's lines joined.
fn one_line(message: &str) -> String {
    let mut line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > MESSAGE_MAX {
        let mut end = MESSAGE_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// The next line of `reader` without its newline: `Ok(None)` at the end, `Ok(Err(why))` for a
/// line that cannot be an event (past [`LINE_MAX`], whose rest is passed over, or torn: no
/// newline at the end of the file).
fn next_line(reader: &mut impl BufRead) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(Ok(line)));
    }
    if line.len() <= LINE_MAX {
        return Ok(Some(Err("a torn line (no newline at its end)".to_owned())));
    }
    // Too long: pass over the rest of it without keeping it.
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                break;
            }
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    }
    Ok(Some(Err(format!("a line longer than {LINE_MAX} bytes"))))
}

/// One line as an event, or why it is not one.
fn parse(line: &[u8]) -> Result<Event, String> {
    let event: Event = serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
    if event.at().is_none() {
        return Err(format!(
            "not an event: time {:?} is not RFC 3339",
            event.time
        ));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(n: usize) -> Event {
        let mut e = Event::now(EventKind::Deploy, &Who::default(), EventOutcome::Ok);
        e.release = Some(format!("r{n}"));
        e
    }

    fn releases(events: &Events) -> Vec<String> {
        events
            .events
            .iter()
            .map(|e| e.release.clone().unwrap())
            .collect()
    }

    fn lines(path: &Path) -> usize {
        std::fs::read_to_string(path).unwrap().lines().count()
    }

    #[test]
    fn appends_whole_lines_to_a_new_private_file_and_reads_them_back_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::in_dir(&dir.path().join("state"));
        assert_eq!(log.read(None).unwrap(), Events::default());
        for n in 0..3 {
            log.append(&event(n)).unwrap();
        }
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let read = log.read(None).unwrap();
        assert_eq!(releases(&read), ["r0", "r1", "r2"]);
        assert!(read.skipped.is_empty());
        // One JSON object per line, in the wire form.
        let text = std::fs::read_to_string(log.path()).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["kind"], "deploy");
        assert_eq!(first["outcome"], "ok");
        // A message is kept to one line.
        let mut e = event(3);
        e.message = Some("first\nsecond".into());
        log.append(&e).unwrap();
        assert_eq!(lines(&log.path()), 4);
        assert_eq!(
            log.read(None).unwrap().events[3].message.as_deref(),
            Some("first second")
        );
    }

    #[test]
    fn rotates_past_the_limit_and_keeps_only_so_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&event(0)).unwrap().len() as u64 + 1;
        // Three lines a file, two rotated files kept.
        let log = EventLog::with_limits(dir.path(), one * 3, 2);
        for n in 0..10 {
            log.append(&event(n)).unwrap();
        }
        // 10 events: the live file holds r9, .1 r6–r8, .2 r3–r5; r0–r2 (.3) were removed.
        assert_eq!(lines(&log.path()), 1);
        assert_eq!(lines(&dir.path().join("events.jsonl.1")), 3);
        assert_eq!(lines(&dir.path().join("events.jsonl.2")), 3);
        assert!(!dir.path().join("events.jsonl.3").exists());
        let read = log.read(None).unwrap();
        assert_eq!(releases(&read), ["r3", "r4", "r5", "r6", "r7", "r8", "r9"]);
        // The tail crosses into the rotated files only as far as it must.
        assert_eq!(releases(&log.tail(2).unwrap()), ["r8", "r9"]);
        assert_eq!(
            releases(&log.tail(5).unwrap()),
            ["r5", "r6", "r7", "r8", "r9"]
        );
        assert_eq!(releases(&log.tail(50).unwrap()), releases(&read));
        assert_eq!(log.tail(0).unwrap(), Events::default());
        // Nothing kept: the full file is dropped.
        let none = EventLog::with_limits(&dir.path().join("none"), one * 2, 0);
        for n in 0..5 {
            none.append(&event(n)).unwrap();
        }
        assert_eq!(releases(&none.read(None).unwrap()), ["r4"]);
    }

    #[test]
    fn since_keeps_what_happened_at_or_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::in_dir(dir.path());
        let mut old = event(0);
        old.time = "2020-01-01T00:00:00Z".into();
        log.append(&old).unwrap();
        log.append(&event(1)).unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(releases(&log.read(Some(hour_ago)).unwrap()), ["r1"]);
        let at = humantime::parse_rfc3339("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(releases(&log.read(Some(at)).unwrap()), ["r0", "r1"]);
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(log.read(Some(later)).unwrap().events.is_empty());
    }

    #[test]
    fn tail_reads_a_growing_window_from_the_end_of_a_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::in_dir(dir.path());
        for n in 0..2000 {
            let mut e = event(n);
            e.message = Some("x".repeat(300));
            log.append(&e).unwrap();
        }
        // ~700 KB: 500 events need more than the first window.
        assert!(std::fs::metadata(log.path()).unwrap().len() > 600_000);
        let all = releases(&log.read(None).unwrap());
        let tail = log.tail(500).unwrap();
        assert!(tail.skipped.is_empty(), "{:?}", tail.skipped);
        assert_eq!(releases(&tail), all[1500..]);
        assert_eq!(releases(&log.tail(1).unwrap()), ["r1999"]);
    }

    #[test]
    fn read_since_passes_over_rotated_files_last_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&event(0)).unwrap().len() as u64 + 1;
        let log = EventLog::with_limits(dir.path(), one * 2, 3);
        for n in 0..4 {
            let mut e = event(n);
            e.time = format!("2020-01-0{}T00:00:00Z", n + 1);
            log.append(&e).unwrap();
        }
        log.append(&event(4)).unwrap();
        // .2: r0 r1, .1: r2 r3, live: r4. The oldest file last written long ago is not read
        // even when a line in it would claim a later time.
        let old = dir.path().join("events.jsonl.2");
        let mut late = event(9);
        late.time = "2030-01-01T00:00:00Z".into();
        let mut f = OpenOptions::new().append(true).open(&old).unwrap();
        f.write_all(&serde_json::to_vec(&late).unwrap()).unwrap();
        f.write_all(b"\n").unwrap();
        f.set_modified(humantime::parse_rfc3339("2020-01-02T00:00:00Z").unwrap())
            .unwrap();
        drop(f);
        let since = humantime::parse_rfc3339("2020-01-03T00:00:00Z").unwrap();
        assert_eq!(
            releases(&log.read(Some(since)).unwrap()),
            ["r2", "r3", "r4"]
        );
        assert_eq!(
            releases(&log.read(None).unwrap()),
            ["r0", "r1", "r9", "r2", "r3", "r4"]
        );
    }

    #[test]
    fn lines_that_are_not_events_are_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::in_dir(dir.path());
        log.append(&event(0)).unwrap();
        // A hand edit, a line far too long, a bad time, then a writer killed mid-line.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"hand\": \"edit\"}\n").unwrap();
        f.write_all(&vec![b'x'; LINE_MAX + 10]).unwrap();
        f.write_all(b"\n").unwrap();
        let mut bad_time = serde_json::to_value(event(9)).unwrap();
        bad_time["time"] = "yesterday".into();
        f.write_all(format!("{bad_time}\n").as_bytes()).unwrap();
        f.write_all(br#"{"time":"2026-01-01T00:00:00Z","ki"#)
            .unwrap();
        drop(f);
        let read = log.read(None).unwrap();
        assert_eq!(releases(&read), ["r0"]);
        let path = log.path().display().to_string();
        assert_eq!(read.skipped.len(), 4, "{:?}", read.skipped);
        assert!(read.skipped[0].starts_with(&format!("{path}:2: not an event: ")));
        assert_eq!(
            read.skipped[1],
            format!("{path}:3: a line longer than {LINE_MAX} bytes")
        );
        assert!(read.skipped[2].contains(":4: not an event: time \"yesterday\""));
        assert_eq!(
            read.skipped[3],
            format!("{path}:5: a torn line (no newline at its end)")
        );
        // The next append ends the torn line first: it stays one skipped line, the event is whole.
        log.append(&event(1)).unwrap();
        let read = log.read(None).unwrap();
        assert_eq!(releases(&read), ["r0", "r1"]);
        assert_eq!(read.skipped.len(), 4);
        let tail = log.tail(2).unwrap();
        assert_eq!(releases(&tail), ["r0", "r1"]);
        assert!(tail.skipped.iter().any(|s| s.contains("not an event")));
    }

    #[test]
    fn a_state_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let log = EventLog::in_dir(&file);
        assert!(matches!(
            log.read(None),
            Err(EventsError::NotADirectory { .. })
        ));
        assert!(matches!(
            log.append(&event(0)),
            Err(EventsError::NotADirectory { .. })
        ));
    }

    #[test]
    fn concurrent_appends_lose_and_interleave_nothing_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        // Small files, so that writers rotate under each other many times.
        let log = EventLog::with_limits(dir.path(), 4096, 100);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let log = &log;
                scope.spawn(move || {
                    for i in 0..50 {
                        let mut e = event(t * 1000 + i);
                        // Long enough that a torn write would show.
                        e.message = Some("m".repeat(200));
                        log.append(&e).unwrap();
                    }
                });
            }
        });
        let read = log.read(None).unwrap();
        assert!(read.skipped.is_empty(), "{:?}", read.skipped);
        assert_eq!(read.events.len(), 400);
        let mut seen = releases(&read);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 400);
        // Each writer's own events stay in its order.
        for t in 0..8 {
            let mine: Vec<usize> = read
                .events
                .iter()
                .filter_map(|e| e.release.as_ref()?.strip_prefix('r')?.parse().ok())
                .filter(|n: &usize| n / 1000 == t)
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        }
    }

    #[test]
    fn who_names_the_user_and_the_ci_job_the_environment_gives() {
        let env = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        let who = Who::from_env(env(&[("USER", "alice"), ("CI", "true")]), "cli");
        assert_eq!(who.user.as_deref(), Some("alice"));
        assert_eq!(who.ci_job, None);
        assert_eq!(who.via.as_deref(), Some("cli"));
        let who = Who::from_env(
            env(&[
                ("LOGNAME", "runner"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_RUN_ID", "42"),
                ("GITHUB_JOB", "deploy"),
            ]),
            "cli",
        );
        assert_eq!(who.user.as_deref(), Some("runner"));
        assert_eq!(
            who.ci_job.as_deref(),
            Some("https://github.com/o/r/actions/runs/42 (deploy)")
        );
        let gitlab = Who::from_env(env(&[("CI_JOB_ID", "7")]), "sync");
        assert_eq!(gitlab.ci_job.as_deref(), Some("gitlab job 7"));
        assert!(gitlab.user.unwrap().starts_with("uid:"));
        let jenkins = Who::from_env(env(&[("BUILD_URL", "https://j/job/1/")]), "sync")
            .with_delivery(Some("d-1".into()));
        assert_eq!(jenkins.ci_job.as_deref(), Some("https://j/job/1/"));
        assert_eq!(jenkins.delivery.as_deref(), Some("d-1"));
    }
}
