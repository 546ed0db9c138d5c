//! The stat cache: file identity → SHA-256, so an unchanged tree is hashed without reading it.
//!
//! Keyed by absolute path, size, mtime and ctime in nanoseconds, inode and device. An entry is
//! trusted only if the file's mtime and ctime were at least `RACY_WINDOW_NS` older than the moment
//! it was hashed (git's racy-clean rule): a file modified within the file system's timestamp
//! granularity of its hashing could change again without its timestamps moving, so it is read
//! again next time.
//!
//! The file format is hand-written (a version line, fixed-width little-endian records, a trailing
//! SHA-256 of everything before it) because it is tiny, must load 100,000 entries in milliseconds,
//! and is never exchanged: any mismatch — wrong magic, truncation, bad checksum — means "start
//! empty". A corrupt or deleted cache costs time, never a wrong hash.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::context::StatKey;

const MAGIC: &[u8] = b"cookbook-stat-cache 1\n";
/// One second: the coarsest timestamp granularity of the Linux file systems we run on.
pub const RACY_WINDOW_NS: i64 = 1_000_000_000;
const FILE_NAME: &str = "stat-cache-v1.bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    key: StatKey,
    hashed_at_ns: i64,
    sha256: [u8; 32],
}

#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    records: HashMap<PathBuf, Record>,
    fresh: Mutex<HashMap<PathBuf, Record>>,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, Record>> {
    use std::os::unix::ffi::OsStrExt;
    let body = bytes.strip_prefix(MAGIC)?;
    if body.len() < 32 {
        return None;
    }
    let (body, sum) = body.split_at(body.len() - 32);
    if Sha256::digest([MAGIC, body].concat()).as_slice() != sum {
        return None;
    }
    let mut records = HashMap::new();
    let mut rest = body;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Some(a)
    };
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let count = u64_at(take(8)?);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(take(len)?));
        let f = take(8 * 6 + 32)?;
        let n = |i: usize| u64_at(&f[i * 8..i * 8 + 8]);
        let key = StatKey {
            size: n(0),
            mtime_ns: n(1) as i64,
            ctime_ns: n(2) as i64,
            ino: n(3),
            dev: n(4),
        };
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&f[48..80]);
        records.insert(
            path,
            Record {
                key,
                hashed_at_ns: n(5) as i64,
                sha256,
            },
        );
    }
    Some(records)
}

impl StatCache {
    /// A cache that remembers nothing (for one-off runs and tests).
    pub fn disabled() -> StatCache {
        StatCache::default()
    }

    /// Loads the cache of a state directory; a missing or damaged file gives an empty cache.
    pub fn load(state_dir: &Path) -> StatCache {
        let path = state_dir.join(FILE_NAME);
        let records = std::fs::read(&path)
            .ok()
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        StatCache {
            path: Some(path),
            records,
            fresh: Mutex::new(HashMap::new()),
        }
    }

    /// The digest of a file whose identity has not changed since a trustworthy hashing.
    pub fn get(&self, path: &Path, key: &StatKey) -> Option<[u8; 32]> {
        let r = self.records.get(path)?;
        let newest = key.mtime_ns.max(key.ctime_ns);
        (r.key == *key && newest.saturating_add(RACY_WINDOW_NS) < r.hashed_at_ns)
            .then_some(r.sha256)
    }

    /// Records a digest computed from a read that started at `hashed_at_ns`.
    pub fn insert(&self, path: &Path, key: StatKey, hashed_at_ns: i64, sha256: [u8; 32]) {
        if self.path.is_none() {
            return;
        }
        self.fresh
            .lock()
            .expect("no panics while holding the lock")
            .insert(
                path.to_path_buf(),
                Record {
                    key,
                    hashed_at_ns,
                    sha256,
                },
            );
    }

    /// Writes the cache (old records merged with this run's) atomically; a no-op when disabled or
    /// when nothing new was learned.
    pub fn save(&mut self) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let Some(path) = &self.path else {
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
        self.records.extend(fresh);
        let mut body = Vec::with_capacity(self.records.len() * 160);
        body.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for (p, r) in &self.records {
            let bytes = p.as_os_str().as_bytes();
            body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            body.extend_from_slice(bytes);
            for n in [
                r.key.size,
                r.key.mtime_ns as u64,
                r.key.ctime_ns as u64,
                r.key.ino,
                r.key.dev,
                r.hashed_at_ns as u64,
            ] {
                body.extend_from_slice(&n.to_le_bytes());
            }
            body.extend_from_slice(&r.sha256);
        }
        let sum = Sha256::digest([MAGIC, &body].concat());
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".stat-cache-")
            .tempfile_in(dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&body)?;
        tmp.write_all(&sum)?;
        tmp.persist(path).map_err(|e| e.error)?;
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
}
