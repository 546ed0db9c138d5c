//! The one place that maps failures to exit codes.
//!
//! | code | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | success                                                        |
//! | 1    | the work failed (a build, a push, a mismatch found by verify)  |
//! | 2    | invalid input: the cookbook, a flag, a path                    |
//! | 3    | an external service (Docker engine, registry, git) unreachable |

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;

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

    /// `cookbook sync` could not run its round (see `SyncError` for which are which code).
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),

    /// `cookbook sync` refused the remote's revision and kept the current one.
    #[error("refused revision {commit}: {reason}")]
    SyncRefused { commit: String, reason: String },

    /// `cookbook sync --apply` took a revision but its apply failed; it is not counted as applied.
    #[error("apply of revision {commit} failed: {message}")]
    SyncApplyFailed { commit: String, message: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } | Error::Read { .. } | Error::Usage { .. } => EXIT_INVALID,
            Error::SyncRefused { .. } | Error::SyncApplyFailed { .. } => EXIT_FAILED,
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
        }
    }
}
