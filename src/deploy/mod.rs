//! Deploying the images of a cookbook's lock to a site's engine, stage by stage.
//!
//! Pipeline position: after `apply` (which wrote cookbook.lock). `desired` is pure: what should
//! run (instances wave by wave, each with a config hash) and what to change about what runs.
//! `session` is the orchestration every kind of site shares (progression rules, waves with health
//! gates, release records, rollback); it drives a `backend::Backend`, of which `docker` (the
//! site's Docker engine) is the first.
//! Invariant: an instance whose image digest and runtime settings are unchanged is never touched.

pub mod approval_referrers;
pub mod approvals;
pub mod backend;
pub mod desired;
pub mod detect;
pub mod docker;
pub mod kubernetes;
pub mod releases;
pub mod schedule;
pub mod secrets;
pub mod services;
pub mod session;

pub use backend::{Backend, BackendError};
pub use session::{DeployError, Outcome};

/// Text an engine or a cluster handed back (a probe's output, a warning event), made one line
/// for a message: every control character escaped (`\n`, `\u{1b}`), so nothing it holds can
/// act on a terminal. The caller caps it first.
pub(crate) fn escape_controls(text: impl Iterator<Item = char>) -> String {
    text.flat_map(|c| {
        let escaped: Vec<char> = if c.is_control() {
            c.escape_default().collect()
        } else {
            vec![c]
        };
        escaped
    })
    .collect()
}
