//! Build contexts through the real binary: refusals, pruning, Docker's special cases, and the
//! tar's normalized headers.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cookbook_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cookbook")
}

/// Runs the binary with a deadline: a hang fails the test instead of hanging CI.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(cookbook_bin())
        .args(args)
        .current_dir(dir)
        .env("COOKBOOK_CACHE_DIR", dir.join(".state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("cookbook {args:?} in {} hung", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ cookbook {}\n(cwd {})\nexit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        dir.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// A cookbook with one Dockerfile container `d` (context `ctx/`) and one generated `g` (app `app/`).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "cookbook.json",
        r#"{"manifest_version": "1.0", "project": {"name": "t"},
            "applications": {"app": {"source": "app"}},
            "containers": {
              "d": {"dockerfile": "ctx/Dockerfile", "context": "ctx"},
              "g": {"base_image": "busybox", "applications": ["app"]}}}"#,
    );
    put(root, "ctx/Dockerfile", "FROM busybox\n");
    put(root, "app/main.sh", "echo hi\n");
    dir
}

fn tar_entries(tar_bytes: &[u8]) -> Vec<(String, tar::Header)> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().clone(),
            )
        })
        .collect()
}

fn context_of(dir: &Path, container: &str) -> Vec<u8> {
    let out = run(dir, &["context", container, "-o", "-"]);
    assert_eq!(out.status.code(), Some(0));
    out.stdout
}

#[test]
fn fifo_is_refused_by_name_without_blocking() {
    let dir = setup();
    let fifo = dir.path().join("ctx/pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = run(dir.path(), &["hash", "d"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ctx/pipe: a FIFO cannot go into a build context"),
        "{err}"
    );
}

#[test]
fn socket_is_refused_by_name() {
    let dir = setup();
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("app/sock")).unwrap();
    let out = run(dir.path(), &["hash", "g"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("app/sock: a socket cannot go into a build context"));
}

#[test]
fn links_stay_links_and_may_not_leave_their_tree() {
    let dir = setup();
    std::os::unix::fs::symlink("main.sh", dir.path().join("app/link.sh")).unwrap();
    let tar = context_of(dir.path(), "g");
    let entries = tar_entries(&tar);
    let link = entries
        .iter()
        .find(|(p, _)| p == "app/link.sh")
        .expect("link present");
    assert_eq!(link.1.entry_type(), tar::EntryType::Symlink);
    assert_eq!(
        link.1.link_name().unwrap().unwrap().to_str(),
        Some("main.sh")
    );

    std::os::unix::fs::symlink("../ctx/Dockerfile", dir.path().join("app/escape")).unwrap();
    let out = run(dir.path(), &["hash", "g"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("app/escape: symlink to \"../ctx/Dockerfile\" points outside its tree"));
    fs::remove_file(dir.path().join("app/escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("app/abs")).unwrap();
    assert_eq!(run(dir.path(), &["hash", "g"]).status.code(), Some(2));
}

#[test]
fn ignored_directories_are_pruned_not_walked() {
    let dir = setup();
    put(dir.path(), "ctx/.dockerignore", "node_modules\n*.log\n");
    fs::create_dir_all(dir.path().join("ctx/node_modules/deep")).unwrap();
    // A FIFO that would be refused if the walk went in.
    assert!(Command::new("mkfifo")
        .arg(dir.path().join("ctx/node_modules/deep/pipe"))
        .status()
        .unwrap()
        .success());
    put(dir.path(), "ctx/keep.txt", "k");
    put(dir.path(), "ctx/debug.log", "x");
    put(dir.path(), "ctx/.git/config", "[core]");
    let names: Vec<String> = tar_entries(&context_of(dir.path(), "d"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, [".dockerignore", "Dockerfile", "keep.txt"]);
}

#[test]
fn dockerfile_and_dockerignore_survive_an_ignore_all() {
    let dir = setup();
    put(dir.path(), "ctx/.dockerignore", "*\n!keep.txt\n");
    put(dir.path(), "ctx/keep.txt", "k");
    put(dir.path(), "ctx/drop.txt", "d");
    let names: Vec<String> = tar_entries(&context_of(dir.path(), "d"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, [".dockerignore", "Dockerfile", "keep.txt"]);
}

#[test]
fn a_dockerfile_outside_the_context_is_carried_in() {
    let dir = setup();
    put(
        dir.path(),
        "cookbook.json",
        r#"{"manifest_version": "1.0", "project": {"name": "t"},
            "containers": {"d": {"dockerfile": "build/Dockerfile", "context": "ctx"}}}"#,
    );
    put(dir.path(), "build/Dockerfile", "FROM busybox\nCOPY . /x\n");
    let names: Vec<String> = tar_entries(&context_of(dir.path(), "d"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, [".cookbook.Dockerfile", "Dockerfile"]);
    let explain = String::from_utf8(run(dir.path(), &["explain", "d"]).stdout).unwrap();
    assert!(
        explain.contains("\"dockerfile\": \".cookbook.Dockerfile\""),
        "{explain}"
    );
    assert!(explain.contains("COPY . /x"), "{explain}");
}

#[test]
fn tar_headers_are_normalized_and_long_paths_survive() {
    let dir = setup();
    let long = format!("app/{}/{}.txt", "d".repeat(120), "f".repeat(150));
    put(dir.path(), &long, "long");
    let exe = dir.path().join("app/main.sh");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o750)).unwrap();
    let tar = context_of(dir.path(), "g");
    assert_eq!(tar.len() % 512, 0);
    let entries = tar_entries(&tar);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "sorted by path");
    assert!(paths.contains(&long.as_str()), "{paths:?}");
    for (path, h) in &entries {
        assert_eq!(h.uid().unwrap(), 0, "{path}");
        assert_eq!(h.gid().unwrap(), 0, "{path}");
        assert_eq!(h.mtime().unwrap(), 0, "{path}");
        assert_eq!(h.username().unwrap(), Some(""), "{path}");
        assert_eq!(h.groupname().unwrap(), Some(""), "{path}");
        let want = if path == "app/main.sh" { 0o755 } else { 0o644 };
        assert_eq!(h.mode().unwrap(), want, "{path}");
    }
    // The system tar reads it too.
    let file = dir.path().join("ctx.tar");
    fs::write(&file, &tar).unwrap();
    let listing = Command::new("tar").arg("tf").arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains(&long));
}

#[test]
fn context_file_output_is_atomic_and_identical_to_stdout() {
    let dir = setup();
    let dest = dir.path().join("out/ctx.tar");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let out = run(dir.path(), &["context", "g", "-o", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read(&dest).unwrap(), context_of(dir.path(), "g"));
    let leftovers: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
}

#[test]
fn bad_dockerignore_is_a_located_input_error() {
    let dir = setup();
    put(dir.path(), "ctx/.dockerignore", "ok\n[unclosed\n");
    let out = run(dir.path(), &["hash", "d"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(".dockerignore: line 2: invalid pattern \"[unclosed\""));
}

#[test]
fn stat_cache_never_changes_a_hash() {
    let dir = setup();
    let first = run(dir.path(), &["hash"]).stdout;
    // Warm cache, then a corrupt cache, then no cache: always the same answer.
    assert_eq!(run(dir.path(), &["hash"]).stdout, first);
    for f in fs::read_dir(dir.path().join(".state")).unwrap() {
        fs::write(f.unwrap().path(), b"corrupt").unwrap();
    }
    assert_eq!(run(dir.path(), &["hash"]).stdout, first);
    fs::remove_dir_all(dir.path().join(".state")).unwrap();
    assert_eq!(run(dir.path(), &["hash"]).stdout, first);
    // A same-size edit right after hashing is seen (racy-clean rule), cache or not.
    put(dir.path(), "app/main.sh", "echo HI\n");
    assert_ne!(run(dir.path(), &["hash"]).stdout, first);
}

#[test]
fn explain_and_diff_say_why_a_hash_changed() {
    let dir = setup();
    let a = run(dir.path(), &["explain", "g"]).stdout;
    put(dir.path(), "app/main.sh", "echo changed\n");
    put(dir.path(), "app/new.txt", "n");
    fs::write(dir.path().join("a.json"), &a).unwrap();
    fs::write(
        dir.path().join("b.json"),
        run(dir.path(), &["explain", "g"]).stdout,
    )
    .unwrap();
    let out = run(dir.path(), &["diff", "a.json", "b.json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  file app/main.sh changed (content)\n"),
        "{text}"
    );
    assert!(text.contains("  file app/new.txt added\n"), "{text}");
    let same = run(dir.path(), &["diff", "a.json", "a.json"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(
        run(dir.path(), &["diff", "a.json", "cookbook.json"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn directories_nested_past_the_limit_are_a_located_error_not_a_stack_overflow() {
    // A chain of one-letter directories never reaches PATH_MAX when opened relative to its
    // parent; the walk recurses per level, so without a limit it would abort the process.
    let dir = setup();
    let limit = cookbook::context::MAX_DEPTH;
    let mut deepest = dir.path().join("ctx");
    for level in 1..=limit {
        deepest.push("a");
        fs::create_dir(&deepest).unwrap();
        // Files beside each level make the walk split into parallel tasks, as in real trees.
        fs::write(deepest.join("f"), level.to_string()).unwrap();
        fs::write(deepest.join("g"), "g").unwrap();
    }
    let at_limit = run(dir.path(), &["hash", "d"]);
    assert_eq!(
        at_limit.status.code(),
        Some(0),
        "{limit} levels are allowed"
    );

    fs::create_dir(deepest.join("a")).unwrap();
    let past = run(dir.path(), &["hash", "d"]);
    assert_eq!(past.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&past.stderr);
    assert!(
        stderr.contains(&format!(
            "/a/a: directories nest more than {limit} deep; a build context cannot go deeper"
        )),
        "{stderr}"
    );
}
