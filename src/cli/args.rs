//! The command line's arguments: every command and its options, as clap declares them.
//!
//! The commands of the other families (`apply`, `update`, `verify`, the deploy commands, `sync`)
//! still declare their own argument structs beside their renderers; they move here with them.
//! What the dispatcher must know about a command before running it is [`Command::facts`], the one
//! match over every command.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

/// `-f/--file`, on the commands that read a cookbook.
#[derive(Debug, Clone, Default, Args)]
pub struct CookbookArg {
    /// The cookbook: a file, a directory holding cookbook.json, or `-` for standard input
    /// [default: cookbook.json in the current directory or its nearest parent that has one]
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
}

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
    #[command(after_help = super::apply::APPLY_HELP)]
    Apply {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::apply::ApplyArgs,
    },
    /// Re-resolve base images on purpose: move the pins in cookbook.lock of the bases these
    /// containers name (all without names); the next apply rebuilds what was built on a moved
    /// base, and its children.
    #[command(after_help = EXIT_CODES_HELP)]
    Update {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::update::UpdateArgs,
    },
    /// Explain why a hash changed: compare two `explain` documents, or the working tree with a
    /// git revision (`--rev`).
    #[command(
        after_help = "Exit codes:\n  0  no differences\n  1  differences (each is printed)\n  2  invalid input\n  3  an external service is unreachable"
    )]
    Diff(DiffArgs),
    /// Pull the master cookbook from git and keep this site on its last good revision.
    Sync(super::sync::SyncArgs),
    /// Check cookbook.lock (and the registry) against what the sources produce, and say why not.
    Verify {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::verify::VerifyArgs,
    },
    /// Run the images pinned in cookbook.lock on a site's engine for one stage, wave by wave
    /// bottom-up, each wave healthy before the next; unchanged containers are left running.
    #[command(after_help = super::deploy::DEPLOY_HELP)]
    Deploy {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::DeployArgs,
    },
    /// Deploy a recorded release of a stage again (default: the one before the current).
    #[command(after_help = EXIT_CODES_HELP)]
    Rollback {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::RollbackArgs,
    },
    /// List the releases recorded for a site, per stage (`*` marks the current one).
    #[command(after_help = EXIT_CODES_HELP)]
    Releases {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::ReleasesArgs,
    },
    /// Show each container of a stage as the site's engine runs it: state, health, restarts,
    /// uptime, and drift from the lock's image and the cookbook's runtime settings.
    #[command(after_help = EXIT_CODES_HELP)]
    Status {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::StatusArgs,
    },
    /// Record an approval for a stage of the release `promote` would carry there (or --release
    /// ID, or cookbook.lock's images with --lock): `manual` stages take a person's, `ci-approved`
    /// ones a CI job's (--ci), `automatic` ones none.
    #[command(after_help = EXIT_CODES_HELP)]
    Approve {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::ApproveArgs,
    },
    /// Deploy the images of a stage's current release to a later stage, if its rule is met.
    #[command(after_help = EXIT_CODES_HELP)]
    Promote {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::PromoteArgs,
    },
    /// Print the Kubernetes objects a site's stage runs (Deployments by digest, Services, a
    /// Namespace when the site asks) as YAML or JSON, for deploying with other tools; the same
    /// cookbook and lock print the same bytes.
    #[command(after_help = EXIT_CODES_HELP)]
    Render {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: super::deploy::RenderArgs,
    },
    /// Ask a site's engine what it offers (`site detect`).
    Site {
        #[command(subcommand)]
        command: super::deploy::SiteCommand,
    },
    /// Rewrite the cookbook in a newer format version (default: the latest); prints the result,
    /// or replaces the file with --write. Input hashes do not change.
    #[command(after_help = EXIT_CODES_HELP)]
    Migrate {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: MigrateArgs,
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
    Init(InitArgs),
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

impl Format {
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// What the dispatcher knows about a command before running it.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The subcommand's name, for messages.
    pub name: &'static str,
    /// Whether the command reads a cookbook file (and so takes `-f`).
    pub reads_cookbook: bool,
    /// Whether `--format json` was asked for (then a failure is a JSON document on stdout too,
    /// so CI always has something structured to read).
    pub json: bool,
}

impl Command {
    /// The one place each command's facts are written down.
    pub fn facts(&self) -> Facts {
        use Command as C;
        let (name, reads_cookbook, json) = match self {
            C::Validate { format, .. } => ("validate", true, format.is_json()),
            C::Plan { format, .. } => ("plan", true, matches!(format, PlanFormat::Json)),
            C::Hash { format, .. } => ("hash", true, format.is_json()),
            // explain's output is a JSON document whatever is asked.
            C::Explain { .. } => ("explain", true, true),
            C::Context { format, .. } => ("context", true, format.is_json()),
            C::Apply { args, .. } => ("apply", true, args.format.is_json()),
            C::Update { args, .. } => ("update", true, args.format.is_json()),
            C::Diff(args) => ("diff", args.rev.is_some(), args.format.is_json()),
            C::Sync(args) => ("sync", false, args.json_output()),
            C::Verify { args, .. } => ("verify", true, args.format.is_json()),
            C::Deploy { args, .. } => ("deploy", true, args.format.is_json()),
            C::Rollback { args, .. } => ("rollback", true, args.format.is_json()),
            C::Releases { args, .. } => ("releases", true, args.format.is_json()),
            C::Status { args, .. } => ("status", true, args.format.is_json()),
            C::Approve { .. } => ("approve", true, false),
            C::Promote { args, .. } => ("promote", true, args.format.is_json()),
            C::Render { .. } => ("render", true, false),
            C::Site { command } => ("site", true, command.json_output()),
            C::Migrate { .. } => ("migrate", true, false),
            C::Schema { .. } => ("schema", false, false),
            C::Clean { .. } => ("clean", true, false),
            C::Completions { .. } => ("completions", false, false),
            C::Man => ("man", false, false),
            C::Init(args) => ("init", true, args.format.is_json()),
        };
        Facts {
            name,
            reads_cookbook,
            json,
        }
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub cookbook: CookbookArg,
    /// Compare the working tree with this git revision (a commit, branch or tag) instead of two
    /// files
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Two `explain` documents (`cookbook explain C > FILE`); with `--rev`, the containers to
    /// compare [default: all]
    #[arg(value_name = "FILE|CONTAINER")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The version to migrate to [default: the latest]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Replace the file instead of printing the result (refused for standard input)
    #[arg(long)]
    pub write: bool,
}
