//! `init --write`: the cookbook and generated Dockerfiles onto disk, each atomically.
//!
//! Every target is checked before anything is written, so a refusal (an existing file without
//! `--force`) leaves the tree untouched. Each file is written to a temporary file in its own
//! directory and renamed into place (`tempfile`'s persist: a reader sees the old file or the new
//! one, never half of one); without `--force` the rename refuses to replace a file that appeared
//! meanwhile. Dockerfiles and `.dockerignore`s go first and the cookbook last, so a cookbook on disk never names a
//! Dockerfile that is not there yet.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Generated;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} already exists: not overwritten (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `cookbook.json` and the generated files under `dir`; returns the paths written.
pub fn write_outputs(
    dir: &Path,
    generated: &Generated,
    force: bool,
) -> Result<Vec<PathBuf>, WriteError> {
    let mut targets: Vec<(PathBuf, &str)> = generated
        .files
        .iter()
        .map(|(rel, text)| (dir.join(rel), text.as_str()))
        .collect();
    targets.push((dir.join("cookbook.json"), generated.cookbook.as_str()));
    if !force {
        for (path, _) in &targets {
            if path.symlink_metadata().is_ok() {
                return Err(WriteError::Exists(path.clone()));
            }
        }
    }
    let mut written = Vec::new();
    for (path, text) in targets {
        let io = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io)?;
        // Created 0666 and masked by the umask, like a file made by hand (tempfile's own
        // default is 0600).
        let mut tmp = tempfile::Builder::new()
            .prefix(".cookbook-init-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(parent)
            .map_err(io)?;
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        if force {
            tmp.persist(&path).map_err(|e| io(e.error))?;
        } else {
            tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    WriteError::Exists(path.clone())
                } else {
                    io(e.error)
                }
            })?;
        }
        written.push(path);
    }
    Ok(written)
}
