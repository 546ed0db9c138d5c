//! `verify --attestations`: is each locked image vouched for, by the key the release engineer
//! trusts, with statements that still hold?
//!
//! The attestation edge of `verify` (and of `deploy --require-attestations`, which refuses what
//! fails here). For every lock entry of a published container the cookbook still has:
//! 1. its referrers in the registry (the referrers API, or the `sha256-<hex>` tag schema) are
//!    listed and those of cookbook's two kinds fetched ([`fetch`]): the provenance statement and
//!    the SBOM, each an in-toto statement in a DSSE envelope, attached as an OCI artifact whose
//!    `subject` is the image (the registry client checks that subject and every digest);
//! 2. each kind is judged ([`judge`], pure): at least one envelope of the kind must carry a
//!    signature by the given key that verifies over the DSSE PAE; an envelope that names the
//!    key but whose signature does not verify is tampering whatever else is attached; the signed
//!    statement must name the locked digest as its subject; and the provenance must name the
//!    input hash recomputed from the sources now, only base images the lock pins (by the same
//!    digest), and a commit the checkout contains (HEAD or an ancestor of it: an unrelated later
//!    commit leaves an image cached, and its provenance rightly names the commit it was built
//!    at).
//!
//! What is trusted: the key the caller names, and nothing the registry says. A registry that
//! answers garbage for one attestation makes that attestation unreadable (a reason), not the
//! run a failure; only a registry that cannot be asked is an error (exit 3).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::attest::dsse::{Envelope, VerifyError};
use crate::attest::key::PublicKey;
use crate::attest::{provenance, sbom};
use crate::hash::BasePins;
use crate::oci::{Digest, WrittenReference};
use crate::registry::{RegistryClient, RegistryError, Repository};
use crate::state::lock::Lock;

use super::{Reason, Report};

/// The largest envelope read: an SBOM of a 100,000-file image is some 30 MB of JSON, base64'd.
pub const ENVELOPE_MAX: u64 = 64 << 20;

/// The most attestations of one kind read per image: a registry that lists thousands (each up
/// to [`ENVELOPE_MAX`]) could otherwise exhaust memory. `apply` attaches one per key and build.
pub const MAX_PER_KIND: usize = 16;

/// cookbook's two kinds of attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Provenance,
    Sbom,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Provenance, Kind::Sbom];

    /// The statement's predicate type, also the artifact's `in-toto.io/predicate-type`
    /// annotation, by which the referrers list tells the two apart without fetching them.
    pub fn predicate_type(self) -> &'static str {
        match self {
            Kind::Provenance => provenance::PREDICATE_TYPE,
            Kind::Sbom => sbom::PREDICATE_TYPE,
        }
    }

    pub fn of_predicate_type(predicate_type: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.predicate_type() == predicate_type)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Provenance => "provenance",
            Kind::Sbom => "SBOM",
        }
    }
}

/// One attestation as the registry gave it: its kind (from the referrer's annotation), the
/// referrer's manifest digest, and its layer: the envelope's bytes, or why it could not be read.
#[derive(Debug, Clone)]
pub struct Found {
    pub kind: Kind,
    pub referrer: Digest,
    pub envelope: Result<Vec<u8>, String>,
}

/// What a statement must agree with, for one container.
#[derive(Clone, Copy)]
pub struct Expected<'a> {
    /// The locked manifest digest: every statement's subject.
    pub digest: &'a Digest,
    /// The container the image is the lock's entry of: what the provenance must name.
    pub container: &'a str,
    /// The input hash recomputed from the sources (the lock's own hash version).
    pub input_hash: &'a str,
    /// The lock's base-image pins.
    pub pins: &'a BasePins,
    /// Whether the checkout contains a commit (HEAD or an ancestor); `None`: the cookbook is not
    /// in a git checkout.
    pub contains_commit: &'a dyn Fn(&str) -> Option<bool>,
}

/// The reasons `found` does not vouch for the container `expected` describes, under `key`.
/// Empty: a provenance statement and an SBOM, each signed by `key`, that hold.
pub fn judge(found: &[Found], key: &PublicKey, expected: Expected<'_>) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for kind in Kind::ALL {
        let of_kind: Vec<&Found> = found.iter().filter(|f| f.kind == kind).collect();
        reasons.extend(judge_kind(kind, &of_kind, key, expected));
    }
    reasons
}

fn judge_kind(
    kind: Kind,
    found: &[&Found],
    key: &PublicKey,
    expected: Expected<'_>,
) -> Vec<Reason> {
    if found.is_empty() {
        return vec![Reason::AttestationMissing { attestation: kind }];
    }
    let mut tampered = Vec::new();
    let mut other_keys = BTreeSet::new();
    let mut unsigned = false;
    let mut unreadable = Vec::new();
    // The reasons of each signed statement; the kind holds when one of them has none.
    let mut signed: Vec<Vec<Reason>> = Vec::new();
    for f in found {
        let referrer = f.referrer.to_string();
        // What the registry served badly, or what does not parse as an envelope.
        let parsed = match &f.envelope {
            Ok(bytes) => Envelope::parse(bytes).map_err(|e| e.to_string()),
            Err(message) => Err(message.clone()),
        };
        let envelope = match parsed {
            Ok(envelope) => envelope,
            Err(message) => {
                unreadable.push(Reason::AttestationUnreadable {
                    attestation: kind,
                    referrer,
                    message,
                });
                continue;
            }
        };
        match envelope.verify(key) {
            Ok(payload) => signed.push(statement_reasons(kind, &payload, &referrer, expected)),
            Err(VerifyError::Unsigned) => unsigned = true,
            Err(VerifyError::OtherKeys { keyids }) => other_keys.extend(keyids),
            Err(VerifyError::BadSignature { .. }) => tampered.push(Reason::AttestationTampered {
                attestation: kind,
                referrer,
                key: key.key_id(),
            }),
            Err(VerifyError::Envelope(e)) => unreadable.push(Reason::AttestationUnreadable {
                attestation: kind,
                referrer,
                message: e.to_string(),
            }),
        }
    }
    // An envelope that names the trusted key but does not verify is someone's edit, and a
    // signed statement about another image is attached where it does not belong: both are
    // reported even when another, intact statement vouches for the image.
    let mut reasons = tampered;
    let (elsewhere, about_this): (Vec<Vec<Reason>>, Vec<Vec<Reason>>) =
        signed.into_iter().partition(|r| {
            r.iter()
                .any(|r| matches!(r, Reason::AttestationSubject { .. }))
        });
    let mut add = |r: Reason| {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    };
    elsewhere.into_iter().flatten().for_each(&mut add);
    if about_this.iter().any(Vec::is_empty) {
        return reasons;
    }
    let judged = !about_this.is_empty();
    about_this.into_iter().flatten().for_each(&mut add);
    if judged || !reasons.is_empty() {
        return reasons;
    }
    if !other_keys.is_empty() {
        reasons.push(Reason::AttestationWrongKey {
            attestation: kind,
            signed_by: other_keys.into_iter().collect(),
            key: key.key_id(),
        });
    } else if unsigned {
        reasons.push(Reason::AttestationUnsigned { attestation: kind });
    }
    reasons.extend(unreadable);
    reasons
}

/// What a statement signed by the trusted key says that does not hold.
fn statement_reasons(
    kind: Kind,
    payload: &[u8],
    referrer: &str,
    expected: Expected<'_>,
) -> Vec<Reason> {
    let unreadable = |message: String| {
        vec![Reason::AttestationUnreadable {
            attestation: kind,
            referrer: referrer.to_owned(),
            message,
        }]
    };
    let (subjects, claims) = match kind {
        Kind::Provenance => match provenance::parse(payload) {
            Ok(claims) => (claims.subjects.clone(), Some(claims)),
            Err(e) => return unreadable(e.to_string()),
        },
        Kind::Sbom => match sbom::parse(payload) {
            Ok(claims) => (claims.subjects, None),
            Err(e) => return unreadable(e.to_string()),
        },
    };
    let mut reasons = Vec::new();
    if !subjects.iter().any(|s| s.digest == *expected.digest) {
        reasons.push(Reason::AttestationSubject {
            attestation: kind,
            subjects: subjects.iter().map(|s| s.digest.to_string()).collect(),
            lock: expected.digest.to_string(),
        });
    }
    if let Some(claims) = claims {
        reasons.extend(provenance_reasons(&claims, expected));
    }
    reasons
}

/// The provenance's claims against the sources, the lock's pins and the checkout.
fn provenance_reasons(
    claims: &provenance::ProvenanceClaims,
    expected: Expected<'_>,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if claims.container != expected.container {
        reasons.push(Reason::ProvenanceContainer {
            statement: claims.container.clone(),
            container: expected.container.to_owned(),
        });
    }
    if claims.input_hash != expected.input_hash {
        reasons.push(Reason::ProvenanceInput {
            statement: claims.input_hash.clone(),
            computed: expected.input_hash.to_owned(),
        });
    }
    for base in &claims.bases {
        let pinned = expected.pins.get(base.reference.as_str());
        if pinned.map(|p| &p.digest) != Some(&base.digest) {
            reasons.push(Reason::ProvenanceBase {
                reference: base.reference.to_string(),
                statement: base.digest.to_string(),
                lock: pinned.map(|p| p.digest.to_string()),
            });
        }
    }
    if let Some(commit) = &claims.commit {
        match (expected.contains_commit)(commit) {
            Some(true) => {}
            contained => reasons.push(Reason::ProvenanceCommit {
                statement: commit.clone(),
                checkout: contained.is_some(),
            }),
        }
    }
    reasons
}

/// The attestations attached to `digest` in `repo`: cookbook's kinds only (other referrers —
/// signatures of other tools — are not ours to judge). An error only when the registry cannot
/// be asked; one attestation it serves badly is a [`Found`] with the reason.
pub async fn fetch(
    client: &RegistryClient,
    repo: &Repository,
    digest: &Digest,
) -> Result<Vec<Found>, RegistryError> {
    let (referrers, _) = client
        .referrers(
            repo,
            digest,
            Some(crate::attest::dsse::IN_TOTO_PAYLOAD_TYPE),
        )
        .await?;
    let mut found: Vec<Found> = Vec::new();
    for referrer in referrers {
        let Some(kind) = referrer
            .annotations
            .get(crate::labels::attestation::PREDICATE_TYPE)
            .and_then(|t| Kind::of_predicate_type(t))
        else {
            continue;
        };
        match found.iter().filter(|f| f.kind == kind).count() {
            n if n < MAX_PER_KIND => {}
            // One reason for the rest, not one each.
            n if n == MAX_PER_KIND => {
                found.push(Found {
                    kind,
                    referrer: referrer.digest,
                    envelope: Err(format!(
                        "more than {MAX_PER_KIND} {} attestations are attached; the rest were \
                         not read",
                        kind.as_str()
                    )),
                });
                continue;
            }
            _ => continue,
        }
        let envelope = match client
            .artifact_payload(repo, &referrer.digest, digest, ENVELOPE_MAX)
            .await
        {
            Ok(payload) => Ok(payload.payload),
            Err(e) if about_the_artifact(&e) => Err(e.to_string()),
            Err(e) => return Err(e),
        };
        found.push(Found {
            kind,
            referrer: referrer.digest,
            envelope,
        });
    }
    Ok(found)
}

/// The text of an attestation's reason (`verify`'s `Reason` display for the kinds above).
pub(super) fn describe(reason: &Reason, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match reason {
        Reason::AttestationMissing { attestation } => {
            write!(f, "no {} attestation is attached", attestation.as_str())
        }
        Reason::AttestationUnsigned { attestation } => {
            write!(f, "the {} attestation is unsigned", attestation.as_str())
        }
        Reason::AttestationWrongKey {
            attestation,
            signed_by,
            key,
        } => write!(
            f,
            "the {} attestation is signed by {}, not by the key given ({key})",
            attestation.as_str(),
            signed_by.join(", ")
        ),
        Reason::AttestationTampered {
            attestation,
            referrer,
            key,
        } => write!(
            f,
            "the {} attestation {referrer} names key {key}, but its signature does not \
                 verify: it was changed after signing",
            attestation.as_str()
        ),
        Reason::AttestationSubject {
            attestation,
            subjects,
            lock,
        } => write!(
            f,
            "the signed {} statement is about {}, not the locked image {lock}",
            attestation.as_str(),
            subjects.join(", ")
        ),
        Reason::AttestationUnreadable {
            attestation,
            referrer,
            message,
        } => write!(
            f,
            "the {} attestation {referrer} cannot be read: {message}",
            attestation.as_str()
        ),
        Reason::ProvenanceInput {
            statement,
            computed,
        } => write!(
            f,
            "the provenance names input hash {statement}, the sources give {computed}: they \
                 changed since the build"
        ),
        Reason::ProvenanceBase {
            reference,
            statement,
            lock: Some(lock),
        } => write!(
            f,
            "the provenance names base {reference} at {statement}, the lock pins {lock}"
        ),
        Reason::ProvenanceBase {
            reference,
            statement,
            lock: None,
        } => write!(
            f,
            "the provenance names base {reference} at {statement}, which the lock does not pin"
        ),
        Reason::ProvenanceContainer {
            statement,
            container,
        } => write!(
            f,
            "the provenance is about container {statement}, not {container}"
        ),
        Reason::ProvenanceCommit {
            statement,
            checkout: true,
        } => write!(
            f,
            "the provenance names commit {statement}, which this checkout does not contain"
        ),
        Reason::ProvenanceCommit {
            statement,
            checkout: false,
        } => write!(
            f,
            "the provenance names commit {statement}, and the cookbook is in no git checkout"
        ),
        _ => unreachable!("verify's Display sends only attestation reasons here"),
    }
}

/// Whether the registry answered, but with something that is not a sound attestation of this
/// image (it lies, or holds garbage): a reason for that attestation. Anything else — no answer,
/// refused credentials — means the registry could not be asked.
pub fn about_the_artifact(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::ManifestMissing { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::OtherSubject { .. }
            | RegistryError::NotAnArtifact { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::InvalidResponse { .. }
    )
}

/// Adds the attestations' findings to `report`: every published container the cookbook still
/// has, judged under `key` against the sources (`report`'s recomputed input hashes), the lock's
/// pins and the checkout (`contains_commit`).
pub async fn check(
    report: &mut Report,
    lock: &Lock,
    client: &RegistryClient,
    key: &PublicKey,
    contains_commit: &dyn Fn(&str) -> Option<bool>,
) -> Result<(), RegistryError> {
    report.attestations_checked = true;
    for (name, entry) in &lock.containers {
        let Some(verdict) = report.containers.get_mut(name.as_str()) else {
            continue;
        };
        let Some(input_hash) = verdict.input_hash.clone() else {
            continue;
        };
        if verdict.foreign() {
            continue;
        }
        let Some(digest) = entry.published_digest() else {
            let reason = Reason::NotPublished {
                image: entry.image.to_string(),
            };
            if !verdict.reasons.contains(&reason) {
                verdict.push(reason);
            }
            continue;
        };
        let expected = Expected {
            digest,
            container: name.as_str(),
            input_hash: &input_hash,
            pins: &lock.bases,
            contains_commit,
        };
        for reason in image_reasons(client, &entry.image, key, expected).await? {
            verdict.push(reason);
        }
    }
    Ok(())
}

/// Why the published image `image` (its repository; `expected.digest` its manifest) is not
/// vouched for under `key`: [`fetch`] then [`judge`]. What `deploy --require-attestations` asks
/// of every image it would run.
pub async fn image_reasons(
    client: &RegistryClient,
    image: &WrittenReference,
    key: &PublicKey,
    expected: Expected<'_>,
) -> Result<Vec<Reason>, RegistryError> {
    let found = fetch(client, image.reference().repository(), expected.digest).await?;
    Ok(judge(&found, key, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::key::{KeyAlgorithm, SigningKey};
    use crate::attest::provenance::tests::fixed as provenance_fixed;
    use crate::attest::sbom::tests::fixed as sbom_fixed;
    use crate::hash::{BasePin, PinSource};

    fn d(c: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap()
    }

    /// The fixtures' pins: what the fixed provenance names.
    fn pins() -> BasePins {
        let pin = |r: &str, c: &str| {
            (
                WrittenReference::parse(r).unwrap(),
                BasePin {
                    digest: d(c),
                    source: PinSource::Registry,
                },
            )
        };
        BasePins::from([
            pin("python:3.12-slim", "b"),
            pin("127.0.0.1:5000/base/builder:1", "a"),
        ])
    }

    fn found(kind: Kind, n: &str, envelope: &Envelope) -> Found {
        Found {
            kind,
            referrer: d(n),
            envelope: Ok(envelope.to_bytes()),
        }
    }

    fn signed(key: &SigningKey, statement: &[u8]) -> Envelope {
        Envelope::sign(crate::attest::dsse::IN_TOTO_PAYLOAD_TYPE, statement, key).unwrap()
    }

    /// A provenance and an SBOM of the fixed image `d("1")`, signed by `key`.
    fn both(key: &SigningKey) -> Vec<Found> {
        vec![
            found(
                Kind::Provenance,
                "7",
                &signed(key, &provenance::statement(&provenance_fixed())),
            ),
            found(
                Kind::Sbom,
                "8",
                &signed(key, &sbom::statement(&sbom_fixed())),
            ),
        ]
    }

    fn judged(found: &[Found], key: &SigningKey, contains: Option<bool>) -> Vec<Reason> {
        let (digest, pins) = (d("1"), pins());
        let contains = move |_: &str| contains;
        let expected = Expected {
            digest: &digest,
            container: "api",
            input_hash: &"2".repeat(64),
            pins: &pins,
            contains_commit: &contains,
        };
        judge(found, &key.public_key(), expected)
    }

    #[test]
    fn a_provenance_and_an_sbom_signed_by_the_key_that_hold_give_no_reason() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        assert_eq!(judged(&both(&key), &key, Some(true)), vec![]);
        let ed = SigningKey::generate(KeyAlgorithm::Ed25519);
        assert_eq!(judged(&both(&ed), &ed, Some(true)), vec![]);
    }

    #[test]
    fn nothing_attached_unsigned_and_another_key_are_named() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let other = SigningKey::generate(KeyAlgorithm::Ed25519);
        assert_eq!(
            judged(&[], &key, Some(true)),
            vec![
                Reason::AttestationMissing {
                    attestation: Kind::Provenance
                },
                Reason::AttestationMissing {
                    attestation: Kind::Sbom
                }
            ]
        );
        let mut unsigned = both(&key);
        for f in &mut unsigned {
            let mut envelope = Envelope::parse(f.envelope.as_ref().unwrap()).unwrap();
            envelope.signatures.clear();
            f.envelope = Ok(envelope.to_bytes());
        }
        assert!(
            judged(&unsigned, &key, Some(true)).contains(&Reason::AttestationUnsigned {
                attestation: Kind::Provenance
            })
        );
        let reasons = judged(&both(&other), &key, Some(true));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(
            reasons[0],
            Reason::AttestationWrongKey {
                attestation: Kind::Provenance,
                signed_by: vec![other.public_key().key_id()],
                key: key.public_key().key_id(),
            }
        );
    }

    #[test]
    fn an_edited_envelope_and_a_statement_about_another_image_are_named_beside_intact_ones() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let mut all = both(&key);
        // The SBOM's statement edited, its signature kept.
        let mut sbom = Envelope::parse(all[1].envelope.as_ref().unwrap()).unwrap();
        let mut payload = sbom.payload_bytes().unwrap();
        payload.push(b' ');
        sbom.payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &payload);
        all.push(found(Kind::Sbom, "9", &sbom));
        // A signed provenance about another image.
        let mut elsewhere = provenance_fixed();
        elsewhere.subject.digest = d("4");
        all.push(found(
            Kind::Provenance,
            "6",
            &signed(&key, &provenance::statement(&elsewhere)),
        ));
        assert_eq!(
            judged(&all, &key, Some(true)),
            vec![
                Reason::AttestationSubject {
                    attestation: Kind::Provenance,
                    subjects: vec![d("4").to_string()],
                    lock: d("1").to_string(),
                },
                Reason::AttestationTampered {
                    attestation: Kind::Sbom,
                    referrer: d("9").to_string(),
                    key: key.public_key().key_id(),
                },
            ]
        );
    }

    #[test]
    fn the_provenance_must_name_these_sources_the_locks_pins_and_a_commit_of_the_checkout() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let mut moved = provenance_fixed();
        moved.container = crate::model::Name::parse("web").unwrap();
        moved.input_hash = "5".repeat(64);
        moved.bases[0].digest = d("c");
        let all = vec![
            found(
                Kind::Provenance,
                "7",
                &signed(&key, &provenance::statement(&moved)),
            ),
            both(&key).remove(1),
        ];
        let reasons = judged(&all, &key, Some(false));
        assert_eq!(
            reasons,
            vec![
                Reason::ProvenanceContainer {
                    statement: "web".into(),
                    container: "api".into(),
                },
                Reason::ProvenanceInput {
                    statement: "5".repeat(64),
                    computed: "2".repeat(64),
                },
                Reason::ProvenanceBase {
                    reference: "python:3.12-slim".into(),
                    statement: d("c").to_string(),
                    lock: Some(d("b").to_string()),
                },
                Reason::ProvenanceCommit {
                    statement: "0123456789abcdef0123456789abcdef01234567".into(),
                    checkout: true,
                },
            ]
        );
        // Outside a git checkout, the commit cannot be checked: said so.
        assert!(
            judged(&both(&key), &key, None).contains(&Reason::ProvenanceCommit {
                statement: "0123456789abcdef0123456789abcdef01234567".into(),
                checkout: false,
            })
        );
    }

    #[test]
    fn what_the_registry_serves_badly_is_unreadable_not_a_panic() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let mut all = both(&key);
        all[0].envelope = Err("the payload is not its digest's bytes".into());
        all.push(Found {
            kind: Kind::Sbom,
            referrer: d("5"),
            envelope: Ok(b"{not json".to_vec()),
        });
        let reasons = judged(&all, &key, Some(true));
        assert!(
            matches!(
                &reasons[..],
                [Reason::AttestationUnreadable {
                    attestation: Kind::Provenance,
                    ..
                }]
            ),
            "{reasons:?}"
        );
    }
}
