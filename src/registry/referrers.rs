//! OCI 1.1 artifacts attached to an image, and the referrers that list them (distribution spec
//! v1.1, "Pushing Manifests with Subject", "Listing Referrers", "Referrers Tag Schema"; image
//! spec v1.1, `artifactType`, `subject` and the empty descriptor).
//!
//! Place in the pipeline: `apply` attaches each published image's attestations (DSSE envelopes,
//! bytes here) with [`RegistryClient::attach`]; `verify --attestations` and `deploy
//! --require-attestations` list them with [`RegistryClient::referrers`] and read each one with
//! [`RegistryClient::artifact_payload`]. "Attached, not embedded": an artifact is a manifest of
//! its own whose `subject` names the image's manifest, so the image's digest never moves.
//!
//! An artifact as written here: an OCI image manifest with `artifactType`, the empty config
//! (`{}`, [`EMPTY_MEDIA_TYPE`]), exactly one layer (the payload), the caller's annotations and
//! the `subject`. Its bytes depend only on the subject, the payload and the annotations
//! (serialized from structs and a `BTreeMap`), so attaching the same payload twice names the
//! same manifest, and the second attach finds it with a HEAD and writes nothing.
//!
//! Two ways a registry keeps referrers. One with the referrers API answers a manifest PUT that
//! carries a `subject` with `OCI-Subject` and lists referrers at `/v2/<name>/referrers/<digest>`.
//! One without it — distribution 2.8, Debian's `docker-registry`, the registry the tests run
//! against — answers that GET with 404, and the pushing client keeps an image index under the
//! tag `<alg>-<hex>` (`sha256-<hex>`) listing the referrers' descriptors. Found by experiment
//! on distribution 2.8: it stores an OCI manifest with `artifactType`, `subject` and the empty
//! config as sent (its digest unchanged, no `OCI-Subject`); it refuses an index naming a
//! manifest the repository does not have (`MANIFEST_BLOB_UNKNOWN`), so the artifact goes first
//! and the index after; it sends an `ETag` (the digest, quoted) with a manifest but ignores
//! `If-Match` on a PUT.
//!
//! The tag-schema index is a read-modify-write that two writers can race: the spec leaves that
//! to clients. The read is done right before the write, and the write carries `If-Match` with
//! the read's `ETag` when the registry sent one, so a registry that honours it refuses (412) a
//! write over a newer index, and the update is done again from a fresh read (at most
//! [`MAX_TAG_UPDATES`] times). On a registry that ignores `If-Match` the last writer wins: an
//! artifact another writer added in between can drop out of the list. Its manifest stays in the
//! registry, and attaching it again (the next `apply`) adds it back, since an attach checks the
//! index even when the manifest is already there.
//!
//! What a registry's answers are trusted for (docs/SECURITY.md, "Referrers"): a referrers list
//! only says where to look. Each referrer's manifest is fetched by its digest and checked
//! against it, must name the asked-for image as its `subject`, and its one layer is fetched
//! capped, checked against its descriptor's size and digest. Whether the payload says anything
//! true (a signature, a statement about the image) is the caller's to check.

use std::collections::BTreeMap;

use reqwest::header::{CONTENT_TYPE, ETAG, LINK};
use reqwest::{Method, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::body::{read_capped, read_page_capped, BodyKind, MAX_MANIFEST_BYTES};
use super::client::{
    header, invalid, manifest_media_type, unexpected, Access, Content, RegistryClient,
    RegistryError, DOCKER_CONTENT_DIGEST,
};
use super::origin::redact;
use crate::oci::{Digest, Repository};

/// The media type of the empty descriptor (image spec v1.1): an artifact's config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content, `{}`, and its digest.
const EMPTY_BYTES: &[u8] = b"{}";
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The answer header of a registry that processed a manifest's `subject` itself.
const OCI_SUBJECT: &str = "oci-subject";

/// The most pages of a referrers API answer followed (`Link: next`); with the byte cap on all
/// pages together, a registry whose pages never end stops here.
const MAX_REFERRERS_PAGES: usize = 100;
/// The most read-modify-write rounds of the tag-schema index when a registry refuses the
/// conditional write (412) because another writer changed it in between.
pub const MAX_TAG_UPDATES: u32 = 3;

/// What the subject image is, as its manifest descriptor (media type, digest, size from the
/// manifest the registry serves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// One artifact to attach: one layer (the payload, e.g. a DSSE envelope) and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub artifact_type: String,
    pub layer_media_type: String,
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// A referrer as the index (API or tag schema) lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referrer {
    #[serde(serialize_with = "digest_text")]
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// How the referrers were found (for reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The `sha256-<hex>` image index clients keep where there is no referrers API.
    TagSchema,
}

/// What [`RegistryClient::attach`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The artifact manifest's digest: a referrer of the subject.
    pub manifest: Digest,
    /// Whether anything was written (a blob, the manifest, the tag-schema index); `false`: it
    /// was all there already.
    pub pushed: bool,
}

/// One referrer's content, read and checked by [`RegistryClient::artifact_payload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPayload {
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub layer_media_type: String,
    pub payload: Vec<u8>,
}

fn digest_text<S: serde::Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(digest.as_str())
}

/// The tag the referrers of `subject` are listed under where there is no referrers API: the
/// algorithm (at most 32 characters), `-`, the encoded part (at most 64), every character a tag
/// may not hold replaced by `-` (distribution spec, "Referrers Tag Schema").
pub fn referrers_tag(subject: &Digest) -> String {
    let (algorithm, encoded) = subject.as_str().split_once(':').unwrap_or(("", ""));
    let tag: String = algorithm.chars().take(32).collect::<String>()
        + "-"
        + &encoded.chars().take(64).collect::<String>();
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A descriptor as written into a manifest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

/// The artifact manifest [`RegistryClient::attach`] puts: its field order fixed by this struct,
/// annotations sorted, so the same inputs always give the same bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifestOut<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'a str,
    config: DescriptorOut<'a>,
    layers: [DescriptorOut<'a>; 1],
    subject: DescriptorOut<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// The bytes of the manifest attaching `artifact` (whose payload is `payload`) to `subject`.
fn artifact_manifest(subject: &Descriptor, artifact: &Artifact, payload: &Digest) -> Vec<u8> {
    let manifest = ArtifactManifestOut {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: &artifact.artifact_type,
        config: DescriptorOut {
            media_type: EMPTY_MEDIA_TYPE,
            digest: EMPTY_DIGEST,
            size: EMPTY_BYTES.len() as u64,
        },
        layers: [DescriptorOut {
            media_type: &artifact.layer_media_type,
            digest: payload.as_str(),
            size: artifact.payload.len() as u64,
        }],
        subject: DescriptorOut {
            media_type: &subject.media_type,
            digest: subject.digest.as_str(),
            size: subject.size,
        },
        annotations: &artifact.annotations,
    };
    serde_json::to_vec(&manifest).expect("a manifest of strings and numbers serializes")
}

/// A descriptor as an index lists it (only what a referrer needs; other fields are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryWire {
    digest: String,
    size: u64,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexWire {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Vec<EntryWire>,
}

/// The media type without parameters (`; charset=…`).
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// The referrers a referrers list (an API page or the tag-schema index, served with
/// `content_type`) names, in its order; why not, when it is no image index or an entry is
/// not a descriptor.
fn parse_index(bytes: &[u8], content_type: Option<&str>) -> Result<Vec<Referrer>, String> {
    let index: IndexWire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if index.schema_version != Some(2) {
        return Err(format!(
            "schemaVersion is {}, not 2",
            index
                .schema_version
                .map_or("missing".to_owned(), |v| v.to_string())
        ));
    }
    let media_type = index
        .media_type
        .as_deref()
        .or(content_type.map(essence))
        .unwrap_or_default();
    if media_type != OCI_INDEX {
        return Err(format!("its media type is `{media_type}`, not {OCI_INDEX}"));
    }
    index
        .manifests
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let digest =
                Digest::parse(&entry.digest).map_err(|e| format!("manifests[{i}]: {e}"))?;
            Ok(Referrer {
                digest,
                size: entry.size,
                artifact_type: entry.artifact_type.filter(|t| !t.is_empty()),
                annotations: entry.annotations.unwrap_or_default(),
            })
        })
        .collect()
}

/// `referrers` without a second entry for the same digest, and only those of `artifact_type`.
fn select(referrers: Vec<Referrer>, artifact_type: Option<&str>) -> Vec<Referrer> {
    let mut seen = std::collections::BTreeSet::new();
    referrers
        .into_iter()
        .filter(|r| seen.insert(r.digest.clone()))
        .filter(|r| artifact_type.is_none_or(|t| r.artifact_type.as_deref() == Some(t)))
        .collect()
}

/// The tag-schema index `existing` (as served with `content_type`; `None`: no such tag yet)
/// with `entry` added, or `None` when it lists `entry`'s digest already. The other entries are
/// kept with every field they have (another tool's too). The one-entry form of
/// [`index_with_all`], as the tests read best.
#[cfg(test)]
fn index_with(
    existing: Option<(&[u8], Option<&str>)>,
    entry: &Referrer,
) -> Result<Option<Vec<u8>>, String> {
    index_with_all(existing, std::slice::from_ref(entry))
}

/// [`index_with`] for several entries at once: those not listed yet are added, in order;
/// `None` when every one is listed already.
fn index_with_all(
    existing: Option<(&[u8], Option<&str>)>,
    entries: &[Referrer],
) -> Result<Option<Vec<u8>>, String> {
    let (mut index, listed) = match existing {
        Some((bytes, content_type)) => (
            serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| e.to_string())?,
            parse_index(bytes, content_type)?,
        ),
        None => (
            serde_json::json!({ "schemaVersion": 2, "manifests": [] }),
            Vec::new(),
        ),
    };
    let missing: Vec<&Referrer> = entries
        .iter()
        .filter(|e| !listed.iter().any(|r| r.digest == e.digest))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    // The media type goes into the body too: a registry serves the index back by it alone.
    index["mediaType"] = OCI_INDEX.into();
    let manifests = index["manifests"]
        .as_array_mut()
        .ok_or("`manifests` is not a list")?;
    for entry in missing {
        manifests.push(index_entry(entry));
    }
    Ok(Some(
        serde_json::to_vec(&index).expect("a JSON value serializes"),
    ))
}

/// One referrer as the tag-schema index lists it.
fn index_entry(entry: &Referrer) -> serde_json::Value {
    let mut descriptor = serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": entry.digest.as_str(),
        "size": entry.size,
    });
    if let Some(artifact_type) = &entry.artifact_type {
        descriptor["artifactType"] = artifact_type.as_str().into();
    }
    if !entry.annotations.is_empty() {
        descriptor["annotations"] = serde_json::json!(entry.annotations);
    }
    descriptor
}

/// An artifact manifest as read: what [`RegistryClient::artifact_payload`] checks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactWire {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<DescriptorWire>,
    layers: Option<Vec<DescriptorWire>>,
    subject: Option<DescriptorWire>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorWire {
    media_type: String,
    digest: String,
    size: u64,
}

/// What is wrong with a referrer's manifest.
#[derive(Debug, PartialEq, Eq)]
enum ArtifactProblem {
    OtherSubject(Digest),
    NotAnArtifact(String),
}

/// The one layer's descriptor (media type, digest, size) and what the manifest says of itself,
/// if `bytes` (served with `content_type`) is an OCI image manifest attached to `subject` with
/// exactly one layer.
fn parse_artifact(
    bytes: &[u8],
    content_type: Option<&str>,
    subject: &Digest,
) -> Result<(ArtifactPayload, Digest, u64), ArtifactProblem> {
    let not = |reason: String| ArtifactProblem::NotAnArtifact(reason);
    let wire: ArtifactWire =
        serde_json::from_slice(bytes).map_err(|e| not(format!("not a manifest: {e}")))?;
    let media_type = wire
        .media_type
        .as_deref()
        .or(content_type.map(essence))
        .unwrap_or_default();
    if media_type != OCI_MANIFEST {
        return Err(not(format!(
            "its media type is `{media_type}`, not {OCI_MANIFEST}"
        )));
    }
    let found = wire
        .subject
        .ok_or_else(|| not("it names no subject".into()))?;
    let found = Digest::parse(&found.digest).map_err(|e| not(format!("its subject: {e}")))?;
    if &found != subject {
        return Err(ArtifactProblem::OtherSubject(found));
    }
    let mut layers = wire.layers.unwrap_or_default();
    if layers.len() != 1 {
        return Err(not(format!("it has {} layers, not one", layers.len())));
    }
    let layer = layers.remove(0);
    let digest = Digest::parse(&layer.digest).map_err(|e| not(format!("its layer: {e}")))?;
    // As the referrers API lists a manifest without `artifactType`: by its config's type.
    let artifact_type = wire
        .artifact_type
        .filter(|t| !t.is_empty())
        .or(wire.config.map(|c| c.media_type));
    Ok((
        ArtifactPayload {
            artifact_type,
            annotations: wire.annotations.unwrap_or_default(),
            layer_media_type: layer.media_type,
            payload: Vec::new(),
        },
        digest,
        layer.size,
    ))
}

impl RegistryClient {
    /// The subject's descriptor: a GET of `repo@digest` (a GET rather than a HEAD, so that the
    /// size and digest are those of the bytes received, not what a header claims).
    pub async fn descriptor(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Descriptor, RegistryError> {
        let url = self.url(repo, &["manifests", digest.as_str()])?;
        let manifest = self
            .manifest_get(repo, digest.as_str())
            .await?
            .ok_or_else(|| RegistryError::ManifestMissing {
                endpoint: redact(&url),
                digest: digest.clone(),
            })?;
        if !digest.matches(&manifest.bytes) {
            return Err(RegistryError::DigestMismatch {
                endpoint: redact(&url),
                what: "manifest",
                expected: digest.clone(),
                actual: Digest::sha256_of(&manifest.bytes),
            });
        }
        let media_type = manifest_media_type(&manifest).ok_or_else(|| {
            invalid(
                &url,
                "the manifest names no media type (neither Content-Type nor mediaType)".into(),
            )
        })?;
        Ok(Descriptor {
            media_type,
            digest: manifest.digest,
            size: manifest.bytes.len() as u64,
        })
    }

    /// Pushes the artifact (empty config blob and payload blob unless present, the manifest by
    /// its digest with `subject`), then — when the PUT's answer has no `OCI-Subject` header —
    /// adds it to the `sha256-<hex>` tag-schema index (read, add the descriptor if missing,
    /// PUT; nothing written when already listed). Idempotent: attaching the same bytes twice
    /// writes nothing the second time (HEADs before any PUT) and returns `pushed: false`.
    pub async fn attach(
        &self,
        repo: &Repository,
        subject: &Descriptor,
        artifact: &Artifact,
    ) -> Result<Attached, RegistryError> {
        let mut attached = self
            .attach_all(repo, subject, std::slice::from_ref(artifact))
            .await?;
        Ok(attached.remove(0))
    }

    /// [`attach`](Self::attach) for several artifacts of one subject: they are pushed
    /// concurrently, and the tag-schema index, when the registry needs one, is read and written
    /// once for all of them (two artifacts attached one after the other would cost two
    /// read-modify-writes of the same index, and attached at once they would race on it).
    pub async fn attach_all(
        &self,
        repo: &Repository,
        subject: &Descriptor,
        artifacts: &[Artifact],
    ) -> Result<Vec<Attached>, RegistryError> {
        let pushes = artifacts
            .iter()
            .map(|artifact| self.push_artifact(repo, subject, artifact));
        let pushed = futures_util::future::try_join_all(pushes).await?;
        let unlisted: Vec<Referrer> = pushed
            .iter()
            .filter(|p| !p.processed_by_registry)
            .map(|p| p.entry.clone())
            .collect();
        let listed =
            !unlisted.is_empty() && self.list_in_tag(repo, &subject.digest, &unlisted).await?;
        Ok(pushed
            .into_iter()
            .map(|p| Attached {
                manifest: p.entry.digest,
                pushed: p.pushed || (listed && !p.processed_by_registry),
            })
            .collect())
    }

    /// Pushes one artifact unless its manifest is there already; says whether the registry
    /// keeps its referrers itself (`OCI-Subject`, or a referrers API for one pushed before).
    async fn push_artifact(
        &self,
        repo: &Repository,
        subject: &Descriptor,
        artifact: &Artifact,
    ) -> Result<PushedArtifact, RegistryError> {
        let payload = Digest::sha256_of(&artifact.payload);
        let bytes = artifact_manifest(subject, artifact, &payload);
        let manifest = Digest::sha256_of(&bytes);
        let mut pushed = false;
        let processed_by_registry = match self.manifest_head(repo, manifest.as_str()).await? {
            Some(_) => self.has_referrers_api(repo, &subject.digest).await?,
            None => {
                let empty = Digest::parse(EMPTY_DIGEST).expect("a valid digest");
                for (digest, content) in [(&empty, EMPTY_BYTES), (&payload, &artifact.payload[..])]
                {
                    if !self.blob_exists(repo, digest).await? {
                        self.blob_put(repo, digest, content).await?;
                    }
                }
                pushed = true;
                self.manifest_put_subject(repo, &manifest, &bytes, &subject.digest)
                    .await?
            }
        };
        Ok(PushedArtifact {
            entry: Referrer {
                digest: manifest,
                size: bytes.len() as u64,
                artifact_type: Some(artifact.artifact_type.clone()),
                annotations: artifact.annotations.clone(),
            },
            pushed,
            processed_by_registry,
        })
    }

    /// Referrers of `subject`, optionally only of one artifact type: the referrers API, or on
    /// 404 the tag-schema index, or none (an empty list: no index tag is "no referrers").
    /// Filtered here too: a registry that did not apply the filter says so only by leaving out
    /// `OCI-Filters-Applied`, and the tag-schema index is never filtered.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<(Vec<Referrer>, ReferrersSource), RegistryError> {
        if let Some(listed) = self.referrers_api(repo, subject, artifact_type).await? {
            return Ok((select(listed, artifact_type), ReferrersSource::Api));
        }
        let listed = match self.tag_index(repo, subject, Access::Pull).await? {
            Some(tag) => tag.referrers,
            None => Vec::new(),
        };
        Ok((select(listed, artifact_type), ReferrersSource::TagSchema))
    }

    /// One referrer's payload: its manifest fetched by digest (checked against the digest),
    /// which must be an OCI manifest whose `subject` is `subject` (else
    /// [`RegistryError::OtherSubject`] naming both) with exactly one layer; that layer's blob
    /// fetched, at most `max` bytes, checked against its descriptor's digest and size.
    pub async fn artifact_payload(
        &self,
        repo: &Repository,
        referrer: &Digest,
        subject: &Digest,
        max: u64,
    ) -> Result<ArtifactPayload, RegistryError> {
        let url = self.url(repo, &["manifests", referrer.as_str()])?;
        let response = self
            .call(Method::GET, repo, &url, Access::Pull, true)
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::ManifestMissing {
                    endpoint: redact(&url),
                    digest: referrer.clone(),
                })
            }
            _ => return Err(unexpected(&url, response).await),
        }
        let content_type = header(&response, CONTENT_TYPE.as_str());
        let bytes = read_capped(&url, response, BodyKind::Manifest, MAX_MANIFEST_BYTES).await?;
        // `matches` is false for an algorithm other than sha256: what cannot be checked is
        // refused too.
        if !referrer.matches(&bytes) {
            return Err(RegistryError::DigestMismatch {
                endpoint: redact(&url),
                what: "manifest",
                expected: referrer.clone(),
                actual: Digest::sha256_of(&bytes),
            });
        }
        let (mut artifact, layer, size) = parse_artifact(&bytes, content_type.as_deref(), subject)
            .map_err(|problem| match problem {
                ArtifactProblem::OtherSubject(found) => RegistryError::OtherSubject {
                    endpoint: redact(&url),
                    referrer: referrer.clone(),
                    subject: subject.clone(),
                    found,
                },
                ArtifactProblem::NotAnArtifact(reason) => RegistryError::NotAnArtifact {
                    endpoint: redact(&url),
                    referrer: referrer.clone(),
                    reason,
                },
            })?;
        let blob_url = self.url(repo, &["blobs", layer.as_str()])?;
        if size > max {
            return Err(RegistryError::TooLarge {
                endpoint: redact(&blob_url),
                body: BodyKind::Blob,
                limit: max,
                declared: Some(size),
                received: 0,
            });
        }
        let response = self
            .call(Method::GET, repo, &blob_url, Access::Pull, false)
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(invalid(
                    &blob_url,
                    format!("the payload {layer} of the referrer {referrer} is missing"),
                ))
            }
            _ => return Err(unexpected(&blob_url, response).await),
        }
        // The bytes come from where the answer came from (a redirect to storage).
        let source = response.url().clone();
        let payload = read_capped(&source, response, BodyKind::Blob, size).await?;
        if payload.len() as u64 != size {
            return Err(invalid(
                &source,
                format!(
                    "the payload {layer} ended after {} of its {size} bytes",
                    payload.len()
                ),
            ));
        }
        if !layer.matches(&payload) {
            return Err(RegistryError::DigestMismatch {
                endpoint: redact(&source),
                what: "payload",
                expected: layer,
                actual: Digest::sha256_of(&payload),
            });
        }
        artifact.payload = payload;
        Ok(artifact)
    }

    /// Puts the artifact manifest `bytes` by its digest; whether the registry processed its
    /// subject itself (it answered `OCI-Subject` naming `subject`).
    async fn manifest_put_subject(
        &self,
        repo: &Repository,
        digest: &Digest,
        bytes: &[u8],
        subject: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repo, &["manifests", digest.as_str()])?;
        let response = self
            .call_with(
                Method::PUT,
                repo,
                &url,
                Access::Push,
                false,
                Some(Content::Bytes(OCI_MANIFEST, bytes)),
            )
            .await?;
        if !response.status().is_success() {
            return Err(unexpected(&url, response).await);
        }
        stored_as(&url, &response, digest)?;
        Ok(header(&response, OCI_SUBJECT).as_deref() == Some(subject.as_str()))
    }

    /// Whether `repo`'s registry answers the referrers API (anything but a 404), for an
    /// artifact found already pushed: no PUT answer says whether the registry keeps its
    /// referrers itself.
    async fn has_referrers_api(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self.referrers_api(repo, subject, None).await?.is_some())
    }

    /// Every referrer the referrers API lists (following `Link: next`, at most
    /// [`MAX_MANIFEST_BYTES`] over at most [`MAX_REFERRERS_PAGES`] pages); `None` on a 404:
    /// the registry has no referrers API.
    async fn referrers_api(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let mut url = self.url(repo, &["referrers", subject.as_str()])?;
        if let Some(artifact_type) = artifact_type {
            url.query_pairs_mut()
                .append_pair("artifactType", artifact_type);
        }
        let mut referrers = Vec::new();
        let mut read: u64 = 0;
        for page in 0..MAX_REFERRERS_PAGES {
            let response = self
                .call(Method::GET, repo, &url, Access::Pull, true)
                .await?;
            match response.status() {
                StatusCode::NOT_FOUND if page == 0 => return Ok(None),
                StatusCode::OK => {}
                _ => return Err(unexpected(&url, response).await),
            }
            let content_type = header(&response, CONTENT_TYPE.as_str());
            // A malformed `Link` ends the list here, as before the tag list's stricter reading.
            let next = header(&response, LINK.as_str())
                .and_then(|link| super::tags::next_target(&link).ok().flatten());
            let bytes = read_page_capped(
                &url,
                response,
                BodyKind::ReferrersIndex,
                MAX_MANIFEST_BYTES,
                read,
            )
            .await?;
            read += bytes.len() as u64;
            referrers.extend(
                parse_index(&bytes, content_type.as_deref()).map_err(|reason| {
                    RegistryError::BadReferrersIndex {
                        endpoint: redact(&url),
                        subject: subject.clone(),
                        reason,
                    }
                })?,
            );
            match next {
                Some(next) => url = self.handed_over(repo, &url, &next)?,
                None => return Ok(Some(referrers)),
            }
        }
        Err(invalid(
            &url,
            format!("the referrers list goes on past {MAX_REFERRERS_PAGES} pages"),
        ))
    }

    /// The tag-schema index of `subject`, or `None` when there is no such tag; read with the
    /// access of the caller's next step (a reader may hold no push right).
    async fn tag_index(
        &self,
        repo: &Repository,
        subject: &Digest,
        access: Access,
    ) -> Result<Option<TagIndex>, RegistryError> {
        let tag = referrers_tag(subject);
        let url = self.url(repo, &["manifests", &tag])?;
        let response = self.call(Method::GET, repo, &url, access, true).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            _ => return Err(unexpected(&url, response).await),
        }
        let content_type = header(&response, CONTENT_TYPE.as_str());
        // A weak tag says "semantically the same", which a byte-for-byte rewrite cannot use.
        let etag = header(&response, ETAG.as_str()).filter(|e| !e.starts_with("W/"));
        let bytes = read_page_capped(
            &url,
            response,
            BodyKind::ReferrersIndex,
            MAX_MANIFEST_BYTES,
            0,
        )
        .await?;
        let referrers = parse_index(&bytes, content_type.as_deref()).map_err(|reason| {
            RegistryError::BadReferrersIndex {
                endpoint: redact(&url),
                subject: subject.clone(),
                reason,
            }
        })?;
        Ok(Some(TagIndex {
            bytes,
            content_type,
            etag,
            referrers,
        }))
    }

    /// Adds `entry` to the tag-schema index of `subject` unless it lists it: a read, then at
    /// once a write (conditional on the read's `ETag` when there is one), again from a fresh
    /// read when the registry refuses the condition. Whether anything was written.
    async fn list_in_tag(
        &self,
        repo: &Repository,
        subject: &Digest,
        entries: &[Referrer],
    ) -> Result<bool, RegistryError> {
        let tag = referrers_tag(subject);
        let url = self.url(repo, &["manifests", &tag])?;
        for _ in 0..MAX_TAG_UPDATES {
            let current = self.tag_index(repo, subject, Access::Push).await?;
            let existing = current
                .as_ref()
                .map(|t| (&t.bytes[..], t.content_type.as_deref()));
            let updated = index_with_all(existing, entries).map_err(|reason| {
                RegistryError::BadReferrersIndex {
                    endpoint: redact(&url),
                    subject: subject.clone(),
                    reason,
                }
            })?;
            let Some(updated) = updated else {
                return Ok(false);
            };
            let content = match current.as_ref().and_then(|t| t.etag.as_deref()) {
                Some(etag) => Content::BytesIfMatch(OCI_INDEX, &updated, etag),
                None => Content::Bytes(OCI_INDEX, &updated),
            };
            let response = self
                .call_with(Method::PUT, repo, &url, Access::Push, false, Some(content))
                .await?;
            if response.status() == StatusCode::PRECONDITION_FAILED {
                continue;
            }
            if !response.status().is_success() {
                return Err(unexpected(&url, response).await);
            }
            stored_as(&url, &response, &Digest::sha256_of(&updated))?;
            return Ok(true);
        }
        Err(RegistryError::ReferrersTagContended {
            endpoint: redact(&url),
            tag,
            attempts: MAX_TAG_UPDATES,
        })
    }
}

/// One artifact pushed (or found) by [`RegistryClient::push_artifact`]: its index entry, whether
/// this call wrote it, and whether the registry lists it without the tag-schema index.
struct PushedArtifact {
    entry: Referrer,
    pushed: bool,
    processed_by_registry: bool,
}

/// Refuses a PUT's answer naming another digest than the bytes put have (`Docker-Content-Digest`
/// is optional: no header, nothing to check).
fn stored_as(url: &Url, response: &Response, digest: &Digest) -> Result<(), RegistryError> {
    match header(response, DOCKER_CONTENT_DIGEST) {
        Some(answered) if answered != digest.as_str() => Err(invalid(
            url,
            format!("the registry stored {digest} as {answered}"),
        )),
        _ => Ok(()),
    }
}

/// The tag-schema index as read: its bytes, as served, and the referrers it lists.
struct TagIndex {
    bytes: Vec<u8>,
    content_type: Option<String>,
    etag: Option<String>,
    referrers: Vec<Referrer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::sha256_of(b"image"),
            size: 5,
        }
    }

    fn artifact(payload: &[u8]) -> Artifact {
        Artifact {
            artifact_type: "application/vnd.example.t".into(),
            layer_media_type: "application/vnd.dsse.envelope.v1+json".into(),
            payload: payload.to_vec(),
            annotations: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        }
    }

    #[test]
    fn the_empty_descriptor_is_the_image_specs() {
        assert_eq!(Digest::sha256_of(EMPTY_BYTES).as_str(), EMPTY_DIGEST);
    }

    #[test]
    fn referrers_tags_follow_the_tag_schema() {
        let hex = "a".repeat(64);
        assert_eq!(
            referrers_tag(&Digest::parse(&format!("sha256:{hex}")).unwrap()),
            format!("sha256-{hex}")
        );
        // The encoded part is cut at 64 characters.
        assert_eq!(
            referrers_tag(&Digest::parse(&format!("sha512:{}", "b".repeat(128))).unwrap()),
            format!("sha512-{}", "b".repeat(64))
        );
    }

    #[test]
    fn an_artifact_manifest_is_fixed_by_its_inputs() {
        let artifact = artifact(b"payload");
        let payload = Digest::sha256_of(&artifact.payload);
        let bytes = artifact_manifest(&subject(), &artifact, &payload);
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""artifactType":"application/vnd.example.t","#,
                r#""config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"#,
                r#""layers":[{{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"{}","size":7}}],"#,
                r#""subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":5}},"#,
                r#""annotations":{{"a":"1","b":"2"}}}}"#
            ),
            EMPTY_DIGEST,
            payload,
            subject().digest
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        // And it reads back as an artifact of that subject, with its one layer.
        let (read, layer, size) = parse_artifact(&bytes, None, &subject().digest).unwrap();
        assert_eq!((layer, size), (payload, 7));
        assert_eq!(
            read.artifact_type.as_deref(),
            Some("application/vnd.example.t")
        );
        assert_eq!(read.annotations, artifact.annotations);
        let other = Digest::sha256_of(b"other");
        assert_eq!(
            parse_artifact(&bytes, None, &other).unwrap_err(),
            ArtifactProblem::OtherSubject(subject().digest)
        );
    }

    #[test]
    fn a_manifest_that_is_no_artifact_says_why() {
        let s = subject().digest;
        let case = |json: String| match parse_artifact(json.as_bytes(), None, &s) {
            Err(ArtifactProblem::NotAnArtifact(reason)) => reason,
            other => panic!("{json}: {:?}", other.map(|_| ())),
        };
        let subject = format!(r#""subject":{{"mediaType":"x","digest":"{s}","size":1}}"#);
        let layer = format!(r#"{{"mediaType":"x","digest":"{s}","size":1}}"#);
        assert_eq!(
            case(format!(
                r#"{{"mediaType":"{OCI_INDEX}","manifests":[],{subject}}}"#
            )),
            format!("its media type is `{OCI_INDEX}`, not {OCI_MANIFEST}")
        );
        assert_eq!(
            case(format!(r#"{{"mediaType":"{OCI_MANIFEST}","layers":[]}}"#)),
            "it names no subject"
        );
        assert_eq!(
            case(format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","layers":[{layer},{layer}],{subject}}}"#
            )),
            "it has 2 layers, not one"
        );
        assert!(case("[1]".into()).starts_with("not a manifest: "));
    }

    #[test]
    fn an_index_gains_an_entry_once_and_keeps_the_others() {
        let first = Referrer {
            digest: Digest::sha256_of(b"1"),
            size: 10,
            artifact_type: Some("t/one".into()),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
        };
        let second = Referrer {
            digest: Digest::sha256_of(b"2"),
            size: 20,
            artifact_type: None,
            annotations: BTreeMap::new(),
        };
        let one = index_with(None, &first).unwrap().unwrap();
        assert_eq!(parse_index(&one, None).unwrap(), vec![first.clone()]);
        assert_eq!(index_with(Some((&one, None)), &first).unwrap(), None);
        // Another tool's entry keeps its fields.
        let mut value: serde_json::Value = serde_json::from_slice(&one).unwrap();
        value["manifests"][0]["platform"] = serde_json::json!({"os": "linux"});
        let theirs = serde_json::to_vec(&value).unwrap();
        let two = index_with(Some((&theirs, None)), &second).unwrap().unwrap();
        assert_eq!(
            parse_index(&two, None).unwrap(),
            vec![first.clone(), second.clone()]
        );
        let value: serde_json::Value = serde_json::from_slice(&two).unwrap();
        assert_eq!(value["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(
            select(
                parse_index(&two, None)
                    .unwrap()
                    .into_iter()
                    .chain([first.clone()])
                    .collect(),
                Some("t/one")
            ),
            vec![first]
        );
    }

    #[test]
    fn a_list_that_is_no_index_is_refused() {
        let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#);
        assert!(parse_index(manifest.as_bytes(), None).is_err());
        let no_type = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(parse_index(no_type, None).is_err());
        assert_eq!(
            parse_index(
                no_type,
                Some("application/vnd.oci.image.index.v1+json; x=y")
            )
            .unwrap(),
            vec![]
        );
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"sha256:AB","size":1}}]}}"#
        );
        assert!(parse_index(bad_digest.as_bytes(), None)
            .unwrap_err()
            .starts_with("manifests[0]: invalid digest"));
        assert!(index_with(
            Some((manifest.as_bytes(), None)),
            &Referrer {
                digest: Digest::sha256_of(b"1"),
                size: 1,
                artifact_type: None,
                annotations: BTreeMap::new(),
            }
        )
        .is_err());
    }
}
