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
//! 2. wave by wave, at most `jobs` containers at once: a container whose content tag exists
//!    (in the registry when pushing, else in the local engine) is *cached*; otherwise its
//!    context is written and built, FROM exactly the image its parent produced or found (the
//!    parent's `cookbook.local/<project>/<parent>:<input_hash>`, pulled by content tag if it is
//!    only in the registry), then exported, normalized, loaded back under its names and
//!    published by content tag through the registry API ([`publish`]): the lock's digest is the
//!    normalized manifest's, its image id the normalized config's;
//!    A generated container whose applications have no build commands is not built by the
//!    engine but assembled ([`assemble`]: its base plus one layer, normalized the same way) and
//!    published; when pushing, an engine that does not answer is no error: those containers are
//!    still built, and every other one is reported [`Outcome::NeedsEngine`];
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
//! - A failure of the whole run still returns what was done before it ([`ApplyFailure::report`]).

pub mod assemble;
pub mod check;
pub mod pin;
pub mod publish;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::context::{dockerfile::local_image, ContextError};
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::graph::Plan;
use crate::hash::{BasePin, BasePins, Fingerprint, InputHash};
use crate::model::{ContainerKind, Cookbook, Name, Tagging};
use crate::oci::{Digest, WrittenReference};
use crate::registry::{Credential, RegistryClient, RegistryError, Repository};
use crate::state::lock::{self as lockfile, Lock, LockError, LockedImage};

pub use crate::image::{LABEL_CONTAINER, LABEL_INPUT_HASH, LABEL_PROJECT};

#[derive(Debug, Clone)]
pub struct Options {
    /// Builds at once (at least 1).
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
}

/// What one container's part of the run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Built {
        millis: u64,
    },
    Cached {
        source: &'static str,
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
    pub outcome: Outcome,
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
    /// Every container built or cached, and the run not cancelled.
    pub fn ok(&self) -> bool {
        !self.cancelled && self.containers.values().all(|c| c.outcome.succeeded())
    }

    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.containers.values().filter(|c| f(&c.outcome)).count()
    }
}

impl Outcome {
    /// Built or cached: the image exists.
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Built { .. } | Outcome::Cached { .. })
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
        source: &'a str,
    },
    Started {
        name: &'a Name,
        wave: usize,
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
    /// Not built: it needs the Docker engine, which does not answer ([`Outcome::NeedsEngine`]).
    NeedsEngine {
        name: &'a Name,
        reason: &'a str,
    },
    /// The engine does not answer: the run goes on without it, assembling what it can.
    WithoutEngine {
        why: &'a str,
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

/// A failure of the whole run (as opposed to one container's).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot push: the cookbook sets no packaging.registry")]
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
    #[error("cannot start the async runtime: {source}")]
    Runtime { source: std::io::Error },
    #[error("image {image} is not in the local engine, and there is no registry to pull it from")]
    LocalImageMissing { image: String },
    /// Containers that need an engine were not built: the engine does not answer (exit 3).
    #[error("not built without a Docker engine: {containers} (the engine does not answer)")]
    EngineNeeded { containers: String },
    /// Boxed: it names the reference and its containers, and would make every result large.
    #[error(transparent)]
    Pin(Box<pin::PinError>),
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
    pub report: Report,
    #[source]
    pub error: ApplyError,
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
    /// Cancels the run (see the module header). The caller decides when: `cookbook apply`
    /// cancels it on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
}

struct Run<'a, E: Engine> {
    job: &'a Job<'a>,
    engine: &'a E,
    registry: Option<&'a RegistryClient>,
    credentials: Option<Credential>,
    /// What the up-front lookups found ([`check::lookup_all`]).
    found: BTreeMap<Name, check::Found>,
    /// Why the run has no engine, when it goes on without one (pushing, engine unreachable).
    engine_down: Option<String>,
    /// What assemblies have read of their bases ([`assemble::BaseCache`]).
    bases: assemble::BaseCache,
    reporter: &'a dyn Reporter,
    stop: AtomicBool,
}

/// The mutable tags `packaging.tagging` asks for.
pub fn policy_tags(cookbook: &Cookbook, revision: Option<&str>) -> Vec<String> {
    let mut tags = Vec::new();
    match cookbook.packaging.tagging {
        Tagging::ContentHash => {}
        Tagging::GitSha => tags.extend(revision.map(|r| r[..r.len().min(12)].to_owned())),
        Tagging::Semver => tags.extend(cookbook.packaging.version.clone()),
    }
    if cookbook.packaging.latest {
        tags.push("latest".to_owned());
    }
    tags
}

fn parse_repo(reference: &str) -> Result<Repository, ApplyError> {
    Repository::parse(reference).map_err(|e| ApplyError::BadRepository {
        reference: reference.to_owned(),
        reason: e.to_string(),
    })
}

/// The environment's Docker engine (`DOCKER_HOST` or the default socket) and, when pushing, a
/// registry client. When pushing, an engine that cannot be reached is not an error here: the
/// run goes on without it ([`assemble`]), and the third value says why it has none.
async fn connect(
    push: bool,
) -> Result<
    (
        crate::engine::DockerEngine,
        Option<RegistryClient>,
        Option<String>,
    ),
    ApplyError,
> {
    let (engine, down) = match crate::engine::DockerEngine::connect_or_unanswered().await? {
        (_, Some(e)) if !push => return Err(e.into()),
        (engine, down) => (engine, down.map(|e| e.to_string())),
    };
    let registry = if push {
        Some(RegistryClient::new()?)
    } else {
        None
    };
    Ok((engine, registry, down))
}

/// How a run gets its fingerprints once its base images are pinned (the pins are an input of
/// hash_version 2): `cookbook apply` hashes through the state directory's stat cache.
pub type Fingerprinter<'f> =
    dyn Fn(&BasePins) -> Result<BTreeMap<Name, Fingerprint>, ApplyError> + 'f;

/// Runs an apply on its own async runtime against the Docker engine of the environment
/// (`DOCKER_HOST` or the default socket) and, when pushing, the registry: what `cookbook apply`
/// and `sync --apply` do. First the base images are pinned ([`pin::pin_plan`]; the new pins are
/// recorded in the lock before anything is built), then `job.fingerprints` is set to
/// `fingerprint(pins)`, then the run. The outer error is a run that could not start.
pub fn apply_with_docker(
    mut job: Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
) -> Result<Result<Report, ApplyFailure>, ApplyError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ApplyError::Runtime { source })?;
    runtime.block_on(async {
        let (engine, registry) =
            connect_and_fingerprint(&mut job, fingerprint, reporter, true).await?;
        Ok(apply(&job, &engine, registry.as_ref(), reporter).await)
    })
}

/// The start apply and its dry run share: connect, pin the bases (recording new pins in the lock
/// when `record`: an apply, not a dry run), and set `job.fingerprints` from the pins.
async fn connect_and_fingerprint(
    job: &mut Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
    record: bool,
) -> Result<(crate::engine::DockerEngine, Option<RegistryClient>), ApplyError> {
    let (engine, registry, down) = connect(job.options.push).await?;
    if let Some(why) = &down {
        reporter.event(Event::WithoutEngine { why });
    }
    let pins = pin::pin_plan(
        down.is_none().then_some(&engine),
        registry.as_ref(),
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
    Ok((engine, registry))
}

/// Whether a container's image exists already, by its content tag: in the registry when pushing
/// (its manifest digest, and its configuration's digest as the image id), else in the local
/// engine (its id). `None`: it has to be built. Only reads: `apply` and [`dry_run`] share it.
#[allow(clippy::type_complexity)]
async fn lookup<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
    name: &Name,
) -> Result<Option<(&'static str, (Option<String>, Option<String>))>, ApplyError> {
    let cookbook = job.cookbook;
    let hash = job.fingerprints[name].input_hash();
    if let Some(registry) = registry {
        let repo = parse_repo(&cookbook.repository(name))?;
        return Ok(registry.manifest_get(&repo, hash).await?.map(|manifest| {
            let image_id = manifest.config_digest().map(|d| d.to_string());
            ("registry", (Some(manifest.digest.to_string()), image_id))
        }));
    }
    let local = local_image(&cookbook.project.name, name, hash);
    Ok(engine
        .image_exists(&local)
        .await?
        .map(|id| ("local engine", (None, Some(id.to_string())))))
}

/// What an apply would do with one container ([`dry_run`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// `cached` (its content tag exists) or `build`.
    pub action: Action,
    /// Where the cached image was found: `registry` or `local engine`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub input_hash: String,
    /// The content-tagged reference.
    pub image: String,
    /// The content tag a build would push (`None` when cached or with `--no-push`).
    pub push: Option<String>,
    /// The mutable tags (`packaging.tagging`, `latest`) the run would move once every container
    /// succeeded: in the registry when pushing, else in the local engine.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Cached,
    Build,
}

/// [`dry_run`] on its own runtime, against the Docker engine of the environment and (when
/// pushing) the registry, as [`apply_with_docker`] would run: bases not pinned yet are resolved
/// (and reported) but not recorded.
pub fn dry_run_with_docker(
    mut job: Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<Name, Planned>, ApplyError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ApplyError::Runtime { source })?;
    runtime.block_on(async {
        let (engine, registry) =
            connect_and_fingerprint(&mut job, fingerprint, reporter, false).await?;
        dry_run(&job, &engine, registry.as_ref()).await
    })
}

/// `git-sha` tagging needs the commit of the cookbook's checkout; refused before any work.
fn needs_revision(job: &Job<'_>) -> Result<(), ApplyError> {
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

/// What [`apply`] would do, per container of the plan, without doing any of it: the same cache
/// check (by content tag, in the registry when pushing, else in the local engine); nothing is
/// built, pulled, pushed or tagged, and the lock is not written. (A container built FROM a
/// changed parent has a new input hash too, so the same lookup finds it missing.)
pub async fn dry_run<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
) -> Result<BTreeMap<Name, Planned>, ApplyError> {
    let cookbook = job.cookbook;
    needs_revision(job)?;
    if job.options.push && cookbook.packaging.registry.is_none() {
        return Err(ApplyError::NoRegistry);
    }
    if !job.options.push {
        engine.ping().await?;
    }
    let registry = registry.filter(|_| job.options.push);
    let tags = policy_tags(cookbook, job.options.revision.as_deref());
    let found = check::lookup_all(job, engine, registry).await?;
    let mut planned = BTreeMap::new();
    for name in job.plan.order() {
        let repo_text = cookbook.repository(name);
        let hash = job.fingerprints[name].input_hash();
        let source = found[name].as_ref().map(|(s, _)| *s);
        let image = format!("{repo_text}:{hash}");
        planned.insert(
            name.clone(),
            Planned {
                action: if source.is_some() {
                    Action::Cached
                } else {
                    Action::Build
                },
                source,
                input_hash: hash.to_owned(),
                push: (source.is_none() && registry.is_some()).then(|| image.clone()),
                image,
                tags: tags.iter().map(|t| format!("{repo_text}:{t}")).collect(),
            },
        );
    }
    Ok(planned)
}

/// Runs an apply. Per-container failures are in the report; an `Err` is a failure of the whole
/// run (an unreachable engine or registry, refused credentials, unusable state), carrying the
/// report of what was done before it. A cancelled run is `Ok`, with [`Report::cancelled`] set.
pub async fn apply<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
    reporter: &dyn Reporter,
) -> Result<Report, ApplyFailure> {
    let mut report = Report::default();
    match run(job, engine, registry, reporter, &mut report).await {
        Ok(()) => Ok(report),
        Err(error) => Err(ApplyFailure { report, error }),
    }
}

/// Before any build: a `git-sha` policy has a revision, the engine answers, every content tag
/// is looked up, and (when pushing) the registry grants push access to every repository the run
/// writes to ([`check`]: concurrently, once per repository). Returns the registry to use, its
/// credentials, what the lookups found, and why there is no engine (when pushing without one).
#[allow(clippy::type_complexity)]
async fn preflight<'r, E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&'r RegistryClient>,
) -> Result<
    (
        Option<&'r RegistryClient>,
        Option<Credential>,
        BTreeMap<Name, check::Found>,
        Option<String>,
    ),
    ApplyError,
> {
    let cookbook = job.cookbook;
    needs_revision(job)?;
    // Without an engine, a run that pushes still assembles what needs none.
    let engine_down = match engine.ping().await {
        Ok(()) => None,
        Err(e @ EngineError::Unreachable { .. }) if job.options.push => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let registry = if job.options.push {
        let client = registry.ok_or(ApplyError::NoRegistry)?;
        if cookbook.packaging.registry.is_none() {
            return Err(ApplyError::NoRegistry);
        }
        Some(client)
    } else {
        None
    };
    let found = check::lookup_all(job, engine, registry).await?;
    if let Some(client) = registry {
        check::check_push_access(client, &check::repositories_written(job, &found)?).await?;
    }
    let credentials = match (registry, job.plan.order().next()) {
        (Some(client), Some(first)) => {
            client
                .credential_for(&parse_repo(&cookbook.repository(first))?)
                .await?
        }
        _ => None,
    };
    Ok((registry, credentials, found, engine_down))
}

/// The run itself, filling `report` as it goes (so that a failure still returns it).
async fn run<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
    reporter: &dyn Reporter,
    report: &mut Report,
) -> Result<(), ApplyError> {
    let (registry, credentials, found, engine_down) = preflight(job, engine, registry).await?;
    reporter.event(Event::Checked {
        containers: job.plan.len(),
        waves: job.plan.waves().len(),
    });

    let run = Run {
        job,
        engine,
        registry,
        credentials,
        found,
        engine_down,
        bases: Default::default(),
        reporter,
        stop: AtomicBool::new(false),
    };
    let waves = job.plan.waves();
    for wave_index in 0..waves.len() {
        if job.cancel.is_cancelled() {
            report.cancelled = true;
            run.mark_rest(
                report,
                &waves[wave_index..],
                |reason| Outcome::Cancelled { reason },
                "not started: the run was cancelled",
            );
            break;
        }
        run.wave(report, &waves[wave_index..], wave_index).await?;
    }
    if report
        .containers
        .values()
        .any(|c| matches!(c.outcome, Outcome::Cancelled { .. }))
    {
        report.cancelled = true;
    }

    if report.ok() {
        // Once started, the policy tags move as one step: a cancellation that arrives during it
        // waits for it, so the tags never point at two runs' images. Before it, nothing moves.
        if job.cancel.is_cancelled() {
            report.cancelled = true;
        } else {
            run.move_policy_tags(report).await?;
        }
    }
    if report.ok() || report.cancelled {
        report.lock_changed = run.write_lock(report).await?;
    }
    Ok(())
}

impl<E: Engine> Run<'_, E> {
    /// One wave (`waves[0]`; the later ones follow it): skips what needs a container that did
    /// not succeed, runs the rest, at most `jobs` at once. A failure of the whole run marks the
    /// later waves' containers not started and is returned after the wave's results are in.
    async fn wave(
        &self,
        report: &mut Report,
        waves: &[Vec<Name>],
        wave_index: usize,
    ) -> Result<(), ApplyError> {
        let wave = &waves[0];
        let mut ready = Vec::new();
        for name in wave {
            let blocked = self
                .job
                .plan
                .needs(name.as_str())
                .into_iter()
                .find(|(dep, _)| {
                    !report
                        .containers
                        .get(*dep)
                        .is_some_and(|r| r.outcome.succeeded())
                });
            match blocked {
                Some((dep, _)) => {
                    let reason = format!("needs {dep}, which did not succeed");
                    self.reporter.event(Event::Skipped {
                        name,
                        reason: &reason,
                    });
                    report.containers.insert(
                        name.clone(),
                        self.skipped(name, Outcome::Skipped { reason }),
                    );
                }
                None => ready.push(name),
            }
        }
        let results: Vec<(Name, Result<ContainerReport, ApplyError>)> = stream::iter(ready)
            .map(|name| async { (name.clone(), self.container(name, wave_index).await) })
            .buffer_unordered(self.job.options.jobs.max(1))
            .collect()
            .await;
        let mut first_error = None;
        for (name, result) in results {
            let entry = match result {
                Ok(entry) => entry,
                Err(e) => {
                    let entry = self.skipped(
                        &name,
                        Outcome::Failed {
                            reason: e.to_string(),
                        },
                    );
                    first_error.get_or_insert(e);
                    entry
                }
            };
            report.containers.insert(name, entry);
        }
        if let Some(e) = first_error {
            self.mark_rest(
                report,
                &waves[1..],
                |reason| Outcome::Skipped { reason },
                "not started: the run stopped on an error",
            );
            return Err(e);
        }
        Ok(())
    }

    /// The report of a container that produced no image.
    fn skipped(&self, name: &Name, outcome: Outcome) -> ContainerReport {
        let fp = &self.job.fingerprints[name];
        ContainerReport {
            outcome,
            input_hash: fp.input_hash().to_owned(),
            image: format!("{}:{}", self.job.cookbook.repository(name), fp.input_hash()),
            tags: Vec::new(),
            digest: None,
            image_id: None,
            log: Vec::new(),
        }
    }

    /// Gives every container of `waves` that has no outcome yet the outcome `make(reason)`.
    fn mark_rest(
        &self,
        report: &mut Report,
        waves: &[Vec<Name>],
        make: impl Fn(String) -> Outcome,
        reason: &str,
    ) {
        for name in waves.iter().flatten() {
            if report.containers.contains_key(name) {
                continue;
            }
            let outcome = make(reason.to_owned());
            match &outcome {
                Outcome::Cancelled { .. } => self.reporter.event(Event::Cancelled { name, reason }),
                _ => self.reporter.event(Event::Skipped { name, reason }),
            }
            report
                .containers
                .insert(name.clone(), self.skipped(name, outcome));
        }
    }

    /// `future`, or `None` as soon as the run is cancelled (the future is dropped).
    async fn unless_cancelled<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.job.cancel.cancelled() => None,
            value = future => Some(value),
        }
    }

    fn labels(&self, name: &Name, input_hash: &str) -> BTreeMap<String, String> {
        image_labels(
            self.job.cookbook,
            name,
            input_hash,
            self.job.options.revision.as_deref(),
        )
    }

    /// One container: cached, or built (and pushed). `Err` only for whole-run failures.
    async fn container(&self, name: &Name, wave: usize) -> Result<ContainerReport, ApplyError> {
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        let local = local_image(&cookbook.project.name, name, hash);
        let repo_text = cookbook.repository(name);
        let content_ref = format!("{repo_text}:{hash}");
        let report =
            |outcome, (digest, image_id): (Option<String>, Option<String>), log| ContainerReport {
                outcome,
                input_hash: hash.to_owned(),
                image: content_ref.clone(),
                tags: vec![content_ref.clone()],
                digest,
                image_id,
                log,
            };
        let cancelled = |reason: &str| {
            self.reporter.event(Event::Cancelled { name, reason });
            Ok(report(
                Outcome::Cancelled {
                    reason: reason.to_owned(),
                },
                (None, None),
                Vec::new(),
            ))
        };
        if self.job.cancel.is_cancelled() {
            return cancelled("not started: the run was cancelled");
        }
        if self.stop.load(Ordering::SeqCst) {
            let reason = "not started: an earlier container failed (--keep-going builds independent containers)".to_owned();
            self.reporter.event(Event::Skipped {
                name,
                reason: &reason,
            });
            return Ok(report(
                Outcome::Skipped { reason },
                (None, None),
                Vec::new(),
            ));
        }

        // Cached?
        let Some(cached) = self
            .unless_cancelled(self.cached(name, &local, &repo_text))
            .await
        else {
            return cancelled("not started: the run was cancelled");
        };
        if let Some((source, ids)) = cached? {
            self.reporter.event(Event::Cached { name, source });
            return Ok(report(Outcome::Cached { source }, ids, Vec::new()));
        }

        // Assembled without an engine when nothing needs to run (context/assembly.rs).
        let assembly = crate::context::assembly::plan(cookbook, name);
        if let (None, Some(down)) = (&assembly, &self.engine_down) {
            let why = crate::context::assembly::needs_engine(cookbook, name).unwrap_or_default();
            return Ok(self.needs_engine(name, format!("{why}; {down}"), report));
        }
        self.reporter.event(Event::Started { name, wave });
        let started = Instant::now();
        let result = match assembly {
            Some(assembly) => {
                self.assemble(name, assembly, &local, &repo_text, started)
                    .await
            }
            None => self.build(name, &local, &repo_text, started).await,
        };
        match result {
            Ok(ids) => {
                let millis = started.elapsed().as_millis() as u64;
                Ok(report(Outcome::Built { millis }, ids, Vec::new()))
            }
            Err(Failure::NeedsEngine { reason }) => Ok(self.needs_engine(name, reason, report)),
            Err(Failure::Run(e)) => Err(e),
            Err(Failure::Cancelled) => cancelled("cancelled while building"),
            Err(Failure::Container { reason, log }) => {
                if !self.job.options.keep_going {
                    self.stop.store(true, Ordering::SeqCst);
                }
                self.reporter.event(Event::Failed {
                    name,
                    reason: &reason,
                    log: &log,
                });
                Ok(report(Outcome::Failed { reason }, (None, None), log))
            }
        }
    }

    /// The report of a container not built for want of an engine, announced.
    fn needs_engine(
        &self,
        name: &Name,
        why: String,
        report: impl FnOnce(Outcome, (Option<String>, Option<String>), Vec<String>) -> ContainerReport,
    ) -> ContainerReport {
        let reason = format!("needs a Docker engine: {why}");
        self.reporter.event(Event::NeedsEngine {
            name,
            reason: &reason,
        });
        report(Outcome::NeedsEngine { reason }, (None, None), Vec::new())
    }

    /// Assembles a container that needs no engine ([`assemble`]), then publishes it (or, with
    /// `--no-push`, loads it into the engine). Returns the manifest digest (when pushed) and the
    /// image id.
    async fn assemble(
        &self,
        name: &Name,
        assembly: crate::context::assembly::Assembly,
        local: &str,
        repo_text: &str,
        started: Instant,
    ) -> Result<(Option<String>, Option<String>), Failure> {
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        let source =
            assemble::base_source(cookbook, fp, self.registry.is_some()).map_err(Failure::Run)?;
        if let (assemble::BaseSource::Engine { image }, Some(down)) = (&source, &self.engine_down) {
            return Err(Failure::NeedsEngine {
                reason: format!("its base image {image} is in a local engine only; {down}"),
            });
        }
        if let (Some(parent), None) = (
            self.job.cookbook.containers[name].build_parent(),
            self.registry,
        ) {
            self.unless_cancelled(self.ensure_parent(parent))
                .await
                .ok_or(Failure::Cancelled)??;
        }
        self.reporter.event(Event::Line {
            name,
            line: "assembling from the context: no build commands, no engine needed",
        });
        let assembled = self
            .unless_cancelled(assemble::assemble(
                self.engine,
                self.registry,
                &source,
                Arc::new(fp.clone()),
                assembly,
                self.labels(name, hash),
                &self.bases,
            ))
            .await
            .ok_or(Failure::Cancelled)?
            .map_err(Failure::publish)?;
        self.save_explain(name).await.map_err(Failure::Run)?;
        self.reporter.event(Event::Built {
            name,
            millis: started.elapsed().as_millis() as u64,
        });
        let normalized = &assembled.normalized;
        let image_id = Some(normalized.image.config_digest().to_string());
        let Some(registry) = self.registry else {
            let names = self.local_names(local, repo_text, hash);
            self.unless_cancelled(publish::load(self.engine, normalized, &names))
                .await
                .ok_or(Failure::Cancelled)?
                .map_err(Failure::publish)?;
            return Ok((None, image_id));
        };
        let digest = self
            .push(
                registry,
                name,
                repo_text,
                normalized,
                assembled.base_repo.as_ref(),
            )
            .await?;
        Ok((Some(digest), image_id))
    }

    /// The names a built image gets in the engine: its local, content-addressed one, and its
    /// registry name under the content tag when the cookbook has a registry.
    fn local_names(&self, local: &str, repo_text: &str, hash: &str) -> Vec<String> {
        let mut names = vec![local.to_owned()];
        if self.job.cookbook.packaging.registry.is_some() {
            names.push(format!("{repo_text}:{hash}"));
        }
        names
    }

    /// Publishes a normalized image under its content tag ([`publish::publish`], the base's
    /// blobs mounted or copied from `mount_from`) and reports it; returns the manifest digest.
    async fn push(
        &self,
        registry: &RegistryClient,
        name: &Name,
        repo_text: &str,
        normalized: &publish::Normalized,
        mount_from: Option<&Repository>,
    ) -> Result<String, Failure> {
        let hash = self.job.fingerprints[name].input_hash();
        let repo = parse_repo(repo_text).map_err(Failure::Run)?;
        let digest = self
            .unless_cancelled(publish::publish(
                registry, &repo, hash, normalized, mount_from,
            ))
            .await
            .ok_or(Failure::Cancelled)?
            .map_err(Failure::publish)?;
        let reference = format!("{repo_text}:{hash}");
        self.reporter.event(Event::Pushed {
            name,
            reference: &reference,
            digest: digest.as_str(),
        });
        Ok(digest.to_string())
    }

    /// Whether the image exists already ([`lookup`]); an image found in the local engine also
    /// gets its registry name, for the pushes and tags that follow.
    #[allow(clippy::type_complexity)]
    async fn cached(
        &self,
        name: &Name,
        local: &str,
        repo_text: &str,
    ) -> Result<Option<(&'static str, (Option<String>, Option<String>))>, ApplyError> {
        let found = match self.found.get(name) {
            Some(found) => found.clone(),
            None => lookup(self.job, self.engine, self.registry, name).await?,
        };
        if let Some(("local engine", _)) = found {
            if self.job.cookbook.packaging.registry.is_some() {
                let hash = self.job.fingerprints[name].input_hash();
                self.engine.tag(local, repo_text, hash).await?;
            }
        }
        Ok(found)
    }

    /// Makes sure the parent's image is in the local engine under its local name.
    /// Makes sure a container's image is in the local engine under its local, content-addressed
    /// name (`cookbook.local/<project>/<name>:<hash>`), pulling it by its immutable content tag
    /// when only the registry has it. Returns that name, or `None` when it is missing and there is
    /// no registry to pull from.
    async fn ensure_local(&self, name: &Name) -> Result<Option<String>, ApplyError> {
        let cookbook = self.job.cookbook;
        let hash = self.job.fingerprints[name].input_hash();
        let local = local_image(&cookbook.project.name, name, hash);
        if self.engine.image_exists(&local).await?.is_some() {
            return Ok(Some(local));
        }
        if self.registry.is_none() {
            return Ok(None);
        }
        let repo_text = cookbook.repository(name);
        self.engine
            .pull(&parse_repo(&repo_text)?, hash, self.credentials.as_ref())
            .await?;
        let (local_repo, local_tag) = local.rsplit_once(':').expect("local names have a tag");
        self.engine
            .tag(&format!("{repo_text}:{hash}"), local_repo, local_tag)
            .await?;
        Ok(Some(local))
    }

    /// The parent of a `container:` base, in the local engine for the child's FROM line.
    async fn ensure_parent(&self, parent: &Name) -> Result<(), Failure> {
        match self.ensure_local(parent).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Failure::Container {
                reason: format!("parent image of {parent} is not in the local engine"),
                log: Vec::new(),
            }),
            Err(ApplyError::Engine(e)) => Err(Failure::engine(e)),
            Err(e) => Err(Failure::Run(e)),
        }
    }

    /// Writes the context, builds, pushes. Returns the manifest digest (when pushed) and the
    /// image id.
    async fn build(
        &self,
        name: &Name,
        local: &str,
        repo_text: &str,
        started: Instant,
    ) -> Result<(Option<String>, Option<String>), Failure> {
        let cookbook = self.job.cookbook;
        let container = &cookbook.containers[name];
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        if let Some(parent) = container.build_parent() {
            self.unless_cancelled(self.ensure_parent(parent))
                .await
                .ok_or(Failure::Cancelled)??;
        }

        // This run's own file, removed when `context` drops, whichever way this function ends.
        let context = {
            let (prints, name) = (Arc::clone(&self.job.fingerprints), name.clone());
            blocking(move || write_context(&prints[&name]))
                .await
                .map_err(Failure::Run)?
        };
        if self.job.cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }

        let (build_args, target) = match &container.kind {
            ContainerKind::Dockerfile(d) => (d.build_args.clone(), d.target.clone()),
            // Generated Dockerfiles carry their build args as ARG defaults.
            ContainerKind::Generated(_) => (BTreeMap::new(), None),
        };
        let tags = self.local_names(local, repo_text, hash);
        let request = BuildRequest {
            context: context.path().to_path_buf(),
            dockerfile: fp.context.dockerfile.clone(),
            build_args,
            target,
            labels: self.labels(name, hash),
            tags: tags.clone(),
            pull: false,
            no_cache: false,
        };
        let progress = |line: &str| self.reporter.event(Event::Line { name, line });
        let outcome = match self
            .engine
            .build_until(&request, &progress, &self.job.cancel)
            .await
        {
            Ok(o) => o,
            Err(EngineError::BuildFailed { log, message }) => {
                return Err(Failure::Container {
                    reason: message,
                    log,
                })
            }
            Err(EngineError::Cancelled) => return Err(Failure::Cancelled),
            Err(e) => return Err(Failure::engine(e)),
        };
        drop(context);
        self.save_explain(name).await.map_err(Failure::Run)?;
        self.reporter.event(Event::Built {
            name,
            millis: started.elapsed().as_millis() as u64,
        });

        // Normalized, loaded back under the same names (the local one is what a `container:`
        // child builds FROM), then published through the registry API (see publish.rs).
        let normalized = self
            .unless_cancelled(self.normalize(name, outcome.image_id.as_str()))
            .await
            .ok_or(Failure::Cancelled)??;
        self.unless_cancelled(publish::load(self.engine, &normalized, &tags))
            .await
            .ok_or(Failure::Cancelled)?
            .map_err(Failure::publish)?;
        let image_id = Some(normalized.image.config_digest().to_string());
        match self.registry {
            Some(registry) => {
                let parent_repo = match container.build_parent() {
                    Some(parent) => {
                        Some(parse_repo(&cookbook.repository(parent)).map_err(Failure::Run)?)
                    }
                    None => None,
                };
                let digest = self
                    .push(registry, name, repo_text, &normalized, parent_repo.as_ref())
                    .await?;
                Ok((Some(digest), image_id))
            }
            None => Ok((None, image_id)),
        }
    }

    /// Exports the built image `image_id` and normalizes it, carrying its base's layers.
    async fn normalize(&self, name: &Name, image_id: &str) -> Result<publish::Normalized, Failure> {
        let (base, built) = self
            .base_of(name, image_id)
            .await
            .map_err(Failure::engine)?;
        let base_ids = publish::base_diff_ids(self.engine, base.as_deref(), &built)
            .await
            .map_err(Failure::engine)?;
        publish::normalize_image(self.engine, image_id, base_ids)
            .await
            .map_err(Failure::publish)
    }

    /// The image `name` is built FROM (its Dockerfile's final stage) and the layers of what was
    /// built.
    async fn base_of(
        &self,
        name: &Name,
        image_id: &str,
    ) -> Result<(Option<String>, Vec<String>), EngineError> {
        let base = base_of(self.job.cookbook, &self.job.fingerprints[name]);
        let built = self
            .engine
            .inspect_image(image_id)
            .await?
            .map(|info| info.layers)
            .unwrap_or_default();
        Ok((base, built))
    }

    /// Keeps the explain document of what was built, for `verify`'s file-level differences. On a
    /// blocking thread: for a 100,000-file context it is ~15 MB of JSON.
    async fn save_explain(&self, name: &Name) -> Result<(), ApplyError> {
        let (prints, name) = (Arc::clone(&self.job.fingerprints), name.clone());
        let dir = self.job.state_dir.join("explain").join(name.as_str());
        blocking(move || {
            let fp = &prints[&name];
            let path = dir.join(format!("{}.json", fp.input_hash()));
            let err = |source| ApplyError::State {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(err)?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".explain-")
                .tempfile_in(&dir)
                .map_err(err)?;
            std::io::Write::write_all(&mut tmp, fp.manifest().to_pretty_json().as_bytes())
                .map_err(err)?;
            tmp.persist(&path).map_err(|e| err(e.error))?;
            Ok(())
        })
        .await
    }

    /// Moves the mutable tags, only after every container succeeded. When pushing, in the
    /// registry (a manifest GET and PUT, so the digest is the content tag's and nothing is
    /// pulled); with `--no-push`, in the local engine.
    async fn move_policy_tags(&self, report: &mut Report) -> Result<(), ApplyError> {
        let cookbook = self.job.cookbook;
        let tags = policy_tags(cookbook, self.job.options.revision.as_deref());
        if tags.is_empty() {
            return Ok(());
        }
        for (name, entry) in report.containers.iter_mut() {
            let hash = entry.input_hash.clone();
            let repo_text = cookbook.repository(name);
            let target = match self.registry {
                Some(registry) => TagTarget::Registry(registry, parse_repo(&repo_text)?),
                None => TagTarget::Local(self.ensure_local(name).await?.ok_or_else(|| {
                    ApplyError::LocalImageMissing {
                        image: local_image(&cookbook.project.name, name, &hash),
                    }
                })?),
            };
            for tag in &tags {
                match &target {
                    TagTarget::Registry(registry, repo) => {
                        registry.retag(repo, &hash, tag).await?;
                    }
                    TagTarget::Local(image) => self.engine.tag(image, &repo_text, tag).await?,
                }
                let reference = format!("{repo_text}:{tag}");
                self.reporter.event(Event::Tagged {
                    name,
                    reference: &reference,
                });
                entry.tags.push(reference);
            }
        }
        Ok(())
    }

    /// Merges this run's finished containers (all of them, or what completed before a
    /// cancellation) into `cookbook.lock`, under its file lock, on a blocking thread.
    async fn write_lock(&self, report: &Report) -> Result<bool, ApplyError> {
        let path = Lock::path_for(self.job.cookbook_file);
        let cookbook = self.job.cookbook;
        // A site's apply updates its containers and keeps the others'; containers the cookbook
        // no longer has are dropped.
        let update = lockfile::Update {
            project: cookbook.project.name.clone(),
            containers_in_cookbook: cookbook.containers.keys().cloned().collect(),
            bases_in_cookbook: pin::bases_in_cookbook(cookbook),
            // The pins this run's fingerprints (and so its builds) used.
            bases: self
                .job
                .fingerprints
                .values()
                .filter_map(|fp| match &fp.external_base {
                    Some((reference, Some(pin))) => Some((reference.clone(), pin.clone())),
                    _ => None,
                })
                .collect(),
            entries: report
                .containers
                .iter()
                .filter(|(_, c)| c.outcome.succeeded())
                .map(|(name, c)| Ok((name.clone(), locked_image(c)?)))
                .collect::<Result<_, ApplyError>>()?,
        };
        Ok(blocking(move || lockfile::update(&path, &update)).await?)
    }
}

/// A finished container's lock entry: the report's names and digests, as typed values. They
/// are what this run made and the registry and engine answered (already parsed once there), so
/// a value that does not parse is a repository name the cookbook allows but Docker does not.
fn locked_image(c: &ContainerReport) -> Result<LockedImage, ApplyError> {
    let reference = |text: &str| {
        WrittenReference::parse(text).map_err(|e| ApplyError::BadRepository {
            reference: text.to_owned(),
            reason: e.to_string(),
        })
    };
    let digest = |text: &Option<String>| {
        text.as_deref()
            .map(|d| {
                Digest::parse(d).map_err(|e| ApplyError::BadRepository {
                    reference: c.image.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    Ok(LockedImage {
        input_hash: InputHash::parse(&c.input_hash).ok_or_else(|| ApplyError::BadRepository {
            reference: c.image.clone(),
            reason: format!("`{}` is not an input hash", c.input_hash),
        })?,
        image: reference(&c.image)?,
        tags: c
            .tags
            .iter()
            .map(|t| reference(t))
            .collect::<Result<_, _>>()?,
        digest: digest(&c.digest)?,
        image_id: digest(&c.image_id)?,
    })
}

/// Where a container's mutable tags move: its repository in the registry (from the content
/// tag), or its image in the local engine.
enum TagTarget<'r> {
    Registry(&'r RegistryClient, Repository),
    Local(String),
}

/// The labels every image cookbook builds carries (`verify --rebuild` builds with the same).
pub fn image_labels(
    cookbook: &Cookbook,
    name: &Name,
    input_hash: &str,
    revision: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_INPUT_HASH.to_owned(), input_hash.to_owned()),
        (LABEL_PROJECT.to_owned(), cookbook.project.name.to_string()),
        (LABEL_CONTAINER.to_owned(), name.to_string()),
        (
            "org.opencontainers.image.title".to_owned(),
            name.to_string(),
        ),
    ]);
    if let Some(source) = &cookbook.project.repository {
        labels.insert("org.opencontainers.image.source".to_owned(), source.clone());
    }
    if let Some(rev) = revision {
        labels.insert(
            "org.opencontainers.image.revision".to_owned(),
            rev.to_owned(),
        );
    }
    if let Some(version) = &cookbook.packaging.version {
        labels.insert(
            "org.opencontainers.image.version".to_owned(),
            version.clone(),
        );
    }
    labels
}

/// The image a container's build starts FROM: its Dockerfile's final stage (generated
/// Dockerfiles name a `container:` parent by its local name), with the build arguments.
pub fn base_of(cookbook: &Cookbook, fp: &Fingerprint) -> Option<String> {
    let text = fp.recipe.get("dockerfile_text")?.as_str()?;
    match &cookbook.containers.get(&fp.container)?.kind {
        ContainerKind::Dockerfile(d) => {
            publish::base_reference(text, &d.build_args, d.target.as_deref())
        }
        ContainerKind::Generated(g) => publish::base_reference(text, &g.build_args, None),
    }
}

/// Runs `f` on tokio's blocking threads; a panic there is resumed here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Writes a container's context to a temporary file of this run: a unique name in the system
/// temp dir (`$TMPDIR`), outside every checkout, deleted when the returned handle drops.
pub fn write_context(fp: &Fingerprint) -> Result<tempfile::NamedTempFile, ApplyError> {
    let state = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ApplyError::State { path, source }
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!("cookbook-context-{}-", fp.container))
        .suffix(".tar")
        .tempfile()
        .map_err(state(&std::env::temp_dir()))?;
    let path = tmp.path().to_path_buf();
    let writer = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let writer = crate::context::tar::write_named(&fp.entries, &fp.digests, writer, &path)?;
    writer
        .into_inner()
        .map_err(|e| state(&path)(e.into_error()))
}

/// Why a container's work stopped: its own failure, or the whole run's.
enum Failure {
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
    fn publish(e: publish::PublishError) -> Failure {
        match e {
            publish::PublishError::Engine(e) => Failure::engine(e),
            publish::PublishError::Context(e) => Failure::Run(e.into()),
            publish::PublishError::Registry(
                e @ (RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. }),
            ) => Failure::Run(e.into()),
            other => Failure::Container {
                reason: other.to_string(),
                log: Vec::new(),
            },
        }
    }

    /// An engine error during one container's work: an unreachable engine ends the run (exit 3);
    /// anything else fails the container.
    fn engine(e: EngineError) -> Failure {
        match e {
            EngineError::Unreachable { .. } => Failure::Run(e.into()),
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
