//! `apply`: build, tag and push a plan's images, bottom-up, building nothing that exists.
//!
//! Pipeline position: fingerprints → **contexts written and built, images pushed** → lock.
//! This module is orchestration over two edges: an [`Engine`] (builds, tags, pushes) and a
//! [`RegistryClient`] (is this content tag published? may we push?). It prints nothing: every
//! step is an [`Event`] for the caller's [`Reporter`].
//!
//! Order of work:
//! 0. every external base image is pinned ([`pin`]): the lock's pin, or resolved now and
//!    recorded in the lock at once, before any build (so a run that fails later still leaves the
//!    pins its published images were built on); the fingerprints are computed with the pins
//!    (hash_version 2 covers them);
//! 1. the engine answers, every content tag is looked up, and (when pushing) the registry
//!    grants push access to every repository the run writes to ([`check`]: concurrently, once
//!    per repository) — before any long build, so an auth failure costs seconds, not builds;
//! 2. wave by wave, at most `jobs` builds at once on each builder of the pool ([`pool`]:
//!    `--builder`, `packaging.builders`, else the one engine): a container whose content tag exists
//!    (in the registry when pushing, else in the local engine) is *cached*; otherwise its
//!    context is written and built, FROM exactly the image its parent produced or found (the
//!    parent's `cookbook.local/<project>/<parent>:<input_hash>`, pulled by content tag if it is
//!    only in the registry), then exported and normalized ([`crate::build`]), loaded back under
//!    its names and published by content tag through the registry API ([`publish`]): the lock's
//!    digest is the normalized manifest's, its image id the normalized config's;
//!    A generated container whose applications have no build commands is not built by the
//!    engine but assembled ([`crate::build::assemble`]: its base plus one layer, normalized the
//!    same way) and published; when pushing, an engine that does not answer is no error: those containers are
//!    still built, and every other one is reported [`ContainerOutcome::NeedsEngine`];
//! 3. a failed container skips everything that needs it; without `keep_going` nothing new starts;
//! 4. only when every container succeeded are the mutable policy tags (git sha, version,
//!    `latest`) moved, and the lock's entries written.
//!
//! Content tags are immutable by construction (the tag *is* the input hash), so pushing them as
//! each build finishes is safe: a failed run leaves published only images that are correct for
//! their inputs, and no mutable tag moved.
//!
//! Concurrency and cancellation:
//! - Each build's context tar is a temporary file of this run alone (unique name, in the system
//!   temp dir, never in the checkout), removed when the build ends on every path: success,
//!   error, panic unwinding, or the future being dropped.
//! - `cookbook.lock` is merged under a file lock ([`crate::state::lock::update`]), so two applies
//!   on one checkout both land.
//! - [`Job::cancel`] stops the run: nothing new starts, a running build is stopped in the engine
//!   ([`Engine::build_until`]), registry calls in flight are dropped (they only ever write
//!   immutable content tags), no mutable tag moves, and the lock records what completed. The
//!   library installs no signal handler: the caller owns the token.
//! - Blocking work (tar writing, explain documents, the lock's file lock and fsync) runs on
//!   tokio's blocking threads, never on the threads that drive the builds.
//! - A failure of the whole run still returns what was done before it ([`ApplyFailure::report`];
//!   none when it failed before it started).
//!
//! Where each step lives: [`pin`] (0), [`check`] (1), `run` (the waves, 2–3), [`pool`] (which
//! builder builds what), `container` (one container: cached, built on a builder or assembled
//! through [`crate::build`], then [`publish`]ed),
//! `finish` (4: policy tags, the lock), [`dry_run`] (the same lookups, nothing done), `report`
//! and `error` (what a run says and how it fails). Every entry point is `async`: the caller owns
//! the runtime (`ops::runtime`).

pub mod attest;
pub mod check;
mod container;
mod dry_run;
mod error;
mod finish;
pub mod pin;
pub mod pool;
pub mod publish;
mod report;
mod run;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Selector};
use crate::graph::Plan;
use crate::hash::{BasePins, Fingerprint};
use crate::model::{Cookbook, Name, Tagging};
use crate::registry::RegistryClient;
use crate::state::lock::Lock;

pub use crate::image::{LABEL_CONTAINER, LABEL_INPUT_HASH, LABEL_PROJECT};
pub use attest::{Attestations, Attested, Attesting};
pub use dry_run::{dry_run, dry_run_with_docker, Action, Planned};
pub use error::{ApplyError, ApplyFailure};
pub use finish::policy_tags;
pub use pool::Pool;
pub use report::{CacheSource, ContainerOutcome, ContainerReport, Event, Report, Reporter};

#[derive(Debug, Clone)]
pub struct Options {
    /// Builds at once on each builder (at least 1).
    pub jobs: usize,
    /// Push to `packaging.registry` (check it for cached images), or keep everything local.
    pub push: bool,
    /// Go on with independent containers after a failure.
    pub keep_going: bool,
    /// The git commit of the cookbook's checkout, when it is one (labels, `git-sha` tags).
    pub revision: Option<String>,
    /// Take a container the lock records as published with the same input hash as cached,
    /// without asking the registry (`--trust-lock`; see [`check::trusted`]).
    pub trust_lock: bool,
    /// Sign and attach a provenance statement and an SBOM to every image published
    /// ([`attest`]); `None`: no attestations.
    pub attest: Option<Arc<Attesting>>,
    /// The engine to build on (`--context`; default: the environment's, as the docker CLI
    /// chooses it).
    pub engine: Selector,
    /// A pool of engines to spread builds over (`--builder`, else `packaging.builders`); empty:
    /// only `engine`.
    pub builders: Vec<Selector>,
}

/// Everything a run needs.
pub struct Job<'a> {
    pub cookbook: &'a Cookbook,
    pub plan: &'a Plan,
    /// Shared with the blocking threads that write contexts and explain documents.
    pub fingerprints: Arc<BTreeMap<Name, Fingerprint>>,
    /// The cookbook file (the lock goes beside it).
    pub cookbook_file: &'a Path,
    pub state_dir: &'a Path,
    pub options: Options,
    /// The tag lists a run starts listing before it hashes ([`check::TagLists::start`], set by
    /// the run itself); `Default::default()` when building a job.
    pub tag_lists: check::TagLists,
    /// Cancels the run (see the module header). The caller decides when: `cookbook apply`
    /// cancels it on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
}

impl Job<'_> {
    /// The cookbook's directory: where its paths are relative to.
    pub fn base_dir(&self) -> &Path {
        self.cookbook_file.parent().unwrap_or(Path::new("."))
    }
}

fn parse_repo(reference: &str) -> Result<crate::registry::Repository, ApplyError> {
    Ok(crate::build::parse_repo(reference)?)
}

/// The engines a run builds on, as the options and the cookbook name them: `--builder` (a
/// named pool), else `packaging.builders` (a named pool; with `--no-push` ignored, with a
/// warning: a pool's builders meet in the registry, and without one a child would find its
/// parent on another engine), else the one engine `--context` chooses (no pool: reports name no
/// builder). `--builder` with `--no-push` is refused for the same reason.
fn members(job: &Job<'_>, reporter: &dyn Reporter) -> Result<Vec<(String, Selector)>, ApplyError> {
    let options = &job.options;
    let members: Vec<(String, Selector)> = if !options.builders.is_empty() {
        if !options.push {
            return Err(ApplyError::PoolWithoutPush);
        }
        options
            .builders
            .iter()
            .map(|s| (s.name(), s.clone()))
            .collect()
    } else if !job.cookbook.packaging.builders.is_empty() {
        if !options.push {
            reporter.event(Event::PoolIgnored {
                builders: job.cookbook.packaging.builders.len(),
            });
            return Ok(Vec::new());
        }
        job.cookbook
            .packaging
            .builders
            .iter()
            .map(|b| {
                let selector = Selector::from_spec(&b.engine, job.base_dir(), &options.engine);
                (b.name.clone(), selector)
            })
            .collect()
    } else {
        return Ok(Vec::new());
    };
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &members {
        if !seen.insert(name.as_str()) {
            return Err(ApplyError::DuplicateBuilder { name: name.clone() });
        }
    }
    Ok(members)
}

/// The engines to build on ([`members`]), connected concurrently, and, when pushing, a
/// registry client. A builder of a pool that does not answer (unreachable, its TLS or SSH
/// refused, not an engine) is left out with an [`Event::BuilderDown`]; a host or context that
/// cannot be resolved is an error (exit 2). Without a pool, as before: when pushing, an engine
/// that cannot be reached is not an error here — the run goes on without it
/// ([`crate::build::assemble`]), and the third value says why it has none. So it is for a pool
/// none of whose builders answers.
async fn connect(
    job: &Job<'_>,
    reporter: &dyn Reporter,
) -> Result<
    (
        Pool<crate::engine::DockerEngine>,
        Option<Arc<RegistryClient>>,
        Option<String>,
    ),
    ApplyError,
> {
    use crate::engine::docker::REQUEST_TIMEOUT;
    use crate::engine::endpoint::{resolve, Environment};
    use crate::engine::{DockerEngine, EngineError};
    let push = job.options.push;
    let jobs = job.options.jobs;
    let members = members(job, reporter)?;
    let registry = if push {
        Some(Arc::new(RegistryClient::new()?))
    } else {
        None
    };
    if members.is_empty() {
        let (engine, down) = match DockerEngine::connect_or_unanswered(&job.options.engine).await? {
            (_, Some(e)) if !push => return Err(e.into()),
            (engine, down) => (engine, down.map(|e| e.to_string())),
        };
        return Ok((Pool::single(engine, jobs), registry, down));
    }
    let environment = Environment::from_process();
    let endpoints = members
        .iter()
        .map(|(_, selector)| resolve(selector, &environment))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EngineError::from)?;
    let answers = futures_util::future::join_all(
        endpoints
            .iter()
            .map(|endpoint| DockerEngine::connect_endpoint(endpoint, REQUEST_TIMEOUT)),
    )
    .await;
    let mut builders = Vec::new();
    let mut first_failure = None;
    for (((name, _), endpoint), answer) in members.into_iter().zip(&endpoints).zip(answers) {
        match answer {
            Ok(engine) => builders.push(pool::Builder {
                name: Some(name),
                engine,
            }),
            Err(
                e @ (EngineError::Unreachable { .. }
                | EngineError::Connection { .. }
                | EngineError::NotAnEngine { .. }),
            ) => {
                let why = e.to_string();
                reporter.event(Event::BuilderDown {
                    builder: &name,
                    why: &why,
                });
                first_failure.get_or_insert((name, endpoint, e));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !builders.is_empty() {
        return Ok((Pool::new(builders, jobs), registry, None));
    }
    // None answers: as a run without an engine (assembling what needs none), on a client that
    // fails every call as the first builder did.
    let (name, endpoint, error) = first_failure.expect("a pool has members");
    let down = format!("none of the pool's {} builder(s) answers", endpoints.len());
    let engine = DockerEngine::unanswered(endpoint).map_err(|_| error)?;
    let builder = pool::Builder {
        name: Some(name),
        engine,
    };
    Ok((Pool::new(vec![builder], jobs), registry, Some(down)))
}

/// How a run gets its fingerprints once its base images are pinned (the pins are an input of
/// hash_version 2): `cookbook apply` hashes through the state directory's stat cache.
pub type Fingerprinter<'f> =
    dyn Fn(&BasePins) -> Result<BTreeMap<Name, Fingerprint>, ApplyError> + 'f;

/// Runs an apply against the Docker engine of the environment (`DOCKER_HOST` or the default
/// socket) and, when pushing, the registry: what `cookbook apply` and `sync --apply` do. First
/// the base images are pinned ([`pin::pin_plan`]; the new pins are recorded in the lock before
/// anything is built), then `job.fingerprints` is set to `fingerprint(pins)`, then the run.
/// A run that could not start (no engine, a base that cannot be pinned) fails with no report
/// ([`ApplyFailure::report`] is `None`).
pub async fn apply_with_docker(
    mut job: Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
) -> Result<Report, ApplyFailure> {
    let (pool, registry) = connect_and_fingerprint(&mut job, fingerprint, reporter, true)
        .await
        .map_err(ApplyFailure::before_start)?;
    apply(&job, &pool, registry.as_deref(), reporter).await
}

/// The start apply and its dry run share: connect the builders, pin the bases (recording new
/// pins in the lock when `record`: an apply, not a dry run), and set `job.fingerprints` from the
/// pins.
pub(crate) async fn connect_and_fingerprint(
    job: &mut Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
    record: bool,
) -> Result<
    (
        Pool<crate::engine::DockerEngine>,
        Option<Arc<RegistryClient>>,
    ),
    ApplyError,
> {
    let (pool, registry, down) = connect(job, reporter).await?;
    if let Some(registry) = registry.as_ref().filter(|_| !job.options.trust_lock) {
        job.tag_lists = check::TagLists::start(job, registry);
    }
    if let Some(why) = &down {
        reporter.event(Event::WithoutEngine { why });
        pool.mark_down(0, why.clone());
    }
    let pins = pin::pin_plan(
        down.is_none().then_some(pool.first()),
        registry.as_deref(),
        job.cookbook,
        job.plan,
        &Lock::path_for(job.cookbook_file),
        &Default::default(),
        // Before the first build: whatever happens to the builds, `hash` then computes what
        // they are tagged with (ARCHITECTURE.md, "Where state lives").
        record,
        reporter,
    )
    .await?;
    job.fingerprints = Arc::new(fingerprint(&pins.pins)?);
    Ok((pool, registry))
}

/// `git-sha` tagging needs the commit of the cookbook's checkout; refused before any work.
pub(crate) fn needs_revision(job: &Job<'_>) -> Result<(), ApplyError> {
    if job.cookbook.packaging.tagging == Tagging::GitSha && job.options.revision.is_none() {
        return Err(ApplyError::NoRevision {
            dir: job
                .cookbook_file
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        });
    }
    Ok(())
}

/// Runs an apply on `pool`'s builders ([`Pool::single`]: one engine). Per-container failures
/// are in the report; an `Err` is a failure of the whole run (an unreachable engine or registry,
/// refused credentials, unusable state), carrying the report of what was done before it. A
/// cancelled run is `Ok`, with [`Report::cancelled`] set.
pub async fn apply<E: Engine>(
    job: &Job<'_>,
    pool: &Pool<E>,
    registry: Option<&RegistryClient>,
    reporter: &dyn Reporter,
) -> Result<Report, ApplyFailure> {
    let mut report = Report::default();
    match run::run(job, pool, registry, reporter, &mut report).await {
        Ok(()) => Ok(report),
        Err(error) => Err(ApplyFailure {
            report: Some(report),
            error,
        }),
    }
}
