//! The git edge: the one module that opens repositories (git2, vendored with OpenSSL).
//!
//! - [`mirror`]: `sync`'s bare mirror of a remote branch — fetch, ancestry, reading a file from a
//!   commit's tree, materializing a checkout, signature checks;
//! - [`revision`]: a revision of the cookbook's own checkout written into a temporary directory
//!   (`verify --rev`, `diff --rev`), never touching the user's working tree or index;
//! - [`ignored`]: which of a directory's files git ignores (as `git status --ignored` names
//!   them, without its walk), for the warning about git-ignored files in a build context;
//! - [`head_commit`]: the commit a checkout is at (`apply`'s revision label and `git-sha` tags).
//!
//! Errors say what happened in the user's terms and keep git2's error as the source; the exit
//! codes are mapped in `crate::error`.

pub mod ignored;
pub mod mirror;
pub mod revision;

use std::path::{Path, PathBuf};

pub use ignored::Worktree;
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

/// The cookbook file `path` as its repository names it: relative to the work tree's root
/// (`deploy/cookbook.json`), `/`-separated; outside a repository, its file name. What a
/// provenance statement records, so that two checkouts of one repository say the same.
pub fn repository_path(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let relative = absolute.parent().and_then(|dir| {
        let repo = git2::Repository::discover(dir).ok()?;
        let root = std::fs::canonicalize(repo.workdir()?).ok()?;
        absolute.strip_prefix(root).ok().map(Path::to_path_buf)
    });
    let shown =
        relative.unwrap_or_else(|| absolute.file_name().map(Into::into).unwrap_or_default());
    shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the checkout at `dir` contains `commit`: its HEAD, or an ancestor of it. `None`: `dir`
/// is in no repository (or it has no HEAD); `Some(false)`: an unknown commit, or one not in
/// HEAD's history.
pub fn contains_commit(dir: &Path, commit: &str) -> Option<bool> {
    contains_commit_from(dir, None, commit)
}

/// [`contains_commit`] with another tip than HEAD: `tip` (a full commit id, e.g. the revision
/// `verify --rev` checks) when given.
pub fn contains_commit_from(dir: &Path, tip: Option<&str>, commit: &str) -> Option<bool> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = match tip {
        Some(tip) => git2::Oid::from_str(tip).ok()?,
        None => repo.head().ok()?.peel_to_commit().ok()?.id(),
    };
    let Ok(wanted) = git2::Oid::from_str(commit) else {
        return Some(false);
    };
    if head == wanted {
        return Some(true);
    }
    if repo.find_commit(wanted).is_err() {
        return Some(false);
    }
    Some(repo.graph_descendant_of(head, wanted).unwrap_or(false))
}

/// How many commits of `head`'s history `current` lacks, in the repository (a sync mirror) at
/// `repo`: how far a site is behind the branch it follows. `None` when either commit is unknown
/// there or the repository cannot be opened.
pub fn commits_behind(repo: &Path, current: &str, head: &str) -> Option<u64> {
    let repo = git2::Repository::open(repo).ok()?;
    let current = git2::Oid::from_str(current).ok()?;
    let head = git2::Oid::from_str(head).ok()?;
    let (_, behind) = repo.graph_ahead_behind(current, head).ok()?;
    u64::try_from(behind).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit of an empty tree on top of `parents` in `repo`, on HEAD when `head`.
    fn commit(repo: &git2::Repository, parents: &[git2::Oid], head: bool, m: &str) -> git2::Oid {
        let signature = git2::Signature::now("t", "t@example.invalid").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let parents: Vec<git2::Commit> = parents
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        let reference = head.then_some("HEAD");
        repo.commit(reference, &signature, &signature, m, &tree, &parents)
            .unwrap()
    }

    #[test]
    fn behind_counts_the_heads_commits_the_current_one_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let first = commit(&repo, &[], true, "first");
        let second = commit(&repo, &[first], true, "second");
        let third = commit(&repo, &[second], true, "third");
        let (a, b, c) = (first.to_string(), second.to_string(), third.to_string());
        assert_eq!(commits_behind(dir.path(), &a, &c), Some(2));
        assert_eq!(commits_behind(dir.path(), &c, &c), Some(0));
        assert_eq!(
            commits_behind(dir.path(), &c, &b),
            Some(0),
            "ahead is not behind"
        );
        assert_eq!(commits_behind(dir.path(), &"0".repeat(40), &c), None);
        assert_eq!(commits_behind(&dir.path().join("nowhere"), &a, &c), None);
    }

    #[test]
    fn a_checkout_contains_its_tip_and_its_ancestors_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let first = commit(&repo, &[], true, "first");
        let second = commit(&repo, &[first], true, "second");
        let elsewhere = commit(&repo, &[first], false, "on another branch");
        let text = |oid: git2::Oid| oid.to_string();
        assert_eq!(contains_commit(dir.path(), &text(second)), Some(true));
        assert_eq!(contains_commit(dir.path(), &text(first)), Some(true));
        assert_eq!(contains_commit(dir.path(), &text(elsewhere)), Some(false));
        assert_eq!(contains_commit(dir.path(), &"0".repeat(40)), Some(false));
        assert_eq!(contains_commit(dir.path(), "not a commit"), Some(false));
        // From another tip (`verify --rev`): its own history, not HEAD's.
        let tip = text(first);
        let from_first = |c: &str| contains_commit_from(dir.path(), Some(&tip), c);
        assert_eq!(from_first(&text(second)), Some(false));
        assert_eq!(from_first(&text(first)), Some(true));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(contains_commit(outside.path(), &text(first)), None);
    }
}
