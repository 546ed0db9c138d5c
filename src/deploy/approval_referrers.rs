//! Signed approvals beside the images: `approve --signing-key` attaches the approval's envelope
//! to each approved image that is published in a registry, as an OCI 1.1 artifact whose
//! `subject` is the image ([`attach`]); a site that shares the registry, without the approver's
//! state directory, reads them back ([`fetch`]) and judges them exactly as it judges its own
//! records (`approvals::judge`).
//!
//! Pipeline position: after `approvals::approve` recorded a signed approval (the record comes
//! first: a registry that cannot be reached attaches nothing and loses nothing), and before a
//! `deploy`/`promote` into a stage with approvers that found no local approval that holds.
//!
//! What a registry serves is anyone's who can push there: every referrer of the approval type
//! is read capped ([`MAX_APPROVAL_BYTES`], checked against its digest and subject by
//! `RegistryClient::artifact_payload`), its layer parsed strictly as a DSSE envelope, at most
//! [`MAX_APPROVAL_REFERRERS`] of them per image. One served badly is a candidate carrying the
//! reason, never an error, so that a refusal names it. The annotations choose nothing: only the
//! signed statement inside decides.

use std::collections::BTreeMap;

use crate::attest::dsse::{Envelope, ENVELOPE_MEDIA_TYPE};
use crate::deploy::approvals::{
    ApprovedImage, Candidate, Origin, SignatureProblem, APPROVAL_PAYLOAD_TYPE,
};
use crate::labels::approval as annotation;
use crate::oci::{Digest, WrittenReference};
use crate::registry::{Artifact, Attached, RegistryClient, RegistryError};

/// The artifact type of an attached approval (the envelope's payload type too).
pub const APPROVAL_ARTIFACT_TYPE: &str = APPROVAL_PAYLOAD_TYPE;

/// An approval's envelope is a few hundred bytes; anything much larger is not one.
pub const MAX_APPROVAL_BYTES: u64 = 1 << 20;

/// The most approval referrers of one image that are fetched and judged: a registry that lists
/// thousands cannot make a deploy fetch them all.
pub const MAX_APPROVAL_REFERRERS: usize = 32;

/// Where an approved image is published: its reference (for the repository) and its manifest
/// digest. `None`: a local image (`apply --no-push`, `cookbook.local/…`), or a digest that is a
/// local image id only: no registry shares it.
pub fn published(image: &ApprovedImage) -> Option<(WrittenReference, Digest)> {
    let reference = WrittenReference::parse(&image.image).ok()?;
    if crate::model::is_local_image(reference.as_str()) {
        return None;
    }
    Some((reference, Digest::parse(&image.digest).ok()?))
}

/// Attaches `envelope` (a signed approval for `stage`) to the image `digest` in `image`'s
/// repository. Idempotent: the same envelope attached again writes nothing (`pushed: false`).
pub async fn attach(
    client: &RegistryClient,
    image: &WrittenReference,
    digest: &Digest,
    envelope: &Envelope,
    stage: &str,
) -> Result<Attached, RegistryError> {
    let repo = image.reference().repository();
    let subject = client.descriptor(repo, digest).await?;
    let mut annotations = BTreeMap::from([(annotation::STAGE.to_owned(), stage.to_owned())]);
    if let Some(signature) = envelope.signatures.first() {
        annotations.insert(
            crate::labels::attestation::KEY_ID.to_owned(),
            signature.keyid.clone(),
        );
    }
    let artifact = Artifact {
        artifact_type: APPROVAL_ARTIFACT_TYPE.to_owned(),
        layer_media_type: ENVELOPE_MEDIA_TYPE.to_owned(),
        payload: envelope.to_bytes(),
        annotations,
    };
    client.attach(repo, &subject, &artifact).await
}

/// The approvals attached to the image `digest` in `image`'s repository, as candidates for the
/// judgement: each envelope, or why what the registry served is none. `Err` only when the
/// registry cannot be asked at all.
pub async fn fetch(
    client: &RegistryClient,
    image: &WrittenReference,
    digest: &Digest,
) -> Result<Vec<Candidate>, RegistryError> {
    let repo = image.reference().repository();
    let (referrers, _) = client
        .referrers(repo, digest, Some(APPROVAL_ARTIFACT_TYPE))
        .await?;
    let mut found = Vec::new();
    for referrer in referrers.into_iter().take(MAX_APPROVAL_REFERRERS) {
        let origin = Origin::Referrer {
            image: format!("{repo}@{digest}"),
            referrer: referrer.digest.to_string(),
        };
        let envelope = match client
            .artifact_payload(repo, &referrer.digest, digest, MAX_APPROVAL_BYTES)
            .await
        {
            Ok(payload) => envelope_of(&payload.layer_media_type, &payload.payload),
            Err(e) if crate::verify::attestations::about_the_artifact(&e) => {
                Err(SignatureProblem::Malformed(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        found.push(Candidate { origin, envelope });
    }
    Ok(found)
}

/// An attached approval's layer as an envelope, parsed strictly.
fn envelope_of(media_type: &str, bytes: &[u8]) -> Result<Envelope, SignatureProblem> {
    if media_type != ENVELOPE_MEDIA_TYPE {
        return Err(SignatureProblem::Malformed(format!(
            "its layer is {media_type:?}, not {ENVELOPE_MEDIA_TYPE}"
        )));
    }
    Envelope::parse(bytes).map_err(|e| SignatureProblem::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(image: &str, digest: &str) -> ApprovedImage {
        ApprovedImage {
            image: image.to_owned(),
            digest: digest.to_owned(),
        }
    }

    #[test]
    fn only_images_in_a_registry_are_shared() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let (reference, parsed) =
            published(&image("127.0.0.1:5000/shop/api:c-1234", &digest)).unwrap();
        assert_eq!(reference.as_str(), "127.0.0.1:5000/shop/api:c-1234");
        assert_eq!(parsed.as_str(), digest);
        // `apply --no-push`: a local image, whatever its id.
        assert_eq!(
            published(&image("cookbook.local/shop/api:c-1234", &digest)),
            None
        );
        assert_eq!(published(&image("127.0.0.1:5000/shop/api", "nope")), None);
    }

    #[test]
    fn what_a_registry_serves_is_parsed_strictly() {
        assert!(matches!(
            envelope_of("application/json", b"{}"),
            Err(SignatureProblem::Malformed(why)) if why.contains("not application/vnd.dsse.envelope.v1+json")
        ));
        assert!(matches!(
            envelope_of(
                ENVELOPE_MEDIA_TYPE,
                br#"{"payloadType":"t","payload":"","signatures":[],"extra":1}"#
            ),
            Err(SignatureProblem::Malformed(_))
        ));
    }
}
