//! `cookbook verify`: arguments and output of the release engineer's check.
//!
//! Text: one line per container, `ok` with its input hash or `MISMATCH` with the first (most
//! specific) reason; a summary on stderr. JSON: one document with every container's status, all
//! its reasons and the hashes. The checking itself is `crate::verify`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::{fingerprints_pinned, load, Format};
use crate::error::Error;
use crate::git::{revision, RevisionError};
use crate::hash;
use crate::registry::RegistryClient;
use crate::state::lock::Lock;
use crate::state::{self, stat_cache::StatCache};
use crate::verify::{self, Report, VerifyError};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes:\n  0  every container matches\n  1  a mismatch (each is printed with its reason)\n  2  invalid input (the cookbook, the lock file, a revision)\n  3  the registry (or, with --rebuild, the Docker engine) is unreachable"
)]
pub struct VerifyArgs {
    /// The lock to check against [default: cookbook.lock beside the cookbook; with --rev, the
    /// revision's own].
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Recompute from this git revision (checked out into a temporary directory) instead of the
    /// working tree.
    #[arg(long)]
    pub rev: Option<String>,
    /// Also check each locked image in the registry: digest under the content tag, input-hash label.
    #[arg(long)]
    pub registry: bool,
    /// Check only that cookbook.lock is up to date with the sources (an entry per container,
    /// the input hashes they hash to now), offline: for CI before `apply`, like `cargo --locked`.
    #[arg(long, conflicts_with = "registry")]
    pub locked: bool,
    /// Also rebuild each container (or only CONTAINER…) from the sources through the Docker
    /// engine, normalize it as `apply` does, and compare it with the locked image layer by layer
    /// (from the registry, or the local engine for a --no-push lock): a mismatch names the first
    /// differing layer and the paths in it.
    #[arg(long, conflicts_with = "locked")]
    pub rebuild: bool,
    /// The containers to rebuild (default: all).
    #[arg(value_name = "CONTAINER", requires = "rebuild")]
    pub containers: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(
    file: &Path,
    args: &VerifyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let checkout = match &args.rev {
        Some(rev) => Some(revision::checkout(file, rev).map_err(VerifyError::from)?),
        None => None,
    };
    let (loaded, lock_path, lock) = read_subject(file, args, checkout.as_ref())?;
    // The lock's own hash version (1 or 2) with its pins; a version this build does not compute
    // is hashed with the current one, and reported as a mismatch of versions.
    let pinning = hash::Pinning::version(lock.hash_version, &lock.bases)
        .unwrap_or_else(|| hash::Pinning::current(&lock.bases));
    let (cookbook, plan) = (loaded.cookbook, loaded.plan);
    let prints = match &checkout {
        Some(c) => {
            // A fresh checkout: nothing in the stat cache could apply, and nothing is saved. Its
            // own paths are those of the working tree (the state directory's default name).
            let base = super::base_dir(&c.cookbook_file);
            let own =
                crate::load::own_paths(&c.cookbook_file, &base.join(crate::load::STATE_DIR_NAME));
            hash::fingerprint_plan(
                &cookbook,
                &plan,
                base,
                &own,
                &StatCache::disabled(),
                pinning,
            )?
        }
        None => fingerprints_pinned(file, &cookbook, &plan, pinning)?,
    };
    verify::check_project(&cookbook, &lock, &lock_path)?;

    // Explain documents are content-addressed, so the working tree's state directory serves a
    // revision's verification as well.
    let state_dir = state::dir_for(file);
    let mut report = verify::compare(&cookbook, &prints, &lock, &|name, hash| {
        verify::saved_explain(&state_dir, name, hash)
    });
    if args.registry {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let client = RegistryClient::new()?;
            verify::registry::check(&mut report, &lock, &client).await
        })?;
    }
    let commit = checkout.as_ref().map(|c| c.commit.as_str());
    if args.rebuild {
        let revision = match commit {
            Some(c) => Some(c.to_owned()),
            None => crate::git::head_commit(super::base_dir(file)),
        };
        let subject = Subject {
            cookbook: &cookbook,
            plan: &plan,
            prints: &prints,
            lock: &lock,
        };
        rebuild(&mut report, &subject, &args.containers, revision.as_deref())?;
    }
    render(&report, args, pinning.version, &lock_path, commit, out, err)
}

/// The cookbook to verify (the working tree's, or `--rev`'s checkout named as the working copy
/// is) and the lock to verify it against, with the lock's path.
fn read_subject(
    file: &Path,
    args: &VerifyArgs,
    checkout: Option<&revision::RevisionCheckout>,
) -> Result<(crate::load::Loaded, PathBuf, Lock), Error> {
    let (loaded, default_lock) = match checkout {
        Some(c) => {
            let rev = args.rev.as_deref().unwrap_or_default();
            // Named as the working copy is, not after the temporary checkout's directory.
            let loaded = super::load_labelled_as(
                &c.cookbook_file,
                format!("{rev}:{}", c.relative_path),
                crate::load::directory_name(super::base_dir(file)).as_deref(),
            )?;
            (loaded, Lock::path_for(&c.cookbook_file))
        }
        None => (load(file)?, Lock::path_for(file)),
    };
    let lock_path = args.lock.clone().unwrap_or(default_lock);
    let lock = Lock::read(&lock_path)
        .map_err(VerifyError::from)?
        .ok_or_else(|| match (checkout, &args.lock) {
            // The revision's own lock: name it as the user knows it, not by the temp checkout.
            (Some(c), None) => VerifyError::Revision(RevisionError::NotInRevision {
                rev: args.rev.clone().unwrap_or_default(),
                path: Path::new(&c.relative_path).with_file_name("cookbook.lock"),
            }),
            _ => VerifyError::NoLock {
                path: lock_path.clone(),
            },
        })?;
    Ok((loaded, lock_path, lock))
}

/// What `--rebuild` compares: the cookbook, its plan and fingerprints, and the lock.
struct Subject<'a> {
    cookbook: &'a crate::model::Cookbook,
    plan: &'a crate::graph::Plan,
    prints: &'a std::collections::BTreeMap<crate::model::Name, hash::Fingerprint>,
    lock: &'a Lock,
}

/// `--rebuild`: each of `containers` (all without names) rebuilt and compared with the lock.
fn rebuild(
    report: &mut Report,
    subject: &Subject,
    containers: &[String],
    revision: Option<&str>,
) -> Result<(), Error> {
    let selected = if containers.is_empty() {
        subject.plan.order().cloned().collect()
    } else {
        super::containers_named(subject.cookbook, containers)?
    };
    // Multi-threaded: normalization runs on blocking threads while the export streams.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(async {
            // Containers without build commands are rebuilt without an engine; rebuild pings
            // it only when a selected container needs it.
            let (engine, _) = crate::engine::DockerEngine::connect_or_unanswered().await?;
            let client = RegistryClient::new()?;
            verify::rebuild::rebuild(
                report,
                subject.cookbook,
                subject.plan,
                subject.prints,
                subject.lock,
                &selected,
                revision,
                &engine,
                &client,
            )
            .await
        })
        .map_err(|e| match e {
            verify::rebuild::RebuildError::Engine(e) => Error::from(e),
            verify::rebuild::RebuildError::Registry(e) => Error::from(e),
            other => Error::Failed(other.to_string()),
        })
}

/// The report as text or JSON on `out`, the summary line on `err`, and the command's result.
fn render(
    report: &Report,
    args: &VerifyArgs,
    hash_version: u32,
    lock_path: &Path,
    commit: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    match args.format {
        Format::Text => print_text(report, if args.locked { "STALE" } else { "MISMATCH" }, out),
        Format::Json => {
            let mut doc = json_document(report, hash_version, lock_path, commit);
            if args.locked && !report.ok() {
                doc["result"] = Value::String("stale".to_owned());
            }
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    let total = report.containers.len();
    let bad = report.mismatches();
    if args.locked {
        // The same comparison, in the terms of a lock check: stale, and what updates it.
        let _ = writeln!(
            err,
            "verify --locked: {} up to date, {bad} stale",
            total - bad
        );
        return if report.ok() {
            Ok(())
        } else {
            Err(Error::Failed(format!(
                "{} is stale for {bad} of {total} container(s): run `cookbook apply` to update it",
                lock_path.display()
            )))
        };
    }
    let _ = writeln!(
        err,
        "verify: {} ok, {bad} mismatch(es){}{}{}",
        total - bad,
        match commit {
            Some(c) => format!(" at revision {}", &c[..c.len().min(12)]),
            None => String::new(),
        },
        if report.registry_checked {
            ", registry checked"
        } else {
            ""
        },
        if report.rebuild_checked {
            ", rebuilt"
        } else {
            ""
        }
    );
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{bad} of {total} container(s) do not match {}",
            lock_path.display()
        )))
    }
}

/// `mismatch` is the word for a container that does not match: `MISMATCH`, or `STALE` for
/// `--locked`.
fn print_text(report: &Report, mismatch: &str, out: &mut dyn Write) {
    let width = report.containers.keys().map(String::len).max().unwrap_or(0);
    for (name, v) in &report.containers {
        match v.reasons.first() {
            None => {
                let _ = writeln!(
                    out,
                    "ok        {name:<width$}  {}",
                    v.input_hash.as_deref().unwrap_or_default()
                );
            }
            Some(first) => {
                let more = match v.reasons.len() - 1 {
                    0 => String::new(),
                    n => format!(" (+{n} more; --format json lists all)"),
                };
                let _ = writeln!(out, "{:<8}  {name:<width$}  {first}{more}", mismatch);
            }
        }
    }
}

fn json_document(
    report: &Report,
    hash_version: u32,
    lock_path: &Path,
    commit: Option<&str>,
) -> Value {
    let containers: serde_json::Map<String, Value> = report
        .containers
        .iter()
        .map(|(name, v)| {
            let reasons: Vec<Value> = v
                .reasons
                .iter()
                .map(|r| {
                    let mut value = serde_json::to_value(r).expect("reasons serialize");
                    value["message"] = Value::String(r.to_string());
                    value
                })
                .collect();
            (
                name.clone(),
                json!({
                    "status": if v.ok() { "ok" } else { "mismatch" },
                    "reasons": reasons,
                    "input_hash": v.input_hash,
                    "locked_input_hash": v.locked_input_hash,
                    "image": v.image,
                    "digest": v.digest,
                    "image_id": v.image_id,
                    "registry_digest": v.registry_digest,
                    "rebuilt_digest": v.rebuilt_digest,
                }),
            )
        })
        .collect();
    json!({
        "result": if report.ok() { "ok" } else { "mismatch" },
        "hash_version": hash_version,
        "lock": lock_path.display().to_string(),
        "revision": commit,
        "registry_checked": report.registry_checked,
        "rebuild_checked": report.rebuild_checked,
        "containers": containers,
    })
}
