//! `cookbook update [CONTAINER…]`: re-resolve base images on purpose and move their pins.
//!
//! Like `cargo update`: `apply` never follows a base that moved under its tag; this flow does,
//! for the bases the named containers name (all external bases without names). It resolves them
//! now (engine and registry, as `apply` pins: [`crate::apply::pin`]), records the pins in
//! `cookbook.lock`, and says which containers the next apply rebuilds: those built on a moved
//! base and their `container:` children. Bases not asked for are pinned if they are not yet,
//! and reported if they moved ([`UpdateWarning`]), but keep their pins.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::Serialize;

use super::{runtime, Workspace};

use crate::apply::{pin, ApplyError, Event, Reporter};
use crate::error::Error;
use crate::hash::BasePin;
pub use crate::model::Name;

/// What to update.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Re-resolve only these containers' bases (none: every external base).
    pub containers: Vec<String>,
}

/// `update --format json`'s `result`: an update that returns a report succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateResult {
    Ok,
}

/// A base pinned by this update: its pin before (none: it had none) and now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseUpdate {
    pub before: Option<BasePin>,
    pub pinned: BasePin,
}

impl BaseUpdate {
    /// A pin that existed and now names another image.
    pub fn moved(&self) -> bool {
        self.before.as_ref().is_some_and(|b| *b != self.pinned)
    }
}

/// A base not asked for that the pin step found moved, or could not check.
#[derive(Debug, Clone)]
pub enum UpdateWarning {
    Moved(pin::Moved),
    Unchecked { reference: String, why: String },
}

/// What `update` did: `update --format json`'s document.
#[derive(Debug, Serialize)]
pub struct UpdateReport {
    pub result: UpdateResult,
    /// Every base pinned now, by reference as written.
    pub bases: BTreeMap<String, BaseUpdate>,
    /// The bases whose pin moved.
    pub moved: BTreeSet<String>,
    /// The containers the next apply rebuilds for it, in plan order.
    pub rebuilds: Vec<Name>,
    #[serde(skip)]
    pub warnings: Vec<UpdateWarning>,
}

/// Collects the pin step's warnings about bases not asked for.
#[derive(Default)]
struct Warnings(Mutex<Vec<UpdateWarning>>);

impl Reporter for Warnings {
    fn event(&self, event: Event<'_>) {
        let warning = match event {
            Event::BaseMoved { moved } => UpdateWarning::Moved(moved.clone()),
            Event::BaseUnchecked { reference, why } => UpdateWarning::Unchecked {
                reference: reference.to_owned(),
                why: why.to_owned(),
            },
            _ => return,
        };
        self.0
            .lock()
            .expect("no panics while collecting")
            .push(warning);
    }
}

/// `cookbook update`: the asked-for bases re-resolved and pinned in the lock.
pub fn update(ws: &Workspace, opts: &UpdateOptions) -> Result<UpdateReport, Error> {
    let wanted = ws.containers_named(&opts.containers)?;
    let asked: Vec<&Name> = if wanted.is_empty() {
        ws.cookbook.containers.keys().collect()
    } else {
        wanted.iter().collect()
    };
    // Generated containers' bases and Dockerfile containers' external `FROM` images alike.
    let dockerfiles = pin::dockerfile_bases(&ws.cookbook, ws.base_dir())?;
    let renew: BTreeSet<String> = pin::bases_named(&ws.cookbook, &asked, &dockerfiles)
        .into_iter()
        .map(ToString::to_string)
        .collect();
    let warnings = Warnings::default();
    let pinned = runtime()?.block_on(async {
        let engine = crate::engine::DockerEngine::connect_selected(&ws.engine).await?;
        let registry = crate::registry::RegistryClient::new()?;
        let report = pin::pin_plan(
            Some(&engine),
            Some(&registry),
            &ws.cookbook,
            &ws.plan,
            &ws.lock_path(),
            &renew,
            true,
            &warnings,
        )
        .await
        .map_err(ApplyError::from)?;
        Ok::<_, Error>(report.pinned)
    })?;
    let bases: BTreeMap<String, BaseUpdate> = pinned
        .into_iter()
        .map(|(reference, (before, pinned))| (reference.to_string(), BaseUpdate { before, pinned }))
        .collect();
    let moved: BTreeSet<String> = bases
        .iter()
        .filter(|(_, base)| base.moved())
        .map(|(r, _)| r.clone())
        .collect();
    let rebuilds = {
        let moved: BTreeSet<&str> = moved.iter().map(String::as_str).collect();
        pin::rebuilt_by(&ws.cookbook, &ws.plan, &dockerfiles, &moved)
    };
    Ok(UpdateReport {
        result: UpdateResult::Ok,
        bases,
        moved,
        rebuilds,
        warnings: warnings.0.into_inner().expect("no panics while collecting"),
    })
}
