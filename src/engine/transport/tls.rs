//! TLS to a `tcp://` engine, as the docker CLI speaks it (`DOCKER_TLS_VERIFY`, a context's or a
//! site's TLS files): a rustls client configuration from [`TlsFiles`], the connection itself,
//! and what a rustls error says about the step that failed.
//!
//! - Trust: with a `ca`, only that CA (never the system's roots as well: the docker CLI's
//!   `tlsconfig` puts the CA alone in the pool); without one, the platform's roots
//!   (`rustls-platform-verifier`). The engine's name is checked against the host as written:
//!   a DNS name, or an IP address SAN for `tcp://127.0.0.1:…`.
//! - `verify: false` (`DOCKER_TLS` without `DOCKER_TLS_VERIFY`, a context with
//!   `skip-tls-verify`) encrypts without checking whom it speaks to: [`NoVerification`].
//! - The client certificate and key are presented when given; one without the other is refused
//!   before anything is sent (the docker CLI fails to load the pair the same way).
//! - Files are read through `crate::tls`' readers (capped, regular files only, parsed at this
//!   boundary); a bad one is an [`EndpointError::Tls`] naming it (exit code 2).
//! - The crypto provider is named (aws-lc-rs, as `crate::tls`), not the process default, which
//!   deploy may set to ring for kube.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{ConnectFailure, ConnectionCause};
use crate::engine::endpoint::{EndpointError, TlsFiles};
use crate::tls::{certificates, private_key, provider, rejected, roots, TlsError};

/// Where to connect and how: one per engine, shared by its pooled connections.
pub(super) struct Target {
    host: String,
    port: u16,
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    /// The TLS target `host:port` with `files`; `endpoint` names the engine in errors.
    pub(super) fn new(
        host: &str,
        port: u16,
        files: &TlsFiles,
        endpoint: &str,
    ) -> Result<Target, EndpointError> {
        let config = client_config(files).map_err(|error| EndpointError::Tls {
            endpoint: endpoint.to_owned(),
            error,
        })?;
        // `endpoint.rs` admits letters, digits, `.`, `-`, `_` and an IPv6 address: a DNS name
        // or an IP address, or refused here.
        let name = ServerName::try_from(host.to_owned()).map_err(|e| EndpointError::Invalid {
            host: endpoint.to_owned(),
            reason: format!("`{host}` cannot be checked against a certificate: {e}"),
        })?;
        Ok(Target {
            host: host.to_owned(),
            port,
            name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// A new TLS connection: a refused TCP connection is [`ConnectionCause::Refused`]; a failed
    /// handshake is the rustls error, classified by [`cause`] where it surfaces.
    pub(super) async fn connect(&self) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => {
                    io::Error::other(ConnectFailure(ConnectionCause::Refused(format!(
                        "nothing accepts connections at port {} of {}",
                        self.port, self.host
                    ))))
                }
                _ => e,
            })?;
        // Requests are small and answered at once; Nagle's delay would only slow them.
        tcp.set_nodelay(true)?;
        self.connector.connect(self.name.clone(), tcp).await
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS to {:?} port {}", self.name, self.port)
    }
}

/// The rustls client configuration `files` describe (see the module header).
pub(super) fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions");
    let builder = match (&files.ca, files.verify) {
        (_, false) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        (Some(ca), true) => builder.with_root_certificates(roots(ca)?),
        (None, true) => {
            let verifier =
                rustls_platform_verifier::Verifier::new(provider).map_err(|e| TlsError::BadCa {
                    path: "the system's root certificates".into(),
                    message: e.to_string(),
                })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| rejected(cert.clone(), key.clone(), e))?,
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), None) => {
            return Err(TlsError::Missing {
                path: cert.with_file_name("key.pem (the key of this client certificate)"),
            })
        }
        (None, Some(key)) => {
            return Err(TlsError::Missing {
                path: key.with_file_name("cert.pem (the certificate of this client key)"),
            })
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a rustls error says about the step that failed: the engine's certificate (checked
/// here), the client's (the engine's alert), or the handshake otherwise.
pub(super) fn cause(error: &rustls::Error) -> ConnectionCause {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            ConnectionCause::ServerCertificate(
                "it is not signed by a CA trusted here (unknown issuer)".to_owned(),
            )
        }
        rustls::Error::InvalidCertificate(why) => {
            ConnectionCause::ServerCertificate(why.to_string())
        }
        // A TLS 1.3 engine checks the client's certificate after the client has finished its
        // part: the alert arrives with the first answer, and means the same.
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied),
        ) => ConnectionCause::ClientCertificate(format!("the engine answered {alert:?}")),
        other => ConnectionCause::Handshake(other.to_string()),
    }
}

/// No check of the engine's certificate, for `verify: false` only: the docker CLI's
/// `InsecureSkipVerify`. The connection is encrypted, but to whoever answers at the address.
/// The handshake's signatures are still checked against the certificate presented (with the
/// provider's algorithms), so a peer must at least hold that certificate's key: what is skipped
/// is only whether anyone vouches for it and the name it carries.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn files_make_a_config_and_a_half_pair_or_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let files = TlsFiles {
            ca: Some(cert.clone()),
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            verify: true,
        };
        let config = client_config(&files).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let insecure = TlsFiles {
            ca: None,
            verify: false,
            ..files.clone()
        };
        client_config(&insecure).unwrap();

        let half = TlsFiles {
            key: None,
            ..files.clone()
        };
        let e = client_config(&half).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
        let not_pem = TlsFiles {
            ca: Some(write(dir.path(), "ca.pem", "not a certificate\n")),
            ..files.clone()
        };
        let e = client_config(&not_pem).unwrap_err();
        assert!(e.to_string().contains("ca.pem: not a PEM file"), "{e}");
        let missing = TlsFiles {
            ca: Some(dir.path().join("nope.pem")),
            ..files
        };
        let e = Target::new("127.0.0.1", 2376, &missing, "tcp://127.0.0.1:2376").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "TLS for the Docker engine at tcp://127.0.0.1:2376: {}: no such file",
                dir.path().join("nope.pem").display()
            )
        );
    }

    #[test]
    fn rustls_errors_name_the_step() {
        use rustls::CertificateError;
        assert!(matches!(
            cause(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            ConnectionCause::ServerCertificate(why) if why.contains("unknown issuer")
        ));
        assert!(matches!(
            cause(&rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            ConnectionCause::ClientCertificate(why) if why.contains("CertificateRequired")
        ));
        assert!(matches!(
            cause(&rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            ConnectionCause::Handshake(_)
        ));
    }
}
