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

/// A cookbook whose application `app` has its source in `dist/app`, under a git-ignored
/// `dist/`, and whose Dockerfile container `site` has the context `dist` itself.
fn ignored_context_project(root: &Path) {
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
    put(root, ".gitignore", "dist/\n");
    put(root, "dist/app/index.html", "<p>built</p>\n");
    put(root, "dist/app/js/main.js", "x\n");
    put(
        root,
        "dist/Dockerfile",
        &format!("FROM {base}\nCOPY . /srv\n"),
    );
    put(
        root,
        "cookbook.json",
        &format!(
            r#"{{"manifest_version": "1.0", "project": {{"name": "ignored"}},
  "applications": {{"app": {{"source": "dist/app"}}}},
  "containers": {{
    "static": {{"base_image": "{base}", "applications": ["app"]}},
    "site": {{"dockerfile": "dist/Dockerfile", "context": "dist"}}}}}}"#
        ),
    );
}

#[test]
fn a_context_inside_an_ignored_directory_warns_as_a_whole_and_strict_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ignored_context_project(root);
    repository(root);

    let hash = run_in(root, &["hash"]);
    hash.assert_code(0);
    for needle in [
        "warning[context/git-ignored]: /containers/static",
        "its context (dist/app) is ignored by git: its 2 files",
        "`dist/app` is ignored by git",
        "build it in CI before apply, or stop ignoring it",
        "its context (dist) is ignored by git: its 2 files",
    ] {
        assert!(
            hash.stderr.contains(needle),
            "no `{needle}`\n{}",
            hash.context()
        );
    }
    let doc = crate::common::deploy::json_answer(
        run_in(root, &["hash", "--format", "json"]).assert_code(0),
    );
    let found = doc["git_ignored"].as_array().expect("git_ignored").clone();
    let site = found
        .iter()
        .find(|f| f["container"] == "site")
        .expect("site");
    assert_eq!(site["directory"], "dist", "{doc}");
    assert_eq!(site["context_ignored"], true, "{doc}");
    assert_eq!(
        site["paths"],
        serde_json::json!([{"path": "./", "files": 2}]),
        "{doc}"
    );
    let app = found
        .iter()
        .find(|f| f["container"] == "static")
        .expect("static");
    assert_eq!(app["directory"], "dist/app", "{doc}");
    assert_eq!(app["files"], 2, "{doc}");

    // `dist`'s 2 files: its Dockerfile is what Docker always sends, not counted.
    for args in [&["hash", "--strict"][..], &["plan", "--strict"]] {
        let strict = run_in_env(root, args, &[("DOCKER_HOST", "unix:///nonexistent.sock")]);
        strict.assert_code(2);
        assert!(
            strict.stderr.contains("error[context/git-ignored]")
                && strict.stderr.contains("`dist/app` is ignored by git"),
            "{}",
            strict.context()
        );
    }
    // A .dockerignore line cannot help; stopping the ignore does.
    put(root, ".gitignore", "\n");
    quiet(run_in(root, &["hash", "--strict"]).assert_code(0));
}

#[test]
fn a_stat_dirty_index_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, "services/web");
    put(root, "services/web/app/views.py", "v\n");
    repository(root);
    git(root, &["add", "."]);
    git(
        root,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "c",
        ],
    );
    let before = run_in(root, &["hash", "--format", "json"]);
    let before = crate::common::deploy::json_answer(before.assert_code(0));
    // Every tracked file's stat changes (a later mtime): the index no longer matches them.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
    for path in [
        "cookbook.json",
        ".gitignore",
        "services/web/Dockerfile",
        "services/web/app/main.py",
        "services/web/app/views.py",
    ] {
        let file = std::fs::File::options()
            .append(true)
            .open(root.join(path))
            .unwrap();
        file.set_modified(later).unwrap();
    }
    let after = run_in(root, &["hash", "--format", "json"]);
    let after = crate::common::deploy::json_answer(after.assert_code(0));
    assert_eq!(
        before["git_ignored"], after["git_ignored"],
        "{before}\n{after}"
    );
    assert_eq!(after["git_ignored"][0]["files"], 1235, "{after}");
    warned(
        run_in(root, &["hash"]).assert_code(0),
        "services/web/.dockerignore",
    );
}
