//! Signing keys and public keys: ECDSA P-256 and Ed25519, PKCS#8 and SPKI PEM, as `openssl`
//! writes and reads them.
//!
//! Pipeline position: the one place a key enters cookbook. `cookbook key generate` writes a pair;
//! `approve --signing-key` (and the attestations `apply` signs) read a private key; `promote`
//! and `verify --attestations` read public keys. Every key file is input: it is read capped
//! (`context::file`), parsed at this boundary into a typed key, and a bad one is a [`KeyError`]
//! naming the file and what is wrong (not PEM, a SEC1 or encrypted key, an algorithm named by its
//! OID that cookbook does not take), never a panic.
//!
//! A key's id is `sha256:<hex>` of its SubjectPublicKeyInfo DER, which anyone can recompute with
//! `openssl pkey -pubin -in KEY.pub -outform DER | sha256sum`; envelopes name their signer by it.
//!
//! Signatures are what `openssl` verifies with no options beyond the digest: ECDSA P-256 over
//! SHA-256, ASN.1 DER, deterministic (RFC 6979, the `p256` default, so the same key and message
//! give the same bytes: a golden vector can pin them); Ed25519 the 64 raw bytes (PureEdDSA).
//!
//! The keyless seam: [`Signer`] is what a signature needs from whoever signs — a name (`key_id`)
//! and a signature over bytes. A keyless signer (sigstore: an OIDC identity, a short-lived
//! certificate from Fulcio, the signature logged in Rekor) would implement it too, and return
//! besides its certificate chain and the log's inclusion proof, which the envelope would carry
//! (sigstore's bundle) and a verifier would check against the CA's root and the log's key instead
//! of a listed public key. It is not built here: no CA and no transparency log can be reached
//! from where cookbook runs its tests, and a keyless signer that cannot be checked end to end
//! would be a fake.
//!
//! A private key file readable by its group or others is refused, as ssh refuses one: a key that
//! others could read cannot say who signed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::ObjectIdentifier;
use rand_core::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::context::file::{read_regular, FileError};

/// A key file is a few hundred bytes; a megabyte is no key.
const MAX_KEY_FILE: u64 = 64 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Algorithms and curves a key file may name, so that a refusal says what the key is.
fn oid_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    EcdsaP256,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<KeyAlgorithm, KeyError> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| KeyError::UnknownAlgorithm(s.to_owned()))
    }
}

/// Why a key could not be read, parsed or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown key algorithm `{0}` (cookbook signs with ecdsa-p256 or ed25519)")]
    UnknownAlgorithm(String),
    #[error("not a PEM file ({0})")]
    NotPem(String),
    /// A PEM block of another kind than the one expected (`PUBLIC KEY` where a private key
    /// belongs, `CERTIFICATE`…).
    #[error("a PEM `{found}` block, where a `{expected}` belongs")]
    WrongPem {
        found: String,
        expected: &'static str,
    },
    #[error("an encrypted PKCS#8 key, which cookbook does not decrypt")]
    Encrypted,
    /// OpenSSL's traditional `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY`: not PKCS#8.
    #[error("a `{0}` key, not PKCS#8")]
    Traditional(String),
    #[error("the key's algorithm is {name} ({oid}), which cookbook does not sign with")]
    Unsupported { oid: String, name: String },
    #[error("malformed key: {0}")]
    Malformed(String),
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// A well-formed signature that does not verify: the message or the signature changed, or
    /// another key made it.
    #[error("the signature does not verify")]
    BadSignature,
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("{}: no such file", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: FileError },
    /// A private key its group or others may read, refused as ssh refuses one.
    #[error("{}: permissions {mode:04o} are too open: a private key must be readable by its owner only", path.display())]
    TooOpen { path: PathBuf, mode: u32 },
    /// A problem with the content of the key file at `path`.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<KeyError>,
    },
}

impl KeyError {
    /// What to do about it, where there is one thing to do.
    pub fn help(&self) -> Option<String> {
        match self {
            KeyError::InFile { source, .. } => source.help(),
            KeyError::TooOpen { path, .. } => Some(format!("chmod 600 {}", path.display())),
            KeyError::Encrypted => Some(
                "decrypt it to an unencrypted PKCS#8 file: openssl pkcs8 -in KEY -out KEY.plain (then chmod 600)"
                    .to_owned(),
            ),
            KeyError::Traditional(_) => Some(
                "convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8".to_owned(),
            ),
            KeyError::Unsupported { .. } | KeyError::UnknownAlgorithm(_) => {
                Some("`cookbook key generate` writes an ecdsa-p256 or ed25519 pair".to_owned())
            }
            _ => None,
        }
    }

    /// A failed check (1) rather than bad input (2): a signature that does not verify.
    pub fn is_bad_signature(&self) -> bool {
        matches!(self, KeyError::BadSignature)
    }

    fn in_file(self, path: &Path) -> KeyError {
        KeyError::InFile {
            path: path.to_owned(),
            source: Box::new(self),
        }
    }
}

enum Secret {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key. Both inner keys zeroize their secret when dropped.
pub struct SigningKey {
    secret: Secret,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: a key in a log line or a panic message is a key leaked.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate(algorithm: KeyAlgorithm) -> SigningKey {
        let secret = match algorithm {
            KeyAlgorithm::EcdsaP256 => Secret::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            KeyAlgorithm::Ed25519 => {
                Secret::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        };
        SigningKey::from_secret(secret)
    }

    fn from_secret(secret: Secret) -> SigningKey {
        let public = match &secret {
            Secret::P256(k) => PublicKey::from_inner(Public::P256(*k.verifying_key())),
            Secret::Ed25519(k) => PublicKey::from_inner(Public::Ed25519(k.verifying_key())),
        };
        SigningKey { secret, public }
    }

    /// An unencrypted PKCS#8 `PRIVATE KEY`; the algorithm is the one its OID names.
    pub fn from_pkcs8_pem(text: &str) -> Result<SigningKey, KeyError> {
        let (label, der) = pem(text)?;
        match label.as_str() {
            "PRIVATE KEY" => {}
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "DSA PRIVATE KEY" | "OPENSSH PRIVATE KEY" => {
                return Err(KeyError::Traditional(label))
            }
            _ => {
                return Err(KeyError::WrongPem {
                    found: label,
                    expected: "PRIVATE KEY",
                })
            }
        }
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let secret = match algorithm_of(&info.algorithm)? {
            KeyAlgorithm::EcdsaP256 => Secret::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?,
            ),
            KeyAlgorithm::Ed25519 => Secret::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?,
            ),
        };
        Ok(SigningKey::from_secret(secret))
    }

    pub fn to_pkcs8_pem(&self) -> String {
        // Encoding a key the library itself holds cannot fail: no input is parsed.
        let pem = match &self.secret {
            Secret::P256(k) => k
                .to_pkcs8_pem(pkcs8::LineEnding::LF)
                .expect("a held key encodes as PKCS#8"),
            Secret::Ed25519(k) => ed25519_pkcs8_v1(k),
        };
        pem.to_string()
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm()
    }
}

/// An Ed25519 key as RFC 8410's PKCS#8 v1 (`PrivateKeyInfo`: the algorithm and the 32-byte seed
/// only), which is what `openssl genpkey` writes. ed25519-dalek writes v2 (RFC 5958, with the
/// public key), which OpenSSL 3.0 refuses to read, and a key file openssl cannot read could not be
/// checked by hand.
fn ed25519_pkcs8_v1(key: &ed25519_dalek::SigningKey) -> zeroize::Zeroizing<String> {
    use pkcs8::der::Encode;
    // CurvePrivateKey ::= OCTET STRING, itself inside the PrivateKeyInfo's OCTET STRING.
    let mut curve_private_key = zeroize::Zeroizing::new(vec![0x04, 0x20]);
    curve_private_key.extend_from_slice(&key.to_bytes());
    let info = pkcs8::PrivateKeyInfo::new(
        ed25519_dalek::pkcs8::ALGORITHM_ID,
        curve_private_key.as_slice(),
    );
    let der = zeroize::Zeroizing::new(info.to_der().expect("a seed encodes as DER"));
    zeroize::Zeroizing::new(
        pkcs8::der::pem::encode_string("PRIVATE KEY", pkcs8::LineEnding::LF, &der)
            .expect("DER encodes as PEM"),
    )
}

/// The seam for keyless signing (a Fulcio certificate, a Rekor entry; see the module header): a
/// signer names itself and signs bytes. A keyless signer would also hand over its certificate
/// chain and the log's proof for the envelope to carry.
pub trait Signer: Send + Sync {
    fn key_id(&self) -> String;
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
}

impl Signer for SigningKey {
    fn key_id(&self) -> String {
        self.public.key_id()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        use p256::ecdsa::signature::Signer as _;
        Ok(match &self.secret {
            Secret::P256(k) => {
                let signature: p256::ecdsa::Signature = k
                    .try_sign(message)
                    .map_err(|e| KeyError::Signing(e.to_string()))?;
                signature.to_der().as_bytes().to_vec()
            }
            Secret::Ed25519(k) => k
                .try_sign(message)
                .map_err(|e| KeyError::Signing(e.to_string()))?
                .to_bytes()
                .to_vec(),
        })
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Public {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public key, with its SubjectPublicKeyInfo DER (what its id is the digest of).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: Public,
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl PublicKey {
    fn from_inner(key: Public) -> PublicKey {
        let der = match &key {
            Public::P256(k) => k.to_public_key_der(),
            Public::Ed25519(k) => k.to_public_key_der(),
        };
        // Encoding a key already parsed or derived cannot fail.
        let spki = der.expect("a held key encodes as SPKI").into_vec();
        PublicKey { key, spki }
    }

    /// An SPKI `PUBLIC KEY` PEM block, as `openssl pkey -pubout` writes it.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = pem(text)?;
        // A private key has a public half, but a file meant to be shared must not be a private
        // key: it is refused, naming what it is, rather than read.
        if label != "PUBLIC KEY" {
            return Err(KeyError::WrongPem {
                found: label,
                expected: "PUBLIC KEY",
            });
        }
        PublicKey::from_spki_der(&der)
    }

    fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let key = match algorithm_of(&info.algorithm)? {
            KeyAlgorithm::EcdsaP256 => Public::P256(
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?,
            ),
            KeyAlgorithm::Ed25519 => Public::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?,
            ),
        };
        Ok(PublicKey::from_inner(key))
    }

    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string("PUBLIC KEY", pkcs8::LineEnding::LF, &self.spki)
            .expect("an SPKI document encodes as PEM")
    }

    /// "sha256:<hex of SHA-256 of the SPKI DER>": what envelopes name as `keyid`; recomputable
    /// with `openssl pkey -pubin -outform DER | sha256sum`.
    pub fn key_id(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.spki)))
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            Public::P256(_) => KeyAlgorithm::EcdsaP256,
            Public::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// ECDSA P-256: SHA-256, signature ASN.1 DER (what `openssl dgst -sha256 -verify` reads);
    /// Ed25519: the 64 raw bytes (`openssl pkeyutl -verify -rawin`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        use p256::ecdsa::signature::Verifier as _;
        match &self.key {
            Public::P256(k) => {
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|e| KeyError::MalformedSignature(e.to_string()))?;
                k.verify(message, &signature)
                    .map_err(|_| KeyError::BadSignature)
            }
            Public::Ed25519(k) => {
                let signature = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|e| KeyError::MalformedSignature(e.to_string()))?;
                // Strict: no small-order keys, no non-canonical encodings (RFC 8032's checks).
                k.verify_strict(message, &signature)
                    .map_err(|_| KeyError::BadSignature)
            }
        }
    }
}

/// The one PEM block of `text`: its label and bytes.
fn pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| KeyError::NotPem(e.to_string()))?;
    Ok((label.to_owned(), der))
}

/// The algorithm an AlgorithmIdentifier names, or the refusal naming what it is.
fn algorithm_of<P>(id: &spki::AlgorithmIdentifier<P>) -> Result<KeyAlgorithm, KeyError>
where
    P: pkcs8::der::Encode,
{
    let unsupported = |oid: &ObjectIdentifier| KeyError::Unsupported {
        oid: oid.to_string(),
        name: oid_name(oid).unwrap_or("unknown").to_owned(),
    };
    if id.oid == OID_ED25519 {
        return Ok(KeyAlgorithm::Ed25519);
    }
    if id.oid != OID_EC_PUBLIC_KEY {
        return Err(unsupported(&id.oid));
    }
    // An EC key names its curve in the parameters: an OID, encoded.
    let curve = id
        .parameters
        .as_ref()
        .and_then(|p| p.to_der().ok())
        .and_then(|der| {
            use pkcs8::der::Decode;
            ObjectIdentifier::from_der(&der).ok()
        });
    match curve {
        Some(curve) if curve == OID_P256 => Ok(KeyAlgorithm::EcdsaP256),
        Some(curve) => Err(KeyError::Unsupported {
            oid: curve.to_string(),
            name: format!("EC on {}", oid_name(&curve).unwrap_or("an unknown curve")),
        }),
        None => Err(KeyError::Malformed(
            "an EC key without a named curve".to_owned(),
        )),
    }
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let bytes = match read_regular(path, MAX_KEY_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(KeyError::Missing { path: path.into() }),
        Err(source) => {
            return Err(KeyError::Read {
                path: path.into(),
                source,
            })
        }
    };
    String::from_utf8(bytes)
        .map_err(|_| KeyError::NotPem("not UTF-8 text".to_owned()).in_file(path))
}

/// Reads the private key at `path`: a regular file, readable by its owner only, an unencrypted
/// PKCS#8 PEM key of a supported algorithm.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let text = read_key_file(path)?;
    // Checked after the read, on the file read (a link's target), as ssh does.
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.into(),
                mode,
            });
        }
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| e.in_file(path))
}

/// Reads the public key at `path`: an SPKI `PUBLIC KEY` PEM block.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let text = read_key_file(path)?;
    PublicKey::from_pem(&text).map_err(|e| e.in_file(path))
}

/// Reads a key file of either kind for its public key: a `PUBLIC KEY`, or a private key's
/// public half (`cookbook key id`). A private key's permissions are checked as when it signs.
pub fn read_any_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let text = read_key_file(path)?;
    match PublicKey::from_pem(&text) {
        Err(KeyError::WrongPem { found, .. }) if found.contains("PRIVATE KEY") => {
            read_signing_key(path).map(|k| k.public_key())
        }
        other => other.map_err(|e| e.in_file(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.as_str().parse::<KeyAlgorithm>().unwrap(), a);
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::json!(a.as_str())
            );
        }
        assert!(matches!(
            "rsa".parse::<KeyAlgorithm>(),
            Err(KeyError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        for algorithm in KeyAlgorithm::ALL {
            let key = SigningKey::generate(algorithm);
            let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            assert_eq!(again.public_key(), key.public_key());
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            assert_eq!(public, key.public_key());
            assert_eq!(public.key_id(), Signer::key_id(&key));
            assert!(public.key_id().starts_with("sha256:") && public.key_id().len() == 71);
            let signature = key.sign(b"message").unwrap();
            public.verify(b"message", &signature).unwrap();
            assert!(public
                .verify(b"messagE", &signature)
                .unwrap_err()
                .is_bad_signature());
            let other = SigningKey::generate(algorithm).public_key();
            assert!(other.verify(b"message", &signature).is_err());
        }
    }

    #[test]
    fn ecdsa_signatures_are_deterministic() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        assert_eq!(key.sign(b"m").unwrap(), key.sign(b"m").unwrap());
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let key = SigningKey::generate(KeyAlgorithm::Ed25519);
        let Secret::Ed25519(inner) = &key.secret else {
            unreachable!()
        };
        let debug = format!("{key:?}");
        assert!(!debug.contains(&hex::encode(inner.to_bytes())));
        assert!(!debug.contains(&format!("{:?}", inner.to_bytes())));
        assert!(debug.contains("ed25519") || debug.contains("Ed25519"));
    }

    /// Keys as `openssl genpkey` writes them, with refusals that name what each one is.
    #[test]
    fn foreign_keys_are_refused_by_name() {
        // openssl genpkey -algorithm ed448
        let ed448 = "-----BEGIN PRIVATE KEY-----\nMEcCAQAwBQYDK2VxBDsEOQaj1vfO9SSVXKBQLi6qRz8TPgwMMsuMLd4JoM02ottm\ny6IDIpzgu+bXBtcaSnMgQ4Y+PEh/omRWEA==\n-----END PRIVATE KEY-----\n";
        let err = SigningKey::from_pkcs8_pem(ed448).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the key's algorithm is Ed448 (1.3.101.113), which cookbook does not sign with"
        );
        // openssl ecparam -name secp384r1 -genkey | openssl pkey -pubout
        let p384 = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEtynSidW8mMNLsljSf/eK/nbpIjIkn7AJ\nRSV4pXOjsHwebRyRsD58UVMiaQ+tCQrcCyLhE4YXPAqTTSiTLZEL/zDaC6lTztwp\nwFmsh8LuDtDrGw0lK5upYvEUGybWiwxw\n-----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(p384).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the key's algorithm is EC on P-384 (1.3.132.0.34), which cookbook does not sign with"
        );
        assert!(matches!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
            ),
            Err(KeyError::Traditional(_))
        ));
        let public = SigningKey::generate(KeyAlgorithm::EcdsaP256)
            .public_key()
            .to_pem();
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&public),
            Err(KeyError::WrongPem { .. })
        ));
        for junk in [
            "",
            "hello",
            "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(PublicKey::from_pem(junk).is_err(), "{junk:?}");
            assert!(SigningKey::from_pkcs8_pem(junk).is_err(), "{junk:?}");
        }
        // Valid PEM and DER framing around a body that is no key.
        let not_a_key = "-----BEGIN PUBLIC KEY-----\nMAMCAQA=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(not_a_key),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_signatures_are_errors_not_panics() {
        for algorithm in KeyAlgorithm::ALL {
            let public = SigningKey::generate(algorithm).public_key();
            for junk in [&b""[..], b"\x30", &[0u8; 64], &[0xff; 72], &[0u8; 200]] {
                assert!(public.verify(b"m", junk).is_err());
            }
        }
    }

    #[test]
    fn key_files_are_read_with_their_permissions_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256);
        let path = dir.path().join("k.key");
        std::fs::write(&path, key.to_pkcs8_pem()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_signing_key(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert_eq!(err.help().unwrap(), format!("chmod 600 {}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_signing_key(&path).unwrap().public_key(),
            key.public_key()
        );
        assert_eq!(read_any_public_key(&path).unwrap(), key.public_key());
        let public = dir.path().join("k.pub");
        std::fs::write(&public, key.public_key().to_pem()).unwrap();
        assert_eq!(read_public_key(&public).unwrap(), key.public_key());
        assert_eq!(read_any_public_key(&public).unwrap(), key.public_key());
        let err = read_public_key(&path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: a PEM `PRIVATE KEY` block", path.display())),
            "{err}"
        );
        assert!(matches!(
            read_public_key(&dir.path().join("none")),
            Err(KeyError::Missing { .. })
        ));
        assert!(matches!(
            read_public_key(dir.path()),
            Err(KeyError::Read { .. })
        ));
    }
}
