//! What a run says: its report (per container, a [`ContainerOutcome`]) and, while it runs, its
//! [`Event`]s for the caller's [`Reporter`] (the library prints nothing).

use std::collections::BTreeMap;

use serde::Serialize;

use super::pin;
use crate::hash::BasePin;
use crate::model::Name;

/// Where a cached image was found: its content tag in the registry, in the local engine, or the
/// lock's record of it (`--trust-lock`). Serialized and shown as the words `apply` always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CacheSource {
    #[serde(rename = "registry")]
    Registry,
    #[serde(rename = "local engine")]
    LocalEngine,
    #[serde(rename = "lock")]
    Lock,
}

impl std::fmt::Display for CacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheSource::Registry => "registry",
            CacheSource::LocalEngine => "local engine",
            CacheSource::Lock => "lock",
        })
    }
}

/// What one container's part of the run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ContainerOutcome {
    Built {
        millis: u64,
    },
    Cached {
        source: CacheSource,
    },
    Failed {
        reason: String,
    },
    Skipped {
        reason: String,
    },
    /// Stopped, or never started, because the run was cancelled.
    Cancelled {
        reason: String,
    },
    /// Not built: it needs a Docker engine (a Dockerfile, build commands, a base only an engine
    /// has), and the run has none (`reason` says both why and why not).
    NeedsEngine {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    #[serde(flatten)]
    pub outcome: ContainerOutcome,
    pub input_hash: String,
    /// The content-tagged reference.
    pub image: String,
    pub tags: Vec<String>,
    /// The registry's manifest digest of the content tag (only when published).
    pub digest: Option<String>,
    /// The image's id (the digest of its configuration), when known.
    pub image_id: Option<String>,
    /// The whole build log of a failed build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The builder of the pool that built it (the name written in `packaging.builders`, else
    /// the context's name or the host of `--builder`); none when it was cached or assembled
    /// without an engine, or when the run has one engine and no pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// The provenance statement and SBOM attached to the published image (a run with a
    /// signing key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestations: Option<super::Attestations>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub containers: BTreeMap<Name, ContainerReport>,
    /// Whether `cookbook.lock` was rewritten.
    pub lock_changed: bool,
    /// Whether the run was cancelled ([`Job::cancel`]) before it finished.
    pub cancelled: bool,
}

impl Report {
    /// Every container built or cached (and attested, when the run signs), and the run not
    /// cancelled.
    pub fn ok(&self) -> bool {
        !self.cancelled
            && self.containers.values().all(|c| {
                c.outcome.succeeded() && !c.attestations.as_ref().is_some_and(|a| a.failed())
            })
    }

    /// Containers whose image is published but could not be attested.
    pub fn unattested(&self) -> usize {
        self.containers
            .values()
            .filter(|c| c.attestations.as_ref().is_some_and(|a| a.failed()))
            .count()
    }

    pub fn count(&self, f: impl Fn(&ContainerOutcome) -> bool) -> usize {
        self.containers.values().filter(|c| f(&c.outcome)).count()
    }
}

impl ContainerOutcome {
    /// Built or cached: the image exists.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            ContainerOutcome::Built { .. } | ContainerOutcome::Cached { .. }
        )
    }
}

/// A step of the run, for progress output.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Checked {
        containers: usize,
        waves: usize,
    },
    Cached {
        name: &'a Name,
        source: CacheSource,
    },
    Started {
        name: &'a Name,
        wave: usize,
        /// The builder of the pool it builds on (`None`: one engine, no pool).
        builder: Option<&'a str>,
    },
    Line {
        name: &'a Name,
        line: &'a str,
    },
    Built {
        name: &'a Name,
        millis: u64,
    },
    Pushed {
        name: &'a Name,
        reference: &'a str,
        digest: &'a str,
    },
    /// Its provenance statement and SBOM are attached (`pushed`: by this run; else they were
    /// there already).
    Attested {
        name: &'a Name,
        pushed: bool,
    },
    Failed {
        name: &'a Name,
        reason: &'a str,
        log: &'a [String],
    },
    Skipped {
        name: &'a Name,
        reason: &'a str,
    },
    Cancelled {
        name: &'a Name,
        reason: &'a str,
    },
    /// Not built: it needs the Docker engine, which does not answer ([`ContainerOutcome::NeedsEngine`]).
    NeedsEngine {
        name: &'a Name,
        reason: &'a str,
    },
    /// The engine does not answer: the run goes on without it, assembling what it can.
    WithoutEngine {
        why: &'a str,
    },
    /// A builder of the pool does not answer: left out of the rest of the run (its builds, if
    /// any were running, go to the others).
    BuilderDown {
        builder: &'a str,
        why: &'a str,
    },
    /// `packaging.builders` names a pool, but the run does not push: it builds on the one
    /// engine `--context` chooses.
    PoolIgnored {
        builders: usize,
    },
    Tagged {
        name: &'a Name,
        reference: &'a str,
    },
    /// An external base image pinned by this run (`before`: its pin until now, on `update`).
    BasePinned {
        reference: &'a str,
        before: Option<&'a BasePin>,
        pin: &'a BasePin,
    },
    /// A pinned base image whose reference now names another image; the run keeps the pin.
    BaseMoved {
        moved: &'a pin::Moved,
    },
    /// A pinned base image whose reference could not be checked for a move.
    BaseUnchecked {
        reference: &'a str,
        why: &'a str,
    },
}

pub trait Reporter: Sync {
    fn event(&self, event: Event<'_>);
}
