//! Turns jsonschema's errors into messages a cookbook author can act on.
//!
//! jsonschema's own texts echo whole values (a 50 MB string would come back) and speak in schema
//! keywords; here each error kind gets a sentence in the cookbook's terms, values are shortened,
//! and unknown keys get a "did you mean" from the keys the schema allows at that place.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;

use crate::diagnostic::{excerpt, pointer_push, Diagnostic};

const VAR_RULE: &str = "variable names are letters, digits and `_`, not starting with a digit";
const NAME_RULE: &str =
    "names are 1-128 characters of a-z, 0-9, `_`, `.` and `-`, starting with a letter or digit";

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The naming rule, and the name written that way when lower-casing and `-` for white space fix
/// it (`My App` → `my-app`).
fn name_help(name: &str) -> String {
    let fixed: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_whitespace() {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    match crate::model::Name::parse(&fixed) {
        Some(fixed) if fixed.as_str() != name => format!("{NAME_RULE}: `{fixed}` would do"),
        _ => NAME_RULE.to_owned(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => excerpt(s),
        Value::Array(_) | Value::Object(_) => type_name(value).to_owned(),
        other => other.to_string(),
    }
}

/// The keys the schema allows in the object whose `additionalProperties` keyword failed.
fn allowed_keys(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or("");
    schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, v)| **v != Value::Bool(false))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Keys that only one container kind takes: used in a container of the other kind, the help says
/// which kind the container is and why, rather than listing keys.
const GENERATED_ONLY: &[&str] = &[
    "base_image",
    "applications",
    "ports",
    "env",
    "labels",
    "workdir",
];
const DOCKERFILE_ONLY: &[&str] = &["context", "target"];

fn other_kind_help(key: &str, schema_path: &str) -> Option<String> {
    if schema_path.starts_with("/$defs/dockerfile_container/") && GENERATED_ONLY.contains(&key) {
        Some(format!(
            "`{key}` belongs to generated containers; this one has a `dockerfile` key, so it is \
             Dockerfile-based (keys: dockerfile, context, build_args, target, depends_on, ci_name, \
             ci_capabilities)"
        ))
    } else if schema_path.starts_with("/$defs/generated_container/")
        && DOCKERFILE_ONLY.contains(&key)
    {
        Some(format!(
            "`{key}` belongs to Dockerfile-based containers, which need a `dockerfile` key; \
             without one the container is generated from `base_image` and `applications`"
        ))
    } else {
        None
    }
}

/// Plural of a count and a noun: `1 item`, `2 items`.
fn count(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// The first item that appears twice in an array, for the uniqueItems message.
fn first_duplicate(value: &Value) -> Option<&Value> {
    let items = value.as_array()?;
    items
        .iter()
        .enumerate()
        .find(|(i, v)| items[..*i].contains(v))
        .map(|(_, v)| v)
}

fn suggestion(unknown: &str, allowed: &[String]) -> Option<String> {
    // The edit distance is at least the difference in length: checking that first keeps a 50 MB
    // key from costing a 50 MB × key-length distance matrix.
    allowed
        .iter()
        .filter(|k| unknown.len().abs_diff(k.len()) <= 2.max(k.len() / 4))
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!("{SUGGESTION_PREFIX}{k}{SUGGESTION_SUFFIX}"))
}

const SUGGESTION_PREFIX: &str = "did you mean `";
const SUGGESTION_SUFFIX: &str = "`?";

/// The key an unknown key's help suggests (`did you mean `applications`?` → `applications`), so
/// that a typo's consequences are not reported as problems of their own.
pub fn suggested_key(help: &str) -> Option<&str> {
    help.strip_prefix(SUGGESTION_PREFIX)?
        .strip_suffix(SUGGESTION_SUFFIX)
}

/// The diagnostics of one schema error: a sentence in the cookbook's terms, at the place the
/// error points to.
pub fn describe(
    error: &ValidationError<'_>,
    schema: &Value,
    version: &str,
    later_keys: &[(&str, &str)],
) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str().to_owned();
    let schema_path = error.schema_path().as_str();
    let instance = error.instance();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_keys(&pointer, schema_path, schema, unexpected)
        }
        ValidationErrorKind::FalseSchema => vec![not_in_version(&pointer, version, later_keys)],
        ValidationErrorKind::Required { property } => missing_key(&pointer, schema_path, property),
        ValidationErrorKind::PropertyNames { error } => {
            vec![invalid_name(&pointer, schema_path, error)]
        }
        ValidationErrorKind::Pattern { pattern } => {
            pattern_mismatch(&pointer, schema_path, instance, pattern)
        }
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => {
            no_form_matches(&pointer, schema_path, instance)
        }
        // A key of a later version kept as an empty placeholder (`"lifecycle": {}`): content
        // in it belongs to the later version.
        ValidationErrorKind::MaxProperties { limit: 0 }
            if later_keys
                .iter()
                .any(|(k, _)| pointer.strip_prefix('/') == Some(k)) =>
        {
            vec![placeholder(&pointer, version, later_keys)]
        }
        kind => {
            let (code, message) = value_mismatch(kind, instance)
                .or_else(|| out_of_bounds(kind, instance))
                .unwrap_or_else(|| ("schema/invalid", error.masked().to_string()));
            vec![Diagnostic::new(code, pointer, message)]
        }
    }
}

/// A key the schema forbids at this version (`false` schema): of a later version, when it is one.
fn not_in_version(pointer: &str, version: &str, later_keys: &[(&str, &str)]) -> Diagnostic {
    let key = pointer.rsplit('/').next().unwrap_or_default();
    let later = later_keys.iter().find(|(k, _)| *k == key);
    let d = Diagnostic::new(
        "schema/not-in-version",
        pointer.to_owned(),
        format!("`{key}` is not part of cookbook format {version}"),
    )
    .at_key();
    match later {
        Some((_, why)) => d.with_help(format!("{why}; remove it to use format {version}")),
        None => d,
    }
}

/// A later version's key with content, where this version allows only `{}`.
fn placeholder(pointer: &str, version: &str, later_keys: &[(&str, &str)]) -> Diagnostic {
    let key = &pointer[1..];
    let why = later_keys
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, why)| why);
    Diagnostic::new(
        "schema/not-in-version",
        pointer.to_owned(),
        format!("`{key}` is only an empty placeholder in cookbook format {version}"),
    )
    .at_key()
    .with_help(format!(
        "{why}; leave it empty (`\"{key}\": {{}}`) or remove it to use format {version}"
    ))
}

/// A map key that breaks its naming rule (a name, a variable name, a label key).
fn invalid_name(pointer: &str, schema_path: &str, error: &ValidationError<'_>) -> Diagnostic {
    let key = error.instance().as_str().unwrap_or_default().to_owned();
    let (what, rule) = if schema_path.contains("/$defs/var_map/") {
        ("variable name", VAR_RULE)
    } else if schema_path.contains("/$defs/label_map/") {
        ("label key", "label keys are 1-1024 characters on one line")
    } else {
        ("name", NAME_RULE)
    };
    Diagnostic::new(
        "schema/name",
        pointer_push(pointer, &key),
        format!("invalid {what} {}", excerpt(&key)),
    )
    .at_key()
    .with_help(if what == "name" {
        name_help(&key)
    } else {
        rule.to_owned()
    })
}

/// A value of the wrong type, or not one of the values allowed: code and message.
fn value_mismatch(kind: &ValidationErrorKind, instance: &Value) -> Option<(&'static str, String)> {
    Some(match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| article(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            (
                "schema/type",
                format!("expected {expected}, found {}", type_name(instance)),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let options = options
                .as_array()
                .map(|o| o.iter().map(show).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            (
                "schema/enum",
                format!("expected one of {options}; found {}", show(instance)),
            )
        }
        ValidationErrorKind::Constant { expected_value } => (
            "schema/const",
            format!(
                "expected {}, found {}",
                show(expected_value),
                show(instance)
            ),
        ),
        ValidationErrorKind::UniqueItems => (
            "schema/duplicate-item",
            match first_duplicate(instance) {
                Some(v) => format!("{} is listed twice; list each item once", show(v)),
                None => "an item is listed twice; list each item once".to_owned(),
            },
        ),
        _ => return None,
    })
}

/// A length, count or number outside its bounds: code and message.
fn out_of_bounds(kind: &ValidationErrorKind, instance: &Value) -> Option<(&'static str, String)> {
    Some(match kind {
        ValidationErrorKind::MaxLength { limit } => (
            "schema/too-long",
            format!(
                "string of {} characters is longer than the limit of {limit}",
                instance.as_str().map_or(0, |s| s.chars().count())
            ),
        ),
        ValidationErrorKind::MinLength { limit } => (
            "schema/too-short",
            if *limit == 1 {
                "expected a non-empty string, found \"\"".to_owned()
            } else {
                format!(
                    "expected a string of at least {}",
                    count(*limit, "character", "characters")
                )
            },
        ),
        ValidationErrorKind::MaxItems { limit } => {
            ("schema/too-long", format!("more than {limit} items"))
        }
        ValidationErrorKind::MinItems { limit } => (
            "schema/too-short",
            format!(
                "expected at least {}, found {}",
                count(*limit, "item", "items"),
                match instance.as_array().map_or(0, Vec::len) {
                    0 => "an empty list".to_owned(),
                    n => count(n as u64, "item", "items"),
                }
            ),
        ),
        ValidationErrorKind::MaxProperties { limit } => {
            ("schema/too-long", format!("more than {limit} keys"))
        }
        ValidationErrorKind::MinProperties { limit } => (
            "schema/too-short",
            format!(
                "expected at least {}, found {}",
                count(*limit, "entry", "entries"),
                match instance.as_object().map_or(0, serde_json::Map::len) {
                    0 => "an empty object".to_owned(),
                    n => count(n as u64, "entry", "entries"),
                }
            ),
        ),
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => (
            "schema/range",
            format!("{} is below the minimum {limit}", show(instance)),
        ),
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => (
            "schema/range",
            format!("{} is above the maximum {limit}", show(instance)),
        ),
        _ => return None,
    })
}

fn unknown_keys(
    pointer: &str,
    schema_path: &str,
    schema: &Value,
    unexpected: &[String],
) -> Vec<Diagnostic> {
    let allowed = allowed_keys(schema, schema_path);
    unexpected
        .iter()
        .map(|key| {
            let d = Diagnostic::new(
                "schema/unknown-key",
                pointer_push(pointer, key),
                format!("unknown key {}", excerpt(key)),
            )
            .at_key();
            if let Some(help) = other_kind_help(key, schema_path) {
                return d.with_help(help);
            }
            match suggestion(key, &allowed) {
                Some(help) => d.with_help(help),
                None if !allowed.is_empty() => {
                    d.with_help(format!("allowed keys here: {}", allowed.join(", ")))
                }
                None => d,
            }
        })
        .collect()
}

/// Whether `d` says that the object at `pointer` lacks `key`.
pub fn says_missing(d: &Diagnostic, pointer: &str, key: &str) -> bool {
    d.code == "schema/required" && d.pointer == pointer && d.message == missing_message(key)
}

fn missing_message(key: &str) -> String {
    format!("missing required key `{key}`")
}

fn missing_key(pointer: &str, schema_path: &str, property: &Value) -> Vec<Diagnostic> {
    let key = property.as_str().unwrap_or_default();
    let d = Diagnostic::new("schema/required", pointer.to_owned(), missing_message(key));
    vec![
        if schema_path.starts_with("/$defs/packaging/") && key == "version" {
            Diagnostic::new(
            "schema/required",
            pointer.to_owned(),
            "`tagging: \"semver\"` needs a `version`",
        )
        .with_help("add `\"version\": \"MAJOR.MINOR.PATCH\"` (e.g. \"1.4.0\") to packaging, or choose another tagging")
        } else if schema_path.starts_with("/$defs/generated_container/") {
            d.with_help(
                "a container is either generated (needs `base_image` and `applications`) \
             or Dockerfile-based (needs `dockerfile` and `context`)",
            )
        } else if schema_path.starts_with("/$defs/dockerfile_container/") && key == "context" {
            d.with_help(
                "a Dockerfile-based container names its build context directory, relative \
             to the cookbook file (`\".\"` for the cookbook's own directory)",
            )
        } else {
            d
        },
    ]
}

fn pattern_mismatch(
    pointer: &str,
    schema_path: &str,
    instance: &Value,
    pattern: &str,
) -> Vec<Diagnostic> {
    let one = |code: &'static str, message: String| {
        vec![Diagnostic::new(code, pointer.to_owned(), message)]
    };
    if schema_path.contains("/$defs/name/") {
        let d = Diagnostic::new(
            "schema/name",
            pointer.to_owned(),
            format!("invalid name {}", show(instance)),
        );
        vec![d.with_help(name_help(instance.as_str().unwrap_or_default()))]
    } else if schema_path.contains("/$defs/port/") {
        one(
            "schema/port",
            format!(
                "invalid port {}: expected `NUMBER` or `NUMBER/tcp|udp|sctp`",
                show(instance)
            ),
        )
    } else if schema_path.contains("/$defs/line/") {
        one(
            "schema/pattern",
            format!(
                "{} spans several lines; values must fit on one line",
                show(instance)
            ),
        )
    } else if schema_path.contains("/workdir/") {
        one(
            "schema/pattern",
            format!(
                "workdir {} must be an absolute path in the image",
                show(instance)
            ),
        )
    } else if schema_path.contains("/version/") {
        one(
            "schema/pattern",
            format!(
                "version {} is not a semantic version (MAJOR.MINOR.PATCH)",
                show(instance)
            ),
        )
    } else {
        one(
            "schema/pattern",
            format!("{} does not match `{pattern}`", show(instance)),
        )
    }
}

fn no_form_matches(pointer: &str, schema_path: &str, instance: &Value) -> Vec<Diagnostic> {
    let one = |code: &'static str, message: String| {
        vec![Diagnostic::new(code, pointer.to_owned(), message)]
    };
    if schema_path.contains("/$defs/port/") {
        one("schema/port", format!("invalid port {}: expected a number 1-65535, as an integer or a string `NUMBER` or `NUMBER/tcp|udp|sctp`", show(instance)))
    } else if schema_path.contains("/dependencies/") {
        one(
            "schema/type",
            format!(
                "expected an array of package specs or the path of a dependency file, found {}",
                match instance {
                    Value::String(s) if s.is_empty() => "an empty string".to_owned(),
                    Value::Array(items) => match items.iter().find(|v| !v.is_string()) {
                        Some(v) => format!("an array holding {}", type_name(v)),
                        None => "an array".to_owned(),
                    },
                    other => type_name(other).to_owned(),
                }
            ),
        )
    } else if schema_path.contains("/run_command/") {
        one(
            "schema/type",
            format!(
                "expected a command string or a non-empty array of strings, found {}",
                match instance {
                    Value::Array(items) if items.is_empty() => "an empty array".to_owned(),
                    Value::Array(items) => match items.iter().find(|v| !v.is_string()) {
                        Some(v) => format!("an array holding {}", type_name(v)),
                        None => "an array".to_owned(),
                    },
                    other => type_name(other).to_owned(),
                }
            ),
        )
    } else {
        one(
            "schema/one-of",
            format!("{} matches none of the allowed forms", show(instance)),
        )
    }
}

fn article(t: &str) -> String {
    match t {
        "array" | "object" | "integer" => format!("an {t}"),
        "null" => "null".to_owned(),
        _ => format!("a {t}"),
    }
}
