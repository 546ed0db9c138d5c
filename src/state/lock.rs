//! `cookbook.lock`: what applies produced, for release engineers and `verify`.
//!
//! Place in the pipeline: the last step of `apply` writes it; `verify` reads it. It lives beside
//! the cookbook file (it is meant to be committed), and this module is its only reader and writer.
//!
//! Format (version 3, documented in docs/VERIFY.md): JSON with a fixed key order (structs and
//! `BTreeMap`s), two-space indentation and a trailing newline. Each field has one meaning:
//! `digest` is the registry's manifest digest and is present only when the image was published;
//! `image_id` is the image's id (the digest of its configuration, which is also its manifest's
//! `config.digest`). `bases` (new in version 3) pins each external base image the cookbook
//! names: reference as written → `{"digest", "source"}` (`registry`: its manifest digest;
//! `engine`: the local engine's image id, for an image that exists only there; `reference`: the
//! reference carries its digest). Version 1 had one `digest` field meaning either; versions 1
//! and 2 are still read (see [`LockWire`]'s conversion for the mapping; they pin nothing) and
//! rewritten as version 3 by the next apply.
//!
//! Invariants:
//! - Readers never see a half-written lock: it is written to a temp file beside it, fsynced and
//!   renamed over it.
//! - Two applies on one checkout (two sites, `sync --apply` beside a manual apply) never lose
//!   each other's entries: [`update`] takes an exclusive `flock` on the lock's directory, re-reads
//!   the lock, merges this run's entries into it and writes it, all under that lock. The
//!   directory is locked rather than a side file so that no new file appears in the checkout (and
//!   so in no build context); the kernel drops the lock with the descriptor, so a killed apply
//!   never leaves a stale one.
//! - The same inputs give a byte-identical lock, and an unchanged lock is not rewritten (its
//!   mtime stays).
//!
//! Everything here blocks (file locks, fsync): async callers run it on a blocking thread.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::BasePins;

/// Version 3: `bases` pins the external base images. Version 2: `digest` (registry manifest,
/// only when published) and `image_id` (local image id) are separate fields. Version 1 had one
/// `digest` meaning either.
pub const LOCK_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LockWire")]
pub struct Lock {
    pub lock_version: u32,
    pub hash_version: u32,
    pub project: String,
    /// The pinned external base images, by the reference the cookbook writes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BasePins,
    pub containers: BTreeMap<String, LockedImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    pub input_hash: String,
    /// The content-tagged reference (`registry/repo:<input_hash>`, or the local name without a
    /// registry).
    pub image: String,
    /// Every tag applied (the content tag first, then the policy tags).
    pub tags: Vec<String>,
    /// The registry's manifest digest of the content tag; absent when the image was not
    /// published (`apply --no-push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The image's id: the digest of its configuration (`docker images --no-trunc`, and the
    /// `config.digest` of its manifest). Absent only in entries read from a version-1 lock that
    /// did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// The lock as any version writes it; converted once into [`Lock`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockWire {
    lock_version: u32,
    hash_version: u32,
    project: String,
    #[serde(default)]
    bases: Option<BasePins>,
    containers: BTreeMap<String, LockedImageWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedImageWire {
    input_hash: String,
    image: String,
    tags: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    image_id: Option<String>,
}

impl TryFrom<LockWire> for Lock {
    type Error = String;

    /// Version 1 → 2: a local image (`cookbook.local/…`, never published) had its image id in
    /// `digest`, which becomes `image_id`. Any other image's `digest` stays the manifest digest:
    /// a version-1 lock cannot tell a registry-named image applied with `--no-push` apart from a
    /// published one, so such an entry still looks published until the next apply rewrites it.
    fn try_from(wire: LockWire) -> Result<Lock, String> {
        if wire.bases.is_some() && wire.lock_version < 3 {
            return Err(format!(
                "`bases` is not part of lock version {}",
                wire.lock_version
            ));
        }
        let containers = match wire.lock_version {
            1 => wire
                .containers
                .into_iter()
                .map(|(name, e)| {
                    if e.image_id.is_some() {
                        return Err(format!("{name}: `image_id` is not part of lock version 1"));
                    }
                    let digest = e.digest.filter(|d| !d.is_empty());
                    let local = e.image.starts_with(&format!(
                        "{}/",
                        crate::context::dockerfile::LOCAL_REPOSITORY_PREFIX
                    ));
                    let (digest, image_id) = if local {
                        (None, digest)
                    } else {
                        (digest, None)
                    };
                    Ok((
                        name,
                        LockedImage {
                            input_hash: e.input_hash,
                            image: e.image,
                            tags: e.tags,
                            digest,
                            image_id,
                        },
                    ))
                })
                .collect::<Result<_, String>>()?,
            2 | LOCK_VERSION => wire
                .containers
                .into_iter()
                .map(|(name, e)| {
                    (
                        name,
                        LockedImage {
                            input_hash: e.input_hash,
                            image: e.image,
                            tags: e.tags,
                            digest: e.digest,
                            image_id: e.image_id,
                        },
                    )
                })
                .collect(),
            other => {
                return Err(format!(
                    "lock version {other} is not one this cookbook reads (1 to {LOCK_VERSION}); \
                     it was written by a newer cookbook"
                ))
            }
        };
        Ok(Lock {
            // Read as the current version whatever it was: that is what it is now, and what is
            // written.
            lock_version: LOCK_VERSION,
            hash_version: wire.hash_version,
            project: wire.project,
            bases: wire.bases.unwrap_or_default(),
            containers,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a valid lock file: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one apply contributes to the lock.
#[derive(Debug, Clone)]
pub struct Update {
    pub project: String,
    /// Entries of containers outside this set are dropped (the cookbook no longer has them).
    pub containers_in_cookbook: Vec<String>,
    /// This run's entries, replacing any earlier entry of the same container.
    pub entries: BTreeMap<String, LockedImage>,
    /// Pins of bases outside this set are dropped (no container names them any more).
    pub bases_in_cookbook: Vec<String>,
    /// The base-image pins this run built on, replacing earlier pins of the same references.
    pub bases: BasePins,
}

impl Lock {
    pub fn new(project: &str) -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            hash_version: crate::hash::HASH_VERSION,
            project: project.to_owned(),
            bases: BasePins::new(),
            containers: BTreeMap::new(),
        }
    }

    /// The lock beside a cookbook file.
    pub fn path_for(cookbook_file: &Path) -> PathBuf {
        cookbook_file.with_file_name("cookbook.lock")
    }

    /// Reads a lock; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            // A conversion error (an unknown version) has no position of its own: point at the
            // `lock_version` key, which decides how the rest is read.
            let (line, column) = match (e.line(), e.column()) {
                (0, _) => position_of(&bytes, b"\"lock_version\""),
                // serde_json counts the column of an end of input at a line's start as 0.
                (line, column) => (line, column.max(1)),
            };
            // The position is in the path prefix already; serde_json's own copy would say it twice.
            let message = e.to_string();
            let message = match message.rsplit_once(" at line ") {
                Some((head, _)) => head.to_owned(),
                None => message,
            };
            LockError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("locks serialize");
        bytes.push(b'\n');
        bytes
    }

    /// Writes the lock atomically (temp file, fsync, rename, fsync of the directory); returns
    /// whether the file changed. Callers that merge use [`update`], which holds the file lock.
    pub fn write(&self, path: &Path) -> Result<bool, LockError> {
        let bytes = self.to_bytes();
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = parent(path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".cookbook.lock.")
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(&bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(true)
    }
}

/// The 1-based line and column of the first `needle` in `bytes` (1:1 when absent).
fn position_of(bytes: &[u8], needle: &[u8]) -> (usize, usize) {
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return (1, 1);
    };
    let before = &bytes[..at];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + at
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1);
    (line, column)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Merges `update` into the lock at `path` under an exclusive lock on its directory: re-reads
/// the lock, keeps the other containers' entries, replaces this run's, writes it. Returns whether
/// the file changed. A lock of another project is replaced, as a fresh one; one of another hash
/// version keeps only its base pins (they do not depend on the algorithm).
pub fn update(path: &Path, update: &Update) -> Result<bool, LockError> {
    let _held = DirLock::acquire(parent(path)).map_err(|source| LockError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lock = match Lock::read(path)? {
        Some(old)
            if old.project == update.project && old.hash_version == crate::hash::HASH_VERSION =>
        {
            old
        }
        Some(old) if old.project == update.project => Lock {
            bases: old.bases,
            ..Lock::new(&update.project)
        },
        _ => Lock::new(&update.project),
    };
    lock.lock_version = LOCK_VERSION;
    lock.containers
        .retain(|name, _| update.containers_in_cookbook.contains(name));
    lock.bases
        .retain(|reference, _| update.bases_in_cookbook.contains(reference));
    for (name, entry) in &update.entries {
        lock.containers.insert(name.clone(), entry.clone());
    }
    for (reference, pin) in &update.bases {
        lock.bases.insert(reference.clone(), pin.clone());
    }
    crate::state::record::test_pause("COOKBOOK_LOCK_TEST_PAUSE", "lock-merged");
    lock.write(path)
}

/// Records base-image pins in the lock at `path` under its file lock, replacing earlier pins of
/// the same references and keeping everything else as it is (entries, hash version: the
/// entries still describe what was built). Creates a lock holding only the pins when there is
/// none. Returns whether the file changed.
pub fn record_pins(path: &Path, project: &str, pins: &BasePins) -> Result<bool, LockError> {
    let _held = DirLock::acquire(parent(path)).map_err(|source| LockError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lock = match Lock::read(path)? {
        Some(old) if old.project == project => old,
        _ => Lock::new(project),
    };
    lock.lock_version = LOCK_VERSION;
    for (reference, pin) in pins {
        lock.bases.insert(reference.clone(), pin.clone());
    }
    lock.write(path)
}

/// An exclusive `flock` on a directory, released on drop.
struct DirLock(std::fs::File);

impl DirLock {
    fn acquire(dir: &Path) -> std::io::Result<DirLock> {
        let file = std::fs::File::open(dir)?;
        // Through the trait: std's inherent `File::lock` is newer than our MSRV.
        fs4::FileExt::lock(&file)?;
        Ok(DirLock(file))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock as well; unlocking first is only explicit.
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, digest: Option<&str>) -> LockedImage {
        LockedImage {
            input_hash: "ab".repeat(32),
            image: format!("r/{name}:x"),
            tags: vec![format!("r/{name}:x")],
            digest: digest.map(str::to_owned),
            image_id: Some(format!("sha256:{}", "1".repeat(64))),
        }
    }

    #[test]
    fn stable_bytes_and_no_rewrite_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let mut lock = Lock::new("shop");
        for name in ["web", "api"] {
            lock.containers
                .insert(name.to_owned(), entry(name, Some("sha256:00")));
        }
        assert!(lock.write(&path).unwrap());
        assert!(!lock.write(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.find("\"api\"").unwrap() < text.find("\"web\"").unwrap());
        assert!(text.contains("\"lock_version\": 3"));
        assert_eq!(Lock::read(&path).unwrap(), Some(lock));
    }

    #[test]
    fn an_unpublished_entry_has_no_digest_field() {
        let mut lock = Lock::new("shop");
        lock.containers.insert("api".into(), entry("api", None));
        let text = String::from_utf8(lock.to_bytes()).unwrap();
        assert!(!text.contains("\"digest\""), "{text}");
        assert!(text.contains("\"image_id\""), "{text}");
    }

    #[test]
    fn version_1_digests_map_to_one_meaning_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let v1 = serde_json::json!({
            "lock_version": 1,
            "hash_version": 1,
            "project": "shop",
            "containers": {
                "api": {
                    "input_hash": "aa", "image": "127.0.0.1:5000/shop/api:aa",
                    "tags": ["127.0.0.1:5000/shop/api:aa"], "digest": "sha256:manifest"
                },
                "db": {
                    "input_hash": "bb", "image": "cookbook.local/shop/db:bb",
                    "tags": ["cookbook.local/shop/db:bb"], "digest": "sha256:imageid"
                }
            }
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(lock.lock_version, LOCK_VERSION);
        let api = &lock.containers["api"];
        assert_eq!(
            (api.digest.as_deref(), api.image_id.as_deref()),
            (Some("sha256:manifest"), None)
        );
        let db = &lock.containers["db"];
        assert_eq!(
            (db.digest.as_deref(), db.image_id.as_deref()),
            (None, Some("sha256:imageid"))
        );
    }

    #[test]
    fn pins_are_recorded_kept_across_hash_versions_and_dropped_when_unused() {
        use crate::hash::{BasePin, PinSource};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let mut old = Lock::new("shop");
        old.hash_version = 1;
        old.containers.insert("api".into(), entry("api", None));
        old.write(&path).unwrap();
        let pin = BasePin {
            digest: format!("sha256:{}", "2".repeat(64)),
            source: PinSource::Engine,
        };
        let pins = BasePins::from([("b:1".to_owned(), pin.clone())]);
        assert!(record_pins(&path, "shop", &pins).unwrap());
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(
            (lock.hash_version, lock.containers.len(), &lock.bases),
            (1, 1, &pins),
            "pinning keeps the entries as they are"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"bases\": {\n    \"b:1\": {\n      \"digest\""),
            "{text}"
        );
        let update_of = |bases: Vec<String>| {
            update(
                &path,
                &Update {
                    project: "shop".into(),
                    containers_in_cookbook: vec!["api".into()],
                    entries: BTreeMap::from([("api".to_owned(), entry("api", None))]),
                    bases_in_cookbook: bases,
                    bases: BasePins::new(),
                },
            )
            .unwrap();
            Lock::read(&path).unwrap().unwrap()
        };
        let lock = update_of(vec!["b:1".into()]);
        assert_eq!(lock.hash_version, crate::hash::HASH_VERSION);
        assert_eq!(lock.bases, pins, "a new hash version keeps the pins");
        assert!(update_of(Vec::new()).bases.is_empty());
    }

    #[test]
    fn an_unknown_version_is_refused_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        std::fs::write(
            &path,
            "{\"lock_version\": 9, \"hash_version\": 1, \"project\": \"p\", \"containers\": {}}\n",
        )
        .unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert!(err.contains("lock version 9"), "{err}");
        assert!(err.contains("cookbook.lock:1:2:"), "{err}");
    }

    #[test]
    fn updates_merge_under_the_lock_and_keep_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let all = vec!["api".to_owned(), "web".to_owned()];
        let threads: Vec<_> = ["api", "web"]
            .into_iter()
            .map(|name| {
                let (path, all) = (path.clone(), all.clone());
                std::thread::spawn(move || {
                    update(
                        &path,
                        &Update {
                            project: "shop".into(),
                            containers_in_cookbook: all,
                            entries: BTreeMap::from([(name.to_owned(), entry(name, None))]),
                            bases_in_cookbook: Vec::new(),
                            bases: BasePins::new(),
                        },
                    )
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap());
        }
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(
            lock.containers.keys().collect::<Vec<_>>(),
            ["api", "web"],
            "both writers' entries land"
        );
        // A container the cookbook dropped is dropped from the lock.
        update(
            &path,
            &Update {
                project: "shop".into(),
                containers_in_cookbook: vec!["web".into()],
                entries: BTreeMap::new(),
                bases_in_cookbook: Vec::new(),
                bases: BasePins::new(),
            },
        )
        .unwrap();
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(lock.containers.keys().collect::<Vec<_>>(), ["web"]);
    }
}
