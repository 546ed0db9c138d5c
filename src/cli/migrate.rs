//! `cookbook migrate`: rewrites a cookbook in a newer format version.
//!
//! The transformation is `schema::migrate::migrate_text` (pure, tested there and in
//! tests/migrate.rs); this module reads the file, checks the input and the result, and prints or
//! writes it (atomically: a temp file in the same directory, fsynced, renamed over the original,
//! so a reader sees the old file or the new one, never a half-written one).

use std::io::Write;
use std::path::Path;

use crate::cli::{load, locate};
use crate::error::Error;
use crate::schema::migrate::{migrate_text, MigrateError};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The version to migrate to [default: the latest]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Replace the file instead of printing the result (refused for standard input)
    #[arg(long)]
    pub write: bool,
}

pub fn run(
    file: &Path,
    args: &MigrateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    // Only a valid cookbook is migrated: the steps assume a document that passed its schema.
    load(file)?;
    let from_stdin = locate::stdin_bytes(file).is_some();
    if args.write && from_stdin {
        return Err(Error::Usage {
            message: "--write needs a file, not standard input".to_owned(),
            help: Some("drop --write to print the result".to_owned()),
        });
    }
    let bytes = match locate::stdin_bytes(file) {
        Some(b) => b.to_vec(),
        // `load` has read this file already, as a small regular file.
        None => crate::context::file::read_regular(file, crate::load::COOKBOOK_MAX)
            .ok()
            .flatten()
            .ok_or_else(|| Error::Read {
                path: file.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            })?,
    };
    // `load` has checked the bytes are UTF-8.
    let text = String::from_utf8_lossy(&bytes);
    let migrated = migrate_text(&text, args.to.as_deref()).map_err(|e| match e {
        MigrateError::UnknownTarget(_) => Error::Usage {
            message: e.to_string(),
            help: Some(format!("versions: {}", crate::schema::supported_names())),
        },
        MigrateError::Downgrade { .. } => Error::Usage {
            message: e.to_string(),
            help: Some("migrations only go forward; keep the file as it is".to_owned()),
        },
        MigrateError::Json(_) | MigrateError::NoVersion => Error::Usage {
            message: e.to_string(),
            help: None,
        },
    })?;
    // The result must be a valid cookbook of the new version: a migration that produced anything
    // else is refused rather than written.
    crate::load::parse(migrated.text.as_bytes()).map_err(|diagnostics| Error::Invalid {
        file: format!(
            "{} (migrated to {})",
            locate::display_name(file),
            migrated.to
        ),
        diagnostics,
    })?;
    let name = locate::display_name(file);
    if !args.write {
        let _ = out.write_all(migrated.text.as_bytes());
        return Ok(());
    }
    if migrated.changed() {
        write_atomically(file, migrated.text.as_bytes()).map_err(|source| Error::Write {
            path: file.to_path_buf(),
            source,
        })?;
        let _ = writeln!(
            err,
            "{name}: migrated from {} to {}",
            migrated.from, migrated.to
        );
    } else {
        let _ = writeln!(err, "{name}: already format {}, unchanged", migrated.to);
    }
    Ok(())
}

/// A temp file beside the original (beside its target when it is a symlink, which stays one),
/// with its permissions, fsynced, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::state::atomic::replace(path, bytes, ".cookbook-migrate.")
}
