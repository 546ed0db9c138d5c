//! Image references and repositories: `host[:port]/path[:tag][@digest]`.
//!
//! Parsing follows Docker's grammar (distribution/reference's `regexp.go` and `normalize.go`,
//! as `oci_spec::distribution::Reference` ports them), so `cookbook` accepts exactly what
//! `docker push` accepts. It normalises like Docker: a first component with no `.` or `:` and
//! not `localhost` is a Docker Hub path (`busybox` → `docker.io/library/busybox`), and a
//! reference with neither tag nor digest means `:latest`.
//!
//! Why not `oci_spec`'s parser itself (it was used until the no-op apply benchmark of issue 11
//! measured it): its pattern spells the tag `[\w][\w.-]{0,127}` for Rust's `regex`, where `\w`
//! is Unicode (in Go it is ASCII), so compiling it builds 128 copies of the Unicode word class —
//! 40 ms of CPU in every process that parses one reference, a third of a no-op apply — and it
//! accepts tags such as `v1é` that Docker refuses. [`REFERENCE`] is the same grammar with `\w`
//! spelt `[0-9A-Za-z_]` (0.4 ms to compile); the domain split and the length and digest checks
//! are `oci_spec`'s, kept with its error type so messages stay the same. A unit test checks the
//! two parsers agree on every ASCII case.

use std::fmt;
use std::sync::LazyLock;

use oci_spec::distribution::ParseError;
use regex::Regex;

use super::digest::Digest;

/// Docker Hub's name in references, its API host, and the key of its credentials in the Docker
/// config: three spellings of one registry, fixed by Docker.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_CREDENTIALS_KEY: &str = "https://index.docker.io/v1/";
/// The older spelling of Docker Hub in references, and the namespace of its official images.
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DOCKER_HUB_OFFICIAL: &str = "library";
/// A repository path longer than this is refused (as Docker does).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Docker's reference grammar, anchored, capturing name, tag and digest: distribution/reference
/// `ReferenceRegexp` with an ASCII `\w` (see the module header).
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    const PATH_COMPONENT: &str = "[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?";
    const WORD: &str = "[0-9A-Za-z_]";
    let domain = format!("{DOMAIN_COMPONENT}(?:(?:\\.{DOMAIN_COMPONENT})+)?(?::[0-9]+)?");
    let name = format!("(?:{domain}/)?{PATH_COMPONENT}(?:(?:/{PATH_COMPONENT})+)?");
    let tag = format!("{WORD}[0-9A-Za-z_.-]{{0,127}}");
    let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
    Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$"))
        .expect("the reference grammar is a valid regex")
});

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference `{reference}`: {source}")]
    Invalid {
        reference: String,
        source: ParseError,
    },
    #[error("`{reference}` names an image, not a repository: remove its tag or digest")]
    NotARepository { reference: String },
    #[error("invalid digest `{digest}` in `{reference}`")]
    Digest { reference: String, digest: String },
}

/// A reference split into its parts, Docker's normalisation applied.
struct Parts {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Parses `text` by [`REFERENCE`], splits the domain off like Docker, and checks what the
/// grammar cannot: the path's length and case (a first component that is not a host,
/// `UPPER/case`, is a Docker Hub path, and paths are lowercase), the digest's length.
fn parse_reference(text: &str) -> Result<Parts, ReferenceError> {
    let invalid = |source| ReferenceError::Invalid {
        reference: text.to_owned(),
        source,
    };
    if text.is_empty() {
        return Err(invalid(ParseError::NameEmpty));
    }
    let captures = REFERENCE
        .captures(text)
        .ok_or_else(|| invalid(ParseError::ReferenceInvalidFormat))?;
    let (registry, repository) = split_domain(&captures[1]);
    let digest = captures.get(3).map(|m| m.as_str().to_owned());
    let tag = match (captures.get(2), &digest) {
        (Some(tag), _) => Some(tag.as_str().to_owned()),
        (None, None) => Some("latest".to_owned()),
        (None, Some(_)) => None,
    };
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(invalid(ParseError::NameTooLong));
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(ParseError::NameContainsUppercase));
    }
    if let Some(digest) = &digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or_else(|| invalid(ParseError::DigestInvalidFormat))?;
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(invalid(ParseError::DigestUnsupported)),
        };
        if hex.len() != expected {
            return Err(invalid(ParseError::DigestInvalidLength));
        }
    }
    Ok(Parts {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's `splitDockerDomain`: the first component is the registry when it looks like a host
/// (has a `.` or a `:`, or is `localhost`), else the reference is a Docker Hub path, and a Hub
/// path of one component is an official image (`library/…`).
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_owned();
    }
    if domain == DOCKER_HUB && !rest.contains('/') {
        rest = format!("{DOCKER_HUB_OFFICIAL}/{rest}");
    }
    (domain, rest)
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
        let parts = parse_reference(text)?;
        Ok(Repository {
            registry: parts.registry,
            path: parts.repository,
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
        let parts = parse_reference(text)?;
        let digest = match parts.digest {
            None => None,
            Some(d) => Some(Digest::parse(&d).map_err(|_| ReferenceError::Digest {
                reference: text.to_owned(),
                digest: d.clone(),
            })?),
        };
        Ok(ImageReference {
            repository: Repository {
                registry: parts.registry,
                path: parts.repository,
            },
            tag: parts.tag,
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

    /// The grammar is `oci_spec`'s (see the module header): both parsers agree on what they accept
    /// and on how they split it, except that a tag is ASCII, as in Docker.
    #[test]
    fn agrees_with_oci_spec() {
        let long = "a".repeat(256);
        let cases = [
            "busybox".to_owned(),
            "busybox:1.36".to_owned(),
            "library/busybox".to_owned(),
            "docker.io/busybox".to_owned(),
            "index.docker.io/library/busybox:latest".to_owned(),
            "cookbook-test/busybox:latest".to_owned(),
            "test.com:tag".to_owned(),
            "test.com:5000".to_owned(),
            "test.com/repo:tag".to_owned(),
            "test:5000/repo".to_owned(),
            "test:5000/repo:tag".to_owned(),
            "localhost/x".to_owned(),
            "localhost:5000/a/b/c:v1.2-rc_3".to_owned(),
            "127.0.0.1:5000/shop/api".to_owned(),
            "sub-dom1.foo.com/bar/baz/quux".to_owned(),
            "a.b/c__d/e.f/g-h---i:T_1.x-".to_owned(),
            format!("test:5000/repo@{SHA}"),
            format!("test:5000/repo:tag@{SHA}"),
            format!("busybox@{SHA}"),
            format!("a/b@sha512:{}", "0".repeat(128)),
            format!("a/b@sha384:{}", "f".repeat(96)),
            format!("a/b@md5:{}", "0".repeat(32)),
            format!("a/b@sha256:{}", "0".repeat(63)),
            "UPPER/case".to_owned(),
            "Upper.Host:80/lower".to_owned(),
            "a/B".to_owned(),
            "".to_owned(),
            ":tag".to_owned(),
            "a//b".to_owned(),
            "a/b/".to_owned(),
            "-a/b".to_owned(),
            "a_/b".to_owned(),
            "a:b:c".to_owned(),
            "host:5000/a:bad tag".to_owned(),
            format!("a:{}", "t".repeat(128)),
            format!("a:{}", "t".repeat(129)),
            format!("a:.{}", "t"),
            format!("docker.io/{long}"),
            format!("a/{}", "b".repeat(254)),
        ];
        for case in &cases {
            let ours = parse_reference(case);
            let theirs: Result<oci_spec::distribution::Reference, _> = case.parse();
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => {
                    let uppercase = theirs.repository().bytes().any(|b| b.is_ascii_uppercase());
                    assert!(!uppercase, "{case:?}: ours accepted an uppercase path");
                    assert_eq!(ours.registry, theirs.registry(), "{case:?}");
                    assert_eq!(ours.repository, theirs.repository(), "{case:?}");
                    assert_eq!(ours.tag.as_deref(), theirs.tag(), "{case:?}");
                    assert_eq!(ours.digest.as_deref(), theirs.digest(), "{case:?}");
                }
                (Err(ReferenceError::Invalid { source, .. }), Err(expected)) => {
                    assert_eq!(source.to_string(), expected.to_string(), "{case:?}");
                }
                (Err(ReferenceError::Invalid { source, .. }), Ok(theirs)) => {
                    // The one check added on top of oci_spec's.
                    assert!(
                        matches!(source, ParseError::NameContainsUppercase),
                        "{case:?}: {source}"
                    );
                    assert!(theirs.repository().bytes().any(|b| b.is_ascii_uppercase()));
                }
                (ours, theirs) => panic!("{case:?}: ours {:?}, oci_spec {theirs:?}", ours.err()),
            }
        }
    }

    #[test]
    fn tags_are_ascii_as_in_docker() {
        assert!(ImageReference::parse("busybox:v1é").is_err());
        assert!(ImageReference::parse("busybox:ünï").is_err());
        // oci_spec's Unicode `\w` took them.
        assert!("busybox:v1é"
            .parse::<oci_spec::distribution::Reference>()
            .is_ok());
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
