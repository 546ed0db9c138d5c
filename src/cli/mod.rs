//! The command line: argument parsing, reading files, and all output.
//!
//! The library computes; this module is the only one that reads the cookbook file from disk and
//! writes to stdout/stderr. Errors become exit codes in exactly one place (`Error::exit_code`).

pub mod sync;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod apply;
mod deploy;
mod diff;
mod init;
mod interrupt;
pub mod locate;
mod migrate;
mod output;
mod update;
mod verify;

pub use locate::CookbookArg;

use std::collections::BTreeMap;

use crate::context;
use crate::diagnostic::Rendered;
use crate::error::{Error, EXIT_CODES_HELP, EXIT_OK};
use crate::graph::{render_dot, render_json, render_text, Plan};
use crate::hash::{self, Fingerprint};
use crate::load::Loaded;
use crate::model::{Cookbook, Name};

#[derive(Debug, Parser)]
#[command(name = "cookbook", version, about = "Declarative, reproducible container-image builds", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The cookbook: a file, a directory holding cookbook.json, or `-` for standard input
    /// (also accepted after the subcommand, on the commands that read one)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// When to colour diagnostics: `auto` colours a terminal unless NO_COLOR is set
    /// (CLICOLOR_FORCE forces it)
    #[arg(long, value_enum, global = true, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print only errors and the command's result: no progress or summary lines on stderr
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the cookbook: syntax, schema, references, cycles. Prints every problem found.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// Output format: `json` prints one document with every problem
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the build and deploy plan: waves of containers, dependencies first.
    #[command(after_help = EXIT_CODES_HELP)]
    Plan {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// Output format: text, json, or Graphviz dot
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Keep only this federation site's containers and everything they need.
        #[arg(long)]
        site: Option<String>,
    },
    /// Print each container's input hash (all containers, or the ones named).
    #[command(after_help = EXIT_CODES_HELP)]
    Hash {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Containers to hash [default: all]
        #[arg(value_name = "CONTAINER")]
        containers: Vec<String>,
    },
    /// Print the hash manifest of a container: everything its input hash covers, as JSON.
    #[command(after_help = EXIT_CODES_HELP)]
    Explain {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// The container to explain
        container: String,
    },
    /// Write a container's deterministic build context (a tar) to a file, or `-` for stdout.
    #[command(after_help = EXIT_CODES_HELP)]
    Context {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// The container whose context to write
        container: String,
        /// Where to write the tar: a file, a directory (the tar is named CONTAINER.tar in it), or
        /// `-` for standard output (refused on a terminal)
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: PathBuf,
        /// `json`: a summary document on stdout (not with `-o -`, where stdout is the tar)
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Build, tag and push every container whose image does not exist yet, bottom-up; write
    /// cookbook.lock.
    #[command(after_help = apply::APPLY_HELP)]
    Apply {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: apply::ApplyArgs,
    },
    /// Re-resolve base images on purpose: move the pins in cookbook.lock of the bases these
    /// containers name (all without names); the next apply rebuilds what was built on a moved
    /// base, and its children.
    #[command(after_help = EXIT_CODES_HELP)]
    Update {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: update::UpdateArgs,
    },
    /// Explain why a hash changed: compare two `explain` documents, or the working tree with a
    /// git revision (`--rev`).
    #[command(
        after_help = "Exit codes:\n  0  no differences\n  1  differences (each is printed)\n  2  invalid input\n  3  an external service is unreachable"
    )]
    Diff(diff::DiffArgs),
    /// Pull the master cookbook from git and keep this site on its last good revision.
    Sync(sync::SyncArgs),
    /// Check cookbook.lock (and the registry) against what the sources produce, and say why not.
    Verify {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: verify::VerifyArgs,
    },
    /// Run the images pinned in cookbook.lock on a site's engine for one stage, wave by wave
    /// bottom-up, each wave healthy before the next; unchanged containers are left running.
    #[command(after_help = deploy::DEPLOY_HELP)]
    Deploy {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::DeployArgs,
    },
    /// Deploy a recorded release of a stage again (default: the one before the current).
    #[command(after_help = EXIT_CODES_HELP)]
    Rollback {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::RollbackArgs,
    },
    /// List the releases recorded for a site, per stage (`*` marks the current one).
    #[command(after_help = EXIT_CODES_HELP)]
    Releases {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::ReleasesArgs,
    },
    /// Show each container of a stage as the site's engine runs it: state, health, restarts,
    /// uptime, and drift from the lock's image and the cookbook's runtime settings.
    #[command(after_help = EXIT_CODES_HELP)]
    Status {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::StatusArgs,
    },
    /// Record an approval for a stage of the release `promote` would carry there (or --release
    /// ID, or cookbook.lock's images with --lock): `manual` stages take a person's, `ci-approved`
    /// ones a CI job's (--ci), `automatic` ones none.
    #[command(after_help = EXIT_CODES_HELP)]
    Approve {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::ApproveArgs,
    },
    /// Deploy the images of a stage's current release to a later stage, if its rule is met.
    #[command(after_help = EXIT_CODES_HELP)]
    Promote {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::PromoteArgs,
    },
    /// Print the Kubernetes objects a site's stage runs (Deployments by digest, Services, a
    /// Namespace when the site asks) as YAML or JSON, for deploying with other tools; the same
    /// cookbook and lock print the same bytes.
    #[command(after_help = EXIT_CODES_HELP)]
    Render {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: deploy::RenderArgs,
    },
    /// Ask a site's engine what it offers (`site detect`).
    Site {
        #[command(subcommand)]
        command: deploy::SiteCommand,
    },
    /// Rewrite the cookbook in a newer format version (default: the latest); prints the result,
    /// or replaces the file with --write. Input hashes do not change.
    #[command(after_help = EXIT_CODES_HELP)]
    Migrate {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: migrate::MigrateArgs,
    },
    /// Print the JSON Schema of a cookbook format version (the one bundled in this binary).
    Schema {
        /// The format version [default: the latest]
        #[arg(long = "version", value_name = "VERSION")]
        format_version: Option<String>,
    },
    /// Remove the state directory (stat cache, saved explain documents, left-over temporary
    /// files). Nothing in it changes a hash, a plan or an image.
    Clean {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `cookbook man | man -l -`.
    Man,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
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
    let choice = match cli.color {
        // anstream's auto mode reads NO_COLOR, CLICOLOR_FORCE and whether stderr is a terminal.
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    };
    let stdout = std::io::stdout();
    let mut err = anstream::AutoStream::new(std::io::stderr().lock(), choice);
    run(cli, &mut stdout.lock(), &mut err)
}

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let quiet = cli.quiet;
    let mut info_sink = std::io::sink();
    let info: &mut dyn Write = if quiet { &mut info_sink } else { &mut *err };
    let mut counted = Counted {
        inner: out,
        bytes: 0,
    };
    let result = execute(&cli, &mut counted, info);
    let out = counted.inner;
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            // `info` borrowed `err` mutably only for the call above.
            report(&e, err);
            // One document on stdout: when the command already printed its own (apply's summary
            // after a failed run, verify's report of a mismatch, diff's differences), that is it.
            if cli.command.json_output() && counted.bytes == 0 {
                let _ = out.write_all(output::error_document(&e).as_bytes());
            }
            e.exit_code()
        }
    }
}

/// Counts what a command wrote to stdout.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    bytes: usize,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Command {
    /// Whether the command reads a cookbook file (and so takes `-f`).
    fn reads_cookbook(&self) -> bool {
        match self {
            Command::Diff(args) => args.rev.is_some(),
            Command::Sync(_)
            | Command::Schema { .. }
            | Command::Completions { .. }
            | Command::Man => false,
            _ => true,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Command::Validate { .. } => "validate",
            Command::Plan { .. } => "plan",
            Command::Hash { .. } => "hash",
            Command::Explain { .. } => "explain",
            Command::Context { .. } => "context",
            Command::Apply { .. } => "apply",
            Command::Update { .. } => "update",
            Command::Diff(_) => "diff",
            Command::Sync(_) => "sync",
            Command::Verify { .. } => "verify",
            Command::Migrate { .. } => "migrate",
            Command::Deploy { .. } => "deploy",
            Command::Render { .. } => "render",
            Command::Approve { .. } => "approve",
            Command::Promote { .. } => "promote",
            Command::Site { .. } => "site",
            Command::Status { .. } => "status",
            Command::Rollback { .. } => "rollback",
            Command::Releases { .. } => "releases",
            Command::Schema { .. } => "schema",
            Command::Clean { .. } => "clean",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
            Command::Init(_) => "init",
        }
    }

    /// Whether the command was asked for `--format json` (then a failure is a JSON document on
    /// stdout too, so CI always has something structured to read).
    fn json_output(&self) -> bool {
        match self {
            Command::Validate { format, .. } | Command::Hash { format, .. } => {
                *format == Format::Json
            }
            Command::Plan { format, .. } => matches!(format, PlanFormat::Json),
            Command::Apply { args, .. } => args.format == Format::Json,
            Command::Update { args, .. } => args.format == Format::Json,
            Command::Verify { args, .. } => args.format == Format::Json,
            Command::Deploy { args, .. } => args.format == Format::Json,
            Command::Site { command } => command.json_output(),
            Command::Promote { args, .. } => args.format == Format::Json,
            Command::Status { args, .. } => args.format == Format::Json,
            Command::Rollback { args, .. } => args.format == Format::Json,
            Command::Releases { args, .. } => args.format == Format::Json,
            Command::Diff(args) => args.format == Format::Json,
            Command::Init(args) => args.format == Format::Json,
            Command::Sync(args) => args.json_output(),
            Command::Explain { .. } => true,
            Command::Context { format, .. } => *format == Format::Json,
            Command::Approve { .. }
            | Command::Render { .. }
            | Command::Migrate { .. }
            | Command::Schema { .. }
            | Command::Clean { .. }
            | Command::Completions { .. }
            | Command::Man => false,
        }
    }
}

fn report(e: &Error, err: &mut dyn Write) {
    let error = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    match e {
        Error::Invalid { file, diagnostics } => {
            for d in diagnostics {
                let _ = writeln!(
                    err,
                    "{}",
                    output::styled_diagnostic(&Rendered {
                        file,
                        diagnostic: d
                    })
                );
            }
            let _ = writeln!(err, "{error}error{error:#}: {e}");
        }
        // The output already said everything (`diff` found differences).
        Error::Differences(_) => {}
        Error::Usage {
            help: Some(help), ..
        } => {
            let _ = writeln!(err, "{error}error{error:#}: {e}\n  help: {help}");
        }
        _ => {
            let _ = writeln!(err, "{error}error{error:#}: {e}");
        }
    }
    if let Some(cause) = root_cause(e) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
}

/// The innermost cause of `e`, in its own words, when the message does not already say it: the
/// library's message says what happened and what to check; this keeps what the system, git or
/// the HTTP stack said underneath (`Connection refused (os error 111)`). git2's class and code
/// numbers are left out: they mean nothing to a user.
fn root_cause(e: &Error) -> Option<String> {
    let mut cause: &dyn std::error::Error = std::error::Error::source(e)?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = match cause.downcast_ref::<git2::Error>() {
        Some(g) => g.message().to_owned(),
        None => cause.to_string(),
    };
    (!text.is_empty() && !e.to_string().contains(&text)).then_some(text)
}

/// Reads and checks a cookbook file (the load stage: text and disk); warnings are dropped.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    load_labelled(path, locate::display_name(path))
}

/// Reads and checks a cookbook file (standard input when it is `-f -`'s stand-in), naming it
/// `label` in diagnostics.
pub fn load_labelled(path: &Path, label: String) -> Result<Loaded, Error> {
    load_labelled_as(path, label, None)
}

/// [`load_labelled`] with `directory` standing for the name of the cookbook's directory (see
/// `load::load_file_as`): a revision checked out in a temporary directory is named after the
/// working copy's.
pub fn load_labelled_as(
    path: &Path,
    label: String,
    directory: Option<&str>,
) -> Result<Loaded, Error> {
    crate::ops::CookbookFile {
        bytes: locate::stdin_bytes(path),
        path: path.to_path_buf(),
        label,
    }
    .load_as(directory)
}

/// Reads and checks a cookbook file, and prints its warnings to `err`.
fn load_reporting(path: &Path, err: &mut dyn Write) -> Result<Loaded, Error> {
    let file = locate::display_name(path);
    let loaded = load_labelled(path, file.clone())?;
    for d in &loaded.warnings {
        let _ = writeln!(
            err,
            "{}",
            output::styled_diagnostic(&Rendered {
                file: &file,
                diagnostic: d
            })
        );
    }
    Ok(loaded)
}

/// The plan to act on: the whole cookbook's, or one site's portion.
pub fn site_plan(cookbook: &Cookbook, plan: &Plan, site: Option<&str>) -> Result<Plan, Error> {
    let Some(site) = site else {
        return Ok(plan.clone());
    };
    match cookbook.sites.get(site) {
        Some(s) => Ok(plan.restrict(&s.containers)),
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
    crate::load::base_dir(file)
}

/// Resolves container names given on the command line, with a suggestion for a typo.
pub fn containers_named(cookbook: &Cookbook, names: &[String]) -> Result<Vec<Name>, Error> {
    names
        .iter()
        .map(|n| match cookbook.containers.get_key_value(n.as_str()) {
            Some((name, _)) => Ok(name.clone()),
            None => Err(Error::Usage {
                message: format!("unknown container `{n}`"),
                help: Some(if cookbook.containers.is_empty() {
                    "this cookbook has no containers".to_owned()
                } else {
                    format!(
                        "containers in this cookbook: {}",
                        cookbook
                            .containers
                            .keys()
                            .map(Name::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
            }),
        })
        .collect()
}

/// Fingerprints the containers of `plan`, through the state directory's stat cache, with the
/// base-image pins of the lock beside `file` (offline: a base not pinned yet hashes as such).
pub fn fingerprints(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
) -> Result<BTreeMap<Name, Fingerprint>, Error> {
    let pins = locked_pins(file, cookbook)?;
    fingerprints_pinned(file, cookbook, plan, hash::Pinning::current(&pins))
}

/// [`fingerprints`] under a given hash version and pins.
pub fn fingerprints_pinned(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    pinning: hash::Pinning<'_>,
) -> Result<BTreeMap<Name, Fingerprint>, Error> {
    Ok(crate::load::fingerprints(file, cookbook, plan, pinning)?)
}

/// The base-image pins recorded in the lock beside `file`: none without a lock (or for a
/// cookbook read from standard input). A lock that is not valid, or another project's, is
/// refused (exit 2, every problem located), as by every command that reads it: its pins would
/// be written into the Dockerfiles this hashes and sends.
pub fn locked_pins(file: &Path, cookbook: &Cookbook) -> Result<hash::BasePins, Error> {
    if locate::stdin_bytes(file).is_some() {
        return Ok(hash::BasePins::new());
    }
    let path = crate::state::lock::Lock::path_for(file);
    let lock = crate::state::lock::Lock::read_for(&path, &cookbook.project.name)?;
    Ok(lock.map(|l| l.bases).unwrap_or_default())
}

/// How each external base of `plan` is pinned, for stderr: `base REF (containers): sha256:…
/// (registry)`, or `… not pinned yet: apply pins it`.
fn base_notes(cookbook: &Cookbook, plan: &Plan, pins: &hash::BasePins) -> Vec<String> {
    crate::apply::pin::external_bases(cookbook, plan)
        .into_iter()
        .map(|(reference, containers)| {
            let names: Vec<&str> = containers.iter().map(Name::as_str).collect();
            let state = match pins.get(reference) {
                Some(pin) => format!("pinned to {} ({})", pin.digest, pin.source.as_str()),
                None => "not pinned yet: apply pins it".to_owned(),
            };
            format!("base {reference} ({}): {state}", names.join(", "))
        })
        .collect()
}

/// The same for `--format json`: reference → `{"pinned": {"digest", "source"} | null,
/// "containers": [..]}`.
fn bases_json(cookbook: &Cookbook, plan: &Plan, pins: &hash::BasePins) -> serde_json::Value {
    crate::apply::pin::external_bases(cookbook, plan)
        .into_iter()
        .map(|(reference, containers)| {
            (
                reference.to_string(),
                serde_json::json!({ "pinned": pins.get(reference), "containers": containers }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    if cli.file.is_some() && !cli.command.reads_cookbook() {
        return Err(Error::Usage {
            message: format!(
                "`cookbook {}` does not read a cookbook file: -f/--file has no effect here",
                cli.command.name()
            ),
            help: Some(match &cli.command {
                Command::Sync(_) => {
                    "sync takes the cookbook from the remote: name it with --path".to_owned()
                }
                _ => "remove -f".to_owned(),
            }),
        });
    }
    match &cli.command {
        Command::Hash {
            cookbook,
            format,
            containers,
        } => hash_command(cookbook, cli.file.as_deref(), *format, containers, out, err),
        Command::Explain {
            cookbook,
            container,
        } => {
            let file = cookbook.resolve(cli.file.as_deref())?;
            let Loaded { cookbook, plan, .. } = load_reporting(&file, err)?;
            let name = containers_named(&cookbook, std::slice::from_ref(container))?.remove(0);
            let plan = plan.restrict([&name]);
            let pins = locked_pins(&file, &cookbook)?;
            let prints =
                fingerprints_pinned(&file, &cookbook, &plan, hash::Pinning::current(&pins))?;
            let _ = out.write_all(prints[&name].manifest().to_pretty_json().as_bytes());
            if let Some((reference, None)) = &prints[&name].external_base {
                let _ = writeln!(
                    err,
                    "note: base {reference} of {name} is not pinned yet: apply pins it (and this \
                     hash changes then)"
                );
            }
            Ok(())
        }
        Command::Context {
            cookbook,
            container,
            output,
            format,
        } => context_command(
            cookbook,
            cli.file.as_deref(),
            container,
            output,
            *format,
            out,
            err,
        ),
        Command::Apply { cookbook, args } => apply::run(
            &cookbook.resolve(cli.file.as_deref())?,
            args,
            cli.quiet,
            out,
            err,
        ),
        Command::Verify { cookbook, args } => {
            verify::run(&cookbook.resolve(cli.file.as_deref())?, args, out, err)
        }
        Command::Update { cookbook, args } => {
            update::run(&cookbook.resolve(cli.file.as_deref())?, args, out, err)
        }
        Command::Diff(args) => diff::run(args, cli.file.as_deref(), out),
        Command::Validate { cookbook, format } => {
            validate_command(cookbook, cli.file.as_deref(), *format, out, err)
        }
        Command::Plan {
            cookbook,
            format,
            site,
        } => {
            let file = cookbook.resolve(cli.file.as_deref())?;
            let Loaded { cookbook, plan, .. } = load_reporting(&file, err)?;
            let plan = site_plan(&cookbook, &plan, site.as_deref())?;
            let pins = locked_pins(&file, &cookbook)?;
            let text = match format {
                PlanFormat::Text => render_text(&plan),
                PlanFormat::Json => {
                    let mut doc: serde_json::Value =
                        serde_json::from_str(&render_json(&plan)).expect("render_json is JSON");
                    doc["bases"] = bases_json(&cookbook, &plan, &pins);
                    let mut s = serde_json::to_string_pretty(&doc).expect("JSON");
                    s.push('\n');
                    s
                }
                PlanFormat::Dot => render_dot(&plan),
            };
            let _ = out.write_all(text.as_bytes());
            if matches!(format, PlanFormat::Text) {
                for note in base_notes(&cookbook, &plan, &pins) {
                    let _ = writeln!(err, "{note}");
                }
            }
            Ok(())
        }
        Command::Sync(args) => sync::execute(args, out, err),
        Command::Deploy { cookbook, args } => {
            deploy::run(&cookbook.resolve(cli.file.as_deref())?, args, out, err)
        }
        Command::Render { cookbook, args } => {
            deploy::render(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Promote { cookbook, args } => {
            deploy::promote(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Approve { cookbook, args } => {
            deploy::approve(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Site { command } => deploy::site(command, cli.file.as_deref(), out),
        Command::Status { cookbook, args } => {
            deploy::status(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Rollback { cookbook, args } => {
            deploy::rollback(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Releases { cookbook, args } => {
            deploy::releases(&cookbook.resolve(cli.file.as_deref())?, args, out)
        }
        Command::Migrate { cookbook, args } => {
            migrate::run(&cookbook.resolve(cli.file.as_deref())?, args, out, err)
        }
        Command::Schema { format_version } => {
            let _ = out.write_all(output::schema(format_version.as_deref())?.as_bytes());
            Ok(())
        }
        Command::Clean { cookbook, dry_run } => {
            output::clean(&cookbook.resolve(cli.file.as_deref())?, *dry_run, err)
        }
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "cookbook", &mut script);
            let _ = out.write_all(&script);
            Ok(())
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .expect("rendering into memory cannot fail");
            let _ = out.write_all(&page);
            Ok(())
        }
        Command::Init(args) => init::run(args, out, err),
    }
}

fn hash_command(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    format: Format,
    containers: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let file = cookbook.resolve(top)?;
    let Loaded { cookbook, plan, .. } = load_reporting(&file, err)?;
    let wanted = containers_named(&cookbook, containers)?;
    let plan = if wanted.is_empty() {
        plan.clone()
    } else {
        plan.restrict(&wanted)
    };
    let pins = locked_pins(&file, &cookbook)?;
    let prints = fingerprints_pinned(&file, &cookbook, &plan, hash::Pinning::current(&pins))?;
    // Each container once, in the order first named (`hash api api` prints api once).
    let mut seen = std::collections::BTreeSet::new();
    let shown: Vec<&Name> = if wanted.is_empty() {
        prints.keys().collect()
    } else {
        wanted.iter().filter(|n| seen.insert(*n)).collect()
    };
    match format {
        Format::Text => {
            for name in &shown {
                let _ = writeln!(out, "{}  {name}", prints[*name].input_hash());
            }
            let unpinned: Vec<&str> = shown
                .iter()
                .filter(|n| matches!(prints[**n].external_base, Some((_, None))))
                .map(|n| n.as_str())
                .collect();
            if !unpinned.is_empty() {
                let _ = writeln!(
                    err,
                    "note: the base images of {} are not pinned yet: apply pins them (and their \
                     hashes change then)",
                    unpinned.join(", ")
                );
            }
        }
        Format::Json => {
            let map: BTreeMap<&str, &str> = shown
                .iter()
                .map(|n| (n.as_str(), prints[*n].input_hash()))
                .collect();
            let unpinned: BTreeMap<&str, &str> = shown
                .iter()
                .filter_map(|n| match &prints[*n].external_base {
                    Some((reference, None)) => Some((n.as_str(), reference.as_str())),
                    _ => None,
                })
                .collect();
            let doc = serde_json::json!({
                "hash_version": hash::HASH_VERSION,
                "input_hashes": map,
                "not_pinned": unpinned,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    // The process exits next: freeing one allocation per file (100,000s of them) one by
    // one was a tenth of a warm run's time.
    std::mem::forget(prints);
    Ok(())
}

fn context_command(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    container: &String,
    output: &Path,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let file = cookbook.resolve(top)?;
    let to_stdout = output.as_os_str() == "-";
    if to_stdout && format == Format::Json {
        return Err(Error::Usage {
            message: "`--format json` needs `-o FILE`: with `-o -` standard output is the tar"
                .to_owned(),
            help: None,
        });
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Error::Usage {
            message: "refusing to write a tar archive to a terminal".to_owned(),
            help: Some(format!(
                "redirect it (`cookbook context {container} -o - > {container}.tar`) or \
                 name a file with `-o`"
            )),
        });
    }
    let Loaded { cookbook, plan, .. } = load_reporting(&file, err)?;
    let name = containers_named(&cookbook, std::slice::from_ref(container))?.remove(0);
    let output = if !to_stdout && output.is_dir() {
        output.join(format!("{name}.tar"))
    } else {
        output.to_path_buf()
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !to_stdout && !parent.is_dir() {
            return Err(Error::Usage {
                message: format!(
                    "cannot write {}: {}",
                    output.display(),
                    if parent.exists() {
                        format!("{} is not a directory", parent.display())
                    } else {
                        format!("the directory {} does not exist", parent.display())
                    }
                ),
                help: Some("create it first, or name an existing directory".to_owned()),
            });
        }
    }
    let prints = fingerprints(&file, &cookbook, &plan.restrict([&name]))?;
    let fp = &prints[&name];
    if to_stdout {
        context::tar::write(&fp.entries, &fp.digests, std::io::BufWriter::new(&mut *out))?;
    } else {
        context::tar::write_file(&fp.entries, &fp.digests, &output, true)?;
        let bytes: u64 = fp.entries.iter().map(|e| e.size).sum();
        let _ = writeln!(
            err,
            "wrote the context of {name} to {} ({} entries, {bytes} bytes of content, input hash {})",
            output.display(),
            fp.entries.len(),
            fp.input_hash()
        );
        if format == Format::Json {
            let doc = serde_json::json!({
                "container": name.as_str(),
                "output": output.display().to_string(),
                "entries": fp.entries.len(),
                "bytes": bytes,
                "input_hash": fp.input_hash(),
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}

fn validate_command(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let file = cookbook.resolve(top)?;
    let Loaded { cookbook, plan, .. } = load_reporting(&file, err)?;
    match format {
        Format::Text => {
            let _ = writeln!(
                err,
                "{}: ok (format {}, {} in {}, {}, {})",
                locate::display_name(&file),
                cookbook.manifest_version,
                count(cookbook.containers.len(), "container"),
                count(plan.waves().len(), "wave"),
                count(cookbook.applications.len(), "application"),
                count(cookbook.sites.len(), "site")
            );
        }
        Format::Json => {
            let doc = serde_json::json!({
                "result": "ok",
                "file": locate::display_name(&file),
                "manifest_version": cookbook.manifest_version.to_string(),
                "containers": cookbook.containers.len(),
                "waves": plan.waves().len(),
                "applications": cookbook.applications.len(),
                "sites": cookbook.sites.len(),
                "errors": [],
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    Ok(())
}

/// `1 container`, `2 containers`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
