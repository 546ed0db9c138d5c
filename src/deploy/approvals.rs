//! Recorded approvals, and the progression rules that read them.
//!
//! Pipeline position: `cookbook approve` writes an approval; `deploy` and `promote` check the
//! target stage's rule (`lifecycle.progression`) before touching an engine:
//! - `automatic`: the first stage always; a later one once the same images run, recorded as
//!   healthy, as the current release of the previous stage on some site of this cookbook;
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

use crate::deploy::releases::Releases;
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
/// `records` are the release records of every site of this cookbook.
pub fn check_rule(
    cookbook: &Cookbook,
    stage: &str,
    digests: &BTreeMap<String, String>,
    approvals: &Approvals,
    records: &[Releases],
) -> Result<Option<Approval>, String> {
    let lifecycle = &cookbook.lifecycle;
    let Some(position) = lifecycle.stages.iter().position(|s| s.as_str() == stage) else {
        return Err(format!("unknown stage `{stage}`"));
    };
    let rule = lifecycle.progression[&lifecycle.stages[position]];
    let images = images_id(digests);
    match rule {
        Progression::Automatic if position == 0 => Ok(None),
        Progression::Automatic => {
            let previous = lifecycle.stages[position - 1].as_str();
            let healthy_there = records.iter().any(|r| {
                r.current(previous).is_some_and(|release| {
                    let there: BTreeMap<&str, &str> = release
                        .desired
                        .instances()
                        .map(|i| (i.container.as_str(), i.digest.as_str()))
                        .collect();
                    !there.is_empty()
                        && there
                            .iter()
                            .all(|(c, d)| digests.get(*c).is_none_or(|mine| mine == d))
                })
            });
            if healthy_there {
                Ok(None)
            } else {
                Err(format!(
                    "stage `{stage}` is entered by rule `automatic`: these images (images {images}) must first run healthy as the current release of `{previous}`"
                ))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::desired::desired;
    use crate::deploy::releases::Release;
    use crate::state::lock::{Lock, LockedImage};

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
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let none = Approvals::default();
        // The first stage is always open.
        assert_eq!(
            check_rule(&cookbook, "dev", &digests("sha256:1"), &none, &[]),
            Ok(None)
        );
        // `automatic`: only once the same images are dev's current release somewhere.
        let err = check_rule(&cookbook, "test", &digests("sha256:1"), &none, &[]).unwrap_err();
        assert!(
            err.starts_with("stage `test` is entered by rule `automatic`"),
            "{err}"
        );
        let mut lock = Lock::new("p");
        lock.containers.insert(
            "c".to_owned(),
            LockedImage {
                input_hash: String::new(),
                image: "r/c:1".to_owned(),
                tags: vec![],
                digest: Some("sha256:1".to_owned()),
                image_id: None,
            },
        );
        let d = desired(&cookbook, &plan, &lock, "s", "dev").unwrap();
        let mut records = Releases::default();
        records.record(
            "dev",
            Release {
                release: d.release.clone(),
                deployed_at: "t".to_owned(),
                rolled_back_from: None,
                desired: d,
            },
            10,
        );
        let records = [records];
        assert_eq!(
            check_rule(&cookbook, "test", &digests("sha256:1"), &none, &records),
            Ok(None)
        );
        assert!(check_rule(&cookbook, "test", &digests("sha256:2"), &none, &records).is_err());
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
        assert!(check_rule(&cookbook, "prod", &digests("sha256:1"), &person, &[]).is_err());
        let ci = Approvals {
            approvals: vec![approval(true)],
        };
        assert!(
            check_rule(&cookbook, "prod", &digests("sha256:1"), &ci, &[])
                .unwrap()
                .is_some()
        );
        assert!(check_rule(&cookbook, "prod", &digests("sha256:2"), &ci, &[]).is_err());
    }
}
