//! The command line itself: help documents the exit codes, the example cookbooks validate, and
//! arguments that make no sense are invalid input (exit code 2).

use crate::common;

use common::{copy_example, repo_root, run_in};

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  the work failed (a build, a push, a verification)
  2  invalid input (the cookbook, an argument, a path)
  3  an external service (Docker engine, registry, git remote) is unreachable
";

#[test]
fn help_lists_the_exit_codes() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["validate", "--help"],
        vec!["plan", "--help"],
        vec!["help", "plan"],
    ] {
        let run = run_in(&repo_root(), &args);
        run.assert_code(0);
        assert!(
            run.stdout.ends_with(EXIT_CODES),
            "help does not end with the exit codes\n{}",
            run.context()
        );
        assert!(run.stderr.is_empty(), "{}", run.context());
    }
}

#[test]
fn help_documents_the_commands_and_options() {
    let run = run_in(&repo_root(), &["--help"]);
    run.assert_code(0);
    for word in ["validate", "plan", "-f, --file <PATH>", "cookbook.json"] {
        assert!(
            run.stdout.contains(word),
            "help lacks {word:?}\n{}",
            run.context()
        );
    }
    let run = run_in(&repo_root(), &["plan", "--help"]);
    run.assert_code(0);
    for word in ["--format <FORMAT>", "text", "json", "dot", "--site <SITE>"] {
        assert!(
            run.stdout.contains(word),
            "plan help lacks {word:?}\n{}",
            run.context()
        );
    }
}

#[test]
fn version() {
    let run = run_in(&repo_root(), &["--version"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        format!("cookbook {}\n", env!("CARGO_PKG_VERSION")),
        "{}",
        run.context()
    );
}

#[test]
fn example_cookbooks_validate() {
    for (dir, summary) in [
        (
            "cookbooks/shop",
            "cookbook.json: ok (format 1.1, 4 containers in 3 waves, 3 applications, 3 sites)\n",
        ),
        (
            "cookbooks/example-api",
            "cookbook.json: ok (format 1.0, 1 container in 1 wave, 1 application, 0 sites)\n",
        ),
        (
            "cookbooks/gallery",
            "cookbook.json: ok (format 1.1, 4 containers in 2 waves, 4 applications, 3 sites)\n",
        ),
    ] {
        // The default file in the working directory, and an explicit path from elsewhere.
        let run = run_in(&repo_root().join(dir), &["validate"]);
        run.assert_code(0);
        assert_eq!(run.stderr, summary, "{}", run.context());
        assert!(run.stdout.is_empty(), "{}", run.context());

        let file = format!("{dir}/cookbook.json");
        let run = run_in(&repo_root(), &["validate", "-f", &file]);
        run.assert_code(0);
        assert_eq!(run.stderr, format!("{dir}/{summary}"), "{}", run.context());
    }
}

/// Each bad invocation exits 2 and says what was wrong, naming the offending argument.
#[test]
fn bad_arguments_are_invalid_input() {
    let shop = repo_root().join("cookbooks/shop");
    for (args, says) in [
        (vec!["--bogus"], "--bogus"),
        (vec!["validate", "--bogus"], "--bogus"),
        (vec![], "Usage: cookbook"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["plan", "--format", "xml"], "xml"),
        (vec!["plan", "--format"], "--format"),
        (vec!["plan", "--site"], "--site"),
        (vec!["-f"], "--file"),
        (vec!["validate", "extra"], "extra"),
    ] {
        let run = run_in(&shop, &args);
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.context());
        assert!(
            run.stderr.contains("error") || run.stderr.contains("Usage"),
            "no error message\n{}",
            run.context()
        );
        assert!(
            run.stderr.contains(says),
            "the message does not name {says:?}\n{}",
            run.context()
        );
    }
}

/// `-f` is global: it may come before or after the subcommand.
#[test]
fn file_flag_before_or_after_the_subcommand() {
    for args in [
        vec!["-f", "cookbooks/shop/cookbook.json", "plan"],
        vec!["plan", "-f", "cookbooks/shop/cookbook.json"],
        vec!["plan", "--file=cookbooks/shop/cookbook.json"],
    ] {
        let run = run_in(&repo_root(), &args);
        run.assert_code(0);
        assert!(
            run.stdout.starts_with("wave 1\n  db\n"),
            "{}",
            run.context()
        );
    }
}

/// An invalid cookbook exits 2 for every command that reads it, with nothing on stdout.
#[test]
fn invalid_cookbook_fails_every_command() {
    let dir = repo_root().join("tests/fixtures/invalid");
    for args in [
        vec!["-f", "cycle-mixed.json", "validate"],
        vec!["-f", "cycle-mixed.json", "plan"],
        vec!["-f", "cycle-mixed.json", "plan", "--format", "dot"],
        vec!["-f", "cycle-mixed.json", "plan", "--site", "anything"],
    ] {
        let run = run_in(&dir, &args);
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.context());
        assert!(
            run.stderr
                .starts_with("cycle-mixed.json:6:75: error[plan/cycle]:"),
            "{}",
            run.context()
        );
    }
}

/// The annotated example in README.md is a valid cookbook once its `//` comments are removed, and
/// its plan is the one the README shows for the shop.
#[test]
fn readme_example_validates() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme
        .find("```jsonc\n")
        .expect("a ```jsonc block in README.md")
        + 9;
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("end of the block")];
    let json: String = block
        .lines()
        .map(|l| l.find("  //").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().expect("temp dir");
    // The example's sources: validation checks that the paths it names exist.
    copy_example("shop", dir.path());
    std::fs::write(dir.path().join("cookbook.json"), &json).expect("write");
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(0);
    let run = run_in(dir.path(), &["plan"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        "wave 1\n  db\nwave 2\n  api     depends_on: db\nwave 3\n  worker  FROM: api\n",
        "{}",
        run.context()
    );
}

/// The format's own skeleton has no `project`: as docker compose does, the project is then named
/// after the cookbook's directory, with a warning that says so — and hashes follow that name,
/// so two checkouts in directories of the same name agree and others do not.
#[test]
fn the_published_skeleton_validates_plans_and_hashes() {
    const SKELETON: &str = r#"{"manifest_version": "1.0", "applications": {}, "containers": {}, "packaging": {}, "lifecycle": {}, "federation": {}}"#;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("My_Shop");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cookbook.json"), SKELETON).unwrap();
    for args in [vec!["validate"], vec!["plan"], vec!["hash"]] {
        let run = run_in(&dir, &args);
        run.assert_code(0);
        assert!(
            run.stderr.contains(
                "warning[model/project-from-directory]: `project.name` is not set: the project is named `my_shop` after the cookbook's directory"
            ),
            "{}",
            run.context()
        );
    }

    // With a container, the name reaches the hash: the same directory name under another
    // parent gives the same hashes, another directory name others.
    let with_container = |parent: &std::path::Path, name: &str| {
        let dir = parent.join(name);
        std::fs::create_dir_all(dir.join("web")).unwrap();
        std::fs::write(dir.join("web/index.html"), "hi\n").unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(SKELETON).unwrap();
        doc["applications"] = serde_json::json!({"web": {"source": "web"}});
        doc["containers"] = serde_json::json!({
            "web": {"base_image": "scratch", "applications": ["web"]}
        });
        std::fs::write(dir.join("cookbook.json"), doc.to_string()).unwrap();
        let run = run_in(&dir, &["hash", "--format", "json"]);
        run.assert_code(0);
        run.stdout
    };
    let other = tmp.path().join("elsewhere");
    let a = with_container(tmp.path(), "shop");
    assert_eq!(a, with_container(&other, "shop"));
    assert_ne!(a, with_container(tmp.path(), "store"));

    // A directory name that leaves nothing of a name is refused, located, saying what to add.
    let bad = tmp.path().join("__");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("cookbook.json"), SKELETON).unwrap();
    let run = run_in(&bad, &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("cookbook.json:1:1: error[schema/required]: missing required key `project`: the directory name \"__\" gives no project name"),
        "{}",
        run.context()
    );
}

/// A revision is checked out into a temporary directory for `diff --rev` (and `verify --rev`):
/// a cookbook without `project` is still named after the working copy's directory there, so an
/// unchanged revision is identical, not renamed after the temporary directory.
#[test]
fn a_revision_without_project_is_named_after_the_working_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(dir.join("web/index.html"), "hi\n").unwrap();
    std::fs::write(
        dir.join("cookbook.json"),
        r#"{"manifest_version": "1.0",
            "applications": {"web": {"source": "web"}},
            "containers": {"web": {"base_image": "scratch", "applications": ["web"]}}}"#,
    )
    .unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "skeleton"]);
    let run = run_in(&dir, &["diff", "--rev", "HEAD"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with("web: identical ("),
        "{}",
        run.context()
    );
}
