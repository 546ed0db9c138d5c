//! JSON record files in the state directory (a site's releases, approvals): read whole, written
//! whole through a temporary file beside the record, fsynced and renamed over it, so a reader
//! sees the old record or the new one, never a mix.
//!
//! Every change goes through [`update`]: an exclusive `flock` on the record's directory, then
//! read, change, write, then release. Two processes recording at once (two converges, a converge
//! and an `approve`) so each see the other's entries instead of writing back what they read
//! before it; a reader needs no lock, thanks to the rename. The lock is held for the
//! read–modify–write only, never across a deploy.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid {what}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the record at `path` (a `what`, for messages); none yet is the empty record.
pub fn read<T: DeserializeOwned + Default>(
    path: &Path,
    what: &'static str,
) -> Result<T, RecordError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RecordError::Invalid {
            path: path.to_path_buf(),
            what,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(RecordError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Changes the record at `path` (a `what`, for messages) under an exclusive lock on its
/// directory: reads it as it is now (none yet: the empty record), applies `change`, writes it
/// atomically, and returns what `change` returned.
pub fn update<T, R>(
    path: &Path,
    what: &'static str,
    change: impl FnOnce(&mut T) -> R,
) -> Result<R, RecordError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let err = |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = super::atomic::parent(path);
    std::fs::create_dir_all(dir).map_err(err)?;
    let _held = super::atomic::DirLock::acquire(dir).map_err(err)?;
    let mut record: T = read(path, what)?;
    let out = change(&mut record);
    write(path, &record)?;
    Ok(out)
}

/// Writes `record` to `path` as pretty JSON, atomically (creating its directory). Callers that
/// change a record someone else may be changing too use [`update`].
pub fn write<T: Serialize>(path: &Path, record: &T) -> Result<(), RecordError> {
    let err = |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(super::atomic::parent(path)).map_err(err)?;
    let mut bytes = serde_json::to_vec_pretty(record).expect("a record serializes");
    bytes.push(b'\n');
    // The permissions a user expects (the replaced file's, or the umask's), as for the lock.
    super::atomic::replace(path, &bytes, ".record.").map_err(err)
}

/// Fault injection for tests: with `var` set to `STEP:MS`, sleeps `MS` milliseconds at `step`,
/// so a test can widen a race window or kill the process there. One environment lookup
/// otherwise.
pub fn test_pause(var: &str, step: &str) {
    let Some(value) = std::env::var_os(var) else {
        return;
    };
    let value = value.to_string_lossy();
    if let Some((name, ms)) = value.split_once(':') {
        if name == step {
            if let Ok(ms) = ms.parse::<u64>() {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn concurrent_updates_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy").join("r.json");
        // Each writer holds the lock a little while it changes the record: without the lock,
        // the later writes would drop the entries of those that read before them.
        std::thread::scope(|scope| {
            for i in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    update(path, "test record", |r: &mut BTreeMap<String, u32>| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        r.insert(format!("writer-{i}"), i);
                    })
                    .unwrap();
                });
            }
        });
        let r: BTreeMap<String, u32> = read(&path, "test record").unwrap();
        assert_eq!(r.len(), 8, "{r:?}");
        // What `change` returns comes back; a broken record is refused, not overwritten.
        let n = update(&path, "test record", |r: &mut BTreeMap<String, u32>| {
            r.len()
        })
        .unwrap();
        assert_eq!(n, 8);
        std::fs::write(&path, "{").unwrap();
        let broken = update(&path, "test record", |_: &mut BTreeMap<String, u32>| ());
        assert!(matches!(broken, Err(RecordError::Invalid { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{");
    }
}
