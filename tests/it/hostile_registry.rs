//! A hostile registry on loopback (issue 20, items 1 and 7): credentials never leave the
//! registry's origin, and no read from a registry is unbounded.
//!
//! Each test starts small HTTP listeners — the "registry" on 127.0.0.1, and "elsewhere" on
//! 127.0.0.2 or 127.0.0.3 (loopback too, on Linux, with no setup) — that record every request
//! they receive. The registry hands URLs back that point elsewhere (an upload's `Location`, a
//! tag list's `Link: next`, a blob GET's redirect to storage, a token `realm`), and the tests
//! assert on the headers and bodies each listener saw: the credentials reach the registry (so
//! the test is not vacuous) and nothing else. Endless bodies (a manifest, a token response, an
//! error body, a tag list, a blob longer than its descriptor) must be answered with an error,
//! quickly, having read no more than the cap. Most of it is driven through the library's
//! `RegistryClient`; `apply` runs against the same kind of registry through the binary.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use cookbook::registry::{
    BodyKind, Credential, CredentialStore, Digest, RegistryClient, RegistryError, Repository,
    MAX_IN_MEMORY_BLOB_BYTES, MAX_MANIFEST_BYTES, MAX_TAG_LIST_BYTES, MAX_TOKEN_RESPONSE_BYTES,
};
use cookbook::retry::RetryPolicy;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::common;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-password";
const REFRESH_TOKEN: &str = "refresh-s3cret";
const SIGNATURE: &str = "s1gnature-s3cret";

/// `Basic base64(alice:s3cret-password)`.
fn basic() -> String {
    format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// A request as a listener received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    target: String,
    headers: Vec<(String, String)>,
    /// The first 64 KiB of the body, and its whole length.
    body: Vec<u8>,
    body_len: u64,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Anything that would be a leaked secret: an `Authorization` header, or a secret (the
    /// password, the Basic value, the refresh token, a presigned signature) in any header or
    /// in the body.
    fn leaks(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(value) = self.header("authorization") {
            found.push(format!("authorization: {value}"));
        }
        let secrets = [
            PASSWORD.to_owned(),
            BASE64_STANDARD.encode(format!("{USER}:{PASSWORD}")),
            REFRESH_TOKEN.to_owned(),
        ];
        for (name, value) in &self.headers {
            if secrets.iter().any(|s| value.contains(s.as_str())) {
                found.push(format!("{name}: {value}"));
            }
        }
        let body = String::from_utf8_lossy(&self.body);
        if secrets.iter().any(|s| body.contains(s.as_str())) {
            found.push(format!("body: {body}"));
        }
        found
    }

    fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// What a listener answers.
enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A body that never ends: 64 KiB chunks as fast as the client reads them, with the given
    /// `Content-Length` header, if any (a lie then).
    Endless {
        status: u16,
        headers: Vec<(String, String)>,
        content_length: Option<u64>,
    },
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
    Reply::Full {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
    }
}

fn endless(status: u16, headers: &[(&str, &str)], content_length: Option<u64>) -> Reply {
    Reply::Endless {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        content_length,
    }
}

fn challenge_basic() -> Reply {
    reply(401, &[("WWW-Authenticate", "Basic realm=\"hostile\"")], "")
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An HTTP listener on `ip` that records every request and answers with `handler`.
struct Listener {
    addr: SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    /// The bytes of endless bodies handed to the connection: what the client read, plus what
    /// the sockets' buffers hold.
    sent: AtomicU64,
}

impl Listener {
    async fn start(ip: &str, handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Listener {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, handler) = (shared.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (log, handler) = (log.clone(), handler.clone());
                        async move { Ok::<_, Infallible>(answer(request, &log, &*handler).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Listener { addr, log, task }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// How much of its endless bodies this listener has sent.
    fn sent(&self) -> u64 {
        self.log.sent.load(Ordering::SeqCst)
    }

    /// Fails the test if any request this listener received carried a credential.
    fn assert_no_credentials(&self) {
        for seen in self.seen() {
            let leaks = seen.leaks();
            assert!(
                leaks.is_empty(),
                "{} received {} with {leaks:?}",
                self.host(),
                seen.line()
            );
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    log: &Arc<Log>,
    handler: &Handler,
) -> hyper::Response<Body> {
    let (parts, mut incoming) = request.into_parts();
    let mut body = Vec::new();
    let mut body_len = 0u64;
    while let Some(Ok(frame)) = incoming.frame().await {
        if let Ok(data) = frame.into_data() {
            body_len += data.len() as u64;
            let room = (64usize << 10).saturating_sub(body.len());
            body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body,
        body_len,
    };
    let reply = handler(&seen);
    log.seen.lock().unwrap().push(seen);
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut response = hyper::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Full::new(Bytes::from(body)).boxed()).unwrap()
        }
        Reply::Endless {
            status,
            headers,
            content_length,
        } => {
            let mut response = hyper::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            if let Some(length) = content_length {
                response = response.header("content-length", length.to_string());
            }
            let chunk = Bytes::from(vec![b'x'; 64 << 10]);
            let log = log.clone();
            let frames = futures_util::stream::repeat(chunk).map(move |c| {
                log.sent.fetch_add(c.len() as u64, Ordering::SeqCst);
                Ok::<_, Infallible>(Frame::data(c))
            });
            response
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
    }
}

/// A client with alice's credentials for `registry`, retrying once after 10 ms.
fn client_for(registry: &Listener) -> RegistryClient {
    client_with(
        registry,
        Credential::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        },
    )
}

fn client_with(registry: &Listener, credential: Credential) -> RegistryClient {
    RegistryClient::new()
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        })
        .with_credentials(CredentialStore::Fixed(BTreeMap::from([(
            registry.host(),
            credential,
        )])))
}

fn repo(registry: &Listener) -> Repository {
    Repository::parse(&format!("{}/hostile/app", registry.host())).unwrap()
}

/// `registry`'s own requests carried alice's Basic credentials: the rule did not just drop them
/// everywhere.
fn assert_credentials_reached(registry: &Listener) {
    let basic = basic();
    assert!(
        registry
            .seen()
            .iter()
            .any(|s| s.header("authorization") == Some(basic.as_str())),
        "the registry itself never got the credentials: {:#?}",
        registry.seen().iter().map(Seen::line).collect::<Vec<_>>()
    );
}

/// Answers like a registry behind Basic authentication: `serve` for requests with alice's
/// credentials, a challenge otherwise.
fn behind_basic(
    serve: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let basic = basic();
    move |seen| {
        if seen.header("authorization") == Some(basic.as_str()) {
            serve(seen)
        } else {
            challenge_basic()
        }
    }
}

// ---------------------------------------------------------------- credentials (item 1)

#[tokio::test]
async fn urls_the_registry_hands_back_for_another_host_get_no_credentials() {
    // "Elsewhere": an upload store and a tag list page on 127.0.0.2, over plain HTTP, which
    // would take the credentials if offered (it never challenges).
    let elsewhere = Listener::start("127.0.0.2", |seen| match seen.method.as_str() {
        "GET" => reply(
            200,
            &[("Content-Type", "application/json")],
            r#"{"name":"hostile/app","tags":["from-elsewhere"]}"#,
        ),
        "PUT" => reply(201, &[], ""),
        _ => reply(204, &[], ""),
    })
    .await;
    let away = elsewhere.host();
    let registry = Listener::start(
        "127.0.0.1",
        behind_basic(move |seen| {
            let upload = format!("http://{away}/storage/upload?X-Amz-Signature={SIGNATURE}");
            match (seen.method.as_str(), seen.target.as_str()) {
                ("POST", t) if t.contains("mount=") => {
                    reply(202, &[("Location", upload.as_str())], "")
                }
                ("POST", _) => reply(202, &[("Location", upload.as_str())], ""),
                ("HEAD", _) => reply(404, &[], ""),
                ("GET", t) if t.contains("/tags/list") => {
                    let next = format!(
                        "<http://{away}/v2/hostile/app/tags/list?last=a&sig={SIGNATURE}>; \
                         rel=\"next\""
                    );
                    reply(
                        200,
                        &[
                            ("Content-Type", "application/json"),
                            ("Link", next.as_str()),
                        ],
                        r#"{"name":"hostile/app","tags":["a"]}"#,
                    )
                }
                _ => reply(404, &[], ""),
            }
        }),
    )
    .await;
    let client = client_for(&registry);
    let repo = repo(&registry);

    // The push-access check: POST, then DELETE of the upload the Location names.
    client.check_push_access(&repo).await.unwrap();
    // An upload: POST, then the PUT of the blob to the Location.
    let dir = tempfile::tempdir().unwrap();
    let blob = b"a layer".to_vec();
    std::fs::write(dir.path().join("blob"), &blob).unwrap();
    let digest = Digest::sha256_of(&blob);
    client
        .blob_upload(&repo, &digest, &dir.path().join("blob"), blob.len() as u64)
        .await
        .unwrap();
    // A declined mount: the upload it opened instead is cancelled where the Location says.
    let from = Repository::parse(&format!("{}/hostile/base", registry.host())).unwrap();
    assert!(!client.blob_mount(&repo, &digest, &from).await.unwrap());
    // The tag list's next page on another host is not followed at all (issue 24: a tag list
    // pages only within its own repository on the registry's origin).
    let error = client.tags_list(&repo).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::UnsafeUrl { .. }),
        "{error:?}"
    );

    let lines: Vec<String> = elsewhere.seen().iter().map(Seen::line).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("DELETE /storage/upload?"),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("PUT /storage/upload?"), "{lines:#?}");
    let hex = digest.as_str().trim_start_matches("sha256:");
    assert!(
        lines[1].contains(&format!("digest=sha256%3A{hex}")),
        "{lines:#?}"
    );
    assert_eq!(elsewhere.seen()[1].body_len, blob.len() as u64);
    assert!(
        lines[2].starts_with("DELETE /storage/upload?"),
        "{lines:#?}"
    );
    elsewhere.assert_no_credentials();
    assert_credentials_reached(&registry);
}

#[tokio::test]
async fn a_challenge_from_another_host_is_never_answered() {
    // The upload store asks for credentials itself: it must not get them.
    let elsewhere = Listener::start("127.0.0.2", |_| challenge_basic()).await;
    let away = elsewhere.host();
    let registry = Listener::start(
        "127.0.0.1",
        behind_basic(move |_| {
            reply(
                202,
                &[("Location", format!("http://{away}/upload").as_str())],
                "",
            )
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blob"), b"x").unwrap();
    let error = client_for(&registry)
        .blob_upload(
            &repo(&registry),
            &Digest::sha256_of(b"x"),
            &dir.path().join("blob"),
            1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::Unauthorized { endpoint, status: 401, .. } if endpoint.contains("127.0.0.2")),
        "{error:?}"
    );
    assert_eq!(
        elsewhere.seen().len(),
        1,
        "answered the stranger's challenge"
    );
    elsewhere.assert_no_credentials();
    assert_credentials_reached(&registry);
}

#[tokio::test]
async fn a_blob_redirected_to_storage_is_fetched_without_credentials_and_the_signature_never_shows()
{
    let blob = b"the blob's bytes".to_vec();
    let digest = Digest::sha256_of(&blob);
    let stored = blob.clone();
    let storage = Listener::start("127.0.0.3", move |seen| {
        if seen.target.starts_with("/long") {
            endless(200, &[], None)
        } else {
            reply(
                200,
                &[("Content-Type", "application/octet-stream")],
                stored.clone(),
            )
        }
    })
    .await;
    let away = storage.host();
    let registry = Listener::start(
        "127.0.0.1",
        behind_basic(move |seen| {
            // distribution redirects blob GETs to its storage's presigned URL with a 307.
            let path = if seen.target.contains("sha256:0000") {
                "long"
            } else {
                "blob"
            };
            let location = format!("http://{away}/{path}?X-Amz-Signature={SIGNATURE}");
            reply(307, &[("Location", location.as_str())], "")
        }),
    )
    .await;
    let client = client_for(&registry);
    let repo = repo(&registry);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    assert!(client
        .blob_to_file(&repo, &digest, blob.len() as u64, &path)
        .await
        .unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), blob);
    // Its storage sends more than the descriptor says: refused, and the error shows where
    // from, without the signature.
    let other = Digest::parse(&format!("sha256:0000{}", "a".repeat(60))).unwrap();
    let error = client
        .blob_to_file(&repo, &other, 10, &dir.path().join("other"))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&storage.host()), "{text}");
    assert!(!text.contains(SIGNATURE), "{text}");
    assert!(text.contains("X-Amz-Signature=…"), "{text}");

    let seen = storage.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen.iter().all(|s| s.header("referer").is_none()),
        "{seen:#?}"
    );
    storage.assert_no_credentials();
    assert_credentials_reached(&registry);
}

/// A registry whose every `/v2/` request needs `Bearer tok`, and whose challenge names `realm`.
fn bearer_registry(realm: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| {
        if seen.header("authorization") == Some("Bearer tok") {
            let digest = Digest::sha256_of(b"{}");
            reply(200, &[("Docker-Content-Digest", digest.as_str())], "")
        } else {
            let challenge = format!(
                "Bearer realm=\"{realm}\",service=\"hostile\",scope=\"repository:hostile/app:pull\""
            );
            reply(401, &[("WWW-Authenticate", challenge.as_str())], "")
        }
    }
}

fn token_service(_: &Seen) -> Reply {
    reply(
        200,
        &[("Content-Type", "application/json")],
        r#"{"token":"tok"}"#,
    )
}

#[tokio::test]
async fn a_token_realm_on_another_host_over_plain_http_gets_no_credentials() {
    let realm = Listener::start("127.0.0.2", token_service).await;
    let registry = Listener::start(
        "127.0.0.1",
        bearer_registry(format!("http://{}/token", realm.host())),
    )
    .await;
    // A user name and password, then an identity token (which would be POSTed as a form).
    for credential in [
        Credential::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        },
        Credential::IdentityToken(REFRESH_TOKEN.into()),
    ] {
        let client = client_with(&registry, credential);
        assert!(client
            .manifest_head(&repo(&registry), "v1")
            .await
            .unwrap()
            .is_some());
    }
    let seen = realm.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen.iter().all(|s| s.method == "GET"), "{seen:#?}");
    realm.assert_no_credentials();
}

#[tokio::test]
async fn a_token_realm_on_the_plain_registry_s_own_host_gets_the_credentials() {
    // The control: 127.0.0.1, another port, like a registry with its token server beside it.
    let realm = Listener::start("127.0.0.1", token_service).await;
    let registry = Listener::start(
        "127.0.0.1",
        bearer_registry(format!("http://{}/token", realm.host())),
    )
    .await;
    let client = client_for(&registry);
    assert!(client
        .manifest_head(&repo(&registry), "v1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        realm.seen()[0].header("authorization"),
        Some(basic().as_str())
    );
}

/// The control for an identity token: on the plain registry's own host, the realm gets it as
/// Docker's OAuth2 flow says, a POSTed `refresh_token` form.
#[tokio::test]
async fn an_identity_token_is_posted_to_the_plain_registry_s_own_realm() {
    let realm = Listener::start("127.0.0.1", token_service).await;
    let registry = Listener::start(
        "127.0.0.1",
        bearer_registry(format!("http://{}/token", realm.host())),
    )
    .await;
    let client = client_with(&registry, Credential::IdentityToken(REFRESH_TOKEN.into()));
    assert!(client
        .manifest_head(&repo(&registry), "v1")
        .await
        .unwrap()
        .is_some());
    let seen = realm.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, "POST");
    let form = String::from_utf8_lossy(&seen[0].body);
    assert!(
        form.contains("grant_type=refresh_token")
            && form.contains(&format!("refresh_token={REFRESH_TOKEN}")),
        "{form}"
    );
}

#[tokio::test]
async fn a_token_realm_that_is_not_http_is_refused() {
    let registry = Listener::start(
        "127.0.0.1",
        bearer_registry(format!("ftp://127.0.0.2/token?sig={SIGNATURE}")),
    )
    .await;
    let error = client_for(&registry)
        .manifest_head(&repo(&registry), "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::UnsafeUrl { url, .. } if url.starts_with("ftp://127.0.0.2/token?sig=…")),
        "{error:?}"
    );
    assert!(!error.to_string().contains(SIGNATURE), "{error}");
    assert_eq!(
        cookbook::error::Error::from(error).exit_code(),
        cookbook::error::EXIT_FAILED
    );
}

// ---------------------------------------------------------------- bounded reads (item 7)

/// How long an endless body may take to be refused: generous for a loaded debug build, and far
/// less than reading it whole would take (it never ends).
const QUICKLY: Duration = Duration::from_secs(30);

/// The most a refused body may have been read past its cap: one chunk of the client's stream.
const SLACK: u64 = 1 << 20;

/// The most an endless body's sender may have handed to a connection past what the client
/// read: the two sockets' buffers on loopback (a few MiB).
const SOCKET_SLACK: u64 = 16 << 20;

/// `error` is the refusal of a `kind` body at `cap`, read no further than a chunk past it, and
/// exit code 1.
fn assert_cut(error: RegistryError, kind: BodyKind, cap: u64) {
    match &error {
        RegistryError::TooLarge {
            body,
            limit,
            received,
            ..
        } => {
            assert_eq!(*body, kind, "{error}");
            assert_eq!(*limit, cap, "{error}");
            assert!(*received > cap && *received <= cap + SLACK, "{error}");
        }
        other => panic!("expected TooLarge for the {kind}, got {other:?}"),
    }
    assert_eq!(
        cookbook::error::Error::from(error).exit_code(),
        cookbook::error::EXIT_FAILED
    );
}

#[tokio::test]
async fn endless_bodies_are_cut_at_their_caps_quickly() {
    let registry = Listener::start("127.0.0.1", |seen| {
        let json = [("Content-Type", "application/json")];
        match seen.target.as_str() {
            t if t.contains("/manifests/") => endless(200, &json, None),
            t if t.contains("/tags/list") => endless(200, &json, None),
            t if t.contains("/blobs/") => endless(200, &[], None),
            _ => reply(404, &[], ""),
        }
    })
    .await;
    let client = client_for(&registry);
    let repo = repo(&registry);
    let started = Instant::now();
    let error = client.manifest_get(&repo, "v1").await.unwrap_err();
    assert!(
        error.to_string().contains(&format!(
            "http://{}/v2/hostile/app/manifests/v1",
            registry.host()
        )),
        "{error}"
    );
    assert_cut(error, BodyKind::Manifest, MAX_MANIFEST_BYTES);
    let error = client.tags_list(&repo).await.unwrap_err();
    assert_cut(error, BodyKind::TagList, MAX_TAG_LIST_BYTES);
    let error = client
        .blob_get(&repo, &Digest::sha256_of(b"config"))
        .await
        .unwrap_err();
    assert_cut(error, BodyKind::Blob, MAX_IN_MEMORY_BLOB_BYTES);
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
    let caps = MAX_MANIFEST_BYTES + MAX_TAG_LIST_BYTES + MAX_IN_MEMORY_BLOB_BYTES;
    assert!(
        registry.sent() <= caps + 3 * SOCKET_SLACK,
        "{} bytes sent",
        registry.sent()
    );
}

#[tokio::test]
async fn an_endless_token_response_is_cut_at_its_cap() {
    let realm = Listener::start("127.0.0.1", |_| {
        endless(200, &[("Content-Type", "application/json")], None)
    })
    .await;
    let registry = Listener::start(
        "127.0.0.1",
        bearer_registry(format!("http://{}/token", realm.host())),
    )
    .await;
    let started = Instant::now();
    let error = client_for(&registry)
        .manifest_head(&repo(&registry), "v1")
        .await
        .unwrap_err();
    assert_cut(error, BodyKind::TokenResponse, MAX_TOKEN_RESPONSE_BYTES);
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn endless_error_bodies_are_read_no_further_than_a_message_needs() {
    // A refusal with an endless body, and a 503 with one (retried, then given up).
    let registry = Listener::start("127.0.0.1", |seen| {
        if seen.target.contains("/manifests/") {
            endless(400, &[], None)
        } else {
            endless(503, &[], None)
        }
    })
    .await;
    let client = client_for(&registry);
    let repo = repo(&registry);
    let started = Instant::now();
    let error = client.manifest_get(&repo, "v1").await.unwrap_err();
    match &error {
        RegistryError::UnexpectedStatus {
            status: 400,
            message: Some(message),
            ..
        } => assert!(message.len() < 1000, "{message}"),
        other => panic!("{other:?}"),
    }
    let error = client.tags_list(&repo).await.unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Unavailable {
                status: 503,
                attempts: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
    // Three endless answers, each read no further than a message needs.
    assert!(
        registry.sent() <= 3 * SOCKET_SLACK,
        "{} bytes sent",
        registry.sent()
    );
}

#[tokio::test]
async fn a_content_length_past_the_cap_is_refused_before_reading() {
    let registry = Listener::start("127.0.0.1", |seen| {
        if seen.target.contains("/manifests/") {
            // Announces a terabyte; sends on for ever.
            endless(200, &[], Some(1 << 40))
        } else {
            endless(200, &[], Some(11))
        }
    })
    .await;
    let client = client_for(&registry);
    let repo = repo(&registry);
    match client.manifest_get(&repo, "v1").await.unwrap_err() {
        RegistryError::TooLarge {
            body: BodyKind::Manifest,
            declared: Some(declared),
            received: 0,
            ..
        } => assert_eq!(declared, 1 << 40),
        other => panic!("{other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    match client
        .blob_to_file(&repo, &Digest::sha256_of(b"0123456789"), 10, &path)
        .await
        .unwrap_err()
    {
        RegistryError::TooLarge {
            body: BodyKind::Blob,
            limit: 10,
            declared: Some(11),
            received: 0,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_blob_longer_than_its_descriptor_stops_at_the_first_byte_too_many() {
    let registry = Listener::start("127.0.0.1", |_| endless(200, &[], None)).await;
    let client = client_for(&registry);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let size = 1000;
    let started = Instant::now();
    let error = client
        .blob_to_file(&repo(&registry), &Digest::sha256_of(b"small"), size, &path)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::TooLarge { body: BodyKind::Blob, limit: 1000, received, .. }
                if received > size && received <= size + SLACK
        ),
        "{error:?}"
    );
    // Nothing past the descriptor's size was written.
    assert!(std::fs::metadata(&path).unwrap().len() <= size);
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_blob_shorter_than_its_descriptor_is_refused() {
    let registry = Listener::start("127.0.0.1", |_| reply(200, &[], "short")).await;
    let error = client_for(&registry)
        .blob_to_file(
            &repo(&registry),
            &Digest::sha256_of(b"short"),
            6,
            &tempfile::tempdir().unwrap().path().join("blob"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::InvalidResponse { reason, .. } if reason.contains("ended after 5 of its 6 bytes")),
        "{error:?}"
    );
}

// ---------------------------------------------------------------- through the binary

fn cookbook(dir: &std::path::Path, registry: &str) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/hello.txt"), common::unique("hostile")).unwrap();
    let book = serde_json::json!({
        "manifest_version": "1.0",
        "project": { "name": "hostile" },
        "applications": {
            "app": {
                "source": "app",
                "build_commands": ["test -f hello.txt"],
                "run_command": ["/bin/cat", "hello.txt"]
            }
        },
        "containers": {
            "app": { "base_image": "cookbook-test/busybox:latest", "applications": ["app"] }
        },
        "packaging": { "registry": registry }
    });
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_vec_pretty(&book).unwrap(),
    )
    .unwrap();
}

/// A Docker config giving alice's credentials for `host`.
fn docker_config(dir: &std::path::Path, host: &str) {
    let config = serde_json::json!({
        "auths": { host: { "auth": BASE64_STANDARD.encode(format!("{USER}:{PASSWORD}")) } }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// Runs the binary off the test's runtime thread (it waits for the child).
async fn run_binary(
    dir: &std::path::Path,
    args: &[&str],
    envs: Vec<(String, String)>,
) -> common::Run {
    let (dir, args) = (
        dir.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run_in_env(&dir, &args, &envs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_publishes_through_an_upload_location_elsewhere_without_sending_it_credentials() {
    if common::test_registry().is_none() {
        return;
    }
    // A registry that works, behind Basic authentication, whose uploads go to a store on
    // another loopback host over plain HTTP (the issue's reproduction).
    let storage = Listener::start("127.0.0.2", |seen| match seen.method.as_str() {
        "PUT" => reply(201, &[], ""),
        _ => reply(204, &[], ""),
    })
    .await;
    let away = storage.host();
    let registry = Listener::start(
        "127.0.0.1",
        behind_basic(move |seen| match seen.method.as_str() {
            "POST" => {
                let location = format!("http://{away}/storage/upload?X-Amz-Signature={SIGNATURE}");
                reply(202, &[("Location", location.as_str())], "")
            }
            "PUT" => {
                let digest = Digest::sha256_of(&seen.body);
                reply(201, &[("Docker-Content-Digest", digest.as_str())], "")
            }
            _ => reply(404, &[], ""),
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    cookbook(dir.path(), &format!("{}/hostile", registry.host()));
    docker_config(config.path(), &registry.host());
    let run = run_binary(
        dir.path(),
        &["apply"],
        vec![
            ("CI".into(), "true".into()),
            ("DOCKER_CONFIG".into(), config.path().display().to_string()),
        ],
    )
    .await;
    run.assert_code(0);
    let puts = storage.seen().iter().filter(|s| s.method == "PUT").count();
    // The config and at least the build's own layer went to the store.
    assert!(
        puts >= 2,
        "{:#?}",
        storage.seen().iter().map(Seen::line).collect::<Vec<_>>()
    );
    assert!(storage.seen().iter().any(|s| s.method == "DELETE"));
    storage.assert_no_credentials();
    assert_credentials_reached(&registry);
    assert!(!run.stderr.contains(SIGNATURE), "{}", run.context());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_an_endless_manifest_quickly_naming_the_cap() {
    if common::test_registry().is_none() {
        return;
    }
    let registry = Listener::start("127.0.0.1", |seen| {
        if seen.target.contains("/manifests/") {
            endless(
                200,
                &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
                None,
            )
        } else {
            reply(404, &[], "")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    cookbook(dir.path(), &format!("{}/hostile", registry.host()));
    let started = Instant::now();
    // The dry run looks every content tag up in the registry (a manifest GET) and does nothing
    // else.
    let run = run_binary(
        dir.path(),
        &["apply", "--dry-run"],
        vec![("CI".into(), "true".into())],
    )
    .await;
    run.assert_code(1);
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
    assert!(
        run.stderr
            .contains(&format!("larger than {MAX_MANIFEST_BYTES} bytes")),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains(&format!(
            "http://{}/v2/hostile/app/manifests/",
            registry.host()
        )),
        "{}",
        run.context()
    );
}
