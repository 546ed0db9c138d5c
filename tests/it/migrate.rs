//! `cookbook migrate` and format 1.1: every valid 1.0 cookbook (the fixtures and the examples)
//! migrates to 1.1, validates as 1.1, keeps every input hash, and changes in nothing but its
//! version; migrating again changes nothing. A 1.1 cookbook with every lifecycle key validates.

use crate::common;

use std::path::{Path, PathBuf};

use common::{copy_example, repo_root, run_in};

/// Every valid 1.0 cookbook, each copied into its own directory (with the files it names) so
/// that it can be rewritten and hashed: (display name, directory, file name).
fn valid_1_0() -> Vec<(String, tempfile::TempDir, String)> {
    let mut all = Vec::new();
    let fixtures = repo_root().join("tests/fixtures/valid");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixtures, dir.path());
        all.push((format!("fixtures/valid/{name}"), dir, name));
    }
    for example in ["shop", "example-api"] {
        let dir = tempfile::tempdir().unwrap();
        copy_example(example, dir.path());
        if example == "shop" {
            one_point_zero_core(&dir.path().join("cookbook.json"));
        }
        all.push((
            format!("cookbooks/{example}"),
            dir,
            "cookbook.json".to_owned(),
        ));
    }
    assert!(all.len() >= 8, "too few cookbooks found");
    all
}

/// shop is in format 1.1: its 1.0 core (no stages, local site, health checks or stop graces) is
/// what a 1.0 author had, and what must migrate keeping its hashes.
fn one_point_zero_core(file: &Path) {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    doc["manifest_version"] = "1.0".into();
    doc["$schema"] = "https://cookbook.invalid/schemas/cookbook-1.0.schema.json".into();
    doc.as_object_mut().unwrap().remove("lifecycle");
    for container in doc["containers"].as_object_mut().unwrap().values_mut() {
        let container = container.as_object_mut().unwrap();
        container.remove("health");
        container.remove("stop_grace");
    }
    doc["federation"]["sites"]
        .as_object_mut()
        .unwrap()
        .remove("local");
    std::fs::write(file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest: PathBuf = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The `hash` answer (exit code and document) for `file` in `dir`, or for `stdin` given as the
/// cookbook: then the directory, and so every build context (which may hold the cookbook file
/// itself), stays exactly as it was. The stat cache lives outside `dir`, for the same reason.
/// Some fixtures name source directories that are not there: their answer, a refusal, must not
/// change either.
fn hash_answer(dir: &Path, file: &str, stdin: Option<&str>) -> (Option<i32>, String) {
    use std::io::Write;
    let cache = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args([
            "-f",
            stdin.map_or(file, |_| "-"),
            "hash",
            "--format",
            "json",
        ])
        .current_dir(dir)
        .env("COOKBOOK_CACHE_DIR", cache.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = stdin.map(str::to_owned);
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = text {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

fn hashes(dir: &Path, file: &str) -> String {
    let (code, document) = hash_answer(dir, file, None);
    assert_eq!(code, Some(0), "{document}");
    document
}

#[test]
fn every_valid_1_0_cookbook_migrates_keeping_its_hashes() {
    let mut hashed = 0;
    for (what, dir, file) in valid_1_0() {
        let dir = dir.path();
        let before = std::fs::read_to_string(dir.join(&file)).unwrap();
        assert!(before.contains("\"1.0\""), "{what} is not a 1.0 cookbook");
        let hashes_before = hash_answer(dir, &file, None);
        hashed += usize::from(hashes_before.0 == Some(0));

        // Printed: the same text, the version (and a bundled $schema) renamed, nothing else.
        let printed = run_in(dir, &["-f", &file, "migrate"]);
        printed.assert_code(0);
        let expected = before
            .replacen(
                "\"manifest_version\": \"1.0\"",
                "\"manifest_version\": \"1.1\"",
                1,
            )
            .replacen("cookbook-1.0.schema.json", "cookbook-1.1.schema.json", 1);
        assert_eq!(printed.stdout, expected, "{what}\n{}", printed.context());
        assert_eq!(std::fs::read_to_string(dir.join(&file)).unwrap(), before);

        // Written: then it is a 1.1 cookbook with the same hashes.
        let written = run_in(dir, &["-f", &file, "migrate", "--write"]);
        written.assert_code(0);
        assert_eq!(
            written.stderr,
            format!("{file}: migrated from 1.0 to 1.1\n"),
            "{what}"
        );
        assert_eq!(std::fs::read_to_string(dir.join(&file)).unwrap(), expected);
        // Hashed from the same file name: the cookbook file itself never enters a context, so
        // only its name matters, and it is the same.
        let hashes_after = hash_answer(dir, &file, None);
        if hashes_before.0 == Some(0) {
            assert_eq!(hashes_after, hashes_before, "{what}: hashes changed");
        } else {
            assert_eq!(hashes_after.0, hashes_before.0, "{what}");
        }
        let validated = run_in(dir, &["-f", &file, "validate"]);
        validated.assert_code(0);
        assert!(
            validated
                .stderr
                .starts_with(&format!("{file}: ok (format 1.1, ")),
            "{what}\n{}",
            validated.context()
        );

        // Again: nothing changes, and the file is not rewritten.
        let again = run_in(dir, &["-f", &file, "migrate", "--write"]);
        again.assert_code(0);
        assert_eq!(
            again.stderr,
            format!("{file}: already format 1.1, unchanged\n")
        );
        assert_eq!(std::fs::read_to_string(dir.join(&file)).unwrap(), expected);
        let printed = run_in(dir, &["-f", &file, "migrate"]);
        assert_eq!(printed.stdout, expected, "{what}");
    }
    // The examples and the fixtures with their sources present really were hashed.
    assert!(hashed >= 3, "only {hashed} cookbooks hashed");
}

#[test]
fn migrate_refusals() {
    let dir = tempfile::tempdir().unwrap();
    copy_example("shop", dir.path());
    let run = run_in(dir.path(), &["migrate", "--to", "2.0"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown format version `2.0`\n  help: versions: 1.0, 1.1\n"
    );
    run_in(dir.path(), &["migrate", "--write"]).assert_code(0);
    let run = run_in(dir.path(), &["migrate", "--to", "1.0"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: cannot migrate from 1.1 down to 1.0\n  help: migrations only go forward; keep the file as it is\n"
    );
    // An invalid cookbook is not migrated: its problems are reported as `validate` does.
    std::fs::write(
        dir.path().join("cookbook.json"),
        "{\"manifest_version\": \"1.0\"}",
    )
    .unwrap();
    let run = run_in(dir.path(), &["migrate"]);
    run.assert_code(2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("missing required key `containers`"),
        "{}",
        run.context()
    );
}

/// `migrate --write` replaces the cookbook as an editor would: a cookbook that is a symlink stays
/// one (its target rewritten), and the file keeps its mode.
#[test]
fn migrate_write_keeps_a_symlinked_cookbook_a_symlink_and_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    copy_example("shop", dir.path());
    let file = dir.path().join("cookbook.json");
    one_point_zero_core(&file);
    let real = dir.path().join("cookbooks/shop.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(&file, &real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("cookbooks/shop.json", &file).unwrap();
    run_in(dir.path(), &["migrate", "--write"]).assert_code(0);
    assert!(std::fs::symlink_metadata(&file)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.contains("\"manifest_version\": \"1.1\""), "{text}");
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_1_1_cookbook_with_every_lifecycle_key_validates() {
    let dir = repo_root().join("tests/fixtures/valid-1.1");
    let run = run_in(&dir, &["-f", "lifecycle.json", "validate"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        "lifecycle.json: ok (format 1.1, 5 containers in 3 waves, 1 application, 2 sites)\n"
    );
    // Runtime settings are not hashed: removing them all (health, stop grace, capabilities, pods, volumes,
    // secrets, ingress) leaves every input hash as it was.
    let text = std::fs::read_to_string(dir.join("lifecycle.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("srv")).unwrap();
    std::fs::write(tmp.path().join("srv/index.html"), "hello\n").unwrap();
    std::fs::create_dir(tmp.path().join("keys")).unwrap();
    std::fs::copy(
        dir.join("keys/alice.pub"),
        tmp.path().join("keys/alice.pub"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("full.json"), &text).unwrap();
    doc.as_object_mut().unwrap().remove("lifecycle");
    doc.as_object_mut().unwrap().remove("federation");
    for c in doc["containers"].as_object_mut().unwrap().values_mut() {
        for key in [
            "health",
            "stop_grace",
            "require",
            "init",
            "sidecars",
            "volumes",
            "mounts",
        ] {
            c.as_object_mut().unwrap().remove(key);
        }
    }
    std::fs::write(
        tmp.path().join("bare.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    assert_eq!(
        hashes(tmp.path(), "full.json"),
        hashes(tmp.path(), "bare.json")
    );
}
