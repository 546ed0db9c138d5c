//! Names and digests of OCI content: Docker's image-reference grammar and content digests.
//!
//! Pure: parsing and formatting only, no I/O. It sits in the core beside `model` and `hash`
//! because every boundary that carries an image name or a digest parses it here first — the
//! cookbook's `base_image`, the lock's pins and entries, a registry's answers, an engine's — so
//! nothing read from any of them reaches a Dockerfile, a command line or a URL as free text.
//! The registry edge re-exports these types.

mod digest;
mod reference;
mod written;

pub use digest::{Digest, DigestError};
pub use reference::{ImageReference, ReferenceError, Repository};
pub use written::{reason as reference_reason, FromImage, WrittenReference};
