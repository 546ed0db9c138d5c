//! Lists a context's entries from the file system, sorted by path bytes.
//!
//! Ignored directories are pruned (never walked) following moby's rule, `.git` never enters, and
//! special files are refused from their directory entry or `lstat` alone: a FIFO is never opened,
//! so it can never block.
//!
//! Written on rustix's `RawDir` (`getdents64` into one reused buffer, names borrowed from it) and
//! `statat` relative to the open directory, with rayon across directories, rather than on walkdir
//! or `std::fs::read_dir`: walkdir walks one directory at a time and `lstat`s each entry by its
//! full path; std allocates a name per entry (twice, with `file_name`). On a warm `hash` of a
//! 100,000-file tree the walk is most of the run, so this is where `git status` is matched
//! (docs/BENCHMARKS.md, "Hashing and contexts").

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use super::dockerignore::DockerIgnore;
use super::{
    is_own, ContextError, ContextPlan, Entry, EntryKind, EntrySource, OwnPaths, StatKey, Tree,
};

/// The stat cache's key for a file, from its `lstat`.
// The casts are no-ops on x86_64 but not on every target (`st_dev`, `st_size` differ).
#[allow(clippy::unnecessary_cast)]
fn stat_key(st: &rustix::fs::Stat) -> StatKey {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    StatKey {
        size: st.st_size as u64,
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        ino: st.st_ino as u64,
        dev: st.st_dev as u64,
    }
}

/// A regular file's kind: the owner's executable bit is the only mode bit kept.
fn kind_of(st: &rustix::fs::Stat) -> EntryKind {
    if st.st_mode & 0o100 != 0 {
        EntryKind::Executable
    } else {
        EntryKind::File
    }
}

fn special(ft: FileType) -> Option<&'static str> {
    match ft {
        FileType::Fifo => Some("a FIFO"),
        FileType::Socket => Some("a socket"),
        FileType::BlockDevice => Some("a block device"),
        FileType::CharacterDevice => Some("a character device"),
        _ => None,
    }
}

/// Whether a symlink at `link` (relative to its tree) with `target` stays inside the tree.
fn link_stays_inside(link: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: Vec<&str> = link.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            p => depth.push(p),
        }
    }
    true
}

/// The cookbook's directory, and its real path (symlinks resolved) that every tree and copied-in
/// file must stay under.
struct Base<'a> {
    dir: &'a Path,
    real: PathBuf,
}

impl Base<'_> {
    /// Refuses `path` (opened as `fd`) when its real path is outside the cookbook's directory.
    /// The real path is the kernel's name of the open directory, so a symlink swapped in after
    /// the check cannot redirect what is read.
    fn check_inside(
        &self,
        what: &'static str,
        path: &Path,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), ContextError> {
        let by_fd =
            fd.and_then(|fd| std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok());
        let resolved = match by_fd {
            Some(real) => real,
            None => std::fs::canonicalize(path).map_err(|source| ContextError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        };
        if resolved.starts_with(&self.real) {
            Ok(())
        } else {
            Err(ContextError::Outside {
                what,
                path: path.to_path_buf(),
                resolved,
            })
        }
    }
}

fn list_tree(
    base: &Base<'_>,
    tree: &Tree,
    own: &OwnPaths,
    out: &mut Vec<Entry>,
) -> Result<(), ContextError> {
    // A tree inside cookbook's own state contributes nothing; own paths inside it are skipped.
    let Some(own) = own.within(&tree.source) else {
        return Ok(());
    };
    let root = tree.source.under(base.dir);
    // The root of an application tree is its `source`; a Dockerfile container's is its context.
    let what = if tree.prefix.is_empty() {
        "context directory"
    } else {
        "source directory"
    };
    let missing = || ContextError::Missing {
        what,
        path: root.clone(),
    };
    // Follows a symlink for the root itself (as `std::fs::metadata` would); never below it.
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        &root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => missing(),
        e => ContextError::Io {
            path: root.clone(),
            source: e.into(),
        },
    })?;
    base.check_inside(what, &root, Some(fd.as_fd()))?;
    let ignore_path = root.join(".dockerignore");
    let mut ignore = match super::dockerignore::read_file(&ignore_path) {
        Ok(Some(text)) => DockerIgnore::parse(&text).map_err(|source| ContextError::Ignore {
            path: ignore_path.clone(),
            source,
        })?,
        Ok(None) => DockerIgnore::default(),
        Err(super::dockerignore::FileError::Io(source)) => {
            return Err(ContextError::Io {
                path: ignore_path,
                source,
            })
        }
        Err(refused) => {
            return Err(ContextError::IgnoreFile {
                path: ignore_path,
                why: refused.to_string(),
            })
        }
    };
    for keep in &tree.always_keep {
        ignore.keep(keep);
    }

    let walk = TreeWalk {
        tree,
        ignore: &ignore,
        own: &own,
        skip: if tree.prefix.is_empty() {
            0
        } else {
            tree.prefix.len() + 1
        },
    };
    let chunks = on_walk_threads(|| walk.walk(fd.as_fd(), &root, &tree.prefix, 0))?;
    out.reserve(chunks.iter().map(Vec::len).sum());
    for chunk in chunks {
        out.extend(chunk);
    }
    Ok(())
}

/// A walk's result: entries in order, in pieces. Directories hand their pieces up instead of
/// appending entries into their parent's vector, so each entry is moved once, at the end, however
/// deep it lies.
type Chunks = Vec<Vec<Entry>>;

/// How deep directories may nest below a tree's root. The walk recurses once per level, so
/// without a limit a pathological tree (a chain of thousands of one-letter directories, which
/// `openat` reaches without ever hitting `PATH_MAX`) would overflow the stack and abort.
pub const MAX_DEPTH: usize = 1024;

/// The walk's threads: rayon's default 2 MiB stacks hold only a few hundred levels of the
/// recursion in a debug build, so the walk runs on threads with room for `MAX_DEPTH` (the
/// memory is reserved, not committed: only the pages a deep walk touches are used).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("cookbook-walk-{i}"))
            .stack_size(64 << 20)
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `f` on the walk's threads (on the caller's when they cannot be started; the depth
/// limit is then the only guard, and it holds for release builds' smaller frames).
pub(crate) fn on_walk_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Files of one directory handled by one task: a cached file costs a few microseconds (one
/// `stat`), so smaller tasks cost more in rayon's stealing and waking than they save.
const FILES_PER_TASK: usize = 256;

/// Orders directory children the way their paths sort: a directory as its name followed by `/`
/// (so `a.txt` < `a/b`, as `.` < `/`), a file as its name.
fn child_order(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    match a[..common].cmp(&b[..common]) {
        std::cmp::Ordering::Equal => {}
        unequal => return unequal,
    }
    // What follows the common part (at most one name goes on), a directory's `/` included.
    fn tail(name: &[u8], common: usize, dir: bool) -> impl Iterator<Item = u8> + '_ {
        name[common..].iter().copied().chain(dir.then_some(b'/'))
    }
    tail(a, common, a_dir).cmp(tail(b, common, b_dir))
}

/// A directory's children: names (each NUL-terminated) in one buffer, and their types.
struct Children {
    names: Vec<u8>,
    /// (start of the name in `names`, its length without the NUL, its type)
    list: Vec<(usize, usize, FileType)>,
}

impl Children {
    fn name(&self, i: usize) -> &[u8] {
        let (start, len, _) = self.list[i];
        &self.names[start..start + len]
    }

    fn c_name(&self, i: usize) -> &CStr {
        let (start, len, _) = self.list[i];
        CStr::from_bytes_with_nul(&self.names[start..start + len + 1]).expect("NUL-terminated")
    }

    fn is_dir(&self, i: usize) -> bool {
        self.list[i].2 == FileType::Directory
    }
}

thread_local! {
    /// One `getdents64` buffer per thread, reused for every directory.
    static DIRENTS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads a directory's entries (not `.` and `..`), sorted as their paths sort, with the type of
/// each: `d_type` where the file system gives it, else an `lstat`.
fn read_children(fd: BorrowedFd<'_>) -> std::io::Result<Children> {
    let mut children = Children {
        names: Vec::new(),
        list: Vec::new(),
    };
    DIRENTS.with_borrow_mut(|buf| -> std::io::Result<()> {
        // Large enough for any entry (a name is at most 255 bytes), and for ~400 entries a call.
        buf.reserve(16 * 1024);
        let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
        let mut dir = RawDir::new(fd, spare);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ft = match entry.file_type() {
                FileType::Unknown => FileType::from_raw_mode(
                    rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
                ),
                ft => ft,
            };
            children.list.push((children.names.len(), name.len(), ft));
            children.names.extend_from_slice(name);
            children.names.push(0);
        }
        Ok(())
    })?;
    let Children { names, list } = &mut children;
    list.sort_unstable_by(|&(a, al, at), &(b, bl, bt)| {
        child_order(
            &names[a..a + al],
            at == FileType::Directory,
            &names[b..b + bl],
            bt == FileType::Directory,
        )
    });
    Ok(children)
}

/// A directory being listed.
struct Dir<'a> {
    fd: BorrowedFd<'a>,
    /// Its path on disk.
    abs: &'a Path,
    /// How many levels below the tree's root it is.
    depth: usize,
    /// Its path in the context.
    path: &'a str,
    children: Children,
    /// `abs`, shared by the entries of its files (made once, if it has files).
    shared: OnceLock<Arc<Path>>,
}

/// One tree's walk: what every directory visit needs.
struct TreeWalk<'a> {
    tree: &'a Tree,
    ignore: &'a DockerIgnore,
    /// Cookbook's own paths in this tree, relative to it (usually none).
    own: &'a [String],
    /// Bytes of a context path before its path in the tree (`<prefix>/`, or nothing).
    skip: usize,
}

impl TreeWalk<'_> {
    /// Lists the open directory `fd` (at `abs` on disk, at `dir` in the context), and below, in
    /// path-byte order.
    ///
    /// Sibling directories are walked in parallel, and a directory's files in runs of
    /// `FILES_PER_TASK`; rayon's ordered collect keeps the listing sorted, so `list` does not
    /// sort 100,000 entries again.
    fn walk(
        &self,
        fd: BorrowedFd<'_>,
        abs: &Path,
        dir: &str,
        depth: usize,
    ) -> Result<Chunks, ContextError> {
        let children = read_children(fd).map_err(|e| ContextError::Io {
            path: abs.to_path_buf(),
            source: e,
        })?;
        // Each directory is a task; consecutive files are grouped into tasks.
        let mut tasks: Vec<std::ops::Range<usize>> = Vec::new();
        for i in 0..children.list.len() {
            match tasks.last_mut() {
                Some(t)
                    if !children.is_dir(i)
                        && !children.is_dir(t.start)
                        && t.len() < FILES_PER_TASK =>
                {
                    t.end = i + 1
                }
                _ => tasks.push(i..i + 1),
            }
        }
        let here = Dir {
            fd,
            abs,
            depth,
            path: dir,
            children,
            shared: OnceLock::new(),
        };
        let run = |task: std::ops::Range<usize>| -> Result<Chunks, ContextError> {
            let mut out = Chunks::new();
            if !here.children.is_dir(task.start) {
                out.push(Vec::with_capacity(task.len()));
            }
            for i in task {
                self.visit(&here, i, &mut out)?;
            }
            Ok(out)
        };
        if tasks.len() <= 1 {
            return tasks.into_iter().next().map_or(Ok(Chunks::new()), run);
        }
        let done: Vec<Chunks> = tasks.into_par_iter().map(run).collect::<Result<_, _>>()?;
        Ok(done.into_iter().flatten().collect())
    }

    /// Lists child `i` of `here` (and below, for a directory) into `out`.
    fn visit(&self, here: &Dir<'_>, i: usize, out: &mut Chunks) -> Result<(), ContextError> {
        let raw_name = here.children.name(i);
        // `.git` never enters, at any depth, and is never walked.
        if raw_name == b".git" {
            return Ok(());
        }
        let Ok(name) = std::str::from_utf8(raw_name) else {
            return Err(ContextError::NotUtf8 {
                path: here.child_abs(i),
            });
        };
        let path = if here.path.is_empty() {
            name.to_owned()
        } else {
            let mut p = String::with_capacity(here.path.len() + 1 + name.len());
            p.push_str(here.path);
            p.push('/');
            p.push_str(name);
            p
        };
        let rel = &path[self.skip..];
        if !self.tree.keep_ignore_file && rel == ".dockerignore" {
            return Ok(());
        }
        if !self.own.is_empty() && is_own(self.own, rel) {
            return Ok(());
        }
        let ft = here.children.list[i].2;
        let excluded = !self.ignore.is_empty() && self.ignore.is_excluded(rel);
        if ft == FileType::Directory {
            // An excluded directory is still walked when a later `!` pattern could re-include
            // something below it (moby's rule); otherwise it is pruned.
            if excluded && self.ignore.can_prune(rel) {
                return Ok(());
            }
            return self.descend(here, i, &path, out);
        }
        if excluded {
            return Ok(());
        }
        if let Some(what) = special(ft) {
            return Err(ContextError::Special {
                path: here.child_abs(i),
                what,
            });
        }
        let entry = if ft == FileType::Symlink {
            self.link(here, i, path)?
        } else {
            self.file(here, i, path)?
        };
        push(out, entry);
        Ok(())
    }

    /// Walks the subdirectory `i` of `here` (context path `path`) into `out`.
    fn descend(
        &self,
        here: &Dir<'_>,
        i: usize,
        path: &str,
        out: &mut Chunks,
    ) -> Result<(), ContextError> {
        if here.depth >= MAX_DEPTH {
            return Err(ContextError::TooDeep {
                path: here.child_abs(i),
                limit: MAX_DEPTH,
            });
        }
        let sub = rustix::fs::openat(
            here.fd,
            here.children.c_name(i),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| here.io_err(i, e))?;
        let sub: OwnedFd = sub;
        out.extend(self.walk(sub.as_fd(), &here.child_abs(i), path, here.depth + 1)?);
        Ok(())
    }

    /// The symbolic link `i` of `here`, refused when its target leaves the tree.
    fn link(&self, here: &Dir<'_>, i: usize, path: String) -> Result<Entry, ContextError> {
        let target = rustix::fs::readlinkat(here.fd, here.children.c_name(i), Vec::new())
            .map_err(|e| here.io_err(i, e))?
            .into_string()
            .map_err(|_| ContextError::NotUtf8 {
                path: here.child_abs(i),
            })?;
        if !link_stays_inside(&path[self.skip..], &target) {
            return Err(ContextError::LinkOutside {
                path: here.child_abs(i),
                target,
                tree: self.tree.source.to_string(),
            });
        }
        Ok(Entry {
            path,
            kind: EntryKind::Symlink,
            size: target.len() as u64,
            source: EntrySource::Link(target),
        })
    }

    /// The regular file `i` of `here`, by its lstat.
    fn file(&self, here: &Dir<'_>, i: usize, path: String) -> Result<Entry, ContextError> {
        // lstat relative to the directory (never follows a symlink, never opens the file).
        let st = rustix::fs::statat(here.fd, here.children.c_name(i), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| here.io_err(i, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            // Replaced by something else since the directory was read.
            let path = here.child_abs(i);
            return Err(match special(ft) {
                Some(what) => ContextError::Special { path, what },
                None => ContextError::Changed { path },
            });
        }
        Ok(Entry {
            path,
            kind: kind_of(&st),
            size: st.st_size as u64,
            source: EntrySource::Disk {
                dir: here.shared.get_or_init(|| Arc::from(here.abs)).clone(),
                name: None,
                stat: stat_key(&st),
            },
        })
    }
}

impl Dir<'_> {
    /// Child `i`'s path on disk.
    fn child_abs(&self, i: usize) -> PathBuf {
        self.abs
            .join(std::ffi::OsStr::from_bytes(self.children.name(i)))
    }

    /// A system call's failure on child `i`.
    fn io_err(&self, i: usize, source: rustix::io::Errno) -> ContextError {
        ContextError::Io {
            path: self.child_abs(i),
            source: source.into(),
        }
    }
}

fn push(out: &mut Chunks, entry: Entry) {
    match out.last_mut() {
        Some(chunk) => chunk.push(entry),
        None => out.push(vec![entry]),
    }
}

/// Lists every entry of a context, sorted by path bytes. `base` is the cookbook's directory;
/// `own` are cookbook's own files there, which no context lists.
pub fn list(base: &Path, plan: &ContextPlan, own: &OwnPaths) -> Result<Vec<Entry>, ContextError> {
    let base = Base {
        dir: base,
        real: std::fs::canonicalize(base).map_err(|source| ContextError::Io {
            path: base.to_path_buf(),
            source,
        })?,
    };
    let mut entries = Vec::new();
    for (path, bytes) in &plan.generated {
        entries.push(Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: bytes.len() as u64,
            source: EntrySource::Generated(bytes.clone()),
        });
    }
    for (path, rel) in &plan.files {
        let real = rel.under(base.dir);
        // The file itself is never followed (`lstat` below); its directory must be inside.
        if let Some(dir) = real.parent() {
            base.check_inside("file", dir, None)?;
        }
        let st = rustix::fs::lstat(&real).map_err(|e| ContextError::Io {
            path: real.clone(),
            source: e.into(),
        })?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ContextError::Missing {
                what: "file",
                path: real,
            });
        }
        let (dir, name) = match (real.parent(), real.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(name)) => (dir, name),
            _ => {
                return Err(ContextError::Missing {
                    what: "file",
                    path: real,
                })
            }
        };
        entries.push(Entry {
            path: path.clone(),
            kind: kind_of(&st),
            size: st.st_size as u64,
            source: EntrySource::Disk {
                dir: Arc::from(dir),
                name: Some(Box::from(name)),
                stat: stat_key(&st),
            },
        });
    }
    for tree in &plan.trees {
        list_tree(&base, tree, own, &mut entries)?;
    }
    // Stable, so of two entries with one path the first pushed (generated, copied-in) stays. A
    // tree's listing is already sorted (see `TreeWalk::walk`); the sort merges the few pieces.
    if !entries.is_sorted_by(|a, b| a.path.as_bytes() <= b.path.as_bytes()) {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    }
    // Two trees cannot share a prefix (application names are unique), and generated files sit at
    // the root where no tree does, except a Dockerfile context's own root: there the generated or
    // copied-in name is reserved, so a duplicate means the user has a file of that name.
    entries.dedup_by(|b, a| a.path == b.path);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RelPath;

    #[test]
    fn listing_comes_out_sorted_by_path_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "a.txt",
            "a/b",
            "a/b.c/d",
            "a/b0/c",
            "a/b-/c",
            "a-b",
            "a0",
            "a/.x",
            "b",
            "A",
            "é",
            "z/y/x/w",
            "sub.d/x",
            "sub/x",
            "sub-x",
            ".git/config",
            "deep/.git/HEAD",
        ];
        for n in names {
            let p = dir.path().join("ctx").join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, n).unwrap();
        }
        let tree = Tree {
            source: RelPath::parse("ctx").unwrap(),
            prefix: String::new(),
            keep_ignore_file: true,
            always_keep: Vec::new(),
        };
        let mut out = Vec::new();
        let base = Base {
            dir: dir.path(),
            real: std::fs::canonicalize(dir.path()).unwrap(),
        };
        list_tree(&base, &tree, &OwnPaths::default(), &mut out).unwrap();
        let listed: Vec<&str> = out.iter().map(|e| e.path.as_str()).collect();
        let mut expected: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !n.contains(".git/"))
            .collect();
        expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(listed, expected);
    }

    proptest::proptest! {
        #[test]
        fn child_order_is_the_order_of_paths(
            a in "[a-c./-]{0,4}", a_dir: bool, b in "[a-c./-]{0,4}", b_dir: bool,
        ) {
            let path = |n: &str, dir: bool| format!("{n}{}", if dir { "/" } else { "" });
            proptest::prop_assert_eq!(
                child_order(a.as_bytes(), a_dir, b.as_bytes(), b_dir),
                path(&a, a_dir).cmp(&path(&b, b_dir))
            );
        }
    }

    #[test]
    fn links() {
        assert!(link_stays_inside("a/b", "c"));
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("b", "/etc/passwd"));
        assert!(link_stays_inside("a/b", "./x/../y"));
    }
}
