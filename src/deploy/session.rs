//! The deploy orchestration, the same for every kind of site: check the stage's progression rule
//! and the site's capabilities, converge the site wave by wave (each wave healthy before the
//! next), record the release, and roll a failed deploy back to the stage's previous release.
//! Also `rollback` to a recorded release, `status`, and the lock `promote` deploys.
//!
//! Pipeline position: `desired` (pure) → **here** → a `Backend` (`docker::DockerSite`) carries
//! out each wave; `releases` and `approvals` keep the records in the state directory.
//! Invariants: a release is recorded only after every wave was healthy; a deploy that changes
//! nothing adds no record; nothing here prints (the CLI renders the outcome and the errors).

use std::collections::BTreeMap;
use std::path::Path;

use crate::deploy::approvals::{check_rule, images_id, Approvals};
use crate::deploy::backend::{connect, Backend, BackendError, ConnectOptions, Site};
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

/// Why converging a site stopped.
#[derive(Debug, thiserror::Error)]
pub enum WaveError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("wave {wave}: {unit} is not healthy: {why}")]
    Unhealthy {
        wave: usize,
        unit: String,
        why: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The site's edge failed or could not be reached.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The release records or approvals could not be read or written.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// The work failed or was refused: a progression rule not met, a capability missing, a wave
    /// not healthy (with what was rolled back).
    #[error("{0}")]
    Failed(String),
    /// A request that does not fit the cookbook or the records (an unknown release, a site
    /// without a target).
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },
}

/// "what: a, b" for a help line, or nothing for an empty list.
pub fn listed(what: &str, names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| format!("{what}: {}", names.join(", ")))
}

/// Converges the site to `desired`: prepares the stage, then wave by wave applies the units that
/// differ and waits until the whole wave is healthy; removes what is no longer wanted last. On an
/// unhealthy wave it stops there (what is already started stays: rolling back is the caller's
/// decision).
pub async fn converge<B: Backend>(backend: &B, desired: &Desired) -> Result<Outcome, WaveError> {
    backend.prepare(desired).await?;
    let plan = backend.changes(desired).await?;
    let mut outcome = Outcome {
        release: desired.release.clone(),
        unchanged: plan.unchanged.clone(),
        ..Default::default()
    };
    for (index, create) in plan.waves.iter().enumerate() {
        backend.apply(desired, index, create).await?;
        outcome.started.extend(create.iter().cloned());
        if let Err(failed) = backend.wait(desired, index).await? {
            return Err(WaveError::Unhealthy {
                wave: index + 1,
                unit: failed.unit,
                why: failed.why,
            });
        }
    }
    backend.remove(desired, &plan.orphans).await?;
    outcome.removed = plan.orphans;
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
            help: listed(
                "sites in this cookbook",
                &cookbook
                    .sites
                    .keys()
                    .map(Name::to_string)
                    .collect::<Vec<_>>(),
            ),
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
    let digests: BTreeMap<String, String> = desired
        .instances()
        .map(|i| (i.container.to_string(), i.digest.clone()))
        .collect();
    let lifecycle = &cookbook.lifecycle;
    let position = lifecycle
        .stages
        .iter()
        .position(|s| s == &desired.stage)
        .unwrap_or(0);
    if position > 0 && lifecycle.progression[&desired.stage] == Progression::Automatic {
        let previous = &lifecycle.stages[position - 1];
        return healthy_in(cookbook, desired, previous, &digests, options).await;
    }
    let approvals = Approvals::load(&Approvals::path(state_dir))?;
    check_rule(cookbook, desired.stage.as_str(), &digests, &approvals)
        .map(|_| ())
        .map_err(DeployError::Failed)
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
    let lock = lock_of(cookbook, desired.instances())?;
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
    Err(DeployError::Failed(format!(
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
fn lock_of<'a>(
    cookbook: &Cookbook,
    instances: impl Iterator<Item = &'a crate::deploy::desired::Instance>,
) -> Result<Lock, DeployError> {
    let mut lock = Lock::new(&cookbook.project.name);
    for i in instances {
        let bad = |what: &str| {
            DeployError::Failed(format!(
                "the recorded image of {} is not {what}: {} ({})",
                i.container,
                crate::diagnostic::excerpt(&i.image),
                crate::diagnostic::excerpt(&i.digest)
            ))
        };
        let image =
            crate::oci::WrittenReference::parse(&i.image).map_err(|_| bad("an image reference"))?;
        let input_hash = image
            .reference()
            .tag()
            .and_then(crate::hash::InputHash::parse)
            .ok_or_else(|| bad("tagged with its input hash"))?;
        let digest = crate::oci::Digest::parse(&i.digest).map_err(|_| bad("a digest"))?;
        lock.containers.insert(
            i.container.clone(),
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
    let Some(detected) = backend.detect().await? else {
        return Ok(());
    };
    let declared = &cookbook.lifecycle.sites[site].capabilities;
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
/// records the release.
pub async fn deploy(
    state_dir: &Path,
    cookbook: &Cookbook,
    desired: &Desired,
    options: &ConnectOptions,
) -> Result<Outcome, DeployError> {
    check_progression(state_dir, cookbook, desired, options).await?;
    let target = target(cookbook, &desired.site)?;
    let path = records_path(state_dir, &desired.site);
    let mut records = Releases::load(&path)?;
    let keep = cookbook.lifecycle.rollback.keep;
    let site = connect(&target, options).await?;
    check_capabilities(&site, cookbook, &desired.site).await?;
    let failure = match converge(&site, desired).await {
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
                desired: desired.clone(),
            };
            let images = release.images();
            records.record(desired.stage.as_str(), release, keep);
            if let Some(stage) = &checkpoint {
                records.mark_checkpoint(&images, stage);
            }
            records.save(&path)?;
            return Ok(outcome);
        }
        Err(WaveError::Backend(e)) => return Err(DeployError::Backend(e)),
        Err(unhealthy) => format!(
            "deploy of release {} to {}/{} stopped: {unhealthy}",
            desired.release, desired.site, desired.stage
        ),
    };
    let previous = records
        .rollback_point(
            desired.stage.as_str(),
            &desired.release,
            checkpointed(cookbook, desired.stage.as_str()),
        )
        .cloned();
    let message = match (cookbook.lifecycle.rollback.on_failure, previous) {
        (OnFailure::None, _) => format!("{failure}; left as it is (on_failure: none)"),
        (OnFailure::Previous, None) => {
            format!("{failure}; no earlier release of this stage to roll back to")
        }
        (OnFailure::Previous, Some(previous)) => match converge(&site, &previous.desired).await {
            Ok(restored) => {
                let back = Release {
                    deployed_at: now(),
                    rolled_back_from: Some(desired.release.clone()),
                    ..previous.clone()
                };
                records.record(desired.stage.as_str(), back, keep);
                records.save(&path)?;
                format!(
                    "{failure}; rolled back to release {} (recreated: {})",
                    previous.release,
                    names(&restored.started)
                )
            }
            Err(e) => format!(
                "{failure}; rolling back to release {} failed too: {e}",
                previous.release
            ),
        },
    };
    Err(DeployError::Failed(message))
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
    let mut records = Releases::load(&path)?;
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
    let target_release = match to {
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
    let connected = connect(&target, options).await?;
    check_capabilities(&connected, cookbook, site).await?;
    let outcome = converge(&connected, &target_release.desired)
        .await
        .map_err(|e| match e {
            WaveError::Backend(e) => DeployError::Backend(e),
            unhealthy => DeployError::Failed(format!(
                "rollback of {site}/{stage} to release {} stopped: {unhealthy}",
                target_release.release
            )),
        })?;
    records.record(
        stage,
        Release {
            deployed_at: now(),
            rolled_back_from: Some(current.release.clone()),
            ..target_release.clone()
        },
        cookbook.lifecycle.rollback.keep,
    );
    records.save(&path)?;
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
    lock_of(cookbook, current.desired.instances())
}

/// `cookbook site detect`: what the target offers (`None`: it cannot be observed).
pub async fn detect(
    target: &Target,
    options: &ConnectOptions,
) -> Result<Option<crate::deploy::detect::Detected>, DeployError> {
    let site = connect(target, options).await?;
    Ok(site.detect().await?)
}
