//! Format 1.0 as its design documents publish it: an application's `dependencies` naming a
//! dependency file, empty `lifecycle` and `federation` placeholders, and a skeleton with every
//! top-level collection empty (no containers: valid, with a warning that there is nothing to
//! build). The cookbooks in `tests/fixtures/published/` are written from that description; each
//! is copied into a temp dir (so runs leave no state in the repository) and must validate, plan
//! and hash with exactly the output below.

use crate::common;

use std::path::Path;

use common::{repo_root, run_in};

fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo_root().join("tests/fixtures/published").join(name);
    for entry in walkdir::WalkDir::new(&from) {
        let entry = entry.unwrap();
        let dest = dir.path().join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    dir
}

fn check(dir: &Path, args: &[&str], code: i32, stdout: &str, stderr: &str) {
    let run = run_in(dir, args);
    run.assert_code(code);
    assert_eq!(run.stdout, stdout, "stdout\n{}", run.context());
    assert_eq!(run.stderr, stderr, "stderr\n{}", run.context());
}

#[test]
fn the_fastapi_service_validates_plans_and_hashes() {
    let dir = fixture("api-service");
    check(
        dir.path(),
        &["validate"],
        0,
        "",
        "cookbook.json: ok (format 1.0, 1 container in 1 wave, 1 application, 0 sites)\n",
    );
    check(
        dir.path(),
        &["plan"],
        0,
        "wave 1\n  api-container\n",
        "base python:3.11-slim (api-container): not pinned yet: apply pins it\n",
    );
    // `git-sha` tagging needs a commit only to tag: hashing does not (the dir is no repository).
    // Pinned: main.py, requirements.txt (sent and hashed as the source's files; the cookbook
    // file beside them is not) and the recipe with `"dependencies": "requirements.txt"`, under
    // hash_version 3 with its base not pinned yet (no lock).
    let expected =
        "1fc25eefe248cb7aa4b21a7efa0fb6971f10ad0e78f07ba516f8991ed2b4d2b7  api-container\n";
    check(
        dir.path(),
        &["hash"],
        0,
        expected,
        "note: the base images of api-container are not pinned yet: apply pins them (and their \
         hashes change then)\n",
    );
    let run = run_in(dir.path(), &["explain", "api-container"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "Dockerfile",
            "api-service/main.py",
            "api-service/requirements.txt"
        ]
    );
    let app = &doc["recipe"]["applications"][0];
    assert_eq!(app["dependencies"], "requirements.txt");
    assert_eq!(app["type"], "fastapi");
    assert_eq!(doc["recipe"]["ports"], serde_json::json!(["8000/tcp"]));

    // The dependency file is hashed like every other file of the source.
    std::fs::write(
        dir.path().join("requirements.txt"),
        "fastapi==0.111.0\nuvicorn==0.29.0\n",
    )
    .unwrap();
    let run = run_in(dir.path(), &["hash"]);
    run.assert_code(0);
    assert_ne!(run.stdout, expected);

    // And it must exist.
    std::fs::remove_file(dir.path().join("requirements.txt")).unwrap();
    check(
        dir.path(),
        &["validate"],
        2,
        "",
        "cookbook.json:9:23: error[path/missing]: /applications/api-service/dependencies: dependency file \"requirements.txt\" of source \".\" does not exist\n  help: the dependency file is named relative to the application's `source`\nerror: cookbook.json: 1 problem(s) found\n",
    );
}

#[test]
fn the_skeleton_validates_with_a_warning_plans_and_hashes_nothing() {
    let dir = fixture("skeleton");
    let warning = "cookbook.json:5:17: warning[model/nothing-to-build]: /containers: the cookbook has no containers: there is nothing to build\n  help: add a container under `containers` to build an image\n";
    check(
        dir.path(),
        &["validate"],
        0,
        "",
        &format!(
            "{warning}cookbook.json: ok (format 1.0, 0 containers in 0 waves, 0 applications, 0 sites)\n"
        ),
    );
    check(dir.path(), &["plan"], 0, "", warning);
    check(
        dir.path(),
        &["plan", "--format", "json"],
        0,
        "{\n  \"bases\": {},\n  \"containers\": {},\n  \"waves\": []\n}\n",
        warning,
    );
    check(dir.path(), &["hash"], 0, "", warning);
}

/// A non-empty `lifecycle` is still refused, pointing to the later format version.
#[test]
fn lifecycle_content_is_refused_pointing_to_the_next_version() {
    let dir = fixture("skeleton");
    let file = dir.path().join("cookbook.json");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"lifecycle\": {}", "\"lifecycle\": { \"stages\": [] }");
    std::fs::write(&file, text).unwrap();
    check(
        dir.path(),
        &["validate"],
        2,
        "",
        "cookbook.json:7:3: error[schema/not-in-version]: /lifecycle: `lifecycle` is only an empty placeholder in cookbook format 1.0\n  help: lifecycle hooks arrive with a later manifest_version; leave it empty (`\"lifecycle\": {}`) or remove it to use format 1.0\nerror: cookbook.json: 1 problem(s) found\n",
    );
}
