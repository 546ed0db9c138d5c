//! Supply chain: keys, DSSE envelopes, in-toto statements, SBOMs; pure core, no network, no
//! engine.
//!
//! Pipeline position: beside the core. What signs and what verifies lives here as plain values
//! (a key, an envelope, a statement); the flows that read key files named on the command line,
//! attach envelopes to images in a registry or check them before a deploy are in `ops`, `deploy`
//! and `verify`. `attest` imports no edge (`tests/it/import_graph.rs`): it reads a key file
//! only through `context::file`, capped, as every small input is read.

pub mod dsse;
pub mod key;
