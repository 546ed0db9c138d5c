//! `cookbook dev`: arguments → `ops::dev::dev`, its events rendered as `[dev] …` lines on stderr
//! and the stage's log lines through the same prefixes as `cookbook logs` ([`Prefixer`]).
//! Ctrl-C ends the loop with exit 0 (the stage left running, or torn down with `--down`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use super::args::DevArgs;
use super::interrupt::Interrupt;
use super::logs::{for_terminal, Prefixer};
use crate::error::Error;
use crate::ops::dev::{DevEvent, DevOptions, DevReporter};
use crate::ops::logs::{LogLine, LogSink};

/// Progress lines on stderr, log lines through the prefixer.
struct Reporter {
    logs: Prefixer,
    /// Whether stderr is a terminal: a failed build's output (the engine's, the Dockerfile's
    /// `RUN` steps') and the paths it names are then escaped as log lines are.
    terminal: bool,
}

impl LogSink for Reporter {
    fn start(&self, names: &[String]) {
        self.logs.start(names);
    }

    fn line(&self, line: &LogLine) {
        self.logs.line(line);
    }
}

impl DevReporter for Reporter {
    fn event(&self, event: &DevEvent) {
        let text = render(event);
        let text = if self.terminal {
            for_terminal_lines(&text)
        } else {
            text
        };
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// `[dev] api changed (src/app.py) → built in 0.8 s → running in 1.9 s`, and the others.
fn render(event: &DevEvent) -> String {
    match event {
        DevEvent::Watching { roots, push } => format!(
            "[dev] watching {} ({})\n",
            roots.join(", "),
            if *push {
                "images pushed to the registry: the site's engine is not the building one"
            } else {
                "images kept in the local engine, not pushed"
            }
        ),
        DevEvent::Running {
            first,
            containers,
            paths,
            built_seconds,
            running_seconds,
            started,
        } => {
            let what = if *first {
                format!("built {}", containers.join(", "))
            } else {
                format!("{} changed ({})", containers.join(", "), paths.join(", "))
            };
            let started = if started.is_empty() {
                "nothing restarted".to_owned()
            } else {
                format!("started {}", started.join(", "))
            };
            format!(
                "[dev] {what} → built in {built_seconds:.1} s → running in {running_seconds:.1} s ({started})\n"
            )
        }
        DevEvent::BuildFailed {
            containers,
            paths,
            message,
        } => format!(
            "[dev] build failed{}{}; waiting for the next edit\n{message}\n",
            if containers.is_empty() {
                String::new()
            } else {
                format!(" for {}", containers.join(", "))
            },
            if paths.is_empty() {
                String::new()
            } else {
                format!(" ({})", paths.join(", "))
            },
        ),
        DevEvent::DeployFailed { message } => {
            format!("[dev] deploy failed; waiting for the next edit\n{message}\n")
        }
        DevEvent::WatchFailed { message } => {
            format!("[dev] warning: {message}; edits there are not seen until it is watched\n")
        }
        DevEvent::LogsDropped { lines } => {
            format!("[dev] {lines} log lines dropped while building\n")
        }
        DevEvent::TornDown(down) => {
            let mut text = format!("[dev] {}\n", crate::ops::down::summary(down));
            for warning in &down.warnings {
                text.push_str(&format!("[dev] warning: {warning}\n"));
            }
            text
        }
    }
}

/// `text` with each line made safe for a terminal ([`for_terminal`]: control characters escaped,
/// colours kept), its line breaks kept.
fn for_terminal_lines(text: &str) -> String {
    text.split('\n')
        .map(for_terminal)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cookbook dev`.
pub fn run(
    file: &Path,
    args: &DevArgs,
    _out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let opts = DevOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        down: args.down,
        logs: !args.no_logs,
        engine: args.engine.selector(),
    };
    let reporter = Arc::new(Reporter {
        logs: Prefixer::new(),
        terminal: std::io::stderr().is_terminal(),
    });
    let interrupt = Interrupt::install()?;
    let file = super::locate::cookbook_file(file.to_path_buf());
    let report = crate::ops::dev::dev(file, &opts, reporter, interrupt.stop())?;
    if report.torn_down.is_none() {
        let _ = writeln!(
            err,
            "[dev] stopped after {} round(s), {} failed; {}/{} keeps running",
            report.rounds, report.failed_rounds, args.site, args.stage
        );
    }
    // Ctrl-C is how the loop ends: not a failure.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed build's output reaches a terminal escaped line by line, as log lines do: a
    /// title change or a screen clear from a `RUN` step cannot act; colours and line breaks stay.
    #[test]
    fn a_failed_builds_output_is_escaped_for_a_terminal() {
        let text = render(&DevEvent::BuildFailed {
            containers: vec!["web".into()],
            paths: vec!["svc/web/Dockerfile".into()],
            message: "step 2: \u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mfailed\u{1b}[0m\r\nexit 3"
                .into(),
        });
        let shown = for_terminal_lines(&text);
        assert_eq!(
            shown.lines().collect::<Vec<_>>(),
            vec![
                "[dev] build failed for web (svc/web/Dockerfile); waiting for the next edit",
                "step 2: \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\u{1b}[31mfailed\u{1b}[0m\\r",
                "exit 3",
            ]
        );
        assert!(shown.ends_with('\n'));
    }
}
