//! The agent's dashboard: a site's status and event log → one server-rendered HTML document.
//!
//! Pure: values in, a `String` out; the agent's server serves it at `/` (and the fleet table at
//! `/fleet`) with [`csp`] as its Content-Security-Policy. The page is one document with nothing
//! external (no font, no CDN, no image file): its style and its few lines of script are inline,
//! allowed by their hashes, and everything else it shows comes from the status, so it is escaped
//! by askama (HTML escaping stays on; no value from the status ever goes through `|safe`). The
//! plan is drawn as inline SVG whose positions are computed here from `PlanView`'s waves, with no
//! layout library. Everything reads without JavaScript; the script only re-fetches the page every
//! 15 seconds and swaps its `<main>`, so a reader keeps their scroll position.
//!
//! The templates live in `src/ops/agent/templates` (`askama.toml` at the crate root points there)
//! and are compiled into the binary.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use askama::Template;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::status::{ContainerView, Health, PlanView, SiteStatus};
use crate::ops::fleet::{FleetReport, FleetRow};
use crate::state::events::{Event, EventKind, EventOutcome};

/// The page's style sheet, inline in `<style>`: allowed by its hash in [`csp`].
pub const STYLE: &str = include_str!("templates/dashboard.css");
/// The live refresh, inline in `<script>`: allowed by its hash in [`csp`].
pub const SCRIPT: &str = include_str!("templates/refresh.js");

/// How many events the timeline shows, newest first: the page stays small however long the log.
pub const TIMELINE_SHOWN: usize = 100;

/// The Content-Security-Policy both pages need: nothing but their own inline style and script
/// (by hash, so an injected `<script>` or `style` attribute would not run even if escaping
/// failed), and `fetch` of the page itself for the refresh.
pub fn csp() -> String {
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        source_hash(STYLE),
        source_hash(SCRIPT)
    )
}

/// A CSP hash source: `sha256-` and the base64 of the SHA-256 of the element's exact text.
fn source_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The page at `/`: one server-rendered document.
pub fn render(status: &SiteStatus, timeline: &[Event], now: SystemTime) -> String {
    let page = DashboardPage::new(status, timeline, now);
    page.render().unwrap_or_else(|e| failed_page(&e))
}

/// The page at `/fleet` (an agent given --peers): the fleet table.
pub fn render_fleet(report: &FleetReport, rows: &[FleetRow], now: SystemTime) -> String {
    let page = FleetPage::new(report, rows, now);
    page.render().unwrap_or_else(|e| failed_page(&e))
}

/// Rendering writes into a `String` and our values' `Display` never fails, so this is not
/// reached; if it were, the reader gets a page that says so rather than a panicking server.
fn failed_page(error: &askama::Error) -> String {
    let text = error
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>cookbook agent</title>\
         <p>The dashboard could not be rendered: {text}</p></html>"
    )
}

const NONE: &str = "—";

/// A time as the page shows it: absolute (UTC), and relative to the page's `now`.
struct When {
    iso: String,
    text: String,
    ago: Option<String>,
}

impl When {
    fn new(rfc3339: &str, now: SystemTime) -> When {
        match humantime::parse_rfc3339_weak(rfc3339) {
            Ok(time) => When {
                iso: humantime::format_rfc3339_seconds(time).to_string(),
                text: utc_text(time),
                ago: Some(relative(time, now)),
            },
            // A time the agent did not write in its own form: shown as it came, said nothing of.
            Err(_) => When {
                iso: String::new(),
                text: rfc3339.to_owned(),
                ago: None,
            },
        }
    }

    fn opt(rfc3339: Option<&String>, now: SystemTime) -> Option<When> {
        rfc3339.map(|t| When::new(t, now))
    }
}

/// `2026-12-06 06:00:00 UTC`.
fn utc_text(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `5 min ago`, `in 2 min`, `just now`.
fn relative(time: SystemTime, now: SystemTime) -> String {
    match now.duration_since(time) {
        Ok(past) => match span(past) {
            None => "just now".to_owned(),
            Some(span) => format!("{span} ago"),
        },
        Err(future) => match span(future.duration()) {
            None => "now".to_owned(),
            Some(span) => format!("in {span}"),
        },
    }
}

fn span(d: Duration) -> Option<String> {
    let s = d.as_secs();
    match s {
        0..=9 => None,
        10..=59 => Some(format!("{s} s")),
        60..=3599 => Some(format!("{} min", s / 60)),
        3600..=86_399 => Some(format!("{} h {} min", s / 3600, s % 3600 / 60)),
        _ => Some(format!("{} d {} h", s / 86_400, s % 86_400 / 3600)),
    }
}

fn duration_text(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ if secs.is_multiple_of(3600) => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// The first 12 characters of a revision or release id: enough to tell them apart on a page.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn short_or_none(id: Option<&String>) -> String {
    id.map_or_else(|| NONE.to_owned(), |id| short(id))
}

/// `sha256:0123456789ab…` → `0123456789ab`: the hex a person compares.
fn short_digest(digest: &str) -> String {
    short(digest.strip_prefix("sha256:").unwrap_or(digest))
}

/// A word (with a symbol) and its colour class: the page never says something by colour alone.
struct Badge {
    label: String,
    class: &'static str,
}

impl Badge {
    fn new(label: impl Into<String>, class: &'static str) -> Badge {
        Badge {
            label: label.into(),
            class,
        }
    }
}

fn health_badge(health: Health) -> Badge {
    match health {
        Health::Healthy => Badge::new("✓ healthy", "healthy"),
        Health::Unhealthy => Badge::new("✗ unhealthy", "unhealthy"),
        Health::Starting => Badge::new("◐ starting", "starting"),
        Health::None => Badge::new("○ no probe", "none"),
        Health::Down => Badge::new("■ down", "down"),
    }
}

/// How bad a health is, worst highest: the plan's box shows a container's worst stage.
fn severity(health: Health) -> u8 {
    match health {
        Health::Healthy => 0,
        Health::None => 1,
        Health::Starting => 2,
        Health::Unhealthy => 3,
        Health::Down => 4,
    }
}

fn kind_badge(kind: EventKind) -> Badge {
    match kind {
        EventKind::SyncRound => Badge::new("⟳ sync round", "none"),
        EventKind::Apply => Badge::new("⚙ apply", "none"),
        EventKind::Deploy => Badge::new("⇪ deploy", "none"),
        EventKind::Approval => Badge::new("✔ approval", "none"),
        EventKind::Promotion => Badge::new("⇧ promotion", "none"),
        EventKind::Rollback => Badge::new("↶ rollback", "rollback"),
        EventKind::Down => Badge::new("⏹ down", "none"),
    }
}

fn outcome_badge(outcome: EventOutcome) -> Badge {
    match outcome {
        EventOutcome::Ok => Badge::new("✓ ok", "ok"),
        EventOutcome::Unchanged => Badge::new("= unchanged", "unchanged"),
        EventOutcome::Skipped => Badge::new("↷ skipped", "skipped"),
        EventOutcome::Refused => Badge::new("⊘ refused", "refused"),
        EventOutcome::Failed => Badge::new("✗ failed", "failed"),
        EventOutcome::RolledBack => Badge::new("↶ rolled back", "rolled-back"),
    }
}

/// A sync's or round's outcome word (`taken`, `refused`, …, as `sync status` writes it).
fn attempt_badge(outcome: &str) -> Badge {
    match outcome {
        "taken" | "applied" | "deployed" => Badge::new(format!("✓ {outcome}"), "ok"),
        "up_to_date" => Badge::new("= up to date", "unchanged"),
        "refused" => Badge::new("⊘ refused", "refused"),
        "error" | "failed" => Badge::new(format!("✗ {outcome}"), "failed"),
        other => Badge::new(other, "unknown"),
    }
}

fn behind_badge(behind: Option<u64>) -> Badge {
    match behind {
        None => Badge::new("? not known", "unknown"),
        Some(0) => Badge::new("✓ up to date", "in-sync"),
        Some(1) => Badge::new("⚠ 1 commit behind", "behind"),
        Some(n) => Badge::new(format!("⚠ {n} commits behind"), "behind"),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    style: &'static str,
    script: &'static str,
    version: String,
    rendered: String,
    site: String,
    project: Option<String>,
    agent_started: When,
    interval: String,
    round_running: bool,
    next_round: Option<When>,
    refusal: Option<Refusal>,
    sync: SyncRows,
    plan: Option<PlanSvg>,
    stages: Vec<StageBlock>,
    timeline: Vec<EventRow>,
    timeline_cut: usize,
    rounds: Vec<RoundRow>,
}

struct Refusal {
    revision: String,
    at: Option<When>,
    keeps: String,
    reasons: Vec<String>,
}

struct SyncRows {
    remote: String,
    branch: String,
    path: String,
    current: String,
    current_at: Option<When>,
    last_applied: String,
    last_applied_at: Option<When>,
    last_attempted: String,
    last_attempt_at: Option<When>,
    outcome: Option<Badge>,
    master: String,
    behind: Badge,
}

struct StageBlock {
    name: String,
    release: String,
    deployed_at: Option<When>,
    sync: Badge,
    error: Option<String>,
    rows: Vec<ContainerRow>,
}

struct ContainerRow {
    container: String,
    name: String,
    digest: String,
    digest_full: String,
    health: Badge,
    state: String,
    drift: bool,
    restarts: String,
    services: String,
}

struct EventRow {
    time: When,
    kind: Badge,
    stage: String,
    release: String,
    revision: String,
    outcome: Badge,
    who: String,
    message: String,
    rollback: bool,
}

struct RoundRow {
    started: When,
    trigger: String,
    delivery: Option<String>,
    commit: String,
    result: Badge,
    took: String,
    message: String,
}

impl DashboardPage {
    fn new(status: &SiteStatus, timeline: &[Event], now: SystemTime) -> DashboardPage {
        let sync = &status.sync;
        let refusal = (!sync.refused.is_empty()).then(|| Refusal {
            revision: short_or_none(sync.last_attempted.as_ref()),
            at: When::opt(sync.last_attempt_at.as_ref(), now),
            keeps: match &sync.current {
                Some(current) => format!("revision {}", short(current)),
                None => "what it ran before".to_owned(),
            },
            reasons: sync.refused.clone(),
        });
        let (timeline, timeline_cut) = event_rows(timeline, now);
        DashboardPage {
            style: STYLE,
            script: SCRIPT,
            version: status.agent.version.clone(),
            rendered: utc_text(now),
            site: status.site.clone(),
            project: status.project.clone(),
            agent_started: When::new(&status.agent.started_at, now),
            interval: duration_text(status.agent.interval_seconds),
            round_running: status.agent.round_running,
            next_round: When::opt(status.agent.next_round_at.as_ref(), now),
            refusal,
            sync: SyncRows {
                remote: sync.remote.clone(),
                branch: sync.branch.clone(),
                path: sync.path.clone(),
                current: short_or_none(sync.current.as_ref()),
                current_at: When::opt(sync.current_at.as_ref(), now),
                last_applied: short_or_none(sync.last_applied.as_ref()),
                last_applied_at: When::opt(sync.last_applied_at.as_ref(), now),
                last_attempted: short_or_none(sync.last_attempted.as_ref()),
                last_attempt_at: When::opt(sync.last_attempt_at.as_ref(), now),
                outcome: sync.last_attempt_outcome.as_deref().map(attempt_badge),
                master: short_or_none(sync.master.as_ref()),
                behind: behind_badge(sync.behind),
            },
            plan: status.plan.as_ref().map(|plan| PlanSvg::new(plan, status)),
            stages: status.stages.iter().map(|s| stage_block(s, now)).collect(),
            timeline,
            timeline_cut,
            rounds: status.rounds.iter().map(|r| round_row(r, now)).collect(),
        }
    }
}

fn round_row(r: &super::status::RoundView, now: SystemTime) -> RoundRow {
    let took = match (
        humantime::parse_rfc3339_weak(&r.started_at),
        humantime::parse_rfc3339_weak(&r.finished_at),
    ) {
        (Ok(start), Ok(end)) => end
            .duration_since(start)
            .map_or_else(|_| NONE.to_owned(), |d| duration_text(d.as_secs())),
        _ => NONE.to_owned(),
    };
    RoundRow {
        started: When::new(&r.started_at, now),
        trigger: r.trigger.clone(),
        delivery: r.delivery.as_ref().map(|d| format!("delivery {d}")),
        commit: short_or_none(r.commit.as_ref()),
        result: round_badge(&r.result, &r.outcome),
        took,
        message: r.message.clone(),
    }
}

/// A round's result and outcome in one badge: `✓ taken`, `= up to date`, `✗ error`.
fn round_badge(result: &str, outcome: &str) -> Badge {
    let badge = attempt_badge(outcome);
    if result == "ok" || badge.class == "failed" || badge.class == "refused" {
        badge
    } else {
        Badge::new(format!("✗ {result}: {outcome}"), "failed")
    }
}

fn stage_block(stage: &super::status::StageView, now: SystemTime) -> StageBlock {
    let mut rows: Vec<ContainerRow> = stage
        .containers
        .iter()
        .map(|c| container_row(c, stage.images.get(&c.container)))
        .collect();
    // An image of the release that the site did not report (it could not be asked): still listed.
    for (container, digest) in &stage.images {
        if !stage.containers.iter().any(|c| &c.container == container) {
            rows.push(ContainerRow {
                container: container.clone(),
                name: NONE.to_owned(),
                digest: short_digest(digest),
                digest_full: digest.clone(),
                health: Badge::new("? not reported", "unknown"),
                state: "not reported".to_owned(),
                drift: false,
                restarts: NONE.to_owned(),
                services: NONE.to_owned(),
            });
        }
    }
    let sync = if stage.error.is_some() {
        Badge::new("? not known", "unknown")
    } else if stage.release.is_none() {
        // Nothing was ever deployed here: nothing to be out of sync with.
        Badge::new("○ not deployed", "unknown")
    } else if stage.in_sync {
        Badge::new("✓ in sync", "in-sync")
    } else {
        Badge::new("⚠ out of sync", "drift")
    };
    StageBlock {
        name: stage.name.clone(),
        release: stage
            .release
            .clone()
            .unwrap_or_else(|| "none yet".to_owned()),
        deployed_at: When::opt(stage.deployed_at.as_ref(), now),
        sync,
        error: stage.error.clone(),
        rows,
    }
}

fn container_row(c: &ContainerView, digest: Option<&String>) -> ContainerRow {
    ContainerRow {
        container: c.container.clone(),
        name: c.name.clone(),
        digest: digest.map_or_else(|| NONE.to_owned(), |d| short_digest(d)),
        digest_full: digest.cloned().unwrap_or_default(),
        health: health_badge(c.health),
        state: c.state.clone(),
        drift: c.drift,
        restarts: c.restarts.to_string(),
        services: if c.services.is_empty() {
            NONE.to_owned()
        } else {
            c.services.join(", ")
        },
    }
}

/// The timeline, newest first (the log is in append order; equal times keep the later line
/// first), at most [`TIMELINE_SHOWN`] rows, and how many older ones were left out.
fn event_rows(events: &[Event], now: SystemTime) -> (Vec<EventRow>, usize) {
    let mut newest_first: Vec<&Event> = events.iter().rev().collect();
    newest_first.sort_by(|a, b| b.time.cmp(&a.time));
    let cut = newest_first.len().saturating_sub(TIMELINE_SHOWN);
    let rows = newest_first
        .into_iter()
        .take(TIMELINE_SHOWN)
        .map(|e| {
            let mut who: Vec<String> = Vec::new();
            who.extend(e.who.via.clone());
            who.extend(e.who.user.clone());
            who.extend(e.who.ci_job.as_ref().map(|j| format!("CI job {j}")));
            who.extend(e.who.delivery.as_ref().map(|d| format!("delivery {d}")));
            EventRow {
                time: When::new(&e.time, now),
                kind: kind_badge(e.kind),
                stage: e.stage.clone().unwrap_or_else(|| NONE.to_owned()),
                release: e.release.clone().unwrap_or_else(|| NONE.to_owned()),
                revision: short_or_none(e.revision.as_ref()),
                outcome: outcome_badge(e.outcome),
                who: if who.is_empty() {
                    NONE.to_owned()
                } else {
                    who.join(" · ")
                },
                message: e.message.clone().unwrap_or_default(),
                rollback: e.kind == EventKind::Rollback || e.outcome == EventOutcome::RolledBack,
            }
        })
        .collect();
    (rows, cut)
}

const BOX_W: u32 = 176;
const BOX_H: u32 = 42;
const COL_GAP: u32 = 64;
const ROW_GAP: u32 = 16;
const PAD: u32 = 10;
const HEAD: u32 = 22;
/// Characters of a container's name a box holds; the whole name is in its `<title>`.
const LABEL_CHARS: usize = 20;

/// The plan as SVG geometry: one box per container, one path per edge, whole numbers only.
struct PlanSvg {
    width: u32,
    height: u32,
    summary: String,
    waves: Vec<String>,
    columns: Vec<Column>,
    boxes: Vec<NodeBox>,
    edges: Vec<EdgePath>,
}

struct Column {
    number: usize,
    x: u32,
    y: u32,
}

struct NodeBox {
    title: String,
    label: String,
    state: String,
    class: String,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    text_x: u32,
    name_y: u32,
    state_y: u32,
}

struct EdgePath {
    d: String,
    title: String,
}

impl NodeBox {
    /// A container's box at `(x, y)`, with its worst health and drift when a stage runs it.
    fn new(name: &str, (x, y): (u32, u32), seen: Option<(Health, bool)>) -> NodeBox {
        let (health, drift) = seen.unzip();
        let badge = health.map(health_badge);
        let mut class = badge.as_ref().map_or("", |b| b.class).to_owned();
        let mut state = badge.map_or_else(|| "not deployed".to_owned(), |b| b.label);
        if drift == Some(true) {
            class.push_str(" drift");
            state.push_str(" · ⚠ drift");
        }
        let label = if name.chars().count() > LABEL_CHARS {
            let head: String = name.chars().take(LABEL_CHARS - 1).collect();
            format!("{head}…")
        } else {
            name.to_owned()
        };
        NodeBox {
            title: format!("{name}: {state}"),
            label,
            state,
            class,
            x,
            y,
            w: BOX_W,
            h: BOX_H,
            text_x: x + 10,
            name_y: y + 18,
            state_y: y + 34,
        }
    }
}

impl EdgePath {
    /// A curve from the dependent's left side to the dependency's right side (the arrowhead).
    fn new(
        dependent: &str,
        dependency: &str,
        (ax, ay): (u32, u32),
        (bx, by): (u32, u32),
    ) -> EdgePath {
        let (x1, y1) = (ax, ay + BOX_H / 2);
        let (x2, y2) = (bx + BOX_W, by + BOX_H / 2);
        let bend = (x1.abs_diff(x2) / 2).max(24);
        EdgePath {
            d: format!(
                "M{x1} {y1}C{} {y1} {} {y2} {x2} {y2}",
                x1.saturating_sub(bend),
                x2 + bend
            ),
            title: format!("{dependent} needs {dependency}"),
        }
    }
}

impl PlanSvg {
    fn new(plan: &PlanView, status: &SiteStatus) -> PlanSvg {
        // A container's worst health and any drift over the stages: what its box shows.
        let mut seen: BTreeMap<&str, (Health, bool)> = BTreeMap::new();
        for c in status.stages.iter().flat_map(|s| &s.containers) {
            let entry = seen.entry(&c.container).or_insert((c.health, false));
            if severity(c.health) > severity(entry.0) {
                entry.0 = c.health;
            }
            entry.1 |= c.drift;
        }
        let cols = plan.waves.len() as u32;
        let rows = plan.waves.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let width = 2 * PAD + cols * BOX_W + cols.saturating_sub(1) * COL_GAP;
        let height = 2 * PAD + HEAD + rows * BOX_H + rows.saturating_sub(1) * ROW_GAP;
        let mut at: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        let mut columns = Vec::new();
        let mut boxes = Vec::new();
        for (w, wave) in plan.waves.iter().enumerate() {
            let x = PAD + w as u32 * (BOX_W + COL_GAP);
            columns.push(Column {
                number: w + 1,
                x,
                y: PAD + 14,
            });
            for (r, name) in wave.iter().enumerate() {
                let y = PAD + HEAD + r as u32 * (BOX_H + ROW_GAP);
                at.entry(name).or_insert((x, y));
                boxes.push(NodeBox::new(name, (x, y), seen.get(name.as_str()).copied()));
            }
        }
        // An edge naming a container the waves do not hold cannot be placed: it is not drawn.
        let edges = plan
            .edges
            .iter()
            .filter_map(|(dependent, dependency)| {
                let from = *at.get(dependent.as_str())?;
                let to = *at.get(dependency.as_str())?;
                Some(EdgePath::new(dependent, dependency, from, to))
            })
            .collect();
        let count = boxes.len();
        PlanSvg {
            width,
            height,
            summary: format!(
                "The plan: {count} container{} in {} wave{}",
                if count == 1 { "" } else { "s" },
                cols,
                if cols == 1 { "" } else { "s" }
            ),
            waves: plan.waves.iter().map(|w| w.join(", ")).collect(),
            columns,
            boxes,
            edges,
        }
    }
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    style: &'static str,
    script: &'static str,
    version: &'static str,
    rendered: String,
    site_count: usize,
    master: String,
    rows: Vec<FleetLine>,
    sites: Vec<FleetAgent>,
}

struct FleetLine {
    site: String,
    stage: String,
    release: String,
    health: Badge,
    revision: String,
    behind: Badge,
    error: String,
}

struct FleetAgent {
    name: String,
    url: String,
    project: String,
    version: String,
    error: Option<String>,
}

fn fleet_health(health: &str) -> Badge {
    match health {
        "healthy" => Badge::new("✓ healthy", "healthy"),
        "degraded" => Badge::new("⚠ degraded", "degraded"),
        "down" => Badge::new("■ down", "down"),
        "unreachable" => Badge::new("✗ unreachable", "unreachable"),
        other => Badge::new(format!("? {other}"), "unknown"),
    }
}

impl FleetPage {
    fn new(report: &FleetReport, rows: &[FleetRow], now: SystemTime) -> FleetPage {
        FleetPage {
            style: STYLE,
            script: SCRIPT,
            version: env!("CARGO_PKG_VERSION"),
            rendered: utc_text(now),
            site_count: report.sites.len(),
            master: short_or_none(report.master.as_ref()),
            rows: rows
                .iter()
                .map(|r| FleetLine {
                    site: r.site.clone(),
                    stage: r.stage.clone().unwrap_or_else(|| NONE.to_owned()),
                    release: r.release.clone().unwrap_or_else(|| NONE.to_owned()),
                    health: fleet_health(&r.health),
                    revision: short_or_none(r.revision.as_ref()),
                    behind: behind_badge(r.behind),
                    error: r.error.clone().unwrap_or_default(),
                })
                .collect(),
            sites: report
                .sites
                .iter()
                .map(|s| FleetAgent {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    project: s
                        .status
                        .as_ref()
                        .and_then(|st| st.project.clone())
                        .unwrap_or_else(|| NONE.to_owned()),
                    version: s
                        .status
                        .as_ref()
                        .map_or_else(|| NONE.to_owned(), |st| st.agent.version.clone()),
                    error: s.error.clone(),
                })
                .collect(),
        }
    }
}

/// A site's status, event log and fleet, made up but whole: what the unit tests and the browser
/// test (`tests/it/dashboard.rs`) render. Not part of the API.
#[doc(hidden)]
pub mod fixture {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use crate::ops::agent::status::{
        AgentInfo, ContainerView, Health, PlanView, RoundView, SiteStatus, StageView, SyncView,
        SCHEMA,
    };
    use crate::ops::fleet::{FleetReport, FleetRow, FleetSite};
    use crate::state::events::{Event, EventKind, EventOutcome, Who};

    pub const REVISION: &str = "4c71aaf0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6";
    pub const REFUSED: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432";
    pub const MASTER: &str = "1122334455667788990011223344556677889900";
    /// What the refused revision's check said.
    pub const REFUSAL: &str =
        "cookbook.yaml:12:5: container `api` depends on `cache`, which is not defined";

    /// The page's clock: 2026-12-06 06:40:00 UTC.
    pub fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_539_200)
    }

    pub fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn container(name: &str, health: Health, drift: bool) -> ContainerView {
        ContainerView {
            container: name.to_owned(),
            name: format!("shop-edge-lyon-production-{name}"),
            state: if health == Health::Down {
                "exited"
            } else {
                "running"
            }
            .to_owned(),
            health,
            drift,
            restarts: i64::from(drift),
            services: if name == "web" {
                vec!["tcp/8080 http".to_owned()]
            } else {
                Vec::new()
            },
        }
    }

    /// Site `edge-lyon` of project `shop`: two stages, four containers in three waves, one
    /// container drifted in production, the last revision refused, three commits behind.
    pub fn status() -> SiteStatus {
        SiteStatus {
            schema: SCHEMA,
            project: Some("shop".to_owned()),
            site: "edge-lyon".to_owned(),
            agent: AgentInfo {
                version: "0.1.0".to_owned(),
                started_at: "2026-12-05T22:10:00Z".to_owned(),
                interval_seconds: 3600,
                round_running: false,
                next_round_at: Some("2026-12-06T07:02:00Z".to_owned()),
            },
            sync: sync(),
            stages: stages(),
            plan: Some(plan()),
            rounds: rounds(),
        }
    }

    /// The last revision refused, three commits behind.
    fn sync() -> SyncView {
        SyncView {
            remote: "git://git.example/shop.git".to_owned(),
            branch: "main".to_owned(),
            path: "cookbook.yaml".to_owned(),
            current: Some(REVISION.to_owned()),
            current_at: Some("2026-12-06T05:02:11Z".to_owned()),
            last_applied: Some(REVISION.to_owned()),
            last_applied_at: Some("2026-12-06T05:03:40Z".to_owned()),
            last_attempted: Some(REFUSED.to_owned()),
            last_attempt_at: Some("2026-12-06T06:02:05Z".to_owned()),
            last_attempt_outcome: Some("refused".to_owned()),
            refused: vec![REFUSAL.to_owned()],
            master: Some(MASTER.to_owned()),
            behind: Some(3),
        }
    }

    /// Staging in sync; production with one container drifted and one unhealthy.
    fn stages() -> Vec<StageView> {
        let names = ["db", "cache", "api", "web"];
        let images: BTreeMap<String, String> = names
            .iter()
            .zip(1u8..)
            .map(|(n, i)| ((*n).to_owned(), digest(i)))
            .collect();
        vec![
            StageView {
                name: "staging".to_owned(),
                release: Some("r-20261206-050340-staging".to_owned()),
                deployed_at: Some("2026-12-06T05:03:52Z".to_owned()),
                images: images.clone(),
                containers: names
                    .iter()
                    .map(|n| ContainerView {
                        name: format!("shop-edge-lyon-staging-{n}"),
                        ..container(n, Health::Healthy, false)
                    })
                    .collect(),
                in_sync: true,
                error: None,
            },
            StageView {
                name: "production".to_owned(),
                release: Some("r-20261205-230112-production".to_owned()),
                deployed_at: Some("2026-12-05T23:01:30Z".to_owned()),
                images,
                containers: vec![
                    container("db", Health::Healthy, false),
                    container("cache", Health::None, false),
                    container("api", Health::Starting, true),
                    container("web", Health::Unhealthy, false),
                ],
                in_sync: false,
                error: None,
            },
        ]
    }

    /// Four containers in three waves.
    fn plan() -> PlanView {
        PlanView {
            waves: vec![
                vec!["db".to_owned(), "cache".to_owned()],
                vec!["api".to_owned()],
                vec!["web".to_owned()],
            ],
            edges: vec![
                ("api".to_owned(), "db".to_owned()),
                ("api".to_owned(), "cache".to_owned()),
                ("web".to_owned(), "api".to_owned()),
            ],
        }
    }

    /// A refused revision, a webhook's round, a round that could not run.
    fn rounds() -> Vec<RoundView> {
        vec![
            round(
                "2026-12-06T06:02:00Z",
                "timer",
                REFUSED,
                "ok",
                "refused",
                "revision 9f8e7d6c5b4a refused: 1 problem",
            ),
            round(
                "2026-12-06T05:02:00Z",
                "webhook",
                REVISION,
                "ok",
                "taken",
                "took 4c71aaf0d1e2; staging deployed, production waits for approval",
            ),
            round(
                "2026-12-06T04:02:00Z",
                "timer",
                REVISION,
                "failed",
                "error",
                "git://git.example/shop.git: connection refused",
            ),
        ]
    }

    fn round(
        at: &str,
        trigger: &str,
        commit: &str,
        result: &str,
        outcome: &str,
        message: &str,
    ) -> RoundView {
        let start = humantime::parse_rfc3339(at).expect("a fixture time");
        RoundView {
            started_at: at.to_owned(),
            finished_at: humantime::format_rfc3339_seconds(start + Duration::from_secs(95))
                .to_string(),
            trigger: trigger.to_owned(),
            delivery: (trigger == "webhook")
                .then(|| "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned()),
            commit: Some(commit.to_owned()),
            result: result.to_owned(),
            outcome: outcome.to_owned(),
            message: message.to_owned(),
        }
    }

    fn event(
        time: &str,
        kind: EventKind,
        stage: Option<&str>,
        outcome: EventOutcome,
        message: &str,
    ) -> Event {
        Event {
            time: time.to_owned(),
            kind,
            site: Some("edge-lyon".to_owned()),
            stage: stage.map(str::to_owned),
            revision: Some(REVISION.to_owned()),
            release: stage.map(|s| format!("r-20261206-050340-{s}")),
            digests: BTreeMap::new(),
            who: Who {
                user: Some("cookbook".to_owned()),
                ci_job: None,
                delivery: None,
                via: Some("agent:timer".to_owned()),
            },
            outcome,
            message: Some(message.to_owned()),
        }
    }

    /// The event log in append order (oldest first), with a failed deploy rolled back.
    pub fn timeline() -> Vec<Event> {
        vec![
            event(
                "2026-12-05T23:00:02Z",
                EventKind::SyncRound,
                None,
                EventOutcome::Ok,
                "took 0a1b2c3d4e5f",
            ),
            event(
                "2026-12-05T23:01:30Z",
                EventKind::Deploy,
                Some("production"),
                EventOutcome::Ok,
                "3 containers replaced",
            ),
            event(
                "2026-12-06T05:02:11Z",
                EventKind::SyncRound,
                None,
                EventOutcome::Ok,
                "took 4c71aaf0d1e2",
            ),
            event(
                "2026-12-06T05:03:40Z",
                EventKind::Apply,
                None,
                EventOutcome::Ok,
                "2 images built, 2 cached",
            ),
            event(
                "2026-12-06T05:03:52Z",
                EventKind::Deploy,
                Some("staging"),
                EventOutcome::Ok,
                "4 containers replaced",
            ),
            event(
                "2026-12-06T05:20:00Z",
                EventKind::Deploy,
                Some("production"),
                EventOutcome::RolledBack,
                "wave 2: api unhealthy after 60 s",
            ),
            event(
                "2026-12-06T05:20:41Z",
                EventKind::Rollback,
                Some("production"),
                EventOutcome::Ok,
                "back to r-20261205-230112-production",
            ),
            event(
                "2026-12-06T06:02:05Z",
                EventKind::SyncRound,
                None,
                EventOutcome::Refused,
                "revision 9f8e7d6c5b4a refused",
            ),
        ]
    }

    /// [`status`] with hostile strings where a site's answers land on the page.
    pub const HOSTILE: &str = "<script>document.title='pwned'</script>";

    pub fn hostile_status() -> SiteStatus {
        let mut status = status();
        status.site = format!("lyon{HOSTILE}");
        status.sync.refused = vec![format!(
            "<img src=x onerror=\"document.title='pwned'\">{HOSTILE}"
        )];
        status.stages[1].containers[2].container = HOSTILE.to_owned();
        status.stages[1].containers[2].state = "\"><svg onload=alert(1)>".to_owned();
        status.rounds[0].message = HOSTILE.to_owned();
        if let Some(plan) = &mut status.plan {
            plan.waves[2].push(HOSTILE.to_owned());
        }
        status
    }

    pub fn hostile_timeline() -> Vec<Event> {
        let mut events = timeline();
        events[6].message = Some(HOSTILE.to_owned());
        events[6].who.delivery = Some(HOSTILE.to_owned());
        events
    }

    /// Two sites: `edge-lyon` answered ([`status`]), `edge-oslo` did not.
    pub fn fleet() -> (FleetReport, Vec<FleetRow>) {
        let report = FleetReport {
            master: Some(MASTER.to_owned()),
            sites: vec![
                FleetSite {
                    name: "edge-lyon".to_owned(),
                    url: "https://lyon.example:8750".to_owned(),
                    status: Some(status()),
                    error: None,
                },
                FleetSite {
                    name: "edge-oslo".to_owned(),
                    url: "https://oslo.example:8750".to_owned(),
                    status: None,
                    error: Some(
                        "the peer's certificate is not signed by the fleet's CA".to_owned(),
                    ),
                },
            ],
        };
        let rows = vec![
            FleetRow {
                site: "edge-lyon".to_owned(),
                stage: Some("staging".to_owned()),
                release: Some("r-20261206-050340-staging".to_owned()),
                health: "healthy".to_owned(),
                revision: Some(REVISION.to_owned()),
                behind: Some(3),
                error: None,
            },
            FleetRow {
                site: "edge-lyon".to_owned(),
                stage: Some("production".to_owned()),
                release: Some("r-20261205-230112-production".to_owned()),
                health: "degraded".to_owned(),
                revision: Some(REVISION.to_owned()),
                behind: Some(3),
                error: None,
            },
            FleetRow {
                site: "edge-oslo".to_owned(),
                stage: None,
                release: None,
                health: "unreachable".to_owned(),
                revision: None,
                behind: None,
                error: Some("the peer's certificate is not signed by the fleet's CA".to_owned()),
            },
        ];
        (report, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{self, HOSTILE};
    use super::*;

    fn page() -> String {
        render(&fixture::status(), &fixture::timeline(), fixture::now())
    }

    /// The text between `<main>` and `</main>`: what the status puts on the page.
    fn main_of(page: &str) -> &str {
        let start = page.find("<main>").expect("a <main>");
        let end = page.find("</main>").expect("a </main>");
        &page[start..end]
    }

    #[test]
    fn the_page_holds_the_site_its_stages_containers_and_digests() {
        let page = page();
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(page
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(page.contains("<h1>Site edge-lyon <span class=\"meta\">· project shop</span></h1>"));
        for stage in ["Stage staging", "Stage production"] {
            assert!(page.contains(stage), "{stage}");
        }
        for name in ["db", "cache", "api", "web"] {
            assert!(
                page.contains(&format!("<th scope=\"row\">{name}</th>")),
                "{name}"
            );
        }
        // Each container's image by its short digest, the whole one in its title.
        let full = fixture::digest(3);
        assert!(page.contains(&format!("title=\"{full}\">{}</td>", "03".repeat(6))));
        // Health as a word and a symbol, not a colour alone.
        for word in ["✓ healthy", "◐ starting", "✗ unhealthy", "○ no probe"] {
            assert!(page.contains(word), "{word}");
        }
        assert!(page.contains("⚠ 3 commits behind"));
        assert!(page.contains("4c71aaf0d1e2"), "the current revision, short");
    }

    #[test]
    fn drift_and_the_refusal_are_highlighted() {
        let page = page();
        // api drifted in production: its row is marked, with a word, and the stage is out of sync.
        assert_eq!(page.matches("<tr class=\"drifted\">").count(), 1);
        assert!(page.contains("<tr class=\"drifted\"><th scope=\"row\">api</th>"));
        assert!(page.contains("<span class=\"badge drift\">⚠ drift</span>"));
        assert!(page.contains("⚠ out of sync"));
        // The refused revision, why, and what the site keeps running.
        let alert = page
            .find("<div class=\"card alert\">")
            .expect("the refusal box");
        let refusal = &page[alert..];
        assert!(refusal.contains("Revision 9f8e7d6c5b4a was refused"));
        assert!(refusal.contains("keeps running revision 4c71aaf0d1e2"));
        assert!(refusal.contains("container `api` depends on `cache`, which is not defined"));
    }

    #[test]
    fn the_timeline_is_newest_first_with_the_rollback_marked() {
        let page = page();
        let history =
            &page[page.find("id=\"history\"").unwrap()..page.find("id=\"rounds\"").unwrap()];
        let refused = history.find("revision 9f8e7d6c5b4a refused").unwrap();
        let rollback = history
            .find("back to r-20261205-230112-production")
            .unwrap();
        let first = history.find("took 0a1b2c3d4e5f").unwrap();
        assert!(refused < rollback && rollback < first, "newest first");
        // The rollback and the deploy it undid: both rows marked, each with its word.
        assert_eq!(history.matches("<tr class=\"rollback-row\">").count(), 2);
        assert!(history.contains("<span class=\"badge rollback\">↶ rollback</span>"));
        assert!(history.contains("<span class=\"badge rolled-back\">↶ rolled back</span>"));
        assert!(history.contains("agent:timer · cookbook"), "who");
        assert!(history.contains("<time datetime=\"2026-12-06T05:20:41Z\">2026-12-06 05:20:41 UTC</time> <span class=\"meta ago\">(1 h 19 min ago)</span>"));
    }

    #[test]
    fn a_fresh_agent_and_a_site_that_cannot_be_asked_read_plainly() {
        let mut status = fixture::status();
        status.plan = None;
        status.rounds.clear();
        status.sync.refused.clear();
        status.sync.behind = None;
        status.stages[1].containers.clear();
        status.stages[1].error =
            Some("the engine at unix:///run/docker.sock is unreachable".into());
        let page = render(&status, &[], fixture::now());
        assert!(page.contains("No plan yet: the site has not taken a revision."));
        assert!(page.contains("No round has run yet."));
        assert!(page.contains("The event log is empty."));
        assert!(!page.contains("was refused"), "no refusal box");
        assert!(page.contains("? not known"));
        // The stage's release images are still listed, each marked as not reported.
        assert!(page.contains(
            "The site could not be asked: the engine at unix:///run/docker.sock is unreachable"
        ));
        assert_eq!(page.matches("? not reported").count(), 4);
    }

    #[test]
    fn the_timeline_shows_at_most_its_cap() {
        let one = fixture::timeline().remove(0);
        let many = vec![one; TIMELINE_SHOWN + 7];
        let page = render(&fixture::status(), &many, fixture::now());
        assert_eq!(page.matches("took 0a1b2c3d4e5f").count(), TIMELINE_SHOWN);
        assert!(page.contains("7 older events not shown"));
    }

    #[test]
    fn the_rounds_show_trigger_commit_result_and_message() {
        let page = page();
        let rounds = &page[page.find("id=\"rounds\"").unwrap()..];
        assert!(rounds.contains("<td>webhook <span class=\"meta sub\">delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958</span></td>"));
        assert!(rounds.contains("<span class=\"badge refused\">⊘ refused</span>"));
        assert!(rounds.contains("<span class=\"badge ok\">✓ taken</span>"));
        assert!(rounds.contains("<span class=\"badge failed\">✗ error</span>"));
        assert!(rounds.contains("connection refused"));
        assert!(rounds.contains("<td>1 min 35 s</td>"));
    }

    #[test]
    fn the_plan_is_one_box_per_container_and_one_path_per_edge() {
        let page = page();
        let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap()];
        assert_eq!(svg.matches("<rect class=\"node").count(), 4);
        assert_eq!(svg.matches("<path class=\"edge\"").count(), 3);
        assert_eq!(svg.matches("<text class=\"wave\"").count(), 3);
        // Wave 1 is the leftmost column; web (wave 3) is right of api (wave 2), api of db.
        let x_of = |name: &str| -> u32 {
            let at = svg.find(&format!(">{name}</text>")).unwrap();
            let tag = svg[..at].rfind("x=\"").unwrap();
            svg[tag + 3..].split('"').next().unwrap().parse().unwrap()
        };
        assert!(x_of("db") < x_of("api") && x_of("api") < x_of("web"));
        assert_eq!(x_of("db"), x_of("cache"));
        // The worst stage's health and the drift show on the box.
        assert!(svg.contains("class=\"node starting drift\""));
        assert!(svg.contains("<title>web needs api</title>"));
        // An edge to a container the waves do not hold is not drawn, and nothing breaks.
        let mut status = fixture::status();
        status
            .plan
            .as_mut()
            .unwrap()
            .edges
            .push(("web".into(), "ghost".into()));
        let page = render(&status, &[], fixture::now());
        assert_eq!(page.matches("<path class=\"edge\"").count(), 3);
    }

    #[test]
    fn hostile_strings_come_out_inert() {
        let page = render(
            &fixture::hostile_status(),
            &fixture::hostile_timeline(),
            fixture::now(),
        );
        let main = main_of(&page);
        assert!(!main.contains("<script"), "{main}");
        assert!(!main.contains("<img"));
        assert!(!main.contains("<svg onload"));
        // Escaped, so the reader sees the text as it came: in the stage table, the timeline, the
        // rounds and the plan's box.
        let escaped = HOSTILE
            .replace('<', "&#60;")
            .replace('>', "&#62;")
            .replace('\'', "&#39;");
        assert!(main.matches(&escaped).count() >= 4, "{main}");
        // The one script on the page is ours, and it is the one the CSP allows.
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_style_and_script() {
        let csp = csp();
        assert!(csp.starts_with("default-src 'none'; "));
        assert!(csp.contains(&format!("style-src '{}'", source_hash(STYLE))));
        assert!(csp.contains(&format!("script-src '{}'", source_hash(SCRIPT))));
        // The hash of the empty string, as every CSP implementation computes it.
        assert_eq!(
            source_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        // No inline style attribute anywhere: a hashed style-src would block it.
        let page = page();
        assert!(!page.contains(" style=\""));
        let (report, rows) = fixture::fleet();
        assert!(!render_fleet(&report, &rows, fixture::now()).contains(" style=\""));
    }

    #[test]
    fn the_fleet_page_is_one_row_per_site_stage() {
        let (report, rows) = fixture::fleet();
        let page = render_fleet(&report, &rows, fixture::now());
        assert!(page.contains("<title>Fleet · cookbook agent</title>"));
        let table = &page[page.find("id=\"stages\"").unwrap()..page.find("id=\"sites\"").unwrap()];
        assert_eq!(table.matches("<tr><th scope=\"row\">").count(), 3);
        assert!(table.contains("⚠ degraded"));
        assert!(table.contains("✗ unreachable"));
        assert!(table.contains("⚠ 3 commits behind"));
        assert!(
            table.contains("not signed by the fleet&#39;s CA")
                || table.contains("not signed by the fleet&#x27;s CA")
        );
        assert!(page.contains("https://oslo.example:8750"));
        assert!(page.contains("112233445566"), "the master revision, short");
    }

    #[test]
    fn times_read_as_utc_and_relative_to_the_page() {
        let now = fixture::now();
        let w = When::new("2026-12-06T06:38:00Z", now);
        assert_eq!(w.text, "2026-12-06 06:38:00 UTC");
        assert_eq!(w.ago.as_deref(), Some("2 min ago"));
        assert_eq!(
            When::new("2026-12-06T07:02:00Z", now).ago.as_deref(),
            Some("in 22 min")
        );
        assert_eq!(
            When::new("2026-12-04T06:40:00Z", now).ago.as_deref(),
            Some("2 d 0 h ago")
        );
        assert_eq!(
            When::new("2026-12-06T06:39:58Z", now).ago.as_deref(),
            Some("just now")
        );
        let odd = When::new("yesterday", now);
        assert_eq!((odd.text.as_str(), odd.ago), ("yesterday", None));
        assert_eq!(duration_text(3600), "1 h");
        assert_eq!(duration_text(95), "1 min 35 s");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
    }
}
