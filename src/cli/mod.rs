//! The command line: arguments in, reports out.
//!
//! This is the only module that writes to stdout and stderr, and it holds no flow: each command
//! turns its arguments into options, calls one function of [`crate::ops`] and renders the report
//! (text, or the report serialized for `--format json`; colour; progress). `args` declares the
//! arguments, `locate` finds the cookbook, `output` renders errors and diagnostics, `interrupt`
//! turns signals into cancellation. Errors become exit codes in exactly one place
//! (`Error::exit_code`).

pub mod sync;

use std::io::Write;

use clap::{CommandFactory, Parser};

mod agent;
mod apply;
mod args;
mod deploy;
mod dev;
mod diff;
mod down;
mod events;
mod exec;
mod fleet;
mod github;
mod init;
mod inspect;
mod interrupt;
mod junit;
mod key;
pub mod locate;
mod logs;
mod migrate;
mod output;
mod sbom;
mod update;
mod verify;

pub use args::{CiFormat, Cli, ColorChoice, Command, CookbookArg, Format, PlanFormat};

use crate::error::{Error, EXIT_OK};

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
    let mut inert;
    let err: &mut dyn Write = if cli.command.github() {
        inert = github::Inert::new(err);
        &mut inert
    } else {
        err
    };
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
            output::report(&e, err);
            // One document on stdout: when the command already printed its own (apply's summary
            // after a failed run, verify's report of a mismatch, diff's differences), that is it.
            if cli.command.facts().json && counted.bytes == 0 {
                output::error_document(&e, out);
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

/// `-f` before a command that reads no cookbook is refused, not ignored.
fn refuse_file(cli: &Cli) -> Result<(), Error> {
    let facts = cli.command.facts();
    if cli.file.is_none() || facts.reads_cookbook {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "`cookbook {}` does not read a cookbook file: -f/--file has no effect here",
            facts.name
        ),
        help: Some(match &cli.command {
            Command::Sync(_) | Command::Agent(_) => {
                "sync takes the cookbook from the remote: name it with --path".to_owned()
            }
            _ => "remove -f".to_owned(),
        }),
    })
}

/// Runs the one command asked for.
fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    refuse_file(cli)?;
    let top = cli.file.as_deref();
    let path = |cookbook: &CookbookArg| cookbook.resolve(top);
    use Command as C;
    match &cli.command {
        C::Validate { cookbook, format } => inspect::validate(cookbook, top, *format, out, err),
        C::Plan {
            cookbook,
            format,
            site,
            strict,
        } => inspect::plan(cookbook, top, site.as_deref(), *strict, *format, out, err),
        C::Hash {
            cookbook,
            format,
            containers,
            strict,
        } => inspect::hash(cookbook, top, containers, *strict, *format, out, err),
        C::Explain {
            cookbook,
            container,
        } => inspect::explain(cookbook, top, container, out, err),
        C::Sbom {
            cookbook,
            container,
            engine,
            format: _,
        } => sbom::sbom(cookbook, top, container, engine, out, err),
        C::Context {
            cookbook,
            container,
            output,
            format,
        } => inspect::context(cookbook, top, container, output, *format, out, err),
        C::Apply { cookbook, args } => apply::run(&path(cookbook)?, args, cli.quiet, out, err),
        C::Verify { cookbook, args } => verify::run(&path(cookbook)?, args, out, err),
        C::Update { cookbook, args } => update::run(&path(cookbook)?, args, out, err),
        C::Diff(args) => diff::run(args, top, out),
        C::Sync(args) => sync::execute(args, out, err),
        C::Agent(args) => agent::run(args, out, err),
        C::Deploy { cookbook, args } => deploy::run(&path(cookbook)?, args, out, err),
        C::Render { cookbook, args } => deploy::render(&path(cookbook)?, args, out),
        C::Promote { cookbook, args } => deploy::promote(&path(cookbook)?, args, out),
        C::Events { cookbook, args } => {
            events::run(cookbook.file.as_deref().or(top), args, out, err)
        }
        C::Approve { cookbook, args } => deploy::approve(&path(cookbook)?, args, out, err),
        C::Site { command } => deploy::site(command, top, out),
        C::Key { command } => key::run(command, out),
        C::Fleet { command } => fleet::run(command, out, err),
        C::Status { cookbook, args } => deploy::status(&path(cookbook)?, args, out),
        C::Logs { cookbook, args } => logs::run(&path(cookbook)?, args, out, err),
        C::Dev { cookbook, args } => dev::run(&path(cookbook)?, args, out, err),
        C::Down { cookbook, args } => down::run(&path(cookbook)?, args, out, err),
        C::Exec { cookbook, args } => exec::run(&path(cookbook)?, args),
        C::Rollback { cookbook, args } => deploy::rollback(&path(cookbook)?, args, out),
        C::Releases { cookbook, args } => deploy::releases(&path(cookbook)?, args, out),
        C::Migrate { cookbook, args } => migrate::run(cookbook.locate(top)?, args, out, err),
        C::Schema { format_version } => inspect::schema(format_version.as_deref(), out),
        C::Clean { cookbook, dry_run } => inspect::clean(&cookbook.locate(top)?, *dry_run, err),
        C::Completions { shell } => inspect::completions(*shell, &mut Cli::command(), out),
        C::Man => inspect::man(Cli::command(), out),
        C::Init(args) => init::run(args, out, err),
    }
}
