//! What git ignores among the files of a directory of the work tree: the paths `git status
//! --ignored` would name, asked only about the files given.
//!
//! A build context is what `.dockerignore` leaves (Docker's rule), so a git-ignored
//! `node_modules/` or `__pycache__/` present on one machine and absent on another enters one
//! context and not the other: the same commit hashes differently. `ops::inspect::git_ignored`
//! hands [`Worktree::ignored_among`] a context's own listing and warns about what it returns.
//!
//! No status walk. A status walk reads the whole directory (also what `.dockerignore` excludes)
//! and compares every tracked file with the index; libgit2 never writes the refreshed index
//! back, so once tracked files are stat-dirty (a checkout, `touch`, rsync) every run re-read
//! them: seconds on every `hash`. Here the cost follows the context's *untracked* entries:
//!
//! 1. a file in the index is tracked, never ignored (even when a rule matches it: force-added) —
//!    a path lookup, no content read, no stat;
//! 2. for an untracked file, each directory above it (the context's own first) is judged once:
//!    one holding tracked files is looked into; a submodule (a gitlink in the index) or a nested
//!    repository is another repository's, its files not reported; one without tracked files that
//!    git ignores is named once, `node_modules/`, with the number of the listing's files in it —
//!    as `git status --ignored` names it and does not descend;
//! 3. a file under no ignored directory is asked itself (`*.pyc`).
//!
//! The context directory ignored as a whole (`dist/app` under an ignored `dist/`) is `""`.

use std::collections::HashMap;
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

/// A repository's work tree and its index, opened to ask what it ignores.
pub struct Worktree {
    repo: git2::Repository,
    /// The index as it was read once: which paths are tracked.
    index: git2::Index,
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

/// One path git ignores among the files asked about: a file (`files` 1), a directory ignored as
/// a whole (`node_modules/`, `files`: how many of the files asked about are in it), or `""`: the
/// directory asked about is itself ignored, all of its untracked files with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Relative to the directory asked about, `/`-separated; a directory ends in `/`.
    pub path: String,
    pub files: usize,
}

/// What a directory is for the files under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Ignored with all it holds (none of it tracked): named once.
    Ignored,
    /// Another repository's (a submodule, a nested repository): its files are not ours to report.
    Foreign,
    /// Neither: its files are judged one by one.
    Open,
}

/// The `/`-separated path `rel` (`""`: the directory itself) of the directory `prefix`.
fn join(prefix: &str, rel: &str) -> String {
    match (prefix, rel) {
        ("", rel) => rel.to_owned(),
        (prefix, "") => prefix.to_owned(),
        (prefix, rel) => format!("{prefix}/{rel}"),
    }
}

/// Each directory above `rel` (a file's path), the topmost first, as `a/`, `a/b/`.
fn parents(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..=i])
}

/// The git file mode of a submodule's entry (a gitlink) in the index.
const GITLINK: u32 = 0o160000;

impl Worktree {
    /// The work tree holding `dir`, its index read; `None` outside any repository (or in a bare
    /// one, or when its index cannot be read).
    pub fn discover(dir: &Path) -> Option<Worktree> {
        let repo = git2::Repository::discover(dir).ok()?;
        let root = std::fs::canonicalize(repo.workdir()?).ok()?;
        let index = repo.index().ok()?;
        Some(Worktree { repo, index, root })
    }

    /// Which of `files` — paths under the directory `dir`, relative to it, `/`-separated, each
    /// once — git ignores, as `git status --ignored` names them (the module's rules), sorted by
    /// path. Nothing when `dir` is not inside this work tree.
    pub fn ignored_among<'f>(
        &self,
        dir: &Path,
        files: impl IntoIterator<Item = &'f str>,
    ) -> Result<Vec<Ignored>, GitError> {
        let Some(prefix) = self.relative(dir) else {
            return Ok(Vec::new());
        };
        let mut verdicts: HashMap<String, Verdict> = HashMap::new();
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        'files: for rel in files {
            if self.tracked(&join(&prefix, rel)) {
                continue;
            }
            for parent in std::iter::once("").chain(parents(rel)) {
                let full = join(&prefix, parent.trim_end_matches('/'));
                let verdict = match verdicts.get(&full) {
                    Some(v) => *v,
                    None => {
                        let v = self.judge(&full)?;
                        verdicts.insert(full, v);
                        v
                    }
                };
                match verdict {
                    Verdict::Ignored => *counts.entry(parent).or_default() += 1,
                    Verdict::Foreign => {}
                    Verdict::Open => continue,
                }
                continue 'files;
            }
            if self.is_ignored(&join(&prefix, rel))? {
                *counts.entry(rel).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(path, files)| Ignored {
                path: path.to_owned(),
                files,
            })
            .collect())
    }

    /// `dir` relative to the work tree's root, `/`-separated (`""`: the root); none outside it.
    fn relative(&self, dir: &Path) -> Option<String> {
        let real = std::fs::canonicalize(dir).ok()?;
        let relative = real.strip_prefix(&self.root).ok()?;
        Some(relative.to_str()?.replace('\\', "/"))
    }

    /// Whether the index has the path (a file, a symlink, a submodule).
    fn tracked(&self, path: &str) -> bool {
        self.index.get_path(Path::new(path), 0).is_some()
    }

    /// What the directory `dir` (relative to the root, no final `/`) is for the files under it.
    fn judge(&self, dir: &str) -> Result<Verdict, GitError> {
        if dir.is_empty() {
            return Ok(Verdict::Open);
        }
        if let Some(entry) = self.index.get_path(Path::new(dir), 0) {
            return Ok(match entry.mode & 0o170000 == GITLINK {
                true => Verdict::Foreign,
                false => Verdict::Open,
            });
        }
        if self.index.find_prefix(format!("{dir}/")).is_ok() {
            return Ok(Verdict::Open);
        }
        if self.is_ignored(&format!("{dir}/"))? {
            return Ok(Verdict::Ignored);
        }
        match std::fs::symlink_metadata(self.root.join(dir).join(".git")) {
            Ok(_) => Ok(Verdict::Foreign),
            Err(_) => Ok(Verdict::Open),
        }
    }

    /// Whether git's ignore rules match `path` (relative to the root; a directory ends in `/`),
    /// or a directory above it.
    fn is_ignored(&self, path: &str) -> Result<bool, GitError> {
        self.repo
            .is_path_ignored(path)
            .map_err(|source| GitError::Git {
                operation: "read the rules of what git ignores",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn found(tree: &Worktree, dir: &Path, files: &[&str]) -> Vec<(String, usize)> {
        let mut files = files.to_vec();
        files.sort();
        let found = tree.ignored_among(dir, files.iter().copied()).unwrap();
        found.into_iter().map(|i| (i.path, i.files)).collect()
    }

    fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
        pairs.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect()
    }

    #[test]
    fn a_directory_is_named_once_and_a_force_added_file_is_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let root = dir.path();
        write(root, ".gitignore", "node_modules/\n*.pyc\nbuild/\n");
        let web = [
            "node_modules/a/index.js",
            "node_modules/b.js",
            "app/__init__.pyc",
            "app/kept.pyc",
            "new/deep/x.pyc",
            "app/main.py",
        ];
        for path in web {
            write(root, &format!("web/{path}"), "x");
        }
        write(root, "other/c.pyc", "x");
        write(root, "build/out.txt", "x");
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("web/app/kept.pyc")).unwrap();
        index.write().unwrap();

        let tree = Worktree::discover(&root.join("web")).unwrap();
        assert_eq!(
            found(&tree, &root.join("web"), &web),
            owned(&[
                ("app/__init__.pyc", 1),
                ("new/deep/x.pyc", 1),
                ("node_modules/", 2)
            ])
        );
        // Only what is asked about: `other/c.pyc` is not in the list.
        assert_eq!(
            found(&tree, root, &["build/out.txt", "web/app/main.py"]),
            owned(&[("build/", 1)])
        );
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "a.pyc", "x");
        assert!(found(&tree, outside.path(), &["a.pyc"]).is_empty());
        assert!(Worktree::discover(outside.path()).is_none());
    }

    #[test]
    fn a_directory_inside_an_ignored_one_is_ignored_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let root = dir.path();
        write(root, ".gitignore", "dist/\n");
        write(root, "dist/app/index.html", "x");
        write(root, "dist/app/js/main.js", "x");
        write(root, "dist/kept/a.txt", "x");
        write(root, "dist/kept/b.txt", "x");
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("dist/kept/a.txt")).unwrap();
        index.write().unwrap();
        let tree = Worktree::discover(root).unwrap();
        assert_eq!(
            found(&tree, &root.join("dist/app"), &["index.html", "js/main.js"]),
            owned(&[("", 2)])
        );
        // A directory holding a tracked file is looked into, as git status does.
        assert_eq!(
            found(&tree, &root.join("dist/kept"), &["a.txt", "b.txt"]),
            owned(&[("b.txt", 1)])
        );
    }

    #[test]
    fn a_submodules_files_are_its_own_not_ignored_here() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let root = dir.path();
        write(root, ".gitignore", "*.pyc\n");
        let sub = git2::Repository::init(root.join("vendor/lib")).unwrap();
        write(root, "vendor/lib/x.pyc", "x");
        let mut sub_index = sub.index().unwrap();
        sub_index.add_path(Path::new("x.pyc")).unwrap();
        let tree_id = sub_index.write_tree().unwrap();
        let signature = git2::Signature::now("t", "t@example.invalid").unwrap();
        let commit = sub
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                "sub",
                &sub.find_tree(tree_id).unwrap(),
                &[],
            )
            .unwrap();
        let mut index = repo.index().unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: GITLINK,
            uid: 0,
            gid: 0,
            file_size: 0,
            id: commit,
            flags: 0,
            flags_extended: 0,
            path: b"vendor/lib".to_vec(),
        };
        index.add(&entry).unwrap();
        index.write().unwrap();
        // libgit2's rules alone would say ignored: the superproject's `*.pyc` matches.
        assert!(repo.is_path_ignored("vendor/lib/x.pyc").unwrap());
        write(root, "vendor/own.pyc", "x");
        let tree = Worktree::discover(root).unwrap();
        assert_eq!(
            found(&tree, &root.join("vendor"), &["lib/x.pyc", "own.pyc"]),
            owned(&[("own.pyc", 1)])
        );
    }

    #[test]
    fn parents_are_listed_topmost_first() {
        assert_eq!(parents("a/b/c.txt").collect::<Vec<_>>(), ["a/", "a/b/"]);
        assert_eq!(parents("c.txt").count(), 0);
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("web", "a"), "web/a");
        assert_eq!(join("web", ""), "web");
    }
}
