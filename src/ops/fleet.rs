//! `cookbook fleet status`: every site's agent asked for its status, over mutual TLS, and one
//! table of site × stage × release × health × how far behind the master revision.
//!
//! The agent's `/fleet` page and `/api/v1/fleet` serve the same report from its `--peers` file
//! ([`ask`], on the agent's runtime).
//!
//! Every input is hostile: the sites file is parsed strictly (unknown fields refused, names
//! unique, URLs `https://` base URLs) with every problem located; each peer's answer is read
//! capped ([`MAX_STATUS_BYTES`]) and parsed strictly into `SiteStatus`, and a bad one is that
//! site's error in the report, never a panic nor the whole command's failure. Peers are asked
//! over mutual TLS only (`crate::tls`: the fleet's CA as the only root, a client certificate).
//!
//! The master revision is the `sync.master` of the site that looked at the remote last; each
//! site's `behind` is as it reports it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::agent::status::{self, Health, SiteStatus, StageView};
use crate::context::file::{read_regular, FileError};
use crate::diagnostic::{Diagnostic, Location};
use crate::error::Error;
use crate::schema::span::SpanIndex;
use crate::tls::{self, ClientFiles};

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

/// How much of a peer's answer is read: a status document is a few kilobytes (twenty rounds, a
/// few stages and containers); a peer sending more is not answering the question.
pub const MAX_STATUS_BYTES: usize = 1 << 20;

/// A sites file is a list of names and URLs; past this it is not one.
const MAX_SITES_FILE: u64 = 1 << 20;

/// The sites file: `{"sites": [{"name": "paris", "url": "https://127.0.0.1:8751"}, …],
/// "ca": "ca.pem", "cert": "client.pem", "key": "client-key.pem"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitesFile {
    /// In the file's order, names unique.
    pub sites: Vec<Peer>,
    /// The file's `ca`, `cert` and `key`, resolved against its directory; `None` when it names
    /// none (they come from the flags then).
    pub client: Option<ClientFiles>,
}

/// One site's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// `https://host[:port]`: no credentials, path, query or fragment.
    pub url: reqwest::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SitesWire {
    sites: Vec<PeerWire>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerWire {
    name: String,
    url: String,
}

/// Reads and checks the sites file at `path`: every problem located (`file:line:column`), as
/// [`Error::Invalid`] (exit 2).
pub fn read_sites(path: &Path) -> Result<SitesFile, Error> {
    let label = path.display().to_string();
    let invalid = |diagnostics| Error::Invalid {
        file: label.clone(),
        diagnostics,
    };
    let bytes = match read_regular(path, MAX_SITES_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            })
        }
        Err(FileError::Io(source)) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(why) => {
            return Err(invalid(vec![Diagnostic::new(
                "sites/file",
                "",
                why.to_string(),
            )]))
        }
    };
    let base = path.parent().unwrap_or(Path::new(""));
    parse_sites(&bytes, base).map_err(invalid)
}

/// The sites file's bytes → its typed value, paths resolved against `base`. Pure; `Err` holds
/// every problem found, located and in file order.
pub fn parse_sites(bytes: &[u8], base: &Path) -> Result<SitesFile, Vec<Diagnostic>> {
    // Shape first: serde_json says where (unknown fields included); then the rules, located
    // through the span index over the same text.
    let wire: SitesWire = serde_json::from_slice(bytes).map_err(|e| vec![syntax(&e)])?;
    let text = String::from_utf8_lossy(bytes);
    let index = SpanIndex::scan(&text);
    // (A key twice in one object is serde_json's "duplicate field": every object here is a
    // struct.)
    let mut problems = Vec::new();
    let mut problem = |code, pointer: String, message: String| {
        let location = index.locate(&text, &pointer, false);
        problems.push(Diagnostic::new(code, pointer, message).located(location));
    };
    if wire.sites.is_empty() {
        problem("sites/empty", "/sites".into(), "no site listed".into());
    }
    let mut sites = Vec::with_capacity(wire.sites.len());
    let mut seen = std::collections::BTreeMap::new();
    for (i, peer) in wire.sites.iter().enumerate() {
        if let Err(why) = check_name(&peer.name) {
            problem("sites/name", format!("/sites/{i}/name"), why);
        } else if let Some(first) = seen.insert(peer.name.as_str(), i) {
            seen.insert(peer.name.as_str(), first);
            problem(
                "sites/duplicate-name",
                format!("/sites/{i}/name"),
                format!(
                    "site {:?} is listed twice (first at /sites/{first})",
                    peer.name
                ),
            );
        }
        match check_url(&peer.url) {
            Ok(url) => sites.push(Peer {
                name: peer.name.clone(),
                url,
            }),
            Err(why) => problem("sites/url", format!("/sites/{i}/url"), why),
        }
    }
    let named = [("ca", &wire.ca), ("cert", &wire.cert), ("key", &wire.key)];
    for (field, value) in named {
        if value.as_deref().is_some_and(str::is_empty) {
            problem(
                "sites/client-files",
                format!("/{field}"),
                "an empty path".into(),
            );
        }
    }
    let client = match (&wire.ca, &wire.cert, &wire.key) {
        (Some(ca), Some(cert), Some(key)) => Some(ClientFiles {
            ca: base.join(ca),
            cert: base.join(cert),
            key: base.join(key),
        }),
        (None, None, None) => None,
        _ => {
            let missing: Vec<&str> = named
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(f, _)| *f)
                .collect();
            problem(
                "sites/client-files",
                String::new(),
                format!(
                    "`ca`, `cert` and `key` go together: {} missing (or name none, and pass --ca, --cert and --key)",
                    missing.join(", ")
                ),
            );
            None
        }
    };
    if !problems.is_empty() {
        problems.sort_by(|a, b| (a.location, &a.pointer).cmp(&(b.location, &b.pointer)));
        return Err(problems);
    }
    Ok(SitesFile { sites, client })
}

/// A serde_json error as a located diagnostic (its position in the location, not the message).
fn syntax(e: &serde_json::Error) -> Diagnostic {
    let message = e.to_string();
    let message = match message.rsplit_once(" at line ") {
        Some((head, _)) => head.to_owned(),
        None => message,
    };
    Diagnostic::new("sites/syntax", "", message).located(Location {
        line: e.line().max(1),
        // serde_json counts the end of input at a line's start as column 0.
        column: e.column().max(1),
    })
}

/// A site's name is a label in a table and a message: short, and nothing a terminal would act on.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a site name (1 to 63 of a-z, A-Z, 0-9, `-`, `_`, `.`)"
        ))
    }
}

/// An agent's base URL: HTTPS (the fleet speaks mutual TLS only), a host, and nothing a base
/// URL should not carry (credentials would be sent to it; a path would change what is asked).
fn check_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let why = if url.scheme() != "https" {
        Some("is not https:// (agents are asked over mutual TLS only)")
    } else if url.host().is_none() {
        Some("names no host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("carries credentials (the client certificate is the credential)")
    } else if url.path() != "/" {
        Some("has a path (give the agent's base URL: https://host:port)")
    } else if url.query().is_some() || url.fragment().is_some() {
        Some("has a query or fragment (give the agent's base URL: https://host:port)")
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("{text:?} {why}")),
        None => Ok(url),
    }
}

/// `cookbook fleet status`'s options: the sites file, and flags overriding its `ca`, `cert`,
/// `key`.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    pub sites: PathBuf,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The client files: each flag over the file's; all three needed.
fn client_files(file: &SitesFile, opts: &FleetOptions) -> Result<ClientFiles, Error> {
    let from_file = file.client.as_ref();
    let ca = opts.ca.clone().or_else(|| from_file.map(|c| c.ca.clone()));
    let cert = opts
        .cert
        .clone()
        .or_else(|| from_file.map(|c| c.cert.clone()));
    let key = opts
        .key
        .clone()
        .or_else(|| from_file.map(|c| c.key.clone()));
    match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => Ok(ClientFiles { ca, cert, key }),
        (ca, cert, key) => {
            let missing: Vec<&str> = [
                ("--ca", ca.is_none()),
                ("--cert", cert.is_none()),
                ("--key", key.is_none()),
            ]
            .into_iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| f)
            .collect();
            Err(Error::Usage {
                message: format!(
                    "the fleet is asked over mutual TLS: no {} given",
                    missing.join(", ")
                ),
                help: Some(format!(
                    "name them in {} (`ca`, `cert`, `key`) or pass {}",
                    opts.sites.display(),
                    missing.join(" ")
                )),
            })
        }
    }
}

/// `cookbook fleet status`: asks every site's agent `GET {url}/api/v1/status` at once (each
/// bounded by the client's timeouts), reads each answer capped ([`MAX_STATUS_BYTES`]) and parses
/// it strictly into `SiteStatus` (a peer is hostile: a bad document is that site's error, not a
/// panic, not the whole command's failure). A site that did not answer is in the report with
/// its error: [`FleetReport::into_result`] says whether the command succeeded.
pub fn status(opts: &FleetOptions) -> Result<FleetReport, Error> {
    let file = read_sites(&opts.sites)?;
    let client = tls::client(&client_files(&file, opts)?)?;
    Ok(super::runtime()?.block_on(ask(&client, &file.sites)))
}

/// The same, async, for an agent's `/fleet` (on the caller's runtime).
pub async fn ask(client: &reqwest::Client, peers: &[Peer]) -> FleetReport {
    let answers = futures_util::future::join_all(peers.iter().map(|p| ask_one(client, p))).await;
    let sites: Vec<FleetSite> = peers
        .iter()
        .zip(answers)
        .map(|(peer, answer)| {
            let (status, error) = match answer {
                Ok(status) => (Some(status), None),
                Err(error) => (None, Some(error)),
            };
            FleetSite {
                name: peer.name.clone(),
                url: peer.url.as_str().trim_end_matches('/').to_owned(),
                status,
                error,
            }
        })
        .collect();
    FleetReport {
        master: master_of(&sites),
        sites,
    }
}

/// One site's status, or why it could not be had, in one line.
async fn ask_one(client: &reqwest::Client, peer: &Peer) -> Result<SiteStatus, String> {
    let url = peer
        .url
        .join("api/v1/status")
        .map_err(|e| format!("no status URL under {}: {e}", peer.url))?;
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET /api/v1/status answered HTTP {status}"));
    }
    let too_large = || {
        format!(
            "the status document is larger than {} MiB",
            MAX_STATUS_BYTES >> 20
        )
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_STATUS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e))? {
        if body.len() + chunk.len() > MAX_STATUS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let document: SiteStatus =
        serde_json::from_slice(&body).map_err(|e| format!("not a status document: {e}"))?;
    if document.schema != status::SCHEMA {
        return Err(format!(
            "status document schema {}, this cookbook reads {}",
            document.schema,
            status::SCHEMA
        ));
    }
    Ok(document)
}

/// An error and its causes on one line: reqwest's own message says "error sending request";
/// what failed (a refused connection, the TLS alert, the unknown issuer) is underneath.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// The fleet's master revision: the `sync.master` of the site that looked at the remote last
/// (the latest `sync.last_attempt_at`), since that is the newest head anyone saw; with no
/// attempt time anywhere, the first site (in the file's order) that reports one.
fn master_of(sites: &[FleetSite]) -> Option<String> {
    let reported = || {
        sites
            .iter()
            .filter_map(|s| s.status.as_ref())
            .filter(|s| s.sync.master.is_some())
    };
    let mut latest: Option<(std::time::SystemTime, &SiteStatus)> = None;
    for status in reported() {
        let Some(at) = status
            .sync
            .last_attempt_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        else {
            continue;
        };
        // Ties keep the earlier site: the file's order decides, not the network's.
        if latest.is_none_or(|(t, _)| at > t) {
            latest = Some((at, status));
        }
    }
    latest
        .map(|(_, s)| s)
        .or_else(|| reported().next())
        .and_then(|s| s.sync.master.clone())
}

impl FleetReport {
    /// The table: per site, per stage (in the site's order); an unreachable site is one row with
    /// health `unreachable` and its error; a site that deploys no stage one row without a stage.
    /// `behind` is as each site reports it (against the master it fetched).
    pub fn rows(&self) -> Vec<FleetRow> {
        let mut rows = Vec::new();
        for site in &self.sites {
            let Some(status) = &site.status else {
                rows.push(FleetRow {
                    site: site.name.clone(),
                    stage: None,
                    release: None,
                    health: "unreachable".into(),
                    revision: None,
                    behind: None,
                    error: site.error.clone(),
                });
                continue;
            };
            let row = |stage: Option<&StageView>| FleetRow {
                site: site.name.clone(),
                stage: stage.map(|s| s.name.clone()),
                release: stage.and_then(|s| s.release.clone()),
                health: stage.map_or("unknown", stage_health).to_owned(),
                revision: status.sync.current.clone(),
                behind: status.sync.behind,
                error: stage.and_then(|s| s.error.clone()),
            };
            if status.stages.is_empty() {
                rows.push(row(None));
            }
            rows.extend(status.stages.iter().map(|s| row(Some(s))));
        }
        rows
    }

    /// Every site answered.
    pub fn complete(&self) -> bool {
        self.sites.iter().all(|s| s.status.is_some())
    }

    /// `Ok` when every site answered, else [`Error::Unanswered`] naming the others (exit 3).
    pub fn into_result(&self) -> Result<(), Error> {
        if self.complete() {
            return Ok(());
        }
        Err(Error::Unanswered {
            sites: self
                .sites
                .iter()
                .filter(|s| s.status.is_none())
                .map(|s| s.name.clone())
                .collect(),
            total: self.sites.len(),
        })
    }
}

/// A stage's health from its containers, not from its own `in_sync` alone (a peer's claim is
/// checked against what it lists): `unknown` when the site's engine could not be asked or lists
/// nothing, `down` when nothing runs, `healthy` when everything runs what the lock wants and no
/// probe fails, `degraded` otherwise.
fn stage_health(stage: &StageView) -> &'static str {
    if stage.error.is_some() || stage.containers.is_empty() {
        return "unknown";
    }
    if stage.containers.iter().all(|c| c.health == Health::Down) {
        return "down";
    }
    let sound = stage
        .containers
        .iter()
        .all(|c| !c.drift && matches!(c.health, Health::Healthy | Health::None));
    if stage.in_sync && sound {
        "healthy"
    } else {
        "degraded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::agent::status::{AgentInfo, ContainerView, SyncView};

    fn located(bytes: &str) -> Vec<String> {
        parse_sites(bytes.as_bytes(), Path::new("/etc/fleet"))
            .unwrap_err()
            .iter()
            .map(|d| {
                let l = d.location.unwrap();
                format!("{}:{} {} {}", l.line, l.column, d.code, d.message)
            })
            .collect()
    }

    #[test]
    fn a_sites_file_resolves_its_paths_against_its_directory() {
        let file = parse_sites(
            br#"{"sites": [{"name": "paris", "url": "https://127.0.0.1:8751"},
                           {"name": "oslo", "url": "https://oslo.example/"}],
                 "ca": "ca.pem", "cert": "tls/client.pem", "key": "/abs/client-key.pem"}"#,
            Path::new("/etc/fleet"),
        )
        .unwrap();
        let names: Vec<_> = file.sites.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["paris", "oslo"]);
        assert_eq!(file.sites[0].url.as_str(), "https://127.0.0.1:8751/");
        assert_eq!(
            file.client,
            Some(ClientFiles {
                ca: "/etc/fleet/ca.pem".into(),
                cert: "/etc/fleet/tls/client.pem".into(),
                key: "/abs/client-key.pem".into(),
            })
        );
        let bare = parse_sites(
            br#"{"sites": [{"name": "a", "url": "https://a"}]}"#,
            Path::new(""),
        )
        .unwrap();
        assert_eq!(bare.client, None);
    }

    #[test]
    fn a_bad_sites_file_is_refused_with_every_problem_located() {
        // Shape: an unknown field, where serde_json found it.
        let unknown = located("{\"sites\": [],\n \"cas\": \"x\"}");
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(
            unknown[0].starts_with("2:6 sites/syntax unknown field `cas`"),
            "{unknown:?}"
        );
        assert!(located("{\"sites\": [")[0].contains("sites/syntax"));
        // Rules: all of them at once, in file order.
        let text = r#"{"sites": [
  {"name": "paris", "url": "http://127.0.0.1:8751"},
  {"name": "paris", "url": "https://u:p@127.0.0.1:8752"},
  {"name": "a b", "url": "https://127.0.0.1:8753/api"},
  {"name": "ok", "url": "https://127.0.0.1:8754/?x=1"},
  {"name": "ok2", "url": "not a url"}
], "ca": "ca.pem"}"#;
        let problems = located(text);
        let codes: Vec<&str> = problems
            .iter()
            .map(|p| p.split(' ').take(2).last().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "sites/client-files",
                "sites/url",
                "sites/duplicate-name",
                "sites/url",
                "sites/name",
                "sites/url",
                "sites/url",
                "sites/url"
            ],
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("2:28 sites/url \"http://127.0.0.1:8751\" is not https://"),
            "{}",
            problems[1]
        );
        assert!(problems[2].starts_with(
            "3:12 sites/duplicate-name site \"paris\" is listed twice (first at /sites/0)"
        ));
        assert!(problems[3].contains("carries credentials"));
        assert!(problems[5].contains("has a path"));
        assert!(problems[6].contains("has a query"));
        assert!(problems[7].contains("is not a URL"));
        assert!(problems[0].contains("cert, key missing"), "{}", problems[0]);
        let dup =
            located("{\"sites\": [{\"name\": \"a\", \"url\": \"https://a\"}],\n\"sites\": []}");
        assert!(
            dup[0].starts_with("2:7 sites/syntax duplicate field `sites`"),
            "{dup:?}"
        );
        assert!(located(r#"{"sites": []}"#)[0].contains("sites/empty"));
    }

    fn container(health: Health, drift: bool) -> ContainerView {
        ContainerView {
            container: "web".into(),
            name: "shop-paris-prod-web".into(),
            state: "running".into(),
            health,
            drift,
            restarts: 0,
            services: vec![],
        }
    }

    fn stage(name: &str, in_sync: bool, containers: Vec<ContainerView>) -> StageView {
        StageView {
            name: name.into(),
            release: Some(format!("rel-{name}")),
            deployed_at: None,
            images: Default::default(),
            containers,
            in_sync,
            error: None,
        }
    }

    fn site(name: &str, attempt: Option<&str>, master: &str, stages: Vec<StageView>) -> FleetSite {
        FleetSite {
            name: name.into(),
            url: format!("https://{name}"),
            status: Some(SiteStatus {
                schema: status::SCHEMA,
                project: Some("shop".into()),
                site: name.into(),
                agent: AgentInfo {
                    version: "0.1.0".into(),
                    started_at: "2025-01-01T00:00:00Z".into(),
                    interval_seconds: 3600,
                    round_running: false,
                    next_round_at: None,
                },
                sync: SyncView {
                    remote: "git://x/shop.git".into(),
                    branch: "main".into(),
                    path: "cookbook.json".into(),
                    current: Some(format!("{name}-current")),
                    current_at: None,
                    last_applied: None,
                    last_applied_at: None,
                    last_attempted: None,
                    last_attempt_at: attempt.map(str::to_owned),
                    last_attempt_outcome: None,
                    refused: vec![],
                    master: Some(master.into()),
                    behind: Some(2),
                },
                stages,
                plan: None,
                rounds: vec![],
            }),
            error: None,
        }
    }

    #[test]
    fn rows_are_per_site_per_stage_and_an_unreachable_site_is_one_row() {
        let mut unknown = stage("qa", false, vec![]);
        unknown.error = Some("engine unreachable".into());
        let sites = vec![
            site(
                "paris",
                Some("2025-01-01T10:00:00Z"),
                "m1",
                vec![
                    stage("dev", true, vec![container(Health::Healthy, false)]),
                    stage("prod", true, vec![container(Health::Unhealthy, false)]),
                ],
            ),
            FleetSite {
                name: "lyon".into(),
                url: "https://lyon".into(),
                status: None,
                error: Some("connection refused".into()),
            },
            site(
                "oslo",
                Some("2025-01-01T11:00:00.5Z"),
                "m2",
                vec![
                    stage("dev", false, vec![container(Health::Down, true)]),
                    stage("prod", false, vec![container(Health::None, true)]),
                    unknown,
                ],
            ),
        ];
        let report = FleetReport {
            master: master_of(&sites),
            sites,
        };
        // oslo looked at the remote last.
        assert_eq!(report.master.as_deref(), Some("m2"));
        let table: Vec<(String, Option<String>, String, Option<u64>)> = report
            .rows()
            .into_iter()
            .map(|r| (r.site, r.stage, r.health, r.behind))
            .collect();
        let row = |site: &str, stage: Option<&str>, health: &str, behind| {
            (
                site.to_owned(),
                stage.map(str::to_owned),
                health.to_owned(),
                behind,
            )
        };
        assert_eq!(
            table,
            [
                row("paris", Some("dev"), "healthy", Some(2)),
                // in_sync claimed, a probe failing listed: not healthy.
                row("paris", Some("prod"), "degraded", Some(2)),
                row("lyon", None, "unreachable", None),
                row("oslo", Some("dev"), "down", Some(2)),
                row("oslo", Some("prod"), "degraded", Some(2)),
                row("oslo", Some("qa"), "unknown", Some(2)),
            ]
        );
        let rows = report.rows();
        assert_eq!(rows[2].error.as_deref(), Some("connection refused"));
        assert_eq!(rows[5].error.as_deref(), Some("engine unreachable"));
        assert_eq!(rows[0].revision.as_deref(), Some("paris-current"));
        assert_eq!(rows[0].release.as_deref(), Some("rel-dev"));
        assert!(!report.complete());
        assert_eq!(
            report.into_result().unwrap_err().to_string(),
            "1 of 3 site(s) did not answer: lyon"
        );
    }

    #[test]
    fn the_master_is_the_last_lookers_and_falls_back_to_file_order() {
        let sites = vec![
            site("a", None, "ma", vec![]),
            site("b", Some("2025-01-01T10:00:00Z"), "mb", vec![]),
            site("c", Some("2025-01-01T10:00:00Z"), "mc", vec![]),
        ];
        assert_eq!(master_of(&sites).as_deref(), Some("mb"));
        assert_eq!(master_of(&sites[..1]).as_deref(), Some("ma"));
        assert_eq!(master_of(&[]), None);
        // A site that deploys no stage is still a row.
        let report = FleetReport {
            master: None,
            sites: sites[..1].to_vec(),
        };
        let rows = report.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].stage.as_deref(), rows[0].health.as_str()),
            (None, "unknown")
        );
        assert!(report.complete() && report.into_result().is_ok());
    }
}
