//! One container's part of a run: cached (its content tag exists), or built through
//! [`crate::build`] — by an engine of the pool, or assembled without one — then loaded back and
//! published.
//!
//! A build runs on a slot of the pool ([`super::pool`]). In a pool, a build that fails because
//! its builder stopped answering is not the container's failure: the builder is marked down and
//! the build starts again on another. Which it was is asked of the builder itself, after the
//! failure: a transport error is its own, and any other failure (a step the engine reported
//! failed, an answer this client cannot use) counts as the builder's only when the builder then
//! no longer answers a ping — an engine shutting down cancels its builds, and the build stream
//! says "failed" before the socket goes away. A build step that failed on an engine that still
//! answers stays the cookbook's failure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::dry_run::lookup;
use super::error::{ApplyError, Failure};
use super::publish;
use super::report::{ContainerOutcome, ContainerReport, Event};
use super::run::Run;
use super::{check, parse_repo, CacheSource};
use crate::build::{self, blocking, Normalized};
use crate::context::dockerfile::local_image;
use crate::engine::{Engine, EngineError};
use crate::model::Name;
use crate::registry::{RegistryClient, Repository};

/// A container's manifest digest (when published) and image id (when known).
type Ids = (Option<String>, Option<String>);

const NO_IDS: Ids = (None, None);

/// What every report of one container carries: its input hash and content-tagged reference.
struct Entry {
    input_hash: String,
    image: String,
}

impl Entry {
    fn report(
        &self,
        outcome: ContainerOutcome,
        (digest, image_id): Ids,
        log: Vec<String>,
    ) -> ContainerReport {
        ContainerReport {
            outcome,
            input_hash: self.input_hash.clone(),
            image: self.image.clone(),
            tags: vec![self.image.clone()],
            digest,
            image_id,
            log,
            builder: None,
            attestations: None,
        }
    }
}

impl<E: Engine> Run<'_, E> {
    /// One container: cached (and, when the run signs, attested if it is not yet), or built
    /// (and pushed; its attestations queued, [`super::attest`]). `Err` only for whole-run
    /// failures.
    pub(super) async fn container(
        &self,
        name: &Name,
        wave: usize,
    ) -> Result<ContainerReport, ApplyError> {
        let cookbook = self.job.cookbook;
        let hash = self.job.fingerprints[name].input_hash();
        let local = local_image(&cookbook.project.name, name, hash);
        let repo_text = cookbook.repository(name);
        let entry = Entry {
            input_hash: hash.to_owned(),
            image: format!("{repo_text}:{hash}"),
        };
        if self.job.cancel.is_cancelled() {
            return Ok(self.cancelled(name, &entry, "not started: the run was cancelled"));
        }
        if self.stop.load(Ordering::SeqCst) {
            let reason = "not started: an earlier container failed (--keep-going builds independent containers)".to_owned();
            self.reporter.event(Event::Skipped {
                name,
                reason: &reason,
            });
            return Ok(entry.report(ContainerOutcome::Skipped { reason }, NO_IDS, Vec::new()));
        }

        // Cached?
        let Some(cached) = self
            .unless_cancelled(self.cached(name, &local, &repo_text))
            .await
        else {
            return Ok(self.cancelled(name, &entry, "not started: the run was cancelled"));
        };
        if let Some((source, ids)) = cached? {
            self.reporter.event(Event::Cached { name, source });
            match self.attest_found(name, source, &ids).await {
                Ok(()) => {}
                Err(Failure::Run(e)) => return Err(e),
                Err(Failure::Container { reason, .. } | Failure::NeedsEngine { reason }) => {
                    let reason = format!("published, not attested: {reason}");
                    self.reporter.event(Event::Failed {
                        name,
                        reason: &reason,
                        log: &[],
                    });
                    self.record_outcome(name, super::Attestations::Failed { error: reason });
                }
                Err(Failure::Cancelled) => {}
            }
            return Ok(entry.report(ContainerOutcome::Cached { source }, ids, Vec::new()));
        }

        // Assembled without an engine when nothing needs to run (context/assembly.rs).
        let assembly = crate::context::assembly::plan(cookbook, name);
        if let (None, Some(down)) = (&assembly, &self.engine_down) {
            let why = crate::context::assembly::needs_engine(cookbook, name).unwrap_or_default();
            return Ok(self.needs_engine(name, &entry, format!("{why}; {down}")));
        }
        let Some(assembly) = assembly else {
            return self
                .build_on_pool(name, &entry, &local, &repo_text, wave)
                .await;
        };
        self.reporter.event(Event::Started {
            name,
            wave,
            builder: None,
        });
        let started = Instant::now();
        let result = self
            .assemble(name, assembly, &local, &repo_text, started)
            .await;
        self.finished(name, &entry, started, result)
    }

    /// Builds `name` on a slot of the pool: its parent's builder when that one has a free slot,
    /// else the least busy ([`super::pool::choose`]); again on another when its builder stops
    /// answering ([`Run::builder_lost`]). When every builder has stopped, the container is not
    /// built for want of an engine (exit 3).
    async fn build_on_pool(
        &self,
        name: &Name,
        entry: &Entry,
        local: &str,
        repo_text: &str,
        wave: usize,
    ) -> Result<ContainerReport, ApplyError> {
        let parent = self.job.cookbook.containers[name].build_parent();
        let preferred = parent.and_then(|p| self.pool.built(p));
        loop {
            let Some(slot) = self.unless_cancelled(self.pool.acquire(preferred)).await else {
                return Ok(self.cancelled(name, entry, "not started: the run was cancelled"));
            };
            let Some(slot) = slot else {
                let why = self.pool.all_down().unwrap_or_default();
                return Ok(self.needs_engine(
                    name,
                    entry,
                    format!("no builder of the pool answers any more (the first: {why})"),
                ));
            };
            let builder = slot.name();
            self.reporter.event(Event::Started {
                name,
                wave,
                builder,
            });
            let started = Instant::now();
            let result = self
                .build(slot.engine(), name, local, repo_text, started)
                .await;
            if let Some(why) = self.builder_lost(slot.engine(), &result).await {
                super::run::leave_out(self.pool, slot.index(), why, self.reporter);
                continue;
            }
            if result.is_ok() {
                self.pool.record_built(name, &slot);
            }
            let mut report = self.finished(name, entry, started, result)?;
            if matches!(report.outcome, ContainerOutcome::Built { .. }) {
                report.builder = builder.map(str::to_owned);
            }
            return Ok(report);
        }
    }

    /// Why a build that ended with `result` failed for its builder rather than for the
    /// container (see the module header), in a pool; `None` without one (one engine: its
    /// failure is the run's, as it always was).
    async fn builder_lost(&self, engine: &E, result: &Result<Ids, Failure>) -> Option<String> {
        if !self.pool.is_named() {
            return None;
        }
        match result {
            Ok(_) | Err(Failure::Cancelled) => None,
            Err(Failure::Run(ApplyError::Engine(
                e @ (EngineError::Unreachable { .. } | EngineError::Connection { .. }),
            ))) => Some(e.to_string()),
            // The registry's failure or the state's: the run's, wherever it built.
            Err(Failure::Run(_)) => None,
            Err(Failure::Container { .. } | Failure::NeedsEngine { .. }) => {
                engine.ping().await.err().map(|e| e.to_string())
            }
        }
    }

    /// The report of a container whose build or assembly ended with `result`, announced.
    fn finished(
        &self,
        name: &Name,
        entry: &Entry,
        started: Instant,
        result: Result<Ids, Failure>,
    ) -> Result<ContainerReport, ApplyError> {
        match result {
            Ok(ids) => {
                let millis = started.elapsed().as_millis() as u64;
                Ok(entry.report(ContainerOutcome::Built { millis }, ids, Vec::new()))
            }
            Err(Failure::NeedsEngine { reason }) => Ok(self.needs_engine(name, entry, reason)),
            Err(Failure::Run(e)) => Err(e),
            Err(Failure::Cancelled) => Ok(self.cancelled(name, entry, "cancelled while building")),
            Err(Failure::Container { reason, log }) => {
                if !self.job.options.keep_going {
                    self.stop.store(true, Ordering::SeqCst);
                }
                self.reporter.event(Event::Failed {
                    name,
                    reason: &reason,
                    log: &log,
                });
                Ok(entry.report(ContainerOutcome::Failed { reason }, NO_IDS, log))
            }
        }
    }

    /// The report of a container cancelled (before or while it was built), announced.
    fn cancelled(&self, name: &Name, entry: &Entry, reason: &str) -> ContainerReport {
        self.reporter.event(Event::Cancelled { name, reason });
        let outcome = ContainerOutcome::Cancelled {
            reason: reason.to_owned(),
        };
        entry.report(outcome, NO_IDS, Vec::new())
    }

    /// The report of a container not built for want of an engine, announced.
    fn needs_engine(&self, name: &Name, entry: &Entry, why: String) -> ContainerReport {
        let reason = format!("needs a Docker engine: {why}");
        self.reporter.event(Event::NeedsEngine {
            name,
            reason: &reason,
        });
        entry.report(ContainerOutcome::NeedsEngine { reason }, NO_IDS, Vec::new())
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
    ) -> Result<Ids, Failure> {
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        let source = build::assemble::base_source(cookbook, fp, self.registry.is_some())
            .map_err(|e| Failure::Run(e.into()))?;
        if let (build::assemble::BaseSource::Engine { image }, Some(down)) =
            (&source, &self.engine_down)
        {
            return Err(Failure::NeedsEngine {
                reason: format!("its base image {image} is in a local engine only; {down}"),
            });
        }
        if let (Some(parent), None) = (
            self.job.cookbook.containers[name].build_parent(),
            self.registry,
        ) {
            self.unless_cancelled(self.ensure_parent(self.engine(), parent))
                .await
                .ok_or(Failure::Cancelled)??;
        }
        self.reporter.event(Event::Line {
            name,
            line: "assembling from the context: no build commands, no engine needed",
        });
        let assembled = self
            .unless_cancelled(build::assemble::assemble(
                self.engine(),
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
        let ids = self
            .deliver_assembled(name, &assembled, local, repo_text)
            .await?;
        self.queue_attestation(name, &ids, assembled.normalized, started);
        Ok(ids)
    }

    /// An assembled image published (its base's blobs mounted or copied from its base's
    /// repository), or, with `--no-push`, loaded into the engine under its names.
    async fn deliver_assembled(
        &self,
        name: &Name,
        assembled: &build::assemble::Assembled,
        local: &str,
        repo_text: &str,
    ) -> Result<Ids, Failure> {
        let normalized = &assembled.normalized;
        let image_id = Some(normalized.image.config_digest().to_string());
        let Some(registry) = self.registry else {
            let hash = self.job.fingerprints[name].input_hash();
            let names = self.local_names(local, repo_text, hash);
            self.unless_cancelled(build::load(self.engine(), normalized, &names))
                .await
                .ok_or(Failure::Cancelled)?
                .map_err(Failure::publish)?;
            return Ok((None, image_id));
        };
        let mount_from = assembled.base_repo.as_ref();
        let digest = self
            .push(registry, name, repo_text, normalized, mount_from)
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
        normalized: &Normalized,
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
    async fn cached(
        &self,
        name: &Name,
        local: &str,
        repo_text: &str,
    ) -> Result<check::Found, ApplyError> {
        let found = match self.found.get(name) {
            Some(found) => found.clone(),
            None => lookup(self.job, self.engine(), self.registry, name).await?,
        };
        if let Some((CacheSource::LocalEngine, _)) = found {
            if self.job.cookbook.packaging.registry.is_some() {
                let hash = self.job.fingerprints[name].input_hash();
                self.engine().tag(local, repo_text, hash).await?;
            }
        }
        Ok(found)
    }

    /// Makes sure a container's image is in the local engine under its local, content-addressed
    /// name (`cookbook.local/<project>/<name>:<hash>`), pulling it by its immutable content tag
    /// when only the registry has it. Returns that name, or `None` when it is missing and there is
    /// no registry to pull from.
    pub(super) async fn ensure_local(&self, name: &Name) -> Result<Option<String>, ApplyError> {
        self.ensure_local_on(self.engine(), name).await
    }

    /// [`Run::ensure_local`] on `engine`, one builder of the pool.
    async fn ensure_local_on(&self, engine: &E, name: &Name) -> Result<Option<String>, ApplyError> {
        let cookbook = self.job.cookbook;
        let hash = self.job.fingerprints[name].input_hash();
        let local = local_image(&cookbook.project.name, name, hash);
        if engine.image_exists(&local).await?.is_some() {
            return Ok(Some(local));
        }
        if self.registry.is_none() {
            return Ok(None);
        }
        let repo = parse_repo(&cookbook.repository(name))?;
        build::pull_as(engine, &repo, hash, self.credentials.as_ref(), &local).await?;
        Ok(Some(local))
    }

    /// The parent of a `container:` base, in `engine` for the child's FROM line (built there, or
    /// pulled by its content tag: it was built on another builder, or by an earlier run).
    async fn ensure_parent(&self, engine: &E, parent: &Name) -> Result<(), Failure> {
        match self.ensure_local_on(engine, parent).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Failure::Container {
                reason: format!("parent image of {parent} is not in the local engine"),
                log: Vec::new(),
            }),
            Err(ApplyError::Engine(e)) => Err(Failure::engine(e)),
            Err(e) => Err(Failure::Run(e)),
        }
    }

    /// Writes the context, builds on `engine`, loads back and pushes. Returns the manifest digest
    /// (when pushed) and the image id.
    async fn build(
        &self,
        engine: &E,
        name: &Name,
        local: &str,
        repo_text: &str,
        started: Instant,
    ) -> Result<Ids, Failure> {
        let cookbook = self.job.cookbook;
        let container = &cookbook.containers[name];
        let fp = &self.job.fingerprints[name];
        let hash = fp.input_hash();
        if let Some(parent) = container.build_parent() {
            self.unless_cancelled(self.ensure_parent(engine, parent))
                .await
                .ok_or(Failure::Cancelled)??;
        }
        let tags = self.local_names(local, repo_text, hash);
        let image_id = self.engine_build(engine, name, tags.clone()).await?;
        self.save_explain(name).await.map_err(Failure::Run)?;
        self.reporter.event(Event::Built {
            name,
            millis: started.elapsed().as_millis() as u64,
        });

        // Normalized, loaded back under the same names (the local one is what a `container:`
        // child builds FROM), then published through the registry API (see publish.rs).
        let normalized = self
            .unless_cancelled(build::normalize_built(
                engine,
                cookbook,
                fp,
                image_id.as_str(),
            ))
            .await
            .ok_or(Failure::Cancelled)?
            .map_err(Failure::publish)?;
        self.unless_cancelled(build::load(engine, &normalized, &tags))
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
                let ids = (Some(digest), image_id);
                self.queue_attestation(name, &ids, normalized, started);
                Ok(ids)
            }
            None => Ok((None, image_id)),
        }
    }

    /// Writes `name`'s context (this run's own file, removed when the build ends, however it
    /// ends) and builds it in `engine` under `tags`, until the run is cancelled. Returns the
    /// built image's id.
    async fn engine_build(
        &self,
        engine: &E,
        name: &Name,
        tags: Vec<String>,
    ) -> Result<String, Failure> {
        let fp = &self.job.fingerprints[name];
        let context = {
            let (prints, name) = (Arc::clone(&self.job.fingerprints), name.clone());
            blocking(move || build::write_context(&prints[&name]))
                .await
                .map_err(|e| Failure::Run(e.into()))?
        };
        if self.job.cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let labels = self.labels(name, fp.input_hash());
        let request = build::request(self.job.cookbook, fp, context.path(), labels, tags, false);
        let progress = |line: &str| self.reporter.event(Event::Line { name, line });
        match engine
            .build_until(&request, &progress, &self.job.cancel)
            .await
        {
            Ok(built) => Ok(built.image_id.to_string()),
            Err(EngineError::BuildFailed { log, message }) => Err(Failure::Container {
                reason: message,
                log,
            }),
            Err(EngineError::Cancelled) => Err(Failure::Cancelled),
            Err(e) => Err(Failure::engine(e)),
        }
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
}
