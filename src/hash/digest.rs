//! File digests for a context's entries: each file read at most once, on all cores.
//!
//! rayon spreads files over the cores; sha2 uses SHA-NI where the CPU has it (runtime
//! detection). Files whose identity the stat cache vouches for are not read at all.

use std::cell::RefCell;
use std::io::Read;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::context::{open_regular, ContextError, Entry, EntrySource, StatKey};

const BUF: usize = 256 * 1024;

/// A file read by this run: its directory and name, the identity it had, when the read started
/// (nanoseconds since the epoch), and its SHA-256.
pub type ReadDigest<'p> = (&'p std::path::Path, &'p str, StatKey, i64, [u8; 32]);

/// What hashing asks of a cache of file digests, so that the hash core never imports the state
/// directory's edge: `state::stat_cache::StatCache` implements it; [`NoCache`] is the empty one.
pub trait DigestCache: Sync {
    /// The digest of `name` in `dir` if its identity (`key`) still vouches for it. `hint` is
    /// where the caller's previous lookup ended (lookups come in path order).
    fn get(
        &self,
        dir: &std::path::Path,
        name: &str,
        key: &StatKey,
        hint: &mut usize,
    ) -> Option<[u8; 32]>;
    /// Records the digests this run read.
    fn insert_all(&self, read: Vec<ReadDigest<'_>>);
    /// Every file below `dir` (not ignored) was looked up or read by this run.
    fn cover(&self, dir: &std::path::Path);
}

/// No cache: every file is read.
pub struct NoCache;

impl DigestCache for NoCache {
    fn get(&self, _: &std::path::Path, _: &str, _: &StatKey, _: &mut usize) -> Option<[u8; 32]> {
        None
    }
    fn insert_all(&self, _: Vec<ReadDigest<'_>>) {}
    fn cover(&self, _: &std::path::Path) {}
}

/// Now, in nanoseconds since the epoch: when a read starts (a cache's racy-clean rule compares
/// it with the file's mtime and ctime).
pub fn now_ns() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

thread_local! {
    /// One read buffer per worker thread, reused for every file: a fresh 256 KiB buffer per file
    /// is an mmap/munmap pair and 64 page faults each time (glibc's mmap threshold is 128 KiB).
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The SHA-256 of a file that must be `expected_size` bytes long.
///
/// A short read from a regular file means end of file, so a file whose last read came back
/// short at exactly `expected_size` bytes is done without the extra read that would return 0
/// (one syscall saved per file: 100,000 on a 100,000-file tree). Anything else — fewer bytes, or
/// more — is reported as a file changed under us, never hashed as if it were whole.
fn sha256_file(path: &std::path::Path, expected_size: u64) -> Result<[u8; 32], ContextError> {
    let io_err = |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_regular(path)?;
    BUFFER.with_borrow_mut(|buf| {
        // One byte more than expected (up to BUF), so that a file that grew shows in one read.
        let want = usize::try_from(expected_size)
            .map_or(BUF, |s| s.saturating_add(1).min(BUF))
            .max(1);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let buf = &mut buf[..want];
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        loop {
            let n = match file.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(&buf[..n]);
            if n < buf.len() && total == expected_size {
                break;
            }
        }
        if total != expected_size {
            return Err(ContextError::Changed {
                path: path.to_path_buf(),
            });
        }
        Ok(hasher.finalize().into())
    })
}

/// The SHA-256 of every entry, in entry order.
///
/// Workers hand what they read to the stat cache in one `insert_all` at the end rather than
/// through the cache's lock per file (a warm run reads nothing and takes no lock). Each worker's
/// piece of the (path-sorted) entries is looked up in order, so with the cache's `hint` a hit is
/// one comparison.
pub fn digest_entries(
    entries: &[Entry],
    cache: &impl DigestCache,
) -> Result<Vec<[u8; 32]>, ContextError> {
    let read = std::sync::Mutex::new(Vec::new());
    let digests = entries
        .par_iter()
        // Pieces of at least 64 files: a cached file costs ~0.2 µs, and finer pieces had the two
        // workers stealing and yielding more than hashing on warm runs.
        .with_min_len(64)
        .map_init(
            || 0,
            |hint, e| {
                Ok(match &e.source {
                    EntrySource::Generated(bytes) => Sha256::digest(bytes).into(),
                    EntrySource::Link(target) => Sha256::digest(target.as_bytes()).into(),
                    EntrySource::Disk { dir, stat, .. } => {
                        let name = e.disk_name();
                        match cache.get(dir, name, stat, hint) {
                            Some(d) => d,
                            None => {
                                let started = now_ns();
                                let d = sha256_file(&dir.join(name), stat.size)?;
                                read.lock()
                                    .expect("no panics while holding the lock")
                                    .push((&**dir, name, *stat, started, d));
                                d
                            }
                        }
                    }
                })
            },
        )
        .collect::<Result<_, ContextError>>()?;
    cache.insert_all(read.into_inner().expect("no panics while holding the lock"));
    Ok(digests)
}
