//! Issue 22's "Done when" for attestations, on the real engine and registry: every container of
//! shop gets a signed provenance statement and SBOM as referrers, its image digests are those of
//! a run without signing, a no-op apply writes nothing, the by-hand check of
//! docs/SUPPLY-CHAIN.md passes; and `verify --attestations` and `deploy --require-attestations`
//! name each failure: no attestation, another key, a statement about another image, sources
//! changed after the build, an SBOM edited in the registry.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use cookbook::oci::Digest;
use cookbook::registry::{Artifact, RegistryClient, Repository};

use crate::common::{self, deploy::edit, run_in, unique, Run};

const SHOP: [&str; 4] = ["api", "db", "web", "worker"];

/// shop under the project name `project`, publishing to `registry/<repos>`.
fn shop(dir: &Path, project: &str, repos: &str) {
    std::fs::create_dir_all(dir).unwrap();
    common::copy_example("shop", dir);
    edit(dir, |doc| {
        doc["project"]["name"] = project.into();
        doc["packaging"]["registry"] = repos.into();
    });
}

fn key(dir: &Path, name: &str) -> (String, String) {
    let prefix = dir.join(name);
    run_in(
        dir,
        &["key", "generate", "--output", prefix.to_str().unwrap()],
    )
    .assert_code(0);
    let path = |ext: &str| format!("{}.{ext}", prefix.display());
    (path("key"), path("pub"))
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("cookbook.lock")).unwrap()).unwrap()
}

fn digest_of(lock: &Value, container: &str) -> String {
    lock["containers"][container]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `kind`s of a container's reasons in `verify --format json`'s document.
fn kinds(doc: &Value, container: &str) -> Vec<(String, String)> {
    doc["containers"][container]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["attestation"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has(doc: &Value, container: &str, kind: &str, attestation: &str) -> bool {
    kinds(doc, container).contains(&(kind.to_owned(), attestation.to_owned()))
}

/// The referrers index of `digest` in `repo` (the tag schema: the test registry has no API),
/// and the digest of that index.
fn referrers(registry: &str, repo: &str, digest: &str) -> (Value, String) {
    let url = format!(
        "http://{registry}/v2/{repo}/manifests/sha256-{}",
        digest.trim_start_matches("sha256:")
    );
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-D", "-", "-H"])
        .arg("Accept: application/vnd.oci.image.index.v1+json")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {url}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let index_digest = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("docker-content-digest:")
                .then(|| l.split_once(':').unwrap().1.trim().to_owned())
        })
        .unwrap();
    (serde_json::from_str(body).unwrap(), index_digest)
}

fn verify(dir: &Path, public: &str) -> (Run, Value) {
    let run = run_in(
        dir,
        &[
            "verify",
            "--attestations",
            "--key",
            public,
            "--format",
            "json",
        ],
    );
    let doc = json(&run);
    (run, doc)
}

#[test]
fn shop_is_attested_without_changing_a_digest_and_a_no_op_apply_writes_nothing() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let project = unique("attest");
    let (signed, unsigned) = (work.path().join("signed"), work.path().join("unsigned"));
    shop(&signed, &project, &format!("{registry}/{project}-signed"));
    shop(
        &unsigned,
        &project,
        &format!("{registry}/{project}-unsigned"),
    );
    let (private, public) = key(work.path(), "release");

    let first = run_in(
        &signed,
        &["apply", "--signing-key", &private, "--format", "json"],
    );
    first.assert_code(0);
    let first = json(&first);
    run_in(&unsigned, &["apply"]).assert_code(0);
    let (signed_lock, unsigned_lock) = (lock(&signed), lock(&unsigned));

    let mut indexes = BTreeMap::new();
    for name in SHOP {
        // Signing changes no image: the same digest as the run without a key.
        let digest = digest_of(&signed_lock, name);
        assert_eq!(digest, digest_of(&unsigned_lock, name), "{name}");
        let report = &first["containers"][name];
        assert_eq!(report["status"], "built", "{name}: {report}");
        assert_eq!(report["attestations"]["pushed"], true, "{name}: {report}");
        // Two referrers: a provenance statement and an SBOM, in-toto artifacts naming the key.
        let repo = format!("{project}-signed/{name}");
        let (index, index_digest) = referrers(&registry, &repo, &digest);
        let mut types: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["artifactType"], "application/vnd.in-toto+json");
                m["annotations"]["in-toto.io/predicate-type"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        types.sort();
        assert_eq!(
            types,
            [
                "https://slsa.dev/provenance/v1",
                "https://spdx.dev/Document/v2.3"
            ],
            "{name}: {index}"
        );
        indexes.insert(name, index_digest);
    }

    // Both verify with the public key.
    let (run, doc) = verify(&signed, &public);
    run.assert_code(0);
    assert_eq!(doc["attestations_checked"], true);

    // A no-op apply builds nothing and writes nothing: the attestations were there already,
    // and every index is as it was.
    let again = run_in(
        &signed,
        &["apply", "--signing-key", &private, "--format", "json"],
    );
    again.assert_code(0);
    let again = json(&again);
    assert_eq!(again["built"], 0, "{again}");
    for name in SHOP {
        let report = &again["containers"][name];
        assert_eq!(report["status"], "cached", "{name}: {report}");
        assert_eq!(report["attestations"]["pushed"], false, "{name}: {report}");
        assert_eq!(
            report["attestations"]["provenance"],
            first["containers"][name]["attestations"]["provenance"]
        );
        let digest = digest_of(&signed_lock, name);
        let (_, index_digest) = referrers(&registry, &format!("{project}-signed/{name}"), &digest);
        assert_eq!(
            index_digest, indexes[name],
            "{name}: the index was rewritten"
        );
    }

    // docs/SUPPLY-CHAIN.md's check by hand: curl, jq, openssl, sha256sum.
    let script = documented_check();
    let scratch = tempfile::tempdir().unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("cd {} && {script}", scratch.path().display()))
        .current_dir(&signed)
        .env("REG", &registry)
        .env("REPO", format!("{project}-signed/api"))
        .env("CONTAINER", "api")
        .env("DIGEST", digest_of(&signed_lock, "api"))
        .env("PUB", &public)
        .env(
            "COOKBOOK",
            format!(
                "{} -f {}",
                common::bin(),
                signed.join("cookbook.json").display()
            ),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "the documented check failed\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "api: {} attested, input hash {}",
            digest_of(&signed_lock, "api"),
            signed_lock["containers"]["api"]["input_hash"]
                .as_str()
                .unwrap()
        )),
        "{stdout}"
    );

    // Unsigned images: no attestation, of either kind, for every container (exit 1).
    let (run, doc) = verify(&unsigned, &public);
    run.assert_code(1);
    for name in SHOP {
        assert!(
            has(&doc, name, "attestation_missing", "provenance"),
            "{name}: {doc}"
        );
        assert!(
            has(&doc, name, "attestation_missing", "sbom"),
            "{name}: {doc}"
        );
    }
    // And a deploy that requires attestations runs none of them.
    let refused = run_in(
        &unsigned,
        &[
            "deploy",
            "--site",
            "local",
            "--stage",
            "dev",
            "--require-attestations",
            "--key",
            &public,
        ],
    );
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("web: no provenance attestation is attached"),
        "{}",
        refused.context()
    );
    assert!(common::engine_containers_with(&project).is_empty());
    // Another key: named, with the one that did sign.
    let (_, other) = key(work.path(), "other");
    let (run, doc) = verify(&signed, &other);
    run.assert_code(1);
    assert!(
        has(&doc, "api", "attestation_wrong_key", "provenance"),
        "{doc}"
    );
    let text = run_in(&signed, &["verify", "--attestations", "--key", &other]);
    text.assert_code(1);
    assert!(
        text.stdout
            .contains("the provenance attestation is signed by sha256:"),
        "{}",
        text.context()
    );
}

/// The ```sh block after `<!-- supply-chain-test -->` in docs/SUPPLY-CHAIN.md.
fn documented_check() -> String {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/SUPPLY-CHAIN.md")).unwrap();
    let after = doc
        .split_once("<!-- supply-chain-test -->\n```sh\n")
        .expect("docs/SUPPLY-CHAIN.md has the marked block")
        .1;
    after.split_once("\n```").unwrap().0.to_owned()
}

fn client() -> RegistryClient {
    RegistryClient::new().unwrap()
}

/// The envelope of `container`'s attestation of `predicate_type`, as the registry serves it.
fn envelope(repo: &Repository, digest: &Digest, predicate_type: &str) -> Vec<u8> {
    common::block_on(async {
        let client = client();
        let (list, _) = client.referrers(repo, digest, None).await.unwrap();
        let referrer = list
            .iter()
            .find(|r| {
                r.annotations
                    .get("in-toto.io/predicate-type")
                    .map(String::as_str)
                    == Some(predicate_type)
            })
            .unwrap();
        client
            .artifact_payload(repo, &referrer.digest, digest, 64 << 20)
            .await
            .unwrap()
            .payload
    })
}

/// Attaches `envelope` to `digest` in `repo` as an attestation of `predicate_type`.
fn attach(repo: &Repository, digest: &Digest, predicate_type: &str, envelope: Vec<u8>) {
    common::block_on(async {
        let client = client();
        let subject = client.descriptor(repo, digest).await.unwrap();
        let artifact = Artifact {
            artifact_type: "application/vnd.in-toto+json".to_owned(),
            layer_media_type: "application/vnd.dsse.envelope.v1+json".to_owned(),
            payload: envelope,
            annotations: BTreeMap::from([(
                "in-toto.io/predicate-type".to_owned(),
                predicate_type.to_owned(),
            )]),
        };
        client.attach(repo, &subject, &artifact).await.unwrap();
    })
}

const SPDX: &str = "https://spdx.dev/Document/v2.3";
const SLSA: &str = "https://slsa.dev/provenance/v1";

#[test]
fn verify_and_deploy_name_a_foreign_statement_an_edited_sbom_and_moved_sources() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = common::deploy::Project::new("shop", "attest");
    let repos = format!("{registry}/{}", unique("attest-deploy"));
    edit(p.path(), |doc| {
        doc["packaging"]["registry"] = repos.clone().into()
    });
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key(keys.path(), "release");
    run_in(p.path(), &["apply", "--signing-key", &private]).assert_code(0);
    let locked = lock(p.path());
    let repo = |name: &str| Repository::parse(&format!("{repos}/{name}")).unwrap();
    let digest = |name: &str| Digest::parse(&digest_of(&locked, name)).unwrap();

    // Everything verifies, so the deploy that requires it runs.
    let deploy = |public: &str| {
        let args = [
            "deploy",
            "--site",
            "local",
            "--stage",
            "dev",
            "--require-attestations",
            "--key",
            public,
        ];
        run_in(p.path(), &args)
    };
    let ran = run_in(
        p.path(),
        &[
            "deploy",
            "--site",
            "local",
            "--stage",
            "dev",
            "--require-attestations",
            "--key",
            &public,
            "--format",
            "json",
        ],
    );
    ran.assert_code(0);
    assert_eq!(
        json(&ran)["started"].as_array().unwrap().len(),
        4,
        "{}",
        ran.context()
    );
    let (_, other) = key(keys.path(), "other");
    let refused = deploy(&other);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("signed by sha256:"),
        "{}",
        refused.context()
    );

    // db's signed provenance, attached to worker's image: a statement about another image.
    attach(
        &repo("worker"),
        &digest("worker"),
        SLSA,
        envelope(&repo("db"), &digest("db"), SLSA),
    );
    // web's SBOM, its statement edited after signing (the signature kept).
    let mut sbom: Value =
        serde_json::from_slice(&envelope(&repo("web"), &digest("web"), SPDX)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let statement = b64.decode(sbom["payload"].as_str().unwrap()).unwrap();
    let edited = String::from_utf8(statement).unwrap().replacen(
        "\"SPDXRef-DOCUMENT\"",
        "\"SPDXRef-DOCUMENT-2\"",
        1,
    );
    sbom["payload"] = b64.encode(edited).into();
    attach(
        &repo("web"),
        &digest("web"),
        SPDX,
        serde_json::to_vec(&sbom).unwrap(),
    );

    let (run, doc) = verify(p.path(), &public);
    run.assert_code(1);
    assert!(
        has(&doc, "worker", "attestation_subject", "provenance"),
        "{doc}"
    );
    assert!(has(&doc, "web", "attestation_tampered", "sbom"), "{doc}");
    assert_eq!(kinds(&doc, "db"), vec![], "{doc}");
    assert_eq!(kinds(&doc, "api"), vec![], "{doc}");
    let refused = deploy(&public);
    refused.assert_code(1);
    for needle in [
        "worker: the signed provenance statement is about sha256:",
        "web: the SBOM attestation sha256:",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}\n{}",
            refused.context()
        );
    }

    // A source of api changed after the build: its provenance (and worker's, built FROM it) no
    // longer names what the sources give.
    std::fs::write(
        p.path().join("services/api/cgi-bin/orders"),
        "#!/bin/sh\necho changed after the build\n",
    )
    .unwrap();
    let (run, doc) = verify(p.path(), &public);
    run.assert_code(1);
    assert!(has(&doc, "api", "provenance_input", ""), "{doc}");
    let refused = deploy(&public);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("api: the provenance names input hash"),
        "{}",
        refused.context()
    );
}
