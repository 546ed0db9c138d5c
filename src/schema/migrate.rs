//! Pure migrations between format versions.
//!
//! Each version's `migrate_to_next` turns a document that passed its own schema into the next
//! version's shape; `to_latest` chains them. Today 1.0 is the only version, so the chain is empty.
//! When 1.1 arrives, its migration and fixtures (`tests/fixtures/migrate/1.0-to-1.1/`) go here.

use serde_json::Value;

use super::VERSIONS;

pub fn to_latest(from: usize, mut document: Value) -> Value {
    for version in &VERSIONS[from..] {
        if let Some(migrate) = version.migrate_to_next {
            document = migrate(document);
        }
    }
    document
}
