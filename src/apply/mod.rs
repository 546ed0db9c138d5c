//! `apply`: build, tag and push a plan's images, bottom-up, building nothing that exists.
//!
//! Pipeline position: fingerprints → **contexts written and built, images pushed** → lock.
//! This module is orchestration over two edges: an [`Engine`] (builds, tags, pushes) and a
//! [`RegistryClient`] (is this content tag published? may we push?). It prints nothing: every
//! step is an [`Event`] for the caller's [`Reporter`].
//!
//! Order of work:
//! 1. the engine answers, and (when pushing) the registry grants push access to every
//!    repository — before any long build, so an auth failure costs seconds, not builds;
//! 2. wave by wave, at most `jobs` containers at once: a container whose content tag exists
//!    (in the registry when pushing, else in the local engine) is *cached*; otherwise its
//!    context is written and built, FROM exactly the image its parent produced or found (the
//!    parent's `cookbook.local/<project>/<parent>:<input_hash>`, pulled by content tag if it is
//!    only in the registry), then pushed by content tag;
//! 3. a failed container skips everything that needs it; without `keep_going` nothing new starts;
//! 4. only when every container succeeded are the mutable policy tags (git sha, version,
//!    `latest`) moved, and the lock written.
//!
//! Content tags are immutable by construction (the tag *is* the input hash), so pushing them as
//! each build finishes is safe: a failed run leaves published only images that are correct for
//! their inputs, and no mutable tag moved.

pub mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::context::{dockerfile::local_image, ContextError};
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::graph::Plan;
use crate::hash::Fingerprint;
use crate::model::{ContainerKind, Cookbook, Name, Tagging};
use crate::registry::{Credential, RegistryClient, RegistryError, Repository};
use lock::{Lock, LockError, LockedImage};

/// The label keys every image carries.
pub const LABEL_INPUT_HASH: &str = "dev.cookbook.input-hash";
pub const LABEL_PROJECT: &str = "dev.cookbook.project";
pub const LABEL_CONTAINER: &str = "dev.cookbook.container";

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
}

/// What one container's part of the run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Built { millis: u64 },
    Cached { source: &'static str },
    Failed { reason: String },
    Skipped { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub input_hash: String,
    /// The content-tagged reference.
    pub image: String,
    pub tags: Vec<String>,
    pub digest: Option<String>,
    /// The whole build log of a failed build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub containers: BTreeMap<Name, ContainerReport>,
    /// Whether `cookbook.lock` was rewritten.
    pub lock_changed: bool,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.containers
            .values()
            .all(|c| matches!(c.outcome, Outcome::Built { .. } | Outcome::Cached { .. }))
    }

    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.containers.values().filter(|c| f(&c.outcome)).count()
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
    Tagged {
        name: &'a Name,
        reference: &'a str,
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
    #[error("image {image} is not in the local engine, and there is no registry to pull it from")]
    LocalImageMissing { image: String },
}

/// Everything a run needs.
pub struct Job<'a> {
    pub cookbook: &'a Cookbook,
    pub plan: &'a Plan,
    pub fingerprints: &'a BTreeMap<Name, Fingerprint>,
    /// The cookbook file (the lock goes beside it).
    pub cookbook_file: &'a Path,
    pub state_dir: &'a Path,
    pub options: Options,
}

struct Run<'a, E: Engine> {
    job: &'a Job<'a>,
    engine: &'a E,
    registry: Option<&'a RegistryClient>,
    credentials: Option<Credential>,
    reporter: &'a dyn Reporter,
    stop: AtomicBool,
}

/// The repository a container's image is published to, or its local name without a registry.
pub fn repository(cookbook: &Cookbook, name: &Name) -> String {
    match &cookbook.packaging.registry {
        Some(r) => format!("{}/{name}", r.trim_end_matches('/')),
        None => format!(
            "{}/{}/{name}",
            crate::context::dockerfile::LOCAL_REPOSITORY_PREFIX,
            cookbook.project.name
        ),
    }
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

/// Runs an apply. Per-container failures are in the report; an `Err` is a failure of the whole
/// run (an unreachable engine or registry, refused credentials, unusable state).
pub async fn apply<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
    reporter: &dyn Reporter,
) -> Result<Report, ApplyError> {
    let cookbook = job.cookbook;
    if cookbook.packaging.tagging == Tagging::GitSha && job.options.revision.is_none() {
        return Err(ApplyError::NoRevision {
            dir: job
                .cookbook_file
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        });
    }
    engine.ping().await?;
    let registry = if job.options.push {
        let client = registry.ok_or(ApplyError::NoRegistry)?;
        if cookbook.packaging.registry.is_none() {
            return Err(ApplyError::NoRegistry);
        }
        for name in job.plan.order() {
            client
                .check_push_access(&parse_repo(&repository(cookbook, name))?)
                .await?;
        }
        Some(client)
    } else {
        None
    };
    let credentials = match (registry, job.plan.order().next()) {
        (Some(client), Some(first)) => {
            client
                .credential_for(&parse_repo(&repository(cookbook, first))?)
                .await?
        }
        _ => None,
    };
    reporter.event(Event::Checked {
        containers: job.plan.len(),
        waves: job.plan.waves().len(),
    });

    let run = Run {
        job,
        engine,
        registry,
        credentials,
        reporter,
        stop: AtomicBool::new(false),
    };
    let mut report = Report::default();
    for (wave_index, wave) in job.plan.waves().iter().enumerate() {
        let mut ready = Vec::new();
        for name in wave {
            let blocked = job.plan.needs(name.as_str()).into_iter().find(|(dep, _)| {
                !matches!(
                    report.containers.get(*dep).map(|r| &r.outcome),
                    Some(Outcome::Built { .. } | Outcome::Cached { .. })
                )
            });
            match blocked {
                Some((dep, _)) => {
                    let reason = format!("needs {dep}, which did not succeed");
                    reporter.event(Event::Skipped {
                        name,
                        reason: &reason,
                    });
                    report
                        .containers
                        .insert(name.clone(), run.skipped(name, reason));
                }
                None => ready.push(name),
            }
        }
        let results: Vec<(Name, Result<ContainerReport, ApplyError>)> = stream::iter(ready)
            .map(|name| async { (name.clone(), run.container(name, wave_index).await) })
            .buffer_unordered(job.options.jobs.max(1))
            .collect()
            .await;
        for (name, result) in results {
            report.containers.insert(name, result?);
        }
    }

    if report.ok() {
        run.move_policy_tags(&mut report).await?;
    }
    if report.ok() {
        report.lock_changed = run.write_lock(&report)?;
    }
    Ok(report)
}

impl<E: Engine> Run<'_, E> {
    fn skipped(&self, name: &Name, reason: String) -> ContainerReport {
        let fp = &self.job.fingerprints[name];
        ContainerReport {
            outcome: Outcome::Skipped { reason },
            input_hash: fp.input_hash().to_owned(),
            image: format!(
                "{}:{}",
                repository(self.job.cookbook, name),
                fp.input_hash()
            ),
            tags: Vec::new(),
            digest: None,
            log: Vec::new(),
        }
    }

    fn labels(&self, name: &Name, input_hash: &str) -> BTreeMap<String, String> {
        let cookbook = self.job.cookbook;
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
        if let Some(rev) = &self.job.options.revision {
            labels.insert("org.opencontainers.image.revision".to_owned(), rev.clone());
        }
        if let Some(version) = &cookbook.packaging.version {
            labels.insert(
                "org.opencontainers.image.version".to_owned(),
                version.clone(),
            );
        }
        labels
    }

    /// One container: cached, or built (and pushed). `Err` only for whole-run failures.
    async fn container(&self, name: &Name, wave: usize) -> Result<ContainerReport, ApplyError> {
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        let local = local_image(&cookbook.project.name, name, hash);
        let repo_text = repository(cookbook, name);
        let content_ref = format!("{repo_text}:{hash}");
        let report = |outcome, digest: Option<String>, log| ContainerReport {
            outcome,
            input_hash: hash.to_owned(),
            image: content_ref.clone(),
            tags: vec![content_ref.clone()],
            digest,
            log,
        };
        if self.stop.load(Ordering::SeqCst) {
            let reason = "not started: an earlier container failed (--keep-going builds independent containers)".to_owned();
            self.reporter.event(Event::Skipped {
                name,
                reason: &reason,
            });
            return Ok(report(Outcome::Skipped { reason }, None, Vec::new()));
        }

        // Cached?
        if let Some(registry) = self.registry {
            let repo = parse_repo(&repo_text)?;
            if let Some(digest) = registry.manifest_head(&repo, hash).await? {
                self.reporter.event(Event::Cached {
                    name,
                    source: "registry",
                });
                return Ok(report(
                    Outcome::Cached { source: "registry" },
                    Some(digest.to_string()),
                    Vec::new(),
                ));
            }
        } else if let Some(id) = self.engine.image_exists(&local).await? {
            if cookbook.packaging.registry.is_some() {
                self.engine.tag(&local, &repo_text, hash).await?;
            }
            self.reporter.event(Event::Cached {
                name,
                source: "local engine",
            });
            return Ok(report(
                Outcome::Cached {
                    source: "local engine",
                },
                Some(id.to_string()),
                Vec::new(),
            ));
        }

        self.reporter.event(Event::Started { name, wave });
        let started = Instant::now();
        match self.build(name, fp, &local, &repo_text, started).await {
            Ok(digest) => {
                let millis = started.elapsed().as_millis() as u64;
                Ok(report(Outcome::Built { millis }, Some(digest), Vec::new()))
            }
            Err(Failure::Run(e)) => Err(e),
            Err(Failure::Container { reason, log }) => {
                if !self.job.options.keep_going {
                    self.stop.store(true, Ordering::SeqCst);
                }
                self.reporter.event(Event::Failed {
                    name,
                    reason: &reason,
                    log: &log,
                });
                Ok(report(Outcome::Failed { reason }, None, log))
            }
        }
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
        let repo_text = repository(cookbook, name);
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

    async fn build(
        &self,
        name: &Name,
        fp: &Fingerprint,
        local: &str,
        repo_text: &str,
        started: Instant,
    ) -> Result<String, Failure> {
        let cookbook = self.job.cookbook;
        let container = &cookbook.containers[name];
        let hash = fp.input_hash();
        if let Some(parent) = container.build_parent() {
            self.ensure_parent(parent).await?;
        }

        let contexts = self.job.state_dir.join("contexts");
        std::fs::create_dir_all(&contexts).map_err(|source| {
            Failure::Run(ApplyError::State {
                path: contexts.clone(),
                source,
            })
        })?;
        let tar_path = contexts.join(format!("{name}-{hash}.tar"));
        {
            let (entries, digests, path) =
                (fp.entries.clone(), fp.digests.clone(), tar_path.clone());
            tokio::task::spawn_blocking(move || {
                crate::context::tar::write_file(&entries, &digests, &path, false)
            })
            .await
            .expect("the tar writer does not panic")
            .map_err(|e| Failure::Run(e.into()))?;
        }
        let _cleanup = RemoveOnDrop(tar_path.clone());

        let (build_args, target) = match &container.kind {
            ContainerKind::Dockerfile(d) => (d.build_args.clone(), d.target.clone()),
            // Generated Dockerfiles carry their build args as ARG defaults.
            ContainerKind::Generated(_) => (BTreeMap::new(), None),
        };
        let mut tags = vec![local.to_owned()];
        if cookbook.packaging.registry.is_some() {
            tags.push(format!("{repo_text}:{hash}"));
        }
        let request = BuildRequest {
            context: tar_path.clone(),
            dockerfile: fp.context.dockerfile.clone(),
            build_args,
            target,
            labels: self.labels(name, hash),
            tags,
            pull: false,
        };
        let progress = |line: &str| self.reporter.event(Event::Line { name, line });
        let outcome = match self.engine.build(&request, &progress).await {
            Ok(o) => o,
            Err(EngineError::BuildFailed { log, message }) => {
                return Err(Failure::Container {
                    reason: message,
                    log,
                })
            }
            Err(e) => return Err(Failure::engine(e)),
        };
        self.save_explain(name, fp).map_err(Failure::Run)?;
        self.reporter.event(Event::Built {
            name,
            millis: started.elapsed().as_millis() as u64,
        });

        match self.registry {
            Some(_) => {
                let repo = parse_repo(repo_text).map_err(Failure::Run)?;
                let digest = self
                    .engine
                    .push(&repo, hash, self.credentials.as_ref())
                    .await
                    .map_err(Failure::engine)?;
                let reference = format!("{repo_text}:{hash}");
                self.reporter.event(Event::Pushed {
                    name,
                    reference: &reference,
                    digest: digest.as_str(),
                });
                Ok(digest.to_string())
            }
            None => Ok(outcome.image_id.to_string()),
        }
    }

    /// Keeps the explain document of what was built, for `verify`'s file-level differences.
    fn save_explain(&self, name: &Name, fp: &Fingerprint) -> Result<(), ApplyError> {
        let dir = self.job.state_dir.join("explain").join(name.as_str());
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
            let repo_text = repository(cookbook, name);
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

    fn write_lock(&self, report: &Report) -> Result<bool, ApplyError> {
        let path = Lock::path_for(self.job.cookbook_file);
        let cookbook = self.job.cookbook;
        let mut lock = match Lock::read(&path)? {
            Some(old)
                if old.project == cookbook.project.name.as_str()
                    && old.hash_version == crate::hash::HASH_VERSION =>
            {
                old
            }
            _ => Lock::new(cookbook.project.name.as_str()),
        };
        // A site's apply updates its containers and keeps the others'; containers the cookbook
        // no longer has are dropped.
        lock.containers
            .retain(|name, _| cookbook.containers.contains_key(name.as_str()));
        let known: BTreeSet<&Name> = report.containers.keys().collect();
        for name in known {
            let c = &report.containers[name];
            lock.containers.insert(
                name.to_string(),
                LockedImage {
                    input_hash: c.input_hash.clone(),
                    image: c.image.clone(),
                    tags: c.tags.clone(),
                    digest: c.digest.clone().unwrap_or_default(),
                },
            );
        }
        Ok(lock.write(&path)?)
    }
}

/// Where a container's mutable tags move: its repository in the registry (from the content
/// tag), or its image in the local engine.
enum TagTarget<'r> {
    Registry(&'r RegistryClient, Repository),
    Local(String),
}

/// Why a container's work stopped: its own failure, or the whole run's.
enum Failure {
    Container { reason: String, log: Vec<String> },
    Run(ApplyError),
}

impl Failure {
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

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
