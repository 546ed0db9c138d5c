//! `cookbook update [CONTAINER…]`: re-resolve base images on purpose and move their pins.
//!
//! Like `cargo update`: `apply` never follows a base that moved under its tag; this command
//! does, for the bases the named containers name (all external bases without names). It
//! resolves them now (engine and registry, as `apply` pins: `crate::apply::pin`), records the
//! pins in `cookbook.lock`, prints one line per base and says which containers the next apply
//! rebuilds: those built on a moved base and their `container:` children. Bases not asked for
//! are pinned if they are not yet, and reported if they moved, but keep their pins.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use clap::Args;

use super::{containers_named, load_reporting, Format};
use crate::apply::{self, pin, Event, Reporter};
use crate::error::Error;
use crate::load::Loaded;
use crate::model::{BaseImage, ContainerKind, Name};
use crate::state::lock::Lock;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Re-resolve only the base images of these containers [default: every external base]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Collects the pin step's warnings about bases not asked for (they moved, or could not be
/// checked), for stderr.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl Reporter for Warnings {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::BaseMoved { moved } => format!(
                "warning: base image {} moved under its tag too (pinned {}, now {}): \
                 `cookbook update {}` moves it",
                moved.reference,
                moved.pinned.digest,
                moved.now.digest,
                moved
                    .containers
                    .iter()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Event::BaseUnchecked { reference, why } => {
                format!("warning: cannot check base image {reference}: {why}")
            }
            _ => return,
        };
        self.0
            .lock()
            .expect("no panics while collecting")
            .push(line);
    }
}

pub fn run(
    file: &Path,
    args: &UpdateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let Loaded { cookbook, plan, .. } = load_reporting(file, err)?;
    let wanted = containers_named(&cookbook, &args.containers)?;
    let asked: Vec<&Name> = if wanted.is_empty() {
        cookbook.containers.keys().collect()
    } else {
        wanted.iter().collect()
    };
    let renew: BTreeSet<String> = asked
        .iter()
        .filter_map(|name| match &cookbook.containers[*name].kind {
            ContainerKind::Generated(g) => match &g.base {
                BaseImage::Image(reference) => Some(reference.to_string()),
                BaseImage::Scratch | BaseImage::Container(_) => None,
            },
            ContainerKind::Dockerfile(_) => None,
        })
        .collect();
    let lock_path = Lock::path_for(file);
    let warnings = Warnings::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| apply::ApplyError::Runtime { source })?;
    let report = runtime.block_on(async {
        let engine = crate::engine::DockerEngine::connect().await?;
        let registry = crate::registry::RegistryClient::new()?;
        Ok::<_, Error>(
            pin::pin_plan(
                Some(&engine),
                Some(&registry),
                &cookbook,
                &plan,
                &lock_path,
                &renew,
                true,
                &warnings,
            )
            .await
            .map_err(apply::ApplyError::from)?,
        )
    })?;
    // What moved: a renewed base whose new pin differs from the lock's.
    let moved: BTreeSet<&str> = report
        .pinned
        .iter()
        .filter(|(_, (before, now))| before.as_ref().is_some_and(|b| b != now))
        .map(|(r, _)| r.as_str())
        .collect();
    let rebuilt = pin::rebuilt_by(&cookbook, &plan, &moved);
    match args.format {
        Format::Text => {
            let width = report
                .pinned
                .keys()
                .map(|r| r.as_str().len())
                .max()
                .unwrap_or(0);
            for (reference, (before, now)) in &report.pinned {
                let what = match before {
                    None => format!("pinned     {} ({})", now.digest, now.source.as_str()),
                    Some(b) if b == now => {
                        format!("unchanged  {} ({})", now.digest, now.source.as_str())
                    }
                    Some(b) => format!(
                        "moved      {} → {} ({})",
                        b.digest,
                        now.digest,
                        now.source.as_str()
                    ),
                };
                let _ = writeln!(out, "{reference:<width$}  {what}");
            }
        }
        Format::Json => {
            let bases: serde_json::Map<String, serde_json::Value> = report
                .pinned
                .iter()
                .map(|(reference, (before, now))| {
                    (
                        reference.to_string(),
                        serde_json::json!({ "before": before, "pinned": now }),
                    )
                })
                .collect();
            let doc = serde_json::json!({
                "result": "ok",
                "bases": bases,
                "moved": moved,
                "rebuilds": rebuilt,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    for w in warnings.0.into_inner().expect("no panics while collecting") {
        let _ = writeln!(err, "{w}");
    }
    let _ = writeln!(
        err,
        "{}",
        if rebuilt.is_empty() {
            "update: no base moved; the next apply rebuilds nothing for it".to_owned()
        } else {
            format!(
                "update: {} base(s) moved; the next apply rebuilds {}",
                moved.len(),
                rebuilt
                    .iter()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}
