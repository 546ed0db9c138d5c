//! `cookbook apply --trust-lock`, against the real engine and registry that
//! `scripts/services.sh` starts: containers the lock records as published with their current
//! input hash are taken as cached without asking the registry, and nothing else is.
//!
//! The registry of the tests has deletion enabled, so a test can make the lock wrong on purpose:
//! delete a published manifest behind the lock's back. `--trust-lock` then believes the lock
//! (that is exactly what it trusts, and what the docs say), while a plain `apply` asks the
//! registry, finds the image gone and builds it again.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::common;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Each container's (status, source) from `apply --format json`.
fn statuses(run: &common::Run) -> Vec<(String, String, String)> {
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()));
    doc["containers"]
        .as_object()
        .unwrap_or_else(|| panic!("{}", run.context()))
        .iter()
        .map(|(n, c)| {
            (
                n.clone(),
                c["status"].as_str().unwrap().to_owned(),
                c["source"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn trust_lock_takes_published_entries_from_the_lock_and_looks_up_the_rest() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let id = common::unique("trust");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for app in ["a", "b"] {
        write(&root.join(format!("{app}/{app}.txt")), app);
    }
    fs::write(
        root.join("cookbook.json"),
        serde_json::to_string_pretty(&json!({
            "manifest_version": "1.0",
            "project": { "name": "trust" },
            "applications": { "a": { "source": "a" }, "b": { "source": "b" } },
            "containers": {
                "one": { "base_image": "cookbook-test/busybox:latest", "applications": ["a"] },
                "two": { "base_image": "cookbook-test/busybox:latest", "applications": ["b"] }
            },
            "packaging": { "registry": format!("{registry}/{id}") }
        }))
        .unwrap(),
    )
    .unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "--format", "json"];
        args.extend_from_slice(extra);
        common::run_in(root, &args)
    };
    apply(&[]).assert_code(0);
    let lock_path = root.join("cookbook.lock");
    let lock_bytes = fs::read(&lock_path).unwrap();
    let lock: Value = serde_json::from_slice(&lock_bytes).unwrap();

    let trusted = apply(&["--trust-lock"]);
    trusted.assert_code(0);
    assert_eq!(
        statuses(&trusted),
        expect(&[("one", "cached", "lock"), ("two", "cached", "lock")])
    );
    let text = common::run_in(root, &["apply", "--trust-lock"]);
    text.assert_code(0);
    assert!(
        text.stderr.contains("[one] cached (lock)\n"),
        "{}",
        text.context()
    );
    // Nothing new to record: the lock is left as it was.
    assert!(fs::read(&lock_path).unwrap() == lock_bytes);

    // Behind the lock's back, `one`'s image is deleted from the registry.
    let digest = lock["containers"]["one"]["digest"].as_str().unwrap();
    let url = format!("http://{registry}/v2/{id}/one/manifests/{digest}");
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::Client::new().delete(&url).send().await })
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202, "DELETE {url}");

    // --trust-lock believes the lock: that is what it trusts.
    let believed = apply(&["--trust-lock"]);
    believed.assert_code(0);
    assert_eq!(
        statuses(&believed),
        expect(&[("one", "cached", "lock"), ("two", "cached", "lock")])
    );
    // A plain apply asks the registry: `one` is gone and is built and pushed again.
    let checked = apply(&[]);
    checked.assert_code(0);
    assert_eq!(
        statuses(&checked),
        expect(&[("one", "built", "-"), ("two", "cached", "registry")])
    );

    // A changed input is never trusted: its new input hash is not in the lock.
    write(&root.join("b/b.txt"), "b, changed");
    let changed = apply(&["--trust-lock"]);
    changed.assert_code(0);
    assert_eq!(
        statuses(&changed),
        expect(&[("one", "cached", "lock"), ("two", "built", "-")])
    );
    let after: Value = serde_json::from_slice(&fs::read(&lock_path).unwrap()).unwrap();
    assert_ne!(
        after["containers"]["two"]["input_hash"],
        lock["containers"]["two"]["input_hash"]
    );
    assert!(after["containers"]["two"]["digest"].is_string());
}

#[test]
fn trust_lock_needs_a_registry_to_trust() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("shop", dir.path());
    let run = common::run_in(dir.path(), &["apply", "--trust-lock", "--no-push"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("the argument '--trust-lock' cannot be used with '--no-push'"),
        "{}",
        run.context()
    );
}
