//! Build contexts: what goes into a container's deterministic tar, listed, then written.
//!
//! Pipeline position: validated cookbook → **context plan** (pure: which trees, which generated
//! files) → **listing** (walks the file system: `.dockerignore`, pruning, refusals) → fingerprints
//! (`hash`) → **tar** (`tar.rs`, streamed).
//!
//! Context layout:
//! - generated container: `Dockerfile` (generated) and each application's source tree under
//!   `<app>/`, filtered by that tree's own `.dockerignore` (which is not itself copied);
//! - Dockerfile-based container: the `context` directory filtered by its `.dockerignore` (the
//!   Dockerfile and `.dockerignore` always kept, as Docker does), plus the `dockerfile` as
//!   `.cookbook.Dockerfile` when it lies outside the context directory.
//!
//! Never in a context: `.git` (at any depth), empty directories (as in git; directories are not
//! entries at all, the daemon creates them), anything ignored, and cookbook's own files
//! ([`OwnPaths`]: the cookbook file, its lock and the lock's temporary siblings, the state
//! directory), whatever the layout: a tree may be the cookbook's own directory. Refused with an
//! error naming the path: special files (socket, device, FIFO — never opened), symlinks whose
//! target is absolute or leaves the tree, a tree or copied-in file that leads outside the
//! cookbook's directory once symlinks are followed, file names that are not UTF-8.

pub mod assembly;
pub mod dockerfile;
pub mod dockerignore;
pub mod file;
pub mod from_lines;
pub mod tar;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use walk::on_walk_threads;
pub use walk::{list, MAX_DEPTH};

use crate::model::{ContainerKind, Cookbook, Name, RelPath};

/// Cookbook's own files and directories, relative to the cookbook's directory: the cookbook
/// file, its lock, the state directory. Computed by the caller from the layout (where the files
/// are) and handed to the listing as plain values; no context ever lists them, so that nothing
/// cookbook reads or writes as its own can move a hash.
///
/// A file listed here also covers its temporary siblings `.<name>.*` in the same directory: the
/// names under which it is written before being renamed into place (`tempfile`'s prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnPaths(Vec<RelPath>);

impl OwnPaths {
    pub fn new(paths: impl IntoIterator<Item = RelPath>) -> OwnPaths {
        let mut paths: Vec<RelPath> = paths.into_iter().filter(|p| !p.is_root()).collect();
        paths.sort();
        paths.dedup();
        OwnPaths(paths)
    }

    pub fn paths(&self) -> &[RelPath] {
        &self.0
    }

    /// The own paths below `tree`, relative to it; `None` when the tree itself lies in one of
    /// them (then nothing of it may be listed).
    pub fn within(&self, tree: &RelPath) -> Option<Vec<String>> {
        let mut inside = Vec::new();
        for own in &self.0 {
            if tree.strip_prefix(own).is_some() {
                return None;
            }
            if let Some(rel) = own.strip_prefix(tree) {
                inside.push(rel.as_str().to_owned());
            }
        }
        Some(inside)
    }
}

/// Whether `rel` (a path in a tree) is one of `own` (paths in the same tree) or a temporary
/// sibling of one of them.
///
/// On the walk's hot path (every entry of a tree that holds own paths): an exact comparison, and
/// the sibling rule only for a name that starts with `.`.
pub(crate) fn is_own(own: &[String], rel: &str) -> bool {
    if own.iter().any(|o| o == rel) {
        return true;
    }
    let (r_dir, r_name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let Some(hidden) = r_name.strip_prefix('.') else {
        return false;
    };
    own.iter().any(|o| {
        let (o_dir, o_name) = o.rsplit_once('/').unwrap_or(("", o.as_str()));
        o_dir == r_dir
            && hidden
                .strip_prefix(o_name)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The name a Dockerfile from outside the context directory gets inside the context.
pub const OUTSIDE_DOCKERFILE: &str = ".cookbook.Dockerfile";

/// What a context holds, before any file system access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPlan {
    /// The Dockerfile's path inside the context (what the daemon is told to use).
    pub dockerfile: String,
    /// Files made by cookbook itself (the generated Dockerfile).
    pub generated: Vec<(String, Arc<[u8]>)>,
    /// Single files copied in from the cookbook's directory (a Dockerfile outside its context).
    pub files: Vec<(String, RelPath)>,
    /// Directory trees copied in.
    pub trees: Vec<Tree>,
}

/// A directory of the cookbook's tree placed at `prefix` in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub source: RelPath,
    /// `""` for the context root, else `<app>`.
    pub prefix: String,
    /// Whether the tree's own `.dockerignore` file is copied (Dockerfile contexts: yes, as Docker
    /// sends it; application trees: no, it is a control file of the cookbook's, not app content).
    pub keep_ignore_file: bool,
    /// Paths (relative to the tree) that `.dockerignore` can never exclude.
    pub always_keep: Vec<String>,
}

/// One entry of a context: a regular file, an executable file, or a symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated path inside the context.
    pub path: String,
    pub kind: EntryKind,
    /// For files, the size in bytes; for symlinks, the length of the target text.
    pub size: u64,
    pub source: EntrySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Executable,
    Symlink,
}

impl EntryKind {
    /// The git-style mode string recorded in hash manifests.
    pub fn mode(self) -> &'static str {
        match self {
            EntryKind::File => "100644",
            EntryKind::Executable => "100755",
            EntryKind::Symlink => "120000",
        }
    }

    /// The normalized permission bits written to the tar.
    pub fn tar_mode(self) -> u32 {
        match self {
            EntryKind::File => 0o644,
            EntryKind::Executable => 0o755,
            EntryKind::Symlink => 0o777,
        }
    }
}

/// File identity used by the stat cache. Never hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatKey {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A file on disk in the directory `dir`, under the last component of the entry's path, or
    /// under `name` when its name in the context differs (a Dockerfile copied in from outside
    /// the context). The directory is shared by its files: no path is allocated per file, which
    /// on a 100,000-file tree was a tenth of a warm run's allocations.
    Disk {
        dir: Arc<Path>,
        name: Option<Box<str>>,
        stat: StatKey,
    },
    Generated(Arc<[u8]>),
    Link(String),
}

impl Entry {
    /// The file's name in its directory on disk (for a `Disk` entry; otherwise the last
    /// component of its path in the context).
    pub fn disk_name(&self) -> &str {
        match &self.source {
            EntrySource::Disk {
                name: Some(name), ..
            } => name,
            _ => self
                .path
                .rsplit_once('/')
                .map_or(&self.path[..], |(_, n)| n),
        }
    }

    /// For a file on disk: its path.
    pub fn disk_path(&self) -> Option<PathBuf> {
        match &self.source {
            EntrySource::Disk { dir, .. } => Some(dir.join(self.disk_name())),
            _ => None,
        }
    }
}

/// Why a context could not be listed, hashed or written. `Io` and `Write` are the local system
/// failing (or a path that names nothing usable: src/error.rs tells which by the OS error);
/// every other variant is the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the tar failed (disk full, I/O error, a destination that cannot be created).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what} cannot go into a build context", path.display())]
    Special { path: PathBuf, what: &'static str },
    #[error("{}: symlink to {target:?} points outside its tree ({tree})", path.display())]
    LinkOutside {
        path: PathBuf,
        target: String,
        tree: String,
    },
    #[error("{}: file name is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Ignore {
        path: PathBuf,
        source: dockerignore::PatternError,
    },
    /// A `.dockerignore` that is no small regular file (a link to `/dev/zero`, a FIFO, 5 GiB).
    #[error("{}: cannot be used as a .dockerignore: {why}", path.display())]
    IgnoreFile { path: PathBuf, why: String },
    #[error("{what} {} does not exist or is not a directory", path.display())]
    Missing { what: &'static str, path: PathBuf },
    /// A tree or a copied-in file whose real path (symlinks followed) is outside the cookbook's
    /// directory: checked at validation, and again here, since a tree can change in between.
    #[error("{what} {} leads outside the cookbook's directory (to {}); a build context only takes files from inside it", path.display(), resolved.display())]
    Outside {
        what: &'static str,
        path: PathBuf,
        resolved: PathBuf,
    },
    #[error("{}: changed while the build context was being written; run again", path.display())]
    Changed { path: PathBuf },
    #[error("{}: directories nest more than {limit} deep; a build context cannot go deeper", path.display())]
    TooDeep { path: PathBuf, limit: usize },
    /// A Dockerfile's `FROM` line that names no image cookbook can pin (`path` is the
    /// Dockerfile as the cookbook names it).
    #[error("{}:{}: {}", path.display(), source.line, source.problem)]
    FromLine {
        path: PathBuf,
        source: from_lines::FromLineError,
    },
    /// A Dockerfile too large or not a regular file, read for its `FROM` lines.
    #[error("{}: cannot be read as a Dockerfile: {why}", path.display())]
    DockerfileFile { path: PathBuf, why: String },
}

/// The context plan of a container. Pure. `dockerfile_text` is the generated Dockerfile for
/// generated containers (see `dockerfile::generate`), ignored for Dockerfile-based ones.
pub fn plan(
    cookbook: &Cookbook,
    container: &Name,
    generated_dockerfile: Option<String>,
) -> ContextPlan {
    let c = &cookbook.containers[container];
    match &c.kind {
        ContainerKind::Generated(g) => ContextPlan {
            dockerfile: "Dockerfile".to_owned(),
            generated: vec![(
                "Dockerfile".to_owned(),
                Arc::from(generated_dockerfile.unwrap_or_default().into_bytes()),
            )],
            files: Vec::new(),
            trees: g
                .applications
                .iter()
                .map(|a| Tree {
                    source: cookbook.applications[a].source.clone(),
                    prefix: a.to_string(),
                    keep_ignore_file: false,
                    always_keep: Vec::new(),
                })
                .collect(),
        },
        ContainerKind::Dockerfile(d) => {
            let inside = d
                .dockerfile
                .strip_prefix(&d.context)
                .filter(|p| !p.is_root());
            let (dockerfile, files) = match &inside {
                Some(rel) => (rel.as_str().to_owned(), Vec::new()),
                None => (
                    OUTSIDE_DOCKERFILE.to_owned(),
                    vec![(OUTSIDE_DOCKERFILE.to_owned(), d.dockerfile.clone())],
                ),
            };
            let mut always_keep = vec![".dockerignore".to_owned()];
            if inside.is_some() {
                always_keep.push(dockerfile.clone());
            }
            ContextPlan {
                dockerfile,
                generated: Vec::new(),
                files,
                trees: vec![Tree {
                    source: d.context.clone(),
                    prefix: String::new(),
                    keep_ignore_file: true,
                    always_keep,
                }],
            }
        }
    }
}

/// Opens a file listed as regular, refusing it if it has become something else since: opened
/// non-blocking, so that a file swapped for a FIFO after the walk cannot block the open, and
/// checked with `fstat` before any read.
pub fn open_regular(path: &std::path::Path) -> Result<std::fs::File, ContextError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|source| ContextError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        _ => Err(ContextError::Changed {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn own_paths_are_given_relative_to_each_tree() {
        let own = OwnPaths::new([rel("cookbook.json"), rel("cookbook.lock"), rel(".cookbook")]);
        assert_eq!(
            own.within(&RelPath::default()).unwrap(),
            [".cookbook", "cookbook.json", "cookbook.lock"]
        );
        assert_eq!(own.within(&rel("svc")).unwrap(), Vec::<String>::new());
        assert_eq!(own.within(&rel(".cookbook/x")), None);
        let nested = OwnPaths::new([rel("deploy/cookbook.json")]);
        assert_eq!(nested.within(&rel("deploy")).unwrap(), ["cookbook.json"]);
        assert_eq!(OwnPaths::new([RelPath::default()]).paths(), &[]);
    }

    #[test]
    fn own_files_cover_their_temporary_siblings_only() {
        let own = ["cookbook.lock".to_owned(), "sub/.cookbook".to_owned()];
        assert!(is_own(&own, "cookbook.lock"));
        assert!(is_own(&own, ".cookbook.lock.x7Gq2a"));
        assert!(is_own(&own, "sub/.cookbook"));
        assert!(!is_own(&own, "cookbook.lock2"));
        assert!(!is_own(&own, ".cookbook.lockx"));
        assert!(!is_own(&own, "a/cookbook.lock"));
        assert!(!is_own(&own, ".cookbook"));
    }
}
