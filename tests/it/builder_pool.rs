//! A pool of builders (issue 24, "A pool of builders"): two private `dockerd`s of the test's own
//! (`common::dockerd::ExtraEngine`, each given the base image) and the shared registry.
//!
//! - 16 containers with a slow RUN step (4 FROM the base, 12 FROM those) on a pool of both:
//!   each engine builds some (the report's builders and the engines' own images say so), and
//!   the lock's digests equal a one-engine build's of the same cookbook (another repository,
//!   so nothing is cached; the input hashes are equal, so the digests must be);
//! - the same with one engine stopped mid-run, from another thread, once its first build
//!   started (images the engines have not built before, so the builds are real, not cached
//!   steps): its builds finish on the other, exit 0, the digests of a one-engine build;
//! - `packaging.builders` in a 1.1 cookbook (a builder that does not answer left out with a
//!   warning), `--builder` overriding it, `apply --dry-run` showing the assignment;
//! - what is refused (exit 2) and what no builder answering comes to (exit 3).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use crate::common::dockerd::{ExtraEngine, Options};

const BASE: &str = "cookbook-test/busybox:latest";

/// 16 containers: `r0`…`r3` FROM the base, `c4`…`c15` FROM `r(i % 4)`; each runs `sleep 1`.
/// `salt` goes into every application's file: another salt, other images, which no engine's
/// build cache holds.
fn write_cookbook(dir: &Path, registry: &str, builders: Option<Value>, salt: &str) {
    let mut applications = serde_json::Map::new();
    let mut containers = serde_json::Map::new();
    for i in 0..16 {
        let app = format!("a{i}");
        let src = dir.join("apps").join(&app);
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join(format!("{app}.txt")), format!("{i} {salt}\n")).unwrap();
        applications.insert(
            app.clone(),
            json!({
                "source": format!("apps/{app}"),
                "build_commands": ["sleep 1", format!("test -f {app}.txt")],
                "run_command": ["/bin/cat", format!("{app}.txt")]
            }),
        );
        let (name, base) = if i < 4 {
            (format!("r{i}"), BASE.to_owned())
        } else {
            (format!("c{i}"), format!("container:r{}", i % 4))
        };
        containers.insert(name, json!({ "base_image": base, "applications": [app] }));
    }
    let mut packaging = json!({ "registry": registry });
    if let Some(builders) = builders {
        packaging["builders"] = builders;
    }
    let cookbook = json!({
        "manifest_version": "1.1",
        "project": { "name": "pool" },
        "applications": applications,
        "containers": containers,
        "packaging": packaging
    });
    fs::write(
        dir.join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook).unwrap(),
    )
    .unwrap();
}

/// A fresh cookbook directory publishing to a repository namespace of its own.
fn fresh(registry: &str, tag: &str, builders: Option<Value>) -> tempfile::TempDir {
    salted(registry, tag, builders, "")
}

/// [`fresh`], its images made other by `salt`.
fn salted(registry: &str, tag: &str, builders: Option<Value>, salt: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("{registry}/{}", common::unique(&format!("{tag}-")));
    write_cookbook(dir.path(), &repo, builders, salt);
    dir
}

/// Two extra engines, started at once, each holding the base image.
fn two_engines() -> (ExtraEngine, ExtraEngine) {
    let start = || {
        std::thread::spawn(|| {
            let engine = ExtraEngine::start(Options::default());
            engine.load_from_main(BASE);
            engine
        })
    };
    let (a, b) = (start(), start());
    (a.join().unwrap(), b.join().unwrap())
}

fn apply(dir: &Path, extra: &[&str]) -> common::Run {
    let mut args = vec!["apply", "--format", "json", "--jobs", "2"];
    args.extend_from_slice(extra);
    common::run_in_env(dir, &args, &[("CI", "true")])
}

fn report(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

/// Each container's builder in an apply's report.
fn builders_of(report: &Value) -> BTreeMap<String, Option<String>> {
    report["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| (name.clone(), c["builder"].as_str().map(str::to_owned)))
        .collect()
}

/// Each container's (input hash, digest) in the lock.
fn lock_digests(dir: &Path) -> BTreeMap<String, (String, String)> {
    let lock: Value =
        serde_json::from_slice(&fs::read(dir.join("cookbook.lock")).unwrap()).unwrap();
    lock["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| {
            let field = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("{k}: {e}"))
                    .to_owned()
            };
            (name.clone(), (field("input_hash"), field("digest")))
        })
        .collect()
}

/// The images an engine built in this run: its image ids other than the base's.
fn built_images(engine: &ExtraEngine, before: &[String]) -> usize {
    engine
        .image_ids()
        .iter()
        .filter(|id| !before.contains(id))
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn a_pool_of_two_builds_on_both_survives_losing_one_and_equals_one_engine() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let (a, b) = two_engines();
    let (a_before, b_before) = (a.image_ids(), b.image_ids());

    // One engine: the services' own.
    let single = fresh(&registry, "pool-one", None);
    let run = apply(single.path(), &[]);
    run.assert_code(0);
    assert!(
        builders_of(&report(&run)).values().all(Option::is_none),
        "no pool, no builder named\n{}",
        run.context()
    );
    let expected = lock_digests(single.path());
    assert_eq!(expected.len(), 16);
    // The images of the run that loses an engine: new to the pool's engines, so that the
    // engine stops in the middle of real builds (not of cached steps).
    let salt = common::unique("salt-");
    let single_salted = salted(&registry, "pool-one-salted", None, &salt);
    apply(single_salted.path(), &[]).assert_code(0);
    let expected_salted = lock_digests(single_salted.path());

    // A pool of both.
    let pooled = fresh(&registry, "pool-two", None);
    let run = apply(pooled.path(), &["--builder", &a.unix, "--builder", &b.unix]);
    run.assert_code(0);
    let doc = report(&run);
    assert_eq!(doc["built"], 16, "{}", run.context());
    let by = builders_of(&doc);
    let used: BTreeSet<&str> = by.values().flatten().map(String::as_str).collect();
    assert_eq!(
        used,
        BTreeSet::from([a.unix.as_str(), b.unix.as_str()]),
        "every build names its builder, and both built\n{}",
        run.context()
    );
    assert!(by.values().all(Option::is_some), "{}", run.context());
    assert!(
        run.stderr.contains(&format!("on {}", a.unix))
            && run.stderr.contains(&format!("on {}", b.unix)),
        "the progress says where each builds\n{}",
        run.context()
    );
    assert!(built_images(&a, &a_before) > 0, "engine a built nothing");
    assert!(built_images(&b, &b_before) > 0, "engine b built nothing");
    assert_eq!(
        lock_digests(pooled.path()),
        expected,
        "a pool builds what one engine builds"
    );

    // Again, and one engine stops once its first build has started.
    let stopped = salted(&registry, "pool-stop", None, &salt);
    let b = Arc::new(Mutex::new(b));
    let b_host = b.lock().unwrap().unix.clone();
    let mut child = Command::new(common::bin())
        .args(["apply", "--format", "json", "--jobs", "2"])
        .args(["--builder", &a.unix, "--builder", &b_host])
        .current_dir(stopped.path())
        .env("CI", "true")
        .env_remove("COOKBOOK_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let stderr = child.stderr.take().unwrap();
    let watcher = {
        let (b, on_b) = (Arc::clone(&b), format!("on {b_host}"));
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut stopper = None;
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                if stopper.is_none() && line.contains("building") && line.ends_with(&on_b) {
                    let b = Arc::clone(&b);
                    stopper = Some(std::thread::spawn(move || {
                        // Inside its `sleep 1`.
                        std::thread::sleep(Duration::from_millis(300));
                        b.lock().unwrap().stop();
                    }));
                }
                lines.push(line);
            }
            if let Some(s) = stopper {
                s.join().unwrap();
            }
            lines.join("\n")
        })
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "apply hangs");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), watcher.join().unwrap());
    let context = format!("exit {status:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(status.code(), Some(0), "{context}");
    assert!(
        stderr.contains(&format!("warning: builder {b_host} does not answer")),
        "the stopped builder is named\n{context}"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["built"], 16, "{context}");
    assert_eq!(lock_digests(stopped.path()), expected_salted, "{context}");
    // Builds were running on the stopped engine, and each of those that did not finish there
    // finished on the other.
    let mut moved = 0;
    for (name, builder) in builders_of(&doc) {
        let started_on_b = stderr
            .lines()
            .any(|l| l.starts_with(&format!("[{name}] building")) && l.ends_with(&b_host));
        if started_on_b && builder.as_deref() != Some(b_host.as_str()) {
            assert_eq!(
                builder.as_deref(),
                Some(a.unix.as_str()),
                "{name}\n{context}"
            );
            moved += 1;
        }
    }
    assert!(
        moved >= 1,
        "a build started on the stopped engine finished on the other\n{context}"
    );
}

#[test]
fn packaging_builders_a_silent_one_left_out_dry_run_and_builder_overriding() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let (a, b) = two_engines();
    let silent = format!("unix:///tmp/{}.sock", common::unique("no-engine-"));
    let builders = json!([
        { "name": "left", "host": a.unix },
        { "name": "right", "host": b.unix },
        { "name": "gone", "host": silent }
    ]);
    let dir = fresh(&registry, "pool-spec", Some(builders));

    // The dry run: every build on a builder that answers, children beside their parents.
    let run = common::run_in_env(
        dir.path(),
        &["apply", "--dry-run", "--format", "json", "--jobs", "2"],
        &[("CI", "true")],
    );
    run.assert_code(0);
    let plan = report(&run);
    let planned = builders_of(&plan);
    assert!(
        planned
            .values()
            .all(|b| matches!(b.as_deref(), Some("left" | "right"))),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains("warning: builder gone does not answer"),
        "{}",
        run.context()
    );
    let text = common::run_in_env(
        dir.path(),
        &["apply", "--dry-run", "--jobs", "2"],
        &[("CI", "true")],
    );
    text.assert_code(0);
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("build   c4 ") && l.ends_with(" on left")),
        "{}",
        text.context()
    );

    let run = apply(dir.path(), &[]);
    run.assert_code(0);
    let by = builders_of(&report(&run));
    let used: BTreeSet<&str> = by.values().flatten().map(String::as_str).collect();
    assert_eq!(used, BTreeSet::from(["left", "right"]), "{}", run.context());
    assert!(
        run.stderr.contains("warning: builder gone does not answer"),
        "{}",
        run.context()
    );
    // Cached now: no builder.
    let again = apply(dir.path(), &[]);
    again.assert_code(0);
    assert!(
        builders_of(&report(&again)).values().all(Option::is_none),
        "{}",
        again.context()
    );

    // `--builder` overrides packaging.builders (another repository: nothing cached).
    let other = fresh(
        &registry,
        "pool-override",
        Some(json!([{ "name": "left", "host": a.unix }, { "name": "right", "host": b.unix }])),
    );
    let run = apply(other.path(), &["--builder", &b.unix]);
    run.assert_code(0);
    let by = builders_of(&report(&run));
    assert!(
        by.values().all(|x| x.as_deref() == Some(b.unix.as_str())),
        "{}",
        run.context()
    );
}

#[test]
fn a_pool_is_refused_without_a_push_or_with_a_name_twice_and_none_answering_is_exit_3() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let nowhere = |n: &str| format!("unix:///tmp/{}.sock", common::unique(n));
    let (x, y) = (nowhere("x-"), nowhere("y-"));
    let dir = fresh(&registry, "pool-refused", None);

    let run = apply(dir.path(), &["--no-push", "--builder", &x]);
    run.assert_code(2);
    assert!(
        run.stdout.contains("--builder needs a run that pushes"),
        "{}",
        run.context()
    );

    let run = apply(dir.path(), &["--builder", &x, "--builder", &x]);
    run.assert_code(2);
    assert!(run.stdout.contains("named twice"), "{}", run.context());

    // No builder answers, and every container needs an engine (here, first, to pin the base
    // image that only the engines hold).
    let run = apply(dir.path(), &["--builder", &x, "--builder", &y]);
    run.assert_code(3);
    for host in [&x, &y] {
        let warning = format!("warning: builder {host} does not answer");
        assert!(run.stderr.contains(&warning), "{}", run.context());
    }
    assert!(
        run.stderr
            .contains("none of the pool's 2 builder(s) answers"),
        "{}",
        run.context()
    );

    // With --no-push, the cookbook's builders are set aside (with a warning): the one engine.
    let spec = json!([{ "name": "x", "host": x }, { "name": "y", "host": y }]);
    write_cookbook(dir.path(), &format!("{registry}/unused"), Some(spec), "");
    let run = common::run_in_env(
        dir.path(),
        &["apply", "--no-push", "--dry-run", "--format", "json"],
        &[("CI", "true")],
    );
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("warning: --no-push builds on one engine, not on the 2 builder(s)"),
        "{}",
        run.context()
    );
    assert!(builders_of(&report(&run)).values().all(Option::is_none));

    // Two builders of one name in the cookbook: located.
    let twice = json!([{ "name": "same", "host": x }, { "name": "same", "host": y }]);
    write_cookbook(dir.path(), &format!("{registry}/unused"), Some(twice), "");
    let run = common::run_in(dir.path(), &["validate", "--format", "json"]);
    run.assert_code(2);
    assert!(
        run.stdout.contains("model/duplicate-builder"),
        "{}",
        run.context()
    );
    assert!(
        run.stdout.contains("/packaging/builders/1/name"),
        "{}",
        run.context()
    );
}
