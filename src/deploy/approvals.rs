//! Approvals, the progression rules that read them, and the flows of `cookbook approve` and
//! `cookbook promote`.
//!
//! Pipeline position: `cookbook approve` records an approval (`approve`); `deploy` and `promote`
//! check the target stage's rule (`lifecycle.progression`) before touching a site:
//! - `automatic`: the first stage always; a later one once the same images run healthy in the
//!   previous stage on some site serving it — asked of the sites at that moment (`live_verdict`
//!   judges what a Docker engine answers), not read from records. It takes no approval;
//! - `ci-approved`: an approval recorded with `--ci` for the stage and these images;
//! - `manual`: an approval naming a person for the stage and these images.
//!
//! An approval names what it approves: by default the release `promote` would carry into the
//! stage (the current release of the stage before it, from a site's records), or a recorded
//! release by id, or `cookbook.lock`'s images (what `deploy` runs). It records that release (site,
//! stage, id) for people and the images' digests for the rule: it covers a deploy whose every
//! digest is one of them, so it covers exactly what was approved and nothing rebuilt since.
//! `promote` (`promotion`) moves a release only forward through the stages and, refused for want
//! of an approval, names the release and the exact `approve` command that approves it.
//!
//! The file, `.cookbook/deploy/approvals.json`, is changed only through `Approvals::update`
//! (read–modify–write under the state directory's lock; temp file, fsync, rename), so two
//! approvals recorded at once are both kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deploy::desired::{desired, Desired};
use crate::deploy::docker::InstanceStatus;
use crate::deploy::releases::now;
use crate::deploy::session::{self, listed, DeployError};
use crate::graph::Plan;
use crate::model::lifecycle::Progression;
use crate::model::{Cookbook, Name};
use crate::state::lock::Lock;

pub type ApprovalsError = crate::state::record::RecordError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub stage: String,
    /// `images_id` of `digests`.
    pub images: String,
    /// Container → digest, as the approved release or lock had them.
    pub digests: BTreeMap<String, String>,
    /// The recorded release approved (none: a lock's images were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRef>,
    pub by: String,
    pub ci: bool,
    pub at: String,
}

/// A release in a site's records: `id` recorded in `site`/`stage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRef {
    pub id: String,
    pub site: String,
    pub stage: String,
}

impl std::fmt::Display for ReleaseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "release {} of {}/{}", self.id, self.site, self.stage)
    }
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

    /// Changes the approvals at `path` as they are now, under their lock
    /// (`state::record::update`), and writes them; returns what `change` returns.
    pub fn update<R>(
        path: &Path,
        change: impl FnOnce(&mut Approvals) -> R,
    ) -> Result<R, ApprovalsError> {
        crate::state::record::update(path, "approvals file", change)
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

/// A stage whose rule asks for an approval these images do not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stage `{stage}` is entered by rule `{}`: no {} recorded for these images (images {images}{})",
    rule.as_str(),
    if *rule == Progression::CiApproved { "CI approval" } else { "approval by a person" },
    carried.as_ref().map(|r| format!(": {r}, which promote carries")).unwrap_or_default())]
pub struct Unapproved {
    pub stage: String,
    pub rule: Progression,
    pub images: String,
    /// The recorded release a promotion carries; `None`: a lock's images (`deploy`).
    pub carried: Option<Box<ReleaseRef>>,
}

impl Unapproved {
    /// The `cookbook approve` command that records the approval this refusal asks for.
    pub fn command(&self) -> String {
        let what = match &self.carried {
            Some(r) => format!("--site {} --release {}", r.site, r.id),
            None => "--lock".to_owned(),
        };
        let ci = if self.rule == Progression::CiApproved {
            " --ci"
        } else {
            ""
        };
        format!(
            "cookbook approve --stage {} {what} --by NAME{ci}",
            self.stage
        )
    }

    /// The help line: which images, and the command.
    pub fn help(&self) -> String {
        let what = match &self.carried {
            Some(r) => r.to_string(),
            None => "cookbook.lock's images".to_owned(),
        };
        format!("approve {what} with `{}`", self.command())
    }
}

/// Why a stage's rule, read from the records, does not let images in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    /// An `automatic` stage after the first: only the previous stage's sites can say.
    #[error("stage `{0}` is entered by rule `automatic`: it is checked against the previous stage's engines")]
    Live(String),
    #[error(transparent)]
    Unapproved(#[from] Unapproved),
}

impl From<RuleError> for DeployError {
    fn from(e: RuleError) -> DeployError {
        match e {
            RuleError::Unapproved(u) => DeployError::Unapproved(u),
            other => DeployError::Failed(other.to_string()),
        }
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
) -> Result<Option<Approval>, RuleError> {
    let lifecycle = &cookbook.lifecycle;
    let Some(position) = lifecycle.stages.iter().position(|s| s.as_str() == stage) else {
        return Err(RuleError::UnknownStage(stage.to_owned()));
    };
    let rule = lifecycle.progression[&lifecycle.stages[position]];
    match rule {
        Progression::Automatic if position == 0 => Ok(None),
        Progression::Automatic => Err(RuleError::Live(stage.to_owned())),
        Progression::CiApproved | Progression::Manual => approvals
            .find(stage, digests, rule == Progression::CiApproved)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                RuleError::Unapproved(Unapproved {
                    stage: stage.to_owned(),
                    rule,
                    images: images_id(digests),
                    carried: None,
                })
            }),
    }
}

/// What `cookbook approve` approves.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The release `promote` would carry into the stage: the current release of the stage
    /// before it, on the request's site.
    Current,
    /// A release recorded on the request's site, by id.
    Release(&'a str),
    /// A lock's images (`cookbook.lock`: what `deploy` runs).
    Lock(&'a Lock),
}

/// `cookbook approve`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub stage: &'a str,
    /// A person, or with `ci` the CI job.
    pub by: &'a str,
    pub ci: bool,
    /// The site whose records hold the release (`None`: the only site with a target that
    /// serves the stage the release comes from). Not used for a lock.
    pub site: Option<&'a str>,
    pub subject: Subject<'a>,
}

fn stage_list(cookbook: &Cookbook) -> Vec<String> {
    cookbook
        .lifecycle
        .stages
        .iter()
        .map(Name::to_string)
        .collect()
}

/// The position of `stage` in the lifecycle, or a refusal listing the stages.
fn stage_position(cookbook: &Cookbook, stage: &str) -> Result<usize, DeployError> {
    cookbook
        .lifecycle
        .stages
        .iter()
        .position(|s| s.as_str() == stage)
        .ok_or_else(|| DeployError::Usage {
            message: format!("unknown stage `{stage}`"),
            help: listed("stages", &stage_list(cookbook)),
        })
}

/// The rule of `stage` (at `position`), if it is one an approval of kind `ci` serves; else the
/// refusal, saying what the stage takes instead.
fn approval_rule(
    cookbook: &Cookbook,
    stage: &str,
    position: usize,
    ci: bool,
) -> Result<Progression, DeployError> {
    let lifecycle = &cookbook.lifecycle;
    let rule = lifecycle.progression[&lifecycle.stages[position]];
    let refuse = |message: String, help: String| DeployError::Usage {
        message: format!(
            "stage `{stage}` is entered by rule `{}`: {message}",
            rule.as_str()
        ),
        help: Some(help),
    };
    match rule {
        Progression::Automatic if position == 0 => Err(refuse(
            "it takes no approval".to_owned(),
            format!("`{stage}` is the first stage: any published images may be deployed there"),
        )),
        Progression::Automatic => Err(refuse(
            "it takes no approval".to_owned(),
            format!(
                "it opens by itself to images that run healthy in `{}`",
                lifecycle.stages[position - 1]
            ),
        )),
        Progression::CiApproved if !ci => Err(refuse(
            "a person's approval does not open it".to_owned(),
            "record CI's approval with `--ci` (e.g. after `cookbook verify` passed)".to_owned(),
        )),
        Progression::Manual if ci => Err(refuse(
            "a CI approval does not open it".to_owned(),
            "a person approves it: leave out `--ci`".to_owned(),
        )),
        rule => Ok(rule),
    }
}

/// The site whose records to read: `site`, or the only site with a target that serves `stage`.
fn site_for(cookbook: &Cookbook, site: Option<&str>, stage: &Name) -> Result<Name, DeployError> {
    if let Some(site) = site {
        return session::known_site(cookbook, site);
    }
    let serving: Vec<&Name> = cookbook
        .lifecycle
        .sites
        .iter()
        .filter(|(_, d)| d.target.is_some() && (d.stages.is_empty() || d.stages.contains(stage)))
        .map(|(name, _)| name)
        .collect();
    match serving.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(DeployError::Usage {
            message: format!("no site with a target serves stage `{stage}`: no release of it is recorded anywhere"),
            help: Some("approve cookbook.lock's images with `--lock`".to_owned()),
        }),
        many => Err(DeployError::Usage {
            message: format!(
                "several sites serve stage `{stage}`: name the one whose release to approve with `--site`"
            ),
            help: listed(
                "sites serving it",
                &many.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ),
        }),
    }
}

/// Container → digest of a release's instances.
fn digests_of(desired: &Desired) -> BTreeMap<String, String> {
    desired
        .instances()
        .map(|i| (i.container.to_string(), i.digest.clone()))
        .collect()
}

/// `cookbook approve`: checks that the stage's rule takes this kind of approval, resolves what
/// is approved, and records the approval (under the approvals' lock).
pub fn approve(
    state_dir: &Path,
    cookbook: &Cookbook,
    request: &Request,
) -> Result<Approval, DeployError> {
    let position = stage_position(cookbook, request.stage)?;
    if request.by.trim().is_empty() {
        return Err(DeployError::Usage {
            message: "--by needs a name".to_owned(),
            help: None,
        });
    }
    approval_rule(cookbook, request.stage, position, request.ci)?;
    let (digests, release) = match request.subject {
        Subject::Lock(lock) => (lock_digests(lock), None),
        Subject::Current => carried(state_dir, cookbook, request, position)?,
        Subject::Release(id) => recorded(state_dir, cookbook, request.site, id)?,
    };
    let approval = Approval {
        stage: request.stage.to_owned(),
        images: images_id(&digests),
        digests,
        release,
        by: request.by.to_owned(),
        ci: request.ci,
        at: now(),
    };
    let recorded = approval.clone();
    Approvals::update(&Approvals::path(state_dir), |a| a.approvals.push(recorded))?;
    Ok(approval)
}

/// Container → digest of a lock's images. An image's identity: its registry digest, or its local
/// id when it was not published.
fn lock_digests(lock: &Lock) -> BTreeMap<String, String> {
    lock.containers
        .iter()
        .filter_map(|(c, l)| {
            let digest = l.digest.as_ref().or(l.image_id.as_ref())?;
            Some((c.to_string(), digest.to_string()))
        })
        .collect()
}

/// What `promote` would carry into the request's stage (at `position`): the current release of
/// the stage before it, on the request's site.
fn carried(
    state_dir: &Path,
    cookbook: &Cookbook,
    request: &Request,
    position: usize,
) -> Result<(BTreeMap<String, String>, Option<ReleaseRef>), DeployError> {
    let Some(source) = position
        .checked_sub(1)
        .map(|p| &cookbook.lifecycle.stages[p])
    else {
        return Err(DeployError::Usage {
            message: format!(
                "stage `{}` is the first stage: no release comes to it from another stage",
                request.stage
            ),
            help: Some("approve cookbook.lock's images with `--lock`".to_owned()),
        });
    };
    let site = site_for(cookbook, request.site, source)?;
    let records = session::releases(state_dir, &site)?;
    let Some(current) = records.current(source.as_str()) else {
        return Err(DeployError::Usage {
            message: format!(
                "nothing is recorded in {site}/{source}: there is no release for `promote` to carry into `{}` yet",
                request.stage
            ),
            help: Some(format!(
                "deploy it to {site}/{source} first, or approve cookbook.lock's images with `--lock`"
            )),
        });
    };
    let release = ReleaseRef {
        id: current.release.clone(),
        site: site.to_string(),
        stage: source.to_string(),
    };
    Ok((digests_of(&current.desired), Some(release)))
}

/// The release `id` recorded on `site` (or the only site with a target), in whichever stage.
fn recorded(
    state_dir: &Path,
    cookbook: &Cookbook,
    site: Option<&str>,
    id: &str,
) -> Result<(BTreeMap<String, String>, Option<ReleaseRef>), DeployError> {
    let site = site_for_any(cookbook, site)?;
    let records = session::releases(state_dir, &site)?;
    let found = records
        .stages
        .iter()
        .flat_map(|(stage, list)| list.iter().map(move |r| (stage, r)))
        .rfind(|(_, r)| r.release == id);
    let Some((stage, record)) = found else {
        let mut known: Vec<String> = records
            .stages
            .values()
            .flatten()
            .map(|r| r.release.clone())
            .collect();
        known.sort();
        known.dedup();
        return Err(DeployError::Usage {
            message: format!("no release `{id}` is recorded for site `{site}`"),
            help: listed("recorded releases", &known),
        });
    };
    let release = ReleaseRef {
        id: record.release.clone(),
        site: site.to_string(),
        stage: stage.clone(),
    };
    Ok((digests_of(&record.desired), Some(release)))
}

/// A site named, or the only site of the cookbook with a target.
fn site_for_any(cookbook: &Cookbook, site: Option<&str>) -> Result<Name, DeployError> {
    if let Some(site) = site {
        return session::known_site(cookbook, site);
    }
    let with_target: Vec<String> = cookbook
        .lifecycle
        .sites
        .iter()
        .filter(|(_, d)| d.target.is_some())
        .map(|(name, _)| name.to_string())
        .collect();
    match with_target.as_slice() {
        [one] => session::known_site(cookbook, one),
        _ => Err(DeployError::Usage {
            message: "name the site whose release to approve with `--site`".to_owned(),
            help: listed("sites with a target", &with_target),
        }),
    }
}

/// `cookbook promote`: what `to` runs when `from`'s current release on `site` moves there — its
/// images, with `to`'s runtime settings. Refused (exit 2) when `to` does not come after `from`,
/// when nothing is recorded in `from`, and when `to` is entered by an approval these images do
/// not have (naming the release and the command that approves it). An `automatic` `to` is
/// judged live when the deploy checks the rule again (`session::deploy`).
pub fn promotion(
    state_dir: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    site: &str,
    from: &str,
    to: &str,
) -> Result<Desired, DeployError> {
    let site = session::known_site(cookbook, site)?;
    let (at_from, at_to) = (
        stage_position(cookbook, from)?,
        stage_position(cookbook, to)?,
    );
    let order = stage_list(cookbook).join(" → ");
    if at_to == at_from {
        return Err(DeployError::Usage {
            message: format!(
                "cannot promote from `{from}` to `{to}`: promote moves a release to a later stage ({order})"
            ),
            help: Some(format!(
                "`cookbook deploy --site {site} --stage {to}` deploys a stage again"
            )),
        });
    }
    if at_to < at_from {
        return Err(DeployError::Usage {
            message: format!(
                "cannot promote from `{from}` back to `{to}`: `{to}` comes before `{from}` ({order}), and promote moves a release forward only"
            ),
            help: Some(format!(
                "`cookbook rollback --site {site} --stage {to}` restores an earlier release of `{to}`"
            )),
        });
    }
    let records = session::releases(state_dir, &site)?;
    let Some(current) = records.current(from) else {
        return Err(DeployError::Usage {
            message: format!("nothing is recorded in {site}/{from}: deploy it there first"),
            help: Some("`cookbook releases --site SITE` lists what is recorded".to_owned()),
        });
    };
    let carried = ReleaseRef {
        id: current.release.clone(),
        site: site.to_string(),
        stage: from.to_owned(),
    };
    let lock = session::promoted_lock(state_dir, cookbook, &site, from)?;
    let desired = desired(cookbook, plan, &lock, site.as_str(), to)?;
    let rule = cookbook.lifecycle.progression[&cookbook.lifecycle.stages[at_to]];
    if rule != Progression::Automatic {
        let approvals = Approvals::load(&Approvals::path(state_dir))?;
        match check_rule(cookbook, to, &digests_of(&desired), &approvals) {
            Ok(_) => {}
            Err(RuleError::Unapproved(refusal)) => {
                return Err(DeployError::Unapproved(Unapproved {
                    carried: Some(Box::new(carried)),
                    ..refusal
                }))
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(desired)
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
        assert_eq!(err, RuleError::Live("test".to_owned()));
        // `ci-approved`: a CI approval covering these digests; a person's does not count.
        let approval = |ci| Approval {
            stage: "prod".to_owned(),
            images: images_id(&digests("sha256:1")),
            digests: digests("sha256:1"),
            release: None,
            by: "x".to_owned(),
            ci,
            at: "t".to_owned(),
        };
        let person = Approvals {
            approvals: vec![approval(false)],
        };
        let refused = check_rule(&cookbook, "prod", &digests("sha256:1"), &person).unwrap_err();
        let RuleError::Unapproved(unapproved) = &refused else {
            panic!("{refused:?}");
        };
        assert_eq!(
            refused.to_string(),
            format!(
                "stage `prod` is entered by rule `ci-approved`: no CI approval recorded for these images (images {})",
                images_id(&digests("sha256:1"))
            )
        );
        assert_eq!(
            unapproved.command(),
            "cookbook approve --stage prod --lock --by NAME --ci"
        );
        // A promotion's refusal names the release it carries and how to approve that one.
        let carried = Unapproved {
            carried: Some(Box::new(ReleaseRef {
                id: "0123456789ab".to_owned(),
                site: "s".to_owned(),
                stage: "test".to_owned(),
            })),
            ..unapproved.clone()
        };
        assert!(carried
            .to_string()
            .ends_with(": release 0123456789ab of s/test, which promote carries)"));
        assert_eq!(
            carried.help(),
            "approve release 0123456789ab of s/test with `cookbook approve --stage prod --site s --release 0123456789ab --by NAME --ci`"
        );
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
