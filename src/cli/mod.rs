//! The command line: argument parsing, reading files, and all output.
//!
//! The library computes; this module is the only one that reads the cookbook file from disk and
//! writes to stdout/stderr. Errors become exit codes in exactly one place (`Error::exit_code`).

pub mod sync;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

mod apply;
mod init;
mod verify;

use std::collections::BTreeMap;

use crate::context;
use crate::diagnostic::Rendered;
use crate::error::{Error, EXIT_CODES_HELP, EXIT_OK};
use crate::graph::{render_dot, render_json, render_text, Plan};
use crate::hash::{self, Fingerprint, HashManifest};
use crate::model::{Cookbook, Name};
use crate::state::{self, stat_cache::StatCache};

#[derive(Debug, Parser)]
#[command(name = "cookbook", version, about = "Declarative, reproducible container-image builds", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The cookbook file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "cookbook.json",
        env = "COOKBOOK_FILE"
    )]
    pub file: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the cookbook: syntax, schema, references, cycles. Prints every problem found.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate,
    /// Print the build and deploy plan: waves of containers, dependencies first.
    #[command(after_help = EXIT_CODES_HELP)]
    Plan {
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Keep only this federation site's containers and everything they need.
        #[arg(long)]
        site: Option<String>,
    },
    /// Print each container's input hash (all containers, or the ones named).
    #[command(after_help = EXIT_CODES_HELP)]
    Hash {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        containers: Vec<String>,
    },
    /// Print the hash manifest of a container: everything its input hash covers, as JSON.
    #[command(after_help = EXIT_CODES_HELP)]
    Explain { container: String },
    /// Write a container's deterministic build context (a tar) to a file, or `-` for stdout.
    #[command(after_help = EXIT_CODES_HELP)]
    Context {
        container: String,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Build, tag and push every container whose image does not exist yet, bottom-up; write
    /// cookbook.lock.
    #[command(after_help = EXIT_CODES_HELP)]
    Apply(apply::ApplyArgs),
    /// Explain why a hash changed: compare two `explain` documents.
    #[command(
        after_help = "Exit codes:\n  0  the two manifests are identical\n  1  they differ (each difference is printed)\n  2  invalid input"
    )]
    Diff { a: PathBuf, b: PathBuf },
    /// Pull the master cookbook from git and keep this site on its last good revision.
    Sync(sync::SyncArgs),
    /// Check cookbook.lock (and the registry) against what the sources produce, and say why not.
    Verify(verify::VerifyArgs),
    /// Look at a project and print (or --write) a cookbook for it, with Dockerfiles where needed.
    #[command(after_help = EXIT_CODES_HELP)]
    Init(init::InitArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
}

/// Runs the CLI with the process's arguments and streams; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => crate::error::EXIT_INVALID,
            };
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(cli, &mut stdout.lock(), &mut stderr.lock())
}

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match execute(&cli, out, err) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            report(&e, err);
            e.exit_code()
        }
    }
}

fn report(e: &Error, err: &mut dyn Write) {
    match e {
        Error::Invalid { file, diagnostics } => {
            for d in diagnostics {
                let _ = writeln!(
                    err,
                    "{}",
                    Rendered {
                        file,
                        diagnostic: d
                    }
                );
            }
            let _ = writeln!(err, "error: {e}");
        }
        Error::Usage {
            help: Some(help), ..
        } => {
            let _ = writeln!(err, "error: {e}\n  help: {help}");
        }
        _ => {
            let _ = writeln!(err, "error: {e}");
        }
    }
}

/// Reads and checks a cookbook file.
pub fn load(path: &Path) -> Result<Cookbook, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Cookbook::parse(&bytes).map_err(|diagnostics| Error::Invalid {
        file: path.display().to_string(),
        diagnostics,
    })
}

/// The plan to act on: the whole cookbook's, or one site's portion.
pub fn site_plan(cookbook: &Cookbook, site: Option<&str>) -> Result<Plan, Error> {
    let Some(site) = site else {
        return Ok(cookbook.plan.clone());
    };
    match cookbook.sites.get(site) {
        Some(s) => Ok(cookbook.plan.restrict(&s.containers)),
        None => Err(Error::Usage {
            message: format!("unknown site `{site}`"),
            help: Some(if cookbook.sites.is_empty() {
                "this cookbook has no federation sites".to_owned()
            } else {
                format!(
                    "sites in this cookbook: {}",
                    cookbook
                        .sites
                        .keys()
                        .map(Name::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        }),
    }
}

/// The directory the cookbook's relative paths start from.
pub fn base_dir(file: &Path) -> &Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Resolves container names given on the command line, with a suggestion for a typo.
pub fn containers_named(cookbook: &Cookbook, names: &[String]) -> Result<Vec<Name>, Error> {
    names
        .iter()
        .map(|n| match cookbook.containers.get_key_value(n.as_str()) {
            Some((name, _)) => Ok(name.clone()),
            None => Err(Error::Usage {
                message: format!("unknown container `{n}`"),
                help: Some(format!(
                    "containers in this cookbook: {}",
                    cookbook
                        .containers
                        .keys()
                        .map(Name::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }),
        })
        .collect()
}

/// Fingerprints the containers of `plan`, through the state directory's stat cache.
pub fn fingerprints(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
) -> Result<BTreeMap<Name, Fingerprint>, Error> {
    let mut cache = StatCache::load(&state::dir_for(file), base_dir(file));
    let prints = hash::fingerprint_plan(cookbook, plan, base_dir(file), &cache)?;
    // The cache only saves time: failing to write it is not worth failing the command for.
    let _ = cache.save();
    Ok(prints)
}

fn read_manifest(path: &Path) -> Result<HashManifest, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage {
        message: format!(
            "{}:{}:{}: not a hash manifest: {e}",
            path.display(),
            e.line(),
            e.column()
        ),
        help: Some("produce one with `cookbook explain CONTAINER > FILE`".to_owned()),
    })
}

fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    match &cli.command {
        Command::Hash { format, containers } => {
            let cookbook = load(&cli.file)?;
            let wanted = containers_named(&cookbook, containers)?;
            let plan = if wanted.is_empty() {
                cookbook.plan.clone()
            } else {
                cookbook.plan.restrict(&wanted)
            };
            let prints = fingerprints(&cli.file, &cookbook, &plan)?;
            let shown: Vec<&Name> = if wanted.is_empty() {
                prints.keys().collect()
            } else {
                wanted.iter().collect()
            };
            match format {
                Format::Text => {
                    for name in shown {
                        let _ = writeln!(out, "{}  {name}", prints[name].input_hash());
                    }
                }
                Format::Json => {
                    let map: BTreeMap<&str, &str> = shown
                        .iter()
                        .map(|n| (n.as_str(), prints[*n].input_hash()))
                        .collect();
                    let doc = serde_json::json!({ "hash_version": hash::HASH_VERSION, "input_hashes": map });
                    let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
                }
            }
            // The process exits next: freeing one allocation per file (100,000s of them) one by
            // one was a tenth of a warm run's time.
            std::mem::forget(prints);
            Ok(())
        }
        Command::Explain { container } => {
            let cookbook = load(&cli.file)?;
            let name = containers_named(&cookbook, std::slice::from_ref(container))?.remove(0);
            let prints = fingerprints(&cli.file, &cookbook, &cookbook.plan.restrict([&name]))?;
            let _ = out.write_all(prints[&name].manifest().to_pretty_json().as_bytes());
            Ok(())
        }
        Command::Context { container, output } => {
            let cookbook = load(&cli.file)?;
            let name = containers_named(&cookbook, std::slice::from_ref(container))?.remove(0);
            let prints = fingerprints(&cli.file, &cookbook, &cookbook.plan.restrict([&name]))?;
            let fp = &prints[&name];
            if output.as_os_str() == "-" {
                context::tar::write(&fp.entries, &fp.digests, std::io::BufWriter::new(&mut *out))?;
            } else {
                context::tar::write_file(&fp.entries, &fp.digests, output, true)?;
                let bytes: u64 = fp.entries.iter().map(|e| e.size).sum();
                let _ = writeln!(
                    err,
                    "wrote the context of {name} to {} ({} entries, {bytes} bytes of content, input hash {})",
                    output.display(),
                    fp.entries.len(),
                    fp.input_hash()
                );
            }
            Ok(())
        }
        Command::Apply(args) => apply::run(&cli.file, args, out),
        Command::Verify(args) => verify::run(&cli.file, args, out, err),
        Command::Diff { a, b } => {
            let (ma, mb) = (read_manifest(a)?, read_manifest(b)?);
            let changes = hash::diff(&ma, &mb);
            if changes.is_empty() {
                let _ = writeln!(out, "identical: {}", ma.input_hash);
                return Ok(());
            }
            let _ = writeln!(
                out,
                "{}: {} → {}",
                ma.container, ma.input_hash, mb.input_hash
            );
            for c in &changes {
                let _ = writeln!(out, "  {c}");
            }
            Err(Error::Failed(format!("{} difference(s)", changes.len())))
        }
        Command::Validate => {
            let cookbook = load(&cli.file)?;
            let _ = writeln!(
                err,
                "{}: ok (format {}, {} in {}, {}, {})",
                cli.file.display(),
                cookbook.manifest_version,
                count(cookbook.containers.len(), "container"),
                count(cookbook.plan.waves().len(), "wave"),
                count(cookbook.applications.len(), "application"),
                count(cookbook.sites.len(), "site")
            );
            Ok(())
        }
        Command::Plan { format, site } => {
            let cookbook = load(&cli.file)?;
            let plan = site_plan(&cookbook, site.as_deref())?;
            let text = match format {
                PlanFormat::Text => render_text(&plan),
                PlanFormat::Json => render_json(&plan),
                PlanFormat::Dot => render_dot(&plan),
            };
            let _ = out.write_all(text.as_bytes());
            Ok(())
        }
        Command::Sync(args) => sync::execute(args, out, err),
        Command::Init(args) => init::run(args, out, err),
    }
}

/// `1 container`, `2 containers`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
