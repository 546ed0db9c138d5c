//! `verify`: does what `cookbook.lock` (and the registry) holds match what these sources produce —
//! and if not, exactly why not?
//!
//! Pipeline position: after the fact. Cookbook + fingerprints (recomputed from the working tree,
//! or from a git revision checked out by [`revision`]) are compared with a [`Lock`]
//! ([`compare`], pure given a way to look up saved explain documents); then, optionally, each
//! locked image is checked in the registry ([`registry::check`]). Nothing is printed: the result
//! is a typed [`Report`] for the CLI.
//!
//! Why a hash differs is answered as cargo answers "why is this crate dirty": `apply` keeps the
//! explain document of every container it builds (`<state dir>/explain/<container>/<hash>.json`),
//! and the differences between that document and the fresh one ([`crate::hash::diff`]) are
//! turned into reasons named in the cookbook's terms (source paths, build args, env, parents).
//! A saved document is only believed when its own contents hash to its name, so a corrupt or
//! stale one can never produce a wrong reason. Without one, the reason says so plainly.
//!
//! Invariants: a container is `ok` exactly when it has no reason; reasons are ordered most
//! specific first (lock-level, parents, source files, spec fields, the Dockerfile the spec
//! generates, then registry findings), so the first reason is the one a person should act on.

pub mod attestations;
pub mod rebuild;
pub mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::hash::{self, Change, Fingerprint, HashManifest};
use crate::model::{Cookbook, Name};
use crate::state::lock::{Lock, LockError};

/// Why a container does not match. Each variant names the thing a person would go and look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The cookbook has the container; the lock does not.
    NotInLock,
    /// The lock has an entry for a container the cookbook no longer has.
    NotInCookbook,
    /// The lock was written by a different version of the hash algorithm.
    HashVersion {
        lock: u32,
        cookbook: u32,
    },
    /// The lock entry contradicts itself: its image is not tagged with its input hash.
    LockInconsistent {
        input_hash: String,
        image: String,
    },
    /// The lock entry names an image outside the repository the cookbook gives its container:
    /// `apply` never writes one (a lock edited to run someone else's image; `deploy` refuses it).
    ForeignImage {
        image: String,
        expected: String,
    },
    /// The hashes differ and there is no saved explain document of the locked hash to say why.
    NoRecord {
        locked: String,
        computed: String,
    },
    /// A build-time parent's input hash changed (`change`: changed, added, removed).
    Parent {
        name: String,
        change: &'static str,
    },
    /// A file of the build context. `path` is the cookbook-relative source path where one is
    /// known, else the path in the context; `what` is added, removed, or what changed about it.
    File {
        path: String,
        context_path: String,
        what: String,
    },
    /// The Dockerfile: `path` is the cookbook-relative file of a Dockerfile-based container,
    /// `None` for a generated one (whose Dockerfile follows from the spec).
    Dockerfile {
        path: Option<String>,
    },
    BuildArg {
        name: String,
        change: &'static str,
    },
    /// An environment variable of the container, or of one of its applications.
    Env {
        name: String,
        application: Option<String>,
        change: &'static str,
    },
    /// Any other field of the resolved spec, named by JSON pointer into the explain document's
    /// `recipe`.
    Recipe {
        pointer: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    /// The locked image was never pushed (a `--no-push` apply: a local name, or an entry without
    /// a manifest digest): nothing to check in a registry, and no sign of tampering either.
    NotPublished {
        image: String,
    },
    /// The registry has no manifest under the content tag (or not the locked digest).
    DigestMissing {
        reference: String,
        digest: String,
    },
    /// The registry's manifest under the content tag is not the locked one.
    RegistryDigestDiffers {
        reference: String,
        registry: String,
        lock: String,
    },
    /// The image's `dev.cookbook.input-hash` label is not the locked input hash.
    LabelDiffers {
        reference: String,
        registry: Option<String>,
        lock: String,
    },
    /// `verify --rebuild`: rebuilt from the same sources and normalized, the image is not the
    /// locked one (`locked`: its manifest digest, or image id for a `--no-push` entry).
    RebuildDiffers {
        locked: String,
        rebuilt: String,
        difference: rebuild::RebuildDifference,
    },
    /// `verify --rebuild`: the rebuild itself failed (a build step, a missing parent).
    RebuildFailed {
        message: String,
    },
    /// `verify --attestations`: no attestation of this kind is attached to the image.
    AttestationMissing {
        attestation: attestations::Kind,
    },
    /// Only unsigned envelopes of this kind are attached.
    AttestationUnsigned {
        attestation: attestations::Kind,
    },
    /// Every attestation of this kind is signed by other keys than the one trusted.
    AttestationWrongKey {
        attestation: attestations::Kind,
        signed_by: Vec<String>,
        key: String,
    },
    /// An envelope names the trusted key, but its signature does not verify: it was edited.
    AttestationTampered {
        attestation: attestations::Kind,
        referrer: String,
        key: String,
    },
    /// The signed statement is about another image.
    AttestationSubject {
        attestation: attestations::Kind,
        subjects: Vec<String>,
        lock: String,
    },
    /// The registry served something that is not a sound attestation (its digest, subject or
    /// form), or the signed statement cannot be read.
    AttestationUnreadable {
        attestation: attestations::Kind,
        referrer: String,
        message: String,
    },
    /// The provenance names another input hash than the sources give now: they moved since
    /// the build.
    ProvenanceInput {
        statement: String,
        computed: String,
    },
    /// The provenance is about another container (of the same image: two containers built
    /// alike).
    ProvenanceContainer {
        statement: String,
        container: String,
    },
    /// The provenance names a base image the lock does not pin (or pins to another digest).
    ProvenanceBase {
        reference: String,
        statement: String,
        lock: Option<String>,
    },
    /// The provenance names a commit the checkout does not contain (`checkout`: false when the
    /// cookbook is in no git checkout at all).
    ProvenanceCommit {
        statement: String,
        checkout: bool,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotInLock => write!(f, "not in the lock"),
            Reason::NotInCookbook => {
                write!(f, "lock entry for a container the cookbook no longer has")
            }
            Reason::HashVersion { lock, cookbook } => write!(
                f,
                "the lock was made with hash version {lock}; this cookbook hashes with version {cookbook}"
            ),
            Reason::LockInconsistent { input_hash, image } => write!(
                f,
                "lock entry is inconsistent: input_hash {input_hash} but image {image}"
            ),
            Reason::ForeignImage { image, expected } => write!(
                f,
                "lock entry names image {image}, outside the container's repository {expected}"
            ),
            Reason::NoRecord { .. } => write!(
                f,
                "input hash differs from the lock (no record of what was built; run `cookbook explain`)"
            ),
            Reason::Parent { name, change } => write!(f, "parent {name} {change}"),
            Reason::File { path, what, .. } => match what.as_str() {
                "added" | "removed" | "changed" => write!(f, "file {path} {what}"),
                _ => write!(f, "file {path} changed ({what})"),
            },
            Reason::Dockerfile { path: Some(path) } => write!(f, "Dockerfile changed ({path})"),
            Reason::Dockerfile { path: None } => write!(f, "Dockerfile changed (generated)"),
            Reason::BuildArg { name, change } => write!(f, "build arg {name} {change}"),
            Reason::Env {
                name,
                application: None,
                change,
            } => write!(f, "env {name} {change}"),
            Reason::Env {
                name,
                application: Some(app),
                change,
            } => write!(f, "env {name} {change} (application {app})"),
            Reason::Recipe { pointer, from, to } => write!(
                f,
                "{}",
                Change::Recipe {
                    pointer: pointer.clone(),
                    from: from.clone(),
                    to: to.clone()
                }
            ),
            Reason::NotPublished { image } => {
                write!(f, "not published: {image} is a local image (apply --no-push)")
            }
            Reason::DigestMissing { reference, digest } => write!(
                f,
                "digest missing from registry: no {digest} under {reference}"
            ),
            Reason::RegistryDigestDiffers {
                reference,
                registry,
                lock,
            } => write!(
                f,
                "registry digest differs: {reference} is {registry}, the lock says {lock}"
            ),
            Reason::LabelDiffers {
                reference,
                registry,
                lock,
            } => write!(
                f,
                "label differs: {} of {reference} is {}, the lock says {lock}",
                crate::image::LABEL_INPUT_HASH,
                registry.as_deref().unwrap_or("(absent)")
            ),
            Reason::RebuildDiffers { difference, .. } => {
                write!(f, "rebuild differs from the lock {difference}")
            }
            Reason::RebuildFailed { message } => write!(f, "rebuild failed: {message}"),
            Reason::AttestationMissing { .. }
            | Reason::AttestationUnsigned { .. }
            | Reason::AttestationWrongKey { .. }
            | Reason::AttestationTampered { .. }
            | Reason::AttestationSubject { .. }
            | Reason::AttestationUnreadable { .. }
            | Reason::ProvenanceInput { .. }
            | Reason::ProvenanceContainer { .. }
            | Reason::ProvenanceBase { .. }
            | Reason::ProvenanceCommit { .. } => attestations::describe(self, f),
        }
    }
}

/// Which of verify's checks found a reason: what a test report groups reasons by (`verify
/// --junit`: a test case per container and check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The sources hash to what the lock records (always checked).
    InputHash,
    /// `--registry`: the locked image is in the registry, as locked.
    Registry,
    /// `--rebuild`: rebuilt, the image is the locked one.
    Rebuild,
    /// `--attestations`: signed provenance and SBOM that hold for these sources.
    Attestations,
}

impl Check {
    pub const ALL: [Check; 4] = [
        Check::InputHash,
        Check::Registry,
        Check::Rebuild,
        Check::Attestations,
    ];

    /// The check's name in a report: `input hash`, `registry`, `rebuild`, `attestations`.
    pub fn name(self) -> &'static str {
        match self {
            Check::InputHash => "input hash",
            Check::Registry => "registry",
            Check::Rebuild => "rebuild",
            Check::Attestations => "attestations",
        }
    }
}

impl Reason {
    /// The check that found it.
    pub fn check(&self) -> Check {
        match self {
            Reason::NotInLock
            | Reason::NotInCookbook
            | Reason::HashVersion { .. }
            | Reason::LockInconsistent { .. }
            | Reason::ForeignImage { .. }
            | Reason::NoRecord { .. }
            | Reason::Parent { .. }
            | Reason::File { .. }
            | Reason::Dockerfile { .. }
            | Reason::BuildArg { .. }
            | Reason::Env { .. }
            | Reason::Recipe { .. } => Check::InputHash,
            Reason::NotPublished { .. }
            | Reason::DigestMissing { .. }
            | Reason::RegistryDigestDiffers { .. }
            | Reason::LabelDiffers { .. } => Check::Registry,
            Reason::RebuildDiffers { .. } | Reason::RebuildFailed { .. } => Check::Rebuild,
            Reason::AttestationMissing { .. }
            | Reason::AttestationUnsigned { .. }
            | Reason::AttestationWrongKey { .. }
            | Reason::AttestationTampered { .. }
            | Reason::AttestationSubject { .. }
            | Reason::AttestationUnreadable { .. }
            | Reason::ProvenanceInput { .. }
            | Reason::ProvenanceContainer { .. }
            | Reason::ProvenanceBase { .. }
            | Reason::ProvenanceCommit { .. } => Check::Attestations,
        }
    }

    /// Most specific first: what the lock itself says, then parents (a parent's change explains
    /// its children's), source files, spec fields, a generated Dockerfile (which only follows
    /// from the rest), and the registry last.
    fn rank(&self) -> u8 {
        match self {
            Reason::NotInLock
            | Reason::NotInCookbook
            | Reason::HashVersion { .. }
            | Reason::LockInconsistent { .. }
            | Reason::ForeignImage { .. } => 0,
            Reason::Parent { .. } => 1,
            Reason::File { .. } | Reason::Dockerfile { path: Some(_) } => 2,
            Reason::BuildArg { .. }
            | Reason::Env { .. }
            | Reason::Recipe { .. }
            | Reason::NoRecord { .. } => 3,
            Reason::Dockerfile { path: None } => 4,
            Reason::NotPublished { .. }
            | Reason::DigestMissing { .. }
            | Reason::RegistryDigestDiffers { .. }
            | Reason::LabelDiffers { .. }
            | Reason::RebuildDiffers { .. }
            | Reason::RebuildFailed { .. } => 5,
            Reason::AttestationMissing { .. }
            | Reason::AttestationUnsigned { .. }
            | Reason::AttestationWrongKey { .. }
            | Reason::AttestationTampered { .. }
            | Reason::AttestationSubject { .. }
            | Reason::AttestationUnreadable { .. }
            | Reason::ProvenanceInput { .. }
            | Reason::ProvenanceContainer { .. }
            | Reason::ProvenanceBase { .. }
            | Reason::ProvenanceCommit { .. } => 6,
        }
    }
}

/// One container's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Every reason, most specific first; empty means ok.
    pub reasons: Vec<Reason>,
    /// The input hash computed from the sources (`None`: the cookbook has no such container).
    pub input_hash: Option<String>,
    /// The lock's entry (`None`: the lock has no entry).
    pub locked_input_hash: Option<String>,
    pub image: Option<String>,
    /// The lock's manifest digest (`None`: not published).
    pub digest: Option<String>,
    /// The lock's image id.
    pub image_id: Option<String>,
    /// The digest the registry has under the content tag, when it was asked.
    pub registry_digest: Option<String>,
    /// `verify --rebuild`: the normalized manifest digest of the rebuild.
    pub rebuilt_digest: Option<String>,
}

impl Verdict {
    /// The lock entry names an image outside its container's repository: nothing of it is
    /// asked for anywhere (the lock chooses no host).
    pub fn foreign(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| matches!(r, Reason::ForeignImage { .. }))
    }

    pub fn ok(&self) -> bool {
        self.reasons.is_empty()
    }

    fn push(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
        // Stable: equal ranks keep the order they were found in (hash::diff's order).
        self.reasons.sort_by_key(Reason::rank);
    }
}

/// The result of a verification: one verdict per container of the cookbook or the lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub containers: BTreeMap<String, Verdict>,
    pub registry_checked: bool,
    /// Whether `--rebuild` rebuilt the containers and compared them.
    pub rebuild_checked: bool,
    /// Whether `--attestations` checked each image's provenance and SBOM.
    pub attestations_checked: bool,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.containers.values().all(Verdict::ok)
    }

    pub fn mismatches(&self) -> usize {
        self.containers.values().filter(|v| !v.ok()).count()
    }
}

/// A failure to verify at all (as opposed to a mismatch, which is a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("no lock file at {}: run `cookbook apply` first, it builds the images and writes the lock", path.display())]
    NoLock { path: PathBuf },
    #[error("{}: the lock is for project `{lock}`, the cookbook is project `{cookbook}`", path.display())]
    ProjectMismatch {
        path: PathBuf,
        lock: String,
        cookbook: String,
    },
    /// The revision to verify could not be checked out.
    #[error(transparent)]
    Revision(#[from] crate::git::RevisionError),
}

/// The explain document `apply` saved for `container` built at `input_hash`, if there is one and
/// it is what it claims to be (its contents hash to `input_hash`).
pub fn saved_explain(state_dir: &Path, container: &str, input_hash: &str) -> Option<HashManifest> {
    // Only a hex hash may become part of a path: a lock is input, and `../` is not a hash.
    if input_hash.is_empty() || !input_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let path = explain_path(state_dir, container, input_hash);
    let bytes = std::fs::read(path).ok()?;
    let manifest: HashManifest = serde_json::from_slice(&bytes).ok()?;
    (manifest.input_hash == input_hash
        && manifest.compute_hash() == input_hash
        && manifest.container == container)
        .then_some(manifest)
}

/// Where `apply` keeps the explain document of a container built at an input hash.
pub fn explain_path(state_dir: &Path, container: &str, input_hash: &str) -> PathBuf {
    state_dir
        .join("explain")
        .join(container)
        .join(format!("{input_hash}.json"))
}

/// Checks that the lock belongs to this cookbook at all (a wrong file is invalid input, not a
/// mismatch).
pub fn check_project(cookbook: &Cookbook, lock: &Lock, path: &Path) -> Result<(), VerifyError> {
    if lock.project != cookbook.project.name {
        return Err(VerifyError::ProjectMismatch {
            path: path.to_path_buf(),
            lock: lock.project.to_string(),
            cookbook: cookbook.project.name.to_string(),
        });
    }
    Ok(())
}

/// Compares every container's freshly computed input hash with the lock, and each entry's image
/// with the repository `cookbook` gives its container. `saved` looks up the explain document of
/// a container built at a hash (see [`saved_explain`]).
pub fn compare(
    cookbook: &Cookbook,
    fingerprints: &BTreeMap<Name, Fingerprint>,
    lock: &Lock,
    saved: &dyn Fn(&str, &str) -> Option<HashManifest>,
) -> Report {
    let mut report = Report::default();
    let names: BTreeSet<&str> = fingerprints
        .keys()
        .map(Name::as_str)
        .chain(lock.containers.keys().map(Name::as_str))
        .collect();
    for name in names {
        let mut v = Verdict::default();
        let fp = fingerprints.get(name);
        let entry = lock.containers.get(name);
        v.input_hash = fp.map(|f| f.input_hash().to_owned());
        if let Some(e) = entry {
            v.locked_input_hash = Some(e.input_hash.to_string());
            v.image = Some(e.image.to_string());
            v.digest = e.digest.as_ref().map(ToString::to_string);
            v.image_id = e.image_id.as_ref().map(ToString::to_string);
        }
        match (fp, entry) {
            (None, Some(_)) => v.push(Reason::NotInCookbook),
            (Some(_), None) => v.push(Reason::NotInLock),
            (None, None) => {}
            (Some(fp), Some(entry)) => {
                // Computed under the lock's own version when this build knows it.
                if lock.hash_version != fp.hash_version {
                    v.push(Reason::HashVersion {
                        lock: lock.hash_version,
                        cookbook: fp.hash_version,
                    });
                }
                // The fingerprint's key: the cookbook's name of the container.
                if let Some((container, _)) = fingerprints.get_key_value(name) {
                    if !cookbook.owns(container, entry.image.reference()) {
                        v.push(Reason::ForeignImage {
                            image: entry.image.to_string(),
                            expected: cookbook.repository(container),
                        });
                    }
                }
                if entry.image.reference().tag() != Some(entry.input_hash.as_str()) {
                    v.push(Reason::LockInconsistent {
                        input_hash: entry.input_hash.to_string(),
                        image: entry.image.to_string(),
                    });
                }
                if fp.input_hash() != entry.input_hash.as_str() {
                    match saved(name, entry.input_hash.as_str()) {
                        Some(old) => {
                            let changes = hash::diff(&old, &fp.manifest());
                            for r in reasons(fp, changes) {
                                v.push(r);
                            }
                        }
                        None => v.push(Reason::NoRecord {
                            locked: entry.input_hash.to_string(),
                            computed: fp.input_hash().to_owned(),
                        }),
                    }
                    // Two documents hashing differently always differ somewhere; this only
                    // guards the invariant "a differing hash is never ok".
                    if v.reasons.is_empty() {
                        v.push(Reason::NoRecord {
                            locked: entry.input_hash.to_string(),
                            computed: fp.input_hash().to_owned(),
                        });
                    }
                }
            }
        }
        report.containers.insert(name.to_owned(), v);
    }
    report
}

/// Maps a context path back to the cookbook-relative path it came from, where it has one.
fn source_path(fp: &Fingerprint, context_path: &str) -> Option<String> {
    if let Some((_, rel)) = fp.context.files.iter().find(|(p, _)| p == context_path) {
        return Some(rel.as_str().to_owned());
    }
    if fp.context.generated.iter().any(|(p, _)| p == context_path) {
        return None;
    }
    fp.context.trees.iter().find_map(|tree| {
        let rest = if tree.prefix.is_empty() {
            Some(context_path)
        } else {
            context_path
                .strip_prefix(tree.prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
        }?;
        Some(if tree.source.is_root() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", tree.source.as_str())
        })
    })
}

fn change_word(from: &Option<Value>, to: &Option<Value>) -> &'static str {
    match (from, to) {
        (None, _) | (Some(Value::Null), _) => "added",
        (_, None) | (_, Some(Value::Null)) => "removed",
        _ => "changed",
    }
}

/// The differences between two manifests, in the cookbook's terms.
fn reasons(fp: &Fingerprint, changes: Vec<Change>) -> Vec<Reason> {
    let is_generated = !fp.context.generated.is_empty();
    let dockerfile_source = source_path(fp, &fp.context.dockerfile);
    let dockerfile_reason = || Reason::Dockerfile {
        path: if is_generated {
            None
        } else {
            dockerfile_source.clone()
        },
    };
    let app_name = |index: &str| -> Option<String> {
        fp.recipe["applications"][index.parse::<usize>().ok()?]["name"]
            .as_str()
            .map(str::to_owned)
    };
    changes
        .into_iter()
        .map(|change| match change {
            Change::HashVersion { from, to } => Reason::HashVersion {
                lock: from,
                cookbook: to,
            },
            Change::Dependency { name, from, to } => Reason::Parent {
                name,
                change: match (from, to) {
                    (None, _) => "added",
                    (_, None) => "removed",
                    _ => "changed",
                },
            },
            Change::FileAdded { path }
            | Change::FileRemoved { path }
            | Change::FileChanged { path, .. }
                if path == fp.context.dockerfile =>
            {
                dockerfile_reason()
            }
            Change::FileAdded { path } => file_reason(fp, path, "added".to_owned()),
            Change::FileRemoved { path } => file_reason(fp, path, "removed".to_owned()),
            Change::FileChanged { path, what } => {
                let what = if what == "content" { "changed" } else { what };
                file_reason(fp, path, what.to_owned())
            }
            Change::Recipe { pointer, from, to } => {
                let parts: Vec<&str> = pointer.split('/').skip(1).collect();
                match parts.as_slice() {
                    ["dockerfile_text"] => dockerfile_reason(),
                    ["build_args", name] => Reason::BuildArg {
                        name: unescape(name),
                        change: change_word(&from, &to),
                    },
                    ["env", name] => Reason::Env {
                        name: unescape(name),
                        application: None,
                        change: change_word(&from, &to),
                    },
                    ["applications", index, "env", name] => Reason::Env {
                        name: unescape(name),
                        application: app_name(index),
                        change: change_word(&from, &to),
                    },
                    _ => Reason::Recipe { pointer, from, to },
                }
            }
            // The fresh manifest is looked up by this container's name: it cannot differ.
            Change::Container { from, to } => Reason::Recipe {
                pointer: "/container".to_owned(),
                from: Some(Value::String(from)),
                to: Some(Value::String(to)),
            },
        })
        .collect()
}

fn file_reason(fp: &Fingerprint, context_path: String, what: String) -> Reason {
    Reason::File {
        path: source_path(fp, &context_path).unwrap_or_else(|| context_path.clone()),
        context_path,
        what,
    }
}

/// A JSON pointer token back to its text (RFC 6901: `~1` is `/`, `~0` is `~`).
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_kept_most_specific_first_and_once() {
        let mut v = Verdict::default();
        v.push(Reason::Dockerfile { path: None });
        v.push(Reason::LabelDiffers {
            reference: "r/a:h".into(),
            registry: None,
            lock: "h".into(),
        });
        v.push(Reason::Env {
            name: "X".into(),
            application: None,
            change: "changed",
        });
        v.push(Reason::Parent {
            name: "api".into(),
            change: "changed",
        });
        v.push(Reason::Dockerfile { path: None });
        let shown: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "parent api changed",
                "env X changed",
                "Dockerfile changed (generated)",
                "label differs: dev.cookbook.input-hash of r/a:h is (absent), the lock says h",
            ]
        );
        assert!(!v.ok());
        assert!(Verdict::default().ok());
    }

    #[test]
    fn reasons_read_as_documented() {
        let cases = [
            (
                Reason::File {
                    path: "services/api/main.py".into(),
                    context_path: "api/main.py".into(),
                    what: "changed".into(),
                },
                "file services/api/main.py changed",
            ),
            (
                Reason::File {
                    path: "services/api/run.sh".into(),
                    context_path: "api/run.sh".into(),
                    what: "executable bit".into(),
                },
                "file services/api/run.sh changed (executable bit)",
            ),
            (
                Reason::BuildArg {
                    name: "X".into(),
                    change: "added",
                },
                "build arg X added",
            ),
            (Reason::NotInLock, "not in the lock"),
            (
                Reason::NotInCookbook,
                "lock entry for a container the cookbook no longer has",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }

    #[test]
    fn pointer_tokens_are_unescaped_and_values_name_the_change() {
        assert_eq!(unescape("a~1b~0c"), "a/b~c");
        assert_eq!(change_word(&None, &Some(Value::from("x"))), "added");
        assert_eq!(change_word(&Some(Value::from("x")), &None), "removed");
        assert_eq!(
            change_word(&Some(Value::from("x")), &Some(Value::from("y"))),
            "changed"
        );
    }

    #[test]
    fn a_saved_explain_document_is_believed_only_when_it_hashes_to_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = HashManifest {
            hash_version: hash::HASH_VERSION,
            container: "api".into(),
            recipe: serde_json::json!({ "kind": "generated" }),
            files: Vec::new(),
            dependencies: BTreeMap::new(),
            input_hash: String::new(),
        };
        m.input_hash = m.compute_hash();
        let path = explain_path(dir.path(), "api", &m.input_hash);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, m.to_pretty_json()).unwrap();
        assert_eq!(
            saved_explain(dir.path(), "api", &m.input_hash),
            Some(m.clone())
        );
        // Another container's name, a path-like "hash", a tampered document: not believed.
        assert_eq!(saved_explain(dir.path(), "web", &m.input_hash), None);
        assert_eq!(saved_explain(dir.path(), "api", "../../x"), None);
        let mut forged = m.clone();
        forged.recipe = serde_json::json!({ "kind": "dockerfile" });
        std::fs::write(&path, forged.to_pretty_json()).unwrap();
        assert_eq!(saved_explain(dir.path(), "api", &m.input_hash), None);
    }
}
