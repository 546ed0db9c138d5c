//! Base images pinned in `cookbook.lock`, against the real engine and registry that
//! `scripts/services.sh` starts: the first apply pins, `hash`/`plan`/`explain` read the pins
//! offline, a base moved under its tag is not picked up until `cookbook update`, and then exactly
//! the containers built on it and their `container:` children rebuild.
//!
//! The moving base is made with cookbook itself: a small "base" cookbook, FROM the busybox test
//! image, publishing with `latest: true`, so that applying it again after a change moves
//! `<registry>/<unique>-base/base:latest` to a different image, as a re-tag and push would.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common;

use common::unique;

/// `cookbook ARGS` in `dir` with extra environment variables (CI output: plain lines).
fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
    let mut all = vec![("CI", "true")];
    all.extend_from_slice(envs);
    common::run_in_env(dir, args, &all)
}

/// No engine and no registry: what `hash`, `plan` and `explain` must not need.
const OFFLINE: &[(&str, &str)] = &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")];

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn write_json(path: &Path, v: &Value) {
    write(path, &serde_json::to_string_pretty(v).unwrap());
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("cookbook.lock")).unwrap()).unwrap()
}

/// The apply summary's status per container.
fn statuses(run: &common::Run) -> Vec<(String, String)> {
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()));
    doc["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, c)| (n.clone(), c["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The base cookbook: one container whose file `base.txt` holds `content`, tagged `latest`.
fn base_book(dir: &Path, registry: &str, content: &str) {
    write(&dir.join("b/base.txt"), content);
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "pinbase" },
            "applications": { "b": { "source": "b" } },
            "containers": {
                "base": { "base_image": "cookbook-test/busybox:latest", "applications": ["b"] }
            },
            "packaging": { "registry": registry, "latest": true }
        }),
    );
}

/// The cookbook under test: `on_base` FROM the moving base, `child` FROM `on_base`, `other` FROM
/// the engine-only busybox image, `db` a Dockerfile.
fn main_book(dir: &Path, registry: &str, moving_base: &str) {
    for app in ["x", "y", "z"] {
        write(&dir.join(format!("{app}/{app}.txt")), app);
    }
    write(
        &dir.join("db/Dockerfile"),
        "FROM cookbook-test/busybox:latest\nRUN echo db > /db.txt\n",
    );
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "pinned" },
            "applications": {
                "x": { "source": "x" }, "y": { "source": "y" }, "z": { "source": "z" }
            },
            "containers": {
                "on_base": { "base_image": moving_base, "applications": ["x"] },
                "child": { "base_image": "container:on_base", "applications": ["y"] },
                "other": { "base_image": "cookbook-test/busybox:latest", "applications": ["z"] },
                "db": { "dockerfile": "db/Dockerfile", "context": "db" }
            },
            "packaging": { "registry": registry }
        }),
    );
}

#[test]
fn hash_plan_and_explain_show_a_base_not_pinned_yet_offline() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("shop", dir.path());
    let hash = run(dir.path(), &["hash"], OFFLINE);
    hash.assert_code(0);
    assert_eq!(hash.stdout.lines().count(), 4, "{}", hash.context());
    assert!(
        hash.stderr.contains(
            "note: the base images of api, db, web are not pinned yet: apply pins them (and \
             their hashes change then)"
        ),
        "{}",
        hash.context()
    );
    let json = run(dir.path(), &["hash", "--format", "json"], OFFLINE);
    json.assert_code(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["hash_version"], 3);
    // `db`'s Dockerfile says `FROM cookbook-test/busybox:latest`: pinned as the others are.
    assert_eq!(
        doc["not_pinned"],
        json!({"api": "cookbook-test/busybox:latest", "db": "cookbook-test/busybox:latest",
               "web": "cookbook-test/busybox:latest"})
    );
    let plan = run(dir.path(), &["plan"], OFFLINE);
    plan.assert_code(0);
    assert_eq!(
        plan.stderr,
        "base cookbook-test/busybox:latest (db, api, web): not pinned yet: apply pins it\n",
        "{}",
        plan.context()
    );
    let plan = run(dir.path(), &["plan", "--format", "json"], OFFLINE);
    let doc: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        doc["bases"],
        json!({"cookbook-test/busybox:latest": {"pinned": null, "containers": ["db", "api", "web"]}})
    );
    let explain = run(dir.path(), &["explain", "api"], OFFLINE);
    explain.assert_code(0);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(
        doc["recipe"]["base_image"],
        json!({"image": "cookbook-test/busybox:latest", "pinned": null})
    );
    assert!(explain.stderr.contains("not pinned yet: apply pins it"));
    // The worker is built FROM api: nothing of its own to pin.
    let explain = run(dir.path(), &["explain", "worker"], OFFLINE);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(doc["recipe"]["base_image"], json!({"container": "api"}));
    assert_eq!(explain.stderr, "");
    // The Dockerfile container: its FROM image, not pinned yet.
    let explain = run(dir.path(), &["explain", "db"], OFFLINE);
    explain.assert_code(0);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(
        doc["recipe"]["bases"],
        json!({"cookbook-test/busybox:latest": null})
    );
    assert!(explain.stderr.contains("not pinned yet: apply pins it"));
}

#[test]
fn a_moved_base_is_not_picked_up_until_update_then_exactly_its_containers_rebuild() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let id = unique("pin");
    let (base_dir, main_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (base, main) = (base_dir.path(), main_dir.path());
    let base_registry = format!("{registry}/{id}-base");
    let moving = format!("{base_registry}/base:latest");
    base_book(base, &base_registry, "one\n");
    run(base, &["apply"], &[]).assert_code(0);
    main_book(main, &format!("{registry}/{id}"), &moving);

    // The first apply pins both bases: the registry's manifest digest of the moving one, the
    // engine's image id of the busybox image that exists only in the engine.
    let first = run(main, &["apply", "--format", "json"], &[]);
    first.assert_code(0);
    assert_eq!(
        statuses(&first),
        pairs(&[
            ("child", "built"),
            ("db", "built"),
            ("on_base", "built"),
            ("other", "built")
        ])
    );
    let locked = lock(main);
    assert_eq!(locked["lock_version"], 3);
    assert_eq!(locked["hash_version"], 3);
    let pinned = locked["bases"][&moving].clone();
    assert_eq!(pinned["source"], "registry", "{locked:#}");
    let registry_digest = {
        let client = cookbook::registry::RegistryClient::new().unwrap();
        let repo = cookbook::registry::Repository::parse(&format!("{base_registry}/base")).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.manifest_head(&repo, "latest"))
            .unwrap()
            .unwrap()
    };
    assert_eq!(pinned["digest"], registry_digest.as_str());
    let busybox = &locked["bases"]["cookbook-test/busybox:latest"];
    assert_eq!(busybox["source"], "engine", "{locked:#}");
    assert!(first.stderr.contains(&format!(
        "pinned base image {moving} to {registry_digest} (registry)"
    )));

    // Offline, the pins come from the lock: the same hashes as the lock, the pinned digest shown.
    let hash = run(main, &["hash", "--format", "json"], OFFLINE);
    hash.assert_code(0);
    let doc: Value = serde_json::from_str(&hash.stdout).unwrap();
    for name in ["child", "db", "on_base", "other"] {
        assert_eq!(
            doc["input_hashes"][name], locked["containers"][name]["input_hash"],
            "{name}"
        );
    }
    assert_eq!(doc["not_pinned"], json!({}));
    let explain = run(main, &["explain", "on_base"], OFFLINE);
    explain.assert_code(0);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(doc["recipe"]["base_image"]["pinned"], pinned);
    assert!(doc["recipe"]["dockerfile_text"]
        .as_str()
        .unwrap()
        .contains(&format!("\nFROM {moving}@{registry_digest}\n")));
    // By hand: the release engineer's script recomputes it and checks the pin against the lock.
    let script = common::repo_root().join("scripts/recompute-hash.py");
    let mut python = Command::new("python3")
        .arg(&script)
        .arg("--lock")
        .arg(main.join("cookbook.lock"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(python.stdin.as_mut().unwrap(), explain.stdout.as_bytes()).unwrap();
    let checked = python.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout),
        format!(
            "ok {}\n",
            locked["containers"]["on_base"]["input_hash"]
                .as_str()
                .unwrap()
        )
    );
    let plan = run(main, &["plan"], OFFLINE);
    plan.assert_code(0);
    assert!(
        plan.stderr.contains(&format!(
            "base {moving} (on_base): pinned to {registry_digest} (registry)"
        )),
        "{}",
        plan.context()
    );

    // The base moves under its tag.
    base_book(base, &base_registry, "two\n");
    run(base, &["apply"], &[]).assert_code(0);

    // Not picked up: nothing rebuilds, the pin stays, and the run says so and names update.
    let second = run(main, &["apply", "--format", "json"], &[]);
    second.assert_code(0);
    assert_eq!(
        statuses(&second),
        pairs(&[
            ("child", "cached"),
            ("db", "cached"),
            ("on_base", "cached"),
            ("other", "cached")
        ])
    );
    let warning = format!(
        "warning: base image {moving} moved under its tag: pinned {registry_digest}, now sha256:"
    );
    assert!(second.stderr.contains(&warning), "{}", second.context());
    assert!(second.stderr.contains("run `cookbook update`"));
    assert_eq!(lock(main)["bases"], locked["bases"]);

    // `update` moves the pin on purpose and says what the next apply rebuilds.
    let update = run(main, &["update"], &[]);
    update.assert_code(0);
    let moved_line = update
        .stdout
        .lines()
        .find(|l| l.starts_with(&moving))
        .unwrap_or_else(|| panic!("{}", update.context()));
    assert!(
        moved_line.contains(&format!("moved      {registry_digest} → sha256:")),
        "{}",
        update.context()
    );
    assert!(update
        .stdout
        .lines()
        .any(|l| l.starts_with("cookbook-test/busybox:latest") && l.contains("unchanged  ")));
    assert!(
        update
            .stderr
            .contains("update: 1 base(s) moved; the next apply rebuilds on_base, child"),
        "{}",
        update.context()
    );
    let updated = lock(main);
    assert_ne!(updated["bases"][&moving]["digest"], pinned["digest"]);
    assert_eq!(
        updated["bases"]["cookbook-test/busybox:latest"],
        locked["bases"]["cookbook-test/busybox:latest"]
    );

    // Exactly the containers on the moved base and their children rebuild; the rest are cached.
    let third = run(main, &["apply", "--format", "json"], &[]);
    third.assert_code(0);
    assert_eq!(
        statuses(&third),
        pairs(&[
            ("child", "built"),
            ("db", "cached"),
            ("on_base", "built"),
            ("other", "cached")
        ])
    );
    assert!(!third.stderr.contains("warning"), "{}", third.context());
    let after = lock(main);
    for (name, moved) in [
        ("child", true),
        ("db", false),
        ("on_base", true),
        ("other", false),
    ] {
        assert_eq!(
            after["containers"][name]["input_hash"] != locked["containers"][name]["input_hash"],
            moved,
            "{name}"
        );
    }
    // And verify agrees with the new lock.
    run(main, &["verify"], &[]).assert_code(0);
}

#[test]
fn verify_checks_a_lock_written_under_hash_version_1() {
    // tests/fixtures/locks/shop-hash-v1.lock: the lock an apply of `cookbooks/shop` wrote before
    // pinning (lock version 2, hash_version 1, the version-1 golden hashes of tests/it/hashing.rs).
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("shop", dir.path());
    fs::copy(
        common::repo_root().join("tests/fixtures/locks/shop-hash-v1.lock"),
        dir.path().join("cookbook.lock"),
    )
    .unwrap();
    let verify = run(dir.path(), &["verify", "--format", "json"], OFFLINE);
    verify.assert_code(0);
    let doc: Value = serde_json::from_str(&verify.stdout).unwrap();
    assert_eq!(doc["result"], "ok");
    assert_eq!(doc["hash_version"], 1);
    assert_eq!(
        doc["containers"]["api"]["input_hash"],
        "6ce5f91fa43fe00f821062abd19270540705c64d6e3e3f58db9a457562c2ef2a"
    );
    run(dir.path(), &["verify", "--locked"], OFFLINE).assert_code(0);
    // Still a real check under version 1: a changed file is a mismatch.
    fs::write(
        dir.path().join("services/api/serve.sh"),
        "#!/bin/sh\necho changed\n",
    )
    .unwrap();
    let changed = run(dir.path(), &["verify"], OFFLINE);
    changed.assert_code(1);
    assert!(
        changed.stdout.contains("MISMATCH  api"),
        "{}",
        changed.context()
    );
}

/// A base that exists only in the engine under its own name stays an engine pin when the same
/// image was pushed under another name: its repo digests then name only other repositories and
/// say nothing of what the reference's registry (here Docker Hub, unreachable from the tests)
/// has under the tag. Before, any repo digest sent the pin step to the reference's registry:
/// pinning failed (exit 3), and an existing pin was left unchecked after seconds of DNS retries.
#[test]
fn a_local_base_pushed_under_another_name_is_pinned_from_the_engine() {
    use cookbook::engine::{DockerEngine, Engine};
    use cookbook::registry::Repository;
    let Some(registry) = common::test_registry() else {
        return;
    };
    let id = unique("pinlocal");
    let local = format!("{id}/busybox");
    let elsewhere = Repository::parse(&format!("{registry}/{id}/elsewhere")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image_id = runtime.block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
            .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
        engine.tag(&base, &local, "latest").await.unwrap();
        engine
            .tag(&base, &elsewhere.to_string(), "1")
            .await
            .unwrap();
        engine.push(&elsewhere, "1", None).await.unwrap();
        let info = engine
            .inspect_image(&format!("{local}:latest"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            info.repo_digests
                .iter()
                .any(|d| d.starts_with(&format!("{elsewhere}@"))),
            "{info:?}"
        );
        info.id
    });

    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a/a.txt"), "a\n");
    let reference = format!("{local}:latest");
    write_json(
        &dir.path().join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "pinlocal" },
            "applications": { "a": { "source": "a" } },
            "containers": { "c": { "base_image": reference, "applications": ["a"] } },
            "packaging": { "registry": format!("{registry}/{id}") }
        }),
    );
    let first = run(dir.path(), &["apply"], &[]);
    first.assert_code(0);
    assert!(
        first.stderr.contains(&format!(
            "pinned base image {reference} to {} (engine)",
            image_id.as_str()
        )),
        "{}",
        first.context()
    );
    let pin = &lock(dir.path())["bases"][&reference];
    assert_eq!(
        pin,
        &json!({ "digest": image_id.as_str(), "source": "engine" })
    );
    // Checked again on the next run, from the engine: no note, no warning.
    let second = run(dir.path(), &["apply"], &[]);
    second.assert_code(0);
    assert!(
        !second.stderr.contains("base image"),
        "{}",
        second.context()
    );

    runtime.block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        engine.remove_image(&reference).await.unwrap();
        engine
            .remove_image(&format!("{elsewhere}:1"))
            .await
            .unwrap();
    });
}
