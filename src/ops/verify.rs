//! `cookbook verify`: the release engineer's check, as one flow.
//!
//! The subject (the working copy's cookbook, or a revision's, checked out into a temporary
//! directory and named as the working copy is), its fingerprints under the lock's own hash
//! version and pins, compared with the lock ([`crate::verify::compare`]); then, when asked, the
//! registry ([`crate::verify::registry`]) and rebuilds ([`crate::verify::rebuild`]) on the one
//! runtime. What comes back is a [`VerifyReport`], whose serialization is `verify --format
//! json`'s document; [`VerifyReport::into_result`] is the command's result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{runtime, CookbookFile, Workspace};
use crate::error::Error;
use crate::git::{revision, RevisionError};
use crate::hash::{self, Fingerprint};
use crate::model::Name;
use crate::registry::RegistryClient;
use crate::state::lock::Lock;
use crate::state::stat_cache::StatCache;
use crate::verify::rebuild::{RebuildError, Subject};
use crate::verify::{self, Reason, Verdict, VerifyError};

/// Which check found a reason, for reports that group by it (`verify --junit`).
pub use crate::verify::Check;

/// What to verify, and how far.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The lock to check against (none: beside the cookbook; with `rev`, the revision's own).
    pub lock: Option<PathBuf>,
    /// Recompute from this git revision instead of the working tree.
    pub rev: Option<String>,
    /// Also check each locked image in the registry.
    pub registry: bool,
    /// Only whether the lock is up to date with the sources (`--locked`): a mismatch is "stale".
    pub locked: bool,
    /// Also rebuild and compare layer by layer.
    pub rebuild: bool,
    /// The containers to rebuild (none: all).
    pub containers: Vec<String>,
    /// Also check each published image's attestations (`--attestations --key PUB`): the
    /// public key they must be signed with.
    pub attestations: Option<PathBuf>,
    /// The engine `--rebuild` builds on (`--context`; default: the environment's).
    pub engine: crate::engine::Selector,
}

/// The verdict of the whole check, as `verify --format json`'s `result` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    Ok,
    Mismatch,
    /// `--locked` and a mismatch: the lock is not up to date with the sources.
    Stale,
}

/// One container's status in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Mismatch,
}

/// What `verify` found: `verify --format json`'s document.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub result: VerifyResult,
    /// The hash version the sources were hashed with (the lock's).
    pub hash_version: u32,
    /// The lock checked against, as its path reads.
    pub lock: String,
    /// The commit verified (`--rev`); none for the working copy.
    pub revision: Option<String>,
    pub registry_checked: bool,
    pub rebuild_checked: bool,
    /// `--attestations`: written only then, so documents without it stay as they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attestations_checked: bool,
    #[serde(serialize_with = "verdicts")]
    pub containers: BTreeMap<String, Verdict>,
    /// Whether this was `--locked` (a mismatch is "stale").
    #[serde(skip)]
    pub locked: bool,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.containers.values().all(Verdict::ok)
    }

    pub fn mismatches(&self) -> usize {
        self.containers.values().filter(|v| !v.ok()).count()
    }

    /// The command's result: every container matches, or 1 naming how many do not.
    pub fn into_result(self) -> Result<(), Error> {
        if self.ok() {
            return Ok(());
        }
        let (bad, total) = (self.mismatches(), self.containers.len());
        Err(Error::Failed(if self.locked {
            format!(
                "{} is stale for {bad} of {total} container(s): run `cookbook apply` to update it",
                self.lock
            )
        } else {
            format!("{bad} of {total} container(s) do not match {}", self.lock)
        }))
    }
}

/// A verdict in the document: its status, and each reason with its sentence (`message`).
#[derive(Serialize)]
struct VerdictDocument<'a> {
    status: Status,
    reasons: Vec<ReasonDocument<'a>>,
    input_hash: &'a Option<String>,
    locked_input_hash: &'a Option<String>,
    image: &'a Option<String>,
    digest: &'a Option<String>,
    image_id: &'a Option<String>,
    registry_digest: &'a Option<String>,
    rebuilt_digest: &'a Option<String>,
}

#[derive(Serialize)]
struct ReasonDocument<'a> {
    #[serde(flatten)]
    reason: &'a Reason,
    message: String,
}

fn verdicts<S: Serializer>(
    containers: &BTreeMap<String, Verdict>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(containers.iter().map(|(name, v)| {
        let document = VerdictDocument {
            status: if v.ok() { Status::Ok } else { Status::Mismatch },
            reasons: v
                .reasons
                .iter()
                .map(|reason| ReasonDocument {
                    reason,
                    message: reason.to_string(),
                })
                .collect(),
            input_hash: &v.input_hash,
            locked_input_hash: &v.locked_input_hash,
            image: &v.image,
            digest: &v.digest,
            image_id: &v.image_id,
            registry_digest: &v.registry_digest,
            rebuilt_digest: &v.rebuilt_digest,
        };
        (name, document)
    }))
}

/// `cookbook verify` of the cookbook `file`.
pub fn verify(file: &CookbookFile, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let checkout = match &opts.rev {
        Some(rev) => Some(revision::checkout(&file.path, rev).map_err(VerifyError::from)?),
        None => None,
    };
    let (ws, lock_path, lock) = read_subject(file, opts, checkout.as_ref())?;
    // The lock's own hash version with its pins (a version this build does not compute is
    // reported as a mismatch of versions).
    let pinning = hash::Pinning::of_lock(lock.hash_version, &lock.bases);
    let prints = match &checkout {
        Some(_) => fingerprint_checkout(&ws, pinning)?,
        None => ws.fingerprints_pinned(&ws.plan, pinning)?,
    };
    verify::check_project(&ws.cookbook, &lock, &lock_path)?;

    // Explain documents are content-addressed, so the working tree's state directory serves a
    // revision's verification as well.
    let state_dir = crate::state::dir_for(&file.path);
    let mut report = verify::compare(&ws.cookbook, &prints, &lock, &|name, hash| {
        verify::saved_explain(&state_dir, name, hash)
    });
    if opts.registry {
        runtime()?.block_on(async {
            let client = RegistryClient::new()?;
            verify::registry::check(&mut report, &lock, &client).await
        })?;
    }
    if let Some(key) = &opts.attestations {
        let key = crate::attest::key::read_public_key(key)?;
        // The working copy's repository (a `--rev` checkout is a temporary tree of it), from the
        // revision verified: its commit, or HEAD.
        let dir = file.base_dir().to_path_buf();
        let tip = checkout.as_ref().map(|c| c.commit.clone());
        let contains =
            move |commit: &str| crate::git::contains_commit_from(&dir, tip.as_deref(), commit);
        runtime()?.block_on(async {
            let client = RegistryClient::new()?;
            verify::attestations::check(&mut report, &lock, &client, &key, &contains).await
        })?;
    }
    let commit = checkout.as_ref().map(|c| c.commit.clone());
    if opts.rebuild {
        let revision = match &commit {
            Some(c) => Some(c.clone()),
            None => crate::git::head_commit(file.base_dir()),
        };
        let subject = Subject {
            cookbook: &ws.cookbook,
            plan: &ws.plan,
            fingerprints: &prints,
            lock: &lock,
            revision: revision.as_deref(),
        };
        let selected = if opts.containers.is_empty() {
            ws.plan.order().cloned().collect()
        } else {
            ws.containers_named(&opts.containers)?
        };
        rebuild(&mut report, &subject, &selected, &opts.engine)?;
    }
    let result = match (report.ok(), opts.locked) {
        (true, _) => VerifyResult::Ok,
        (false, true) => VerifyResult::Stale,
        (false, false) => VerifyResult::Mismatch,
    };
    Ok(VerifyReport {
        result,
        hash_version: pinning.version,
        lock: lock_path.display().to_string(),
        revision: commit,
        registry_checked: report.registry_checked,
        rebuild_checked: report.rebuild_checked,
        attestations_checked: report.attestations_checked,
        containers: report.containers,
        locked: opts.locked,
    })
}

/// Writes a report of a verification to `path` (`verify --junit FILE`), atomically: a reader
/// (a CI's test reporter) sees the old file or the whole new one, never half of it.
pub fn write_report(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::state::atomic::replace(path, bytes, ".cookbook-report.").map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The cookbook to verify (the working tree's, or `--rev`'s checkout named as the working copy
/// is) and the lock to verify it against, with the lock's path.
fn read_subject(
    file: &CookbookFile,
    opts: &VerifyOptions,
    checkout: Option<&revision::RevisionCheckout>,
) -> Result<(Workspace, PathBuf, Lock), Error> {
    let ws = match checkout {
        Some(c) => {
            let rev = opts.rev.as_deref().unwrap_or_default();
            // Named as the working copy is, not after the temporary checkout's directory.
            let in_checkout = CookbookFile {
                path: c.cookbook_file.clone(),
                label: format!("{rev}:{}", c.relative_path),
                bytes: None,
            };
            let directory = crate::load::directory_name(file.base_dir());
            Workspace::open_as(in_checkout, directory.as_deref())?
        }
        None => Workspace::open(file.clone())?,
    };
    let lock_path = opts.lock.clone().unwrap_or_else(|| ws.lock_path());
    let lock = Lock::read(&lock_path)
        .map_err(VerifyError::from)?
        .ok_or_else(|| match (checkout, &opts.lock) {
            // The revision's own lock: name it as the user knows it, not by the temp checkout.
            (Some(c), None) => VerifyError::Revision(RevisionError::NotInRevision {
                rev: opts.rev.clone().unwrap_or_default(),
                path: Path::new(&c.relative_path).with_file_name("cookbook.lock"),
            }),
            _ => VerifyError::NoLock {
                path: lock_path.clone(),
            },
        })?;
    Ok((ws, lock_path, lock))
}

/// A fresh checkout's fingerprints: nothing in the stat cache could apply, and nothing is saved.
/// Its own paths are those of the working tree (the state directory's default name).
fn fingerprint_checkout(
    ws: &Workspace,
    pinning: hash::Pinning<'_>,
) -> Result<BTreeMap<Name, Fingerprint>, Error> {
    let base = ws.base_dir();
    let own = crate::load::own_paths(ws.path(), &base.join(crate::load::STATE_DIR_NAME));
    Ok(hash::fingerprint_plan(
        &ws.cookbook,
        &ws.plan,
        base,
        &own,
        &StatCache::disabled(),
        pinning,
    )?)
}

/// `--rebuild`: `selected` rebuilt and compared with the lock, against the environment's engine
/// and the registry.
fn rebuild(
    report: &mut verify::Report,
    subject: &Subject<'_>,
    selected: &[Name],
    engine: &crate::engine::Selector,
) -> Result<(), Error> {
    runtime()?
        .block_on(async {
            // Containers without build commands are rebuilt without an engine; rebuild pings
            // it only when a selected container needs it.
            let (engine, _) = crate::engine::DockerEngine::connect_or_unanswered(engine).await?;
            let client = RegistryClient::new()?;
            verify::rebuild::rebuild(report, subject, selected, &engine, &client).await
        })
        .map_err(|e| match e {
            RebuildError::Engine(e) => Error::from(e),
            RebuildError::Registry(e) => Error::from(e),
            RebuildError::Scratch { path, source } => Error::Write { path, source },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_gives_each_reason_its_sentence_and_stale_fails_in_lock_terms() {
        let mismatch = Verdict {
            reasons: vec![Reason::HashVersion {
                lock: 1,
                cookbook: 2,
            }],
            input_hash: Some("ab".repeat(32)),
            ..Verdict::default()
        };
        let report = VerifyReport {
            result: VerifyResult::Stale,
            hash_version: 1,
            lock: "cookbook.lock".into(),
            revision: None,
            registry_checked: false,
            rebuild_checked: false,
            attestations_checked: false,
            containers: BTreeMap::from([
                ("api".to_owned(), mismatch.clone()),
                ("db".to_owned(), Verdict::default()),
            ]),
            locked: true,
        };
        let doc = serde_json::to_value(&report).unwrap();
        assert_eq!(doc["result"], "stale");
        assert_eq!(doc["containers"]["db"]["status"], "ok");
        let reason = &doc["containers"]["api"]["reasons"][0];
        assert_eq!(reason["kind"], "hash_version");
        assert_eq!(reason["lock"], 1);
        assert_eq!(reason["message"], mismatch.reasons[0].to_string());
        assert!(doc.get("locked").is_none(), "{doc}");
        let e = report.into_result().unwrap_err();
        assert_eq!(
            e.to_string(),
            "cookbook.lock is stale for 1 of 2 container(s): run `cookbook apply` to update it"
        );
    }
}
