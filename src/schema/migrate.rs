//! Pure migrations between format versions.
//!
//! Each step is a list of edits computed from a document that passed its own version's schema.
//! The same edits serve twice: applied to the `Value` (`to_latest`, what the model reads) and to
//! the text (`migrate_text`, what `cookbook migrate` prints), where only the edited values'
//! bytes change: key order, white space and the author's formatting stay as they were. Because
//! both come from one list, the text a user gets and the document the model reads cannot drift
//! (tests/it/migrate.rs checks it for every fixture).
//!
//! 1.0 → 1.1 only renames the version: every 1.0 document is a 1.1 document with that version
//! (1.1 adds keys, and changes none of 1.0's). Input hashes do not read `manifest_version`, so
//! they are unchanged.

use serde_json::Value;

use super::span::SpanIndex;
use super::VERSIONS;

/// One change to a document: the value at `pointer` (which exists) becomes `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub pointer: String,
    pub value: Value,
}

/// The edits of each step, by the version it starts from.
type Step = fn(&Value) -> Vec<Edit>;

const STEPS: &[(&str, Step)] = &[("1.0", edits_1_0_to_1_1)];

fn edits_1_0_to_1_1(document: &Value) -> Vec<Edit> {
    let mut edits = vec![Edit {
        pointer: "/manifest_version".to_owned(),
        value: Value::from("1.1"),
    }];
    // A `$schema` naming the bundled 1.0 schema (by its $id or a path to the file) names 1.1's
    // the same way; any other `$schema` is the author's and is left alone.
    if let Some(Value::String(s)) = document.get("$schema") {
        if let Some(prefix) = s.strip_suffix("cookbook-1.0.schema.json") {
            edits.push(Edit {
                pointer: "/$schema".to_owned(),
                value: Value::from(format!("{prefix}cookbook-1.1.schema.json")),
            });
        }
    }
    edits
}

fn apply(mut document: Value, edits: Vec<Edit>) -> Value {
    for edit in edits {
        if let Some(slot) = document.pointer_mut(&edit.pointer) {
            *slot = edit.value;
        }
    }
    document
}

fn step(from: &str) -> Step {
    STEPS
        .iter()
        .find(|(name, _)| *name == from)
        .map(|(_, f)| *f)
        .expect("every version but the latest has a migration step")
}

/// `FormatVersion::migrate_to_next` of 1.0.
pub fn v1_0_to_v1_1(document: Value) -> Value {
    let edits = step("1.0")(&document);
    apply(document, edits)
}

pub fn to_latest(from: usize, mut document: Value) -> Value {
    for version in &VERSIONS[from..] {
        if let Some(migrate) = version.migrate_to_next {
            document = migrate(document);
        }
    }
    document
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigrateError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("the document has no supported manifest_version")]
    NoVersion,
    #[error("unknown format version `{0}`")]
    UnknownTarget(String),
    #[error("cannot migrate from {from} down to {to}")]
    Downgrade { from: String, to: &'static str },
}

/// The result of migrating a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub text: String,
    pub from: &'static str,
    pub to: &'static str,
}

impl Migrated {
    /// Whether the text changed (false when it already was the target version).
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// Migrates a cookbook's text to version `to` (default: the latest), editing only the values a
/// migration changes. The caller has checked the document (`load::parse`); a document already
/// at `to` comes back unchanged, so migrating twice changes nothing.
pub fn migrate_text(text: &str, to: Option<&str>) -> Result<Migrated, MigrateError> {
    let target = match to {
        None => VERSIONS.len() - 1,
        Some(t) => VERSIONS
            .iter()
            .position(|v| v.name == t)
            .ok_or_else(|| MigrateError::UnknownTarget(t.to_owned()))?,
    };
    // A byte-order mark is kept as the author had it; the spans are counted after it.
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let value: Value = serde_json::from_str(body).map_err(|e| MigrateError::Json(e.to_string()))?;
    let from = value
        .get("manifest_version")
        .and_then(Value::as_str)
        .and_then(|v| VERSIONS.iter().position(|f| f.name == v))
        .ok_or(MigrateError::NoVersion)?;
    if from > target {
        return Err(MigrateError::Downgrade {
            from: VERSIONS[from].name.to_owned(),
            to: VERSIONS[target].name,
        });
    }
    let mut body = body.to_owned();
    let mut value = value;
    for version in &VERSIONS[from..target] {
        let edits = step(version.name)(&value);
        body = edit_text(&body, &edits);
        value = apply(value, edits);
    }
    Ok(Migrated {
        text: format!("{bom}{body}"),
        from: VERSIONS[from].name,
        to: VERSIONS[target].name,
    })
}

/// Replaces the edited values' bytes, and nothing else.
fn edit_text(text: &str, edits: &[Edit]) -> String {
    let spans = SpanIndex::scan(text);
    let mut cuts: Vec<(usize, usize, String)> = edits
        .iter()
        .filter_map(|e| {
            let start = spans.span(&e.pointer)?.value;
            // The value's end: serde_json reads exactly one value from its start.
            let mut values =
                serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
            values.next()?.ok()?;
            let end = start + values.byte_offset();
            Some((start, end, e.value.to_string()))
        })
        .collect();
    cuts.sort_by_key(|cut| std::cmp::Reverse(cut.0));
    let mut out = text.to_owned();
    for (start, end, replacement) in cuts {
        out.replace_range(start..end, &replacement);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V10: &str = "{\n  \"$schema\": \"../schemas/cookbook-1.0.schema.json\",\n  \"manifest_version\" :   \"1.0\", \"project\": {\"name\": \"x\"},\n  \"containers\": {\"a\": {\"base_image\": \"b\", \"applications\": [\"p\"]}}\n}\n";

    #[test]
    fn only_the_version_bytes_change() {
        let m = migrate_text(V10, None).unwrap();
        assert_eq!(
            m.text,
            V10.replace("\"1.0\"", "\"1.1\"")
                .replace("cookbook-1.0.schema", "cookbook-1.1.schema")
        );
        assert_eq!((m.from, m.to, m.changed()), ("1.0", "1.1", true));
        let again = migrate_text(&m.text, None).unwrap();
        assert_eq!(again.text, m.text);
        assert!(!again.changed());
    }

    #[test]
    fn text_and_value_migrations_agree() {
        let m = migrate_text(V10, Some("1.1")).unwrap();
        let from_text: Value = serde_json::from_str(&m.text).unwrap();
        let from_value = v1_0_to_v1_1(serde_json::from_str(V10).unwrap());
        assert_eq!(from_text, from_value);
    }

    #[test]
    fn refusals() {
        let m = migrate_text(V10, None).unwrap();
        assert_eq!(
            migrate_text(&m.text, Some("1.0")),
            Err(MigrateError::Downgrade {
                from: "1.1".to_owned(),
                to: "1.0"
            })
        );
        assert_eq!(
            migrate_text(V10, Some("2.0")),
            Err(MigrateError::UnknownTarget("2.0".to_owned()))
        );
        assert_eq!(migrate_text(V10, Some("1.0")).unwrap().text, V10);
        assert_eq!(
            migrate_text("{\"manifest_version\": \"0.9\"}", None),
            Err(MigrateError::NoVersion)
        );
        let bom = format!("\u{feff}{V10}");
        assert!(migrate_text(&bom, None)
            .unwrap()
            .text
            .starts_with('\u{feff}'));
    }
}
