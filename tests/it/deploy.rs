//! `cookbook deploy` against the real Docker engine, with the `stages` example (busybox `httpd`
//! and `nc` services answering real health checks): waves start bottom-up, each healthy before the
//! next; an unchanged deploy restarts nothing; a new image rolls out only its container; a failing
//! health check stops the deploy at its wave. Refusals need no engine.

use crate::common;

use common::deploy::{
    block_on, deploy, edit, free_port, json_answer, run_container, services, status_in, strings,
    Foreign, Project,
};
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
    let n = |c: &str| p.instance("dev", c);
    assert_eq!(
        strings(&first["started"]),
        vec![n("db"), n("api"), n("web")]
    );
    assert_eq!(first["network"], format!("{}-local-dev", p.name));
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

    // Status: all in sync (exit 0); then web replaced by hand is drift (exit 1), and a deploy
    // converges it back.
    let status = |p: &Project| {
        let run = run_in(
            p.path(),
            &[
                "status", "--site", "local", "--stage", "dev", "--format", "json",
            ],
        );
        let doc = json_answer(&run);
        run.assert_code(if doc["in_sync"] == true { 0 } else { 1 });
        doc
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
    p.replace_by_hand(&web, &["sleep", "300"]);
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
    // The hand-made container has none of the labels, so it is not the stage's: deploy leaves it
    // alone and says why, before changing anything; once its owner removed it, deploy converges.
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: container `{web}` already exists and is not local/dev's: it carries neither cookbook's nor docker compose's labels (made by hand?); cookbook removes or replaces only what is labelled dev.cookbook.project={}, dev.cookbook.site=local, dev.cookbook.stage=dev\n",
            p.name
        ),
        "{}",
        run.context()
    );
    p.remove_by_hand(&web);
    let fixed = deploy(p.path());
    assert_eq!(strings(&fixed["started"]), vec![web.clone()]);
    assert_eq!(status(&p)["in_sync"], true);

    // prod is `manual`: refused without a person's approval of these images, promoted with one
    // (tests/it/approvals.rs has the refusals in full).
    let promote = [
        "promote", "--site", "local", "--from", "dev", "--to", "prod", "--format", "json",
    ];
    let run = run_in(p.path(), &promote);
    run.assert_code(2);
    assert!(
        run.stderr.starts_with("error: stage `prod` is entered by rule `manual`: no approval by a person recorded for these images (images "),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("  help: approve release "));
    // A CI approval is not a person's: refused.
    run_in(
        p.path(),
        &["approve", "--stage", "prod", "--by", "ci-job", "--ci"],
    )
    .assert_code(2);
    run_in(p.path(), &promote).assert_code(2);
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
            p.instance("prod", "db"),
            p.instance("prod", "api"),
            p.instance("prod", "web")
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
    let api = p.instance("dev", "api");
    assert!(
        run.stderr.ends_with(&format!(
            " to local/dev stopped: wave 2: {api} is not healthy: its health check failed; the last probe exited with code 1: wget: server returned error: HTTP/1.1 404 Not Found; rolled back to release {} (recreated: {api})\n",
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
            .ends_with("its health check failed; the last probe exited with code 1: wget: server returned error: HTTP/1.1 404 Not Found; left as it is (on_failure: none)\n"),
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
        "containers": { "db": { "input_hash": "0".repeat(64), "image": format!("cookbook.local/{}/db:{}", p.name, "0".repeat(64)), "tags": [], "digest": format!("sha256:{}", "0".repeat(64)) } }
    });
    std::fs::write(p.path().join("cookbook.lock"), lock.to_string()).unwrap();
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: container `api` is not in cookbook.lock: it has not been published yet; run `cookbook apply` to build and publish it\n"
    );
    // `status` agrees (issue 21: it exited 2): the request is fine, its images are not there yet;
    // and names what would fit, as deploy does, when the request is not.
    for format in ["text", "json"] {
        let run = run_in(
            p.path(),
            &[
                "status", "--site", "local", "--stage", "dev", "--format", format,
            ],
        );
        run.assert_code(1);
    }
    let run = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
    assert_eq!(
        run.stderr,
        "error: container `api` is not in cookbook.lock: it has not been published yet; run `cookbook apply` to build and publish it\n"
    );
    let run = run_in(p.path(), &["status", "--site", "local", "--stage", "qa"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown stage `qa`\n  help: stages in this cookbook: dev, prod\n"
    );
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "qa"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown stage `qa`\n  help: stages in this cookbook: dev, prod\n"
    );
    let run = run_in(p.path(), &["deploy", "--site", "remote", "--stage", "dev"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown site `remote`\n  help: sites in this cookbook: local\n"
    );
    // A near miss is named, not listed among the rest.
    let run = run_in(p.path(), &["status", "--site", "lcoal", "--stage", "dev"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown site `lcoal`\n  help: did you mean `local`?\n"
    );
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "prdo"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown stage `prdo`\n  help: did you mean `prod`?\n"
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
    let n = |c: &str| p.instance("dev", c);
    assert_eq!(p.containers(), vec![n("api"), n("db"), n("web")]);
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
    let entry = |c: &str| serde_json::json!({ "input_hash": "0".repeat(64), "image": format!("cookbook.local/{}/{c}:{}", p.name, "0".repeat(64)), "tags": [], "digest": format!("sha256:{}", "0".repeat(64)) });
    let lock = serde_json::json!({
        "lock_version": 1, "hash_version": 1, "project": p.name,
        "containers": { "db": entry("db"), "api": entry("api"), "web": entry("web") }
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

/// Issue 20, item 3: deploy replaces or removes only what carries its project, site and stage
/// labels. docker compose's containers — one where today's names would go, one where the old
/// site-less scheme put them (compose project `<p>-dev`, service `db` is `<p>-dev-db-1`) — and
/// another site's container under the old name all survive; a taken name stops the deploy before
/// anything changes, naming its owner (exit 1); a network likewise.
#[test]
fn a_deploy_touches_only_what_is_its_own() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "own");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let compose_project = format!("{}-local-dev", p.name);
    let compose_new = Foreign::start(
        &p.instance("dev", "web"),
        &[
            ("com.docker.compose.project", &compose_project),
            ("com.docker.compose.service", "web"),
            ("com.docker.compose.container-number", "1"),
        ],
    );
    let old_project = format!("{}-dev", p.name);
    let compose_old = Foreign::start(
        &p.old_instance("dev", "db"),
        &[
            ("com.docker.compose.project", &old_project),
            ("com.docker.compose.service", "db"),
        ],
    );
    let other_site = Foreign::start(
        &p.old_instance("dev", "api"),
        &[
            ("io.cookbook.project", &p.name),
            ("io.cookbook.site", "elsewhere"),
            ("io.cookbook.stage", "dev"),
            ("io.cookbook.container", "api"),
        ],
    );

    let run = run_in(
        p.path(),
        &[
            "deploy", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(1);
    let doc = json_answer(&run);
    let message = doc["errors"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "container `{}` already exists and is not local/dev's: it belongs to docker compose project `{compose_project}` (service `web`); cookbook removes or replaces only what is labelled dev.cookbook.project={}, dev.cookbook.site=local, dev.cookbook.stage=dev",
            compose_new.name, p.name
        ),
        "{}",
        run.context()
    );
    assert_eq!(doc["exit_code"], 1);
    for foreign in [&compose_new, &compose_old, &other_site] {
        assert!(foreign.is_intact(), "{} was touched", foreign.name);
    }
    assert_eq!(
        p.containers(),
        Vec::<String>::new(),
        "nothing of ours may start"
    );
    // `status` shows the namesake as foreign: not web running, and nothing exec'd in it.
    let doc = status_in(p.path(), "dev");
    let web = doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["container"] == "web")
        .unwrap();
    assert_eq!(
        (web["state"].as_str(), web["drift"].as_bool()),
        (Some("foreign"), Some(true)),
        "{doc}"
    );
    assert!(compose_new.is_intact());

    // Its owner moves it away: the deploy goes ahead, and the others are still untouched.
    drop(compose_new);
    let done = deploy(p.path());
    assert_eq!(
        strings(&done["started"]),
        vec![
            p.instance("dev", "db"),
            p.instance("dev", "api"),
            p.instance("dev", "web")
        ]
    );
    assert_eq!(strings(&done["removed"]), Vec::<String>::new());
    assert!(compose_old.is_intact() && other_site.is_intact());
    let again = deploy(p.path());
    assert_eq!(strings(&again["started"]), Vec::<String>::new());
    assert!(compose_old.is_intact() && other_site.is_intact());

    // A network where prod's would go, made by someone else: prod is refused, the network kept.
    let network = format!("{}-local-prod", p.name);
    block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let request = bollard::models::NetworkCreateRequest {
            name: network.clone(),
            ..Default::default()
        };
        engine.client().create_network(request).await.unwrap();
    });
    run_in(p.path(), &["approve", "--stage", "prod", "--by", "alice"]).assert_code(0);
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "prod"]);
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(&format!(
            "error: network `{network}` already exists and is not local/prod's: it carries neither cookbook's nor docker compose's labels"
        )),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("prod").is_empty());
    block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        assert!(engine
            .client()
            .inspect_network(&network, None)
            .await
            .is_ok());
        engine.client().remove_network(&network).await.unwrap();
    });
}

/// What the previous version deployed — containers named `<project>-<stage>-<container>-<n>` on
/// the network `<project>-<stage>`, labelled as this site's — is recognised as ours and converged
/// away: each old container is removed just before its successor is created, so the published
/// port it holds is free for it, and the old network goes at the end.
#[test]
fn containers_deployed_by_the_previous_version_are_converged_away() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "upgrade");
    let port = free_port();
    edit(p.path(), |doc| {
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"] =
            serde_json::json!({ "ports": [format!("127.0.0.1:{port}:80")] });
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("cookbook.lock")).unwrap())
            .unwrap();
    let old_network = format!("{}-dev", p.name);
    block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        let docker = engine.client();
        let labels = |container: Option<&str>| {
            let mut labels = std::collections::HashMap::from([
                ("io.cookbook.project".to_owned(), p.name.clone()),
                ("io.cookbook.stage".to_owned(), "dev".to_owned()),
                ("io.cookbook.site".to_owned(), "local".to_owned()),
            ]);
            if let Some(c) = container {
                labels.insert("io.cookbook.container".to_owned(), c.to_owned());
                labels.insert("io.cookbook.release".to_owned(), "0".repeat(12));
                labels.insert("io.cookbook.config-hash".to_owned(), "0".repeat(64));
            }
            labels
        };
        let request = bollard::models::NetworkCreateRequest {
            name: old_network.clone(),
            labels: Some(labels(None)),
            ..Default::default()
        };
        docker.create_network(request).await.unwrap();
        for c in ["db", "api", "web"] {
            let bindings = (c == "web").then(|| {
                std::collections::HashMap::from([(
                    "80/tcp".to_owned(),
                    Some(vec![bollard::models::PortBinding {
                        host_ip: Some("127.0.0.1".to_owned()),
                        host_port: Some(port.to_string()),
                    }]),
                )])
            });
            let body = bollard::models::ContainerCreateBody {
                image: lock["containers"][c]["image_id"]
                    .as_str()
                    .map(str::to_owned),
                labels: Some(labels(Some(c))),
                host_config: Some(bollard::models::HostConfig {
                    network_mode: Some(old_network.clone()),
                    port_bindings: bindings,
                    ..Default::default()
                }),
                ..Default::default()
            };
            run_container(docker, &p.old_instance("dev", c), body).await;
        }
    });

    let done = deploy(p.path());
    assert_eq!(
        strings(&done["started"]),
        vec![
            p.instance("dev", "db"),
            p.instance("dev", "api"),
            p.instance("dev", "web")
        ]
    );
    assert_eq!(
        strings(&done["removed"]),
        vec![
            p.old_instance("dev", "db"),
            p.old_instance("dev", "api"),
            p.old_instance("dev", "web")
        ]
    );
    let old_network_left = block_on(async {
        let engine = DockerEngine::connect().await.unwrap();
        engine
            .client()
            .inspect_network(&old_network, None)
            .await
            .is_ok()
    });
    assert_eq!(
        p.containers(),
        vec![
            p.instance("dev", "api"),
            p.instance("dev", "db"),
            p.instance("dev", "web")
        ]
    );
    assert!(!old_network_left, "the old network is left behind");
    assert_eq!(status_in(p.path(), "dev")["in_sync"], true);
}

/// Issue 21: deploys moved from `io.cookbook.*` labels to `dev.cookbook.*`. A container an
/// earlier version deployed under the old labels, with its very config hash, is still the
/// stage's own (not a namesake to refuse), and is not trusted as unchanged: the first deploy after
/// the upgrade replaces it, labelled the new way; what runs under the new labels is untouched.
#[test]
fn a_container_labelled_the_old_way_is_ours_and_replaced() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "legacy");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    deploy(p.path());
    let web = p.instance("dev", "web");
    p.relabel_as_legacy(&web);
    let labels = |name: &str| {
        let config = common::deploy::inspect(name).config.unwrap();
        config.labels.unwrap_or_default()
    };
    assert_eq!(
        labels(&web).get("io.cookbook.site").map(String::as_str),
        Some("local")
    );
    assert_eq!(labels(&web).get("dev.cookbook.site"), None);
    // `status` finds it as web (ours), drifted: its hash is not one this version trusts.
    let doc = status_in(p.path(), "dev");
    let row = &doc["containers"].as_array().unwrap()[2];
    assert_eq!(
        (row["name"].as_str(), row["drift"].as_bool()),
        (Some(web.as_str()), Some(true)),
        "{doc}"
    );
    let done = deploy(p.path());
    assert_eq!(strings(&done["started"]), vec![web.clone()]);
    assert_eq!(
        strings(&done["unchanged"]),
        vec![p.instance("dev", "db"), p.instance("dev", "api")]
    );
    let now = labels(&web);
    assert_eq!(
        now.get("dev.cookbook.site").map(String::as_str),
        Some("local")
    );
    assert_eq!(now.get("io.cookbook.site"), None);
    assert_eq!(status_in(p.path(), "dev")["in_sync"], true);
}

/// Issue 20, item 4: an `http` probe is an exec-form `wget` of one URL, never shell text. With
/// the old `CMD-SHELL` string, `&` put wget in the background (the gate passed with nothing
/// listening), `;` and `$()` ran commands. Now each path is fetched literally: httpd answers 404
/// (or nothing listens), the gate fails, and no command ran in the container.
#[test]
fn probe_paths_never_reach_a_shell() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "probe");
    edit(p.path(), |doc| {
        doc["lifecycle"]["rollback"] = serde_json::json!({ "on_failure": "none" });
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let api = p.instance("dev", "api");
    for (port, path) in [
        (8080, "/index.html&"),
        (9, "/index.html&"),
        (8080, "/x;touch$IFS/tmp/pwned"),
        (8080, "/$(touch$IFS/tmp/pwned)"),
    ] {
        edit(p.path(), |doc| {
            doc["containers"]["api"]["health"] = serde_json::json!({
                "http": { "port": port, "path": path },
                "interval": "200ms", "timeout": "1s", "retries": 2, "grace": "1s"
            });
        });
        let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
        run.assert_code(1);
        // The probe's own words (a 404, or nothing listening) are quoted between the two.
        assert!(
            run.stderr.contains(&format!(
                "wave 2: {api} is not healthy: its health check failed; the last probe exited with code 1: wget: "
            )) && run.stderr.ends_with("; left as it is (on_failure: none)\n"),
            "port {port}, path {path}: {}",
            run.context()
        );
        let tmp = p.exec(&api, &["ls", "-a", "/tmp"]);
        assert!(!tmp.contains("pwned"), "path {path} ran a command: {tmp}");
    }
    // `&` in a query is data: the page answers and the gate passes.
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"]["http"] =
            serde_json::json!({ "port": 8080, "path": "/index.html?a=1&b=2" });
        doc["containers"]["api"]["health"]["retries"] = 10.into();
    });
    deploy(p.path());
}

/// A probe path is checked where it is written: a located problem (exit 2) for what a URL path
/// cannot hold, before any engine is asked.
#[test]
fn probe_paths_are_checked_where_they_are_written() {
    let p = Project::new("stages", "probepath");
    for (path, problem) in [
        ("/a b", "must start with"),
        (
            "/${IFS}",
            "has `{` at byte 2, which a URL path or query cannot hold",
        ),
        (
            "/x|sh",
            "has `|` at byte 2, which a URL path or query cannot hold",
        ),
        ("/%zz", "has a `%` at byte 1 not followed by two hex digits"),
        ("index.html", "must start with"),
    ] {
        edit(p.path(), |doc| {
            doc["containers"]["api"]["health"]["http"]["path"] = path.into();
        });
        let run = run_in(p.path(), &["validate", "--format", "json"]);
        run.assert_code(2);
        let doc = json_answer(&run);
        let error = &doc["errors"][0];
        assert_eq!(
            error["pointer"],
            "/containers/api/health/http/path",
            "{path}: {}",
            run.context()
        );
        if !problem.starts_with("must") {
            assert_eq!(
                error["message"],
                format!(
                    "probe path {} {problem}",
                    serde_json::to_string(path).unwrap()
                ),
                "{}",
                run.context()
            );
        }
    }
}

/// Issue 20, item 5: an engine error inside a wave — here the new web's published port is taken
/// ("address already in use"), after the old web was removed — rolls the stage back like an
/// unhealthy wave (`on_failure: previous`): the previous web runs again, and the report says so.
#[test]
fn an_engine_error_in_a_wave_rolls_back_to_the_previous_release() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "port");
    let (first_port, taken) = (free_port(), free_port());
    let publish = |port: u16| {
        move |doc: &mut serde_json::Value| {
            doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"] =
                serde_json::json!({ "ports": [format!("127.0.0.1:{port}:80")] });
        }
    };
    edit(p.path(), publish(first_port));
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let good = deploy(p.path());
    let state = p.engine_state();
    let web = p.instance("dev", "web");

    // Held by a listener of this test: the engine cannot bind it for the new web.
    let holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    edit(p.path(), publish(taken));
    let run = run_in(
        p.path(),
        &[
            "deploy", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(1);
    let doc = json_answer(&run);
    let report = &doc["deploy"];
    assert_eq!(report["failed"]["wave"], 3, "{}", run.context());
    assert_eq!(report["recovery"]["action"], "rolled_back");
    assert_eq!(report["recovery"]["release"], good["release"]);
    assert_eq!(strings(&report["recovery"]["started"]), vec![web.clone()]);
    let message = doc["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("address already in use")
            && message.ends_with(&format!(
                "; rolled back to release {} (recreated: {web})",
                good["release"].as_str().unwrap()
            )),
        "{}",
        run.context()
    );
    // The previous web runs again (recreated, same image), db and api untouched.
    let after = p.engine_state();
    assert_eq!(after["db"], state["db"]);
    assert_eq!(after["api"], state["api"]);
    assert_eq!(after["web"].1, state["web"].1);
    assert_ne!(after["web"].0, state["web"].0);
    // It answers again (the exec fails the test unless wget exits 0).
    p.exec(
        &web,
        &["wget", "-q", "-O", "-", "http://127.0.0.1/index.html"],
    );
    drop(holder);
    let releases = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    // The failed release was never recorded: the stage's one release is still current.
    let dev = &json_answer(&releases)["stages"]["dev"];
    let ids: Vec<&serde_json::Value> = dev
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["release"])
        .collect();
    assert_eq!(ids, vec![&good["release"]]);
}

/// Issue 20, item 6: a restart long before a deploy does not fail it. db crashes and is restarted
/// by the engine (restart count 1); a later deploy that changes only web must not judge db again.
#[test]
fn an_old_restart_does_not_fail_a_later_wave() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "restart");
    // A db that exits once when asked to (the health check's connections turn its loop).
    std::fs::write(
        p.path().join("services/db/serve.sh"),
        "#!/bin/sh\nwhile true; do\n  if [ -e /tmp/crash ]; then rm /tmp/crash; exit 1; fi\n  echo \"db ${DB_NAME:-shop} ready\" | nc -l -p 5432\ndone\n",
    )
    .unwrap();
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    deploy(p.path());
    let db = p.instance("dev", "db");
    p.exec(&db, &["touch", "/tmp/crash"]);
    common::wait_until(
        "db to be restarted by the engine and healthy again",
        std::time::Duration::from_secs(60),
        || {
            let doc = status_in(p.path(), "dev");
            let row = &doc["containers"][0];
            row["restarts"].as_i64() >= Some(1) && row["health"] == "healthy"
        },
    );
    let before = p.engine_state();

    std::fs::write(p.path().join("services/web/index.html"), "<p>web v2</p>\n").unwrap();
    run_in(p.path(), &["apply", "--no-push", "web"]).assert_code(0);
    let run = run_in(
        p.path(),
        &[
            "deploy", "--site", "local", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(0);
    let done = json_answer(&run);
    assert_eq!(strings(&done["started"]), vec![p.instance("dev", "web")]);
    assert_eq!(p.engine_state()["db"], before["db"]);
}

/// A signal during a wave: the deploy stops between steps (the health wait is cut short), rolls
/// the stage back to its previous release, says so, and exits with the signal's code.
#[test]
fn a_signal_mid_wave_rolls_back_and_exits_with_its_code() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "signal");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let good = deploy(p.path());
    let state = p.engine_state();
    // A release whose api would take minutes to be found unhealthy.
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"] = serde_json::json!({
            "http": { "port": 8080, "path": "/missing.html" },
            "interval": "1s", "timeout": "1s", "retries": 100
        });
    });
    let child = std::process::Command::new(common::bin())
        .args(["deploy", "--site", "local", "--stage", "dev"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until(
        "the new api to be started",
        std::time::Duration::from_secs(60),
        || p.engine_state().get("api").map(|s| &s.0) != Some(&state["api"].0),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let signalled = std::time::Instant::now();
    common::signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(30),
        "took {:?} after the signal",
        signalled.elapsed()
    );
    let api = p.instance("dev", "api");
    assert!(
        stderr.ends_with(&format!(
            " to local/dev stopped: wave 2: interrupted; rolled back to release {} (recreated: {api})\n",
            good["release"].as_str().unwrap()
        )) && stderr.starts_with("error: SIGTERM: deploy of release "),
        "{stderr}"
    );
    let after = p.engine_state();
    assert_eq!(after["api"].1, state["api"].1);
    assert_eq!(after["db"], state["db"]);
    assert_eq!(after["web"], state["web"]);
}
