//! The cookbook format's versions and their JSON Schemas.
//!
//! Pipeline position: JSON text → `serde_json::Value` → **schema check for the document's
//! `manifest_version`** → migration to the latest version → wire types (`model::wire`).
//!
//! Adding version 1.1 means: add `schemas/cookbook-1.1.schema.json`, a `FormatVersion` entry below,
//! and one pure `fn(Value) -> Value` migrating a checked 1.0 document to 1.1 (in `migrate.rs`, with
//! fixtures). Nothing downstream changes except the wire types gaining the new fields.

mod messages;
pub use messages::{says_missing, suggested_key};
pub mod migrate;
pub mod span;

use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostic::{excerpt, Diagnostic};

/// One supported version of the format.
pub struct FormatVersion {
    pub name: &'static str,
    pub schema: &'static str,
    /// Rewrites a document of this version, already checked against its schema, into the next
    /// version's shape. `None` for the latest version.
    pub migrate_to_next: Option<fn(Value) -> Value>,
}

/// Every supported version, oldest first; the last one is what the model reads.
pub const VERSIONS: &[FormatVersion] = &[
    FormatVersion {
        name: "1.0",
        schema: include_str!("../../schemas/cookbook-1.0.schema.json"),
        migrate_to_next: Some(migrate::v1_0_to_v1_1),
    },
    FormatVersion {
        name: "1.1",
        schema: include_str!("../../schemas/cookbook-1.1.schema.json"),
        migrate_to_next: None,
    },
];

pub fn latest() -> &'static FormatVersion {
    VERSIONS.last().expect("at least one format version")
}

pub fn supported_names() -> String {
    VERSIONS
        .iter()
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys that belong to later versions of the format, with what to tell a user who uses them early.
const LATER_KEYS: &[(&str, &str)] = &[(
    "lifecycle",
    "lifecycle hooks arrive with a later manifest_version",
)];

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled(index: usize) -> &'static Compiled {
    static COMPILED: OnceLock<Vec<Compiled>> = OnceLock::new();
    &COMPILED.get_or_init(|| {
        VERSIONS
            .iter()
            .map(|v| {
                let schema: Value =
                    serde_json::from_str(v.schema).expect("bundled schema is valid JSON");
                let validator =
                    jsonschema::draft202012::new(&schema).expect("bundled schema compiles");
                Compiled { schema, validator }
            })
            .collect()
    })[index]
}

/// A document its schema refused.
#[derive(Debug)]
pub struct Rejected {
    /// Every schema problem, unlocated.
    pub diagnostics: Vec<Diagnostic>,
    /// The document migrated to the latest version, when its version is known (the schema ran):
    /// what the model's checks still run on, for the problems the schema cannot see.
    pub document: Option<Value>,
}

impl From<Vec<Diagnostic>> for Rejected {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Rejected {
            diagnostics,
            document: None,
        }
    }
}

/// Checks a document against the schema its `manifest_version` names, and returns it migrated to
/// the latest version. Reports every schema problem at once.
pub fn check(document: Value) -> Result<Value, Rejected> {
    let version = match document.get("manifest_version") {
        _ if !document.is_object() => {
            return Err(vec![Diagnostic::new(
                "schema/type",
                "",
                format!(
                    "expected a JSON object, found {}",
                    messages::type_name(&document)
                ),
            )
            .with_help("a cookbook is one JSON object: `{ \"manifest_version\": \"1.0\", \"project\": {..}, \"containers\": {..} }`")].into())
        }
        None => {
            return Err(vec![Diagnostic::new(
                "schema/version",
                "",
                "missing required key `manifest_version`",
            )
            .with_help(format!("supported versions: {}", supported_names()))].into())
        }
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(vec![Diagnostic::new(
                "schema/version",
                "/manifest_version",
                format!(
                    "expected a version string, found {}",
                    messages::type_name(other)
                ),
            )
            .with_help(format!("supported versions: {}", supported_names()))].into())
        }
    };
    let Some(index) = VERSIONS.iter().position(|v| v.name == version) else {
        return Err(vec![Diagnostic::new(
            "schema/version",
            "/manifest_version",
            format!("unsupported manifest_version {}", excerpt(version)),
        )
        .with_help(format!("supported versions: {}", supported_names()))]
        .into());
    };

    let compiled = compiled(index);
    // `is_valid` stops early and builds no errors: the fast path for a valid cookbook. Only an
    // invalid one pays for collecting every error.
    if compiled.validator.is_valid(&document) {
        return Ok(migrate::to_latest(index, document));
    }
    let mut diagnostics: Vec<Diagnostic> = compiled
        .validator
        .iter_errors(&document)
        .flat_map(|e| messages::describe(&e, &compiled.schema, VERSIONS[index].name, LATER_KEYS))
        .collect();
    if !diagnostics.is_empty() {
        diagnostics.sort_by(|a, b| a.pointer.cmp(&b.pointer).then(a.message.cmp(&b.message)));
        diagnostics.dedup();
        return Err(Rejected {
            diagnostics,
            document: Some(migrate::to_latest(index, document)),
        });
    }
    Ok(migrate::to_latest(index, document))
}
