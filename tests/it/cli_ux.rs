//! The command line a cargo, uv or compose user expects (issue 12): finding the cookbook, `-f`
//! only where it means something, JSON on failure, `diff` as a normal answer, terminal hygiene,
//! completions, the man page, `schema`, `clean`, and a sync state that serves one site.
//!
//! Each test runs the built binary and asserts the exact output where the output is the interface.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, copy_example, repo_root, run_in, Run};

/// Runs the binary with extra environment and, optionally, bytes on stdin.
fn run_with(cwd: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
    let started = std::time::Instant::now();
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("COOKBOOK_FILE")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start cookbook");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(bytes).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: cwd.to_path_buf(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_example("shop", dir.path());
    dir
}

const SHOP_OK: &str = "ok (format 1.1, 4 containers in 3 waves, 3 applications, 3 sites)\n";

#[test]
fn the_cookbook_is_found_upward_like_cargo_toml() {
    let dir = shop();
    let deep = dir.path().join("services/api");
    assert!(deep.is_dir());
    let run = run_in(&deep, &["validate"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("{}: {SHOP_OK}", dir.path().join("cookbook.json").display()),
        "{}",
        run.context()
    );
}

#[test]
fn file_flag_takes_a_directory_or_stdin() {
    let dir = shop();
    let run = run_in(
        &repo_root(),
        &["validate", "-f", dir.path().to_str().unwrap()],
    );
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("{}: {SHOP_OK}", dir.path().join("cookbook.json").display())
    );

    // From stdin, relative paths start from the current directory: hashing works as from the file.
    let bytes = std::fs::read(dir.path().join("cookbook.json")).unwrap();
    let run = run_with(dir.path(), &["validate", "-f", "-"], &[], Some(&bytes));
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("<stdin>: {SHOP_OK}"),
        "{}",
        run.context()
    );
    let from_stdin = run_with(dir.path(), &["hash", "-f", "-"], &[], Some(&bytes));
    from_stdin.assert_code(0);
    let from_file = run_in(dir.path(), &["hash"]);
    from_file.assert_code(0);
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert_eq!(from_file.stdout.lines().count(), 4);

    // An empty COOKBOOK_FILE counts as unset.
    let run = run_with(dir.path(), &["validate"], &[("COOKBOOK_FILE", "")], None);
    run.assert_code(0);
    assert_eq!(run.stderr, format!("cookbook.json: {SHOP_OK}"));
}

#[test]
fn no_cookbook_anywhere_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(dir.path(), &["plan"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: could not find cookbook.json in {} or any parent directory\n  help: pass the \
             cookbook with `-f PATH` (a file, a directory, or `-` for standard input), or create \
             one with `cookbook init`\n",
            dir.path().display()
        )
    );
}

#[test]
fn commands_that_read_no_cookbook_refuse_and_do_not_show_the_file_flag() {
    let run = run_in(
        &repo_root(),
        &["-f", "x.json", "sync", "--remote", "/nowhere"],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: `cookbook sync` does not read a cookbook file: -f/--file has no effect here\n  \
         help: sync takes the cookbook from the remote: name it with --path\n"
    );
    for (args, shows) in [
        (vec!["sync", "--help"], false),
        (vec!["schema", "--help"], false),
        (vec!["completions", "--help"], false),
        (vec!["validate", "--help"], true),
        (vec!["diff", "--help"], true),
    ] {
        let run = run_in(&repo_root(), &args);
        run.assert_code(0);
        assert_eq!(run.stdout.contains("--file"), shows, "{}", run.context());
    }
}

#[test]
fn every_argument_has_a_help_line() {
    for (args, line) in [
        (
            vec!["hash", "--help"],
            "  [CONTAINER]...  Containers to hash [default: all]",
        ),
        (
            vec!["explain", "--help"],
            "  <CONTAINER>  The container to explain",
        ),
        (vec!["context", "--help"], "  -o, --output <PATH>"),
        (vec!["hash", "--help"], "      --format <FORMAT>"),
        (vec!["hash", "--help"], "Output format"),
    ] {
        let run = run_in(&repo_root(), &args);
        run.assert_code(0);
        assert!(
            run.stdout.contains(line),
            "{line:?} missing\n{}",
            run.context()
        );
    }
}

#[test]
fn json_commands_print_a_json_error_document_when_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cookbook.json"),
        "{\n  \"manifest_version\": \"1.0\",\n  \"project\": {\"name\": \"x\"},\n  \"containers\": 3\n}\n",
    )
    .unwrap();
    for args in [
        vec!["validate", "--format", "json"],
        vec!["plan", "--format", "json"],
        vec!["hash", "--format", "json"],
        vec!["apply", "--format", "json"],
        vec!["verify", "--format", "json"],
    ] {
        let run = run_in(dir.path(), &args);
        run.assert_code(2);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", run.context()));
        assert_eq!(doc["result"], "error", "{}", run.context());
        assert_eq!(doc["exit_code"], 2);
        let first = &doc["errors"][0];
        assert_eq!(first["code"], "schema/type", "{}", run.context());
        assert_eq!(first["file"], "cookbook.json");
        assert_eq!(first["line"], 4);
        assert_eq!(first["column"], 17);
        assert_eq!(first["pointer"], "/containers");
        // The human-readable form still goes to stderr.
        assert!(run
            .stderr
            .contains("cookbook.json:4:17: error[schema/type]"));
    }
    let shop = shop();
    let run = run_in(shop.path(), &["hash", "--format", "json", "nope"]);
    run.assert_code(2);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["errors"][0]["code"], "usage");
    assert_eq!(doc["errors"][0]["message"], "unknown container `nope`");
}

#[test]
fn validate_json_on_success() {
    let dir = shop();
    let run = run_in(dir.path(), &["validate", "--format", "json"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "result": "ok", "file": "cookbook.json", "manifest_version": "1.1",
            "containers": 4, "waves": 3, "applications": 3, "sites": 3, "errors": []
        })
    );
    assert!(run.stderr.is_empty(), "{}", run.context());
}

#[test]
fn hash_names_each_container_once() {
    let dir = shop();
    let run = run_in(dir.path(), &["hash", "api", "api", "db"]);
    run.assert_code(0);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["api", "db"]);
}

#[test]
fn context_output_to_a_directory_a_missing_directory_and_a_terminal() {
    let dir = shop();
    let out = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &["context", "api", "-o", out.path().to_str().unwrap()],
    );
    run.assert_code(0);
    assert!(out.path().join("api.tar").is_file(), "{}", run.context());

    let missing = out.path().join("no/such/dir/api.tar");
    let run = run_in(
        dir.path(),
        &["context", "api", "-o", missing.to_str().unwrap()],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot write {}: the directory {} does not exist\n  help: create it first, or \
             name an existing directory\n",
            missing.display(),
            missing.parent().unwrap().display()
        )
    );

    // `script` gives the command a terminal for stdout.
    if Command::new("script").arg("--version").output().is_ok() {
        let cmd = format!("{} context api -o -; echo \"exit=$?\"", bin());
        let output = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("refusing to write a tar archive to a terminal"),
            "{text}"
        );
        assert!(text.contains("exit=2"), "{text}");
        assert!(
            !text.contains("ustar"),
            "a tar reached the terminal: {text}"
        );
    }
}

#[test]
fn diff_is_a_normal_answer_with_line_diffs_and_json() {
    let dir = shop();
    let before = run_in(dir.path(), &["explain", "api"]);
    before.assert_code(0);
    std::fs::write(dir.path().join("a.json"), &before.stdout).unwrap();
    // A run command change shows in the generated Dockerfile as a one-line difference.
    let text = std::fs::read_to_string(dir.path().join("cookbook.json")).unwrap();
    let changed = text.replacen(
        "\"/bin/sh\", \"/srv/api/serve.sh\"",
        "\"/bin/sh\", \"/srv/api/other.sh\"",
        1,
    );
    assert_ne!(text, changed, "the example changed: update this test");
    std::fs::write(dir.path().join("cookbook.json"), changed).unwrap();
    let after = run_in(dir.path(), &["explain", "api"]);
    after.assert_code(0);
    std::fs::write(dir.path().join("b.json"), &after.stdout).unwrap();

    let run = run_in(dir.path(), &["diff", "a.json", "b.json"]);
    run.assert_code(1);
    assert!(
        run.stderr.is_empty(),
        "no error line for a difference\n{}",
        run.context()
    );
    assert!(
        run.stdout.contains("    -CMD [\"/bin/sh\",\"/srv/api/serve.sh\"]\n    +CMD [\"/bin/sh\",\"/srv/api/other.sh\"]\n"),
        "{}",
        run.context()
    );

    let run = run_in(dir.path(), &["diff", "a.json", "a.json"]);
    run.assert_code(0);
    assert!(run.stdout.contains("identical"), "{}", run.context());

    let run = run_in(
        dir.path(),
        &["diff", "--format", "json", "a.json", "b.json"],
    );
    run.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["result"], "different");
    let changes = doc["containers"][0]["changes"].as_array().unwrap();
    let text = changes
        .iter()
        .find(|c| c["pointer"] == "/dockerfile_text")
        .unwrap_or_else(|| panic!("no Dockerfile change\n{}", run.stdout));
    assert_eq!(text["kind"], "recipe");
    assert!(text["unified_diff"].as_str().unwrap().ends_with(
        "-CMD [\"/bin/sh\",\"/srv/api/serve.sh\"]\n+CMD [\"/bin/sh\",\"/srv/api/other.sh\"]\n"
    ));
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn diff_against_a_git_revision() {
    let dir = shop();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-qm", "shop"]);
    let run = run_in(dir.path(), &["diff", "--rev", "HEAD"]);
    run.assert_code(0);
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.context());
    assert!(run.stdout.lines().all(|l| l.contains(": identical (")));

    let file = dir.path().join("services/api/serve.sh");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("# changed\n");
    std::fs::write(&file, text).unwrap();
    let run = run_in(dir.path(), &["diff", "--rev", "HEAD", "api", "web"]);
    run.assert_code(1);
    assert!(run.stderr.is_empty(), "{}", run.context());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("api: ") && lines[0].contains(" → "),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"  file api/serve.sh changed (content)"),
        "{}",
        run.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("web: identical")),
        "{}",
        run.stdout
    );
}

#[test]
fn completions_load_in_bash() {
    let script = format!(
        "source <({} completions bash) && complete -p cookbook",
        bin()
    );
    let output = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "complete -o bashdefault -o default -o nosort -F _cookbook cookbook\n"
    );
    // And they complete subcommands.
    let script = format!(
        "source <({} completions bash); COMP_WORDS=(cookbook va); COMP_CWORD=1; _cookbook cookbook va cookbook; echo \"${{COMPREPLY[@]}}\"",
        bin()
    );
    let output = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "validate\n");
}

#[test]
fn man_page_and_schema() {
    let run = run_in(&repo_root(), &["man"]);
    run.assert_code(0);
    assert!(run.stdout.contains(".TH cookbook 1"), "{}", run.context());
    assert!(run.stdout.contains("validate"));

    let run = run_in(&repo_root(), &["schema"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(repo_root().join("schemas/cookbook-1.1.schema.json")).unwrap()
    );
    let run = run_in(&repo_root(), &["schema", "--version", "1.0"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(repo_root().join("schemas/cookbook-1.0.schema.json")).unwrap()
    );
    let run = run_in(&repo_root(), &["schema", "--version", "0.9"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown format version `0.9`\n  help: versions: 1.0, 1.1\n"
    );
}

#[test]
fn clean_removes_caches_and_keeps_the_sync_state() {
    let dir = shop();
    let cache = tempfile::tempdir().unwrap();
    let env = [("COOKBOOK_CACHE_DIR", cache.path().to_str().unwrap())];
    run_with(dir.path(), &["hash"], &env, None).assert_code(0);
    std::fs::create_dir_all(cache.path().join("sync/checkouts")).unwrap();
    let caches: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("stat-cache"))
        .collect();
    assert_eq!(caches.len(), 1, "{caches:?}");

    let run = run_with(dir.path(), &["clean", "--dry-run"], &env, None);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("would remove {}\n", cache.path().join(&caches[0]).display())
    );
    assert!(cache.path().join(&caches[0]).exists());

    let run = run_with(dir.path(), &["clean"], &env, None);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("removed {}\n", cache.path().join(&caches[0]).display())
    );
    assert!(!cache.path().join(&caches[0]).exists());
    assert!(cache.path().join("sync/checkouts").is_dir());
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cookbook.json"), "{").unwrap();
    let plain = run_in(dir.path(), &["validate"]);
    plain.assert_code(2);
    assert!(!plain.stderr.contains('\x1b'), "not a terminal: no colour");
    let forced = run_in(dir.path(), &["--color", "always", "validate"]);
    forced.assert_code(2);
    assert!(
        forced
            .stderr
            .contains("\x1b[1m\x1b[31merror[syntax/json]\x1b[0m"),
        "{:?}",
        forced.stderr
    );
    let env_forced = run_with(dir.path(), &["validate"], &[("CLICOLOR_FORCE", "1")], None);
    assert!(
        env_forced.stderr.contains('\x1b'),
        "{:?}",
        env_forced.stderr
    );
    let never = run_with(
        dir.path(),
        &["--color", "never", "validate"],
        &[("CLICOLOR_FORCE", "1")],
        None,
    );
    assert_eq!(never.stderr, plain.stderr);
    let no_color = run_with(dir.path(), &["validate"], &[("NO_COLOR", "1")], None);
    assert_eq!(no_color.stderr, plain.stderr);
}

#[test]
fn quiet_keeps_errors_and_results_only() {
    let dir = shop();
    let run = run_in(dir.path(), &["--quiet", "validate"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let run = run_in(dir.path(), &["-q", "plan"]);
    run.assert_code(0);
    assert!(run.stdout.starts_with("wave 1\n"));
    let run = run_in(dir.path(), &["-q", "explain", "nope"]);
    run.assert_code(2);
    assert!(run.stderr.starts_with("error: unknown container `nope`"));
}

#[test]
fn a_sync_state_serves_one_site() {
    let remote = shop();
    git(remote.path(), &["init", "-q", "-b", "main"]);
    git(remote.path(), &["add", "."]);
    git(remote.path(), &["commit", "-qm", "shop"]);
    let site = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    let run = run_in(site.path(), &["sync", "--remote", url, "--site", "edge"]);
    run.assert_code(0);
    let run = run_in(site.path(), &["sync", "--remote", url, "--site", "central"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: the sync state in .cookbook/sync was made for site `edge`, not site `central`\n  \
         help: each site keeps its own state: pass `--state` with a new directory for site \
         `central` (e.g. --state .cookbook/sync-central), or the same --site as before\n"
    );
    let run = run_in(
        site.path(),
        &[
            "sync",
            "--remote",
            url,
            "--site",
            "central",
            "--state",
            ".cookbook/sync-central",
        ],
    );
    run.assert_code(0);
}

/// Every JSON document these tests produce matches the published output schema.
#[test]
fn json_outputs_match_the_output_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/cookbook-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the output schema compiles");
    let dir = shop();
    let explain = run_in(dir.path(), &["explain", "api"]);
    std::fs::write(dir.path().join("a.json"), &explain.stdout).unwrap();
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("cookbook.json"), "[1]").unwrap();
    for (cwd, args) in [
        (dir.path(), vec!["validate", "--format", "json"]),
        (dir.path(), vec!["hash", "--format", "json"]),
        (dir.path(), vec!["hash", "--format", "json", "nope"]),
        (
            dir.path(),
            vec!["diff", "--format", "json", "a.json", "a.json"],
        ),
        (
            dir.path(),
            vec!["diff", "--format", "json", "a.json", "missing.json"],
        ),
        (bad.path(), vec!["validate", "--format", "json"]),
        (bad.path(), vec!["plan", "--format", "json"]),
        (
            dir.path(),
            vec!["context", "api", "-o", "api.tar", "--format", "json"],
        ),
        (
            dir.path(),
            vec!["context", "api", "-o", "-", "--format", "json"],
        ),
        (
            dir.path(),
            vec!["sync", "status", "--state", "nowhere", "--format", "json"],
        ),
    ] {
        let run = run_in(cwd, &args);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.context()));
        let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{problems:?}\n{}", run.context());
    }
}

#[test]
fn verify_without_a_lock_says_to_apply_first() {
    let dir = shop();
    let run = run_in(dir.path(), &["verify"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: no lock file at cookbook.lock: run `cookbook apply` first, it builds the images \
         and writes the lock\n"
    );
}

/// Issue 12, item 7: an application no container uses is a warning (stderr, located, exit 0),
/// from `validate` and from every command that loads the cookbook.
#[test]
fn an_unused_application_is_a_located_warning_not_a_failure() {
    let dir = shop();
    let file = dir.path().join("cookbook.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["applications"]["spare"] = serde_json::json!({ "source": "services/api" });
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let warning = "cookbook.json:21:5: warning[model/unused-application]: /applications/spare: \
                   application `spare` is used by no container: it is never built\n  help: list \
                   it in a container's `applications` (\"applications\": [\"spare\"]), or remove it\n";
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        format!("{warning}cookbook.json: ok (format 1.1, 4 containers in 3 waves, 4 applications, 3 sites)\n")
    );
    let run = run_in(dir.path(), &["plan"]);
    run.assert_code(0);
    // Then the plan's note on its base image (issue 11: pinned in the lock by the first apply).
    assert_eq!(
        run.stderr,
        format!("{warning}base cookbook-test/busybox:latest (db, api, web): not pinned yet: apply pins it\n")
    );
    // apply reports it too, before it starts (here it then stops: no such registry to push to).
    let run = run_in(dir.path(), &["apply", "--dry-run", "--no-push", "nope"]);
    run.assert_code(2);
    assert!(run.stderr.starts_with(warning), "{}", run.context());
}

/// A container label in cookbook's own `dev.cookbook.` namespace is overridden by apply's:
/// a warning, not a failure.
#[test]
fn a_label_in_cookbooks_namespace_is_a_warning() {
    let dir = shop();
    let file = dir.path().join("cookbook.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["containers"]["web"]["labels"] = serde_json::json!({ "dev.cookbook.project": "other" });
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let run = run_in(dir.path(), &["plan"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        "cookbook.json:116:9: warning[model/label-overridden]: \
         /containers/web/labels/dev.cookbook.project: label `dev.cookbook.project` has no effect: \
         cookbook sets it on every image it builds\n  help: use a key of your own namespace\n\
         base cookbook-test/busybox:latest (db, api, web): not pinned yet: apply pins it\n"
    );
    // Every key apply stamps draws it (the model keeps its own list: it may not import `image`).
    for key in [
        cookbook::image::LABEL_INPUT_HASH,
        cookbook::image::LABEL_PROJECT,
        cookbook::image::LABEL_CONTAINER,
    ] {
        v["containers"]["web"]["labels"] = serde_json::json!({ key: "x" });
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let run = run_in(dir.path(), &["plan"]);
        run.assert_code(0);
        assert!(
            run.stderr.contains("warning[model/label-overridden]"),
            "{}",
            run.context()
        );
    }
}

/// Library messages in the user's terms, with what the system said underneath as a `caused by`
/// line — never git2's class/code numbers, hyper's "legacy client", or a position said twice.
#[test]
fn errors_say_what_happened_and_keep_the_cause() {
    let dir = shop();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("tcp://127.0.0.1:{port}");
    let run = run_with(
        dir.path(),
        &["apply", "--no-push"],
        &[("DOCKER_HOST", &host)],
        None,
    );
    run.assert_code(3);
    assert!(
        run.stderr.ends_with(&format!(
            "error: cannot connect to the Docker engine at {host}: is it running, and is \
             DOCKER_HOST right?\n  caused by: Connection refused (os error 111)\n"
        )),
        "{}",
        run.context()
    );

    // Not a git checkout (the temp copy has no .git above it).
    let run = run_in(dir.path(), &["verify", "--rev", "HEAD"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        ". is not in a git checkout (no .git here or in a parent directory)\n  caused by: could \
         not find repository at '.'\n"
            .replace(". is", "error: . is"),
        "{}",
        run.context()
    );

    // A truncated lock: located once, 1-based.
    std::fs::write(dir.path().join("cookbook.lock"), "{\"lock_version\": 2,\n").unwrap();
    let run = run_in(dir.path(), &["verify"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: cookbook.lock:2:1: not a valid lock file: EOF while parsing a value\n"
    );
}

/// `sync --format json`: one document per round on stdout, the log lines on stderr; a refused
/// revision is a document too (exit 1), with its located errors.
#[test]
fn sync_rounds_as_json() {
    let remote = shop();
    git(remote.path(), &["init", "-q", "-b", "main"]);
    git(remote.path(), &["add", "."]);
    git(remote.path(), &["commit", "-qm", "shop"]);
    let site = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/cookbook-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the output schema compiles");
    let sync = |expect: i32| {
        let run = run_in(site.path(), &["sync", "--remote", url, "--format", "json"]);
        run.assert_code(expect);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("one JSON document ({e})\n{}", run.context()));
        let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{problems:?}\n{}", run.context());
        doc
    };
    let first = sync(0);
    assert_eq!(first["outcome"], "taken");
    assert_eq!(first["result"], "ok");
    assert_eq!(first["previous"], serde_json::Value::Null);
    let again = sync(0);
    assert_eq!(again["outcome"], "up_to_date");
    assert_eq!(again["current"], first["current"]);

    std::fs::write(
        remote.path().join("cookbook.json"),
        "{\"manifest_version\": 3}\n",
    )
    .unwrap();
    git(remote.path(), &["commit", "-qam", "broken"]);
    let refused = sync(1);
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["result"], "failed");
    assert_eq!(refused["current"], first["current"]);
    let errors = refused["refusal"]["errors"].as_array().unwrap();
    assert!(
        errors[0].as_str().unwrap().starts_with("cookbook.json@"),
        "{refused}"
    );
}
