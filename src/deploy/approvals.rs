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
//! Signed approvals: `approve --signing-key` wraps a statement of what is approved — project,
//! site, stage, the images' digests by container, approver, time ([`ApprovalStatement`], canonical
//! JSON) — in a DSSE envelope kept in the record ([`approval_envelope`]: what the lead attaches
//! to the images as a referrer). A `manual` stage with `lifecycle.approvers` takes only an
//! approval whose envelope verifies with one of their keys and whose signed statement names this
//! stage, this project and (at least) these images ([`check_signed`]): the record's own fields
//! are never trusted for it, so editing `approvals.json` approves nothing. Unsigned records from
//! before stay readable and keep opening stages without approvers.
//!
//! The file, `.cookbook/deploy/approvals.json`, is changed only through `Approvals::update`
//! (read–modify–write under the state directory's lock; temp file, fsync, rename), so two
//! approvals recorded at once are both kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attest::dsse::{Envelope, VerifyError};
use crate::attest::key::{KeyError, PublicKey, Signer};
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
    /// `approve --signing-key`: a DSSE envelope over the [`ApprovalStatement`] of this approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
    /// Recorded from elsewhere than `approve` on this machine: the registry referrer it was
    /// taken from (`deploy`/`promote` record an approval they found beside the images, so the
    /// records say why the stage opened). Never read for a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Approval {
    /// The key id its envelope names as the signer (not verified: a verdict is `check_signed`'s).
    pub fn signer(&self) -> Option<&str> {
        self.envelope
            .as_ref()
            .and_then(|e| e.signatures.first())
            .map(|s| s.keyid.as_str())
    }
}

/// The payload type of a signed approval's envelope.
pub const APPROVAL_PAYLOAD_TYPE: &str = "application/vnd.cookbook.approval.v1+json";

/// What a signed approval says, as signed: serialized as canonical JSON (RFC 8785) so that the
/// same approval is the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStatement {
    pub project: String,
    /// The site whose recorded release is approved (none: a lock's images).
    pub site: Option<String>,
    pub stage: String,
    /// Container → digest: exactly what is approved.
    pub digests: BTreeMap<String, String>,
    pub approver: String,
    pub approved_at: String,
}

impl ApprovalStatement {
    pub fn of(project: &str, approval: &Approval) -> ApprovalStatement {
        ApprovalStatement {
            project: project.to_owned(),
            site: approval.release.as_ref().map(|r| r.site.clone()),
            stage: approval.stage.clone(),
            digests: approval.digests.clone(),
            approver: approval.by.clone(),
            approved_at: approval.at.clone(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("a statement of strings serializes")
    }
}

/// The envelope a signed approval carries (what can be attached to its images as a referrer).
pub fn approval_envelope(approval: &Approval) -> Option<&Envelope> {
    approval.envelope.as_ref()
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
    /// The stage has approvers: the approval must be signed by one of them.
    pub signed: bool,
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
        let key = if self.signed {
            " --signing-key KEY"
        } else {
            ""
        };
        format!(
            "cookbook approve --stage {} {what} --by NAME{ci}{key}",
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
                    signed: lifecycle
                        .approvers
                        .contains_key(&lifecycle.stages[position]),
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
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub stage: &'a str,
    /// A person, or with `ci` the CI job.
    pub by: &'a str,
    pub ci: bool,
    /// The site whose records hold the release (`None`: the only site with a target that
    /// serves the stage the release comes from). Not used for a lock.
    pub site: Option<&'a str>,
    pub subject: Subject<'a>,
    /// Signs the approval (`--signing-key`).
    pub signer: Option<&'a dyn Signer>,
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
            help: crate::model::suggest(
                stage,
                "stages",
                cookbook.lifecycle.stages.iter().map(|s| s.as_str()),
            ),
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

/// An approved image: the reference its release or lock names (where it is published, if it
/// is) and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedImage {
    pub image: String,
    pub digest: String,
}

/// Container → image of a release's instances.
fn images_of(desired: &Desired) -> BTreeMap<String, ApprovedImage> {
    desired
        .images()
        .into_iter()
        .map(|(container, (image, digest))| {
            let image = ApprovedImage {
                image: image.to_owned(),
                digest: digest.to_owned(),
            };
            (container.to_string(), image)
        })
        .collect()
}

/// Container → digest of a release's instances.
fn digests_of(desired: &Desired) -> BTreeMap<String, String> {
    desired.digests()
}

/// Why `cookbook approve` recorded nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The signer could not sign (a keyless signer's service, were there one).
    #[error("cannot sign the approval: {0}")]
    Sign(#[from] KeyError),
}

impl From<crate::state::record::RecordError> for ApproveError {
    fn from(e: crate::state::record::RecordError) -> ApproveError {
        ApproveError::Deploy(e.into())
    }
}

/// What `approve` recorded, and the images it approves (for attaching a signed one to them).
#[derive(Debug, Clone)]
pub struct Approved {
    pub approval: Approval,
    /// Container → image.
    pub images: BTreeMap<String, ApprovedImage>,
}

/// `cookbook approve`: checks that the stage's rule takes this kind of approval, resolves what
/// is approved, signs it when asked, and records the approval (under the approvals' lock).
pub fn approve(
    state_dir: &Path,
    cookbook: &Cookbook,
    request: &Request,
) -> Result<Approved, ApproveError> {
    let position = stage_position(cookbook, request.stage)?;
    if request.by.trim().is_empty() {
        return Err(ApproveError::Deploy(DeployError::Usage {
            message: "--by needs a name".to_owned(),
            help: None,
        }));
    }
    approval_rule(cookbook, request.stage, position, request.ci)?;
    let (images, release) = match request.subject {
        Subject::Lock(lock) => (lock_images(lock), None),
        Subject::Current => carried(state_dir, cookbook, request, position)?,
        Subject::Release(id) => recorded(state_dir, cookbook, request.site, id)?,
    };
    let digests: BTreeMap<String, String> = images
        .iter()
        .map(|(c, i)| (c.clone(), i.digest.clone()))
        .collect();
    let mut approval = Approval {
        stage: request.stage.to_owned(),
        images: images_id(&digests),
        digests,
        release,
        by: request.by.to_owned(),
        ci: request.ci,
        at: now(),
        envelope: None,
        from: None,
    };
    if let Some(signer) = request.signer {
        let statement = ApprovalStatement::of(cookbook.project.name.as_str(), &approval);
        approval.envelope = Some(Envelope::sign(
            APPROVAL_PAYLOAD_TYPE,
            &statement.to_bytes(),
            signer,
        )?);
    }
    let recorded = approval.clone();
    Approvals::update(&Approvals::path(state_dir), |a| a.approvals.push(recorded))?;
    Ok(Approved { approval, images })
}

/// Container → image of a lock's images. An image's identity: its registry digest, or its local
/// id when it was not published.
fn lock_images(lock: &Lock) -> BTreeMap<String, ApprovedImage> {
    lock.containers
        .iter()
        .filter_map(|(c, l)| {
            let digest = l.digest.as_ref().or(l.image_id.as_ref())?;
            let image = ApprovedImage {
                image: l.image.to_string(),
                digest: digest.to_string(),
            };
            Some((c.to_string(), image))
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
) -> Result<(BTreeMap<String, ApprovedImage>, Option<ReleaseRef>), DeployError> {
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
    Ok((images_of(&current.desired), Some(release)))
}

/// The release `id` recorded on `site` (or the only site with a target), in whichever stage.
fn recorded(
    state_dir: &Path,
    cookbook: &Cookbook,
    site: Option<&str>,
    id: &str,
) -> Result<(BTreeMap<String, ApprovedImage>, Option<ReleaseRef>), DeployError> {
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
    Ok((images_of(&record.desired), Some(release)))
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
    let promotion = promoted(state_dir, cookbook, plan, site, from, to)?;
    promotion.check_rule(state_dir, cookbook)?;
    Ok(promotion.desired)
}

/// [`promotion`] without the approval rule: what `to` would run and the release it carries
/// (for a flow that looks for an approval elsewhere before the rule is checked).
pub fn promoted(
    state_dir: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    site: &str,
    from: &str,
    to: &str,
) -> Result<Promotion, DeployError> {
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
    Ok(Promotion { desired, carried })
}

/// What [`promoted`] works out: what the target stage would run, and the release it carries.
#[derive(Debug, Clone)]
pub struct Promotion {
    pub desired: Desired,
    pub carried: ReleaseRef,
}

impl Promotion {
    /// Refuses the promotion when the target stage is entered by an approval its images do not
    /// have in `state_dir`'s records, naming the release and the command that approves it.
    pub fn check_rule(&self, state_dir: &Path, cookbook: &Cookbook) -> Result<(), DeployError> {
        let to = self.desired.stage.as_str();
        if cookbook.lifecycle.progression[&self.desired.stage] == Progression::Automatic {
            return Ok(());
        }
        let approvals = Approvals::load(&Approvals::path(state_dir))?;
        match check_rule(cookbook, to, &digests_of(&self.desired), &approvals) {
            Ok(_) => Ok(()),
            Err(RuleError::Unapproved(refusal)) => Err(DeployError::Unapproved(Unapproved {
                carried: Some(Box::new(self.carried.clone())),
                ..refusal
            })),
            Err(other) => Err(other.into()),
        }
    }
}

/// An approver of a stage (`lifecycle.approvers`), their public key read.
#[derive(Debug, Clone)]
pub struct ApproverKey {
    pub name: String,
    pub key: PublicKey,
}

/// An approver entry whose key file could not be used: its index in the stage's list (for the
/// cookbook's pointer), the approver, and why.
#[derive(Debug)]
pub struct UnreadableApprover {
    pub stage: String,
    pub index: usize,
    pub name: String,
    pub error: KeyError,
}

/// Reads the public keys of `stage`'s approvers (paths relative to `base_dir`, the cookbook's
/// directory); every entry that cannot be used is returned, not only the first. A stage without
/// approvers has none.
pub fn read_approver_keys(
    base_dir: &Path,
    cookbook: &Cookbook,
    stage: &str,
) -> Result<Vec<ApproverKey>, Vec<UnreadableApprover>> {
    let mut keys = Vec::new();
    let mut unreadable = Vec::new();
    let listed = cookbook
        .lifecycle
        .approvers
        .get(stage)
        .into_iter()
        .flatten();
    for (index, approver) in listed.enumerate() {
        match crate::attest::key::read_public_key(&approver.key.under(base_dir)) {
            Ok(key) => keys.push(ApproverKey {
                name: approver.name.clone(),
                key,
            }),
            Err(error) => unreadable.push(UnreadableApprover {
                stage: stage.to_owned(),
                index,
                name: approver.name.clone(),
                error,
            }),
        }
    }
    if unreadable.is_empty() {
        Ok(keys)
    } else {
        Err(unreadable)
    }
}

/// Why an approval does not open a stage that has approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    Unsigned,
    /// Signed, by none of the stage's approvers (the key ids it names).
    NotListed {
        keyids: Vec<String>,
    },
    /// A signature by an approver's key id that does not verify: the record was changed.
    BadSignature {
        approver: String,
        keyid: String,
    },
    /// An envelope that is no signed approval (another payload type, a statement that does not
    /// parse).
    Malformed(String),
    /// A verified statement about something else: what differs.
    OtherStatement(String),
    /// A verified statement naming another approver than the one whose key signed it.
    OtherApprover {
        signer: String,
        named: String,
    },
}

/// Where an approval under judgement comes from, as a refusal names it. Nothing here is taken
/// for the verdict: a record's fields can be edited, and a referrer is whatever the registry
/// serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A record of this state directory's approvals file: its own (unverified) approver and time.
    Record { by: String, at: String },
    /// An artifact attached to an image in its registry: the image and the referrer's digest.
    Referrer { image: String, referrer: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Record { by, at } => write!(f, "by {by} at {at}"),
            Origin::Referrer { image, referrer } => {
                write!(f, "attached to {image} as {referrer}")
            }
        }
    }
}

/// An approval to judge: where it comes from, and its envelope — or why there is none to check
/// (an unsigned record; something a registry served that is no envelope).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub origin: Origin,
    pub envelope: Result<Envelope, SignatureProblem>,
}

/// A stage with approvers refused these images' approval (exit 1): the newest approval that
/// covers them, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stage `{stage}` takes only approvals signed by its approvers: the approval {origin} {}{}",
    describe(problem, stage, approvers),
    if *others > 0 { format!(" ({others} older approval(s) of these images refused too)") } else { String::new() })]
pub struct SignedRefusal {
    pub stage: String,
    pub origin: Origin,
    /// The stage's approvers: name, key id.
    pub approvers: Vec<(String, String)>,
    pub problem: SignatureProblem,
    pub others: usize,
}

impl SignedRefusal {
    pub fn help(&self) -> String {
        format!(
            "an approver signs it: `cookbook approve --stage {} --by NAME --signing-key KEY` with the private key of one of {}",
            self.stage,
            self.approvers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn describe(problem: &SignatureProblem, stage: &str, approvers: &[(String, String)]) -> String {
    match problem {
        SignatureProblem::Unsigned => "is not signed".to_owned(),
        SignatureProblem::NotListed { keyids } => format!(
            "is signed by {}, which is not one of {stage}'s approvers: {}",
            if keyids.is_empty() { "an unnamed key".to_owned() } else { keyids.join(", ") },
            approvers
                .iter()
                .map(|(name, id)| format!("{name} ({id})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SignatureProblem::BadSignature { approver, keyid } => format!(
            "carries a signature by {approver} ({keyid}) that does not verify: the record was changed after it was signed"
        ),
        SignatureProblem::Malformed(why) => format!("carries an envelope that is no signed approval: {why}"),
        SignatureProblem::OtherStatement(what) => format!("was signed for {what}"),
        SignatureProblem::OtherApprover { signer, named } => {
            format!("is signed with {signer}'s key but names {named} as the approver")
        }
    }
}

/// For a stage with approvers: the newest approval for `stage` by a person that covers
/// `digests` and whose envelope verifies with an approver's key, over a statement naming this
/// project, this stage, these images and that approver. `Ok(None)`: no approval covers these
/// images at all (the rule's own refusal, `check_rule`, says so and how to approve).
pub fn check_signed(
    project: &str,
    stage: &str,
    digests: &BTreeMap<String, String>,
    approvals: &Approvals,
    approvers: &[ApproverKey],
) -> Result<Option<Approval>, Box<SignedRefusal>> {
    let covering = covering(approvals, stage, digests);
    let candidates: Vec<Candidate> = covering.iter().map(|a| Approval::candidate(a)).collect();
    Ok(judge(project, stage, digests, &candidates, approvers)?.map(|(i, _)| covering[i].clone()))
}

/// The records of a person's approvals for `stage` that say they cover `digests`, newest
/// first: what [`check_signed`] judges (what a record says only chooses; the judgement reads
/// its envelope).
pub fn covering<'a>(
    approvals: &'a Approvals,
    stage: &str,
    digests: &BTreeMap<String, String>,
) -> Vec<&'a Approval> {
    approvals
        .approvals
        .iter()
        .rev()
        .filter(|a| {
            a.stage == stage && !a.ci && digests.iter().all(|(c, d)| a.digests.get(c) == Some(d))
        })
        .collect()
}

impl Approval {
    /// This record as a [`Candidate`]: its envelope, or unsigned.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            origin: Origin::Record {
                by: self.by.clone(),
                at: self.at.clone(),
            },
            envelope: self.envelope.clone().ok_or(SignatureProblem::Unsigned),
        }
    }

    /// The record of an approval taken from elsewhere (a registry), from its verified statement
    /// only; `from` says where it was found.
    pub fn from_statement(statement: ApprovalStatement, envelope: Envelope, from: String) -> Self {
        Approval {
            stage: statement.stage,
            images: images_id(&statement.digests),
            digests: statement.digests,
            release: None,
            by: statement.approver,
            ci: false,
            at: statement.approved_at,
            envelope: Some(envelope),
            from: Some(from),
        }
    }
}

/// The one judgement of signed approvals, wherever they come from (this state directory's
/// records, a registry's referrers): the first of `candidates` (newest first) whose envelope
/// verifies with an approver's key over a statement of this project, this stage, these images
/// and that approver — its index and the statement. `Ok(None)`: no candidates; otherwise a
/// refusal naming the first one's problem and how many others were refused.
pub fn judge(
    project: &str,
    stage: &str,
    digests: &BTreeMap<String, String>,
    candidates: &[Candidate],
    approvers: &[ApproverKey],
) -> Result<Option<(usize, ApprovalStatement)>, Box<SignedRefusal>> {
    let mut refused: Vec<(&Candidate, SignatureProblem)> = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        let verdict = match &candidate.envelope {
            Ok(envelope) => signed_by(project, stage, digests, envelope, approvers),
            Err(problem) => Err(problem.clone()),
        };
        match verdict {
            Ok(statement) => return Ok(Some((i, statement))),
            Err(problem) => refused.push((candidate, problem)),
        }
    }
    let others = refused.len().saturating_sub(1);
    let Some((newest, problem)) = refused.into_iter().next() else {
        return Ok(None);
    };
    Err(Box::new(SignedRefusal {
        stage: stage.to_owned(),
        origin: newest.origin.clone(),
        approvers: approvers
            .iter()
            .map(|a| (a.name.clone(), a.key.key_id()))
            .collect(),
        problem,
        others,
    }))
}

/// Whether `envelope` is signed by one of `approvers` over a statement of these images: the
/// verified statement.
fn signed_by(
    project: &str,
    stage: &str,
    digests: &BTreeMap<String, String>,
    envelope: &Envelope,
    approvers: &[ApproverKey],
) -> Result<ApprovalStatement, SignatureProblem> {
    if envelope.payload_type != APPROVAL_PAYLOAD_TYPE {
        return Err(SignatureProblem::Malformed(format!(
            "its payload type is {:?}, not {APPROVAL_PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    let mut bad = None;
    for approver in approvers {
        let payload = match envelope.verify(&approver.key) {
            Ok(payload) => payload,
            Err(VerifyError::OtherKeys { .. }) => continue,
            Err(VerifyError::BadSignature { keyid }) => {
                bad.get_or_insert(SignatureProblem::BadSignature {
                    approver: approver.name.clone(),
                    keyid,
                });
                continue;
            }
            Err(VerifyError::Unsigned) => return Err(SignatureProblem::Unsigned),
            Err(VerifyError::Envelope(e)) => {
                return Err(SignatureProblem::Malformed(e.to_string()))
            }
        };
        // Verified: only now is the payload parsed, and only its word is taken.
        let statement: ApprovalStatement = serde_json::from_slice(&payload).map_err(|e| {
            SignatureProblem::Malformed(format!("its statement does not parse: {e}"))
        })?;
        if statement.project != project {
            return Err(SignatureProblem::OtherStatement(format!(
                "project {:?}, not {project:?}",
                statement.project
            )));
        }
        if statement.stage != stage {
            return Err(SignatureProblem::OtherStatement(format!(
                "stage `{}`, not `{stage}`",
                statement.stage
            )));
        }
        let missing: Vec<String> = digests
            .iter()
            .filter(|(c, d)| statement.digests.get(*c) != Some(d))
            .map(|(c, d)| format!("{c} {d}"))
            .collect();
        if !missing.is_empty() {
            return Err(SignatureProblem::OtherStatement(format!(
                "other images: it does not name {}",
                missing.join(", ")
            )));
        }
        if statement.approver != approver.name {
            return Err(SignatureProblem::OtherApprover {
                signer: approver.name.clone(),
                named: statement.approver,
            });
        }
        return Ok(statement);
    }
    Err(bad.unwrap_or_else(|| SignatureProblem::NotListed {
        keyids: envelope.keyids().into_iter().map(str::to_owned).collect(),
    }))
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
            envelope: None,
            from: None,
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
mod signed {
    use super::*;
    use crate::attest::key::{KeyAlgorithm, SigningKey};

    fn digests(d: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("api".to_owned(), d.to_owned())])
    }

    fn approval(by: &str, stage: &str, d: &str, signer: Option<&SigningKey>) -> Approval {
        let mut a = Approval {
            stage: stage.to_owned(),
            images: images_id(&digests(d)),
            digests: digests(d),
            release: None,
            by: by.to_owned(),
            ci: false,
            at: "2026-01-01T00:00:00Z".to_owned(),
            envelope: None,
            from: None,
        };
        if let Some(key) = signer {
            let statement = ApprovalStatement::of("shop", &a);
            a.envelope =
                Some(Envelope::sign(APPROVAL_PAYLOAD_TYPE, &statement.to_bytes(), key).unwrap());
        }
        a
    }

    fn check(
        approvals: Vec<Approval>,
        approvers: &[ApproverKey],
    ) -> Result<Option<Approval>, Box<SignedRefusal>> {
        let approvals = Approvals { approvals };
        check_signed("shop", "prod", &digests("sha256:1"), &approvals, approvers)
    }

    #[test]
    fn only_an_approval_signed_by_a_listed_key_over_these_images_opens_the_stage() {
        let alice = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let bob = SigningKey::generate(KeyAlgorithm::Ed25519);
        let mallory = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let approvers = [
            ApproverKey {
                name: "alice".to_owned(),
                key: alice.public_key(),
            },
            ApproverKey {
                name: "bob".to_owned(),
                key: bob.public_key(),
            },
        ];
        let problem = |r: Result<Option<Approval>, Box<SignedRefusal>>| r.unwrap_err().problem;

        // Nothing covers these images: the rule's refusal, not this one.
        assert_eq!(check(vec![], &approvers), Ok(None));
        assert_eq!(
            check(
                vec![approval("alice", "prod", "sha256:2", Some(&alice))],
                &approvers
            ),
            Ok(None)
        );

        let taken = approval("bob", "prod", "sha256:1", Some(&bob));
        assert_eq!(
            check(vec![taken.clone()], &approvers),
            Ok(Some(taken.clone()))
        );

        let unsigned = check(
            vec![approval("alice", "prod", "sha256:1", None)],
            &approvers,
        );
        let refusal = unsigned.clone().unwrap_err();
        assert_eq!(refusal.problem, SignatureProblem::Unsigned);
        assert_eq!(
            refusal.to_string(),
            "stage `prod` takes only approvals signed by its approvers: the approval by alice at 2026-01-01T00:00:00Z is not signed"
        );

        let foreign = check(
            vec![approval("alice", "prod", "sha256:1", Some(&mallory))],
            &approvers,
        )
        .unwrap_err();
        assert_eq!(
            foreign.to_string(),
            format!(
                "stage `prod` takes only approvals signed by its approvers: the approval by alice at 2026-01-01T00:00:00Z is signed by {}, which is not one of prod's approvers: alice ({}), bob ({})",
                mallory.public_key().key_id(),
                alice.public_key().key_id(),
                bob.public_key().key_id()
            )
        );

        // The record edited to cover other images: the signed statement still names the old.
        let mut moved = approval("alice", "prod", "sha256:0", Some(&alice));
        moved.digests = digests("sha256:1");
        assert_eq!(
            problem(check(vec![moved], &approvers)),
            SignatureProblem::OtherStatement(
                "other images: it does not name api sha256:1".to_owned()
            )
        );
        // The envelope's payload edited: the signature no longer verifies.
        let mut tampered = approval("alice", "prod", "sha256:1", Some(&alice));
        let envelope = tampered.envelope.as_mut().unwrap();
        let edited = String::from_utf8(envelope.payload_bytes().unwrap())
            .unwrap()
            .replace("alice", "alicf");
        use base64::Engine as _;
        envelope.payload = base64::engine::general_purpose::STANDARD.encode(edited);
        assert_eq!(
            problem(check(vec![tampered], &approvers)),
            SignatureProblem::BadSignature {
                approver: "alice".to_owned(),
                keyid: alice.public_key().key_id()
            }
        );
        // Signed for another stage, then recorded for this one.
        let mut other_stage = approval("alice", "test", "sha256:1", Some(&alice));
        other_stage.stage = "prod".to_owned();
        assert_eq!(
            problem(check(vec![other_stage], &approvers)),
            SignatureProblem::OtherStatement("stage `test`, not `prod`".to_owned())
        );
        // Bob's key on a statement that says alice approved.
        assert_eq!(
            problem(check(
                vec![approval("alice", "prod", "sha256:1", Some(&bob))],
                &approvers
            )),
            SignatureProblem::OtherApprover {
                signer: "bob".to_owned(),
                named: "alice".to_owned()
            }
        );
        // A good approval older than a bad one still opens the stage.
        let both = vec![taken.clone(), approval("alice", "prod", "sha256:1", None)];
        assert_eq!(check(both, &approvers), Ok(Some(taken)));
        // Older records without an envelope still read.
        let old: Approvals = serde_json::from_str(
            r#"{"approvals":[{"stage":"prod","images":"x","digests":{},"by":"a","ci":false,"at":"t"}]}"#,
        )
        .unwrap();
        assert!(old.approvals[0].envelope.is_none());
    }
}

#[cfg(test)]
mod judged {
    use super::*;
    use crate::attest::key::{KeyAlgorithm, SigningKey};

    fn digests() -> BTreeMap<String, String> {
        BTreeMap::from([("api".to_owned(), "sha256:1".to_owned())])
    }

    fn attached(referrer: &str, envelope: Result<Envelope, SignatureProblem>) -> Candidate {
        Candidate {
            origin: Origin::Referrer {
                image: "127.0.0.1:5000/shop/api@sha256:1".to_owned(),
                referrer: referrer.to_owned(),
            },
            envelope,
        }
    }

    fn signed(by: &str, stage: &str, key: &SigningKey) -> Envelope {
        let statement = ApprovalStatement {
            project: "shop".to_owned(),
            site: Some("a".to_owned()),
            stage: stage.to_owned(),
            digests: digests(),
            approver: by.to_owned(),
            approved_at: "2026-01-01T00:00:00Z".to_owned(),
        };
        Envelope::sign(APPROVAL_PAYLOAD_TYPE, &statement.to_bytes(), key).unwrap()
    }

    /// What a registry serves goes through the judgement records go through: a bad one is
    /// passed over for one that holds, and named when nothing holds.
    #[test]
    fn attached_approvals_are_judged_as_records_are() {
        let alice = SigningKey::generate(KeyAlgorithm::Ed25519);
        let mallory = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let approvers = [ApproverKey {
            name: "alice".to_owned(),
            key: alice.public_key(),
        }];
        let judge = |c: &[Candidate]| judge("shop", "prod", &digests(), c, &approvers);
        let garbage = attached(
            "sha256:g",
            Err(SignatureProblem::Malformed("not JSON".to_owned())),
        );
        let foreign = attached("sha256:m", Ok(signed("alice", "prod", &mallory)));
        let other_stage = attached("sha256:o", Ok(signed("alice", "dev", &alice)));
        let good = attached("sha256:a", Ok(signed("alice", "prod", &alice)));

        let (i, statement) = judge(&[garbage.clone(), foreign.clone(), good])
            .unwrap()
            .unwrap();
        assert_eq!((i, statement.approver.as_str()), (2, "alice"));

        let refusal = judge(&[foreign, garbage, other_stage]).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            format!(
                "stage `prod` takes only approvals signed by its approvers: the approval attached to 127.0.0.1:5000/shop/api@sha256:1 as sha256:m is signed by {}, which is not one of prod's approvers: alice ({}) (2 older approval(s) of these images refused too)",
                mallory.public_key().key_id(),
                alice.public_key().key_id()
            )
        );
        assert_eq!(judge(&[]), Ok(None));

        // Recorded from the statement only: what it says, and where it was found.
        let envelope = signed("alice", "prod", &alice);
        let record = Approval::from_statement(
            ApprovalStatement {
                project: "shop".to_owned(),
                site: None,
                stage: "prod".to_owned(),
                digests: digests(),
                approver: "alice".to_owned(),
                approved_at: "t".to_owned(),
            },
            envelope,
            "attached to x as y".to_owned(),
        );
        assert_eq!(record.images, images_id(&digests()));
        assert_eq!(record.from.as_deref(), Some("attached to x as y"));
        assert_eq!(
            check_signed(
                "shop",
                "prod",
                &digests(),
                &Approvals {
                    approvals: vec![record.clone()]
                },
                &approvers
            ),
            Ok(Some(record))
        );
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
            exit_code: None,
            finished_at: None,
            desired_image: Some("sha256:a".to_owned()),
            running_image: image.map(str::to_owned),
            drift: false,
            services: None,
            members: Vec::new(),
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
