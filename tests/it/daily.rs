//! The daily commands on the real engine (issue 26): `down` leaves nothing of the stage that is
//! ours (a namesake without our labels stays; a persistent volume only goes with `--volumes`),
//! records a `down` event and marks the release so `rollback` brings it back, and a second
//! `down` is a no-op; `exec` passes the command's exit code through, feeds it stdin, reaches a
//! pod member and answers a container the stage lacks with exit 2 and a "did you mean";
//! `status` of an exited, a missing and a drifted container exits 1 with a line for each; a
//! failed health gate quotes the probe's last output.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::deploy::{
    block_on, deploy, edit, gallery, json_answer, services, strings, Foreign, Project, Volumes,
};
use common::run_in;
use cookbook::engine::DockerEngine;

/// The engine's volumes labelled as `project`'s, sorted by name.
fn volumes_of(project: &str) -> Vec<String> {
    let project = project.to_owned();
    block_on(async move {
        let engine = DockerEngine::connect().await.unwrap();
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("dev.cookbook.project={project}")],
        )]);
        let mut names: Vec<String> = engine
            .client()
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names.sort();
        names
    })
}

/// The engine's networks whose name starts with `prefix`.
fn networks_named(prefix: &str) -> Vec<String> {
    let prefix = prefix.to_owned();
    block_on(async move {
        let engine = DockerEngine::connect().await.unwrap();
        let mut names: Vec<String> = engine
            .client()
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|n| n.name)
            .filter(|n| n.starts_with(&prefix))
            .collect();
        names.sort();
        names
    })
}

fn down(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "down", "--site", "local", "--stage", "dev", "--format", "json",
    ];
    args.extend_from_slice(extra);
    let run = run_in(dir, &args);
    run.assert_code(0);
    json_answer(&run)
}

#[test]
fn down_removes_what_is_the_stages_keeps_a_namesake_and_persistent_data_and_can_come_back() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("down");
    deploy(p.path());
    let web = p.instance("dev", "web");
    let api = p.instance("dev", "api");
    let network = format!("{}-local-dev", p.name);
    let store = format!("{}-local-dev-api-store", p.name);
    // A namesake in the stage's name space, without our labels: never touched.
    let namesake = Foreign::start(&format!("{}-local-dev-extra-1", p.name), &[]);
    assert_eq!(
        volumes_of(&p.name),
        vec![store.clone(), format!("{web}-content")]
    );

    let doc = down(p.path(), &[]);
    assert_eq!(doc["unchanged"], false, "{doc}");
    let removed = &doc["removed"];
    assert_eq!(removed["target"], "docker");
    assert_eq!(
        strings(&removed["containers"]),
        vec![
            api.clone(),
            web.clone(),
            format!("{web}-init-seed"),
            format!("{web}-sidecar-proxy"),
        ]
    );
    assert_eq!(strings(&removed["networks"]), vec![network.clone()]);
    assert_eq!(strings(&removed["volumes"]), vec![format!("{web}-content")]);
    assert_eq!(strings(&removed["kept_volumes"]), vec![store.clone()]);
    assert_eq!(doc["release"].as_str().unwrap().len(), 12, "{doc}");
    // Nothing of ours left but the persistent volume; the namesake runs on.
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    assert!(networks_named(&network).is_empty());
    assert_eq!(volumes_of(&p.name), vec![store.clone()]);
    assert!(namesake.is_intact());

    // The record stays, marked down, no longer current; the event log has it.
    let run = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    run.assert_code(0);
    let releases = json_answer(&run);
    let last = releases["stages"]["dev"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["current"], false, "{releases}");
    assert!(last["down_at"].is_string(), "{releases}");
    let run = run_in(p.path(), &["events", "--kind", "down", "--format", "json"]);
    run.assert_code(0);
    let events = json_answer(&run);
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "ok");
    assert_eq!(events[0]["stage"], "dev");

    // A second down: nothing to do, exit 0, said in text.
    let run = run_in(p.path(), &["down", "--site", "local", "--stage", "dev"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .ends_with("local/dev was down already: nothing of it to remove\n"),
        "{}",
        run.context()
    );

    // rollback brings the torn-down release back, on the same persistent volume.
    let run = run_in(p.path(), &["rollback", "--site", "local", "--stage", "dev"]);
    run.assert_code(0);
    assert_eq!(
        p.containers(),
        vec![
            api.clone(),
            web.clone(),
            format!("{web}-init-seed"),
            format!("{web}-sidecar-proxy")
        ]
    );
    // --volumes: the persistent volume goes too.
    let doc = down(p.path(), &["--volumes"]);
    assert_eq!(
        strings(&doc["removed"]["volumes"]),
        vec![store, format!("{web}-content")]
    );
    assert!(volumes_of(&p.name).is_empty());
    assert!(p.containers().is_empty());
    assert!(namesake.is_intact());
}

/// `cookbook ARGS` with `input` on its stdin; fails the test past a deadline.
fn run_with_stdin(cwd: &Path, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("COOKBOOK_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("cookbook {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

#[test]
fn exec_passes_the_exit_code_and_stdin_through_and_reaches_a_pod_member() {
    if !services() {
        return;
    }
    let (_volumes, p) = gallery("exec");
    deploy(p.path());
    let exec = |args: &[&str], input: &[u8]| {
        let mut all = vec!["exec", "--site", "local", "--stage", "dev"];
        all.extend_from_slice(args);
        run_with_stdin(p.path(), &all, input)
    };
    // The command's exit code, and its streams apart.
    let (code, out, err) = exec(
        &["api", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        b"",
    );
    assert_eq!(code, Some(3), "{out}{err}");
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");
    // stdin reaches the command, and its end ends `cat`.
    let (code, out, err) = exec(&["-T", "api", "cat"], b"hello\nworld\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "hello\nworld\n");
    // A pod member: the sidecar, in the main's network namespace.
    let (code, out, err) = exec(&["web/proxy", "cat", "/proc/1/cmdline"], b"");
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.is_empty());
    // Not in the stage: 2, with a "did you mean".
    let (code, _, err) = exec(&["apu", "true"], b"");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no container `apu` (replica 1) in local/dev"),
        "{err}"
    );
    assert!(err.contains("did you mean `api`?"), "{err}");
    let (code, _, err) = exec(&["web/prxy", "true"], b"");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("did you mean `web/proxy`?"), "{err}");
}

#[test]
fn status_of_an_exited_a_missing_and_a_drifted_container_exits_1_naming_each() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "daily");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    deploy(p.path());
    let run = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .ends_with("local/dev: all 3 container(s) as cookbook.lock says\n"),
        "{}",
        run.context()
    );
    p.replace_keeping_labels(&p.instance("dev", "db"), &["sh", "-c", "exit 3"]);
    p.remove_by_hand(&p.instance("dev", "api"));
    p.replace_keeping_labels(&p.instance("dev", "web"), &["sleep", "600"]);
    // db has exited once its state says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
        if run.stdout.contains("db: exited") || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    run.assert_code(1);
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| l.starts_with(' ') || l.starts_with(&p.name))
        .collect();
    assert_eq!(lines.len(), 4, "{}", run.context());
    assert!(
        lines[0].starts_with("db: exited (exit code 3) since 20"),
        "{}",
        run.context()
    );
    assert_eq!(
        lines[1],
        "api: missing: the lock has it, the engine runs no container of it"
    );
    assert!(
        lines[2].starts_with("web: drifted: runs sha256:")
            && lines[2].contains(" but the lock says sha256:"),
        "{}",
        run.context()
    );
    assert_eq!(
        lines[3],
        "local/dev: 3 of 3 container(s) not as cookbook.lock says"
    );
    // No error line beside the report: the report said it.
    assert_eq!(run.stderr, "");
    // JSON: the same problems, `ok` false, exit 1.
    let run = run_in(
        p.path(),
        &[
            "status", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(1);
    let doc = json_answer(&run);
    assert_eq!(doc["ok"], false);
    let kinds: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["exited", "missing", "drifted"]);
    // A deploy converges it back: 0 again.
    deploy(p.path());
    run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]).assert_code(0);
}

#[test]
fn a_failed_health_gate_quotes_the_probes_last_output() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "gate");
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"] = serde_json::json!({
            "command": "echo probe-said-no; printf 'bell\\a' >&2; exit 4",
            "interval": "200ms", "timeout": "10s", "retries": 2
        });
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    // The engine reads the probe's stdout and stderr through separate pipes,
    // so either may come first in the output it keeps.
    let said = format!(
        "{} is not healthy: its health check failed; the last probe exited with code 4: ",
        p.instance("dev", "api")
    );
    assert!(
        run.stderr
            .contains(&format!("{said}probe-said-no\\nbell\\u{{7}}"))
            || run
                .stderr
                .contains(&format!("{said}bell\\u{{7}}probe-said-no")),
        "{}",
        run.context()
    );
}

/// The engine's id of a container, and its `StopTimeout`.
fn id_and_stop_timeout(name: &str) -> (String, Option<i64>) {
    let info = common::deploy::inspect(name);
    (info.id.unwrap(), info.config.unwrap().stop_timeout)
}

/// A deploy that replaces a container, and `down`, stop it with its stop signal first and give
/// it its `stop_grace` before the kill: here a stand-in database that, on SIGTERM, writes a line
/// to its persistent volume before it exits (a forced removal would kill it mid-write). A
/// server that ignores SIGTERM (busybox httpd as PID 1) is killed once its grace is over.
#[test]
fn a_replaced_or_downed_container_is_stopped_within_its_grace_first() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "grace");
    let _volumes = Volumes(p.name.clone());
    edit(p.path(), |doc| {
        doc["applications"]["db"]["run_command"] = serde_json::json!([
            "/bin/sh",
            "-c",
            "trap 'echo \"stopped $HOSTNAME\" >> /data/stops; exit 0' TERM; \
             while true; do echo ready | nc -l -p 5432 & wait $!; done"
        ]);
        let db = &mut doc["containers"]["db"];
        db["volumes"] = serde_json::json!({ "data": { "persistent": true } });
        db["mounts"] = serde_json::json!({ "data": "/data" });
        db["stop_grace"] = "30s".into();
        doc["containers"]["web"]["stop_grace"] = "1s".into();
        doc["containers"]["api"]["stop_grace"] = "1s".into();
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    deploy(p.path());
    let db = p.instance("dev", "db");
    let (first, timeout) = id_and_stop_timeout(&db);
    assert_eq!(
        timeout,
        Some(30),
        "the grace is the container's own StopTimeout"
    );
    assert_eq!(id_and_stop_timeout(&p.instance("dev", "web")).1, Some(1));
    let stops = || p.exec(&db, &["sh", "-c", "cat /data/stops 2>/dev/null; true"]);
    assert_eq!(stops(), "");

    // A change of its settings replaces db: the old one was stopped, and said so, first.
    edit(p.path(), |doc| {
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["db"]["env"]["DB_NAME"] =
            "shop_other".into();
    });
    deploy(p.path());
    let (second, _) = id_and_stop_timeout(&db);
    assert_ne!(second, first, "db was replaced");
    assert_eq!(stops(), format!("stopped {}\n", &first[..12]));

    // `down` stops every container before it removes it; httpd, which ignores SIGTERM as
    // PID 1, is killed after its 1 s. The next deploy finds the second line on the volume.
    let report = down(p.path(), &[]);
    assert_eq!(
        strings(&report["removed"]["containers"]),
        ["api", "db", "web"].map(|c| p.instance("dev", c)),
        "{report}"
    );
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    deploy(p.path());
    assert_eq!(
        stops(),
        format!("stopped {}\nstopped {}\n", &first[..12], &second[..12])
    );
}
