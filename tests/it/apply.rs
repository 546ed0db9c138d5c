//! `cookbook apply` against the real Docker engine and registry that `scripts/services.sh` starts.
//!
//! Each test copies `cookbooks/shop` into a temp dir and publishes under its own registry
//! namespace, so tests run in parallel and never see each other's images. Results are checked
//! through the registry's HTTP API and the lock file, not through cookbook's own report alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cookbook::registry::{RegistryClient, Repository};
use serde_json::Value;

use crate::common;

struct Shop {
    dir: tempfile::TempDir,
    registry: String,
}

impl Shop {
    /// A copy of the shop example publishing to `<test registry>/<unique>/…`.
    fn new(tag: &str) -> Option<Shop> {
        let registry = common::test_registry()?;
        let dir = tempfile::tempdir().unwrap();
        common::copy_example("shop", dir.path());
        let unique = common::unique(&format!("{tag}-"));
        let shop = Shop {
            dir,
            registry: format!("{registry}/{unique}"),
        };
        let r = shop.registry.clone();
        shop.edit(|v| v["packaging"]["registry"] = Value::String(r));
        Some(shop)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let file = self.path("cookbook.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        f(&mut v);
        fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cookbook"));
        cmd.arg("-f")
            .arg(self.path("cookbook.json"))
            .args(args)
            .current_dir(self.dir.path())
            .env("CI", "true");
        cmd
    }

    /// Runs `cookbook ARGS`, printing everything on failure; a hang fails the test.
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            out.read_to_end(&mut b).unwrap();
            b
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            err.read_to_end(&mut b).unwrap();
            b
        });
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(300) {
                child.kill().unwrap();
                panic!("cookbook {args:?} hung");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = Output {
            status,
            stdout: t_out.join().unwrap(),
            stderr: t_err.join().unwrap(),
        };
        eprintln!(
            "$ cookbook {}\n(cwd {})\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            self.dir.path().display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `apply --format json`, returning the exit code and the summary (if one was printed).
    fn apply(&self, extra: &[&str]) -> (i32, Value, String) {
        let mut args = vec!["apply", "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            summary,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn lock_bytes(&self) -> Option<Vec<u8>> {
        fs::read(self.path("cookbook.lock")).ok()
    }

    /// What a run that wrote no entries leaves: only the base-image pins, recorded before any
    /// build (so `hash` prints what the images it published are tagged with).
    fn assert_only_pins(&self, why: &str) {
        let lock = self.lock();
        assert_eq!(lock["containers"], serde_json::json!({}), "{why}: {lock:#}");
        assert!(
            lock["bases"].as_object().is_some_and(|b| !b.is_empty()),
            "{why}: {lock:#}"
        );
    }

    fn lock(&self) -> Value {
        serde_json::from_slice(&self.lock_bytes().expect("a lock")).unwrap()
    }

    fn hash_of(&self, container: &str) -> String {
        let out = self.run(&["hash", container]);
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    }
}

/// The containers `cookbook.lock` holds, sorted.
fn locked_names(shop: &Shop) -> Vec<String> {
    shop.lock()["containers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn statuses(summary: &Value) -> BTreeMap<String, String> {
    summary["containers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["status"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn shop_applies_then_builds_nothing() {
    let Some(shop) = Shop::new("full") else {
        return;
    };
    let (code, summary, _) = shop.apply(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "built"),
            ("db", "built"),
            ("web", "built"),
            ("worker", "built")
        ])
    );

    // In the registry, under the content tag, with the labels; the lock agrees.
    let lock = shop.lock();
    let client = RegistryClient::new().unwrap();
    for name in ["db", "api", "worker", "web"] {
        let hash = shop.hash_of(name);
        let entry = &lock["containers"][name];
        assert_eq!(entry["input_hash"], hash.as_str());
        assert_eq!(
            entry["image"],
            format!("{}/{name}:{hash}", shop.registry).as_str()
        );
        let repo = Repository::parse(&format!("{}/{name}", shop.registry)).unwrap();
        let digest = common::block_on(client.manifest_head(&repo, &hash))
            .unwrap()
            .expect("content tag in the registry");
        assert_eq!(
            entry["digest"],
            digest.as_str(),
            "{name}: lock digest is the registry's"
        );
        let tags = common::block_on(client.tags_list(&repo)).unwrap();
        assert_eq!(
            tags,
            vec![hash.clone()],
            "{name}: only the content tag (tagging: content-hash)"
        );
        let labels = common::block_on(client.image_labels(&repo, &hash))
            .unwrap()
            .expect("a config");
        assert_eq!(labels["dev.cookbook.input-hash"], hash);
        assert_eq!(labels["dev.cookbook.project"], "shop");
        assert_eq!(labels["dev.cookbook.container"], name);
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://github.com/example/shop"
        );
        assert!(
            !labels.keys().any(|k| k.contains("created")),
            "no time stamps: {labels:?}"
        );
    }
    // The explain document of every built container is kept for `verify`.
    for name in ["db", "api", "worker", "web"] {
        let kept = shop.path(&format!(
            ".cookbook/explain/{name}/{}.json",
            shop.hash_of(name)
        ));
        assert!(kept.is_file(), "{}", kept.display());
    }

    // Again: nothing built, the lock untouched (bytes and mtime).
    let before = fs::metadata(shop.path("cookbook.lock"))
        .unwrap()
        .modified()
        .unwrap();
    let bytes = shop.lock_bytes();
    let (code, summary, _) = shop.apply(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "cached"),
            ("db", "cached"),
            ("web", "cached"),
            ("worker", "cached")
        ])
    );
    assert_eq!(summary["lock_changed"], false);
    assert_eq!(shop.lock_bytes(), bytes);
    assert_eq!(
        fs::metadata(shop.path("cookbook.lock"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn a_source_change_rebuilds_its_container_and_build_children_only() {
    let Some(shop) = Shop::new("change") else {
        return;
    };
    assert_eq!(shop.apply(&[]).0, 0);
    let old_worker = shop.lock()["containers"]["worker"]["digest"].clone();
    fs::write(
        shop.path("services/api/serve.sh"),
        "#!/bin/sh\nexec httpd -f -p 8081 -h /srv/api\n",
    )
    .unwrap();
    let (code, summary, _) = shop.apply(&[]);
    assert_eq!(code, 0);
    // worker is built FROM api; web only depends_on api at runtime.
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "built"),
            ("db", "cached"),
            ("web", "cached"),
            ("worker", "built")
        ])
    );
    assert_ne!(shop.lock()["containers"]["worker"]["digest"], old_worker);
    assert_eq!(summary["lock_changed"], true);
}

#[test]
fn a_failing_run_step_fails_its_container_shows_the_log_and_skips_dependents() {
    let Some(shop) = Shop::new("fail") else {
        return;
    };
    shop.edit(|v| {
        v["applications"]["api"]["build_commands"] = serde_json::json!([
            "echo step-output-marker-42 && echo to-stderr-marker >&2 && exit 3"
        ]);
    });
    let (code, summary, stderr) = shop.apply(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "failed"),
            ("db", "built"),
            ("web", "skipped"),
            ("worker", "skipped")
        ])
    );
    assert!(stderr.contains("[api] FAILED"), "{stderr}");
    assert!(
        stderr.contains("[api] | step-output-marker-42"),
        "the build log is shown: {stderr}"
    );
    assert!(stderr.contains("to-stderr-marker"), "{stderr}");
    assert!(stderr.contains("[web] skipped: needs api"), "{stderr}");
    shop.assert_only_pins("a failed run writes no entries");
    let log = summary["containers"]["api"]["log"].as_array().unwrap();
    assert!(log
        .iter()
        .any(|l| l.as_str().unwrap().contains("step-output-marker-42")));
}

#[test]
fn keep_going_builds_independent_branches() {
    let Some(shop) = Shop::new("keepgoing") else {
        return;
    };
    // db fails; api, worker and web all need it (directly or not). Add an independent container.
    shop.edit(|v| {
        v["containers"]["db"]["build_args"]["DB_VERSION"] = serde_json::json!("1");
        v["containers"]["solo"] = serde_json::json!({ "base_image": "cookbook-test/busybox:latest", "applications": ["web"] });
    });
    fs::write(
        shop.path("services/db/Dockerfile"),
        "FROM cookbook-test/busybox:latest\nRUN exit 7\n",
    )
    .unwrap();
    let (code, summary, _) = shop.apply(&["--keep-going", "--jobs", "1"]);
    assert_eq!(code, 1);
    let s = statuses(&summary);
    assert_eq!(s["db"], "failed");
    assert_eq!(
        s["solo"], "built",
        "independent container built under --keep-going"
    );
    assert_eq!(
        (s["api"].as_str(), s["worker"].as_str(), s["web"].as_str()),
        ("skipped", "skipped", "skipped")
    );
}

#[test]
fn an_unreachable_registry_is_exit_3_naming_it_and_the_lock_is_unchanged() {
    let Some(shop) = Shop::new("down") else {
        return;
    };
    assert_eq!(shop.apply(&[]).0, 0);
    let lock = shop.lock_bytes();
    // A registry that is not running: a loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    shop.edit(|v| v["packaging"]["registry"] = Value::String(format!("127.0.0.1:{port}/shop")));
    let (code, _, stderr) = shop.apply(&[]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "names the endpoint: {stderr}"
    );
    assert!(
        !stderr.contains("building"),
        "no build before the registry answered: {stderr}"
    );
    assert_eq!(shop.lock_bytes(), lock);
}

#[test]
fn an_unreachable_engine_is_exit_3_naming_it() {
    let Some(shop) = Shop::new("noengine") else {
        return;
    };
    let out = shop
        .command(&["apply"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
}

/// A fake registry that refuses every request with 401: push access is checked before any build.
#[test]
fn refused_push_access_fails_at_once_before_building() {
    let Some(shop) = Shop::new("auth") else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    shop.edit(|v| v["packaging"]["registry"] = Value::String(format!("127.0.0.1:{port}/shop")));
    let started = Instant::now();
    let (code, _, stderr) = shop.apply(&[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not authorized"), "{stderr}");
    assert!(!stderr.contains("building"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn mutable_tags_move_only_when_every_container_succeeded() {
    let Some(shop) = Shop::new("tags") else {
        return;
    };
    shop.edit(|v| {
        v["packaging"]["tagging"] = serde_json::json!("semver");
        v["packaging"]["version"] = serde_json::json!("1.0.0");
        v["packaging"]["latest"] = serde_json::json!(true);
    });
    assert_eq!(shop.apply(&[]).0, 0);
    let client = RegistryClient::new().unwrap();
    let db = Repository::parse(&format!("{}/db", shop.registry)).unwrap();
    let latest_before = common::block_on(client.manifest_head(&db, "latest"))
        .unwrap()
        .expect("latest pushed");
    assert_eq!(
        common::block_on(client.manifest_head(&db, "1.0.0")).unwrap(),
        Some(latest_before.clone())
    );
    assert!(
        shop.lock()["containers"]["db"]["tags"]
            .as_array()
            .unwrap()
            .len()
            == 3
    );

    // Next version: db changes and builds, api fails. No mutable tag may move.
    shop.edit(|v| {
        v["packaging"]["version"] = serde_json::json!("1.0.1");
        v["containers"]["db"]["build_args"]["DB_VERSION"] = serde_json::json!("2");
        v["applications"]["api"]["build_commands"] = serde_json::json!(["exit 1"]);
    });
    assert_eq!(shop.apply(&[]).0, 1);
    assert_eq!(
        common::block_on(client.manifest_head(&db, "latest")).unwrap(),
        Some(latest_before)
    );
    assert_eq!(
        common::block_on(client.manifest_head(&db, "1.0.1")).unwrap(),
        None
    );
}

#[test]
fn after_a_kill_9_mid_apply_the_next_apply_completes_with_a_valid_lock() {
    let Some(shop) = Shop::new("kill") else {
        return;
    };
    // A slow api build, so that the kill lands in the middle of the run.
    // Unique text, so Docker's own layer cache cannot make the slow step instant.
    let slow = format!("sleep 5 && echo {}", shop.registry);
    shop.edit(|v| {
        v["applications"]["api"]["build_commands"] =
            serde_json::json!([slow, "chmod 0755 serve.sh cgi-bin/orders"])
    });
    // A SIGKILL leaves the run's temporary context tar behind (nothing runs after it): give the
    // run a temp dir of its own so the test does not litter the machine's.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = shop
        .command(&["apply"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if line.contains("[api] building") {
            break;
        }
        line.clear();
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    shop.assert_only_pins("a killed run writes no entries");

    let (code, summary, _) = shop.apply(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&summary)
            .values()
            .filter(|s| *s == "failed")
            .count(),
        0
    );
    let lock = shop.lock();
    assert_eq!(lock["containers"].as_object().unwrap().len(), 4);
    // No temporary files left beside the lock.
    let names: Vec<String> = fs::read_dir(shop.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".cookbook.lock.")),
        "{names:?}"
    );
}

#[test]
fn no_push_builds_locally_and_finds_its_own_images() {
    let Some(shop) = Shop::new("local") else {
        return;
    };
    // A project name of its own, so the local images are this test's.
    let project = format!("local{}", std::process::id());
    shop.edit(|v| v["project"]["name"] = Value::String(project.clone()));
    let (code, summary, _) = shop.apply(&["--no-push"]);
    assert_eq!(code, 0);
    assert!(statuses(&summary)
        .values()
        .all(|s| s == "built" || s == "cached"));
    let (code, summary, _) = shop.apply(&["--no-push"]);
    assert_eq!(code, 0);
    assert!(
        statuses(&summary).values().all(|s| s == "cached"),
        "{summary}"
    );
    // Lock version 2: the local image id has a field of its own, and nothing published means
    // no manifest digest (version 1 put the image id in `digest`).
    let entry = &shop.lock()["containers"]["api"];
    let image_id = entry["image_id"].as_str().unwrap().to_owned();
    assert!(
        image_id.starts_with("sha256:"),
        "the local image id: {image_id}"
    );
    assert_eq!(entry.get("digest"), None, "not published: {entry}");
    let client = RegistryClient::new().unwrap();
    let repo = Repository::parse(&format!("{}/api", shop.registry)).unwrap();
    assert_eq!(
        common::block_on(client.tags_list(&repo)).unwrap_or_default(),
        Vec::<String>::new(),
        "nothing pushed"
    );
}

/// Issue 10, item 8: Ctrl-C in the middle of a slow RUN step. The build is stopped in the
/// engine, the temporary context tars are gone, the lock holds what completed (db), no mutable
/// tag moved, and the exit code is 130.
#[test]
fn sigint_mid_build_cancels_it_keeps_what_completed_and_exits_130() {
    let Some(shop) = Shop::new("sigint") else {
        return;
    };
    // Unique text, so Docker's own layer cache cannot make the slow step instant, and so the
    // step's container can be found in the engine.
    let marker = format!(
        "cancel-marker-{}",
        shop.registry.replace(['/', ':', '.'], "-")
    );
    let slow = format!("sleep 120 && echo {marker}");
    shop.edit(|v| {
        v["packaging"]["tagging"] = serde_json::json!("semver");
        v["packaging"]["version"] = serde_json::json!("1.0.0");
        v["packaging"]["latest"] = serde_json::json!(true);
        v["applications"]["api"]["build_commands"] =
            serde_json::json!([slow, "chmod 0755 serve.sh cgi-bin/orders"]);
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut child = shop
        .command(&["apply", "--format", "json"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err_reader = {
        let (stderr, pipe) = (stderr.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let line = line.unwrap();
                stderr.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    // The slow step is running in the engine: signal now.
    common::wait_until("api's slow step to run", Duration::from_secs(120), || {
        !common::engine_containers_with(&marker).is_empty()
    });
    let tars: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(tars.len(), 1, "api's context, in the temp dir: {tars:?}");
    common::signal(&child, "-INT");
    let (code, took) = common::exit_within(
        &mut child,
        Duration::from_secs(60),
        "the apply after SIGINT",
    );
    eprintln!("exited {took:?} after the signal");
    err_reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    let summary: Value = serde_json::from_str(&out_reader.join().unwrap()).unwrap_or(Value::Null);
    eprintln!("--- stderr\n{stderr}--- summary\n{summary}");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        took < Duration::from_secs(30),
        "stopped long before the 120 s step would end: {:?}",
        took
    );
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");

    // Nothing of the build keeps running, and no temporary file is left.
    assert_eq!(
        common::engine_containers_with(&marker),
        Vec::<String>::new()
    );
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // The summary says what was done; the lock holds what completed.
    assert_eq!(summary["result"], "cancelled");
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "cancelled"),
            ("db", "built"),
            ("web", "cancelled"),
            ("worker", "cancelled")
        ])
    );
    assert_eq!(
        summary["containers"]["api"]["reason"],
        "cancelled while building"
    );
    let lock = shop.lock();
    let entries: Vec<&String> = lock["containers"].as_object().unwrap().keys().collect();
    assert_eq!(entries, ["db"]);
    let db_hash = shop.hash_of("db");
    assert_eq!(lock["containers"]["db"]["input_hash"], db_hash.as_str());
    assert_eq!(
        lock["containers"]["db"]["tags"],
        serde_json::json!([format!("{}/db:{db_hash}", shop.registry)]),
        "content tag only"
    );

    // No mutable tag moved: the registry has db's content tag and nothing else.
    let client = RegistryClient::new().unwrap();
    let db = Repository::parse(&format!("{}/db", shop.registry)).unwrap();
    assert_eq!(
        common::block_on(client.tags_list(&db)).unwrap(),
        vec![db_hash]
    );
    let api = Repository::parse(&format!("{}/api", shop.registry)).unwrap();
    assert_eq!(
        common::block_on(client.tags_list(&api)).unwrap_or_default(),
        Vec::<String>::new()
    );
}

/// Issue 10, item 7: a failure of the whole run after some containers completed still reports
/// what was built and pushed before it. The fault: api's explain document cannot be written (a
/// file stands where its directory goes), which fails the run after db was built and pushed.
#[test]
fn a_run_level_failure_still_reports_what_was_built_and_pushed() {
    let Some(shop) = Shop::new("partial") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    fs::create_dir_all(state.path().join("explain")).unwrap();
    fs::write(state.path().join("explain/api"), "in the way\n").unwrap();
    let out = shop
        .command(&["apply", "--format", "json", "--jobs", "1"])
        .env("COOKBOOK_CACHE_DIR", state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a summary on stdout");
    assert_eq!(summary["result"], "error", "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("explain/api"),
        "{summary}"
    );
    assert_eq!(
        statuses(&summary),
        map(&[
            ("api", "failed"),
            ("db", "built"),
            ("web", "skipped"),
            ("worker", "skipped")
        ])
    );
    assert_eq!(summary["built"], 1);
    // db was pushed: the summary names its manifest digest, which the registry agrees with.
    let db_hash = shop.hash_of("db");
    let client = RegistryClient::new().unwrap();
    let db = Repository::parse(&format!("{}/db", shop.registry)).unwrap();
    let pushed = common::block_on(client.manifest_head(&db, &db_hash))
        .unwrap()
        .expect("db pushed");
    assert_eq!(summary["containers"]["db"]["digest"], pushed.as_str());
    assert_eq!(
        summary["containers"]["worker"]["reason"],
        "not started: the run stopped on an error"
    );
    assert!(
        stderr.contains("apply: 1 built, 0 cached, 1 failed, 2 skipped"),
        "{stderr}"
    );
    shop.assert_only_pins("a failed run writes no entries");
}

/// Issue 12, item 7: `apply CONTAINER…` applies the named containers and what they need; the
/// lock keeps the other containers' entries; an unknown name is exit 2 with the list.
#[test]
fn apply_named_containers_applies_them_and_what_they_need() {
    let Some(shop) = Shop::new("subset") else {
        return;
    };
    let project = format!("subset{}", std::process::id());
    shop.edit(|v| v["project"]["name"] = Value::String(project.clone()));

    // worker is built FROM api and depends on db at runtime; web is left alone.
    let (code, summary, _) = shop.apply(&["--no-push", "worker"]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&summary),
        map(&[("api", "built"), ("db", "built"), ("worker", "built")])
    );
    let locked = locked_names(&shop);
    assert_eq!(locked, ["api", "db", "worker"]);

    // web next: what it needs is cached, and worker's entry stays in the lock.
    let (code, summary, _) = shop.apply(&["--no-push", "web"]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&summary),
        map(&[("api", "cached"), ("db", "cached"), ("web", "built")])
    );
    let locked = locked_names(&shop);
    assert_eq!(locked, ["api", "db", "web", "worker"]);

    let before = shop.lock_bytes();
    let out = shop.run(&["apply", "--no-push", "web", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: unknown container `nope`\n  help: containers in this cookbook: api, db, web, worker\n"
    );
    assert_eq!(shop.lock_bytes(), before, "nothing applied");
}

fn actions(doc: &Value) -> BTreeMap<String, String> {
    doc["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["action"].as_str().unwrap().to_owned()))
        .collect()
}

/// Issue 12, item 7: `apply --dry-run` says per container what apply would do, from the
/// registry, and does none of it: nothing built, pushed or tagged, the lock not written.
#[test]
fn dry_run_says_what_is_cached_and_what_would_be_built_and_does_nothing() {
    let Some(shop) = Shop::new("dry") else {
        return;
    };
    shop.edit(|v| v["packaging"]["latest"] = Value::Bool(true));
    let client = RegistryClient::new().unwrap();
    let api_repo = Repository::parse(&format!("{}/api", shop.registry)).unwrap();

    // Nothing published yet: everything would be built and pushed, then tagged `latest`.
    let out = shop.run(&["apply", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(shop.lock_bytes(), None, "no lock written");
    assert_eq!(
        common::block_on(client.tags_list(&api_repo)).unwrap_or_default(),
        Vec::<String>::new(),
        "nothing pushed"
    );

    // After an apply, everything is cached in the registry.
    assert_eq!(shop.apply(&[]).0, 0);
    // The dry run said what this apply did: the hashes it computed with the base image pinned
    // as the apply then pinned it (issue 11), which `hash` now reads from the lock.
    let h = |n: &str| shop.hash_of(n);
    let r = &shop.registry;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "build   api     {r}/api:{} (push)\ntag     api     {r}/api:latest\n\
             build   db      {r}/db:{} (push)\ntag     db      {r}/db:latest\n\
             build   web     {r}/web:{} (push)\ntag     web     {r}/web:latest\n\
             build   worker  {r}/worker:{} (push)\ntag     worker  {r}/worker:latest\n",
            h("api"),
            h("db"),
            h("web"),
            h("worker")
        )
    );
    let pinned = shop.lock()["bases"]["cookbook-test/busybox:latest"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "would pin base image cookbook-test/busybox:latest to {pinned} (engine)\n\
             apply --dry-run: 4 to build, 0 cached; nothing was built, pushed or tagged\n"
        )
    );
    let lock = shop.lock_bytes();
    let out = shop.run(&["apply", "--dry-run", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actions(&doc),
        map(&[
            ("api", "cached"),
            ("db", "cached"),
            ("web", "cached"),
            ("worker", "cached")
        ])
    );
    assert_eq!(doc["cached"], 4);
    assert_eq!(doc["containers"]["api"]["source"], "registry");
    let schema: Value = serde_json::from_slice(
        &fs::read(common::repo_root().join("schemas/cookbook-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(doc["containers"]["api"]["push"], Value::Null);

    // A source edit: exactly the changed container and its build-time child would be built.
    fs::write(
        shop.path("services/api/serve.sh"),
        "#!/bin/sh\nexec httpd -f -p 8082 -h /srv/api\n",
    )
    .unwrap();
    let tags_before = common::block_on(client.tags_list(&api_repo)).unwrap();
    let out = shop.run(&["apply", "--dry-run", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actions(&doc),
        map(&[
            ("api", "build"),
            ("db", "cached"),
            ("web", "cached"),
            ("worker", "build")
        ])
    );
    assert_eq!(
        doc["containers"]["api"]["push"],
        format!("{r}/api:{}", h("api")).as_str()
    );
    assert_eq!(shop.lock_bytes(), lock, "the lock is not written");
    assert_eq!(
        common::block_on(client.tags_list(&api_repo)).unwrap(),
        tags_before,
        "nothing pushed or tagged"
    );
}

/// With `--no-push` the cache is the local engine.
#[test]
fn dry_run_with_no_push_looks_in_the_local_engine() {
    let Some(shop) = Shop::new("drylocal") else {
        return;
    };
    let project = format!("drylocal{}", std::process::id());
    shop.edit(|v| v["project"]["name"] = Value::String(project.clone()));
    assert_eq!(shop.apply(&["--no-push", "db"]).0, 0);
    let out = shop.run(&["apply", "--no-push", "--dry-run", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actions(&doc),
        map(&[
            ("api", "build"),
            ("db", "cached"),
            ("web", "build"),
            ("worker", "build")
        ])
    );
    assert_eq!(doc["containers"]["db"]["source"], "local engine");
    assert_eq!(doc["containers"]["api"]["push"], Value::Null);
}

/// A cookbook whose registry is `registry` and whose lock pins its base, for the offline dry
/// runs.
fn offline_project(root: &std::path::Path, registry: &str) {
    let base = "cookbook-test/busybox:latest";
    std::fs::write(
        root.join("Dockerfile"),
        format!("FROM {base}\nCOPY . /app\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("cookbook.json"),
        format!(
            r#"{{"manifest_version": "1.0", "project": {{"name": "offline"}},
  "containers": {{"web": {{"dockerfile": "Dockerfile", "context": "."}}}},
  "packaging": {{"registry": "{registry}/offline"}}}}"#
        ),
    )
    .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    std::fs::write(
        root.join("cookbook.lock"),
        format!(
            r#"{{"lock_version": 3, "hash_version": 3, "project": "offline",
  "bases": {{"{base}": {{"digest": "{digest}", "source": "engine"}}}}, "containers": {{}}}}"#
        ),
    )
    .unwrap();
}

/// A registry that answers is not offline: one that keeps answering 503 fails the dry run
/// (exit 3, as apply), never "unchecked" with exit 0 — CI must not pass on a broken registry.
#[test]
fn a_dry_run_against_a_registry_that_answers_503_fails() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(common::http::FakeServer::start(|_, _| {
        common::http::response("503 Service Unavailable", &[], "")
    }));
    let dir = tempfile::tempdir().unwrap();
    offline_project(dir.path(), &server.host());
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let run = common::run_in_env(dir.path(), &["apply", "--dry-run"], &no_engine);
    run.assert_code(3);
    assert!(
        !run.stdout.contains("unchecked") && run.stderr.contains("HTTP 503"),
        "{}",
        run.context()
    );
}

/// Issue 26: `apply --dry-run` plans offline from the lock's pins. The lock pins the base; the
/// registry is a closed loopback port and there is no engine: the dry run exits 0, prints the
/// plan, and names what it could not check (the image, the base).
#[test]
fn a_dry_run_against_an_unreachable_registry_plans_from_the_lock_and_names_what_it_could_not_check()
{
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let base = "cookbook-test/busybox:latest";
    // A closed loopback port: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    offline_project(root, &format!("127.0.0.1:{port}"));
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let run = common::run_in_env(root, &["apply", "--dry-run"], &no_engine);
    run.assert_code(0);
    assert!(
        run.stdout.contains("unchecked  web")
            && run.stderr.contains("could not check: 1 image(s)")
            && run
                .stderr
                .contains(&format!("could not check: base image {base}")),
        "{}",
        run.context()
    );
    let json = common::run_in_env(
        root,
        &["apply", "--dry-run", "--format", "json"],
        &no_engine,
    );
    let doc = common::deploy::json_answer(json.assert_code(0));
    assert_eq!(doc["containers"]["web"]["action"], "unchecked", "{doc}");
    assert_eq!(doc["unchecked"], 1, "{doc}");
    assert!(doc["unchecked_bases"][base].is_string(), "{doc}");
}

/// Issue 26: `apply` of a cookbook without `packaging.registry` says that `--no-push` builds
/// into the local engine only.
#[test]
fn apply_without_a_registry_mentions_no_push() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(
        root.join("cookbook.json"),
        r#"{"manifest_version": "1.0", "project": {"name": "noreg"},
  "containers": {"c": {"dockerfile": "Dockerfile", "context": "."}}}"#,
    )
    .unwrap();
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let run = common::run_in_env(root, &["apply"], &no_engine);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no packaging.registry")
            && run
                .stderr
                .contains("`cookbook apply --no-push` to build into the local engine only"),
        "{}",
        run.context()
    );
}
