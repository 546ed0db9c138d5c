//! The state directory's lock: two syncs on one state never run at once.
//!
//! Place in the pipeline: an edge, taken before a round touches the state and released when the
//! `StateLock` drops (or the process dies: the kernel drops `flock` locks with the descriptor, so
//! a `kill -9` never leaves a stale lock behind).
//!
//! The lock file also says who holds it (pid, host, start time, command), so the second sync can
//! tell the operator what it is waiting for. That text is advisory: it is rewritten by each holder,
//! and a reader may find it empty in the instant a new holder is writing it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SyncError;

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub command: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn me(command: String) -> Holder {
        Holder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            started: super::state::now(),
            command,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {} ({})",
            self.pid, self.host, self.started, self.command
        )
    }
}

/// Whether to wait for a busy lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    No,
    Yes,
}

/// An exclusive lock on a state directory, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock at `path`. When it is busy: fails with `SyncError::Busy` naming the holder,
    /// or, with `Wait::Yes`, calls `on_busy` with the holder and blocks until it is free.
    pub fn acquire(
        path: PathBuf,
        me: &Holder,
        wait: Wait,
        on_busy: &mut dyn FnMut(Option<&Holder>),
    ) -> Result<StateLock, SyncError> {
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| SyncError::Io { path, source }
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        // Called through the trait: std's inherent `File::try_lock` is newer than our MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                match wait {
                    Wait::No => return Err(SyncError::Busy { path, holder }),
                    Wait::Yes => {
                        on_busy(holder.as_ref());
                        fs4::FileExt::lock(&file).map_err(io(&path))?;
                    }
                }
            }
            Err(fs4::TryLockError::Error(source)) => return Err(SyncError::Io { path, source }),
        }
        let text = serde_json::to_string(me).expect("a holder serializes");
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .map_err(io(&path))?;
        Ok(StateLock { file, path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock as well; unlocking first is only explicit.
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_reports_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = Holder::me("first".into());
        let _held = StateLock::acquire(path.clone(), &first, Wait::No, &mut |_| {}).unwrap();
        let err = StateLock::acquire(
            path.clone(),
            &Holder::me("second".into()),
            Wait::No,
            &mut |_| {},
        )
        .unwrap_err();
        match err {
            SyncError::Busy { holder, .. } => assert_eq!(holder, Some(first)),
            other => panic!("expected Busy, got {other:?}"),
        }
    }

    #[test]
    fn the_lock_is_free_again_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        drop(
            StateLock::acquire(path.clone(), &Holder::me("a".into()), Wait::No, &mut |_| {})
                .unwrap(),
        );
        StateLock::acquire(path, &Holder::me("b".into()), Wait::No, &mut |_| {}).unwrap();
    }
}
