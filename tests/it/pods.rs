//! Pods on a Docker site, on the real engine, with the `gallery` example (web: an init container
//! `seed` filling a scratch volume, a sidecar `proxy` on web's localhost; api: a persistent
//! volume): the shared volume and the shared localhost work; a failing init container never
//! starts its main container and the wave rolls back; a secret reaches its container and nothing
//! else; a persistent volume outlives a new image and a rollback.

use crate::common;

use common::deploy::{
    block_on, deploy, edit, exec, gallery, json_answer, services, status_in, Project,
};
use common::run_in;
use cookbook::engine::DockerEngine;

fn member(p: &Project, role: &str, container: &str) -> String {
    format!("{}-{role}-{container}", p.instance("dev", "web"))
}

/// How often the engine started the container `name` between two instants (unix seconds).
fn starts(name: &str, since: i64, until: i64) -> usize {
    use futures_util::StreamExt;
    let name = name.to_owned();
    block_on(async move {
        let wanted = name.clone();
        let engine = DockerEngine::connect().await.unwrap();
        let filters = std::collections::HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["start".to_owned()]),
            ("container".to_owned(), vec![wanted]),
        ]);
        let events = engine
            .client()
            .events(Some(bollard::query_parameters::EventsOptions {
                since: Some(since.to_string()),
                until: Some(until.to_string()),
                filters: Some(filters),
            }))
            .collect::<Vec<_>>()
            .await;
        // The engine's `container` filter also matches names that begin with `name`.
        events
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.actor
                    .as_ref()
                    .and_then(|a| a.attributes.as_ref())
                    .and_then(|a| a.get("name"))
                    .map(String::as_str)
                    == Some(name.as_str())
            })
            .count()
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[test]
fn the_sidecar_answers_on_the_main_containers_localhost_serving_what_the_init_container_wrote() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("pod");
    let first = deploy(p.path());
    let web = p.instance("dev", "web");
    assert_eq!(first["started"].as_array().unwrap().len(), 2, "{first}");

    // Through the sidecar (port 8080, a proxy to 127.0.0.1:80 in the pod) from inside the main
    // container: the page the init container wrote into the shared volume.
    let page = exec(&web, &["wget", "-qO-", "http://127.0.0.1:8080/about.html"]);
    assert!(page.contains("<h1>Gallery (dev)</h1>"), "{page}");
    assert!(page.contains("Seeded by the init container."), "{page}");

    // Status shows the members: the init container exited 0, the sidecar runs healthy.
    let status = status_in(p.path(), "dev");
    let row = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == web.as_str())
        .unwrap();
    assert_eq!(
        row["members"],
        serde_json::json!([
            { "name": member(&p, "init", "seed"), "container": "seed", "role": "init",
              "state": "exited", "health": "none", "exit_code": 0 },
            { "name": member(&p, "sidecar", "proxy"), "container": "proxy", "role": "sidecar",
              "state": "running", "health": "healthy", "exit_code": null },
        ])
    );
    let text = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
    text.assert_code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    let at = lines.iter().position(|l| l.contains(&web)).unwrap();
    assert!(
        lines[at + 1].starts_with(&format!("    {}", member(&p, "init", "seed")))
            && lines[at + 1].ends_with("init (exit code 0)"),
        "{}",
        text.stdout
    );
    assert!(
        lines[at + 2].starts_with(&format!("    {}", member(&p, "sidecar", "proxy")))
            && lines[at + 2].ends_with("sidecar"),
        "{}",
        text.stdout
    );

    // Unchanged: the members are not units of their own, nothing restarts.
    let again = deploy(p.path());
    assert_eq!(again["started"], serde_json::json!([]));
    assert_eq!(again["removed"], serde_json::json!([]));
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 2, "{again}");
}

#[test]
fn a_failing_init_container_never_starts_its_main_container_and_the_wave_rolls_back() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("init");
    let good = deploy(p.path());
    let web = p.instance("dev", "web");
    let good_image = p.engine_state()["web"].1.clone();

    // A seed that fails: a new image for the init container, so a new pod for web.
    edit(p.path(), |doc| {
        doc["applications"]["pages"]["run_command"] =
            serde_json::json!(["/bin/sh", "-c", "echo seeding failed; exit 3"]);
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let since = now();
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    let until = now() + 1;
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "{web} is not healthy: init container `seed` exited with code 3; its last log lines:\nseeding failed"
        )),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains(&format!(
            "rolled back to release {}",
            good["release"].as_str().unwrap()
        )),
        "{}",
        run.context()
    );
    // The main container was started once: by the rollback, never by the failed wave.
    assert_eq!(starts(&web, since, until), 1);
    // The previous release runs again, healthy, its own init container done (status compares
    // with the lock, which names the failed release: drift).
    let status = status_in(p.path(), "dev");
    let row = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == web.as_str())
        .unwrap();
    assert_eq!(row["running_image"], good_image.as_str(), "{status}");
    assert_eq!(
        (&row["state"], &row["health"]),
        (&"running".into(), &"healthy".into())
    );
    assert_eq!(row["members"][0]["exit_code"], 0, "{status}");
    assert_eq!(row["members"][1]["state"], "running", "{status}");
    let page = exec(&web, &["wget", "-qO-", "http://127.0.0.1:8080/about.html"]);
    assert!(page.contains("Seeded by the init container."), "{page}");
}

#[test]
fn a_secret_reaches_its_containers_and_nothing_else() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("secret");
    let value = format!("s3cret-{}", common::unique("v"));
    let sidecar_value = format!("pr0xy-{}", common::unique("v"));
    edit(p.path(), |doc| {
        doc["federation"]["sites"]["local"]["secrets"] =
            serde_json::json!({ "directory": "secrets/local" });
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["api"]["env"]["API_TOKEN"] =
            serde_json::json!({ "secret": "gallery-api/token" });
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["proxy"] =
            serde_json::json!({ "env": { "PROXY_KEY": { "secret": "gallery-proxy/key" } } });
    });
    let write = |reference: &str, value: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = p.path().join("secrets/local").join(reference);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("gallery-api/token", &value, 0o600);
    write("gallery-proxy/key", &sidecar_value, 0o600);
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);

    let mut outputs = Vec::new();
    let mut run = |args: &[&str], code: i32| {
        let r = run_in(p.path(), args);
        r.assert_code(code);
        outputs.push(format!("{}\n{}", r.stdout, r.stderr));
        r
    };
    run(&["deploy", "--site", "local", "--stage", "dev"], 0);
    let api = p.instance("dev", "api");
    assert_eq!(
        exec(&api, &["sh", "-c", "echo \"$API_TOKEN\""]).trim_end(),
        value
    );
    assert_eq!(
        exec(
            &member(&p, "sidecar", "proxy"),
            &["sh", "-c", "echo \"$PROXY_KEY\""]
        )
        .trim_end(),
        sidecar_value
    );
    run(
        &[
            "deploy", "--site", "local", "--stage", "dev", "--format", "json",
        ],
        0,
    );
    run(&["status", "--site", "local", "--stage", "dev"], 0);
    run(
        &[
            "status", "--site", "local", "--stage", "dev", "--format", "json",
        ],
        0,
    );
    run(&["render", "--site", "cluster", "--stage", "dev"], 0);
    run(&["releases", "--site", "local", "--format", "json"], 0);

    // A missing secret, then one others may read: refused before anything changes, naming the
    // reference, exit 2.
    let state = p.engine_state();
    std::fs::remove_file(p.path().join("secrets/local/gallery-api/token")).unwrap();
    let missing = run(&["deploy", "--site", "local", "--stage", "dev"], 2);
    assert!(
        missing
            .stderr
            .contains("secret gallery-api/token is not set"),
        "{}",
        missing.context()
    );
    write("gallery-api/token", &value, 0o644);
    let exposed = run(&["deploy", "--site", "local", "--stage", "dev"], 2);
    assert!(
        exposed.stderr.contains("secret gallery-api/token") && exposed.stderr.contains("mode 0644"),
        "{}",
        exposed.context()
    );
    assert_eq!(p.engine_state(), state);

    // Nowhere but in the containers: not in any output, the lock, the records, the events.
    let mut files = vec![p.path().join("cookbook.lock")];
    let state_dir = p.path().join(".cookbook");
    files.push(state_dir.join("events.jsonl"));
    for entry in std::fs::read_dir(state_dir.join("deploy")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut searched = outputs;
    for f in &files {
        searched.push(std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f:?}: {e}")));
    }
    assert_eq!(searched.len(), 11, "{files:?}");
    for (i, text) in searched.iter().enumerate() {
        for secret in [&value, &sidecar_value] {
            assert!(
                !text.contains(secret.as_str()),
                "secret found in #{i}:\n{text}"
            );
        }
    }
}

#[test]
fn a_persistent_volume_keeps_its_data_across_a_new_image_and_a_rollback() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("data");
    // A postgres-like api: writes its data file on first start, keeps it when present.
    edit(p.path(), |doc| {
        doc["applications"]["api"]["run_command"] = serde_json::json!([
            "/bin/sh", "-c",
            "test -f /var/lib/gallery/first || cat /proc/sys/kernel/random/uuid > /var/lib/gallery/first; exec httpd -f -p 9000 -h /srv/api"
        ]);
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let first = deploy(p.path());
    let api = p.instance("dev", "api");
    let data = exec(&api, &["cat", "/var/lib/gallery/first"]);
    assert_eq!(data.trim().len(), 36, "{data}");
    let image = p.engine_state()["api"].1.clone();

    // A new image (an application file changed): a new container, the same data.
    let serve = p.path().join("services/api/serve.sh");
    let text = std::fs::read_to_string(&serve).unwrap();
    std::fs::write(&serve, format!("{text}# v2\n")).unwrap();
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let second = deploy(p.path());
    assert!(
        second["started"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(api)),
        "{second}"
    );
    assert_ne!(p.engine_state()["api"].1, image);
    assert_eq!(exec(&api, &["cat", "/var/lib/gallery/first"]), data);

    // Rolled back to the first release: the old image, still the same data.
    let back = run_in(
        p.path(),
        &[
            "rollback", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    back.assert_code(0);
    assert_eq!(json_answer(&back)["release"], first["release"]);
    assert_eq!(p.engine_state()["api"].1, image);
    assert_eq!(exec(&api, &["cat", "/var/lib/gallery/first"]), data);
}

#[test]
fn an_unchanged_deploy_of_thirty_containers_starts_nothing() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "thirty");
    edit(p.path(), |doc| {
        let dev = &mut doc["lifecycle"]["stage_config"]["dev"]["containers"];
        for c in ["db", "api", "web"] {
            dev[c]["replicas"] = 10.into();
        }
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let started = std::time::Instant::now();
    let first = deploy(p.path());
    let first_took = started.elapsed();
    assert_eq!(first["started"].as_array().unwrap().len(), 30, "{first}");

    let started = std::time::Instant::now();
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    let unchanged_took = started.elapsed();
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(&format!(
            "deployed release {} of {} to local/dev: 0 started, 30 unchanged, 0 removed\n",
            &first["release"].as_str().unwrap()[..12],
            p.name
        )),
        "{}",
        run.context()
    );
    eprintln!(
        "30 containers in 3 waves: first deploy {first_took:?}, unchanged {unchanged_took:?}"
    );
    // What it costs, counted, not timed (the time is scripts/bench-deploy.sh's): one container
    // list, and nothing that changes anything; the rest is the engine's version, asked when
    // connecting.
    let proxy = CountingProxy::start();
    let host = proxy.host();
    let again = common::run_in_env(
        p.path(),
        &["deploy", "--site", "local", "--stage", "dev"],
        &[("DOCKER_HOST", host.as_str())],
    );
    again.assert_code(0);
    assert!(
        again
            .stdout
            .contains(": 0 started, 30 unchanged, 0 removed\n"),
        "{}",
        again.context()
    );
    let requests = proxy.take();
    let lists = requests
        .iter()
        .filter(|r| r.contains("/containers/json"))
        .count();
    assert_eq!(lists, 1, "{requests:#?}");
    assert!(requests.len() <= 3, "{requests:#?}");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET ") || r.starts_with("HEAD ")),
        "an unchanged deploy changed something: {requests:#?}"
    );
}

/// A unix socket in front of the engine's that passes everything through and records each
/// request line (`GET /v1.41/containers/json?…`) the client sends: what a deploy asks the engine.
struct CountingProxy {
    socket: std::path::PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl CountingProxy {
    fn start() -> CountingProxy {
        let engine = std::env::var("DOCKER_HOST").unwrap();
        let engine = engine
            .strip_prefix("unix://")
            .expect("the test engine is on a unix socket")
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Bound now, so the socket is there before the test uses it.
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let seen = requests.clone();
        std::thread::spawn(move || {
            tokio_runtime().block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let (engine, seen) = (engine.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Ok(upstream) = tokio::net::UnixStream::connect(&engine).await else {
                            return;
                        };
                        pass(client, upstream, seen).await;
                    });
                }
            });
        });
        CountingProxy {
            socket,
            requests,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Copies both ways, recording the request lines the client sends (bodies hold no `HTTP/1.1`
/// request line: the engine API's JSON bodies never end a line with it).
async fn pass(
    client: tokio::net::UnixStream,
    upstream: tokio::net::UnixStream,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let requests = async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut pending = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&pending[..end]).into_owned();
                if line.ends_with(" HTTP/1.1") {
                    seen.lock().unwrap().push(line);
                }
                pending.drain(..end + 2);
            }
            if up_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    };
    let answers = async move {
        let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}
