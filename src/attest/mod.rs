//! Supply chain: keys, DSSE envelopes, in-toto statements, SBOMs; pure core, no network, no
//! engine.
//!
//! Pipeline position: after a build, beside the lock. What an image was built from (the
//! fingerprint, the pins, the checkout) and what it holds (its layers' files, the packages its
//! applications pin) become in-toto Statement v1 documents ([`provenance`]: SLSA Provenance v1,
//! [`sbom`]: SPDX 2.3) whose bytes are a pure function of their inputs, so a no-op apply makes
//! the same bytes and pushes nothing. Reading images and files is the caller's (`ops`): this
//! module takes values and `Read` streams, and imports no edge.
//!
//! Keys and envelopes ([`key`], [`dsse`]): what signs and what verifies, as plain values; the
//! flows that read key files named on the command line, attach envelopes to images in a registry
//! or check them before a deploy are in `ops`, `apply`, `deploy` and `verify`. A key file is read
//! only through `context::file`, capped, as every small input is read.
//!
//! Everything read back (a statement fetched from a registry) is hostile: capped, parsed into
//! types at once, and a bad document is a [`StatementError`] that names the field, never a panic.

pub mod dsse;
pub mod key;
pub mod provenance;
pub mod sbom;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::PinSource;
use crate::oci::{Digest, WrittenReference};

/// The in-toto Statement v1 type both documents use.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The largest statement [`provenance::parse`] and [`sbom::parse`] read: an SBOM lists every file
/// of an image's own layers (about 200 bytes each), so 64 MiB is some 300,000 files; a larger
/// document is refused before it is parsed.
pub const MAX_STATEMENT_BYTES: usize = 64 << 20;

/// What a statement is about: an image, by repository and manifest digest.
///
/// JSON: `{"name": "<repository>", "digest": {"sha256": "<hex>"}}` (in-toto's ResourceDescriptor
/// with a digest set). `cookbook` only ever names sha256 digests; a subject with another
/// algorithm only is refused when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub digest: Digest,
}

impl Subject {
    /// The subject for an image published as `image` (the lock's content-tagged reference) with
    /// manifest digest `digest`: its repository, fully qualified (`docker.io/library/x` for
    /// `x`), without the tag.
    pub fn image(image: &WrittenReference, digest: Digest) -> Subject {
        Subject {
            name: image.reference().repository().to_string(),
            digest,
        }
    }
}

/// A pinned base image as the statements name it: the reference as the cookbook (or the
/// Dockerfile) writes it, the digest it is pinned to, and where the pin came from (`engine`: the
/// digest is the image id, its config digest, not a manifest digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedBase {
    pub reference: WrittenReference,
    pub digest: Digest,
    pub source: Option<PinSource>,
}

impl ResolvedBase {
    /// The base `reference` as the lock pins it.
    pub fn pinned(reference: &WrittenReference, pin: &crate::hash::BasePin) -> ResolvedBase {
        ResolvedBase {
            reference: reference.clone(),
            digest: pin.digest.clone(),
            source: Some(pin.source),
        }
    }
}

/// Build metadata of one run (SLSA's `runDetails.metadata`). Not part of what a rebuild
/// recomputes: `apply` records it once, when it builds, and keeps it for a no-op apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildMetadata {
    pub invocation_id: Option<String>,
    /// RFC 3339, UTC (`2026-01-02T03:04:05Z`).
    pub started_on: Option<String>,
    pub finished_on: Option<String>,
}

/// Why a statement read back is not one cookbook can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the statement is {size} bytes, more than the {max} read")]
    TooLarge { size: usize, max: usize },
    /// Not JSON; `line` and `column` as serde_json counts them (1-based).
    #[error("the statement is not JSON (line {line}, column {column}): {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("`{pointer}`: {message}")]
    Field { pointer: String, message: String },
    /// A statement of another kind (another `_type` or `predicateType`).
    #[error("`{pointer}` is `{found}`, not `{expected}`")]
    Unexpected {
        pointer: &'static str,
        expected: &'static str,
        found: String,
    },
}

impl StatementError {
    fn field(pointer: impl Into<String>, message: impl Into<String>) -> StatementError {
        StatementError::Field {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// The hex of a sha256 digest (what in-toto's `{"sha256": hex}` holds).
pub(crate) fn sha256_hex(digest: &Digest) -> &str {
    digest
        .as_str()
        .strip_prefix("sha256:")
        .unwrap_or(digest.as_str())
}

/// A digest set (`{"sha256": hex}`) for `digest`; for another algorithm, its own name.
pub(crate) fn digest_set(digest: &Digest) -> BTreeMap<String, String> {
    let (algorithm, hex) = digest
        .as_str()
        .split_once(':')
        .expect("digests are algorithm:hex");
    BTreeMap::from([(algorithm.to_owned(), hex.to_owned())])
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            name: &'a str,
            digest: BTreeMap<String, String>,
        }
        Wire {
            name: &self.name,
            digest: digest_set(&self.digest),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            name: String,
            digest: BTreeMap<String, String>,
        }
        let wire = Wire::deserialize(d)?;
        let hex = wire
            .digest
            .get("sha256")
            .ok_or_else(|| serde::de::Error::custom("the subject has no sha256 digest"))?;
        let digest = Digest::parse(&format!("sha256:{hex}")).map_err(serde::de::Error::custom)?;
        Ok(Subject {
            name: wire.name,
            digest,
        })
    }
}

/// Reads `bytes` as a JSON statement of `predicate_type`, capped: the statement's value and its
/// subjects. Fields a statement may carry beyond these are ignored (newer writers may add some).
pub(crate) fn read_statement(
    bytes: &[u8],
    predicate_type: &'static str,
) -> Result<(serde_json::Value, Vec<Subject>), StatementError> {
    if bytes.len() > MAX_STATEMENT_BYTES {
        return Err(StatementError::TooLarge {
            size: bytes.len(),
            max: MAX_STATEMENT_BYTES,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| StatementError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let found = str_at(&value, "/_type")?;
    if found != STATEMENT_TYPE {
        return Err(StatementError::Unexpected {
            pointer: "/_type",
            expected: STATEMENT_TYPE,
            found: found.to_owned(),
        });
    }
    let found = str_at(&value, "/predicateType")?;
    if found != predicate_type {
        return Err(StatementError::Unexpected {
            pointer: "/predicateType",
            expected: predicate_type,
            found: found.to_owned(),
        });
    }
    let subjects = array_at(&value, "/subject")?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Subject::deserialize(s)
                .map_err(|e| StatementError::field(format!("/subject/{i}"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if subjects.is_empty() {
        return Err(StatementError::field("/subject", "names no subject"));
    }
    Ok((value, subjects))
}

pub(crate) fn at<'a>(
    value: &'a serde_json::Value,
    pointer: &str,
) -> Result<&'a serde_json::Value, StatementError> {
    value
        .pointer(pointer)
        .ok_or_else(|| StatementError::field(pointer, "missing"))
}

pub(crate) fn str_at<'a>(
    value: &'a serde_json::Value,
    pointer: &str,
) -> Result<&'a str, StatementError> {
    at(value, pointer)?
        .as_str()
        .ok_or_else(|| StatementError::field(pointer, "not a string"))
}

pub(crate) fn array_at<'a>(
    value: &'a serde_json::Value,
    pointer: &str,
) -> Result<&'a Vec<serde_json::Value>, StatementError> {
    at(value, pointer)?
        .as_array()
        .ok_or_else(|| StatementError::field(pointer, "not an array"))
}

/// Canonical bytes (RFC 8785) of a document: the same value always gives the same bytes.
pub(crate) fn canonical(value: &impl Serialize) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).expect("statements hold no non-finite numbers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_a_name_and_a_digest_set() {
        let subject = Subject {
            name: "127.0.0.1:5000/shop/api".into(),
            digest: Digest::sha256_of(b"x"),
        };
        let json = serde_json::to_string(&subject).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"name":"127.0.0.1:5000/shop/api","digest":{{"sha256":"{}"}}}}"#,
                sha256_hex(&subject.digest)
            )
        );
        let back: Subject = serde_json::from_str(&json).unwrap();
        assert_eq!(back, subject);
        let other = r#"{"name":"a","digest":{"sha512":"00"}}"#;
        assert!(serde_json::from_str::<Subject>(other).is_err());
        let short = r#"{"name":"a","digest":{"sha256":"00"}}"#;
        assert!(serde_json::from_str::<Subject>(short).is_err());
    }

    #[test]
    fn an_images_subject_is_its_repository_without_the_tag() {
        let digest = Digest::sha256_of(b"x");
        let subject = |text: &str| {
            Subject::image(&WrittenReference::parse(text).unwrap(), digest.clone()).name
        };
        assert_eq!(
            subject(&format!("127.0.0.1:5000/shop/api:{}", "a".repeat(64))),
            "127.0.0.1:5000/shop/api"
        );
        assert_eq!(subject("busybox:1"), "docker.io/library/busybox");
    }

    #[test]
    fn a_statement_of_another_kind_or_too_large_is_refused() {
        let big = vec![b' '; MAX_STATEMENT_BYTES + 1];
        assert!(matches!(
            read_statement(&big, "p"),
            Err(StatementError::TooLarge { .. })
        ));
        assert!(matches!(
            read_statement(b"{\n  nope", "p"),
            Err(StatementError::Json { line: 2, .. })
        ));
        // Nesting past serde_json's recursion limit is an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(
            read_statement(deep.as_bytes(), "p"),
            Err(StatementError::Json { .. })
        ));
        let other =
            br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[]}"#;
        assert_eq!(
            read_statement(other, "p").unwrap_err().to_string(),
            "`/_type` is `https://in-toto.io/Statement/v0.1`, not `https://in-toto.io/Statement/v1`"
        );
        let empty =
            br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[]}"#;
        assert_eq!(
            read_statement(empty, "p").unwrap_err().to_string(),
            "`/subject`: names no subject"
        );
    }
}
