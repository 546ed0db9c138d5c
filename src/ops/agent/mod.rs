//! `cookbook agent`: the hourly sync as a long-running service.
//!
//! It runs [`super::pipeline`]'s rounds on an interval with splay, and serves over HTTP(S): a
//! webhook that starts a round at once (`webhook`), Prometheus metrics (`metrics`), a status
//! document (`status`), health checks, a dashboard (`dashboard`) and, given peers, the fleet
//! view (`super::fleet`), with TLS and mutual TLS from `tls`.

pub mod dashboard;
pub mod metrics;
pub mod status;
pub mod tls;
pub mod webhook;
