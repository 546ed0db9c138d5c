//! The deploy orchestration, the same for every kind of site: check the stage's progression rule
//! and the site's capabilities, converge the site wave by wave (each wave healthy before the
//! next), record the release, and roll a failed deploy back to the stage's previous release.
//! Also `rollback` to a recorded release, `status`, and the lock `promote` deploys.
//!
//! Pipeline position: `desired` (pure) → **here** → a `Backend` (`docker::DockerSite`,
//! `kubernetes::cluster::KubeSite`) carries
//! out each wave; `releases` and `approvals` keep the records in the state directory.
//! Invariants: a release is recorded only after every wave was healthy; a deploy that changes
//! nothing adds no record; nothing here prints (the CLI renders the outcome and the errors).
//! A deploy that fails once it has changed something — a unit not healthy, the site's API
//! failing or refusing, a stop requested (a signal, between steps) — is never left half done:
//! it rolls back as `rollback.on_failure` says, and `Stopped` reports the cause and what was
//! restored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::deploy::approvals::{check_rule, images_id, Approvals};
use crate::deploy::backend::{connect, secret_source, Backend, BackendError, ConnectOptions, Site};
use crate::deploy::desired::Desired;
use crate::deploy::releases::{now, Release, Releases};
use crate::model::lifecycle::{OnFailure, Progression, Target};
use crate::model::{Cookbook, Name};
use crate::state::lock::{Lock, LockedImage};
use crate::state::record::RecordError;

/// What a deploy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub release: String,
    /// (Re)created and started, in order.
    pub started: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

/// Where in a converge something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before the first wave: readying the stage, comparing.
    Prepare,
    /// Wave N (from 1).
    Wave(usize),
    /// After the last wave: removing what is no longer wanted.
    Cleanup,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Prepare => f.write_str("before the first wave"),
            Step::Wave(n) => write!(f, "wave {n}"),
            Step::Cleanup => f.write_str("removing what is no longer wanted"),
        }
    }
}

/// Why converging a site stopped.
#[derive(Debug, thiserror::Error)]
pub enum WaveError {
    /// The site's edge failed or refused.
    #[error("{}{source}", if *.at == Step::Prepare { String::new() } else { format!("{at}: ") })]
    Backend { at: Step, source: BackendError },
    #[error("wave {wave}: {unit} is not healthy: {why}")]
    Unhealthy {
        wave: usize,
        unit: String,
        why: String,
    },
    /// A stop was requested (a signal): the converge went no further.
    #[error("{at}: interrupted")]
    Interrupted { at: Step },
}

/// A converge that did not finish: why, and what it had done by then.
#[derive(Debug)]
pub struct Halted {
    pub cause: WaveError,
    /// Whether it changed anything on the site (else there is nothing to roll back).
    pub touched: bool,
    /// What it had (re)created.
    pub started: Vec<String>,
}

/// What a failed deploy did about its failure (`rollback.on_failure`).
#[derive(Debug)]
pub enum Recovery {
    /// It had changed nothing yet.
    NothingChanged,
    /// `on_failure: none`: left as it is, for inspection.
    LeftAsIs,
    /// `on_failure: previous`, and the stage has no earlier release to go back to.
    NothingToRestore,
    /// The stage runs `release` again (recorded as rolled back from the failed one).
    RolledBack { release: String, outcome: Outcome },
    /// Going back to `release` failed too.
    RollbackFailed { release: String, cause: WaveError },
}

/// A deploy that stopped at a wave, and what it did about it.
#[derive(Debug)]
pub struct Stopped {
    /// The release that was being deployed.
    pub release: String,
    pub site: Name,
    pub stage: Name,
    /// What it (re)created before it stopped.
    pub started: Vec<String>,
    pub cause: WaveError,
    pub recovery: Recovery,
}

impl std::error::Error for Stopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deploy of release {} to {}/{} stopped: {}; ",
            self.release, self.site, self.stage, self.cause
        )?;
        match &self.recovery {
            Recovery::NothingChanged => f.write_str("nothing was changed"),
            Recovery::LeftAsIs => f.write_str("left as it is (on_failure: none)"),
            Recovery::NothingToRestore => {
                f.write_str("no earlier release of this stage to roll back to")
            }
            Recovery::RolledBack { release, outcome } => write!(
                f,
                "rolled back to release {release} (recreated: {})",
                names(&outcome.started)
            ),
            Recovery::RollbackFailed { release, cause } => {
                write!(f, "rolling back to release {release} failed too: {cause}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The site's edge failed or could not be reached.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The release records or approvals could not be read or written.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// A stage entered by an approval these images do not have (which release, and the command
    /// that approves it).
    #[error(transparent)]
    Unapproved(#[from] crate::deploy::approvals::Unapproved),
    /// The `automatic` progression rule is not met: these images do not yet run healthy in the
    /// stage before (why, site by site). `sync --deploy` skips such a stage and goes on.
    #[error("{0}")]
    RuleNotMet(String),
    /// The work failed or was refused: a capability missing, a recorded image unreadable.
    #[error("{0}")]
    Failed(String),
    /// A request that does not fit the cookbook or the records (an unknown release, a site
    /// without a target).
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },
    /// What should run cannot be worked out (an unknown stage, a container not published).
    #[error(transparent)]
    Desired(#[from] crate::deploy::desired::DesiredError),
    /// A deploy stopped at a wave once it had changed something (a unit not healthy, the site's
    /// API failing, a stop requested), and what it did about it.
    #[error(transparent)]
    Stopped(Box<Stopped>),
}

impl DeployError {
    /// Whether a stop request (a signal) is what stopped the deploy.
    pub fn interrupted(&self) -> bool {
        matches!(self, DeployError::Stopped(s) if matches!(s.cause, WaveError::Interrupted { .. }))
    }
}

/// "what: a, b" for a help line, or nothing for an empty list.
pub fn listed(what: &str, names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| format!("{what}: {}", names.join(", ")))
}

/// Converges the site to `desired` (under today's names: `Desired::with_current_names`):
/// prepares the stage, then wave by wave applies the units that differ and waits until each of
/// them is healthy; removes what is no longer wanted last. It stops at the first failure, or
/// between steps once `stop` is cancelled (a wave's health wait is cut short); what is already
/// started stays: rolling back is the caller's decision.
pub async fn converge<B: Backend>(
    backend: &B,
    desired: &Desired,
    stop: &CancellationToken,
) -> Result<Outcome, Halted> {
    let desired = &desired.with_current_names();
    let mut outcome = Outcome {
        release: desired.release.clone(),
        ..Default::default()
    };
    let mut touched = false;
    let halt = |cause, touched, outcome: &Outcome| Halted {
        cause,
        touched,
        started: outcome.started.clone(),
    };
    let backend_error = |at| move |source| WaveError::Backend { at, source };
    if stop.is_cancelled() {
        let cause = WaveError::Interrupted { at: Step::Prepare };
        return Err(halt(cause, false, &outcome));
    }
    let prepared = match backend.prepare(desired).await {
        Ok(()) => backend.changes(desired).await,
        Err(e) => Err(e),
    };
    let plan = prepared.map_err(|e| halt(backend_error(Step::Prepare)(e), false, &outcome))?;
    outcome.unchanged = plan.unchanged.clone();
    for (index, create) in plan.waves.iter().enumerate() {
        let at = Step::Wave(index + 1);
        if create.is_empty() {
            continue;
        }
        if stop.is_cancelled() {
            return Err(halt(WaveError::Interrupted { at }, touched, &outcome));
        }
        touched = true;
        backend
            .apply(desired, index, create)
            .await
            .map_err(|e| halt(backend_error(at)(e), true, &outcome))?;
        outcome.started.extend(create.iter().cloned());
        for unit in create {
            outcome
                .removed
                .extend(plan.replaced.get(unit).into_iter().flatten().cloned());
        }
        let waited = tokio::select! {
            waited = backend.wait(desired, index, create) => waited,
            () = stop.cancelled() => {
                return Err(halt(WaveError::Interrupted { at }, true, &outcome));
            }
        };
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(failed)) => {
                let cause = WaveError::Unhealthy {
                    wave: index + 1,
                    unit: failed.unit,
                    why: failed.why,
                };
                return Err(halt(cause, true, &outcome));
            }
            Err(e) => return Err(halt(backend_error(at)(e), true, &outcome)),
        }
    }
    if !plan.orphans.is_empty() && stop.is_cancelled() {
        return Err(halt(
            WaveError::Interrupted { at: Step::Cleanup },
            touched,
            &outcome,
        ));
    }
    backend
        .remove(desired, &plan.orphans)
        .await
        .map_err(|e| halt(backend_error(Step::Cleanup)(e), true, &outcome))?;
    outcome.removed.extend(plan.orphans);
    Ok(outcome)
}

/// The site's target, or a refusal when it has none.
pub fn target(cookbook: &Cookbook, site: &Name) -> Result<Target, DeployError> {
    match &cookbook.lifecycle.sites[site].target {
        Some(target) => Ok(target.clone()),
        None => Err(DeployError::Usage {
            message: format!("site `{site}` has no target to deploy to"),
            help: Some(
                "give it one in format 1.1: \"target\": {\"docker\": {\"host\": \"env\"}}"
                    .to_owned(),
            ),
        }),
    }
}

/// The site of the cookbook named `site`, or a refusal listing the sites.
pub fn known_site(cookbook: &Cookbook, site: &str) -> Result<Name, DeployError> {
    match cookbook.sites.get_key_value(site) {
        Some((name, _)) => Ok(name.clone()),
        None => Err(DeployError::Usage {
            message: format!("unknown site `{site}`"),
            help: crate::model::suggest(site, "sites", cookbook.sites.keys().map(Name::as_str)),
        }),
    }
}

fn records_path(state_dir: &Path, site: &Name) -> std::path::PathBuf {
    Releases::path(state_dir, site.as_str())
}

/// Refuses (naming the rule) a stage whose progression rule these images do not meet.
/// `automatic` (after the first stage) asks the sites serving the previous stage whether these
/// images run there healthy right now; `ci-approved` and `manual` read the approvals in
/// `state_dir`.
pub async fn check_progression(
    state_dir: &Path,
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
) -> Result<(), DeployError> {
    let digests: BTreeMap<String, String> = desired.digests();
    let lifecycle = &cookbook.lifecycle;
    let position = lifecycle
        .stages
        .iter()
        .position(|s| s == &desired.stage)
        .unwrap_or(0);
    if lifecycle.progression[&desired.stage] == Progression::Automatic {
        // The first stage takes anything; a later one what runs healthy before it. Neither
        // reads the approvals file, so a broken one stops only the stages that need it.
        return match position.checked_sub(1) {
            None => Ok(()),
            Some(before) => {
                let previous = &lifecycle.stages[before];
                healthy_in(cookbook, desired, previous, &digests, options).await
            }
        };
    }
    let approvals = Approvals::load(&Approvals::path(state_dir))?;
    check_rule(cookbook, desired.stage.as_str(), &digests, &approvals)
        .map(|_| ())
        .map_err(DeployError::from)
}

/// The `automatic` rule, live: on some site serving `previous` (with a target), every instance
/// of these images runs, is healthy per its health check, and runs exactly the image its digest
/// names. A site that cannot be reached is passed over, and named if no site qualifies.
async fn healthy_in(
    cookbook: &Cookbook,
    desired: &Desired,
    previous: &Name,
    digests: &BTreeMap<String, String>,
    options: &ConnectOptions,
) -> Result<(), DeployError> {
    let lock = lock_of(cookbook, desired)?;
    // The plan of a cookbook that loaded (its problems were reported then).
    let (plan, _) =
        crate::graph::Plan::build(&cookbook.containers, &cookbook.packaging.build_order);
    let mut why = Vec::new();
    for (site, deploy) in &cookbook.lifecycle.sites {
        let serves = deploy.stages.is_empty() || deploy.stages.contains(previous);
        let Some(target) = deploy.target.as_ref().filter(|_| serves) else {
            continue;
        };
        // A site running containers these images do not include cannot hold this release.
        let Ok(there) = crate::deploy::desired::desired(
            cookbook,
            &plan,
            &lock,
            site.as_str(),
            previous.as_str(),
        ) else {
            continue;
        };
        let connected = match connect(target, options).await {
            Ok(connected) => connected,
            Err(e) => {
                why.push(format!("site {site}: {e}"));
                continue;
            }
        };
        match connected.healthy(&there).await? {
            Ok(()) => return Ok(()),
            Err(e) => why.push(format!("on site {site}, {e}")),
        }
    }
    Err(DeployError::RuleNotMet(format!(
        "stage `{}` is entered by rule `automatic`: these images (images {}) must first run healthy in `{previous}`: {}",
        desired.stage,
        images_id(digests),
        if why.is_empty() {
            format!("no site with a target serves `{previous}`")
        } else {
            why.join("; ")
        }
    )))
}

/// A lock holding exactly the images of `instances`. Their names and digests came from a lock
/// (through the release records), and are read as strictly as a lock's: the content tag is the
/// input hash, the digest a sha256 digest.
fn lock_of(cookbook: &Cookbook, desired: &Desired) -> Result<Lock, DeployError> {
    let mut lock = Lock::new(&cookbook.project.name);
    for (container, (image, digest)) in desired.images() {
        let bad = |what: &str| {
            DeployError::Failed(format!(
                "the recorded image of {container} is not {what}: {} ({})",
                crate::diagnostic::excerpt(image),
                crate::diagnostic::excerpt(digest)
            ))
        };
        let image =
            crate::oci::WrittenReference::parse(image).map_err(|_| bad("an image reference"))?;
        let input_hash = image
            .reference()
            .tag()
            .and_then(crate::hash::InputHash::parse)
            .ok_or_else(|| bad("tagged with its input hash"))?;
        let digest = crate::oci::Digest::parse(digest).map_err(|_| bad("a digest"))?;
        lock.containers.insert(
            container.clone(),
            LockedImage {
                input_hash,
                image,
                tags: Vec::new(),
                digest: Some(digest),
                image_id: None,
            },
        );
    }
    Ok(lock)
}

/// Refuses a site whose declared capabilities its target is seen not to have.
pub async fn check_capabilities<B: Backend>(
    backend: &B,
    cookbook: &Cookbook,
    site: &Name,
) -> Result<(), DeployError> {
    let declared = &cookbook.lifecycle.sites[site].capabilities;
    // Nothing declared, nothing to miss: no need to ask the target (a cluster's discovery is
    // a dozen requests).
    if declared.is_empty() {
        return Ok(());
    }
    let Some(detected) = backend.detect().await? else {
        return Ok(());
    };
    let missing = detected.missing(declared);
    if missing.is_empty() {
        return Ok(());
    }
    Err(DeployError::Failed(format!(
        "site `{site}` declares {}, which its target does not have (it offers: {})",
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
        detected
            .capabilities()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Whether `stage` is at or after the checkpoint stage: there a failure or a rollback without
/// `--to` goes back to the newest rollback point, not merely the previous record.
pub fn checkpointed(cookbook: &Cookbook, stage: &str) -> bool {
    let lifecycle = &cookbook.lifecycle;
    let at = |s: &str| lifecycle.stages.iter().position(|x| x.as_str() == s);
    matches!((at(stage), at(lifecycle.checkpoint.as_str())), (Some(a), Some(c)) if a >= c)
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// `cookbook deploy` and `promote`: checks the stage's rule and the site's capabilities,
/// converges the site to `desired` (rolling back on failure when the cookbook says so), and
/// records the release. `stop` (a signal) stops it between steps, and rolls it back like a
/// failure.
pub async fn deploy(
    state_dir: &Path,
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
    stop: &CancellationToken,
) -> Result<Outcome, DeployError> {
    check_progression(state_dir, cookbook, desired, options).await?;
    let target = target(cookbook, &desired.site)?;
    let path = records_path(state_dir, &desired.site);
    // Read now for the rollback point; written back only through `Releases::update`, which
    // re-reads them under their lock, so a deploy finishing meanwhile keeps its record.
    let records = Releases::load(&path)?;
    let keep = cookbook.lifecycle.rollback.keep;
    let site = connect(&target, options).await?.with_secrets(secret_source(
        cookbook,
        &desired.site,
        &options.base,
    ));
    check_capabilities(&site, cookbook, &desired.site).await?;
    let failure = match converge(&site, desired, stop).await {
        Ok(outcome) => {
            // At or after the checkpoint stage, a successful deploy makes these images a
            // rollback point, wherever this site recorded them.
            let checkpoint =
                checkpointed(cookbook, desired.stage.as_str()).then(|| desired.stage.to_string());
            let release = Release {
                release: desired.release.clone(),
                deployed_at: now(),
                rolled_back_from: None,
                checkpoint: checkpoint.clone(),
                down_at: None,
                desired: desired.clone(),
            };
            let images = release.images();
            Releases::update(&path, |records| {
                records.record(desired.stage.as_str(), release, keep);
                if let Some(stage) = &checkpoint {
                    records.mark_checkpoint(&images, stage);
                }
            })?;
            return Ok(outcome);
        }
        // Nothing changed yet: the refusal or the unreachable site is the whole answer.
        Err(Halted {
            cause: WaveError::Backend { source, .. },
            touched: false,
            ..
        }) => return Err(DeployError::Backend(source)),
        Err(halted) => halted,
    };
    let previous = records
        .rollback_point(
            desired.stage.as_str(),
            &desired.release,
            checkpointed(cookbook, desired.stage.as_str()),
        )
        .cloned();
    let recovery = match (cookbook.lifecycle.rollback.on_failure, previous) {
        _ if !failure.touched => Recovery::NothingChanged,
        (OnFailure::None, _) => Recovery::LeftAsIs,
        (OnFailure::Previous, None) => Recovery::NothingToRestore,
        // Not stoppable: a second signal ends the process (`cli::interrupt`).
        (OnFailure::Previous, Some(previous)) => {
            match converge(&site, &previous.desired, &CancellationToken::new()).await {
                Ok(restored) => {
                    let back = Release {
                        deployed_at: now(),
                        rolled_back_from: Some(desired.release.clone()),
                        ..previous.clone()
                    };
                    Releases::update(&path, |records| {
                        records.record(desired.stage.as_str(), back, keep)
                    })?;
                    Recovery::RolledBack {
                        release: previous.release,
                        outcome: restored,
                    }
                }
                Err(halted) => Recovery::RollbackFailed {
                    release: previous.release,
                    cause: halted.cause,
                },
            }
        }
    };
    Err(DeployError::Stopped(Box::new(Stopped {
        release: desired.release.clone(),
        site: desired.site.clone(),
        stage: desired.stage.clone(),
        started: failure.started,
        cause: failure.cause,
        recovery,
    })))
}

/// What `rollback` restored.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The record that was restored (its `desired` is what runs now).
    pub release: Release,
    /// The release it replaced.
    pub from: String,
    pub outcome: Outcome,
}

/// `cookbook rollback`: deploys a recorded release of `stage` again, exactly as it ran — `to`, or
/// the one before the current — and records the restore.
pub async fn rollback(
    state_dir: &Path,
    cookbook: &Cookbook,
    site: &Name,
    stage: &str,
    to: Option<&str>,
    options: &ConnectOptions,
) -> Result<Restored, DeployError> {
    let path = records_path(state_dir, site);
    let records = Releases::load(&path)?;
    let recorded: Vec<String> = records
        .stages
        .get(stage)
        .into_iter()
        .flatten()
        .map(|r| r.release.clone())
        .collect();
    let Some(current) = records.current(stage).cloned() else {
        return Err(DeployError::Usage {
            message: format!("no release of stage `{stage}` is recorded for site `{site}`"),
            help: Some("`cookbook releases --site SITE` lists what is recorded".to_owned()),
        });
    };
    // A stage torn down (`cookbook down`) runs nothing: without `--to`, what comes back is the
    // release that ran last.
    let down = current.down_at.is_some();
    let target_release = match to {
        None if down => current.clone(),
        Some(to) => records
            .find(stage, to)
            .cloned()
            .ok_or_else(|| DeployError::Usage {
                message: format!("no release `{to}` recorded for {site}/{stage}"),
                help: listed("recorded releases", &recorded),
            })?,
        None => records
            .rollback_point(stage, &current.release, checkpointed(cookbook, stage))
            .cloned()
            .ok_or_else(|| DeployError::Usage {
                message: format!(
                    "{site}/{stage} has no release before the current one ({})",
                    current.release
                ),
                help: None,
            })?,
    };
    let target = target(cookbook, site)?;
    let connected =
        connect(&target, options)
            .await?
            .with_secrets(secret_source(cookbook, site, &options.base));
    check_capabilities(&connected, cookbook, site).await?;
    let outcome = converge(
        &connected,
        &target_release.desired,
        &CancellationToken::new(),
    )
    .await
    .map_err(|halted| match halted {
        Halted {
            cause: WaveError::Backend { source, .. },
            touched: false,
            ..
        } => DeployError::Backend(source),
        halted => DeployError::Failed(format!(
            "rollback of {site}/{stage} to release {} stopped: {}",
            target_release.release, halted.cause
        )),
    })?;
    Releases::update(&path, |records| {
        records.record(
            stage,
            Release {
                deployed_at: now(),
                // A stage that was down replaced nothing.
                rolled_back_from: (!down).then(|| current.release.clone()),
                ..target_release.clone()
            },
            cookbook.lifecycle.rollback.keep,
        )
    })?;
    Ok(Restored {
        release: target_release,
        from: current.release,
        outcome,
    })
}

/// `cookbook status`: each desired unit as the site runs it.
pub async fn status(
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
) -> Result<<Site as Backend>::Status, DeployError> {
    let target = target(cookbook, &desired.site)?;
    let site = connect(&target, options).await?;
    Ok(site.status(desired).await?)
}

/// [`status`] without what each container offers: no exec in the containers.
pub async fn status_without_services(
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
) -> Result<<Site as Backend>::Status, DeployError> {
    let target = target(cookbook, &desired.site)?;
    let site = connect(&target, options).await?;
    Ok(site.status_without_services(desired).await?)
}

/// The records of `site` (none yet: empty).
pub fn releases(state_dir: &Path, site: &Name) -> Result<Releases, DeployError> {
    Ok(Releases::load(&records_path(state_dir, site))?)
}

/// `cookbook promote`: a lock holding the images of `from`'s current release on `site`, whatever
/// the lock beside the cookbook says now.
pub fn promoted_lock(
    state_dir: &Path,
    cookbook: &Cookbook,
    site: &Name,
    from: &str,
) -> Result<Lock, DeployError> {
    let records = releases(state_dir, site)?;
    let Some(current) = records.current(from) else {
        return Err(DeployError::Usage {
            message: format!("nothing is recorded in {site}/{from}: deploy it there first"),
            help: Some("`cookbook releases --site SITE` lists what is recorded".to_owned()),
        });
    };
    lock_of(cookbook, &current.desired)
}

/// `cookbook site detect`: what the target offers (`None`: it cannot be observed).
pub async fn detect(
    target: &Target,
    options: &ConnectOptions,
) -> Result<Option<crate::deploy::detect::Detected>, DeployError> {
    let site = connect(target, options).await?;
    Ok(site.detect().await?)
}
