//! A repository's tag list (`registry/tags.rs`) and the no-op apply that reads it instead of one
//! manifest request per container (`apply/check.rs`, issue 24).
//!
//! Against a hostile stand-in registry (`common::http::FakeServer`): pages followed, and what is
//! not followed (another host, a loop), caps, a 404, a 500 answered once and left to the
//! manifest requests. Against the real registry, through a recording loopback proxy: a no-op
//! apply lists each repository once and sends no manifest request, and its report is the one the
//! manifest requests give.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cookbook::apply::check::{listed, Recorded};
use cookbook::model::Name;
use cookbook::registry::{
    BodyKind, CredentialStore, RegistryClient, RegistryError, MAX_TAG_LIST_BYTES,
};
use cookbook::retry::RetryPolicy;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::http::{response, FakeServer};
use crate::common::{self, Run};

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn client() -> RegistryClient {
    RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous)
        .with_retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        })
}

fn page(tags: &[&str]) -> String {
    json!({ "name": "cookbook/x", "tags": tags }).to_string()
}

/// What the lock would record for `tag` in `server`'s repository.
fn recorded(server: &FakeServer, tag: &str) -> Recorded {
    Recorded {
        repository: server.repo(),
        tag: tag.into(),
        digest: format!("sha256:{}", "a".repeat(64)),
        image_id: Some(format!("sha256:{}", "b".repeat(64))),
    }
}

fn one(name: &str, r: Recorded) -> BTreeMap<Name, Recorded> {
    BTreeMap::from([(Name::parse(name).unwrap(), r)])
}

#[tokio::test]
async fn pages_are_followed_to_the_last() {
    let server = FakeServer::start(|_, request| {
        let target = request.split(' ').nth(1).unwrap_or_default();
        match target {
            "/v2/cookbook/x/tags/list?n=1000" => response(
                "200 OK",
                &[
                    JSON,
                    (
                        "Link",
                        r#"</v2/cookbook/x/tags/list?last=b&n=2>; rel="next""#,
                    ),
                ],
                &page(&["a", "b"]),
            ),
            // Relative to this page, as RFC 3986 resolves it; a `rel` among others.
            "/v2/cookbook/x/tags/list?last=b&n=2" => response(
                "200 OK",
                &[JSON, ("Link", r#"<list?last=d&n=2>; rel="prev next""#)],
                &page(&["c", "d"]),
            ),
            "/v2/cookbook/x/tags/list?last=d&n=2" => response("200 OK", &[JSON], &page(&["e"])),
            _ => response("501 Not Implemented", &[], ""),
        }
    })
    .await;
    assert_eq!(
        client().tags_list(&server.repo()).await.unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(server.requests().len(), 3, "{:#?}", server.requests());
}

#[tokio::test]
async fn a_next_page_on_another_host_is_refused_and_never_asked() {
    let elsewhere = FakeServer::start_on("127.0.0.2", |_, _, _| {
        response("200 OK", &[JSON], &page(&["from-elsewhere"]))
    })
    .await;
    let next = format!(
        r#"<http://{}/v2/cookbook/x/tags/list?last=a>; rel="next""#,
        elsewhere.host()
    );
    let server = FakeServer::start(move |_, _| {
        response("200 OK", &[JSON, ("Link", next.as_str())], &page(&["a"]))
    })
    .await;
    let error = client().tags_list(&server.repo()).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::UnsafeUrl { url, .. } if url.contains("127.0.0.2")),
        "{error:?}"
    );
    // The cache check does not take a refused listing's first page as the answer: it leaves
    // the container to its manifest request.
    let found = listed(&client(), one("c", recorded(&server, "a")), BTreeMap::new()).await;
    assert!(found.is_empty(), "{found:?}");
    assert!(
        elsewhere.requests().is_empty(),
        "{:#?}",
        elsewhere.requests()
    );
}

#[tokio::test]
async fn another_repository_on_the_same_registry_is_refused() {
    let server = FakeServer::start(|_, _| {
        response(
            "200 OK",
            &[
                JSON,
                (
                    "Link",
                    r#"</v2/cookbook/other/tags/list?last=a>; rel="next""#,
                ),
            ],
            &page(&["a"]),
        )
    })
    .await;
    let error = client().tags_list(&server.repo()).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::UnsafeUrl { reason, .. } if reason.contains("this repository")),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_page_pointing_at_itself_or_back_stops_with_an_error() {
    let itself = FakeServer::start(|_, _| {
        response(
            "200 OK",
            &[
                JSON,
                ("Link", r#"</v2/cookbook/x/tags/list?n=1000>; rel="next""#),
            ],
            &page(&["a"]),
        )
    })
    .await;
    let error = client().tags_list(&itself.repo()).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::InvalidResponse { reason, .. } if reason.contains("loop")),
        "{error:?}"
    );
    assert_eq!(itself.requests().len(), 1);

    // Page 2 points back at page 1, its query reordered.
    let back = FakeServer::start(|_, request| {
        let link = if request.contains("last=a") {
            "</v2/cookbook/x/tags/list?n=1000>; rel=next"
        } else {
            "</v2/cookbook/x/tags/list?last=a&n=1000>; rel=next"
        };
        response("200 OK", &[JSON, ("Link", link)], &page(&["a"]))
    })
    .await;
    let error = client().tags_list(&back.repo()).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::InvalidResponse { reason, .. } if reason.contains("loop")),
        "{error:?}"
    );
    assert_eq!(back.requests().len(), 2);
}

#[tokio::test]
async fn malformed_answers_are_errors() {
    for (body, link) in [
        ("not json", None),
        (r#"{"tags": "a"}"#, None),
        (r#"{"tags": ["a/../b"]}"#, None),
        (
            r#"{"tags": ["a"]}"#,
            Some("/v2/cookbook/x/tags/list?last=a; rel=next"),
        ),
    ] {
        let server = FakeServer::start(move |_, _| {
            let mut headers = vec![JSON];
            headers.extend(link.map(|l| ("Link", l)));
            response("200 OK", &headers, body)
        })
        .await;
        let error = client().tags_list(&server.repo()).await.unwrap_err();
        assert!(
            matches!(error, RegistryError::InvalidResponse { .. }),
            "{body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_list_is_cut_at_its_cap_across_pages() {
    // Two pages of 9 MiB each: each under the cap, together over it.
    let tags: Vec<String> = (0..70_000).map(|i| format!("{i:0>128}")).collect();
    let big = json!({ "tags": tags }).to_string();
    assert!(big.len() as u64 > MAX_TAG_LIST_BYTES / 2);
    let server = FakeServer::start(move |_, request| {
        let link = (!request.contains("last=")).then_some(("Link", "<?last=z>; rel=next"));
        let mut headers = vec![JSON];
        headers.extend(link);
        response("200 OK", &headers, &big)
    })
    .await;
    match client().tags_list(&server.repo()).await.unwrap_err() {
        RegistryError::TooLarge { body, limit, .. } => {
            assert_eq!(body, BodyKind::TagList);
            assert_eq!(limit, MAX_TAG_LIST_BYTES);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_repository_the_registry_does_not_know_has_no_tags() {
    let server = FakeServer::start(|_, _| {
        response(
            "404 Not Found",
            &[JSON],
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        )
    })
    .await;
    assert!(client().tags_list(&server.repo()).await.unwrap().is_empty());
    // No tags: the container is left to its manifest request, which says whether to build.
    assert!(
        listed(&client(), one("c", recorded(&server, "a")), BTreeMap::new())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_listing_answered_500_is_tried_once_and_left_to_the_manifest_requests() {
    let server = FakeServer::start(|_, _| response("500 Internal Server Error", &[], "oops")).await;
    let error = client().tags_list_once(&server.repo()).await.unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Unavailable {
                status: 500,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
    assert!(
        listed(&client(), one("c", recorded(&server, "a")), BTreeMap::new())
            .await
            .is_empty()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_tag_listed_is_cached_with_the_locks_digest_and_one_absent_is_not() {
    let server =
        FakeServer::start(|_, _| response("200 OK", &[JSON], &page(&["a", "other"]))).await;
    let mut recorded_ = one("present", recorded(&server, "a"));
    recorded_.extend(one("absent", recorded(&server, "b")));
    let found = listed(&client(), recorded_, BTreeMap::new()).await;
    let present = found[&Name::parse("present").unwrap()].clone().unwrap();
    assert_eq!(present.0, cookbook::apply::CacheSource::Registry);
    assert_eq!(present.1 .0, Some(format!("sha256:{}", "a".repeat(64))));
    assert_eq!(present.1 .1, Some(format!("sha256:{}", "b".repeat(64))));
    assert!(!found.contains_key(&Name::parse("absent").unwrap()));
    // Two containers of one repository: one listing.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_listing_started_before_hashing_is_used_and_not_asked_again() {
    // The run lists the lock's repositories while it hashes (`TagLists`); `listed` takes those
    // answers. A registry that would now answer 500 is not asked.
    let server = FakeServer::start(|_, _| response("500 Internal Server Error", &[], "oops")).await;
    let started = BTreeMap::from([(
        server.repo(),
        Some(std::collections::BTreeSet::from(["a".to_owned()])),
    )]);
    let found = listed(&client(), one("c", recorded(&server, "a")), started).await;
    assert_eq!(
        found[&Name::parse("c").unwrap()].as_ref().unwrap().0,
        cookbook::apply::CacheSource::Registry
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // A listing that failed when started leaves its containers to their manifest requests.
    let failed = BTreeMap::from([(server.repo(), None)]);
    assert!(listed(&client(), one("c", recorded(&server, "a")), failed)
        .await
        .is_empty());
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------- the real registry

/// A loopback TCP proxy to `upstream` that records the request lines it forwards.
struct Proxy {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(runtime: &tokio::runtime::Runtime, upstream: String) -> Proxy {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        let mut buffer = vec![0u8; 64 << 10];
                        loop {
                            let n = match client_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            record(&seen, &buffer[..n]);
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Proxy { port, lines }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// The request lines in a chunk of a client's bytes (a request's head arrives in one chunk).
fn record(seen: &Mutex<Vec<String>>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.split("\r\n") {
        let method = line.split(' ').next().unwrap_or_default();
        if ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&method)
            && line.ends_with(" HTTP/1.1")
        {
            seen.lock().unwrap().push(line.to_owned());
        }
    }
}

/// Each container's JSON report without its timings.
fn reported(run: &Run) -> Value {
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()));
    let mut containers = doc["containers"].clone();
    for (_, c) in containers.as_object_mut().unwrap() {
        c.as_object_mut().unwrap().remove("millis");
    }
    containers
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn a_no_op_apply_lists_each_repository_once_and_reports_as_the_manifest_requests_do() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = Proxy::start(&runtime, registry.clone());
    let id = common::unique("tags");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let names: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let mut applications = serde_json::Map::new();
    let mut containers = serde_json::Map::new();
    for name in &names {
        write(&root.join(format!("{name}/{name}.txt")), name);
        applications.insert(name.clone(), json!({ "source": name }));
        containers.insert(
            name.clone(),
            json!({ "base_image": "cookbook-test/busybox:latest", "applications": [name] }),
        );
    }
    write(
        &root.join("cookbook.json"),
        &serde_json::to_string_pretty(&json!({
            "manifest_version": "1.0",
            "project": { "name": "tags" },
            "applications": applications,
            "containers": containers,
            "packaging": { "registry": format!("127.0.0.1:{}/{id}", proxy.port) }
        }))
        .unwrap(),
    );
    let apply = || common::run_in(root, &["apply", "--format", "json"]);
    apply().assert_code(0);
    let lock_path = root.join("cookbook.lock");
    let lock = fs::read(&lock_path).unwrap();

    // Without a lock: one manifest request per container, as before issue 24.
    fs::remove_file(&lock_path).unwrap();
    proxy.take();
    let by_manifest = apply();
    by_manifest.assert_code(0);
    let lines = proxy.take();
    assert_eq!(
        lines.iter().filter(|l| l.contains("/manifests/")).count(),
        names.len(),
        "{lines:#?}"
    );

    // With the lock: one listing per repository, no manifest request, the same report.
    fs::write(&lock_path, &lock).unwrap();
    let by_list = apply();
    by_list.assert_code(0);
    let lines = proxy.take();
    assert!(
        lines.iter().all(|l| !l.contains("/manifests/")),
        "{lines:#?}"
    );
    for name in &names {
        let listing = format!("GET /v2/{id}/{name}/tags/list?n=1000 HTTP/1.1");
        assert_eq!(
            lines.iter().filter(|l| **l == listing).count(),
            1,
            "{lines:#?}"
        );
    }
    assert_eq!(reported(&by_list), reported(&by_manifest));
    for name in &names {
        assert_eq!(
            by_list_status(&by_list, name),
            "cached",
            "{}",
            by_list.context()
        );
    }
    assert_eq!(
        fs::read(&lock_path).unwrap(),
        lock,
        "the lock is left as it was"
    );

    // One image deleted behind the lock's back: its tag is no longer listed, the manifest
    // request confirms it is gone, and it is built again; the others stay cached.
    let doc: Value = serde_json::from_slice(&lock).unwrap();
    let digest = doc["containers"]["c0"]["digest"].as_str().unwrap();
    let url = format!("http://{registry}/v2/{id}/c0/manifests/{digest}");
    let status = runtime
        .block_on(async { reqwest::Client::new().delete(&url).send().await })
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202, "DELETE {url}");
    proxy.take();
    let rebuilt = apply();
    rebuilt.assert_code(0);
    assert_eq!(
        by_list_status(&rebuilt, "c0"),
        "built",
        "{}",
        rebuilt.context()
    );
    for name in &names[1..] {
        assert_eq!(
            by_list_status(&rebuilt, name),
            "cached",
            "{}",
            rebuilt.context()
        );
    }
    let lines = proxy.take();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("GET /v2/{id}/c0/manifests/"))),
        "{lines:#?}"
    );
}

fn by_list_status(run: &Run, name: &str) -> String {
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    doc["containers"][name]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
