//! `cookbook fleet status`: every site's agent asked for its status, over mutual TLS, and one
//! table of site × stage × release × health × how far behind the master revision.
//!
//! The agent's `/fleet` page and `/api/v1/fleet` serve the same report from its `--peers` file.

use serde::{Deserialize, Serialize};

use super::agent::status::SiteStatus;

/// What the fleet answered: one entry per site of the sites file, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// The newest followed-branch head any site reported (`sync.master`): what "behind" means.
    pub master: Option<String>,
    pub sites: Vec<FleetSite>,
}

/// One site: its status, or why it could not be had (refused, unreachable, a bad answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetSite {
    /// The name the sites file gives it.
    pub name: String,
    /// Its agent's base URL (`https://host:port`).
    pub url: String,
    pub status: Option<SiteStatus>,
    pub error: Option<String>,
}

/// One row of the table: a site's stage (a site that could not be asked: one row, `stage: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRow {
    pub site: String,
    pub stage: Option<String>,
    pub release: Option<String>,
    /// `healthy` (every container in sync and healthy), `degraded` (some not), `down` (none
    /// running), `unknown` (the site could not be asked, or its site could not be), or
    /// `unreachable`.
    pub health: String,
    /// The revision the site runs.
    pub revision: Option<String>,
    /// Commits behind the master revision (`None`: not known).
    pub behind: Option<u64>,
    /// Why the site or stage could not be asked.
    pub error: Option<String>,
}
