//! The front end's first half: bytes → UTF-8 text → JSON syntax → the schema of the document's
//! version (and migration to the latest) → wire types → the validated `Cookbook` (`model`) →
//! its sealed `Plan` (`graph`). Pure: the caller reads the bytes.
//!
//! Every problem of every stage is collected, then located once (line:column from the JSON
//! pointer) and sorted by position. Only unreadable text (bad UTF-8, an empty file, bad JSON) stops
//! early. A document the schema refuses still goes through the model and the plan, built from the
//! parts the schema accepted (`lenient_wire`), so that names, references, paths, cycles and
//! order show beside the schema's problems. No cascade: unknown keys are dropped, an unreadable
//! member is dropped or its entry emptied (so references to it still resolve), and a model
//! problem at a pointer the schema already reported is left to the schema's message.
//!
//! Invariant: a valid cookbook pays for none of this — no span index, no lenient pass, no
//! second deserialization.

use crate::diagnostic::{pointer_push, Diagnostic, Location};
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
/// once, each located. A cookbook without `project` is refused: only [`parse_in`] knows a
/// directory to name it after.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Vec<Diagnostic>> {
    parse_in(bytes, None)
}

/// [`parse`] for a cookbook that lies in a directory named `directory`, which names its project
/// when the cookbook names none (docker compose's rule; see `model::Name::from_directory`).
pub fn parse_in(bytes: &[u8], directory: Option<&str>) -> Result<Parsed, Vec<Diagnostic>> {
    match check(bytes, directory)? {
        Checked::Valid(parsed) => Ok(parsed),
        Checked::Invalid {
            text,
            diagnostics,
            spans,
            ..
        } => Err(finish(text, diagnostics, spans)),
    }
}

/// What the checks of a cookbook's text found.
pub(super) enum Checked<'t> {
    Valid(Parsed),
    /// Problems, unlocated (those of a stage that locates its own are located already).
    Invalid {
        text: &'t str,
        diagnostics: Vec<Diagnostic>,
        /// The model built from what was valid, for the disk checks; `None` when the text
        /// could not be read far enough to build one.
        cookbook: Option<Cookbook>,
        /// The span index, when a stage already needed it.
        spans: Option<SpanIndex>,
    },
}

/// The text of a cookbook and its JSON value: UTF-8 (after an optional byte-order mark), not
/// empty, valid JSON. Each failure is one located diagnostic: nothing later can run.
fn json_text(bytes: &[u8]) -> Result<(&str, serde_json::Value), Vec<Diagnostic>> {
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
            .with_help(
                "a cookbook is a JSON object with at least `manifest_version` and `containers`",
            )]);
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

    Ok((text, value))
}

/// Every check of the text, stopping early only where nothing later can run: bad UTF-8, an
/// empty file or bad JSON are returned located, as `Err`.
pub(super) fn check<'t>(
    bytes: &'t [u8],
    directory: Option<&str>,
) -> Result<Checked<'t>, Vec<Diagnostic>> {
    let (text, value) = json_text(bytes)?;

    // The span index (pointer → line:column) costs more than parsing; a valid cookbook needs
    // only the duplicate-key check, so the index is built only when there is a problem.
    let mut spans = None;
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    if SpanIndex::has_duplicate_keys(text) {
        let index = spans.insert(SpanIndex::scan(text));
        diagnostics.extend(duplicate_keys(text, index));
    }

    // The model reads the latest version; it reports the version the author wrote.
    let written_version = value
        .get("manifest_version")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let mut renamed = Vec::new();
    let (wire, text_valid) = wire_of(value, &mut diagnostics, &mut renamed);
    let Some(wire) = wire else {
        return Ok(Checked::Invalid {
            text,
            diagnostics,
            cookbook: None,
            spans,
        });
    };
    let (mut cookbook, mut problems) = model::convert(&wire, directory);
    if let Some(v) = written_version {
        cookbook.manifest_version = v;
    }
    let (plan, plan_problems) = Plan::build(&cookbook.containers, &cookbook.packaging.build_order);
    problems.extend(plan_problems);
    for p in &mut problems {
        p.pointer = written_pointer(&p.pointer, &renamed);
    }
    if !text_valid {
        // The schema said it first and better (with its help): one problem, reported once.
        problems.retain(|p| !diagnostics.iter().any(|d| d.pointer == p.pointer));
    }
    diagnostics.extend(problems);
    if diagnostics.is_empty() {
        Ok(Checked::Valid(Parsed { cookbook, plan }))
    } else {
        Ok(Checked::Invalid {
            text,
            diagnostics,
            cookbook: Some(cookbook),
            spans,
        })
    }
}

/// A located error for each key that appears twice in one object.
fn duplicate_keys<'i>(
    text: &'i str,
    index: &'i SpanIndex,
) -> impl Iterator<Item = Diagnostic> + 'i {
    index.duplicates.iter().map(move |d| {
        Diagnostic::new(
            "syntax/duplicate-key",
            d.pointer.clone(),
            "key appears twice in the same object",
        )
        .located(index.location(text, d.offset))
        .with_help("JSON parsers keep only one of the two; remove the other")
    })
}

/// The wire cookbook of a JSON document through the schema (upgraded to the latest version),
/// and whether the schema accepted it; a rejected document still gives what can be read of it
/// (for the model's further checks), its problems going to `diagnostics`.
fn wire_of(
    value: serde_json::Value,
    diagnostics: &mut Vec<Diagnostic>,
    renamed: &mut Vec<Renamed>,
) -> (Option<wire::CookbookWire>, bool) {
    match schema::check(value) {
        Ok(latest) => match serde_json::from_value::<wire::CookbookWire>(latest) {
            Ok(wire) => (Some(wire), true),
            Err(e) => {
                diagnostics.push(Diagnostic::new(
                    "schema/invalid",
                    "",
                    format!("does not match the cookbook format: {e}"),
                ));
                (None, false)
            }
        },
        Err(rejected) => {
            let wire = rejected
                .document
                .and_then(|d| lenient_wire(d, &rejected.diagnostics, renamed));
            let mut problems = rejected.diagnostics;
            // A key read as its suggestion is not missing: the typo is the one problem.
            problems.retain(|d| {
                !renamed.iter().any(|r| {
                    let (parent, key) = r.read_as.rsplit_once('/').unwrap_or_default();
                    crate::schema::says_missing(d, parent, key)
                })
            });
            diagnostics.extend(problems);
            (wire, false)
        }
    }
}

/// Locates every diagnostic of `text` (building the span index if no earlier step did), sorts
/// them by position and drops exact repeats.
pub(super) fn finish(
    text: &str,
    mut diagnostics: Vec<Diagnostic>,
    spans: Option<SpanIndex>,
) -> Vec<Diagnostic> {
    let spans = spans.unwrap_or_else(|| SpanIndex::scan(text));
    for d in &mut diagnostics {
        if d.location.is_none() {
            d.location = Some(spans.locate(text, &d.pointer, d.at_key));
        }
    }
    diagnostics
        .sort_by(|a, b| (a.location, &a.pointer, a.code).cmp(&(b.location, &b.pointer, b.code)));
    diagnostics.dedup();
    diagnostics
}

/// The wire types of a document the schema refused, built from the parts it accepted, so that
/// the model's checks (names, references, paths) and the plan's (cycles, order) still run and
/// report what the schema cannot see. Unknown keys are dropped (they mean nothing); then each
/// member the wire types cannot read is dropped in turn — a container or application is emptied
/// instead (`{}`), so that references to it still resolve and no "unknown container" follows
/// from a schema problem. A misspelt key whose "did you mean" names a key its object lacks is
/// read as that key (`Renamed`), so that one typo is one problem: `aplications` does not also
/// make every application it holds unknown. `None` when the document's skeleton itself is
/// unreadable (no `containers` object, say): the schema's problems are then all there is to say.
fn lenient_wire(
    mut document: serde_json::Value,
    schema_problems: &[Diagnostic],
    renamed: &mut Vec<Renamed>,
) -> Option<wire::CookbookWire> {
    let mut emptied: Vec<String> = Vec::new();
    for d in schema_problems {
        match d.code {
            "schema/unknown-key" => match rename_to_suggestion(&mut document, d) {
                Some(r) => renamed.push(r),
                None => {
                    remove_member(&mut document, &d.pointer);
                }
            },
            "schema/not-in-version" => {
                remove_member(&mut document, &d.pointer);
            }
            // A value of the wrong type is what the wire types cannot read: dropped at once
            // rather than one deserialization round each (a large cookbook may have many).
            "schema/type" => {
                if let Some(member) = member_of(&document, &d.pointer) {
                    drop_or_empty(&mut document, member, &mut emptied);
                }
            }
            _ => {}
        }
    }
    // Each round drops or empties one member, so the document shrinks; the bound is a guard.
    for _ in 0..1024 {
        let e = match serde_path_to_error::deserialize::<_, wire::CookbookWire>(&document) {
            Ok(wire) => return Some(wire),
            Err(e) => e,
        };
        // The member the error is in: the path up to its last key (an array is dropped whole,
        // so that no later item's index, and so its pointer, shifts).
        let mut pointer = String::new();
        let mut member = None;
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => {
                    pointer = pointer_push(&pointer, key);
                    member = Some(pointer.clone());
                }
                serde_path_to_error::Segment::Seq { index } => {
                    pointer = pointer_push(&pointer, &index.to_string());
                }
                _ => {}
            }
        }
        if !drop_or_empty(&mut document, member?, &mut emptied) {
            return None;
        }
    }
    None
}

/// Drops the member at `member`, or, for a container or application not emptied yet, empties it
/// (references to it must still resolve); whether anything changed.
fn drop_or_empty(
    document: &mut serde_json::Value,
    member: String,
    emptied: &mut Vec<String>,
) -> bool {
    let is_entry = ["/containers/", "/applications/"].iter().any(|map| {
        member
            .strip_prefix(map)
            .is_some_and(|key| !key.contains('/'))
    });
    if is_entry && !emptied.contains(&member) {
        if let Some(slot) = document.pointer_mut(&member) {
            *slot = serde_json::Value::Object(serde_json::Map::new());
        }
        emptied.push(member);
        true
    } else {
        remove_member(document, &member)
    }
}

/// The pointer of the object member that holds the value at `pointer`: the pointer itself, or
/// the array it is an item of (dropped whole, so that no later item's pointer shifts).
fn member_of(document: &serde_json::Value, pointer: &str) -> Option<String> {
    let mut value = document;
    let mut at = String::new();
    let mut member = None;
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        value = match value {
            serde_json::Value::Object(o) => {
                at = pointer_push(&at, &key);
                member = Some(at.clone());
                o.get(&key)?
            }
            serde_json::Value::Array(a) => {
                at = pointer_push(&at, &key);
                a.get(key.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    member
}

/// A misspelt key read as the key its "did you mean" suggests: both as JSON pointers.
pub(super) struct Renamed {
    written: String,
    read_as: String,
}

/// Moves the member at an unknown key's pointer to the key its help suggests, when its object
/// has no member of that name yet.
fn rename_to_suggestion(document: &mut serde_json::Value, d: &Diagnostic) -> Option<Renamed> {
    let suggested = crate::schema::suggested_key(d.help.as_deref()?)?;
    let (parent, key) = d.pointer.rsplit_once('/')?;
    let key = key.replace("~1", "/").replace("~0", "~");
    let object = document.pointer_mut(parent)?.as_object_mut()?;
    if object.contains_key(suggested) {
        return None;
    }
    let value = object.remove(&key)?;
    object.insert(suggested.to_owned(), value);
    Some(Renamed {
        written: d.pointer.clone(),
        read_as: pointer_push(parent, suggested),
    })
}

/// `pointer` as the author wrote it: under a misspelt key when it points into what was read as
/// the suggested one.
fn written_pointer(pointer: &str, renamed: &[Renamed]) -> String {
    for r in renamed {
        if let Some(rest) = pointer.strip_prefix(r.read_as.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{}{rest}", r.written);
            }
        }
    }
    pointer.to_owned()
}

/// Removes the object member at `pointer`; whether there was one.
fn remove_member(document: &mut serde_json::Value, pointer: &str) -> bool {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    document
        .pointer_mut(parent)
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|o| o.remove(&key))
        .is_some()
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::model::lifecycle::Target;
    use crate::model::EngineSpec;

    fn cookbook(packaging: &str, docker: &str) -> Result<Parsed, Vec<Diagnostic>> {
        parse(
            format!(
                r#"{{
                  "manifest_version": "1.1",
                  "project": {{ "name": "p" }},
                  "packaging": {{ "registry": "127.0.0.1:5000/p" {packaging} }},
                  "applications": {{ "a": {{}} }},
                  "containers": {{ "c": {{ "base_image": "b", "applications": ["a"] }} }},
                  "lifecycle": {{ "stages": ["dev"] }},
                  "federation": {{ "sites": {{
                    "here": {{ "containers": ["c"], "stages": ["dev"],
                              "target": {{ "docker": {docker} }} }}
                  }} }}
                }}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn a_site_names_its_engine_by_host_with_tls_or_by_context() {
        let parsed = cookbook(
            "",
            r#"{ "host": "tcp://127.0.0.1:2376", "tls": { "ca": "ca.pem", "cert": "c.pem", "key": "k.pem" } }"#,
        )
        .unwrap();
        let Some(Target::Docker(spec)) = &parsed.cookbook.lifecycle.sites["here"].target else {
            panic!("a docker target");
        };
        assert_eq!(spec.host.as_deref(), Some("tcp://127.0.0.1:2376"));
        let tls = spec.tls.as_ref().unwrap();
        assert!(tls.verify);
        assert_eq!(tls.key.as_deref(), Some("k.pem"));

        let parsed = cookbook("", r#"{ "context": "big-builder" }"#).unwrap();
        assert_eq!(
            parsed.cookbook.lifecycle.sites["here"].target,
            Some(Target::Docker(EngineSpec {
                context: Some("big-builder".into()),
                ..EngineSpec::default()
            }))
        );
    }

    #[test]
    fn a_site_with_both_or_neither_or_tls_on_a_context_is_refused() {
        for docker in [
            r#"{ "host": "env", "context": "x" }"#,
            r#"{}"#,
            r#"{ "context": "x", "tls": { "ca": "ca.pem" } }"#,
            r#"{ "host": "tcp://h:1", "tls": { "cert": "c.pem" } }"#,
        ] {
            let errors = cookbook("", docker).map(|_| ()).unwrap_err();
            assert!(
                errors.iter().any(|d| d.pointer.contains("/target/docker")),
                "{docker}: {errors:?}"
            );
        }
    }

    #[test]
    fn builders_are_named_as_written_else_by_context_or_host() {
        let parsed = cookbook(
            r#", "builders": [ { "name": "one", "host": "ssh://b@10.0.0.1" }, { "context": "two" }, { "host": "tcp://10.0.0.3:2375" } ]"#,
            r#"{ "host": "env" }"#,
        )
        .unwrap();
        let names: Vec<&str> = parsed
            .cookbook
            .packaging
            .builders
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(names, ["one", "two", "tcp://10.0.0.3:2375"]);
        let errors = cookbook(
            r#", "builders": [ { "name": "x" } ]"#,
            r#"{ "host": "env" }"#,
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            errors
                .iter()
                .any(|d| d.pointer.contains("/packaging/builders/0")),
            "{errors:?}"
        );
    }
}

/// Format 1.1's pod checks (`model::pod`), through the whole front end: the core cannot call it.
#[cfg(test)]
mod pod_refusals {
    /// The problems (`code pointer`) of the cookbook made of `containers`, `stage` (the dev
    /// stage's container settings) and `site` (its containers).
    fn problems(containers: &str, stage: &str, site: &str) -> Vec<String> {
        let text = format!(
            r#"{{"manifest_version": "1.1", "project": {{"name": "p"}},
              "packaging": {{"registry": "r/p"}}, "applications": {{"a": {{}}}},
              "containers": {containers},
              "lifecycle": {{"stages": ["dev"], "stage_config": {{"dev": {{"containers": {stage}}}}}}},
              "federation": {{"sites": {{"s": {{"containers": {site}}}}}}}}}"#
        );
        match crate::load::parse(text.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(ds) => ds
                .iter()
                .map(|d| format!("{} {}", d.code, d.pointer))
                .collect(),
        }
    }

    const PODS: &str = r#"{
      "m": {"base_image": "b", "applications": ["a"], "ports": [80],
            "init": ["i"], "sidecars": ["sc"], "volumes": {"v": {}, "d": {"persistent": true}},
            "mounts": {"v": "/v", "d": "/d"}},
      "i": {"base_image": "b", "applications": ["a"], "mounts": {"v": "/data"}},
      "sc": {"base_image": "b", "applications": ["a"]},
      "other": {"base_image": "b", "applications": ["a"]}
    }"#;

    #[test]
    fn a_valid_pod_passes() {
        assert_eq!(problems(PODS, "{}", r#"["m"]"#), Vec::<String>::new());
        assert_eq!(
            problems(
                PODS,
                r#"{"i": {"env": {"K": {"secret": "s/k"}}}, "m": {"ingress": {"host": "x.example", "tls_secret": "x-tls"}}}"#,
                r#"["m"]"#
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn members_run_only_inside_their_pods() {
        assert_eq!(
            problems(PODS, "{}", r#"["m", "sc"]"#),
            vec!["model/pod /federation/sites/s/containers/1"]
        );
        let depends = PODS.replace(
            r#""other": {"base_image": "b", "applications": ["a"]}"#,
            r#""other": {"base_image": "b", "applications": ["a"], "depends_on": ["i"]}"#,
        );
        assert_eq!(
            problems(&depends, "{}", r#"["m"]"#),
            vec!["model/pod /containers/other/depends_on/0"]
        );
        let nested = PODS.replace(
            r#""sc": {"base_image": "b", "applications": ["a"]}"#,
            r#""sc": {"base_image": "b", "applications": ["a"], "sidecars": ["other"]}"#,
        );
        assert_eq!(
            problems(&nested, "{}", r#"["m"]"#),
            vec!["model/pod /containers/sc"]
        );
        let unknown = PODS.replace(r#""init": ["i"]"#, r#""init": ["i", "nope"]"#);
        assert_eq!(
            problems(&unknown, "{}", r#"["m"]"#),
            vec!["model/unknown-container /containers/m/init/1"]
        );
    }

    #[test]
    fn mounts_volumes_replicas_and_ingress_are_checked() {
        let bad_mount = PODS.replace(r#""mounts": {"v": "/data"}"#, r#""mounts": {"w": "/data"}"#);
        assert_eq!(
            problems(&bad_mount, "{}", r#"["m"]"#),
            vec!["model/mount /containers/i/mounts/w"]
        );
        assert_eq!(
            problems(PODS, r#"{"m": {"replicas": 2}}"#, r#"["m"]"#),
            vec!["model/volume /lifecycle/stage_config/dev/containers/m/replicas"]
        );
        assert_eq!(
            problems(PODS, r#"{"sc": {"ports": ["8080:80"]}}"#, r#"["m"]"#),
            vec!["model/pod /lifecycle/stage_config/dev/containers/sc/ports"]
        );
        assert_eq!(
            problems(
                PODS,
                r#"{"m": {"ingress": {"host": "x.example", "port": 81}}}"#,
                r#"["m"]"#
            ),
            vec!["model/ingress /lifecycle/stage_config/dev/containers/m/ingress/port"]
        );
        assert_eq!(
            problems(
                PODS,
                r#"{"other": {"ingress": {"host": "x.example"}}}"#,
                r#"["m"]"#
            ),
            vec!["model/ingress /lifecycle/stage_config/dev/containers/other/ingress"]
        );
        // A bad reference is the schema's; a key of `..` only the model's.
        let bad = problems(
            PODS,
            r#"{"m": {"env": {"K": {"secret": "s/.."}}}}"#,
            r#"["m"]"#,
        );
        assert_eq!(
            bad,
            vec!["model/secret /lifecycle/stage_config/dev/containers/m/env/K/secret"]
        );
        assert!(!problems(
            PODS,
            r#"{"m": {"env": {"K": {"secret": "S/k"}}}}"#,
            r#"["m"]"#
        )
        .is_empty());
    }
}

#[cfg(test)]
mod typo_tests {
    use super::*;

    fn problems(text: &str) -> Vec<(String, &'static str, String)> {
        parse(text.as_bytes())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let at = d
                    .location
                    .map_or_else(String::new, |l| format!("{}:{}", l.line, l.column));
                (d.pointer, d.code, at)
            })
            .collect()
    }

    #[test]
    fn a_misspelt_top_level_key_is_one_problem_not_two() {
        let text = r#"{
  "manifest_version": "1.0",
  "project": {"name": "x"},
  "aplications": {"api": {"language": "python", "source": "src"}},
  "containers": {"a": {"base_image": "python:3.12-slim", "applications": ["api"]}}
}"#;
        assert_eq!(
            problems(text),
            [(
                "/aplications".to_owned(),
                "schema/unknown-key",
                "4:3".to_owned()
            )]
        );
    }

    #[test]
    fn a_problem_inside_a_misspelt_key_is_located_where_it_was_written() {
        // Read as `containers`, the cycle is still found, and located in `contaners`.
        let text = r#"{
  "manifest_version": "1.0",
  "project": {"name": "x"},
  "contaners": {
    "a": {"base_image": "scratch", "depends_on": ["b"]},
    "b": {"base_image": "scratch", "depends_on": ["a"]}
  }
}"#;
        let found = problems(text);
        assert!(
            found
                .iter()
                .any(|(p, c, _)| p == "/contaners" && *c == "schema/unknown-key"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .filter(|(_, c, _)| *c != "schema/unknown-key")
                .all(|(p, _, at)| p.starts_with("/contaners/") && !at.is_empty()),
            "{found:?}"
        );
    }

    #[test]
    fn a_misspelt_key_beside_the_right_one_is_dropped() {
        let text = r#"{
  "manifest_version": "1.0",
  "project": {"name": "x"},
  "applications": {"api": {"language": "python", "source": "src"}},
  "aplications": {"web": {"language": "python", "source": "web"}},
  "containers": {"a": {"base_image": "python:3.12-slim", "applications": ["api"]}}
}"#;
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "schema/unknown-key");
    }
}
