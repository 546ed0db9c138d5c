//! The periodic run: `--interval` rounds with a random splay, stopped cleanly by a signal.
//!
//! Place in the pipeline: wraps rounds; it knows nothing of git or cookbooks. Like chef-client's
//! `--interval`/`--splay`, each wait is the interval plus a random delay up to the splay, so that
//! many sites started at the same time do not all hit the git server in the same second.
//!
//! A stop request (SIGTERM/SIGINT set the flag) is honoured between steps: during a wait at once,
//! during a round at its next step boundary, where the state is always consistent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    /// The largest random delay added to each wait.
    pub splay: Duration,
}

impl Schedule {
    /// An interval with the default splay: a tenth of it.
    pub fn every(interval: Duration) -> Schedule {
        Schedule {
            interval,
            splay: interval / 10,
        }
    }

    /// The wait before the next round: the interval plus a uniform random share of the splay.
    pub fn next_wait(&self) -> Duration {
        let splay_ms = u64::try_from(self.splay.as_millis()).unwrap_or(u64::MAX);
        self.interval + Duration::from_millis(fastrand::u64(0..=splay_ms))
    }
}

/// Sleeps for `duration` unless `stop` is set first; returns whether it was stopped.
pub fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // Short naps: a signal only sets the flag, so this is how fast a stop is noticed.
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// What the loop asks its handler to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Run a round now.
    Round,
    /// The loop is about to wait this long.
    Wait(Duration),
}

/// Calls `handler(Tick::Round)` now and then after every wait, until `stop` is set.
/// The round's own failures are its business (logged by the caller); the loop never ends on one.
pub fn run_every(schedule: Schedule, stop: &AtomicBool, mut handler: impl FnMut(Tick)) {
    while !stop.load(Ordering::Relaxed) {
        handler(Tick::Round);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let wait = schedule.next_wait();
        handler(Tick::Wait(wait));
        if sleep_unless_stopped(wait, stop) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_interval_and_splay() {
        let s = Schedule::every(Duration::from_secs(3600));
        assert_eq!(s.splay, Duration::from_secs(360));
        for _ in 0..1000 {
            let w = s.next_wait();
            assert!(w >= s.interval && w <= s.interval + s.splay, "{w:?}");
        }
    }

    #[test]
    fn a_zero_splay_waits_exactly_the_interval() {
        let s = Schedule {
            interval: Duration::from_millis(5),
            splay: Duration::ZERO,
        };
        assert_eq!(s.next_wait(), Duration::from_millis(5));
    }

    #[test]
    fn the_loop_stops_when_a_round_sets_the_flag_and_a_wait_notices_at_once() {
        let stop = AtomicBool::new(false);
        let mut rounds = 0;
        let started = Instant::now();
        run_every(
            Schedule {
                interval: Duration::from_millis(1),
                splay: Duration::ZERO,
            },
            &stop,
            |tick| {
                if tick == Tick::Round {
                    rounds += 1;
                    if rounds == 3 {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            },
        );
        assert_eq!(rounds, 3);
        let stop = AtomicBool::new(true);
        assert!(sleep_unless_stopped(Duration::from_secs(3600), &stop));
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
