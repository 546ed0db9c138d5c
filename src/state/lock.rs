//! `cookbook.lock`: what applies produced, for release engineers and `verify`.
//!
//! Place in the pipeline: `apply` writes it (the base-image pins as soon as they are resolved,
//! before any build; the entries at the end); `hash`, `verify`, `deploy`, `sync` and the rest
//! read it. It lives beside the cookbook file (it is meant to be committed), and this module is
//! its only reader and writer.
//!
//! Format (version 3, documented in docs/VERIFY.md): JSON with a fixed key order (structs and
//! `BTreeMap`s), two-space indentation and a trailing newline. Each field has one meaning:
//! `digest` is the registry's manifest digest and is present only when the image was published;
//! `image_id` is the image's id (the digest of its configuration, which is also its manifest's
//! `config.digest`). `bases` (new in version 3) pins each external base image the cookbook
//! names: reference as written → `{"digest", "source"}` (`registry`: its manifest digest;
//! `engine`: the local engine's image id, for an image that exists only there; `reference`: the
//! reference carries its digest). Version 1 had one `digest` field meaning either; versions 1
//! and 2 are still read (see `Reader::entry` for the mapping; they pin nothing) and rewritten as
//! version 3 by the next apply.
//!
//! The lock is input like the cookbook: it arrives through git (`sync`) on every site, and its
//! pins are written into Dockerfiles. So it is read strictly into typed values ([`Lock::parse`]):
//! digests are `sha256:` and 64 lowercase hex (an OCI `Digest`; only a `reference` pin may carry
//! another algorithm, and only its own reference's digest), every image name follows Docker's
//! reference grammar (pin keys, each entry's `image` and `tags`: `WrittenReference`, kept as
//! written), container and project names are `Name`s, input hashes 64 lowercase hex, `source`
//! one of its three words, and a pin must fit its key (`BasePin::check`). Every problem is a
//! located diagnostic (line:column and JSON pointer), all of them at once; unknown and duplicate
//! keys are problems too. A lock that fails is refused by every command that reads it (exit 2).
//!
//! Why sha256 only: every digest the lock records is one cookbook computed (normalized
//! manifests, configs) or one Docker and registries name content by — an engine's image id is
//! always sha256, and a registry answers a tag with its canonical (sha256) digest. A lock with
//! another algorithm was not written by `cookbook`; refusing it keeps the lock's grammar exactly
//! what its writer produces, and keeps every digest checkable with `sha256sum`.
//!
//! Invariants:
//! - Readers never see a half-written lock: it is written to a temp file beside it, fsynced and
//!   renamed over it ([`crate::state::atomic`]), with the replaced lock's mode (a new one gets
//!   the umask's, as a file the user made), and through a symlink to its target (a lock that is
//!   a symlink stays one).
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
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::diagnostic::{excerpt, pointer_push, shorten_pointer, Diagnostic, Location};
use crate::hash::{BasePin, BasePins, InputHash, PinSource};
use crate::model::Name;
use crate::oci::{reference_reason, Digest, WrittenReference};
use crate::schema::span::SpanIndex;
use crate::state::atomic;

/// Version 3: `bases` pins the external base images. Version 2: `digest` (registry manifest,
/// only when published) and `image_id` (local image id) are separate fields. Version 1 had one
/// `digest` meaning either.
pub const LOCK_VERSION: u32 = 3;

/// The largest lock read: an entry is about 400 bytes, so 64 MiB holds some 150,000 containers,
/// and a file linked to `/dev/zero` still cannot exhaust memory.
pub const LOCK_MAX: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    pub lock_version: u32,
    pub hash_version: u32,
    pub project: Name,
    /// The pinned external base images, by the reference the cookbook writes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BasePins,
    pub containers: BTreeMap<Name, LockedImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockedImage {
    pub input_hash: InputHash,
    /// The content-tagged reference (`registry/repo:<input_hash>`, or the local name without a
    /// registry).
    pub image: WrittenReference,
    /// Every tag applied (the content tag first, then the policy tags).
    pub tags: Vec<WrittenReference>,
    /// The registry's manifest digest of the content tag; absent when the image was not
    /// published (`apply --no-push`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_digest"
    )]
    pub digest: Option<Digest>,
    /// The image's id: the digest of its configuration (`docker images --no-trunc`, and the
    /// `config.digest` of its manifest). Absent only in entries read from a version-1 lock that
    /// did not record it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_digest"
    )]
    pub image_id: Option<Digest>,
}

impl LockedImage {
    /// The manifest digest of the image as published in a registry; `None` for an entry never
    /// pushed (`apply --no-push`: a local name, or no manifest digest), which nothing in a
    /// registry can be compared with.
    pub fn published_digest(&self) -> Option<&Digest> {
        self.digest
            .as_ref()
            .filter(|_| !crate::model::is_local_image(self.image.as_str()))
    }
}

fn optional_digest<S: Serializer>(digest: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
    match digest {
        Some(d) => s.serialize_str(d.as_str()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A lock that is no small regular file (linked to `/dev/zero`, a FIFO, past [`LOCK_MAX`]).
    #[error("{} cannot be used as a lock: {why}", path.display())]
    Unusable { path: PathBuf, why: String },
    /// A lock another project wrote: its pins and entries are not this cookbook's, and it is
    /// never silently replaced (a cookbook that names no project and lies in a directory of
    /// another name meets its own lock this way).
    #[error(
        "{} was written for project `{lock}`, not `{cookbook}`: set `project.name` to `{lock}`, or remove the lock to start a new one",
        path.display()
    )]
    OtherProject {
        path: PathBuf,
        lock: String,
        cookbook: String,
    },
    /// Every problem of the file, each located (line:column and JSON pointer).
    #[error("{}", render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line per problem: `cookbook.lock:4:17: not a valid lock file: /pointer: message`. The
/// pointer is shortened and its control characters escaped (a key is the lock's free text), and
/// messages quote values through `excerpt`, so nothing raw from the lock reaches a terminal.
fn render(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let Location { line, column } = d.location.unwrap_or(Location { line: 1, column: 1 });
        out.push_str(&format!(
            "{}:{line}:{column}: not a valid lock file: ",
            path.display()
        ));
        if !d.pointer.is_empty() {
            for c in shorten_pointer(&d.pointer).chars() {
                if c.is_control() {
                    out.extend(c.escape_debug());
                } else {
                    out.push(c);
                }
            }
            out.push_str(": ");
        }
        out.push_str(&d.message);
        if let Some(help) = &d.help {
            out.push_str("\n  help: ");
            out.push_str(help);
        }
    }
    out
}

impl Lock {
    pub fn new(project: &Name) -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            hash_version: crate::hash::HASH_VERSION,
            project: project.clone(),
            bases: BasePins::new(),
            containers: BTreeMap::new(),
        }
    }

    /// The lock beside a cookbook file.
    pub fn path_for(cookbook_file: &Path) -> PathBuf {
        cookbook_file.with_file_name("cookbook.lock")
    }

    /// Reads the lock of `project`; `Ok(None)` when there is none, [`LockError::OtherProject`]
    /// when another project wrote it.
    pub fn read_for(path: &Path, project: &Name) -> Result<Option<Lock>, LockError> {
        match Lock::read(path)? {
            Some(lock) if lock.project != *project => Err(LockError::OtherProject {
                path: path.to_path_buf(),
                lock: lock.project.to_string(),
                cookbook: project.to_string(),
            }),
            lock => Ok(lock),
        }
    }

    /// Reads a lock; `Ok(None)` when there is none. Only a regular file of at most
    /// [`LOCK_MAX`] bytes is read (a lock arrives with a clone, and may be hostile).
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        use crate::context::file::{read_regular, FileError};
        let bytes = match read_regular(path, LOCK_MAX) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(FileError::Io(source)) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(why) => {
                return Err(LockError::Unusable {
                    path: path.to_path_buf(),
                    why: why.to_string(),
                })
            }
        };
        Lock::parse(&bytes)
            .map(Some)
            .map_err(|diagnostics| LockError::Invalid {
                path: path.to_path_buf(),
                diagnostics,
            })
    }

    /// Reads a lock's bytes (any version this build reads) into typed values. Pure: `sync`
    /// checks the lock of a revision straight from git with it. `Err` lists every problem,
    /// located and in file order.
    pub fn parse(bytes: &[u8]) -> Result<Lock, Vec<Diagnostic>> {
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                // The position goes into the location; serde_json's message would say it twice.
                let message = e.to_string();
                let message = match message.rsplit_once(" at line ") {
                    Some((head, _)) => head.to_owned(),
                    None => message,
                };
                return Err(vec![Diagnostic::new("lock/syntax", "", message).located(
                    Location {
                        line: e.line().max(1),
                        // serde_json counts the end of input at a line's start as column 0.
                        column: e.column().max(1),
                    },
                )]);
            }
        };
        // serde_json accepted it, so it is UTF-8 (JSON outside strings is ASCII).
        let text = String::from_utf8_lossy(bytes);
        let mut reader = Reader::default();
        if SpanIndex::has_duplicate_keys(&text) {
            // serde_json keeps the last of two equal keys: a second pin or entry would hide
            // behind the first for a reader of the file.
            let index = SpanIndex::scan(&text);
            for d in &index.duplicates {
                reader.diagnostics.push(
                    Diagnostic::new(
                        "lock/duplicate-key",
                        d.pointer.clone(),
                        "this key appears twice in its object",
                    )
                    .located(index.location(&text, d.offset)),
                );
            }
        }
        let lock = reader.lock(&value);
        match lock {
            Some(lock) if reader.diagnostics.is_empty() => Ok(lock),
            _ => {
                let spans = SpanIndex::scan(&text);
                let mut diagnostics = reader.diagnostics;
                for d in &mut diagnostics {
                    if d.location.is_none() {
                        d.location = Some(spans.locate(&text, &d.pointer, d.at_key));
                    }
                }
                diagnostics.sort_by(|a, b| {
                    (a.location, &a.pointer, a.code).cmp(&(b.location, &b.pointer, b.code))
                });
                diagnostics.dedup();
                Err(diagnostics)
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("locks serialize");
        bytes.push(b'\n');
        bytes
    }

    /// Writes the lock atomically (temp file, fsync, rename, fsync of the directory: see
    /// [`atomic::replace`]); returns whether the file changed. Callers that merge use [`update`],
    /// which holds the file lock.
    pub fn write(&self, path: &Path) -> Result<bool, LockError> {
        let bytes = self.to_bytes();
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        atomic::replace(path, &bytes, ".cookbook.lock.").map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(true)
    }
}

/// The keys each object of the lock may have.
const TOP_KEYS: [&str; 5] = [
    "lock_version",
    "hash_version",
    "project",
    "bases",
    "containers",
];
const PIN_KEYS: [&str; 2] = ["digest", "source"];
const ENTRY_KEYS: [&str; 5] = ["input_hash", "image", "tags", "digest", "image_id"];

/// Reads a parsed JSON value into a [`Lock`], collecting a diagnostic (unlocated: pointers only)
/// for every problem instead of stopping at the first.
#[derive(Default)]
struct Reader {
    diagnostics: Vec<Diagnostic>,
}

impl Reader {
    fn problem(&mut self, code: &'static str, pointer: &str, message: String) {
        self.diagnostics
            .push(Diagnostic::new(code, pointer.to_owned(), message));
    }

    /// `value` as an object, whatever its keys.
    fn map<'v>(&mut self, value: &'v Value, pointer: &str) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            self.problem(
                "lock/type",
                pointer,
                format!("expected an object, found {}", kind(value)),
            );
            return None;
        };
        Some(map)
    }

    /// `value` as an object whose keys are all in `known`.
    fn object<'v>(
        &mut self,
        value: &'v Value,
        pointer: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let map = self.map(value, pointer)?;
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.diagnostics.push(
                Diagnostic::new(
                    "lock/unknown-key",
                    pointer_push(pointer, key),
                    format!(
                        "unknown key {}: a lock has only {}",
                        excerpt(key),
                        known.join(", ")
                    ),
                )
                .at_key(),
            );
        }
        Some(map)
    }

    /// A member that must be there.
    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Option<&'v Value> {
        let found = map.get(key);
        if found.is_none() {
            self.problem("lock/missing-key", pointer, format!("missing key `{key}`"));
        }
        found
    }

    fn string<'v>(&mut self, value: &'v Value, pointer: &str) -> Option<&'v str> {
        match value {
            Value::String(s) => Some(s),
            other => {
                self.problem(
                    "lock/type",
                    pointer,
                    format!("expected a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A version number. Any is read: a lock version this build does not know is refused by
    /// the caller, a hash version it does not compute is `verify`'s mismatch to report.
    fn version(&mut self, value: &Value, pointer: &str) -> Option<u32> {
        let version = value.as_u64().and_then(|n| u32::try_from(n).ok());
        if version.is_none() {
            self.problem(
                "lock/type",
                pointer,
                format!("expected a version number, found {}", shown(value)),
            );
        }
        version
    }

    fn name(&mut self, text: &str, pointer: &str, at_key: bool, what: &str) -> Option<Name> {
        let name = Name::parse(text);
        if name.is_none() {
            let mut d = Diagnostic::new(
                "lock/name",
                pointer.to_owned(),
                format!(
                    "{what} {} is not a name ([a-z0-9][a-z0-9_.-]{{0,127}})",
                    excerpt(text)
                ),
            );
            if at_key {
                d = d.at_key();
            }
            self.diagnostics.push(d);
        }
        name
    }

    fn reference(&mut self, text: &str, pointer: &str, at_key: bool) -> Option<WrittenReference> {
        match WrittenReference::parse(text) {
            Ok(r) => Some(r),
            Err(e) => {
                let mut d = Diagnostic::new(
                    "lock/reference",
                    pointer.to_owned(),
                    format!(
                        "{} is not an image reference: {}",
                        excerpt(text),
                        reference_reason(&e)
                    ),
                );
                if at_key {
                    d = d.at_key();
                }
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// A sha256 digest: what every digest of the lock is but a `reference` pin's (see the
    /// module header).
    fn sha256(&mut self, value: &Value, pointer: &str) -> Option<Digest> {
        let text = self.string(value, pointer)?;
        match Digest::parse(text)
            .ok()
            .filter(|d| d.as_str().starts_with("sha256:"))
        {
            Some(d) => Some(d),
            None => {
                self.problem(
                    "lock/digest",
                    pointer,
                    format!(
                        "{} is not a digest: expected sha256: and 64 lowercase hex digits",
                        excerpt(text)
                    ),
                );
                None
            }
        }
    }

    fn lock(&mut self, value: &Value) -> Option<Lock> {
        let top = self.object(value, "", &TOP_KEYS)?;
        let lock_version = self
            .required(top, "", "lock_version")
            .and_then(|v| self.version(v, "/lock_version"));
        if let Some(v) = lock_version.filter(|v| !(1..=LOCK_VERSION).contains(v)) {
            self.problem(
                "lock/version",
                "/lock_version",
                if v == 0 {
                    format!("lock version 0 does not exist (1 to {LOCK_VERSION})")
                } else {
                    format!(
                        "lock version {v} is not one this cookbook reads (1 to {LOCK_VERSION}); \
                         it was written by a newer cookbook"
                    )
                },
            );
        }
        let hash_version = self
            .required(top, "", "hash_version")
            .and_then(|v| self.version(v, "/hash_version"));
        let project = self
            .required(top, "", "project")
            .and_then(|v| self.string(v, "/project"))
            .and_then(|p| self.name(p, "/project", false, "project"));
        let bases = match top.get("bases") {
            None => Some(BasePins::new()),
            Some(_) if lock_version.is_some_and(|v| v < 3) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        "lock/version",
                        "/bases",
                        format!(
                            "`bases` is not part of lock version {}",
                            lock_version.unwrap_or_default()
                        ),
                    )
                    .at_key(),
                );
                None
            }
            Some(bases) => self.bases(bases),
        };
        let containers = self
            .required(top, "", "containers")
            .and_then(|v| self.containers(v, lock_version.unwrap_or(LOCK_VERSION)));
        Some(Lock {
            // Read as the current version whatever it was: that is what it is now, and what is
            // written.
            lock_version: LOCK_VERSION,
            hash_version: hash_version?,
            project: project?,
            bases: bases?,
            containers: containers?,
        })
    }

    fn bases(&mut self, value: &Value) -> Option<BasePins> {
        let map = self.map(value, "/bases")?;
        let mut pins = BasePins::new();
        let mut ok = true;
        for (key, pin) in map {
            let at = pointer_push("/bases", key);
            let reference = self.reference(key, &at, true);
            let pin = self.pin(pin, &at);
            match (reference, pin) {
                (Some(reference), Some(pin)) => match pin.check(&reference) {
                    Ok(()) => {
                        pins.insert(reference, pin);
                    }
                    Err(e) => {
                        ok = false;
                        self.problem("lock/pin", &pointer_push(&at, "digest"), e.to_string());
                    }
                },
                _ => ok = false,
            }
        }
        ok.then_some(pins)
    }

    fn pin(&mut self, value: &Value, at: &str) -> Option<BasePin> {
        let map = self.object(value, at, &PIN_KEYS)?;
        let source_at = pointer_push(at, "source");
        let source = self
            .required(map, at, "source")
            .and_then(|v| self.string(v, &source_at))
            .and_then(|text| {
                let source = PinSource::parse(text);
                if source.is_none() {
                    self.problem(
                        "lock/source",
                        &source_at,
                        format!(
                            "unknown pin source {}: one of registry, engine, reference",
                            excerpt(text)
                        ),
                    );
                }
                source
            });
        let digest_at = pointer_push(at, "digest");
        // Any registered algorithm here; `BasePin::check` then holds each source to its own.
        let digest = self
            .required(map, at, "digest")
            .and_then(|v| self.string(v, &digest_at))
            .and_then(|text| match Digest::parse(text) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.problem(
                        "lock/digest",
                        &digest_at,
                        format!(
                            "{} is not a digest: expected sha256: and 64 lowercase hex digits",
                            excerpt(text)
                        ),
                    );
                    None
                }
            });
        Some(BasePin {
            digest: digest?,
            source: source?,
        })
    }

    fn containers(&mut self, value: &Value, version: u32) -> Option<BTreeMap<Name, LockedImage>> {
        let map = self.map(value, "/containers")?;
        let mut entries = BTreeMap::new();
        let mut ok = true;
        for (key, entry) in map {
            let at = pointer_push("/containers", key);
            let name = self.name(key, &at, true, "container");
            match (name, self.entry(entry, &at, version)) {
                (Some(name), Some(entry)) => {
                    entries.insert(name, entry);
                }
                _ => ok = false,
            }
        }
        ok.then_some(entries)
    }

    fn entry(&mut self, value: &Value, at: &str, version: u32) -> Option<LockedImage> {
        let map = self.object(value, at, &ENTRY_KEYS)?;
        let field = |key| pointer_push(at, key);
        let input_hash = self.input_hash(map, at);
        let image = self
            .required(map, at, "image")
            .and_then(|v| self.string(v, &field("image")))
            .and_then(|text| self.reference(text, &field("image"), false));
        let tags = self.tags(map, at);
        let mut digest = match map.get("digest") {
            // Version 1 wrote an empty digest for an image it had none of.
            Some(Value::String(s)) if s.is_empty() && version == 1 => Some(None),
            Some(v) => self.sha256(v, &field("digest")).map(Some),
            None => Some(None),
        };
        let mut image_id = self.image_id(map, at, version);
        let image = image?;
        // Version 1 → 2: a local image (`cookbook.local/…`, never published) had its image id in
        // `digest`, which becomes `image_id`. Any other image's `digest` stays the manifest
        // digest: a version-1 lock cannot tell a registry-named image applied with `--no-push`
        // apart from a published one, so such an entry still looks published until the next
        // apply rewrites it.
        if version == 1 && crate::model::is_local_image(image.as_str()) {
            image_id = digest.take();
            digest = Some(None);
        }
        Some(LockedImage {
            input_hash: input_hash?,
            image,
            tags: tags?,
            digest: digest?,
            image_id: image_id?,
        })
    }

    fn input_hash(&mut self, map: &Map<String, Value>, at: &str) -> Option<InputHash> {
        let field = pointer_push(at, "input_hash");
        let text = self
            .required(map, at, "input_hash")
            .and_then(|v| self.string(v, &field))?;
        let hash = InputHash::parse(text);
        if hash.is_none() {
            self.problem(
                "lock/input-hash",
                &field,
                format!(
                    "{} is not an input hash: expected 64 lowercase hex digits",
                    excerpt(text)
                ),
            );
        }
        hash
    }

    fn tags(&mut self, map: &Map<String, Value>, at: &str) -> Option<Vec<WrittenReference>> {
        let v = self.required(map, at, "tags")?;
        let at = pointer_push(at, "tags");
        let Value::Array(items) = v else {
            self.problem(
                "lock/type",
                &at,
                format!("expected an array, found {}", kind(v)),
            );
            return None;
        };
        let mut tags = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_at = pointer_push(&at, &i.to_string());
            match self
                .string(item, &item_at)
                .and_then(|t| self.reference(t, &item_at, false))
            {
                Some(t) => tags.push(t),
                None => ok = false,
            }
        }
        ok.then_some(tags)
    }

    /// `image_id`: `Some(None)` when absent, `None` when invalid (or in a version-1 lock).
    fn image_id(
        &mut self,
        map: &Map<String, Value>,
        at: &str,
        version: u32,
    ) -> Option<Option<Digest>> {
        let at = pointer_push(at, "image_id");
        match map.get("image_id") {
            Some(_) if version == 1 => {
                self.diagnostics.push(
                    Diagnostic::new(
                        "lock/version",
                        at,
                        "`image_id` is not part of lock version 1",
                    )
                    .at_key(),
                );
                None
            }
            Some(v) => self.sha256(v, &at).map(Some),
            None => Some(None),
        }
    }
}

/// What a JSON value is, for "expected …, found …".
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as JSON text, shortened; a container by its kind.
fn shown(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind(value).to_owned(),
        Value::String(s) => excerpt(s),
        other => excerpt(&other.to_string()),
    }
}

/// What one apply contributes to the lock.
#[derive(Debug, Clone)]
pub struct Update {
    pub project: Name,
    /// Entries of containers outside this set are dropped (the cookbook no longer has them).
    pub containers_in_cookbook: Vec<Name>,
    /// This run's entries, replacing any earlier entry of the same container.
    pub entries: BTreeMap<Name, LockedImage>,
    /// Pins of bases outside this set are dropped (no container names them any more).
    pub bases_in_cookbook: Vec<WrittenReference>,
    /// The base-image pins this run built on, replacing earlier pins of the same references.
    pub bases: BasePins,
}

/// Merges `update` into the lock at `path` under an exclusive lock on its directory: re-reads
/// the lock, keeps the other containers' entries, replaces this run's, writes it. Returns whether
/// the file changed. A lock of another project is refused ([`LockError::OtherProject`]), never
/// replaced; one of another hash version keeps only its base pins (they do not depend on the
/// algorithm).
pub fn update(path: &Path, update: &Update) -> Result<bool, LockError> {
    let _held =
        atomic::DirLock::acquire(atomic::parent(path)).map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    let mut lock = match Lock::read_for(path, &update.project)? {
        Some(old) if old.hash_version == crate::hash::HASH_VERSION => old,
        Some(old) => Lock {
            bases: old.bases,
            ..Lock::new(&update.project)
        },
        None => Lock::new(&update.project),
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
pub fn record_pins(path: &Path, project: &Name, pins: &BasePins) -> Result<bool, LockError> {
    let _held =
        atomic::DirLock::acquire(atomic::parent(path)).map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    let mut lock = Lock::read_for(path, project)?.unwrap_or_else(|| Lock::new(project));
    lock.lock_version = LOCK_VERSION;
    for (reference, pin) in pins {
        lock.bases.insert(reference.clone(), pin.clone());
    }
    lock.write(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    fn sha(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn written(text: &str) -> WrittenReference {
        WrittenReference::parse(text).unwrap()
    }

    fn entry(container: &str, digest: Option<Digest>) -> LockedImage {
        let hash = "ab".repeat(32);
        LockedImage {
            input_hash: InputHash::parse(&hash).unwrap(),
            image: written(&format!("r/{container}:{hash}")),
            tags: vec![written(&format!("r/{container}:{hash}"))],
            digest,
            image_id: Some(sha('1')),
        }
    }

    /// The problems of `text` as `line:column code pointer`.
    fn problems(text: &str) -> Vec<String> {
        Lock::parse(text.as_bytes())
            .expect_err("refused")
            .iter()
            .map(|d| {
                let l = d.location.unwrap();
                format!("{}:{} {} {}", l.line, l.column, d.code, d.pointer)
            })
            .collect()
    }

    #[test]
    fn stable_bytes_and_no_rewrite_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let mut lock = Lock::new(&name("shop"));
        for container in ["web", "api"] {
            lock.containers
                .insert(name(container), entry(container, Some(sha('0'))));
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
        let mut lock = Lock::new(&name("shop"));
        lock.containers.insert(name("api"), entry("api", None));
        let text = String::from_utf8(lock.to_bytes()).unwrap();
        assert!(!text.contains("\"digest\""), "{text}");
        assert!(text.contains("\"image_id\""), "{text}");
    }

    #[test]
    fn version_1_digests_map_to_one_meaning_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let v1 = serde_json::json!({
            "lock_version": 1,
            "hash_version": 1,
            "project": "shop",
            "containers": {
                "api": {
                    "input_hash": a, "image": format!("127.0.0.1:5000/shop/api:{a}"),
                    "tags": [format!("127.0.0.1:5000/shop/api:{a}")], "digest": sha('2').as_str()
                },
                "db": {
                    "input_hash": b, "image": format!("cookbook.local/shop/db:{b}"),
                    "tags": [format!("cookbook.local/shop/db:{b}")], "digest": sha('3').as_str()
                },
                "web": {
                    "input_hash": b, "image": format!("cookbook.local/shop/web:{b}"),
                    "tags": [], "digest": ""
                }
            }
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(lock.lock_version, LOCK_VERSION);
        let api = &lock.containers["api"];
        assert_eq!((&api.digest, &api.image_id), (&Some(sha('2')), &None));
        let db = &lock.containers["db"];
        assert_eq!((&db.digest, &db.image_id), (&None, &Some(sha('3'))));
        let web = &lock.containers["web"];
        assert_eq!((&web.digest, &web.image_id), (&None, &None));
    }

    #[test]
    fn pins_are_recorded_kept_across_hash_versions_and_dropped_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let mut old = Lock::new(&name("shop"));
        old.hash_version = 1;
        old.containers.insert(name("api"), entry("api", None));
        old.write(&path).unwrap();
        let pin = BasePin {
            digest: sha('2'),
            source: PinSource::Engine,
        };
        let pins = BasePins::from([(written("b:1"), pin.clone())]);
        assert!(record_pins(&path, &name("shop"), &pins).unwrap());
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
        let update_of = |bases: Vec<WrittenReference>| {
            update(
                &path,
                &Update {
                    project: name("shop"),
                    containers_in_cookbook: vec![name("api")],
                    entries: BTreeMap::from([(name("api"), entry("api", None))]),
                    bases_in_cookbook: bases,
                    bases: BasePins::new(),
                },
            )
            .unwrap();
            Lock::read(&path).unwrap().unwrap()
        };
        let lock = update_of(vec![written("b:1")]);
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
        assert!(
            err.contains("cookbook.lock:1:18: not a valid lock file: /lock_version: "),
            "{err}"
        );
    }

    /// Issue 20, item 2: what the lock says reaches a Dockerfile only as typed values. Every
    /// problem is reported at once, each at its key or value, in file order.
    #[test]
    fn a_crafted_lock_is_refused_with_every_problem_located() {
        let a = "a".repeat(64);
        let text = format!(
            r#"{{
  "lock_version": 3,
  "hash_version": 2,
  "project": "Shop",
  "bases": {{
    "busybox:1.36": {{ "digest": "sha256:{a}\nRUN id", "source": "registry" }},
    "alpine:3": {{ "digest": "evil.example/x:latest", "source": "engine" }},
    "debian:12\nRUN id": {{ "digest": "sha256:{a}", "source": "registry" }},
    "ubuntu:24.04": {{ "digest": "sha256:{a}", "source": "somewhere" }},
    "pinned@sha256:{a}": {{ "digest": "sha256:{b}", "source": "reference" }},
    "x:1": {{ "digest": "sha256:{a}", "source": "registry", "extra": 1 }}
  }},
  "containers": {{
    "api": {{ "input_hash": "../../etc", "image": "r/api:x\nRUN id", "tags": [7, "r/api:ok"],
             "digest": "sha256:{A}", "image_id": "sha512:{c}" }},
    "../web": {{ "input_hash": "{a}", "image": "r/web:{a}", "tags": [] }}
  }}
}}
"#,
            b = "b".repeat(64),
            c = "c".repeat(128),
            A = "A".repeat(64),
        );
        assert_eq!(
            problems(&text),
            [
                "4:14 lock/name /project",
                "6:33 lock/digest /bases/busybox:1.36/digest",
                "7:29 lock/digest /bases/alpine:3/digest",
                "8:5 lock/reference /bases/debian:12\nRUN id",
                "9:118 lock/source /bases/ubuntu:24.04/source",
                "10:99 lock/pin /bases/pinned@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/digest",
                "11:121 lock/unknown-key /bases/x:1/extra",
                "14:28 lock/input-hash /containers/api/input_hash",
                "14:50 lock/reference /containers/api/image",
                "14:78 lock/type /containers/api/tags/0",
                "15:24 lock/digest /containers/api/digest",
                "15:111 lock/digest /containers/api/image_id",
                "16:5 lock/name /containers/..~1web",
            ]
        );
        // Rendered for a terminal: no raw newline from the lock, the pointer's escaped.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        std::fs::write(&path, &text).unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 13, "{err}");
        assert!(
            err.contains(
                "cookbook.lock:8:5: not a valid lock file: /bases/debian:12\\nRUN id: \
                 \"debian:12\\nRUN id\" is not an image reference"
            ),
            "{err}"
        );
        assert!(!err.contains("\nRUN"), "{err}");
    }

    #[test]
    fn structure_problems_are_located_too() {
        for (text, expected) in [
            ("[]", vec!["1:1 lock/type "]),
            (
                "{\"lock_version\": 3, \"hash_version\": 2, \"project\": \"p\"}",
                vec!["1:1 lock/missing-key "],
            ),
            (
                "{\"lock_version\": 2, \"hash_version\": 2, \"project\": \"p\", \"bases\": {}, \"containers\": {}}",
                vec!["1:56 lock/version /bases"],
            ),
            (
                "{\"lock_version\": 3, \"hash_version\": -1, \"project\": \"p\", \"containers\": {}}",
                vec!["1:37 lock/type /hash_version"],
            ),
            (
                "{\"lock_version\": 3, \"hash_version\": 2, \"project\": \"p\", \"containers\": {},\n \"containers\": {}}",
                vec!["2:2 lock/duplicate-key /containers"],
            ),
            (
                "{\"lock_version\": 3,",
                vec!["1:19 lock/syntax "],
            ),
        ] {
            let got: Vec<String> = problems(text).iter().map(|p| p.trim_end().to_owned()).collect();
            let expected: Vec<String> = expected.iter().map(|p| p.trim_end().to_owned()).collect();
            assert_eq!(got, expected, "{text}");
        }
    }

    #[test]
    fn updates_merge_under_the_lock_and_keep_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookbook.lock");
        let all = vec![name("api"), name("web")];
        let threads: Vec<_> = ["api", "web"]
            .into_iter()
            .map(|container| {
                let (path, all) = (path.clone(), all.clone());
                std::thread::spawn(move || {
                    update(
                        &path,
                        &Update {
                            project: name("shop"),
                            containers_in_cookbook: all,
                            entries: BTreeMap::from([(name(container), entry(container, None))]),
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
            lock.containers.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["api", "web"],
            "both writers' entries land"
        );
        // A container the cookbook dropped is dropped from the lock.
        update(
            &path,
            &Update {
                project: name("shop"),
                containers_in_cookbook: vec![name("web")],
                entries: BTreeMap::new(),
                bases_in_cookbook: Vec::new(),
                bases: BasePins::new(),
            },
        )
        .unwrap();
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(
            lock.containers.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["web"]
        );
    }
}
