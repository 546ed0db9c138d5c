//! Bad input of any kind gets a located error and exit code 2: never a panic, a stack overflow, a
//! hang, or a 50 MB echo. The inputs are generated into a temp dir (never committed), and every
//! run has a deadline (`common::run_in`) so that a hang fails the test instead of the CI job.

use crate::common;

use std::path::Path;

use common::{run_in, Run};

const HEAD: &str = r#"{
  "manifest_version": "1.0",
  "project": { "name": "robust" },
  "containers": { "a": { "dockerfile": "Dockerfile", "context": "." } }"#;

/// Writes `bytes` as `cookbook.json` in a fresh temp dir, beside the Dockerfile that `HEAD` names
/// (the disk checks run beside the text's), and runs `validate` and `plan` on it.
fn check_refused(bytes: &[u8]) -> Vec<Run> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("cookbook.json"), bytes).expect("write cookbook");
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write Dockerfile");
    let runs = vec![
        run_in(dir.path(), &["validate"]),
        run_in(dir.path(), &["plan", "--format", "json"]),
    ];
    for run in &runs {
        run.assert_code(2);
        if run.args.iter().any(|a| a == "json") {
            // The JSON error document (README, JSON for CI): short, never an echo of the input.
            let doc: serde_json::Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|e| panic!("not a JSON document ({e})\n{}", run.context()));
            assert_eq!(doc["exit_code"], 2, "{}", run.context());
            assert!(
                run.stdout.len() < 4_000,
                "stdout is {} bytes: a value was echoed back\n{}",
                run.stdout.len(),
                run.context()
            );
        } else {
            assert!(run.stdout.is_empty(), "wrote to stdout\n{}", run.context());
        }
        assert!(
            run.stderr.contains("cookbook.json:") && run.stderr.contains(": error["),
            "no diagnostic\n{}",
            run.context()
        );
        assert!(
            run.stderr.ends_with("problem(s) found\n"),
            "no summary line\n{}",
            run.context()
        );
    }
    runs
}

/// The first diagnostic is at `cookbook.json:LINE:COL:`.
fn assert_located_at(run: &Run, line: usize, column: usize) {
    assert!(
        run.stderr
            .starts_with(&format!("cookbook.json:{line}:{column}: error[")),
        "expected a diagnostic at {line}:{column}\n{}",
        run.context()
    );
}

fn assert_short(run: &Run) {
    assert!(
        run.stderr.len() < 2_000,
        "stderr is {} bytes: a value was echoed back\n{}",
        run.stderr.len(),
        run.context()
    );
}

const FIFTY_MB: usize = 50 * 1024 * 1024;

#[test]
fn fifty_megabyte_string_value_is_not_echoed() {
    let big = "x".repeat(FIFTY_MB);
    let text = format!(
        r#"{{
  "manifest_version": "1.0",
  "project": {{ "name": "{big}" }},
  "containers": {{ "a": {{ "dockerfile": "Dockerfile", "context": "." }} }}
}}"#
    );
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert_located_at(&run, 3, 24);
        assert!(
            run.stderr.contains("/project/name: invalid name \"xxxx"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn fifty_megabyte_string_in_a_free_text_field_is_refused_by_its_limit() {
    let big = "y".repeat(FIFTY_MB);
    let text =
        format!("{HEAD},\n  \"applications\": {{ \"app\": {{ \"entrypoint\": \"{big}\" }} }}\n}}");
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert_located_at(&run, 5, 44);
        assert!(
            run.stderr
                .contains("/applications/app/entrypoint: string of"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn fifty_megabyte_unknown_key_is_not_echoed() {
    let big = "k".repeat(FIFTY_MB);
    let text = format!("{HEAD},\n  \"{big}\": 1\n}}");
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert_located_at(&run, 5, 3);
    }
}

#[test]
fn fifty_megabyte_string_before_a_syntax_error_is_not_echoed() {
    let big = "z".repeat(FIFTY_MB);
    let text = format!("{HEAD},\n  \"$schema\": \"{big}\" oops\n}}");
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert!(
            run.stderr.contains("error[syntax/json]"),
            "{}",
            run.context()
        );
        assert!(
            run.stderr.starts_with("cookbook.json:5:"),
            "{}",
            run.context()
        );
    }
}

const DEPTH: usize = 100_000;

#[test]
fn deep_array_nesting() {
    let text = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert!(
            run.stderr.contains("error[syntax/json]"),
            "{}",
            run.context()
        );
        assert!(
            run.stderr.contains("nesting is limited"),
            "{}",
            run.context()
        );
        assert!(
            run.stderr.starts_with("cookbook.json:1:"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn deep_object_nesting() {
    let text = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert!(
            run.stderr.contains("nesting is limited"),
            "{}",
            run.context()
        );
        assert!(
            run.stderr.starts_with("cookbook.json:1:"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn deep_nesting_left_open() {
    for text in ["[".repeat(DEPTH), r#"{"a":"#.repeat(DEPTH)] {
        for run in check_refused(text.as_bytes()) {
            assert_short(&run);
            assert!(
                run.stderr.starts_with("cookbook.json:1:"),
                "{}",
                run.context()
            );
        }
    }
}

/// Nesting inside an otherwise valid cookbook, in a place the schema checks.
#[test]
fn deep_nesting_inside_a_cookbook() {
    let text = format!(
        "{HEAD},\n  \"applications\": {{ \"app\": {{ \"env\": {}{} }} }}\n}}",
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    for run in check_refused(text.as_bytes()) {
        assert_short(&run);
        assert!(
            run.stderr.starts_with("cookbook.json:5:"),
            "{}",
            run.context()
        );
    }
}

/// Just under the parser's limit: accepted by the parser, refused by the schema, located.
#[test]
fn nesting_just_under_the_limit_is_reported_by_the_schema() {
    let text = format!(
        "{HEAD},\n  \"applications\": {{ \"app\": {{ \"env\": {}{} }} }}\n}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    for run in check_refused(text.as_bytes()) {
        assert_located_at(&run, 5, 37);
        assert!(
            run.stderr
                .contains("/applications/app/env: expected an object, found an array"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn invalid_utf8_inside_a_string() {
    let mut bytes =
        b"{\n  \"manifest_version\": \"1.0\",\n  \"project\": { \"name\": \"ab".to_vec();
    bytes.extend_from_slice(b"\xff\xfe");
    bytes.extend_from_slice(b"\" }\n}\n");
    for run in check_refused(&bytes) {
        assert_located_at(&run, 3, 27);
        assert!(
            run.stderr.contains("error[syntax/utf8]"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn invalid_utf8_outside_a_string() {
    let mut bytes = "{\n  \"manifest_version\": \"1.0\",\n  "
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(b"\xc3\x28");
    bytes.extend_from_slice(b"\n}\n");
    for run in check_refused(&bytes) {
        assert_located_at(&run, 3, 3);
        assert!(
            run.stderr.contains("error[syntax/utf8]"),
            "{}",
            run.context()
        );
    }
}

/// A truncated multi-byte sequence at the very end, after multi-byte characters on the same line:
/// the column counts characters.
#[test]
fn invalid_utf8_at_the_end_after_multibyte_characters() {
    let mut bytes = "{\"é\": \"ü".as_bytes().to_vec();
    bytes.push(0xe2);
    for run in check_refused(&bytes) {
        assert_located_at(&run, 1, 9);
    }
}

#[test]
fn empty_file() {
    for run in check_refused(b"") {
        assert_located_at(&run, 1, 1);
        assert!(
            run.stderr.contains("error[syntax/empty]"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn whitespace_only_file() {
    for run in check_refused(b" \n\t\r\n   \n") {
        assert_located_at(&run, 1, 1);
        assert!(
            run.stderr.contains("error[syntax/empty]"),
            "{}",
            run.context()
        );
    }
}

#[test]
fn byte_order_mark_only() {
    for run in check_refused(b"\xEF\xBB\xBF") {
        assert_located_at(&run, 1, 1);
    }
}

#[test]
fn nul_bytes() {
    for run in check_refused(b"\0\0\0\0") {
        assert!(
            run.stderr.contains("error[syntax/json]"),
            "{}",
            run.context()
        );
        assert_located_at(&run, 1, 1);
    }
}

#[test]
fn non_object_top_level() {
    for (text, found) in [
        ("[]", "an array"),
        ("\"1.0\"", "a string"),
        ("42", "an integer"),
        ("4.2", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
        ("\n\n  [1, 2]", "an array"),
    ] {
        for run in check_refused(text.as_bytes()) {
            assert!(
                run.stderr.contains(&format!(
                    ": error[schema/type]: expected a JSON object, found {found}\n"
                )),
                "{}",
                run.context()
            );
            let line = text.matches('\n').count() + 1;
            let column = text
                .lines()
                .last()
                .map_or(0, |l| l.len() - l.trim_start().len())
                + 1;
            assert_located_at(&run, line, column);
        }
    }
}

/// A file that cannot be read is invalid input too, and the message names the path.
fn check_unreadable(cwd: &Path, file: &str) {
    check_unreadable_as(cwd, file, file)
}

/// As `check_unreadable`, where the message names `shown` (`-f DIR` reads `DIR/cookbook.json`).
fn check_unreadable_as(cwd: &Path, file: &str, shown: &str) {
    for args in [
        vec!["-f", file, "validate"],
        vec!["-f", file, "plan"],
        vec!["--file", file, "plan", "--format", "dot"],
    ] {
        let run = run_in(cwd, &args);
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.context());
        assert!(
            run.stderr
                .starts_with(&format!("error: cannot read {shown}: ")),
            "{}",
            run.context()
        );
        assert_short(&run);
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_unreadable(dir.path(), "nope.json");
    // No -f and no cookbook.json here or above: the message says where it looked.
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(&format!(
            "error: could not find cookbook.json in {} or any parent directory",
            dir.path().display()
        )),
        "{}",
        run.context()
    );
}

#[test]
fn directory_as_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("cookbook.json")).expect("mkdir");
    // `-f DIR` means DIR/cookbook.json, as cargo's --manifest-path takes a directory's Cargo.toml.
    check_unreadable_as(dir.path(), "cookbook.json", "cookbook.json/cookbook.json");
    check_unreadable_as(dir.path(), ".", "./cookbook.json");
}

/// A cookbook linked to `/dev/zero` is read up to the cap and refused, not read until memory
/// runs out; a FIFO is refused at once, not waited on.
#[test]
fn a_cookbook_that_never_ends_or_blocks_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("cookbook.json")).unwrap();
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for file in ["cookbook.json", "fifo.json"] {
        for args in [vec!["-f", file, "validate"], vec!["-f", file, "hash"]] {
            let run = run_in(dir.path(), &args);
            run.assert_code(2);
            assert!(
                run.stderr.starts_with(&format!(
                    "{file}:1:1: error[syntax/file]: the file cannot be read as a cookbook: not a regular file\n"
                )),
                "{}",
                run.context()
            );
            assert!(
                run.elapsed < std::time::Duration::from_secs(10),
                "{:?}",
                run.elapsed
            );
        }
    }
}
