//! The event log: the audit trail of what happened to a site, one JSON object per line.
//!
//! `events.jsonl` in a state directory (`.cookbook/`, or a sync state directory), appended to —
//! never rewritten — one event per sync round, apply, deploy, approval, promotion and rollback.
//! `cookbook events` prints it and the agent's dashboard draws its timeline from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The log's file name in a state directory.
pub const FILE: &str = "events.jsonl";

/// One event: what happened, where, to which revision and images, who caused it, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, whole seconds (`state::now`'s form).
    pub time: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The cookbook's git revision, where known (a sync round's commit, an apply's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A deploy's release id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Container → image digest (`sha256:…`): what was deployed or published.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
    pub who: Who,
    pub outcome: EventOutcome,
    /// One line for a person: what happened, or why it failed. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SyncRound,
    Apply,
    Deploy,
    Approval,
    Promotion,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Done as asked (a round that took or found its revision, a deploy that converged, …).
    Ok,
    /// Nothing to do: a round up to date, an apply that built nothing, a deploy that changed nothing.
    Unchanged,
    /// Not done, and not a failure: a stage whose progression rule is not met yet, a closed window.
    Skipped,
    /// A revision the sync refused (invalid, unsigned, a history rewrite).
    Refused,
    /// Failed; a deploy that changed something was rolled back (`RolledBack` says so).
    Failed,
    /// A failed deploy whose wave was rolled back to what ran before.
    RolledBack,
}

/// Who caused an event: the user the process runs as, the CI job it runs in, and the webhook
/// delivery that started the round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// What started it: `cli`, `sync`, `agent:timer`, `agent:webhook`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}
