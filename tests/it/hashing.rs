//! Input hashes and contexts: what must never move a hash, what must always move it.
//!
//! Library-level tests over a cookbook generated in a temp dir: three generated containers
//! (`base`, `child` built FROM `base`, `sibling` which only depends_on `base` at runtime) and one
//! Dockerfile-based container (`docker`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cookbook::context;
use cookbook::hash::{self, Fingerprint};
use cookbook::model::Name;
use cookbook::state::stat_cache::StatCache;
use proptest::prelude::*;
use serde_json::{json, Value};

fn cookbook_json() -> Value {
    json!({
        "manifest_version": "1.0",
        "project": { "name": "demo" },
        "applications": {
            "a": { "source": "src/a", "build_commands": ["make a"], "run_command": ["/srv/a/run"], "env": { "A": "1" } },
            "b": { "source": "src/b", "build_commands": ["make b"], "run_command": "/srv/b/run --flag" },
            "s": { "source": "src/s" }
        },
        "containers": {
            "base": { "base_image": "busybox:1", "applications": ["a"], "env": { "E": "x" }, "build_args": { "V": "1" } },
            "child": { "base_image": "container:base", "applications": ["b"] },
            "sibling": { "base_image": "busybox:1", "applications": ["s"], "depends_on": ["base"] },
            "docker": { "dockerfile": "ctx/Dockerfile", "context": "ctx", "build_args": { "X": "y" } }
        },
        "packaging": { "registry": "127.0.0.1:5000/demo" },
        "federation": { "sites": { "one": { "containers": ["child"] } } }
    })
}

/// Cookbook's own paths for `root/cookbook.json`, as the command line computes them.
fn own(root: &Path) -> context::OwnPaths {
    cookbook::load::own_paths(&root.join("cookbook.json"), &root.join(".cookbook"))
}

/// Writes `rel` under `root`, creating parents.
fn put(root: &Path, rel: &str, content: &[u8], exec: bool) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(
        &p,
        fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
    )
    .unwrap();
}

fn files() -> Vec<(&'static str, &'static [u8], bool)> {
    vec![
        ("src/a/main.c", b"int main(){return 0;}\n", false),
        ("src/a/run", b"#!/bin/sh\nexec ./a\n", true),
        ("src/a/lib/util.h", b"#define X 1\n", false),
        ("src/b/app.py", b"print('b')\n", false),
        ("src/s/index.html", b"<h1>s</h1>\n", false),
        ("ctx/Dockerfile", b"FROM busybox:1\nCOPY . /app\n", false),
        ("ctx/data/x.txt", b"x\n", false),
        ("ctx/.dockerignore", b"*.log\ntmp/\n", false),
    ]
}

fn make_tree(root: &Path, order_reversed: bool) {
    let mut fs_list = files();
    if order_reversed {
        fs_list.reverse();
    }
    for (rel, content, exec) in fs_list {
        put(root, rel, content, exec);
    }
    std::os::unix::fs::symlink("lib/util.h", root.join("src/a/util-link.h")).unwrap();
    fs::write(
        root.join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook_json()).unwrap(),
    )
    .unwrap();
}

struct Result_ {
    hashes: BTreeMap<String, String>,
    tars: BTreeMap<String, Vec<u8>>,
}

fn compute(root: &Path) -> Result_ {
    let bytes = fs::read(root.join("cookbook.json")).unwrap();
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&bytes).unwrap_or_else(|d| panic!("{d:#?}"));
    let prints = hash::fingerprint_plan(
        &cookbook,
        &plan,
        root,
        &own(root),
        &StatCache::disabled(),
        hash::Pinning::current(&pins()),
    )
    .unwrap();
    let tars = prints
        .iter()
        .map(|(n, f)| {
            (
                n.to_string(),
                context::tar::write(&f.entries, &f.digests, Vec::new()).unwrap(),
            )
        })
        .collect();
    Result_ {
        hashes: prints
            .iter()
            .map(|(n, f)| (n.to_string(), f.input_hash().to_owned()))
            .collect(),
        tars,
    }
}

fn fingerprints(root: &Path) -> BTreeMap<Name, Fingerprint> {
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(root.join("cookbook.json")).unwrap()).unwrap();
    hash::fingerprint_plan(
        &cookbook,
        &plan,
        root,
        &own(root),
        &StatCache::disabled(),
        hash::Pinning::current(&pins()),
    )
    .unwrap()
}

/// The pins the tree's bases have (as `cookbook.lock` would hold them).
fn pins() -> hash::BasePins {
    pin_of("busybox:1", &format!("sha256:{}", "1".repeat(64)))
}

fn pin_of(reference: &str, digest: &str) -> hash::BasePins {
    hash::BasePins::from([(
        cookbook::oci::WrittenReference::parse(reference).unwrap(),
        hash::BasePin {
            digest: cookbook::oci::Digest::parse(digest).unwrap(),
            source: hash::PinSource::Registry,
        },
    )])
}

/// Emits JSON with object members in a permuted order and the given indentation.
fn shuffled(v: &Value, seed: &mut u64, indent: usize, depth: usize, out: &mut String) {
    let pad = |d: usize| " ".repeat(indent * d);
    let nl = if indent > 0 { "\n" } else { "" };
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            for i in (1..keys.len()).rev() {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                keys.swap(i, (*seed >> 33) as usize % (i + 1));
            }
            out.push('{');
            out.push_str(nl);
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                shuffled(&m[*k], seed, indent, depth + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push_str(nl);
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                shuffled(x, seed, indent, depth + 1, out);
                if i + 1 < a.len() {
                    out.push_str(", ");
                }
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[test]
fn golden_vectors_of_the_example_cookbooks() {
    // Pinned: any change here is a change to what users' images are named by. If you changed an
    // example's sources on purpose, update the vector; if not, you broke hash stability.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cookbooks");
    // hash_version 1: these are the hashes every lock written before pinning holds, and what
    // `verify` recomputes for such a lock.
    let none = hash::BasePins::new();
    let got = |name: &str| {
        let dir = root.join(name);
        let cookbook::load::Parsed { cookbook, plan } =
            cookbook::load::parse(&fs::read(dir.join("cookbook.json")).unwrap()).unwrap();
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            &dir,
            &own(&dir),
            &StatCache::disabled(),
            hash::Pinning::version(1, &none).unwrap(),
        )
        .unwrap()
        .into_iter()
        .map(|(n, f)| (n.to_string(), f.input_hash.clone()))
        .collect::<BTreeMap<_, _>>()
    };
    let shop = got("shop");
    let expected_shop: BTreeMap<String, String> = [
        (
            "api",
            "6ce5f91fa43fe00f821062abd19270540705c64d6e3e3f58db9a457562c2ef2a",
        ),
        (
            "db",
            "5ec3c8231f3f37d9bebd57fcc6f892b3e5901b0a4ff58b25b67eeff03d4f8c02",
        ),
        (
            "web",
            "965a9cfd23c96a69904f8ce65baabe80002b501949d4902d7d5c1068d41f1085",
        ),
        (
            "worker",
            "70026f99b225e5203957a43ad56f784ba1c3c66a01862d783c611950fab0f0e3",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(shop, expected_shop);
    let api = got("example-api");
    assert_eq!(api.len(), 1);
    assert_eq!(api["api"], EXAMPLE_API_HASH);
}

const EXAMPLE_API_HASH: &str = "ba6a49f5dbf77c57a94ccc3812dcfad8dc24f7b83616cf3ea17d9650164984de";

#[test]
fn golden_vectors_of_hash_version_2() {
    // hash_version 2 of `shop` with its base pinned (as the lock pins it), and not pinned yet.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cookbooks/shop");
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(dir.join("cookbook.json")).unwrap()).unwrap();
    let pinned = pin_of(
        "cookbook-test/busybox:latest",
        &format!("sha256:{}", "ab".repeat(32)),
    );
    let got = |pins: &hash::BasePins| {
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            &dir,
            &own(&dir),
            &StatCache::disabled(),
            hash::Pinning::version(2, pins).unwrap(),
        )
        .unwrap()
    };
    let prints = got(&pinned);
    let hashes: BTreeMap<String, String> = prints
        .iter()
        .map(|(n, f)| (n.to_string(), f.input_hash.clone()))
        .collect();
    let expected: BTreeMap<String, String> = [
        (
            "api",
            "e14742092624d71de9a0ba1e9e244e7c95f4c505b3a546061e6d969dea687336",
        ),
        (
            "db",
            "6277c2d1622a2292ef12a80c83f2a08a2758b41082528e214aac20aa164a473e",
        ),
        (
            "web",
            "500508d9ff77b5bd31383c2fd8281e631abfb9a7a3e71ca21b5f3dbdf93a50a9",
        ),
        (
            "worker",
            "bb4f8e3c52ecb82885139688456b6bd1b4524dde95eeca6e2f77b0ee2e6ff3e0",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(hashes, expected);
    // What changed from version 1, exactly: the version, the recipe's `pinned` member, and the
    // FROM line naming the pinned image.
    let api = prints[&Name::parse("api").unwrap()].manifest();
    assert_eq!(api.hash_version, 2);
    assert_eq!(
        api.recipe["base_image"],
        json!({"image": "cookbook-test/busybox:latest",
               "pinned": {"digest": format!("sha256:{}", "ab".repeat(32)), "source": "registry"}})
    );
    let text = api.recipe["dockerfile_text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "\nFROM cookbook-test/busybox:latest@sha256:{}\n",
            "ab".repeat(32)
        )),
        "{text}"
    );
    // Not pinned yet: `pinned` is null and the FROM line names the tag.
    let unpinned = got(&hash::BasePins::new());
    let api = unpinned[&Name::parse("api").unwrap()].manifest();
    assert_eq!(api.recipe["base_image"]["pinned"], Value::Null);
    assert!(api.recipe["dockerfile_text"]
        .as_str()
        .unwrap()
        .contains("\nFROM cookbook-test/busybox:latest\n"));
    // The Dockerfile container has no external base to pin: its hash moves with the version only.
    assert_ne!(
        api.input_hash,
        prints[&Name::parse("api").unwrap()].input_hash
    );
    assert_eq!(
        unpinned[&Name::parse("db").unwrap()].input_hash,
        prints[&Name::parse("db").unwrap()].input_hash
    );
}

#[test]
fn golden_vectors_of_hash_version_3() {
    // hash_version 3 of `shop` with its base pinned, which `db`'s Dockerfile names too
    // (`FROM cookbook-test/busybox:latest`): one pin for all three.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cookbooks/shop");
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(dir.join("cookbook.json")).unwrap()).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = pin_of("cookbook-test/busybox:latest", &digest);
    let got = |pinning: hash::Pinning<'_>| {
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            &dir,
            &own(&dir),
            &StatCache::disabled(),
            pinning,
        )
        .unwrap()
    };
    let prints = got(hash::Pinning::current(&pinned));
    let hashes: BTreeMap<String, String> = prints
        .iter()
        .map(|(n, f)| (n.to_string(), f.input_hash.clone()))
        .collect();
    let expected: BTreeMap<String, String> = [
        (
            "api",
            "88b3e281a7cdb25831fa2c6897560be6eb81a7c3748c1c1ea648f76f6657db60",
        ),
        (
            "db",
            "d9fb8d662e45eded3e7a1bdbef0b1eaf04f15ebaf38789b13e2fc87fdcffa2be",
        ),
        (
            "web",
            "6ebfa7d5e8d2424a4d7f695f67a3b2f8b446dbde88d959ea13fcb00898a19202",
        ),
        (
            "worker",
            "4ebc985d1917dd185039d392aa57a2a9227d3f6359a802496cac63db60b1e77f",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(hashes, expected);
    // What changed from version 2, exactly: the version everywhere, and the Dockerfile
    // container's `bases` member; its `dockerfile_text` stays the author's file.
    let db = Name::parse("db").unwrap();
    let manifest = prints[&db].manifest();
    assert_eq!(manifest.hash_version, 3);
    assert_eq!(
        manifest.recipe["bases"],
        json!({"cookbook-test/busybox:latest": {"digest": digest, "source": "registry"}})
    );
    let text = manifest.recipe["dockerfile_text"].as_str().unwrap();
    assert!(
        text.starts_with("FROM cookbook-test/busybox:latest\n"),
        "{text}"
    );
    // The engine gets the same Dockerfile with its FROM on the pin, nothing else changed.
    let built =
        String::from_utf8(prints[&db].build_dockerfile.as_deref().unwrap().to_vec()).unwrap();
    assert_eq!(
        built,
        text.replacen(
            "FROM cookbook-test/busybox:latest\n",
            &format!("FROM cookbook-test/busybox:latest@{digest}\n"),
            1
        )
    );
    let v2 = got(hash::Pinning::version(2, &pinned).unwrap());
    // (`worker` names `api`'s hash in its FROM line, so it differs through `api` as well.)
    for (name, print) in prints.iter().filter(|(_, p)| p.dependencies.is_empty()) {
        let (mut now, before) = (print.manifest(), v2[name].manifest());
        assert_eq!(before.hash_version, 2);
        now.hash_version = 2;
        if let Some(recipe) = now.recipe.as_object_mut() {
            recipe.remove("bases");
        }
        now.input_hash = before.input_hash.clone();
        assert_eq!(now, before, "{name}: only the version and `bases` differ");
    }
    // Not pinned yet: `bases` names the image with null, and the engine builds the text as it is.
    let unpinned = got(hash::Pinning::current(&hash::BasePins::new()));
    assert_eq!(
        unpinned[&db].manifest().recipe["bases"],
        json!({"cookbook-test/busybox:latest": null})
    );
    assert!(unpinned[&db].build_dockerfile.is_none());
    assert_eq!(
        unpinned[&db].unpinned().map(|r| r.as_str()),
        Some("cookbook-test/busybox:latest")
    );
}

#[test]
fn a_moved_pin_moves_the_containers_on_that_base_and_their_children_only() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false);
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(dir.path().join("cookbook.json")).unwrap()).unwrap();
    let with = |pins: &hash::BasePins| {
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            dir.path(),
            &own(dir.path()),
            &StatCache::disabled(),
            hash::Pinning::current(pins),
        )
        .unwrap()
    };
    let (before, after) = (
        with(&pins()),
        with(&pin_of("busybox:1", &format!("sha256:{}", "2".repeat(64)))),
    );
    let moved: Vec<String> = before
        .keys()
        .filter(|n| before[*n].input_hash != after[*n].input_hash)
        .map(ToString::to_string)
        .collect();
    // `sibling` names the same base, and so does `docker`'s `FROM busybox:1` (hash_version 3
    // pins a Dockerfile's external images too).
    assert_eq!(moved, ["base", "child", "docker", "sibling"]);
    // Under hash_version 2 a Dockerfile's FROM lines are its author's text: no pin moves it.
    let v2 = |pins: &hash::BasePins| {
        hash::fingerprint_plan(
            &cookbook,
            &plan,
            dir.path(),
            &own(dir.path()),
            &StatCache::disabled(),
            hash::Pinning::version(2, pins).unwrap(),
        )
        .unwrap()
    };
    let (before, after) = (
        v2(&pins()),
        v2(&pin_of("busybox:1", &format!("sha256:{}", "2".repeat(64)))),
    );
    let docker = Name::parse("docker").unwrap();
    assert_eq!(before[&docker].input_hash, after[&docker].input_hash);
    assert!(before[&docker].build_dockerfile.is_none());
}

#[test]
fn same_inputs_same_bytes_across_paths_orders_times_and_modes() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    make_tree(one.path(), false);
    // Another absolute path, files created in the opposite order, other mtimes, other
    // group/other bits, ignored files added, the cookbook reformatted with keys shuffled.
    make_tree(&two.path().join("deeper/checkout"), true);
    let root2 = two.path().join("deeper/checkout");
    for (rel, _, exec) in files() {
        let p = root2.join(rel);
        filetime::set_file_mtime(
            &p,
            filetime::FileTime::from_unix_time(1_000_000_000 + rel.len() as i64, 7),
        )
        .unwrap();
        let mode = if exec { 0o711 } else { 0o600 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    put(&root2, "ctx/debug.log", b"noise", false);
    put(&root2, "ctx/tmp/scratch", b"noise", false);
    put(&root2, "src/a/.git/HEAD", b"ref: refs/heads/main\n", false);
    let mut text = String::new();
    shuffled(&cookbook_json(), &mut 42, 3, 0, &mut text);
    fs::write(root2.join("cookbook.json"), text).unwrap();

    let (a, b) = (compute(one.path()), compute(&root2));
    assert_eq!(a.hashes, b.hashes);
    assert_eq!(a.tars, b.tars, "tar bytes differ");
}

/// Applies one change to a tree and returns which containers' hashes moved.
fn moved_by(change: impl FnOnce(&Path)) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false);
    let before = compute(dir.path());
    change(dir.path());
    let after = compute(dir.path());
    for (name, tar) in &after.tars {
        // The hash covers the context: new tar bytes always mean a new hash (the converse does not
        // hold: build args and labels reach the daemon outside the tar).
        if before.tars[name] != *tar {
            assert_ne!(
                before.hashes[name], after.hashes[name],
                "{name}: tar moved but hash did not"
            );
        }
    }
    before
        .hashes
        .keys()
        .filter(|n| before.hashes[*n] != after.hashes[*n])
        .cloned()
        .collect()
}

fn edit_cookbook(root: &Path, f: impl FnOnce(&mut Value)) {
    let mut v = cookbook_json();
    f(&mut v);
    fs::write(root.join("cookbook.json"), serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn each_input_moves_its_container_and_build_children_only() {
    let base_and_child = vec!["base".to_owned(), "child".to_owned()];
    assert_eq!(
        moved_by(|r| put(r, "src/a/main.c", b"int main(){return 1;}\n", false)),
        base_and_child,
        "one byte"
    );
    assert_eq!(
        moved_by(|r| put(r, "src/a/new.txt", b"", false)),
        base_and_child,
        "added file"
    );
    assert_eq!(
        moved_by(|r| fs::set_permissions(
            r.join("src/a/main.c"),
            fs::Permissions::from_mode(0o744)
        )
        .unwrap()),
        base_and_child,
        "executable bit"
    );
    assert_eq!(
        moved_by(|r| {
            fs::remove_file(r.join("src/a/util-link.h")).unwrap();
            std::os::unix::fs::symlink("main.c", r.join("src/a/util-link.h")).unwrap();
        }),
        base_and_child,
        "symlink target"
    );
    assert_eq!(
        moved_by(|r| edit_cookbook(r, |v| v["containers"]["base"]["env"]["E"] = json!("y"))),
        base_and_child,
        "env"
    );
    assert_eq!(
        moved_by(
            |r| edit_cookbook(r, |v| v["containers"]["base"]["build_args"]["V"] =
                json!("2"))
        ),
        base_and_child,
        "build arg"
    );
    assert_eq!(
        moved_by(
            |r| edit_cookbook(r, |v| v["applications"]["b"]["run_command"] =
                json!("/srv/b/run"))
        ),
        vec!["child".to_owned()],
        "run command"
    );
    assert_eq!(
        moved_by(|r| put(r, "ctx/Dockerfile", b"FROM busybox:2\nCOPY . /app\n", false)),
        vec!["docker"],
        "Dockerfile"
    );
    assert_eq!(
        moved_by(
            |r| edit_cookbook(r, |v| v["containers"]["docker"]["build_args"]["X"] =
                json!("z"))
        ),
        vec!["docker"],
        "dockerfile build arg"
    );
    // What changes no image byte moves no hash.
    let none: Vec<String> = Vec::new();
    assert_eq!(
        moved_by(|r| edit_cookbook(r, |v| {
            v["containers"]["sibling"]["depends_on"] = json!([]);
            v["packaging"] = json!({ "registry": "elsewhere.example/x", "tagging": "git-sha" });
            v["federation"] = json!({ "sites": { "two": { "containers": ["base"] } } });
            v["containers"]["base"]["ci_name"] = json!("renamed");
        })),
        none,
        "depends_on, packaging, federation, ci metadata"
    );
    assert_eq!(
        moved_by(|r| put(r, "ctx/x.log", b"ignored", false)),
        none,
        "ignored file"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Shuffled key order, indentation, mtimes and group/other bits never move a hash or a byte.
    #[test]
    fn invariance(seed in any::<u64>(), indent in 0usize..5, mtime in 0i64..2_000_000_000, group_other in 0u32..0o77) {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path(), seed % 2 == 0);
        let reference = compute(dir.path());
        let mut text = String::new();
        shuffled(&cookbook_json(), &mut seed.clone(), indent, 0, &mut text);
        fs::write(dir.path().join("cookbook.json"), text).unwrap();
        for (rel, _, exec) in files() {
            let p = dir.path().join(rel);
            filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(mtime, 0)).unwrap();
            let owner = if exec { 0o700 } else { 0o600 };
            fs::set_permissions(&p, fs::Permissions::from_mode(owner | group_other)).unwrap();
        }
        let again = compute(dir.path());
        prop_assert_eq!(reference.hashes, again.hashes);
        prop_assert_eq!(reference.tars, again.tars);
    }

    /// Any change to any single byte of any file moves the hash of the container holding it.
    #[test]
    fn any_byte_moves_the_hash(file in 0usize..7, at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (rel, content, exec) = files()[file];
        let mut changed = content.to_vec();
        let i = at.index(changed.len());
        changed[i] ^= xor;
        let owner = if rel.starts_with("ctx/") { "docker" } else if rel.starts_with("src/a") { "base" } else if rel.starts_with("src/b") { "child" } else { "sibling" };
        // A byte of the FROM line can make it name no image (`busyBox:1`, `busybox;1`): then
        // hashing refuses the Dockerfile, naming the line, instead of moving the hash.
        let build_args = BTreeMap::from([("X".to_owned(), "y".to_owned())]);
        if rel == "ctx/Dockerfile"
            && context::from_lines::parse(&String::from_utf8_lossy(&changed), &build_args).is_err()
        {
            let dir = tempfile::tempdir().unwrap();
            make_tree(dir.path(), false);
            put(dir.path(), rel, &changed, exec);
            let cookbook::load::Parsed { cookbook, plan } =
                cookbook::load::parse(&fs::read(dir.path().join("cookbook.json")).unwrap()).unwrap();
            let got = hash::fingerprint_plan(&cookbook, &plan, dir.path(), &own(dir.path()),
                &StatCache::disabled(), hash::Pinning::current(&pins()));
            prop_assert!(matches!(got, Err(context::ContextError::FromLine { .. })), "{:?}", got.map(|_| ()));
            return Ok(());
        }
        let moved = moved_by(|r| put(r, rel, &changed, exec));
        prop_assert!(moved.contains(&owner.to_owned()), "{} changed but {:?} moved", rel, moved);
    }
}

#[test]
fn explain_documents_recompute_with_an_independent_jcs() {
    // The recipe in docs/REPRODUCIBILITY.md: Python's json with sorted keys and no whitespace is
    // RFC 8785 for these documents (ASCII keys, integers only), then sha256.
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/recompute-hash.py");
    // The pins as `cookbook.lock` holds them, for `--lock`.
    let lock = dir.path().join("pins.lock");
    fs::write(
        &lock,
        serde_json::to_vec(&json!({ "bases": pins() })).unwrap(),
    )
    .unwrap();
    let prints = fingerprints(dir.path());
    // hash_version 3: the Dockerfile container's pins are in its document.
    let docker = prints[&Name::parse("docker").unwrap()].manifest();
    assert_eq!(docker.hash_version, 3);
    assert_eq!(
        docker.recipe["bases"]["busybox:1"]["digest"],
        format!("sha256:{}", "1".repeat(64))
    );
    let with_lock = ["--lock".to_owned(), lock.display().to_string()];
    for ((name, fp), args) in prints
        .iter()
        .flat_map(|p| [(p, &with_lock[..0]), (p, &with_lock[..])])
    {
        let doc = fp.manifest().to_pretty_json();
        let mut child = std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is installed");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(doc.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok {}", fp.input_hash),
            "{name}"
        );
        // And the library agrees with itself on the canonical form.
        assert_eq!(fp.manifest().compute_hash(), fp.input_hash);
    }
    // A lock that pins the Dockerfile's image elsewhere is named.
    fs::write(
        &lock,
        serde_json::to_vec(
            &json!({ "bases": pin_of("busybox:1", &format!("sha256:{}", "2".repeat(64))) }),
        )
        .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("python3 \"$0\" --lock \"$1\" < \"$2\"")
        .arg(&script)
        .arg(&lock)
        .arg({
            let doc = dir.path().join("docker.json");
            fs::write(&doc, docker.to_pretty_json()).unwrap();
            doc
        })
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("MISMATCH pin of busybox:1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn parent_is_named_by_hash_not_registry() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false);
    let prints = fingerprints(dir.path());
    let base = prints[&Name::parse("base").unwrap()]
        .input_hash()
        .to_owned();
    let child = &prints[&Name::parse("child").unwrap()].manifest();
    assert_eq!(
        child.dependencies,
        BTreeMap::from([("base".to_owned(), base.clone())])
    );
    let text = child.recipe["dockerfile_text"].as_str().unwrap();
    assert!(
        text.contains(&format!("FROM cookbook.local/demo/base:{base}\n")),
        "{text}"
    );
    assert!(!text.contains("127.0.0.1"), "{text}");
}

/// Every example under cookbooks/ hashes as it did before format 1.1 gained pods, volumes,
/// secrets and ingress (agent, example-api and stages recorded with the release before them;
/// shop's pinned hashes are `golden_vectors_of_hash_version_3`'s, and no hashing code changed
/// since): runtime settings never enter an input hash, and a new version of cookbook never
/// moves an example's hash by accident.
#[test]
fn every_example_keeps_its_input_hashes() {
    let recorded: [(&str, &[(&str, &str)]); 4] = [
        (
            "agent",
            &[(
                "agent",
                "b2c806923a015e70ccd93892262aed9ffc49101198e6f47484e9fd87470d9fcd",
            )],
        ),
        (
            "example-api",
            &[(
                "api",
                "a01bdf990ab7845607aa4be7495cd672cc52416cd63c4e8e042c622b56f4cd97",
            )],
        ),
        (
            "shop",
            &[
                (
                    "api",
                    "b698cde3ae37297699e9e810e41df085bed81adf75f731bfdbda29b138ffd477",
                ),
                (
                    "db",
                    "467ca5416dec2026517a784516eb1a6bb38273c2f21fec88296539c2d9b834ba",
                ),
                (
                    "web",
                    "13bf1fab81d44e257b342600f1135f0e88f4f4080ced2be2d642c0e0a9b31e00",
                ),
                (
                    "worker",
                    "3aa6c6c75005790cd84d1be343c1d4b057bc91914a57fa176994e8929be4a457",
                ),
            ],
        ),
        (
            "stages",
            &[
                (
                    "api",
                    "394a9020fa4379b98b06bc53cb5b0bc03f9f276e180bef6dab49565f448acb3f",
                ),
                (
                    "db",
                    "1163bc03c4814b29118ebfd5bf48d938819aae14c95f97462a044fe4b3e0b80f",
                ),
                (
                    "web",
                    "983ab5d2d98f95e893766d0c2c2afd7c320fe7b8d02a286283005f3ce33f85b8",
                ),
            ],
        ),
    ];
    for (example, hashes) in recorded {
        let dir = tempfile::tempdir().unwrap();
        // Without a lock: unpinned, so the same on every machine (the base image here is built
        // FROM scratch by each machine's scripts/services.sh, so its pinned digest is not).
        crate::common::copy_example(example, dir.path());
        let run = crate::common::run_in(dir.path(), &["hash", "--format", "json"]);
        run.assert_code(0);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let expected: serde_json::Map<String, serde_json::Value> = hashes
            .iter()
            .map(|(c, h)| ((*c).to_owned(), json!(h)))
            .collect();
        assert_eq!(doc["input_hashes"], json!(expected), "{example}");
    }
}
