//! The state directory: `.cookbook/` beside the cookbook file, or `$COOKBOOK_CACHE_DIR`.
//!
//! Everything here only saves time or records history; deleting the directory never changes a
//! hash, a plan or an image. [`lock`] is the one state file kept beside the cookbook instead (it
//! is meant to be committed): `apply` writes it and `verify` reads it, both through this module.

pub mod lock;
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
