//! The git edge: the one module that opens repositories (git2, vendored with OpenSSL).
//!
//! - [`mirror`]: `sync`'s bare mirror of a remote branch — fetch, ancestry, reading a file from a
//!   commit's tree, materializing a checkout, signature checks;
//! - [`revision`]: a revision of the cookbook's own checkout written into a temporary directory
//!   (`verify --rev`, `diff --rev`), never touching the user's working tree or index;
//! - [`head_commit`]: the commit a checkout is at (`apply`'s revision label and `git-sha` tags).
//!
//! Errors say what happened in the user's terms and keep git2's error as the source; the exit
//! codes are mapped in `crate::error`.

pub mod mirror;
pub mod revision;

use std::path::{Path, PathBuf};

pub use mirror::Mirror;
pub use revision::{RevisionCheckout, RevisionError};

/// A failure of the mirror's git work.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// No connection to the remote (refused, unresolvable, dropped). Exit code 3.
    #[error("cannot connect to the git remote {remote}: is the address right, and is it up?")]
    Unreachable { remote: String, source: git2::Error },
    /// The remote answered and refused: credentials turned down, or no such repository (a
    /// server often says the one for the other). Exit code 1.
    #[error("the remote {remote} refused the fetch: {message}; check that the repository exists at that URL and that this machine's credentials for it (the ssh agent's keys, git's credential helper) may read it")]
    Refused { remote: String, message: String },
    /// The remote URL cannot be a git remote. Exit code 2.
    #[error("malformed remote URL `{remote}`: {message}")]
    BadRemote { remote: String, message: String },
    #[error("the remote {remote} has no branch `{branch}`")]
    BranchNotFound { remote: String, branch: String },
    #[error("git: cannot {operation}: {}", source.message())]
    Git {
        operation: &'static str,
        source: git2::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run `git verify-commit` to check signatures: {source}")]
    Verifier { source: std::io::Error },
    /// A fetch given up because the process was asked to stop.
    #[error("stopped by a signal during a fetch")]
    Interrupted,
}

/// The commit the checkout holding `dir` is at, if it is one.
pub fn head_commit(dir: &Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}
