//! `cookbook apply`, `apply --dry-run`, and the apply step of `sync --apply`.
//!
//! The flow: the plan to act on (a site's portion, named containers and what they need), then
//! [`crate::apply`] against the environment's engine and registry on the one runtime, its
//! fingerprints computed once the bases are pinned. What comes back is an [`ApplySummary`]: what
//! every container came to and how the run ended, whose serialization is `apply --format
//! json`'s document; [`ApplySummary::into_result`] is the command's result (exit code).
//!
//! A run that fails part way still has a summary (what it built, pushed and tagged before the
//! failure), so the failure is in the summary, not in the `Err`: an `Err` is a run that never
//! started (an invalid selection, no engine, a base that cannot be pinned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{runtime, Workspace};

pub use super::inspect::GitIgnored;
use crate::apply::{
    self, ApplyError, ApplyFailure, Attesting, ContainerOutcome, ContainerReport, Options, Planned,
    Report,
};
/// What the CLI renders: progress events and the planned actions, the names they carry, and the
/// seam sync's hourly loop applies through.
pub use crate::apply::{Action, CacheSource, Event, Reporter};
pub use crate::attest::key::Signer;
use crate::diagnostic::Diagnostic;
use crate::error::{Error, EXIT_SIGINT};
use crate::graph::Plan;
use crate::hash::{BasePins, Fingerprint, Pinning};
use crate::model::Cookbook;
pub use crate::model::Name;
pub use crate::sync::{Applier, ApplierError, ApplyRequest};

/// What to apply, and how.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only these containers and what they need (none: all).
    pub containers: Vec<String>,
    /// Only this federation site's containers.
    pub site: Option<String>,
    /// Builds at once per builder (none: the number of cores).
    pub jobs: Option<usize>,
    /// Push to the registry (else build and tag locally).
    pub push: bool,
    pub keep_going: bool,
    /// Take what the lock records as published as cached (`--trust-lock`).
    pub trust_lock: bool,
    /// The commit of the cookbook's checkout ([`checkout_revision`]).
    pub revision: Option<String>,
    /// Sign and attach a provenance statement and an SBOM to every published image with this
    /// private key (none: no attestations; ignored without `push`).
    pub signing_key: Option<PathBuf>,
    /// The engine to build on (`--context`; default: the environment's).
    pub engine: crate::engine::Selector,
    /// Engines to spread builds over (`--builder`; none: `packaging.builders`, else `engine`).
    pub builders: Vec<crate::engine::Selector>,
    /// Refuse, before anything is built, a context holding files git ignores (`--strict`;
    /// otherwise they are warned about: [`crate::ops::inspect::GitIgnored`]).
    pub strict: bool,
}

/// How a run ended, as `apply --format json`'s `result` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Every container built or cached.
    Ok,
    /// A container failed (or was not built for want of an engine).
    Failed,
    /// The whole run failed (`error` says why).
    Error,
    /// A signal (or the caller) cancelled it.
    Cancelled,
}

/// What an apply did: `apply --format json`'s document.
#[derive(Debug, Serialize)]
pub struct ApplySummary {
    pub result: RunResult,
    pub built: usize,
    pub cached: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub needs_engine: usize,
    /// Published, but not attested (a signing run whose attachment failed).
    #[serde(skip_serializing_if = "is_zero")]
    pub unattested: usize,
    pub lock_changed: bool,
    pub containers: BTreeMap<Name, ContainerReport>,
    /// Containers whose context holds files git ignores (none outside git).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub git_ignored: Vec<GitIgnored>,
    /// The same as warnings located in the cookbook, for the CLI to show.
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
    /// Why the whole run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure of the whole run, typed (its exit code).
    #[serde(skip)]
    pub failure: Option<ApplyError>,
}

impl ApplySummary {
    fn new(report: Report, failure: Option<ApplyError>) -> ApplySummary {
        let count = |f: fn(&ContainerOutcome) -> bool| report.count(f);
        ApplySummary {
            result: match (&failure, report.cancelled, report.ok()) {
                (Some(_), _, _) => RunResult::Error,
                (None, true, _) => RunResult::Cancelled,
                (None, false, true) => RunResult::Ok,
                (None, false, false) => RunResult::Failed,
            },
            built: count(|o| matches!(o, ContainerOutcome::Built { .. })),
            cached: count(|o| matches!(o, ContainerOutcome::Cached { .. })),
            failed: count(|o| matches!(o, ContainerOutcome::Failed { .. })),
            skipped: count(|o| matches!(o, ContainerOutcome::Skipped { .. })),
            cancelled: count(|o| matches!(o, ContainerOutcome::Cancelled { .. })),
            needs_engine: count(|o| matches!(o, ContainerOutcome::NeedsEngine { .. })),
            unattested: report.unattested(),
            lock_changed: report.lock_changed,
            error: failure.as_ref().map(ToString::to_string),
            containers: report.containers,
            git_ignored: Vec::new(),
            warnings: Vec::new(),
            failure,
        }
    }

    /// The command's result: the run's failure; a cancellation (`interrupted`: the signal's
    /// error, when the caller knows which); 1 when a container failed; 3 when none failed but
    /// some were not built for want of an engine (running again with one helps).
    pub fn into_result(self, interrupted: Option<Error>) -> Result<(), Error> {
        if let Some(e) = self.failure {
            return Err(Error::Apply(e));
        }
        match self.result {
            RunResult::Ok => Ok(()),
            RunResult::Cancelled => Err(interrupted.unwrap_or(Error::Interrupted {
                signal: "a cancellation",
                code: EXIT_SIGINT,
            })),
            RunResult::Error | RunResult::Failed if self.failed == 0 && self.needs_engine > 0 => {
                let without_engine: Vec<&str> = self
                    .containers
                    .iter()
                    .filter(|(_, c)| matches!(c.outcome, ContainerOutcome::NeedsEngine { .. }))
                    .map(|(name, _)| name.as_str())
                    .collect();
                Err(Error::Apply(ApplyError::EngineNeeded {
                    containers: without_engine.join(", "),
                }))
            }
            RunResult::Error | RunResult::Failed if self.failed == 0 && self.unattested > 0 => {
                Err(Error::Failed(format!(
                    "{} image(s) published but not attested: run `cookbook apply --signing-key` \
                     again to attest them",
                    self.unattested
                )))
            }
            RunResult::Error | RunResult::Failed => Err(Error::Failed(format!(
                "{} container(s) failed",
                self.failed
            ))),
        }
    }
}

/// `apply --dry-run`'s `result`: always `dry_run` (nothing was done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRun {
    DryRun,
}

/// What `apply --dry-run` would do: its JSON document.
#[derive(Debug, Serialize)]
pub struct DryRunReport {
    pub result: DryRun,
    pub build: usize,
    pub cached: usize,
    pub containers: BTreeMap<Name, Planned>,
    /// Containers whose image could not be checked (the registry could not be reached).
    pub unchecked: usize,
    /// Pinned bases that could not be checked for a move (planned on the lock's pin): reference
    /// → why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unchecked_bases: BTreeMap<String, String>,
    /// Containers whose context holds files git ignores (none outside git).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub git_ignored: Vec<GitIgnored>,
    /// The same as warnings located in the cookbook, for the CLI to show.
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

/// Passes every event on, keeping the bases the pin step could not check.
struct UncheckedBases<'r> {
    inner: &'r dyn Reporter,
    bases: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Reporter for UncheckedBases<'_> {
    fn event(&self, event: apply::Event<'_>) {
        if let apply::Event::BaseUnchecked { reference, why } = &event {
            if let Ok(mut bases) = self.bases.lock() {
                bases.insert(reference.to_string(), why.to_string());
            }
        }
        self.inner.event(event);
    }
}

/// Whether an apply's failure is a registry it cannot reach: `--no-push` (which builds into the
/// local engine only, and needs no registry) is worth a mention then.
pub fn registry_unreachable(failure: &Error) -> bool {
    use crate::registry::RegistryError as R;
    let registry = match failure {
        Error::Apply(ApplyError::Registry(e)) | Error::Registry(e) => e,
        _ => return false,
    };
    matches!(registry, R::Unreachable { .. } | R::Unavailable { .. })
}

/// The commit the cookbook's checkout is at, if it is one (the `git-sha` tag, the revision
/// label). Opening the repository starts libgit2, whose TLS library reads the whole CA bundle
/// (~6 ms of a no-op apply): a caller may run this while the cookbook loads.
pub fn checkout_revision(dir: &Path) -> Option<String> {
    crate::git::head_commit(dir)
}

/// The plan `apply` acts on: the whole cookbook's, a site's portion, and within it the named
/// containers with everything they need (the lock merge keeps the other containers' entries).
pub fn selected_plan(ws: &Workspace, opts: &ApplyOptions) -> Result<Plan, Error> {
    let plan = ws.site_plan(opts.site.as_deref())?;
    let wanted = ws.containers_named(&opts.containers)?;
    if wanted.is_empty() {
        return Ok(plan);
    }
    if let (Some(site), Some(outside)) = (
        opts.site.as_deref(),
        wanted.iter().find(|n| !plan.order().any(|m| m == *n)),
    ) {
        return Err(Error::Usage {
            message: format!("container `{outside}` is not part of site `{site}`"),
            help: Some(format!(
                "site `{site}` applies: {}",
                plan.order()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    }
    Ok(plan.restrict(&wanted))
}

/// `cookbook apply`: the selected plan applied. `cancel` stops the run (the CLI cancels it on
/// SIGINT/SIGTERM).
pub fn apply(
    ws: &Workspace,
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
    cancel: CancellationToken,
) -> Result<ApplySummary, Error> {
    let plan = selected_plan(ws, opts)?;
    if opts.strict {
        // Before the run: its own listing comes once the bases are pinned.
        super::inspect::check_git_ignored(ws, &plan, None, true)?;
    }
    let mut options = options(opts);
    options.attest = attesting(ws, opts)?;
    let mut summary = apply_plan(ws.path(), &ws.cookbook, &plan, options, reporter, cancel)?;
    summary.warnings = super::inspect::ignored_diagnostics(ws, &summary.git_ignored, false);
    Ok(summary)
}

/// What signing needs, when the run signs: the key (read now, so a bad one is refused before
/// any build), the cookbook as the provenance names it, the site, and this run's id.
fn attesting(ws: &Workspace, opts: &ApplyOptions) -> Result<Option<Arc<Attesting>>, Error> {
    let Some(path) = opts.signing_key.as_deref().filter(|_| opts.push) else {
        return Ok(None);
    };
    let key = crate::attest::key::read_signing_key(path)?;
    // `selected_plan` checked the site's name already.
    let site = opts.site.as_deref().and_then(Name::parse);
    Ok(Some(Arc::new(Attesting {
        signer: Arc::new(key),
        cookbook: crate::git::repository_path(ws.path()),
        site,
        invocation: invocation_id(),
    })))
}

/// The signing key at `path`, as the signer an apply attests with (`sync --signing-key`).
pub fn read_signer(path: &Path) -> Result<Arc<dyn Signer>, Error> {
    Ok(Arc::new(crate::attest::key::read_signing_key(path)?))
}

/// A run's id: 128 random bits, hex (the provenance's `invocationId`).
fn invocation_id() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

/// `cookbook apply --dry-run`: what [`apply`] would do, from the same lookups; nothing is built,
/// pushed, tagged or written (bases not pinned yet are resolved and reported, not recorded).
pub fn dry_run(
    ws: &Workspace,
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<DryRunReport, Error> {
    let plan = selected_plan(ws, opts)?;
    if opts.strict {
        super::inspect::check_git_ignored(ws, &plan, None, true)?;
    }
    let state_dir = ws.state_dir();
    let job = apply::Job {
        cookbook: &ws.cookbook,
        plan: &plan,
        fingerprints: Default::default(),
        tag_lists: Default::default(),
        cookbook_file: ws.path(),
        state_dir: &state_dir,
        options: options(opts),
        cancel: CancellationToken::new(),
    };
    let ignored = std::sync::Mutex::new(Vec::new());
    let fingerprint = watching_ignored(
        fingerprinter(ws.path(), &ws.cookbook, &plan),
        ws.path(),
        &ws.cookbook,
        &ignored,
    );
    let collect = UncheckedBases {
        inner: reporter,
        bases: Default::default(),
    };
    let planned = runtime()?.block_on(apply::dry_run_with_docker(job, &fingerprint, &collect))?;
    let unchecked_bases = collect.bases.into_inner().unwrap_or_default();
    let git_ignored = ignored
        .lock()
        .map(|mut found| std::mem::take(&mut *found))
        .unwrap_or_default();
    let count = |action| planned.values().filter(|p| p.action == action).count();
    let (build, unchecked) = (count(apply::Action::Build), count(apply::Action::Unchecked));
    Ok(DryRunReport {
        result: DryRun::DryRun,
        build,
        cached: planned.len() - build - unchecked,
        containers: planned,
        unchecked,
        unchecked_bases,
        warnings: super::inspect::ignored_diagnostics(ws, &git_ignored, false),
        git_ignored,
    })
}

/// Fingerprints `plan` (once its bases are pinned) and applies it: the flow `cookbook apply`
/// and `sync --apply` share. An `Err` is a run that never started.
pub fn apply_plan(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    options: Options,
    reporter: &dyn Reporter,
    cancel: CancellationToken,
) -> Result<ApplySummary, Error> {
    let state_dir = crate::state::dir_for(file);
    let job = apply::Job {
        cookbook,
        plan,
        // Computed once the bases are pinned (`fingerprinter`).
        fingerprints: Default::default(),
        tag_lists: Default::default(),
        cookbook_file: file,
        state_dir: &state_dir,
        options,
        cancel,
    };
    let ignored = std::sync::Mutex::new(Vec::new());
    let fingerprint = watching_ignored(
        fingerprinter(file, cookbook, plan),
        file,
        cookbook,
        &ignored,
    );
    let result = runtime()?.block_on(apply::apply_with_docker(job, &fingerprint, reporter));
    let mut summary = match result {
        Ok(report) => ApplySummary::new(report, None),
        Err(ApplyFailure {
            report: Some(report),
            error,
        }) => ApplySummary::new(report, Some(error)),
        Err(ApplyFailure {
            report: None,
            error,
        }) => return Err(error.into()),
    };
    summary.git_ignored = ignored
        .lock()
        .map(|mut found| std::mem::take(&mut *found))
        .unwrap_or_default();
    Ok(summary)
}

/// `fingerprint`, keeping in `found` what its listing holds that git ignores
/// ([`super::inspect::git_ignored`]): the run's own listing, nothing walked twice.
fn watching_ignored<'f>(
    fingerprint: impl Fn(&BasePins) -> Result<BTreeMap<Name, Fingerprint>, ApplyError> + 'f,
    file: &'f Path,
    cookbook: &'f Cookbook,
    found: &'f std::sync::Mutex<Vec<GitIgnored>>,
) -> impl Fn(&BasePins) -> Result<BTreeMap<Name, Fingerprint>, ApplyError> + 'f {
    move |pins| {
        let prints = fingerprint(pins)?;
        let ignored = super::inspect::git_ignored(file, cookbook, &prints);
        if let Ok(mut found) = found.lock() {
            *found = ignored;
        }
        Ok(prints)
    }
}

/// The library's options from the command's.
fn options(opts: &ApplyOptions) -> Options {
    Options {
        jobs: opts.jobs.unwrap_or_else(default_jobs),
        push: opts.push,
        keep_going: opts.keep_going,
        revision: opts.revision.clone(),
        trust_lock: opts.trust_lock,
        attest: None,
        engine: opts.engine.clone(),
        builders: opts.builders.clone(),
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Fingerprints `plan` under the current hash version with the pins the run resolved.
fn fingerprinter<'f>(
    file: &'f Path,
    cookbook: &'f Cookbook,
    plan: &'f Plan,
) -> impl Fn(&BasePins) -> Result<BTreeMap<Name, Fingerprint>, ApplyError> + 'f {
    move |pins| {
        crate::load::fingerprints(file, cookbook, plan, Pinning::current(pins))
            .map_err(ApplyError::from)
    }
}

/// `cookbook sync --apply`'s apply step: a taken revision's portion applied with the same
/// engine, pushing to the cookbook's registry. The revision counts as applied only when every
/// container succeeded. Use it as `&mut dyn sync::Applier`.
pub struct SyncApplier<'a> {
    /// Cancels a running apply: the sync's signal handling owns it.
    pub cancel: CancellationToken,
    /// Progress of each apply.
    pub reporter: &'a dyn Reporter,
    /// Told each apply's summary once it ends (the CLI prints it where the progress went).
    pub finished: &'a dyn Fn(&ApplySummary),
    /// The error a cancelled apply ends with (the signal that stopped it), when one is known.
    pub interrupted: &'a dyn Fn() -> Option<Error>,
    /// Signs and attaches the provenance and SBOM of every image published (`sync
    /// --signing-key`).
    pub signer: Option<Arc<dyn crate::attest::key::Signer>>,
    /// The engine to build on (the environment's, unless the sync says otherwise).
    pub engine: crate::engine::Selector,
}

impl crate::sync::Applier for SyncApplier<'_> {
    fn apply(
        &mut self,
        request: &crate::sync::ApplyRequest<'_>,
    ) -> Result<(), crate::sync::ApplierError> {
        let options = Options {
            jobs: default_jobs(),
            push: true,
            keep_going: false,
            trust_lock: false,
            engine: self.engine.clone(),
            builders: Vec::new(),
            revision: Some(request.commit.to_owned()),
            attest: self.signer.clone().map(|signer| {
                Arc::new(Attesting {
                    signer,
                    cookbook: request.path.to_owned(),
                    site: request.site.and_then(Name::parse),
                    invocation: invocation_id(),
                })
            }),
        };
        let summary = apply_plan(
            request.cookbook_file,
            request.cookbook,
            request.plan,
            options,
            self.reporter,
            self.cancel.clone(),
        )?;
        (self.finished)(&summary);
        summary.into_result((self.interrupted)())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_UNREACHABLE;

    fn report(outcomes: &[(&str, ContainerOutcome)]) -> Report {
        let containers = outcomes
            .iter()
            .map(|(name, outcome)| {
                let entry = ContainerReport {
                    outcome: outcome.clone(),
                    input_hash: "ab".repeat(32),
                    image: format!("r/{name}:{}", "ab".repeat(32)),
                    tags: Vec::new(),
                    digest: None,
                    image_id: None,
                    log: Vec::new(),
                    builder: None,
                    attestations: None,
                };
                (Name::parse(name).unwrap(), entry)
            })
            .collect();
        Report {
            containers,
            lock_changed: true,
            cancelled: false,
        }
    }

    fn built() -> ContainerOutcome {
        ContainerOutcome::Built { millis: 5 }
    }

    #[test]
    fn an_image_published_but_not_attested_fails_the_run_and_says_so() {
        let mut report = report(&[("api", built()), ("web", built())]);
        report.containers.get_mut("api").unwrap().attestations =
            Some(apply::Attestations::Failed {
                error: "published, not attested: the registry refused it".into(),
            });
        assert!(!report.ok());
        let summary = ApplySummary::new(report, None);
        assert_eq!(summary.result, RunResult::Failed);
        assert_eq!(
            (summary.built, summary.failed, summary.unattested),
            (2, 0, 1)
        );
        let doc = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            doc["containers"]["api"]["attestations"]["error"],
            "published, not attested: the registry refused it"
        );
        assert_eq!(doc["unattested"], 1);
        let error = summary.into_result(None).unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error
            .to_string()
            .contains("1 image(s) published but not attested"));
    }

    #[test]
    fn a_summary_counts_each_outcome_and_its_document_keeps_the_json_names() {
        let summary = ApplySummary::new(
            report(&[
                ("api", built()),
                (
                    "web",
                    ContainerOutcome::Cached {
                        source: apply::CacheSource::LocalEngine,
                    },
                ),
            ]),
            None,
        );
        assert_eq!(summary.result, RunResult::Ok);
        let doc = serde_json::to_value(&summary).unwrap();
        assert_eq!(doc["result"], "ok");
        assert_eq!(
            (doc["built"].clone(), doc["cached"].clone()),
            (1.into(), 1.into())
        );
        assert_eq!(doc["containers"]["web"]["status"], "cached");
        assert_eq!(doc["containers"]["web"]["source"], "local engine");
        assert!(
            doc.get("error").is_none(),
            "no error key without one: {doc}"
        );
        assert!(doc.get("failure").is_none(), "{doc}");
        summary.into_result(None).unwrap();
    }

    #[test]
    fn a_run_without_an_engine_is_exit_3_and_a_failed_container_exit_1() {
        let needs = ContainerOutcome::NeedsEngine {
            reason: "needs a Docker engine".into(),
        };
        let summary = ApplySummary::new(report(&[("api", built()), ("db", needs.clone())]), None);
        assert_eq!(summary.result, RunResult::Failed);
        let e = summary.into_result(None).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNREACHABLE, "{e}");
        assert!(e.to_string().contains("db"), "{e}");

        let failed = ContainerOutcome::Failed {
            reason: "exit 1".into(),
        };
        let summary = ApplySummary::new(report(&[("api", failed), ("db", needs)]), None);
        let e = summary.into_result(None).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (1, "1 container(s) failed".into())
        );
    }

    #[test]
    fn a_failure_of_the_run_wins_and_a_cancellation_takes_the_signal_given() {
        let summary = ApplySummary::new(report(&[("api", built())]), Some(ApplyError::NoRegistry));
        assert_eq!(summary.result, RunResult::Error);
        let doc = serde_json::to_value(&summary).unwrap();
        assert_eq!(doc["error"], ApplyError::NoRegistry.to_string());
        assert_eq!(summary.into_result(None).unwrap_err().exit_code(), 2);

        let mut cancelled = report(&[("api", built())]);
        cancelled.cancelled = true;
        let summary = ApplySummary::new(cancelled, None);
        assert_eq!(summary.result, RunResult::Cancelled);
        let sigterm = Error::Interrupted {
            signal: "SIGTERM",
            code: crate::error::EXIT_SIGTERM,
        };
        let e = summary.into_result(Some(sigterm)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_SIGTERM);
    }
}
