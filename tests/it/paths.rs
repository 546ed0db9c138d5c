//! Paths never leave the cookbook's directory, symlinks included, and must exist.
//!
//! Each cookbook in `tests/fixtures/disk/` is copied into a temp dir (as `book/NAME.json`)
//! beside a directory `outside/`, its tree is made there by `setup` (real directories and
//! symlinks, which a fixture file cannot carry), and `validate` must exit 2 with exactly the
//! `.stderr` snapshot beside it, the temp dir's path written `[TMP]`. `hash` and `context` refuse
//! the same way (they load through the same stage), and the listing refuses again when a tree is
//! swapped for a symlink after validation.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{check_snapshot, repo_root, run_in};
use cookbook::context::{ContextError, OwnPaths};
use cookbook::hash;
use cookbook::model::Cookbook;
use cookbook::state::stat_cache::StatCache;

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Makes the tree a fixture needs: `book` is the cookbook's directory, `outside` its sibling.
fn setup(name: &str, book: &Path, outside: &Path) {
    match name {
        "missing" => {}
        "symlink-out" => {
            write(&outside.join("secret/id_rsa"), "not for images\n");
            write(&outside.join("web/index.html"), "<h1>outside</h1>\n");
            write(&outside.join("docker/Dockerfile"), "FROM busybox:1.36\n");
            symlink(outside.join("secret"), book.join("linkdir")).unwrap();
            fs::create_dir_all(book.join("inside")).unwrap();
            symlink("../../outside/web", book.join("inside/link")).unwrap();
            symlink(outside.join("docker"), book.join("docker")).unwrap();
            write(&book.join("db/schema.sql"), "create table t (x int);\n");
        }
        "kinds" => {
            write(&book.join("notes.txt"), "a file, not a directory\n");
            write(&book.join("db/Dockerfile"), "FROM busybox:1.36\n");
        }
        "dependencies" => {
            write(&book.join("present/requirements/base.txt"), "fastapi\n");
            write(&book.join("absent/main.py"), "print('no requirements')\n");
            write(&book.join("ignored/requirements.txt"), "fastapi\n");
            write(&book.join("ignored/.dockerignore"), "*.txt\n");
        }
        other => panic!("no setup for disk fixture {other}.json: add one here"),
    }
}

fn disk_fixtures() -> Vec<String> {
    let dir = repo_root().join("tests/fixtures/disk");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    names
}

/// A fixture's tree in a fresh temp dir: (temp dir, cookbook directory, real temp path).
fn materialize(name: &str) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let book = tmp.path().join("book");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&book).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::copy(
        repo_root().join(format!("tests/fixtures/disk/{name}.json")),
        book.join(format!("{name}.json")),
    )
    .unwrap();
    setup(name, &book, &outside);
    let real = fs::canonicalize(tmp.path()).unwrap().display().to_string();
    (tmp, book, real)
}

#[test]
fn disk_fixtures_fail_validation_with_their_snapshot() {
    let mut failures = Vec::new();
    for name in disk_fixtures() {
        let (_tmp, book, real) = materialize(&name);
        let file = format!("{name}.json");
        let run = run_in(&book, &["-f", &file, "validate"]);
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.context());
        let shown = run.stderr.replace(&real, "[TMP]");
        let snapshot = repo_root().join(format!("tests/fixtures/disk/{name}.stderr"));
        if let Err(e) = check_snapshot(&snapshot, &shown, &run) {
            failures.push(e);
        }
        // Every command that reads the cookbook refuses it the same way.
        for args in [
            vec!["-f", &file, "hash"],
            vec!["-f", &file, "plan"],
            vec!["-f", &file, "explain", "api"],
            vec!["-f", &file, "context", "api", "-o", "ctx.tar"],
        ] {
            let again = run_in(&book, &args);
            again.assert_code(2);
            assert_eq!(again.stderr, run.stderr, "{}", again.context());
            assert!(!book.join("ctx.tar").exists());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every line of every disk snapshot is located and has a code.
#[test]
fn disk_snapshots_are_located() {
    for name in disk_fixtures() {
        let path = repo_root().join(format!("tests/fixtures/disk/{name}.stderr"));
        let text = fs::read_to_string(&path).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with("  help: ") && !l.starts_with("error: "))
        {
            let rest = line
                .strip_prefix(&format!("{name}.json:"))
                .unwrap_or_else(|| panic!("{}: not located: {line}", path.display()));
            let mut parts = rest.splitn(3, ':');
            assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
            assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
            assert!(line.contains(": error[path/"), "{line}");
        }
    }
}

/// A tree that passes validation and is then swapped for a symlink leading out is refused when
/// the context is listed: the check is made again on the real path of what is opened.
#[test]
fn the_listing_refuses_a_tree_swapped_for_a_symlink_after_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let book = tmp.path().join("book");
    let secret = tmp.path().join("secret");
    write(&secret.join("id_rsa"), "not for images\n");
    write(&secret.join("Dockerfile"), "FROM busybox:1.36\n");
    write(&book.join("src/app.sh"), "echo app\n");
    write(&book.join("ctx/Dockerfile"), "FROM busybox:1.36\n");
    write(&book.join("df/Dockerfile"), "FROM busybox:1.36\n");
    let text = r#"{
        "manifest_version": "1.0",
        "project": { "name": "swap" },
        "applications": { "app": { "source": "src" } },
        "containers": {
            "app": { "base_image": "busybox:1.36", "applications": ["app"] },
            "outside_df": { "dockerfile": "df/Dockerfile", "context": "ctx" }
        }
    }"#;
    write(&book.join("cookbook.json"), text);
    let loaded = cookbook::load::load_file(&book.join("cookbook.json")).expect("valid at first");
    let (cookbook, plan): (Cookbook, _) = (loaded.cookbook, loaded.plan);
    let own = OwnPaths::default();
    let pins = hash::BasePins::new();
    let hash_all = || {
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            &book,
            &own,
            &StatCache::disabled(),
            hash::Pinning::current(&pins),
        )
    };
    hash_all().expect("hashes before the swap");

    fs::remove_dir_all(book.join("src")).unwrap();
    symlink(&secret, book.join("src")).unwrap();
    match hash_all() {
        Err(ContextError::Outside {
            what,
            path,
            resolved,
        }) => {
            assert_eq!(what, "source directory");
            assert_eq!(path, book.join("src"));
            assert_eq!(resolved, fs::canonicalize(&secret).unwrap());
        }
        other => panic!("expected Outside, got {other:?}"),
    }

    // A Dockerfile outside its context, reached through a directory swapped for a symlink.
    fs::remove_file(book.join("src")).unwrap();
    write(&book.join("src/app.sh"), "echo app\n");
    fs::remove_dir_all(book.join("df")).unwrap();
    symlink(&secret, book.join("df")).unwrap();
    match hash_all() {
        Err(ContextError::Outside { what, path, .. }) => {
            assert_eq!(what, "file");
            assert_eq!(path, book.join("df"));
        }
        other => panic!("expected Outside, got {other:?}"),
    }
}

/// A symlink inside the cookbook's directory is fine: only where it leads matters.
#[test]
fn a_symlink_that_stays_inside_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let book = tmp.path();
    write(&book.join("services/api/app.sh"), "echo api\n");
    symlink("services/api", book.join("api")).unwrap();
    write(
        &book.join("cookbook.json"),
        r#"{"manifest_version": "1.0", "project": {"name": "inside"},
            "applications": {"api": {"source": "api"}},
            "containers": {"api": {"base_image": "busybox:1.36", "applications": ["api"]}}}"#,
    );
    run_in(book, &["validate"]).assert_code(0);
    let run = run_in(book, &["explain", "api"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("\"path\": \"api/app.sh\""),
        "{}",
        run.context()
    );
}

/// A `.dockerignore` linked to `/dev/zero` or to a FIFO, or a huge one: `hash` and `context`
/// refuse it at once, naming it, instead of reading without end (a read of `/dev/zero` ran out of
/// memory; a FIFO blocked forever). A link to a regular file is followed, as the docker CLI does.
#[test]
fn a_dockerignore_that_never_ends_is_refused_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let book = tmp.path();
    write(&book.join("api/app.sh"), "echo api\n");
    write(&book.join("shared/ignore"), "*.tmp\n");
    write(
        &book.join("cookbook.json"),
        r#"{"manifest_version": "1.0", "project": {"name": "ignores"},
            "applications": {"api": {"source": "api"}},
            "containers": {"api": {"base_image": "scratch", "applications": ["api"]}}}"#,
    );
    let ignore = book.join("api/.dockerignore");
    symlink("../shared/ignore", &ignore).unwrap();
    run_in(book, &["hash"]).assert_code(0);

    type Make<'a> = &'a dyn Fn(&Path);
    let hostile: [(&str, Make); 3] = [
        ("not a regular file", &|p| symlink("/dev/zero", p).unwrap()),
        ("not a regular file", &|p| {
            let made = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap();
            assert!(made.success());
        }),
        ("larger than 4 MiB", &|p| {
            fs::write(p, "# pad\n".repeat(1 << 20)).unwrap();
        }),
    ];
    for (why, make) in hostile {
        fs::remove_file(&ignore).unwrap();
        make(&ignore);
        for args in [&["hash"][..], &["context", "api", "-o", "api.tar"][..]] {
            let run = run_in(book, args);
            assert!(
                run.elapsed < std::time::Duration::from_secs(20),
                "{}",
                run.context()
            );
            run.assert_code(2);
            assert!(
                run.stderr.contains("api/.dockerignore") && run.stderr.contains(why),
                "{}",
                run.context()
            );
        }
    }
}
