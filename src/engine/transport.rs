//! The connection under bollard's client for each kind of [`Endpoint`]: a unix socket and plain
//! HTTP through bollard's own transports; TLS and SSH through ours (see `client`).

use std::fmt;
use std::time::Duration;

use bollard::Docker;

use super::endpoint::{Endpoint, Host};
use super::EngineError;

/// The step at which a connection to an engine failed, for a message that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionCause {
    /// The engine's certificate is not trusted by the CA given, or names another host.
    ServerCertificate(String),
    /// The engine wants a client certificate and got none, or refused the one given.
    ClientCertificate(String),
    /// The TLS handshake failed otherwise (an engine that does not speak TLS, for one).
    Handshake(String),
    /// The engine speaks TLS and was spoken to in plain HTTP.
    TlsRequired,
    /// Nothing accepts connections at the address.
    Refused(String),
    /// SSH: the host key is unknown or has changed (known_hosts).
    HostKey(String),
    /// SSH: the login was refused (keys, agent).
    SshAuthentication(String),
    /// SSH, or the remote `docker system dial-stdio`, failed otherwise: its own words.
    Ssh(String),
}

impl fmt::Display for ConnectionCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionCause::ServerCertificate(why) => {
                write!(f, "the engine's certificate is not trusted: {why}")
            }
            ConnectionCause::ClientCertificate(why) => {
                write!(f, "the engine refused the client certificate: {why}")
            }
            ConnectionCause::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
            ConnectionCause::TlsRequired => f.write_str(
                "the engine speaks TLS and was spoken to in plain HTTP: set DOCKER_TLS_VERIFY=1 \
                 and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), or use a context with TLS",
            ),
            ConnectionCause::Refused(why) => write!(f, "connection refused: {why}"),
            ConnectionCause::HostKey(why) => write!(f, "SSH host key check failed: {why}"),
            ConnectionCause::SshAuthentication(why) => {
                write!(f, "SSH login refused: {why}")
            }
            ConnectionCause::Ssh(why) => write!(f, "SSH failed: {why}"),
        }
    }
}

/// A bollard client for `endpoint`, waiting at most `timeout` for response headers. Nothing is
/// sent yet: the caller negotiates the API version.
pub(super) fn client(endpoint: &Endpoint, timeout: Duration) -> Result<Docker, EngineError> {
    let secs = timeout.as_secs().max(1);
    let version = bollard::API_DEFAULT_VERSION;
    let name = endpoint.describe();
    let docker = match (&endpoint.host, &endpoint.tls) {
        (Host::Unix(path), _) => Docker::connect_with_unix(&path.to_string_lossy(), secs, version),
        (Host::Tcp { .. }, None) => {
            Docker::connect_with_http(&endpoint.host.to_string(), secs, version)
        }
        // TLS and SSH: next commit.
        _ => {
            return Err(EngineError::Endpoint(super::EndpointError::Unsupported {
                host: name,
            }))
        }
    };
    docker.map_err(|e| super::docker::classify(&name, "connect", e))
}
