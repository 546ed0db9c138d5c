//! Registry credentials and authentication challenges.
//!
//! Credentials come from the Docker config through the `docker_credential` crate
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths`, `credHelpers`,
//! `credsStore`), because the Docker engine API does not read it and neither does bollard.
//!
//! The config file is read here, once per lookup, and checked against the shape
//! `docker_credential` reads (whose own error for a malformed file says only "Unable to read
//! config", which used to mean anonymous access): an absent file is anonymous access, as for
//! docker; a file that cannot be read is an error naming it; a malformed one is an error naming
//! the file, line and column. The bytes are then handed to `docker_credential`.
//!
//! `WWW-Authenticate` challenges (RFC 7235 `scheme param="value", …`) are parsed here by hand:
//! the only crate for it (`www-authenticate`) is tied to hyper 0.10 and unmaintained, and the
//! grammar needed (one challenge, token or quoted-string values) is a few lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde::Deserialize;

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in the Docker config), exchanged at the token
    /// endpoint for a bearer token.
    IdentityToken(String),
}

// Never print a secret, not even in a debug log.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Where a client finds credentials.
#[derive(Debug, Clone, Default)]
pub enum CredentialStore {
    /// The user's Docker config (honours `DOCKER_CONFIG`) and its credential helpers.
    #[default]
    DockerConfig,
    /// Exactly these, keyed by the registry's credentials key (`host[:port]`, or
    /// `https://index.docker.io/v1/` for Docker Hub).
    Fixed(BTreeMap<String, Credential>),
    /// No credentials: anonymous access only.
    Anonymous,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The config names a credential helper that failed, or an entry that does not decode.
    /// Exit code 1.
    #[error("cannot read the credentials for {registry} from the Docker config: {source}")]
    Lookup {
        registry: String,
        source: CredentialRetrievalError,
    },
    /// The config file exists but cannot be read. Exit code 1 (2 when the path names nothing
    /// readable, such as a directory).
    #[error("cannot read the Docker config {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config file is not the JSON document docker writes. Exit code 2.
    #[error("{}:{line}:{column}: malformed Docker config: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The fields `docker_credential` reads from `config.json`, with its types: a file this accepts,
/// the crate accepts (unknown fields are ignored by both).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a JSON object")]
#[allow(dead_code)] // parsed for its shape and error location only
struct ConfigShape {
    auths: Option<BTreeMap<String, AuthShape>>,
    creds_store: Option<String>,
    cred_helpers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object with auth, username, password or identitytoken")]
#[allow(dead_code)]
struct AuthShape {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Where docker reads its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

/// The config's bytes, checked; `None` when there is no config file.
fn read_docker_config() -> Result<Option<(PathBuf, Vec<u8>)>, CredentialError> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CredentialError::Unreadable { path, source }),
    };
    if let Err(e) = serde_json::from_slice::<ConfigShape>(&bytes) {
        // serde_json's text ends with " at line L column C", which the location already says.
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        return Err(CredentialError::Malformed {
            line: e.line(),
            column: e.column(),
            path,
            message,
        });
    }
    Ok(Some((path, bytes)))
}

impl CredentialStore {
    /// The credential for `key`, or `None` when none is configured (then access is anonymous).
    /// May run a credential helper process: call it off the async executor's threads.
    pub fn lookup(&self, key: &str) -> Result<Option<Credential>, CredentialError> {
        match self {
            CredentialStore::Anonymous => Ok(None),
            CredentialStore::Fixed(map) => Ok(map.get(key).cloned()),
            CredentialStore::DockerConfig => {
                // No config file: anonymous, as docker does.
                let Some((_, bytes)) = read_docker_config()? else {
                    return Ok(None);
                };
                match docker_credential::get_credential_from_reader(&bytes[..], key) {
                    Ok(DockerCredential::UsernamePassword(username, password)) => {
                        Ok(Some(Credential::Basic { username, password }))
                    }
                    Ok(DockerCredential::IdentityToken(token)) => {
                        Ok(Some(Credential::IdentityToken(token)))
                    }
                    // No entry for this registry: anonymous, as docker does.
                    Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
                    Err(source) => Err(CredentialError::Lookup {
                        registry: key.to_owned(),
                        source,
                    }),
                }
            }
        }
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the user name and password on every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: fetch a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses the first challenge of a `WWW-Authenticate` value; `None` for a scheme other
    /// than Basic or Bearer, or a Bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim_start();
        let (scheme, rest) = header
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((header, ""));
        let params = parse_params(rest);
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        } else {
            None
        }
    }
}

/// `key=value, key="quoted, \"value\""` → map with lowercase keys. Stops at anything that does
/// not fit (a second challenge's scheme), keeping what came before.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_ascii_whitespace() || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return params;
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.to_ascii_lowercase(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn quoted_commas_escapes_and_spaces() {
        let c = Challenge::parse(
            r#"bearer  realm = "http://h/t" , scope="repository:a/b:pull,push", service=reg\"x"#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some(r#"reg\"x"#.into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        let c = Challenge::parse(r#"Bearer realm="a\"b""#);
        assert!(matches!(c, Some(Challenge::Bearer { realm, .. }) if realm == "a\"b"));
    }

    #[test]
    fn basic_and_unknown_schemes() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Basic"), Some(Challenge::Basic));
        assert_eq!(Challenge::parse(r#"Negotiate abc"#), None);
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn fixed_and_anonymous_stores() {
        let cred = Credential::Basic {
            username: "u".into(),
            password: "secret".into(),
        };
        let store = CredentialStore::Fixed(BTreeMap::from([("h:5000".to_string(), cred.clone())]));
        assert_eq!(store.lookup("h:5000").unwrap(), Some(cred.clone()));
        assert_eq!(store.lookup("other").unwrap(), None);
        assert_eq!(CredentialStore::Anonymous.lookup("h:5000").unwrap(), None);
        assert!(!format!("{cred:?}").contains("secret"));
    }
}
