//! What git ignores in a directory of the work tree: the files `git status --ignored` names.
//!
//! A build context is what `.dockerignore` leaves (Docker's rule), so a git-ignored
//! `node_modules/` or `__pycache__/` present on one machine and absent on another enters one
//! context and not the other: the same commit hashes differently. `ops::inspect::git_ignored`
//! compares a context's listing with [`Worktree::ignored_under`] and warns.
//!
//! Git status semantics, through libgit2's status walk: a tracked file is never ignored (even
//! when a rule matches it: force-added), an ignored directory is named once (`node_modules/`)
//! and not descended into, ignored files inside untracked directories are found. One status
//! walk per directory asked, bounded to it by a literal pathspec; it reads the file system as
//! `git status` does, and only the paths under the directory.

use std::path::{Path, PathBuf};

use super::GitError;

/// Whether `dir` may be in a git work tree: it or a directory above it has a `.git`. Checked
/// before libgit2 is started at all (starting it reads the system's CA bundle: milliseconds that a
/// cookbook outside any repository should not pay on every `hash`).
pub fn in_worktree(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    dir.ancestors()
        .any(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
}

/// A repository's work tree, opened to ask what it ignores.
pub struct Worktree {
    repo: git2::Repository,
    /// The work tree's root, symlinks resolved.
    root: PathBuf,
}

impl std::fmt::Debug for Worktree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worktree")
            .field("root", &self.root)
            .finish()
    }
}

impl Worktree {
    /// The work tree holding `dir`; `None` outside any repository (or in a bare one).
    pub fn discover(dir: &Path) -> Option<Worktree> {
        let repo = git2::Repository::discover(dir).ok()?;
        let root = std::fs::canonicalize(repo.workdir()?).ok()?;
        Some(Worktree { repo, root })
    }

    /// The paths under the directory `dir` that git status calls ignored, relative to `dir`,
    /// `/`-separated, sorted: a file by its path, a directory ignored as a whole by its path and
    /// a final `/` (its content not listed). `[""]` when `dir` itself is ignored; nothing when
    /// `dir` is not inside this work tree.
    pub fn ignored_under(&self, dir: &Path) -> Result<Vec<String>, GitError> {
        let Ok(real) = std::fs::canonicalize(dir) else {
            return Ok(Vec::new());
        };
        let Ok(relative) = real.strip_prefix(&self.root) else {
            return Ok(Vec::new());
        };
        let Some(prefix) = relative.to_str().map(|p| p.replace('\\', "/")) else {
            return Ok(Vec::new());
        };
        let mut options = git2::StatusOptions::new();
        options
            .include_ignored(true)
            .recurse_ignored_dirs(false)
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .exclude_submodules(true)
            .include_unmodified(false);
        if !prefix.is_empty() {
            options.pathspec(&prefix).disable_pathspec_match(true);
        }
        let statuses = self
            .repo
            .statuses(Some(&mut options))
            .map_err(|source| GitError::Git {
                operation: "list the files git ignores",
                source,
            })?;
        let mut ignored: Vec<String> = statuses
            .iter()
            .filter(|e| e.status().is_ignored())
            .filter_map(|e| Some(within(e.path().ok()?, &prefix)?.to_owned()))
            .collect();
        ignored.sort();
        ignored.dedup();
        Ok(ignored)
    }
}

/// `path` (relative to the work tree) relative to the directory `prefix` (`""`: the root):
/// `""` for the directory itself ignored (`prefix/`), none when it is not under it.
fn within<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest == "/" {
        return Some("");
    }
    rest.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_directory_is_named_once_and_a_force_added_file_is_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let root = dir.path();
        write(root, ".gitignore", "node_modules/\n*.pyc\nbuild/\n");
        write(root, "web/node_modules/a/index.js", "x");
        write(root, "web/node_modules/b.js", "x");
        write(root, "web/app/__init__.pyc", "x");
        write(root, "web/app/kept.pyc", "x");
        write(root, "web/new/deep/x.pyc", "x");
        write(root, "web/app/main.py", "x");
        write(root, "other/c.pyc", "x");
        write(root, "build/out.txt", "x");
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("web/app/kept.pyc")).unwrap();
        index.write().unwrap();

        let tree = Worktree::discover(&root.join("web")).unwrap();
        assert_eq!(
            tree.ignored_under(&root.join("web")).unwrap(),
            ["app/__init__.pyc", "new/deep/x.pyc", "node_modules/"]
        );
        assert_eq!(tree.ignored_under(&root.join("build")).unwrap(), [""]);
        let everything = tree.ignored_under(root).unwrap();
        assert!(
            everything.contains(&"other/c.pyc".to_owned()),
            "{everything:?}"
        );
        assert!(everything.contains(&"build/".to_owned()), "{everything:?}");
        let outside = tempfile::tempdir().unwrap();
        assert!(tree.ignored_under(outside.path()).unwrap().is_empty());
        assert!(Worktree::discover(outside.path()).is_none());
    }

    #[test]
    fn a_path_is_taken_relative_to_its_directory_only() {
        assert_eq!(within("web/a.pyc", "web"), Some("a.pyc"));
        assert_eq!(within("web/", "web"), Some(""));
        assert_eq!(within("webapp/a.pyc", "web"), None);
        assert_eq!(within("a.pyc", ""), Some("a.pyc"));
    }
}
