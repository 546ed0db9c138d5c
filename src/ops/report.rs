//! What every report shares: the document a failed `--format json` command prints, and the
//! verdict words the documents use.
//!
//! The error document's shape is `schemas/cookbook-output.schema.json`'s `error` definition: the
//! exit code and every error, located when it is about the cookbook or its lock. Its fields are
//! declared in the order of their names, as every report's are: the documents have always been
//! written with sorted keys, and a report's serialization is its document byte for byte.

use std::path::Path;

use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::error::Error;

/// The `result` of a document that checks something: it held, or the command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Error,
}

/// A failed command's document: `{"errors": [..], "exit_code": N, "result": "error"}`.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub errors: Vec<ErrorEntry>,
    pub exit_code: i32,
    pub result: Verdict,
}

/// One error of an [`ErrorReport`] (and of `validate`'s document, which has none).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ErrorEntry {
    /// A problem in a file (the cookbook or its lock): where, and what to do.
    Located {
        code: &'static str,
        column: Option<usize>,
        file: String,
        help: Option<String>,
        line: Option<usize>,
        message: String,
        pointer: String,
    },
    /// Any other failure, under a stable, coarse code.
    Plain {
        code: &'static str,
        help: Option<String>,
        message: String,
    },
}

impl ErrorReport {
    /// The document for `e`, with the exit code `e` maps to.
    pub fn new(e: &Error) -> Self {
        let errors = match (e, invalid_lock(e)) {
            (Error::Invalid { file, diagnostics }, _) => located(file, diagnostics),
            (_, Some((path, diagnostics))) => located(&path.display().to_string(), diagnostics),
            (Error::Usage { message, help }, _) => vec![ErrorEntry::Plain {
                code: code(e),
                help: help.clone(),
                message: message.clone(),
            }],
            (Error::Approval(a), _) => vec![ErrorEntry::Plain {
                code: code(e),
                help: Some(a.help()),
                message: a.to_string(),
            }],
            (Error::Key(k), _) => vec![ErrorEntry::Plain {
                code: code(e),
                help: k.help(),
                message: k.to_string(),
            }],
            (other, _) => vec![ErrorEntry::Plain {
                code: code(other),
                help: None,
                message: other.to_string(),
            }],
        };
        ErrorReport {
            errors,
            exit_code: e.exit_code(),
            result: Verdict::Error,
        }
    }
}

fn located(file: &str, diagnostics: &[Diagnostic]) -> Vec<ErrorEntry> {
    diagnostics
        .iter()
        .map(|d| ErrorEntry::Located {
            code: d.code,
            column: d.location.map(|l| l.column),
            file: file.to_owned(),
            help: d.help.clone(),
            line: d.location.map(|l| l.line),
            message: d.message.clone(),
            pointer: crate::diagnostic::shorten_pointer(&d.pointer).into_owned(),
        })
        .collect()
}

/// The problems of a malformed `cookbook.lock`, wherever the error carries them (every command
/// that reads the lock refuses one, through its own error).
fn invalid_lock(e: &Error) -> Option<(&Path, &[Diagnostic])> {
    use crate::apply::ApplyError;
    use crate::state::lock::LockError;
    let lock = match e {
        Error::Lock(l) | Error::Verify(crate::verify::VerifyError::Lock(l)) => l,
        Error::Apply(ApplyError::Lock(l)) => l,
        Error::Apply(ApplyError::Pin(p)) => match p.as_ref() {
            crate::apply::pin::PinError::Lock(l) => l,
            _ => return None,
        },
        _ => return None,
    };
    match lock {
        LockError::Invalid { path, diagnostics } => Some((path, diagnostics)),
        _ => None,
    }
}

/// A stable, coarse code for an error that is not a cookbook diagnostic.
fn code(e: &Error) -> &'static str {
    match e {
        Error::Invalid { .. } => "cookbook/invalid",
        Error::Read { .. } => "io/read",
        Error::Write { .. } => "io/write",
        Error::Usage { .. } => "usage",
        Error::Context(_) => "context",
        Error::Failed(_) => "failed",
        Error::Differences(_) => "different",
        Error::Exited { .. } => "exited",
        Error::NotAsLocked { .. } => "status/not-as-locked",
        Error::Engine(_) => "engine",
        Error::Registry(_) => "registry",
        Error::Kube(_) => "kubernetes",
        Error::Key(_) => "key",
        Error::Approval(_) => "approval",
        Error::Unattested { .. } => "attestation",
        Error::Reference(_) => "reference",
        Error::Apply(_) => "apply",
        Error::Lock(_) => "lock",
        Error::Sync(_) | Error::SyncRefused { .. } | Error::SyncApplyFailed { .. } => "sync",
        Error::Verify(_) => "verify",
        Error::Interrupted { .. } => "interrupted",
        Error::Events(_) => "events",
        Error::Deploy { .. } => "deploy",
        Error::NotPublished { .. }
        | Error::SyncDeployFailed { .. }
        | Error::ChangedSinceBuilt { .. } => "failed",
        Error::Build(_) | Error::Image(_) | Error::ImageNotInEngine { .. } => "image",
        Error::Tls(_) => "tls",
        Error::Unanswered { .. } => "fleet/unanswered",
    }
}
