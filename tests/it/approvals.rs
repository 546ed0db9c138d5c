//! Approvals, promotion and the release records, against the real Docker engine with the `stages`
//! example (dev `automatic`, prod `manual`; its `local` site serves both): an approval names the
//! release `promote` will carry (by default the current release of the stage before, whatever
//! the lock says now), so deploy v1 to dev, apply v2, approve, promote carries v1; a refused
//! promotion names the release and the exact `approve` command; promoting backwards or to the
//! same stage and an approval a stage's rule does not take are refused (exit 2) before anything
//! runs; and two deploys at once both keep their release records. The refusals need no engine.

use crate::common;

use common::deploy::{deploy, json_answer, services, strings, Project};
use common::run_in;

fn promote(p: &Project, from: &str, to: &str) -> common::Run {
    run_in(
        p.path(),
        &[
            "promote", "--site", "local", "--from", from, "--to", to, "--format", "json",
        ],
    )
}

fn releases(p: &Project) -> serde_json::Value {
    let run = run_in(
        p.path(),
        &["releases", "--site", "local", "--format", "json"],
    );
    run.assert_code(0);
    json_answer(&run)
}

/// The lock's images: container → the lock's identity of it (an image id with --no-push).
fn locked(p: &Project) -> serde_json::Value {
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("cookbook.lock")).unwrap())
            .unwrap();
    lock["containers"].clone()
}

#[test]
fn an_approval_covers_the_release_promote_carries_not_the_newer_lock() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "carry");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let v1 = deploy(p.path());
    let r1 = v1["release"].as_str().unwrap().to_owned();
    let v1_web = locked(&p)["web"]["image_id"].clone();
    let dev = p.engine_state_in("dev");

    // v2 is built: the lock moves on, dev still runs v1.
    std::fs::write(p.path().join("services/web/index.html"), "<p>web v2</p>\n").unwrap();
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    let v2_web = locked(&p)["web"]["image_id"].clone();
    assert_ne!(v1_web, v2_web);

    // Unapproved: refused before anything runs, naming the release and how to approve it.
    let run = promote(&p, "dev", "prod");
    run.assert_code(2);
    let images = run
        .stderr
        .split("(images ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{}", run.context()))
        .to_owned();
    assert_eq!(
        run.stderr,
        format!(
            "error: stage `prod` is entered by rule `manual`: no approval by a person recorded for these images (images {images}: release {r1} of local/dev, which promote carries)\n  help: approve release {r1} of local/dev with `cookbook approve --stage prod --site local --release {r1} --by NAME`\n"
        ),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("prod").is_empty());

    // The operator's approval, as the issue tried it: by default it is the release promote
    // carries (dev's current, v1), not the lock's v2.
    let run = run_in(p.path(), &["approve", "--stage", "prod", "--by", "ops"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        format!("approved images {images} (release {r1} of local/dev) for stage prod by ops\n")
    );
    let run = promote(&p, "dev", "prod");
    run.assert_code(0);
    let promoted = json_answer(&run);
    assert_eq!(promoted["stage"], "prod");
    assert_eq!(strings(&promoted["started"]).len(), 3);
    // prod runs exactly dev's images (v1), while the lock names v2.
    let prod = p.engine_state_in("prod");
    for c in ["db", "api", "web"] {
        assert_eq!(prod[c].1, dev[c].1, "{c}");
    }
    assert_eq!(serde_json::json!(prod["web"].1), v1_web);

    // `deploy --stage prod` runs the lock's v2: that one is not approved, and the help names
    // the approval of the lock; with it, v2 goes to prod.
    let run = run_in(p.path(), &["deploy", "--site", "local", "--stage", "prod"]);
    run.assert_code(2);
    assert!(
        run.stderr.starts_with("error: stage `prod` is entered by rule `manual`: no approval by a person recorded for these images (images ")
            && run.stderr.ends_with(")\n  help: approve cookbook.lock's images with `cookbook approve --stage prod --lock --by NAME`\n"),
        "{}",
        run.context()
    );
    let run = run_in(
        p.path(),
        &["approve", "--stage", "prod", "--lock", "--by", "ops"],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .ends_with(" (cookbook.lock) for stage prod by ops\n"),
        "{}",
        run.stdout
    );
    run_in(p.path(), &["deploy", "--site", "local", "--stage", "prod"]).assert_code(0);
    assert_eq!(
        serde_json::json!(p.engine_state_in("prod")["web"].1),
        v2_web
    );

    // The approvals name what they approved.
    let approvals: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".cookbook/deploy/approvals.json")).unwrap(),
    )
    .unwrap();
    let list = approvals["approvals"].as_array().unwrap();
    assert_eq!(
        list[0]["release"],
        serde_json::json!({ "id": r1, "site": "local", "stage": "dev" })
    );
    assert_eq!(list[1].get("release"), None);
}

#[test]
fn promotions_against_the_stage_order_and_approvals_a_rule_does_not_take_are_refused() {
    let p = Project::new("stages", "order");
    let expect = |args: &[&str], stderr: &str| {
        let run = run_in(p.path(), args);
        run.assert_code(2);
        assert_eq!(run.stderr, stderr, "{}", run.context());
    };
    expect(
        &["promote", "--site", "local", "--from", "prod", "--to", "dev"],
        "error: cannot promote from `prod` back to `dev`: `dev` comes before `prod` (dev → prod), and promote moves a release forward only\n  help: `cookbook rollback --site local --stage dev` restores an earlier release of `dev`\n",
    );
    expect(
        &["promote", "--site", "local", "--from", "dev", "--to", "dev"],
        "error: cannot promote from `dev` to `dev`: promote moves a release to a later stage (dev → prod)\n  help: `cookbook deploy --site local --stage dev` deploys a stage again\n",
    );
    expect(
        &["promote", "--site", "local", "--from", "dev", "--to", "qa"],
        "error: unknown stage `qa`\n  help: stages in this cookbook: dev, prod\n",
    );
    // dev is `automatic` (and first): no approval opens it.
    expect(
        &["approve", "--stage", "dev", "--by", "ops"],
        "error: stage `dev` is entered by rule `automatic`: it takes no approval\n  help: `dev` is the first stage: any published images may be deployed there\n",
    );
    // prod is `manual`: a person's approval, never CI's.
    expect(
        &["approve", "--stage", "prod", "--by", "ci-job", "--ci"],
        "error: stage `prod` is entered by rule `manual`: a CI approval does not open it\n  help: a person approves it: leave out `--ci`\n",
    );
    // Nothing recorded in dev yet: no release to approve for prod.
    expect(
        &["approve", "--stage", "prod", "--by", "ops"],
        "error: nothing is recorded in local/dev: there is no release for `promote` to carry into `prod` yet\n  help: deploy it to local/dev first, or approve cookbook.lock's images with `--lock`\n",
    );
    expect(
        &[
            "approve",
            "--stage",
            "prod",
            "--by",
            "ops",
            "--release",
            "0123456789ab",
        ],
        "error: no release `0123456789ab` is recorded for site `local`\n",
    );
    expect(
        &["promote", "--site", "local", "--from", "dev", "--to", "prod"],
        "error: nothing is recorded in local/dev: deploy it there first\n  help: `cookbook releases --site SITE` lists what is recorded\n",
    );
    // With a `ci-approved` prod, a person's approval is the one refused.
    common::deploy::edit(p.path(), |doc| {
        doc["lifecycle"]["progression"]["prod"] = "ci-approved".into();
    });
    expect(
        &["approve", "--stage", "prod", "--by", "alice"],
        "error: stage `prod` is entered by rule `ci-approved`: a person's approval does not open it\n  help: record CI's approval with `--ci` (e.g. after `cookbook verify` passed)\n",
    );
    // Nothing was recorded by any of these.
    assert!(!p.path().join(".cookbook/deploy/approvals.json").exists());
}

#[test]
fn two_deploys_at_once_keep_both_release_records() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "records");
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    run_in(
        p.path(),
        &["approve", "--stage", "prod", "--lock", "--by", "ops"],
    )
    .assert_code(0);
    // Both read the records before their waves and write them after: each must keep the
    // other's.
    let (dev, prod) = std::thread::scope(|scope| {
        let dev = scope.spawn(|| {
            run_in(
                p.path(),
                &[
                    "deploy", "--site", "local", "--stage", "dev", "--format", "json",
                ],
            )
        });
        let prod = scope.spawn(|| {
            run_in(
                p.path(),
                &[
                    "deploy", "--site", "local", "--stage", "prod", "--format", "json",
                ],
            )
        });
        (dev.join().unwrap(), prod.join().unwrap())
    });
    dev.assert_code(0);
    prod.assert_code(0);
    let doc = releases(&p);
    for (stage, run) in [("dev", &dev), ("prod", &prod)] {
        let list = doc["stages"][stage]
            .as_array()
            .unwrap_or_else(|| panic!("no {stage} record: {doc}"));
        assert_eq!(
            list.last().unwrap()["release"],
            json_answer(run)["release"],
            "{doc}"
        );
    }
    // Approvals recorded at once are all kept too.
    std::thread::scope(|scope| {
        for by in ["a", "b", "c", "d"] {
            let p = &p;
            scope.spawn(move || {
                run_in(
                    p.path(),
                    &["approve", "--stage", "prod", "--lock", "--by", by],
                )
                .assert_code(0);
            });
        }
    });
    let approvals: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".cookbook/deploy/approvals.json")).unwrap(),
    )
    .unwrap();
    let mut by: Vec<&str> = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    by.sort();
    assert_eq!(by, vec!["a", "b", "c", "d", "ops"]);
}
