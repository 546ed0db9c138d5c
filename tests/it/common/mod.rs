//! Helpers shared by the integration tests: run the real `cookbook` binary with a deadline, and
//! compare whole outputs with snapshot files.
//!
//! Written by hand rather than with a snapshot crate: the snapshots are plain `.stderr` files next
//! to their fixtures, byte for byte what a user sees, so a reviewer reads them as they are.
#![allow(dead_code)] // not every helper is used yet by the tests that share them

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a debug build on a loaded 2-core machine. A hang fails the test instead of CI.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cookbook")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a finished run produced.
pub struct Run {
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Command, working directory, exit code and both streams: printed by every failing assertion.
    pub fn context(&self) -> String {
        format!(
            "command: {} {}\ncwd: {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            bin(),
            self.args.join(" "),
            self.cwd.display(),
            self.code,
            self.stdout,
            truncate(&self.stderr, 4000),
        )
    }

    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code\n{}",
            self.context()
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked\n{}",
            self.context()
        );
        self
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes in all)", &s[..end], s.len())
    }
}

/// Runs `cookbook ARGS` in `cwd` and waits at most `DEADLINE`; kills the child and fails the test if
/// it does not finish. `COOKBOOK_FILE` is removed so the caller's environment cannot change `-f`.
pub fn run_in(cwd: &Path, args: &[&str]) -> Run {
    run_in_env(cwd, args, &[])
}

/// [`run_in`] with extra environment variables.
pub fn run_in_env(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("COOKBOOK_FILE")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin()));
    // Drain both pipes on their own threads so that a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: cwd.to_path_buf(),
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
        elapsed: started.elapsed(),
    };
    assert!(
        status.is_some(),
        "did not finish within {DEADLINE:?}; killed\n{}",
        run.context()
    );
    run
}

/// A name no other test (or earlier run) uses: `prefix`, the process id and the time.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// Runs `f` to completion on a runtime of its own (the tests that call the library's async edges
/// directly).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Sends `signal` (`-INT`, `-TERM`) to `child` with kill(1).
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {}", child.id());
}

/// Waits for `child` to exit, at most `limit`; its exit code and how long it took.
pub fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> (Option<i32>, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Compares `actual` with the snapshot file, whole. With `UPDATE_SNAPSHOTS=1` it rewrites the file
/// instead (review the diff before committing). Returns a failure description, so that a test
/// over many fixtures can report all mismatches at once.
pub fn check_snapshot(snapshot: &Path, actual: &str, run: &Run) -> Result<(), String> {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(snapshot, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", snapshot.display()));
        return Ok(());
    }
    let expected = std::fs::read_to_string(snapshot).unwrap_or_else(|e| {
        format!(
            "<cannot read {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it>",
            snapshot.display()
        )
    });
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "snapshot mismatch: {}\ncommand: {} {}\ncwd: {}\n--- expected ---\n{expected}--- actual ---\n{actual}--- end ---\n(rerun with UPDATE_SNAPSHOTS=1 to accept the new output)",
        snapshot.display(),
        bin(),
        run.args.join(" "),
        run.cwd.display(),
    ))
}

/// Copies an example cookbook's tree (`cookbooks/NAME`) into `to`, leaving out state and locks.
pub fn copy_example(name: &str, to: &Path) {
    copy_tree(&repo_root().join("cookbooks").join(name), to);
}

/// Copies the directories and regular files of a cookbook's tree into `to`, leaving out its state
/// directory and lock (links are left out: nothing the examples need).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        if rel
            .components()
            .any(|c| c.as_os_str() == ".cookbook" || c.as_os_str() == "cookbook.lock")
        {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The test registry (`COOKBOOK_TEST_REGISTRY`) when the real engine and registry are there, or
/// `None` with a loud note. `scripts/test.sh` sets `COOKBOOK_REQUIRE_SERVICES=1`: then a missing
/// service fails the test instead of skipping it, so CI never passes these tests vacuously.
pub fn test_registry() -> Option<String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("COOKBOOK_TEST_REGISTRY"), get("DOCKER_HOST")) {
        (Some(registry), Some(_)) => Some(registry),
        _ => {
            skip_or_fail();
            None
        }
    }
}

/// Skips a service test with a note, or fails it when the services are required.
pub fn skip_or_fail() {
    let note = "DOCKER_HOST / COOKBOOK_TEST_REGISTRY unset; run through `bash scripts/test.sh` \
                (or `scripts/services.sh up` and `eval \"$(scripts/services.sh env)\"`)";
    assert!(
        std::env::var("COOKBOOK_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "the services are required here: {note}"
    );
    eprintln!("SKIPPED: {note}");
}

/// The engine's containers (running or not) whose command line contains `marker`: a build step
/// of the classic builder runs as such a container.
pub fn engine_containers_with(marker: &str) -> Vec<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST");
            let docker = bollard::Docker::connect_with_host(&host).unwrap();
            let options = bollard::query_parameters::ListContainersOptions {
                all: true,
                ..Default::default()
            };
            docker
                .list_containers(Some(options))
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.command.as_deref().is_some_and(|cmd| cmd.contains(marker)))
                .map(|c| format!("{:?} {:?}", c.id, c.command))
                .collect()
        })
}

/// Waits until `check` holds, polling, for at most `limit`; fails the test naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
pub mod browser;
pub mod deploy;
pub mod dockerd;
pub mod http;
