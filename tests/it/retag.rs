//! Mutable tags move in the registry, not through the runner's engine: `apply` retags with a
//! manifest GET and PUT of the same bytes, so the tag's digest is the content tag's and no image
//! is pulled (issue 10, item 5). Against the real engine and registry.

use crate::common;

use std::path::Path;

use cookbook::engine::{DockerEngine, Engine};
use cookbook::registry::{CredentialStore, RegistryClient, Repository, MANIFEST_MEDIA_TYPES};
use serde_json::{json, Value};

/// A name no other test run uses.
use common::unique;

/// A one-container cookbook in `dir`, FROM the test base image, with a label of its own so its
/// image is this test's alone.
fn write_cookbook(dir: &Path, project: &str, registry: &str, packaging: Value) {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        format!("FROM cookbook-test/busybox:latest\nLABEL test.unique={project}\n"),
    )
    .unwrap();
    let mut packaging = packaging;
    packaging["registry"] = json!(registry);
    let cookbook = json!({
        "manifest_version": "1.0",
        "project": { "name": project },
        "applications": {},
        "containers": { "one": { "dockerfile": "ctx/Dockerfile", "context": "ctx" } },
        "packaging": packaging,
    });
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_vec_pretty(&cookbook).unwrap(),
    )
    .unwrap();
}

fn apply(dir: &Path) -> Value {
    let run = common::run_in(dir, &["apply", "--format", "json"]);
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

/// Every local name the container's image could have, and whether the engine has any of them.
async fn local_names(engine: &DockerEngine, names: &[String]) -> Vec<String> {
    let mut present = Vec::new();
    for name in names {
        if engine.image_exists(name).await.unwrap().is_some() {
            present.push(name.clone());
        }
    }
    present
}

#[tokio::test]
async fn policy_tags_move_in_the_registry_with_the_content_tags_digest_and_no_pull() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let docker_host = std::env::var("DOCKER_HOST").unwrap();
    let engine = DockerEngine::connect_to(&docker_host).await.unwrap();
    let client = RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous);
    let dir = tempfile::tempdir().unwrap();
    let project = unique("retag");
    let namespace = format!("{registry}/{project}");
    write_cookbook(
        dir.path(),
        &project,
        &namespace,
        json!({ "tagging": "semver", "version": "1.0.0" }),
    );

    // First run: built and pushed; 1.0.0 put in the registry.
    let first = apply(dir.path());
    assert_eq!(first["built"], 1, "{first}");
    let hash = first["containers"]["one"]["input_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let repo = Repository::parse(&format!("{namespace}/one")).unwrap();
    let content = client
        .manifest_head(&repo, &hash)
        .await
        .unwrap()
        .expect("content tag pushed");
    assert_eq!(
        client.manifest_head(&repo, "1.0.0").await.unwrap(),
        Some(content.clone())
    );

    // The runner forgets the image entirely: every name it had, and the image itself.
    let image_id = engine
        .image_exists(&format!("{namespace}/one:{hash}"))
        .await
        .unwrap()
        .expect("built image in the engine");
    let names = vec![
        format!("cookbook.local/{project}/one:{hash}"),
        format!("{namespace}/one:{hash}"),
        format!("{namespace}/one:1.0.0"),
        format!("{namespace}/one:1.0.1"),
        format!("{namespace}/one:latest"),
    ];
    for name in &names {
        engine.remove_image(name).await.unwrap();
    }
    assert_eq!(local_names(&engine, &names).await, Vec::<String>::new());
    assert!(engine
        .inspect_image(image_id.as_str())
        .await
        .unwrap()
        .is_none());

    // Next version, same inputs: cached in the registry, and two tags move there.
    write_cookbook(
        dir.path(),
        &project,
        &namespace,
        json!({ "tagging": "semver", "version": "1.0.1", "latest": true }),
    );
    let second = apply(dir.path());
    assert_eq!(second["built"], 0, "{second}");
    assert_eq!(second["containers"]["one"]["status"], "cached", "{second}");
    for tag in ["1.0.1", "latest"] {
        assert_eq!(
            client.manifest_head(&repo, tag).await.unwrap(),
            Some(content.clone()),
            "{tag} points at the content tag's manifest"
        );
    }
    assert_eq!(
        second["containers"]["one"]["tags"],
        json!([
            format!("{namespace}/one:{hash}"),
            format!("{namespace}/one:1.0.1"),
            format!("{namespace}/one:latest"),
        ])
    );
    // Nothing was pulled to retag: the engine still has none of the image's names, nor the image.
    assert_eq!(local_names(&engine, &names).await, Vec::<String>::new());
    assert!(engine
        .inspect_image(image_id.as_str())
        .await
        .unwrap()
        .is_none());
}

/// An OCI image index is put back whole, with its own media type and bytes, so its digest stays.
#[tokio::test]
async fn an_image_index_is_retagged_byte_for_byte_with_its_media_type() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("retagindex");
    let namespace = format!("{registry}/{project}");
    write_cookbook(
        dir.path(),
        &project,
        &namespace,
        json!({ "tagging": "content-hash" }),
    );
    let summary = apply(dir.path());
    let hash = summary["containers"]["one"]["input_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous);
    let repo = Repository::parse(&format!("{namespace}/one")).unwrap();
    let image = client.manifest_get(&repo, &hash).await.unwrap().unwrap();

    // An index over the pushed image manifest, put under `multi` with plain HTTP.
    let index_type = MANIFEST_MEDIA_TYPES[0];
    assert_eq!(index_type, "application/vnd.oci.image.index.v1+json");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [{
            "mediaType": image.media_type,
            "digest": image.digest.as_str(),
            "size": image.bytes.len(),
            "platform": { "architecture": "amd64", "os": "linux" },
        }],
    }))
    .unwrap();
    let put = reqwest::Client::new()
        .put(format!(
            "http://{registry}/v2/{project}/one/manifests/multi"
        ))
        .header("Content-Type", index_type)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);

    let digest = client.retag(&repo, "multi", "multi-copy").await.unwrap();
    let copy = client
        .manifest_get(&repo, "multi-copy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copy.bytes, index, "the same bytes");
    assert_eq!(copy.media_type, index_type, "the same media type");
    assert_eq!(copy.digest, digest);
    assert_eq!(
        client.manifest_head(&repo, "multi").await.unwrap(),
        Some(digest)
    );

    // And a tag that names nothing is an error naming it, not a silent success.
    let missing = client.retag(&repo, "no-such-tag", "x").await.unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("no manifest no-such-tag to tag x from"),
        "{missing}"
    );
}
