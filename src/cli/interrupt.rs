//! SIGINT and SIGTERM, turned into a cancellation the library understands.
//!
//! The library installs no signal handler: it takes an `ops::stop::Stop` (a flag its steps check,
//! a token that cancels, the signal that asked). This is the one place that listens for signals.
//! A thread of signal-hook's iterator receives them (so that nothing but a flag write happens in
//! the signal handler itself), and the first one requests the stop. A second signal exits at once with that signal's code, as an impatient
//! operator expects: like `kill -9`, it may leave a temporary file behind.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::ops::stop::{exit_code, Stop};

/// Listens for SIGINT/SIGTERM until dropped; each one requests a stop of `stop()`.
pub struct Interrupt {
    stop: Stop,
    handle: signal_hook::iterator::Handle,
}

impl Interrupt {
    pub fn install() -> Result<Interrupt, Error> {
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| Error::Usage {
            message: format!("cannot install the signal handlers: {e}"),
            help: None,
        })?;
        let stop = Stop::new();
        let handle = signals.handle();
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cookbook-signals".into())
                .spawn(move || {
                    for received in signals.forever() {
                        if !stop.request(received) {
                            // `_exit`: no destructors to run into a half-torn-down process.
                            signal_hook::low_level::exit(exit_code(received));
                        }
                    }
                })
                .map_err(|e| Error::Usage {
                    message: format!("cannot start the signal thread: {e}"),
                    help: None,
                })?;
        }
        Ok(Interrupt { stop, handle })
    }

    /// The stop request the signals make.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Cancelled by the first signal.
    pub fn token(&self) -> CancellationToken {
        self.stop.token()
    }

    /// The error a run stopped by the first signal ends with, if one came.
    pub fn error(&self) -> Option<Error> {
        self.stop.error()
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.handle.close();
    }
}
