//! `cookbook init`: prints (or writes) the cookbook that [`crate::init`] generates.
//!
//! Text mode keeps stdout pure JSON, the cookbook and nothing else, so `cookbook init >
//! cookbook.json` is a valid file; what `init` could not decide, the generated Dockerfiles and
//! `--explain` go to stderr as `#` comment lines. `--format json` prints one document with the
//! cookbook, the generated files, the waves and a `notes` array.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Format;
use crate::error::Error;
use crate::init::{self, InitError, Limits, Options, WriteError};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The project directory to look at.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Write DIR/cookbook.json and any generated Dockerfile (atomically) instead of printing.
    #[arg(long)]
    pub write: bool,
    /// With --write: replace files that already exist.
    #[arg(long, requires = "write")]
    pub force: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Say, per service, which files led to which decision.
    #[arg(long)]
    pub explain: bool,
    /// The base image for a language: python, node, go, rust, java or static (repeatable).
    #[arg(long = "base", value_name = "LANG=IMAGE")]
    pub bases: Vec<String>,
    /// `packaging.registry` of the generated cookbook.
    #[arg(long)]
    pub registry: Option<String>,
    /// The project's name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Stop walking after this many files (the listing is then incomplete, and said so).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_files: usize,
    /// Stop walking after this long (e.g. `30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub time_limit: Duration,
}

fn usage(e: impl ToString) -> Error {
    Error::Usage {
        message: e.to_string(),
        help: None,
    }
}

fn comment(err: &mut dyn Write, prefix: &str, text: &str) {
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        let _ = writeln!(err, "# {prefix}{first}");
    }
    for l in lines {
        let _ = writeln!(err, "#   {l}");
    }
}

pub fn run(args: &InitArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let options = Options {
        bases: init::parse_bases(&args.bases).map_err(usage)?,
        registry: args.registry.clone(),
        name: args.name.clone(),
        limits: Limits {
            max_files: args.max_files,
            time: args.time_limit,
        },
    };
    let generated = match init::init(&args.dir, &options) {
        Ok(g) => g,
        Err(InitError::NothingFound { dir, notes }) => {
            for n in &notes {
                comment(err, "note: ", n);
            }
            return Err(Error::Usage {
                message: InitError::NothingFound { dir, notes: vec![] }.to_string(),
                help: Some("write cookbook.json by hand (see the README's format section), or run init in the project's directory".into()),
            });
        }
        Err(e @ InitError::Invalid { .. }) => return Err(Error::Failed(e.to_string())),
        Err(e) => return Err(usage(e)),
    };
    let written = if args.write {
        init::write_outputs(&args.dir, &generated, args.force).map_err(|e| match e {
            WriteError::Exists(_) => usage(e),
            WriteError::Io { .. } => Error::Failed(e.to_string()),
        })?
    } else {
        Vec::new()
    };
    match args.format {
        Format::Json => {
            let cookbook: serde_json::Value =
                serde_json::from_str(&generated.cookbook).expect("generated JSON");
            let mut doc = serde_json::json!({
                "cookbook": cookbook,
                "files": generated.files,
                "waves": generated.waves,
                "notes": generated.notes,
            });
            if args.explain {
                doc["explain"] = serde_json::to_value(&generated.explain).expect("JSON");
            }
            if args.write {
                doc["written"] = written.iter().map(|p| p.display().to_string()).collect();
            }
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
        Format::Text => {
            if !args.write {
                let _ = out.write_all(generated.cookbook.as_bytes());
                for (path, text) in &generated.files {
                    let _ = writeln!(err, "# generated {path} (written with --write):");
                    for l in text.lines() {
                        let _ = writeln!(err, "#   {l}");
                    }
                }
            }
            if args.explain {
                for (name, evidence) in &generated.explain {
                    let _ = writeln!(err, "# {name}:");
                    for e in evidence {
                        let _ = writeln!(err, "#   {}: {}", e.file, e.decision);
                    }
                }
            }
            for n in &generated.notes {
                comment(err, "note: ", n);
            }
            for p in &written {
                let _ = writeln!(err, "# wrote {}", p.display());
            }
            let waves: Vec<String> = generated
                .waves
                .iter()
                .map(|w| format!("[{}]", w.join(", ")))
                .collect();
            let _ = writeln!(
                err,
                "# {} container(s) in {} wave(s): {}",
                generated.explain.len(),
                generated.waves.len(),
                waves.join(" ")
            );
        }
    }
    Ok(())
}
