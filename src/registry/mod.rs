//! The registry edge: a small Registry v2 (OCI distribution) HTTP client.
//!
//! Place in the pipeline: `apply` asks it whether a content-tagged image is already published
//! (`manifest_head`), proves push access before the long builds (`check_push_access`), and
//! `verify` reads what was published (`manifest_get`, `blob_get`, `image_labels`, `tags_list`).
//! A no-op `apply` lists each repository's tags once (`tags`: `tags_list_once`) instead of one
//! manifest request per container when the lock already records their digests.
//! `apply` publishes each normalized image through it too (blob HEAD, cross-repository mount,
//! streamed upload, manifest PUT), so what the registry holds is byte for byte what was
//! normalized; moving a mutable tag also stays in the registry: [`RegistryClient::retag`] puts the manifest under its new tag
//! inside the registry, so nothing is pulled to retag.
//!
//! Invariants: credentials go only to the registry's own origin ([`Origin`]: scheme, host and
//! port; a token realm over HTTPS), and a URL the registry hands back that would downgrade
//! HTTPS to plain HTTP is refused; every body read into memory has a cap enforced while reading,
//! and a blob streamed to a file stops at its descriptor's size; URLs in errors are
//! [`redact`]ed; digests are computed from the bytes received and checked against the registry's
//! claims; a refusal (401/403, or a body saying `DENIED`) is reported at once and never retried;
//! only transport failures, 5xx and 429 are retried; an unreachable registry is
//! [`RegistryError::Unreachable`] naming the endpoint (exit code 3). This module imports neither
//! the engine edge nor src/error.rs (which maps its errors to exit codes): the engine uses the
//! reference and credential types defined here, never the other way round.

mod auth;
mod body;
mod client;
mod origin;
mod referrers;
mod tags;
mod tls;

pub use auth::{Challenge, Credential, CredentialError, CredentialStore};
pub use body::{
    BodyKind, ErrorCode, MAX_ERROR_BODY_BYTES, MAX_IN_MEMORY_BLOB_BYTES, MAX_MANIFEST_BYTES,
    MAX_TAG_LIST_BYTES, MAX_TAG_LIST_PAGES, MAX_TOKEN_RESPONSE_BYTES,
};
pub use client::{Manifest, RegistryClient, RegistryError, MANIFEST_MEDIA_TYPES};
pub use origin::{redact, Admission, Origin};
pub use referrers::{
    referrers_tag, Artifact, ArtifactPayload, Attached, Descriptor, Referrer, ReferrersSource,
    EMPTY_MEDIA_TYPE, MAX_TAG_UPDATES,
};
pub use tags::TAG_PAGE_SIZE;
// The names and digests it speaks in are the core's (`crate::oci`), re-exported for its callers.
pub use crate::oci::{Digest, DigestError, ImageReference, ReferenceError, Repository};
