//! `cookbook exec`: the terminal's side of a command run in a stage's container.
//!
//! With a TTY (stdin is a terminal and `-T` was not given) the local terminal is put in raw mode
//! for the command's duration, so keys reach it as typed (Ctrl-C included), and restored
//! however the command ends (an error, a panic, a SIGTERM or SIGHUP); the TTY's size is the terminal's. The exit code is the command's.

use std::io::IsTerminal;
use std::path::Path;

use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

use super::args::ExecArgs;
use crate::error::Error;
use crate::ops::exec::{ExecOptions, Streams};
use crate::ops::{self, Workspace};

/// Restores the terminal's settings when dropped.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        restore_on_termination(saved.clone());
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode(saved))
    }
}

/// A SIGTERM or SIGHUP ends the process without unwinding (no `Drop` runs): a thread puts the
/// terminal back first, then lets the signal's default action end the process, so a killed
/// `exec` never leaves the user's terminal raw.
fn restore_on_termination(saved: Termios) {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
    });
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}

pub fn run(file: &Path, args: &ExecArgs) -> Result<(), Error> {
    let mut ws = Workspace::open(super::locate::cookbook_file(file.to_path_buf()))?;
    ws.engine = args.engine.selector();
    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let size = tty
        .then(|| tcgetwinsize(std::io::stdin()).ok())
        .flatten()
        .map(|w| (w.ws_row, w.ws_col));
    let opts = ExecOptions {
        site: args.site.clone(),
        stage: args.stage.clone(),
        container: args.container.clone(),
        replica: args.index,
        command: args.command.clone(),
        tty,
        size,
    };
    let raw = tty.then(RawMode::enter).flatten();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = ops::exec::exec(
        &ws,
        &opts,
        Streams {
            stdin: tokio::io::stdin(),
            stdout: &mut stdout.lock(),
            stderr: &mut stderr.lock(),
        },
    );
    drop(raw);
    match code? {
        0 => Ok(()),
        code => Err(Error::Exited {
            code: i32::try_from(code).unwrap_or(1),
        }),
    }
}
