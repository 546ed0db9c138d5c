//! The integration tests: one binary, one module per area (it links the crate once, where one
//! binary per file linked it 33 times). `common` holds the helpers they share, `fake_kube` the fake
//! Kubernetes API server. `tests/registry_credentials.rs` stays a binary of its own: it sets
//! process environment variables (DOCKER_CONFIG, PATH) that no other test may see.

mod common;
mod fake_kube;

mod agent;
mod agent_metrics;
mod agent_packaging;
mod apply;
mod approvals;
mod assemble;
mod attestations;
mod builder_pool;
mod ci;
mod cli;
mod cli_ux;
mod concurrency;
mod context;
mod daily;
mod dashboard;
mod deploy;
mod deploy_shop;
mod dev;
mod dockerfile_pins;
mod engine;
mod events;
mod exit_codes;
mod fixtures;
mod fleet;
mod hashing;
mod hostile_registry;
mod ignored;
mod import_graph;
mod init;
mod keys;
mod kube_objects;
mod kubernetes;
mod layouts;
mod lock_input;
mod logs;
mod migrate;
mod normalize;
mod paths;
mod pinning;
mod plan;
mod pods;
mod published;
mod readme;
mod referrers;
mod registry_tags;
mod registry_tokens;
mod remote_engine;
mod reproducible;
mod retag;
mod robustness;
mod sbom;
mod signed_approvals;
mod sync;
mod trust_lock;
mod verify;
