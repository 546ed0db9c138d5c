//! The Registry v2 HTTP client (OCI distribution spec): manifests, blobs, tags, push access.
//!
//! Built on `reqwest` (async, on the tokio runtime the engine edge already uses, sharing its
//! hyper stack, with rustls so no system OpenSSL is needed). `ureq` compiles a little faster but
//! is blocking; every caller here is async, so reqwest avoids a thread per request.
//!
//! Every request goes through [`RegistryClient::call`], which
//! - sends credentials only where [`Origin`] admits them (issue 20, item 1): the registry's own
//!   scheme, host and port. A URL the registry hands back — an upload's `Location`, a tag
//!   list's `Link`, a redirect — that points elsewhere is sent to without any credential and
//!   answers no challenge; one that would take HTTPS to plain HTTP is refused
//!   ([`RegistryError::UnsafeUrl`]). reqwest follows redirects itself with the same rule
//!   ([`redirect_policy`]: it drops `Authorization` on a change of origin, and a downgrade is
//!   refused), so a blob GET redirected to its storage works, without credentials;
//! - authenticates on demand: a `401` with a `WWW-Authenticate` challenge is answered once
//!   (Basic: the credential; Bearer: a token fetched from the challenge's realm for the
//!   repository scope, the credential going to the realm only as [`Origin::admit_realm`]
//!   says), and the answer is cached per host and scope;
//! - retries transient failures (a transport error such as a refused or reset connection, a
//!   5xx, a 429 honouring `Retry-After` in seconds) with the exponential backoff of
//!   [`RetryPolicy`], and never retries a refusal: a 401/403, or any answer whose body says
//!   `DENIED`/`UNAUTHORIZED` or `…_UNKNOWN` (see [`crate::retry::is_permanent`]), is reported
//!   at once;
//! - keeps the registry's own words: the `message` of its OCI error body (`{"errors":[…]}`), or
//!   the start of a plain-text body, goes into the error, and its error codes into
//!   [`RegistryError::UnexpectedStatus`]'s `codes`.
//!
//! Every body read into memory has a cap, enforced while reading (issue 20, item 7; the caps
//! and the reads are `super::body`'s): a `Content-Length` above it is refused before a byte is
//! read, and a body without one, or with one that lies, is cut at the first chunk too many
//! ([`RegistryError::TooLarge`], naming the endpoint, the cap and what was sent). Blobs are
//! streamed to files and checked against their descriptor's size as they arrive, and against
//! their digest at the end. Every URL in an error is [`redact`]ed: a presigned query string is a
//! credential too.
//!
//! Retagging ([`RegistryClient::retag`]) happens in the registry: the manifest is read and put
//! back, byte for byte and with its own media type, under the new tag, so the digest cannot
//! change and no image is pulled to the machine running `cookbook`.
//!
//! Publishing ([`RegistryClient::blob_exists`], [`RegistryClient::blob_mount`],
//! [`RegistryClient::blob_upload`], [`RegistryClient::manifest_put`]) is how `apply` pushes a
//! normalized image: blobs the repository has are skipped, the base's are mounted from the
//! repository that has them, the rest are streamed from their files, then the manifest is put.
//! Why this client and not `oci-client` (which has token auth, `push_blob_stream`, `mount_blob`
//! and `push_manifest_raw`): its `RegistryAuth` has no OAuth2 refresh-token flow, so Docker
//! config `identitytoken` entries (tests/registry_credentials.rs) would stop working for pushes;
//! its errors do not keep the transient/refusal split this crate's exit codes (3 vs 1) and retry
//! policy rest on; and a second HTTP and auth stack beside this one (which `verify`, retagging
//! and the cache checks keep using) would answer the same challenge twice with two token
//! caches. What publishing needs beyond this client — four requests of the distribution spec —
//! is about 150 lines here.
//!
//! URLs are built with their path segments escaped ([`RegistryClient::url`]): a tag or digest
//! handed in as text cannot add a query or another path to a request.
//!
//! Registries on a loopback address are spoken to over plain HTTP, as the Docker engine does for
//! its default insecure range `127.0.0.0/8`; any other host over HTTPS unless named with
//! [`RegistryClient::with_plain_http`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, IF_MATCH, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{Challenge, Credential, CredentialError, CredentialStore};
use super::body::{
    read_capped, said_by, BodyKind, ErrorCode, Said, MAX_IN_MEMORY_BLOB_BYTES, MAX_MANIFEST_BYTES,
    MAX_TOKEN_RESPONSE_BYTES,
};
use super::origin::{redact, redact_text, Admission, Origin};
use crate::oci::Digest;
use crate::oci::Repository;
use crate::retry::{is_permanent, is_refusal, RetryPolicy};

/// Every manifest media type `cookbook` understands, so that the registry answers with the
/// stored manifest instead of converting it (a conversion would change the digest).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The most redirects followed for one request (reqwest's default limit, kept).
const MAX_REDIRECTS: usize = 10;

pub(super) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (after the retries). Exit code 3.
    #[error("cannot connect to the registry at {endpoint}")]
    Unreachable {
        endpoint: String,
        /// Without its URL (reqwest's text would repeat it unredacted).
        source: reqwest::Error,
    },
    /// The registry kept answering 5xx or 429 until the retries ran out. Exit code 3.
    #[error(
        "registry at {endpoint} unavailable: HTTP {status} after {attempts} attempt(s){}",
        said(message)
    )]
    Unavailable {
        endpoint: String,
        status: u16,
        attempts: u32,
        /// What the registry said with its last answer, if anything.
        message: Option<String>,
    },
    /// The registry refused the credentials (or their absence): a 401/403, or a body saying
    /// `DENIED`/`UNAUTHORIZED` whatever the status. Never retried. Exit code 1.
    #[error("not authorized by the registry at {endpoint} (HTTP {status}){}; check `docker login` or the Docker config's credentials", said(message))]
    Unauthorized {
        endpoint: String,
        status: u16,
        message: Option<String>,
    },
    #[error(
        "unexpected HTTP {status} from the registry at {endpoint}{}",
        said(message)
    )]
    UnexpectedStatus {
        endpoint: String,
        status: u16,
        message: Option<String>,
        /// The error codes of its OCI error body, in order.
        codes: Vec<ErrorCode>,
    },
    #[error("invalid response from the registry at {endpoint}: {reason}")]
    InvalidResponse { endpoint: String, reason: String },
    /// A body larger than it may be: a cap of this client ([`MAX_MANIFEST_BYTES`] and its
    /// siblings) or, for a blob, its descriptor's size. Nothing past the cap was read. Exit
    /// code 1.
    #[error(
        "the {body} from {endpoint} is larger than {limit} bytes ({}); refused",
        sent(*declared, *received)
    )]
    TooLarge {
        endpoint: String,
        body: BodyKind,
        limit: u64,
        /// Its `Content-Length`, if it sent one.
        declared: Option<u64>,
        /// The bytes received when the read stopped (0: refused on `Content-Length` alone).
        received: u64,
    },
    /// The registry handed over a URL (a `Location`, a `Link`, a redirect, a token realm) that
    /// nothing may be sent to (see [`Origin`]). Exit code 1.
    #[error("the registry at {endpoint} handed over {url}, which {reason}: not followed")]
    UnsafeUrl {
        endpoint: String,
        url: String,
        reason: &'static str,
    },
    /// The registry's host does not make a URL (a port out of range). Exit code 2.
    #[error("`{host}` cannot be a registry host: {reason}")]
    BadHost { host: String, reason: String },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("cannot set up the registry HTTP client: {source}")]
    Client { source: reqwest::Error },
    /// No manifest by that digest in the repository (an image to attach to). Exit code 1.
    #[error("the registry at {endpoint} has no manifest {digest}")]
    ManifestMissing { endpoint: String, digest: Digest },
    /// Bytes that do not hash to the digest that names them (a referrer's manifest, an
    /// artifact's payload). Exit code 1.
    #[error(
        "the {what} {expected} from {endpoint} hashes to {actual}: not the bytes its digest names"
    )]
    DigestMismatch {
        endpoint: String,
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// A referrer whose manifest is attached to another image than the one asked about. Exit
    /// code 1.
    #[error("the referrer {referrer} at {endpoint} is attached to {found}, not to {subject}")]
    OtherSubject {
        endpoint: String,
        referrer: Digest,
        subject: Digest,
        found: Digest,
    },
    /// A referrer that is not one artifact as `attach` writes them: not an OCI image manifest,
    /// no subject, not exactly one layer. Exit code 1.
    #[error("the referrer {referrer} at {endpoint} is not an artifact cookbook reads: {reason}")]
    NotAnArtifact {
        endpoint: String,
        referrer: Digest,
        reason: String,
    },
    /// A referrers list (the referrers API's answer, or the tag-schema index) that is not a
    /// valid image index. Exit code 1.
    #[error("the referrers list of {subject} at {endpoint} is not a valid image index: {reason}")]
    BadReferrersIndex {
        endpoint: String,
        subject: Digest,
        reason: String,
    },
    /// Other writers changed the tag-schema index between each read and conditional write of
    /// an attach. Exit code 1.
    #[error("the referrers tag {tag} at {endpoint} changed under each of {attempts} updates; attach again")]
    ReferrersTagContended {
        endpoint: String,
        tag: String,
        attempts: u32,
    },
}

/// What a [`RegistryError::TooLarge`] body was, in words.
fn sent(declared: Option<u64>, received: u64) -> String {
    match (declared, received) {
        (Some(n), 0) => format!("its Content-Length is {n}"),
        (Some(n), _) => format!("{received} bytes received, against a Content-Length of {n}"),
        (None, _) => format!("{received} bytes received, with no Content-Length"),
    }
}

impl RegistryError {
    /// The OCI error codes the registry answered with (none for other failures).
    pub fn codes(&self) -> &[ErrorCode] {
        match self {
            RegistryError::UnexpectedStatus { codes, .. } => codes,
            _ => &[],
        }
    }
}

/// A manifest as the registry stores it: its exact bytes and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Manifest {
    /// The digest of the image configuration blob; `None` for an image index, which has none.
    pub fn config_digest(&self) -> Option<Digest> {
        #[derive(Deserialize)]
        struct Wire {
            config: Option<Descriptor>,
        }
        #[derive(Deserialize)]
        struct Descriptor {
            digest: String,
        }
        let wire: Wire = serde_json::from_slice(&self.bytes).ok()?;
        Digest::parse(&wire.config?.digest).ok()
    }
}

/// A request body: bytes in memory (manifests), or a blob streamed from its file.
#[derive(Debug, Clone, Copy)]
pub(super) enum Content<'a> {
    Bytes(&'a str, &'a [u8]),
    /// Bytes put only if the resource still has the entity tag (`If-Match`): a referrers
    /// tag-schema index rewritten by a read-modify-write (`super::referrers`).
    BytesIfMatch(&'a str, &'a [u8], &'a str),
    File(&'a std::path::Path, u64),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// A Registry v2 client. Cheap to share (`&self` everywhere); caches credentials and tokens.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// For the one request whose body is a credential (an identity token exchanged at its
    /// realm): it follows no redirect, since reqwest resends a 307/308's body wherever it
    /// points, and that body would be the refresh token. Built the first time one is exchanged
    /// (most runs never do), not with the client.
    token_http: std::sync::OnceLock<reqwest::Client>,
    pub(super) retry: RetryPolicy,
    store: CredentialStore,
    plain_http: BTreeSet<String>,
    credentials: Mutex<BTreeMap<String, Option<Credential>>>,
    /// `(api host, scope)` → the `Authorization` header value that the registry accepted.
    authorizations: Mutex<BTreeMap<(String, String), String>>,
}

/// Why reqwest's redirect policy refused a redirect: found again in its error's sources.
#[derive(Debug)]
struct RefusedRedirect {
    url: String,
    reason: &'static str,
}

impl std::fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a redirect to {}, which {}", self.url, self.reason)
    }
}

impl std::error::Error for RefusedRedirect {}

/// reqwest's redirects under [`Origin`]'s rule. reqwest itself drops `Authorization` (and
/// cookies) when a redirect changes scheme, host or port — the same origin rule — and this
/// policy refuses what reqwest would follow: a hop from HTTPS anywhere in the chain to plain
/// HTTP, or to a scheme other than HTTP(S).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match redirect_verdict(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// Whether a redirect to `next` may be followed after `previous` (the request's own URL first):
/// not when any of them would hand `next` nothing ([`Admission::Refused`]).
fn redirect_verdict(previous: &[Url], next: &Url) -> Result<(), RefusedRedirect> {
    let refused = previous
        .iter()
        .find_map(|url| match Origin::of(url).map(|o| o.admit(next)) {
            Some(Admission::Refused(reason)) => Some(reason),
            _ => None,
        });
    match refused {
        Some(reason) => Err(RefusedRedirect {
            url: redact(next),
            reason,
        }),
        None => Ok(()),
    }
}

/// The HTTP client's settings, shared by the registry client and the token exchange's.
fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("cookbook/", env!("CARGO_PKG_VERSION")))
        // A redirect's `Referer` would carry the registry URL, query included, to whatever host
        // the redirect names.
        .referer(false)
        // reqwest's TLS setup with the root certificates loaded at the first handshake, not
        // here (see super::tls).
        .tls_backend_preconfigured(super::tls::client_config())
}

impl RegistryClient {
    /// The client of the identity-token exchange (see the field), built on first use.
    fn token_http(&self) -> Result<&reqwest::Client, RegistryError> {
        if let Some(client) = self.token_http.get() {
            return Ok(client);
        }
        let client = http_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| RegistryError::Client { source })?;
        Ok(self.token_http.get_or_init(|| client))
    }

    /// A client reading credentials from the Docker config, with the default retry policy.
    pub fn new() -> Result<RegistryClient, RegistryError> {
        let http = http_builder()
            .redirect(redirect_policy())
            .build()
            .map_err(|source| RegistryError::Client { source })?;
        Ok(RegistryClient {
            http,
            token_http: std::sync::OnceLock::new(),
            retry: RetryPolicy::default(),
            store: CredentialStore::default(),
            plain_http: BTreeSet::new(),
            credentials: Mutex::new(BTreeMap::new()),
            authorizations: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> RegistryClient {
        self.retry = retry;
        self
    }

    pub fn with_credentials(mut self, store: CredentialStore) -> RegistryClient {
        self.store = store;
        self
    }

    /// Speak plain HTTP to `host[:port]` (an insecure registry that is not on loopback).
    pub fn with_plain_http(mut self, host: &str) -> RegistryClient {
        self.plain_http.insert(host.to_owned());
        self
    }

    /// The digest of the manifest `reference` (a tag or a digest) names, or `None` if the
    /// registry has no such manifest.
    pub async fn manifest_head(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let url = self.url(repo, &["manifests", reference])?;
        let response = self
            .call(Method::HEAD, repo, &url, Access::Pull, true)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => match response.headers().get(DOCKER_CONTENT_DIGEST) {
                Some(value) => {
                    let text = value.to_str().unwrap_or_default();
                    Digest::parse(text)
                        .map(Some)
                        .map_err(|e| invalid(&url, e.to_string()))
                }
                // The header is optional in the OCI spec: hash the manifest itself.
                None => Ok(self
                    .manifest_get(repo, reference)
                    .await?
                    .map(|manifest| manifest.digest)),
            },
            _ => Err(unexpected(&url, response).await),
        }
    }

    /// The manifest `reference` names, or `None` if the registry has none. Its digest is
    /// computed from the bytes received, and checked against what the registry claims.
    pub async fn manifest_get(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        self.fetch_manifest(repo, reference, Access::Pull).await
    }

    /// [`Self::manifest_get`] with the access scope of the caller's next step (a retag reads
    /// with the push token it then writes with).
    async fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        access: Access,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(repo, &["manifests", reference])?;
        let response = self.call(Method::GET, repo, &url, access, true).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            _ => return Err(unexpected(&url, response).await),
        }
        let claimed = header(&response, DOCKER_CONTENT_DIGEST);
        let content_type = header(&response, CONTENT_TYPE.as_str());
        let bytes = read_capped(&url, response, BodyKind::Manifest, MAX_MANIFEST_BYTES).await?;
        let digest = Digest::sha256_of(&bytes);
        for expected in [
            claimed.as_deref(),
            Some(reference).filter(|r| r.contains(':')),
        ]
        .into_iter()
        .flatten()
        {
            if expected != digest.as_str() && expected.starts_with("sha256:") {
                return Err(invalid(
                    &url,
                    format!("manifest digest is {digest}, expected {expected}"),
                ));
            }
        }
        let media_type = content_type.unwrap_or_default();
        Ok(Some(Manifest {
            digest,
            media_type,
            bytes,
        }))
    }

    /// The blob `digest` (for example an image configuration), at most
    /// [`MAX_IN_MEMORY_BLOB_BYTES`], checked against its digest; `None` if the registry has no
    /// such blob.
    pub async fn blob_get(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = self.url(repo, &["blobs", digest.as_str()])?;
        let response = self
            .call(Method::GET, repo, &url, Access::Pull, false)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            _ => return Err(unexpected(&url, response).await),
        }
        let bytes = read_capped(&url, response, BodyKind::Blob, MAX_IN_MEMORY_BLOB_BYTES).await?;
        if !digest.matches(&bytes) {
            return Err(invalid(
                &url,
                format!("blob content does not match {digest}"),
            ));
        }
        Ok(Some(bytes))
    }

    /// The labels of the image `reference` names (from its configuration blob), or `None` if
    /// the registry has no such manifest. An image index has no labels of its own: an error.
    pub async fn image_labels(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RegistryError> {
        #[derive(Deserialize)]
        struct ImageConfig {
            config: Option<RunConfig>,
        }
        #[derive(Deserialize)]
        struct RunConfig {
            #[serde(rename = "Labels")]
            labels: Option<BTreeMap<String, String>>,
        }
        let Some(manifest) = self.manifest_get(repo, reference).await? else {
            return Ok(None);
        };
        let url = self.url(repo, &["manifests", reference])?;
        let config = manifest.config_digest().ok_or_else(|| {
            invalid(
                &url,
                format!("{} has no image configuration", manifest.media_type),
            )
        })?;
        let blob = self
            .blob_get(repo, &config)
            .await?
            .ok_or_else(|| invalid(&url, format!("configuration blob {config} is missing")))?;
        let parsed: ImageConfig = serde_json::from_slice(&blob)
            .map_err(|e| invalid(&url, format!("image configuration: {e}")))?;
        Ok(Some(
            parsed.config.and_then(|c| c.labels).unwrap_or_default(),
        ))
    }

    /// Opens a blob upload session in `repo` (POST; 202 with a Location) and returns its URL.
    async fn start_upload(&self, repo: &Repository) -> Result<Url, RegistryError> {
        let start = self.url(repo, &["blobs", "uploads", ""])?;
        let response = self
            .call(Method::POST, repo, &start, Access::Push, false)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(unexpected(&start, response).await);
        }
        let location = header(&response, LOCATION.as_str())
            .ok_or_else(|| invalid(&start, "upload started without a Location".into()))?;
        self.handed_over(repo, &start, &location)
    }

    /// Proves that the credentials may push to `repo` without pushing anything: starts a blob
    /// upload, then cancels it. A refusal is [`RegistryError::Unauthorized`], at once.
    pub async fn check_push_access(&self, repo: &Repository) -> Result<(), RegistryError> {
        let upload = self.start_upload(repo).await?;
        // Cancelling is a courtesy: the registry purges abandoned uploads on its own, and push
        // access is already proven, so a failure here changes nothing for the caller.
        let _ = self
            .call(Method::DELETE, repo, &upload, Access::Push, false)
            .await;
        Ok(())
    }

    /// Whether `repo` has the blob `digest` (a HEAD, no body read).
    pub async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repo, &["blobs", digest.as_str()])?;
        let response = self
            .call(Method::HEAD, repo, &url, Access::Push, false)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => Err(unexpected(&url, response).await),
        }
    }

    /// Links the blob `digest` that `from` (a repository of the same registry) holds into
    /// `repo` without uploading it (OCI distribution, "mounting a blob from another
    /// repository"). `false` when the registry declined (it does not have the blob there, or
    /// does not mount): the upload session it opened instead is cancelled, and the caller uploads.
    pub async fn blob_mount(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<bool, RegistryError> {
        if from.api_host() != repo.api_host() {
            return Ok(false);
        }
        let mut url = self.url(repo, &["blobs", "uploads", ""])?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from.path());
        let response = self
            .call(Method::POST, repo, &url, Access::Push, false)
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = header(&response, LOCATION.as_str()) {
                    let upload = self.handed_over(repo, &url, &location)?;
                    // A courtesy, as in check_push_access: abandoned uploads are purged anyway.
                    let _ = self
                        .call(Method::DELETE, repo, &upload, Access::Push, false)
                        .await;
                }
                Ok(false)
            }
            _ => Err(unexpected(&url, response).await),
        }
    }

    /// Uploads the blob in the file `path` (`size` bytes, whose SHA-256 is `digest`) to `repo`:
    /// a POST opens the session, one PUT streams the whole file and closes it with the digest
    /// (the spec's monolithic upload; every registry serves it, and a single request is what a
    /// fast link wants). The file is streamed, never read into memory; the registry checks the
    /// digest and refuses a blob that does not match it.
    pub async fn blob_upload(
        &self,
        repo: &Repository,
        digest: &Digest,
        path: &std::path::Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        self.upload(repo, digest, Content::File(path, size)).await
    }

    /// Uploads `bytes`, whose SHA-256 is `digest`, as a blob of `repo`: a small one held in
    /// memory (an attestation's envelope, the empty config), the same monolithic upload.
    pub(super) async fn blob_put(
        &self,
        repo: &Repository,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        self.upload(
            repo,
            digest,
            Content::Bytes("application/octet-stream", bytes),
        )
        .await
    }

    /// The monolithic upload of [`Self::blob_upload`] and [`Self::blob_put`]: a POST opens the
    /// session, one PUT sends `content` and closes it with the digest.
    async fn upload(
        &self,
        repo: &Repository,
        digest: &Digest,
        content: Content<'_>,
    ) -> Result<(), RegistryError> {
        let mut upload = self.start_upload(repo).await?;
        upload
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let response = self
            .call_with(
                Method::PUT,
                repo,
                &upload,
                Access::Push,
                false,
                Some(content),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(unexpected(&upload, response).await);
        }
        Ok(())
    }

    /// Puts `bytes` as the manifest `reference` (a tag) of `repo` with `media_type`. Returns
    /// its digest, computed here and checked against what the registry answers.
    pub async fn manifest_put(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = self.url(repo, &["manifests", reference])?;
        let digest = Digest::sha256_of(bytes);
        let response = self
            .call_with(
                Method::PUT,
                repo,
                &url,
                Access::Push,
                false,
                Some(Content::Bytes(media_type, bytes)),
            )
            .await?;
        if !response.status().is_success() {
            return Err(unexpected(&url, response).await);
        }
        match header(&response, DOCKER_CONTENT_DIGEST) {
            Some(answered) if answered != digest.as_str() => Err(invalid(
                &url,
                format!("the registry stored {reference} as {answered}, not as {digest}"),
            )),
            _ => Ok(digest),
        }
    }

    /// Writes the blob `digest` of `repo`, `size` bytes by its descriptor, into the file `path`,
    /// streaming: the read stops at the first byte past `size`, and what was written is checked
    /// against the digest. `false` if the registry has no such blob (nothing is written then).
    /// On an error the file may hold part of the blob: callers write to a temporary file.
    pub async fn blob_to_file(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        path: &std::path::Path,
    ) -> Result<bool, RegistryError> {
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt;
        let url = self.url(repo, &["blobs", digest.as_str()])?;
        let response = self
            .call(Method::GET, repo, &url, Access::Pull, false)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(false),
            StatusCode::OK => {}
            _ => return Err(unexpected(&url, response).await),
        }
        // The answer's own URL: a redirect to storage is where the bytes come from.
        let source = response.url().clone();
        let declared = response.content_length();
        let too_large = |received| RegistryError::TooLarge {
            endpoint: redact(&source),
            body: BodyKind::Blob,
            limit: size,
            declared,
            received,
        };
        if declared.is_some_and(|n| n > size) {
            return Err(too_large(0));
        }
        let local =
            |e: std::io::Error| invalid(&url, format!("cannot write {}: {e}", path.display()));
        let mut file = tokio::fs::File::create(path).await.map_err(local)?;
        let mut hasher = sha2::Sha256::new();
        let mut received: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| unreachable(&url, source))?;
            received += chunk.len() as u64;
            if received > size {
                return Err(too_large(received));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        if received < size {
            return Err(invalid(
                &source,
                format!("blob {digest} ended after {received} of its {size} bytes"),
            ));
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest.as_str() {
            return Err(invalid(
                &source,
                format!("blob content hashes to {actual}, not {digest}"),
            ));
        }
        Ok(true)
    }

    /// Points `tag` at the manifest `source` (a tag or digest) names, inside the registry: a
    /// manifest GET, then a PUT of exactly the bytes received, with the media type they came
    /// with, under `tag`. Returns the digest, which is the source's by construction (and checked
    /// against what the registry answers). Works for every media type in
    /// [`MANIFEST_MEDIA_TYPES`]: an image index or manifest list is retagged whole.
    pub async fn retag(
        &self,
        repo: &Repository,
        source: &str,
        tag: &str,
    ) -> Result<Digest, RegistryError> {
        let source_url = self.url(repo, &["manifests", source])?;
        let manifest = self
            .fetch_manifest(repo, source, Access::Push)
            .await?
            .ok_or_else(|| RegistryError::UnexpectedStatus {
                endpoint: redact(&source_url),
                status: StatusCode::NOT_FOUND.as_u16(),
                message: Some(format!("no manifest {source} to tag {tag} from")),
                codes: Vec::new(),
            })?;
        let media_type = manifest_media_type(&manifest).ok_or_else(|| {
            invalid(
                &source_url,
                "the manifest names no media type (neither Content-Type nor mediaType)".into(),
            )
        })?;
        let url = self.url(repo, &["manifests", tag])?;
        let response = self
            .call_with(
                Method::PUT,
                repo,
                &url,
                Access::Push,
                false,
                Some(Content::Bytes(&media_type, &manifest.bytes)),
            )
            .await?;
        if !response.status().is_success() {
            return Err(unexpected(&url, response).await);
        }
        match header(&response, DOCKER_CONTENT_DIGEST) {
            Some(answered) if answered != manifest.digest.as_str() => Err(invalid(
                &url,
                format!(
                    "the registry stored {tag} as {answered}, not as {}",
                    manifest.digest
                ),
            )),
            _ => Ok(manifest.digest),
        }
    }

    /// `<scheme>://<api host>/v2/<repository path>/<segments…>`, each segment escaped: a tag or
    /// digest handed in as text stays one path segment.
    pub(super) fn url(&self, repo: &Repository, segments: &[&str]) -> Result<Url, RegistryError> {
        let host = repo.api_host();
        let scheme = if is_loopback(host) || self.plain_http.contains(host) {
            "http"
        } else {
            "https"
        };
        let mut url =
            Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| RegistryError::BadHost {
                host: host.to_owned(),
                reason: e.to_string(),
            })?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| RegistryError::BadHost {
                    host: host.to_owned(),
                    reason: "not a base URL".into(),
                })?;
            path.pop_if_empty();
            path.extend(repo.path().split('/'));
            path.extend(segments);
        }
        Ok(url)
    }

    /// The origin `repo`'s credentials are bound to.
    fn origin(&self, repo: &Repository) -> Result<(Url, Origin), RegistryError> {
        let base = self.url(repo, &[])?;
        let origin = Origin::of(&base).ok_or_else(|| RegistryError::BadHost {
            host: repo.api_host().to_owned(),
            reason: "no origin".into(),
        })?;
        Ok((base, origin))
    }

    /// `location`, a URL the registry answered `from` with (absolute, or relative to `from`),
    /// if anything may be sent to it at all ([`Origin::admit`]).
    pub(super) fn handed_over(
        &self,
        repo: &Repository,
        from: &Url,
        location: &str,
    ) -> Result<Url, RegistryError> {
        let url = from
            .join(location)
            .map_err(|e| invalid(from, format!("bad URL `{}`: {e}", redact_text(location))))?;
        let (_, origin) = self.origin(repo)?;
        match origin.admit(&url) {
            Admission::Refused(reason) => Err(RegistryError::UnsafeUrl {
                endpoint: redact(from),
                url: redact(&url),
                reason,
            }),
            Admission::WithCredentials | Admission::WithoutCredentials => Ok(url),
        }
    }

    /// One request: authenticated on the registry's own origin (answering one challenge, then
    /// reporting 401/403 as [`RegistryError::Unauthorized`]), anonymous anywhere else.
    /// Transient failures are retried in [`Self::send`].
    pub(super) async fn call(
        &self,
        method: Method,
        repo: &Repository,
        url: &Url,
        access: Access,
        manifest: bool,
    ) -> Result<Response, RegistryError> {
        self.call_with(method, repo, url, access, manifest, None)
            .await
    }

    /// [`Self::call`] with a request body and its content type.
    pub(super) async fn call_with(
        &self,
        method: Method,
        repo: &Repository,
        url: &Url,
        access: Access,
        manifest: bool,
        content: Option<Content<'_>>,
    ) -> Result<Response, RegistryError> {
        self.call_retried(method, repo, url, access, manifest, content, &self.retry)
            .await
    }

    /// [`Self::call_with`] under `retry` instead of the client's policy: a request whose
    /// failure has a cheaper answer than waiting (`super::tags`' listing, with a fallback)
    /// tries once.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call_retried(
        &self,
        method: Method,
        repo: &Repository,
        url: &Url,
        access: Access,
        manifest: bool,
        content: Option<Content<'_>>,
        retry: &RetryPolicy,
    ) -> Result<Response, RegistryError> {
        let (base, origin) = self.origin(repo)?;
        let own_origin = match origin.admit(url) {
            Admission::WithCredentials => true,
            Admission::WithoutCredentials => false,
            Admission::Refused(reason) => {
                return Err(RegistryError::UnsafeUrl {
                    endpoint: redact(&base),
                    url: redact(url),
                    reason,
                })
            }
        };
        let scope = format!("repository:{}:{}", repo.path(), access.actions());
        let key = (repo.api_host().to_owned(), scope.clone());
        let mut authorization = if own_origin {
            self.known_authorization(&key, repo, access)
        } else {
            None
        };
        // Elsewhere, a challenge is never answered: that would hand it the credentials.
        let mut challenged = !own_origin;
        loop {
            let response = self
                .send(url, retry, || {
                    self.request(&method, url, manifest, authorization.as_deref(), &content)
                })
                .await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = header(&response, WWW_AUTHENTICATE.as_str())
                    .as_deref()
                    .and_then(Challenge::parse);
                if let Some(challenge) = challenge {
                    let credential = self.credential_for(repo).await?;
                    if let Some(value) = self
                        .authorize(challenge, credential.as_ref(), &scope, &origin, url)
                        .await?
                    {
                        lock(&self.authorizations).insert(key.clone(), value.clone());
                        authorization = Some(value);
                        continue;
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                if own_origin {
                    lock(&self.authorizations).remove(&key);
                }
                return Err(RegistryError::Unauthorized {
                    endpoint: redact(url),
                    status: status.as_u16(),
                    message: said_by(response).await.message,
                });
            }
            return Ok(response);
        }
    }

    /// The authorization already obtained for `key` (registry host, scope), if any.
    fn known_authorization(
        &self,
        key: &(String, String),
        repo: &Repository,
        access: Access,
    ) -> Option<String> {
        let known = lock(&self.authorizations);
        known.get(key).cloned().or_else(|| match access {
            // A push token covers pulls of the same repository: reuse it rather than
            // fetching a second token per repository (a refusal still falls back below).
            Access::Pull => {
                let push = format!("repository:{}:{}", repo.path(), Access::Push.actions());
                known.get(&(key.0.clone(), push)).cloned()
            }
            Access::Push => None,
        })
    }

    /// One attempt's request: its headers, and its body when it has one.
    fn request(
        &self,
        method: &Method,
        url: &Url,
        manifest: bool,
        authorization: Option<&str>,
        content: &Option<Content<'_>>,
    ) -> RequestBuilder {
        let mut request = self.http.request(method.clone(), url.clone());
        if manifest {
            request = request.header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        }
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        match content {
            Some(Content::Bytes(content_type, bytes)) => request
                .header(CONTENT_TYPE, *content_type)
                .body(bytes.to_vec()),
            Some(Content::BytesIfMatch(content_type, bytes, etag)) => request
                .header(CONTENT_TYPE, *content_type)
                .header(IF_MATCH, *etag)
                .body(bytes.to_vec()),
            Some(Content::File(path, size)) => request
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, *size)
                .body(file_body(path)),
            None => request,
        }
    }

    /// The `Authorization` header value answering `challenge`, which the registry at `origin`
    /// sent for `url`; `None` when there is nothing to answer it with (Basic without a user name
    /// and password). The credential goes to a Bearer realm only as
    /// [`Origin::admit_realm`] allows; elsewhere a token is asked for anonymously.
    async fn authorize(
        &self,
        challenge: Challenge,
        credential: Option<&Credential>,
        scope: &str,
        origin: &Origin,
        url: &Url,
    ) -> Result<Option<String>, RegistryError> {
        let (realm, service, challenge_scope) = match challenge {
            Challenge::Basic => {
                return Ok(match credential {
                    Some(Credential::Basic { username, password }) => Some(format!(
                        "Basic {}",
                        BASE64_STANDARD.encode(format!("{username}:{password}"))
                    )),
                    _ => None,
                });
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => (realm, service, scope),
        };
        // The challenge's scope is what the registry wants for this very request.
        let scope = challenge_scope.unwrap_or_else(|| scope.to_owned());
        let mut params: Vec<(&str, &str)> = vec![("scope", &scope)];
        if let Some(service) = &service {
            params.push(("service", service));
        }
        let endpoint = Url::parse(&realm).map_err(|e| RegistryError::InvalidResponse {
            endpoint: redact(url),
            reason: format!("token realm `{}` is not a URL: {e}", redact_text(&realm)),
        })?;
        let credential = match origin.admit_realm(&endpoint) {
            Admission::WithCredentials => credential,
            Admission::WithoutCredentials => None,
            Admission::Refused(reason) => {
                return Err(RegistryError::UnsafeUrl {
                    endpoint: redact(url),
                    url: redact(&endpoint),
                    reason,
                })
            }
        };
        let token = self.token(&endpoint, &params, credential).await?;
        Ok(Some(format!("Bearer {token}")))
    }

    /// A Bearer token from the realm `endpoint`, asked with `params` and `credential`.
    async fn token(
        &self,
        endpoint: &Url,
        params: &[(&str, &str)],
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        // Docker's OAuth2 flow: an identity token is a refresh token, posted to the realm.
        let refresh = match credential {
            Some(Credential::IdentityToken(token)) => Some((self.token_http()?, token)),
            _ => None,
        };
        let response = self
            .send(endpoint, &self.retry, || match (refresh, credential) {
                (Some((client, token)), _) => {
                    let mut form = params.to_vec();
                    form.extend([
                        ("grant_type", "refresh_token"),
                        ("client_id", "cookbook"),
                        ("refresh_token", token.as_str()),
                    ]);
                    client.post(endpoint.clone()).form(&form)
                }
                (None, Some(Credential::Basic { username, password })) => self
                    .http
                    .get(endpoint.clone())
                    .query(params)
                    .basic_auth(username, Some(password)),
                (None, _) => self.http.get(endpoint.clone()).query(params),
            })
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                endpoint: redact(endpoint),
                status: status.as_u16(),
                message: said_by(response).await.message,
            });
        }
        if !status.is_success() {
            return Err(unexpected(endpoint, response).await);
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_capped(
            endpoint,
            response,
            BodyKind::TokenResponse,
            MAX_TOKEN_RESPONSE_BYTES,
        )
        .await?;
        let token: Token = serde_json::from_slice(&body)
            .map_err(|e| invalid(endpoint, format!("token response: {e}")))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(endpoint, "token response has no token".into()))
    }

    /// Sends the request `make` builds, again after a backoff while it fails transiently.
    async fn send(
        &self,
        endpoint: &Url,
        retry: &RetryPolicy,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match make().send().await {
                Err(source) if source.is_builder() => {
                    return Err(invalid(
                        endpoint,
                        format!("cannot build request: {}", source.without_url()),
                    ));
                }
                // A redirect refused by policy is the registry's answer, not a transient failure.
                Err(source) if source.is_redirect() => {
                    let refused = std::iter::successors(
                        Some(&source as &(dyn std::error::Error + 'static)),
                        |e| e.source(),
                    )
                    .find_map(|e| e.downcast_ref::<RefusedRedirect>());
                    return Err(match refused {
                        Some(refused) => RegistryError::UnsafeUrl {
                            endpoint: redact(endpoint),
                            url: refused.url.clone(),
                            reason: refused.reason,
                        },
                        None => invalid(endpoint, format!("more than {MAX_REDIRECTS} redirects")),
                    });
                }
                Err(source) => match retry.backoff(attempt, None) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(unreachable(endpoint, source)),
                },
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    let status = response.status().as_u16();
                    let retry_after = header(&response, RETRY_AFTER.as_str())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let Said { message, codes } = said_by(response).await;
                    // Some registries put a refusal (or "unknown") behind a 5xx; no retry
                    // changes a "denied".
                    if let Some(said) = message.as_deref().filter(|m| is_permanent(m)) {
                        return Err(if is_refusal(said) {
                            RegistryError::Unauthorized {
                                endpoint: redact(endpoint),
                                status,
                                message,
                            }
                        } else {
                            RegistryError::UnexpectedStatus {
                                endpoint: redact(endpoint),
                                status,
                                message,
                                codes,
                            }
                        });
                    }
                    match retry.backoff(attempt, retry_after) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => {
                            return Err(RegistryError::Unavailable {
                                endpoint: redact(endpoint),
                                status,
                                attempts: attempt,
                                message,
                            })
                        }
                    }
                }
                Ok(response) => return Ok(response),
            }
        }
    }

    /// The credential this client uses for `repo`'s registry (looked up once, then cached);
    /// `apply` hands the same one to the engine's push.
    pub async fn credential_for(
        &self,
        repo: &Repository,
    ) -> Result<Option<Credential>, RegistryError> {
        let key = repo.credentials_key().to_owned();
        if let Some(known) = lock(&self.credentials).get(&key) {
            return Ok(known.clone());
        }
        // A credential helper is a child process: keep it off the executor's threads.
        let store = self.store.clone();
        let lookup_key = key.clone();
        let found = tokio::task::spawn_blocking(move || store.lookup(&lookup_key))
            .await
            .map_err(|e| RegistryError::InvalidResponse {
                endpoint: key.clone(),
                reason: format!("credential lookup did not finish: {e}"),
            })??;
        lock(&self.credentials).insert(key, found.clone());
        Ok(found)
    }
}

/// A blob file as a request body: opened afresh for every attempt, so a retried or
/// re-authorized upload sends the whole blob again; streamed, never read into memory.
fn file_body(path: &std::path::Path) -> reqwest::Body {
    match std::fs::File::open(path) {
        Ok(file) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            256 * 1024,
        )),
        Err(e) => reqwest::Body::wrap_stream(futures_util::stream::once(async move {
            Err::<bytes::Bytes, _>(e)
        })),
    }
}

/// A poisoned lock only means another request panicked mid-insert of a cache entry; the map is
/// still valid, so carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(super) fn unreachable(endpoint: &Url, source: reqwest::Error) -> RegistryError {
    RegistryError::Unreachable {
        endpoint: redact(endpoint),
        source: source.without_url(),
    }
}

/// An answer the caller has no use for, with what the registry said in it. A refusal in the
/// body (`DENIED`) is an authorization failure whatever the status.
pub(super) async fn unexpected(endpoint: &Url, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    let Said { message, codes } = said_by(response).await;
    if message.as_deref().is_some_and(is_refusal) {
        return RegistryError::Unauthorized {
            endpoint: redact(endpoint),
            status,
            message,
        };
    }
    RegistryError::UnexpectedStatus {
        endpoint: redact(endpoint),
        status,
        message,
        codes,
    }
}

/// `: <message>` for an error's text, or nothing.
fn said(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

/// The media type to put a manifest back with: the one the registry served it with, else its
/// own `mediaType` field (required for an OCI index, optional for an OCI image manifest).
pub(super) fn manifest_media_type(manifest: &Manifest) -> Option<String> {
    let served = manifest
        .media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if MANIFEST_MEDIA_TYPES.contains(&served) {
        return Some(served.to_owned());
    }
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Wire>(&manifest.bytes)
        .ok()
        .and_then(|w| w.media_type)
        .filter(|m| !m.is_empty())
        .or_else(|| (!served.is_empty()).then(|| served.to_owned()))
}

pub(super) fn invalid(endpoint: &Url, reason: String) -> RegistryError {
    RegistryError::InvalidResponse {
        endpoint: redact(endpoint),
        reason,
    }
}

/// Whether `host[:port]` is a loopback address.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example",
            "10.0.0.1:5000",
            "localhost.example",
            "[fe80::1]",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        let client = RegistryClient::new()
            .unwrap()
            .with_plain_http("reg.lan:5000");
        let local = Repository::parse("127.0.0.1:5000/a/b").unwrap();
        let lan = Repository::parse("reg.lan:5000/a").unwrap();
        let remote = Repository::parse("ghcr.io/o/r").unwrap();
        assert_eq!(
            client.url(&local, &["tags", "list"]).unwrap().as_str(),
            "http://127.0.0.1:5000/v2/a/b/tags/list"
        );
        assert_eq!(
            client.url(&lan, &["x"]).unwrap().as_str(),
            "http://reg.lan:5000/v2/a/x"
        );
        assert_eq!(
            client.url(&remote, &["x"]).unwrap().as_str(),
            "https://ghcr.io/v2/o/r/x"
        );
    }

    #[test]
    fn a_reference_stays_one_path_segment() {
        let client = RegistryClient::new().unwrap();
        let repo = Repository::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(
            client
                .url(&repo, &["manifests", "v1?x=1#f/../../c"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/v2/a/b/manifests/v1%3Fx=1%23f%2F..%2F..%2Fc"
        );
        assert_eq!(
            client
                .url(&repo, &["blobs", "uploads", ""])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/"
        );
        // A port no URL can have: an error naming the host, not a panic.
        let bad = Repository::parse("127.0.0.1:99999/a").unwrap();
        assert!(matches!(
            client.url(&bad, &["x"]),
            Err(RegistryError::BadHost { .. })
        ));
    }

    #[test]
    fn redirects_never_leave_https_for_plain_http() {
        let url = |u: &str| Url::parse(u).unwrap();
        let registry = url("https://registry.example/v2/a/blobs/sha256:ab");
        let storage = url("https://storage.example/b?X-Amz-Signature=secret");
        assert!(redirect_verdict(std::slice::from_ref(&registry), &storage).is_ok());
        // HTTPS, then HTTPS elsewhere, then plain HTTP: refused, whichever hop went plain.
        let refused = redirect_verdict(
            &[registry.clone(), storage.clone()],
            &url("http://cdn.example/b?sig=secret"),
        )
        .unwrap_err();
        assert_eq!(refused.reason, "would downgrade HTTPS to plain HTTP");
        assert_eq!(refused.url, "http://cdn.example/b?sig=…");
        // A plain registry may redirect anywhere over HTTP(S); reqwest drops its credentials.
        let plain = url("http://127.0.0.1:5000/v2/a/blobs/sha256:ab");
        assert!(
            redirect_verdict(std::slice::from_ref(&plain), &url("http://127.0.0.2:9/b")).is_ok()
        );
        assert!(redirect_verdict(&[plain], &url("file:///etc/passwd")).is_err());
    }

    #[test]
    fn too_large_says_what_was_sent() {
        let error = RegistryError::TooLarge {
            endpoint: "http://h/v2/a/manifests/1".into(),
            body: BodyKind::Manifest,
            limit: MAX_MANIFEST_BYTES,
            declared: None,
            received: 4_194_400,
        };
        assert_eq!(
            error.to_string(),
            "the manifest from http://h/v2/a/manifests/1 is larger than 4194304 bytes (4194400 bytes received, with no Content-Length); refused"
        );
        assert_eq!(sent(Some(9_000_000), 0), "its Content-Length is 9000000");
        assert_eq!(
            sent(Some(10), 4_194_400),
            "4194400 bytes received, against a Content-Length of 10"
        );
    }

    #[test]
    fn manifest_config_digest() {
        let config = Digest::sha256_of(b"{}");
        let manifest = Manifest {
            digest: Digest::sha256_of(b"m"),
            media_type: MANIFEST_MEDIA_TYPES[3].into(),
            bytes: format!(r#"{{"schemaVersion":2,"config":{{"digest":"{config}"}},"layers":[]}}"#)
                .into_bytes(),
        };
        assert_eq!(manifest.config_digest(), Some(config));
        let index = Manifest {
            bytes: br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
            ..manifest
        };
        assert_eq!(index.config_digest(), None);
    }
}
