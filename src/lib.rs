//! cookbook: a declarative, reproducible container-image build engine.
//!
//! The pipeline is a chain of types, each stage in one module:
//! bytes → [`model::Cookbook`] (parsed, schema-checked, validated, with its sealed
//! [`graph::Plan`]) → fingerprints → build contexts → built images → lock.
//!
//! The core (`diagnostic`, `schema`, `model`, `graph`) is pure: it does no file, network or
//! daemon I/O and prints nothing. `load` is the front end's one stage that touches the file
//! system: it composes parsing with the checks only the disk can answer. The edges (`cli`) read
//! files and own all output.

pub mod apply;
pub mod attest;
pub mod build;
pub mod cli;
pub mod context;
pub mod deploy;
pub mod diagnostic;
pub mod engine;
pub mod error;
pub mod git;
pub mod graph;
pub mod hash;
pub mod image;
pub mod init;
pub mod labels;
pub mod load;
pub mod model;
pub mod oci;
pub mod ops;
pub mod registry;
pub mod retry;
pub mod schema;
pub mod state;
pub mod sync;
pub mod tls;
pub mod verify;
