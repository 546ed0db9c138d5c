//! TLS for the registry client: reqwest's own rustls setup (the platform's root certificates
//! through `rustls-platform-verifier`, TLS 1.2 and 1.3, HTTP/1.1 by ALPN), except that the roots
//! are loaded at the first TLS handshake instead of when the client is built.
//!
//! Why: reqwest's platform verifier reads and parses every root certificate of the system when
//! the client is built — 4 ms of a no-op `apply` (issue 11's benchmark), spent even when the
//! registry is a loopback one spoken to over plain HTTP and no handshake ever happens. Nothing
//! else changes: the same verifier, built with the same crypto provider, checks every server
//! certificate; a registry over HTTPS, or a plain-HTTP one redirecting to HTTPS storage, gets
//! it at its first handshake. A machine without root certificates can now still use a
//! plain-HTTP registry; over HTTPS it gets the verifier's error at the handshake instead of at
//! start-up.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

/// The rustls configuration reqwest would build by default, with [`LazyVerifier`].
pub fn client_config() -> ClientConfig {
    // reqwest's choice: the process's default provider when one is installed (deploy installs
    // ring for kube), else aws-lc-rs (reqwest's `rustls` feature).
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default providers support the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LazyVerifier::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The platform verifier, built (roots loaded) on first use.
#[derive(Debug)]
struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Verifier, rustls::Error>>,
}

impl LazyVerifier {
    fn new(provider: Arc<CryptoProvider>) -> LazyVerifier {
        LazyVerifier {
            provider,
            verifier: OnceLock::new(),
        }
    }

    /// Whether the roots were loaded yet.
    #[cfg(test)]
    fn loaded(&self) -> bool {
        self.verifier.get().is_some()
    }

    fn get(&self) -> Result<&Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls13_signature(message, cert, dss)
    }

    /// Asked when the handshake starts; the provider answers it (as the platform verifier
    /// does), so a client that never verifies a certificate never loads the roots.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// Self-signed, for `registry.invalid`, valid until 2126: no platform trusts it.
    const SELF_SIGNED: &str = "-----BEGIN CERTIFICATE-----
MIIBvTCCAWSgAwIBAgIULdXXNm9s2Wb/Skpl+xRstLHIqXIwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcmVnaXN0cnkuaW52YWxpZDAgFw0yNjExMjkxOTA1MTlaGA8y
MTI2MTEwNTE5MDUxOVowGzEZMBcGA1UEAwwQcmVnaXN0cnkuaW52YWxpZDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABAd6+AXrZQ0NDvIbJR7tPlTZQi8NX2CewzzK
BIawRdx4BnNaenbHni2RVIPKGyytOmngFkUu3yKKiSo/7KmpFhqjgYMwgYAwHQYD
VR0OBBYEFOUA2I688V63EqXebeS+nfQeUofeMB8GA1UdIwQYMBaAFOUA2I688V63
EqXebeS+nfQeUofeMBsGA1UdEQQUMBKCEHJlZ2lzdHJ5LmludmFsaWQwDAYDVR0T
AQH/BAIwADATBgNVHSUEDDAKBggrBgEFBQcDATAKBggqhkjOPQQDAgNHADBEAiBW
gzGa3H632o2F6pMDo0j9oeZPKlgeZ79FUOC6XdvErQIgPQJg3En1A1n+2I6AaYyM
6H3b6Pfo22Nem7bo9IyXQjk=
-----END CERTIFICATE-----";

    #[test]
    fn roots_load_at_the_first_verification_and_still_refuse_an_unknown_issuer() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = LazyVerifier::new(provider);
        assert!(!verifier.loaded());
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(
            !verifier.loaded(),
            "the handshake's first question loaded the roots"
        );
        let cert = CertificateDer::from_pem_slice(SELF_SIGNED.as_bytes()).unwrap();
        let name = ServerName::try_from("registry.invalid").unwrap();
        let refused = verifier
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(verifier.loaded());
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn the_config_speaks_http1_with_the_lazy_verifier() {
        let config = client_config();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build();
        assert!(client.is_ok());
    }
}
