//! The stat cache: file identity → SHA-256, so an unchanged tree is hashed without reading it.
//!
//! Keyed by the file's path relative to the cookbook's directory, size, mtime and ctime in
//! nanoseconds, inode and device. An entry is trusted only if the file's mtime and ctime were at
//! least `RACY_WINDOW_NS` older than the moment it was hashed (git's racy-clean rule): a file
//! modified within the file system's timestamp granularity of its hashing could change again
//! without its timestamps moving, so it is read again next time.
//!
//! One cache file per cookbook directory (its name carries a hash of the directory's canonical
//! path), so that however the cookbook is named on the command line (`-f ../cookbook.json`,
//! `-f /abs/cookbook.json`) the same records are found, and checkouts sharing one
//! `$COOKBOOK_CACHE_DIR` do not overwrite each other's cache.
//!
//! The file format is hand-written (a version line, a record count, records of a length-prefixed
//! path and fixed-width little-endian fields, sorted by path bytes, a trailing XXH3-128 of
//! everything before it) because it is tiny, must load 100,000 entries in milliseconds, and is
//! never exchanged: any mismatch — wrong magic, truncation, bad checksum, records out of order —
//! means "start empty". A corrupt or deleted cache costs time, never a wrong hash.
//!
//! Loading does not decode records: the file's bytes stay as read, with the offset of each record.
//! A context's files are looked up in path order, which is the records' order, so a lookup first
//! tries the record after the previous hit (`hint`) and only then searches; a warm run on 100,000
//! files costs one read, one pass over the records and a comparison per file, and no hash table.
//! (A hash index built at load took 47 ms of a 400 ms warm run; see docs/BENCHMARKS.md.)
//!
//! Records do not pile up: saving drops the records under a directory that this run walked whole
//! (`cover`), did not look up, and whose files are gone (deleted or renamed). Records of files
//! this walk ignored but that still exist are kept: another context may hash them.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::context::StatKey;
use crate::hash::{DigestCache, ReadDigest};

const MAGIC: &[u8] = b"cookbook-stat-cache 3\n";
/// One second: the coarsest timestamp granularity of the Linux file systems we run on.
pub const RACY_WINDOW_NS: i64 = 1_000_000_000;
/// Bytes of a record after its path: six u64 fields and a SHA-256.
const FIELDS: usize = 6 * 8 + 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    key: StatKey,
    hashed_at_ns: i64,
    sha256: [u8; 32],
}

impl Record {
    fn encode(&self, path: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        for n in [
            self.key.size,
            self.key.mtime_ns as u64,
            self.key.ctime_ns as u64,
            self.key.ino,
            self.key.dev,
            self.hashed_at_ns as u64,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.sha256);
    }
}

fn path_at(bytes: &[u8], offset: usize) -> &[u8] {
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    &bytes[offset + 4..offset + 4 + len]
}

/// A record's path, as the directory's key and the file's name, not joined (joining would cost
/// an allocation per lookup): `dir/name`, or `name` alone when `dir` is empty.
struct Key<'a> {
    dir: &'a [u8],
    name: &'a [u8],
}

impl Key<'_> {
    /// How this key orders against a stored path (as `self.to_vec().cmp(stored)` would).
    fn cmp_stored(&self, stored: &[u8]) -> std::cmp::Ordering {
        let slash: &[u8] = if self.dir.is_empty() { b"" } else { b"/" };
        let mut rest = stored;
        for part in [self.dir, slash, self.name] {
            let n = part.len().min(rest.len());
            match part[..n].cmp(&rest[..n]) {
                std::cmp::Ordering::Equal => {}
                unequal => return unequal,
            }
            if n < part.len() {
                return std::cmp::Ordering::Greater;
            }
            rest = &rest[n..];
        }
        if rest.is_empty() {
            std::cmp::Ordering::Equal
        } else {
            std::cmp::Ordering::Less
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.dir.len() + 1 + self.name.len());
        v.extend_from_slice(self.dir);
        if !self.dir.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(self.name);
        v
    }
}

/// The record at `offset` of a validated file: its path, its fields, and its length in bytes.
fn record_at(bytes: &[u8], offset: usize) -> (&[u8], Record, usize) {
    let path = path_at(bytes, offset);
    let len = path.len();
    let f = &bytes[offset + 4 + len..offset + 4 + len + FIELDS];
    let n = |i: usize| u64::from_le_bytes(f[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&f[48..80]);
    let record = Record {
        key: StatKey {
            size: n(0),
            mtime_ns: n(1) as i64,
            ctime_ns: n(2) as i64,
            ino: n(3),
            dev: n(4),
        },
        hashed_at_ns: n(5) as i64,
        sha256,
    };
    (path, record, 4 + len + FIELDS)
}

/// The cache file's bytes: mapped as found on disk, or the vector `save` just wrote.
#[derive(Debug)]
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Default for Bytes {
    fn default() -> Bytes {
        Bytes::Owned(Vec::new())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

impl Bytes {
    /// Maps the file (mapping rather than reading saves copying, and faulting in, ~11 MB of
    /// memory for 100,000 records); empty when missing or unreadable.
    fn map(file: &Path) -> Bytes {
        let Ok(f) = std::fs::File::open(file) else {
            return Bytes::default();
        };
        // SAFETY: the mapping is read-only and private. cookbook never writes a cache file in
        // place (`save` writes a new file and renames it over the old one), so the mapped file is
        // never truncated under us; the checksum then guards against any other change.
        match unsafe { memmap2::MmapOptions::new().populate().map(&f) } {
            Ok(map) => Bytes::Mapped(map),
            Err(_) => Bytes::Owned(std::fs::read(file).unwrap_or_default()),
        }
    }
}

#[derive(Debug, Default)]
struct Loaded {
    /// The cache file as read (validated), or empty.
    bytes: Bytes,
    /// The offset of each record in `bytes`, in path order.
    offsets: Vec<usize>,
    /// One bit per record: looked up by this run (so the file is still there).
    seen: Vec<AtomicU64>,
}

impl Loaded {
    fn new(bytes: Bytes) -> Loaded {
        match index(&bytes) {
            Some(offsets) => Loaded {
                seen: (0..offsets.len().div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                bytes,
                offsets,
            },
            None => Loaded::default(),
        }
    }

    fn path(&self, i: usize) -> &[u8] {
        path_at(&self.bytes, self.offsets[i])
    }

    /// The index of the record for `key`, trying `hint` first.
    fn find(&self, key: &Key<'_>, hint: usize) -> Option<usize> {
        if hint < self.offsets.len() && key.cmp_stored(self.path(hint)).is_eq() {
            return Some(hint);
        }
        let i = self
            .offsets
            .partition_point(|&o| key.cmp_stored(path_at(&self.bytes, o)).is_gt());
        (i < self.offsets.len() && key.cmp_stored(self.path(i)).is_eq()).then_some(i)
    }

    fn was_seen(&self, i: usize) -> bool {
        self.seen[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }
}

/// Bytes of the trailing checksum.
const SUM: usize = 16;

/// The checksum of a cache file's body: XXH3-128, not SHA-256. It guards against accidental
/// damage (a torn or truncated write, a bit flip), which a 128-bit hash catches as surely; there
/// is no adversary to resist, since whoever can write the cache can write a valid one. XXH3 runs
/// at memory speed where SHA-256 took ~12 ms of a warm run for a 100,000-file cache.
fn checksum(body: &[u8]) -> [u8; SUM] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(MAGIC);
    h.update(body);
    h.digest128().to_le_bytes()
}

/// Validates a cache file and returns the offset of each record; `None` for anything malformed,
/// including records that are not in strictly increasing path order.
fn index(bytes: &[u8]) -> Option<Vec<usize>> {
    let body = bytes.strip_prefix(MAGIC)?;
    if body.len() < 8 + SUM {
        return None;
    }
    let (body, sum) = body.split_at(body.len() - SUM);
    if checksum(body) != sum {
        return None;
    }
    let count = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let end = MAGIC.len() + body.len();
    let mut offset = MAGIC.len() + 8;
    // Each record takes at least 4 + FIELDS bytes: a corrupt count cannot make us reserve much.
    let mut offsets =
        Vec::with_capacity(usize::try_from(count).ok()?.min(body.len() / (4 + FIELDS)));
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let len_end = offset.checked_add(4).filter(|&e| e <= end)?;
        let len = u32::from_le_bytes(bytes[offset..len_end].try_into().expect("4 bytes")) as usize;
        let next = len_end
            .checked_add(len)?
            .checked_add(FIELDS)
            .filter(|&e| e <= end)?;
        let path = &bytes[len_end..len_end + len];
        if previous.is_some_and(|p| p >= path) {
            return None;
        }
        previous = Some(path);
        offsets.push(offset);
        offset = next;
    }
    (offset == end).then_some(offsets)
}

/// The cache of one cookbook directory, in one state directory.
#[derive(Debug, Default)]
pub struct StatCache {
    /// The cache file; `None` for a disabled cache.
    file: Option<PathBuf>,
    /// The cookbook's directory as its paths are spelled; stripped from paths to make keys.
    base: Vec<u8>,
    /// The cache as read, once the loading thread is done (see `load`).
    loaded: OnceLock<Loaded>,
    loading: Mutex<Option<JoinHandle<Loaded>>>,
    fresh: Mutex<Vec<(Box<[u8]>, Record)>>,
    /// Keys of directories walked whole by this run: records below them that were not seen are
    /// gone from the tree.
    covered: Mutex<Vec<Box<[u8]>>>,
}

impl StatCache {
    /// A cache that remembers nothing (for one-off runs and tests).
    pub fn disabled() -> StatCache {
        StatCache::default()
    }

    /// Loads the cache for the cookbook directory `base` (as the paths handed to `get` start)
    /// from a state directory; a missing or damaged file gives an empty cache.
    ///
    /// Reading and checking a 100,000-entry cache takes milliseconds, still worth doing on a
    /// thread of its own while the caller lists the context; the first `get` waits for it.
    pub fn load(state_dir: &Path, base: &Path) -> StatCache {
        let canonical = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let id = Sha256::digest(canonical.as_os_str().as_bytes());
        let file = state_dir.join(format!("stat-cache-v3-{}.bin", hex::encode(&id[..8])));
        let read = |file: &Path| Loaded::new(Bytes::map(file));
        let loaded = OnceLock::new();
        let path = file.clone();
        let loading = match std::thread::Builder::new()
            .name("stat-cache".to_owned())
            .spawn(move || read(&path))
        {
            Ok(handle) => Some(handle),
            Err(_) => {
                let _ = loaded.set(read(&file));
                None
            }
        };
        StatCache {
            file: Some(file),
            base: base.as_os_str().as_bytes().to_vec(),
            loaded,
            loading: Mutex::new(loading),
            fresh: Mutex::new(Vec::new()),
            covered: Mutex::new(Vec::new()),
        }
    }

    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let handle = self
                .loading
                .lock()
                .expect("no panics while holding the lock")
                .take();
            // A loading thread that panicked left nothing usable: start empty.
            handle.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    /// The key of a path: relative to the cookbook's directory when below it (every context
    /// path is `base.join(…)`, so this is a byte prefix), else the path itself.
    fn key<'p>(&self, path: &'p Path) -> &'p [u8] {
        let bytes = path.as_os_str().as_bytes();
        match bytes.strip_prefix(&self.base[..]) {
            Some(rest) if self.base.ends_with(b"/") => rest,
            Some([b'/', rest @ ..]) => rest,
            Some([]) => b"",
            _ => bytes,
        }
    }

    /// The digest of the file `name` in `dir`, if its identity has not changed since a
    /// trustworthy hashing.
    ///
    /// `hint` is where the caller's previous lookup ended; files looked up in path order then
    /// cost one comparison each.
    pub fn get(&self, dir: &Path, name: &str, key: &StatKey, hint: &mut usize) -> Option<[u8; 32]> {
        self.file.as_ref()?;
        let loaded = self.loaded();
        let i = loaded.find(
            &Key {
                dir: self.key(dir),
                name: name.as_bytes(),
            },
            *hint,
        )?;
        *hint = i + 1;
        loaded.seen[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        let (_, r, _) = record_at(&loaded.bytes, loaded.offsets[i]);
        let newest = key.mtime_ns.max(key.ctime_ns);
        (r.key == *key && newest.saturating_add(RACY_WINDOW_NS) < r.hashed_at_ns)
            .then_some(r.sha256)
    }

    /// Records the digests of files `name` in `dir`, each computed from a read that started at
    /// its `hashed_at_ns`. One lock for all: the hashing workers collect theirs and hand them
    /// over once, instead of taking the lock per file.
    pub fn insert_all<'p>(
        &self,
        digests: impl IntoIterator<Item = (&'p Path, &'p str, StatKey, i64, [u8; 32])>,
    ) {
        if self.file.is_none() {
            return;
        }
        let mut fresh = self.fresh.lock().expect("no panics while holding the lock");
        fresh.extend(
            digests
                .into_iter()
                .map(|(dir, name, key, hashed_at_ns, sha256)| {
                    let path = Key {
                        dir: self.key(dir),
                        name: name.as_bytes(),
                    };
                    (
                        path.to_vec().into_boxed_slice(),
                        Record {
                            key,
                            hashed_at_ns,
                            sha256,
                        },
                    )
                }),
        );
    }

    /// Declares that every file below `dir` (not ignored) was looked up or inserted by this run:
    /// saving drops the records below it that were not, since those files are gone.
    pub fn cover(&self, dir: &Path) {
        if self.file.is_none() {
            return;
        }
        let key = Box::from(self.key(dir));
        self.covered
            .lock()
            .expect("no panics while holding the lock")
            .push(key);
    }

    /// Writes the cache (old records merged with this run's, less those of files that are gone)
    /// atomically; a no-op when disabled or when nothing changed. Afterwards the cache answers
    /// from what it wrote.
    pub fn save(&mut self) -> std::io::Result<()> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        let mut fresh = std::mem::take(
            self.fresh
                .get_mut()
                .expect("no panics while holding the lock"),
        );
        let covered = std::mem::take(
            self.covered
                .get_mut()
                .expect("no panics while holding the lock"),
        );
        let old = self.loaded();
        let keep = self.kept(old, &covered);
        if fresh.is_empty() && keep.len() == old.offsets.len() {
            return Ok(());
        }
        // Of two digests for one path (a file in two contexts, read twice), the later one wins.
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        fresh.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let out = merged(old, keep, &fresh);

        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".stat-cache-")
            .tempfile_in(dir)?;
        tmp.write_all(&out)?;
        tmp.persist(&file).map_err(|e| e.error)?;
        // The first format's file (keyed by paths as spelled on the command line) is never read.
        let _ = std::fs::remove_file(dir.join("stat-cache-v1.bin"));
        self.loaded = OnceLock::from(Loaded::new(Bytes::Owned(out)));
        Ok(())
    }

    /// The old records to keep. A record not looked up below a walked (`covered`) directory is
    /// dropped once its file is gone. One that still exists was ignored by this walk's
    /// `.dockerignore` but may serve another context (or another cookbook file in the same
    /// directory): it stays.
    fn kept(&self, old: &Loaded, covered: &[Box<[u8]>]) -> Vec<usize> {
        let below = |dir: &[u8], path: &[u8]| {
            dir.is_empty() || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
        };
        let base = Path::new(std::ffi::OsStr::from_bytes(&self.base));
        let gone = |key: &[u8]| {
            let key = Path::new(std::ffi::OsStr::from_bytes(key));
            std::fs::symlink_metadata(base.join(key)).is_err()
        };
        (0..old.offsets.len())
            .filter(|&i| {
                old.was_seen(i)
                    || !covered.iter().any(|d| below(d, old.path(i)))
                    || !gone(old.path(i))
            })
            .collect()
    }
}

/// The cache file's bytes: the old records `keep` and the `fresh` ones (sorted, one per path),
/// merged in path order; a fresh record replaces an old one for the same path.
fn merged(old: &Loaded, keep: Vec<usize>, fresh: &[(Box<[u8]>, Record)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(old.bytes.len() + fresh.len() * (4 + 64 + FIELDS) + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 8]);
    let mut count = 0u64;
    let mut old_records = keep.into_iter().peekable();
    let mut fresh_records = fresh.iter().peekable();
    loop {
        let take_old = match (old_records.peek(), fresh_records.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(&i), Some((p, _))) => match old.path(i).cmp(p) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => {
                    old_records.next();
                    false
                }
                std::cmp::Ordering::Greater => false,
            },
        };
        if take_old {
            let i = old_records.next().expect("peeked");
            let (_, _, len) = record_at(&old.bytes, old.offsets[i]);
            out.extend_from_slice(&old.bytes[old.offsets[i]..old.offsets[i] + len]);
        } else {
            let (p, r) = fresh_records.next().expect("peeked");
            r.encode(p, &mut out);
        }
        count += 1;
    }
    out[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&count.to_le_bytes());
    let sum = checksum(&out[MAGIC.len()..]);
    out.extend_from_slice(&sum);
    out
}

/// The hash core's view of the cache (`crate::hash` never imports this edge).
impl DigestCache for StatCache {
    fn get(&self, dir: &Path, name: &str, key: &StatKey, hint: &mut usize) -> Option<[u8; 32]> {
        StatCache::get(self, dir, name, key, hint)
    }

    fn insert_all(&self, read: Vec<ReadDigest<'_>>) {
        StatCache::insert_all(self, read)
    }

    fn cover(&self, dir: &Path) {
        StatCache::cover(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mtime_ns: i64) -> StatKey {
        StatKey {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
            dev: 1,
        }
    }

    fn split(path: &str) -> (&Path, &str) {
        let (dir, name) = path.rsplit_once('/').expect("a path with a directory");
        (Path::new(if dir.is_empty() { "/" } else { dir }), name)
    }

    fn get(c: &StatCache, path: &str, k: &StatKey) -> Option<[u8; 32]> {
        let (dir, name) = split(path);
        c.get(dir, name, k, &mut 0)
    }

    fn put(c: &StatCache, path: &str, k: StatKey, at: i64, sha256: [u8; 32]) {
        let (dir, name) = split(path);
        c.insert_all([(dir, name, k, at, sha256)]);
    }

    fn cache_file(state: &Path) -> PathBuf {
        let files: Vec<PathBuf> = std::fs::read_dir(state)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }

    proptest::proptest! {
        #[test]
        fn a_joined_key_orders_as_its_bytes(
            dir in "[a/.-]{0,4}", name in "[a/.-]{0,4}", stored in "[a/.-]{0,9}",
        ) {
            let k = Key { dir: dir.as_bytes(), name: name.as_bytes() };
            proptest::prop_assert_eq!(
                k.cmp_stored(stored.as_bytes()),
                k.to_vec().as_slice().cmp(stored.as_bytes())
            );
        }
    }

    #[test]
    fn round_trip_and_racy_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path(), Path::new("/base"));
        let t = 10 * RACY_WINDOW_NS;
        put(&c, "/base/a", key(t - 2 * RACY_WINDOW_NS), t, [1; 32]);
        put(&c, "/base/racy", key(t - 10), t, [2; 32]);
        c.save().unwrap();
        let c = StatCache::load(dir.path(), Path::new("/base"));
        assert_eq!(
            get(&c, "/base/a", &key(t - 2 * RACY_WINDOW_NS)),
            Some([1; 32])
        );
        assert_eq!(
            get(&c, "/base/a", &key(t - 2 * RACY_WINDOW_NS + 1)),
            None,
            "mtime moved"
        );
        assert_eq!(
            get(&c, "/base/racy", &key(t - 10)),
            None,
            "modified too close to hashing"
        );
    }

    #[test]
    fn keys_do_not_depend_on_how_the_base_is_spelled() {
        let state = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        let abs = base.path().canonicalize().unwrap();
        let dotted = abs.join("sub").join("..");
        std::fs::create_dir(abs.join("sub")).unwrap();
        let mut c = StatCache::load(state.path(), &abs);
        c.insert_all([(abs.as_path(), "f", key(0), 5 * RACY_WINDOW_NS, [9; 32])]);
        c.save().unwrap();
        let c = StatCache::load(state.path(), &dotted);
        assert_eq!(
            get(&c, dotted.join("f").to_str().unwrap(), &key(0)),
            Some([9; 32])
        );
        // Another cookbook directory has a cache of its own.
        let other = StatCache::load(state.path(), Path::new("/elsewhere"));
        assert_eq!(get(&other, "/elsewhere/f", &key(0)), None);
    }

    #[test]
    fn lookups_in_any_order_with_any_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path(), Path::new("b"));
        let names: Vec<String> = (0..300).map(|i| format!("b/d{}/f{i:03}", i % 7)).collect();
        for (i, n) in names.iter().enumerate() {
            put(&c, n, key(0), RACY_WINDOW_NS * 5, [i as u8; 32]);
        }
        c.save().unwrap();
        let c = StatCache::load(dir.path(), Path::new("b"));
        let mut hint = 0;
        for (i, n) in names.iter().enumerate().rev() {
            let (dir, name) = split(n);
            assert_eq!(c.get(dir, name, &key(0), &mut hint), Some([i as u8; 32]));
        }
        for hint in [0, 1, 150, 299, 300, usize::MAX] {
            assert_eq!(
                c.get(Path::new("b"), "nope", &key(0), &mut hint.clone()),
                None
            );
            let (dir, name) = split(&names[42]);
            assert_eq!(c.get(dir, name, &key(0), &mut hint.clone()), Some([42; 32]));
        }
    }

    #[test]
    fn corruption_means_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path(), Path::new("/"));
        put(&c, "/a", key(0), RACY_WINDOW_NS * 5, [1; 32]);
        c.save().unwrap();
        let file = cache_file(dir.path());
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let load = || StatCache::load(dir.path(), Path::new("/"));
        assert_eq!(get(&load(), "/a", &key(0)), None);
        std::fs::write(&file, b"garbage").unwrap();
        assert_eq!(get(&load(), "/a", &key(0)), None);
    }

    #[test]
    fn saves_merge_with_what_was_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let t = 10 * RACY_WINDOW_NS;
        let load = || StatCache::load(dir.path(), Path::new("/"));
        let mut c = load();
        put(&c, "/a", key(0), t, [1; 32]);
        put(&c, "/b", key(0), t, [2; 32]);
        c.save().unwrap();
        let mut c = load();
        put(&c, "/b", key(1), t, [3; 32]);
        put(&c, "/c", key(0), t, [4; 32]);
        put(&c, "/c", key(0), t, [5; 32]);
        c.save().unwrap();
        assert_eq!(get(&c, "/c", &key(0)), Some([5; 32]), "answers after save");
        let c = load();
        assert_eq!(get(&c, "/a", &key(0)), Some([1; 32]));
        assert_eq!(get(&c, "/b", &key(0)), None, "replaced");
        assert_eq!(get(&c, "/b", &key(1)), Some([3; 32]));
        assert_eq!(
            get(&c, "/c", &key(0)),
            Some([5; 32]),
            "the later digest wins"
        );
        assert_eq!(get(&c, "/d", &key(0)), None);
        assert_eq!(c.loaded().offsets.len(), 3);
    }

    #[test]
    fn records_of_files_gone_from_a_covered_directory_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let t = 10 * RACY_WINDOW_NS;
        let load = || StatCache::load(dir.path(), Path::new("/r"));
        let mut c = load();
        for p in ["/r/app/kept", "/r/app/gone", "/r/app2/other", "/r/apple"] {
            put(&c, p, key(0), t, [1; 32]);
        }
        c.save().unwrap();
        let before = std::fs::read(cache_file(dir.path())).unwrap();

        // Nothing learned, nothing covered: the file is not rewritten.
        let mut c = load();
        assert!(get(&c, "/r/app/kept", &key(0)).is_some());
        c.save().unwrap();
        assert_eq!(std::fs::read(cache_file(dir.path())).unwrap(), before);

        let mut c = load();
        assert!(get(&c, "/r/app/kept", &key(0)).is_some());
        c.cover(Path::new("/r/app"));
        c.save().unwrap();
        let c = load();
        assert!(get(&c, "/r/app/kept", &key(0)).is_some());
        assert!(get(&c, "/r/app/gone", &key(0)).is_none());
        assert!(
            get(&c, "/r/app2/other", &key(0)).is_some(),
            "not below /r/app"
        );
        assert!(get(&c, "/r/apple", &key(0)).is_some(), "not below /r/app");

        // The cookbook directory itself covered: everything not seen goes.
        let mut c = load();
        c.cover(Path::new("/r"));
        assert!(get(&c, "/r/apple", &key(0)).is_some());
        c.save().unwrap();
        assert_eq!(load().loaded().offsets.len(), 1);
    }

    #[test]
    fn records_of_files_a_walk_ignored_but_that_exist_are_kept() {
        // Another context (or cookbook file) may hash what this walk's .dockerignore left out.
        let state = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("svc")).unwrap();
        std::fs::write(base.path().join("svc/kept"), "k").unwrap();
        let t = 10 * RACY_WINDOW_NS;
        let load = || StatCache::load(state.path(), base.path());
        let mut c = load();
        c.insert_all([(
            base.path().join("svc").as_path(),
            "kept",
            key(0),
            t,
            [1; 32],
        )]);
        c.insert_all([(
            base.path().join("svc").as_path(),
            "gone",
            key(0),
            t,
            [2; 32],
        )]);
        c.save().unwrap();
        let mut c = load();
        c.cover(base.path());
        c.save().unwrap();
        let c = load();
        assert!(c
            .get(&base.path().join("svc"), "kept", &key(0), &mut 0)
            .is_some());
        assert!(c
            .get(&base.path().join("svc"), "gone", &key(0), &mut 0)
            .is_none());
    }

    #[test]
    fn truncated_miscounted_or_unsorted_means_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path(), Path::new("/"));
        put(&c, "/a", key(0), RACY_WINDOW_NS * 5, [1; 32]);
        put(&c, "/b", key(0), RACY_WINDOW_NS * 5, [1; 32]);
        c.save().unwrap();
        let good = std::fs::read(cache_file(dir.path())).unwrap();
        assert!(index(&good).is_some());
        for cut in [
            0,
            MAGIC.len(),
            MAGIC.len() + 8,
            good.len() - SUM - 1,
            good.len() - 1,
        ] {
            assert!(index(&good[..cut]).is_none(), "cut at {cut}");
        }
        let forge = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut body = good[MAGIC.len()..good.len() - SUM].to_vec();
            edit(&mut body);
            let mut forged = MAGIC.to_vec();
            forged.extend_from_slice(&body);
            forged.extend_from_slice(&checksum(&body));
            forged
        };
        // A count larger than the records present, with a checksum that matches.
        assert!(index(&forge(&|b| b[..8].copy_from_slice(&3u64.to_le_bytes()))).is_none());
        // Records out of order ("b" before "a"), with a checksum that matches.
        assert!(index(&forge(&|b| {
            let (a, rest) = b[8..].split_at_mut(4 + 1 + FIELDS);
            a.swap_with_slice(&mut rest[..4 + 1 + FIELDS]);
        }))
        .is_none());
        assert!(index(&forge(&|_| ())).is_some());
    }
}
