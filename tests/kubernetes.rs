//! Kubernetes sites against the in-process fake API server (tests/fake_kube): the real binary
//! deploys the `shop` example with a Kubernetes site added, and the `shop`-shaped fixture
//! (tests/fixtures/kubernetes: db ← api ← web, worker, with ports and a Namespace) with
//! server-side apply, wave by wave, each wave held until the previous one's rollouts completed;
//! an unchanged redeploy sends nothing; a stuck rollout fails its wave and rolls back; another
//! manager's field is a conflict naming field and manager; prune removes only our objects;
//! `render` is byte-stable and parses as k8s-openapi objects; status reports the cluster.
//!
//! No Docker engine or registry is needed: the lock is written by the test, as `apply` would
//! have (the cluster pulls by digest; the fake pulls nothing).

mod common;
mod fake_kube;

use std::path::Path;

use common::run_in;
use fake_kube::{FakeKube, Recorded};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde_json::{json, Value};

const NS: &str = "shop";

fn digest(n: u32) -> String {
    format!("sha256:{}", format!("{n:x}").repeat(64)[..64].to_owned())
}

/// A copy of the fixture, its kubeconfig pointing at `fake`, and a lock with `digests`.
fn project(fake: &FakeKube, digests: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = common::repo_root().join("tests/fixtures/kubernetes");
    std::fs::create_dir_all(dir.path().join("srv")).unwrap();
    for f in ["cookbook.json", "srv/index.html"] {
        std::fs::copy(from.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("kubeconfig.yaml"), fake.kubeconfig(NS)).unwrap();
    write_lock(dir.path(), digests);
    dir
}

fn write_lock(dir: &Path, digests: &[(&str, String)]) {
    let containers: serde_json::Map<String, Value> = digests
        .iter()
        .map(|(c, d)| {
            (
                (*c).to_owned(),
                json!({ "input_hash": "00".repeat(32), "image": format!("127.0.0.1:5000/shop/{c}:{}", "00".repeat(32)),
                        "tags": [], "digest": d }),
            )
        })
        .collect();
    let lock = json!({ "lock_version": 1, "hash_version": 1, "project": "shop", "containers": containers });
    std::fs::write(dir.join("cookbook.lock"), lock.to_string()).unwrap();
}

fn lock_v1() -> Vec<(&'static str, String)> {
    vec![
        ("db", digest(1)),
        ("api", digest(2)),
        ("web", digest(3)),
        ("worker", digest(4)),
    ]
}

fn edit(dir: &Path, change: impl FnOnce(&mut Value)) {
    let path = dir.join("cookbook.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut doc);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn deploy(dir: &Path, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "deploy", "--site", "cluster", "--stage", "dev", "--format", "json",
    ];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

/// Parses a `--format json` answer and checks it against the published output schema.
fn json(run: &common::Run) -> Value {
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.context()));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("schemas/cookbook-output.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}\n{}", run.context());
    doc
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The requests that change something (`PATCH`, `DELETE`), short form, from `from` on.
fn changes(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.changes())
        .map(Recorded::short)
        .collect()
}

fn position(requests: &[Recorded], short: &str) -> usize {
    requests
        .iter()
        .position(|r| r.short() == short)
        .unwrap_or_else(|| {
            panic!(
                "no {short} in {:#?}",
                requests.iter().map(Recorded::short).collect::<Vec<_>>()
            )
        })
}

fn last_position(requests: &[Recorded], short: &str) -> usize {
    requests
        .iter()
        .rposition(|r| r.short() == short)
        .unwrap_or_else(|| panic!("no {short}"))
}

#[test]
fn shop_deploys_in_waves_and_an_unchanged_redeploy_sends_nothing() {
    let fake = FakeKube::start(3);
    let dir = project(&fake, &lock_v1());
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    let doc = json(&run);
    assert_eq!(
        strings(&doc["started"]),
        vec![
            "shop-dev-db",
            "shop-dev-api",
            "shop-dev-web",
            "shop-dev-worker"
        ]
    );

    let requests = fake.requests();
    // What changed, in order: the namespace, then each wave's objects, bottom-up.
    assert_eq!(
        changes(&requests),
        vec![
            "PATCH namespaces/shop",
            "PATCH deployments/shop-dev-db",
            "PATCH deployments/shop-dev-api",
            "PATCH services/shop-dev-api",
            "PATCH deployments/shop-dev-web",
            "PATCH services/shop-dev-web",
            "PATCH deployments/shop-dev-worker",
        ]
    );
    for r in requests.iter().filter(|r| r.method == "PATCH") {
        assert!(r.query.contains("fieldManager=cookbook"), "{r:?}");
        assert!(!r.query.contains("force=true"), "{r:?}");
    }
    // Each wave waits for the previous one's rollouts: the last poll of a wave's Deployment
    // found it complete, after polls that found it progressing, before the next wave's first
    // PATCH.
    for (done, next) in [
        ("shop-dev-db", "PATCH deployments/shop-dev-api"),
        ("shop-dev-api", "PATCH deployments/shop-dev-web"),
        ("shop-dev-api", "PATCH deployments/shop-dev-worker"),
    ] {
        let get = format!("GET deployments/{done}");
        let polls: Vec<&Recorded> = requests.iter().filter(|r| r.short() == get).collect();
        assert_eq!(polls.last().unwrap().rollout.as_deref(), Some("complete"));
        assert!(
            polls
                .iter()
                .any(|r| r.rollout.as_deref() == Some("progressing")),
            "{polls:?}"
        );
        assert!(last_position(&requests, &get) < position(&requests, next));
    }
    // web and worker are one wave: both applied before either is waited for.
    assert!(
        position(&requests, "PATCH deployments/shop-dev-worker")
            < position(&requests, "GET deployments/shop-dev-web")
    );

    // The objects as applied: by digest, the stage's settings, our labels, our manager.
    let api: Deployment =
        serde_json::from_value(fake.object("deployments", NS, "shop-dev-api").unwrap()).unwrap();
    let spec = api.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some(format!("127.0.0.1:5000/shop/api@{}", digest(2)).as_str())
    );
    assert_eq!(container.env.as_ref().unwrap()[0].name, "MODE");
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["cpu"].0, "500m");
    assert_eq!(limits["memory"].0, "64Mi");
    let readiness = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.http_get.as_ref().unwrap().path.as_deref(),
        Some("/index.html")
    );
    let labels = api.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "cookbook");
    assert_eq!(labels["io.cookbook.site"], "cluster");
    let managers: Vec<&str> = api
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, vec!["cookbook"]);

    // Unchanged: lists and polls, but sends no change at all.
    let before = fake.requests().len();
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    let doc = json(&run);
    assert_eq!(strings(&doc["started"]), Vec::<String>::new());
    assert_eq!(doc["unchanged"].as_array().unwrap().len(), 4);
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());

    // The status of the stage, in sync; a pod's restarts and a warning event are reported.
    fake.seed_pod(
        NS,
        "shop-dev-api-5d9f-abcde",
        json!({"app.kubernetes.io/instance": "shop-dev-api"}),
        2,
    );
    fake.seed_event(
        NS,
        "shop-dev-api-5d9f-abcde",
        "BackOff",
        "Back-off restarting failed container",
        "2026-01-01T00:00:00Z",
    );
    fake.seed_event(NS, "other-1", "BackOff", "not ours", "2026-01-01T00:00:00Z");
    let run = run_in(
        dir.path(),
        &[
            "status", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(0);
    let doc = json(&run);
    assert_eq!(doc["in_sync"], true, "{doc}");
    let api = &doc["containers"][1];
    assert_eq!(api["name"], "shop-dev-api");
    assert_eq!(
        (
            api["replicas"].as_i64(),
            api["ready_replicas"].as_i64(),
            api["restarts"].as_i64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(api["running_digest"], digest(2));
    assert_eq!(
        strings(&api["warnings"]),
        vec!["BackOff: Back-off restarting failed container"]
    );
    let run = run_in(
        dir.path(),
        &["status", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("\n    warning: BackOff: Back-off restarting failed container\n"),
        "{}",
        run.stdout
    );
    // Someone sets another image by hand: drift.
    fake.update(
        "deployments",
        NS,
        "shop-dev-web",
        "kubectl-set",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
    );
    let run = run_in(
        dir.path(),
        &[
            "status", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    let doc = json(&run);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(doc["containers"][2]["drift"], true);
    assert_eq!(doc["containers"][2]["running_digest"], Value::Null);
}

#[test]
fn a_stuck_rollout_fails_its_wave_and_rolls_back_to_the_previous_release() {
    let fake = FakeKube::start(2);
    let dir = project(&fake, &lock_v1());
    let first = deploy(dir.path(), &[]);
    first.assert_code(0);
    let good = json(&first)["release"].as_str().unwrap().to_owned();

    // A new api image whose rollout never completes.
    let mut lock = lock_v1();
    lock[1].1 = digest(9);
    write_lock(dir.path(), &lock);
    fake.stuck(&digest(9));
    let before = fake.requests().len();
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.ends_with(&format!(
            " to cluster/dev stopped: wave 2: shop-dev-api is not healthy: its rollout exceeded its progress deadline (60s): ReplicaSet \"shop-dev-api-7c9d\" has timed out progressing.; rolled back to release {good} (recreated: shop-dev-api)\n"
        )),
        "{}",
        run.context()
    );
    // The new api was applied, never web or worker (wave 3); then the previous api again.
    let requests = fake.requests()[before..].to_vec();
    let api = [
        "PATCH deployments/shop-dev-api",
        "PATCH services/shop-dev-api",
    ];
    assert_eq!(changes(&requests), [api, api].concat());
    let api = fake.object("deployments", NS, "shop-dev-api").unwrap();
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("127.0.0.1:5000/shop/api@{}", digest(2))
    );
    // The restore is recorded; the stage's current release is the good one.
    let run = run_in(
        dir.path(),
        &["releases", "--site", "cluster", "--format", "json"],
    );
    run.assert_code(0);
    let doc = json(&run);
    let dev = doc["stages"]["dev"].as_array().unwrap();
    assert_eq!(dev.last().unwrap()["release"], good.as_str());
    assert_eq!(dev.last().unwrap()["current"], true);
}

#[test]
fn a_field_owned_by_another_manager_is_a_conflict_naming_both() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    // Someone scales api by hand: their manager now owns .spec.replicas.
    fake.update(
        "deployments",
        NS,
        "shop-dev-api",
        "kubectl-scale",
        json!({"spec": {"replicas": 5}}),
    );
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: Deployment shop-dev-api: server-side apply conflict: field .spec.replicas is owned by manager \"kubectl-scale\"; cookbook leaves fields other managers own alone (run with --force-conflicts to take them over)\n",
        "{}",
        run.context()
    );
    assert_eq!(
        fake.object("deployments", NS, "shop-dev-api").unwrap()["spec"]["replicas"],
        5
    );
    // Forced: logged, applied with force=true, and the field is ours again.
    let before = fake.requests().len();
    let run = deploy(dir.path(), &["--force-conflicts"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr,
        "warning: --force-conflicts: server-side apply takes over the fields other field managers own\n"
    );
    let requests = fake.requests();
    let patches: Vec<&Recorded> = requests[before..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(!patches.is_empty());
    assert!(
        patches.iter().all(|r| r.query.contains("force=true")),
        "{patches:?}"
    );
    let api = fake.object("deployments", NS, "shop-dev-api").unwrap();
    assert_eq!(api["spec"]["replicas"], 2);
    let managers: Vec<&str> = api["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["cookbook"]);
}

#[test]
fn prune_removes_only_our_objects_of_containers_that_left() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    // A hand-made Deployment and Service in the same namespace, without our labels.
    fake.update(
        "deployments",
        NS,
        "legacy",
        "kubectl-create",
        json!({"spec": {"replicas": 1}}),
    );
    fake.update(
        "services",
        NS,
        "shop-dev-legacy",
        "kubectl-create",
        json!({"spec": {"ports": [{"port": 1}]}}),
    );
    // worker leaves the cookbook.
    edit(dir.path(), |doc| {
        doc["containers"].as_object_mut().unwrap().remove("worker");
        doc["federation"]["sites"]["cluster"]["containers"] = json!(["web"]);
    });
    let before = fake.requests().len();
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(strings(&json(&run)["removed"]), vec!["shop-dev-worker"]);
    assert_eq!(
        changes(&fake.requests()[before..]),
        vec!["DELETE deployments/shop-dev-worker"]
    );
    assert_eq!(
        fake.names("deployments", NS),
        vec!["legacy", "shop-dev-api", "shop-dev-db", "shop-dev-web"]
    );
    assert_eq!(
        fake.names("services", NS),
        vec!["shop-dev-api", "shop-dev-legacy", "shop-dev-web"]
    );
}

#[test]
fn render_is_byte_stable_and_parses_as_kubernetes_objects() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    let args = ["render", "--site", "cluster", "--stage", "dev"];
    let first = run_in(dir.path(), &args);
    first.assert_code(0);
    let second = run_in(dir.path(), &args);
    assert_eq!(first.stdout, second.stdout);
    // Every document is the k8s-openapi type its kind names, and nothing is lost in the round
    // trip through it.
    let mut kinds = Vec::new();
    for doc in first.stdout.split("---\n").filter(|d| !d.is_empty()) {
        let value: Value = yaml_serde::from_str(doc).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        let back = match kind.as_str() {
            "Namespace" => serde_json::to_value(yaml_serde::from_str::<Namespace>(doc).unwrap()),
            "Deployment" => serde_json::to_value(yaml_serde::from_str::<Deployment>(doc).unwrap()),
            "Service" => serde_json::to_value(yaml_serde::from_str::<Service>(doc).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
        .unwrap();
        assert_eq!(back, value);
        kinds.push(format!(
            "{kind}/{}",
            value["metadata"]["name"].as_str().unwrap()
        ));
    }
    assert_eq!(
        kinds,
        vec![
            "Namespace/shop",
            "Deployment/shop-dev-db",
            "Deployment/shop-dev-api",
            "Service/shop-dev-api",
            "Deployment/shop-dev-web",
            "Service/shop-dev-web",
            "Deployment/shop-dev-worker",
        ]
    );
    // JSON: a v1 List of the same objects.
    let run = run_in(
        dir.path(),
        &[
            "render", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        run_in(
            dir.path(),
            &["render", "--site", "cluster", "--stage", "dev", "--format", "json"]
        )
        .stdout
    );
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    let web: Service = serde_json::from_value(items[5].clone()).unwrap();
    let port = &web.spec.unwrap().ports.unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref()), (80, Some("TCP")));
    // Rendering asks no cluster.
    assert!(fake.requests().is_empty());
}

#[test]
fn a_kubernetes_site_takes_the_same_commands_as_a_docker_site() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    // migrate: already 1.1, nothing to change.
    let run = run_in(dir.path(), &["migrate"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(dir.path().join("cookbook.json")).unwrap()
    );
    run_in(dir.path(), &["validate"]).assert_code(0);
    run_in(
        dir.path(),
        &["render", "--site", "cluster", "--stage", "dev"],
    )
    .assert_code(0);
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(0);
    assert!(
        run.stdout.starts_with("deployed release ")
            && run
                .stdout
                .contains(" of shop to cluster/dev: 4 started, 0 unchanged, 0 removed\n"),
        "{}",
        run.stdout
    );
    // prod is manual: refused without an approval, as on Docker.
    let run = run_in(
        dir.path(),
        &[
            "promote", "--site", "cluster", "--from", "dev", "--to", "prod",
        ],
    );
    run.assert_code(1);
    run_in(dir.path(), &["approve", "--stage", "prod", "--by", "alice"]).assert_code(0);
    run_in(
        dir.path(),
        &[
            "promote", "--site", "cluster", "--from", "dev", "--to", "prod",
        ],
    )
    .assert_code(0);
    assert!(fake
        .names("deployments", NS)
        .contains(&"shop-prod-api".to_owned()));
    // rollback to the dev release before the current one: there is none.
    run_in(
        dir.path(),
        &["rollback", "--site", "cluster", "--stage", "dev"],
    )
    .assert_code(2);

    // A 1.0 cookbook migrates to 1.1; with a Kubernetes site it validates and deploys.
    let old = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(old.path().join("srv")).unwrap();
    std::fs::copy(
        dir.path().join("srv/index.html"),
        old.path().join("srv/index.html"),
    )
    .unwrap();
    let one_oh = json!({
        "manifest_version": "1.0",
        "project": { "name": "shop" },
        "applications": { "site": { "source": "srv" } },
        "containers": { "db": { "base_image": "cookbook-test/busybox:latest", "applications": ["site"] } },
        "federation": { "sites": { "cluster": { "containers": ["db"] } } }
    });
    std::fs::write(
        old.path().join("cookbook.json"),
        serde_json::to_string_pretty(&one_oh).unwrap(),
    )
    .unwrap();
    run_in(old.path(), &["migrate", "--write"]).assert_code(0);
    edit(old.path(), |doc| {
        assert_eq!(doc["manifest_version"], "1.1");
        doc["federation"]["sites"]["cluster"]["target"] =
            json!({ "kubernetes": { "namespace": "legacy", "kubeconfig": "kube/config" } });
        doc["lifecycle"] = json!({ "stages": ["dev"] });
    });
    std::fs::create_dir_all(old.path().join("kube")).unwrap();
    std::fs::write(old.path().join("kube/config"), fake.kubeconfig("legacy")).unwrap();
    write_lock(old.path(), &[("db", digest(5))]);
    run_in(old.path(), &["validate"]).assert_code(0);
    let run = run_in(
        old.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(0);
    assert_eq!(fake.names("deployments", "legacy"), vec!["shop-dev-db"]);
}

#[test]
fn an_unreachable_cluster_and_a_bad_kubeconfig_are_reported() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    let port = fake.addr.port();
    drop(fake);
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(3);
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot connect to the Kubernetes API at http://127.0.0.1:{port}/"
        )),
        "{}",
        run.context()
    );
    std::fs::remove_file(dir.path().join("kubeconfig.yaml")).unwrap();
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .starts_with("error: cannot use the Kubernetes configuration "),
        "{}",
        run.context()
    );
    // A name that cannot be a Kubernetes object's: refused by validation, located.
    edit(dir.path(), |doc| {
        doc["containers"]["web"]["depends_on"] = json!(["api", "db"]);
        let web = doc["containers"]["web"].clone();
        doc["containers"]["web_2"] = web;
        doc["federation"]["sites"]["cluster"]["containers"] = json!(["web", "web_2", "worker"]);
    });
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("site `cluster` would name container `web_2`'s Kubernetes objects in stage `dev` \"shop-dev-web_2\", which is not a DNS-1123 label"),
        "{}",
        run.context()
    );
}

#[test]
fn the_shop_example_deploys_to_a_kubernetes_site_in_waves() {
    let fake = FakeKube::start(2);
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("shop", dir.path());
    std::fs::write(dir.path().join("kubeconfig.yaml"), fake.kubeconfig(NS)).unwrap();
    edit(dir.path(), |doc| {
        doc["federation"]["sites"]["cluster"] = json!({
            "type": "gcp",
            "target": { "kubernetes": { "namespace": NS, "kubeconfig": "kubeconfig.yaml" } },
            "stages": ["dev"],
            "containers": ["web", "worker"]
        });
    });
    write_lock(dir.path(), &lock_v1());
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(
        strings(&json(&run)["started"]),
        vec![
            "shop-dev-db",
            "shop-dev-api",
            "shop-dev-web",
            "shop-dev-worker"
        ]
    );
    let requests = fake.requests();
    assert_eq!(
        changes(&requests),
        vec![
            "PATCH deployments/shop-dev-db",
            "PATCH deployments/shop-dev-api",
            "PATCH deployments/shop-dev-web",
            "PATCH deployments/shop-dev-worker",
        ]
    );
    // db's rollout complete before api is applied, api's before web and worker.
    for (done, next) in [
        ("shop-dev-db", "PATCH deployments/shop-dev-api"),
        ("shop-dev-api", "PATCH deployments/shop-dev-web"),
    ] {
        let get = format!("GET deployments/{done}");
        let last = last_position(&requests, &get);
        assert_eq!(requests[last].rollout.as_deref(), Some("complete"));
        assert!(last < position(&requests, next));
    }
    let worker = fake.object("deployments", NS, "shop-dev-worker").unwrap();
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{ "name": "WORKER_INTERVAL", "value": "5" }])
    );
    // Unchanged: nothing sent.
    let before = fake.requests().len();
    deploy(dir.path(), &[]).assert_code(0);
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
}
