//! `cookbook sync status`, and what a sync state directory is to the flows: one site's.
//!
//! A sync round itself is [`super::pipeline`]'s: the names the command line renders a round and
//! its state with are re-exported here (the CLI imports only `ops`).

pub use crate::model::RelPath;
pub use crate::state::events::Who;
pub use crate::sync::lock::{Holder, Wait};
pub use crate::sync::schedule::Schedule;
pub use crate::sync::state::{now, StateDir, SyncState};
pub use crate::sync::{ApplyOutcome, Outcome, RoundReport as Report, SyncError, SyncOptions};

use std::path::Path;

use crate::error::Error;

/// `cookbook sync status`: the state directory's record.
pub fn status(state: &Path) -> Result<(StateDir, SyncState), Error> {
    if !state.is_dir() {
        return Err(Error::Usage {
            message: format!("no sync state in {}", state.display()),
            help: Some("run `cookbook sync --remote URL` first, or pass --state DIR".to_owned()),
        });
    }
    let dir = StateDir::new(state);
    let record = dir.read()?;
    Ok((dir, record))
}

/// A state directory serves one site: its checkout, record and applied revision are that site's.
/// Syncing another site into it would say "up to date" and keep the first site's portion.
pub fn refuse_other_site(dir: &StateDir, site: Option<&str>) -> Result<(), Error> {
    let state = dir.read()?;
    if state.current.is_none() || state.site.as_deref() == site {
        return Ok(());
    }
    let name = |s: Option<&str>| match s {
        Some(s) => format!("site `{s}`"),
        None => "the whole cookbook (no --site)".to_owned(),
    };
    Err(Error::Usage {
        message: format!(
            "the sync state in {} was made for {}, not {}",
            dir.root().display(),
            name(state.site.as_deref()),
            name(site)
        ),
        help: Some(format!(
            "each site keeps its own state: pass `--state` with a new directory for {} \
             (e.g. --state .cookbook/sync-{}), or the same --site as before",
            name(site),
            site.unwrap_or("all")
        )),
    })
}
