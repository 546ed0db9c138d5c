//! A Dockerfile container's `FROM` images pinned in `cookbook.lock` (hash_version 3), against the
//! real engine and registry that `scripts/services.sh` starts: the first apply pins every external
//! stage, the build runs on the pins (the user's Dockerfile untouched), a tag moved in the registry
//! is reported and not picked up, `cookbook update` moves the pins and rebuilds the container and
//! its `container:` child; a lock written under hash_version 2 still verifies; a `FROM` with a
//! variable of no value is a located exit 2.
//!
//! Moving bases are made as in `tests/it/pinning.rs`: a small cookbook FROM the busybox test
//! image, published with `latest: true`, applied again after a change.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::common;

use common::unique;

/// `cookbook ARGS` in `dir` (CI output: plain lines).
fn run(dir: &Path, args: &[&str]) -> common::Run {
    common::run_in_env(dir, args, &[("CI", "true")])
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn write_json(path: &Path, v: &Value) {
    write(path, &serde_json::to_string_pretty(v).unwrap());
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("cookbook.lock")).unwrap()).unwrap()
}

/// The apply summary's status per container.
fn statuses(run: &common::Run) -> BTreeMap<String, String> {
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()));
    doc["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, c)| (n.clone(), c["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn expect(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A base cookbook in `dir`: one image whose `/srv/b/base.txt` holds `content`, published to
/// `<registry>/base` under its content tag and `latest`.
fn base_book(dir: &Path, registry: &str, content: &str) {
    write(&dir.join("b/base.txt"), content);
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfbase" },
            "applications": { "b": { "source": "b" } },
            "containers": {
                "base": { "base_image": "cookbook-test/busybox:latest", "applications": ["b"] }
            },
            "packaging": { "registry": registry, "latest": true }
        }),
    );
    run(dir, &["apply"]).assert_code(0);
}

/// The Dockerfile under test: two external stages (one through an `ARG` and a build arg), one
/// stage FROM an earlier one; its final image copies what it saw of each base.
const DOCKERFILE: &str = "\
# syntax is the classic builder's
ARG BASE=unset
FROM ${BASE}:latest AS moving
RUN cat /srv/b/base.txt > /seen-moving.txt
FROM moving AS again
FROM --platform=linux/amd64 \\
     STEADY AS steady
RUN cat /srv/b/base.txt > /seen-steady.txt
FROM again
COPY --from=steady /seen-steady.txt /seen-steady.txt
";

/// The cookbook under test: `app` from [`DOCKERFILE`], `child` FROM `app`.
fn main_book(dir: &Path, registry: &str, moving: &str, steady: &str) {
    write(
        &dir.join("app/Dockerfile"),
        &DOCKERFILE.replace("STEADY", steady),
    );
    write(&dir.join("c/c.txt"), "child\n");
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfpins" },
            "applications": { "c": { "source": "c" } },
            "containers": {
                "app": { "dockerfile": "app/Dockerfile", "context": "app",
                         "build_args": { "BASE": moving } },
                "child": { "base_image": "container:app", "applications": ["c"] }
            },
            "packaging": { "registry": registry }
        }),
    );
}

#[test]
fn every_external_stage_is_pinned_built_on_and_moved_only_by_update() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let id = unique("dfpin");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (moving_dir, steady_dir, main) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    let moving_repo = format!("{registry}/{id}-moving/base");
    let steady_repo = format!("{registry}/{id}-steady/base");
    base_book(moving_dir, &format!("{registry}/{id}-moving"), "one\n");
    base_book(steady_dir, &format!("{registry}/{id}-steady"), "steady\n");
    let (moving, steady) = (
        format!("{moving_repo}:latest"),
        format!("{steady_repo}:latest"),
    );
    main_book(main, &format!("{registry}/{id}"), &moving_repo, &steady);

    // The first apply pins both external stages, by the registry's digests, and builds.
    let first = run(main, &["apply", "--format", "json"]);
    first.assert_code(0);
    assert_eq!(
        statuses(&first),
        expect(&[("app", "built"), ("child", "built")])
    );
    let locked = lock(main);
    assert_eq!(locked["hash_version"], 3);
    let bases = locked["bases"].as_object().unwrap();
    assert_eq!(
        bases.keys().collect::<Vec<_>>(),
        [&moving, &steady],
        "{locked:#}"
    );
    for base in [&moving, &steady] {
        assert_eq!(bases[base]["source"], "registry", "{locked:#}");
        assert!(
            first
                .stderr
                .contains(&format!("pinned base image {base} to ")),
            "{}",
            first.context()
        );
    }
    let pinned = bases[&moving]["digest"].as_str().unwrap().to_owned();
    // The user's Dockerfile is never rewritten; the engine got the pins.
    assert_eq!(
        fs::read_to_string(main.join("app/Dockerfile")).unwrap(),
        DOCKERFILE.replace("STEADY", &steady)
    );
    let explain = run(main, &["explain", "app"]);
    explain.assert_code(0);
    let doc: Value = serde_json::from_str(&explain.stdout).unwrap();
    assert_eq!(doc["recipe"]["bases"], locked["bases"]);
    assert_eq!(doc["input_hash"], locked["containers"]["app"]["input_hash"]);
    let digest = |lock: &Value, name: &str| lock["containers"][name]["digest"].clone();

    // The moving base's tag moves in the registry.
    base_book(moving_dir, &format!("{registry}/{id}-moving"), "two\n");

    // Not picked up: nothing builds, the digests stay, the run names the move and `update`.
    let second = run(main, &["apply", "--format", "json"]);
    second.assert_code(0);
    assert_eq!(
        statuses(&second),
        expect(&[("app", "cached"), ("child", "cached")])
    );
    assert!(
        second.stderr.contains(&format!(
            "warning: base image {moving} moved under its tag: pinned {pinned}, now sha256:"
        )),
        "{}",
        second.context()
    );
    assert!(second.stderr.contains("run `cookbook update`"));
    let after_move = lock(main);
    assert_eq!(after_move["bases"], locked["bases"]);
    for name in ["app", "child"] {
        assert_eq!(digest(&after_move, name), digest(&locked, name), "{name}");
    }
    // A rebuild from the sources builds on the pin, not on what the tag names now: the same
    // image, layer for layer (on the moved tag, `/seen-moving.txt` would say "two").
    run(main, &["verify", "--rebuild", "app"]).assert_code(0);

    // `update` moves exactly that pin, and names what the next apply rebuilds.
    let update = run(main, &["update"]);
    update.assert_code(0);
    assert!(
        update
            .stderr
            .contains("update: 1 base(s) moved; the next apply rebuilds app, child"),
        "{}",
        update.context()
    );
    let updated = lock(main);
    assert_ne!(updated["bases"][&moving]["digest"], pinned.as_str());
    assert_eq!(updated["bases"][&steady], locked["bases"][&steady]);

    // The container and its child rebuild, on the new base: new digests.
    let third = run(main, &["apply", "--format", "json"]);
    third.assert_code(0);
    assert_eq!(
        statuses(&third),
        expect(&[("app", "built"), ("child", "built")])
    );
    assert!(!third.stderr.contains("warning"), "{}", third.context());
    let rebuilt = lock(main);
    for name in ["app", "child"] {
        assert_ne!(digest(&rebuilt, name), digest(&locked, name), "{name}");
    }
    run(main, &["verify"]).assert_code(0);
    run(main, &["verify", "--rebuild", "app"]).assert_code(0);
}

/// The `app` container's input hash under `version` with `pins`, computed by the library.
fn hash_under(dir: &Path, version: u32, pins: &cookbook::hash::BasePins) -> String {
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(dir.join("cookbook.json")).unwrap()).unwrap();
    let own = cookbook::load::own_paths(&dir.join("cookbook.json"), &dir.join(".cookbook"));
    let prints = cookbook::hash::fingerprint_plan(
        &cookbook,
        &plan,
        dir,
        &own,
        &cookbook::state::stat_cache::StatCache::disabled(),
        cookbook::hash::Pinning::version(version, pins).unwrap(),
    )
    .unwrap();
    prints[&cookbook::model::Name::parse("app").unwrap()]
        .input_hash
        .clone()
}

#[test]
fn a_lock_written_under_hash_version_2_still_verifies() {
    // Under version 2 a Dockerfile's FROM lines are the author's text: its hash covers no pin,
    // and `verify` recomputes a lock under its own version, so a lock an older cookbook wrote
    // verifies as it did, whatever the lock pins.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(
        &dir.join("app/Dockerfile"),
        "ARG BASE=registry.invalid/base\nFROM ${BASE}:1 AS build\nFROM scratch\nCOPY --from=build /x /x\n",
    );
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfv2" },
            "containers": { "app": { "dockerfile": "app/Dockerfile", "context": "app" } },
            "packaging": { "registry": "127.0.0.1:5000/dfv2" }
        }),
    );
    let none = cookbook::hash::BasePins::new();
    let v2 = hash_under(dir, 2, &none);
    let pin = json!({ "digest": format!("sha256:{}", "7".repeat(64)), "source": "registry" });
    let pins = cookbook::hash::BasePins::from([(
        cookbook::oci::WrittenReference::parse("registry.invalid/base:1").unwrap(),
        cookbook::hash::BasePin {
            digest: cookbook::oci::Digest::parse(pin["digest"].as_str().unwrap()).unwrap(),
            source: cookbook::hash::PinSource::Registry,
        },
    )]);
    assert_eq!(
        hash_under(dir, 2, &pins),
        v2,
        "version 2 reads no Dockerfile pin"
    );
    let v3 = hash_under(dir, 3, &pins);
    assert_ne!(v3, v2);
    let lock_with = |version: u32, hash: &str, bases: Value| {
        let image = format!("127.0.0.1:5000/dfv2/app:{hash}");
        write_json(
            &dir.join("cookbook.lock"),
            &json!({
                "lock_version": 3, "hash_version": version, "project": "dfv2",
                "containers": { "app": {
                    "input_hash": hash, "image": image, "tags": [image],
                    "digest": format!("sha256:{}", "0".repeat(64))
                } },
                "bases": bases
            }),
        );
    };
    // A version-2 lock, with and without a pin of the Dockerfile's image: ok either way.
    for bases in [json!({}), json!({ "registry.invalid/base:1": pin.clone() })] {
        lock_with(2, &v2, bases);
        let out = run(dir, &["verify", "--format", "json"]);
        out.assert_code(0);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["containers"]["app"]["input_hash"], v2.as_str());
    }
    // The same hash claimed under version 3 is not what the sources give: a mismatch.
    lock_with(3, &v2, json!({ "registry.invalid/base:1": pin.clone() }));
    let out = run(dir, &["verify"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("input hash differs from the lock"),
        "{}",
        out.context()
    );
    // Version 3's own hash, with the pin it covers, verifies.
    lock_with(3, &v3, json!({ "registry.invalid/base:1": pin }));
    run(dir, &["verify"]).assert_code(0);
}

#[test]
fn a_from_with_a_variable_of_no_value_is_a_located_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(
        &dir.join("app/Dockerfile"),
        "# the base comes from outside\nARG BASE\nFROM ${BASE}\nRUN true\n",
    );
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfbad" },
            "containers": { "app": { "dockerfile": "app/Dockerfile", "context": "app" } }
        }),
    );
    // Offline commands and apply alike: before anything is resolved or built.
    for args in [&["hash"][..], &["plan"], &["apply"], &["update"]] {
        let out = run(dir, args);
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("app/Dockerfile:3: `FROM ${BASE}` uses `$BASE`, which has no value"),
            "{}",
            out.context()
        );
    }
    // Given a value by the cookbook, it is an image like any other.
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfbad" },
            "containers": { "app": { "dockerfile": "app/Dockerfile", "context": "app",
                                     "build_args": { "BASE": "registry.invalid/b:1" } } }
        }),
    );
    let out = run(dir, &["hash", "--format", "json"]);
    out.assert_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["not_pinned"], json!({ "app": "registry.invalid/b:1" }));
}

#[test]
fn the_build_context_carries_the_pinned_dockerfile_and_the_tree_keeps_its_own() {
    // Offline, through the library: the tar a build sends is the hashed context but for the
    // Dockerfile, whose external FROMs name their pins; a COPY of the tree sees nothing else
    // changed, and the file on disk is the author's.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let text = "ARG REG=registry.invalid\nFROM ${REG}/a:1 AS a\nFROM a\nFROM \\\n  registry.invalid/b:2\nCOPY --from=a / /a\nCOPY . /ctx\n";
    write(&dir.join("app/Dockerfile"), text);
    write(&dir.join("app/data.txt"), "data\n");
    write_json(
        &dir.join("cookbook.json"),
        &json!({
            "manifest_version": "1.0",
            "project": { "name": "dfctx" },
            "containers": { "app": { "dockerfile": "app/Dockerfile", "context": "app" } }
        }),
    );
    let digest =
        |c: &str| cookbook::oci::Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap();
    let reference = |r: &str| cookbook::oci::WrittenReference::parse(r).unwrap();
    let pins = cookbook::hash::BasePins::from([
        (
            reference("registry.invalid/a:1"),
            cookbook::hash::BasePin {
                digest: digest("a"),
                source: cookbook::hash::PinSource::Registry,
            },
        ),
        (
            reference("registry.invalid/b:2"),
            cookbook::hash::BasePin {
                digest: digest("b"),
                source: cookbook::hash::PinSource::Engine,
            },
        ),
    ]);
    let cookbook::load::Parsed { cookbook, plan } =
        cookbook::load::parse(&fs::read(dir.join("cookbook.json")).unwrap()).unwrap();
    let own = cookbook::load::own_paths(&dir.join("cookbook.json"), &dir.join(".cookbook"));
    let prints = cookbook::hash::fingerprint_plan(
        &cookbook,
        &plan,
        dir,
        &own,
        &cookbook::state::stat_cache::StatCache::disabled(),
        cookbook::hash::Pinning::current(&pins),
    )
    .unwrap();
    let fp = &prints[&cookbook::model::Name::parse("app").unwrap()];
    let tar = cookbook::build::write_context(fp).unwrap();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(fs::File::open(tar.path()).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let pinned = format!(
        "ARG REG=registry.invalid\nFROM registry.invalid/a:1@{} AS a\nFROM a\nFROM {}\n\nCOPY --from=a / /a\nCOPY . /ctx\n",
        digest("a"),
        digest("b")
    );
    assert_eq!(String::from_utf8_lossy(&files["Dockerfile"]), pinned);
    assert_eq!(files["data.txt"], b"data\n");
    assert_eq!(files.len(), 2);
    assert_eq!(
        fs::read_to_string(dir.join("app/Dockerfile")).unwrap(),
        text
    );
    assert_eq!(
        fp.base_pins()
            .iter()
            .map(|(r, p)| (r.as_str(), p.digest.clone()))
            .collect::<Vec<_>>(),
        [
            ("registry.invalid/a:1", digest("a")),
            ("registry.invalid/b:2", digest("b"))
        ]
    );
    // The hash covers the file as written, and the pins.
    let manifest = fp.manifest();
    assert_eq!(manifest.recipe["dockerfile_text"], text);
    assert_eq!(
        manifest.recipe["bases"],
        json!({
            "registry.invalid/a:1": { "digest": digest("a").as_str(), "source": "registry" },
            "registry.invalid/b:2": { "digest": digest("b").as_str(), "source": "engine" }
        })
    );
}
