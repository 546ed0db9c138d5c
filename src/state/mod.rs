//! The state directory: `.cookbook/` beside the cookbook file, or `$COOKBOOK_CACHE_DIR`.
//!
//! Everything here only saves time or records history; deleting the directory never changes a
//! hash, a plan or an image. [`lock`] is the one state file kept beside the cookbook instead (it
//! is meant to be committed): `apply` writes it and `verify` reads it, both through this module.

pub mod atomic;
pub mod events;
pub mod lock;
pub mod record;
pub mod stat_cache;

use std::path::{Path, PathBuf};

/// The state directory for a cookbook file.
pub fn dir_for(cookbook_file: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("COOKBOOK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    cookbook_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".cookbook")
}

/// Why `clean` stopped.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The entries of a state directory that `clean` removes: caches and left-overs, never the sync
/// state (`sync/` is a site's current checkout and its record).
fn removable(name: &str) -> bool {
    name.starts_with("stat-cache")
        || name.starts_with(".stat-cache")
        || name == "contexts"
        || name == "explain"
        || name.ends_with(".tmp")
}

/// Removes the caches in the state directory `dir` (with `dry_run`, only lists them); returns
/// what was (or would be) removed, sorted. A missing directory has nothing to remove.
pub fn clean(dir: &Path, dry_run: bool) -> Result<Vec<PathBuf>, CleanError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CleanError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CleanError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if !entry.file_name().to_str().is_some_and(removable) {
            continue;
        }
        let path = entry.path();
        if !dry_run {
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|source| CleanError::Remove {
                path: path.clone(),
                source,
            })?;
        }
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}
