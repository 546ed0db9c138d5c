//! Base-image pins: which exact image an external `base_image` reference stands for.
//!
//! Pure data. `apply` resolves each external base once (the registry's manifest digest, or the
//! engine's image id for an image that exists only locally) and records it in `cookbook.lock`,
//! the way `Cargo.lock` pins a version; from then on hashing (hash_version 2) and building use
//! the pin, never the tag, so a base that moves under its tag is not picked up until `cookbook
//! update` re-resolves it. Everything that hashes reads the pins from the lock: `hash`,
//! `explain`, `plan` and `verify` stay offline.
//!
//! Pins are keyed by the reference exactly as the cookbook writes it: two containers naming the
//! same reference share one pin (and move together on `update`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a pin's digest comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
}

/// One pinned base image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasePin {
    /// `sha256:…`: a manifest digest (registry, reference) or an image id (engine).
    pub digest: String,
    pub source: PinSource,
}

/// Every pin, by the reference the cookbook writes.
pub type BasePins = BTreeMap<String, BasePin>;

impl BasePin {
    /// The image a build names in its `FROM` line for `reference` pinned by `self`.
    pub fn from_line(&self, reference: &str) -> String {
        match self.source {
            // `name:tag@digest`: the engine resolves the digest (the tag is kept for the reader).
            PinSource::Registry => format!("{reference}@{}", self.digest),
            // The classic builder looks a bare image id up in its image store.
            PinSource::Engine => self.digest.clone(),
            PinSource::Reference => reference.to_owned(),
        }
    }
}

/// What a hash is computed under: the algorithm's version and the pins it reads.
///
/// Version 1 ignores pins (it hashed the reference as written); version 2 covers each external
/// base's pin (see docs/REPRODUCIBILITY.md). `verify` computes a lock's own version.
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

    /// The pin of `reference` that this version reads (none under version 1).
    pub fn pin(&self, reference: &str) -> Option<&'a BasePin> {
        if self.version < 2 {
            return None;
        }
        self.pins.get(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_name_exactly_the_pinned_image() {
        let d = format!("sha256:{}", "a".repeat(64));
        let pin = |source| BasePin {
            digest: d.clone(),
            source,
        };
        assert_eq!(
            pin(PinSource::Registry).from_line("127.0.0.1:5000/b/busybox:1"),
            format!("127.0.0.1:5000/b/busybox:1@{d}")
        );
        assert_eq!(pin(PinSource::Engine).from_line("local/busybox:latest"), d);
        let pinned = format!("x/y@{d}");
        assert_eq!(pin(PinSource::Reference).from_line(&pinned), pinned);
    }

    #[test]
    fn version_1_reads_no_pins() {
        let pins = BasePins::from([(
            "b:1".to_owned(),
            BasePin {
                digest: "sha256:0".into(),
                source: PinSource::Registry,
            },
        )]);
        assert!(Pinning::version(1, &pins).unwrap().pin("b:1").is_none());
        assert!(Pinning::current(&pins).pin("b:1").is_some());
        assert!(Pinning::version(0, &pins).is_none());
    }
}
