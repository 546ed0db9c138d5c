//! DSSE v1 envelopes (secure-systems-lab/dsse, `envelope.md` and `protocol.md`): a payload, its
//! type, and signatures over the pre-authentication encoding (PAE) of the two.
//!
//! Pipeline position: what every signed thing cookbook writes is wrapped in — approvals here,
//! in-toto statements and SBOMs in `attest`'s other modules. The signature covers the PAE bytes,
//! never re-serialized JSON, so the payload is verified as the bytes it is and parsed only after
//! ([`Envelope::verify`] returns those bytes). An envelope is input: [`Envelope::parse`] caps it,
//! takes exactly the three fields the spec defines and refuses anything else, checks every
//! base64 field, and never panics (a property test feeds it random bytes).
//!
//! Serialized with the fields in one order and no whitespace ([`Envelope::to_bytes`]), so the
//! same envelope is the same bytes: a golden vector can pin an attestation's digest.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::attest::key::{KeyError, PublicKey, Signer};

pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// An envelope carries a statement or an SBOM; 16 MiB is far past either and still bounded.
pub const MAX_ENVELOPE: usize = 16 << 20;

/// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal
/// (`protocol.md`).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub payload_type: String,
    /// Standard base64 (with padding) of the payload's bytes.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's key id (`PublicKey::key_id`); the spec lets it be empty (unnamed).
    #[serde(default)]
    pub keyid: String,
    /// Standard base64 of the signature.
    pub sig: String,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is {size} bytes, over the cap of {} MiB", MAX_ENVELOPE >> 20)]
    TooLarge { size: usize },
    #[error("not a DSSE envelope: {0}")]
    Json(String),
    #[error("the envelope's payloadType is empty")]
    NoPayloadType,
    #[error("the envelope's {field} is not standard base64")]
    Base64 { field: String },
}

/// Why an envelope does not carry a payload signed by a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the envelope carries no signature")]
    Unsigned,
    #[error("signed by {}, not by this key", if keyids.is_empty() { "no named key".to_owned() } else { keyids.join(", ") })]
    OtherKeys { keyids: Vec<String> },
    /// A signature by this key's id that does not verify: the payload, its type or the
    /// signature was changed after signing.
    #[error(
        "the signature by {keyid} does not verify: the envelope was changed after it was signed"
    )]
    BadSignature { keyid: String },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl Envelope {
    /// Signs `payload` of `payload_type` (the PAE of the two) with `signer`.
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        signer: &dyn Signer,
    ) -> Result<Envelope, KeyError> {
        let signature = signer.sign(&pae(payload_type, payload))?;
        Ok(Envelope {
            payload_type: payload_type.to_owned(),
            payload: STANDARD.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: signer.key_id(),
                sig: STANDARD.encode(signature),
            }],
        })
    }

    /// Parses an envelope strictly: at most [`MAX_ENVELOPE`] bytes, the spec's fields only, a
    /// type, and base64 that decodes.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLarge { size: bytes.len() });
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        envelope.check()?;
        Ok(envelope)
    }

    /// What `parse` checks past JSON's shape; also for an envelope read as part of a larger
    /// document (an approvals record).
    pub fn check(&self) -> Result<(), EnvelopeError> {
        if self.payload_type.is_empty() {
            return Err(EnvelopeError::NoPayloadType);
        }
        self.payload_bytes()?;
        for (i, s) in self.signatures.iter().enumerate() {
            if STANDARD.decode(&s.sig).is_err() {
                return Err(EnvelopeError::Base64 {
                    field: format!("signatures[{i}].sig"),
                });
            }
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope of strings serializes")
    }

    /// The payload, decoded and NOT verified: for showing what an envelope claims, never for
    /// trusting it.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        STANDARD
            .decode(&self.payload)
            .map_err(|_| EnvelopeError::Base64 {
                field: "payload".to_owned(),
            })
    }

    /// The payload, when a signature by `key` verifies over the PAE. Signatures naming another
    /// key id are not tried; an unnamed one (an empty `keyid`) is.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, VerifyError> {
        self.check()?;
        if self.signatures.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        let payload = self.payload_bytes()?;
        let id = key.key_id();
        let message = pae(&self.payload_type, &payload);
        let mut tried = false;
        for s in &self.signatures {
            if !(s.keyid == id || s.keyid.is_empty()) {
                continue;
            }
            tried = true;
            let sig = STANDARD.decode(&s.sig).map_err(|_| EnvelopeError::Base64 {
                field: "sig".to_owned(),
            })?;
            if key.verify(&message, &sig).is_ok() {
                return Ok(payload);
            }
        }
        if tried {
            return Err(VerifyError::BadSignature { keyid: id });
        }
        let mut keyids: Vec<String> = self.signatures.iter().map(|s| s.keyid.clone()).collect();
        keyids.sort();
        keyids.dedup();
        Err(VerifyError::OtherKeys { keyids })
    }

    /// The key ids the signatures name, in order.
    pub fn keyids(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.keyid.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::key::{KeyAlgorithm, SigningKey};

    /// `protocol.md`'s worked example.
    #[test]
    fn pae_is_the_specs() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn envelopes_round_trip_and_verify_for_both_algorithms() {
        for algorithm in KeyAlgorithm::ALL {
            let key = SigningKey::generate(algorithm);
            let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key).unwrap();
            let bytes = envelope.to_bytes();
            assert!(bytes.starts_with(br#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"sha256:"#));
            let parsed = Envelope::parse(&bytes).unwrap();
            assert_eq!(parsed, envelope);
            assert_eq!(parsed.to_bytes(), bytes);
            assert_eq!(parsed.verify(&key.public_key()).unwrap(), b"{\"a\":1}");
            assert_eq!(parsed.payload_bytes().unwrap(), b"{\"a\":1}");
        }
    }

    #[test]
    fn a_changed_envelope_does_not_verify() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key).unwrap();
        let bad = || VerifyError::BadSignature {
            keyid: key.public_key().key_id(),
        };
        // A flipped payload byte.
        let mut payload = envelope.payload_bytes().unwrap();
        payload[5] ^= 1;
        let tampered = Envelope {
            payload: STANDARD.encode(&payload),
            ..envelope.clone()
        };
        assert_eq!(tampered.verify(&key.public_key()), Err(bad()));
        // Another payload type over the same bytes: the PAE covers the type.
        let retyped = Envelope {
            payload_type: "application/json".to_owned(),
            ..envelope.clone()
        };
        assert_eq!(retyped.verify(&key.public_key()), Err(bad()));
        // Another key.
        let other = SigningKey::generate(KeyAlgorithm::Ed25519);
        assert_eq!(
            envelope.verify(&other.public_key()),
            Err(VerifyError::OtherKeys {
                keyids: vec![key.public_key().key_id()]
            })
        );
        // A signature by the other key named as this one's.
        let forged = Envelope {
            signatures: vec![EnvelopeSignature {
                keyid: key.public_key().key_id(),
                sig: Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &other)
                    .unwrap()
                    .signatures[0]
                    .sig
                    .clone(),
            }],
            ..envelope.clone()
        };
        assert_eq!(forged.verify(&key.public_key()), Err(bad()));
        let unsigned = Envelope {
            signatures: vec![],
            ..envelope
        };
        assert_eq!(
            unsigned.verify(&key.public_key()),
            Err(VerifyError::Unsigned)
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"null",
            b"[]",
            b"{}",
            br#"{"payloadType":"t","payload":"","signatures":[],"extra":1}"#,
            br#"{"payloadType":"","payload":"","signatures":[]}"#,
            br#"{"payloadType":"t","payload":"!!","signatures":[]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"keyid":"k","sig":"%%"}]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"keyid":"k"}]}"#,
            br#"{"payloadType":1,"payload":"","signatures":[]}"#,
        ];
        for case in cases {
            assert!(
                Envelope::parse(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(
            Envelope::parse(&vec![b' '; MAX_ENVELOPE + 1]),
            Err(EnvelopeError::TooLarge {
                size: MAX_ENVELOPE + 1
            })
        );
        // The spec lets `keyid` be absent.
        let unnamed =
            Envelope::parse(br#"{"payloadType":"t","payload":"","signatures":[{"sig":""}]}"#)
                .unwrap();
        assert_eq!(unnamed.keyids(), [""]);
    }

    /// Keys as `openssl genpkey` wrote them, fixed so that the bytes below never move.
    const GOLDEN_ED25519: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEID79jLQbvr9TrrGiKLf9XSFUyLlAi49+nMQUSEWSDLBs\n-----END PRIVATE KEY-----\n";
    const GOLDEN_P256: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9EdArfWw1ijgSrTM\nMRTA6zMuk6V+4V80lq3OZJAJJ6OhRANCAAQup0j9YrZVsOTkR55KtL2bExwjjOSP\nHWA6lN38JsCA7xt0+JmgpBwR92pMbnR6OzztJEHfKuEJQrQrcxrEiPA5\n-----END PRIVATE KEY-----\n";

    /// Golden vectors: both algorithms sign deterministically (Ed25519 by design, ECDSA by RFC
    /// 6979), so a fixed key and payload give these exact envelope bytes — checked once by hand
    /// with `openssl pkeyutl -verify -rawin` and `openssl dgst -sha256 -verify` over the PAE, and
    /// the key ids with `openssl pkey -pubin -outform DER | sha256sum`. The keys are written back
    /// as the very text openssl wrote.
    #[test]
    fn golden_envelopes() {
        let cases = [
            (
                GOLDEN_ED25519,
                r#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"sha256:c3b21b9e3e9d459933c9c5e2b78eb795db2e397b8a7de4576d8a13aa7c6a4960","sig":"24vYecAYup/Q4Uux3D89WAq2rVQgUI8LGH5zCStHgnpnBU+EvSd5aLKpToSWr7MUwYm3kGMIiaKKy6zkEZ3bCQ=="}]}"#,
            ),
            (
                GOLDEN_P256,
                r#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"sha256:946464320c6a1ddb284405854df4b63242073c2e5a093aae7e63b7a5df4647f8","sig":"MEYCIQDUwdc8U5D7vK+z4n0Eg2FuuR8oAqbA+8/fPTUDkE2lqAIhAP+L+PMQ6ImBs1kJi4c1AeYzUUPJ/QWEtkq5GxJLepYV"}]}"#,
            ),
        ];
        for (pem, expected) in cases {
            let key = SigningKey::from_pkcs8_pem(pem).unwrap();
            assert_eq!(key.to_pkcs8_pem(), pem);
            let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key).unwrap();
            assert_eq!(String::from_utf8(envelope.to_bytes()).unwrap(), expected);
            assert_eq!(
                Envelope::parse(expected.as_bytes())
                    .unwrap()
                    .verify(&key.public_key())
                    .unwrap(),
                b"{\"a\":1}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let key = SigningKey::generate(KeyAlgorithm::Ed25519).public_key();
            if let Ok(envelope) = Envelope::parse(&bytes) {
                let _ = envelope.verify(&key);
            }
        }

        #[test]
        fn envelope_shaped_json_never_panics(
            payload_type in ".{0,20}",
            payload in "[A-Za-z0-9+/=]{0,40}",
            keyid in ".{0,10}",
            sig in "[A-Za-z0-9+/=]{0,120}",
        ) {
            let json = serde_json::json!({
                "payloadType": payload_type, "payload": payload,
                "signatures": [{ "keyid": keyid, "sig": sig }],
            });
            let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).public_key();
            if let Ok(envelope) = Envelope::parse(json.to_string().as_bytes()) {
                proptest::prop_assert!(envelope.verify(&key).is_err());
            }
        }
    }
}
