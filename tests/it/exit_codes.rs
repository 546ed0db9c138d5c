//! One test per row of the exit-code table (src/error.rs, README "Exit codes") that the rest of
//! the suite does not already cover: the real binary wherever the failure can be produced for
//! real (a full device, a file size limit, the git daemon, the registry standing in for a
//! non-Docker HTTP server), and the edges' own calls against small fault-injecting servers on
//! 127.0.0.1 for the answers no real service gives on demand (a push refused mid-stream).

use crate::common;
use common::http::{response, FakeServer};

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cookbook::engine::{DockerEngine, Engine, EngineError};
use cookbook::error::{Error, EXIT_FAILED, EXIT_INVALID};
use cookbook::registry::{CredentialStore, RegistryClient, RegistryError, Repository};
use cookbook::retry::RetryPolicy;
use serde_json::json;

// ---------------------------------------------------------------- set-up

/// A name no other test run uses (lower case and digits: a valid project name).
use common::unique;

/// A one-container cookbook in `dir` publishing to `registry` (the Dockerfile's label makes
/// its image this test's alone).
fn write_cookbook(dir: &Path, project: &str, registry: &str) {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        format!("FROM cookbook-test/busybox:latest\nLABEL test.unique={project}\n"),
    )
    .unwrap();
    let cookbook = json!({
        "manifest_version": "1.0",
        "project": { "name": project },
        "applications": {},
        "containers": { "one": { "dockerfile": "ctx/Dockerfile", "context": "ctx" } },
        "packaging": { "registry": registry, "tagging": "content-hash" },
    });
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook).unwrap(),
    )
    .unwrap();
}

/// The binary with `args` in `dir`, through `sh` so that `limits` (shell lines such as
/// `ulimit -f 0`) apply to it alone; SIGXFSZ is ignored so that a write past the file size limit
/// fails with EFBIG, as a full quota would, instead of killing the process.
fn cookbook(dir: &Path, limits: &str, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
    let started = std::time::Instant::now();
    let script = format!("{limits}\ntrap '' XFSZ\nexec \"$0\" \"$@\"");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(common::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("COOKBOOK_FILE")
        .env("CI", "true")
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    common::Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: dir.to_path_buf(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn assert_stderr_has(run: &common::Run, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "stderr lacks {needle:?}\n{}",
        run.context()
    );
}

// ---------------------------------------------------------------- local I/O

#[test]
fn a_full_device_as_the_context_output_is_exit_1_naming_it_and_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    write_cookbook(dir.path(), "full", "127.0.0.1:5000/full");
    let run = common::run_in(dir.path(), &["context", "one", "-o", "/dev/full"]);
    run.assert_code(EXIT_FAILED);
    assert_eq!(
        run.stderr,
        "error: cannot write /dev/full: No space left on device (os error 28)\n",
        "{}",
        run.context()
    );
    // Written into, as `tar -f` would; never renamed over (that would replace the device node).
    let meta = std::fs::metadata("/dev/full").unwrap();
    assert!(meta.file_type().is_char_device());
    // The same output to a sink works.
    common::run_in(dir.path(), &["context", "one", "-o", "/dev/null"]).assert_code(0);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn a_full_standard_output_is_exit_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_cookbook(dir.path(), "stdout", "127.0.0.1:5000/stdout");
    let out = Command::new(common::bin())
        .args(["context", "one", "-o", "-"])
        .current_dir(dir.path())
        .env_remove("COOKBOOK_FILE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_FAILED), "{stderr}");
    assert_eq!(
        stderr,
        "error: cannot write standard output: No space left on device (os error 28)\n"
    );
}

#[test]
fn an_output_path_under_a_regular_file_is_a_bad_argument() {
    let dir = tempfile::tempdir().unwrap();
    write_cookbook(dir.path(), "notdir", "127.0.0.1:5000/notdir");
    std::fs::write(dir.path().join("plain"), "a file, not a directory").unwrap();
    let run = common::run_in(dir.path(), &["context", "one", "-o", "plain/out.tar"]);
    run.assert_code(EXIT_INVALID);
    assert_eq!(
        run.stderr,
        "error: cannot write plain/out.tar: plain is not a directory\n  help: create it first, or \
         name an existing directory\n",
        "{}",
        run.context()
    );
}

#[test]
fn a_tar_or_lock_past_the_file_size_limit_is_exit_1_naming_the_file() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("fsize");
    write_cookbook(dir.path(), &project, &format!("{registry}/{project}"));

    // The Dockerfile's base pinned in the lock first (apply records a new pin before it builds):
    // then the build context tar is the first thing apply writes.
    cookbook(dir.path(), "", &["update"], &[]).assert_code(0);
    let run = cookbook(dir.path(), "ulimit -f 0", &["apply", "--no-push"], &[]);
    run.assert_code(EXIT_FAILED);
    assert_stderr_has(&run, "cannot write ");
    assert_stderr_has(&run, ".tar: File too large (os error 27)");

    // Built once without the limit, then only the lock is left to write.
    cookbook(dir.path(), "", &["apply", "--no-push"], &[]).assert_code(0);
    std::fs::remove_file(dir.path().join("cookbook.lock")).unwrap();
    let run = cookbook(dir.path(), "ulimit -f 0", &["apply", "--no-push"], &[]);
    run.assert_code(EXIT_FAILED);
    assert_stderr_has(
        &run,
        "error: cannot write cookbook.lock: File too large (os error 27)",
    );
    assert!(!dir.path().join("cookbook.lock").exists());
}

// ---------------------------------------------------------------- Docker config, engine

#[test]
fn a_malformed_docker_config_is_exit_2_naming_file_line_and_column() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("dockerconfig");
    write_cookbook(dir.path(), &project, &format!("{registry}/{project}"));
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        "{\n  \"auths\": {\n    \"127.0.0.1:5000\": { \"auth\": \"eDp5\" }\n  \n",
    )
    .unwrap();
    let config_env = config.display().to_string();
    let run = cookbook(
        dir.path(),
        "",
        &["apply"],
        &[("DOCKER_CONFIG", config_env.as_str())],
    );
    run.assert_code(EXIT_INVALID);
    assert_stderr_has(
        &run,
        &format!(
            "error: {}/config.json:5:0: malformed Docker config: EOF while parsing an object\n",
            config.display()
        ),
    );
    assert!(!run.stderr.contains("building"), "{}", run.context());

    // A type error is located too: `auths` must be an object.
    std::fs::write(config.join("config.json"), "{\"auths\": [1]}").unwrap();
    let run = cookbook(
        dir.path(),
        "",
        &["apply"],
        &[("DOCKER_CONFIG", config_env.as_str())],
    );
    run.assert_code(EXIT_INVALID);
    assert_stderr_has(
        &run,
        &format!(
            "error: {}/config.json:1:10: malformed Docker config: invalid type: sequence, expected a map\n",
            config.display()
        ),
    );
}

#[test]
fn an_http_server_that_is_not_a_docker_engine_is_exit_3() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_cookbook(dir.path(), "notdocker", "127.0.0.1:5000/notdocker");
    // The registry speaks HTTP, and is no Docker engine.
    let host = format!("tcp://{registry}");
    let run = cookbook(
        dir.path(),
        "",
        &["apply", "--no-push"],
        &[("DOCKER_HOST", host.as_str())],
    );
    run.assert_code(3);
    assert_stderr_has(
        &run,
        &format!("error: not a Docker engine at {host}: GET /version answered HTTP 404"),
    );
}

// ---------------------------------------------------------------- base images

/// A one-container cookbook in `dir` whose generated container is built FROM `base`.
fn write_generated(dir: &Path, project: &str, base: &str) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/run.sh"), "echo hi\n").unwrap();
    let cookbook = json!({
        "manifest_version": "1.0",
        "project": { "name": project },
        "applications": { "app": { "source": "app" } },
        "containers": { "one": { "base_image": base, "applications": ["app"] } },
    });
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook).unwrap(),
    )
    .unwrap();
}

/// A base image reference that does not parse is a cookbook error, located, for every command
/// that reads the cookbook (the model checks it by Docker's grammar; nothing needs a service).
#[test]
fn a_base_image_reference_that_does_not_parse_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_generated(dir.path(), &unique("badbase"), "Busybox:1");
    for args in [
        &["validate"][..],
        &["hash"][..],
        &["apply", "--no-push"][..],
        &["update"][..],
    ] {
        let run = cookbook(dir.path(), "", args, &[]);
        run.assert_code(2);
        assert_stderr_has(
            &run,
            "cookbook.json:12:21: error[model/image]: /containers/one/base_image: image reference \
             \"Busybox:1\" is not a valid image reference: invalid reference format",
        );
    }
    assert!(!dir.path().join("cookbook.lock").exists());
}

#[test]
fn a_base_image_whose_registry_cannot_be_reached_is_exit_3_naming_it() {
    if common::test_registry().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A closed loopback port: nothing listens on port 1.
    write_generated(dir.path(), &unique("farbase"), "127.0.0.1:1/base/busybox:1");
    let run = cookbook(dir.path(), "", &["apply", "--no-push"], &[]);
    run.assert_code(3);
    assert_stderr_has(
        &run,
        "error: cannot resolve base image `127.0.0.1:1/base/busybox:1` of one: cannot connect to \
         the registry at http://127.0.0.1:1/v2/base/busybox/manifests/1",
    );
    assert!(!dir.path().join("cookbook.lock").exists());
}

#[test]
fn a_base_image_nobody_has_is_exit_1_naming_it() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("nobase");
    let base = format!("{registry}/{project}/nothing:1");
    write_generated(dir.path(), &project, &base);
    let run = cookbook(dir.path(), "", &["apply", "--no-push"], &[]);
    run.assert_code(1);
    assert_stderr_has(
        &run,
        &format!(
            "error: cannot resolve base image `{base}` of one: neither the local engine nor the \
             registry {registry} has it"
        ),
    );
}

// ---------------------------------------------------------------- git

/// `cookbook sync --remote URL` with a state directory and a home of its own.
fn sync(remote: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let state = dir.path().join("state");
    let run = cookbook(
        dir.path(),
        "",
        &[
            "sync",
            "--remote",
            remote,
            "--state",
            state.to_str().unwrap(),
        ],
        &[
            ("HOME", home.to_str().unwrap()),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_TERMINAL_PROMPT", "0"),
        ],
    );
    // Kept alive until the run is over.
    drop(dir);
    run
}

#[test]
fn git_a_repository_the_daemon_refuses_is_exit_1_naming_the_remote_and_what_to_check() {
    let Some(daemon) = std::env::var("COOKBOOK_TEST_GIT")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        common::skip_or_fail();
        return;
    };
    let remote = format!("{daemon}/{}.git", unique("absent"));
    let run = sync(&remote);
    run.assert_code(EXIT_FAILED);
    let path = remote.trim_start_matches(&daemon);
    assert_eq!(
        run.stderr,
        format!(
            "error: the remote {remote} refused the fetch: remote error: no such repository: {path}; \
             check that the repository exists at that URL and that this machine's credentials for \
             it (the ssh agent's keys, git's credential helper) may read it\n"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn git_credentials_refused_over_http_are_exit_1() {
    // An HTTP remote that wants credentials this machine does not have.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(0usize));
    let seen = requests.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            *seen.lock().unwrap() += 1;
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let remote = format!("http://127.0.0.1:{port}/shop.git");
    let run = sync(&remote);
    run.assert_code(EXIT_FAILED);
    assert_stderr_has(
        &run,
        &format!("error: the remote {remote} refused the fetch: "),
    );
    assert_stderr_has(&run, "git's credential helper");
    assert!(*requests.lock().unwrap() >= 1);
}

#[test]
fn git_a_malformed_url_is_exit_2() {
    for (remote, said) in [
        ("git://[::1/shop.git", "invalid url: malformed hostname"),
        ("htp://127.0.0.1/shop.git", "invalid argument: 'port'"),
        ("not a url", "unsupported URL protocol"),
    ] {
        let run = sync(remote);
        run.assert_code(EXIT_INVALID);
        assert_eq!(
            run.stderr,
            format!("error: malformed remote URL `{remote}`: {said}\n"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn git_only_a_failure_to_connect_is_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let remote = format!("git://127.0.0.1:{port}/shop.git");
    let run = sync(&remote);
    run.assert_code(3);
    assert_stderr_has(
        &run,
        &format!(
            "error: cannot connect to the git remote {remote}: is the address right, and is it up?\n  caused by: failed to connect to 127.0.0.1"
        ),
    );
}

// ---------------------------------------------------------------- refusals are not retried

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn a_registry_body_saying_denied_is_not_retried_and_keeps_its_message() {
    let server = FakeServer::start(|_, _| {
        response(
            "500 Internal Server Error",
            &[("Content-Type", "application/json")],
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
        )
    })
    .await;
    let client = RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous)
        .with_retry(fast_retry(4));
    // A GET: the answer to a HEAD has no body to say anything in.
    let error = client.manifest_get(&server.repo(), "v1").await.unwrap_err();
    assert_eq!(server.requests().len(), 1, "a refusal is asked once");
    assert!(
        matches!(error, RegistryError::Unauthorized { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "not authorized by the registry at http://{}/v2/cookbook/x/manifests/v1 (HTTP 500): \
             DENIED: requested access to the resource is denied; check `docker login` or the \
             Docker config's credentials",
            server.host()
        )
    );
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);

    // Something that does not exist is not retried either, and is not called a refusal.
    let unknown = FakeServer::start(|_, _| {
        response(
            "500 Internal Server Error",
            &[("Content-Type", "application/json")],
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
    })
    .await;
    let error = client
        .manifest_get(&unknown.repo(), "v1")
        .await
        .unwrap_err();
    assert_eq!(unknown.requests().len(), 1);
    assert_eq!(
        error.to_string(),
        format!(
            "unexpected HTTP 500 from the registry at http://{}/v2/cookbook/x/manifests/v1: \
             MANIFEST_UNKNOWN: manifest unknown",
            unknown.host()
        )
    );
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);

    // A transient answer is still retried, and its words are kept with the last status.
    let busy =
        FakeServer::start(|_, _| response("503 Service Unavailable", &[], "upstream busy")).await;
    let error = client.manifest_get(&busy.repo(), "v1").await.unwrap_err();
    assert_eq!(busy.requests().len(), 4);
    assert_eq!(
        error.to_string(),
        format!(
            "registry at http://{}/v2/cookbook/x/manifests/v1 unavailable: HTTP 503 after 4 \
             attempt(s): upstream busy",
            busy.host()
        )
    );
}

const ENGINE_VERSION: &str = r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#;

fn stream(lines: &[&str]) -> String {
    response(
        "200 OK",
        &[("Content-Type", "application/json")],
        &(lines.join("\n") + "\n"),
    )
}

/// A fake engine answering `/version`, and `on(path)` for everything else.
async fn fake_engine(
    on: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (FakeServer, DockerEngine) {
    let server = FakeServer::start(move |_, request| {
        let line = request.lines().next().unwrap_or_default();
        if line.starts_with("GET /version") {
            return response(
                "200 OK",
                &[("Content-Type", "application/json")],
                ENGINE_VERSION,
            );
        }
        on(line)
    })
    .await;
    let engine = DockerEngine::connect_to(&format!("tcp://{}", server.host()))
        .await
        .unwrap()
        .with_retry(fast_retry(4));
    (server, engine)
}

fn count(server: &FakeServer, needle: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.lines().next().unwrap().contains(needle))
        .count()
}

#[tokio::test]
async fn a_push_the_registry_denies_is_not_retried_and_keeps_the_engines_words() {
    let (server, engine) = fake_engine(|line| {
        if line.contains("/push?") {
            return stream(&[
                r#"{"status":"The push refers to repository [127.0.0.1:5999/cookbook/x]"}"#,
                r#"{"errorDetail":{"message":"denied: requested access to the resource is denied"},"error":"denied: requested access to the resource is denied"}"#,
            ]);
        }
        response("404 Not Found", &[], "")
    })
    .await;
    let repo = Repository::parse("127.0.0.1:5999/cookbook/x").unwrap();
    let error = engine.push(&repo, "v1", None).await.unwrap_err();
    assert_eq!(count(&server, "/push?"), 1, "a denied push is pushed once");
    assert_eq!(
        error.to_string(),
        "push of 127.0.0.1:5999/cookbook/x:v1 failed after 1 attempt(s): denied: requested \
         access to the resource is denied"
    );
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn a_pull_of_a_missing_image_is_not_retried_and_says_what_the_engine_said() {
    let (server, engine) = fake_engine(|line| {
        if line.contains("/images/create?") {
            return stream(&[
                r#"{"errorDetail":{"message":"manifest for 127.0.0.1:5999/cookbook/x:v1 not found: manifest unknown: manifest unknown"},"error":"manifest for 127.0.0.1:5999/cookbook/x:v1 not found: manifest unknown: manifest unknown"}"#,
            ]);
        }
        response("404 Not Found", &[], "")
    })
    .await;
    let repo = Repository::parse("127.0.0.1:5999/cookbook/x").unwrap();
    let error = engine.pull(&repo, "v1", None).await.unwrap_err();
    assert_eq!(count(&server, "/images/create?"), 1);
    assert!(matches!(error, EngineError::PullFailed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "pull of 127.0.0.1:5999/cookbook/x:v1 failed after 1 attempt(s): manifest for \
         127.0.0.1:5999/cookbook/x:v1 not found: manifest unknown: manifest unknown"
    );
    assert!(!error.to_string().contains("HTTP 500"));
    assert_eq!(Error::from(error).exit_code(), EXIT_FAILED);

    // A transient stream error is retried until the attempts run out, with the engine's words.
    let (server, engine) = fake_engine(|line| {
        if line.contains("/images/create?") {
            return stream(&[
                r#"{"errorDetail":{"message":"received unexpected HTTP status: 502 Bad Gateway"},"error":"received unexpected HTTP status: 502 Bad Gateway"}"#,
            ]);
        }
        response("404 Not Found", &[], "")
    })
    .await;
    let error = engine.pull(&repo, "v1", None).await.unwrap_err();
    assert_eq!(count(&server, "/images/create?"), 4);
    assert_eq!(
        error.to_string(),
        "pull of 127.0.0.1:5999/cookbook/x:v1 failed after 4 attempt(s): received unexpected \
         HTTP status: 502 Bad Gateway"
    );
}

// ---------------------------------------------------------------- fakes
