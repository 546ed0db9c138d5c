//! Content digests (`sha256:<64 hex>`), as registries name manifests and blobs.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A validated `algorithm:hex` digest. Only the algorithms the OCI image spec registers are
/// accepted, with their exact hex length, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid digest `{text}`: expected sha256:<64 lowercase hex> (or sha384/sha512)")]
pub struct DigestError {
    pub text: String,
}

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let invalid = || DigestError {
            text: text.to_owned(),
        };
        let (algorithm, hex) = text.split_once(':').ok_or_else(invalid)?;
        let length = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(invalid()),
        };
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != length || !lower_hex {
            return Err(invalid());
        }
        Ok(Digest(text.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Whether `bytes` hash to this digest (false for an algorithm other than sha256, which
    /// `cookbook` never produces).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.0.starts_with("sha256:") && Digest::sha256_of(bytes) == *self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        // sha256("foo"), as `printf foo | sha256sum` prints it.
        let d = Digest::sha256_of(b"foo");
        assert_eq!(
            d.as_str(),
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        assert!(d.matches(b"foo"));
        assert!(!d.matches(b"bar"));
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    }

    #[test]
    fn malformed_digests_are_refused() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE",
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7a",
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7zz",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
