//! CI conventions: `--format github` of validate, apply and verify, `verify --junit`, and the
//! CI examples of docs/CI.md (`contrib/ci/*.yml`), whose `cookbook` commands are run here.
//!
//! Outputs are compared whole with the files under `tests/it/ci/` (`UPDATE_SNAPSHOTS=1`
//! rewrites them), after normalizing what differs by machine and run: the stop-commands token,
//! image and container ids in build logs, the test's registry namespace, times.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{self, Run};

fn snapshot(name: &str) -> PathBuf {
    common::repo_root().join("tests/it/ci").join(name)
}

fn check(name: &str, actual: &str, run: &Run) {
    if let Err(e) = common::check_snapshot(&snapshot(name), actual, run) {
        panic!("{e}");
    }
}

/// A copy of the shop example at `<temp>/shop`, the temp directory standing for the checkout
/// (`GITHUB_WORKSPACE`).
fn shop() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    common::copy_example("shop", &shop);
    (dir, shop)
}

fn edit(file: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
    f(&mut v);
    fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// What differs by run: the stop-commands token, ids and digests, the registry's namespace.
fn normalize(text: &str, replace: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let token = regex::Regex::new(r"::stop-commands::([0-9a-f]{32})").unwrap();
    if let Some(t) = token.captures(&text).map(|c| c[1].to_owned()) {
        text = text.replace(&t, "<token>");
    }
    let digest = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
    let text = digest.replace_all(&text, "sha256:<digest>");
    let id = regex::Regex::new(r"\b[0-9a-f]{12,64}\b").unwrap();
    id.replace_all(&text, "<id>").into_owned()
}

#[test]
fn validate_annotates_each_problem_on_its_line_and_other_commands_refuse_github() {
    let (dir, shop) = shop();
    let env = [("GITHUB_WORKSPACE", dir.path().to_str().unwrap())];
    // Two located errors, and text that needs escaping in a property and a message.
    edit(&shop.join("cookbook.json"), |v| {
        v["containers"]["api"]["base_imag"] = "x".into();
        v["containers"]["web"]["depends_on"] = serde_json::json!(["no,such:container%"]);
    });
    let invalid = common::run_in_env(&shop, &["validate", "--format", "github"], &env);
    invalid.assert_code(2);
    assert!(
        invalid.stderr.contains("2 problem(s) found"),
        "{}",
        invalid.context()
    );
    // A valid cookbook with a warning: an application no container uses.
    common::copy_example("shop", &shop);
    edit(&shop.join("cookbook.json"), |v| {
        v["applications"]["spare"] = v["applications"]["worker"].clone();
    });
    let warned = common::run_in_env(&shop, &["validate", "--format", "github"], &env);
    warned.assert_code(0);
    let actual = format!(
        "$ cookbook validate --format github   # two errors\n{}\
         $ cookbook validate --format github   # a warning\n{}",
        invalid.stdout, warned.stdout
    );
    check("validate.github", &actual, &warned);

    for args in [
        ["plan", "--format", "github"],
        ["hash", "--format", "github"],
    ] {
        let run = common::run_in(&shop, &args);
        run.assert_code(2);
        assert!(
            run.stderr.contains("invalid value 'github'"),
            "{}",
            run.context()
        );
    }
}

/// The lock `apply` would write for the sources as they are (digests made up: no registry),
/// with every container's explain document saved, so verify can say why a hash moved.
fn lock_as_applied(shop: &Path) {
    let hashes = common::run_in(shop, &["hash", "--format", "json"]);
    hashes.assert_code(0);
    let doc: Value = serde_json::from_str(&hashes.stdout).unwrap();
    let mut containers = serde_json::Map::new();
    for (name, hash) in doc["input_hashes"].as_object().unwrap() {
        let hash = hash.as_str().unwrap();
        let image = format!("127.0.0.1:5000/shop/{name}:{hash}");
        containers.insert(
            name.clone(),
            serde_json::json!({
                "input_hash": hash, "image": image, "tags": [image],
                "digest": format!("sha256:{}", "0".repeat(64)),
            }),
        );
        let explain = common::run_in(shop, &["explain", name]);
        explain.assert_code(0);
        let dir = shop.join(".cookbook/explain").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{hash}.json")), &explain.stdout).unwrap();
    }
    let lock = serde_json::json!({
        "lock_version": 1,
        "hash_version": cookbook::hash::HASH_VERSION,
        "project": "shop",
        "containers": containers,
    });
    fs::write(
        shop.join("cookbook.lock"),
        serde_json::to_string_pretty(&lock).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn verify_annotates_each_mismatch_and_writes_junit_that_parses_back() {
    let (dir, shop) = shop();
    lock_as_applied(&shop);
    // A mismatch whose reason holds every character XML and workflow commands escape.
    fs::write(shop.join("services/api/a<b>&\"c'%,:.txt"), "new\n").unwrap();
    let env = [("GITHUB_WORKSPACE", dir.path().to_str().unwrap())];
    let verify = || {
        common::run_in_env(
            &shop,
            &[
                "verify",
                "--format",
                "github",
                "--junit",
                "report/verify.xml",
            ],
            &env,
        )
    };
    let run = verify();
    // The report's directory does not exist: a path that names nothing usable, exit 2.
    run.assert_code(2);
    assert!(
        run.stderr.contains("report/verify.xml"),
        "{}",
        run.context()
    );
    fs::create_dir(shop.join("report")).unwrap();
    let run = verify();
    run.assert_code(1);
    check("verify.github", &run.stdout, &run);
    assert!(run.stderr.contains("MISMATCH  api"), "{}", run.context());

    let xml = fs::read_to_string(shop.join("report/verify.xml")).unwrap();
    let time = regex::Regex::new(r#"time="[0-9]+\.[0-9]{3}""#).unwrap();
    check(
        "verify.junit.xml",
        &time.replace_all(&xml, r#"time="<time>""#),
        &run,
    );
    let cases = junit_cases(&xml);
    let failed: Vec<_> = cases.iter().filter(|c| c.failure.is_some()).collect();
    assert_eq!(
        failed.len(),
        2,
        "api and worker (built FROM api): {cases:?}"
    );
    assert_eq!(failed[0].classname, "api");
    let failure = failed[0].failure.as_ref().unwrap();
    assert!(
        failure.contains("a<b>&\"c'%,:.txt added"),
        "the text comes back as it was: {failure}"
    );

    // Alongside JSON too, and the same document.
    let json = common::run_in(&shop, &["verify", "--format", "json", "--junit", "j.xml"]);
    json.assert_code(1);
    assert_eq!(
        time.replace_all(&fs::read_to_string(shop.join("j.xml")).unwrap(), ""),
        time.replace_all(&xml, "")
    );
}

#[derive(Debug)]
struct Case {
    classname: String,
    failure: Option<String>,
}

/// Reads a JUnit document back with an XML parser, checking the rules of the JUnit schema the
/// readers rely on: the root `testsuites`, suites of `testcase`s only, each case with a
/// `classname`, a `name` and a decimal `time`, at most one `failure` (with `message` and
/// `type`) or `skipped`, and the counts of the suite and the root equal to what it holds.
fn junit_cases(xml: &str) -> Vec<Case> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut counts: Vec<(String, [usize; 3])> = Vec::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    let mut text = String::new();
    loop {
        let event = reader.read_event().expect("well-formed XML");
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = e.name().as_ref().to_owned();
            let attrs: std::collections::BTreeMap<String, String> = e
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                        .unwrap();
                    (a.key.as_ref().to_owned(), value.into_owned())
                })
                .collect();
            let parent = path.last().map(String::as_str);
            match (parent, name.as_str()) {
                (None, "testsuites") | (Some("testsuites"), "testsuite") => {
                    let n = |k: &str| attrs[k].parse::<usize>().unwrap();
                    assert_eq!(attrs["errors"], "0");
                    attrs["time"].parse::<f64>().unwrap();
                    counts.push((name.clone(), [n("tests"), n("failures"), n("skipped")]));
                }
                (Some("testsuite"), "testcase") => {
                    assert!(!attrs["classname"].is_empty() && !attrs["name"].is_empty());
                    attrs["time"].parse::<f64>().unwrap();
                    tests += 1;
                    cases.push(Case {
                        classname: attrs["classname"].clone(),
                        failure: None,
                    });
                }
                (Some("testcase"), "failure") => {
                    assert!(attrs.contains_key("message") && attrs.contains_key("type"));
                    failures += 1;
                }
                (Some("testcase"), "skipped") => skipped += 1,
                other => panic!("unexpected element {other:?} in\n{xml}"),
            }
            if !empty {
                path.push(name);
            }
            continue;
        }
        match event {
            Event::Text(t) => text.push_str(&t.xml_content(quick_xml::XmlVersion::Explicit1_0)),
            Event::GeneralRef(r) => {
                let name = r.into_inner();
                text.push_str(match name.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                });
            }
            Event::End(e) => {
                if e.name().as_ref() == "failure" {
                    cases.last_mut().unwrap().failure = Some(std::mem::take(&mut text));
                }
                text.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty());
    assert_eq!(counts.len(), 2, "one testsuites, one testsuite");
    for (element, count) in counts {
        assert_eq!(count, [tests, failures, skipped], "the counts of {element}");
    }
    cases
}

#[test]
fn apply_folds_build_output_and_annotates_the_failed_build_on_its_line() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let (dir, shop) = shop();
    let namespace = common::unique("ci-apply-");
    let registry = format!("{registry}/{namespace}");
    edit(&shop.join("cookbook.json"), |v| {
        v["packaging"]["registry"] = registry.clone().into();
        v["applications"]["api"]["build_commands"] =
            serde_json::json!(["echo '::error::from the build' && exit 3"]);
    });
    let env = [
        ("GITHUB_WORKSPACE", dir.path().to_str().unwrap()),
        ("CI", "true"),
    ];
    let run = common::run_in_env(&shop, &["apply", "--format", "github", "-j", "1"], &env);
    run.assert_code(1);
    assert!(run.stderr.contains("[api] FAILED"), "{}", run.context());
    assert!(
        !run.stderr.contains("[api] | "),
        "the log is in the group, not on stderr: {}",
        run.context()
    );
    // The engine's own lines (its layer cache, its warnings, intermediate containers) depend
    // on what it built before: the steps and the annotation do not.
    let steps: String = (run.stdout.lines())
        .filter(|l| !l.starts_with(" ---> ") && !l.starts_with("Removing intermediate"))
        .map(|l| format!("{l}\n"))
        .collect();
    let actual = normalize(&steps, &[(registry.as_str(), "<registry>")]);
    check("apply.github", &actual, &run);
}

/// The `cookbook …` lines of a CI file's steps (GitHub's `run:`, GitLab's `script:`), and the
/// variables set for them (`env:`, `variables:`).
fn ci_commands(file: &str) -> (Vec<String>, Vec<(String, String)>) {
    let text = fs::read_to_string(common::repo_root().join("contrib/ci").join(file)).unwrap();
    let doc: Value = yaml_serde::from_str(&text).unwrap();
    let mut lines = Vec::new();
    let mut vars = Vec::new();
    let mut take_vars = |v: &Value| {
        for (k, v) in v.as_object().into_iter().flatten() {
            vars.push((k.clone(), v.as_str().unwrap().to_owned()));
        }
    };
    let mut take_lines = |s: &str| {
        lines.extend(
            s.lines()
                .map(str::trim)
                .filter(|l| l.starts_with("cookbook "))
                .map(str::to_owned),
        )
    };
    for job in doc.as_object().unwrap().values() {
        // GitHub: jobs.<id>.env and steps[].run; GitLab: <job>.variables and script.
        for job in job.as_object().into_iter().flat_map(|j| j.values()) {
            take_vars(&job["env"]);
            for step in job["steps"].as_array().into_iter().flatten() {
                take_vars(&step["env"]);
                take_lines(step["run"].as_str().unwrap_or_default());
            }
        }
        take_vars(&job["variables"]);
        for line in job["script"].as_array().into_iter().flatten() {
            take_lines(line.as_str().unwrap());
        }
    }
    (lines, vars)
}

#[test]
fn the_ci_examples_commands_run_against_the_example_cookbook() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_owned();
    for (file, expected) in [
        (
            "github-actions.yml",
            &["cookbook-verify.xml", "apply-plan.json"][..],
        ),
        ("gitlab-ci.yml", &["cookbook-verify.xml", "apply.json"][..]),
    ] {
        let (lines, vars) = ci_commands(file);
        assert!(lines.len() >= 3, "{file}: {lines:?}");
        let (dir, shop) = shop();
        // GitLab's dind service: an engine of the test's own serving TLS as dind does
        // (`--tlsverify` on TCP, the client's ca.pem, cert.pem and key.pem in one directory),
        // reached through the file's own DOCKER_* variables with only the service's address
        // and the certificates' directory swapped for the test's.
        let dind = vars
            .iter()
            .any(|(k, _)| k == "DOCKER_TLS_VERIFY")
            .then(crate::remote_engine::TlsSetup::start);
        assert_eq!(
            dind.is_some(),
            file == "gitlab-ci.yml",
            "{file}: only GitLab's example speaks TLS to dind"
        );
        let namespace = common::unique("ci-example-");
        edit(&shop.join("cookbook.json"), |v| {
            v["packaging"]["registry"] = format!("{registry}/{namespace}").into();
        });
        for line in &lines {
            let mut command = std::process::Command::new("sh");
            command
                .args(["-c", line])
                .current_dir(&shop)
                .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
                .env("CI", "true")
                .env("GITHUB_WORKSPACE", &shop)
                .env_remove("COOKBOOK_FILE");
            for (k, v) in &vars {
                match (k.as_str(), &dind) {
                    ("DOCKER_HOST", Some(dind)) => {
                        assert_eq!(v, "tcp://docker:2376", "{file}: dind's TLS address");
                        command.env(k, &dind.host);
                    }
                    ("DOCKER_CERT_PATH", Some(dind)) => {
                        command.env(
                            k,
                            dind.cert_dir(&dir.path().join("certs/client"), false, true),
                        );
                    }
                    // The service's own variable: where dind writes its certificates.
                    ("DOCKER_TLS_CERTDIR", _) => {}
                    _ => {
                        command.env(k, v);
                    }
                }
            }
            let out = command.output().unwrap();
            assert!(
                out.status.success(),
                "{file}: `{line}` failed ({:?})\n--- stdout\n{}--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for report in expected {
            assert!(shop.join(report).is_file(), "{file} leaves {report}");
        }
        if let Some(dind) = &dind {
            assert!(
                !dind.engine.project_images("shop").is_empty(),
                "{file}: the images were built on the TLS engine"
            );
        }
        let cases = junit_cases(&fs::read_to_string(shop.join("cookbook-verify.xml")).unwrap());
        assert_eq!(cases.len(), 8, "4 containers × input hash and registry");
        assert!(cases.iter().all(|c| c.failure.is_none()), "{cases:?}");
        assert!(
            shop.join(".cookbook-cache").is_dir(),
            "{file}: COOKBOOK_CACHE_DIR is the directory the file caches"
        );
    }
}

#[test]
fn docs_ci_includes_the_example_files_verbatim() {
    let doc = fs::read_to_string(common::repo_root().join("docs/CI.md")).unwrap();
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = fs::read_to_string(common::repo_root().join("contrib/ci").join(file)).unwrap();
        let block = format!("```yaml\n{text}```\n");
        assert!(
            doc.contains(&block),
            "docs/CI.md must hold contrib/ci/{file} verbatim in a ```yaml block"
        );
    }
}
