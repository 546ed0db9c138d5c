//! The deploy edge as a trait: what one kind of site (a Docker engine, a Kubernetes cluster) must do so that the
//! orchestration in `deploy::session` can converge it wave by wave, check its health, roll it back
//! and report it.
//!
//! Pipeline position: `desired::Desired` → `session` (waves, health gates, records, rollback) →
//! **a `Backend`** → the site. A backend speaks in its own *units* (Docker: one container per
//! replica; another target may group replicas), named by strings the session only passes back
//! and reports: `changes` says which units of each wave to (re)create, `apply` does that for one
//! wave, `wait` holds the wave until every unit of it is healthy or has failed.
//!
//! Invariants: a unit `changes` reports unchanged is never touched by `apply`, so an unchanged
//! deploy changes nothing on the site; a backend removes or replaces only what carries the labels
//! of the desired project, site and stage, and a name it needs that something else holds is
//! `BackendError::NotOurs`, never taken over.

use crate::deploy::desired::{Changes, Desired};
use crate::deploy::detect::Detected;
use crate::deploy::docker::{DockerSite, InstanceStatus};
use crate::deploy::kubernetes::cluster::{KubeSite, UnitStatus};
use crate::deploy::kubernetes::KubeError;
use crate::engine::EngineError;
use crate::model::lifecycle::Target;

/// A site's edge failed or could not be reached, or refused to touch what is not the stage's (as
/// opposed to a unit being unhealthy).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A secret the stage references could not be read (before anything changed).
    #[error(transparent)]
    Secret(#[from] crate::deploy::secrets::SecretError),
    /// A name the stage needs is held by an object without the stage's labels (another site's,
    /// docker compose's, someone's by hand): left alone.
    #[error(
        "{kind} `{name}` already exists and is not {stage}'s: {owner}; cookbook removes or replaces only what is labelled {labels}"
    )]
    NotOurs {
        /// `container`, `network`.
        kind: &'static str,
        name: String,
        /// Whose it is, as its labels say: "it belongs to docker compose project `x` …".
        owner: String,
        /// `site/stage` of the deploy that needed the name.
        stage: String,
        /// The labels that would make it ours (`io.cookbook.project=p, …`).
        labels: String,
    },
}

/// Why a wave is not healthy: the unit, and what the site said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    pub unit: String,
    pub why: String,
}

/// One kind of deploy target. The session calls these in order: `prepare`, `changes`, then per
/// wave `apply` and `wait`, and `remove` for what is no longer wanted.
// Used through generics only (never `dyn`), so the futures' `Send`-ness is not part of the
// contract: the CLI drives them with `block_on`.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// What the site reports about a stage (`cookbook status`).
    type Status;

    /// Readies what a stage's units share (Docker: the stage's network).
    async fn prepare(&self, desired: &Desired) -> Result<(), BackendError>;

    /// Compares `desired` with what the site runs for its project, stage and site: per wave, the
    /// units to (re)create; the units left alone; the stage's units no longer wanted.
    async fn changes(&self, desired: &Desired) -> Result<Changes, BackendError>;

    /// (Re)creates the named units of wave `wave` (0-based), in order.
    async fn apply(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<(), BackendError>;

    /// Waits until every unit `apply` just (re)created in wave `wave` is healthy; `Ok(Err(_))`
    /// names the first that cannot become so. Units left unchanged are not judged again: what
    /// happened to them before this deploy (an old crash, a restart) is not its doing.
    async fn wait(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<Result<(), Unhealthy>, BackendError>;

    /// Removes the named units of the stage.
    async fn remove(&self, desired: &Desired, units: &[String]) -> Result<(), BackendError>;

    /// Each desired unit as the site runs it.
    async fn status(&self, desired: &Desired) -> Result<Self::Status, BackendError>;

    /// What the site offers, when it can be observed (`None`: nothing to check against).
    async fn detect(&self) -> Result<Option<Detected>, BackendError>;
}

/// A connected site, whatever its target: dispatches to the target's backend.
pub enum Site {
    Docker(DockerSite),
    Kubernetes(KubeSite),
}

/// What `Site::status` reports, per target.
#[derive(Debug, Clone)]
pub enum SiteStatus {
    Docker(Vec<InstanceStatus>),
    Kubernetes(Vec<UnitStatus>),
}

/// How to connect: what the command line says beyond the cookbook.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The cookbook's directory: a relative `kubeconfig` is relative to it.
    pub base: std::path::PathBuf,
    /// Server-side apply takes over fields other managers own (Kubernetes).
    pub force_conflicts: bool,
    /// The engine a Docker site with `host: "env"` uses: the process's (`--context`).
    pub engine: crate::engine::Selector,
    /// A Docker site stops a container it replaces or removes within at most this many seconds
    /// (`cookbook dev`, where waiting out a whole grace would stall the loop); `None`: each
    /// container's own `stop_grace`.
    pub stop_cap: Option<u32>,
}

impl Site {
    /// The site, reading the secrets its stages reference from `source` (a Docker site; a
    /// cluster reads its own Secrets).
    pub fn with_secrets(self, source: crate::deploy::secrets::Source) -> Site {
        match self {
            Site::Docker(s) => Site::Docker(s.with_secrets(source)),
            other => other,
        }
    }

    /// [`Backend::status`] without what each container offers (a Docker site then runs no exec
    /// in the containers; a cluster's answer is the same).
    pub async fn status_without_services(
        &self,
        desired: &Desired,
    ) -> Result<SiteStatus, BackendError> {
        match self {
            Site::Docker(s) => Ok(SiteStatus::Docker(
                s.status_without_services(desired).await?,
            )),
            Site::Kubernetes(s) => Ok(SiteStatus::Kubernetes(s.status(desired).await?)),
        }
    }

    /// Whether `desired` runs on this site healthy, with its images (`automatic` progression
    /// asks the previous stage's sites); `Err` says what is not.
    pub async fn healthy(&self, desired: &Desired) -> Result<Result<(), String>, BackendError> {
        match self {
            Site::Docker(s) => s.healthy(desired).await,
            Site::Kubernetes(s) => s.healthy(desired).await,
        }
    }
}

/// Where `site` reads its secrets: its `secrets.directory`, relative to `base` (the cookbook's
/// directory).
pub fn secret_source(
    cookbook: &crate::model::Cookbook,
    site: &crate::model::Name,
    base: &std::path::Path,
) -> crate::deploy::secrets::Source {
    crate::deploy::secrets::Source {
        directory: cookbook
            .lifecycle
            .sites
            .get(site)
            .and_then(|s| s.secrets.as_deref())
            .map(|d| base.join(d)),
    }
}

/// Connects to a site's target.
pub async fn connect(target: &Target, options: &ConnectOptions) -> Result<Site, BackendError> {
    match target {
        Target::Docker(spec) => {
            let selector = crate::engine::Selector::from_spec(spec, &options.base, &options.engine);
            Ok(Site::Docker(
                DockerSite::connect(&selector)
                    .await?
                    .with_stop_cap(options.stop_cap),
            ))
        }
        Target::Kubernetes(k) => Ok(Site::Kubernetes(
            KubeSite::connect(k, &options.base, options.force_conflicts).await?,
        )),
    }
}

impl Backend for Site {
    type Status = SiteStatus;

    async fn prepare(&self, desired: &Desired) -> Result<(), BackendError> {
        match self {
            Site::Docker(s) => s.prepare(desired).await,
            Site::Kubernetes(s) => s.prepare(desired).await,
        }
    }

    async fn changes(&self, desired: &Desired) -> Result<Changes, BackendError> {
        match self {
            Site::Docker(s) => s.changes(desired).await,
            Site::Kubernetes(s) => s.changes(desired).await,
        }
    }

    async fn apply(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<(), BackendError> {
        match self {
            Site::Docker(s) => s.apply(desired, wave, units).await,
            Site::Kubernetes(s) => s.apply(desired, wave, units).await,
        }
    }

    async fn wait(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<Result<(), Unhealthy>, BackendError> {
        match self {
            Site::Docker(s) => s.wait(desired, wave, units).await,
            Site::Kubernetes(s) => s.wait(desired, wave, units).await,
        }
    }

    async fn remove(&self, desired: &Desired, units: &[String]) -> Result<(), BackendError> {
        match self {
            Site::Docker(s) => s.remove(desired, units).await,
            Site::Kubernetes(s) => s.remove(desired, units).await,
        }
    }

    async fn status(&self, desired: &Desired) -> Result<SiteStatus, BackendError> {
        match self {
            Site::Docker(s) => Ok(SiteStatus::Docker(s.status(desired).await?)),
            Site::Kubernetes(s) => Ok(SiteStatus::Kubernetes(s.status(desired).await?)),
        }
    }

    async fn detect(&self) -> Result<Option<Detected>, BackendError> {
        match self {
            Site::Docker(s) => s.detect().await,
            Site::Kubernetes(s) => s.detect().await,
        }
    }
}
