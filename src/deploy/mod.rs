//! Deploying the images of a cookbook's lock to a site's engine, stage by stage.
//!
//! Pipeline position: after `apply` (which wrote cookbook.lock). `desired` is pure: what should
//! run (instances wave by wave, each with a config hash) and what to change about what runs.
//! `docker` carries the changes out on the site's engine, each wave healthy before the next.
//! Invariant: an instance whose image digest and runtime settings are unchanged is never touched.

pub mod approvals;
pub mod desired;
pub mod detect;
pub mod docker;
pub mod releases;
pub mod schedule;
pub mod services;
