//! Git-ignored files in a build context (issue 26): `hash`, `plan` and `apply` warn, naming the
//! paths and the fix, when a context holds files git ignores that `.dockerignore` does not
//! exclude; `--strict` makes it exit 2; nothing outside a repository. Real repositories made
//! with the `git` CLI in temporary directories.

use std::path::Path;
use std::process::Command;

use crate::common::{run_in, run_in_env, test_registry, Run};

fn put(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// A project whose `services/web` context (or `.` with `at_root`) holds a git-ignored
/// `node_modules/` of 1,234 files and a git-ignored `app/cache.pyc`.
fn project(root: &Path, context: &str) {
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
    let dir = if context == "." {
        root.to_path_buf()
    } else {
        root.join(context)
    };
    put(&dir, "Dockerfile", &format!("FROM {base}\nCOPY . /app\n"));
    put(&dir, "app/main.py", "print('hi')\n");
    put(&dir, "app/cache.pyc", "compiled\n");
    for i in 0..1234 {
        put(&dir, &format!("node_modules/left-pad/f{i}.js"), "x\n");
    }
    put(root, ".gitignore", "node_modules/\n*.pyc\n");
    put(
        root,
        "cookbook.json",
        &format!(
            r#"{{"manifest_version": "1.0", "project": {{"name": "ignored"}},
  "containers": {{"web": {{"dockerfile": "{}Dockerfile", "context": "{context}"}}}}}}"#,
            if context == "." {
                String::new()
            } else {
                format!("{context}/")
            }
        ),
    );
}

fn repository(root: &Path) {
    git(root, &["init", "-q"]);
}

fn warned(run: &Run, dockerignore: &str) {
    let fix = format!("add \"app/cache.pyc\", \"node_modules/\" to {dockerignore}");
    assert!(
        run.stderr.contains("warning[context/git-ignored]")
            && run.stderr.contains("node_modules/ (1,234 files)")
            && run.stderr.contains(&fix),
        "no warning naming node_modules/ and the fix\n{}",
        run.context()
    );
}

fn quiet(run: &Run) {
    assert!(
        !run.stderr.contains("git-ignored"),
        "a warning where git ignores nothing in the context\n{}",
        run.context()
    );
}

#[test]
fn a_git_ignored_node_modules_warns_with_its_fix_and_strict_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, "services/web");
    repository(root);

    warned(
        run_in(root, &["hash"]).assert_code(0),
        "services/web/.dockerignore",
    );
    warned(
        run_in(root, &["plan"]).assert_code(0),
        "services/web/.dockerignore",
    );
    let json = run_in(root, &["hash", "--format", "json"]);
    let doc = crate::common::deploy::json_answer(json.assert_code(0));
    let found = &doc["git_ignored"][0];
    assert_eq!(found["container"], "web", "{doc}");
    assert_eq!(found["directory"], "services/web", "{doc}");
    assert_eq!(found["files"], 1235, "{doc}");
    assert_eq!(
        found["paths"][1],
        serde_json::json!({"path": "node_modules/", "files": 1234}),
        "{doc}"
    );

    // --strict: exit 2, a located error naming the container, the paths and the fix, before
    // anything is built (no engine is asked: it fails the same without one).
    for args in [
        &["hash", "--strict"][..],
        &["plan", "--strict"],
        &["apply", "--strict", "--no-push"],
        &["apply", "--dry-run", "--strict", "--no-push"],
    ] {
        let strict = run_in_env(root, args, &[("DOCKER_HOST", "unix:///nonexistent.sock")]);
        strict.assert_code(2);
        assert!(
            strict.stderr.contains("cookbook.json:2:")
                && strict
                    .stderr
                    .contains("error[context/git-ignored]: /containers/web")
                && strict.stderr.contains("node_modules/ (1,234 files)")
                && strict
                    .stderr
                    .contains("help: add \"app/cache.pyc\", \"node_modules/\""),
            "{}",
            strict.context()
        );
    }

    put(
        root,
        "services/web/.dockerignore",
        "node_modules/\napp/cache.pyc\n",
    );
    quiet(run_in(root, &["hash", "--strict"]).assert_code(0));
    quiet(run_in(root, &["plan", "--strict"]).assert_code(0));
}

#[test]
fn a_cookbook_at_the_repository_root_with_its_context_there_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, ".");
    repository(root);
    warned(run_in(root, &["hash"]).assert_code(0), ".dockerignore");
    run_in(root, &["hash", "--strict"]).assert_code(2);
}

#[test]
fn outside_any_repository_nothing_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "services/web");
    quiet(run_in(dir.path(), &["hash", "--strict"]).assert_code(0));
    quiet(run_in(dir.path(), &["plan", "--strict"]).assert_code(0));
}

#[test]
fn a_force_added_file_is_tracked_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, "services/web");
    put(root, "services/web/.dockerignore", "node_modules/\n");
    repository(root);
    git(root, &["add", "-f", "services/web/app/cache.pyc"]);
    quiet(run_in(root, &["hash", "--strict"]).assert_code(0));
}

#[test]
fn apply_warns_about_git_ignored_files_in_its_dry_run_and_its_run() {
    if test_registry().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, "services/web");
    repository(root);
    let dry = run_in(
        root,
        &["apply", "--dry-run", "--no-push", "--format", "json"],
    );
    warned(dry.assert_code(0), "services/web/.dockerignore");
    let doc = crate::common::deploy::json_answer(&dry);
    assert_eq!(doc["git_ignored"][0]["container"], "web", "{doc}");
}
