//! Recorded approvals, and the progression rules that read them.
//!
//! Pipeline position: `cookbook approve` writes an approval; `deploy` and `promote` check the
//! target stage's rule (`lifecycle.progression`) before touching an engine:
//! - `automatic`: the first stage always; a later one once the same images run healthy in the
//!   previous stage on some site serving it — asked of the engines at that moment
//!   (`live_verdict` judges what they answer), not read from records;
//! - `ci-approved`: an approval recorded with `--ci` for the stage and these images;
//! - `manual`: an approval naming a person for the stage and these images.
//!
//! An approval records the lock's digests (and their `images_id`, for people): it covers a deploy
//! whose every digest is one of them, so it covers exactly what was approved and nothing rebuilt
//! since. The file,
//! `.cookbook/deploy/approvals.json`, is written like the release records (temp file, fsync,
//! rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deploy::docker::InstanceStatus;
use crate::model::lifecycle::Progression;
use crate::model::Cookbook;

pub type ApprovalsError = crate::state::record::RecordError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub stage: String,
    /// `images_id` of `digests`.
    pub images: String,
    /// Container → digest, as the lock had them.
    pub digests: BTreeMap<String, String>,
    pub by: String,
    pub ci: bool,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    pub approvals: Vec<Approval>,
}

/// The id of a set of images: container → digest.
pub fn images_id(digests: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (container, digest) in digests {
        hasher.update(container.as_bytes());
        hasher.update(b"=");
        hasher.update(digest.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

impl Approvals {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("deploy").join("approvals.json")
    }

    pub fn load(path: &Path) -> Result<Approvals, ApprovalsError> {
        crate::state::record::read(path, "approvals file")
    }

    pub fn save(&self, path: &Path) -> Result<(), ApprovalsError> {
        crate::state::record::write(path, self)
    }

    /// The newest approval for `stage` of the kind `ci` that covers every digest of `digests`.
    fn find(&self, stage: &str, digests: &BTreeMap<String, String>, ci: bool) -> Option<&Approval> {
        self.approvals.iter().rev().find(|a| {
            a.stage == stage
                && a.ci == ci
                && digests.iter().all(|(c, d)| a.digests.get(c) == Some(d))
        })
    }
}

/// Checks the rule to enter `stage` with the images `digests`; `Err` says which rule and why.
/// The first stage is always open; `ci-approved` and `manual` read `approvals`. An `automatic`
/// stage after the first is judged live by the caller (`live_verdict`), so it is refused here.
pub fn check_rule(
    cookbook: &Cookbook,
    stage: &str,
    digests: &BTreeMap<String, String>,
    approvals: &Approvals,
) -> Result<Option<Approval>, String> {
    let lifecycle = &cookbook.lifecycle;
    let Some(position) = lifecycle.stages.iter().position(|s| s.as_str() == stage) else {
        return Err(format!("unknown stage `{stage}`"));
    };
    let rule = lifecycle.progression[&lifecycle.stages[position]];
    let images = images_id(digests);
    match rule {
        Progression::Automatic if position == 0 => Ok(None),
        Progression::Automatic => Err(format!(
            "stage `{stage}` is entered by rule `automatic`: it is checked against the previous stage's engines"
        )),
        Progression::CiApproved | Progression::Manual => {
            let ci = rule == Progression::CiApproved;
            approvals
                .find(stage, digests, ci)
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "stage `{stage}` is entered by rule `{}`: no {} recorded for these images (images {images}); record one with `cookbook approve --stage {stage} --by NAME{}`",
                        rule.as_str(),
                        if ci { "CI approval" } else { "approval by a person" },
                        if ci { " --ci" } else { "" }
                    )
                })
        }
    }
}

/// Whether a release runs healthy, from the engine's view of each of its instances: every one
/// running, healthy per its health check (`none`: it has no probe, and running is enough), and
/// running the very image its digest names. `Err` names the first instance that is not.
pub fn live_verdict(instances: &[InstanceStatus]) -> Result<(), String> {
    if instances.is_empty() {
        return Err("it runs none of these containers".to_owned());
    }
    for i in instances {
        if i.state != "running" {
            return Err(format!("{} is {}", i.name, i.state));
        }
        if i.health != "healthy" && i.health != "none" {
            return Err(format!("{} is {}", i.name, i.health));
        }
        if i.desired_image.is_none() || i.running_image != i.desired_image {
            return Err(format!("{} runs other images", i.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKBOOK: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "applications": { "a": {} },
      "containers": { "c": { "base_image": "b", "applications": ["a"] } },
      "lifecycle": {
        "stages": ["dev", "test", "prod"],
        "progression": { "test": "automatic", "prod": "ci-approved" }
      },
      "federation": { "sites": { "s": { "containers": ["c"] } } }
    }"#;

    fn digests(d: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("c".to_owned(), d.to_owned())])
    }

    #[test]
    fn rules() {
        let cookbook = crate::load::parse(COOKBOOK.as_bytes()).unwrap().cookbook;
        let none = Approvals::default();
        // The first stage is always open.
        assert_eq!(
            check_rule(&cookbook, "dev", &digests("sha256:1"), &none),
            Ok(None)
        );
        // `automatic` after the first stage is judged live, not here.
        let err = check_rule(&cookbook, "test", &digests("sha256:1"), &none).unwrap_err();
        assert!(
            err.starts_with("stage `test` is entered by rule `automatic`"),
            "{err}"
        );
        // `ci-approved`: a CI approval covering these digests; a person's does not count.
        let approval = |ci| Approval {
            stage: "prod".to_owned(),
            images: images_id(&digests("sha256:1")),
            digests: digests("sha256:1"),
            by: "x".to_owned(),
            ci,
            at: "t".to_owned(),
        };
        let person = Approvals {
            approvals: vec![approval(false)],
        };
        assert!(check_rule(&cookbook, "prod", &digests("sha256:1"), &person).is_err());
        let ci = Approvals {
            approvals: vec![approval(true)],
        };
        assert!(check_rule(&cookbook, "prod", &digests("sha256:1"), &ci)
            .unwrap()
            .is_some());
        assert!(check_rule(&cookbook, "prod", &digests("sha256:2"), &ci).is_err());
    }
}

#[cfg(test)]
mod live {
    use super::*;

    fn instance(name: &str, state: &str, health: &str, image: Option<&str>) -> InstanceStatus {
        InstanceStatus {
            name: name.to_owned(),
            container: name.to_owned(),
            state: state.to_owned(),
            health: health.to_owned(),
            restarts: 0,
            started_at: None,
            desired_image: Some("sha256:a".to_owned()),
            running_image: image.map(str::to_owned),
            drift: false,
            services: None,
        }
    }

    #[test]
    fn a_release_is_healthy_when_every_instance_runs_healthy_with_its_image() {
        let ok = instance("p-test-db-1", "running", "healthy", Some("sha256:a"));
        let no_probe = instance("p-test-job-1", "running", "none", Some("sha256:a"));
        assert_eq!(live_verdict(&[ok.clone(), no_probe]), Ok(()));
        assert_eq!(
            live_verdict(&[]),
            Err("it runs none of these containers".to_owned())
        );
        let missing = instance("p-test-api-1", "missing", "none", None);
        assert_eq!(
            live_verdict(&[ok.clone(), missing]),
            Err("p-test-api-1 is missing".to_owned())
        );
        let sick = instance("p-test-api-1", "running", "unhealthy", Some("sha256:a"));
        assert_eq!(
            live_verdict(&[sick]),
            Err("p-test-api-1 is unhealthy".to_owned())
        );
        let starting = instance("p-test-api-1", "running", "starting", Some("sha256:a"));
        assert!(live_verdict(&[starting]).is_err());
        let other = instance("p-test-api-1", "running", "healthy", Some("sha256:b"));
        assert_eq!(
            live_verdict(&[ok, other]),
            Err("p-test-api-1 runs other images".to_owned())
        );
    }
}
