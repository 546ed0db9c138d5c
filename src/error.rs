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

    /// A build context could not be listed or written (a special file, a link leaving its tree,
    /// a bad `.dockerignore`, an unreadable file): the input is at fault.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),

    /// The work was done and its answer is "no" (two manifests differ, a verification failed).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. }
            | Error::Read { .. }
            | Error::Usage { .. }
            | Error::Context(_) => EXIT_INVALID,
            Error::Failed(_) => EXIT_FAILED,
        }
    }
}
