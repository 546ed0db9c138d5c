//! Output shared by the commands: an error (on stderr, and as the JSON error document),
//! diagnostics in colour, and the workspace opened with its warnings shown.

use std::io::Write;
use std::path::Path;

use super::CookbookArg;
use crate::diagnostic::{Diagnostic, Rendered};
use crate::error::Error;
use crate::ops::{CookbookFile, ErrorReport, Workspace};

/// Opens the cookbook `cookbook` (or `-f` before the subcommand, `top`) names, and shows its
/// warnings on `err`.
pub fn open(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    err: &mut dyn Write,
) -> Result<Workspace, Error> {
    open_file(cookbook.locate(top)?, err)
}

/// Opens the cookbook `file`, and shows its warnings on `err`.
pub fn open_file(file: CookbookFile, err: &mut dyn Write) -> Result<Workspace, Error> {
    let ws = Workspace::open(file)?;
    warnings(&ws.file.label, &ws.warnings, err);
    Ok(ws)
}

/// The load stage's warnings about `file`, one located diagnostic each.
pub fn warnings(file: &str, warnings: &[Diagnostic], err: &mut dyn Write) {
    for d in warnings {
        let _ = writeln!(
            err,
            "{}",
            styled_diagnostic(&Rendered {
                file,
                diagnostic: d
            })
        );
    }
}

/// A report as `--format json` prints it: pretty, ending in a newline.
pub fn json(report: &impl serde::Serialize, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(report).expect("reports serialize")
    );
}

/// A report as `--format json` prints it, keys sorted: the order of the `json!` documents the
/// report types replaced (serde_json's map is sorted), whatever order the type declares.
pub fn json_sorted(report: &impl serde::Serialize) -> String {
    let value = serde_json::to_value(report).expect("reports serialize");
    let mut s = serde_json::to_string_pretty(&value).expect("JSON");
    s.push('\n');
    s
}

/// The document a `--format json` command prints on stdout when it fails, so CI always gets
/// something structured (see [`ErrorReport`]).
pub fn error_document(e: &Error, out: &mut dyn Write) {
    json(&ErrorReport::new(e), out);
}

/// An error on stderr: its diagnostics, located and coloured, then one `error:` line (and the
/// root cause, when the message does not say it).
pub fn report(e: &Error, err: &mut dyn Write) {
    let error = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    match e {
        Error::Invalid { file, diagnostics } => {
            for d in diagnostics {
                let _ = writeln!(
                    err,
                    "{}",
                    styled_diagnostic(&Rendered {
                        file,
                        diagnostic: d
                    })
                );
            }
            let _ = writeln!(err, "{error}error{error:#}: {e}");
        }
        // The output already said everything (`diff` found differences).
        Error::Differences(_) | Error::Exited { .. } | Error::NotAsLocked { .. } => {}
        Error::Usage {
            help: Some(help), ..
        } => {
            let _ = writeln!(err, "{error}error{error:#}: {e}\n  help: {help}");
        }
        Error::Approval(a) => {
            let help = a.help();
            let _ = writeln!(err, "{error}error{error:#}: {e}\n  help: {help}");
        }
        Error::Key(k) if k.help().is_some() => {
            let help = k.help().unwrap_or_default();
            let _ = writeln!(err, "{error}error{error:#}: {e}\n  help: {help}");
        }
        _ => {
            let _ = writeln!(err, "{error}error{error:#}: {e}");
        }
    }
    if let Some(cause) = root_cause(e) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
}

/// The innermost cause of `e`, in its own words, when the message does not already say it: the
/// library's message says what happened and what to check; this keeps what the system, git or
/// the HTTP stack said underneath (`Connection refused (os error 111)`). git2's class and code
/// numbers are left out: they mean nothing to a user.
fn root_cause(e: &Error) -> Option<String> {
    let mut cause: &dyn std::error::Error = std::error::Error::source(e)?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = match cause.downcast_ref::<git2::Error>() {
        Some(g) => g.message().to_owned(),
        None => cause.to_string(),
    };
    (!text.is_empty() && !e.to_string().contains(&text)).then_some(text)
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

/// `1 container`, `2 containers`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
