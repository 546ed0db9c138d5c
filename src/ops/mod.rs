//! Each command's flow, as a library function: typed options in, a typed report out.
//!
//! This is cargo's `ops` layer. A command's flow (open the cookbook, plan, read the lock, call the
//! stages, decide what the outcome means) lives here, so the command line, a daemon or a web page
//! run the same flow; `cli` only turns arguments into options, calls one function here and renders
//! the report it gets back. Errors stay typed (`crate::error::Error`) all the way up, so one failure
//! has one exit code whichever command meets it.
//!
//! Every flow starts from a [`Workspace`]: the cookbook opened once, with its plan, and the lock,
//! pins and state directory beside it. Async work runs on the one process-wide runtime,
//! [`runtime`].

pub mod agent;
pub mod apply;
pub mod clean;
pub mod deploy;
pub mod dev;
pub mod diff;
pub mod down;
pub mod exec;
/// Which Docker engine a flow talks to: the selector its options carry (`--context`,
/// `--builder`), resolved by the engine edge as the docker CLI resolves it.
pub mod engine {
    pub use crate::engine::Selector;
}
pub mod events;
pub mod fleet;
pub mod init;
pub mod inspect;
pub mod key;
pub mod locate;
pub mod logs;
pub mod migrate;
pub mod pipeline;
pub mod report;
pub mod sbom;
pub mod stop;
pub mod sync;
pub mod update;
pub mod verify;
mod workspace;

/// The largest cookbook read, in bytes (standard input is read up to it, and refused past it).
pub use crate::load::COOKBOOK_MAX;
pub use report::ErrorReport;
pub use workspace::{CookbookFile, Workspace};

use std::sync::OnceLock;

use crate::error::Error;

/// The process's one tokio runtime, built the first time a flow needs one.
///
/// Flows are synchronous functions (the CLI and sync's hourly loop call them from plain threads)
/// that `block_on` this runtime; a library stage never builds its own. Building it can fail (no
/// threads left): that failure is returned every time it is asked for, as the same error.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("cookbook-worker")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Failed(format!("could not start the async runtime: {e}")))
}
