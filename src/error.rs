//! The one place that maps failures to exit codes.
//!
//! | code | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | success                                                        |
//! | 1    | the work failed (a build, a push, a mismatch found by verify)  |
//! | 2    | invalid input: the cookbook, a flag, a path                    |
//! | 3    | an external service (Docker engine, registry, git) unreachable |
//! | 130  | stopped by SIGINT (Ctrl-C): builds cancelled, completed work in the lock |
//! | 143  | stopped by SIGTERM: the same                                   |
//!
//! Edge errors: an engine or registry that cannot be reached, or a registry that keeps answering
//! 5xx/429 until the retries run out, is 3 (the service, not the work, failed: a CI job may
//! retry later). A failed build or push is 1. An authentication refusal is 1: the service
//! answered, and it takes a person to fix the credentials. A `DOCKER_HOST` with a transport
//! `cookbook` does not speak, or an image reference that does not parse, is 2.

use std::path::PathBuf;

use crate::apply::ApplyError;
use crate::diagnostic::Diagnostic;
use crate::engine::EngineError;
use crate::registry::{ReferenceError, RegistryError};
use crate::state::lock::LockError;
use crate::verify::VerifyError;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;
/// 128 + the signal's number, as shells report a process a signal ended.
pub const EXIT_SIGINT: i32 = 130;
pub const EXIT_SIGTERM: i32 = 143;

/// Documented in `--help`; tested in `tests/cli.rs`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  the work failed (a build, a push, a verification)
  2  invalid input (the cookbook, an argument, a path)
  3  an external service (Docker engine, registry, git remote) is unreachable";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cookbook has problems; each diagnostic is located in it.
    #[error("{file}: {} problem(s) found", diagnostics.len())]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A well-formed request that does not fit the cookbook (an unknown site or container).
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },

    /// A build context could not be listed or written (a special file, a link leaving its tree,
    /// a bad `.dockerignore`, an unreadable file): the input is at fault.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),

    /// The work was done and its answer is "no" (two manifests differ, a verification failed).
    #[error("{0}")]
    Failed(String),

    /// The Docker engine failed or could not be reached.
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The registry failed, refused, or could not be reached.
    #[error(transparent)]
    Registry(#[from] RegistryError),

    /// An image or repository name that does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// A whole apply run failed (as opposed to one of its containers).
    #[error(transparent)]
    Apply(#[from] ApplyError),

    /// `cookbook sync` could not run its round (see `SyncError` for which are which code).
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),

    /// `cookbook sync` refused the remote's revision and kept the current one.
    #[error("refused revision {commit}: {reason}")]
    SyncRefused { commit: String, reason: String },

    /// `cookbook sync --apply` took a revision but its apply failed; it is not counted as applied.
    #[error("apply of revision {commit} failed: {message}")]
    SyncApplyFailed { commit: String, message: String },
    /// `verify` could not verify at all (a bad lock file, an unknown revision); a mismatch is
    /// [`Error::Failed`].
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A run stopped by a signal (`code`: 130 for SIGINT, 143 for SIGTERM).
    #[error("stopped by {signal}: running builds cancelled; what completed is in cookbook.lock")]
    Interrupted { signal: &'static str, code: i32 },
}

fn engine_exit_code(e: &EngineError) -> i32 {
    match e {
        EngineError::Unreachable { .. } => EXIT_UNREACHABLE,
        EngineError::UnsupportedHost { .. } => EXIT_INVALID,
        EngineError::Api { .. }
        | EngineError::BuildFailed { .. }
        | EngineError::PushFailed { .. }
        | EngineError::Context { .. }
        | EngineError::Cancelled
        | EngineError::Protocol { .. } => EXIT_FAILED,
    }
}

fn registry_exit_code(e: &RegistryError) -> i32 {
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. } => EXIT_UNREACHABLE,
        RegistryError::Unauthorized { .. }
        | RegistryError::Credentials(_)
        | RegistryError::UnexpectedStatus { .. }
        | RegistryError::InvalidResponse { .. }
        | RegistryError::Client { .. } => EXIT_FAILED,
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. }
            | Error::Read { .. }
            | Error::Usage { .. }
            | Error::Context(_)
            | Error::Reference(_) => EXIT_INVALID,
            Error::Failed(_) => EXIT_FAILED,
            Error::Engine(e) => engine_exit_code(e),
            Error::Registry(e) => registry_exit_code(e),
            Error::Apply(e) => match e {
                ApplyError::Engine(e) => engine_exit_code(e),
                ApplyError::Registry(e) => registry_exit_code(e),
                ApplyError::NoRegistry
                | ApplyError::BadRepository { .. }
                | ApplyError::NoRevision { .. }
                | ApplyError::Context(_) => EXIT_INVALID,
                ApplyError::Lock(_)
                | ApplyError::State { .. }
                | ApplyError::LocalImageMissing { .. } => EXIT_FAILED,
            },
            Error::SyncRefused { .. } | Error::SyncApplyFailed { .. } => EXIT_FAILED,
            Error::Interrupted { code, .. } => *code,
            Error::Sync(e) => {
                use crate::sync::SyncError as S;
                match e {
                    S::Unreachable { .. } => EXIT_UNREACHABLE,
                    S::BranchNotFound { .. } => EXIT_INVALID,
                    // Busy: another sync holds the state; this one did nothing (documented).
                    S::Busy { .. }
                    | S::Git { .. }
                    | S::Io { .. }
                    | S::StateCorrupt { .. }
                    | S::Verifier { .. }
                    | S::Interrupted => EXIT_FAILED,
                }
            }
            Error::Verify(e) => match e {
                VerifyError::Lock(LockError::Write { .. })
                | VerifyError::Checkout { .. }
                | VerifyError::TempDir { .. } => EXIT_FAILED,
                VerifyError::Lock(LockError::Read { .. } | LockError::Invalid { .. })
                | VerifyError::NoLock { .. }
                | VerifyError::ProjectMismatch { .. }
                | VerifyError::NotInRepository { .. }
                | VerifyError::NoWorkTree { .. }
                | VerifyError::UnknownRevision { .. }
                | VerifyError::NotInRevision { .. } => EXIT_INVALID,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_errors_map_to_documented_exit_codes() {
        let engine_unreachable = Error::Engine(EngineError::Unreachable {
            endpoint: "unix:///nonexistent".into(),
            source: bollard::errors::Error::SocketNotFoundError("/nonexistent".into()),
        });
        assert_eq!(engine_unreachable.exit_code(), EXIT_UNREACHABLE);
        let build_failed = Error::Engine(EngineError::BuildFailed {
            log: vec!["Step 2/2 : RUN false".into()],
            message: "returned a non-zero code: 1".into(),
        });
        assert_eq!(build_failed.exit_code(), EXIT_FAILED);
        let bad_host = Error::Engine(EngineError::UnsupportedHost {
            endpoint: "ssh://x".into(),
        });
        assert_eq!(bad_host.exit_code(), EXIT_INVALID);
        let unauthorized = Error::Registry(RegistryError::Unauthorized {
            endpoint: "http://127.0.0.1:5000/v2/a/blobs/uploads/".into(),
            status: 401,
        });
        assert_eq!(unauthorized.exit_code(), EXIT_FAILED);
        let unavailable = Error::Registry(RegistryError::Unavailable {
            endpoint: "http://127.0.0.1:5000/v2/".into(),
            status: 503,
            attempts: 4,
        });
        assert_eq!(unavailable.exit_code(), EXIT_UNREACHABLE);
        let reference =
            Error::Reference(crate::registry::Repository::parse("a/b:tag").unwrap_err());
        assert_eq!(reference.exit_code(), EXIT_INVALID);
        let bad_lock = Error::Verify(VerifyError::Lock(LockError::Invalid {
            path: "cookbook.lock".into(),
            line: 3,
            column: 18,
            message: "invalid type".into(),
        }));
        assert_eq!(bad_lock.exit_code(), EXIT_INVALID);
        let no_lock = Error::Verify(VerifyError::NoLock {
            path: "cookbook.lock".into(),
        });
        assert_eq!(no_lock.exit_code(), EXIT_INVALID);
        let mismatch = Error::Failed("1 of 4 container(s) do not match cookbook.lock".into());
        assert_eq!(mismatch.exit_code(), EXIT_FAILED);
    }
}
