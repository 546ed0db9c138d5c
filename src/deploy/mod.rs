//! Deploying the images of a cookbook's lock to a site's engine, stage by stage.
//!
//! Pipeline position: after `apply` (which wrote cookbook.lock). `desired` is pure: it computes
//! what should run and what to change from plain values. The Docker edge that carries the changes
//! out, release records and rollback follow (issue 13); until then `desired` is the foundation
//! they build on, tested on its own.

pub mod desired;
