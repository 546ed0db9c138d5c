//! An image reference kept exactly as its author wrote it, known to follow the grammar.
//!
//! The cookbook's `base_image` and the lock's pin keys, entries and tags are compared, hashed
//! and written back as text (a pin is found by the reference the cookbook writes; the recipe
//! hashes it as written; the lock keeps its bytes), so the text is what is kept — but only text
//! that [`ImageReference::parse`] accepts, so no newline, space or other free text can ride
//! along into a Dockerfile or a command line.

use std::fmt;

use super::digest::Digest;
use super::reference::{ImageReference, ReferenceError};

/// An image reference as written (`busybox:1.36`, not Docker's normalised
/// `docker.io/library/busybox:1.36`), with its parsed form. Ordered and compared by its text.
#[derive(Debug, Clone)]
pub struct WrittenReference {
    text: String,
    parsed: ImageReference,
}

impl WrittenReference {
    pub fn parse(text: &str) -> Result<WrittenReference, ReferenceError> {
        Ok(WrittenReference {
            parsed: ImageReference::parse(text)?,
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn reference(&self) -> &ImageReference {
        &self.parsed
    }
}

/// The image a Dockerfile's `FROM` line names, made of parsed parts only: the line it is written
/// into can name one image and nothing else, whatever file the parts were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromImage {
    /// The reference as written (not pinned, or pinned by its own digest).
    Reference(WrittenReference),
    /// `reference@digest`: the reference's tag, pinned to a registry's manifest digest.
    Pinned(WrittenReference, Digest),
    /// An image of the local engine, by its id.
    Id(Digest),
}

impl fmt::Display for FromImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FromImage::Reference(r) => write!(f, "{r}"),
            FromImage::Pinned(r, d) => write!(f, "{r}@{d}"),
            FromImage::Id(d) => write!(f, "{d}"),
        }
    }
}

/// Why a text is not a reference, without the text itself: for messages that show the text
/// their own (escaped, shortened) way.
pub fn reason(e: &ReferenceError) -> String {
    match e {
        ReferenceError::Invalid { source, .. } => source.to_string(),
        ReferenceError::NotARepository { .. } => "it names an image, not a repository".to_owned(),
        ReferenceError::Digest { digest, .. } => {
            format!(
                "its digest is not sha256:<64 lowercase hex> ({} characters)",
                digest.len()
            )
        }
    }
}

impl PartialEq for WrittenReference {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for WrittenReference {}

impl PartialOrd for WrittenReference {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WrittenReference {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for WrittenReference {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl std::borrow::Borrow<str> for WrittenReference {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for WrittenReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.text)
    }
}

impl serde::Serialize for WrittenReference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_refuses_free_text() {
        let r = WrittenReference::parse("busybox:1.36").unwrap();
        assert_eq!(r.as_str(), "busybox:1.36");
        assert_eq!(r.to_string(), "busybox:1.36");
        assert_eq!(r.reference().to_string(), "docker.io/library/busybox:1.36");
        for bad in [
            "busybox:1.36\nRUN id",
            "busybox 1.36",
            "",
            "UPPER/case",
            "busybox@sha256:zz",
        ] {
            assert!(WrittenReference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
