//! Two applies and a `verify` at once on one checkout (issue 10, item 3 and "Done when").
//!
//! A small cookbook: `base`, and `one` and `two` built FROM it, each in a site of its own, so
//! each site's apply covers `base` too. The first round builds: both applies build `base` at the
//! same time (each from its own temporary context tar). Then, twenty times, the test blanks every
//! lock entry's `tags` (which `verify` does not read) and runs `apply --site s1`,
//! `apply --site s2` and `verify` at once: both applies find everything cached and must restore
//! their entries in one lock, and `verify` must always read a whole lock that matches. A fault
//! injection (`COOKBOOK_LOCK_TEST_PAUSE`) holds each apply between reading and writing the lock,
//! so that writers without the file lock would lose an update every round.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

fn cookbook(project: &str) -> Value {
    let app = |name: &str| {
        json!({
            "language": "shell",
            "type": "backend",
            "source": format!("apps/{name}"),
            "build_commands": [format!("test -f {name}.txt")],
            "run_command": ["/bin/sh", "-c", "sleep 1"]
        })
    };
    json!({
        "manifest_version": "1.0",
        "project": { "name": project },
        "applications": { "base": app("base"), "one": app("one"), "two": app("two") },
        "containers": {
            "base": { "base_image": "cookbook-test/busybox:latest", "applications": ["base"] },
            "one": { "base_image": "container:base", "applications": ["one"] },
            "two": { "base_image": "container:base", "applications": ["two"] }
        },
        "packaging": { "tagging": "content-hash" },
        "federation": { "sites": { "s1": { "containers": ["one"] }, "s2": { "containers": ["two"] } } }
    })
}

fn spawn(dir: &Path, tmp: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cookbook"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .env("TMPDIR", tmp)
        .env("COOKBOOK_LOCK_TEST_PAUSE", "lock-merged:150")
        .env_remove("COOKBOOK_FILE")
        .env_remove("COOKBOOK_CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every child; returns `(args, exit code, stderr)` of each.
fn wait_all(children: Vec<(String, Child)>) -> Vec<(String, Option<i32>, String)> {
    let started = Instant::now();
    children
        .into_iter()
        .map(|(args, child)| {
            // Output is small; `wait_with_output` drains both pipes.
            let out = child.wait_with_output().unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{args} took too long"
            );
            (
                args,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

fn without_image_id(entry: &Value) -> Value {
    let mut entry = entry.clone();
    entry.as_object_mut().unwrap().remove("image_id");
    entry
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("cookbook.lock")).unwrap()).unwrap()
}

#[test]
fn two_site_applies_and_a_verify_at_once_twenty_times() {
    if common::test_registry().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let unique = format!(
        "conc{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    for name in ["base", "one", "two"] {
        let app = dir.path().join("apps").join(name);
        fs::create_dir_all(&app).unwrap();
        // Unique content: the first round really builds, whatever earlier runs left behind.
        fs::write(
            app.join(format!("{name}.txt")),
            format!("{name} {unique}\n"),
        )
        .unwrap();
    }
    fs::write(
        dir.path().join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook(&unique)).unwrap(),
    )
    .unwrap();
    let apply = |site: &str| {
        let args = ["apply", "--no-push", "--site", site];
        (args.join(" "), spawn(dir.path(), tmp.path(), &args))
    };

    // Round 0: both sites build `base` at once, then their own container.
    for (args, code, stderr) in wait_all(vec![apply("s1"), apply("s2")]) {
        assert_eq!(code, Some(0), "{args}\n{stderr}");
    }
    let first = lock(dir.path());
    let names: Vec<&String> = first["containers"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["base", "one", "two"], "{first}");

    // Round 0 built `base` twice at once: the two builds have different image ids (the classic
    // builder stamps creation times), the lock holds one and the local content tag names
    // whichever was tagged last. Round 1 finds the latter cached and records it; from then on
    // every entry must stay exactly as it is.
    let mut settled: Option<Value> = None;
    for round in 1..=20 {
        let mut blanked = lock(dir.path());
        for entry in blanked["containers"].as_object_mut().unwrap().values_mut() {
            entry["tags"] = json!([]);
        }
        fs::write(
            dir.path().join("cookbook.lock"),
            serde_json::to_vec_pretty(&blanked).unwrap(),
        )
        .unwrap();
        let verify = (
            "verify".to_owned(),
            spawn(dir.path(), tmp.path(), &["verify"]),
        );
        for (args, code, stderr) in wait_all(vec![apply("s1"), apply("s2"), verify]) {
            assert_eq!(code, Some(0), "round {round}: {args}\n{stderr}");
        }
        let after = lock(dir.path());
        for name in ["base", "one", "two"] {
            let entry = &after["containers"][name];
            assert!(
                entry["image_id"].as_str().is_some(),
                "round {round}: {name}\n{after}"
            );
            assert_eq!(
                without_image_id(entry),
                without_image_id(&first["containers"][name]),
                "round {round}: {name}'s entry was lost or changed\n{after}"
            );
            // From round 2 on, nothing is built: every entry is exactly the settled one.
            if let Some(settled) = &settled {
                assert_eq!(
                    entry, &settled["containers"][name],
                    "round {round}: {name}'s entry was lost or changed\n{after}"
                );
            }
        }
        settled.get_or_insert(after);
    }
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
