//! The sync state directory: its layout, and the small JSON record of what the sync did.
//!
//! Place in the pipeline: an edge. Only `sync` writes here; `cookbook sync status` reads it.
//!
//! Layout of `--state DIR`:
//!
//! ```text
//! DIR/state.json           this record (replaced atomically: temp file, fsync, rename, fsync dir)
//! DIR/lock                 the lock file; holds the holder's pid, host, start time and command
//! DIR/mirror.git/          bare mirror of the remote branch (a cache; safe to delete)
//! DIR/checkouts/<sha>/     complete checkouts of validated revisions (the current and the previous)
//! DIR/current -> checkouts/<sha>   what the site serves; switched by renaming a new symlink over it
//! ```
//!
//! Invariants: `current` only ever points at a checkout that was fully written and validated
//! before it was renamed into place, so it is usable after a crash at any point. When a crash
//! leaves `state.json` behind `current`, the next round trusts `current` (see `Recovery`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SyncError;

/// The version of `state.json`'s layout. Bump when a field changes meaning.
pub const STATE_FORMAT: u32 = 1;

/// Paths inside a state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn mirror(&self) -> PathBuf {
        self.root.join("mirror.git")
    }
    pub fn checkouts(&self) -> PathBuf {
        self.root.join("checkouts")
    }
    pub fn checkout(&self, commit: &str) -> PathBuf {
        self.checkouts().join(commit)
    }
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// Creates the directory (and parents) if missing.
    pub fn create(&self) -> Result<(), SyncError> {
        std::fs::create_dir_all(self.checkouts()).map_err(|source| SyncError::Io {
            path: self.checkouts(),
            source,
        })
    }

    /// Reads `state.json`; a missing file is an empty state (nothing synced yet).
    pub fn read(&self) -> Result<SyncState, SyncError> {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| SyncError::StateCorrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
            Err(source) => Err(SyncError::Io { path, source }),
        }
    }

    /// Replaces `state.json` atomically: a reader sees the old record or the new one, never a mix.
    pub fn write(&self, state: &SyncState) -> Result<(), SyncError> {
        let mut bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
        bytes.push(b'\n');
        write_atomically(&self.state_file(), &bytes)
    }

    /// The commit `current` points at, if any.
    pub fn current_commit(&self) -> Result<Option<String>, SyncError> {
        let link = self.current_link();
        match std::fs::read_link(&link) {
            Ok(target) => Ok(target
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SyncError::Io { path: link, source }),
        }
    }

    /// Points `current` at `checkouts/<commit>` atomically: a new symlink is renamed over the old
    /// one, so readers of `current/...` see the old tree or the new one, never neither.
    pub fn switch_current(&self, commit: &str) -> Result<(), SyncError> {
        let link = self.current_link();
        let tmp = self.root.join("current.tmp");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SyncError::Io { path, source }
        };
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SyncError::Io { path: tmp, source }),
        }
        // Relative, so that the state directory can be moved or mounted elsewhere.
        std::os::unix::fs::symlink(Path::new("checkouts").join(commit), &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &link).map_err(io(&link))?;
        sync_dir(&self.root)
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory, fsynced, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| SyncError::Io { path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), SyncError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SyncError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub format: u32,
    /// The remote, branch, file and site of the last round that wrote this record.
    pub remote: Option<String>,
    pub branch: Option<String>,
    pub path: Option<String>,
    pub site: Option<String>,
    /// The revision `current` points at: the last good one.
    pub current: Option<Taken>,
    /// The revision before it; its checkout is kept for a manual roll-back.
    pub previous: Option<String>,
    /// The last revision whose apply succeeded (only with `--apply`).
    pub last_applied: Option<Stamp>,
    /// The last revision the sync looked at, with the outcome and, if refused, why.
    pub last_attempt: Option<Attempt>,
    /// Every history rewrite taken with `--allow-force`, oldest first.
    #[serde(default)]
    pub forced: Vec<ForcedUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    pub commit: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// Taken over a history rewrite with `--allow-force`.
    pub forced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub commit: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub commit: String,
    pub at: String,
    pub outcome: AttemptOutcome,
    /// Rendered problems (`file:line:col: error[code]: ...`), empty when the revision was taken.
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// Valid; `current` points at it.
    Taken,
    /// Taken and applied.
    Applied,
    /// Taken, but its apply failed; the next round retries the apply.
    ApplyFailed,
    /// The cookbook at this revision is invalid (or lacks the site); `current` kept.
    Invalid,
    /// Not a descendant of `current` (a force-push, or the branch went back); refused.
    NotFastForward,
    /// `--require-signed` and the commit has no signature git could verify; refused.
    Unsigned,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Taken => "taken",
            AttemptOutcome::Applied => "applied",
            AttemptOutcome::ApplyFailed => "apply-failed",
            AttemptOutcome::Invalid => "invalid",
            AttemptOutcome::NotFastForward => "not-fast-forward",
            AttemptOutcome::Unsigned => "unsigned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedUpdate {
    pub from: String,
    pub to: String,
    pub at: String,
}

/// The current time as RFC 3339 UTC, to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        assert_eq!(state_dir.read().unwrap(), SyncState::default());
        let state = SyncState {
            format: STATE_FORMAT,
            current: Some(Taken {
                commit: "a".repeat(40),
                at: now(),
                forced: false,
            }),
            last_attempt: Some(Attempt {
                commit: "b".repeat(40),
                at: now(),
                outcome: AttemptOutcome::Invalid,
                errors: vec!["x:1:1: error[schema/type]: bad".into()],
            }),
            ..SyncState::default()
        };
        state_dir.write(&state).unwrap();
        assert_eq!(state_dir.read().unwrap(), state);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["state.json".to_owned()]);
    }

    #[test]
    fn switch_current_replaces_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        state_dir.create().unwrap();
        assert_eq!(state_dir.current_commit().unwrap(), None);
        state_dir.switch_current("aaa").unwrap();
        state_dir.switch_current("bbb").unwrap();
        assert_eq!(state_dir.current_commit().unwrap().as_deref(), Some("bbb"));
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), b"{ half").unwrap();
        let err = StateDir::new(dir.path()).read().unwrap_err();
        assert!(matches!(err, SyncError::StateCorrupt { .. }), "{err:?}");
    }
}
