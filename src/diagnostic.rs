//! Problems found in a cookbook, located in its text.
//!
//! Every front-end stage (JSON syntax, schema, model, plan) reports `Diagnostic`s rather than
//! failing on the first problem, so that one run shows everything wrong with a file. A diagnostic
//! names the JSON pointer it is about; the front end resolves pointers to line and column once, at
//! the end, from the text it parsed.

use std::fmt::{self, Write as _};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Whether a diagnostic refuses the cookbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Severity {
    /// The cookbook is refused.
    #[default]
    Error,
    /// Worth saying, but the cookbook is valid (a cookbook with nothing to build).
    Warning,
}

/// One problem in a cookbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable code, such as `schema/type` or `plan/cycle`: what tests and tools match on.
    pub code: &'static str,
    /// The JSON pointer of the value the problem is about (`""` for the whole document).
    pub pointer: String,
    /// Where the pointer's value (or key, for key problems) starts; `None` before resolution.
    pub location: Option<Location>,
    /// Whether the location is the key of `pointer` rather than its value.
    pub at_key: bool,
    pub message: String,
    pub help: Option<String>,
    pub severity: Severity,
}

impl Diagnostic {
    pub fn new(code: &'static str, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            pointer: pointer.into(),
            location: None,
            at_key: false,
            message: message.into(),
            help: None,
            severity: Severity::Error,
        }
    }

    /// Makes the diagnostic a warning: reported, but the cookbook is still valid.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Points the diagnostic at the key of its pointer (for unknown or misspelled keys).
    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn located(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }
}

/// A diagnostic rendered compiler-style, for plain logs. Hand-written rather than miette's
/// graphical reports: CI logs have no terminal, and one stable line per problem is what both
/// people grepping a log and the snapshot tests compare:
/// `file:line:col: error[code]: /pointer: message` (or `warning[code]`) and an indented help line.
pub struct Rendered<'a> {
    pub file: &'a str,
    pub diagnostic: &'a Diagnostic,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        match d.location {
            Some(l) => write!(f, "{}:{}:{}: ", self.file, l.line, l.column)?,
            None => write!(f, "{}: ", self.file)?,
        }
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}[{}]: ", d.code)?;
        if !d.pointer.is_empty() {
            // Keys are free text: a control character (a NUL in a label key) is shown escaped,
            // never written raw to a terminal or a log.
            for c in shorten_pointer(&d.pointer).chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_debug())?;
                } else {
                    f.write_char(c)?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(&d.message)?;
        if let Some(help) = &d.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Appends a JSON-pointer segment, escaping `~` and `/` (RFC 6901).
pub fn pointer_push(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// A pointer for display: a segment longer than 60 characters (a key written by mistake, maybe
/// 50 MB long) is cut to its first 60 and `…`, so a message never echoes a huge key back.
pub fn shorten_pointer(pointer: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 60;
    if pointer.len() <= MAX {
        return pointer.into();
    }
    pointer
        .split('/')
        .map(|segment| match segment.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &segment[..cut]),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
        .into()
}

/// Shortens a user-supplied value for a message: never echo a 50 MB string back.
pub fn excerpt(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} bytes)", value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_pointer_segments_are_shortened_for_display() {
        let key = "k".repeat(1000);
        let pointer = pointer_push("/containers", &key);
        let d = Diagnostic::new("schema/unknown-key", pointer, "unknown key");
        let shown = Rendered {
            file: "c.json",
            diagnostic: &d,
        }
        .to_string();
        assert_eq!(
            shown,
            format!(
                "c.json: error[schema/unknown-key]: /containers/{}…: unknown key",
                "k".repeat(60)
            )
        );
        assert_eq!(shorten_pointer("/a/b"), "/a/b");
    }
}
