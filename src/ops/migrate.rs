//! `migrate`: rewrites a cookbook in a newer format version.
//!
//! The transformation is `schema::migrate::migrate_text` (pure, tested there and in
//! tests/it/migrate.rs); this flow checks the input (only a valid cookbook is migrated: the steps
//! assume a document that passed its schema, so the caller opens a [`Workspace`] first) and the
//! result, and with `write` replaces the file atomically (a temp file in the same directory,
//! fsynced, renamed over the original, so a reader sees the old file or the new one, never a
//! half-written one).

use serde::Serialize;

use super::Workspace;
use crate::error::Error;
use crate::schema::migrate::{migrate_text, MigrateError};

/// What `migrate` is asked.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// The version to migrate to (default: the latest).
    pub to: Option<String>,
    /// Replace the file (refused for standard input) instead of returning the text only.
    pub write: bool,
}

/// The migrated cookbook.
#[derive(Debug, Serialize)]
pub struct MigrateReport {
    /// The cookbook as diagnostics name it.
    pub file: String,
    pub from: &'static str,
    /// The migrated text (the input's own when it already was the target version).
    pub text: String,
    pub to: &'static str,
    /// Whether the file was replaced (only with `write`, and only when the text changed).
    pub written: bool,
}

impl MigrateReport {
    /// Whether the format version moved.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// `migrate [--to V] [--write]` of the opened cookbook.
pub fn migrate(ws: &Workspace, opts: &MigrateOptions) -> Result<MigrateReport, Error> {
    if opts.write && ws.file.bytes.is_some() {
        return Err(Error::Usage {
            message: "--write needs a file, not standard input".to_owned(),
            help: Some("drop --write to print the result".to_owned()),
        });
    }
    let bytes = match ws.file.bytes {
        Some(b) => b.to_vec(),
        // Opening the workspace has read this file already, as a small regular file.
        None => crate::context::file::read_regular(ws.path(), crate::load::COOKBOOK_MAX)
            .ok()
            .flatten()
            .ok_or_else(|| Error::Read {
                path: ws.path().to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            })?,
    };
    // Opening the workspace has checked the bytes are UTF-8.
    let text = String::from_utf8_lossy(&bytes);
    let migrated = migrate_text(&text, opts.to.as_deref()).map_err(usage)?;
    // The result must be a valid cookbook of the new version: a migration that produced anything
    // else is refused rather than written.
    crate::load::parse(migrated.text.as_bytes()).map_err(|diagnostics| Error::Invalid {
        file: format!("{} (migrated to {})", ws.file.label, migrated.to),
        diagnostics,
    })?;
    let written = opts.write && migrated.changed();
    if written {
        // Beside the file (beside its target when it is a symlink, which stays one), with its
        // permissions.
        crate::state::atomic::replace(ws.path(), migrated.text.as_bytes(), ".cookbook-migrate.")
            .map_err(|source| Error::Write {
                path: ws.path().to_path_buf(),
                source,
            })?;
    }
    Ok(MigrateReport {
        file: ws.file.label.clone(),
        from: migrated.from,
        text: migrated.text,
        to: migrated.to,
        written,
    })
}

fn usage(e: MigrateError) -> Error {
    let help = match &e {
        MigrateError::UnknownTarget(_) => {
            Some(format!("versions: {}", crate::schema::supported_names()))
        }
        MigrateError::Downgrade { .. } => {
            Some("migrations only go forward; keep the file as it is".to_owned())
        }
        MigrateError::Json(_) | MigrateError::NoVersion => None,
    };
    Error::Usage {
        message: e.to_string(),
        help,
    }
}
