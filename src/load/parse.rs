//! The front end's first half: bytes → UTF-8 text → JSON syntax → the schema of the document's
//! version (and migration to the latest) → wire types → the validated `Cookbook` (`model`) →
//! its sealed `Plan` (`graph`). Every problem of every stage is collected, then located once
//! (line:column from the JSON pointer) and sorted. Pure: the caller reads the bytes.

use crate::diagnostic::{Diagnostic, Location};
use crate::graph::Plan;
use crate::model::{self, wire, Cookbook};
use crate::schema::{self, span::SpanIndex};

/// A cookbook that passed every check of its text, with its plan.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub cookbook: Cookbook,
    /// The dependency plan of every container, sealed.
    pub plan: Plan,
}

/// Reads a cookbook from its bytes — syntax, schema, model, plan — reporting every problem at
/// once, each located.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Vec<Diagnostic>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
            return Err(vec![Diagnostic::new(
                "syntax/utf8",
                "",
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
            .located(Location { line, column })
            .with_help("cookbooks are UTF-8 JSON: save the file as UTF-8")]);
        }
    };
    if text.trim().is_empty() {
        let what = if text.is_empty() {
            "the file is empty".to_owned()
        } else {
            format!("the file holds only whitespace ({} bytes)", text.len())
        };
        return Err(vec![Diagnostic::new("syntax/empty", "", what)
                .located(Location { line: 1, column: 1 })
                .with_help("a cookbook is a JSON object with at least `manifest_version`, `project` and `containers`")]);
    }
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            // serde_json's error kinds are coarse; its message names the precise problem, and
            // only the category is matched here (never the text) to add a hint.
            let help = match e.classify() {
                    serde_json::error::Category::Eof => Some(
                        "the file ends before the JSON is complete: is a closing `}`, `]` or `\"` missing?",
                    ),
                    _ if message.contains("recursion limit") => {
                        Some("nesting is limited to 128 levels")
                    }
                    _ => None,
                };
            let mut d = Diagnostic::new("syntax/json", "", format!("invalid JSON: {message}"))
                .located(Location {
                    line: e.line().max(1),
                    column: e.column().max(1),
                });
            if let Some(h) = help {
                d = d.with_help(h);
            }
            return Err(vec![d]);
        }
    };

    // The span index (pointer → line:column) costs more than parsing; a valid cookbook needs
    // only the duplicate-key check, so the index is built only when there is a problem.
    let mut spans = None;
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    if SpanIndex::has_duplicate_keys(text) {
        let index = spans.insert(SpanIndex::scan(text));
        diagnostics.extend(index.duplicates.iter().map(|d| {
            Diagnostic::new(
                "syntax/duplicate-key",
                d.pointer.clone(),
                "key appears twice in the same object",
            )
            .located(index.location(text, d.offset))
            .with_help("JSON parsers keep only one of the two; remove the other")
        }));
    }

    // The model reads the latest version; it reports the version the author wrote.
    let written_version = value
        .get("manifest_version")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let result = schema::check(value).and_then(|latest| {
        serde_json::from_value::<wire::CookbookWire>(latest).map_err(|e| {
            vec![Diagnostic::new(
                "schema/invalid",
                "",
                format!("does not match the cookbook format: {e}"),
            )]
        })
    });
    let parsed = match result {
        Ok(wire) => {
            let (mut cookbook, problems) = model::convert(&wire);
            if let Some(v) = written_version {
                cookbook.manifest_version = v;
            }
            diagnostics.extend(problems);
            let (plan, problems) =
                Plan::build(&cookbook.containers, &cookbook.packaging.build_order);
            diagnostics.extend(problems);
            Some(Parsed { cookbook, plan })
        }
        Err(problems) => {
            diagnostics.extend(problems);
            None
        }
    };
    match parsed {
        Some(p) if diagnostics.is_empty() => Ok(p),
        _ => {
            let spans = spans.get_or_insert_with(|| SpanIndex::scan(text));
            for d in &mut diagnostics {
                if d.location.is_none() {
                    d.location = Some(spans.locate(text, &d.pointer, d.at_key));
                }
            }
            diagnostics.sort_by(|a, b| {
                (a.location, &a.pointer, a.code).cmp(&(b.location, &b.pointer, b.code))
            });
            diagnostics.dedup();
            Err(diagnostics)
        }
    }
}
