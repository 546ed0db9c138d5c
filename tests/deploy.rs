//! `cookbook deploy` against the real Docker engine, with the `stages` example (busybox `httpd`
//! and `nc` services answering real health checks): waves start bottom-up, each healthy before the
//! next; an unchanged deploy restarts nothing; a new image rolls out only its container; a failing
//! health check stops the deploy at its wave. Refusals need no engine.

mod common;

use common::deploy::{block_on, deploy, edit, json_answer, services, strings, Project};
use common::run_in;
use cookbook::engine::DockerEngine;

#[test]
fn waves_start_bottom_up_and_converge() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "conv");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);

    let first = deploy(p.path());
    let n = |c: &str| format!("{}-dev-{c}-1", p.name);
    assert_eq!(
        strings(&first["started"]),
        vec![n("db"), n("api"), n("web")]
    );
    assert_eq!(first["network"], format!("{}-dev", p.name));
    // The engine's own start times: db, then api, then web (RFC 3339 UTC with the same precision
    // compare as text).
    let state = p.engine_state();
    assert!(state["db"].0 < state["api"].0, "{state:?}");
    assert!(state["api"].0 < state["web"].0, "{state:?}");

    // Unchanged: nothing restarts, and it is quick.
    let started = std::time::Instant::now();
    let second = deploy(p.path());
    let unchanged_took = started.elapsed();
    assert_eq!(strings(&second["started"]), Vec::<String>::new());
    assert_eq!(
        strings(&second["unchanged"]),
        vec![n("db"), n("api"), n("web")]
    );
    assert_eq!(second["release"], first["release"]);
    assert_eq!(p.engine_state(), state);
    assert!(
        unchanged_took < std::time::Duration::from_secs(5),
        "an unchanged deploy took {unchanged_took:?}"
    );

    // A new web image: only web is recreated, running the lock's new image.
    std::fs::write(p.path().join("services/web/index.html"), "<p>web v2</p>\n").unwrap();
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let third = deploy(p.path());
    assert_eq!(strings(&third["started"]), vec![n("web")]);
    assert_ne!(third["release"], first["release"]);
    let after = p.engine_state();
    assert_eq!(after["db"], state["db"]);
    assert_eq!(after["api"], state["api"]);
    assert_ne!(after["web"].1, state["web"].1);
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("cookbook.lock")).unwrap())
            .unwrap();
    // Applied with --no-push: the lock names the image by its local id (lock version 2).
    assert_eq!(after["web"].1, lock["containers"]["web"]["image_id"]);

    // Both releases are recorded, the new one current.
    let releases = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    releases.assert_code(0);
    let doc: serde_json::Value = json_answer(&releases);
    let dev = doc["stages"]["dev"].as_array().unwrap();
    let ids: Vec<&str> = dev.iter().map(|r| r["release"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            first["release"].as_str().unwrap(),
            third["release"].as_str().unwrap()
        ]
    );
    assert_eq!(dev[1]["current"], true);
    assert_eq!(
        dev[1]["containers"]["web"],
        lock["containers"]["web"]["image_id"]
    );

    // Rollback: the previous release's web comes back, nothing else restarts.
    let run = run_in(
        p.path(),
        &[
            "rollback", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(0);
    let back = json_answer(&run);
    assert_eq!(back["release"], first["release"]);
    assert_eq!(back["rolled_back_from"], third["release"]);
    assert_eq!(strings(&back["started"]), vec![n("web")]);
    let restored = p.engine_state();
    assert_eq!(restored["web"].1, state["web"].1);
    assert_eq!(restored["api"], state["api"]);
    // And forward again by name.
    let to = third["release"].as_str().unwrap();
    let run = run_in(
        p.path(),
        &["rollback", "--site", "local", "--stage", "dev", "--to", to],
    );
    run.assert_code(0);
    assert_eq!(p.engine_state()["web"].1, after["web"].1);
    let run = run_in(p.path(), &["releases", "--site", "local"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert_eq!(lines[0], "local/dev:");
    assert!(
        lines[3].contains(&format!("(rolled back from {to})")),
        "{}",
        run.stdout
    );
    assert!(
        lines[4].starts_with(&format!("  * {to}  ")),
        "{}",
        run.stdout
    );
    let run = run_in(
        p.path(),
        &[
            "rollback", "--site", "local", "--stage", "dev", "--to", "nope",
        ],
    );
    run.assert_code(2);

    // Status: all in sync; then web replaced by hand is drift, and a deploy converges it back.
    let status = |p: &Project| {
        let run = run_in(
            p.path(),
            &[
                "status", "--site", "local", "--stage", "dev", "--format", "json",
            ],
        );
        run.assert_code(0);
        json_answer(&run)
    };
    let doc = status(&p);
    assert_eq!(doc["in_sync"], true, "{doc}");
    let rows = doc["containers"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(
            (
                row["state"].as_str(),
                row["health"].as_str(),
                row["drift"].as_bool()
            ),
            (Some("running"), Some("healthy"), Some(false)),
            "{row}"
        );
    }
    let web = n("web");
    block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let docker = engine.client();
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        docker.remove_container(&web, Some(options)).await.unwrap();
        let body = bollard::models::ContainerCreateBody {
            image: Some("cookbook-test/busybox:latest".to_owned()),
            cmd: Some(vec!["sleep".to_owned(), "300".to_owned()]),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(web.clone()),
            ..Default::default()
        };
        docker.create_container(Some(options), body).await.unwrap();
        docker
            .start_container(
                &web,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
    });
    let doc = status(&p);
    assert_eq!(doc["in_sync"], false);
    let drifted: Vec<&str> = doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["drift"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, vec![web.as_str()]);
    // The hand-made container has none of the labels, so it is not the stage's: deploy replaces it
    // by name.
    let fixed = deploy(p.path());
    assert_eq!(strings(&fixed["started"]), vec![web.clone()]);
    assert_eq!(status(&p)["in_sync"], true);

    // prod is `manual`: refused without a person's approval of these images, promoted with one.
    let promote = [
        "promote", "--site", "local", "--from", "dev", "--to", "prod", "--format", "json",
    ];
    let run = run_in(p.path(), &promote);
    run.assert_code(1);
    assert!(
        run.stderr.starts_with("error: stage `prod` is entered by rule `manual`: no approval by a person recorded for these images (images "),
        "{}",
        run.context()
    );
    assert!(run
        .stderr
        .ends_with("); record one with `cookbook approve --stage prod --by NAME`\n"));
    // A CI approval is not a person's.
    run_in(
        p.path(),
        &["approve", "--stage", "prod", "--by", "ci-job", "--ci"],
    )
    .assert_code(0);
    run_in(p.path(), &promote).assert_code(1);
    let run = run_in(p.path(), &["approve", "--stage", "prod", "--by", "alice"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with("approved images ")
            && run.stdout.ends_with(" for stage prod by alice\n"),
        "{}",
        run.stdout
    );
    let run = run_in(p.path(), &promote);
    run.assert_code(0);
    let promoted = json_answer(&run);
    assert_eq!(promoted["stage"], "prod");
    assert_eq!(
        strings(&promoted["started"]),
        vec![
            format!("{}-prod-db-1", p.name),
            format!("{}-prod-api-1", p.name),
            format!("{}-prod-web-1", p.name)
        ]
    );
    // The dev stage was not touched.
    assert_eq!(status(&p)["in_sync"], true);
}

#[test]
fn a_failing_health_check_rolls_back_to_the_previous_release() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "fail");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let good = deploy(p.path());
    let state = p.engine_state();

    // A release whose api never answers its health check.
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"] = serde_json::json!({
            "http": { "port": 8080, "path": "/missing.html" },
            "interval": "200ms", "timeout": "1s", "retries": 2
        });
    });
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    let api = format!("{}-dev-api-1", p.name);
    assert!(
        run.stderr.ends_with(&format!(
            " to local/dev stopped: wave 2: {api} is not healthy: its health check failed; rolled back to release {} (recreated: {api})\n",
            good["release"].as_str().unwrap()
        )),
        "{}",
        run.context()
    );
    // The previous api answers again; db and web (wave 3 never started) were not touched.
    let after = p.engine_state();
    assert_eq!(after["db"], state["db"]);
    assert_eq!(after["web"], state["web"]);
    assert_ne!(after["api"].0, state["api"].0, "api was recreated");
    let restored = deploy_unchanged_after_restoring_the_cookbook(&p);
    assert_eq!(restored["release"], good["release"]);
    assert_eq!(strings(&restored["started"]), Vec::<String>::new());

    // With `on_failure: none`, the failed release is left as it is.
    edit(p.path(), |doc| {
        doc["lifecycle"]["rollback"] = serde_json::json!({ "on_failure": "none" });
        doc["containers"]["api"]["health"]["http"]["path"] = "/missing.html".into();
    });
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .ends_with("its health check failed; left as it is (on_failure: none)\n"),
        "{}",
        run.context()
    );
}

/// Puts the example's api health check back and deploys: the restored release is what runs, so
/// nothing changes.
fn deploy_unchanged_after_restoring_the_cookbook(p: &Project) -> serde_json::Value {
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"]["http"]["path"] = "/index.html".into();
        doc["containers"]["api"]["health"]["retries"] = 10.into();
    });
    deploy(p.path())
}

#[test]
fn refusals() {
    let p = Project::new("stages", "refuse");
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: no cookbook.lock: nothing has been published yet\n  help: run `cookbook apply` first\n"
    );
    // A lock without web: not published yet (exit 1), before any engine is asked.
    let lock = serde_json::json!({
        "lock_version": 1, "hash_version": 1, "project": p.name,
        "containers": { "db": { "input_hash": "0".repeat(64), "image": "x/db:1", "tags": [], "digest": format!("sha256:{}", "0".repeat(64)) } }
    });
    std::fs::write(p.path().join("cookbook.lock"), lock.to_string()).unwrap();
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: container `api` is not in cookbook.lock: it has not been published yet; run `cookbook apply` to build and publish it\n"
    );
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "qa"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown stage `qa`\n  help: stages: dev, prod\n"
    );
    let run = run_in(p.path(), &["deploy", "--site", "remote", "--stage", "dev"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown site `remote`\n  help: sites in this cookbook: local\n"
    );
}

#[test]
fn a_deploy_killed_mid_wave_converges_on_the_next_run() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "kill");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let mut child = std::process::Command::new(common::bin())
        .args(["deploy", "--site", "local", "--stage", "dev"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL as soon as wave 2 has begun: api exists, web does not.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !p.engine_state().contains_key("api") {
        assert!(std::time::Instant::now() < deadline, "api never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!p.engine_state().contains_key("web"), "killed too late");

    let run = deploy(p.path());
    assert_eq!(run["release"].as_str().unwrap().len(), 12);
    // Exactly one container per instance, all labelled as this stage's and healthy.
    let names: Vec<String> = block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("io.cookbook.project={}", p.name)],
        )]);
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let mut names: Vec<String> = engine
            .client()
            .list_containers(Some(options))
            .await
            .unwrap()
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect();
        names.sort();
        names
    });
    let n = |c: &str| format!("{}-dev-{c}-1", p.name);
    assert_eq!(names, vec![n("api"), n("db"), n("web")]);
    let status = run_in(
        p.path(),
        &[
            "status", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    status.assert_code(0);
    let doc: serde_json::Value = json_answer(&status);
    assert_eq!(doc["in_sync"], true, "{doc}");
    // The killed run recorded nothing; the converging one is the stage's only release.
    let releases = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    let doc: serde_json::Value = json_answer(&releases);
    assert_eq!(doc["stages"]["dev"].as_array().unwrap().len(), 1);
}

#[test]
fn site_detect_speaks_the_capability_vocabulary_and_deploy_refuses_what_is_missing() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "detect");
    let run = run_in(p.path(), &["site", "detect", "--format", "json"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    // The engine runs on this machine: its architecture is ours, in Docker's platform names.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(doc["architecture"], arch);
    assert!(doc["cores"].as_i64().unwrap() >= 1);
    assert!(doc["memory_bytes"].as_i64().unwrap() > 0);
    assert!(!doc["engine_version"].as_str().unwrap().is_empty());
    assert!(doc["capabilities"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(arch)));
    if doc["gpu"] == true {
        eprintln!("SKIPPED the refusal half: this engine has a GPU runtime");
        return;
    }

    // The site claims a GPU (and something unobservable, taken on its word).
    edit(p.path(), |doc| {
        doc["federation"]["sites"]["local"]["capabilities"] = serde_json::json!(["gpu", "ssd"]);
    });
    let run = run_in(
        p.path(),
        &["site", "detect", "--site", "local", "--format", "json"],
    );
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["missing"], serde_json::json!(["gpu"]));
    let entry = serde_json::json!({ "input_hash": "0".repeat(64), "image": "x/y:1", "tags": [], "digest": format!("sha256:{}", "0".repeat(64)) });
    let lock = serde_json::json!({
        "lock_version": 1, "hash_version": 1, "project": p.name,
        "containers": { "db": entry, "api": entry, "web": entry }
    });
    std::fs::write(p.path().join("cookbook.lock"), lock.to_string()).unwrap();
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        format!("error: site `local` declares `gpu`, which its target does not have (it offers: {arch})\n")
    );
    assert!(p.engine_state().is_empty(), "nothing may start");
}
