//! Layouts where cookbook's own files lie inside a build context: a Dockerfile container with
//! `context: "."` and an application with the default `source: "."`. Nothing cookbook reads or
//! writes as its own (the cookbook file, `cookbook.lock`, the state directory with its stat
//! cache, explain documents and context tars) may be hashed or sent, so hashes stay put across
//! `hash`, `apply` and `verify`, a second apply builds nothing, and editing `depends_on` or
//! `packaging.version` moves no hash.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{run_in, Run};
use serde_json::{json, Value};

/// The cookbook: both containers' contexts hold the cookbook's whole directory.
fn cookbook(registry: &str) -> Value {
    json!({
        "manifest_version": "1.0",
        "project": { "name": "layouts" },
        "applications": {
            "site": {
                "build_commands": ["test -f /srv/site/index.html"],
                "run_command": ["/bin/cat", "/srv/site/index.html"]
            }
        },
        "containers": {
            "whole": { "dockerfile": "Dockerfile", "context": "." },
            "app": {
                "base_image": "cookbook-test/busybox:latest",
                "applications": ["site"],
                "depends_on": ["whole"]
            }
        },
        "packaging": { "registry": registry }
    })
}

fn write_layout(dir: &Path, registry: &str) {
    fs::write(
        dir.join("Dockerfile"),
        "FROM cookbook-test/busybox:latest\nCOPY index.html /www/index.html\n",
    )
    .unwrap();
    fs::write(dir.join("index.html"), "<h1>layouts</h1>\n").unwrap();
    edit(dir, |v| *v = cookbook(registry));
}

fn edit(dir: &Path, f: impl FnOnce(&mut Value)) {
    let file = dir.join("cookbook.json");
    let mut v: Value = fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    f(&mut v);
    fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.context()))
}

/// `hash --format json` → container → input hash.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let run = run_in(dir, &["hash", "--format", "json"]);
    run.assert_code(0);
    let doc = json_of(&run);
    doc["input_hashes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The files `explain` says a container's hash covers.
fn explained_files(dir: &Path, container: &str) -> Vec<String> {
    let run = run_in(dir, &["explain", container]);
    run.assert_code(0);
    json_of(&run)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

/// Without the engine: cookbook's own files beside the sources never enter the listing, and
/// the hash neither moves from run to run nor with deploy-only edits.
#[test]
fn own_files_in_a_context_move_no_hash() {
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), "127.0.0.1:5000/layouts");
    let first = hashes(dir.path());
    assert_eq!(first.len(), 2);
    // The stat cache now exists in `.cookbook/`; a lock and its temporary sibling appear too.
    assert!(dir.path().join(".cookbook").is_dir());
    // (A valid lock: a malformed one is refused by every command that reads it.)
    let lock = "{\"lock_version\": 3, \"hash_version\": 2, \"project\": \"layouts\", \"containers\": {}}\n";
    fs::write(dir.path().join("cookbook.lock"), lock).unwrap();
    fs::write(dir.path().join(".cookbook.lock.Xy12ab"), "{}\n").unwrap();
    assert_eq!(hashes(dir.path()), first, "own files moved a hash");
    assert_eq!(
        explained_files(dir.path(), "whole"),
        ["Dockerfile", "index.html"]
    );
    assert_eq!(
        explained_files(dir.path(), "app"),
        ["Dockerfile", "site/Dockerfile", "site/index.html"]
    );

    // Deploy order and release naming are not part of any image.
    edit(dir.path(), |v| {
        v["containers"]["app"]["depends_on"] = json!([]);
        v["packaging"]["version"] = json!("2.0.0");
    });
    assert_eq!(
        hashes(dir.path()),
        first,
        "depends_on / version moved a hash"
    );

    // A file of the user's own does move it: the exclusion is of cookbook's files only.
    fs::write(dir.path().join("index.html"), "<h1>changed</h1>\n").unwrap();
    let changed = hashes(dir.path());
    assert_ne!(changed["whole"], first["whole"]);
    assert_ne!(changed["app"], first["app"]);
}

/// A state directory named by `$COOKBOOK_CACHE_DIR` inside the context is excluded as well.
#[test]
fn a_cache_dir_inside_the_context_is_excluded() {
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), "127.0.0.1:5000/layouts");
    let before = hashes(dir.path());
    let out = std::process::Command::new(common::bin())
        .args(["explain", "whole"])
        .current_dir(dir.path())
        .env_remove("COOKBOOK_FILE")
        .env("COOKBOOK_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("cache").is_dir());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files, ["Dockerfile", "index.html"]);
    // Without the variable, `cache/` is just a directory of the user's: it is hashed.
    let after = hashes(dir.path());
    assert_ne!(after["whole"], before["whole"]);
}

/// Against the real engine and registry: apply twice (the second builds nothing), and `hash`,
/// the lock and `verify` agree, before and after editing `depends_on` and `packaging.version`.
#[test]
fn apply_twice_builds_nothing_the_second_time() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let unique = common::unique("layouts-");
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), &format!("{registry}/{unique}"));

    let apply = |expect_built: u64| {
        let run = run_in(dir.path(), &["apply", "--format", "json"]);
        run.assert_code(0);
        let summary = json_of(&run);
        assert_eq!(summary["result"], "ok", "{}", run.context());
        assert_eq!(
            summary["built"],
            json!(expect_built),
            "built count\n{}",
            run.context()
        );
        summary
    };
    let first = apply(2);
    let hashed = hashes(dir.path());
    let lock: Value =
        serde_json::from_slice(&fs::read(dir.path().join("cookbook.lock")).unwrap()).unwrap();
    for (name, hash) in &hashed {
        assert_eq!(&first["containers"][name]["input_hash"], hash, "{name}");
        assert_eq!(&lock["containers"][name]["input_hash"], hash, "{name}");
    }

    let second = apply(0);
    assert_eq!(second["cached"], json!(2));
    assert_eq!(hashes(dir.path()), hashed);
    let verify = run_in(dir.path(), &["verify"]);
    verify.assert_code(0);

    edit(dir.path(), |v| {
        v["containers"]["app"]["depends_on"] = json!([]);
        v["packaging"]["version"] = json!("1.2.3");
    });
    assert_eq!(hashes(dir.path()), hashed);
    apply(0);
    run_in(dir.path(), &["verify"]).assert_code(0);
}
