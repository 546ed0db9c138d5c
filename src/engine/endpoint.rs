//! Which Docker engine to talk to, and how: the docker CLI's own rules, so that a user's
//! `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`, `DOCKER_CONTEXT`, `--context` and
//! `docker context use` mean here what they mean to `docker`.
//!
//! A [`Selector`] says where the choice comes from (the environment, a context by name, or an
//! explicit host with its TLS files: a site's `docker` target, a builder of a pool);
//! [`resolve`] turns it into an [`Endpoint`]: a parsed [`Host`] and, for TCP, the TLS files to
//! use. The environment is read once into an [`Environment`] value, so resolution is tested
//! with plain values; the only I/O is reading the docker CLI's configuration and context files
//! (capped, through `context::file`).
//!
//! The docker CLI's precedence (docker/cli `cli/command/cli.go`, `resolveContextName`), kept
//! here: `--context` > `DOCKER_HOST` (the default context) > `DOCKER_CONTEXT` > the
//! `currentContext` of `config.json` > the default context. The default context's host is
//! `DOCKER_HOST` or the default socket; its TLS is on when `DOCKER_TLS_VERIFY` is set (verifying
//! the engine against `ca.pem`) or `DOCKER_TLS` is (not verifying), with `ca.pem`, `cert.pem`
//! and `key.pem` in `DOCKER_CERT_PATH`, else in the configuration directory (`DOCKER_CONFIG`,
//! else `~/.docker`). A context lives in `contexts/meta/<sha256 of its name>/meta.json` of that
//! directory, its TLS files in `contexts/tls/<sha256 of its name>/docker/`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest as _;

use crate::model::EngineSpec;

/// Docker's default socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// The name of the context that is "the environment's": `DOCKER_HOST` or the default socket.
pub const DEFAULT_CONTEXT: &str = "default";
/// Docker's ports for `tcp://host` without one: plain HTTP and TLS.
const DEFAULT_HTTP_PORT: u16 = 2375;
const DEFAULT_TLS_PORT: u16 = 2376;
/// The most a configuration or context file may hold; a larger one is refused, not read.
const CONFIG_MAX: u64 = 1 << 20;

/// Where the choice of an engine comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selector {
    /// What the docker CLI would use with no flags: see the module header.
    #[default]
    Environment,
    /// A docker context by name (`--context`, a site's `context`); `default` is the
    /// environment's engine.
    Context(String),
    /// A host as written (`unix:///…`, `tcp://host:port`, `ssh://user@host:port`) with, for
    /// `tcp://`, the TLS files to use (`None`: plain HTTP).
    Host { host: String, tls: Option<TlsFiles> },
}

impl Selector {
    /// A builder or `--context`-like argument: a host when it has a scheme (`tcp://…`,
    /// `ssh://…`, `unix://…`), else a context name.
    pub fn parse_argument(text: &str) -> Selector {
        if text.contains("://") {
            Selector::Host {
                host: text.to_owned(),
                tls: None,
            }
        } else {
            Selector::Context(text.to_owned())
        }
    }
}

impl Selector {
    /// The engine a cookbook names (a site's `docker` target, a builder): `host: "env"` is
    /// `environment` (the process's own choice, `--context` included); a `tcp://` host's TLS
    /// files are relative to `base`, the cookbook's directory.
    pub fn from_spec(spec: &EngineSpec, base: &Path, environment: &Selector) -> Selector {
        match (&spec.context, spec.host.as_deref()) {
            (Some(name), _) => Selector::Context(name.clone()),
            (None, None | Some("env")) => environment.clone(),
            (None, Some(host)) => Selector::Host {
                host: host.to_owned(),
                tls: spec.tls.as_ref().map(|t| TlsFiles {
                    ca: t.ca.as_ref().map(|p| base.join(p)),
                    cert: t.cert.as_ref().map(|p| base.join(p)),
                    key: t.key.as_ref().map(|p| base.join(p)),
                    verify: t.verify,
                }),
            },
        }
    }
}

impl Selector {
    /// What reports call the engine it chooses (a `--builder`): the context's name, the host as
    /// written, or `default` for the environment's.
    pub fn name(&self) -> String {
        match self {
            Selector::Environment => DEFAULT_CONTEXT.to_owned(),
            Selector::Context(name) => name.clone(),
            Selector::Host { host, .. } => host.clone(),
        }
    }
}

/// The TLS files for a TCP engine. A missing `ca` with `verify` trusts the system's roots; a
/// missing client pair presents no client certificate (an engine started with `--tlsverify`
/// then refuses the handshake, and the error says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Verify the engine's certificate (`DOCKER_TLS_VERIFY`); `false` is `DOCKER_TLS` alone,
    /// which encrypts without checking whom it talks to.
    pub verify: bool,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`, each only if it exists (the docker CLI drops
    /// the ones that do not).
    pub fn in_dir(dir: &Path, verify: bool) -> TlsFiles {
        let existing = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
        TlsFiles {
            ca: existing("ca.pem"),
            cert: existing("cert.pem"),
            key: existing("key.pem"),
            verify,
        }
    }
}

/// A parsed engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `host` as written (a name, an IPv4 address, or an IPv6 address without brackets).
    Tcp {
        host: String,
        port: u16,
    },
    Ssh(SshDestination),
}

/// `ssh://[user@]host[:port]`, handed to the system's `ssh` as `-l user -p port -- host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDestination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Host::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Host::Ssh(d) => {
                f.write_str("ssh://")?;
                if let Some(user) = &d.user {
                    write!(f, "{user}@")?;
                }
                if d.host.contains(':') {
                    write!(f, "[{}]", d.host)?;
                } else {
                    f.write_str(&d.host)?;
                }
                if let Some(port) = d.port {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
        }
    }
}

/// One engine, resolved: where it is and how to speak to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    /// TLS for a `Tcp` host; `None` is plain HTTP (and always `None` for the others).
    pub tls: Option<TlsFiles>,
    /// The context it was resolved from, when not the default one.
    pub context: Option<String>,
}

impl Endpoint {
    /// How messages name it: the host, with the context it came from.
    pub fn describe(&self) -> String {
        match &self.context {
            Some(name) => format!("{} (context `{name}`)", self.host),
            None => self.host.to_string(),
        }
    }
}

/// The environment the docker CLI reads, as values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// `DOCKER_TLS_VERIFY` set (to anything but the empty string).
    pub tls_verify: bool,
    /// `DOCKER_TLS` set.
    pub tls: bool,
    pub cert_path: Option<PathBuf>,
    /// `DOCKER_CONFIG`, else `~/.docker`; `None` without a home directory.
    pub config_dir: Option<PathBuf>,
}

impl Environment {
    /// This process's environment.
    pub fn from_process() -> Environment {
        let get = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let text = |k: &str| get(k).map(|v| v.to_string_lossy().into_owned());
        Environment {
            docker_host: text("DOCKER_HOST"),
            docker_context: text("DOCKER_CONTEXT"),
            tls_verify: get("DOCKER_TLS_VERIFY").is_some(),
            tls: get("DOCKER_TLS").is_some(),
            cert_path: get("DOCKER_CERT_PATH").map(PathBuf::from),
            config_dir: get("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".docker"))),
        }
    }
}

/// Why no endpoint could be resolved: a configuration problem (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("unsupported Docker host `{host}`: use unix://, tcp:// or ssh://")]
    Unsupported { host: String },
    #[error("invalid Docker host `{host}`: {reason}")]
    Invalid { host: String, reason: String },
    #[error("docker context `{name}` does not exist (looked for {})", path.display())]
    NoSuchContext { name: String, path: PathBuf },
    #[error("docker context `{name}`: {}: {reason}", path.display())]
    BadContext {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    BadConfig { path: PathBuf, reason: String },
    #[error("docker context `{name}` needs a configuration directory, and neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir { name: String },
    /// A TLS file of the endpoint (CA, client certificate, key) is missing, unreadable or not
    /// what it should be; `error` names the file.
    #[error("TLS for the Docker engine at {endpoint}: {error}")]
    Tls {
        endpoint: String,
        error: crate::tls::TlsError,
    },
}

/// Resolves `selector` in `env`.
pub fn resolve(selector: &Selector, env: &Environment) -> Result<Endpoint, EndpointError> {
    match selector {
        Selector::Host { host, tls } => endpoint(host, tls.clone(), None),
        Selector::Context(name) => context(name, env),
        Selector::Environment => {
            if env.docker_host.is_some() {
                return default_context(env);
            }
            if let Some(name) = &env.docker_context {
                return context(name, env);
            }
            match current_context(env)? {
                Some(name) => context(&name, env),
                None => default_context(env),
            }
        }
    }
}

/// The default context: `DOCKER_HOST` (or the default socket) with the TLS environment.
fn default_context(env: &Environment) -> Result<Endpoint, EndpointError> {
    let host = env
        .docker_host
        .clone()
        .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
    let tls = (env.tls_verify || env.tls).then(|| {
        let dir = env
            .cert_path
            .clone()
            .or_else(|| env.config_dir.clone())
            .unwrap_or_default();
        let mut files = TlsFiles::in_dir(&dir, env.tls_verify);
        // Verifying needs the CA: a missing `ca.pem` is an error naming it, as in the docker
        // CLI (a `DOCKER_CERT_PATH` typo, or dind's certificates not written yet, must not fall
        // back to trusting any publicly issued certificate for that name).
        if env.tls_verify {
            files.ca = Some(dir.join("ca.pem"));
        }
        files
    });
    endpoint(&host, tls, None)
}

/// `host` parsed, with `tls` kept only for TCP.
fn endpoint(
    host: &str,
    tls: Option<TlsFiles>,
    context: Option<String>,
) -> Result<Endpoint, EndpointError> {
    let host = parse_host(host, tls.is_some())?;
    let tls = match host {
        Host::Tcp { .. } => tls,
        _ => None,
    };
    Ok(Endpoint { host, tls, context })
}

/// The `currentContext` of `config.json`, if it names one other than `default`.
fn current_context(env: &Environment) -> Result<Option<String>, EndpointError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let Some(dir) = &env.config_dir else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let Some(bytes) = read(&path)? else {
        return Ok(None);
    };
    let config: Config = serde_json::from_slice(&bytes).map_err(|e| EndpointError::BadConfig {
        path: path.clone(),
        reason: format!("not a docker configuration file: {e}"),
    })?;
    Ok(config
        .current_context
        .filter(|name| !name.is_empty() && name != DEFAULT_CONTEXT))
}

/// A context by name, from the configuration directory's context store.
fn context(name: &str, env: &Environment) -> Result<Endpoint, EndpointError> {
    if name == DEFAULT_CONTEXT {
        return default_context(env);
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Endpoints", default)]
        endpoints: BTreeMap<String, MetaEndpoint>,
    }
    #[derive(Deserialize)]
    struct MetaEndpoint {
        #[serde(rename = "Host", default)]
        host: Option<String>,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }
    let dir = env
        .config_dir
        .as_ref()
        .ok_or_else(|| EndpointError::NoConfigDir {
            name: name.to_owned(),
        })?;
    let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let path = dir.join("contexts/meta").join(&id).join("meta.json");
    let bad = |reason: String| EndpointError::BadContext {
        name: name.to_owned(),
        path: path.clone(),
        reason,
    };
    let bytes = read(&path)?.ok_or_else(|| EndpointError::NoSuchContext {
        name: name.to_owned(),
        path: path.clone(),
    })?;
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a docker context's meta.json: {e}")))?;
    if meta.name != name {
        return Err(bad(format!("it names the context `{}`", meta.name)));
    }
    let docker = meta
        .endpoints
        .get("docker")
        .ok_or_else(|| bad("it has no `docker` endpoint".to_owned()))?;
    let host = docker
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("its `docker` endpoint has no `Host`".to_owned()))?;
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    let files = TlsFiles::in_dir(&tls_dir, !docker.skip_tls_verify);
    // The docker CLI speaks TLS to a context's TCP host when the context holds TLS files or
    // asks not to verify (`--docker skip-tls-verify=true`).
    let tls =
        (files.ca.is_some() || files.cert.is_some() || docker.skip_tls_verify).then_some(files);
    endpoint(host, tls, Some(name.to_owned()))
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, EndpointError> {
    crate::context::file::read_regular(path, CONFIG_MAX).map_err(|e| EndpointError::BadConfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses a Docker host as the docker CLI accepts it (`opts.ParseHost`): `unix:///path`,
/// `tcp://host[:port]` (also `http://`; `host:port` without a scheme is TCP), `ssh://…`. A TCP
/// host without a port gets 2376 with TLS, else 2375.
pub fn parse_host(text: &str, tls: bool) -> Result<Host, EndpointError> {
    let invalid = |reason: &str| EndpointError::Invalid {
        host: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("tcp".to_owned(), text),
    };
    match scheme.as_str() {
        "unix" => {
            if !rest.starts_with('/') {
                return Err(invalid("a unix socket's path must be absolute"));
            }
            Ok(Host::Unix(PathBuf::from(rest)))
        }
        "tcp" | "http" => {
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') || rest.contains('@') {
                return Err(invalid(
                    "a TCP host is `tcp://host:port`, without a path or user",
                ));
            }
            let default = if tls {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_HTTP_PORT
            };
            let (host, port) = host_port(rest, text)?;
            Ok(Host::Tcp {
                host,
                port: port.unwrap_or(default),
            })
        }
        "ssh" => {
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                return Err(invalid(
                    "an SSH host is `ssh://[user@]host[:port]`, without a path",
                ));
            }
            let (user, hostport) = match rest.rsplit_once('@') {
                Some((user, hostport)) => (Some(user), hostport),
                None => (None, rest),
            };
            if let Some(user) = user {
                // Handed to ssh as `-l USER`: nothing that ssh could read as an option.
                if user.is_empty()
                    || user.starts_with('-')
                    || !user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    return Err(invalid(
                        "the SSH user may hold letters, digits, `.`, `_` and `-`",
                    ));
                }
            }
            let (host, port) = host_port(hostport, text)?;
            Ok(Host::Ssh(SshDestination {
                user: user.map(str::to_owned),
                host,
                port,
            }))
        }
        _ => Err(EndpointError::Unsupported {
            host: text.to_owned(),
        }),
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. The host may hold letters, digits, `.`, `-`, `_`
/// (and `:` inside brackets): it reaches ssh's command line and a TLS server name.
fn host_port(text: &str, whole: &str) -> Result<(String, Option<u16>), EndpointError> {
    let invalid = |reason: String| EndpointError::Invalid {
        host: whole.to_owned(),
        reason,
    };
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| invalid("an unclosed `[`".to_owned()))?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(invalid(format!("`{host}` is not an IPv6 address")));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("text after `]`".to_owned()))?,
                ),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty()
        || host.starts_with('-')
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
    {
        return Err(invalid(format!("`{host}` is not a host name or address")));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(format!("`{p}` is not a port")))?,
        ),
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::default()
    }

    #[test]
    fn hosts_parse_like_the_docker_cli() {
        assert_eq!(
            parse_host("unix:///run/docker.sock", false).unwrap(),
            Host::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1", false).unwrap(),
            Host::Tcp {
                host: "127.0.0.1".into(),
                port: 2375
            }
        );
        assert_eq!(
            parse_host("tcp://docker", true).unwrap().to_string(),
            "tcp://docker:2376"
        );
        assert_eq!(
            parse_host("127.0.0.1:1234", false).unwrap().to_string(),
            "tcp://127.0.0.1:1234"
        );
        assert_eq!(
            parse_host("tcp://[::1]:2376", true).unwrap(),
            Host::Tcp {
                host: "::1".into(),
                port: 2376
            }
        );
        assert_eq!(
            parse_host("ssh://deploy@builder.example:2222", false).unwrap(),
            Host::Ssh(SshDestination {
                user: Some("deploy".into()),
                host: "builder.example".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            parse_host("ssh://builder", false).unwrap().to_string(),
            "ssh://builder"
        );
    }

    #[test]
    fn hosts_that_could_smuggle_options_or_paths_are_refused() {
        for bad in [
            "ssh://-oProxyCommand=x@host",
            "ssh://user@-oProxyCommand=x",
            "ssh://us er@host",
            "ssh://host/path",
            "tcp://host:0",
            "tcp://host:99999",
            "tcp://host/path",
            "tcp://user@host",
            "unix://relative.sock",
            "tcp://[::1",
            "tcp://",
        ] {
            assert!(
                matches!(parse_host(bad, false), Err(EndpointError::Invalid { .. })),
                "{bad}: {:?}",
                parse_host(bad, false)
            );
        }
        assert!(matches!(
            parse_host("npipe:////./pipe/docker_engine", false),
            Err(EndpointError::Unsupported { .. })
        ));
    }

    #[test]
    fn docker_host_wins_over_docker_context_and_tls_comes_from_the_cert_path() {
        let env = Environment {
            docker_host: Some("tcp://127.0.0.1:2376".into()),
            docker_context: Some("elsewhere".into()),
            tls_verify: true,
            cert_path: Some("/certs".into()),
            ..env()
        };
        let endpoint = resolve(&Selector::Environment, &env).unwrap();
        assert_eq!(endpoint.host.to_string(), "tcp://127.0.0.1:2376");
        let tls = endpoint.tls.unwrap();
        assert!(tls.verify);
        // Named although it does not exist: connecting then fails naming it.
        assert_eq!(tls.ca, Some(PathBuf::from("/certs/ca.pem")));
        assert_eq!((tls.cert, tls.key), (None, None));
        assert_eq!(endpoint.context, None);
    }

    #[test]
    fn without_anything_set_it_is_the_default_socket() {
        let endpoint = resolve(&Selector::Environment, &env()).unwrap();
        assert_eq!(endpoint.host, Host::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(endpoint.tls, None);
    }

    fn write_context(config: &Path, name: &str, meta: &str) -> PathBuf {
        let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
        let dir = config.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        config.join("contexts/tls").join(&id).join("docker")
    }

    #[test]
    fn contexts_come_from_the_flag_the_variable_and_config_json_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path();
        write_context(
            config,
            "a",
            r#"{"Name":"a","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.1:2375","SkipTLSVerify":false}}}"#,
        );
        let tls_b = write_context(
            config,
            "b",
            r#"{"Name":"b","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.2:2376","SkipTLSVerify":false}}}"#,
        );
        std::fs::create_dir_all(&tls_b).unwrap();
        std::fs::write(tls_b.join("ca.pem"), "x").unwrap();
        std::fs::write(config.join("config.json"), r#"{"currentContext":"a"}"#).unwrap();
        let env = Environment {
            config_dir: Some(config.to_owned()),
            ..env()
        };
        let current = resolve(&Selector::Environment, &env).unwrap();
        assert_eq!(current.host.to_string(), "tcp://10.0.0.1:2375");
        assert_eq!(current.tls, None);
        assert_eq!(current.context.as_deref(), Some("a"));

        let by_variable = Environment {
            docker_context: Some("b".into()),
            ..env.clone()
        };
        let b = resolve(&Selector::Environment, &by_variable).unwrap();
        assert_eq!(b.describe(), "tcp://10.0.0.2:2376 (context `b`)");
        assert_eq!(b.tls.unwrap().ca, Some(tls_b.join("ca.pem")));

        let flag = resolve(&Selector::Context("a".into()), &by_variable).unwrap();
        assert_eq!(flag.context.as_deref(), Some("a"));
        let default = resolve(&Selector::Context("default".into()), &by_variable).unwrap();
        assert_eq!(default.host, Host::Unix(DEFAULT_SOCKET.into()));
    }

    #[test]
    fn a_missing_or_broken_context_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            config_dir: Some(dir.path().to_owned()),
            ..env()
        };
        let missing = resolve(&Selector::Context("nope".into()), &env).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("docker context `nope` does not exist"),
            "{missing}"
        );
        write_context(dir.path(), "liar", r#"{"Name":"other","Endpoints":{}}"#);
        let liar = resolve(&Selector::Context("liar".into()), &env).unwrap_err();
        assert!(
            liar.to_string().contains("names the context `other`"),
            "{liar}"
        );
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let config = resolve(&Selector::Environment, &env).unwrap_err();
        assert!(config.to_string().contains("config.json"), "{config}");
    }
}
