//! The cost of a sync round when the remote has not changed (target: a fetch and nothing else,
//! well under a second on loopback).
//!
//! Serves the shop cookbook from a `git daemon` on 127.0.0.1, takes it once, then times, side by
//! side in one run:
//! - `round`: `sync::sync_once` in process (lock, state read, fetch, compare);
//! - `binary`: the whole `cookbook sync` process (adds process start and argument parsing);
//! - `git fetch`: the git CLI fetching the same branch into an up-to-date bare repo (baseline);
//!
//! and prints each median and its ratio to the `git fetch` baseline.
//!
//! Run: `cargo bench --bench sync` (ROUNDS=n to change the sample size, default 50).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cookbook::sync::lock::{Holder, Wait};
use cookbook::sync::state::StateDir;
use cookbook::sync::{sync_once, Outcome, SyncOptions};

const SHOP: &str = include_str!("../cookbooks/shop/cookbook.json");

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .stdout(Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn time(rounds: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm-up
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", "base/shop.git"],
    );
    git(tmp.path(), &["init", "-q", "-b", "main", "work"]);
    let work = tmp.path().join("work");
    std::fs::write(work.join("cookbook.json"), SHOP).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "shop"]);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `git-daemon` itself, not `git daemon`, which would leave it running when killed.
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap()
        .stdout;
    let program = Path::new(String::from_utf8(exec_path).unwrap().trim()).join("git-daemon");
    let mut daemon = Command::new(program)
        .args(["--reuseaddr", "--listen=127.0.0.1", "--export-all"])
        .arg("--enable=receive-pack")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(&base)
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("git://127.0.0.1:{port}/shop.git");
    git(&work, &["push", "-q", &url, "main"]);

    let dir = StateDir::new(tmp.path().join("state"));
    let options = SyncOptions {
        remote: url.clone(),
        branch: "main".to_owned(),
        path: "cookbook.json".to_owned(),
        site: Some("edge".to_owned()),
        allow_force: false,
        require_signed: false,
    };
    let me = Holder::me("bench".to_owned());
    let stop = AtomicBool::new(false);
    let round =
        || sync_once(&dir, &options, None, &me, Wait::No, &mut |_| {}, &stop).expect("round");
    assert!(matches!(round().outcome, Outcome::Taken { .. }));

    let in_process = time(rounds, || {
        assert!(matches!(round().outcome, Outcome::UpToDate));
    });
    let state = dir.root().display().to_string();
    let binary = time(rounds, || {
        let out = Command::new(env!("CARGO_BIN_EXE_cookbook"))
            .args([
                "sync", "--remote", &url, "--site", "edge", "--state", &state,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    git(tmp.path(), &["init", "-q", "--bare", "baseline.git"]);
    let baseline_dir = tmp.path().join("baseline.git");
    let refspec = "+refs/heads/main:refs/remotes/origin/main";
    git(&baseline_dir, &["fetch", "-q", &url, refspec]);
    let baseline = time(rounds, || {
        git(&baseline_dir, &["fetch", "-q", &url, refspec])
    });

    let _ = daemon.kill();
    let _ = daemon.wait();

    let base_median = baseline[rounds / 2];
    println!("sync round, remote unchanged, git:// on loopback, {rounds} rounds each");
    println!(
        "{:<38} {:>9} {:>9} {:>9} {:>12}",
        "", "min ms", "median ms", "p90 ms", "vs git fetch"
    );
    for (name, s) in [
        ("round (sync_once, in process)", &in_process),
        ("cookbook sync (whole process)", &binary),
        ("git fetch (git CLI, baseline)", &baseline),
    ] {
        println!(
            "{:<38} {:>9.2} {:>9.2} {:>9.2} {:>11.2}x",
            name,
            ms(s[0]),
            ms(s[rounds / 2]),
            ms(s[rounds * 9 / 10]),
            s[rounds / 2].as_secs_f64() / base_median.as_secs_f64()
        );
    }
}
