//! `cookbook deploy --site S --stage ST`: runs the images pinned in cookbook.lock on the site's
//! Docker engine, wave by wave, each wave healthy before the next.
//!
//! The work is `deploy::desired` (pure) and `deploy::docker` (the engine); this module reads the
//! cookbook and the lock, checks the stage's progression rule, connects to the site's target and
//! prints the outcome.

use std::io::Write;
use std::path::Path;

use crate::apply::lock::Lock;
use crate::cli::{load, Format};
use crate::deploy::desired::{desired, DesiredError};
use crate::deploy::docker::{DeployError, Deployer};
use crate::engine::DockerEngine;
use crate::error::Error;
use crate::model::lifecycle::{Progression, Target};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The federation site to deploy to (its `target` names the engine)
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The lifecycle stage to deploy
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn listed(what: &str, names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| format!("{what}: {}", names.join(", ")))
}

pub fn run(file: &Path, args: &DeployArgs, out: &mut dyn Write) -> Result<(), Error> {
    let cookbook = load(file)?;
    let lock_path = Lock::path_for(file);
    let lock = Lock::read(&lock_path)
        .map_err(|e| Error::Failed(e.to_string()))?
        .ok_or_else(|| Error::Usage {
            message: format!("no {}: nothing has been published yet", lock_path.display()),
            help: Some("run `cookbook apply` first".to_owned()),
        })?;
    let desired = desired(&cookbook, &lock, &args.site, &args.stage).map_err(|e| match &e {
        DesiredError::UnknownSite { known, .. } => Error::Usage {
            message: e.to_string(),
            help: listed("sites in this cookbook", known),
        },
        DesiredError::UnknownStage { known, .. } => Error::Usage {
            message: e.to_string(),
            help: listed("stages", known),
        },
        DesiredError::StageNotServed { served, .. } => Error::Usage {
            message: e.to_string(),
            help: listed("it serves", served),
        },
        // The request is fine; what it needs is not there yet: the work fails (exit 1).
        DesiredError::NotPublished { .. } => {
            Error::Failed(format!("{e}; run `cookbook apply` to build and publish it"))
        }
        DesiredError::OtherProject { .. } => Error::Failed(e.to_string()),
    })?;
    // Approvals are not recorded yet (issue 13's `approve`): a stage that needs one is refused
    // rather than entered without it.
    let rule = cookbook.lifecycle.progression[&desired.stage];
    if rule != Progression::Automatic {
        return Err(Error::Failed(format!(
            "stage `{}` is entered by rule `{}`: it needs a recorded approval, and this version of cookbook cannot record one yet",
            desired.stage,
            rule.as_str()
        )));
    }
    let host = match &cookbook.lifecycle.sites[&desired.site].target {
        Some(Target::Docker { host }) => host.clone(),
        None => {
            return Err(Error::Usage {
                message: format!("site `{}` has no target to deploy to", desired.site),
                help: Some(
                    "give it one in format 1.1: \"target\": {\"docker\": {\"host\": \"env\"}}"
                        .to_owned(),
                ),
            })
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        let engine = if host == "env" {
            DockerEngine::connect().await?
        } else {
            DockerEngine::connect_to(&host).await?
        };
        Deployer::new(&engine)
            .deploy(&desired)
            .await
            .map_err(|e| match e {
                DeployError::Engine(e) => Error::Engine(e),
                unhealthy @ DeployError::Unhealthy { .. } => Error::Failed(format!(
                    "deploy of release {} to {}/{} stopped: {unhealthy}",
                    desired.release, desired.site, desired.stage
                )),
            })
    })?;
    match args.format {
        Format::Text => {
            let _ = writeln!(
                out,
                "deployed release {} of {} to {}/{}: {} started, {} unchanged, {} removed",
                outcome.release,
                desired.project,
                desired.site,
                desired.stage,
                outcome.started.len(),
                outcome.unchanged.len(),
                outcome.removed.len()
            );
            for (what, names) in [
                ("started", &outcome.started),
                ("unchanged", &outcome.unchanged),
                ("removed", &outcome.removed),
            ] {
                for name in names {
                    let _ = writeln!(out, "  {what:<9} {name}");
                }
            }
        }
        Format::Json => {
            let doc = serde_json::json!({
                "result": "ok",
                "project": desired.project.to_string(),
                "site": desired.site.to_string(),
                "stage": desired.stage.to_string(),
                "release": outcome.release,
                "network": desired.network,
                "started": outcome.started,
                "unchanged": outcome.unchanged,
                "removed": outcome.removed,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}
