//! TLS for the agent and the fleet view: rustls configurations from PEM files.
//!
//! Pipeline position: an edge (it reads files). The agent serves HTTPS with [`server_config`]
//! (`--tls-cert`, `--tls-key`; with `--tls-client-ca`, mutual TLS: a client without a
//! certificate chaining to that CA fails the handshake), and `cookbook fleet status` (and an
//! agent asking its peers) speaks to agents with [`client`]: a client certificate, and only the
//! fleet's CA as a root — never the system's, so a certificate any public CA signed for the
//! peer's name is not enough.
//!
//! Every file is input: read capped through `context::file` (a regular file only), parsed at this
//! boundary with rustls-pki-types' PEM reader (certificates; PKCS#8, SEC1 or PKCS#1 keys), and a
//! bad one is a [`TlsError`] naming the file and what is wrong, never a panic.
//!
//! The crypto provider is named here (aws-lc-rs, reqwest's own), not taken from the process
//! default: deploy installs ring as the default for kube, and a configuration built before or
//! after that must not differ, nor panic when none is installed.
//!
//! It lives at the top level rather than under `ops::agent` (which re-exports it as
//! `ops::agent::tls`) so that `error` can map [`TlsError`] to exit codes: `ops` imports `error`,
//! so `error` importing `ops` would be an import cycle (`tests/it/import_graph.rs`). The same
//! file readers ([`certificates`], [`private_key`], [`roots`]) serve the engine edge's TLS
//! (`engine::transport::tls`: DOCKER_CERT_PATH, a context's or a site's TLS files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::context::file::{read_regular, FileError};

/// A certificate chain or a key is a few kilobytes; a CA bundle a few hundred. Past this it is
/// not one.
const MAX_PEM_FILE: u64 = 1 << 20;

/// A peer must connect within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request (connect, handshake, answer) must end within this: a peer that stalls is that
/// peer's error, never the fleet view's hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent serves with: `--tls-cert`, `--tls-key`, and with `--tls-client-ca` mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// What the fleet client (and an agent asking its peers) presents and trusts: a CA that the
/// peers' server certificates chain to (only it: not the system's roots), and a client
/// certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a TLS configuration could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: no such file", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: FileError },
    /// No PEM block at all (a DER file, a file of something else).
    #[error("{}: not a PEM file (expected {expected})", path.display())]
    NotPem {
        path: PathBuf,
        expected: &'static str,
    },
    /// A PEM block that does not parse (a missing end line, bad base64).
    #[error("{}: malformed PEM: {message}", path.display())]
    MalformedPem { path: PathBuf, message: String },
    #[error("{}: no certificate in it (no `CERTIFICATE` PEM block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key in it (no `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` PEM block)", path.display())]
    NoKey { path: PathBuf },
    /// rustls refused the certificate and key together (the key does not match the
    /// certificate, a key type it does not sign with).
    #[error("{} and {}: {message}", cert.display(), key.display())]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    /// A CA file whose certificates cannot be trust anchors.
    #[error("{}: not a usable CA certificate: {message}", path.display())]
    BadCa { path: PathBuf, message: String },
    /// The HTTP client could not be built with that configuration.
    #[error("cannot build the HTTPS client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The one crypto provider the agent's TLS uses, both ways.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls server config: the certificate chain and key (PKCS#8, SEC1 or PKCS#1 PEM), ALPN
/// http/1.1; with a client CA, every client must present a certificate that chains to it
/// (`WebPkiClientVerifier`): a client without one, or one signed by another CA, fails the
/// handshake.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions");
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = Arc::new(roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| rejected(files.cert.clone(), files.key.clone(), e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The rustls client config [`client`] hands to reqwest: only the fleet's CA as a root, the
/// client certificate presented, ALPN http/1.1.
pub fn client_config(files: &ClientFiles) -> Result<ClientConfig, TlsError> {
    let roots = roots(&files.ca)?;
    let chain = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| rejected(files.cert.clone(), files.key.clone(), e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client for HTTPS with that identity and only that CA; bounded timeouts
/// ([`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]); no redirects followed (a peer answers for itself);
/// no proxy from the environment (a peer is named, not routed).
pub fn client(files: &ClientFiles) -> Result<reqwest::Client, TlsError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(files)?)
        .https_only(true)
        .http1_only()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(TlsError::Client)
}

pub(crate) fn rejected(cert: PathBuf, key: PathBuf, e: rustls::Error) -> TlsError {
    let message = match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the private key does not match the certificate".to_owned()
        }
        e => e.to_string(),
    };
    TlsError::Rejected { cert, key, message }
}

/// The file's bytes, capped; a missing file named as such.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    match read_regular(path, MAX_PEM_FILE) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(TlsError::Missing {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(TlsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether `bytes` hold a PEM block at all: tells "not PEM" from "PEM, but not what we need".
fn has_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn malformed(path: &Path, e: pem::Error) -> TlsError {
    TlsError::MalformedPem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Every `CERTIFICATE` block of the file, in order (a leaf first, then its chain).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    if !has_pem(&bytes) {
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            expected: "certificates",
        });
    }
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The file's first private key (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    if !has_pem(&bytes) {
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            expected: "a private key",
        });
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => malformed(path, e),
    })
}

/// A root store of exactly the CA file's certificates.
pub(crate) fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_certificate_and_its_key_make_a_server_config_with_http1() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("localhost");
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
            client_ca: Some(write(dir.path(), "ca.pem", &cert)),
        };
        let config = server_config(&files).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let identity = ClientFiles {
            ca: files.cert.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        };
        assert_eq!(
            client_config(&identity).unwrap().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
        client(&identity).unwrap();
    }

    #[test]
    fn each_bad_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("localhost");
        let (_, other_key) = self_signed("other");
        let cert_file = write(dir.path(), "cert.pem", &cert);
        let key_file = write(dir.path(), "key.pem", &key);
        let files = |cert: &Path, key: &Path| TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
        };
        let error = |cert: &Path, key: &Path| server_config(&files(cert, key)).unwrap_err();

        let missing = dir.path().join("none.pem");
        assert!(
            matches!(error(&missing, &key_file), TlsError::Missing { path } if path == missing)
        );
        let text = write(dir.path(), "text.pem", "hello\n");
        let e = error(&text, &key_file);
        assert!(matches!(e, TlsError::NotPem { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with(&format!("{}: not a PEM file", text.display())));
        // A key where the certificate belongs: PEM, but no certificate.
        let e = error(&key_file, &key_file);
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
        // A certificate where the key belongs.
        let e = error(&cert_file, &cert_file);
        assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
        let cut = write(
            dir.path(),
            "cut.pem",
            &cert[..cert.find("-----END").unwrap()],
        );
        let e = error(&cut, &key_file);
        assert!(matches!(e, TlsError::MalformedPem { .. }), "{e:?}");
        let other = write(dir.path(), "other-key.pem", &other_key);
        let e = error(&cert_file, &other);
        assert_eq!(
            e.to_string(),
            format!(
                "{} and {}: the private key does not match the certificate",
                cert_file.display(),
                other.display()
            )
        );
        let e = error(dir.path(), &key_file);
        assert!(
            matches!(
                e,
                TlsError::Read {
                    source: FileError::NotRegular,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
