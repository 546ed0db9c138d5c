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
//! |                                                            | host paths (source dirs), mtimes, uid/gid,  |
//! |                                                            | umask, group/other bits, walk order, locale |
//!
//! Version history (bump `HASH_VERSION` on any change to what is hashed or how):
//! - 1: first version.

mod diff;
mod digest;
mod recipe;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use diff::{diff, Change};
pub use digest::digest_entries;

use crate::context::{self, dockerfile, ContextError, ContextPlan, Entry};
use crate::graph::Plan;
use crate::model::{ContainerKind, Cookbook, Name};
use crate::state::stat_cache::StatCache;

/// The version of the hash algorithm; part of every manifest.
pub const HASH_VERSION: u32 = 1;

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

/// The manifest minus `input_hash`: exactly what is canonicalized and hashed.
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

impl HashManifest {
    /// The input hash this manifest's contents give (whatever its `input_hash` field says).
    pub fn compute_hash(&self) -> String {
        let hashed = Hashed {
            hash_version: self.hash_version,
            container: &self.container,
            recipe: &self.recipe,
            files: &self.files,
            dependencies: &self.dependencies,
        };
        let mut w = HashWriter(Sha256::new());
        serde_json_canonicalizer::to_writer(&hashed, &mut w).expect("manifests serialize");
        hex::encode(w.0.finalize())
    }

    /// The canonical JSON that is hashed (for `docs/REPRODUCIBILITY.md` and tests).
    pub fn canonical_json(&self) -> String {
        let hashed = Hashed {
            hash_version: self.hash_version,
            container: &self.container,
            recipe: &self.recipe,
            files: &self.files,
            dependencies: &self.dependencies,
        };
        serde_json_canonicalizer::to_string(&hashed).expect("manifests serialize")
    }

    /// Pretty JSON with a trailing newline, as `explain` prints it.
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifests serialize");
        s.push('\n');
        s
    }
}

/// A container's fingerprint: its manifest, and the context it was computed from (what apply
/// streams to the engine).
#[derive(Debug, Clone)]
pub struct Fingerprint {
    pub manifest: HashManifest,
    pub context: ContextPlan,
    pub entries: Vec<Entry>,
    /// `digests[i]` is the hex SHA-256 of `entries[i]`.
    pub digests: Vec<String>,
}

impl Fingerprint {
    pub fn input_hash(&self) -> &str {
        &self.manifest.input_hash
    }
}

/// Fingerprints every container of `plan`, parents first. `base` is the cookbook's directory.
pub fn fingerprint_plan(
    cookbook: &Cookbook,
    plan: &Plan,
    base: &Path,
    cache: &StatCache,
) -> Result<BTreeMap<Name, Fingerprint>, ContextError> {
    let mut done: BTreeMap<Name, Fingerprint> = BTreeMap::new();
    for name in plan.order() {
        let fp = fingerprint(cookbook, name, base, cache, &done)?;
        done.insert(name.clone(), fp);
    }
    Ok(done)
}

/// Fingerprints one container whose build-time parents are already in `parents`.
pub fn fingerprint(
    cookbook: &Cookbook,
    name: &Name,
    base: &Path,
    cache: &StatCache,
    parents: &BTreeMap<Name, Fingerprint>,
) -> Result<Fingerprint, ContextError> {
    let container = &cookbook.containers[name];
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
        )),
        ContainerKind::Dockerfile(_) => None,
    };
    let plan = context::plan(cookbook, name, generated);
    let entries = context::list(base, &plan)?;
    let digests = digest_entries(&entries, cache)?;
    let dockerfile_text = dockerfile_text(&plan, &entries)?;
    let files = entries
        .iter()
        .zip(&digests)
        .map(|(e, d)| FileRecord {
            path: e.path.clone(),
            mode: e.kind.mode().to_owned(),
            size: e.size,
            sha256: d.clone(),
        })
        .collect();
    let mut manifest = HashManifest {
        hash_version: HASH_VERSION,
        container: name.to_string(),
        recipe: recipe::recipe(cookbook, container, &plan.dockerfile, &dockerfile_text),
        files,
        dependencies: parent
            .into_iter()
            .map(|(p, h)| (p.to_string(), h))
            .collect(),
        input_hash: String::new(),
    };
    manifest.input_hash = manifest.compute_hash();
    Ok(Fingerprint {
        manifest,
        context: plan,
        entries,
        digests,
    })
}

/// The Dockerfile's text, from the generated bytes or the listed file.
fn dockerfile_text(plan: &ContextPlan, entries: &[Entry]) -> Result<String, ContextError> {
    let entry = entries.iter().find(|e| e.path == plan.dockerfile);
    let bytes: Vec<u8> = match entry.map(|e| &e.source) {
        Some(context::EntrySource::Generated(b)) => b.to_vec(),
        Some(context::EntrySource::Disk { path, .. }) => {
            std::fs::read(path).map_err(|source| ContextError::Io {
                path: path.clone(),
                source,
            })?
        }
        _ => {
            return Err(ContextError::Missing {
                what: "Dockerfile",
                path: plan.dockerfile.clone().into(),
            })
        }
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
