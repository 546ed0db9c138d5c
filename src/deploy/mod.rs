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
