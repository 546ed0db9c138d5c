//! `GET /api/v1/status`: what an agent's site runs, as one JSON document.
//!
//! The agent fills it from the sync state, the release records, the sites' answers and its last
//! rounds; the dashboard draws it, and `cookbook fleet status` reads it from every site (so it
//! is `Deserialize` too, and read capped and strictly there). It never holds a secret: no
//! environment values, no credentials, no webhook secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The document's version: a field's meaning never changes under one version.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteStatus {
    /// [`SCHEMA`].
    pub schema: u32,
    pub project: Option<String>,
    pub site: String,
    pub agent: AgentInfo,
    pub sync: SyncView,
    /// In lifecycle order: the stages the site deploys.
    pub stages: Vec<StageView>,
    /// The current revision's plan for the site: what the dashboard draws.
    pub plan: Option<PlanView>,
    /// The last rounds, newest first (at most [`ROUNDS_KEPT`]).
    pub rounds: Vec<RoundView>,
}

/// How many rounds an agent keeps in memory for its status.
pub const ROUNDS_KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// cookbook's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// Seconds between timed rounds (splay aside).
    pub interval_seconds: u64,
    /// A round is running now.
    pub round_running: bool,
    /// RFC 3339: when the next timed round starts, when one is scheduled.
    pub next_round_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncView {
    /// The remote, redacted of any credentials in its URL.
    pub remote: String,
    pub branch: String,
    pub path: String,
    /// The revision the site runs its portion of (`current`), and when it was taken.
    pub current: Option<String>,
    pub current_at: Option<String>,
    /// The last revision applied, and when.
    pub last_applied: Option<String>,
    pub last_applied_at: Option<String>,
    /// The last revision looked at, and how that ended (`taken`, `refused`, …, as `sync status`).
    pub last_attempted: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_attempt_outcome: Option<String>,
    /// Why the last revision was refused (its problems, rendered), empty otherwise.
    pub refused: Vec<String>,
    /// The followed branch's head when the agent last fetched it.
    pub master: Option<String>,
    /// How many commits `current` is behind `master` (`None`: not known, e.g. nothing taken).
    pub behind: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageView {
    pub name: String,
    /// The release the stage runs (the last release record), if any.
    pub release: Option<String>,
    pub deployed_at: Option<String>,
    /// Container → the digest the release runs.
    pub images: BTreeMap<String, String>,
    /// Each container as the site runs it now (empty when the site could not be asked: `error`).
    pub containers: Vec<ContainerView>,
    /// Every container runs what the lock wants, healthy.
    pub in_sync: bool,
    /// Why the site could not be asked (the engine or cluster unreachable, nothing published).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerView {
    /// The container's name in the cookbook.
    pub container: String,
    /// Its name on the site (the engine's container, the cluster's Deployment).
    pub name: String,
    /// `running`, `exited`, `missing`, … (Kubernetes: `available`, `progressing`, …).
    pub state: String,
    pub health: Health,
    /// Runs something other than the lock wants, or is missing.
    pub drift: bool,
    pub restarts: i64,
    /// What it offers (`tcp/8080 http`, …), when known.
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// No probe: running is all that is known.
    None,
    /// Not running (missing, exited).
    Down,
}

/// The plan as the dashboard draws it: bottom-up waves, and who depends on whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanView {
    /// Wave by wave, bottom-up: container names.
    pub waves: Vec<Vec<String>>,
    /// `(dependent, dependency)`: the first needs the second.
    pub edges: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundView {
    pub started_at: String,
    pub finished_at: String,
    /// `timer`, `webhook`, `start`.
    pub trigger: String,
    /// The webhook delivery that started it.
    pub delivery: Option<String>,
    /// The remote's head this round looked at.
    pub commit: Option<String>,
    /// `ok` or `failed` (as `sync --format json`'s `result`).
    pub result: String,
    /// `up_to_date`, `taken`, `refused`, or `error` (the round could not run: network, lock).
    pub outcome: String,
    /// One line: what the round did or why it failed.
    pub message: String,
}
