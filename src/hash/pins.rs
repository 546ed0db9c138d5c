//! Base-image pins: which exact image an external `base_image` reference stands for.
//!
//! Pure data. `apply` resolves each external base once (the registry's manifest digest, or the
//! engine's image id for an image that exists only locally) and records it in `cookbook.lock`,
//! the way `Cargo.lock` pins a version; from then on hashing (hash_version 2; 3 for the `FROM`
//! lines of Dockerfile containers, read by `context::from_lines`) and building use
//! the pin, never the tag, so a base that moves under its tag is not picked up until `cookbook
//! update` re-resolves it. Everything that hashes reads the pins from the lock: `hash`,
//! `explain`, `plan` and `verify` stay offline.
//!
//! Pins are keyed by the reference exactly as the cookbook writes it (for a Dockerfile's `FROM`,
//! as its text reads once its `ARG`s are substituted): two containers naming the same reference
//! share one pin (and move together on `update`), whether generated or Dockerfile. `scratch` is
//! no image and is never pinned.
//!
//! Every part of a pin is a typed value — the key a [`WrittenReference`], the digest a
//! [`Digest`] — because the pin is written into a Dockerfile's `FROM` line: what the lock says
//! can only ever name an image there, never add a line or an argument.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::oci::{Digest, FromImage, WrittenReference};

/// Where a pin's digest comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinSource {
    /// The registry's manifest digest of the reference's tag. Builds say `FROM ref@digest`.
    Registry,
    /// The engine's image id (the digest of its configuration): the image exists only in the
    /// local engine, with no registry digest. Builds say `FROM <id>`.
    Engine,
    /// The reference carries its own digest (`name@sha256:…`): it is pinned already.
    Reference,
}

impl PinSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PinSource::Registry => "registry",
            PinSource::Engine => "engine",
            PinSource::Reference => "reference",
        }
    }

    pub fn parse(text: &str) -> Option<PinSource> {
        Some(match text {
            "registry" => PinSource::Registry,
            "engine" => PinSource::Engine,
            "reference" => PinSource::Reference,
            _ => return None,
        })
    }
}

/// One pinned base image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BasePin {
    /// A manifest digest (registry, reference) or an image id (engine).
    #[serde(serialize_with = "digest_text")]
    pub digest: Digest,
    pub source: PinSource,
}

fn digest_text<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(digest.as_str())
}

/// Every pin, by the reference the cookbook writes.
pub type BasePins = BTreeMap<WrittenReference, BasePin>;

/// Why a pin cannot stand for its reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinMismatch {
    /// Docker names local images and registries name manifests by sha256; `cookbook` records no
    /// other algorithm, so another is a lock it did not write.
    #[error("a pin of source `{}` is a sha256 digest, not {}", pinned_by.as_str(), digest_algorithm(digest))]
    NotSha256 {
        pinned_by: PinSource,
        digest: Digest,
    },
    /// The reference names no digest of its own, so it cannot be pinned by `reference`.
    #[error("the reference carries no digest, so it cannot be pinned by source `reference`")]
    NoDigestInReference,
    /// The reference carries a digest: that digest is its pin, by source `reference`.
    #[error(
        "the reference carries its own digest {0}: its pin is that digest, source `reference`"
    )]
    DigestInReference(Digest),
}

fn digest_algorithm(digest: &Digest) -> &str {
    digest.as_str().split(':').next().unwrap_or_default()
}

impl BasePin {
    /// Checks that this pin can stand for `reference`: a reference that carries a digest is
    /// pinned by exactly that digest (`reference`), any other by a sha256 digest from the
    /// registry or the engine. What `apply` resolves always passes; a lock that fails was not
    /// written by it.
    pub fn check(&self, reference: &WrittenReference) -> Result<(), PinMismatch> {
        match (self.source, reference.reference().digest()) {
            (PinSource::Reference, Some(own)) if *own == self.digest => Ok(()),
            (_, Some(own)) => Err(PinMismatch::DigestInReference(own.clone())),
            (PinSource::Reference, None) => Err(PinMismatch::NoDigestInReference),
            (pinned_by, None) if !self.digest.as_str().starts_with("sha256:") => {
                Err(PinMismatch::NotSha256 {
                    pinned_by,
                    digest: self.digest.clone(),
                })
            }
            (_, None) => Ok(()),
        }
    }

    /// The image a build names in its `FROM` line for `reference` pinned by `self`.
    pub fn from_line(&self, reference: &WrittenReference) -> FromImage {
        match self.source {
            // `name:tag@digest`: the engine resolves the digest (the tag is kept for the reader).
            PinSource::Registry => FromImage::Pinned(reference.clone(), self.digest.clone()),
            // The classic builder looks a bare image id up in its image store.
            PinSource::Engine => FromImage::Id(self.digest.clone()),
            PinSource::Reference => FromImage::Reference(reference.clone()),
        }
    }
}

/// What a hash is computed under: the algorithm's version and the pins it reads.
///
/// Version 1 ignores pins (it hashed the reference as written); version 2 covers each generated
/// container's external base's pin; version 3 also each external image of a Dockerfile's `FROM`
/// lines (see docs/REPRODUCIBILITY.md). `verify` computes a lock's own version.
#[derive(Debug, Clone, Copy)]
pub struct Pinning<'a> {
    pub version: u32,
    pub pins: &'a BasePins,
}

impl<'a> Pinning<'a> {
    /// The current algorithm ([`super::HASH_VERSION`]) with `pins`.
    pub fn current(pins: &'a BasePins) -> Pinning<'a> {
        Pinning {
            version: super::HASH_VERSION,
            pins,
        }
    }

    /// `version` with `pins`; `None` for a version this build cannot compute.
    pub fn version(version: u32, pins: &'a BasePins) -> Option<Pinning<'a>> {
        super::HASH_VERSIONS
            .contains(&version)
            .then_some(Pinning { version, pins })
    }

    /// What a lock written under `version` with `pins` is checked under: that version, or the
    /// current one when this build cannot compute it (a check then reports the versions'
    /// mismatch rather than hashing nothing).
    pub fn of_lock(version: u32, pins: &'a BasePins) -> Pinning<'a> {
        Pinning::version(version, pins).unwrap_or_else(|| Pinning::current(pins))
    }

    /// The pin of `reference` that this version reads (none under version 1).
    pub fn pin(&self, reference: &str) -> Option<&'a BasePin> {
        if self.version < 2 {
            return None;
        }
        self.pins.get(reference)
    }

    /// Whether this version pins the external images of a Dockerfile's `FROM` lines (3 on).
    pub fn pins_dockerfiles(&self) -> bool {
        self.version >= 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> WrittenReference {
        WrittenReference::parse(text).unwrap()
    }

    #[test]
    fn from_lines_name_exactly_the_pinned_image() {
        let d = format!("sha256:{}", "a".repeat(64));
        let pin = |source| BasePin {
            digest: Digest::parse(&d).unwrap(),
            source,
        };
        let line = |source, reference: &str| pin(source).from_line(&written(reference)).to_string();
        assert_eq!(
            line(PinSource::Registry, "127.0.0.1:5000/b/busybox:1"),
            format!("127.0.0.1:5000/b/busybox:1@{d}")
        );
        assert_eq!(line(PinSource::Engine, "local/busybox:latest"), d);
        let pinned = format!("x/y@{d}");
        assert_eq!(line(PinSource::Reference, &pinned), pinned);
    }

    #[test]
    fn a_pin_must_fit_its_reference() {
        let d = |c: &str| Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap();
        let pin = |digest, source| BasePin { digest, source };
        let tagged = written("b:1");
        let digested = written(&format!("b@{}", d("a")));
        assert_eq!(pin(d("a"), PinSource::Registry).check(&tagged), Ok(()));
        assert_eq!(pin(d("a"), PinSource::Engine).check(&tagged), Ok(()));
        assert_eq!(pin(d("a"), PinSource::Reference).check(&digested), Ok(()));
        assert_eq!(
            pin(d("a"), PinSource::Reference).check(&tagged),
            Err(PinMismatch::NoDigestInReference)
        );
        for (digest, source) in [
            (d("b"), PinSource::Reference),
            (d("a"), PinSource::Registry),
            (d("a"), PinSource::Engine),
        ] {
            assert_eq!(
                pin(digest, source).check(&digested),
                Err(PinMismatch::DigestInReference(d("a")))
            );
        }
        let sha512 = Digest::parse(&format!("sha512:{}", "c".repeat(128))).unwrap();
        assert!(matches!(
            pin(sha512.clone(), PinSource::Registry).check(&tagged),
            Err(PinMismatch::NotSha256 { .. })
        ));
        // A reference may carry any digest the grammar takes: its pin is that digest.
        let by_sha512 = written(&format!("b@{sha512}"));
        assert_eq!(pin(sha512, PinSource::Reference).check(&by_sha512), Ok(()));
    }

    #[test]
    fn version_1_reads_no_pins() {
        let pins = BasePins::from([(
            written("b:1"),
            BasePin {
                digest: Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
                source: PinSource::Registry,
            },
        )]);
        assert!(Pinning::version(1, &pins).unwrap().pin("b:1").is_none());
        assert!(Pinning::current(&pins).pin("b:1").is_some());
        assert!(Pinning::version(0, &pins).is_none());
        assert!(!Pinning::version(2, &pins).unwrap().pins_dockerfiles());
        assert!(Pinning::current(&pins).pins_dockerfiles());
    }
}
