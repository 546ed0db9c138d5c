//! A site's release records: what each successful deploy put in each stage, to roll back to.
//!
//! Pipeline position: written by `cookbook deploy` after every wave was healthy and by
//! `cookbook rollback`; read by `rollback`, by a failed deploy (`on_failure: previous`) and by
//! `cookbook releases`. One JSON file per site in the cookbook's state directory
//! (`.cookbook/deploy/<site>.releases.json`), written like sync's state: a temp file in the same
//! directory, fsynced, renamed, so a crash leaves the old records or the new ones. Changed only
//! through `Releases::update` (read–modify–write under the state directory's lock), so two
//! deploys finishing at once both keep their records.
//!
//! Invariants: per stage, records are oldest first and the last is the stage's current release;
//! a deploy that changes nothing adds no record; at most `rollback.keep` records per stage. Each
//! record keeps the whole `Desired` (digests and runtime settings), so a rollback restores exactly
//! what ran, whatever the cookbook says today.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deploy::desired::Desired;

pub const RELEASES_VERSION: u32 = 1;

pub type ReleasesError = crate::state::record::RecordError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Releases {
    pub releases_version: u32,
    /// Stage → records, oldest first.
    pub stages: BTreeMap<String, Vec<Release>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub release: String,
    /// RFC 3339, UTC, seconds.
    pub deployed_at: String,
    /// Set when this record restores an earlier release: the release it replaced.
    pub rolled_back_from: Option<String>,
    /// Set once these images are a rollback point: the stage where they became one (the
    /// checkpoint stage or a later one, deployed successfully on this site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Set by `cookbook down` on the stage's last record: when the stage was torn down. The
    /// record stays (a later `rollback` brings this very release back), but the stage runs
    /// nothing since, so no release of it is current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_at: Option<String>,
    pub desired: Desired,
}

impl Release {
    /// The id of the images this release runs (container → digest).
    pub fn images(&self) -> String {
        crate::deploy::approvals::images_id(&self.desired.digests())
    }
}

impl Default for Releases {
    fn default() -> Self {
        Releases {
            releases_version: RELEASES_VERSION,
            stages: BTreeMap::new(),
        }
    }
}

impl Releases {
    /// The record file of `site` in the state directory `state_dir`.
    pub fn path(state_dir: &Path, site: &str) -> PathBuf {
        state_dir
            .join("deploy")
            .join(format!("{site}.releases.json"))
    }

    /// Reads the records; none yet is an empty set.
    pub fn load(path: &Path) -> Result<Releases, ReleasesError> {
        crate::state::record::read(path, "release record")
    }

    /// Changes the records at `path` as they are now, under their lock (`state::record::update`),
    /// and writes them; returns what `change` returns.
    pub fn update<R>(
        path: &Path,
        change: impl FnOnce(&mut Releases) -> R,
    ) -> Result<R, ReleasesError> {
        crate::state::record::update(path, "release record", change)
    }

    /// The stage's current release.
    pub fn current(&self, stage: &str) -> Option<&Release> {
        self.stages.get(stage)?.last()
    }

    /// Marks the stage's last record as torn down at `at` (`cookbook down`); `false` when there
    /// is none, or it is down already.
    pub fn mark_down(&mut self, stage: &str, at: &str) -> bool {
        match self.stages.get_mut(stage).and_then(|r| r.last_mut()) {
            Some(last) if last.down_at.is_none() => {
                last.down_at = Some(at.to_owned());
                true
            }
            _ => false,
        }
    }

    /// The newest record of `stage` whose release is not `other`.
    pub fn before(&self, stage: &str, other: &str) -> Option<&Release> {
        self.stages
            .get(stage)?
            .iter()
            .rev()
            .find(|r| r.release != other)
    }

    /// Where a stage goes back to from `other` (a failed deploy with `on_failure: previous`, or
    /// `rollback` without `--to`): at or after the checkpoint stage (`checkpointed`), the newest
    /// record of the stage that is a rollback point; before it, simply the newest other record.
    pub fn rollback_point(&self, stage: &str, other: &str, checkpointed: bool) -> Option<&Release> {
        self.stages
            .get(stage)?
            .iter()
            .rev()
            .find(|r| r.release != other && (!checkpointed || r.checkpoint.is_some()))
    }

    /// Marks every record (of any stage) running `images` as a rollback point reached in
    /// `stage`, unless it already is one.
    pub fn mark_checkpoint(&mut self, images: &str, stage: &str) {
        for record in self.stages.values_mut().flatten() {
            if record.checkpoint.is_none() && record.images() == images {
                record.checkpoint = Some(stage.to_owned());
            }
        }
    }

    pub fn find(&self, stage: &str, release: &str) -> Option<&Release> {
        self.stages
            .get(stage)?
            .iter()
            .rev()
            .find(|r| r.release == release)
    }

    /// Records `release` as the stage's current one (nothing when it already is), keeping at
    /// most `keep` records. The same release as a last record that is down replaces it: it runs
    /// again.
    pub fn record(&mut self, stage: &str, release: Release, keep: u32) -> bool {
        let records = self.stages.entry(stage.to_owned()).or_default();
        if let Some(last) = records.last() {
            if last.release == release.release {
                if last.down_at.is_none() {
                    return false;
                }
                records.pop();
            }
        }
        records.push(Release {
            down_at: None,
            ..release
        });
        let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
        let extra = records.len().saturating_sub(keep);
        records.drain(..extra);
        true
    }
}

/// Now, as a record's `deployed_at`.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;

    fn release(id: &str) -> Release {
        let name = Name::parse("p").unwrap();
        Release {
            release: id.to_owned(),
            deployed_at: "2026-01-01T00:00:00Z".to_owned(),
            rolled_back_from: None,
            checkpoint: None,
            down_at: None,
            desired: Desired {
                project: name.clone(),
                site: name.clone(),
                stage: name,
                release: id.to_owned(),
                network: "p-p".to_owned(),
                waves: vec![],
            },
        }
    }

    /// `down` keeps the record, marked; the same release deployed (or rolled back) again
    /// replaces the marked record instead of being refused as unchanged.
    #[test]
    fn a_stage_torn_down_keeps_its_record_until_it_runs_again() {
        let mut r = Releases::default();
        assert!(
            !r.mark_down("dev", "t0"),
            "nothing recorded: nothing to mark"
        );
        r.record("dev", release("a"), 5);
        r.record("dev", release("b"), 5);
        assert!(r.mark_down("dev", "t1"));
        assert!(!r.mark_down("dev", "t2"), "a second down changes nothing");
        assert_eq!(r.current("dev").unwrap().down_at.as_deref(), Some("t1"));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Releases>(&json).unwrap(), r);
        assert!(r.record("dev", release("b"), 5), "b runs again");
        assert_eq!(r.stages["dev"].len(), 2);
        assert!(r.current("dev").unwrap().down_at.is_none());
    }

    #[test]
    fn current_previous_keep_and_round_trip() {
        let mut r = Releases::default();
        assert!(r.record("dev", release("a"), 2));
        assert!(
            !r.record("dev", release("a"), 2),
            "an unchanged deploy adds nothing"
        );
        assert!(r.record("dev", release("b"), 2));
        assert_eq!(r.current("dev").unwrap().release, "b");
        assert_eq!(r.before("dev", "b").unwrap().release, "a");
        assert!(r.record("dev", release("c"), 2));
        assert_eq!(
            r.stages["dev"]
                .iter()
                .map(|x| x.release.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        assert!(r.find("dev", "a").is_none());
        assert!(r.current("prod").is_none());

        // Checkpoints: at or after the checkpoint stage, only rollback points count.
        let mut r2 = Releases::default();
        let mut marked = release("x");
        marked.checkpoint = Some("pre-deploy".to_owned());
        r2.record("prod", marked, 10);
        r2.record("prod", release("y"), 10);
        r2.record("prod", release("z"), 10);
        assert_eq!(r2.rollback_point("prod", "z", true).unwrap().release, "x");
        assert_eq!(r2.rollback_point("prod", "z", false).unwrap().release, "y");
        assert!(r2.rollback_point("prod", "x", true).is_none());
        // The same images (here: none) are marked wherever they were recorded.
        r2.record("dev", release("d"), 10);
        r2.mark_checkpoint(&release("d").images(), "prod");
        assert_eq!(r2.stages["dev"][0].checkpoint.as_deref(), Some("prod"));
        assert_eq!(
            r2.stages["prod"][0].checkpoint.as_deref(),
            Some("pre-deploy")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = Releases::path(dir.path(), "local");
        assert_eq!(Releases::load(&path).unwrap(), Releases::default());
        Releases::update(&path, |on_disk| *on_disk = r.clone()).unwrap();
        assert_eq!(Releases::load(&path).unwrap(), r);
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            Releases::load(&path),
            Err(ReleasesError::Invalid { .. })
        ));
    }
}
