//! The stat cache: file identity → SHA-256, so an unchanged tree is hashed without reading it.
//!
//! Keyed by the path the file was read through, size, mtime and ctime in nanoseconds, inode and
//! device. An entry is trusted only if the file's mtime and ctime were at least `RACY_WINDOW_NS`
//! older than the moment it was hashed (git's racy-clean rule): a file modified within the file
//! system's timestamp granularity of its hashing could change again without its timestamps
//! moving, so it is read again next time.
//!
//! The file format is hand-written (a version line, a record count, records of a length-prefixed
//! path and fixed-width little-endian fields, a trailing SHA-256 of everything before it) because
//! it is tiny, must load 100,000 entries in milliseconds, and is never exchanged: any mismatch —
//! wrong magic, truncation, bad checksum — means "start empty". A corrupt or deleted cache costs
//! time, never a wrong hash.
//!
//! Loading does not decode records: the file's bytes stay as read, and an index maps a 64-bit hash
//! of each path to its record's offset. A warm run on 100,000 files then costs one read and one
//! small table, not 100,000 allocations. Two paths whose hashes collide are not both indexed; the
//! loser is looked up as a miss and read again, which costs time only (`get` compares the path).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::context::StatKey;

const MAGIC: &[u8] = b"cookbook-stat-cache 1\n";
/// One second: the coarsest timestamp granularity of the Linux file systems we run on.
pub const RACY_WINDOW_NS: i64 = 1_000_000_000;
const FILE_NAME: &str = "stat-cache-v1.bin";
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

/// The record at `offset` of a validated file: its path, its fields, and its length in bytes.
fn record_at(bytes: &[u8], offset: usize) -> (&[u8], Record, usize) {
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    let path = &bytes[offset + 4..offset + 4 + len];
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

/// A 64-bit hash of a path's bytes (FxHash's word loop, then murmur3's finalizer so that every
/// input bit reaches the low bits the table indexes by). Written here rather than pulled in: a
/// dozen lines, and the index needs only the hash, not a `Hasher` over `Path` (which parses
/// components and showed in profiles).
fn path_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The index's keys are already hashes: pass them through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Path hash → offset of its record in the file's bytes. (HashMap is fine here: the cache is never
/// hashed, exchanged or compared.)
type Index = HashMap<u64, usize, BuildHasherDefault<Prehashed>>;

#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    /// The cache as read, once the loading thread is done (see `load`).
    loaded: OnceLock<Loaded>,
    loading: Mutex<Option<JoinHandle<Loaded>>>,
    fresh: Mutex<Vec<(Box<[u8]>, Record)>>,
}

#[derive(Debug, Default)]
struct Loaded {
    /// The cache file as read (validated), or empty.
    bytes: Vec<u8>,
    index: Index,
}

impl Loaded {
    fn read(file: &Path) -> Loaded {
        let bytes = std::fs::read(file).unwrap_or_default();
        match index(&bytes) {
            Some(index) => Loaded { bytes, index },
            None => Loaded::default(),
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn checksum(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(body);
    h.finalize().into()
}

/// Validates a cache file and indexes its records; `None` for anything malformed.
fn index(bytes: &[u8]) -> Option<Index> {
    let body = bytes.strip_prefix(MAGIC)?;
    if body.len() < 8 + 32 {
        return None;
    }
    let (body, sum) = body.split_at(body.len() - 32);
    if checksum(body) != sum {
        return None;
    }
    let count = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let end = MAGIC.len() + body.len();
    let mut offset = MAGIC.len() + 8;
    let mut index = Index::default();
    // Each record takes at least 4 + FIELDS bytes: a corrupt count cannot make us reserve much.
    index.reserve(usize::try_from(count).ok()?.min(body.len() / (4 + FIELDS)));
    for _ in 0..count {
        let len_end = offset.checked_add(4).filter(|&e| e <= end)?;
        let len = u32::from_le_bytes(bytes[offset..len_end].try_into().expect("4 bytes")) as usize;
        let next = len_end
            .checked_add(len)?
            .checked_add(FIELDS)
            .filter(|&e| e <= end)?;
        index
            .entry(path_hash(&bytes[len_end..len_end + len]))
            .or_insert(offset);
        offset = next;
    }
    (offset == end).then_some(index)
}

impl StatCache {
    /// A cache that remembers nothing (for one-off runs and tests).
    pub fn disabled() -> StatCache {
        StatCache::default()
    }

    /// Loads the cache of a state directory; a missing or damaged file gives an empty cache.
    ///
    /// Reading, checking and indexing a 100,000-entry cache takes tens of milliseconds, so it
    /// happens on a thread of its own while the caller lists the context; the first `get` waits
    /// for it.
    pub fn load(state_dir: &Path) -> StatCache {
        let path = state_dir.join(FILE_NAME);
        let file = path.clone();
        let loaded = OnceLock::new();
        let loading = match std::thread::Builder::new()
            .name("stat-cache".to_owned())
            .spawn(move || Loaded::read(&file))
        {
            Ok(handle) => Some(handle),
            Err(_) => {
                let _ = loaded.set(Loaded::read(&path));
                None
            }
        };
        StatCache {
            path: Some(path),
            loaded,
            loading: Mutex::new(loading),
            fresh: Mutex::new(Vec::new()),
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

    /// The digest of a file whose identity has not changed since a trustworthy hashing.
    pub fn get(&self, path: &Path, key: &StatKey) -> Option<[u8; 32]> {
        let path = path.as_os_str().as_bytes();
        let loaded = self.loaded();
        let &offset = loaded.index.get(&path_hash(path))?;
        let (stored, r, _) = record_at(&loaded.bytes, offset);
        let newest = key.mtime_ns.max(key.ctime_ns);
        (stored == path && r.key == *key && newest.saturating_add(RACY_WINDOW_NS) < r.hashed_at_ns)
            .then_some(r.sha256)
    }

    /// Records a digest computed from a read that started at `hashed_at_ns`.
    pub fn insert(&self, path: &Path, key: StatKey, hashed_at_ns: i64, sha256: [u8; 32]) {
        self.insert_all([(path, key, hashed_at_ns, sha256)]);
    }

    /// Records many digests under one lock: the hashing workers collect theirs and hand them over
    /// once, instead of taking the lock per file.
    pub fn insert_all<'p>(
        &self,
        digests: impl IntoIterator<Item = (&'p Path, StatKey, i64, [u8; 32])>,
    ) {
        if self.path.is_none() {
            return;
        }
        let mut fresh = self.fresh.lock().expect("no panics while holding the lock");
        fresh.extend(
            digests
                .into_iter()
                .map(|(path, key, hashed_at_ns, sha256)| {
                    (
                        Box::from(path.as_os_str().as_bytes()),
                        Record {
                            key,
                            hashed_at_ns,
                            sha256,
                        },
                    )
                }),
        );
    }

    /// Writes the cache (old records merged with this run's) atomically; a no-op when disabled or
    /// when nothing new was learned. Afterwards the cache answers from what it wrote.
    pub fn save(&mut self) -> std::io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let fresh = std::mem::take(
            self.fresh
                .get_mut()
                .expect("no panics while holding the lock"),
        );
        if fresh.is_empty() {
            return Ok(());
        }
        // The newest record per path wins; an old record whose path (hash) was hashed again is
        // dropped.
        let mut newest: HashMap<u64, (Box<[u8]>, Record), BuildHasherDefault<Prehashed>> =
            HashMap::default();
        for (p, r) in fresh {
            newest.insert(path_hash(&p), (p, r));
        }
        // Records are written sorted by path: a context's files are looked up in path order, so a
        // warm run then reads the cache front to back instead of jumping around 100,000 records.
        enum Source<'a> {
            Old(&'a [u8]),
            New(&'a Record),
        }
        let old = self.loaded();
        let mut all: Vec<(&[u8], Source)> = old
            .index
            .iter()
            .filter(|(h, _)| !newest.contains_key(*h))
            .map(|(_, &offset)| {
                let (p, _, len) = record_at(&old.bytes, offset);
                (p, Source::Old(&old.bytes[offset..offset + len]))
            })
            .chain(newest.values().map(|(p, r)| (&p[..], Source::New(r))))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(old.bytes.len() + newest.len() * 160 + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(all.len() as u64).to_le_bytes());
        for (p, source) in &all {
            match source {
                Source::Old(raw) => out.extend_from_slice(raw),
                Source::New(r) => r.encode(p, &mut out),
            }
        }
        let sum = checksum(&out[MAGIC.len()..]);
        out.extend_from_slice(&sum);

        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".stat-cache-")
            .tempfile_in(dir)?;
        tmp.write_all(&out)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        drop(all);
        let index = index(&out).expect("the cache just encoded is well-formed");
        self.loaded = OnceLock::from(Loaded { bytes: out, index });
        Ok(())
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

    #[test]
    fn round_trip_and_racy_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path());
        let t = 10 * RACY_WINDOW_NS;
        c.insert(Path::new("/a"), key(t - 2 * RACY_WINDOW_NS), t, [1; 32]);
        c.insert(Path::new("/racy"), key(t - 10), t, [2; 32]);
        c.save().unwrap();
        let c = StatCache::load(dir.path());
        assert_eq!(
            c.get(Path::new("/a"), &key(t - 2 * RACY_WINDOW_NS)),
            Some([1; 32])
        );
        assert_eq!(
            c.get(Path::new("/a"), &key(t - 2 * RACY_WINDOW_NS + 1)),
            None,
            "mtime moved"
        );
        assert_eq!(
            c.get(Path::new("/racy"), &key(t - 10)),
            None,
            "modified too close to hashing"
        );
    }

    #[test]
    fn corruption_means_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path());
        c.insert(Path::new("/a"), key(0), RACY_WINDOW_NS * 5, [1; 32]);
        c.save().unwrap();
        let file = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(
            StatCache::load(dir.path()).get(Path::new("/a"), &key(0)),
            None
        );
        std::fs::write(&file, b"garbage").unwrap();
        assert_eq!(
            StatCache::load(dir.path()).get(Path::new("/a"), &key(0)),
            None
        );
    }

    #[test]
    fn saves_merge_with_what_was_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let t = 10 * RACY_WINDOW_NS;
        let mut c = StatCache::load(dir.path());
        c.insert(Path::new("/a"), key(0), t, [1; 32]);
        c.insert(Path::new("/b"), key(0), t, [2; 32]);
        c.save().unwrap();
        let mut c = StatCache::load(dir.path());
        c.insert(Path::new("/b"), key(1), t, [3; 32]);
        c.insert(Path::new("/c"), key(0), t, [4; 32]);
        c.save().unwrap();
        assert_eq!(
            c.get(Path::new("/c"), &key(0)),
            Some([4; 32]),
            "answers after save"
        );
        let c = StatCache::load(dir.path());
        assert_eq!(c.get(Path::new("/a"), &key(0)), Some([1; 32]));
        assert_eq!(c.get(Path::new("/b"), &key(0)), None, "replaced");
        assert_eq!(c.get(Path::new("/b"), &key(1)), Some([3; 32]));
        assert_eq!(c.get(Path::new("/c"), &key(0)), Some([4; 32]));
        assert_eq!(c.get(Path::new("/d"), &key(0)), None);
        assert_eq!(c.loaded().index.len(), 3);
    }

    #[test]
    fn truncated_or_miscounted_means_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StatCache::load(dir.path());
        c.insert(Path::new("/a"), key(0), RACY_WINDOW_NS * 5, [1; 32]);
        c.save().unwrap();
        let good = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(index(&good).is_some());
        for cut in [
            0,
            MAGIC.len(),
            MAGIC.len() + 8,
            good.len() - 33,
            good.len() - 1,
        ] {
            assert!(index(&good[..cut]).is_none(), "cut at {cut}");
        }
        // A count larger than the records present, with a checksum that matches.
        let mut body = good[MAGIC.len()..good.len() - 32].to_vec();
        body[..8].copy_from_slice(&2u64.to_le_bytes());
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&body);
        forged.extend_from_slice(&checksum(&body));
        assert!(index(&forged).is_none());
    }
}
