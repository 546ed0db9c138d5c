//! Issue 13's "Done when", with the `shop` example against the real Docker engine: its db (a
//! busybox `nc` on 5432), api (busybox `httpd` with a CGI script), web (`httpd`) and worker (a
//! shell loop) answer real health checks. Deploy to dev starts db, then api, then web and
//! worker (the engine's start times say so); an unchanged deploy restarts nothing; a new api
//! image rolls out alone; an api that fails its health check is rolled back and the previous one
//! answers again; `rollback --to` an older release; promotion into `manual` prod needs a
//! person's approval; `status` reports drift and classifies what each container serves.

use crate::common;

use common::deploy::{deploy, deploy_to, edit, json_answer, services, status_in, strings, Project};
use common::run_in;

fn apply(p: &Project, containers: &[&str]) {
    let mut args = vec!["apply", "--no-push"];
    args.extend_from_slice(containers);
    run_in(p.path(), &args).assert_code(0);
}

fn lock(p: &Project) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p.path().join("cookbook.lock")).unwrap()).unwrap()
}

/// A row of `status --format json` by cookbook container.
fn row<'a>(doc: &'a serde_json::Value, container: &str) -> &'a serde_json::Value {
    doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["container"] == container)
        .unwrap_or_else(|| panic!("no {container} in {doc}"))
}

/// What the api answers, asked from the web container over the stage's network by its name.
fn api_answer(p: &Project) -> String {
    p.exec(
        &p.instance("dev", "web"),
        &["wget", "-q", "-O", "-", "http://api:8080/cgi-bin/orders"],
    )
}

#[test]
fn shop_deploys_bottom_up_converges_rolls_out_a_new_api_alone_and_reports_services() {
    if !services() {
        return;
    }
    let p = Project::new("shop", "conv");
    apply(&p, &[]);
    let n = |c: &str| p.instance("dev", c);
    // Kept for `deploy --release` at the end.
    std::fs::copy(p.path().join("cookbook.lock"), p.path().join("first.lock")).unwrap();

    let first = deploy(p.path());
    assert_eq!(
        strings(&first["started"]),
        vec![n("db"), n("api"), n("web"), n("worker")]
    );
    // The engine's own start times (RFC 3339, same precision): db, then api, then web and worker.
    let state = p.engine_state();
    assert!(state["db"].0 < state["api"].0, "{state:?}");
    assert!(state["api"].0 < state["web"].0, "{state:?}");
    assert!(state["api"].0 < state["worker"].0, "{state:?}");
    assert!(api_answer(&p).contains("\"orders\": []"));

    // Unchanged: nothing restarts.
    let second = deploy(p.path());
    assert_eq!(strings(&second["started"]), Vec::<String>::new());
    assert_eq!(second["release"], first["release"]);
    assert_eq!(p.engine_state(), state);

    // A new api image (`apply api` rebuilds it; worker, built FROM api, keeps its locked image):
    // only api is recreated, and runs the lock's new image.
    std::fs::write(
        p.path().join("services/api/cgi-bin/orders"),
        "#!/bin/sh\nprintf 'Content-Type: application/json\\r\\n\\r\\n'\nprintf '{\"orders\": [], \"version\": 2}\\n'\n",
    )
    .unwrap();
    apply(&p, &["api"]);
    let third = deploy(p.path());
    assert_eq!(strings(&third["started"]), vec![n("api")]);
    assert_eq!(
        strings(&third["unchanged"]),
        vec![n("db"), n("web"), n("worker")]
    );
    let after = p.engine_state();
    for c in ["db", "web", "worker"] {
        assert_eq!(after[c], state[c], "{c} was restarted");
    }
    assert_eq!(after["api"].1, lock(&p)["containers"]["api"]["image_id"]);
    assert!(api_answer(&p).contains("\"version\": 2"));

    // Status: in sync, and what each container serves, classified.
    let doc = status_in(p.path(), "dev");
    assert_eq!(doc["in_sync"], true, "{doc}");
    let kinds = |doc: &serde_json::Value, c: &str| row(doc, c)["services"]["kinds"].clone();
    assert_eq!(kinds(&doc, "db"), serde_json::json!(["database"]));
    assert_eq!(kinds(&doc, "api"), serde_json::json!(["web"]));
    assert_eq!(kinds(&doc, "web"), serde_json::json!(["web"]));
    assert_eq!(kinds(&doc, "worker"), serde_json::json!(["worker"]));
    assert_eq!(
        row(&doc, "web")["services"],
        serde_json::json!({ "listening": [80], "processes": ["httpd"], "kinds": ["web"], "note": null })
    );
    assert_eq!(
        row(&doc, "db")["services"]["listening"],
        serde_json::json!([5432])
    );
    assert_eq!(
        row(&doc, "worker")["services"]["listening"],
        serde_json::json!([])
    );
    let run = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
    run.assert_code(0);
    let web_line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&n("web")))
        .unwrap();
    assert!(
        web_line.ends_with("  no     web: 80 (httpd)"),
        "{}",
        run.stdout
    );
    let worker_line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&n("worker")))
        .unwrap();
    assert!(
        worker_line.ends_with("  no     worker: no port (sleep, work.sh)"),
        "{}",
        run.stdout
    );

    // web replaced by hand with another httpd (its labels copied, another image): drift, and
    // still web. (Without the labels it would be `foreign`, and nothing run in it:
    // tests/it/deploy.rs.)
    p.replace_keeping_labels(&n("web"), &["httpd", "-f", "-p", "80", "-h", "/tmp"]);
    let doc = status_in(p.path(), "dev");
    assert_eq!(doc["in_sync"], false);
    let drifted: Vec<&str> = doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["drift"] == true)
        .map(|r| r["container"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, vec!["web"]);
    assert_eq!(kinds(&doc, "web"), serde_json::json!(["web"]));
    assert_eq!(
        row(&doc, "web")["services"]["listening"],
        serde_json::json!([80])
    );
    // An image without `cat`: the sockets cannot be read, and status says so instead of
    // guessing; the process name still says web.
    p.replace_keeping_labels(
        &n("web"),
        &["sh", "-c", "rm /bin/cat && exec httpd -f -p 80 -h /tmp"],
    );
    let doc = status_in(p.path(), "dev");
    let note = "the image has no `cat` to read /proc/net/tcp: listening ports unknown";
    assert_eq!(
        row(&doc, "web")["services"],
        serde_json::json!({ "listening": [], "processes": ["httpd"], "kinds": ["web"], "note": note })
    );
    // web runs busybox's image, not the lock's: drift, so status exits 1 and says so last.
    let run = run_in(p.path(), &["status", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("  yes    web: ports unknown (httpd)\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "  note: {}: {note}\nweb: drifted: runs sha256:",
            n("web")
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("local/dev: 1 of 4 container(s) not as cookbook.lock says\n"),
        "{}",
        run.stdout
    );
    // Replaced again without the labels, it is not cookbook's: `status` shows it foreign, the
    // next deploy leaves it alone and says so (exit 1); once it is gone, the deploy converges.
    p.replace_by_hand(&n("web"), &["httpd", "-f", "-p", "80", "-h", "/tmp"]);
    assert_eq!(row(&status_in(p.path(), "dev"), "web")["state"], "foreign");
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(&format!(
            "error: container `{}` already exists and is not local/dev's: it carries neither cookbook's nor docker compose's labels",
            n("web")
        )),
        "{}",
        run.context()
    );
    p.remove_by_hand(&n("web"));
    let fixed = deploy(p.path());
    assert_eq!(strings(&fixed["started"]), vec![n("web")]);
    assert_eq!(status_in(p.path(), "dev")["in_sync"], true);

    // `deploy --release LOCK`: an older lock's digests, whatever ./cookbook.lock says.
    let run = run_in(
        p.path(),
        &[
            "deploy",
            "--site",
            "local",
            "--stage",
            "dev",
            "--release",
            "first.lock",
            "--format",
            "json",
        ],
    );
    run.assert_code(0);
    let old = json_answer(&run);
    assert_eq!(old["release"], first["release"]);
    assert_eq!(strings(&old["started"]), vec![n("api")]);
    assert_eq!(p.engine_state()["api"].1, state["api"].1);
    assert!(!api_answer(&p).contains("version"));
    // Measured against ./cookbook.lock, api now drifts.
    let doc = status_in(p.path(), "dev");
    assert_eq!(row(&doc, "api")["drift"], true);
    let run = run_in(
        p.path(),
        &[
            "deploy",
            "--site",
            "local",
            "--stage",
            "dev",
            "--release",
            "nope.lock",
        ],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: --release nope.lock: no such lock file\n  help: name a cookbook.lock written by `cookbook apply`\n"
    );
}

#[test]
fn shop_a_failing_api_is_rolled_back_and_rollback_to_restores_an_older_release() {
    if !services() {
        return;
    }
    let p = Project::new("shop", "fail");
    apply(&p, &[]);
    let good = deploy(p.path());
    let state = p.engine_state();
    let api = p.instance("dev", "api");

    // A release whose api listens elsewhere: its health check on 8080 fails.
    let serve = p.path().join("services/api/serve.sh");
    let original = std::fs::read_to_string(&serve).unwrap();
    std::fs::write(&serve, original.replace("${API_PORT:-8080}", "8081")).unwrap();
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"]["retries"] = 3.into();
    });
    apply(&p, &["api"]);
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]);
    run.assert_code(1);
    assert!(
        run.stderr.ends_with(&format!(
            " to local/dev stopped: wave 2: {api} is not healthy: its health check failed; the last probe exited with code 1: wget: can't connect to remote host (127.0.0.1): Connection refused; rolled back to release {} (recreated: {api})\n",
            good["release"].as_str().unwrap()
        )),
        "{}",
        run.context()
    );
    // The previous api runs and answers again; db, web and worker were not touched.
    let after = p.engine_state();
    assert_eq!(after["api"].1, state["api"].1);
    assert_ne!(after["api"].0, state["api"].0, "api was recreated");
    for c in ["db", "web", "worker"] {
        assert_eq!(after[c], state[c], "{c} was restarted");
    }
    assert!(api_answer(&p).contains("\"orders\": []"));
    let doc = status_in(p.path(), "dev");
    assert_eq!(row(&doc, "api")["health"], "healthy");

    // A good second release, then `rollback --to` the first.
    std::fs::write(&serve, &original).unwrap();
    edit(p.path(), |doc| {
        doc["containers"]["api"]["health"]["retries"] = 10.into();
    });
    std::fs::write(
        p.path().join("services/api/cgi-bin/orders"),
        "#!/bin/sh\nprintf 'Content-Type: application/json\\r\\n\\r\\n'\nprintf '{\"orders\": [], \"version\": 2}\\n'\n",
    )
    .unwrap();
    apply(&p, &["api"]);
    let second = deploy(p.path());
    assert_ne!(second["release"], good["release"]);
    assert!(api_answer(&p).contains("\"version\": 2"));
    let to = good["release"].as_str().unwrap();
    let run = run_in(
        p.path(),
        &[
            "rollback", "--site", "local", "--stage", "dev", "--to", to, "--format", "json",
        ],
    );
    run.assert_code(0);
    let back = json_answer(&run);
    assert_eq!(back["release"], to);
    assert_eq!(back["rolled_back_from"], second["release"]);
    assert_eq!(strings(&back["started"]), vec![api.clone()]);
    assert!(api_answer(&p).contains("\"orders\": []"));
    assert!(!api_answer(&p).contains("version"));
    let run = run_in(p.path(), &["releases", "--site", "local"]);
    run.assert_code(0);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("  * {to}  "))
            && last.contains(&format!(
                "(rolled back from {})",
                second["release"].as_str().unwrap()
            )),
        "{}",
        run.stdout
    );
}

#[test]
fn shop_promotion_follows_each_stages_rule() {
    if !services() {
        return;
    }
    let p = Project::new("shop", "promote");
    apply(&p, &[]);
    deploy(p.path());
    let promote = |from: &str, to: &str| {
        run_in(
            p.path(),
            &[
                "promote", "--site", "local", "--from", from, "--to", to, "--format", "json",
            ],
        )
    };

    // prod is `manual`: refused without a person's approval of these images (a CI one does not
    // count), promoted with one.
    let run = promote("dev", "prod");
    run.assert_code(2);
    assert!(
        run.stderr.starts_with("error: stage `prod` is entered by rule `manual`: no approval by a person recorded for these images (images "),
        "{}",
        run.context()
    );
    run_in(
        p.path(),
        &["approve", "--stage", "prod", "--by", "ci-job", "--ci"],
    )
    .assert_code(2);
    promote("dev", "prod").assert_code(2);
    // prod's approval is of what promote carries from the stage before it (stage); dev's
    // release is named explicitly.
    let run = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    run.assert_code(0);
    let release = json_answer(&run)["stages"]["dev"][0]["release"]
        .as_str()
        .unwrap()
        .to_owned();
    run_in(
        p.path(),
        &[
            "approve",
            "--stage",
            "prod",
            "--by",
            "alice",
            "--release",
            &release,
        ],
    )
    .assert_code(0);
    let run = promote("dev", "prod");
    run.assert_code(0);
    let promoted = json_answer(&run);
    assert_eq!(promoted["stage"], "prod");
    let m = |c: &str| p.instance("prod", c);
    assert_eq!(
        strings(&promoted["started"]),
        vec![m("db"), m("api"), m("web"), m("worker")]
    );
    // The same images as dev, with prod's runtime settings; dev untouched and in sync.
    let dev = p.engine_state_in("dev");
    let prod = p.engine_state_in("prod");
    for c in ["db", "api", "web", "worker"] {
        assert_eq!(dev[c].1, prod[c].1, "{c}'s image");
    }
    assert_eq!(status_in(p.path(), "dev")["in_sync"], true);
    assert_eq!(status_in(p.path(), "prod")["in_sync"], true);

    // test is `ci-approved`: a CI approval lets dev's images in.
    let run = promote("dev", "test");
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(
            "error: stage `test` is entered by rule `ci-approved`: no CI approval recorded"
        ),
        "{}",
        run.context()
    );
    run_in(
        p.path(),
        &["approve", "--stage", "test", "--by", "ci", "--ci"],
    )
    .assert_code(0);
    promote("dev", "test").assert_code(0);
    // pre-deploy is `automatic`: the same images run healthy in test right now.
    json_answer(&{
        let run = run_in(
            p.path(),
            &[
                "deploy",
                "--site",
                "local",
                "--stage",
                "pre-deploy",
                "--format",
                "json",
            ],
        );
        run.assert_code(0);
        run
    });
    // The rule asks the engine, not the records: pre-deploy's release is recorded, but its api
    // replaced by hand (without the stage's labels: not even ours) is not that release running
    // healthy, so `stage` is refused.
    let api = p.instance("pre-deploy", "api");
    p.replace_by_hand(&api, &["sleep", "300"]);
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "stage"]);
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(
            "error: stage `stage` is entered by rule `automatic`: these images (images "
        ),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.ends_with(&format!(
            ") must first run healthy in `pre-deploy`: on site local, {api} is foreign\n"
        )),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("stage").is_empty());
    // The hand-made api is not cookbook's to replace: removed by its maker, pre-deploy is
    // deployed again, healthy, and `stage` opens.
    p.remove_by_hand(&api);
    deploy_to(p.path(), "pre-deploy");
    deploy_to(p.path(), "stage");

    // Checkpoints (pre-deploy): these images became a rollback point when they reached prod
    // (a later stage) and again in pre-deploy; every record of them says where, earliest first.
    let run = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    run.assert_code(0);
    let doc = json_answer(&run);
    let checkpoint = |stage: &str| doc["stages"][stage][0]["checkpoint"].clone();
    assert_eq!(checkpoint("dev"), "prod", "{doc}");
    assert_eq!(checkpoint("prod"), "prod");
    assert_eq!(checkpoint("test"), "pre-deploy");
    assert_eq!(checkpoint("pre-deploy"), "pre-deploy");
    assert_eq!(checkpoint("stage"), "stage");
    let run = run_in(p.path(), &["releases", "--site", "local"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("  checkpoint (prod)"),
        "{}",
        run.stdout
    );
}
