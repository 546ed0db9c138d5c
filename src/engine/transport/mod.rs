//! The connection under bollard's client for each kind of [`Endpoint`]: a unix socket and plain
//! HTTP through bollard's own transports; TLS ([`tls`]) and SSH ([`ssh`]) through connectors of
//! ours under hyper-util's legacy client (which pools connections: one TLS handshake, one ssh
//! process, serves many requests), given to bollard as its custom transport.
//!
//! Why our own rather than bollard's `ssl` and `ssh` features: bollard's TLS reads the files
//! itself (uncapped) and trusts the system's roots as well as the CA given; its SSH speaks to
//! sshd through the `openssh` crate's multiplexed master, not the docker CLI's
//! `docker system dial-stdio` over the user's own `ssh`. And either way a failure would be an
//! opaque error, where ours says which step failed.
//!
//! Classification: a connector fails with an `io::Error` holding a [`ConnectFailure`] (a refused
//! connection, ssh's explanation) or rustls' own error (a certificate, an alert, the
//! handshake); hyper and bollard wrap it, and [`cause_of`] finds it again by walking the error's
//! `source()` chain, so that `docker::classify` reports [`EngineError::Connection`] with the
//! step, not a generic "unreachable".

mod ssh;
mod tls;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::endpoint::{Endpoint, Host};
use super::EngineError;

/// How long an idle pooled connection (a TLS session, a running ssh) is kept for the next
/// request.
const POOL_IDLE: Duration = Duration::from_secs(30);

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

/// A failure to connect that names its step, carried inside an `io::Error` through hyper and
/// bollard to [`cause_of`].
#[derive(Debug)]
pub(crate) struct ConnectFailure(pub(crate) ConnectionCause);

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for ConnectFailure {}

/// The step a transport error names, if it names one: a [`ConnectFailure`] or a rustls error
/// anywhere in `error`'s `source()` chain (including inside an `io::Error`, whose `source()`
/// skips the error it holds).
pub(crate) fn cause_of(error: &(dyn StdError + 'static)) -> Option<ConnectionCause> {
    fn here(error: &(dyn StdError + 'static)) -> Option<ConnectionCause> {
        if let Some(ConnectFailure(cause)) = error.downcast_ref::<ConnectFailure>() {
            return Some(cause.clone());
        }
        if let Some(rustls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls::cause(rustls));
        }
        let inner = error.downcast_ref::<io::Error>()?.get_ref()?;
        here(inner)
    }
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(cause) = here(error) {
            return Some(cause);
        }
        next = error.source();
    }
    None
}

/// A bollard client for `endpoint`, waiting at most `timeout` for response headers. Nothing is
/// sent yet: the caller negotiates the API version. A TLS file that cannot be used is an
/// [`EngineError::Endpoint`] (a configuration error) before anything is sent.
pub(super) fn client(endpoint: &Endpoint, timeout: Duration) -> Result<Docker, EngineError> {
    let secs = timeout.as_secs().max(1);
    let version = bollard::API_DEFAULT_VERSION;
    let name = endpoint.describe();
    let docker = match (&endpoint.host, &endpoint.tls) {
        (Host::Unix(path), _) => Docker::connect_with_unix(&path.to_string_lossy(), secs, version),
        (Host::Tcp { .. }, None) => {
            Docker::connect_with_http(&endpoint.host.to_string(), secs, version)
        }
        (Host::Tcp { host, port }, Some(files)) => {
            let target = tls::Target::new(host, *port, files, &name)?;
            // The URI only fills the Host header: the connector connects to `target`.
            let address = endpoint.host.to_string().replacen("tcp://", "https://", 1);
            custom(Connector::Tls(Arc::new(target)), address, secs)
        }
        (Host::Ssh(destination), _) => {
            let command = ssh::Command::new(destination);
            // What the docker CLI's connection helper puts in the Host header.
            custom(
                Connector::Ssh(Arc::new(command)),
                "http://docker.example.com".to_owned(),
                secs,
            )
        }
    };
    docker.map_err(|e| super::docker::classify(&name, "connect", e))
}

/// bollard over hyper-util's pooling client with `connector`.
fn custom(
    connector: Connector,
    address: String,
    secs: u64,
) -> Result<Docker, bollard::errors::Error> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .build(connector);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let response = client.request(request);
            async move { response.await.map_err(bollard::errors::Error::from) }
        },
        Some(address),
        secs,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Makes the connections of one engine (hyper-util calls it with the request's URI, which it
/// ignores: the engine is fixed).
#[derive(Clone)]
enum Connector {
    Tls(Arc<tls::Target>),
    Ssh(Arc<ssh::Command>),
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        match self.clone() {
            Connector::Tls(target) => Box::pin(async move {
                let stream = target.connect().await?;
                Ok(TokioIo::new(Stream::Tls(Box::new(stream))))
            }),
            Connector::Ssh(command) => {
                Box::pin(async move { Ok(TokioIo::new(Stream::Ssh(Box::new(command.spawn()?)))) })
            }
        }
    }
}

/// One connection to an engine.
enum Stream {
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Ssh(Box<ssh::SshStream>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_found_inside_io_errors_and_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] io::Error);
        let refused = Wrapper(io::Error::other(ConnectFailure(ConnectionCause::Refused(
            "x".into(),
        ))));
        assert_eq!(
            cause_of(&refused),
            Some(ConnectionCause::Refused("x".into()))
        );
        let alert = Wrapper(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        ));
        assert!(matches!(
            cause_of(&alert),
            Some(ConnectionCause::ClientCertificate(_))
        ));
        let plain = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(cause_of(&plain), None);
    }
}
