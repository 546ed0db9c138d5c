//! `cookbook sync` end to end: the real binary against a real `git daemon` on loopback (started
//! here on a free port, killed at the end) and against file URLs.

use crate::common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cookbook");
const SHOP: &str = include_str!("../../cookbooks/shop/cookbook.json");

/// The shop cookbook with another repository URL: still valid, different bytes.
fn shop_v(n: u32) -> String {
    SHOP.replace(
        "https://github.com/example/shop\"",
        &format!("https://github.com/example/shop-v{n}\""),
    )
}

/// A schema error located in the file: `language` must be a string.
fn shop_invalid() -> String {
    SHOP.replacen("\"language\": \"shell\"", "\"language\": 42", 1)
}

// ---------------------------------------------------------------------------------------------
// Fixtures

pub(crate) struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let f = Fixture {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(f.home()).unwrap();
        std::fs::create_dir_all(f.base()).unwrap();
        git(
            &f,
            f.tmp.path(),
            &["init", "-q", "--bare", "-b", "main", "base/shop.git"],
        );
        git(&f, f.tmp.path(), &["init", "-q", "-b", "main", "work"]);
        // The shop's sources go in with the first commit: a revision whose paths do not exist
        // is refused.
        common::copy_example("shop", &f.work());
        f
    }
    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub(crate) fn home(&self) -> PathBuf {
        self.path().join("home")
    }
    pub(crate) fn base(&self) -> PathBuf {
        self.path().join("base")
    }
    pub(crate) fn work(&self) -> PathBuf {
        self.path().join("work")
    }
    pub(crate) fn state(&self) -> PathBuf {
        self.path().join("state")
    }
    pub(crate) fn file_url(&self) -> String {
        format!("file://{}", self.base().join("shop.git").display())
    }
    /// Commits `content` as `cookbook.json` in the work repository; returns the commit id.
    pub(crate) fn commit(&self, content: &str, message: &str) -> String {
        self.commit_with(content, message, &[])
    }
    pub(crate) fn commit_with(&self, content: &str, message: &str, extra: &[&str]) -> String {
        std::fs::write(self.work().join("cookbook.json"), content).unwrap();
        git(self, &self.work(), &["add", "-A"]);
        let mut args = vec!["commit", "-q", "-m", message];
        args.extend_from_slice(extra);
        git(self, &self.work(), &args);
        head(self)
    }
    /// Pushes the work repository's `main` to `url` (with `--force` if asked).
    pub(crate) fn push(&self, url: &str, force: bool) {
        let mut args = vec!["push", "-q"];
        if force {
            args.push("--force");
        }
        args.extend([url, "main"]);
        git(self, &self.work(), &args);
    }
    pub(crate) fn sync(&self, remote: &str, extra: &[&str]) -> Output {
        let mut args = vec!["sync", "--remote", remote, "--state"];
        let state = self.state().display().to_string();
        args.push(&state);
        args.extend_from_slice(extra);
        run(self, &args, &[])
    }
    pub(crate) fn status_json(&self) -> serde_json::Value {
        let state = self.state().display().to_string();
        let out = run(
            self,
            &["sync", "status", "--state", &state, "--format", "json"],
            &[],
        );
        expect_code(&out, 0, "status");
        serde_json::from_slice(&out.stdout).unwrap()
    }
    pub(crate) fn current_cookbook(&self) -> String {
        std::fs::read_to_string(self.state().join("current/cookbook.json")).unwrap()
    }
}

/// Environment for every child: no system or user git config but ours, no terminal.
fn env(cmd: &mut Command, f: &Fixture) {
    cmd.env("HOME", f.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", f.home().join("gitconfig"))
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env_remove("COOKBOOK_SYNC_REMOTE")
        .env_remove("COOKBOOK_SYNC_TEST_PAUSE")
        .stdin(Stdio::null());
}

pub(crate) fn git(f: &Fixture, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args);
    env(&mut cmd, f);
    let out = cmd.output().expect("git runs");
    if !out.status.success() {
        panic!(
            "git {args:?} in {} failed\nstdout:\n{}\nstderr:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub(crate) fn head(f: &Fixture) -> String {
    let out = git(f, &f.work(), &["rev-parse", "HEAD"]);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) fn command(f: &Fixture, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(f.path()).args(args);
    env(&mut cmd, f);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

pub(crate) fn run(f: &Fixture, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = command(f, args, envs).output().expect("cookbook runs");
    // Kept with the output so that a failure can say what ran, and where.
    let mut out = out;
    let header = format!(
        "$ cd {} && cookbook {}\n",
        f.path().display(),
        args.join(" ")
    );
    out.stderr.splice(0..0, header.into_bytes());
    out
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstderr (first line: the command):\n{}\nstdout:\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
}

pub(crate) fn expect_contains(haystack: &[u8], needle: &str, out: &Output) {
    assert!(
        text(haystack).contains(needle),
        "expected {needle:?}\nstderr:\n{}\nstdout:\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
}

/// A free port on loopback: bound, read, released.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git-daemon` itself: `git daemon` would run it as a child, and killing `git` would leave the
/// daemon running.
fn git_daemon_program() -> PathBuf {
    let out = Command::new("git").arg("--exec-path").output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("git-daemon")
}

/// `git daemon` serving `base` on loopback, killed on drop.
pub(crate) struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    pub(crate) fn start(f: &Fixture) -> GitDaemon {
        let port = free_port();
        let mut cmd = Command::new(git_daemon_program());
        cmd.arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", f.base().display()))
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg(f.base())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        env(&mut cmd, f);
        let child = cmd.spawn().expect("git daemon starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        GitDaemon { child, port }
    }
    pub(crate) fn url(&self) -> String {
        format!("git://127.0.0.1:{}/shop.git", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (symlinks as their targets) except the lock file.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if kind.is_dir() {
                files.insert(format!("{rel}/"), Vec::new());
                walk(root, &path, files);
            } else if rel != "lock" {
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    walk(dir, dir, &mut files);
    files
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn short(commit: &str) -> &str {
    &commit[..12]
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn clones_takes_new_commits_refuses_an_invalid_one_and_clears_the_error_after_the_fix() {
    let f = Fixture::new();
    let daemon = GitDaemon::start(&f);
    let url = daemon.url();

    let first = f.commit(&shop_v(1), "first");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 0, "first sync");
    expect_contains(
        &out.stdout,
        &format!("took {} (first sync)", short(&first)),
        &out,
    );
    assert_eq!(f.current_cookbook(), shop_v(1));

    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 0, "nothing new");
    expect_contains(
        &out.stdout,
        &format!("up to date at {}", short(&first)),
        &out,
    );

    let second = f.commit(&shop_v(2), "second");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 0, "new commit");
    expect_contains(
        &out.stdout,
        &format!(
            "took {} (fast-forward from {})",
            short(&second),
            short(&first)
        ),
        &out,
    );
    assert_eq!(f.current_cookbook(), shop_v(2));

    // Invalid: refused, located diagnostics, the last good revision kept and still served.
    let broken = f.commit(&shop_invalid(), "broken");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 1, "invalid commit");
    expect_contains(
        &out.stderr,
        &format!("cookbook.json@{}:", short(&broken)),
        &out,
    );
    expect_contains(&out.stderr, "error[schema/", &out);
    expect_contains(&out.stderr, &format!("keeping {}", short(&second)), &out);
    assert_eq!(f.current_cookbook(), shop_v(2));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], second.as_str());
    assert_eq!(s["previous"], first.as_str());
    assert_eq!(s["last_attempt"]["commit"], broken.as_str());
    assert_eq!(s["last_attempt"]["outcome"], "invalid");
    let errors = s["last_attempt"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("cookbook.json@{}:", short(&broken))),
        "{errors:?}"
    );
    let state = f.state().display().to_string();
    let out = run(&f, &["sync", "status", "--state", &state], &[]);
    expect_code(&out, 0, "status text");
    expect_contains(&out.stdout, &format!("current:       {second}"), &out);
    expect_contains(&out.stdout, &format!("last attempt:  {broken}"), &out);
    expect_contains(&out.stdout, ": invalid", &out);

    // Refused again while the remote still has it: exit 1 every round, current kept.
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 1, "still invalid");

    // The fix is taken and the error is gone from the state, not cached.
    let fixed = f.commit(&shop_v(3), "fix");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 0, "fix");
    assert_eq!(f.current_cookbook(), shop_v(3));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], fixed.as_str());
    assert_eq!(s["previous"], second.as_str());
    assert_eq!(s["last_attempt"]["outcome"], "taken");
    assert_eq!(s["last_attempt"]["errors"], serde_json::json!([]));
    let out = run(&f, &["sync", "status", "--state", &state], &[]);
    assert!(
        !text(&out.stdout).contains("invalid"),
        "{}",
        text(&out.stdout)
    );

    // Only the current and the previous checkout are kept.
    let mut kept: Vec<String> = std::fs::read_dir(f.state().join("checkouts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    let mut expected = vec![second.clone(), fixed.clone()];
    expected.sort();
    assert_eq!(kept, expected);

    // A revision without the site is refused for that site.
    let no_edge = f.commit(&shop_v(4).replace("\"edge\":", "\"outpost\":"), "drop edge");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 1, "site removed");
    expect_contains(&out.stderr, "error[sync/unknown-site]", &out);
    expect_contains(&out.stderr, "outpost", &out);
    assert_eq!(f.status_json()["last_attempt"]["commit"], no_edge.as_str());
    assert_eq!(f.current_cookbook(), shop_v(3));
}

#[test]
fn a_force_push_is_refused_and_taken_with_allow_force_and_the_branch_never_goes_back() {
    let f = Fixture::new();
    let url = f.file_url();
    let a = f.commit(&shop_v(1), "a");
    let b = f.commit(&shop_v(2), "b");
    f.push(&url, false);
    expect_code(&f.sync(&url, &[]), 0, "first sync");

    git(&f, &f.work(), &["reset", "-q", "--hard", &a]);
    let c = f.commit(&shop_v(3), "c, rewriting b");
    f.push(&url, true);
    let out = f.sync(&url, &[]);
    expect_code(&out, 1, "force-push");
    expect_contains(&out.stderr, "not a fast-forward", &out);
    expect_contains(&out.stderr, "--allow-force", &out);
    assert_eq!(f.current_cookbook(), shop_v(2));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], b.as_str());
    assert_eq!(s["last_attempt"]["commit"], c.as_str());
    assert_eq!(s["last_attempt"]["outcome"], "not-fast-forward");

    let out = f.sync(&url, &["--allow-force"]);
    expect_code(&out, 0, "--allow-force");
    expect_contains(&out.stdout, "over a history rewrite", &out);
    expect_contains(&out.stderr, "forced update", &out);
    assert_eq!(f.current_cookbook(), shop_v(3));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], c.as_str());
    assert_eq!(s["current"]["forced"], true);
    assert_eq!(s["forced"][0]["from"], b.as_str());
    assert_eq!(s["forced"][0]["to"], c.as_str());

    // The branch moved back to an ancestor: the sync does not follow it by itself.
    git(&f, &f.work(), &["reset", "-q", "--hard", &a]);
    f.push(&url, true);
    let out = f.sync(&url, &[]);
    expect_code(&out, 1, "branch went back");
    expect_contains(&out.stderr, "went back", &out);
    assert_eq!(f.current_cookbook(), shop_v(3));
}

#[test]
fn an_unreachable_remote_exits_3_and_leaves_the_state_unchanged_byte_for_byte() {
    let f = Fixture::new();
    let daemon = GitDaemon::start(&f);
    f.commit(&shop_v(1), "first");
    f.push(&daemon.url(), false);
    expect_code(&f.sync(&daemon.url(), &[]), 0, "first sync");
    let before = snapshot(&f.state());

    let closed = format!("git://127.0.0.1:{}/shop.git", free_port());
    let out = f.sync(&closed, &[]);
    expect_code(&out, 3, "closed port");
    expect_contains(&out.stderr, "cannot connect to the git remote", &out);
    assert_eq!(snapshot(&f.state()), before);

    // And the daemon going away mid-life is the same.
    drop(daemon);
    let out = f.sync(&format!("git://127.0.0.1:{}/shop.git", free_port()), &[]);
    expect_code(&out, 3, "daemon gone");
    assert_eq!(snapshot(&f.state()), before);
}

#[test]
fn two_concurrent_syncs_are_serialized() {
    let f = Fixture::new();
    let url = f.file_url();
    f.commit(&shop_v(1), "first");
    f.push(&url, false);
    std::fs::create_dir_all(f.state()).unwrap();
    let state = f.state().display().to_string();

    // The first sync holds the lock for two seconds after its fetch.
    let first = command(
        &f,
        &["sync", "--remote", &url, "--state", &state],
        &[("COOKBOOK_SYNC_TEST_PAUSE", "after-fetch:2000")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lock = f.state().join("lock");
    let pid = first.id().to_string();
    wait_for(
        "the first sync to take the lock",
        Duration::from_secs(10),
        || std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\":{pid}"))),
    );

    let out = f.sync(&url, &[]);
    expect_code(&out, 1, "second sync without --wait");
    expect_contains(&out.stderr, "another sync is running", &out);
    expect_contains(&out.stderr, &format!("pid {pid} on "), &out);
    expect_contains(&out.stderr, "sync --remote", &out);

    let waiter = command(
        &f,
        &["sync", "--remote", &url, "--state", &state, "--wait"],
        &[],
    )
    .output()
    .unwrap();
    let first = first.wait_with_output().unwrap();
    expect_code(&first, 0, "first sync");
    expect_code(&waiter, 0, "waiting sync");
    expect_contains(
        &waiter.stderr,
        &format!("waiting for the sync lock, held by pid {pid}"),
        &waiter,
    );
    expect_contains(&waiter.stdout, "up to date", &waiter);
}

#[test]
fn a_kill_9_in_the_middle_of_a_sync_leaves_a_usable_state_and_the_next_sync_completes() {
    let f = Fixture::new();
    let url = f.file_url();
    let first = f.commit(&shop_v(1), "first");
    f.push(&url, false);
    expect_code(&f.sync(&url, &[]), 0, "first sync");
    let second = f.commit(&shop_v(2), "second");
    f.push(&url, false);
    let state = f.state().display().to_string();
    let checkouts = f.state().join("checkouts");

    for (step, marker) in [
        (
            "checkout-written",
            checkouts.join(format!("{second}.tmp/cookbook.json")),
        ),
        (
            "before-switch",
            checkouts.join(format!("{second}/cookbook.json")),
        ),
    ] {
        let mut child = command(
            &f,
            &["sync", "--remote", &url, "--state", &state],
            &[("COOKBOOK_SYNC_TEST_PAUSE", &format!("{step}:60000"))],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        wait_for(step, Duration::from_secs(20), || marker.exists());
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Still served, still the old revision, and the record readable.
        assert_eq!(f.current_cookbook(), shop_v(1), "after a kill at {step}");
        assert_eq!(f.status_json()["current"]["commit"], first.as_str());
    }

    // Killed after the switch, before the record: `current` already serves the new, complete
    // revision; the next round records it.
    let link = f.state().join("current");
    let mut child = command(
        &f,
        &["sync", "--remote", &url, "--state", &state],
        &[("COOKBOOK_SYNC_TEST_PAUSE", "after-switch:60000")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for("after-switch", Duration::from_secs(20), || {
        std::fs::read_link(&link).is_ok_and(|t| t.ends_with(&second))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.current_cookbook(), shop_v(2));
    assert_eq!(f.status_json()["current"]["commit"], first.as_str());

    let out = f.sync(&url, &[]);
    expect_code(&out, 0, "the sync after the kills");
    expect_contains(
        &out.stderr,
        &format!("recovered: `current` pointed at {}", short(&second)),
        &out,
    );
    expect_contains(
        &out.stdout,
        &format!("up to date at {}", short(&second)),
        &out,
    );
    assert_eq!(f.current_cookbook(), shop_v(2));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], second.as_str());
    assert_eq!(s["previous"], first.as_str());
    assert!(!checkouts.join(format!("{second}.tmp")).exists());
}

#[test]
fn require_signed_refuses_an_unsigned_commit_and_takes_a_signed_one() {
    let f = Fixture::new();
    let key = f.home().join("signing_key");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", text(&out.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = f.home().join("allowed_signers");
    std::fs::write(&allowed, format!("test@example.invalid {public}")).unwrap();
    // The operator's configuration: whom to trust. Signing settings are only for the author.
    std::fs::write(
        f.home().join("gitconfig"),
        format!(
            "[gpg \"ssh\"]\n\tallowedSignersFile = {}\n",
            allowed.display()
        ),
    )
    .unwrap();

    let url = f.file_url();
    let unsigned = f.commit(&shop_v(1), "unsigned");
    f.push(&url, false);
    let out = f.sync(&url, &["--require-signed"]);
    expect_code(&out, 1, "unsigned");
    expect_contains(&out.stderr, "signature", &out);
    assert!(!f.state().join("current").exists(), "nothing taken");
    let s = f.status_json();
    assert_eq!(s["current"], serde_json::Value::Null);
    assert_eq!(s["last_attempt"]["commit"], unsigned.as_str());
    assert_eq!(s["last_attempt"]["outcome"], "unsigned");

    let key_arg = format!("user.signingkey={}", key.display());
    let signed = f.commit_with(&shop_v(2), "signed", &[]);
    // Re-create the commit signed (amend keeps history simple: a descendant of `unsigned`).
    git(
        &f,
        &f.work(),
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &key_arg,
            "commit",
            "-q",
            "--amend",
            "-S",
            "--no-edit",
        ],
    );
    let signed_id = head(&f);
    assert_ne!(signed, signed_id);
    git(&f, &f.work(), &["verify-commit", &signed_id]);
    f.push(&url, false);
    let out = f.sync(&url, &["--require-signed"]);
    expect_code(&out, 0, "signed");
    assert_eq!(f.current_cookbook(), shop_v(2));
    assert_eq!(f.status_json()["current"]["commit"], signed_id.as_str());

    // An unsigned descendant of a signed one is still refused, and the signed one kept.
    f.commit(&shop_v(3), "unsigned again");
    f.push(&url, false);
    let out = f.sync(&url, &["--require-signed"]);
    expect_code(&out, 1, "unsigned descendant");
    assert_eq!(f.current_cookbook(), shop_v(2));
}

/// `sync --apply` against the real engine and registry: the site's portion is built and pushed,
/// and a revision counts as applied only when its apply succeeded.
#[test]
fn apply_builds_the_site_portion_and_counts_only_a_successful_apply() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let f = Fixture::new();
    let url = f.file_url();
    let namespace = format!("{registry}/sync-{}", std::process::id());
    let shop = SHOP.replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    let good = f.commit(&shop, "shop with sources");
    f.push(&url, false);

    let out = f.sync(&url, &["--site", "edge", "--apply"]);
    expect_code(&out, 0, "sync --apply of site edge");
    expect_contains(&out.stderr, "apply: 2 built", &out);
    let status = f.status_json();
    assert_eq!(status["last_applied"]["commit"], good.as_str(), "{status}");
    // The edge site is api and what it needs (db); web and worker belong to another site.
    let tags = |repo: &str| -> Vec<String> {
        let client = cookbook::registry::RegistryClient::new().unwrap();
        let repo =
            cookbook::registry::Repository::parse(&format!("{namespace}/shop/{repo}")).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(client.tags_list(&repo))
            .unwrap_or_default()
    };
    assert_eq!(tags("api").len(), 1);
    assert_eq!(tags("db").len(), 1);
    assert!(tags("web").is_empty() && tags("worker").is_empty());

    // A valid cookbook whose build fails: taken as current, but not counted as applied.
    let broken = shop.replace("\"chmod 0755 serve.sh cgi-bin/orders\"", "\"exit 9\"");
    assert_ne!(broken, shop);
    let bad = f.commit(&broken, "api build fails");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge", "--apply"]);
    expect_code(&out, 1, "apply failed");
    let status = f.status_json();
    assert_eq!(status["current"]["commit"], bad.as_str(), "{status}");
    assert_eq!(status["last_applied"]["commit"], good.as_str(), "{status}");
}

/// `sync --apply --signing-key`: what a round publishes is attested as `apply --signing-key`
/// attests it, its provenance naming the cookbook's path in the repository and the revision.
#[test]
fn a_signing_sync_attests_what_it_publishes_with_the_revision() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let f = Fixture::new();
    let url = f.file_url();
    let namespace = format!("{registry}/sync-signed-{}", std::process::id());
    let shop = SHOP.replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    let commit = f.commit(&shop, "shop");
    f.push(&url, false);
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("release").display().to_string();
    common::run_in(keys.path(), &["key", "generate", "--output", &prefix]).assert_code(0);
    let key = format!("{prefix}.key");
    let out = f.sync(&url, &["--site", "edge", "--apply", "--signing-key", &key]);
    expect_code(&out, 0, "sync --apply --signing-key");
    expect_contains(&out.stderr, "[api] attested", &out);

    // api's provenance, read from the registry through its referrers.
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.state().join("current/cookbook.lock")).unwrap(),
    )
    .unwrap();
    let digest =
        cookbook::oci::Digest::parse(lock["containers"]["api"]["digest"].as_str().unwrap())
            .unwrap();
    let repo = cookbook::registry::Repository::parse(&format!("{namespace}/shop/api")).unwrap();
    let statement: serde_json::Value = common::block_on(async {
        let client = cookbook::registry::RegistryClient::new().unwrap();
        let (list, _) = client.referrers(&repo, &digest, None).await.unwrap();
        let provenance = list
            .iter()
            .find(|r| {
                r.annotations
                    .get("in-toto.io/predicate-type")
                    .map(String::as_str)
                    == Some("https://slsa.dev/provenance/v1")
            })
            .unwrap();
        let envelope = client
            .artifact_payload(&repo, &provenance.digest, &digest, 1 << 20)
            .await
            .unwrap()
            .payload;
        let envelope: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    });
    let parameters = &statement["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(parameters["cookbook"], "cookbook.json", "{statement}");
    assert_eq!(parameters["commit"], commit.as_str(), "{statement}");
    assert_eq!(parameters["site"], "edge", "{statement}");
}

/// A master cookbook without `project` is named as a developer's clone of the repository names
/// it (`shop.git` → `shop`), never after the commit its checkout is named after, so every
/// revision and every site builds the same project.
#[test]
fn a_cookbook_without_project_is_named_after_the_repository_not_the_checkout() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let f = Fixture::new();
    let url = f.file_url();
    let namespace = format!("{registry}/sync-unnamed-{}", std::process::id());
    let mut shop: serde_json::Value =
        serde_json::from_str(&SHOP.replace("127.0.0.1:5000/shop", &format!("{namespace}/shop")))
            .unwrap();
    shop.as_object_mut().unwrap().remove("project");
    f.commit(&serde_json::to_string_pretty(&shop).unwrap(), "no project");
    f.push(&url, false);
    let out = f.sync(&url, &["--site", "edge", "--apply"]);
    expect_code(&out, 0, "sync --apply of a cookbook without project");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.state().join("current/cookbook.lock")).unwrap(),
    )
    .unwrap();
    assert_eq!(lock["project"], "shop", "{lock}");
}

#[test]
fn bad_arguments_exit_2() {
    let f = Fixture::new();
    for (args, needle) in [
        (vec!["sync"], "needs --remote"),
        (
            vec!["sync", "--remote", "x", "--path", "../cookbook.json"],
            "--path",
        ),
        (
            vec!["sync", "--remote", "x", "--interval", "soon"],
            "--interval",
        ),
        (
            vec!["sync", "--remote", "x", "--interval", "0s"],
            "longer than zero",
        ),
        (
            vec!["sync", "status", "--state", "does-not-exist"],
            "no sync state",
        ),
    ] {
        let out = run(&f, &args, &[]);
        expect_code(&out, 2, &args.join(" "));
        expect_contains(&out.stderr, needle, &out);
    }
    // A branch the remote does not have is a bad argument too.
    let url = f.file_url();
    f.commit(&shop_v(1), "first");
    f.push(&url, false);
    let out = f.sync(&url, &["--branch", "nope"]);
    expect_code(&out, 2, "unknown branch");
    expect_contains(&out.stderr, "no branch `nope`", &out);
}

#[test]
fn the_interval_loop_survives_an_unreachable_remote_and_stops_cleanly_on_sigterm() {
    let f = Fixture::new();
    let closed = format!("git://127.0.0.1:{}/shop.git", free_port());
    let state = f.state().display().to_string();
    let log = f.path().join("loop.err");
    let mut child = command(
        &f,
        &[
            "sync",
            "--remote",
            &closed,
            "--state",
            &state,
            "--interval",
            "50ms",
            "--splay",
            "0s",
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    wait_for("three failed rounds", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("retrying next round")
            .count()
            >= 3
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the loop keeps running"
    );
    common::signal(&child, "-TERM");
    let (code, _) = common::exit_within(
        &mut child,
        Duration::from_secs(10),
        "the loop after SIGTERM",
    );
    let mut err = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(0), "stderr:\n{err}");
}

/// A commit that turns an application's source into a symlink leading out of the checkout (to a
/// directory of the host's) is refused, located, and the site stays on its last good revision:
/// with `--apply`, a remote commit must never put the host's files into an image.
#[test]
fn a_source_symlinked_out_of_the_checkout_is_refused_and_the_site_keeps_its_revision() {
    let f = Fixture::new();
    let daemon = GitDaemon::start(&f);
    let url = daemon.url();
    let good = f.commit(&shop_v(1), "first");
    f.push(&url, false);
    expect_code(&f.sync(&url, &["--site", "edge"]), 0, "first sync");

    let secret = f.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("id_rsa"), "not for images\n").unwrap();
    let api = f.work().join("services/api");
    std::fs::remove_dir_all(&api).unwrap();
    std::os::unix::fs::symlink(&secret, &api).unwrap();
    let bad = f.commit(&shop_v(2), "api from the host");
    f.push(&url, false);

    let out = f.sync(&url, &["--site", "edge"]);
    expect_code(&out, 1, "symlink out of the checkout");
    expect_contains(
        &out.stderr,
        &format!("cookbook.json@{}:9:17: error[path/outside]: /applications/api/source: source \"services/api\" leads outside the cookbook's directory through a symlink (to {})", short(&bad), secret.display()),
        &out,
    );
    expect_contains(&out.stderr, &format!("keeping {}", short(&good)), &out);
    assert_eq!(f.current_cookbook(), shop_v(1));
    let s = f.status_json();
    assert_eq!(s["current"]["commit"], good.as_str());
    assert_eq!(s["last_attempt"]["commit"], bad.as_str());
    assert_eq!(s["last_attempt"]["outcome"], "invalid");
    // The refused checkout is not left behind.
    let kept: Vec<String> = std::fs::read_dir(f.state().join("checkouts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept, std::slice::from_ref(&good));
}

/// Issue 10, item 8: SIGTERM to `sync --apply --interval` while its apply runs a slow RUN step
/// reaches the apply: the build is stopped in the engine at once (not after the step), no
/// temporary file is left, the revision is recorded as not applied (the next start retries it),
/// and the loop exits 143.
#[test]
fn sigterm_reaches_the_running_apply_of_an_interval_sync() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let f = Fixture::new();
    let url = f.file_url();
    let namespace = format!("{registry}/sync-term-{}", std::process::id());
    let marker = format!(
        "sync-cancel-marker-{}-{:?}",
        std::process::id(),
        Instant::now()
    )
    .replace([' ', '{', '}', ':', ',', '.'], "-");
    let shop = SHOP.replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    let slow = shop.replace(
        "\"chmod 0755 serve.sh cgi-bin/orders\"",
        &format!("\"sleep 120 && echo {marker}\", \"chmod 0755 serve.sh cgi-bin/orders\""),
    );
    assert_ne!(slow, shop);
    let commit = f.commit(&slow, "a slow api build");
    f.push(&url, false);

    let tmp = tempfile::tempdir().unwrap();
    let state = f.state().display().to_string();
    let log = f.path().join("loop.err");
    let mut child = command(
        &f,
        &[
            "sync",
            "--remote",
            &url,
            "--state",
            &state,
            "--site",
            "edge",
            "--apply",
            "--interval",
            "1h",
        ],
        &[("TMPDIR", &tmp.path().display().to_string())],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    common::wait_until("api's slow step to run", Duration::from_secs(120), || {
        !common::engine_containers_with(&marker).is_empty()
    });
    common::signal(&child, "-TERM");
    let (code, took) = common::exit_within(
        &mut child,
        Duration::from_secs(60),
        "the sync after SIGTERM",
    );
    eprintln!("exited {took:?} after the signal");
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(143), "stderr:\n{err}");
    assert!(
        took < Duration::from_secs(30),
        "the apply was cancelled, not waited for: {:?}\n{err}",
        took
    );
    assert_eq!(
        common::engine_containers_with(&marker),
        Vec::<String>::new()
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let status = f.status_json();
    assert_eq!(status["current"]["commit"], commit.as_str(), "{status}");
    assert_eq!(status["last_applied"], serde_json::Value::Null, "{status}");
    assert_eq!(
        status["last_attempt"]["outcome"], "apply-failed",
        "{status}"
    );
    let errors = status["last_attempt"]["errors"].to_string();
    assert!(errors.contains("stopped by SIGTERM"), "{status}");
}

/// Issue 13, item 7: `sync --deploy` against the real git daemon, engine and registry. After the
/// apply it deploys the site's stages whose rule is met (dev, `automatic` and first; test is
/// `ci-approved` and later stages need test first), converges on the next round, and outside
/// the site's schedule windows deploys nothing and says when the next one opens (exit 0).
/// A signal in the middle of `sync --deploy` rolls the stage back (the deploy's own rule) and
/// ends the sync with the signal's code, as an interrupted apply does — not "deploy failed".
#[test]
fn a_signal_during_sync_deploy_rolls_back_and_exits_with_its_code() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = common::deploy::Project::new("shop", "syncsig");
    let f = Fixture::new();
    let namespace = format!("{registry}/syncsig-{}", std::process::id());
    let shop = std::fs::read_to_string(p.path().join("cookbook.json"))
        .unwrap()
        .replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    f.commit(&shop, "shop");
    f.push(&f.file_url(), false);
    let url = f.file_url();
    let out = f.sync(&url, &["--site", "local", "--apply", "--deploy"]);
    expect_code(&out, 0, "first sync --deploy");
    let before = p.engine_state();
    // A revision whose api would take minutes to be found unhealthy.
    let mut doc: serde_json::Value = serde_json::from_str(&shop).unwrap();
    doc["containers"]["api"]["health"] = serde_json::json!({
        "http": { "port": 8080, "path": "/missing.html" },
        "interval": "1s", "timeout": "1s", "retries": 100
    });
    f.commit(
        &serde_json::to_string_pretty(&doc).unwrap(),
        "api never healthy",
    );
    f.push(&url, false);
    let state = f.state().display().to_string();
    let child = command(
        &f,
        &[
            "sync", "--remote", &url, "--state", &state, "--site", "local", "--apply", "--deploy",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    common::wait_until("the new api to be started", Duration::from_secs(60), || {
        p.engine_state().get("api").map(|s| &s.0) != Some(&before["api"].0)
    });
    std::thread::sleep(Duration::from_millis(300));
    common::signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 143, "sync --deploy stopped by SIGTERM");
    // Said once as the round's deploy step, and once as the error it ends with.
    expect_contains(
        &out.stderr,
        "sync: deploy of stage dev failed: SIGTERM: deploy of release ",
        &out,
    );
    expect_contains(&out.stderr, "\nerror: SIGTERM: deploy of release ", &out);
    expect_contains(
        &out.stderr,
        " stopped: wave 2: interrupted; rolled back to release ",
        &out,
    );
    let after = p.engine_state();
    assert_eq!(
        after["api"].1, before["api"].1,
        "the old api's image runs again"
    );
    assert_eq!(after["db"], before["db"]);
}

#[test]
fn sync_deploy_deploys_the_sites_stages_inside_its_windows_only() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    // A private project name (its containers are removed when `p` is dropped).
    let p = common::deploy::Project::new("shop", "sync");
    let f = Fixture::new();
    let daemon = GitDaemon::start(&f);
    let namespace = format!("{registry}/syncdeploy-{}", std::process::id());
    let shop = std::fs::read_to_string(p.path().join("cookbook.json"))
        .unwrap()
        .replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    f.commit(&shop, "shop, format 1.1");
    f.push(&f.file_url(), false);
    let url = daemon.url();
    let out = f.sync(&url, &["--site", "local", "--apply", "--deploy"]);
    expect_code(&out, 0, "sync --apply --deploy");
    let stdout = text(&out.stdout);
    expect_contains(
        &out.stdout,
        " to local/dev: 4 started, 0 unchanged, 0 removed\n",
        &out,
    );
    expect_contains(
        &out.stdout,
        "sync: not deploying stage test: stage `test` is entered by rule `ci-approved`: no CI approval recorded for these images",
        &out,
    );
    expect_contains(
        &out.stdout,
        "sync: not deploying stage pre-deploy: stage `pre-deploy` is entered by rule `automatic`: these images (images ",
        &out,
    );
    let state = p.engine_state();
    assert_eq!(
        state.keys().cloned().collect::<Vec<_>>(),
        vec!["api", "db", "web", "worker"],
        "{stdout}"
    );
    // The release records live in the sync state, beside the checkouts they outlive.
    let records: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.state().join("deploy/local.releases.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(records["stages"]["dev"].as_array().unwrap().len(), 1);
    assert!(p.engine_state_in("test").is_empty());

    // Next round: already applied, deployed again: nothing restarts.
    let out = f.sync(
        &url,
        &["--site", "local", "--apply", "--deploy", "--format", "json"],
    );
    expect_code(&out, 0, "second sync --deploy");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["apply"]["result"], "already_applied", "{doc}");
    assert_eq!(doc["deploy"][0]["stage"], "dev");
    assert_eq!(doc["deploy"][0]["result"], "deployed");
    assert!(
        doc["deploy"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with(" to local/dev: 0 started, 4 unchanged, 0 removed"),
        "{doc}"
    );
    assert_eq!(doc["deploy"][1]["result"], "skipped");
    assert_eq!(p.engine_state(), state);

    // An approvals file that cannot be read is a failure, not a rule that is not met: the
    // stage that needs it is `failed` (exit 1), never quietly `skipped`.
    let approvals = f.state().join("deploy/approvals.json");
    std::fs::write(&approvals, "{ not json").unwrap();
    let out = f.sync(
        &url,
        &["--site", "local", "--apply", "--deploy", "--format", "json"],
    );
    expect_code(&out, 1, "sync --deploy with a broken approvals file");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["deploy"][1]["result"], "failed", "{doc}");
    std::fs::remove_file(&approvals).unwrap();

    // A schedule whose only window opens the day after tomorrow, 12:00-13:00 UTC.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = now / 86_400;
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][((today + 2 + 3) % 7) as usize];
    let opens =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs((today + 2) * 86_400 + 12 * 3600);
    let mut doc: serde_json::Value = serde_json::from_str(&shop).unwrap();
    doc["federation"]["sites"]["local"]["schedule"] =
        serde_json::json!([{ "days": [day], "from": "12:00", "to": "13:00" }]);
    // A new web image too: outside the window it must not roll out.
    f.commit(
        &serde_json::to_string_pretty(&doc).unwrap(),
        "deploy on one day only",
    );
    std::fs::write(
        f.work().join("services/web/public/index.html"),
        "<p>shop v2</p>\n",
    )
    .unwrap();
    f.commit(&serde_json::to_string_pretty(&doc).unwrap(), "web v2");
    f.push(&f.file_url(), false);
    let out = f.sync(&url, &["--site", "local", "--apply", "--deploy"]);
    expect_code(&out, 0, "sync --deploy outside the window");
    expect_contains(&out.stdout, "sync: applied ", &out);
    expect_contains(
        &out.stdout,
        &format!(
            "sync: outside site local's deploy windows: nothing deployed; the next window opens at {}\n",
            humantime::format_rfc3339_seconds(opens)
        ),
        &out,
    );
    assert!(!text(&out.stdout).contains("deployed release"));
    assert_eq!(p.engine_state(), state, "nothing may restart");
}
