//! Image references and repositories: `host[:port]/path[:tag][@digest]`.
//!
//! Parsing follows Docker's grammar through `oci_spec::distribution::Reference` (youki-dev's
//! port of distribution/reference, regex included), so `cookbook` accepts exactly what
//! `docker push` accepts. It normalises like Docker: a first component with no `.` or `:` and
//! not `localhost` is a Docker Hub path (`busybox` → `docker.io/library/busybox`), and a
//! reference with neither tag nor digest means `:latest`.

use std::fmt;

use oci_spec::distribution::Reference;

use super::digest::Digest;

/// Docker Hub's name in references, its API host, and the key of its credentials in the Docker
/// config: three spellings of one registry, fixed by Docker.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_CREDENTIALS_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference `{reference}`: {source}")]
    Invalid {
        reference: String,
        source: oci_spec::distribution::ParseError,
    },
    #[error("`{reference}` names an image, not a repository: remove its tag or digest")]
    NotARepository { reference: String },
    #[error("invalid digest `{digest}` in `{reference}`")]
    Digest { reference: String, digest: String },
}

/// Parses with oci-spec, then applies the one rule of Docker's grammar it misses: a first
/// component that is not a host (`UPPER/case`) is a Docker Hub path, and paths are lowercase.
fn parse_reference(text: &str) -> Result<Reference, ReferenceError> {
    let invalid = |source| ReferenceError::Invalid {
        reference: text.to_owned(),
        source,
    };
    let reference: Reference = text.parse().map_err(invalid)?;
    if reference
        .repository()
        .bytes()
        .any(|b| b.is_ascii_uppercase())
    {
        return Err(invalid(
            oci_spec::distribution::ParseError::NameContainsUppercase,
        ));
    }
    Ok(reference)
}

/// A repository in a registry: `127.0.0.1:5000/shop/api`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    /// Parses `host[:port]/path` (no tag, no digest).
    pub fn parse(text: &str) -> Result<Repository, ReferenceError> {
        let last = text.rsplit('/').next().unwrap_or(text);
        if text.contains('@') || last.contains(':') {
            return Err(ReferenceError::NotARepository {
                reference: text.to_owned(),
            });
        }
        let reference = parse_reference(text)?;
        Ok(Repository {
            registry: reference.registry().to_owned(),
            path: reference.repository().to_owned(),
        })
    }

    /// The registry as written in references: `127.0.0.1:5000`, `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry: `shop/api`, `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `host[:port]` serving the registry's HTTP API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The key of this registry's entry in the Docker config (`auths`, `credHelpers`).
    pub fn credentials_key(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_CREDENTIALS_KEY
        } else {
            &self.registry
        }
    }

    /// `repo:tag` as the Docker engine wants it for tag and push.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{self}:{tag}")
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// An image in a repository, named by tag, by digest, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    repository: Repository,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    pub fn parse(text: &str) -> Result<ImageReference, ReferenceError> {
        let reference = parse_reference(text)?;
        let digest = match reference.digest() {
            None => None,
            Some(d) => Some(Digest::parse(d).map_err(|_| ReferenceError::Digest {
                reference: text.to_owned(),
                digest: d.to_owned(),
            })?),
        };
        Ok(ImageReference {
            repository: Repository {
                registry: reference.registry().to_owned(),
                path: reference.repository().to_owned(),
            },
            tag: reference.tag().map(str::to_owned),
            digest,
        })
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one (it pins the content), else
    /// the tag.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.as_str(),
            (None, Some(tag)) => tag,
            // The parser gives every reference a tag or a digest.
            (None, None) => "latest",
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn host_with_port_and_nested_path() {
        let r = ImageReference::parse("127.0.0.1:5000/shop/api:1.2").unwrap();
        assert_eq!(r.repository().registry(), "127.0.0.1:5000");
        assert_eq!(r.repository().path(), "shop/api");
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "127.0.0.1:5000/shop/api:1.2");
    }

    #[test]
    fn no_tag_means_latest() {
        let r = ImageReference::parse("localhost/x").unwrap();
        assert_eq!(r.repository().registry(), "localhost");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.manifest_reference(), "latest");
    }

    #[test]
    fn digest_pins_the_manifest() {
        let r = ImageReference::parse(&format!("reg.example:443/a/b:v1@{SHA}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().as_str(), SHA);
        assert_eq!(r.manifest_reference(), SHA);
    }

    #[test]
    fn docker_hub_is_normalised_like_docker() {
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(r.repository().registry(), "docker.io");
        assert_eq!(r.repository().path(), "library/busybox");
        assert_eq!(r.repository().api_host(), "registry-1.docker.io");
        assert_eq!(
            r.repository().credentials_key(),
            "https://index.docker.io/v1/"
        );
        // A first component without `.`/`:` is a Hub namespace, not a host.
        let r = ImageReference::parse("cookbook-test/busybox:latest").unwrap();
        assert_eq!(r.repository().registry(), "docker.io");
        assert_eq!(r.repository().path(), "cookbook-test/busybox");
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in [
            "",
            "UPPER/case",
            "host:5000/a:bad tag",
            "a/b@sha256:123",
            "a//b",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn repositories_have_no_tag_or_digest() {
        let repo = Repository::parse("127.0.0.1:5000/shop/api").unwrap();
        assert_eq!(repo.to_string(), "127.0.0.1:5000/shop/api");
        assert_eq!(repo.with_tag("v1"), "127.0.0.1:5000/shop/api:v1");
        assert!(matches!(
            Repository::parse("127.0.0.1:5000/shop/api:v1"),
            Err(ReferenceError::NotARepository { .. })
        ));
        assert!(matches!(
            Repository::parse(&format!("127.0.0.1:5000/shop/api@{SHA}")),
            Err(ReferenceError::NotARepository { .. })
        ));
    }
}
