//! `cookbook key generate` and `cookbook key id`: a signing key pair written to disk, and the
//! id (`sha256:` of the SPKI DER) of a key file.
//!
//! The private key is created with mode 0600 from its first byte: written to a temporary file
//! opened `O_CREAT|O_EXCL` with that mode beside the target, synced, then linked into place
//! (`link(2)` refuses an existing name, so without `--force` nothing is ever overwritten, even
//! by a file that appears meanwhile) or, with `--force`, renamed over it. A chmod after writing
//! would leave a moment in which the key is readable by others; truncating an existing file
//! would keep that file's mode. Both files are checked before either is written, so a refusal
//! leaves nothing half-written.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::attest::key::KeyAlgorithm;
use crate::attest::key::{read_any_public_key, SigningKey};
use crate::error::Error;

/// `cookbook key generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub algorithm: KeyAlgorithm,
    /// `PREFIX.key` and `PREFIX.pub` are written.
    pub prefix: PathBuf,
    /// Replace files that exist.
    pub force: bool,
}

/// What `key generate` wrote; its serialization is the `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    pub algorithm: KeyAlgorithm,
    pub key_id: String,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

/// What `key id` read; its serialization is the `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct KeyIdReport {
    pub algorithm: KeyAlgorithm,
    pub file: PathBuf,
    pub key_id: String,
}

fn with_extension(prefix: &Path, extension: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// `cookbook key generate`: a new pair, `PREFIX.key` (PKCS#8 PEM, 0600) and `PREFIX.pub` (SPKI
/// PEM).
pub fn generate(opts: &GenerateOptions) -> Result<GenerateReport, Error> {
    let names_a_file = opts.prefix.file_name().is_some()
        && !opts.prefix.as_os_str().as_encoded_bytes().ends_with(b"/");
    if !names_a_file {
        return Err(Error::Usage {
            message: format!(
                "--output {}: name a file prefix, such as keys/release",
                opts.prefix.display()
            ),
            help: None,
        });
    }
    let private = with_extension(&opts.prefix, "key");
    let public = with_extension(&opts.prefix, "pub");
    if !opts.force {
        let existing: Vec<String> = [&private, &public]
            .into_iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Usage {
                message: format!(
                    "{} already exist{}: key generate does not overwrite a key",
                    existing.join(" and "),
                    if existing.len() == 1 { "s" } else { "" }
                ),
                help: Some(
                    "choose another prefix with --output, or replace them with --force".to_owned(),
                ),
            });
        }
    }
    let key = SigningKey::generate(opts.algorithm);
    write_new(&private, key.to_pkcs8_pem().as_bytes(), 0o600, opts.force)?;
    write_new(
        &public,
        key.public_key().to_pem().as_bytes(),
        0o644,
        opts.force,
    )?;
    Ok(GenerateReport {
        algorithm: key.algorithm(),
        key_id: key.public_key().key_id(),
        private_key: private,
        public_key: public,
    })
}

/// Writes `bytes` to `path` through a temporary sibling created with `mode` (less the umask),
/// then links it into place (refusing an existing `path`) or, with `replace`, renames it over.
fn write_new(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if replace {
            std::fs::rename(&temp, path)
        } else {
            std::fs::hard_link(&temp, path)
        }
    })();
    // Linked or renamed or failed: the temporary name goes either way.
    let _ = std::fs::remove_file(&temp);
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !replace => Err(Error::Usage {
            message: format!(
                "{} already exists: key generate does not overwrite a key",
                path.display()
            ),
            help: Some(
                "choose another prefix with --output, or replace it with --force".to_owned(),
            ),
        }),
        other => other.map_err(write_error),
    }
}

/// `cookbook key id FILE`: the id of a public key, or of a private key's public half.
pub fn id(file: &Path) -> Result<KeyIdReport, Error> {
    let key = read_any_public_key(file)?;
    Ok(KeyIdReport {
        algorithm: key.algorithm(),
        file: file.to_owned(),
        key_id: key.key_id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_pair_is_written_private_first_and_never_over_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenerateOptions {
            algorithm: KeyAlgorithm::Ed25519,
            prefix: dir.path().join("k"),
            force: false,
        };
        let report = generate(&opts).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report.private_key), 0o600);
        assert_eq!(id(&report.public_key).unwrap().key_id, report.key_id);
        assert_eq!(id(&report.private_key).unwrap().key_id, report.key_id);
        let before = std::fs::read(&report.private_key).unwrap();
        assert!(matches!(generate(&opts), Err(Error::Usage { .. })));
        assert_eq!(std::fs::read(&report.private_key).unwrap(), before);
        // Only the two files: no temporary left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        for prefix in [PathBuf::new(), dir.path().join("keys/"), PathBuf::from("/")] {
            let refused = generate(&GenerateOptions {
                prefix: prefix.clone(),
                ..opts.clone()
            });
            assert!(matches!(refused, Err(Error::Usage { .. })), "{prefix:?}");
        }
        let forced = generate(&GenerateOptions {
            force: true,
            ..opts
        })
        .unwrap();
        assert_ne!(forced.key_id, report.key_id);
        assert_eq!(mode(&forced.private_key), 0o600);
    }
}
