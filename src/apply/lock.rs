//! `cookbook.lock`: what an apply produced, for release engineers and `verify`.
//!
//! JSON with a fixed key order (structs and `BTreeMap`s), two-space indentation and a trailing
//! newline. Written through a temp file and a rename, and only when its bytes change, so the same
//! inputs give a byte-identical lock and an unchanged lock keeps its mtime.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub lock_version: u32,
    pub hash_version: u32,
    pub project: String,
    pub containers: BTreeMap<String, LockedImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    pub input_hash: String,
    /// The content-tagged reference (`registry/repo:<input_hash>`, or the local name without a
    /// registry).
    pub image: String,
    /// Every tag applied (the content tag first, then the policy tags).
    pub tags: Vec<String>,
    /// The registry's manifest digest after a push; the local image id otherwise.
    pub digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a valid lock file: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Lock {
    pub fn new(project: &str) -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            hash_version: crate::hash::HASH_VERSION,
            project: project.to_owned(),
            containers: BTreeMap::new(),
        }
    }

    /// The lock beside a cookbook file.
    pub fn path_for(cookbook_file: &Path) -> PathBuf {
        cookbook_file.with_file_name("cookbook.lock")
    }

    /// Reads a lock; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LockError::Invalid {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("locks serialize");
        bytes.push(b'\n');
        bytes
    }

    /// Writes the lock atomically; returns whether the file changed.
    pub fn write(&self, path: &Path) -> Result<bool, LockError> {
        let bytes = self.to_bytes();
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".cookbook.lock.")
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(&bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_bytes_and_no_rewrite_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let mut lock = Lock::new("shop");
        for name in ["web", "api"] {
            lock.containers.insert(
                name.to_owned(),
                LockedImage {
                    input_hash: "ab".repeat(32),
                    image: format!("r/{name}:x"),
                    tags: vec![format!("r/{name}:x")],
                    digest: "sha256:00".to_owned(),
                },
            );
        }
        assert!(lock.write(&path).unwrap());
        assert!(!lock.write(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.find("\"api\"").unwrap() < text.find("\"web\"").unwrap());
        assert_eq!(Lock::read(&path).unwrap(), Some(lock));
    }
}
