//! The run: checks before any build, then the plan's waves, each at most `jobs` builds at once
//! on each builder of the pool ([`super::pool`]), a failure skipping what needs it; then the
//! policy tags and the lock (`finish`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;

use futures_util::stream::{self, StreamExt};

use super::error::{ApplyError, Failure};
use super::pool::Pool;
use super::report::{ContainerOutcome, ContainerReport, Event, Report, Reporter};
use super::{check, needs_revision, parse_repo, Job};
use crate::build::assemble::BaseCache;
use crate::engine::Engine;
use crate::model::Name;
use crate::registry::{Credential, RegistryClient};

pub(super) struct Run<'a, E: Engine> {
    pub(super) job: &'a Job<'a>,
    /// The engines builds go to.
    pub(super) pool: &'a Pool<E>,
    pub(super) registry: Option<&'a RegistryClient>,
    pub(super) credentials: Option<Credential>,
    /// What the up-front lookups found ([`check::lookup_all`]).
    pub(super) found: BTreeMap<Name, check::Found>,
    /// Why the run has no engine, when it goes on without one (pushing, engine unreachable).
    pub(super) engine_down: Option<String>,
    /// What assemblies have read of their bases ([`assemble::BaseCache`]).
    pub(super) bases: BaseCache,
    pub(super) reporter: &'a dyn Reporter,
    pub(super) stop: AtomicBool,
    /// What each container's attestations came to ([`super::attest`]), for its report.
    pub(super) attested: std::sync::Mutex<BTreeMap<Name, super::Attestations>>,
    /// Built images waiting for their attestations.
    pub(super) attest_queue: super::attest::Queue,
}

/// Before any build: a `git-sha` policy has a revision, the engine answers, every content tag
/// is looked up, and (when pushing) the registry grants push access to every repository the run
/// writes to ([`check`]: concurrently, once per repository). Returns the registry to use, its
/// credentials, what the lookups found, and why there is no engine (when pushing without one).
#[allow(clippy::type_complexity)]
async fn preflight<'r, E: Engine>(
    job: &Job<'_>,
    pool: &Pool<E>,
    registry: Option<&'r RegistryClient>,
    reporter: &dyn Reporter,
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
    // Without an engine, a run that pushes still assembles what needs none. A builder of a pool
    // that stopped answering since it connected is left out, and the next one asked.
    let engine_down = loop {
        if let Some(why) = pool.all_down().filter(|_| job.options.push) {
            break Some(why);
        }
        let index = pool.first_index();
        match pool.builders()[index].engine.ping().await {
            Ok(()) => break None,
            Err(e) if e.is_unreachable() && pool.is_named() => {
                leave_out(pool, index, e.to_string(), reporter);
                if pool.all_down().is_some() && !job.options.push {
                    return Err(e.into());
                }
            }
            Err(e) if e.is_unreachable() && job.options.push => break Some(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    };
    let engine = pool.first();
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

/// Leaves builder `index` out of the pool for the rest of the run (it stopped answering), and
/// says why.
pub(super) fn leave_out<E: Engine>(
    pool: &Pool<E>,
    index: usize,
    why: String,
    reporter: &dyn Reporter,
) {
    if let Some(name) = &pool.builders()[index].name {
        reporter.event(Event::BuilderDown {
            builder: name,
            why: &why,
        });
    }
    pool.mark_down(index, why);
}

/// The run itself, filling `report` as it goes (so that a failure still returns it).
pub(super) async fn run<E: Engine>(
    job: &Job<'_>,
    pool: &Pool<E>,
    registry: Option<&RegistryClient>,
    reporter: &dyn Reporter,
    report: &mut Report,
) -> Result<(), ApplyError> {
    let (registry, credentials, found, engine_down) =
        preflight(job, pool, registry, reporter).await?;
    reporter.event(Event::Checked {
        containers: job.plan.len(),
        waves: job.plan.waves().len(),
    });

    let run = Run {
        job,
        pool,
        registry,
        credentials,
        found,
        engine_down,
        bases: Default::default(),
        reporter,
        stop: AtomicBool::new(false),
        attested: Default::default(),
        attest_queue: std::sync::Mutex::new(None),
    };
    // Without signing the sender is dropped at once, so `attest_queued` ends at once.
    let (queue, queued) = tokio::sync::mpsc::unbounded_channel();
    *run.attest_queue.lock().expect("never poisoned") =
        job.options.attest.is_some().then_some(queue);
    // The waves, and beside them the attestations of what they publish.
    let waves = async {
        let done = run.waves(report).await;
        run.close_attestations();
        done
    };
    let (waves, unattested) = tokio::join!(waves, run.attest_queued(queued));
    let merged = run.merge_attestations(report, unattested);
    // The waves' own failure first: it is what stopped the run.
    waves?;
    merged?;
    if report
        .containers
        .values()
        .any(|c| matches!(c.outcome, ContainerOutcome::Cancelled { .. }))
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
    /// The engine of the run's other engine work (lookups without a registry, tags with
    /// `--no-push`, a cached image read to attest it, a parent made local): the pool's first
    /// builder that still answers, asked anew each time, so a builder left out mid-run is not
    /// asked again.
    pub(super) fn engine(&self) -> &E {
        self.pool.first()
    }

    /// Every wave in order, until one fails the run or the run is cancelled.
    async fn waves(&self, report: &mut Report) -> Result<(), ApplyError> {
        let waves = self.job.plan.waves();
        for wave_index in 0..waves.len() {
            if self.job.cancel.is_cancelled() {
                report.cancelled = true;
                self.mark_rest(
                    report,
                    &waves[wave_index..],
                    |reason| ContainerOutcome::Cancelled { reason },
                    "not started: the run was cancelled",
                );
                break;
            }
            self.wave(report, &waves[wave_index..], wave_index).await?;
        }
        Ok(())
    }

    /// Each container's attestations into its report. A container whose image could not be
    /// attested keeps its outcome (built: the lock may record its published image, which its
    /// dependents were built on) with the failure in its attestations, which fails the run
    /// ([`Report::ok`]); the next signing apply attests it. An unreachable registry fails the
    /// run.
    fn merge_attestations(
        &self,
        report: &mut Report,
        unattested: Vec<(Name, Failure)>,
    ) -> Result<(), ApplyError> {
        let mut attested = self.attested.lock().expect("never poisoned");
        for (name, entry) in report.containers.iter_mut() {
            entry.attestations = attested.remove(name);
        }
        drop(attested);
        let mut first_error = None;
        for (name, failure) in unattested {
            let reason = match failure {
                Failure::Run(e) => {
                    let reason = format!("published, not attested: {e}");
                    first_error.get_or_insert(e);
                    reason
                }
                Failure::Container { reason, .. } | Failure::NeedsEngine { reason } => {
                    format!("published, not attested: {reason}")
                }
                Failure::Cancelled => continue,
            };
            self.reporter.event(Event::Failed {
                name: &name,
                reason: &reason,
                log: &[],
            });
            if let Some(entry) = report.containers.get_mut(&name) {
                entry.attestations = Some(super::Attestations::Failed { error: reason });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One wave (`waves[0]`; the later ones follow it): skips what needs a container that did
    /// not succeed, runs the rest, at most `jobs` at once on each builder (the pool's slots). A failure of the whole run marks the
    /// later waves' containers not started and is returned after the wave's results are in.
    async fn wave(
        &self,
        report: &mut Report,
        waves: &[Vec<Name>],
        wave_index: usize,
    ) -> Result<(), ApplyError> {
        let ready = self.ready(report, &waves[0]);
        let results: Vec<(Name, Result<ContainerReport, ApplyError>)> = stream::iter(ready)
            .map(|name| async { (name.clone(), self.container(name, wave_index).await) })
            .buffer_unordered(self.pool.capacity())
            .collect()
            .await;
        let mut first_error = None;
        for (name, result) in results {
            let entry = match result {
                Ok(entry) => entry,
                Err(e) => {
                    let entry = self.skipped(
                        &name,
                        ContainerOutcome::Failed {
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
                |reason| ContainerOutcome::Skipped { reason },
                "not started: the run stopped on an error",
            );
            return Err(e);
        }
        Ok(())
    }

    /// The containers of `wave` whose needs all succeeded; the others are skipped (reported).
    fn ready<'w>(&self, report: &mut Report, wave: &'w [Name]) -> Vec<&'w Name> {
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
                        self.skipped(name, ContainerOutcome::Skipped { reason }),
                    );
                }
                None => ready.push(name),
            }
        }
        ready
    }

    /// The report of a container that produced no image.
    fn skipped(&self, name: &Name, outcome: ContainerOutcome) -> ContainerReport {
        let fp = &self.job.fingerprints[name];
        ContainerReport {
            outcome,
            input_hash: fp.input_hash().to_owned(),
            image: format!("{}:{}", self.job.cookbook.repository(name), fp.input_hash()),
            tags: Vec::new(),
            digest: None,
            image_id: None,
            log: Vec::new(),
            builder: None,
            attestations: None,
        }
    }

    /// Gives every container of `waves` that has no outcome yet the outcome `make(reason)`.
    fn mark_rest(
        &self,
        report: &mut Report,
        waves: &[Vec<Name>],
        make: impl Fn(String) -> ContainerOutcome,
        reason: &str,
    ) {
        for name in waves.iter().flatten() {
            if report.containers.contains_key(name) {
                continue;
            }
            let outcome = make(reason.to_owned());
            match &outcome {
                ContainerOutcome::Cancelled { .. } => {
                    self.reporter.event(Event::Cancelled { name, reason })
                }
                _ => self.reporter.event(Event::Skipped { name, reason }),
            }
            report
                .containers
                .insert(name.clone(), self.skipped(name, outcome));
        }
    }

    /// `future`, or `None` as soon as the run is cancelled (the future is dropped).
    pub(super) async fn unless_cancelled<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.job.cancel.cancelled() => None,
            value = future => Some(value),
        }
    }

    pub(super) fn labels(&self, name: &Name, input_hash: &str) -> BTreeMap<String, String> {
        crate::build::image_labels(
            self.job.cookbook,
            name,
            input_hash,
            self.job.options.revision.as_deref(),
        )
    }
}
