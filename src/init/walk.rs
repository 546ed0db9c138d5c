//! The one step of `init` that reads the file system: list a project's regular files.
//!
//! Built on the `ignore` crate (ripgrep's walker) for its parallel directory reads and its
//! gitignore matcher; the root `.dockerignore` is matched with Docker's own rules
//! ([`crate::context::dockerignore`]), which differ from gitignore's. Global git settings and
//! ignore files above the project are not read, so the same tree gives the same listing anywhere.
//!
//! The ignore files (`.ignore`, `.gitignore`, `.git/info/exclude`) are read here, not by the
//! walker: the walker opens them through symbolic links and reads them whole, so a `.gitignore`
//! linked to `/dev/zero` ran `init` out of memory and one linked to a FIFO hung it. [`IgnoreFiles`]
//! reads each as the `.dockerignore` is read — never through a link (as git itself does since 2.32),
//! only a regular file, at most [`IGNORE_FILE_MAX`] bytes — and applies them with the walker's
//! precedence (`.ignore` over `.gitignore` over `.git/info/exclude`, the deepest file first, a
//! `.gitignore` above a nested repository not applied inside it).
//!
//! Invariants:
//! - symbolic links are never followed (so a loop or a link out of the tree cannot be walked),
//!   ignore files included; each is reported, with its target, in one note;
//! - a directory that cannot be read is skipped with a note naming it; the walk goes on;
//! - the walk stops at `Limits::max_files` files or after `Limits::time`, with a note saying the
//!   listing is incomplete: a huge tree costs bounded time;
//! - dependency and VCS directories (`node_modules`, `.git`, `target`, virtualenvs…) are pruned:
//!   they are never services, and they are where file counts explode;
//! - the listing is sorted (the walker is parallel and unordered).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder, WalkState};

use super::detect::Files;
use super::InitError;
use crate::context::dockerignore::DockerIgnore;

/// Directories never descended into: dependencies, build output, version control, caches.
pub const PRUNED: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".cookbook",
    "node_modules",
    "bower_components",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".gradle",
    ".idea",
    "target",
];

/// How much of a tree `init` is willing to walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_files: usize,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 1_000_000,
            time: Duration::from_secs(30),
        }
    }
}

/// The regular files of a project, relative to its root, `/`-separated, sorted.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The root directory's own name (the default project name).
    pub root_name: String,
    pub files: Vec<String>,
    /// What the walk skipped or could not do.
    pub notes: Vec<String>,
    /// False when a limit stopped the walk.
    pub complete: bool,
}

impl Listing {
    /// A listing from paths (for tests and callers that already have one).
    pub fn from_paths<I: IntoIterator<Item = S>, S: Into<String>>(
        root_name: &str,
        paths: I,
    ) -> Listing {
        let mut files: Vec<String> = paths.into_iter().map(Into::into).collect();
        files.sort();
        files.dedup();
        Listing {
            root_name: root_name.to_owned(),
            files,
            notes: Vec::new(),
            complete: true,
        }
    }
}

enum Item {
    File(String),
    Link(String, String),
    Special(String),
    NotUtf8(String),
    Error(String),
}

/// Lists `root`'s regular files within `limits`.
pub fn walk(root: &Path, limits: &Limits) -> Result<Listing, InitError> {
    let root_err = |source| InitError::Root {
        path: root.display().to_string(),
        source,
    };
    let canonical = root.canonicalize().map_err(root_err)?;
    std::fs::read_dir(&canonical).map_err(root_err)?;
    let root_name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut notes = Vec::new();
    let dockerignore = Arc::new(root_dockerignore(&canonical, &mut notes));
    let ignore_files = Arc::new(IgnoreFiles::new(&canonical));

    let started = Instant::now();
    let count = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Item>();
    walker(&canonical, &dockerignore, &ignore_files).run(|| {
        let tx = tx.clone();
        let count = Arc::clone(&count);
        let stopped = Arc::clone(&stopped);
        let root = canonical.clone();
        let dockerignore = Arc::clone(&dockerignore);
        let limits = *limits;
        Box::new(move |result| {
            if stopped.load(Ordering::Relaxed) {
                return WalkState::Quit;
            }
            let entry = match result {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Item::Error(describe_error(&root, &e)));
                    return WalkState::Continue;
                }
            };
            let Some(item) = item(&entry, &root, dockerignore.as_ref().as_ref()) else {
                return WalkState::Continue;
            };
            if let Item::File(_) = item {
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                if n > limits.max_files || started.elapsed() > limits.time {
                    stopped.store(true, Ordering::Relaxed);
                    return WalkState::Quit;
                }
            }
            let _ = tx.send(item);
            WalkState::Continue
        })
    });
    drop(tx);

    let found = Found::gather(rx);
    let complete = !stopped.load(Ordering::Relaxed);
    if !complete {
        notes.push(format!(
            "the walk stopped after {} files and {:.1} s (limits: {} files, {} s): the tree is only partly examined, services in the rest are missing",
            found.files.len(),
            started.elapsed().as_secs_f64(),
            limits.max_files,
            limits.time.as_secs()
        ));
    }
    notes.extend(found.notes());
    notes.extend(ignore_files.notes());
    Ok(Listing {
        root_name,
        files: found.files,
        notes,
        complete,
    })
}

/// The root's `.dockerignore`, matched with Docker's rules; a note when it cannot be applied.
fn root_dockerignore(root: &Path, notes: &mut Vec<String>) -> Option<DockerIgnore> {
    match read_capped(&root.join(".dockerignore"), 1 << 20) {
        Ok(bytes) => match DockerIgnore::parse(&String::from_utf8_lossy(&bytes)) {
            Ok(d) => Some(d),
            Err(e) => {
                notes.push(format!(".dockerignore {e}: the file is not applied"));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            notes.push(format!(".dockerignore: cannot read it ({e}): not applied"));
            None
        }
    }
}

/// The parallel walker over `root`: links never followed, dependency and VCS directories
/// pruned, ignore files applied by [`IgnoreFiles`], and the root `.dockerignore` with Docker's
/// rule for excluded directories.
fn walker(
    root: &Path,
    dockerignore: &Arc<Option<DockerIgnore>>,
    ignore_files: &Arc<IgnoreFiles>,
) -> ignore::WalkParallel {
    let filter_root = root.to_path_buf();
    let filter_ignore = Arc::clone(dockerignore);
    let filter_files = Arc::clone(ignore_files);
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(false)
        .parents(false)
        .git_global(false)
        // Read by `IgnoreFiles` instead (see the module header).
        .git_ignore(false)
        .git_exclude(false)
        .ignore(false)
        .follow_links(false)
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if is_dir && PRUNED.iter().any(|p| entry.file_name() == *p) {
                return false;
            }
            if entry.depth() > 0 && filter_files.ignored(entry.path(), is_dir) {
                return false;
            }
            let Some(di) = filter_ignore.as_ref() else {
                return true;
            };
            let Some(rel) = relative(&filter_root, entry.path()) else {
                return true;
            };
            if rel.is_empty() || !di.is_excluded(&rel) {
                return true;
            }
            // Docker's rule: an excluded directory is still entered when an exception may
            // re-include something below it.
            is_dir && !di.can_prune(&rel)
        });
    builder.build_parallel()
}

/// What one walked entry below the root is for the listing; `None` for the root, a directory,
/// or a file the `.dockerignore` excludes inside a directory kept for an exception.
fn item(
    entry: &ignore::DirEntry,
    root: &Path,
    dockerignore: Option<&DockerIgnore>,
) -> Option<Item> {
    if entry.depth() == 0 {
        return None;
    }
    let kind = entry.file_type()?;
    let rel = entry.path().strip_prefix(root).ok()?;
    let Some(rel) = rel.to_str() else {
        return Some(Item::NotUtf8(rel.to_string_lossy().into_owned()));
    };
    if kind.is_dir() || dockerignore.is_some_and(|di| di.is_excluded(rel)) {
        return None;
    }
    Some(if kind.is_symlink() {
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_else(|e| format!("unreadable link: {e}"));
        Item::Link(rel.to_owned(), target)
    } else if kind.is_file() {
        Item::File(rel.to_owned())
    } else {
        Item::Special(rel.to_owned())
    })
}

/// The walker threads' items, sorted (the walk is parallel and unordered).
#[derive(Default)]
struct Found {
    files: Vec<String>,
    links: Vec<String>,
    specials: Vec<String>,
    not_utf8: Vec<String>,
    errors: Vec<String>,
}

impl Found {
    fn gather(items: mpsc::Receiver<Item>) -> Found {
        let mut found = Found::default();
        for item in items {
            match item {
                Item::File(f) => found.files.push(f),
                Item::Link(l, t) => found.links.push(format!("{l} → {t}")),
                Item::Special(s) => found.specials.push(s),
                Item::NotUtf8(s) => found.not_utf8.push(s),
                Item::Error(e) => found.errors.push(e),
            }
        }
        found.files.sort_unstable();
        for list in [
            &mut found.links,
            &mut found.specials,
            &mut found.not_utf8,
            &mut found.errors,
        ] {
            list.sort();
        }
        found
    }

    /// One note per kind of entry skipped, then each error.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.links.is_empty() {
            notes.push(format!(
                "{} symbolic link(s) not followed (init never follows links; a link's target is not part of the project): {}",
                self.links.len(),
                summarize(&self.links)
            ));
        }
        if !self.specials.is_empty() {
            notes.push(format!(
                "{} special file(s) skipped (not regular files): {}",
                self.specials.len(),
                summarize(&self.specials)
            ));
        }
        if !self.not_utf8.is_empty() {
            notes.push(format!(
                "{} path(s) skipped: not UTF-8: {}",
                self.not_utf8.len(),
                summarize(&self.not_utf8)
            ));
        }
        notes.extend(self.errors.iter().cloned());
        notes
    }
}

/// The largest ignore file applied. Git applies `.gitignore` files up to 100 MiB; a real one is a
/// few KiB, and 4 MiB keeps a hostile one from costing more than a moment.
pub const IGNORE_FILE_MAX: usize = 4 << 20;

/// The ignore files of a tree, read once per directory as the walk reaches it, safely (see the
/// module header), and matched with the `ignore` crate's precedence.
struct IgnoreFiles {
    /// Tells this walk's rules apart from another's in a thread's [`LAST_DIR`].
    walk: u64,
    root: PathBuf,
    /// Per directory, the matchers that apply to its entries. A directory is entered only after
    /// its parent (the walk goes top-down), so its parent's rules are always cached already
    /// except under a race between threads, which only computes them twice.
    dirs: Mutex<HashMap<PathBuf, Arc<DirRules>>>,
    notes: Mutex<Vec<String>>,
}

thread_local! {
    /// The walk, directory and rules a walker thread last looked up (see [`IgnoreFiles::ignored`]).
    static LAST_DIR: std::cell::RefCell<Option<(u64, PathBuf, Arc<DirRules>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The matchers for one directory's entries, each list deepest first.
#[derive(Default)]
struct DirRules {
    ignore: Vec<Arc<Gitignore>>,
    gitignore: Vec<Arc<Gitignore>>,
    exclude: Option<Arc<Gitignore>>,
}

impl IgnoreFiles {
    fn new(root: &Path) -> IgnoreFiles {
        static WALKS: AtomicU64 = AtomicU64::new(0);
        IgnoreFiles {
            walk: WALKS.fetch_add(1, Ordering::Relaxed),
            root: root.to_path_buf(),
            dirs: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// Whether an entry below the root is ignored: the first of `.ignore`, `.gitignore` and
    /// `.git/info/exclude` (each deepest first) with an opinion decides, as in `ignore`'s
    /// `Dir::matched_ignore`.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Some(dir) = path.parent() else {
            return false;
        };
        // A walker thread reads a directory's entries one after another: the rules of the
        // last directory it asked for, kept per thread, spare the shared map's lock for all but
        // the first (the lock and the path hashing cost about 8% of a 100,000-file init:
        // docs/BENCHMARKS.md, "Init").
        let rules = LAST_DIR.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((walk, known, rules)) if *walk == self.walk && known == dir => {
                    Arc::clone(rules)
                }
                _ => {
                    let rules = self.rules(dir);
                    *last = Some((self.walk, dir.to_path_buf(), Arc::clone(&rules)));
                    rules
                }
            }
        });
        if rules.ignore.is_empty() && rules.gitignore.is_empty() && rules.exclude.is_none() {
            return false;
        }
        let decided = rules
            .ignore
            .iter()
            .chain(&rules.gitignore)
            .chain(&rules.exclude)
            .map(|g| g.matched(path, is_dir))
            .find(|m| !m.is_none());
        matches!(decided, Some(Match::Ignore(_)))
    }

    fn rules(&self, dir: &Path) -> Arc<DirRules> {
        if let Some(known) = lock(&self.dirs).get(dir) {
            return Arc::clone(known);
        }
        let parent = match dir.parent() {
            Some(parent) if dir != self.root && dir.starts_with(&self.root) => self.rules(parent),
            _ => Arc::new(DirRules::default()),
        };
        let git = std::fs::symlink_metadata(dir.join(".git")).ok();
        let mut rules = DirRules {
            ignore: self.read(dir, &dir.join(".ignore")).into_iter().collect(),
            gitignore: self
                .read(dir, &dir.join(".gitignore"))
                .into_iter()
                .collect(),
            exclude: parent.exclude.clone(),
        };
        rules.ignore.extend(parent.ignore.iter().cloned());
        match git {
            // A repository's root: the `.gitignore` files above it are not its own.
            Some(meta) => {
                rules.exclude = meta
                    .is_dir()
                    .then(|| self.read(dir, &dir.join(".git/info/exclude")))
                    .flatten();
            }
            None => rules.gitignore.extend(parent.gitignore.iter().cloned()),
        }
        let rules = Arc::new(rules);
        lock(&self.dirs).insert(dir.to_path_buf(), Arc::clone(&rules));
        rules
    }

    /// The matcher of one ignore file in `dir`; `None` when there is none or it cannot be
    /// applied (a note says why).
    fn read(&self, dir: &Path, file: &Path) -> Option<Arc<Gitignore>> {
        let rel = relative(&self.root, file).unwrap_or_else(|| file.display().to_string());
        let bytes = match read_capped(file, IGNORE_FILE_MAX) {
            Ok(bytes) if bytes.len() > IGNORE_FILE_MAX => {
                self.note(format!(
                    "{rel}: larger than {} MiB: not applied",
                    IGNORE_FILE_MAX >> 20
                ));
                return None;
            }
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) if is_link(file) => {
                let target = std::fs::read_link(file)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| e.to_string());
                self.note(format!(
                    "{rel} → {target}: a symbolic link, not followed (init never follows links): not applied"
                ));
                return None;
            }
            Err(e) => {
                self.note(format!("{rel}: cannot read it ({e}): not applied"));
                return None;
            }
        };
        let mut builder = GitignoreBuilder::new(dir);
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Err(e) = builder.add_line(Some(file.to_path_buf()), line) {
                self.note(format!("{rel}: {e}: that line is not applied"));
            }
        }
        match builder.build() {
            Ok(g) if g.is_empty() => None,
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                self.note(format!("{rel}: {e}: not applied"));
                None
            }
        }
    }

    fn note(&self, note: String) {
        lock(&self.notes).push(note);
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = std::mem::take(&mut *lock(&self.notes));
        notes.sort();
        notes.dedup();
        notes
    }
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// A poisoned lock only means another walker thread panicked; its data is still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `path` relative to `root`, `/`-separated; `None` outside it or not UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    path.strip_prefix(root).ok()?.to_str().map(str::to_owned)
}

/// The first ten, then a count.
fn summarize(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 10 {
        s.push_str(&format!(", and {} more", items.len() - 10));
    }
    s
}

/// A walk error as a note: what was skipped, relative to the project, and why.
pub fn describe_error(root: &Path, e: &ignore::Error) -> String {
    match e {
        ignore::Error::WithPath { path, err } => {
            let rel = path
                .strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| path.clone());
            match err.as_ref() {
                ignore::Error::Io(io) => format!("skipped {}: cannot read it: {io}", rel.display()),
                other => format!("{}: {}", rel.display(), describe_error(root, other)),
            }
        }
        ignore::Error::WithDepth { err, .. } => describe_error(root, err),
        ignore::Error::WithLineNumber { line, err } => {
            format!("line {line}: {}", describe_error(root, err))
        }
        ignore::Error::Partial(errs) => errs
            .iter()
            .map(|e| describe_error(root, e))
            .collect::<Vec<_>>()
            .join("; "),
        ignore::Error::Loop { child, .. } => {
            format!("skipped {}: a symbolic link loop", child.display())
        }
        ignore::Error::Io(io) => format!("skipped an entry: cannot read it: {io}"),
        other => format!("an ignore file was not fully applied: {other}"),
    }
}

/// Reads at most `max + 1` bytes (so a caller sees "too large") without following a final
/// symbolic link and without blocking on a FIFO put where a file was listed.
fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// [`Files`] over a directory on disk.
pub struct DiskFiles {
    root: PathBuf,
}

impl DiskFiles {
    pub fn new(root: &Path) -> DiskFiles {
        DiskFiles {
            root: root.to_path_buf(),
        }
    }
}

impl Files for DiskFiles {
    fn read(&self, path: &str, max: usize) -> std::io::Result<Vec<u8>> {
        read_capped(&self.root.join(path), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_error_names_the_directory_relative_to_the_project() {
        // Tests run as root, who reads every directory: the walker's error path is covered here
        // with the error the walker produces for an unreadable directory.
        let root = Path::new("/p");
        let e = ignore::Error::WithDepth {
            depth: 2,
            err: Box::new(ignore::Error::WithPath {
                path: PathBuf::from("/p/secret/inner"),
                err: Box::new(ignore::Error::Io(std::io::Error::from(
                    std::io::ErrorKind::PermissionDenied,
                ))),
            }),
        };
        assert_eq!(
            describe_error(root, &e),
            "skipped secret/inner: cannot read it: permission denied"
        );
    }

    fn listed(files: &[(&str, &str)]) -> Vec<String> {
        let tmp = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = tmp.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        walk(tmp.path(), &Limits::default()).unwrap().files
    }

    #[test]
    fn ignore_files_apply_with_the_walkers_precedence() {
        let files = listed(&[
            (".gitignore", "*.log\nbuild/\n"),
            ("a.log", ""),
            ("build/out", ""),
            // A deeper `.gitignore` re-includes what a shallower one excludes.
            ("keep/.gitignore", "!important.log\n"),
            ("keep/important.log", ""),
            ("keep/other.log", ""),
            // `.ignore` wins over `.gitignore` in any directory.
            ("ig/.ignore", "!wanted.log\nsecret\n"),
            ("ig/wanted.log", ""),
            ("ig/secret", ""),
            // A nested repository does not take its parents' `.gitignore`, but its own
            // `.git/info/exclude` applies.
            ("nested/.git/info/exclude", "excluded\n"),
            ("nested/x.log", ""),
            ("nested/excluded", ""),
            ("src/main.rs", ""),
        ]);
        assert_eq!(
            files,
            [
                ".gitignore",
                "ig/.ignore",
                "ig/wanted.log",
                "keep/.gitignore",
                "keep/important.log",
                "nested/x.log",
                "src/main.rs",
            ]
        );
    }

    #[test]
    fn summaries_stop_at_ten() {
        let items: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(
            summarize(&items),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, and 2 more"
        );
    }
}
