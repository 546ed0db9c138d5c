//! `cookbook deploy`, `promote`, `rollback`, `releases`, `status`, `approve`, `render` and
//! `site detect`: their arguments, and the rendering of their reports.
//!
//! Each command turns its arguments into `ops::deploy`'s options, calls the one flow there and
//! prints the report it returns (text, or its serialization with `--format json`). What is left
//! here is the terminal's: the signal handlers a deploy is stopped by, and the error document of a
//! deploy that stopped (what failed, what was restored).

use std::io::Write;
use std::path::Path;

use super::args::{
    ApproveArgs, DeployArgs, PromoteArgs, ReleasesArgs, RenderArgs, RenderFormat, RollbackArgs,
    SiteCommand, StatusArgs,
};
use super::interrupt::Interrupt;
use super::output::json_sorted;
use super::Format;
use crate::error::Error;
use crate::ops::deploy::{
    ApproveOptions, DeployOptions, DeployReport, DetectReport, Problem, PromoteOptions,
    RollbackOptions, StageOptions, Status, StatusReport,
};
use crate::ops::deploy::{Cluster, Detected, Engine, InstanceStatus, Services, UnitStatus};
use crate::ops::{self, Workspace};

/// The cookbook a deploy command names, opened once.
fn workspace(file: &Path) -> Result<Workspace, Error> {
    Workspace::open(super::locate::cookbook_file(file.to_path_buf()))
}

pub fn run(
    file: &Path,
    args: &DeployArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let mut ws = workspace(file)?;
    ws.engine = args.engine.selector();
    if args.force_conflicts {
        let _ = writeln!(
            err,
            "warning: --force-conflicts: server-side apply takes over the fields other field managers own"
        );
    }
    let opts = DeployOptions {
        stop_cap: None,
        site: args.site.clone(),
        stage: args.stage.clone(),
        release: args.release.clone(),
        force_conflicts: args.force_conflicts,
        require_attestations: args.key.clone().filter(|_| args.require_attestations),
    };
    converging(&ws, args.format, out, |stop| {
        ops::deploy::deploy(&ws, &opts, stop)
    })
}

/// Runs a flow that converges a stage, and prints its report (or, with `--format json`, the
/// document of a deploy that stopped: what failed, what was restored). SIGINT/SIGTERM request the
/// flow's stop: it rolls the running wave back like a failure and ends with the signal's code
/// (130/143); a second signal ends the process at once.
fn converging(
    ws: &Workspace,
    format: Format,
    out: &mut dyn Write,
    flow: impl FnOnce(&ops::stop::Stop) -> Result<DeployReport, Error>,
) -> Result<(), Error> {
    let interrupt = Interrupt::install()?;
    let e = match flow(interrupt.stop()) {
        Ok(report) => {
            print(out, format, &report);
            return Ok(());
        }
        Err(e) => e,
    };
    let stopped = ops::deploy::stopped_document(&ws.cookbook.project.name, &e);
    if let (Format::Json, Some(doc)) = (format, stopped) {
        let _ = out.write_all(json_sorted(&doc).as_bytes());
    }
    Err(e)
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
            let _ = out.write_all(json_sorted(report).as_bytes());
        }
    }
    // Straight to the process's stderr: `promote` and `rollback` are not handed the error
    // stream, and a warning here (an event the log did not take) is rare.
    let mut err = std::io::stderr().lock();
    for w in &report.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
}

/// `cookbook rollback`: deploys a recorded release again, exactly as it ran.
pub fn rollback(file: &Path, args: &RollbackArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut ws = workspace(file)?;
    ws.engine = args.engine.selector();
    let opts = RollbackOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        to: args.to.clone(),
    };
    print(out, args.format, &ops::deploy::rollback(&ws, &opts)?);
    Ok(())
}

/// `cookbook releases`: the recorded releases of a site, per stage, oldest first.
pub fn releases(file: &Path, args: &ReleasesArgs, out: &mut dyn Write) -> Result<(), Error> {
    let report = ops::deploy::releases(&workspace(file)?, &args.site)?;
    match args.format {
        Format::Text => {
            for (stage, rows) in &report.stages {
                let _ = writeln!(out, "{}/{stage}:", report.site);
                for r in rows {
                    let mark = if r.current { '*' } else { ' ' };
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
                    let down = r
                        .down_at
                        .as_ref()
                        .map(|d| format!("  down since {d}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {mark} {}  {}{back}{checkpoint}{down}",
                        r.release, r.deployed_at
                    );
                }
            }
        }
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
    }
    Ok(())
}

/// `cookbook status`: each container the lock wants in the stage, as the engine runs it, then one
/// line per container that is not as the lock says and a summary. Exit 0 only when all is as the
/// lock says; 1 (`Error::NotAsLocked`, after the report) when a container is exited, missing,
/// unhealthy or drifted.
pub fn status(file: &Path, args: &StatusArgs, out: &mut dyn Write) -> Result<(), Error> {
    let opts = StageOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
    };
    let mut ws = workspace(file)?;
    ws.engine = args.engine.selector();
    let status = ops::deploy::status(&ws, &opts)?;
    match (args.format, &status) {
        (Format::Json, status) => {
            let _ = out.write_all(json_sorted(status).as_bytes());
        }
        (Format::Text, Status::Docker(report)) => {
            docker_status(out, report);
            problems_text(out, &report.problems, &report.summary());
        }
        (Format::Text, Status::Kubernetes(report)) => {
            kubernetes_status(out, report);
            problems_text(out, &report.problems, &report.summary());
        }
    }
    // Printed in full above: the exit code (1) says the rest.
    status.not_as_locked().map_or(Ok(()), Err)
}

/// One line per problem, then the summary.
fn problems_text(out: &mut dyn Write, problems: &[Problem], summary: &str) {
    for p in problems {
        let _ = writeln!(out, "{p}");
    }
    let _ = writeln!(out, "{summary}");
}

/// `cookbook status` of a Docker site, as text: per container, the engine's container.
fn docker_status(out: &mut dyn Write, report: &StatusReport<InstanceStatus>) {
    let uptime = |started: &Option<String>| {
        started
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(|d| {
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
            })
    };
    let _ = writeln!(
        out,
        "{}/{}/{} (lock release {})",
        report.project, report.site, report.stage, report.release
    );
    let _ = writeln!(
        out,
        "  {:<28} {:<10} {:<10} {:>8}  {:<10} {:<5}  SERVICES",
        "CONTAINER", "STATE", "HEALTH", "RESTARTS", "UPTIME", "DRIFT"
    );
    for s in &report.containers {
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
        // Its pod's members, one indented line each under it.
        for m in &s.members {
            let _ = writeln!(
                out,
                "    {:<26} {:<10} {:<10} {}{}",
                m.name,
                m.state,
                m.health,
                m.role,
                m.exit_code
                    .map_or_else(String::new, |c| format!(" (exit code {c})"))
            );
        }
    }
    for s in &report.containers {
        if let Some(note) = s.services.as_ref().and_then(|x| x.note.as_ref()) {
            let _ = writeln!(out, "  note: {}: {note}", s.name);
        }
    }
}

/// A container's services in one column: `web: 80 (httpd)`, `worker: no port (work.sh, sleep)`,
/// `-: ports unknown (job)`.
fn services_text(s: &Services) -> String {
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

/// `cookbook site detect`.
pub fn site(command: &SiteCommand, top: Option<&Path>, out: &mut dyn Write) -> Result<(), Error> {
    let SiteCommand::Detect {
        cookbook,
        site,
        engine,
        format,
    } = command;
    let ws = match site {
        Some(_) => {
            let mut ws = workspace(&cookbook.resolve(top)?)?;
            ws.engine = engine.selector();
            Some(ws)
        }
        None => None,
    };
    let report = ops::deploy::detect(ws.as_ref().zip(site.as_deref()), &engine.selector())?;
    match format {
        Format::Text => detect_text(out, &report),
        Format::Json => {
            let _ = out.write_all(json_sorted(&report).as_bytes());
        }
    }
    Ok(())
}

fn engine_text(out: &mut dyn Write, detected: &Engine) {
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
}

/// A cluster: its version, its storage and ingress classes (the default marked), then each API
/// group version with its resources.
fn cluster_text(out: &mut dyn Write, cluster: &Cluster) {
    let classes = |list: &[ops::deploy::Class]| -> String {
        if list.is_empty() {
            return "none".to_owned();
        }
        list.iter()
            .map(|c| {
                let by =
                    c.by.as_deref()
                        .map(|b| format!(" ({b})"))
                        .unwrap_or_default();
                let default = if c.default { " [default]" } else { "" };
                format!("{}{by}{default}", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "kubernetes    {}", cluster.server_version);
    let _ = writeln!(out, "storage       {}", classes(&cluster.storage_classes));
    let _ = writeln!(out, "ingress       {}", classes(&cluster.ingress_classes));
    for (group, resources) in &cluster.groups {
        let _ = writeln!(out, "api {group:<22} {}", resources.join(", "));
    }
}

fn detect_text(out: &mut dyn Write, report: &DetectReport) {
    match &report.detected {
        Detected::Docker(engine) => engine_text(out, engine),
        Detected::Kubernetes(cluster) => cluster_text(out, cluster),
    }
    let _ = writeln!(out, "capabilities  {}", report.capabilities.join(", "));
    if let Some(fit) = &report.site {
        let declared: Vec<&str> = fit.declared.iter().map(String::as_str).collect();
        let _ = writeln!(out, "site {} declares: {}", fit.site, declared.join(", "));
        if !fit.missing.is_empty() {
            let _ = writeln!(out, "missing       {}", fit.missing.join(", "));
        }
    }
}

/// `cookbook approve`: records an approval for a stage of the release `promote` would carry
/// there (or `--release`, or the lock's images with `--lock`).
pub fn approve(
    file: &Path,
    args: &ApproveArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let opts = ApproveOptions {
        stage: args.stage.clone(),
        by: args.by.clone(),
        ci: args.ci,
        site: args.site.clone(),
        release: args.release.clone(),
        lock: args.lock,
        signing_key: args.signing_key.clone(),
    };
    let report = ops::deploy::approve(&workspace(file)?, &opts)?;
    let approval = &report.approval;
    let what = approval
        .release
        .as_ref()
        .map_or_else(|| "cookbook.lock".to_owned(), ToString::to_string);
    let signed = approval
        .signer()
        .map(|keyid| format!(", signed by {keyid}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "approved images {} ({what}) for stage {} by {}{}{signed}",
        approval.images,
        approval.stage,
        approval.by,
        if approval.ci { " (CI)" } else { "" }
    );
    for a in &report.attached {
        let done = if a.pushed {
            "attached"
        } else {
            "already attached"
        };
        let _ = writeln!(out, "  {done} to {} as {}", a.image, a.referrer);
    }
    for w in &report.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    Ok(())
}

/// `cookbook promote`: deploys the images of a stage's current (healthy, recorded) release to a
/// later stage, with that stage's runtime settings, if its rule is met.
pub fn promote(file: &Path, args: &PromoteArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut ws = workspace(file)?;
    ws.engine = args.engine.selector();
    let opts = PromoteOptions {
        site: args.site.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        require_attestations: args.key.clone().filter(|_| args.require_attestations),
    };
    converging(&ws, args.format, out, |stop| {
        ops::deploy::promote(&ws, &opts, stop)
    })
}

/// `cookbook status` of a Kubernetes site, as text: per container, the Deployment as the cluster
/// runs it.
fn kubernetes_status(out: &mut dyn Write, report: &StatusReport<UnitStatus>) {
    let short = |d: &str| {
        d.strip_prefix("sha256:")
            .map_or(d, |h| &h[..h.len().min(12)])
            .to_owned()
    };
    let _ = writeln!(
        out,
        "{}/{}/{} (lock release {})",
        report.project, report.site, report.stage, report.release
    );
    let _ = writeln!(
        out,
        "  {:<28} {:<12} {:>7}  {:>8}  {:<12} {:<12} DRIFT",
        "DEPLOYMENT", "STATE", "READY", "RESTARTS", "DESIRED", "RUNNING"
    );
    for u in &report.containers {
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

/// `cookbook render`: the Kubernetes objects `deploy` applies to a site's stage, for those who
/// deploy with their own tools. Byte-stable for the same cookbook and lock.
pub fn render(file: &Path, args: &RenderArgs, out: &mut dyn Write) -> Result<(), Error> {
    let opts = StageOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
    };
    let objects = ops::deploy::render(&workspace(file)?, &opts)?;
    let text = match args.format {
        RenderFormat::Yaml => objects.to_yaml(),
        RenderFormat::Json => objects.to_json() + "\n",
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}
