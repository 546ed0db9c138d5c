//! Retry with exponential backoff, shared by the edges that talk to remote services
//! (the Docker engine's push, the registry client).
//!
//! Only the caller knows which failures are transient (a connection reset, a 5xx, a 429), so the
//! policy here mostly schedules: it says how long to wait before attempt `n` and when to give up.
//! The one judgement shared by both edges is [`is_permanent`]: a service's own words saying no
//! (`denied`, `unauthorized`: [`is_refusal`]) or that the thing does not exist (`manifest
//! unknown`), which no retry can change, whatever status or stream they came in.
//! Backoff has no jitter: `cookbook` runs a handful of requests per registry, not a thundering
//! herd, and a deterministic schedule keeps the fault-injection tests exact.

use std::time::Duration;

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; at least 1.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles before each later one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (also caps a server's `Retry-After`).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), or `None` when no attempt is left.
    /// A server's `Retry-After` wins over the computed backoff, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts.max(1) {
            return None;
        }
        let exponential = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX));
        Some(retry_after.unwrap_or(exponential).min(self.max_backoff))
    }
}

/// Words with which a registry, or the Docker engine relaying one, refuses access: the OCI
/// error codes `DENIED` and `UNAUTHORIZED`, the daemon's "pull access denied", "authentication
/// required". Matched in lower case.
const REFUSALS: [&str; 4] = [
    "denied",
    "unauthorized",
    "authentication required",
    "forbidden",
];

/// Words saying that what was asked for does not exist (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, the
/// daemon's "manifest unknown", "not found"); codes also as the daemon spells them.
const ABSENCES: [&str; 6] = [
    "manifest unknown",
    "manifest_unknown",
    "name unknown",
    "name_unknown",
    "not found",
    "does not exist",
];

/// Whether `message`, a service's own error text, refuses access (credentials, permissions).
pub fn is_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    REFUSALS.iter().any(|word| message.contains(word))
}

/// Whether `message` says the failure is for good: a refusal, or something that does not exist.
/// Such failures are never retried.
///
/// Text is all there is: the engine's push and pull streams end in an `error` string (bollard
/// keeps no code, and the daemon sends none for registry failures), and a registry's error body
/// is free to carry a refusal behind any status. Anything not recognised is treated as
/// transient, as before: a retry of a permanent failure costs a few seconds, a missed retry of a
/// transient one fails a run.
pub fn is_permanent(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    is_refusal(message) || ABSENCES.iter().any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_absences_are_recognised_in_the_services_own_words() {
        for refusal in [
            "denied: requested access to the resource is denied",
            "DENIED: requested access to the resource is denied",
            "unauthorized: authentication required",
            "pull access denied for x, repository does not exist or may require 'docker login'",
        ] {
            assert!(is_refusal(refusal), "{refusal}");
            assert!(is_permanent(refusal), "{refusal}");
        }
        for absence in [
            "manifest for 127.0.0.1:5000/a/b:v1 not found: manifest unknown: manifest unknown",
            "NAME_UNKNOWN: repository name not known to registry",
        ] {
            assert!(!is_refusal(absence), "{absence}");
            assert!(is_permanent(absence), "{absence}");
        }
        for transient in [
            "received unexpected HTTP status: 502 Bad Gateway",
            "blob upload unknown",
            "read tcp 127.0.0.1:5000: connection reset by peer",
            "",
        ] {
            assert!(!is_permanent(transient), "{transient}");
        }
    }

    #[test]
    fn backoff_doubles_then_stops_after_the_last_attempt() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        assert_eq!(policy.backoff(1, None), Some(Duration::from_millis(100)));
        assert_eq!(policy.backoff(2, None), Some(Duration::from_millis(200)));
        assert_eq!(policy.backoff(3, None), Some(Duration::from_millis(250)));
        assert_eq!(policy.backoff(4, None), None);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        };
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_single_attempt_never_retries() {
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(1, None), None);
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.backoff(1, None), None);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        assert_eq!(policy.backoff(40, None), Some(Duration::from_secs(30)));
    }
}
