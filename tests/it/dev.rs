//! `cookbook dev` on the real engine, with a two-container project: `a` generated from busybox
//! with an application, `b` from a Dockerfile. An edit to one container's source rebuilds and
//! redeploys it alone (the other keeps its container id and start time), its new output appears
//! in the streamed logs; a broken Dockerfile is shown and the loop goes on (fixing it deploys);
//! Ctrl-C exits 0 leaving the stage running, or with `--down` leaves nothing of the stage.
//!
//! Every wait reads the loop's own output up to a line; the deadline only guards against a hang.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::common;
use common::deploy::{block_on, services};
use cookbook::engine::DockerEngine;

/// How long any one awaited line may take before the test fails instead of hanging.
const HANG: Duration = Duration::from_secs(180);

/// A two-container project in a temp dir, under a project name of its own; what it deployed is
/// removed when dropped.
pub(crate) struct DevProject {
    dir: tempfile::TempDir,
    name: String,
}

impl DevProject {
    pub(crate) fn new(tag: &str) -> DevProject {
        let dir = tempfile::tempdir().unwrap();
        let name = common::unique(&format!("dev{tag}"));
        let cookbook = serde_json::json!({
            "manifest_version": "1.1",
            "project": { "name": name },
            "applications": {
                "a": { "source": "svc/a", "run_command": ["/bin/sh", "/srv/a/run.sh"] }
            },
            "containers": {
                "a": {
                    "base_image": "cookbook-test/busybox:latest",
                    "applications": ["a"],
                    "health": { "command": ["true"], "interval": "100ms", "timeout": "1s", "retries": 3 }
                },
                "b": { "dockerfile": "svc/b/Dockerfile", "context": "svc/b" }
            },
            "packaging": { "tagging": "content-hash" },
            "lifecycle": { "stages": ["dev"] },
            "federation": { "sites": { "local": {
                "type": "bare-metal",
                "target": { "docker": { "host": "env" } },
                "stages": ["dev"],
                "containers": ["a", "b"]
            } } }
        });
        let p = dir.path();
        std::fs::write(p.join("cookbook.json"), cookbook.to_string()).unwrap();
        std::fs::create_dir_all(p.join("svc/a")).unwrap();
        std::fs::create_dir_all(p.join("svc/b")).unwrap();
        std::fs::write(
            p.join("svc/a/run.sh"),
            "echo \"a says $(cat /srv/a/msg.txt)\"\necho 'a warns' >&2\n\
             trap 'exit 0' TERM\nwhile true; do sleep 1 & wait $!; done\n",
        )
        .unwrap();
        std::fs::write(p.join("svc/a/msg.txt"), "one\n").unwrap();
        std::fs::write(p.join("svc/b/Dockerfile"), dockerfile("")).unwrap();
        std::fs::write(p.join("svc/b/msg.txt"), "one\n").unwrap();
        DevProject { dir, name }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn instance(&self, container: &str) -> String {
        format!("{}-local-dev-{container}-1", self.name)
    }

    /// `cookbook dev --site local --stage dev` and `extra`, its output read line by line.
    fn spawn(&self, extra: &[&str]) -> Loop {
        let mut child = Command::new(common::bin())
            .args(["dev", "--site", "local", "--stage", "dev"])
            .args(extra)
            .current_dir(self.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        for (stream, name) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                "out",
            ),
            (Box::new(child.stderr.take().unwrap()), "err"),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if tx.send((name, line)).is_err() {
                        return;
                    }
                }
            });
        }
        Loop {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// (id, StartedAt) of a container the engine has by that name, or `None`.
    pub(crate) fn seen(&self, container: &str) -> Option<(String, String)> {
        let name = self.instance(container);
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let info = engine.client().inspect_container(&name, None).await.ok()?;
            let state = info.state?;
            assert_eq!(state.running, Some(true), "{name} is not running");
            Some((info.id?, state.started_at?))
        })
    }

    /// Everything of the stage the engine still has, labelled as ours: containers, networks,
    /// volumes.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("dev.cookbook.project={}", self.name);
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let docker = engine.client();
            let filters =
                std::collections::HashMap::from([("label".to_owned(), vec![label.clone()])]);
            let mut out: Vec<String> = docker
                .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_iter()
                .map(|c| format!("container {:?}", c.names))
                .collect();
            let networks = docker
                .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
                .unwrap();
            out.extend(
                networks
                    .into_iter()
                    .map(|n| format!("network {:?}", n.name)),
            );
            let volumes = docker
                .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                    filters: Some(filters),
                }))
                .await
                .unwrap();
            out.extend(
                volumes
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| format!("volume {}", v.name)),
            );
            out
        })
    }
}

impl Drop for DevProject {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on(async move {
            if let Ok(engine) = DockerEngine::connect().await {
                let _ = cookbook::deploy::docker::teardown::teardown(
                    &engine, &name, "local", "dev", true,
                )
                .await;
            }
        });
    }
}

/// `b`'s Dockerfile, with `extra` lines before its command.
fn dockerfile(extra: &str) -> String {
    format!(
        "FROM cookbook-test/busybox:latest\nCOPY msg.txt /srv/b/\n{extra}\
         CMD [\"/bin/sh\", \"-c\", \"echo b says $(cat /srv/b/msg.txt); trap 'exit 0' TERM; \
         while true; do sleep 1 & wait $!; done\"]\n"
    )
}

/// A running `cookbook dev` and what it printed so far.
struct Loop {
    child: Child,
    lines: Receiver<(&'static str, String)>,
    seen: Vec<(&'static str, String)>,
}

impl Loop {
    /// The first line of `stream` ("out" or "err") containing `text`, printed already or read
    /// until it comes (the two streams interleave in any order).
    fn wait_for(&mut self, stream: &str, text: &str) -> String {
        if let Some((_, line)) = self
            .seen
            .iter()
            .find(|(s, l)| *s == stream && l.contains(text))
        {
            return line.clone();
        }
        let start = Instant::now();
        loop {
            let left = HANG.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok((s, line)) => {
                    self.seen.push((s, line.clone()));
                    if s == stream && line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {stream} line with {text:?}; the loop printed:\n{}",
                        self.transcript()
                    );
                }
            }
        }
    }

    fn transcript(&self) -> String {
        self.seen
            .iter()
            .map(|(s, l)| format!("{s}: {l}\n"))
            .collect()
    }

    /// SIGINT, then its exit code.
    fn interrupt(mut self) -> Option<i32> {
        common::signal(&self.child, "-INT");
        let (code, _) = common::exit_within(&mut self.child, HANG, "cookbook dev");
        code
    }
}

#[test]
fn an_edit_redeploys_its_container_alone_and_ctrl_c_leaves_the_stage_running() {
    if !services() {
        return;
    }
    let p = DevProject::new("edit");
    let mut dev = p.spawn(&[]);
    dev.wait_for("err", "[dev] built a, b");
    let a_line = dev.wait_for("out", "a says one");
    assert!(a_line.starts_with("a | "), "{a_line:?}");
    dev.wait_for("out", "b | b says one");
    // stderr stays apart, prefixed too.
    dev.wait_for("err", "a | a warns");
    let b_before = p.seen("b").expect("b runs");

    std::fs::write(p.path().join("svc/a/msg.txt"), "two\n").unwrap();
    let progress = dev.wait_for("err", "a changed");
    assert!(progress.contains("(svc/a/msg.txt)"), "{progress}");
    assert!(
        progress.contains(&format!("started {}", p.instance("a"))),
        "{progress}"
    );
    assert!(!progress.contains(&p.instance("b")), "{progress}");
    dev.wait_for("out", "a | a says two");
    assert_eq!(p.seen("b"), Some(b_before), "b was recreated");

    let a_running = p.seen("a").expect("a runs");
    assert_eq!(dev.interrupt(), Some(0), "Ctrl-C ends the loop with 0");
    assert_eq!(p.seen("a"), Some(a_running), "the stage keeps running");
    assert!(p.seen("b").is_some());
}

#[test]
fn a_broken_build_is_shown_and_the_loop_goes_on() {
    if !services() {
        return;
    }
    let p = DevProject::new("broken");
    let mut dev = p.spawn(&["--no-logs"]);
    dev.wait_for("err", "[dev] built a, b");
    let b_before = p.seen("b").expect("b runs");

    let dockerfile_path = p.path().join("svc/b/Dockerfile");
    std::fs::write(&dockerfile_path, dockerfile("RUN exit 3\n")).unwrap();
    dev.wait_for("err", "[dev] build failed for b");
    assert_eq!(p.seen("b"), Some(b_before.clone()), "nothing deployed");

    std::fs::write(p.path().join("svc/b/msg.txt"), "fixed\n").unwrap();
    std::fs::write(&dockerfile_path, dockerfile("")).unwrap();
    let progress = dev.wait_for("err", "b changed");
    assert!(
        progress.contains(&format!("started {}", p.instance("b"))),
        "{progress}"
    );
    assert_ne!(
        p.seen("b").map(|s| s.0),
        Some(b_before.0),
        "b was redeployed"
    );
    assert_eq!(dev.interrupt(), Some(0));
}

/// Rewrites the cookbook the way vim and most IDEs save: a new file renamed over the old one.
fn save_by_rename(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("cookbook.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    let temp = dir.join(".cookbook.json.swp");
    std::fs::write(&temp, doc.to_string()).unwrap();
    std::fs::rename(&temp, &path).unwrap();
}

/// The watch follows the cookbook: a container a save adds to the site is built, run and
/// watched from then on, and a second save by rename is seen too (a watch on the cookbook file
/// itself would have stayed on the replaced file).
#[test]
fn a_container_the_cookbook_adds_is_built_run_and_watched() {
    if !services() {
        return;
    }
    let p = DevProject::new("grow");
    save_by_rename(p.path(), |doc| {
        doc["federation"]["sites"]["local"]["containers"] = serde_json::json!(["a"]);
    });
    let mut dev = p.spawn(&[]);
    let first = dev.wait_for("err", "[dev] built a");
    assert!(!first.contains("a, b"), "{first}");
    let watching = dev.wait_for("err", "[dev] watching");
    assert!(!watching.contains("svc/b"), "{watching}");

    save_by_rename(p.path(), |doc| {
        doc["federation"]["sites"]["local"]["containers"] = serde_json::json!(["a", "b"]);
    });
    let progress = dev.wait_for("err", "b changed (cookbook.json)");
    assert!(
        progress.contains(&format!("started {}", p.instance("b"))),
        "{progress}"
    );
    dev.wait_for("out", "b | b says one");
    dev.wait_for("err", "[dev] watching cookbook.json, svc/a, svc/b");

    // b's sources are watched now.
    std::fs::write(p.path().join("svc/b/msg.txt"), "two\n").unwrap();
    dev.wait_for("err", "b changed (svc/b/msg.txt)");
    dev.wait_for("out", "b | b says two");

    // A second save by rename is seen: a's image environment moves its input hash.
    save_by_rename(p.path(), |doc| {
        doc["containers"]["a"]["env"] = serde_json::json!({ "GREETING": "hello" });
    });
    dev.wait_for("err", "a changed (cookbook.json)");
    assert_eq!(dev.interrupt(), Some(0));
}

/// `--down` on Ctrl-C leaves nothing of the stage, and is recorded as `cookbook down` records
/// it: a `down` event, the release record marked down (no longer current).
#[test]
fn down_leaves_nothing_of_the_stage() {
    if !services() {
        return;
    }
    let p = DevProject::new("down");
    let mut dev = p.spawn(&["--down"]);
    dev.wait_for("out", "b | b says one");
    assert!(!p.leftovers().is_empty());
    common::signal(&dev.child, "-INT");
    dev.wait_for("err", "[dev] down local/dev: 2 container(s)");
    let (code, _) = common::exit_within(&mut dev.child, HANG, "cookbook dev --down");
    assert_eq!(code, Some(0));
    assert_eq!(p.leftovers(), Vec::<String>::new());
    let json = |args: &[&str]| -> serde_json::Value {
        let run = common::run_in(p.path(), args);
        run.assert_code(0);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
    };
    let releases = json(&["releases", "--site", "local", "--format", "json"]);
    let last = releases["stages"]["dev"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["current"], false, "{releases}");
    assert!(last["down_at"].is_string(), "{releases}");
    let events = json(&["events", "--kind", "down", "--format", "json"]);
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "ok");
}

/// `teardown` (what `dev --down` and `cookbook down` remove) on the `gallery` example's pods: a
/// main container with an init container, a sidecar and a scratch volume, and one with a
/// persistent volume. Every container (members included), scratch volume and network goes; the
/// persistent volume only when asked. `logs` takes a pod member's name.
#[test]
fn teardown_removes_pods_and_keeps_persistent_volumes_unless_asked() {
    if !services() {
        return;
    }
    let p = common::deploy::Project::new("gallery", "teardown");
    common::deploy::edit(p.path(), |doc| {
        let web = &mut doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"];
        web.as_object_mut().unwrap().remove("ports");
    });
    common::run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    common::deploy::deploy(p.path());
    let member = common::run_in(
        p.path(),
        &["logs", "--site", "local", "--stage", "dev", "web/proxy"],
    );
    member.assert_code(0);

    let name = p.name.clone();
    let teardown = |volumes: bool| {
        let name = name.clone();
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            cookbook::deploy::docker::teardown::teardown(&engine, &name, "local", "dev", volumes)
                .await
                .unwrap()
        })
    };
    let first = teardown(false);
    let web = p.instance("dev", "web");
    for c in [
        web.clone(),
        format!("{web}-init-seed"),
        format!("{web}-sidecar-proxy"),
        p.instance("dev", "api"),
    ] {
        assert!(first.containers.contains(&c), "{c} not removed: {first:?}");
    }
    assert_eq!(first.networks, vec![format!("{}-local-dev", p.name)]);
    assert!(!first.volumes.is_empty(), "the scratch volume: {first:?}");
    assert_eq!(
        first.kept_volumes.len(),
        1,
        "the persistent volume: {first:?}"
    );
    assert!(p.containers().is_empty());

    let second = teardown(true);
    assert!(second.containers.is_empty() && second.networks.is_empty());
    assert_eq!(second.volumes, first.kept_volumes);
    assert!(second.kept_volumes.is_empty());
}

/// What the stage runs is what the loop builds: on `gallery`, web's pod members (`seed`, an init
/// container, and `proxy`, a sidecar) and api (web's dependency), though the site names only
/// web; an edit to the init container's source restarts web's pod, and `--down` removes it.
#[test]
fn the_loop_builds_and_redeploys_pod_members() {
    if !services() {
        return;
    }
    let p = common::deploy::Project::new("gallery", "devpods");
    common::deploy::edit(p.path(), |doc| {
        let web = &mut doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"];
        web.as_object_mut().unwrap().remove("ports");
    });
    let mut child = Command::new(common::bin())
        .args([
            "dev",
            "--site",
            "local",
            "--stage",
            "dev",
            "--down",
            "--no-logs",
        ])
        .current_dir(p.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(("err", line));
        }
    });
    let mut dev = Loop {
        child,
        lines,
        seen: Vec::new(),
    };
    dev.wait_for("err", "[dev] built api, proxy, seed, web");
    std::fs::write(p.path().join("services/pages/extra.html"), "<p>new</p>\n").unwrap();
    let progress = dev.wait_for("err", "seed changed");
    assert!(
        progress.contains(&format!("started {})", p.instance("dev", "web"))),
        "{progress}"
    );
    common::signal(&dev.child, "-INT");
    dev.wait_for(
        "err",
        "[dev] down local/dev: 4 container(s), 1 network(s), 1 volume(s) removed",
    );
    let (code, _) = common::exit_within(&mut dev.child, HANG, "cookbook dev --down");
    assert_eq!(code, Some(0));
    assert!(p.containers().is_empty());
    let name = p.name.clone();
    let persistent = block_on(async move {
        let engine = DockerEngine::connect().await.unwrap();
        cookbook::deploy::docker::teardown::teardown(&engine, &name, "local", "dev", true)
            .await
            .unwrap()
    });
    assert_eq!(
        persistent.volumes.len(),
        1,
        "--down kept the persistent volume"
    );
}
