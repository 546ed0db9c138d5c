//! The Registry v2 HTTP client (OCI distribution spec): manifests, blobs, tags, push access.
//!
//! Built on `reqwest` (async, on the tokio runtime the engine edge already uses, sharing its
//! hyper stack, with rustls so no system OpenSSL is needed). `ureq` compiles a little faster but
//! is blocking; every caller here is async, so reqwest avoids a thread per request.
//!
//! Every request goes through [`RegistryClient::call`], which
//! - authenticates on demand: a `401` with a `WWW-Authenticate` challenge is answered once
//!   (Basic: the credential; Bearer: a token fetched from the challenge's realm for the
//!   repository scope), and the answer is cached per host and scope;
//! - retries transient failures (a transport error such as a refused or reset connection, a
//!   5xx, a 429 honouring `Retry-After` in seconds) with the exponential backoff of
//!   [`RetryPolicy`], and never retries a 401/403, which is reported at once.
//!
//! Registries on a loopback address are spoken to over plain HTTP, as the Docker engine does for
//! its default insecure range `127.0.0.0/8`; any other host over HTTPS unless named with
//! [`RegistryClient::with_plain_http`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{Challenge, Credential, CredentialError, CredentialStore};
use super::digest::Digest;
use super::reference::Repository;
use crate::retry::RetryPolicy;

/// Every manifest media type `cookbook` understands, so that the registry answers with the
/// stored manifest instead of converting it (a conversion would change the digest).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (after the retries). Exit code 3.
    #[error("registry unreachable at {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        source: reqwest::Error,
    },
    /// The registry kept answering 5xx or 429 until the retries ran out. Exit code 3.
    #[error("registry at {endpoint} unavailable: HTTP {status} after {attempts} attempt(s)")]
    Unavailable {
        endpoint: String,
        status: u16,
        attempts: u32,
    },
    /// The registry refused the credentials (or their absence). Never retried. Exit code 1.
    #[error("not authorized by the registry at {endpoint} (HTTP {status}); check `docker login` or the Docker config's credentials")]
    Unauthorized { endpoint: String, status: u16 },
    #[error("unexpected HTTP {status} from the registry at {endpoint}")]
    UnexpectedStatus { endpoint: String, status: u16 },
    #[error("invalid response from the registry at {endpoint}: {reason}")]
    InvalidResponse { endpoint: String, reason: String },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("cannot set up the registry HTTP client: {source}")]
    Client { source: reqwest::Error },
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

#[derive(Debug, Clone, Copy)]
enum Access {
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
    retry: RetryPolicy,
    store: CredentialStore,
    plain_http: BTreeSet<String>,
    credentials: Mutex<BTreeMap<String, Option<Credential>>>,
    /// `(api host, scope)` → the `Authorization` header value that the registry accepted.
    authorizations: Mutex<BTreeMap<(String, String), String>>,
}

impl RegistryClient {
    /// A client reading credentials from the Docker config, with the default retry policy.
    pub fn new() -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("cookbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RegistryError::Client { source })?;
        Ok(RegistryClient {
            http,
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
        let url = self.url(repo, &format!("manifests/{reference}"));
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
            status => Err(unexpected(&url, status)),
        }
    }

    /// The manifest `reference` names, or `None` if the registry has none. Its digest is
    /// computed from the bytes received, and checked against what the registry claims.
    pub async fn manifest_get(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let response = self
            .call(Method::GET, repo, &url, Access::Pull, true)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            status => return Err(unexpected(&url, status)),
        }
        let claimed = header(&response, DOCKER_CONTENT_DIGEST);
        let content_type = header(&response, CONTENT_TYPE.as_str());
        let bytes = body(&url, response).await?;
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

    /// The blob `digest` (for example an image configuration), checked against its digest;
    /// `None` if the registry has no such blob.
    pub async fn blob_get(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let response = self
            .call(Method::GET, repo, &url, Access::Pull, false)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            status => return Err(unexpected(&url, status)),
        }
        let bytes = body(&url, response).await?;
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
        let url = self.url(repo, &format!("manifests/{reference}"));
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

    /// Proves that the credentials may push to `repo` without pushing anything: starts a blob
    /// upload, then cancels it. A refusal is [`RegistryError::Unauthorized`], at once.
    pub async fn check_push_access(&self, repo: &Repository) -> Result<(), RegistryError> {
        let url = self.url(repo, "blobs/uploads/");
        let response = self
            .call(Method::POST, repo, &url, Access::Push, false)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(unexpected(&url, response.status()));
        }
        let location = header(&response, LOCATION.as_str())
            .ok_or_else(|| invalid(&url, "upload started without a Location".into()))?;
        let upload = resolve(&url, &location)?;
        // Cancelling is a courtesy: the registry purges abandoned uploads on its own, and push
        // access is already proven, so a failure here changes nothing for the caller.
        let _ = self
            .call(Method::DELETE, repo, upload.as_str(), Access::Push, false)
            .await;
        Ok(())
    }

    /// Every tag of `repo`, following pagination; empty if the repository does not exist.
    pub async fn tags_list(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut url = self.url(repo, "tags/list");
        loop {
            let response = self
                .call(Method::GET, repo, &url, Access::Pull, false)
                .await?;
            match response.status() {
                StatusCode::NOT_FOUND => return Ok(tags),
                StatusCode::OK => {}
                status => return Err(unexpected(&url, status)),
            }
            let next = header(&response, LINK.as_str()).and_then(|link| next_link(&link));
            let page: Tags = serde_json::from_slice(&body(&url, response).await?)
                .map_err(|e| invalid(&url, format!("tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => url = resolve(&url, &next)?.to_string(),
                None => return Ok(tags),
            }
        }
    }

    fn url(&self, repo: &Repository, suffix: &str) -> String {
        let host = repo.api_host();
        let scheme = if is_loopback(host) || self.plain_http.contains(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}/v2/{}/{suffix}", repo.path())
    }

    /// One authenticated request: answers one auth challenge, then reports 401/403 as
    /// [`RegistryError::Unauthorized`]. Transient failures are retried in [`Self::send`].
    async fn call(
        &self,
        method: Method,
        repo: &Repository,
        url: &str,
        access: Access,
        manifest: bool,
    ) -> Result<Response, RegistryError> {
        let scope = format!("repository:{}:{}", repo.path(), access.actions());
        let key = (repo.api_host().to_owned(), scope.clone());
        let mut authorization = lock(&self.authorizations).get(&key).cloned();
        let mut challenged = false;
        loop {
            let response = self
                .send(url, || {
                    let mut request = self.http.request(method.clone(), url);
                    if manifest {
                        request = request.header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
                    }
                    if let Some(value) = &authorization {
                        request = request.header(AUTHORIZATION, value);
                    }
                    request
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
                        .authorize(challenge, credential.as_ref(), &scope)
                        .await?
                    {
                        lock(&self.authorizations).insert(key.clone(), value.clone());
                        authorization = Some(value);
                        continue;
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                lock(&self.authorizations).remove(&key);
                return Err(RegistryError::Unauthorized {
                    endpoint: url.to_owned(),
                    status: status.as_u16(),
                });
            }
            return Ok(response);
        }
    }

    /// The `Authorization` header value answering `challenge`, or `None` when there is nothing
    /// to answer it with (Basic without a user name and password).
    async fn authorize(
        &self,
        challenge: Challenge,
        credential: Option<&Credential>,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let (realm, service, challenge_scope) = match challenge {
            Challenge::Basic => {
                return Ok(match credential {
                    Some(Credential::Basic { username, password }) => Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"))
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
        let endpoint = Url::parse(&realm)
            .map_err(|e| RegistryError::InvalidResponse {
                endpoint: realm.clone(),
                reason: format!("token realm is not a URL: {e}"),
            })?
            .to_string();
        let response = self
            .send(&endpoint, || match credential {
                // Docker's OAuth2 flow: the identity token is a refresh token.
                Some(Credential::IdentityToken(token)) => {
                    let mut form = params.clone();
                    form.extend([
                        ("grant_type", "refresh_token"),
                        ("client_id", "cookbook"),
                        ("refresh_token", token.as_str()),
                    ]);
                    self.http.post(&endpoint).form(&form)
                }
                Some(Credential::Basic { username, password }) => self
                    .http
                    .get(&endpoint)
                    .query(&params)
                    .basic_auth(username, Some(password)),
                None => self.http.get(&endpoint).query(&params),
            })
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                endpoint,
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(unexpected(&endpoint, status));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body(&endpoint, response).await?)
            .map_err(|e| invalid(&endpoint, format!("token response: {e}")))?;
        let token = token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(&endpoint, "token response has no token".into()))?;
        Ok(Some(format!("Bearer {token}")))
    }

    /// Sends the request `make` builds, again after a backoff while it fails transiently.
    async fn send(
        &self,
        endpoint: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match make().send().await {
                Err(source) if source.is_builder() => {
                    return Err(invalid(endpoint, format!("cannot build request: {source}")));
                }
                Err(source) => match self.retry.backoff(attempt, None) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => {
                        return Err(RegistryError::Unreachable {
                            endpoint: endpoint.to_owned(),
                            source,
                        })
                    }
                },
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    let retry_after = header(&response, RETRY_AFTER.as_str())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match self.retry.backoff(attempt, retry_after) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => {
                            return Err(RegistryError::Unavailable {
                                endpoint: endpoint.to_owned(),
                                status: response.status().as_u16(),
                                attempts: attempt,
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

/// A poisoned lock only means another request panicked mid-insert of a cache entry; the map is
/// still valid, so carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn body(endpoint: &str, response: Response) -> Result<Vec<u8>, RegistryError> {
    response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|source| RegistryError::Unreachable {
            endpoint: endpoint.to_owned(),
            source,
        })
}

fn unexpected(endpoint: &str, status: StatusCode) -> RegistryError {
    RegistryError::UnexpectedStatus {
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
    }
}

fn invalid(endpoint: &str, reason: String) -> RegistryError {
    RegistryError::InvalidResponse {
        endpoint: endpoint.to_owned(),
        reason,
    }
}

/// `location` (absolute, or relative to `base`) as a URL.
fn resolve(base: &str, location: &str) -> Result<Url, RegistryError> {
    Url::parse(base)
        .and_then(|b| b.join(location))
        .map_err(|e| invalid(base, format!("bad URL `{location}`: {e}")))
}

/// The target of `rel="next"` in an RFC 8288 `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
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
            client.url(&local, "tags/list"),
            "http://127.0.0.1:5000/v2/a/b/tags/list"
        );
        assert_eq!(client.url(&lan, "x"), "http://reg.lan:5000/v2/a/x");
        assert_eq!(client.url(&remote, "x"), "https://ghcr.io/v2/o/r/x");
    }

    #[test]
    fn link_header_next_page() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=b&n=2".into())
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
        assert_eq!(
            resolve("http://h:5/v2/a/tags/list", "/v2/a/tags/list?last=b")
                .unwrap()
                .as_str(),
            "http://h:5/v2/a/tags/list?last=b"
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
