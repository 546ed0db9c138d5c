//! Secrets by reference on a Docker site: the value of `{"secret": "NAME/KEY"}`, read where the
//! container is started and nowhere else.
//!
//! Pipeline position: `Desired::secrets` (references only) → **`resolve`** → the Docker edge puts
//! each value into the environment of the container that references it. A Kubernetes site never
//! reads a value: it names the Secret (`secretKeyRef`) and the kubelet reads it.
//!
//! Where a value comes from: the site's `secrets.directory`, file `<dir>/<NAME>/<KEY>` (a regular
//! file that only its owner may read or write, at most 64 KiB; one final newline, as an editor
//! writes it, is not part of the value); else, or when the file is absent, the deploying
//! process's environment variable `COOKBOOK_SECRET_<NAME>_<KEY>` (upper-cased, every character
//! other than a letter or a digit written `_`).
//!
//! Invariants: a value is held in memory only (zeroed on drop) and never enters a hash, a record,
//! a report, a log line or an error: errors name the reference and the file, never the content.
//! Every reference is resolved before the deploy changes anything, so a missing one fails the
//! deploy with nothing replaced.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::model::pod::SecretRef;

/// The largest secret file read.
const MAX: u64 = 64 << 10;

/// Why a secret could not be read (exit code 2: the site's input is missing or unsafe).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference} is not set: {looked}")]
    Missing { reference: String, looked: String },
    #[error("secret {reference}: {path} can be read or written by others (mode {mode:04o}); secrets must be 0600")]
    Exposed {
        reference: String,
        path: PathBuf,
        mode: u32,
    },
    #[error("secret {reference}: cannot read {path}: {reason}")]
    Unreadable {
        reference: String,
        path: PathBuf,
        reason: String,
    },
    #[error("secret {reference}: {path} is not UTF-8 text, which an environment value must be")]
    NotText { reference: String, path: PathBuf },
    /// Two references would read one environment variable: neither could be told apart.
    #[error("secrets {first} and {second} would both be read from the environment variable {variable}; rename one")]
    Ambiguous {
        first: String,
        second: String,
        variable: String,
    },
}

/// Where a site's secrets come from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The site's `secrets.directory`, resolved against the cookbook's directory.
    pub directory: Option<PathBuf>,
}

/// The environment variable that holds `reference` when no file does.
pub fn variable(reference: &SecretRef) -> String {
    variable_of(reference.name(), reference.key())
}

/// The environment variable for secret `name`'s `key` (also what `init` tells to set, for a
/// reference it writes): `COOKBOOK_SECRET_<NAME>_<KEY>`, upper case, other characters `_`.
pub fn variable_of(name: &str, key: &str) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("COOKBOOK_SECRET_{}_{}", part(name), part(key))
}

/// A secret's value.
pub type Value = Zeroizing<String>;

/// Reads every reference's value, `env` standing for the process environment.
pub fn resolve<'a>(
    references: impl IntoIterator<Item = &'a SecretRef>,
    source: &Source,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<SecretRef, Value>, SecretError> {
    let mut out = BTreeMap::new();
    let mut variables: BTreeMap<String, &SecretRef> = BTreeMap::new();
    for reference in references {
        if let Some(first) = variables.insert(variable(reference), reference) {
            if first != reference {
                return Err(SecretError::Ambiguous {
                    first: first.to_string(),
                    second: reference.to_string(),
                    variable: variable(reference),
                });
            }
        }
        let from_file = match &source.directory {
            Some(dir) => read_file(dir, reference)?,
            None => None,
        };
        let value = match from_file {
            Some(v) => v,
            None => match env(&variable(reference)) {
                Some(v) => Zeroizing::new(v),
                None => {
                    let var = variable(reference);
                    let looked = match &source.directory {
                        Some(dir) => format!(
                            "no file {} and no environment variable {var}",
                            dir.join(reference.name()).join(reference.key()).display()
                        ),
                        None => format!(
                            "no environment variable {var} (or give the site a \"secrets\": {{\"directory\": …}})"
                        ),
                    };
                    return Err(SecretError::Missing {
                        reference: reference.to_string(),
                        looked,
                    });
                }
            },
        };
        out.insert(reference.clone(), value);
    }
    Ok(out)
}

/// The value in `<dir>/<NAME>/<KEY>`, `None` when there is no such file.
fn read_file(dir: &Path, reference: &SecretRef) -> Result<Option<Value>, SecretError> {
    // Both parts are single path components (`SecretRef` refuses `/`, `.` and `..`).
    let path = dir.join(reference.name()).join(reference.key());
    let unreadable = |reason: String| SecretError::Unreadable {
        reference: reference.to_string(),
        path: path.clone(),
        reason,
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    if meta.mode() & 0o077 != 0 {
        return Err(SecretError::Exposed {
            reference: reference.to_string(),
            path,
            mode: meta.mode() & 0o7777,
        });
    }
    let bytes = crate::context::file::read_regular(&path, MAX)
        .map_err(|e| unreadable(e.to_string()))?
        .ok_or_else(|| unreadable("it went away while being read".to_owned()))?;
    let bytes = Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretError::NotText {
        reference: reference.to_string(),
        path: path.clone(),
    })?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    Ok(Some(Zeroizing::new(text.to_owned())))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn r(s: &str) -> SecretRef {
        SecretRef::parse(s).unwrap()
    }

    #[test]
    fn a_file_then_the_environment_and_never_the_value_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let file = dir.path().join("db/password");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let source = Source {
            directory: Some(dir.path().to_owned()),
        };
        let env = |v: &str| (v == "COOKBOOK_SECRET_API_TOKEN_V1").then(|| "tok".to_owned());
        let refs = [r("db/password"), r("api/token.v1")];
        let got = resolve(&refs, &source, env).unwrap();
        assert_eq!(got[&refs[0]].as_str(), "s3cret");
        assert_eq!(got[&refs[1]].as_str(), "tok");

        let missing = resolve(&[r("db/user")], &source, env).unwrap_err();
        assert!(matches!(missing, SecretError::Missing { .. }));
        let message = missing.to_string();
        assert!(message.contains("secret db/user is not set"), "{message}");
        assert!(message.contains("COOKBOOK_SECRET_DB_USER"), "{message}");

        let twins = [r("db-x/k"), r("db.x/k")];
        let ambiguous = resolve(&twins, &source, env).unwrap_err().to_string();
        assert!(ambiguous.contains("COOKBOOK_SECRET_DB_X_K"), "{ambiguous}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let exposed = resolve(&refs[..1], &source, env).unwrap_err().to_string();
        assert!(exposed.contains("mode 0644"), "{exposed}");
        assert!(!exposed.contains("s3cret"));
    }
}
