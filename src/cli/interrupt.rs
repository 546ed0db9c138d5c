//! SIGINT and SIGTERM, turned into a cancellation the library understands.
//!
//! The library installs no signal handler: it takes a [`CancellationToken`] (apply) or a stop
//! flag (sync's steps and its interval loop). This is the one place that listens for signals. A
//! thread of signal-hook's iterator receives them (so that nothing but a flag write happens in
//! the signal handler itself), and on the first one records which signal it was, sets the flag
//! and cancels the token. A second signal exits at once with that signal's code, as an impatient
//! operator expects: like `kill -9`, it may leave a temporary file behind.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, EXIT_SIGINT, EXIT_SIGTERM};

/// Listens for SIGINT/SIGTERM until dropped.
pub struct Interrupt {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    token: CancellationToken,
    handle: signal_hook::iterator::Handle,
}

impl Interrupt {
    pub fn install() -> Result<Interrupt, Error> {
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| Error::Usage {
            message: format!("cannot install the signal handlers: {e}"),
            help: None,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicI32::new(0));
        let token = CancellationToken::new();
        let handle = signals.handle();
        {
            let (stop, signal, token) = (Arc::clone(&stop), Arc::clone(&signal), token.clone());
            std::thread::Builder::new()
                .name("cookbook-signals".into())
                .spawn(move || {
                    for received in signals.forever() {
                        if signal
                            .compare_exchange(0, received, Ordering::SeqCst, Ordering::SeqCst)
                            .is_err()
                        {
                            // `_exit`: no destructors to run into a half-torn-down process.
                            signal_hook::low_level::exit(exit_code(received));
                        }
                        stop.store(true, Ordering::SeqCst);
                        token.cancel();
                    }
                })
                .map_err(|e| Error::Usage {
                    message: format!("cannot start the signal thread: {e}"),
                    help: None,
                })?;
        }
        Ok(Interrupt {
            stop,
            signal,
            token,
            handle,
        })
    }

    /// Set by the first signal.
    pub fn flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// Cancelled by the first signal.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The error a run stopped by the first signal ends with, if one came.
    pub fn error(&self) -> Option<Error> {
        interrupted(self.signal.load(Ordering::SeqCst))
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.handle.close();
    }
}

fn exit_code(signal: i32) -> i32 {
    match signal {
        SIGINT => EXIT_SIGINT,
        SIGTERM => EXIT_SIGTERM,
        other => 128 + other,
    }
}

/// `Error::Interrupted` for a signal number, `None` for 0 (no signal).
pub fn interrupted(signal: i32) -> Option<Error> {
    let name = match signal {
        0 => return None,
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    };
    Some(Error::Interrupted {
        signal: name,
        code: exit_code(signal),
    })
}
