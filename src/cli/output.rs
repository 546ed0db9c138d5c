//! Output shared by the commands: the JSON error document, coloured diagnostics, `schema` and
//! `clean`.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::diagnostic::Rendered;
use crate::error::Error;
use crate::schema;
use crate::state;

/// The document a `--format json` command prints on stdout when it fails, so CI always gets
/// something structured: the exit code and every error, located when it is about the cookbook.
/// Its shape is `schemas/cookbook-output.schema.json`'s `error` definition.
pub fn error_document(e: &Error) -> String {
    let located = |file: &str, diagnostics: &[crate::diagnostic::Diagnostic]| -> Vec<Value> {
        diagnostics
            .iter()
            .map(|d| {
                json!({
                    "code": d.code,
                    "message": d.message,
                    "file": file,
                    "line": d.location.map(|l| l.line),
                    "column": d.location.map(|l| l.column),
                    "pointer": crate::diagnostic::shorten_pointer(&d.pointer),
                    "help": d.help,
                })
            })
            .collect()
    };
    let errors: Vec<Value> = match (e, invalid_lock(e)) {
        (Error::Invalid { file, diagnostics }, _) => located(file, diagnostics),
        (_, Some((path, diagnostics))) => located(&path.display().to_string(), diagnostics),
        (Error::Usage { message, help }, _) => vec![json!({
            "code": code(e),
            "message": message,
            "help": help,
        })],
        (other, _) => vec![json!({
            "code": code(other),
            "message": other.to_string(),
            "help": Value::Null,
        })],
    };
    let doc = json!({
        "result": "error",
        "exit_code": e.exit_code(),
        "errors": errors,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON");
    s.push('\n');
    s
}

/// The problems of a malformed `cookbook.lock`, wherever the error carries them (every command
/// that reads the lock refuses one, through its own error).
fn invalid_lock(e: &Error) -> Option<(&Path, &[crate::diagnostic::Diagnostic])> {
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
        Error::Engine(_) => "engine",
        Error::Registry(_) => "registry",
        Error::Kube(_) => "kubernetes",
        Error::Reference(_) => "reference",
        Error::Apply(_) => "apply",
        Error::Lock(_) => "lock",
        Error::Sync(_) | Error::SyncRefused { .. } | Error::SyncApplyFailed { .. } => "sync",
        Error::Verify(_) => "verify",
        Error::Interrupted { .. } => "interrupted",
        Error::Deploy { .. } => "deploy",
        Error::NotPublished { .. } | Error::SyncDeployFailed { .. } => "failed",
    }
}

/// A diagnostic with its severity and help coloured (the colour codes are dropped by the
/// stream when colour is off, see `cli::main`).
pub fn styled_diagnostic(rendered: &Rendered<'_>) -> String {
    let text = rendered.to_string();
    let red = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    let yellow = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()));
    let cyan = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Cyan.into()));
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if let Some(help) = line.strip_prefix("  help:") {
            out.push_str(&format!("  {cyan}help{cyan:#}:{help}"));
            continue;
        }
        let styled = [("error[", red), ("warning[", yellow)]
            .iter()
            .find_map(|(tag, style)| {
                let at = line.find(tag)?;
                let end = at + line[at..].find("]:")? + 1;
                Some(format!(
                    "{}{style}{}{style:#}{}",
                    &line[..at],
                    &line[at..end],
                    &line[end..]
                ))
            });
        out.push_str(styled.as_deref().unwrap_or(line));
    }
    out
}

/// The bundled JSON Schema of a format version (the latest by default).
pub fn schema(version: Option<&str>) -> Result<&'static str, Error> {
    match version {
        None => Ok(schema::latest().schema),
        Some(v) => schema::VERSIONS
            .iter()
            .find(|f| f.name == v)
            .map(|f| f.schema)
            .ok_or_else(|| Error::Usage {
                message: format!("unknown format version `{v}`"),
                help: Some(format!("versions: {}", schema::supported_names())),
            }),
    }
}

/// `cookbook clean`: removes the caches in the cookbook's state directory, and says what.
pub fn clean(file: &Path, dry_run: bool, err: &mut dyn Write) -> Result<(), Error> {
    let dir = state::dir_for(file);
    let removed = state::clean(&dir, dry_run).map_err(|e| match e {
        state::CleanError::Read { path, source } => Error::Read { path, source },
        state::CleanError::Remove { path, source } => Error::Write { path, source },
    })?;
    let verb = if dry_run { "would remove" } else { "removed" };
    if removed.is_empty() {
        let _ = writeln!(err, "clean: nothing to remove in {}", dir.display());
    }
    for path in &removed {
        let _ = writeln!(err, "{verb} {}", path.display());
    }
    Ok(())
}
