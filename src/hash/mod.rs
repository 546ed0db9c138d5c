//! Input hashes: what exactly a container image is built from, as one SHA-256.
//!
//! Pipeline position: validated cookbook + plan → **fingerprints** (one `HashManifest` per
//! container, parents first) → contexts → builds. The algorithm is specified for release
//! engineers in `docs/REPRODUCIBILITY.md`; this module is its reference implementation.
//!
//! `input_hash` = lowercase hex SHA-256 of the RFC 8785 (JCS) canonical JSON of the manifest
//! without its `input_hash` member. The manifest is what `cookbook explain` prints.
//!
//! | goes in                                                    | stays out, and why                          |
//! |------------------------------------------------------------|---------------------------------------------|
//! | `hash_version`                                             | —                                           |
//! | container name, project name                               | they become image labels                    |
//! | the recipe: resolved spec with defaults, Dockerfile text   | `depends_on`, `federation`: deploy order    |
//! | every context file: path, mode (644/755/link), size, sha256| `packaging.*`: where and how it is tagged   |
//! | build-time parents' input hashes                           | `ci_name`, `ci_capabilities`: CI metadata   |
//! | base-image pins: generated (v2), Dockerfile `FROM`s (v3)   | host paths (source dirs), mtimes, uid/gid,  |
//! |                                                            | umask, group/other bits, walk order, locale |
//! |                                                            | cookbook's own files in a context: the      |
//! |                                                            | cookbook file, its lock, the state dir      |
//!
//! Version history (bump `HASH_VERSION` on any change to what is hashed or how):
//! - 1: first version. Cookbook's own files (the cookbook file, `cookbook.lock`, the state
//!   directory) left every context later without a bump: it changes no hash of a layout that
//!   could ever be reproduced (a context holding them was rewritten by every run, so its hash
//!   moved every run), and the golden vectors stay as they were. See docs/REPRODUCIBILITY.md.
//! - 2: external base images are pinned ([`pins`]): a generated container's recipe has
//!   `base_image.pinned` (the pin from `cookbook.lock`, or null before the first apply pins it),
//!   and its Dockerfile's `FROM` names the pinned image. Version 1 is still computed, for
//!   `verify` of locks written under it ([`Pinning::version`]).
//! - 3: a Dockerfile container's external `FROM` images are pinned too
//!   (`context::from_lines` reads them): its recipe has `bases`, each external image of every
//!   stage (the reference as its text reads once the `ARG`s are substituted) → its pin from
//!   `cookbook.lock`, or null before the first apply pins it. `dockerfile_text` stays the author's
//!   (the file list covers the file too); the engine builds the text with each external `FROM`
//!   naming its pin ([`Fingerprint::build_dockerfile`]), a function of the two. Generated
//!   containers hash as under 2 but for the version. 1 and 2 are still computed for `verify`.

mod diff;
mod digest;
pub mod pins;
mod recipe;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use diff::{diff, Change};
pub use digest::{digest_entries, now_ns, DigestCache, NoCache, ReadDigest};
pub use pins::{BasePin, BasePins, PinSource, Pinning};

use crate::context::{
    self, dockerfile, from_lines, ContextError, ContextPlan, Entry, EntryKind, OwnPaths,
};
use crate::graph::Plan;
use crate::model::{ContainerKind, Cookbook, Name};
use crate::oci::WrittenReference;

/// The version of the hash algorithm; part of every manifest.
pub const HASH_VERSION: u32 = 3;

/// Every version this build computes (`verify` checks a lock under its own).
pub const HASH_VERSIONS: [u32; 3] = [1, 2, 3];

/// An input hash as text: 64 lowercase hex digits, nothing else. What a lock or any other file
/// says is a hash becomes one only through [`InputHash::parse`], so it can be a content tag, a
/// file name or part of a path without ever naming anything else (`../`, a second tag).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputHash(String);

impl InputHash {
    pub fn parse(text: &str) -> Option<InputHash> {
        let hex = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (text.len() == 64 && hex).then(|| InputHash(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InputHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl std::borrow::Borrow<str> for InputHash {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for InputHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One file of a context, as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    pub mode: String,
    pub size: u64,
    pub sha256: String,
}

/// The hash manifest of one container: everything its input hash covers, and the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashManifest {
    pub hash_version: u32,
    pub container: String,
    pub recipe: serde_json::Value,
    pub files: Vec<FileRecord>,
    pub dependencies: BTreeMap<String, String>,
    pub input_hash: String,
}

/// The manifest minus `input_hash`: exactly what is canonicalized and hashed. The reference for
/// `write_canonical`, which must produce the same bytes (checked by tests).
#[cfg(test)]
#[derive(Serialize)]
struct Hashed<'a> {
    hash_version: u32,
    container: &'a str,
    recipe: &'a serde_json::Value,
    files: &'a [FileRecord],
    dependencies: &'a BTreeMap<String, String>,
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Largest integer that an IEEE double (JCS's only number type) holds exactly.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Writes a JSON string as JCS does. JCS escapes exactly what serde_json escapes (`"`, `\\`,
/// controls below U+0020, the short forms `\b \f \n \r \t`, else `\u00xx` in lowercase), so
/// strings that need no escape are copied as they are and the rest go through serde_json.
fn write_jcs_str<W: Write>(w: &mut W, s: &str) -> std::io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    } else {
        serde_json::to_writer(w, s).map_err(std::io::Error::from)
    }
}

/// Writes a number as JCS does (the shortest form of the IEEE double): for integers that a double
/// holds exactly that is their decimal digits; anything larger goes through the JCS crate.
fn write_jcs_u64<W: Write>(w: &mut W, n: u64) -> std::io::Result<()> {
    if n <= MAX_EXACT_INTEGER {
        w.write_all(itoa::Buffer::new().format(n).as_bytes())
    } else {
        serde_json_canonicalizer::to_writer(&n, w).map_err(std::io::Error::from)
    }
}

fn write_jcs<W: Write, T: Serialize>(w: &mut W, value: &T) -> std::io::Result<()> {
    serde_json_canonicalizer::to_writer(value, w).map_err(std::io::Error::from)
}

/// Writes one file record as JCS does: members in the order `mode` < `path` < `sha256` < `size`.
fn write_record<W: Write>(
    w: &mut W,
    first: bool,
    path: &str,
    mode: &str,
    sha256: &str,
    size: u64,
) -> std::io::Result<()> {
    w.write_all(if first { b"{\"mode\":" } else { b",{\"mode\":" })?;
    write_jcs_str(w, mode)?;
    w.write_all(b",\"path\":")?;
    write_jcs_str(w, path)?;
    w.write_all(b",\"sha256\":")?;
    write_jcs_str(w, sha256)?;
    w.write_all(b",\"size\":")?;
    write_jcs_u64(w, size)?;
    w.write_all(b"}")
}

/// Appends one file record to `out`: the same bytes as `write_record`, for a digest still in
/// bytes. This is the hot loop of hashing a fingerprint (100,000 records for 100,000 files), so
/// it writes straight into the vector: hex by table, no UTF-8 or escape checks where the text is
/// known to be digits and hex. Half the time of `write_record` over a vector (5–9 ms against
/// 11–15 ms for 100,000 records), which matters because formatting runs beside the sequential
/// SHA-256 and must not be the slower of the two.
fn push_record(
    out: &mut Vec<u8>,
    first: bool,
    path: &str,
    kind: EntryKind,
    sha256: &[u8; 32],
    size: u64,
) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(if first {
        b"{\"mode\":\""
    } else {
        b",{\"mode\":\""
    });
    out.extend_from_slice(kind.mode().as_bytes());
    out.extend_from_slice(b"\",\"path\":");
    write_jcs_str(out, path).expect("writing to a vector cannot fail");
    out.extend_from_slice(b",\"sha256\":\"");
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(sha256) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"\",\"size\":");
    write_jcs_u64(out, size).expect("writing to a vector cannot fail");
    out.push(b'}');
}

/// The parts of a manifest other than its file list, borrowed.
struct Head<'a> {
    hash_version: u32,
    container: &'a str,
    recipe: &'a serde_json::Value,
    dependencies: &'a BTreeMap<String, String>,
}

impl Head<'_> {
    /// Streams the RFC 8785 canonical JSON of the manifest minus `input_hash` into `w`, with
    /// `files` writing the records of the `files` array.
    ///
    /// Written by hand around the JCS crate because the crate buffers every object member and
    /// sorts it, which costs ~3 µs per file record (a third of a second for 100,000 files) and
    /// holds the whole `files` array in memory. The document's shape is fixed, so its member order
    /// is too: top level `container` < `dependencies` < `files` < `hash_version` < `recipe`, and
    /// each record `mode` < `path` < `sha256` < `size` (UTF-16 code unit order, as JCS sorts).
    /// Free-form parts (`recipe`, `dependencies`) still go through the JCS crate.
    fn write_canonical<W: Write>(
        &self,
        w: &mut W,
        files: impl FnOnce(&mut W) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.write_prefix(w)?;
        files(w)?;
        self.write_suffix(w)
    }

    /// Everything before the records of `files`.
    fn write_prefix<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"{\"container\":")?;
        write_jcs_str(w, self.container)?;
        w.write_all(b",\"dependencies\":")?;
        write_jcs(w, self.dependencies)?;
        w.write_all(b",\"files\":[")
    }

    /// Everything after the records of `files`.
    fn write_suffix<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"],\"hash_version\":")?;
        write_jcs_u64(w, u64::from(self.hash_version))?;
        w.write_all(b",\"recipe\":")?;
        write_jcs(w, self.recipe)?;
        w.write_all(b"}")
    }

    /// The lowercase hex SHA-256 of the canonical form.
    fn hash<F>(&self, files: F) -> String
    where
        F: FnOnce(&mut std::io::BufWriter<HashWriter>) -> std::io::Result<()>,
    {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
        self.write_canonical(&mut w, files)
            .expect("manifests serialize (non-finite numbers cannot occur in parsed JSON)");
        w.flush().expect("HashWriter never fails");
        let (HashWriter(hasher), _) = w.into_parts();
        hex::encode(hasher.finalize())
    }
}

impl HashManifest {
    fn head(&self) -> Head<'_> {
        Head {
            hash_version: self.hash_version,
            container: &self.container,
            recipe: &self.recipe,
            dependencies: &self.dependencies,
        }
    }

    fn write_files<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        for (i, f) in self.files.iter().enumerate() {
            write_record(w, i == 0, &f.path, &f.mode, &f.sha256, f.size)?;
        }
        Ok(())
    }

    /// The input hash this manifest's contents give (whatever its `input_hash` field says).
    pub fn compute_hash(&self) -> String {
        self.head().hash(|w| self.write_files(w))
    }

    /// The canonical JSON that is hashed (for `docs/REPRODUCIBILITY.md` and tests).
    pub fn canonical_json(&self) -> String {
        let mut out = Vec::new();
        self.head()
            .write_canonical(&mut out, |w| self.write_files(w))
            .expect("manifests serialize (non-finite numbers cannot occur in parsed JSON)");
        String::from_utf8(out).expect("JCS output is UTF-8")
    }

    /// Pretty JSON with a trailing newline, as `explain` prints it.
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifests serialize");
        s.push('\n');
        s
    }
}

/// A container's fingerprint: what its input hash covers, the hash, and the context it was
/// computed from (what apply streams to the engine).
///
/// The manifest's file records are not kept: they are the entries and digests, and `manifest`
/// builds the document when one is wanted (`explain`, `apply`'s record, `verify`). `hash` on a
/// 100,000-file tree then allocates nothing per file beyond the listing.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The algorithm it was computed under ([`HASH_VERSION`] unless asked otherwise).
    pub hash_version: u32,
    pub container: Name,
    /// A generated container's external base image and its pin (`None`: not pinned yet, or
    /// hash_version 1, which reads no pins); `None` for `scratch`, a `container:` base or a
    /// Dockerfile.
    pub external_base: Option<(WrittenReference, Option<BasePin>)>,
    /// A Dockerfile container's external `FROM` images (every stage's) and their pins (`None`:
    /// not pinned yet); empty for a generated container and under hash_version 1 and 2.
    pub stage_bases: BTreeMap<WrittenReference, Option<BasePin>>,
    /// The Dockerfile the engine builds, when it is not the context's: a Dockerfile
    /// container's with each external `FROM` naming its pin (`context::from_lines`), once every
    /// one is pinned. The build's copy only (`build::write_context`); the user's file is never
    /// touched, and the hash covers the file as written plus the pins.
    pub build_dockerfile: Option<Arc<[u8]>>,
    pub recipe: serde_json::Value,
    pub dependencies: BTreeMap<String, String>,
    pub input_hash: String,
    pub context: ContextPlan,
    pub entries: Vec<Entry>,
    /// `digests[i]` is the SHA-256 of `entries[i]`.
    pub digests: Vec<[u8; 32]>,
}

impl Fingerprint {
    pub fn input_hash(&self) -> &str {
        &self.input_hash
    }

    /// Every pinned external image this container is built on, each once, by reference: a
    /// generated container's base, a Dockerfile container's `FROM` images (what provenance
    /// names as the build's resolved base images, and what the lock records for this build).
    pub fn base_pins(&self) -> Vec<(&WrittenReference, &BasePin)> {
        let generated = match &self.external_base {
            Some((reference, Some(pin))) => Some((reference, pin)),
            _ => None,
        };
        let stages = self
            .stage_bases
            .iter()
            .filter_map(|(r, pin)| pin.as_ref().map(|p| (r, p)));
        generated.into_iter().chain(stages).collect()
    }

    /// An external base of this container the lock does not pin yet (its hash is provisional):
    /// a generated container's `base_image`, or a Dockerfile's first unpinned `FROM` image.
    pub fn unpinned(&self) -> Option<&WrittenReference> {
        match &self.external_base {
            Some((reference, None)) => Some(reference),
            _ => self
                .stage_bases
                .iter()
                .find_map(|(r, pin)| pin.is_none().then_some(r)),
        }
    }

    fn head(&self) -> Head<'_> {
        Head {
            hash_version: self.hash_version,
            container: self.container.as_str(),
            recipe: &self.recipe,
            dependencies: &self.dependencies,
        }
    }

    /// The hash manifest: what `cookbook explain` prints.
    pub fn manifest(&self) -> HashManifest {
        HashManifest {
            hash_version: self.hash_version,
            container: self.container.to_string(),
            recipe: self.recipe.clone(),
            files: self
                .entries
                .iter()
                .zip(&self.digests)
                .map(|(e, d)| FileRecord {
                    path: e.path.clone(),
                    mode: e.kind.mode().to_owned(),
                    size: e.size,
                    sha256: hex::encode(d),
                })
                .collect(),
            dependencies: self.dependencies.clone(),
            input_hash: self.input_hash.clone(),
        }
    }

    /// The input hash of the entries and digests, streamed without building the manifest.
    ///
    /// Records are formatted in batches on one core while the previous batch is hashed on the
    /// other: SHA-256 is sequential, but the formatting (escaping, hex, digits) need not wait for
    /// it. For 100,000 files this is 13 MB of canonical JSON, and it halves the time of the one
    /// step of a warm run that cannot be spread over the cores.
    fn compute_hash(&self) -> String {
        const BATCH: usize = 4096;
        let write = |first: usize, out: &mut Vec<u8>| {
            let end = (first + BATCH).min(self.entries.len());
            let records = self.entries[first..end]
                .iter()
                .zip(&self.digests[first..end]);
            for (i, (e, d)) in records.enumerate() {
                push_record(out, first + i == 0, &e.path, e.kind, d, e.size);
            }
        };
        let head = self.head();
        let mut hasher = Sha256::new();
        let mut ready = Vec::with_capacity(BATCH * 160);
        let mut next = Vec::with_capacity(BATCH * 160);
        head.write_prefix(&mut ready)
            .expect("manifests serialize (non-finite numbers cannot occur in parsed JSON)");
        for first in (0..self.entries.len()).step_by(BATCH) {
            next.clear();
            rayon::join(|| hasher.update(&ready), || write(first, &mut next));
            std::mem::swap(&mut ready, &mut next);
        }
        head.write_suffix(&mut ready)
            .expect("manifests serialize (non-finite numbers cannot occur in parsed JSON)");
        hasher.update(&ready);
        hex::encode(hasher.finalize())
    }
}

/// Fingerprints every container of `plan`, parents first. `base` is the cookbook's directory;
/// `own` are cookbook's own files there (see [`OwnPaths`]), which no context lists; `pinning`
/// the algorithm's version and the base-image pins (from `cookbook.lock`).
pub fn fingerprint_plan(
    cookbook: &Cookbook,
    plan: &Plan,
    base: &Path,
    own: &OwnPaths,
    cache: &impl DigestCache,
    pinning: Pinning<'_>,
) -> Result<BTreeMap<Name, Fingerprint>, ContextError> {
    // On the walk's threads (see `context::on_walk_threads`), so that listing and hashing share
    // one pool instead of starting rayon's global one as well.
    context::on_walk_threads(|| {
        let mut done: BTreeMap<Name, Fingerprint> = BTreeMap::new();
        for name in plan.order() {
            let fp = fingerprint(cookbook, name, base, own, cache, &done, pinning)?;
            done.insert(name.clone(), fp);
        }
        Ok(done)
    })
}

/// Fingerprints one container whose build-time parents are already in `parents`.
pub fn fingerprint(
    cookbook: &Cookbook,
    name: &Name,
    base: &Path,
    own: &OwnPaths,
    cache: &impl DigestCache,
    parents: &BTreeMap<Name, Fingerprint>,
    pinning: Pinning<'_>,
) -> Result<Fingerprint, ContextError> {
    let container = &cookbook.containers[name];
    let external_base = match &container.kind {
        ContainerKind::Generated(g) => match &g.base {
            crate::model::BaseImage::Image(reference) => {
                Some((reference.clone(), pinning.pin(reference.as_str()).cloned()))
            }
            crate::model::BaseImage::Scratch | crate::model::BaseImage::Container(_) => None,
        },
        ContainerKind::Dockerfile(_) => None,
    };
    let pin = external_base.as_ref().and_then(|(_, p)| p.as_ref());
    let parent = container.build_parent().map(|p| {
        let hash = parents
            .get(p)
            .map(|f| f.input_hash().to_owned())
            .expect("parents are fingerprinted first (plan order)");
        (p.clone(), hash)
    });
    let generated = match &container.kind {
        ContainerKind::Generated(g) => Some(dockerfile::generate(
            cookbook,
            container,
            g,
            parent.as_ref().map(|(_, h)| h.as_str()),
            external_base
                .as_ref()
                .and_then(|(r, p)| p.as_ref().map(|p| p.from_line(r)))
                .as_ref(),
        )),
        ContainerKind::Dockerfile(_) => None,
    };
    let plan = context::plan(cookbook, name, generated);
    let entries = context::list(base, &plan, own)?;
    let digests = digest_entries(&entries, cache)?;
    for tree in &plan.trees {
        cache.cover(&tree.source.under(base));
    }
    let dockerfile_bytes = dockerfile_bytes(&plan, &entries)?;
    let dockerfile_text = String::from_utf8_lossy(&dockerfile_bytes);
    let (stage_bases, build_dockerfile) = match &container.kind {
        ContainerKind::Dockerfile(d) if pinning.pins_dockerfiles() => {
            stage_pins(d, &plan, &entries, &digests, &dockerfile_bytes, pinning)?
        }
        _ => (BTreeMap::new(), None),
    };
    let mut fp = Fingerprint {
        hash_version: pinning.version,
        container: name.clone(),
        recipe: recipe::recipe(
            cookbook,
            container,
            &plan.dockerfile,
            &dockerfile_text,
            (pinning.version >= 2).then_some(pin),
            pinning.pins_dockerfiles().then_some(&stage_bases),
        ),
        external_base,
        stage_bases,
        build_dockerfile,
        dependencies: parent
            .into_iter()
            .map(|(p, h)| (p.to_string(), h))
            .collect(),
        input_hash: String::new(),
        context: plan,
        entries,
        digests,
    };
    fp.input_hash = fp.compute_hash();
    Ok(fp)
}

/// A Dockerfile container's external `FROM` images with their pins, and the text the engine
/// builds once all are pinned (`None` while one is not, or when no line changes).
#[allow(clippy::type_complexity)]
fn stage_pins(
    d: &crate::model::DockerfileBuild,
    plan: &ContextPlan,
    entries: &[Entry],
    digests: &[[u8; 32]],
    bytes: &[u8],
    pinning: Pinning<'_>,
) -> Result<
    (
        BTreeMap<WrittenReference, Option<BasePin>>,
        Option<Arc<[u8]>>,
    ),
    ContextError,
> {
    let text = String::from_utf8_lossy(bytes);
    let lines =
        from_lines::parse(&text, &d.build_args).map_err(|source| ContextError::FromLine {
            path: d.dockerfile.as_str().into(),
            source,
        })?;
    let bases: BTreeMap<WrittenReference, Option<BasePin>> = lines
        .external()
        .into_iter()
        .map(|r| (r.clone(), pinning.pin(r.as_str()).cloned()))
        .collect();
    if bases.values().any(Option::is_none) {
        return Ok((bases, None));
    }
    // The text rewritten is the text hashed: a file changed between its digest and its read
    // would give the engine a Dockerfile the hash does not cover.
    let at = entries.iter().position(|e| e.path == plan.dockerfile);
    if at.is_some_and(|i| digests[i] != <[u8; 32]>::from(Sha256::digest(bytes))) {
        return Err(ContextError::Changed {
            path: d.dockerfile.as_str().into(),
        });
    }
    let rewritten = lines.rewrite(bytes, |r| {
        bases
            .get(r)
            .and_then(Option::as_ref)
            .map(|p| p.from_line(r))
    });
    Ok((bases, rewritten.map(Arc::from)))
}

/// The Dockerfile's bytes, from the generated bytes or the listed file.
fn dockerfile_bytes(plan: &ContextPlan, entries: &[Entry]) -> Result<Vec<u8>, ContextError> {
    let entry = entries.iter().find(|e| e.path == plan.dockerfile);
    let bytes: Vec<u8> = match entry.map(|e| &e.source) {
        Some(context::EntrySource::Generated(b)) => b.to_vec(),
        Some(context::EntrySource::Disk { .. }) => {
            let path = entry.and_then(Entry::disk_path).expect("a file on disk");
            std::fs::read(&path).map_err(|source| ContextError::Io { path, source })?
        }
        _ => {
            return Err(ContextError::Missing {
                what: "Dockerfile",
                path: plan.dockerfile.clone().into(),
            })
        }
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The JCS crate's canonical form of the whole document: what `write_canonical` replaces.
    fn reference(m: &HashManifest) -> String {
        serde_json_canonicalizer::to_string(&Hashed {
            hash_version: m.hash_version,
            container: &m.container,
            recipe: &m.recipe,
            files: &m.files,
            dependencies: &m.dependencies,
        })
        .unwrap()
    }

    fn manifest(
        files: Vec<FileRecord>,
        container: String,
        deps: Vec<(String, String)>,
    ) -> HashManifest {
        HashManifest {
            hash_version: HASH_VERSION,
            container,
            recipe: serde_json::json!({
                "kind": "dockerfile", "dockerfile_text": "FROM x\n\tRUN \"q\" \\ \u{1}\u{7f}é😀",
                "build_args": { "b": "1", "a": "2", "é": "", "\u{10000}": "x", "\u{ff}": "y" },
                "n": [1.5, -0.0, 1e21, 123456789012345678u64], "t": null
            }),
            files,
            dependencies: deps.into_iter().collect(),
            input_hash: String::new(),
        }
    }

    #[test]
    fn hand_written_canonical_form_is_the_jcs_crates() {
        let files = vec![
            FileRecord {
                path: "a \"quoted\"\\back\u{1}\u{1f}\n\r\t\u{8}\u{c}/é/😀".into(),
                mode: "100644".into(),
                size: 0,
                sha256: "00".repeat(32),
            },
            FileRecord {
                path: "big".into(),
                mode: "100755".into(),
                size: (1 << 53) + 1,
                sha256: "ab".repeat(32),
            },
            FileRecord {
                path: "exact".into(),
                mode: "120000".into(),
                size: 1 << 53,
                sha256: "cd".repeat(32),
            },
            FileRecord {
                path: "max".into(),
                mode: "100644".into(),
                size: u64::MAX,
                sha256: "ef".repeat(32),
            },
        ];
        let m = manifest(files, "c\"1".into(), vec![("p\u{2}".into(), "h".into())]);
        assert_eq!(m.canonical_json(), reference(&m));
        let empty = manifest(Vec::new(), String::new(), Vec::new());
        assert_eq!(empty.canonical_json(), reference(&empty));
    }

    proptest! {
        #[test]
        fn a_fingerprint_hashes_as_its_manifest(
            files in prop::collection::vec((any::<String>(), 0..3u8, any::<u64>(), any::<[u8; 32]>()), 0..20),
        ) {
            let kinds = [EntryKind::File, EntryKind::Executable, EntryKind::Symlink];
            let (entries, digests) = files
                .into_iter()
                .map(|(path, kind, size, digest)| {
                    let entry = Entry {
                        path,
                        kind: kinds[usize::from(kind)],
                        size,
                        source: context::EntrySource::Link(String::new()),
                    };
                    (entry, digest)
                })
                .unzip();
            let m = manifest(Vec::new(), "c\"1".into(), vec![("p".into(), "h".into())]);
            let fp = Fingerprint {
                hash_version: HASH_VERSION,
                external_base: None,
                stage_bases: BTreeMap::new(),
                build_dockerfile: None,
                container: Name::parse("c").unwrap(),
                recipe: m.recipe,
                dependencies: m.dependencies,
                input_hash: String::new(),
                context: ContextPlan {
                    dockerfile: "Dockerfile".into(),
                    generated: Vec::new(),
                    files: Vec::new(),
                    trees: Vec::new(),
                },
                entries,
                digests,
            };
            prop_assert_eq!(fp.compute_hash(), fp.manifest().compute_hash());
        }

        #[test]
        fn canonical_form_matches_the_jcs_crate(
            files in prop::collection::vec(
                (any::<String>(), prop::sample::select(vec!["100644", "100755", "120000"]), any::<u64>(), "[0-9a-f]{64}"),
                0..20,
            ),
            container in any::<String>(),
            deps in prop::collection::vec((any::<String>(), "[0-9a-f]{64}"), 0..3),
        ) {
            let files = files
                .into_iter()
                .map(|(path, mode, size, sha256)| FileRecord { path, mode: mode.to_owned(), size, sha256 })
                .collect();
            let m = manifest(files, container, deps);
            prop_assert_eq!(m.canonical_json(), reference(&m));
            let digest = Sha256::digest(reference(&m).as_bytes());
            prop_assert_eq!(m.compute_hash(), hex::encode(digest));
        }
    }
}
