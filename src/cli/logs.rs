//! `cookbook logs`: arguments → `ops::logs::logs`, lines rendered as compose renders them: the
//! container's short name padded to one width, ` | `, the line; a colour per container on a
//! terminal only (and never with `NO_COLOR`); stderr lines to stderr. `cookbook dev` renders its
//! stream with the same [`Prefixer`].

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use super::args::LogsArgs;
use super::interrupt::Interrupt;
use crate::error::Error;
use crate::ops::logs::{LogLine, LogSink, LogsOptions, Stream};
use crate::ops::Workspace;

/// The colours containers take, in the order of their names.
const PALETTE: [anstyle::AnsiColor; 6] = [
    anstyle::AnsiColor::Cyan,
    anstyle::AnsiColor::Yellow,
    anstyle::AnsiColor::Green,
    anstyle::AnsiColor::Magenta,
    anstyle::AnsiColor::Blue,
    anstyle::AnsiColor::Red,
];

/// Writes log lines with a per-container prefix to the process's stdout and stderr.
pub(super) struct Prefixer {
    /// The known names (for the width and the colours), set by `start`.
    names: Mutex<Vec<String>>,
    colour: bool,
}

impl Prefixer {
    pub(super) fn new() -> Prefixer {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Prefixer {
            names: Mutex::new(Vec::new()),
            colour,
        }
    }

    /// `name | ` padded to the widest known name, coloured on a terminal.
    fn prefix(&self, name: &str) -> String {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let width = names
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(name.len());
        let padded = format!("{name:<width$} | ");
        if !self.colour {
            return padded;
        }
        let index = names.iter().position(|n| n == name).unwrap_or(names.len());
        let style = anstyle::Style::new().fg_color(Some(PALETTE[index % PALETTE.len()].into()));
        format!("{}{padded}{}", style.render(), style.render_reset())
    }
}

impl LogSink for Prefixer {
    fn start(&self, names: &[String]) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = names.to_vec();
    }

    fn line(&self, line: &LogLine) {
        let text = format!("{}{}\n", self.prefix(&line.container), line.text);
        // A closed pipe (`| head`) is not this command's failure.
        let _ = match line.stream {
            Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

/// `cookbook logs`.
pub fn run(
    file: &Path,
    args: &LogsArgs,
    _out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<(), Error> {
    let mut ws = Workspace::open(super::locate::cookbook_file(file.to_path_buf()))?;
    ws.engine = args.engine.selector();
    let opts = LogsOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        containers: args.containers.clone(),
        follow: args.follow,
        tail: args.tail,
        since: args.since.clone(),
        timestamps: args.timestamps,
    };
    let interrupt = Interrupt::install()?;
    crate::ops::logs::logs(&ws, &opts, &Prefixer::new(), interrupt.stop())?;
    // Ctrl-C is how a follow ends: not a failure.
    Ok(())
}
