//! `cookbook verify`, driving the real binary.
//!
//! Pure tests copy `cookbooks/shop` into a temp dir and write the lock by hand from
//! `cookbook hash --format json`, saving each container's explain document in the state
//! directory as `apply` does (`cookbook explain`). Registry tests run against the registry and
//! engine `scripts/services.sh` starts, each under its own registry namespace.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::common;

struct Shop {
    dir: tempfile::TempDir,
    /// Where the cookbook lives inside `dir` ("" or a subdirectory, for git tests).
    sub: String,
}

impl Shop {
    fn new() -> Shop {
        Shop::in_subdir("")
    }

    fn in_subdir(sub: &str) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join(sub);
        fs::create_dir_all(&to).unwrap();
        common::copy_example("shop", &to);
        Shop {
            dir,
            sub: sub.to_owned(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(&self.sub).join(rel)
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let file = self.path("cookbook.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        f(&mut v);
        fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn append(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(text.as_bytes());
        fs::write(path, bytes).unwrap();
    }

    /// Runs `cookbook -f <cookbook> ARGS`, printing command, cwd and output (shown on failure).
    fn run(&self, args: &[&str]) -> Output {
        run_in(self.dir.path(), &self.path("cookbook.json"), args)
    }

    fn hashes(&self) -> BTreeMap<String, String> {
        let out = self.run(&["hash", "--format", "json"]);
        assert!(out.status.success());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["input_hashes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect()
    }

    /// A lock as `apply` would write it for the current sources (digests made up: no registry).
    fn write_lock(&self) -> Value {
        let containers: serde_json::Map<String, Value> = self
            .hashes()
            .into_iter()
            .map(|(name, hash)| {
                let image = format!("127.0.0.1:5000/shop/{name}:{hash}");
                (
                    name,
                    json!({
                        "input_hash": hash,
                        "image": image,
                        "tags": [image],
                        "digest": format!("sha256:{}", "0".repeat(64)),
                    }),
                )
            })
            .collect();
        let lock = json!({
            "lock_version": 1,
            // The hashes are the current version's (`hash`): a lock of that version.
            "hash_version": cookbook::hash::HASH_VERSION,
            "project": "shop",
            "containers": containers,
        });
        fs::write(
            self.path("cookbook.lock"),
            serde_json::to_string_pretty(&lock).unwrap() + "\n",
        )
        .unwrap();
        lock
    }

    fn edit_lock(&self, f: impl FnOnce(&mut Value)) {
        let file = self.path("cookbook.lock");
        let mut v: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        f(&mut v);
        fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// Saves every container's explain document in the state directory, as `apply` does for
    /// what it builds.
    fn save_explain(&self) {
        for (name, hash) in self.hashes() {
            let out = self.run(&["explain", &name]);
            assert!(out.status.success());
            let dir = self.path(&format!(".cookbook/explain/{name}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("{hash}.json")), out.stdout).unwrap();
        }
    }

    /// `verify ARGS --format json`: the exit code and the document.
    fn verify_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["verify", "--format", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    }
}

fn run_in(cwd: &Path, file: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cookbook"))
        .arg("-f")
        .arg(file)
        .args(args)
        .current_dir(cwd)
        .env("CI", "true")
        .env_remove("COOKBOOK_CACHE_DIR")
        .env_remove("COOKBOOK_FILE")
        .output()
        .unwrap();
    eprintln!(
        "$ cookbook -f {} {}\n(cwd {})\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
        file.display(),
        args.join(" "),
        cwd.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The text output's lines, by container: (status, rest of the line).
fn lines(out: &Output) -> BTreeMap<String, (String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let status = parts.next().unwrap().to_owned();
            let name = parts.next().unwrap().to_owned();
            let rest = parts.collect::<Vec<_>>().join(" ");
            (name, (status, rest))
        })
        .collect()
}

fn messages(doc: &Value, container: &str) -> Vec<String> {
    doc["containers"][container]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("{container} has reasons: {doc}"))
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_clean_tree_verifies_ok_for_every_container() {
    let shop = Shop::new();
    shop.write_lock();
    let hashes = shop.hashes();
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(0));
    let got = lines(&out);
    assert_eq!(got.len(), 4);
    for (name, hash) in &hashes {
        assert_eq!(got[name], ("ok".to_owned(), hash.clone()));
    }

    let (code, doc) = shop.verify_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(doc["result"], "ok");
    for (name, hash) in &hashes {
        let c = &doc["containers"][name];
        assert_eq!(c["status"], "ok", "{name}");
        assert_eq!(c["reasons"], json!([]));
        assert_eq!(c["input_hash"], hash.as_str());
        assert_eq!(c["locked_input_hash"], hash.as_str());
    }
}

#[test]
fn each_change_is_named_precisely_from_the_saved_explain_documents() {
    let shop = Shop::new();
    shop.write_lock();
    shop.save_explain();
    shop.append("services/api/serve.sh", "# tampered\n");
    shop.append("services/db/schema.sql", "-- tampered\n");
    shop.edit(|v| {
        v["containers"]["db"]["build_args"]["DB_VERSION"] = json!("2");
        v["applications"]["web"]["env"]["API_URL"] = json!("http://elsewhere:8080");
    });

    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    let first = |name: &str| {
        assert_eq!(got[name].0, "MISMATCH", "{name}");
        got[name].1.clone()
    };
    assert!(
        first("api").starts_with("file services/api/serve.sh changed"),
        "{got:?}"
    );
    assert!(
        first("db").starts_with("file services/db/schema.sql changed"),
        "{got:?}"
    );
    assert!(
        first("web").starts_with("env API_URL changed (application web)"),
        "{got:?}"
    );
    // worker is built FROM api: its own sources did not change, its parent did.
    assert!(first("worker").starts_with("parent api changed"), "{got:?}");

    let (code, doc) = shop.verify_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(doc["result"], "mismatch");
    assert_eq!(
        messages(&doc, "api"),
        vec!["file services/api/serve.sh changed"]
    );
    assert_eq!(
        messages(&doc, "db"),
        vec![
            "file services/db/schema.sql changed",
            "build arg DB_VERSION changed"
        ]
    );
    let api = &doc["containers"]["api"];
    assert_eq!(api["reasons"][0]["context_path"], "api/serve.sh");
    assert_ne!(api["input_hash"], api["locked_input_hash"]);

    // A Dockerfile-based container's Dockerfile is named as such.
    shop.append("services/db/Dockerfile", "# tampered\n");
    let (_, doc) = shop.verify_json(&[]);
    assert_eq!(
        messages(&doc, "db")[0],
        "Dockerfile changed (services/db/Dockerfile)"
    );
}

#[test]
fn without_a_saved_explain_document_the_reason_says_there_is_no_record() {
    let shop = Shop::new();
    shop.write_lock();
    shop.append("services/web/index.html", "<!-- tampered -->\n");
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got["web"].0, "MISMATCH");
    assert_eq!(
        got["web"].1,
        "input hash differs from the lock (no record of what was built; run `cookbook explain`)"
    );
    assert_eq!(got["api"].0, "ok");

    // A corrupt saved document is not believed.
    let lock: Value =
        serde_json::from_slice(&fs::read(shop.path("cookbook.lock")).unwrap()).unwrap();
    let locked = lock["containers"]["web"]["input_hash"].as_str().unwrap();
    let dir = shop.path(".cookbook/explain/web");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("{locked}.json")),
        b"{\"not\": \"a manifest\"}",
    )
    .unwrap();
    assert!(lines(&shop.run(&["verify"]))["web"]
        .1
        .starts_with("input hash differs from the lock (no record"));
}

#[test]
fn a_tampered_lock_entry_is_detected_with_a_precise_reason() {
    let shop = Shop::new();
    shop.write_lock();
    shop.save_explain();

    // Only the input hash edited: the entry contradicts its own content tag.
    let forged = "f".repeat(64);
    shop.edit_lock(|v| v["containers"]["api"]["input_hash"] = json!(forged));
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got["api"].0, "MISMATCH");
    assert!(
        got["api"].1.starts_with(&format!(
            "lock entry is inconsistent: input_hash {forged} but image 127.0.0.1:5000/shop/api:"
        )),
        "{got:?}"
    );
    assert_eq!(got["db"].0, "ok");

    // An entry swapped, consistently, for what another spec of api produces (whose explain
    // document was saved): the reason names the field.
    shop.write_lock();
    let original = fs::read(shop.path("cookbook.json")).unwrap();
    shop.edit(|v| v["containers"]["api"]["env"]["SHOP_TIER"] = json!("backend"));
    shop.save_explain();
    let other = shop.hashes()["api"].clone();
    fs::write(shop.path("cookbook.json"), original).unwrap();
    shop.edit_lock(|v| {
        let image = format!("127.0.0.1:5000/shop/api:{other}");
        v["containers"]["api"]["input_hash"] = json!(other);
        v["containers"]["api"]["image"] = json!(image);
        v["containers"]["api"]["tags"] = json!([image]);
    });
    let (code, doc) = shop.verify_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(messages(&doc, "api")[0], "env SHOP_TIER changed");
    assert_eq!(doc["containers"]["worker"]["status"], "ok");

    // Entries for containers the cookbook does not have, and containers missing from the lock.
    shop.write_lock();
    shop.edit_lock(|v| {
        let web = v["containers"]["web"].take();
        v["containers"].as_object_mut().unwrap().remove("web");
        v["containers"]["gone"] = web;
    });
    let got = lines(&shop.run(&["verify"]));
    assert_eq!(
        got["gone"],
        (
            "MISMATCH".to_owned(),
            "lock entry for a container the cookbook no longer has".to_owned()
        )
    );
    assert_eq!(
        got["web"],
        ("MISMATCH".to_owned(), "not in the lock".to_owned())
    );

    // A lock written by a version of the hash algorithm this build does not compute (it
    // computes 1, 2 and 3: tests/it/pinning.rs verifies a version-1 lock, and
    // tests/it/dockerfile_pins.rs a version-2 one).
    shop.write_lock();
    shop.edit_lock(|v| v["hash_version"] = json!(0));
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(lines(&out)
        .values()
        .all(|(status, reason)| status == "MISMATCH"
            && reason.starts_with(
                "the lock was made with hash version 0; this cookbook hashes with version 3"
            )));
}

#[test]
fn a_bad_lock_file_is_invalid_input_with_its_location() {
    let shop = Shop::new();
    shop.write_lock();
    fs::write(
        shop.path("cookbook.lock"),
        "{\n  \"lock_version\": 1,\n  \"hash_version\": \"one\"\n}\n",
    )
    .unwrap();
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cookbook.lock:3:") && stderr.contains("not a valid lock file"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // No lock at all, a lock named with --lock that is missing, and another project's lock.
    fs::remove_file(shop.path("cookbook.lock")).unwrap();
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lock file at"));
    shop.write_lock();
    let out = shop.run(&["verify", "--lock", "elsewhere.lock"]);
    assert_eq!(out.status.code(), Some(2));
    shop.edit_lock(|v| v["project"] = json!("other"));
    let out = shop.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the lock is for project `other`"));
}

fn commit_all(repo: &git2::Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::new("test", "test@example.invalid", &git2::Time::new(0, 0)).unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

/// Commits the working tree, deleted files included.
fn commit_all_removing(repo: &git2::Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    commit_all(repo, message)
}

#[test]
fn verify_rev_checks_an_older_commit_against_its_own_lock() {
    // The cookbook in a subdirectory of the repository: its relative path must be kept.
    let shop = Shop::in_subdir("deploy/shop");
    fs::write(shop.dir.path().join(".gitignore"), ".cookbook/\n").unwrap();
    let repo = git2::Repository::init(shop.dir.path()).unwrap();
    shop.write_lock();
    shop.save_explain();
    let first = commit_all(&repo, "shop with its lock");
    shop.append("services/api/serve.sh", "# changed after the release\n");
    commit_all(&repo, "change api, lock not updated");
    shop.append("services/web/index.html", "<!-- uncommitted -->\n");

    let index_before = fs::read(shop.dir.path().join(".git/index")).unwrap();
    let statuses = |repo: &git2::Repository| -> Vec<(String, git2::Status)> {
        repo.statuses(None)
            .unwrap()
            .iter()
            .map(|s| (s.path().unwrap().to_owned(), s.status()))
            .collect()
    };
    let status_before = statuses(&repo);

    // The older commit matches its own lock, whatever the working tree holds.
    for rev in [first.to_string(), "HEAD~1".to_owned()] {
        let out = shop.run(&["verify", "--rev", &rev]);
        assert_eq!(out.status.code(), Some(0), "{rev}");
        let got = lines(&out);
        assert_eq!(got.len(), 4);
        assert!(got.values().all(|(s, _)| s == "ok"), "{got:?}");
    }
    let (code, doc) = shop.verify_json(&["--rev", "HEAD~1"]);
    assert_eq!(code, 0);
    assert_eq!(doc["revision"], first.to_string().as_str());

    // The newer commit (and the working tree) do not: api changed since its lock.
    let out = shop.run(&["verify", "--rev", "HEAD"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(
        got["api"],
        (
            "MISMATCH".to_owned(),
            "file services/api/serve.sh changed".to_owned()
        )
    );
    assert_eq!(got["web"].0, "ok", "the uncommitted change is not in HEAD");
    let got = lines(&shop.run(&["verify"]));
    assert_eq!(got["api"].0, "MISMATCH");
    assert_eq!(
        got["web"],
        (
            "MISMATCH".to_owned(),
            "file services/web/index.html changed".to_owned()
        )
    );

    // --lock overrides the revision's own lock.
    let shop_lock = shop.path("cookbook.lock");
    let out = shop.run(&[
        "verify",
        "--rev",
        "HEAD",
        "--lock",
        shop_lock.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));

    // The user's index and working tree were never touched.
    assert_eq!(
        fs::read(shop.dir.path().join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(statuses(&repo), status_before);
    assert!(!shop.dir.path().join(".git/worktrees").exists());

    // An unknown revision, and a directory outside any repository, are invalid input.
    let out = shop.run(&["verify", "--rev", "no-such-rev"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown git revision `no-such-rev`"));
    // A revision without a lock is named by its path in the repository.
    fs::remove_file(shop.path("cookbook.lock")).unwrap();
    commit_all_removing(&repo, "drop the lock");
    let out = shop.run(&["verify", "--rev", "HEAD"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no deploy/shop/cookbook.lock"),
        "names the lock by its repository path"
    );
    let plain = Shop::new();
    plain.write_lock();
    assert_eq!(
        plain.run(&["verify", "--rev", "HEAD"]).status.code(),
        Some(2)
    );
}

// ---------------------------------------------------------------------------------------------
// Against the real registry and engine.

/// A shop copy publishing to `<test registry>/<unique>/…`, applied.
fn applied_shop(tag: &str) -> Option<(Shop, String)> {
    let registry = common::test_registry()?;
    let shop = Shop::new();
    let unique = common::unique(&format!("verify-{tag}-"));
    let registry = format!("{registry}/{unique}");
    let r = registry.clone();
    shop.edit(|v| v["packaging"]["registry"] = Value::String(r));
    let out = shop.run(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "apply");
    Some((shop, registry))
}

/// Builds a one-line image FROM the test base with `labels`, tags it `repo:tag` and pushes it:
/// the registry's manifest under that tag is replaced.
fn push_impostor(repo: &str, tag: &str, labels: BTreeMap<String, String>) -> String {
    use cookbook::engine::{BuildRequest, DockerEngine, Engine};
    use cookbook::registry::Repository;
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("context.tar");
    {
        let mut builder = tar::Builder::new(fs::File::create(&tar_path).unwrap());
        let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
            .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
        let dockerfile = format!("FROM {base}\nCMD [\"true\"]\n");
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .unwrap();
        builder.finish().unwrap();
    }
    common::block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let mut request = BuildRequest::new(&tar_path);
        request.labels = labels;
        request.tags = vec![format!("{repo}:{tag}")];
        engine.build(&request, &|_| {}).await.unwrap();
        engine
            .push(&Repository::parse(repo).unwrap(), tag, None)
            .await
            .unwrap()
            .to_string()
    })
}

#[test]
fn registry_images_verify_and_a_repushed_image_is_caught() {
    let Some((shop, registry)) = applied_shop("label") else {
        return;
    };
    let (code, doc) = shop.verify_json(&["--registry"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["registry_checked"], true);
    for name in ["api", "db", "web", "worker"] {
        let c = &doc["containers"][name];
        assert_eq!(c["status"], "ok", "{name}");
        assert_eq!(c["registry_digest"], c["digest"], "{name}");
    }

    // Someone re-pushes web's content tag with an image labelled for another input hash.
    let lock: Value =
        serde_json::from_slice(&fs::read(shop.path("cookbook.lock")).unwrap()).unwrap();
    let web_hash = lock["containers"]["web"]["input_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let impostor = push_impostor(
        &format!("{registry}/web"),
        &web_hash,
        BTreeMap::from([("dev.cookbook.input-hash".to_owned(), "0".repeat(64))]),
    );
    assert_ne!(
        impostor,
        lock["containers"]["web"]["digest"].as_str().unwrap()
    );
    let out = shop.run(&["verify", "--registry"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got["web"].0, "MISMATCH");
    assert!(
        got["web"].1.starts_with(&format!(
            "registry digest differs: {registry}/web:{web_hash} is {impostor}"
        )),
        "{got:?}"
    );
    for name in ["api", "db", "worker"] {
        assert_eq!(got[name].0, "ok", "{name}");
    }
    let (_, doc) = shop.verify_json(&["--registry"]);
    let web = messages(&doc, "web");
    assert_eq!(web.len(), 2, "{web:?}");
    assert!(
        web[1].starts_with(&format!(
            "label differs: dev.cookbook.input-hash of {registry}/web:{web_hash} is {}",
            "0".repeat(64)
        )),
        "{web:?}"
    );
    assert_eq!(
        doc["containers"]["web"]["registry_digest"],
        impostor.as_str()
    );

    // Even a lock rewritten to the re-pushed digest does not pass: the label says otherwise.
    shop.edit_lock(|v| v["containers"]["web"]["digest"] = json!(impostor));
    let got = lines(&shop.run(&["verify", "--registry"]));
    assert!(got["web"].1.starts_with("label differs"), "{got:?}");
    // Without --registry, the sources still match the lock.
    assert_eq!(shop.run(&["verify"]).status.code(), Some(0));
}

#[test]
fn a_deleted_image_is_digest_missing_and_an_unreachable_registry_is_exit_3() {
    let Some((shop, registry)) = applied_shop("gone") else {
        return;
    };
    let lock: Value =
        serde_json::from_slice(&fs::read(shop.path("cookbook.lock")).unwrap()).unwrap();
    let db = &lock["containers"]["db"];
    let digest = db["digest"].as_str().unwrap();
    // Delete db's manifest through the registry's HTTP API (the test registry allows deletes).
    let (host, path) = registry.split_once('/').unwrap();
    let url = format!("http://{host}/v2/{path}/db/manifests/{digest}");
    let status = common::block_on(async {
        reqwest::Client::new()
            .delete(&url)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 202, "DELETE {url}");

    let out = shop.run(&["verify", "--registry"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(
        got["db"],
        (
            "MISMATCH".to_owned(),
            format!(
                "digest missing from registry: no {digest} under {}",
                db["image"].as_str().unwrap()
            )
        )
    );
    assert_eq!(got["api"].0, "ok");

    // A registry nobody answers at (the cookbook's, so its own entries are asked there): exit
    // 3, naming it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    shop.edit(|v| {
        let moved = v["packaging"]["registry"].as_str().unwrap().replacen(
            host,
            &format!("127.0.0.1:{port}"),
            1,
        );
        v["packaging"]["registry"] = json!(moved);
    });
    shop.edit_lock(|v| {
        for (_, entry) in v["containers"].as_object_mut().unwrap() {
            let image =
                entry["image"]
                    .as_str()
                    .unwrap()
                    .replacen(host, &format!("127.0.0.1:{port}"), 1);
            entry["image"] = json!(image);
        }
    });
    let out = shop.run(&["verify", "--registry"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{port}")));
}

/// Issue 10, item 4: a registry-named image applied with `--no-push` has no manifest digest in
/// the lock (version 2), so `verify --registry` says "not published" rather than comparing its
/// local image id with whatever the registry holds under that name (a false tamper alarm).
#[test]
fn a_no_push_entry_is_not_published_never_a_registry_digest_mismatch() {
    let Some((shop, registry)) = applied_shop("nopush") else {
        return;
    };
    // The registry has every content tag; the next apply keeps everything local.
    let out = shop.run(&["apply", "--no-push"]);
    assert_eq!(out.status.code(), Some(0), "apply --no-push");
    let lock: Value =
        serde_json::from_slice(&fs::read(shop.path("cookbook.lock")).unwrap()).unwrap();
    assert_eq!(lock["lock_version"], 3);
    let web = &lock["containers"]["web"];
    assert_eq!(web.get("digest"), None, "{web}");
    let image_id = web["image_id"].as_str().unwrap();
    assert!(image_id.starts_with("sha256:"), "{web}");

    let out = shop.run(&["verify", "--registry"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    for name in ["api", "db", "web", "worker"] {
        let image = lock["containers"][name]["image"].as_str().unwrap();
        assert!(image.starts_with(&registry), "{image}");
        assert_eq!(
            got[name],
            (
                "MISMATCH".to_owned(),
                format!("not published: {image} is a local image (apply --no-push)")
            ),
            "{name}"
        );
    }
    let (_, doc) = shop.verify_json(&["--registry"]);
    for name in ["api", "db", "web", "worker"] {
        let kinds: Vec<&str> = doc["containers"][name]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["not_published"], "{name}: no tamper alarm");
        assert_eq!(doc["containers"][name]["digest"], Value::Null);
        assert_eq!(
            doc["containers"][name]["image_id"],
            lock["containers"][name]["image_id"]
        );
    }

    // Published again: the same images verify in the registry, digests and labels included.
    let out = shop.run(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "apply");
    let (code, doc) = shop.verify_json(&["--registry"]);
    assert_eq!(code, 0, "{doc}");
}

/// Issue 12, item 7: `verify --locked`, the lock check for CI before `apply` (like `cargo
/// --locked`): offline, exit 0 when every container's entry has the input hash its sources hash
/// to now, exit 1 naming each stale container and why, exit 2 without a lock.
#[test]
fn verify_locked_fails_when_the_lock_is_stale_and_names_why() {
    let shop = Shop::new();
    let out = shop.run(&["verify", "--locked"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: no lock file at {}: run `cookbook apply` first, it builds the images and writes the lock\n",
            shop.path("cookbook.lock").display()
        )
    );

    shop.write_lock();
    shop.save_explain();
    let hashes = shop.hashes();
    let out = shop.run(&["verify", "--locked"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "ok        api     {}\nok        db      {}\nok        web     {}\nok        worker  {}\n",
            hashes["api"], hashes["db"], hashes["web"], hashes["worker"]
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "verify --locked: 4 up to date, 0 stale\n"
    );

    // A source edit (api, and worker built FROM it) and a container missing from the lock (db).
    shop.append("services/api/serve.sh", "# edited\n");
    shop.edit_lock(|v| {
        v["containers"].as_object_mut().unwrap().remove("db");
    });
    let out = shop.run(&["verify", "--locked"]);
    assert_eq!(out.status.code(), Some(1));
    let hashes = shop.hashes();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "STALE     api     file services/api/serve.sh changed\n\
             STALE     db      not in the lock\n\
             ok        web     {}\n\
             STALE     worker  parent api changed (+1 more; --format json lists all)\n",
            hashes["web"]
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "verify --locked: 1 up to date, 3 stale\nerror: {} is stale for 3 of 4 container(s): \
             run `cookbook apply` to update it\n",
            shop.path("cookbook.lock").display()
        )
    );
    let out = shop.run(&["verify", "--locked", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["result"], "stale");
    assert_eq!(doc["containers"]["db"]["reasons"][0]["kind"], "not_in_lock");

    // Offline by definition: no registry check.
    let out = shop.run(&["verify", "--locked", "--registry"]);
    assert_eq!(out.status.code(), Some(2));
}
