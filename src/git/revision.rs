//! A git revision of the cookbook's checkout, written into a temporary directory.
//!
//! What `verify --rev` and `diff --rev` compare with. The commit's whole tree is checked out (git2's
//! `checkout_tree` with a target directory) into a fresh temporary directory, so that paths
//! relative to the cookbook — including sources outside its own directory — resolve as they did
//! at that commit. The user's working tree, index and `.git` are never written: the checkout has
//! its own target directory, `update_index(false)` keeps libgit2 from writing the index, and no
//! worktree is registered (which would add admin files under `.git/worktrees`). Input hashes do
//! not depend on the checkout's absolute path, so the temporary location changes no hash.

use std::path::{Path, PathBuf};

/// Why a revision could not be checked out.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("{} is not in a git checkout (no .git here or in a parent directory)", path.display())]
    NotInRepository { path: PathBuf, source: git2::Error },
    #[error("{} is not in a git checkout with a working tree", path.display())]
    NoWorkTree { path: PathBuf },
    #[error("unknown git revision `{rev}`: {source}")]
    UnknownRevision { rev: String, source: git2::Error },
    #[error("revision {rev} has no {}", path.display())]
    NotInRevision { rev: String, path: PathBuf },
    #[error("cannot check out revision {rev} into {}: {source}", dir.display())]
    Checkout {
        rev: String,
        dir: PathBuf,
        source: git2::Error,
    },
    #[error("cannot create a temporary directory: {source}")]
    TempDir { source: std::io::Error },
}

/// A revision checked out into a temporary directory, removed on drop.
#[derive(Debug)]
pub struct RevisionCheckout {
    /// Kept for its drop, which removes the checkout.
    _dir: tempfile::TempDir,
    /// The full commit id the revision resolved to.
    pub commit: String,
    /// The cookbook file inside the checkout (same path relative to the repository root).
    pub cookbook_file: PathBuf,
    /// The cookbook file's path relative to the repository root, `/`-separated.
    pub relative_path: String,
}

/// Checks out `rev` of the git repository holding `cookbook_file`.
pub fn checkout(cookbook_file: &Path, rev: &str) -> Result<RevisionCheckout, RevisionError> {
    let parent = cookbook_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = cookbook_file
        .file_name()
        .ok_or_else(|| RevisionError::NoWorkTree {
            path: cookbook_file.to_path_buf(),
        })?;
    let repo =
        git2::Repository::discover(parent).map_err(|source| RevisionError::NotInRepository {
            path: parent.to_path_buf(),
            source,
        })?;
    let no_work_tree = || RevisionError::NoWorkTree {
        path: parent.to_path_buf(),
    };
    let workdir = repo.workdir().ok_or_else(no_work_tree)?;
    let workdir = workdir.canonicalize().map_err(|_| no_work_tree())?;
    let dir = parent.canonicalize().map_err(|_| no_work_tree())?;
    let relative_dir = dir.strip_prefix(&workdir).map_err(|_| no_work_tree())?;
    let relative = relative_dir.join(file_name);
    let relative_path = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");

    let unknown = |source| RevisionError::UnknownRevision {
        rev: rev.to_owned(),
        source,
    };
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(unknown)?;
    let tree = commit.tree().map_err(unknown)?;
    if tree.get_path(&relative).is_err() {
        return Err(RevisionError::NotInRevision {
            rev: rev.to_owned(),
            path: relative,
        });
    }

    let tmp = tempfile::Builder::new()
        .prefix("cookbook-verify-")
        .tempdir()
        .map_err(|source| RevisionError::TempDir { source })?;
    let mut options = git2::build::CheckoutBuilder::new();
    options
        .target_dir(tmp.path())
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut options))
        .map_err(|source| RevisionError::Checkout {
            rev: rev.to_owned(),
            dir: tmp.path().to_path_buf(),
            source,
        })?;
    Ok(RevisionCheckout {
        cookbook_file: tmp.path().join(&relative),
        _dir: tmp,
        commit: commit.id().to_string(),
        relative_path,
    })
}
