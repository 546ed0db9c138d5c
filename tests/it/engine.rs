//! The engine and registry edges against the real Docker engine and registry that
//! `scripts/services.sh up` starts (`eval "$(scripts/services.sh env)"` sets DOCKER_HOST and
//! COOKBOOK_TEST_REGISTRY), plus small fault-injecting HTTP servers on 127.0.0.1 for what a
//! real registry will not do on demand (503, 429, 401).

use crate::common;
use common::http::{response, FakeServer};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cookbook::engine::{BuildRequest, DockerEngine, Engine, EngineError};
use cookbook::error::{Error, EXIT_FAILED, EXIT_UNREACHABLE};
use cookbook::registry::{
    Credential, CredentialStore, Digest, RegistryClient, RegistryError, Repository,
};
use cookbook::retry::RetryPolicy;
use tokio::net::TcpListener;

// ---------------------------------------------------------------- set-up

struct Services {
    docker_host: String,
    registry: String,
    base_image: String,
}

/// The real services, or `None` (with a loud message) when the environment does not name them.
fn services() -> Option<Services> {
    let docker_host = std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty());
    let registry = std::env::var("COOKBOOK_TEST_REGISTRY")
        .ok()
        .filter(|v| !v.is_empty());
    match (docker_host, registry) {
        (Some(docker_host), Some(registry)) => Some(Services {
            docker_host,
            registry,
            base_image: std::env::var("COOKBOOK_TEST_BASE_IMAGE")
                .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned()),
        }),
        _ => {
            common::skip_or_fail();
            None
        }
    }
}

/// A build context tar holding `files`, written to `dir/context.tar`.
fn context_tar(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("context.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap().sync_all().unwrap();
    path
}

async fn engine(services: &Services) -> DockerEngine {
    DockerEngine::connect_to(&services.docker_host)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test engine {}: {e}", services.docker_host))
        .with_retry(fast_retry(3))
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
    }
}

fn registry_client(max_attempts: u32) -> RegistryClient {
    RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous)
        .with_retry(fast_retry(max_attempts))
}

// ---------------------------------------------------------------- engine

#[tokio::test]
async fn negotiates_an_api_version_the_engine_speaks() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    engine.ping().await.unwrap();
    let (major, minor) = engine
        .api_version()
        .split_once('.')
        .map(|(a, b)| (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()))
        .unwrap();
    // Docker 20.10 speaks 1.41; bollard's default (1.5x) must have been negotiated down to
    // whatever the engine speaks, and requests must work at that version.
    assert_eq!(major, 1);
    assert!(minor >= 24, "api version {minor}");
    assert!(
        engine
            .image_exists(&services.base_image)
            .await
            .unwrap()
            .is_some(),
        "the base image {} is missing: run scripts/services.sh up",
        services.base_image
    );
    assert_eq!(
        engine
            .image_exists("cookbook-test/never-built:nope")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn builds_a_context_with_labels_and_tags() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = common::unique("marker");
    let dockerfile = format!(
        "FROM {}\nRUN echo {marker} && echo hi > /x\nCOPY payload.txt /payload.txt\nRUN test \"$(cat /payload.txt)\" = payload\n",
        services.base_image
    );
    let context = context_tar(
        dir.path(),
        &[("Dockerfile", &dockerfile), ("payload.txt", "payload")],
    );
    let name = common::unique("cookbook-test/engine-build");
    let mut request = BuildRequest::new(&context);
    request.labels = BTreeMap::from([
        ("org.cookbook.input-hash".to_owned(), marker.clone()),
        (
            "org.opencontainers.image.title".to_owned(),
            "engine test".to_owned(),
        ),
    ]);
    request.tags = vec![format!("{name}:one"), format!("{name}:two")];
    let streamed = Mutex::new(Vec::new());
    let outcome = engine
        .build(&request, &|line: &str| {
            streamed.lock().unwrap().push(line.to_owned())
        })
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}\n{e:?}"));

    assert!(
        outcome.image_id.as_str().starts_with("sha256:"),
        "{}",
        outcome.image_id
    );
    // The RUN step ran (its output is in the log) and every line reached the callback.
    assert!(
        outcome.log.iter().any(|l| l.trim() == marker),
        "marker missing from log:\n{}",
        outcome.log.join("\n")
    );
    assert_eq!(*streamed.lock().unwrap(), outcome.log);

    let info = engine
        .inspect_image(&format!("{name}:one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.id, outcome.image_id);
    for (key, value) in &request.labels {
        assert_eq!(info.labels.get(key), Some(value), "label {key}");
    }
    assert_eq!(
        engine.image_exists(&format!("{name}:two")).await.unwrap(),
        Some(outcome.image_id.clone())
    );

    // A child built FROM the image just built (a `container:` base): the engine must use the
    // local image, never try to pull it (this name exists in no registry).
    let child_dir = tempfile::tempdir().unwrap();
    let child_context = context_tar(
        child_dir.path(),
        // payload.txt has no final newline: `echo` ends the line, else the daemon's next
        // message would run into it (as it does in `docker build`).
        &[(
            "Dockerfile",
            &format!("FROM {name}:one\nRUN cat /x /payload.txt && echo\n"),
        )],
    );
    let child = engine
        .build(&BuildRequest::new(&child_context), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("child build failed: {e:?}"));
    assert!(
        child.log.iter().any(|l| l.trim() == "hi"),
        "{}",
        child.log.join("\n")
    );
    assert!(
        child.log.iter().any(|l| l.trim() == "payload"),
        "{}",
        child.log.join("\n")
    );
    let child_info = engine
        .inspect_image(child.image_id.as_str())
        .await
        .unwrap()
        .unwrap();
    // Labels are inherited from the parent.
    assert_eq!(child_info.labels, info.labels);
    assert!(engine.remove_image(child.image_id.as_str()).await.unwrap());

    assert!(engine.remove_image(&format!("{name}:one")).await.unwrap());
    assert!(engine.remove_image(&format!("{name}:two")).await.unwrap());
    assert!(!engine.remove_image(&format!("{name}:two")).await.unwrap());
    assert_eq!(
        engine.image_exists(&format!("{name}:one")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn build_args_and_target_reach_the_builder() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {base} AS first\nARG GREETING\nRUN echo \"greeting=$GREETING\"\n\
         FROM {base} AS second\nRUN echo second-stage-ran && exit 1\n",
        base = services.base_image
    );
    let context = context_tar(dir.path(), &[("build/Containerfile", &dockerfile)]);
    let mut request = BuildRequest::new(&context);
    request.dockerfile = "build/Containerfile".to_owned();
    request.build_args = BTreeMap::from([("GREETING".to_owned(), common::unique("hello"))]);
    request.target = Some("first".to_owned());
    let outcome = engine.build(&request, &|_| {}).await.unwrap();
    let expected = format!("greeting={}", request.build_args["GREETING"]);
    assert!(
        outcome.log.iter().any(|l| l.trim() == expected),
        "{}",
        outcome.log.join("\n")
    );
    assert!(!outcome.log.iter().any(|l| l.contains("second-stage-ran")));
    engine
        .remove_image(outcome.image_id.as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_run_step_is_build_failed_with_the_whole_log() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = common::unique("about-to-fail");
    let dockerfile = format!(
        "FROM {}\nRUN echo {marker} && echo on-stderr >&2 && exit 3\nRUN echo never-reached\n",
        services.base_image
    );
    let context = context_tar(dir.path(), &[("Dockerfile", &dockerfile)]);
    let name = common::unique("cookbook-test/engine-fail");
    let mut request = BuildRequest::new(&context);
    request.tags = vec![format!("{name}:x")];
    let error = engine.build(&request, &|_| {}).await.unwrap_err();
    let EngineError::BuildFailed { log, message } = &error else {
        panic!("expected BuildFailed, got {error:?}");
    };
    let text = log.join("\n");
    assert!(log.iter().any(|l| l.trim() == marker), "log:\n{text}");
    assert!(log.iter().any(|l| l.trim() == "on-stderr"), "log:\n{text}");
    assert!(!text.contains("never-reached\n") && !log.iter().any(|l| l.trim() == "never-reached"));
    assert!(message.contains('3'), "{message}");
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);
    assert_eq!(
        engine.image_exists(&format!("{name}:x")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_context_without_its_dockerfile_is_build_failed() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    let dir = tempfile::tempdir().unwrap();
    let context = context_tar(dir.path(), &[("other.txt", "x")]);
    let error = engine
        .build(&BuildRequest::new(&context), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, EngineError::BuildFailed { .. }),
        "{error:?}"
    );
    let missing = engine
        .build(&BuildRequest::new(dir.path().join("absent.tar")), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(missing, EngineError::Context { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn tag_push_and_the_registry_agree_on_the_digest() {
    let Some(services) = services() else { return };
    let engine = engine(&services).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = common::unique("pushed");
    let dockerfile = format!(
        "FROM {}\nRUN echo {marker} > /marker\n",
        services.base_image
    );
    let context = context_tar(dir.path(), &[("Dockerfile", &dockerfile)]);
    let mut request = BuildRequest::new(&context);
    request.labels = BTreeMap::from([("org.cookbook.input-hash".to_owned(), marker.clone())]);
    let outcome = engine.build(&request, &|_| {}).await.unwrap();

    let repo = Repository::parse(&format!(
        "{}/{}",
        services.registry,
        common::unique("cookbook-test/engine-push")
    ))
    .unwrap();
    let registry = registry_client(3);
    registry.check_push_access(&repo).await.unwrap();
    assert_eq!(registry.manifest_head(&repo, "v1").await.unwrap(), None);
    assert_eq!(
        registry.tags_list(&repo).await.unwrap(),
        Vec::<String>::new()
    );

    engine
        .tag(outcome.image_id.as_str(), &repo.to_string(), "v1")
        .await
        .unwrap();
    engine
        .tag(outcome.image_id.as_str(), &repo.to_string(), "latest")
        .await
        .unwrap();
    let digest = engine.push(&repo, "v1", None).await.unwrap();
    let again = engine.push(&repo, "latest", None).await.unwrap();
    assert_eq!(
        again, digest,
        "the same image pushed twice has one manifest"
    );

    assert_eq!(
        registry.manifest_head(&repo, "v1").await.unwrap(),
        Some(digest.clone())
    );
    assert_eq!(
        registry
            .manifest_head(&repo, digest.as_str())
            .await
            .unwrap(),
        Some(digest.clone())
    );
    let manifest = registry.manifest_get(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(manifest.digest, digest);
    assert!(manifest.config_digest().is_some());
    let mut tags = registry.tags_list(&repo).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);
    let labels = registry.image_labels(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(labels.get("org.cookbook.input-hash"), Some(&marker));
    let config = registry
        .blob_get(&repo, &manifest.config_digest().unwrap())
        .await
        .unwrap()
        .unwrap();
    // The registry's config blob is the engine's image: its digest is the image id.
    assert_eq!(
        Digest::sha256_of(&config).as_str(),
        outcome.image_id.as_str()
    );

    engine
        .remove_image(outcome.image_id.as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_engine_names_its_endpoint() {
    let missing = DockerEngine::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, EngineError::Unreachable { endpoint, .. } if endpoint == "unix:///nonexistent/docker.sock"),
        "{missing:?}"
    );
    assert!(
        missing
            .to_string()
            .contains("unix:///nonexistent/docker.sock"),
        "{missing}"
    );
    assert_eq!(Error::from(missing).exit_code(), EXIT_UNREACHABLE);

    // A socket file nobody listens on any more (a dead daemon).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let host = format!("unix://{}", path.display());
    let dead = DockerEngine::connect_to(&host).await.unwrap_err();
    assert!(
        matches!(&dead, EngineError::Unreachable { endpoint, .. } if *endpoint == host),
        "{dead:?}"
    );

    // A closed TCP port.
    let port = closed_port().await;
    let tcp = DockerEngine::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(tcp, EngineError::Unreachable { .. }), "{tcp:?}");

    // An engine that accepts the connection and never answers is reported, not waited on.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_host = format!("tcp://{}", hung.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            sockets.push(socket);
        }
    });
    let started = Instant::now();
    let error = DockerEngine::connect_with_timeout(&hung_host, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::Unreachable { endpoint, .. } if *endpoint == hung_host),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    held.abort();

    let unsupported = DockerEngine::connect_to("ftp://127.0.0.1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            unsupported,
            EngineError::Endpoint(cookbook::engine::EndpointError::Unsupported { .. })
        ),
        "{unsupported:?}"
    );
}

// ---------------------------------------------------------------- registry

#[tokio::test]
async fn check_push_access_on_the_real_registry() {
    let Some(services) = services() else { return };
    let repo = Repository::parse(&format!("{}/cookbook-test/access", services.registry)).unwrap();
    registry_client(3).check_push_access(&repo).await.unwrap();
    // Starting and cancelling an upload leaves no tag behind.
    assert_eq!(
        registry_client(3).tags_list(&repo).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_unreachable_registry_names_its_endpoint() {
    let port = closed_port().await;
    let repo = Repository::parse(&format!("127.0.0.1:{port}/cookbook/x")).unwrap();
    let started = Instant::now();
    let error = registry_client(2)
        .manifest_head(&repo, "latest")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::Unreachable { endpoint, .. } if endpoint.contains(&format!("127.0.0.1:{port}"))),
        "{error:?}"
    );
    // One backoff (100 ms) between the two attempts.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
    assert_eq!(Error::from(error).exit_code(), EXIT_UNREACHABLE);
}

const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

#[tokio::test]
async fn transient_503s_are_retried_with_backoff() {
    let server = FakeServer::start(|n, _| match n {
        0 | 1 => response("503 Service Unavailable", &[], ""),
        _ => response("200 OK", &[("Docker-Content-Digest", DIGEST)], ""),
    })
    .await;
    let started = Instant::now();
    let digest = registry_client(4)
        .manifest_head(&server.repo(), "v1")
        .await
        .unwrap();
    assert_eq!(digest.as_ref().map(Digest::as_str), Some(DIGEST));
    assert_eq!(server.requests().len(), 3);
    // Backoff 100 ms, then 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let first = &server.requests()[0];
    assert!(
        first.starts_with("HEAD /v2/cookbook/x/manifests/v1 HTTP/1.1"),
        "{first}"
    );
    assert!(
        first
            .to_ascii_lowercase()
            .contains("application/vnd.oci.image.index.v1+json"),
        "{first}"
    );
    assert!(
        first
            .to_ascii_lowercase()
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{first}"
    );
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let server = FakeServer::start(|n, _| match n {
        0 => response("429 Too Many Requests", &[("Retry-After", "1")], ""),
        _ => response("404 Not Found", &[], ""),
    })
    .await;
    let started = Instant::now();
    let found = registry_client(3)
        .manifest_head(&server.repo(), "v1")
        .await
        .unwrap();
    assert_eq!(found, None);
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_registry_that_stays_down_is_unavailable_after_the_last_attempt() {
    let server = FakeServer::start(|_, _| response("502 Bad Gateway", &[], "")).await;
    let error = registry_client(3)
        .tags_list(&server.repo())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Unavailable {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(Error::from(error).exit_code(), EXIT_UNREACHABLE);
}

#[tokio::test]
async fn a_401_without_credentials_is_unauthorized_at_once() {
    let server = FakeServer::start(|_, _| {
        response(
            "401 Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"fake\"")],
            "",
        )
    })
    .await;
    let error = registry_client(5)
        .check_push_access(&server.repo())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1, "no retry of a 401");
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn a_403_is_unauthorized_at_once() {
    let server = FakeServer::start(|_, _| response("403 Forbidden", &[], "")).await;
    let error = registry_client(5)
        .check_push_access(&server.repo())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { status: 403, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn basic_credentials_answer_a_basic_challenge() {
    // base64("user:pa:ss")
    let server = FakeServer::start(|_, request| {
        if request.contains("authorization: Basic dXNlcjpwYTpzcw==") {
            response(
                "200 OK",
                &[("Content-Type", "application/json")],
                r#"{"name":"cookbook/x","tags":["a","b"]}"#,
            )
        } else {
            response(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"fake\"")],
                "",
            )
        }
    })
    .await;
    let credentials = CredentialStore::Fixed(BTreeMap::from([(
        server.host(),
        Credential::Basic {
            username: "user".into(),
            password: "pa:ss".into(),
        },
    )]));
    let client = registry_client(2).with_credentials(credentials);
    assert_eq!(client.tags_list(&server.repo()).await.unwrap(), ["a", "b"]);
    // The accepted answer is cached: the second call needs no challenge.
    assert_eq!(client.tags_list(&server.repo()).await.unwrap(), ["a", "b"]);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn bearer_tokens_are_fetched_from_the_realm_for_the_push_scope() {
    let server = FakeServer::start_with_self(|n, request, host| {
        let first_line = request.lines().next().unwrap_or_default().to_owned();
        if first_line.starts_with("GET /token?") {
            return response("200 OK", &[("Content-Type", "application/json")], r#"{"token":"tok-123"}"#);
        }
        if request.contains("authorization: Bearer tok-123") {
            return match first_line.split(' ').next() {
                Some("POST") => response("202 Accepted", &[("Location", "/v2/cookbook/x/blobs/uploads/abc?_state=s")], ""),
                _ => response("204 No Content", &[], ""),
            };
        }
        let _ = n;
        response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                &format!("Bearer realm=\"http://{host}/token\",service=\"fake\",scope=\"repository:cookbook/x:pull,push\""),
            )],
            "",
        )
    })
    .await;
    registry_client(2)
        .check_push_access(&server.repo())
        .await
        .unwrap();
    let requests = server.requests();
    let lines: Vec<&str> = requests.iter().map(|r| r.lines().next().unwrap()).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("POST /v2/cookbook/x/blobs/uploads/ "),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("GET /token?"), "{lines:#?}");
    assert!(
        lines[1].contains("scope=repository%3Acookbook%2Fx%3Apull%2Cpush"),
        "{lines:#?}"
    );
    assert!(lines[1].contains("service=fake"), "{lines:#?}");
    assert!(
        lines[2].starts_with("POST /v2/cookbook/x/blobs/uploads/ "),
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with("DELETE /v2/cookbook/x/blobs/uploads/abc?_state=s "),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_at_once() {
    let server = FakeServer::start_with_self(|_, request, host| {
        if request.starts_with("GET /token?") {
            return response("401 Unauthorized", &[], "");
        }
        response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                &format!("Bearer realm=\"http://{host}/token\",service=\"fake\""),
            )],
            "",
        )
    })
    .await;
    let error = registry_client(5)
        .manifest_head(&server.repo(), "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::Unauthorized { endpoint, status: 401, .. } if endpoint.contains("/token")),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn tags_list_follows_pagination_links() {
    let server = FakeServer::start(|_, request| {
        let json = [("Content-Type", "application/json")];
        if request.starts_with("GET /v2/cookbook/x/tags/list?last=b ") {
            response("200 OK", &json, r#"{"name":"cookbook/x","tags":["c"]}"#)
        } else {
            response(
                "200 OK",
                &[
                    json[0],
                    ("Link", r#"</v2/cookbook/x/tags/list?last=b>; rel="next""#),
                ],
                r#"{"name":"cookbook/x","tags":["a","b"]}"#,
            )
        }
    })
    .await;
    assert_eq!(
        registry_client(1).tags_list(&server.repo()).await.unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_manifest_whose_bytes_do_not_match_its_digest_is_refused() {
    let server = FakeServer::start(|_, _| {
        response(
            "200 OK",
            &[("Docker-Content-Digest", DIGEST)],
            r#"{"schemaVersion":2}"#,
        )
    })
    .await;
    let error = registry_client(1)
        .manifest_get(&server.repo(), "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::InvalidResponse { .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------- push retries (fake engine)

const PUSHED: &str = "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

fn engine_version() -> String {
    response(
        "200 OK",
        &[("Content-Type", "application/json")],
        r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
    )
}

fn push_stream(lines: &[String]) -> String {
    response(
        "200 OK",
        &[("Content-Type", "application/json")],
        &(lines.join("\n") + "\n"),
    )
}

fn image_json(repo_digests: &[&str]) -> String {
    let digests: Vec<String> = repo_digests.iter().map(|d| format!("\"{d}\"")).collect();
    response(
        "200 OK",
        &[("Content-Type", "application/json")],
        &format!(
            r#"{{"Id":"sha256:{}","RepoTags":["127.0.0.1:5999/cookbook/x:v1"],"RepoDigests":[{}],"Config":{{"Labels":{{"a":"b"}}}}}}"#,
            "1".repeat(64),
            digests.join(",")
        ),
    )
}

async fn fake_engine(server: &FakeServer) -> DockerEngine {
    DockerEngine::connect_to(&format!("tcp://{}", server.host()))
        .await
        .unwrap()
        .with_retry(fast_retry(4))
}

fn pushes(server: &FakeServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.lines().next().unwrap().contains("/push?"))
        .count()
}

#[tokio::test]
async fn push_retries_an_engine_503_then_reads_the_recorded_digest() {
    let attempts = Arc::new(Mutex::new(0));
    let counter = attempts.clone();
    let server = FakeServer::start(move |_, request| {
        let line = request.lines().next().unwrap_or_default();
        if line.starts_with("GET /version") {
            return engine_version();
        }
        if line.starts_with("POST /v1.41/images/127.0.0.1:5999/cookbook/x/push?") {
            let mut n = counter.lock().unwrap();
            *n += 1;
            if *n <= 2 {
                return response("503 Service Unavailable", &[("Content-Type", "application/json")], r#"{"message":"busy"}"#);
            }
            return push_stream(&[
                r#"{"status":"The push refers to repository [127.0.0.1:5999/cookbook/x]"}"#.to_owned(),
                format!(r#"{{"status":"v1: digest: {PUSHED} size: 527"}}"#),
                format!(r#"{{"progressDetail":{{}},"aux":{{"Tag":"v1","Digest":"{PUSHED}","Size":527}}}}"#),
            ]);
        }
        if line.starts_with("GET /v1.41/images/127.0.0.1:5999/cookbook/x:v1/json") {
            return image_json(&[&format!("127.0.0.1:5999/cookbook/x@{PUSHED}"), &format!("127.0.0.1:5999/other@{DIGEST}")]);
        }
        response("404 Not Found", &[], "")
    })
    .await;
    let engine = fake_engine(&server).await;
    assert_eq!(engine.api_version(), "1.41");
    let repo = Repository::parse("127.0.0.1:5999/cookbook/x").unwrap();
    let started = Instant::now();
    let digest = engine
        .push(&repo, "v1", None)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{:#?}", server.requests()));
    assert_eq!(digest.as_str(), PUSHED);
    assert_eq!(pushes(&server), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn push_retries_a_stream_error_and_picks_the_announced_digest() {
    let attempt = Arc::new(Mutex::new(0));
    let counter = attempt.clone();
    let server = FakeServer::start(move |_, request| {
        let line = request.lines().next().unwrap_or_default();
        if line.starts_with("GET /version") {
            return engine_version();
        }
        if line.contains("/push?") {
            let mut n = counter.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return push_stream(&[
                    r#"{"status":"The push refers to repository [127.0.0.1:5999/cookbook/x]"}"#.to_owned(),
                    r#"{"errorDetail":{"message":"received unexpected HTTP status: 502 Bad Gateway"},"error":"received unexpected HTTP status: 502 Bad Gateway"}"#.to_owned(),
                ]);
            }
            return push_stream(&[format!(r#"{{"status":"v1: digest: {PUSHED} size: 527"}}"#)]);
        }
        if line.contains("/json ") {
            // The image was pushed to this repository before under another manifest.
            return image_json(&[
                &format!("127.0.0.1:5999/cookbook/x@{DIGEST}"),
                &format!("127.0.0.1:5999/cookbook/x@{PUSHED}"),
            ]);
        }
        response("404 Not Found", &[], "")
    })
    .await;
    let engine = fake_engine(&server).await;
    let repo = Repository::parse("127.0.0.1:5999/cookbook/x").unwrap();
    let digest = engine.push(&repo, "v1", None).await.unwrap();
    assert_eq!(digest.as_str(), PUSHED);
    assert_eq!(pushes(&server), 2);
}

#[tokio::test]
async fn push_gives_up_after_max_attempts_and_does_not_retry_a_404() {
    let server = FakeServer::start(move |_, request| {
        let line = request.lines().next().unwrap_or_default();
        if line.starts_with("GET /version") {
            return engine_version();
        }
        if line.contains("/cookbook/x/push?") {
            return push_stream(&[r#"{"errorDetail":{"message":"blob upload unknown"},"error":"blob upload unknown"}"#.to_owned()]);
        }
        response("404 Not Found", &[("Content-Type", "application/json")], r#"{"message":"No such image: 127.0.0.1:5999/missing:v1"}"#)
    })
    .await;
    let engine = fake_engine(&server).await;
    let repo = Repository::parse("127.0.0.1:5999/cookbook/x").unwrap();
    let error = engine.push(&repo, "v1", None).await.unwrap_err();
    let EngineError::PushFailed {
        reference,
        attempts,
        message,
        ..
    } = &error
    else {
        panic!("expected PushFailed, got {error:?}");
    };
    assert_eq!(reference, "127.0.0.1:5999/cookbook/x:v1");
    assert_eq!(*attempts, 4);
    assert_eq!(message, "blob upload unknown");
    assert_eq!(pushes(&server), 4);
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);

    let before = pushes(&server);
    let missing = Repository::parse("127.0.0.1:5999/missing").unwrap();
    let error = engine.push(&missing, "v1", None).await.unwrap_err();
    assert!(
        matches!(error, EngineError::Api { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(pushes(&server), before + 1, "a 404 is not retried");
}

// ---------------------------------------------------------------- fakes

/// A port on 127.0.0.1 that nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
