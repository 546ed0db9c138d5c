//! The command line's arguments: every command and its options, as clap declares them.
//!
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
        /// Output format: `json` prints one document with every problem; `github` one GitHub
        /// Actions annotation per problem, on its line (docs/CI.md)
        #[arg(long, value_enum, default_value_t = CiFormat::Text)]
        format: CiFormat,
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
        /// Fail (exit 2) when a container's context holds files git ignores that .dockerignore
        /// does not exclude (they differ between machines), instead of warning: for CI
        #[arg(long)]
        strict: bool,
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
        /// Fail (exit 2) when a container's context holds files git ignores that .dockerignore
        /// does not exclude (they differ between machines), instead of warning: for CI
        #[arg(long)]
        strict: bool,
    },
    /// Print the hash manifest of a container: everything its input hash covers, as JSON.
    #[command(after_help = EXIT_CODES_HELP)]
    Explain {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// The container to explain
        container: String,
    },
    /// Print the SBOM of a container's image (SPDX 2.3 JSON): its own layers' files, its base,
    /// the packages its applications pin. Read from the local engine (the image cookbook.lock
    /// names), no registry needed; the same image prints the same bytes.
    #[command(after_help = EXIT_CODES_HELP)]
    Sbom {
        #[command(flatten)]
        cookbook: CookbookArg,
        /// The container whose image to describe
        container: String,
        #[command(flatten)]
        engine: EngineArgs,
        /// The document's format (SPDX 2.3 JSON is the only one)
        #[arg(long, value_enum, default_value = "json")]
        format: SbomFormat,
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
    #[command(after_help = APPLY_HELP)]
    Apply {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: ApplyArgs,
    },
    /// Re-resolve base images on purpose: move the pins in cookbook.lock of the bases these
    /// containers name (all without names); the next apply rebuilds what was built on a moved
    /// base, and its children.
    #[command(after_help = EXIT_CODES_HELP)]
    Update {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: UpdateArgs,
    },
    /// Explain why a hash changed: compare two `explain` documents, or the working tree with a
    /// git revision (`--rev`).
    #[command(
        after_help = "Exit codes:\n  0  no differences\n  1  differences (each is printed)\n  2  invalid input\n  3  an external service is unreachable"
    )]
    Diff(DiffArgs),
    /// Pull the master cookbook from git and keep this site on its last good revision.
    Sync(SyncArgs),
    /// Run a site's sync → apply → deploy rounds as a service: on an interval, on a git
    /// webhook, with metrics, a status API and a dashboard (docs/AGENT.md).
    #[command(after_help = AGENT_HELP)]
    Agent(AgentArgs),
    /// Check cookbook.lock (and the registry) against what the sources produce, and say why not.
    Verify {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: VerifyArgs,
    },
    /// Run the images pinned in cookbook.lock on a site's engine for one stage, wave by wave
    /// bottom-up, each wave healthy before the next; unchanged containers are left running.
    #[command(after_help = DEPLOY_HELP)]
    Deploy {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: DeployArgs,
    },
    /// Deploy a recorded release of a stage again (default: the one before the current).
    #[command(after_help = EXIT_CODES_HELP)]
    Rollback {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: RollbackArgs,
    },
    /// List the releases recorded for a site, per stage (`*` marks the current one).
    #[command(after_help = EXIT_CODES_HELP)]
    Releases {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: ReleasesArgs,
    },
    /// Print the logs of a stage's containers, each line prefixed with its container (`api |`,
    /// a pod member as `api/proxy |`); stderr lines go to stderr. --follow streams until Ctrl-C
    /// and picks up containers a redeploy replaces.
    #[command(after_help = EXIT_CODES_HELP)]
    Logs {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: LogsArgs,
    },
    /// The developer loop: build and deploy a stage, then watch its containers' sources,
    /// rebuild and redeploy only what an edit moved, and stream the logs, until Ctrl-C (which
    /// leaves the stage running; --down tears it down).
    #[command(after_help = EXIT_CODES_HELP)]
    Dev {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: DevArgs,
    },
    /// Show each container of a stage as the site's engine runs it: state, health, restarts,
    /// uptime, and drift from the lock's image and the cookbook's runtime settings.
    #[command(after_help = EXIT_CODES_HELP)]
    Status {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: StatusArgs,
    },
    /// Tear a stage down, as `docker compose down`: remove every container (pod members too),
    /// network and scratch volume of the stage that carries its labels (never a namesake that
    /// does not), its persistent volumes only with --volumes. A second `down` changes nothing.
    #[command(after_help = EXIT_CODES_HELP)]
    Down {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: DownArgs,
    },
    /// Run a command in a running container of a stage, as `docker compose exec`: stdin, stdout
    /// and stderr attached (a TTY when stdin is a terminal, unless -T); the exit code is the
    /// command's. A pod member is `CONTAINER/MEMBER` (`api/proxy`).
    #[command(after_help = EXIT_CODES_HELP)]
    Exec {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: ExecArgs,
    },
    /// Record an approval for a stage of the release `promote` would carry there (or --release
    /// ID, or cookbook.lock's images with --lock): `manual` stages take a person's, `ci-approved`
    /// ones a CI job's (--ci), `automatic` ones none.
    #[command(after_help = EXIT_CODES_HELP)]
    Approve {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: ApproveArgs,
    },
    /// Print the event log (the audit trail): every deploy, promotion, rollback and approval, and
    /// each sync round, with when, where, which release and images, who, and how it ended.
    #[command(after_help = EXIT_CODES_HELP)]
    Events {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: EventsArgs,
    },
    /// Deploy the images of a stage's current release to a later stage, if its rule is met.
    #[command(after_help = EXIT_CODES_HELP)]
    Promote {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: PromoteArgs,
    },
    /// Print the Kubernetes objects a site's stage runs (Deployments by digest, Services, a
    /// Namespace when the site asks) as YAML or JSON, for deploying with other tools; the same
    /// cookbook and lock print the same bytes.
    #[command(after_help = EXIT_CODES_HELP)]
    Render {
        #[command(flatten)]
        cookbook: CookbookArg,
        #[command(flatten)]
        args: RenderArgs,
    },
    /// Ask a site's engine what it offers (`site detect`).
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Signing keys: generate a pair for `approve --signing-key`, print a key file's id.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Ask every site's agent for its status over mutual TLS: one table of site, stage, release,
    /// health and how far behind the master revision.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
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

/// `--format` of `validate`, `apply` and `verify`, the commands a CI job runs: also `github`,
/// GitHub Actions workflow commands on stdout (`cli::github`). A type of its own so that no
/// other command accepts `github`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiFormat {
    Text,
    Json,
    Github,
}

/// `sbom --format`: the document is JSON whatever is asked; a second format (CycloneDX) would
/// be a second value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomFormat {
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

impl CiFormat {
    pub fn is_json(self) -> bool {
        self == CiFormat::Json
    }

    /// What is printed besides the workflow commands: `github` keeps text mode's lines.
    pub fn plain(self) -> Format {
        match self {
            CiFormat::Json => Format::Json,
            CiFormat::Text | CiFormat::Github => Format::Text,
        }
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
    /// Whether `--format github` was asked for (validate, apply, verify): then stderr is
    /// [`super::github::Inert`].
    pub fn github(&self) -> bool {
        use Command as C;
        match self {
            C::Validate { format, .. } => *format == CiFormat::Github,
            C::Apply { args, .. } => args.format == CiFormat::Github,
            C::Verify { args, .. } => args.format == CiFormat::Github,
            _ => false,
        }
    }

    /// The one place each command's facts are written down.
    pub fn facts(&self) -> Facts {
        use Command as C;
        let (name, reads_cookbook, json) = match self {
            C::Validate { format, .. } => ("validate", true, format.is_json()),
            C::Plan { format, .. } => ("plan", true, matches!(format, PlanFormat::Json)),
            C::Hash { format, .. } => ("hash", true, format.is_json()),
            // explain's output is a JSON document whatever is asked.
            C::Explain { .. } => ("explain", true, true),
            // sbom's output is a JSON document whatever is asked.
            C::Sbom { .. } => ("sbom", true, true),
            C::Context { format, .. } => ("context", true, format.is_json()),
            C::Apply { args, .. } => ("apply", true, args.format.is_json()),
            C::Update { args, .. } => ("update", true, args.format.is_json()),
            C::Diff(args) => ("diff", args.rev.is_some(), args.format.is_json()),
            C::Sync(args) => ("sync", false, args.json_output()),
            C::Agent(_) => ("agent", false, false),
            C::Verify { args, .. } => ("verify", true, args.format.is_json()),
            C::Deploy { args, .. } => ("deploy", true, args.format.is_json()),
            C::Rollback { args, .. } => ("rollback", true, args.format.is_json()),
            C::Releases { args, .. } => ("releases", true, args.format.is_json()),
            C::Status { args, .. } => ("status", true, args.format.is_json()),
            C::Logs { .. } => ("logs", true, false),
            C::Dev { .. } => ("dev", true, false),
            C::Down { args, .. } => ("down", true, args.format.is_json()),
            C::Exec { .. } => ("exec", true, false),
            C::Approve { .. } => ("approve", true, false),
            C::Promote { args, .. } => ("promote", true, args.format.is_json()),
            C::Events { args, .. } => ("events", true, args.format.is_json()),
            C::Render { .. } => ("render", true, false),
            C::Site { command } => ("site", true, command.json_output()),
            C::Key { command } => ("key", false, command.json_output()),
            C::Fleet { command } => ("fleet", false, command.json_output()),
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
pub struct EventsArgs {
    /// Read the event log of this state directory (a `sync --state` or agent state directory)
    /// instead of the cookbook's (.cookbook/ beside it)
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Only events since then: how long ago (`30m`, `1h`, `2days`) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events of this kind (repeat for several)
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Vec<EventKindArg>,
    /// Only events of this site
    #[arg(long)]
    pub site: Option<String>,
    /// Only events of this stage
    #[arg(long)]
    pub stage: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `events --kind`: the event log's kinds, as the log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum EventKindArg {
    SyncRound,
    Apply,
    Deploy,
    Approval,
    Promotion,
    Rollback,
    Down,
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

// ---------------------------------------------------------------- apply

/// `apply --help`'s exit codes: the common ones (`crate::error`) and the two of a cancelled run.
pub const APPLY_HELP: &str = "Exit codes:
  0    success
  1    the work failed (a build, a push, a verification)
  2    invalid input (the cookbook, an argument, a path)
  3    an external service (Docker engine, registry, git remote) is unreachable
  130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: running builds are cancelled, temporary
       files removed, what completed is written to cookbook.lock, no mutable tag moves.
       A second signal exits at once.";

/// Which Docker engine a command talks to, as the docker CLI's `--context` chooses it.
#[derive(Debug, Clone, Args, Default)]
pub struct EngineArgs {
    /// The docker context to use (`docker context ls`), over DOCKER_HOST, DOCKER_CONTEXT and
    /// the current context [default: as the docker CLI chooses]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl EngineArgs {
    pub fn selector(&self) -> crate::ops::engine::Selector {
        match &self.context {
            Some(name) => crate::ops::engine::Selector::Context(name.clone()),
            None => crate::ops::engine::Selector::Environment,
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply only these containers and what they need (their parents and runtime dependencies)
    /// [default: all]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Apply only this federation site's containers (and what they need).
    #[arg(long)]
    pub site: Option<String>,
    /// Builds at once on each builder (a pool of N builders runs up to N × this) [default: the
    /// number of cores].
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Build and tag locally; push nothing (cache hits are looked up in the local engine).
    #[arg(long)]
    pub no_push: bool,
    /// After a failure, go on with containers that do not need the failed one.
    #[arg(long)]
    pub keep_going: bool,
    /// Take containers that cookbook.lock records as published, with the same input hash, as
    /// cached without asking the registry (it trusts that nobody deleted them there).
    #[arg(long, conflicts_with = "no_push")]
    pub trust_lock: bool,
    /// Sign a provenance statement and an SBOM of every published image with this private key
    /// (PKCS#8 PEM, mode 0600: `cookbook key generate`) and attach them to it in the registry
    /// (docs/SUPPLY-CHAIN.md); no effect with --no-push, which publishes nothing
    #[arg(long, value_name = "KEY", env = "COOKBOOK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Spread builds over these engines (repeat it): each a docker context's name or a host
    /// (`tcp://…` with DOCKER_TLS_VERIFY's files, `ssh://user@host`) [default:
    /// packaging.builders, else the one engine --context chooses]
    #[arg(long = "builder", value_name = "CONTEXT|HOST")]
    pub builders: Vec<String>,
    /// Output format: `github` adds GitHub Actions workflow commands on stdout (each build's
    /// output folded in a group, a failed build annotated on its Dockerfile or cookbook line)
    #[arg(long, value_enum, default_value_t = CiFormat::Text)]
    pub format: CiFormat,
    /// Say per container what apply would do (cached, or build; what it would push and tag),
    /// from the registry (or the engine with --no-push); build, push, tag and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print every build's output as it arrives, not only a failed build's.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Fail (exit 2, before anything is built) when a container's context holds files git
    /// ignores that .dockerignore does not exclude (they differ between machines), instead of
    /// warning: for CI
    #[arg(long)]
    pub strict: bool,
}

// ---------------------------------------------------------------- verify

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
    /// Also check each published image's attestations in the registry: a provenance statement
    /// and an SBOM signed by --key, about the locked digest, whose input hash, base pins and
    /// commit hold for these sources (docs/SUPPLY-CHAIN.md)
    #[arg(long, requires = "key", conflicts_with = "locked")]
    pub attestations: bool,
    /// The public key (PEM) attestations must be signed with
    #[arg(long, value_name = "PUB", requires = "attestations")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output format: `github` adds a GitHub Actions annotation per mismatch, on the
    /// container's line of the cookbook
    #[arg(long, value_enum, default_value_t = CiFormat::Text)]
    pub format: CiFormat,
    /// Also write a JUnit XML report to FILE (a test case per container and check), whatever
    /// the format: the test report every CI renders
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

// ---------------------------------------------------------------- update

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Re-resolve only the base images of these containers [default: every external base]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

// ---------------------------------------------------------------- deploy

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

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
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
    /// Refuse to run an image whose provenance and SBOM, signed by --key, do not verify
    /// (what `verify --attestations` checks); nothing is deployed then
    #[arg(long, requires = "key")]
    pub require_attestations: bool,
    /// The public key (PEM) the attestations must be signed with
    #[arg(long, value_name = "PUB", requires = "require_attestations")]
    pub key: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
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

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// `cookbook logs`'s arguments.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Only these containers (`api`, a replica `api-2`, a pod member `api/proxy`) [default: all]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Keep streaming until Ctrl-C (exit 0), following containers a redeploy replaces
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines of each container
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only lines since a duration back from now (`10m`) or an RFC 3339 time
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Show the engine's timestamp before each line
    #[arg(long)]
    pub timestamps: bool,
}

/// `cookbook dev`'s arguments.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The federation site (a Docker site)
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage to run
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// On Ctrl-C, remove the stage's containers, networks and scratch volumes
    #[arg(long)]
    pub down: bool,
    /// Do not stream the containers' logs (progress lines only)
    #[arg(long)]
    pub no_logs: bool,
}

/// `cookbook down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage to tear down
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Also remove the stage's persistent volumes (Kubernetes: its PersistentVolumeClaims)
    #[arg(long)]
    pub volumes: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cookbook exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The federation site
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// The stage
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Never allocate a TTY, even when stdin is a terminal
    #[arg(short = 'T', long = "no-tty")]
    pub no_tty: bool,
    /// Which replica of the container (from 1)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub index: u32,
    /// The cookbook's container, or a pod member as CONTAINER/MEMBER
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments (after `--` when they start with `-`)
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM, the
    /// file to list in `lifecycle.approvers`); prints both paths and the key's id.
    #[command(after_help = EXIT_CODES_HELP)]
    Generate {
        /// The signature algorithm
        #[arg(long, value_enum, default_value_t = KeyAlgorithmArg::EcdsaP256)]
        algorithm: KeyAlgorithmArg,
        /// The files' path without extension
        #[arg(
            short = 'o',
            long = "output",
            value_name = "PREFIX",
            default_value = "cookbook"
        )]
        output: PathBuf,
        /// Replace PREFIX.key and PREFIX.pub if they exist
        #[arg(long)]
        force: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the id of a key file, public or private: `sha256:` of its SubjectPublicKeyInfo
    /// (what `openssl pkey -pubin -outform DER | sha256sum` prints for the public key).
    #[command(after_help = EXIT_CODES_HELP)]
    Id {
        /// A PEM public key (SPKI) or private key (PKCS#8)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

impl KeyCommand {
    pub fn json_output(&self) -> bool {
        match self {
            KeyCommand::Generate { format, .. } | KeyCommand::Id { format, .. } => format.is_json(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Ask each site of the sites file for `GET /api/v1/status`, all at once, and print one row
    /// per site and stage; a site that does not answer is one row, `unreachable`, with its
    /// error on stderr.
    #[command(
        after_help = "Exit codes:\n  0  every site answered\n  2  invalid input (the sites file, a certificate or key file)\n  3  a site did not answer (no connection, TLS refused, an unusable answer)"
    )]
    Status {
        /// The sites file: {"sites": [{"name": N, "url": "https://host:port"}, …], "ca": F,
        /// "cert": F, "key": F} (paths relative to the file)
        #[arg(long, value_name = "FILE")]
        sites: PathBuf,
        /// The CA the agents' certificates chain to (the only one trusted) [default: the sites
        /// file's `ca`]
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The client certificate presented to the agents [default: the sites file's `cert`]
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// The client certificate's private key [default: the sites file's `key`]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

impl FleetCommand {
    pub fn json_output(&self) -> bool {
        match self {
            FleetCommand::Status { format, .. } => format.is_json(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithmArg {
    /// ECDSA on NIST P-256 with SHA-256
    EcdsaP256,
    /// Ed25519 (PureEdDSA)
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Print what a site's engine offers, in the vocabulary of `capabilities`: architecture,
    /// cores, memory, engine version, GPU. Without --site: the engine the docker CLI would use
    /// (DOCKER_HOST, the current context, or --context).
    #[command(after_help = crate::error::EXIT_CODES_HELP)]
    Detect {
        #[command(flatten)]
        cookbook: super::CookbookArg,
        /// The federation site whose target to ask (and whose declared capabilities to check)
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
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

#[derive(Debug, Args)]
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
    /// Sign the approval with this private key (PKCS#8 PEM, mode 0600: `cookbook key
    /// generate`); a stage with `lifecycle.approvers` takes only approvals signed by theirs
    #[arg(long, value_name = "KEY", env = "COOKBOOK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
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
    /// Refuse to run an image whose provenance and SBOM, signed by --key, do not verify
    /// (what `verify --attestations` checks); nothing is deployed then
    #[arg(long, requires = "key")]
    pub require_attestations: bool,
    /// The public key (PEM) the attestations must be signed with
    #[arg(long, value_name = "PUB", requires = "require_attestations")]
    pub key: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
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

// ---------------------------------------------------------------- sync

pub const SYNC_HELP: &str = "Exit codes:
  0  ok: the remote's revision taken, or nothing new
  1  the remote's revision was refused (invalid cookbook, force-push without --allow-force,
     not signed under --require-signed), its apply failed, another sync holds the state
     (without --wait), or the round could not finish (local I/O, a signal)
  2  invalid arguments, or the remote has no such branch
  3  the remote is unreachable (the state is left unchanged)";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = SYNC_HELP)]
pub struct SyncArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(subcommand)]
    pub action: Option<SyncAction>,

    /// The git remote holding the master cookbook: https, ssh, git:// or file URL, or a path.
    #[arg(long, env = "COOKBOOK_SYNC_REMOTE")]
    pub remote: Option<String>,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The cookbook file inside the repository.
    #[arg(long, default_value = "cookbook.json")]
    pub path: String,
    /// Keep only this federation site's portion of the cookbook.
    #[arg(long)]
    pub site: Option<String>,
    /// The state directory (current checkout, record, mirror, lock).
    #[arg(long, default_value = ".cookbook/sync")]
    pub state: PathBuf,
    /// Apply the site's portion after taking a revision.
    #[arg(long)]
    pub apply: bool,
    /// After a successful apply, deploy the site's stages (an `automatic` one, or one whose
    /// rule is met), inside the site's schedule windows only; needs --apply and --site.
    #[arg(long, requires_all = ["apply", "site"])]
    pub deploy: bool,
    /// With --apply: sign and attach a provenance statement and an SBOM to every image published
    /// (as `apply --signing-key`; docs/SUPPLY-CHAIN.md)
    #[arg(long, value_name = "KEY", env = "COOKBOOK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Run forever, one round every DURATION (e.g. `1h`, `15m`), until SIGTERM or SIGINT.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// The largest random delay added to each interval (default: a tenth of the interval).
    #[arg(long, value_parser = humantime::parse_duration, requires = "interval")]
    pub splay: Option<Duration>,
    /// Take a revision that rewrites the branch's history (logged in the state).
    #[arg(long)]
    pub allow_force: bool,
    /// Refuse a commit whose signature `git verify-commit` does not accept.
    #[arg(long)]
    pub require_signed: bool,
    /// When another sync holds the state, wait for it instead of exiting.
    #[arg(long)]
    pub wait: bool,
    /// Output: `json` prints one document per round on stdout (one line each with --interval);
    /// the log lines then go to stderr only
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

const AGENT_HELP: &str = "Serves (loopback unless --listen says otherwise):
  GET  /                 the dashboard
  GET  /api/v1/status    the site's status (JSON)
  GET  /metrics          Prometheus metrics
  GET  /healthz /readyz  liveness; ready once the first round has ended
  POST /hooks/git        GitHub (X-Hub-Signature-256) or GitLab (X-Gitlab-Token) push events
  GET  /fleet            with --peers: every peer's status, over mutual TLS

Exit codes:
  0    stopped by SIGTERM/SIGINT between rounds
  2    invalid arguments, a TLS or secret file that cannot be used, the address taken
  130  stopped by SIGINT during a round (the running apply was cancelled, a deploy rolled back)
  143  stopped by SIGTERM during a round (likewise)";

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The site this agent runs (its portion is built and its stages deployed).
    #[arg(long)]
    pub site: String,
    /// The git remote holding the master cookbook: https, ssh, git:// or file URL, or a path.
    #[arg(long, env = "COOKBOOK_SYNC_REMOTE")]
    pub remote: String,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The cookbook file inside the repository.
    #[arg(long, default_value = "cookbook.json")]
    pub path: String,
    /// The state directory (checkouts, record, mirror, release records, event log).
    #[arg(long, default_value = ".cookbook/agent")]
    pub state: PathBuf,
    /// Where to serve HTTP(S); loopback by default.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub listen: std::net::SocketAddr,
    /// One timed round every DURATION, besides the webhook's.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// The largest random delay added to each interval (default: a tenth of the interval).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub splay: Option<Duration>,
    /// The webhook's shared secret, in a file only its owner may read (else the variable
    /// COOKBOOK_WEBHOOK_SECRET; without either no webhook is served).
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM) …
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// … and its private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: only clients with a certificate this CA signed are served.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// The fleet view's sites file (`cookbook fleet status --sites`): served at /fleet.
    #[arg(long, value_name = "FILE")]
    pub peers: Option<PathBuf>,
    /// Sign and attach a provenance statement and an SBOM to every image published.
    #[arg(long, value_name = "KEY", env = "COOKBOOK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Take a revision that rewrites the branch's history (logged in the state).
    #[arg(long)]
    pub allow_force: bool,
    /// Refuse a commit whose signature `git verify-commit` does not accept.
    #[arg(long)]
    pub require_signed: bool,
    /// How often, between rounds, the site's containers are asked how they are (metrics).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, hide = true)]
    pub health_every: Duration,
}

#[derive(Debug, Subcommand)]
pub enum SyncAction {
    /// Print the sync state: current, previous, last applied and last attempted revision.
    Status {
        #[arg(long, default_value = ".cookbook/sync")]
        state: PathBuf,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
}

impl SyncArgs {
    /// Whether the output is a JSON document (then a failure is one too).
    pub fn json_output(&self) -> bool {
        match &self.action {
            Some(SyncAction::Status { format, .. }) => matches!(format, StatusFormat::Json),
            None => matches!(self.format, StatusFormat::Json),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}
