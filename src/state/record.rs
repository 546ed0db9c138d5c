//! JSON record files in the state directory (a site's releases, approvals): read whole, written
//! whole through a temporary file beside the record, fsynced and renamed over it, so a reader
//! sees the old record or the new one, never a mix.

use std::io::Write;
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

/// Writes `record` to `path` as pretty JSON, atomically (creating its directory).
pub fn write<T: Serialize>(path: &Path, record: &T) -> Result<(), RecordError> {
    let err = |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut bytes = serde_json::to_vec_pretty(record).expect("a record serializes");
    bytes.push(b'\n');
    let mut tmp = tempfile::Builder::new()
        .prefix(".record.")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
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
