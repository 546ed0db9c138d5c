//! `clean`: removes the caches in a cookbook's state directory. The cookbook is not read: a
//! broken one can still be cleaned up after.

use std::path::PathBuf;

use serde::Serialize;

use super::CookbookFile;
use crate::error::Error;
use crate::state;

/// What `clean` removed (or, with `dry_run`, would remove).
#[derive(Debug, Serialize)]
pub struct CleanReport {
    /// The state directory.
    pub dir: PathBuf,
    pub dry_run: bool,
    pub removed: Vec<PathBuf>,
}

/// `clean [--dry-run]` for the cookbook `file`.
pub fn clean(file: &CookbookFile, dry_run: bool) -> Result<CleanReport, Error> {
    let dir = state::dir_for(&file.path);
    let removed = state::clean(&dir, dry_run).map_err(|e| match e {
        state::CleanError::Read { path, source } => Error::Read { path, source },
        state::CleanError::Remove { path, source } => Error::Write { path, source },
    })?;
    Ok(CleanReport {
        dir,
        dry_run,
        removed,
    })
}
