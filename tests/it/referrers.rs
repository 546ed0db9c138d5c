//! OCI 1.1 artifacts attached to an image (issue 22, "Attached, not embedded"), through the
//! library's `RegistryClient`.
//!
//! Against the real registry (distribution 2.8: no referrers API, so the tag schema runs): an
//! image pushed, two artifacts of two types attached, listed (all, and by type), read back; the
//! same bytes attached again write nothing; the image's digest never moves; two writers racing on
//! the tag-schema index lose nothing that a second attach does not put back. Against hostile
//! stand-ins on loopback (`common::http::FakeServer`): a referrers API answer whose referrer is
//! attached to another image, a payload that is not the bytes its digest names, referrers lists
//! past their cap, a payload redirected to another host, and a registry that honours `If-Match`
//! on the tag-schema index.

use std::collections::BTreeMap;
use std::time::Duration;

use cookbook::registry::{
    referrers_tag, Artifact, BodyKind, Credential, CredentialStore, Descriptor, Digest,
    ReferrersSource, RegistryClient, RegistryError, Repository, MAX_MANIFEST_BYTES,
};
use cookbook::retry::RetryPolicy;

use crate::common;
use crate::common::http::{response, FakeServer};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const PROVENANCE: &str = "application/vnd.in-toto+json";
const SBOM: &str = "application/spdx+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    }
}

fn anonymous() -> RegistryClient {
    RegistryClient::new()
        .unwrap()
        .with_retry(quick_retry())
        .with_credentials(CredentialStore::Anonymous)
}

fn artifact(artifact_type: &str, payload: &str, note: &str) -> Artifact {
    Artifact {
        artifact_type: artifact_type.into(),
        layer_media_type: DSSE.into(),
        payload: payload.as_bytes().to_vec(),
        annotations: BTreeMap::from([("dev.cookbook.note".into(), note.into())]),
    }
}

/// Pushes a one-layer OCI image (`marker` makes it this test's alone) as `repo:v1`; its digest.
async fn push_image(client: &RegistryClient, repo: &Repository, marker: &str) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","marker":"{marker}"}}"#);
    let layer = format!("layer of {marker}");
    let mut descriptors = Vec::new();
    for (name, bytes) in [("config", config.as_bytes()), ("layer", layer.as_bytes())] {
        let digest = Digest::sha256_of(bytes);
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        client
            .blob_upload(repo, &digest, &path, bytes.len() as u64)
            .await
            .unwrap();
        descriptors.push((digest, bytes.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
    );
    client
        .manifest_put(repo, "v1", OCI_MANIFEST, manifest.as_bytes())
        .await
        .unwrap()
}

#[tokio::test]
async fn artifacts_attach_beside_an_image_list_by_type_and_read_back_on_the_real_registry() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let client = anonymous();
    let repo = Repository::parse(&format!("{registry}/{}", common::unique("referrers"))).unwrap();
    let image = push_image(&client, &repo, &common::unique("image")).await;

    let subject = client.descriptor(&repo, &image).await.unwrap();
    assert_eq!(subject.digest, image);
    assert_eq!(subject.media_type, OCI_MANIFEST);
    let served = client.manifest_get(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(subject.size, served.bytes.len() as u64);

    // Nothing attached yet: no index tag is "no referrers".
    let (none, source) = client.referrers(&repo, &image, None).await.unwrap();
    assert_eq!((none, source), (vec![], ReferrersSource::TagSchema));

    let provenance = artifact(PROVENANCE, r#"{"payloadType":"provenance"}"#, "one");
    let sbom = artifact(SBOM, r#"{"payloadType":"sbom"}"#, "two");
    let first = client.attach(&repo, &subject, &provenance).await.unwrap();
    let second = client.attach(&repo, &subject, &sbom).await.unwrap();
    assert!(first.pushed && second.pushed);
    assert_ne!(first.manifest, second.manifest);

    let (all, source) = client.referrers(&repo, &image, None).await.unwrap();
    assert_eq!(source, ReferrersSource::TagSchema);
    let listed: Vec<_> = all.iter().map(|r| r.digest.clone()).collect();
    assert_eq!(
        listed,
        vec![first.manifest.clone(), second.manifest.clone()]
    );
    let (sboms, _) = client.referrers(&repo, &image, Some(SBOM)).await.unwrap();
    assert_eq!(sboms.len(), 1, "{sboms:?}");
    assert_eq!(sboms[0].digest, second.manifest);
    assert_eq!(sboms[0].artifact_type.as_deref(), Some(SBOM));
    assert_eq!(sboms[0].annotations, sbom.annotations);

    for (attached, sent) in [(&first, &provenance), (&second, &sbom)] {
        let read = client
            .artifact_payload(&repo, &attached.manifest, &image, 1 << 20)
            .await
            .unwrap();
        assert_eq!(read.payload, sent.payload);
        assert_eq!(
            read.artifact_type.as_deref(),
            Some(sent.artifact_type.as_str())
        );
        assert_eq!(read.layer_media_type, DSSE);
        assert_eq!(read.annotations, sent.annotations);
    }
    // A cap below the payload's size refuses it before a byte is read.
    let error = client
        .artifact_payload(&repo, &first.manifest, &image, 4)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::TooLarge {
                limit: 4,
                received: 0,
                ..
            }
        ),
        "{error}"
    );

    // The same bytes again: nothing written, the index where it was.
    let tag = referrers_tag(&image);
    let index = client.manifest_head(&repo, &tag).await.unwrap().unwrap();
    let again = client.attach(&repo, &subject, &provenance).await.unwrap();
    assert_eq!(again.manifest, first.manifest);
    assert!(!again.pushed);
    assert_eq!(
        client.manifest_head(&repo, &tag).await.unwrap(),
        Some(index)
    );

    // Attached, not embedded: the image is the same manifest.
    assert_eq!(
        client.manifest_head(&repo, "v1").await.unwrap(),
        Some(image.clone())
    );
    assert_eq!(client.descriptor(&repo, &image).await.unwrap(), subject);
    // A referrer read as another image's is refused, naming both.
    let elsewhere = push_image(&client, &repo, &common::unique("other")).await;
    let error = client
        .artifact_payload(&repo, &first.manifest, &elsewhere, 1 << 20)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, RegistryError::OtherSubject { found, subject, .. } if *found == image && *subject == elsewhere),
        "{text}"
    );
    assert!(
        text.contains(image.as_str()) && text.contains(elsewhere.as_str()),
        "{text}"
    );
}

#[tokio::test]
async fn writers_racing_on_the_tag_schema_index_lose_nothing_a_second_attach_does_not_restore() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let client = anonymous();
    let repo =
        Repository::parse(&format!("{registry}/{}", common::unique("referrers-race"))).unwrap();
    let image = push_image(&client, &repo, &common::unique("race")).await;
    let subject = client.descriptor(&repo, &image).await.unwrap();
    let artifacts: Vec<Artifact> = (0..4)
        .map(|i| artifact(PROVENANCE, &format!("payload {i}"), &i.to_string()))
        .collect();
    // Distribution 2.8 ignores If-Match: the last writer of the index wins, and an entry can
    // drop out. Every manifest is pushed whatever the index says.
    let first: Vec<_> =
        futures_util::future::join_all(artifacts.iter().map(|a| client.attach(&repo, &subject, a)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert!(first.iter().all(|a| a.pushed));
    // Attaching them again, one by one, lists every one.
    for (a, attached) in artifacts.iter().zip(&first) {
        let again = client.attach(&repo, &subject, a).await.unwrap();
        assert_eq!(again.manifest, attached.manifest);
    }
    let (listed, _) = client.referrers(&repo, &image, None).await.unwrap();
    let mut listed: Vec<_> = listed.into_iter().map(|r| r.digest).collect();
    let mut expected: Vec<_> = first.into_iter().map(|a| a.manifest).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

/// An artifact manifest attached to `subject`, with one layer `layer` of `size` bytes.
fn artifact_manifest(subject: &Digest, layer: &Digest, size: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{PROVENANCE}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"{DSSE}","digest":"{layer}","size":{size}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":100}}}}"#,
        Digest::sha256_of(b"{}")
    )
}

fn index_of(referrer: &Digest, size: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{referrer}","size":{size},"artifactType":"{PROVENANCE}"}}]}}"#
    )
}

/// The request line's method and path.
fn target(head: &str) -> (&str, &str) {
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

/// A registry with the referrers API that lists, for `subject`, one referrer whose manifest is
/// `manifest`, and serves `blob` for any blob.
async fn registry_serving(subject: &Digest, manifest: String, blob: &'static str) -> FakeServer {
    let referrer = Digest::sha256_of(manifest.as_bytes());
    let index = index_of(&referrer, manifest.len());
    let referrers_path = format!("/v2/cookbook/x/referrers/{subject}");
    let manifest_path = format!("/v2/cookbook/x/manifests/{referrer}");
    FakeServer::start(move |_, head| match target(head) {
        ("GET", path) if path == referrers_path => {
            response("200 OK", &[("Content-Type", OCI_INDEX)], &index)
        }
        ("GET", path) if path == manifest_path => {
            response("200 OK", &[("Content-Type", OCI_MANIFEST)], &manifest)
        }
        ("GET", path) if path.starts_with("/v2/cookbook/x/blobs/") => response("200 OK", &[], blob),
        _ => response("404 Not Found", &[], ""),
    })
    .await
}

#[tokio::test]
async fn a_referrer_attached_to_another_image_is_refused_naming_both() {
    let subject = Digest::sha256_of(b"the image");
    let other = Digest::sha256_of(b"another image");
    let manifest = artifact_manifest(&other, &Digest::sha256_of(b"payload"), 7);
    let referrer = Digest::sha256_of(manifest.as_bytes());
    let server = registry_serving(&subject, manifest, "payload").await;
    let client = anonymous();

    let (listed, source) = client
        .referrers(&server.repo(), &subject, None)
        .await
        .unwrap();
    assert_eq!(source, ReferrersSource::Api);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, referrer);
    let error = client
        .artifact_payload(&server.repo(), &referrer, &subject, 1 << 20)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, RegistryError::OtherSubject { found, .. } if *found == other),
        "{text}"
    );
    assert!(
        text.contains(subject.as_str()) && text.contains(other.as_str()),
        "{text}"
    );
    // The blob was never asked for.
    assert!(
        !server.requests().iter().any(|r| r.contains("/blobs/")),
        "{:?}",
        server.requests()
    );
}

#[tokio::test]
async fn a_payload_that_is_not_its_digests_bytes_is_refused() {
    let subject = Digest::sha256_of(b"the image");
    let layer = Digest::sha256_of(b"payload");
    let manifest = artifact_manifest(&subject, &layer, 7);
    let referrer = Digest::sha256_of(manifest.as_bytes());
    let client = anonymous();

    // Same size, other bytes.
    let server = registry_serving(&subject, manifest.clone(), "paylo4d").await;
    let error = client
        .artifact_payload(&server.repo(), &referrer, &subject, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::DigestMismatch { what: "payload", expected, .. } if *expected == layer),
        "{error}"
    );
    // Longer than its descriptor: cut at its size.
    let server = registry_serving(&subject, manifest.clone(), "payload and more").await;
    let error = client
        .artifact_payload(&server.repo(), &referrer, &subject, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            RegistryError::TooLarge {
                body: BodyKind::Blob,
                limit: 7,
                ..
            }
        ),
        "{error}"
    );
    // A manifest that is not the bytes its digest names.
    let wrong = Digest::sha256_of(b"not that manifest");
    let error = client
        .artifact_payload(&server.repo(), &wrong, &subject, 1 << 20)
        .await
        .unwrap_err();
    // The fake has no manifest under that digest: missing, named.
    assert!(
        matches!(&error, RegistryError::ManifestMissing { digest, .. } if *digest == wrong),
        "{error}"
    );
    let lying = FakeServer::start(move |_, _| {
        response("200 OK", &[("Content-Type", OCI_MANIFEST)], &manifest)
    })
    .await;
    let error = client
        .artifact_payload(&lying.repo(), &wrong, &subject, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::DigestMismatch { what: "manifest", expected, .. } if *expected == wrong),
        "{error}"
    );
    assert!(error.to_string().contains(wrong.as_str()), "{error}");
}

#[tokio::test]
async fn referrers_lists_past_their_cap_are_refused() {
    let subject = Digest::sha256_of(b"the image");
    let client = anonymous();
    // A referrers API page past the cap, with an honest Content-Length: refused before reading.
    let huge = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"pad":"{}"}}"#,
        "x".repeat(MAX_MANIFEST_BYTES as usize)
    );
    let api =
        FakeServer::start(move |_, _| response("200 OK", &[("Content-Type", OCI_INDEX)], &huge))
            .await;
    let error = client
        .referrers(&api.repo(), &subject, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::TooLarge {
                body: BodyKind::ReferrersIndex,
                limit: MAX_MANIFEST_BYTES,
                ..
            }
        ),
        "{error}"
    );
    // Pages that add up past the cap: said of the whole list.
    let page = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let pages = FakeServer::start(move |n, _| {
        let next = format!("</v2/cookbook/x/referrers/page{n}>; rel=\"next\"");
        response(
            "200 OK",
            &[("Content-Type", OCI_INDEX), ("Link", &next)],
            &page,
        )
    })
    .await;
    let error = client
        .referrers(&pages.repo(), &subject, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::TooLarge { body: BodyKind::ReferrersIndex, limit: MAX_MANIFEST_BYTES, declared: Some(declared), .. } if declared > MAX_MANIFEST_BYTES),
        "{error}"
    );
    assert!(pages.requests().len() <= 5, "{}", pages.requests().len());
    // No referrers API, and a tag-schema index past the cap.
    let tag_path = format!("/v2/cookbook/x/manifests/{}", referrers_tag(&subject));
    let tag = FakeServer::start(move |_, head| match target(head) {
        ("GET", path) if path == tag_path => response(
            "200 OK",
            &[("Content-Type", OCI_INDEX)],
            &"x".repeat(MAX_MANIFEST_BYTES as usize + 1),
        ),
        _ => response("404 Not Found", &[], "404 page not found"),
    })
    .await;
    let error = client
        .referrers(&tag.repo(), &subject, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::TooLarge {
                body: BodyKind::ReferrersIndex,
                ..
            }
        ),
        "{error}"
    );
    // A tag that holds something other than an index: a located refusal, not "no referrers".
    let tag_path = format!("/v2/cookbook/x/manifests/{}", referrers_tag(&subject));
    let not_index = FakeServer::start(move |_, head| match target(head) {
        ("GET", path) if path == tag_path => response(
            "200 OK",
            &[("Content-Type", OCI_MANIFEST)],
            &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#),
        ),
        _ => response("404 Not Found", &[], ""),
    })
    .await;
    let error = client
        .referrers(&not_index.repo(), &subject, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::BadReferrersIndex { subject: s, .. } if *s == subject),
        "{error}"
    );
}

#[tokio::test]
async fn a_payload_redirected_to_another_host_is_fetched_without_credentials_and_checked() {
    let subject = Digest::sha256_of(b"the image");
    let layer = Digest::sha256_of(b"payload");
    let manifest = artifact_manifest(&subject, &layer, 7);
    let referrer = Digest::sha256_of(manifest.as_bytes());
    // Storage on another loopback address: another host to the client.
    let storage =
        FakeServer::start_on("127.0.0.2", |_, _, _| response("200 OK", &[], "payload")).await;
    let storage_url = format!("http://{}/blob?sig=s3cret", storage.host());
    let manifest_path = format!("/v2/cookbook/x/manifests/{referrer}");
    let basic = "Basic YWxpY2U6czNjcmV0"; // alice:s3cret
    let registry = FakeServer::start(move |_, head| {
        if !head.contains(&format!("authorization: {basic}")) {
            return response(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"test\"")],
                "",
            );
        }
        match target(head) {
            ("GET", path) if path == manifest_path => {
                response("200 OK", &[("Content-Type", OCI_MANIFEST)], &manifest)
            }
            ("GET", path) if path.starts_with("/v2/cookbook/x/blobs/") => {
                response("307 Temporary Redirect", &[("Location", &storage_url)], "")
            }
            _ => response("404 Not Found", &[], ""),
        }
    })
    .await;
    let client = RegistryClient::new()
        .unwrap()
        .with_retry(quick_retry())
        .with_credentials(CredentialStore::Fixed(BTreeMap::from([(
            registry.host(),
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into(),
            },
        )])));
    let read = client
        .artifact_payload(&registry.repo(), &referrer, &subject, 1 << 20)
        .await
        .unwrap();
    assert_eq!(read.payload, b"payload");
    // The credential reached the registry (so the test is not vacuous), and not the storage.
    assert!(registry
        .requests()
        .iter()
        .any(|r| r.contains("authorization: Basic")));
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1, "{at_storage:?}");
    assert!(!at_storage[0].contains("authorization"), "{at_storage:?}");
}

#[tokio::test]
async fn an_index_update_refused_by_if_match_is_done_again_from_a_fresh_read() {
    let subject = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: Digest::sha256_of(b"the image"),
        size: 100,
    };
    let tag_path = format!(
        "/v2/cookbook/x/manifests/{}",
        referrers_tag(&subject.digest)
    );
    let puts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen_puts = puts.clone();
    let registry = FakeServer::start(move |_, head| match target(head) {
        ("HEAD", path) if path.starts_with("/v2/cookbook/x/manifests/") => {
            response("404 Not Found", &[], "")
        }
        ("HEAD", path) if path.starts_with("/v2/cookbook/x/blobs/") => response("200 OK", &[], ""),
        ("GET", path) if path == tag_path => {
            // Another writer changes the index between our read and our write, once.
            let version = seen_puts.load(std::sync::atomic::Ordering::SeqCst);
            let etag = format!("\"v{version}\"");
            response(
                "200 OK",
                &[("Content-Type", OCI_INDEX), ("ETag", &etag)],
                &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#),
            )
        }
        ("PUT", path) if path == tag_path => {
            let n = seen_puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                response("412 Precondition Failed", &[], "")
            } else {
                response("201 Created", &[], "")
            }
        }
        ("PUT", path) if path.starts_with("/v2/cookbook/x/manifests/sha256:") => {
            response("201 Created", &[], "")
        }
        _ => response("404 Not Found", &[], ""),
    })
    .await;
    let attached = anonymous()
        .attach(&registry.repo(), &subject, &artifact(SBOM, "{}", "x"))
        .await
        .unwrap();
    assert!(attached.pushed);
    let lines: Vec<String> = registry
        .requests()
        .iter()
        .filter(|r| r.contains(&referrers_tag(&subject.digest)))
        .map(|r| {
            let first = r
                .lines()
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            let if_match = r
                .lines()
                .find_map(|l| l.strip_prefix("if-match: "))
                .unwrap_or("-");
            format!("{first} {if_match}")
        })
        .collect();
    assert_eq!(
        lines,
        ["GET -", "PUT \"v0\"", "GET -", "PUT \"v1\""],
        "{:?}",
        registry.requests()
    );
    assert_eq!(puts.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_registry_that_processes_the_subject_gets_no_tag_schema_index() {
    let subject = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: Digest::sha256_of(b"the image"),
        size: 100,
    };
    let answered = subject.digest.to_string();
    let registry = FakeServer::start(move |_, head| match target(head) {
        ("HEAD", _) => response("404 Not Found", &[], ""),
        ("POST", _) => response(
            "202 Accepted",
            &[("Location", "/v2/cookbook/x/blobs/uploads/1")],
            "",
        ),
        ("PUT", path) if path.starts_with("/v2/cookbook/x/blobs/uploads/1") => {
            response("201 Created", &[], "")
        }
        ("PUT", _) => response("201 Created", &[("OCI-Subject", &answered)], ""),
        _ => response("404 Not Found", &[], ""),
    })
    .await;
    let attached = anonymous()
        .attach(
            &registry.repo(),
            &subject,
            &artifact(SBOM, r#"{"sbom":1}"#, "x"),
        )
        .await
        .unwrap();
    assert!(attached.pushed);
    let requests: Vec<String> = registry
        .requests()
        .iter()
        .map(|r| {
            let (method, path) = target(r);
            format!("{method} {}", path.split('?').next().unwrap())
        })
        .collect();
    let empty = Digest::sha256_of(b"{}");
    let payload = Digest::sha256_of(br#"{"sbom":1}"#);
    assert_eq!(
        requests,
        [
            format!("HEAD /v2/cookbook/x/manifests/{}", attached.manifest),
            format!("HEAD /v2/cookbook/x/blobs/{empty}"),
            "POST /v2/cookbook/x/blobs/uploads/".into(),
            "PUT /v2/cookbook/x/blobs/uploads/1".into(),
            format!("HEAD /v2/cookbook/x/blobs/{payload}"),
            "POST /v2/cookbook/x/blobs/uploads/".into(),
            "PUT /v2/cookbook/x/blobs/uploads/1".into(),
            format!("PUT /v2/cookbook/x/manifests/{}", attached.manifest),
        ]
    );
}

#[tokio::test]
async fn attaching_what_is_there_already_reads_and_writes_nothing() {
    let subject = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: Digest::sha256_of(b"the image"),
        size: 100,
    };
    let sbom = artifact(SBOM, r#"{"sbom":1}"#, "x");
    // The manifest attach would put, found by a first attach against a recording stand-in.
    let probe = FakeServer::start(|_, head| match target(head) {
        ("HEAD", _) => response("404 Not Found", &[], ""),
        ("POST", _) => response(
            "202 Accepted",
            &[("Location", "/v2/cookbook/x/blobs/uploads/1")],
            "",
        ),
        ("GET", _) => response("404 Not Found", &[], ""),
        _ => response("201 Created", &[], ""),
    })
    .await;
    let manifest = anonymous()
        .attach(&probe.repo(), &subject, &sbom)
        .await
        .unwrap()
        .manifest;
    // A registry that has it all: the manifest, and the tag-schema index listing it.
    let index = index_of(&manifest, 500);
    let head_path = format!("/v2/cookbook/x/manifests/{manifest}");
    let answered = manifest.to_string();
    let tag_path = format!(
        "/v2/cookbook/x/manifests/{}",
        referrers_tag(&subject.digest)
    );
    let registry = FakeServer::start(move |_, head| match target(head) {
        ("HEAD", path) if path == head_path => response(
            "200 OK",
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", &answered),
            ],
            "",
        ),
        ("GET", path) if path == tag_path => {
            response("200 OK", &[("Content-Type", OCI_INDEX)], &index)
        }
        ("GET", path) if path.contains("/referrers/") => {
            response("404 Not Found", &[], "404 page not found")
        }
        // Any write fails the attach, and shows in the requests below.
        _ => response("500 Internal Server Error", &[], ""),
    })
    .await;
    let again = anonymous()
        .attach(&registry.repo(), &subject, &sbom)
        .await
        .unwrap();
    assert_eq!(again.manifest, manifest);
    assert!(!again.pushed);
    let requests = registry.requests();
    let methods: Vec<&str> = requests.iter().map(|r| target(r).0).collect();
    assert_eq!(methods, ["HEAD", "GET", "GET"], "{requests:?}");
}
