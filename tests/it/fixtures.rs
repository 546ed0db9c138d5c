//! Every cookbook in `tests/fixtures/valid/` validates; every one in `tests/fixtures/invalid/` is
//! refused with exit code 2 and exactly the messages in the `.stderr` snapshot beside it.
//!
//! The binary runs with the fixture's directory as its working directory, so messages name the
//! file as a user who typed `cookbook -f NAME.json validate` would see it. The directory holds
//! the trees the fixtures name (`api/`, `db/Dockerfile`, …): the disk checks run beside the
//! text's, so a path a fixture does not mean to be missing must exist.

use crate::common;

use std::path::{Path, PathBuf};

use common::{check_snapshot, repo_root, run_in};

fn fixtures(kind: &str) -> (PathBuf, Vec<String>) {
    let dir = repo_root().join("tests/fixtures").join(kind);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").file_name())
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixtures in {}", dir.display());
    (dir, names)
}

#[test]
fn valid_fixtures_validate() {
    let (dir, names) = fixtures("valid");
    for name in &names {
        let run = run_in(&dir, &["-f", name, "validate"]);
        run.assert_code(0);
        assert!(
            run.stderr.starts_with(&format!("{name}: ok (format 1.0, ")),
            "unexpected report\n{}",
            run.context()
        );
    }
}

#[test]
fn valid_fixtures_plan_in_every_format() {
    let (dir, names) = fixtures("valid");
    for name in &names {
        for format in ["text", "json", "dot"] {
            let run = run_in(&dir, &["-f", name, "plan", "--format", format]);
            run.assert_code(0);
            assert!(!run.stdout.is_empty(), "empty plan\n{}", run.context());
        }
    }
}

#[test]
fn invalid_fixtures_fail_with_their_snapshot() {
    let (dir, names) = fixtures("invalid");
    let mut failures = Vec::new();
    for name in &names {
        let run = run_in(&dir, &["-f", name, "validate"]);
        run.assert_code(2);
        assert!(
            run.stdout.is_empty(),
            "validate wrote to stdout\n{}",
            run.context()
        );
        let snapshot = Path::new(&dir).join(name.replace(".json", ".stderr"));
        if let Err(e) = check_snapshot(&snapshot, &run.stderr, &run) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} snapshots differ:\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}

/// Every snapshot belongs to a fixture: a renamed fixture must not leave a stale snapshot behind.
#[test]
fn no_orphan_snapshots() {
    let (dir, names) = fixtures("invalid");
    for entry in std::fs::read_dir(&dir).expect("list fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if let Some(stem) = name.strip_suffix(".stderr") {
            assert!(
                names.contains(&format!("{stem}.json")),
                "{name} has no {stem}.json beside it in {}",
                dir.display()
            );
        }
    }
}

/// Each error line is located and names what it is about: `file:line:col: error[code]: ...`.
#[test]
fn invalid_snapshots_are_located() {
    let (dir, names) = fixtures("invalid");
    for name in &names {
        let snapshot = dir.join(name.replace(".json", ".stderr"));
        let Ok(text) = std::fs::read_to_string(&snapshot) else {
            continue; // reported by invalid_fixtures_fail_with_their_snapshot
        };
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("  help: ") && !l.starts_with("error: "))
            .collect();
        assert!(!errors.is_empty(), "{}: no diagnostics", snapshot.display());
        for line in errors {
            let rest = line
                .strip_prefix(&format!("{name}:"))
                .unwrap_or_else(|| panic!("{}: not located: {line}", snapshot.display()));
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
                "{}: no line:column in: {line}",
                snapshot.display()
            );
            assert!(
                line.contains(": error["),
                "{}: no error code in: {line}",
                snapshot.display()
            );
        }
        assert!(
            text.ends_with("problem(s) found\n"),
            "{}: no summary line",
            snapshot.display()
        );
    }
}

/// The cycle is named whole, through either kind of edge.
#[test]
fn cycles_are_named_whole() {
    let (dir, _) = fixtures("invalid");
    for (name, chain) in [
        ("cycle-depends-on.json", "api → db → web → api"),
        ("cycle-base.json", "a → b → c → a"),
        ("cycle-mixed.json", "api → db → worker → api"),
        ("cycle-self.json", "loop → loop"),
    ] {
        let run = run_in(&dir, &["-f", name, "validate"]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("error[plan/cycle]: /containers/"),
            "no cycle error\n{}",
            run.context()
        );
        assert!(
            run.stderr.contains(&format!("dependency cycle: {chain}\n")),
            "cycle {chain} not named\n{}",
            run.context()
        );
    }
}
