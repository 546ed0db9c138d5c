//! The command line: argument parsing, reading files, and all output.
//!
//! The library computes; this module is the only one that reads the cookbook file from disk and
//! writes to stdout/stderr. Errors become exit codes in exactly one place (`Error::exit_code`).

pub mod sync;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostic::Rendered;
use crate::error::{Error, EXIT_CODES_HELP, EXIT_OK};
use crate::graph::{render_dot, render_json, render_text, Plan};
use crate::model::{Cookbook, Name};

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
    /// Pull the master cookbook from git and keep this site on its last good revision.
    Sync(sync::SyncArgs),
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

fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    match &cli.command {
        Command::Validate => {
            let cookbook = load(&cli.file)?;
            let _ = writeln!(
                err,
                "{}: ok (format {}, {} containers in {} waves, {} applications, {} sites)",
                cli.file.display(),
                cookbook.manifest_version,
                cookbook.containers.len(),
                cookbook.plan.waves().len(),
                cookbook.applications.len(),
                cookbook.sites.len()
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
    }
}
