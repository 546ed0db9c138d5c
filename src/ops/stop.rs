//! A stop request, as every long flow takes it: a flag its steps check between themselves, a
//! token that cancels what runs (an apply's builds, a deploy's waves, which roll back), and the
//! signal that asked, so the command ends with that signal's code.
//!
//! The library installs no signal handler: `cli::interrupt` (the terminal's SIGINT/SIGTERM) and
//! the agent's shutdown both request a stop through one of these, and the flows they run read it.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, EXIT_SIGINT, EXIT_SIGTERM};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Shared by whoever may ask to stop and the flows that must: clones are the same request.
#[derive(Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    token: CancellationToken,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every flow holding this to stop, for `signal` (its number: 2 SIGINT, 15 SIGTERM).
    /// True for the first request; a later one changes nothing (the first signal is the one a
    /// flow's exit code names).
    pub fn request(&self, signal: i32) -> bool {
        let first = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.flag.store(true, Ordering::SeqCst);
        self.token.cancel();
        first
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Set by the first request: sync's steps and its interval loop check it between steps.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Cancelled by the first request: a running apply or deploy stops (a deploy rolls back).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The error a flow this stopped ends with (`Error::Interrupted`, the signal's exit code);
    /// `None` when no stop was asked.
    pub fn error(&self) -> Option<Error> {
        interrupted(self.signal.load(Ordering::SeqCst))
    }
}

/// The exit code a signal ends a command with: 130 for SIGINT, 143 for SIGTERM, 128 + n else.
pub fn exit_code(signal: i32) -> i32 {
    match signal {
        SIGINT => EXIT_SIGINT,
        SIGTERM => EXIT_SIGTERM,
        other => 128 + other,
    }
}

/// `Error::Interrupted` for a signal number, `None` for 0 (no signal).
fn interrupted(signal: i32) -> Option<Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_names_the_signal_and_cancels_everything() {
        let stop = Stop::new();
        assert!(stop.error().is_none() && !stop.requested());
        let clone = stop.clone();
        assert!(clone.request(SIGTERM));
        assert!(!stop.request(SIGINT), "a second request is not the first");
        assert!(stop.requested() && stop.token().is_cancelled());
        match stop.error() {
            Some(Error::Interrupted { signal, code }) => {
                assert_eq!((signal, code), ("SIGTERM", EXIT_SIGTERM))
            }
            other => panic!("{other:?}"),
        }
    }
}
