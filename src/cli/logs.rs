//! `cookbook logs`: arguments → `ops::logs::logs`, lines rendered as compose renders them: the
//! container's short name padded to one width, ` | `, the line; a colour per container on a
//! terminal only (and never with `NO_COLOR`); stderr lines to stderr. `cookbook dev` renders its
//! stream with the same [`Prefixer`].
//!
//! A container's output is not trusted with the user's terminal: where the stream a line goes to
//! is a terminal, its control characters (C0 but `\t`, DEL, C1) are shown escaped (`\u{1b}`), as
//! a failed gate quotes its probe, so an OSC 52 clipboard write or a title change does nothing; a
//! colour (SGR, `ESC [ … m`) is kept, and a line cut at the edge's cap ends with `…`. Piped, the
//! text passes unchanged, as `docker logs` passes it.

use std::borrow::Cow;
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
    /// Whether stdout, and stderr, is a terminal (its lines are then escaped).
    terminal: [bool; 2],
}

impl Prefixer {
    pub(super) fn new() -> Prefixer {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Prefixer {
            names: Mutex::new(Vec::new()),
            colour,
            terminal: [
                std::io::stdout().is_terminal(),
                std::io::stderr().is_terminal(),
            ],
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
        let text = if self.terminal[line.stream as usize] {
            let cut = if line.cut { "…" } else { "" };
            format!(
                "{}{}{cut}\n",
                self.prefix(&line.container),
                for_terminal(&line.text)
            )
        } else {
            format!("{}{}\n", self.prefix(&line.container), line.text)
        };
        // A closed pipe (`| head`) is not this command's failure.
        let _ = match line.stream {
            Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

/// `text` safe to show on a terminal: every control character but `\t` escaped (C0, DEL, C1:
/// an escape sequence cannot act), except a colour sequence (`ESC [` digits and `;`, then `m`).
pub(super) fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(len) = sgr_len(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The length of the colour sequence `text` starts with (`ESC [ 1;31 m`), if it starts with one.
fn sgr_len(text: &str) -> Option<usize> {
    let params = text.strip_prefix("\u{1b}[")?;
    let digits = params
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (params.as_bytes().get(digits) == Some(&b'm')).then_some(2 + digits + 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_control_characters_escaped_and_colours_kept() {
        assert!(matches!(for_terminal("plain\ttext é"), Cow::Borrowed(_)));
        let clipboard = "\u{1b}]52;c;cm0gLXJmIC8K\u{7}";
        assert_eq!(for_terminal(clipboard), "\\u{1b}]52;c;cm0gLXJmIC8K\\u{7}");
        let title = "\u{9d}0;pwned\u{9c}";
        assert_eq!(for_terminal(title), "\\u{9d}0;pwned\\u{9c}");
        assert_eq!(for_terminal("a\rb\u{7f}"), "a\\rb\\u{7f}");
        let colour = "\u{1b}[1;31merror\u{1b}[0m \u{1b}[2J";
        assert_eq!(
            for_terminal(colour),
            "\u{1b}[1;31merror\u{1b}[0m \\u{1b}[2J",
            "colours kept, a screen clear escaped"
        );
    }
}
