//! `cookbook deploy --site S --stage ST`: runs the images pinned in cookbook.lock on the site's
//! target, wave by wave, each wave healthy before the next; records the release, and rolls a
//! failed deploy back to the stage's previous release (`on_failure: previous`).
//! `cookbook rollback` restores a recorded release; `cookbook releases` lists them.
//!
//! The work is the library's: `deploy::desired` (pure), `deploy::session` (the orchestration every
//! target shares) over a `deploy::Backend` (`deploy::docker`), and `deploy::releases` (the
//! records); `approve` and `promote` are `deploy::approvals`' flows. This module reads the
//! cookbook and the lock, calls them and prints the outcome.

use std::io::Write;
use std::path::Path;

use crate::cli::interrupt::Interrupt;
use crate::cli::{load, Format};
use crate::deploy::approvals::{self, Request, Subject};
use crate::deploy::backend::{ConnectOptions, SiteStatus};
use crate::deploy::desired::desired;
use crate::deploy::kubernetes::cluster::{UnitState, UnitStatus};
use crate::deploy::kubernetes::objects::objects;
use crate::deploy::session::{self, DeployError, Outcome, Recovery, WaveError};
use crate::error::Error;
use crate::load::Loaded;
use crate::model::lifecycle::Target;
use crate::ops::deploy::{DeployOptions, DeployReport, PromoteOptions, RollbackOptions};
use crate::ops::{self, CookbookFile, Workspace};
use crate::state;
use crate::state::lock::Lock;

/// `cookbook deploy --help`'s exit codes.
pub const DEPLOY_HELP: &str = "Exit codes:
  0    success
  1    the work failed: a wave not healthy or the engine refusing (the stage is then rolled
       back as lifecycle.rollback.on_failure says), a name the stage needs held by something
       that is not its own, a progression rule not met
  2    invalid input (the cookbook, an argument, a path)
  3    the site's engine or cluster is unreachable
  130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: the deploy stops between steps and rolls
       back like a failure. A second signal exits at once.";

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The federation site to deploy to (its `target` names the engine)
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The lifecycle stage to deploy
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Deploy the digests of this lock file (e.g. an older cookbook.lock) instead of the one
    /// beside the cookbook
    #[arg(long, value_name = "LOCK")]
    pub release: Option<std::path::PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Kubernetes sites: let server-side apply take over fields other field managers own
    /// (without it, such a field is a conflict and the deploy stops, naming field and manager)
    #[arg(long)]
    pub force_conflicts: bool,
}

/// The lock beside the cookbook: what has been published. None yet is a usage error, and so is
/// one another project wrote.
fn published(file: &Path, cookbook: &crate::model::Cookbook) -> Result<Lock, Error> {
    let lock_path = Lock::path_for(file);
    Lock::read_for(&lock_path, &cookbook.project.name)?.ok_or_else(|| Error::Usage {
        message: format!("no {}: nothing has been published yet", lock_path.display()),
        help: Some("run `cookbook apply` first".to_owned()),
    })
}

/// The cookbook a deploy command names, opened once.
fn workspace(file: &Path) -> Result<Workspace, Error> {
    Workspace::open(CookbookFile {
        bytes: super::locate::stdin_bytes(file),
        path: file.to_path_buf(),
        label: super::locate::display_name(file),
    })
}

pub fn run(
    file: &Path,
    args: &DeployArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let ws = workspace(file)?;
    if args.force_conflicts {
        let _ = writeln!(
            err,
            "warning: --force-conflicts: server-side apply takes over the fields other field managers own"
        );
    }
    let opts = DeployOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        release: args.release.clone(),
        force_conflicts: args.force_conflicts,
    };
    converging(&ws, args.format, out, |stop| {
        ops::deploy::deploy(&ws, &opts, stop)
    })
}

/// The connection options of a command on `file`'s cookbook.
fn options(file: &Path, force_conflicts: bool) -> ConnectOptions {
    ConnectOptions {
        base: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into()),
        force_conflicts,
    }
}

/// Runs a flow that converges a stage, and prints its report. SIGINT/SIGTERM stop it between
/// steps and roll it back like a failure (exit 130/143); a second signal ends the process at
/// once.
fn converging(
    ws: &Workspace,
    format: Format,
    out: &mut dyn Write,
    flow: impl FnOnce(&tokio_util::sync::CancellationToken) -> Result<DeployReport, Error>,
) -> Result<(), Error> {
    let interrupt = Interrupt::install()?;
    let mut e = match flow(&interrupt.token()) {
        Ok(report) => {
            print(out, format, &report);
            return Ok(());
        }
        Err(e) => e,
    };
    // A deploy a signal stopped ends with the signal's code.
    if let (Error::Deploy { error, signal }, Some(Error::Interrupted { signal: s, code })) =
        (&mut e, interrupt.error())
    {
        if error.interrupted() {
            *signal = Some((s, code));
        }
    }
    if let (Format::Json, Some(doc)) = (format, stopped_document(&ws.cookbook.project.name, &e)) {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    }
    Err(e)
}

/// `--format json` for a deploy that stopped: the error document (`result: "error"`), plus what
/// failed and what the stage was put back on. `None` for any other error (the CLI prints the
/// plain error document).
fn stopped_document(project: &crate::model::Name, e: &Error) -> Option<serde_json::Value> {
    let Error::Deploy { error, .. } = e else {
        return None;
    };
    let DeployError::Stopped(stopped) = error.as_ref() else {
        return None;
    };
    let (wave, unit) = match &stopped.cause {
        WaveError::Unhealthy { wave, unit, .. } => (Some(*wave), Some(unit.as_str())),
        WaveError::Backend { at, .. } | WaveError::Interrupted { at } => match at {
            session::Step::Wave(n) => (Some(*n), None),
            _ => (None, None),
        },
    };
    let empty = Outcome::default();
    let (action, release, restored, rollback_error) = match &stopped.recovery {
        Recovery::NothingChanged => ("nothing_changed", None, &empty, None),
        Recovery::LeftAsIs => ("left_as_is", None, &empty, None),
        Recovery::NothingToRestore => ("nothing_to_restore", None, &empty, None),
        Recovery::RolledBack { release, outcome } => {
            ("rolled_back", Some(release.as_str()), outcome, None)
        }
        Recovery::RollbackFailed { release, cause } => (
            "rollback_failed",
            Some(release.as_str()),
            &empty,
            Some(cause.to_string()),
        ),
    };
    Some(serde_json::json!({
        "result": "error",
        "exit_code": e.exit_code(),
        "errors": [{ "code": "deploy", "message": e.to_string(), "help": null }],
        "deploy": {
            "project": project.to_string(),
            "site": stopped.site.to_string(),
            "stage": stopped.stage.to_string(),
            "release": stopped.release,
            "started": stopped.started,
            "failed": { "wave": wave, "unit": unit, "message": stopped.cause.to_string() },
            "recovery": {
                "action": action,
                "release": release,
                "started": restored.started,
                "unchanged": restored.unchanged,
                "removed": restored.removed,
                "error": rollback_error,
            },
        },
    }))
}

/// A report as `--format json` prints it: its keys sorted, as the documents have always been.
fn json_text(report: &impl serde::Serialize) -> String {
    let value = serde_json::to_value(report).expect("a report serializes");
    serde_json::to_string_pretty(&value).expect("JSON")
}

fn print(out: &mut dyn Write, format: Format, report: &DeployReport) {
    match format {
        Format::Text => {
            let _ = writeln!(out, "{report}");
            for (what, names) in [
                ("started", &report.started),
                ("unchanged", &report.unchanged),
                ("removed", &report.removed),
            ] {
                for name in names {
                    let _ = writeln!(out, "  {what:<9} {name}");
                }
            }
        }
        Format::Json => {
            let _ = writeln!(out, "{}", json_text(report));
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage to roll back
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// The release to restore [default: the one before the current]
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cookbook rollback`: deploys a recorded release again, exactly as it ran.
pub fn rollback(file: &Path, args: &RollbackArgs, out: &mut dyn Write) -> Result<(), Error> {
    let ws = workspace(file)?;
    let opts = RollbackOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        to: args.to.clone(),
    };
    print(out, args.format, &ops::deploy::rollback(&ws, &opts)?);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cookbook releases`: the recorded releases of a site, per stage, oldest first.
pub fn releases(file: &Path, args: &ReleasesArgs, out: &mut dyn Write) -> Result<(), Error> {
    let cookbook = load(file)?.cookbook;
    let site = session::known_site(&cookbook, &args.site).map_err(Error::from)?;
    let records = session::releases(&state::dir_for(file), &site).map_err(Error::from)?;
    match args.format {
        Format::Text => {
            for (stage, list) in &records.stages {
                let _ = writeln!(out, "{site}/{stage}:");
                for (i, r) in list.iter().enumerate() {
                    let mark = if i + 1 == list.len() { '*' } else { ' ' };
                    let back = r
                        .rolled_back_from
                        .as_ref()
                        .map(|f| format!("  (rolled back from {f})"))
                        .unwrap_or_default();
                    let checkpoint = r
                        .checkpoint
                        .as_ref()
                        .map(|c| format!("  checkpoint ({c})"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {mark} {}  {}{back}{checkpoint}",
                        r.release, r.deployed_at
                    );
                }
            }
        }
        Format::Json => {
            let stages: serde_json::Map<String, serde_json::Value> = records
                .stages
                .iter()
                .map(|(stage, list)| {
                    let items = list
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let containers: std::collections::BTreeMap<&str, &str> = r
                                .desired
                                .instances()
                                .map(|i| (i.container.as_str(), i.digest.as_str()))
                                .collect();
                            serde_json::json!({
                                "release": r.release,
                                "deployed_at": r.deployed_at,
                                "rolled_back_from": r.rolled_back_from,
                                "checkpoint": r.checkpoint,
                                "current": i + 1 == list.len(),
                                "containers": containers,
                            })
                        })
                        .collect();
                    (stage.clone(), serde_json::Value::Array(items))
                })
                .collect();
            let doc = serde_json::json!({ "site": site.to_string(), "stages": stages });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cookbook status`: each container the lock wants in the stage, as the engine runs it. Drift and
/// ill health are the answer, not a failure: the exit code is 0 whenever the engine answered.
pub fn status(file: &Path, args: &StatusArgs, out: &mut dyn Write) -> Result<(), Error> {
    let Loaded { cookbook, plan, .. } = load(file)?;
    let lock = published(file, &cookbook)?;
    let desired = desired(&cookbook, &plan, &lock, &args.site, &args.stage)?;
    let list = match crate::ops::runtime()?
        .block_on(session::status(&cookbook, &desired, &options(file, false)))
        .map_err(Error::from)?
    {
        SiteStatus::Docker(list) => list,
        SiteStatus::Kubernetes(units) => {
            kubernetes_status(out, args.format, &desired, &units);
            return Ok(());
        }
    };
    let uptime = |started: &Option<String>| {
        started
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(|d| {
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
            })
    };
    match args.format {
        Format::Text => {
            let _ = writeln!(
                out,
                "{}/{}/{} (lock release {})",
                desired.project, desired.site, desired.stage, desired.release
            );
            let _ = writeln!(
                out,
                "  {:<28} {:<10} {:<10} {:>8}  {:<10} {:<5}  SERVICES",
                "CONTAINER", "STATE", "HEALTH", "RESTARTS", "UPTIME", "DRIFT"
            );
            for s in &list {
                let _ = writeln!(
                    out,
                    "  {:<28} {:<10} {:<10} {:>8}  {:<10} {:<5}  {}",
                    s.name,
                    s.state,
                    s.health,
                    s.restarts,
                    uptime(&s.started_at).unwrap_or_else(|| "-".to_owned()),
                    if s.drift { "yes" } else { "no" },
                    s.services
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), services_text)
                );
            }
            for s in &list {
                if let Some(note) = s.services.as_ref().and_then(|x| x.note.as_ref()) {
                    let _ = writeln!(out, "  note: {}: {note}", s.name);
                }
            }
        }
        Format::Json => {
            let containers: Vec<serde_json::Value> = list
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "container": s.container,
                        "state": s.state,
                        "health": s.health,
                        "restarts": s.restarts,
                        "started_at": s.started_at,
                        "desired_image": s.desired_image,
                        "running_image": s.running_image,
                        "drift": s.drift,
                        "services": s.services,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "project": desired.project.to_string(),
                "site": desired.site.to_string(),
                "stage": desired.stage.to_string(),
                "release": desired.release,
                "in_sync": list.iter().all(|s| !s.drift && s.health != "unhealthy" && s.state == "running"),
                "containers": containers,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}

/// A container's services in one column: `web: 80 (httpd)`, `worker: no port (work.sh, sleep)`,
/// `-: ports unknown (job)`.
fn services_text(s: &crate::deploy::services::Services) -> String {
    let kinds = if s.kinds.is_empty() {
        "-".to_owned()
    } else {
        s.kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let ports = if s.note.is_some() {
        "ports unknown".to_owned()
    } else if s.listening.is_empty() {
        "no port".to_owned()
    } else {
        s.listening
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{kinds}: {ports} ({})", s.processes.join(", "))
}

#[derive(Debug, clap::Subcommand)]
pub enum SiteCommand {
    /// Print what a site's engine offers, in the vocabulary of `capabilities`: architecture,
    /// cores, memory, engine version, GPU. Without --site: the engine at DOCKER_HOST.
    #[command(after_help = crate::error::EXIT_CODES_HELP)]
    Detect {
        #[command(flatten)]
        cookbook: crate::cli::CookbookArg,
        /// The federation site whose target to ask (and whose declared capabilities to check)
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

impl SiteCommand {
    pub fn json_output(&self) -> bool {
        match self {
            SiteCommand::Detect { format, .. } => *format == Format::Json,
        }
    }
}

/// `cookbook site detect`.
pub fn site(command: &SiteCommand, top: Option<&Path>, out: &mut dyn Write) -> Result<(), Error> {
    let SiteCommand::Detect {
        cookbook,
        site,
        format,
    } = command;
    let mut connect = ConnectOptions::default();
    let site = match site {
        Some(site) => {
            let file = cookbook.resolve(top)?;
            let c = load(&file)?.cookbook;
            let name = session::known_site(&c, site).map_err(Error::from)?;
            let target = session::target(&c, &name).map_err(Error::from)?;
            let declared = c.lifecycle.sites[&name].capabilities.clone();
            connect = options(&file, false);
            Some((name, target, declared))
        }
        None => None,
    };
    let target = site.as_ref().map_or_else(
        || Target::Docker {
            host: "env".to_owned(),
        },
        |(_, t, _)| t.clone(),
    );
    let detected = crate::ops::runtime()?
        .block_on(session::detect(&target, &connect))
        .map_err(Error::from)?
        .ok_or_else(|| {
            Error::Failed("this site's target reports no capabilities to detect".to_owned())
        })?;
    let capabilities: Vec<String> = detected.capabilities().into_iter().collect();
    let missing: Vec<&str> = site
        .as_ref()
        .map(|(_, _, declared)| detected.missing(declared))
        .unwrap_or_default();
    match format {
        Format::Text => {
            let gib = detected.memory_bytes as f64 / f64::from(1u32 << 30);
            let _ = writeln!(out, "architecture  {}", detected.architecture);
            let _ = writeln!(out, "cores         {}", detected.cores);
            let _ = writeln!(
                out,
                "memory        {gib:.1} GiB ({} bytes)",
                detected.memory_bytes
            );
            let _ = writeln!(
                out,
                "engine        {} ({})",
                detected.engine_version, detected.os
            );
            let _ = writeln!(
                out,
                "gpu           {}",
                if detected.gpu { "yes" } else { "no" }
            );
            let _ = writeln!(out, "capabilities  {}", capabilities.join(", "));
            if let Some((name, _, declared)) = &site {
                let declared: Vec<&str> = declared.iter().map(String::as_str).collect();
                let _ = writeln!(out, "site {name} declares: {}", declared.join(", "));
                if !missing.is_empty() {
                    let _ = writeln!(out, "missing       {}", missing.join(", "));
                }
            }
        }
        Format::Json => {
            let mut doc = serde_json::json!({
                "architecture": detected.architecture,
                "cores": detected.cores,
                "memory_bytes": detected.memory_bytes,
                "engine_version": detected.engine_version,
                "os": detected.os,
                "gpu": detected.gpu,
                "capabilities": capabilities,
            });
            if let Some((name, _, declared)) = &site {
                doc["site"] = name.to_string().into();
                doc["declared"] = serde_json::json!(declared);
                doc["missing"] = serde_json::json!(missing);
            }
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The stage the approval lets the images in (its rule must take approvals: `manual` a
    /// person's, `ci-approved` a CI job's)
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Who approves (a person, or the CI job's name with --ci)
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// A CI approval (for `ci-approved` stages), e.g. after `cookbook verify` passed
    #[arg(long)]
    pub ci: bool,
    /// The site whose recorded release to approve [default: the only site with a target that
    /// serves the stage before STAGE]
    #[arg(long, value_name = "SITE", conflicts_with = "lock")]
    pub site: Option<String>,
    /// Approve this recorded release [default: the current release of the stage before STAGE,
    /// the one `promote` carries into STAGE]
    #[arg(long, value_name = "RELEASE", conflicts_with = "lock")]
    pub release: Option<String>,
    /// Approve cookbook.lock's images instead (what `deploy --stage STAGE` runs)
    #[arg(long)]
    pub lock: bool,
}

/// `cookbook approve`: records an approval for a stage of the release `promote` would carry
/// there (or `--release`, or the lock's images with `--lock`).
pub fn approve(file: &Path, args: &ApproveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let cookbook = load(file)?.cookbook;
    let lock = if args.lock {
        Some(published(file, &cookbook)?)
    } else {
        None
    };
    let subject = match (&lock, &args.release) {
        (Some(lock), _) => Subject::Lock(lock),
        (None, Some(id)) => Subject::Release(id),
        (None, None) => Subject::Current,
    };
    let request = Request {
        stage: &args.stage,
        by: &args.by,
        ci: args.ci,
        site: args.site.as_deref(),
        subject,
    };
    let approval =
        approvals::approve(&state::dir_for(file), &cookbook, &request).map_err(Error::from)?;
    let what = approval
        .release
        .as_ref()
        .map_or_else(|| "cookbook.lock".to_owned(), ToString::to_string);
    let _ = writeln!(
        out,
        "approved images {} ({what}) for stage {} by {}{}",
        approval.images,
        approval.stage,
        approval.by,
        if approval.ci { " (CI)" } else { "" }
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage whose current release to promote
    #[arg(long, value_name = "STAGE")]
    pub from: String,
    /// A later stage to deploy it to (its progression rule must be met)
    #[arg(long, value_name = "STAGE")]
    pub to: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cookbook promote`: deploys the images of a stage's current (healthy, recorded) release to a
/// later stage, with that stage's runtime settings, if its rule is met.
pub fn promote(file: &Path, args: &PromoteArgs, out: &mut dyn Write) -> Result<(), Error> {
    let ws = workspace(file)?;
    let opts = PromoteOptions {
        site: args.site.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
    };
    converging(&ws, args.format, out, |stop| {
        ops::deploy::promote(&ws, &opts, stop)
    })
}

/// `cookbook status` of a Kubernetes site: per container, the Deployment as the cluster runs it.
fn kubernetes_status(
    out: &mut dyn Write,
    format: Format,
    desired: &crate::deploy::desired::Desired,
    units: &[UnitStatus],
) {
    let short = |d: &str| {
        d.strip_prefix("sha256:")
            .map_or(d, |h| &h[..h.len().min(12)])
            .to_owned()
    };
    match format {
        Format::Text => {
            let _ = writeln!(
                out,
                "{}/{}/{} (lock release {})",
                desired.project, desired.site, desired.stage, desired.release
            );
            let _ = writeln!(
                out,
                "  {:<28} {:<12} {:>7}  {:>8}  {:<12} {:<12} DRIFT",
                "DEPLOYMENT", "STATE", "READY", "RESTARTS", "DESIRED", "RUNNING"
            );
            for u in units {
                let _ = writeln!(
                    out,
                    "  {:<28} {:<12} {:>7}  {:>8}  {:<12} {:<12} {}",
                    u.name,
                    u.state,
                    format!("{}/{}", u.ready_replicas, u.replicas),
                    u.restarts,
                    short(&u.desired_digest),
                    u.running_digest
                        .as_deref()
                        .map_or_else(|| "-".to_owned(), short),
                    if u.drift { "yes" } else { "no" }
                );
                for w in &u.warnings {
                    let _ = writeln!(out, "    warning: {w}");
                }
            }
        }
        Format::Json => {
            let containers: Vec<serde_json::Value> = units
                .iter()
                .map(|u| {
                    serde_json::json!({
                        "name": u.name,
                        "container": u.container,
                        "state": u.state,
                        "replicas": u.replicas,
                        "ready_replicas": u.ready_replicas,
                        "restarts": u.restarts,
                        "desired_digest": u.desired_digest,
                        "running_digest": u.running_digest,
                        "warnings": u.warnings,
                        "drift": u.drift,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "project": desired.project.to_string(),
                "site": desired.site.to_string(),
                "stage": desired.stage.to_string(),
                "release": desired.release,
                "in_sync": units.iter().all(|u| !u.drift && u.state == UnitState::Available),
                "containers": containers,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The federation site (a Kubernetes site's namespace goes into the objects)
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The lifecycle stage whose runtime settings to render
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Output format: YAML documents, or a JSON `List`
    #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub format: RenderFormat,
}

/// `cookbook render`: the Kubernetes objects `deploy` applies to a site's stage, for those who
/// deploy with their own tools. Byte-stable for the same cookbook and lock.
pub fn render(file: &Path, args: &RenderArgs, out: &mut dyn Write) -> Result<(), Error> {
    let Loaded { cookbook, plan, .. } = load(file)?;
    let lock = published(file, &cookbook)?;
    let desired = desired(&cookbook, &plan, &lock, &args.site, &args.stage)?;
    let (namespace, create) = match &cookbook.lifecycle.sites[&desired.site].target {
        Some(Target::Kubernetes(k)) => (Some(k.namespace.as_str()), k.create_namespace),
        _ => (None, false),
    };
    let objects = objects(&desired, namespace, create);
    let text = match args.format {
        RenderFormat::Yaml => objects.to_yaml(),
        RenderFormat::Json => objects.to_json() + "\n",
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}
