//! What a registry's answers may hold in memory: the caps, and the reads that enforce them
//! (issue 20, item 7).
//!
//! Every response body the client keeps in memory is read through [`read_capped`]: a
//! `Content-Length` above the cap is refused before a byte is read, and a body without one, or
//! with one that lies, is cut at the chunk that crosses the cap — the connection is dropped,
//! never drained — as [`RegistryError::TooLarge`], naming the endpoint, the cap and what was
//! sent. Error bodies only explain a status, so [`said_by`] reads at most
//! [`MAX_ERROR_BODY_BYTES`] of one and keeps what it got. Blobs are never read into memory
//! whole except an image configuration ([`MAX_IN_MEMORY_BLOB_BYTES`]); streaming a blob to a
//! file, with its descriptor's size as the cap, is the client's (`blob_to_file`).
//!
//! Also here: the distribution spec's error codes ([`ErrorCode`]), kept as structured fields so
//! that callers decide on them, never on an error's text.

use futures_util::StreamExt;
use reqwest::{Response, Url};
use serde::Deserialize;

use super::client::{unreachable, RegistryError};
use super::origin::redact;

/// The largest manifest read: 4 MiB, the size the distribution spec says registries should
/// accept at least, and the one distribution (the reference registry, `maxManifestBodySize`)
/// refuses to store beyond — so no registry serves a larger one that a client could have put.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The largest blob read into memory ([`super::RegistryClient::blob_get`]: image
/// configurations). A configuration is JSON with one history entry per layer (at most 127 on
/// overlay2): tens of KiB in practice; 16 MiB is far above any real one and still nothing for
/// memory.
pub const MAX_IN_MEMORY_BLOB_BYTES: u64 = 16 << 20;
/// The largest token response: a JSON object with a bearer token (a JWT of a few KiB on the
/// registries we know, a little more with large claims), perhaps a refresh token and an expiry.
/// 1 MiB is hundreds of times that.
pub const MAX_TOKEN_RESPONSE_BYTES: u64 = 1 << 20;
/// The most of a tag list read, all pages together: 16 MiB holds over 100 000 tags of the
/// longest length a tag may have (128 characters), quoted.
pub const MAX_TAG_LIST_BYTES: u64 = 16 << 20;
/// The most tag list pages followed: Docker Hub pages by 100, so this is a million tags; a
/// registry whose `Link: next` never ends stops here.
pub const MAX_TAG_LIST_PAGES: usize = 10_000;
/// The most of an error body read: only its first [`MAX_MESSAGE`] characters are kept, and an
/// OCI error body is a few hundred bytes. A longer body is cut here, not refused: the error is
/// the status, the body only explains it.
pub const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;

/// What a response body is: names it in [`RegistryError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Manifest,
    /// A blob read into memory, or streamed to a file (then its cap is its descriptor's size).
    Blob,
    TokenResponse,
    TagList,
    /// A referrers list: the referrers API's answer (all pages) or the tag-schema index.
    ReferrersIndex,
}

impl std::fmt::Display for BodyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyKind::Manifest => "manifest",
            BodyKind::Blob => "blob",
            BodyKind::TokenResponse => "token response",
            BodyKind::TagList => "tag list",
            BodyKind::ReferrersIndex => "referrers index",
        })
    }
}

/// An error code of a registry's error body (`{"errors":[{"code": …}]}`): the distribution
/// spec's codes, and any other as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Other(String),
}

impl ErrorCode {
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

/// The body of `response`, at most `limit` bytes: a `Content-Length` above it is refused before
/// anything is read, and a body that goes on past it is cut at the chunk that crosses it, so
/// what is held never exceeds `limit` (the connection is dropped, not drained).
pub(super) async fn read_capped(
    endpoint: &Url,
    response: Response,
    body: BodyKind,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let declared = response.content_length();
    let too_large = |received| RegistryError::TooLarge {
        endpoint: redact(endpoint),
        body,
        limit,
        declared,
        received,
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(0));
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| unreachable(endpoint, source))?;
        let received = (bytes.len() + chunk.len()) as u64;
        if received > limit {
            return Err(too_large(received));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// One page of a paginated list (tags, referrers) whose cap `limit` holds for all its pages:
/// read with what the cap leaves after the `before` bytes of earlier pages, and a list too large
/// is said of the whole list, with what came before.
pub(super) async fn read_page_capped(
    endpoint: &Url,
    response: Response,
    body: BodyKind,
    limit: u64,
    before: u64,
) -> Result<Vec<u8>, RegistryError> {
    read_capped(endpoint, response, body, limit.saturating_sub(before))
        .await
        .map_err(|e| match e {
            RegistryError::TooLarge {
                endpoint,
                body,
                declared,
                received,
                ..
            } => RegistryError::TooLarge {
                endpoint,
                body,
                limit,
                declared: declared.map(|n| n + before),
                received: received + before,
            },
            e => e,
        })
}

/// The longest piece of a plain-text error body kept in a message.
const MAX_MESSAGE: usize = 300;

/// What a registry said in an error answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Said {
    /// The `CODE: message` of each entry of an OCI error body, else the start of the body's
    /// text on one line; `None` for an empty body.
    pub message: Option<String>,
    pub codes: Vec<ErrorCode>,
}

/// What the registry said in an error answer, from at most [`MAX_ERROR_BODY_BYTES`] of its
/// body (the rest is never read).
pub(super) async fn said_by(response: Response) -> Said {
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_ERROR_BODY_BYTES as usize - bytes.len();
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() as u64 >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    registry_said(&bytes)
}

fn registry_said(bytes: &[u8]) -> Said {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(Deserialize)]
    struct OciError {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(body) = serde_json::from_slice::<Errors>(bytes) {
        let codes = body
            .errors
            .iter()
            .filter_map(|e| e.code.as_deref())
            .map(ErrorCode::parse)
            .collect();
        let parts: Vec<String> = body
            .errors
            .into_iter()
            .map(|e| match (e.code, e.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (code, message) => code.or(message).unwrap_or_default(),
            })
            .map(|part| terminal_safe(&part))
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.is_empty() {
            return Said {
                message: Some(parts.join("; ")),
                codes,
            };
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let line = terminal_safe(&text);
    if line.is_empty() {
        return Said::default();
    }
    Said {
        message: Some(line),
        codes: Vec::new(),
    }
}

/// A registry's words as one line a terminal shows as text: white space runs collapsed, every
/// other control character escaped (`\u{1b}`: a hostile registry's ANSI sequences are printed,
/// never obeyed), at most [`MAX_MESSAGE`] characters.
fn terminal_safe(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (i, c) in line.chars().enumerate() {
        if i == MAX_MESSAGE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registrys_words_reach_the_terminal_as_text() {
        let said = registry_said(b"denied \x1b[2J\x1b]0;pwned\x07 now\r\nplease");
        assert_eq!(
            said.message.as_deref(),
            Some("denied \\u{1b}[2J\\u{1b}]0;pwned\\u{7} now please")
        );
        let said = registry_said(
            br#"{"errors":[{"code":"DENIED","message":"no \u001b[31mred\u001b[0m"}]}"#,
        );
        assert_eq!(
            said.message.as_deref(),
            Some("DENIED: no \\u{1b}[31mred\\u{1b}[0m")
        );
        let long = registry_said("x".repeat(1000).as_bytes()).message.unwrap();
        assert_eq!(long.chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn error_bodies_keep_their_codes() {
        let said = registry_said(
            br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#,
        );
        assert_eq!(
            said.codes,
            [ErrorCode::DigestInvalid, ErrorCode::ManifestBlobUnknown]
        );
        assert_eq!(
            said.message.as_deref(),
            Some("DIGEST_INVALID: provided digest did not match uploaded content; MANIFEST_BLOB_UNKNOWN: blob unknown to registry")
        );
        let plain = registry_said(b"  upstream\n  timed out ");
        assert_eq!(plain.message.as_deref(), Some("upstream timed out"));
        assert!(plain.codes.is_empty());
        assert_eq!(registry_said(b""), Said::default());
        assert_eq!(ErrorCode::parse("X_NEW"), ErrorCode::Other("X_NEW".into()));
    }
}
