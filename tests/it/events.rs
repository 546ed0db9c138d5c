//! Issue 23's event log, with the `shop` example against the real Docker engine: every deploy,
//! approval and rollback appends one event to `.cookbook/events.jsonl` — a first deploy `ok`, an
//! unchanged one `unchanged`, a failed one whose wave was rolled back `rolled_back` — with the
//! release, the digests it ran and who ran it; `cookbook events` prints them (JSON checked
//! against the output schema, and columns), filters by `--since` and `--kind`, and refuses a
//! `--since` it cannot read (exit 2).

use crate::common;

use common::deploy::{edit, json_answer, services, Project};
use common::{run_in, run_in_env, Run};

/// Who the commands run as, so the log's `who.user` is known.
const USER: &[(&str, &str)] = &[("USER", "events-tester")];

fn apply(p: &Project, containers: &[&str]) {
    let mut args = vec!["apply", "--no-push"];
    args.extend_from_slice(containers);
    run_in(p.path(), &args).assert_code(0);
}

fn deploy(p: &Project) -> Run {
    run_in_env(
        p.path(),
        &[
            "deploy", "--site", "local", "--stage", "dev", "--format", "json",
        ],
        USER,
    )
}

/// `cookbook events --format json ARGS…`, which must succeed, checked against the schema.
fn events(p: &Project, args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["events", "--format", "json"];
    argv.extend_from_slice(args);
    let run = run_in(p.path(), &argv);
    run.assert_code(0);
    assert_eq!(run.stderr, "", "{}", run.context());
    json_answer(&run)
}

/// (kind, outcome) of each event.
fn kinds(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, o)| (k.to_string(), o.to_string()))
        .collect()
}

fn lock_digest(p: &Project, container: &str) -> String {
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("cookbook.lock")).unwrap())
            .unwrap();
    lock["containers"][container]["image_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn deploys_an_approval_and_a_rollback_are_recorded_with_digests_and_who() {
    if !services() {
        return;
    }
    let p = Project::new("shop", "events");
    apply(&p, &[]);
    // No log yet: no events, no error.
    assert_eq!(
        events(&p, &[]),
        serde_json::json!({"events": [], "skipped": []})
    );
    let first_api = lock_digest(&p, "api");
    let first = deploy(&p);
    first.assert_code(0);
    let first = json_answer(&first);
    assert!(first.get("warnings").is_none(), "{first}");
    deploy(&p).assert_code(0);
    // A second release (a new api), then back to the first.
    std::fs::write(
        p.path().join("services/api/cgi-bin/orders"),
        "#!/bin/sh\nprintf 'Content-Type: application/json\\r\\n\\r\\n'\nprintf '{\"orders\": [], \"version\": 2}\\n'\n",
    )
    .unwrap();
    apply(&p, &["api"]);
    let second_api = lock_digest(&p, "api");
    assert_ne!(second_api, first_api);
    let second = json_answer(deploy(&p).assert_code(0));
    run_in_env(
        p.path(),
        &[
            "approve",
            "--stage",
            "prod",
            "--by",
            "alice",
            "--release",
            first["release"].as_str().unwrap(),
        ],
        USER,
    )
    .assert_code(0);
    run_in_env(
        p.path(),
        &["rollback", "--site", "local", "--stage", "dev"],
        USER,
    )
    .assert_code(0);

    let doc = events(&p, &[]);
    assert_eq!(
        kinds(&doc),
        pairs(&[
            ("deploy", "ok"),
            ("deploy", "unchanged"),
            ("deploy", "ok"),
            ("approval", "ok"),
            ("rollback", "ok"),
        ]),
        "{doc:#}"
    );
    let e = &doc["events"];
    for event in e.as_array().unwrap() {
        assert_eq!(event["who"]["user"], "events-tester", "{event}");
        assert_eq!(event["who"]["via"], "cli", "{event}");
        assert!(event["site"] == "local", "{event}");
    }
    assert_eq!(e[0]["stage"], "dev");
    assert_eq!(e[0]["release"], first["release"]);
    assert_eq!(e[0]["digests"]["api"], first_api.as_str());
    assert_eq!(
        e[0]["digests"].as_object().unwrap().len(),
        4,
        "db, api, web, worker: {}",
        e[0]
    );
    assert!(
        e[0]["message"]
            .as_str()
            .unwrap()
            .ends_with(": 4 started, 0 unchanged, 0 removed"),
        "{}",
        e[0]
    );
    assert_eq!(e[1]["release"], first["release"]);
    assert_eq!(e[2]["release"], second["release"]);
    assert_eq!(e[2]["digests"]["api"], second_api.as_str());
    // The approval names the stage it opens and the images it approves.
    assert_eq!(e[3]["stage"], "prod");
    assert_eq!(e[3]["release"], first["release"]);
    assert_eq!(e[3]["digests"]["api"], first_api.as_str());
    // The rollback ran the first release's images again.
    assert_eq!(e[4]["release"], first["release"]);
    assert_eq!(e[4]["digests"]["api"], first_api.as_str());

    // Filters: by kind, and nothing since a time to come.
    let rollbacks = events(&p, &["--kind", "rollback", "--kind", "approval"]);
    assert_eq!(
        kinds(&rollbacks),
        pairs(&[("approval", "ok"), ("rollback", "ok")])
    );
    assert_eq!(
        events(&p, &["--since", "2099-01-01T00:00:00Z"])["events"],
        serde_json::json!([])
    );
    assert_eq!(kinds(&events(&p, &["--since", "1h"])).len(), 5);
    // `--state` names the same directory outright.
    let state = p.path().join(".cookbook");
    let outright = events(&p, &["--state", state.to_str().unwrap()]);
    assert_eq!(outright, doc);

    // Columns: a header, then one aligned row per event.
    let run = run_in(p.path(), &["events", "--kind", "rollback"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.context());
    assert!(
        lines[0].starts_with("TIME ") && lines[0].contains("  KIND  "),
        "{}",
        run.stdout
    );
    let at = lines[0].find("OUTCOME").unwrap();
    assert!(lines[1][at..].starts_with("ok "), "{}", run.stdout);
    let release = &first["release"].as_str().unwrap();
    assert!(
        lines[1].contains("  local/dev  ") && lines[1].contains(release),
        "{}",
        run.stdout
    );
    assert!(lines[1].contains("events-tester (cli)"), "{}", run.stdout);
}

#[test]
fn a_failed_deploy_that_was_rolled_back_is_recorded_so() {
    if !services() {
        return;
    }
    let p = Project::new("shop", "evfail");
    apply(&p, &[]);
    let good = json_answer(deploy(&p).assert_code(0));
    // A release whose api listens elsewhere: its health check on 8080 fails.
    let serve = p.path().join("services/api/serve.sh");
    let original = std::fs::read_to_string(&serve).unwrap();
    std::fs::write(&serve, original.replace("${API_PORT:-8080}", "8081")).unwrap();
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"]["retries"] = 3.into();
    });
    apply(&p, &["api"]);
    let bad_api = lock_digest(&p, "api");
    deploy(&p).assert_code(1);
    let doc = events(&p, &["--kind", "deploy"]);
    assert_eq!(
        kinds(&doc),
        pairs(&[("deploy", "ok"), ("deploy", "rolled_back")])
    );
    let failed = &doc["events"][1];
    // The release that failed, with the images it tried, and why.
    assert_ne!(failed["release"], good["release"]);
    assert_eq!(failed["digests"]["api"], bad_api.as_str());
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("is not healthy")
            && message.contains(&format!(
                "rolled back to release {}",
                good["release"].as_str().unwrap()
            )),
        "{message}"
    );
}

#[test]
fn events_refuses_a_since_it_cannot_read_and_a_state_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &["events", "--state", ".", "--since", "last tuesday"],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: --since \"last tuesday\": neither a duration nor an RFC 3339 time\n  help: give how long ago (`30m`, `1h`, `2days`) or a time (`2026-01-31T12:00:00Z`)\n"
    );
    // With --format json, the error document.
    let run = run_in(
        dir.path(),
        &["events", "--state", ".", "--since", "x", "--format", "json"],
    );
    run.assert_code(2);
    let doc = json_answer(&run);
    assert_eq!(doc["result"], "error");
    std::fs::write(dir.path().join("file"), "").unwrap();
    let run = run_in(dir.path(), &["events", "--state", "file"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: file: not a directory (the event log lives in a state directory)\n"
    );
    // A directory without a log: nothing, and no error.
    let run = run_in(dir.path(), &["events", "--state", "."]);
    run.assert_code(0);
    assert_eq!(run.stdout, "");
    // A hand-edited line is skipped, named, and the rest still read.
    std::fs::write(
        dir.path().join("events.jsonl"),
        "not json\n{\"time\":\"2026-01-01T00:00:00Z\",\"kind\":\"deploy\",\"who\":{},\"outcome\":\"ok\"}\n",
    )
    .unwrap();
    let run = run_in(dir.path(), &["events", "--state", ".", "--format", "json"]);
    run.assert_code(0);
    let doc = json_answer(&run);
    assert_eq!(doc["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        run.stderr,
        "warning: skipped ./events.jsonl:1: not an event: expected ident at line 1 column 2\n"
    );
}

/// `git ARGS` in `dir` with no user or system configuration but an identity.
fn git(home: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn sync_deploy_records_each_stage_in_the_sync_state_with_the_revision() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = Project::new("shop", "evsync");
    let tmp = tempfile::tempdir().unwrap();
    let (home, work, state) = (
        tmp.path().join("home"),
        tmp.path().join("work"),
        tmp.path().join("state"),
    );
    std::fs::create_dir_all(&home).unwrap();
    git(
        &home,
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", "shop.git"],
    );
    git(&home, tmp.path(), &["init", "-q", "-b", "main", "work"]);
    common::copy_tree(p.path(), &work);
    let namespace = format!("{registry}/{}", common::unique("events-sync-"));
    let cookbook = std::fs::read_to_string(work.join("cookbook.json"))
        .unwrap()
        .replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    std::fs::write(work.join("cookbook.json"), cookbook).unwrap();
    git(&home, &work, &["add", "-A"]);
    git(&home, &work, &["commit", "-q", "-m", "shop"]);
    let commit = git(&home, &work, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", tmp.path().join("shop.git").display());
    git(&home, &work, &["push", "-q", &url, "main"]);
    let state_arg = state.display().to_string();
    let run = run_in_env(
        tmp.path(),
        &[
            "sync", "--remote", &url, "--state", &state_arg, "--site", "local", "--apply",
            "--deploy",
        ],
        &[("USER", "events-tester"), ("HOME", home.to_str().unwrap())],
    );
    run.assert_code(0);

    let events = run_in(
        tmp.path(),
        &["events", "--state", &state_arg, "--format", "json"],
    );
    events.assert_code(0);
    let doc = json_answer(&events);
    let all = doc["events"].as_array().unwrap();
    // The round and its apply come first, each with the revision and who.
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["sync_round", "apply"], "{doc:#}");
    for event in &all[..2] {
        assert_eq!(event["outcome"], "ok", "{event}");
        assert_eq!(event["revision"], commit.as_str(), "{event}");
        assert_eq!(event["who"]["via"], "sync", "{event}");
    }
    assert_eq!(all[1]["digests"].as_object().unwrap().len(), 4, "{doc:#}");
    let e: Vec<serde_json::Value> = all
        .iter()
        .filter(|e| e["kind"] == "deploy")
        .cloned()
        .collect();
    // dev deployed; test (ci-approved) and pre-deploy (automatic, not yet healthy before it)
    // skipped, each with its reason.
    let stages: Vec<(&str, &str)> = e
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(stages[0], ("dev", "ok"), "{doc:#}");
    assert!(stages[1..].iter().all(|(_, o)| *o == "skipped"), "{doc:#}");
    assert!(stages.contains(&("test", "skipped")), "{doc:#}");
    for event in &e {
        assert_eq!(event["kind"], "deploy");
        assert_eq!(event["revision"], commit.as_str(), "{event}");
        assert_eq!(event["who"]["via"], "sync");
        assert_eq!(event["who"]["user"], "events-tester");
        assert_eq!(event["digests"].as_object().unwrap().len(), 4, "{event}");
    }
    let test = e.iter().find(|e| e["stage"] == "test").unwrap();
    assert!(
        test["message"]
            .as_str()
            .unwrap()
            .starts_with("stage `test` is entered by rule `ci-approved`: no CI approval recorded"),
        "{test}"
    );
}
