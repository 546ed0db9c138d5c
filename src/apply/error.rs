//! How a run fails: as a whole ([`ApplyError`], with what it did before in [`ApplyFailure`]), or
//! one container's work (`Failure`, which the run turns into that container's outcome or, for an
//! unreachable service, into the whole run's error).

use std::path::PathBuf;

use super::pin;
use super::report::Report;
use crate::build::{BadRepository, BuildError, ContextFileError};
use crate::context::ContextError;
use crate::engine::EngineError;
use crate::registry::RegistryError;
use crate::state::lock::LockError;

/// A failure of the whole run (as opposed to one container's).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot push: the cookbook sets no packaging.registry; set one, or run `cookbook apply --no-push` to build into the local engine only")]
    NoRegistry,
    #[error("invalid registry repository `{reference}`: {reason}")]
    BadRepository { reference: String, reason: String },
    #[error("packaging.tagging is \"git-sha\", but {} is not in a git checkout", dir.display())]
    NoRevision { dir: PathBuf },
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot write {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("image {image} is not in the local engine, and there is no registry to pull it from")]
    LocalImageMissing { image: String },
    /// Containers that need an engine were not built: the engine does not answer (exit 3).
    #[error("not built without a Docker engine: {containers} (the engine does not answer)")]
    EngineNeeded { containers: String },
    /// `--builder` with `--no-push`: a pool's builders meet in the registry (exit 2).
    #[error("--builder needs a run that pushes: a pool's builders meet in the registry, and with --no-push a child would not find its parent built on another engine")]
    PoolWithoutPush,
    /// Two builders of one pool with one name (exit 2).
    #[error("builder `{name}` is named twice in the pool")]
    DuplicateBuilder { name: String },
    /// Boxed: it names the reference and its containers, and would make every result large.
    #[error(transparent)]
    Pin(Box<pin::PinError>),
}

impl ApplyFailure {
    /// A run that failed before it started.
    pub fn before_start(error: ApplyError) -> ApplyFailure {
        ApplyFailure {
            report: None,
            error,
        }
    }
}

impl From<BadRepository> for ApplyError {
    fn from(e: BadRepository) -> ApplyError {
        ApplyError::BadRepository {
            reference: e.reference,
            reason: e.reason,
        }
    }
}

impl From<ContextFileError> for ApplyError {
    fn from(e: ContextFileError) -> ApplyError {
        match e {
            ContextFileError::Temp { path, source } => ApplyError::State { path, source },
            ContextFileError::Context(e) => ApplyError::Context(e),
        }
    }
}

impl From<pin::PinError> for ApplyError {
    fn from(e: pin::PinError) -> ApplyError {
        ApplyError::Pin(Box::new(e))
    }
}

/// A failure of the whole run, with what the run did before it (built, pushed, tagged), so that
/// the summary can still say what was published.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyFailure {
    /// What the run did before it failed; `None` when it failed before it started (connecting,
    /// pinning the bases, fingerprinting): there is nothing to summarize then.
    pub report: Option<Report>,
    #[source]
    pub error: ApplyError,
}

/// Why a container's work stopped: its own failure, or the whole run's.
pub(super) enum Failure {
    Container {
        reason: String,
        log: Vec<String>,
    },
    Run(ApplyError),
    /// The run was cancelled while this container was at work.
    Cancelled,
    /// It needs an engine, and the run has none.
    NeedsEngine {
        reason: String,
    },
}

impl Failure {
    /// A failure to normalize, load or publish an image: an unreachable engine or registry ends
    /// the run (exit 3); anything else fails the container.
    pub(super) fn publish(e: BuildError) -> Failure {
        match e {
            BuildError::Engine(e) => Failure::engine(e),
            BuildError::Context(e) => Failure::Run(e.into()),
            BuildError::Registry(
                e @ (RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. }),
            ) => Failure::Run(e.into()),
            other => Failure::Container {
                reason: other.to_string(),
                log: Vec::new(),
            },
        }
    }

    /// An engine error during one container's work: no engine (unreachable, or a connection that
    /// failed at a step) ends the run (exit 3);
    /// anything else fails the container.
    pub(super) fn engine(e: EngineError) -> Failure {
        match e {
            e if e.is_unreachable() => Failure::Run(e.into()),
            EngineError::PushFailed { ref log, .. } => Failure::Container {
                reason: e.to_string(),
                log: log.clone(),
            },
            other => Failure::Container {
                reason: other.to_string(),
                log: Vec::new(),
            },
        }
    }
}
