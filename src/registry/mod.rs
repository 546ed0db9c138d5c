//! The registry edge: a small Registry v2 (OCI distribution) HTTP client.
//!
//! Place in the pipeline: `apply` asks it whether a content-tagged image is already published
//! (`manifest_head`), proves push access before the long builds (`check_push_access`), and
//! `verify` reads what was published (`manifest_get`, `blob_get`, `image_labels`, `tags_list`).
//! Pushing itself goes through the Docker engine (`crate::engine`), which owns the layers.
//!
//! Invariants: digests are computed from the bytes received and checked against the registry's
//! claims; a 401/403 is reported at once and never retried; only transport failures, 5xx and
//! 429 are retried; an unreachable registry is [`RegistryError::Unreachable`] naming the
//! endpoint (exit code 3, mapped in `crate::error`).

mod auth;
mod client;
mod digest;
mod reference;

pub use auth::{Challenge, Credential, CredentialError, CredentialStore};
pub use client::{Manifest, RegistryClient, RegistryError, MANIFEST_MEDIA_TYPES};
pub use digest::{Digest, DigestError};
pub use reference::{ImageReference, ReferenceError, Repository};
