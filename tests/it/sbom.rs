//! `cookbook sbom CONTAINER`: the SPDX document of the image the lock names, read from the local
//! engine; and the hash manifest digest a provenance statement names, recomputed by hand from
//! `explain` as docs/BUILD-TYPE.md says.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::common::{self, unique};

fn run(dir: &Path, args: &[&str]) -> common::Run {
    common::run_in_env(dir, args, &[("CI", "true")])
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const REQUIREMENTS: &str = "flask==3.0.2\nrequests>=2\n";

/// A generated container with a pinned requirements.txt, and a second one never applied.
fn project(dir: &Path, registry: Option<&str>, id: &str) {
    write(&dir.join("a/main.sh"), "echo hello from the sbom test\n");
    write(&dir.join("a/requirements.txt"), REQUIREMENTS);
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
    let mut cookbook = json!({
        "manifest_version": "1.0",
        "project": { "name": id },
        "applications": {
            "a": {
                "source": "a",
                "language": "python",
                "dependencies": "requirements.txt",
                "build_commands": ["chmod 0755 main.sh"]
            }
        },
        "containers": {
            "c": { "base_image": base, "applications": ["a"] },
            "other": { "base_image": "scratch", "applications": ["a"] }
        }
    });
    if let Some(registry) = registry {
        cookbook["packaging"] = json!({ "registry": format!("{registry}/{id}") });
    }
    write(
        &dir.join("cookbook.json"),
        &serde_json::to_string_pretty(&cookbook).unwrap(),
    );
}

fn document(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

#[test]
fn sbom_lists_the_apps_files_and_pinned_packages_the_same_on_every_run() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let id = unique("sbom");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, Some(&registry), &id);

    // Nothing published yet: which command makes the lock is named.
    let none = run(dir, &["sbom", "c"]);
    none.assert_code(2);
    assert!(none.stderr.contains("cookbook apply"), "{}", none.context());

    run(dir, &["apply", "c"]).assert_code(0);
    let lock: Value =
        serde_json::from_slice(&fs::read(dir.join("cookbook.lock")).unwrap()).unwrap();
    let locked = &lock["containers"]["c"];

    let first = run(dir, &["sbom", "c"]);
    first.assert_code(0);
    let second = run(dir, &["sbom", "c", "--format", "json"]);
    second.assert_code(0);
    assert_eq!(first.stdout, second.stdout, "two runs differ");

    let doc = document(&first);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    // The described image is the one published: the lock's manifest digest.
    let image = &doc["packages"][0];
    assert_eq!(image["SPDXID"], "SPDXRef-Image");
    assert_eq!(image["versionInfo"], locked["digest"], "{}", first.stdout);
    assert_eq!(doc["name"], locked["image"]);
    // The base is the lock's pin.
    let base = image_package(&doc, "SPDXRef-Base");
    let pin = lock["bases"].as_object().unwrap().values().next().unwrap();
    assert_eq!(base["versionInfo"], pin["digest"]);

    // The application's files, with the SHA-256 of their sources.
    for name in ["main.sh", "requirements.txt"] {
        let expected = hex::encode(Sha256::digest(fs::read(dir.join("a").join(name)).unwrap()));
        let suffix = format!("/a/{name}");
        let file = doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["fileName"].as_str().unwrap().ends_with(&suffix))
            .unwrap_or_else(|| panic!("no {suffix} in\n{}", first.stdout));
        let sha256 = file["checksums"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["algorithm"] == "SHA256")
            .unwrap();
        assert_eq!(sha256["checksumValue"], expected.as_str(), "{name}");
    }
    // Nothing of the base's layers: busybox's own files are the base package's.
    assert!(
        !doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["fileName"] == "./bin/busybox"),
        "{}",
        first.stdout
    );

    // The pinned requirement with its purl; the range is not claimed.
    let names: Vec<(&str, &str, &str)> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .starts_with("SPDXRef-Package-")
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap(),
                p["externalRefs"][0]["referenceLocator"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, vec![("flask", "3.0.2", "pkg:pypi/flask@3.0.2")]);

    spdx_valid(dir, &first.stdout);

    // A container the lock does not name.
    let other = run(dir, &["sbom", "other"]);
    other.assert_code(1);
    assert!(
        other.stderr.contains("cookbook apply"),
        "{}",
        other.context()
    );
    // A typo: the nearest container is named.
    let typo = run(dir, &["sbom", "cc", "--format", "json"]);
    typo.assert_code(2);
    assert!(
        typo.stderr.contains("did you mean `c`?"),
        "{}",
        typo.context()
    );
    assert_eq!(document(&typo)["exit_code"], 2);

    // Sources changed since the build: their packages would not be the image's.
    write(&dir.join("a/requirements.txt"), "flask==3.0.3\n");
    let stale = run(dir, &["sbom", "c"]);
    stale.assert_code(1);
    assert!(
        stale.stderr.contains("changed since its image was built"),
        "{}",
        stale.context()
    );
    write(&dir.join("a/requirements.txt"), REQUIREMENTS);

    // The image gone from the engine: how to get it back is named.
    let image_id = locked["image_id"].as_str().unwrap().to_owned();
    common::block_on(async {
        use cookbook::engine::{DockerEngine, Engine};
        let engine = DockerEngine::connect().await.unwrap();
        assert!(engine.remove_image(&image_id).await.unwrap());
    });
    let gone = run(dir, &["sbom", "c"]);
    gone.assert_code(1);
    assert!(
        gone.stderr.contains("not in the local engine") && gone.stderr.contains("apply --no-push"),
        "{}",
        gone.context()
    );
}

fn image_package<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == id)
        .unwrap_or_else(|| panic!("no package {id}"))
}

/// The document passes the SPDX project's own validator (`pyspdxtools`, from PyPI's
/// `spdx-tools`), when it is installed; CI installs it.
fn spdx_valid(dir: &Path, document: &str) {
    let path = dir.join("sbom.spdx.json");
    fs::write(&path, document).unwrap();
    let out = match Command::new("pyspdxtools")
        .arg("-i")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("pyspdxtools: {e}");
            common::skip_or_fail();
            return;
        }
    };
    assert!(
        out.status.success(),
        "pyspdxtools refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hash manifest digest a provenance statement names is `explain`'s document, canonicalized
/// and hashed: by RFC 8785, and by hand with `jq -cS . | sha256sum` (docs/BUILD-TYPE.md).
#[test]
fn the_manifest_digest_is_explains_document_canonicalized() {
    use cookbook::ops::{CookbookFile, Workspace};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, None, &unique("sbomhash"));
    // A name and content that JSON escapes, so the canonical form is not the trivial one.
    write(&dir.join("a/ünï \"quoted\".txt"), "tab\there\n");

    let explain = run(dir, &["explain", "c"]);
    explain.assert_code(0);
    let ws = Workspace::open(CookbookFile::on_disk(dir.join("cookbook.json"))).unwrap();
    let prints = ws.fingerprints(&ws.plan).unwrap();
    let name = cookbook::model::Name::parse("c").unwrap();
    let ours = cookbook::attest::provenance::manifest_digest(&prints[&name]);

    let value: Value = serde_json::from_str(&explain.stdout).unwrap();
    let jcs = serde_json_canonicalizer::to_vec(&value).unwrap();
    assert_eq!(
        ours.as_str(),
        format!("sha256:{}", hex::encode(Sha256::digest(&jcs)))
    );

    let shell = format!(
        "{} explain c | jq -cS . | tr -d '\\n' | sha256sum",
        common::bin()
    );
    let by_hand = match Command::new("sh")
        .arg("-c")
        .arg(&shell)
        .current_dir(dir)
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        other => {
            eprintln!("sh -c {shell}: {other:?}");
            common::skip_or_fail();
            return;
        }
    };
    assert_eq!(
        format!("sha256:{}", by_hand.split_whitespace().next().unwrap()),
        ours.as_str()
    );
}

/// The golden SBOM (`src/attest/sbom.rs`'s unit tests pin its bytes) is valid SPDX 2.3 for the
/// SPDX project's own validator: the field names, the required SHA1, the verification codes.
#[test]
fn the_golden_sbom_is_valid_spdx() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = common::repo_root().join("tests/golden/attest/sbom.spdx.json");
    spdx_valid(tmp.path(), &fs::read_to_string(golden).unwrap());
}
