//! Kubernetes sites against the in-process fake API server (tests/it/fake_kube): the real binary
//! deploys the `shop` example with a Kubernetes site added, the `shop`-shaped fixture
//! (tests/fixtures/kubernetes: db ← api ← web, worker, with ports and a Namespace) and the
//! gallery's pod with server-side apply, wave by wave, each wave held (by WATCH, never a poll)
//! until the previous one's rollouts completed; an unchanged redeploy sends nothing; a stuck
//! rollout, an API error or a conflict fails its wave and rolls back; another manager's field is
//! a conflict naming field and manager, its list entries are kept; a missing Secret and what the
//! cluster lacks (by discovery: `site detect`) are refused before anything is sent; prune
//! removes only our objects; `render` is byte-stable and parses as k8s-openapi objects; status
//! reports the cluster.
//!
//! No Docker engine or registry is needed: the lock is written by the test, as `apply` would
//! have (the cluster pulls by digest; the fake pulls nothing).

use crate::common;
use crate::fake_kube;

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

/// How many requests the fake had answered when `name`'s rollout last reached `state`.
fn reached(fake: &FakeKube, name: &str, state: &str) -> usize {
    fake.rollouts()
        .iter()
        .rev()
        .find(|r| r.name == name && r.state == state)
        .unwrap_or_else(|| panic!("{name} never {state}: {:?}", fake.rollouts()))
        .after_requests
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
            "shop-cluster-dev-db",
            "shop-cluster-dev-api",
            "shop-cluster-dev-web",
            "shop-cluster-dev-worker"
        ]
    );

    let requests = fake.requests();
    // What changed, in order: the namespace, then each wave's objects, bottom-up.
    assert_eq!(
        changes(&requests),
        vec![
            "PATCH namespaces/shop",
            "PATCH deployments/shop-cluster-dev-db",
            "PATCH services/db",
            "PATCH deployments/shop-cluster-dev-api",
            "PATCH services/api",
            "PATCH poddisruptionbudgets/shop-cluster-dev-api",
            "PATCH deployments/shop-cluster-dev-web",
            "PATCH services/web",
            "PATCH deployments/shop-cluster-dev-worker",
        ]
    );
    for r in requests.iter().filter(|r| r.method == "PATCH") {
        assert!(r.query.contains("fieldManager=cookbook%2Fcluster"), "{r:?}");
        assert!(!r.query.contains("force=true"), "{r:?}");
    }
    // Each wave waits for the previous one's rollouts, by WATCH: a wave's Deployment was
    // watched, went through progressing to complete, and only then was the next wave applied.
    for (done, next) in [
        (
            "shop-cluster-dev-db",
            "PATCH deployments/shop-cluster-dev-api",
        ),
        (
            "shop-cluster-dev-api",
            "PATCH deployments/shop-cluster-dev-web",
        ),
        (
            "shop-cluster-dev-api",
            "PATCH deployments/shop-cluster-dev-worker",
        ),
    ] {
        // The watcher's LIST by name (then its WATCH, unless the list found it complete).
        let list = format!("LIST deployments/{done}");
        assert!(position(&requests, &list) < position(&requests, next));
        assert!(reached(&fake, done, "progressing") < reached(&fake, done, "complete"));
        assert!(reached(&fake, done, "complete") <= position(&requests, next));
    }
    // web and worker are one wave: both applied before either is waited for.
    assert!(
        position(&requests, "PATCH deployments/shop-cluster-dev-worker")
            < position(&requests, "LIST deployments/shop-cluster-dev-web")
    );
    // Before anything was applied, each name the stage's objects take was asked for (and found
    // free): a namesake that is not ours would have stopped the deploy there.
    let first_patch = requests
        .iter()
        .position(|r| r.method == "PATCH" && !r.path.ends_with("/namespaces/shop"))
        .unwrap();
    for unit in ["db", "api", "web", "worker"] {
        let get = format!("GET deployments/shop-cluster-dev-{unit}");
        let asked = position(&requests, &get);
        assert!(
            asked < first_patch && requests[asked].status == 404,
            "{:?}",
            requests[asked]
        );
    }

    // The objects as applied: by digest, the stage's settings, our labels, our manager.
    let api: Deployment = serde_json::from_value(
        fake.object("deployments", NS, "shop-cluster-dev-api")
            .unwrap(),
    )
    .unwrap();
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
    assert_eq!(labels["dev.cookbook.site"], "cluster");
    let managers: Vec<&str> = api
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, vec!["cookbook/cluster"]);

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
        "shop-cluster-dev-api-5d9f-abcde",
        json!({"app.kubernetes.io/instance": "shop-cluster-dev-api"}),
        2,
    );
    fake.seed_event(
        NS,
        "shop-cluster-dev-api-5d9f-abcde",
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
    assert_eq!(api["name"], "shop-cluster-dev-api");
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
        "shop-cluster-dev-web",
        "kubectl-set",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
    );
    let run = run_in(
        dir.path(),
        &[
            "status", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(1);
    let doc = json(&run);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(doc["problems"][0]["kind"], "drifted", "{doc}");
    assert_eq!(doc["containers"][2]["drift"], true);
    assert_eq!(doc["containers"][2]["running_digest"], Value::Null);
}

/// An API error inside a wave (the server refuses the new api's apply, as an admission webhook
/// would) fails the wave like an unhealthy rollout: the stage goes back to the previous release,
/// and the report says so (issue 20, item 5).
#[test]
fn an_api_error_in_a_wave_rolls_back_to_the_previous_release() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    let first = deploy(dir.path(), &[]);
    first.assert_code(0);
    let good = json(&first)["release"].as_str().unwrap().to_owned();
    // v2: new api and web images; web's apply (wave 3) is refused after api (wave 2) rolled out.
    let mut lock = lock_v1();
    lock[1].1 = digest(8);
    lock[2].1 = digest(9);
    write_lock(dir.path(), &lock);
    fake.refuse_next_apply("deployments", "shop-cluster-dev-web");
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains(" to cluster/dev stopped: wave 3: ")
            && run
                .stderr
                .contains("admission webhook \"policy.example\" denied the request")
            && run.stderr.ends_with(&format!(
                "; rolled back to release {good} (recreated: shop-cluster-dev-api)\n"
            )),
        "{}",
        run.context()
    );
    let api = fake
        .object("deployments", NS, "shop-cluster-dev-api")
        .unwrap();
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("127.0.0.1:5000/shop/api@{}", digest(2))
    );
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
    // What the kubelet says of its pod's readiness probe: quoted in the failure, escaped.
    fake.seed_event(
        NS,
        "shop-cluster-dev-api-7c9d-xyz12",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503\n",
        "2026-01-01T00:00:00Z",
    );
    let before = fake.requests().len();
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.ends_with(&format!(
            " to cluster/dev stopped: wave 2: shop-cluster-dev-api is not healthy: its rollout exceeded its progress deadline (60s): ReplicaSet \"shop-cluster-dev-api-7c9d\" has timed out progressing.; its latest warning: Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503; rolled back to release {good} (recreated: shop-cluster-dev-api)\n"
        )),
        "{}",
        run.context()
    );
    // The new api was applied, never web or worker (wave 3); then the previous api again.
    let requests = fake.requests()[before..].to_vec();
    let api = [
        "PATCH deployments/shop-cluster-dev-api",
        "PATCH services/api",
        "PATCH poddisruptionbudgets/shop-cluster-dev-api",
    ];
    assert_eq!(changes(&requests), [api, api].concat());
    let api = fake
        .object("deployments", NS, "shop-cluster-dev-api")
        .unwrap();
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
        "shop-cluster-dev-api",
        "kubectl-scale",
        json!({"spec": {"replicas": 5}}),
    );
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    // A failure inside a wave, like any other (issue 20): the deploy says where it stopped and
    // what it did about it (the stage's only release is the one being deployed).
    assert!(
        run.stderr.ends_with(
            " to cluster/dev stopped: wave 2: Deployment shop-cluster-dev-api: server-side apply conflict: field .spec.replicas is owned by manager \"kubectl-scale\"; cookbook leaves fields other managers own alone (run with --force-conflicts to take them over); no earlier release of this stage to roll back to\n"
        ),
        "{}",
        run.context()
    );
    assert_eq!(
        fake.object("deployments", NS, "shop-cluster-dev-api")
            .unwrap()["spec"]["replicas"],
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
    let api = fake
        .object("deployments", NS, "shop-cluster-dev-api")
        .unwrap();
    assert_eq!(api["spec"]["replicas"], 2);
    let managers: Vec<&str> = api["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["cookbook/cluster"]);
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
        "shop-cluster-dev-legacy",
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
    assert_eq!(
        strings(&json(&run)["removed"]),
        vec!["deployment/shop-cluster-dev-worker"]
    );
    assert_eq!(
        changes(&fake.requests()[before..]),
        vec!["DELETE deployments/shop-cluster-dev-worker"]
    );
    assert_eq!(
        fake.names("deployments", NS),
        vec![
            "legacy",
            "shop-cluster-dev-api",
            "shop-cluster-dev-db",
            "shop-cluster-dev-web"
        ]
    );
    assert_eq!(
        fake.names("services", NS),
        vec!["api", "db", "shop-cluster-dev-legacy", "web"]
    );
}

/// Checks YAML documents against Kubernetes' own OpenAPI schemas, strictly (no unknown field),
/// with `kubernetes-validate` (PyPI), which scripts/test.sh installs. Without it the check is
/// skipped with a note, or fails when the services are required (as under scripts/test.sh).
fn kubernetes_validate(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    kubernetes_validate_file(&file, &format!("the rendered objects:\n{yaml}"));
}

/// [`kubernetes_validate`] of a file; `what` names it in a failure.
pub(crate) fn kubernetes_validate_file(file: &std::path::Path, what: &str) {
    let out = match std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let note = "kubernetes-validate is not installed (`pip install kubernetes-validate`)";
            assert!(
                std::env::var("COOKBOOK_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "required here: {note}"
            );
            eprintln!("SKIPPED the Kubernetes schema check: {note}");
            return;
        }
        Err(e) => panic!("kubernetes-validate: {e}"),
    };
    assert!(
        out.status.success(),
        "kubernetes-validate refused {what}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
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
            "PodDisruptionBudget" => serde_json::to_value(
                yaml_serde::from_str::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(doc)
                    .unwrap(),
            ),
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
            "Deployment/shop-cluster-dev-db",
            "Service/db",
            "Deployment/shop-cluster-dev-api",
            "Service/api",
            "PodDisruptionBudget/shop-cluster-dev-api",
            "Deployment/shop-cluster-dev-web",
            "Service/web",
            "Deployment/shop-cluster-dev-worker",
        ]
    );
    kubernetes_validate(&first.stdout);
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
    assert_eq!(items.len(), 9);
    let web: Service = serde_json::from_value(items[7].clone()).unwrap();
    assert_eq!(web.metadata.name.as_deref(), Some("web"));
    // The container's port, never the Docker site's host port (80:8080).
    let port = &web.spec.unwrap().ports.unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref()), (8080, Some("TCP")));
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
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            " of cluster/dev with `cookbook approve --stage prod --site cluster --release "
        ),
        "{}",
        run.context()
    );
    run_in(dir.path(), &["approve", "--stage", "prod", "--by", "alice"]).assert_code(0);
    // Approved, prod would take the Services dev holds in the site's one namespace (a Service
    // is named like its container): refused before anything is sent, naming them.
    let before = fake.requests().len();
    let run = run_in(
        dir.path(),
        &[
            "promote", "--site", "cluster", "--from", "dev", "--to", "prod",
        ],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "Service db (labelled dev.cookbook.container=db, dev.cookbook.project=shop, dev.cookbook.site=cluster, dev.cookbook.stage=dev;"
        ),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
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
        "packaging": { "registry": "127.0.0.1:5000/shop" },
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
    assert_eq!(
        fake.names("deployments", "legacy"),
        vec!["shop-cluster-dev-db"]
    );
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
        run.stderr.contains("site `cluster` would name container `web_2`'s Kubernetes objects in stage `dev` \"shop-cluster-dev-web_2\", which is not a DNS-1123 label"),
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
            "shop-cluster-dev-db",
            "shop-cluster-dev-api",
            "shop-cluster-dev-web",
            "shop-cluster-dev-worker"
        ]
    );
    let requests = fake.requests();
    assert_eq!(
        changes(&requests),
        vec![
            "PATCH deployments/shop-cluster-dev-db",
            "PATCH services/db",
            "PATCH deployments/shop-cluster-dev-api",
            "PATCH services/api",
            "PATCH deployments/shop-cluster-dev-web",
            "PATCH services/web",
            "PATCH deployments/shop-cluster-dev-worker",
        ]
    );
    // db's rollout complete before api is applied, api's before web and worker.
    for (done, next) in [
        (
            "shop-cluster-dev-db",
            "PATCH deployments/shop-cluster-dev-api",
        ),
        (
            "shop-cluster-dev-api",
            "PATCH deployments/shop-cluster-dev-web",
        ),
    ] {
        assert!(reached(&fake, done, "complete") <= position(&requests, next));
    }
    let worker = fake
        .object("deployments", NS, "shop-cluster-dev-worker")
        .unwrap();
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{ "name": "WORKER_INTERVAL", "value": "5" }])
    );
    // Unchanged: nothing sent.
    let before = fake.requests().len();
    deploy(dir.path(), &[]).assert_code(0);
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
}

/// Adds a second site, `edge`, to the fixture: the same cluster and namespace, dev only, running
/// web (so db and api too).
fn add_edge_site(dir: &Path) {
    edit(dir, |doc| {
        doc["federation"]["sites"]["edge"] = json!({
            "type": "edge",
            "target": { "kubernetes": { "namespace": NS, "kubeconfig": "kubeconfig.yaml" } },
            "stages": ["dev"],
            "containers": ["web"]
        });
    });
}

fn labels_of(object: &Value) -> (String, String) {
    let labels = &object["metadata"]["labels"];
    (
        labels["dev.cookbook.site"].as_str().unwrap().to_owned(),
        labels["dev.cookbook.container"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn managers_of(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap().to_owned())
        .collect()
}

/// Two sites sharing a namespace keep their Deployments apart (the site is in their names),
/// but meet at the Services named like their containers (so that `db` resolves as on Docker):
/// the second site is refused before anything is sent, naming the first one's Services.
#[test]
fn two_sites_sharing_a_namespace_meet_at_the_services_named_like_containers() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    add_edge_site(dir.path());
    deploy(dir.path(), &[]).assert_code(0);
    let before = fake.requests().len();
    let run = run_in(dir.path(), &["deploy", "--site", "edge", "--stage", "dev"]);
    run.assert_code(1);
    for c in ["db", "api", "web"] {
        assert!(
            run.stderr.contains(&format!(
                "Service {c} (labelled dev.cookbook.container={c}, dev.cookbook.project=shop, dev.cookbook.site=cluster, dev.cookbook.stage=dev; field managers: cookbook/cluster)"
            )),
            "{}",
            run.context()
        );
    }
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
    // cluster's objects are as it left them: its redeploy finds them unchanged.
    for c in ["db", "api", "web"] {
        let name = format!("shop-cluster-dev-{c}");
        let d = fake.object("deployments", NS, &name).unwrap();
        assert_eq!(
            labels_of(&d),
            ("cluster".to_owned(), c.to_owned()),
            "{name}"
        );
        assert_eq!(managers_of(&d), vec!["cookbook/cluster"], "{name}");
    }
    let before = fake.requests().len();
    deploy(dir.path(), &[]).assert_code(0);
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
}

#[test]
fn an_object_with_our_name_but_not_our_labels_is_refused_not_taken_over() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    fake.apply(
        "namespaces",
        "",
        NS,
        "kubectl-create",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    // Someone's own Deployment under the name cookbook would give api (with no field ours would
    // set: server-side apply alone would merge into it without a conflict, as the version
    // before this check did), and a Service labelled as another site's, written by that site's
    // field manager.
    fake.update(
        "deployments",
        NS,
        "shop-cluster-dev-api",
        "kubectl-create",
        json!({"metadata": {"labels": {"app": "theirs"}}, "spec": {"paused": true}}),
    );
    fake.apply(
        "services",
        NS,
        "web",
        "cookbook/edge",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": NS,
                            "labels": {"io.cookbook.project": "shop", "io.cookbook.site": "edge",
                                       "io.cookbook.stage": "dev", "io.cookbook.container": "web"}},
               "spec": {"ports": [{"port": 81}]}}),
    );
    // What they wrote (the fake's controller fills a Deployment's status in, which gives it a
    // new resourceVersion: neither is theirs to compare).
    let written = |resource: &str, name: &str| {
        let mut o = fake.object(resource, NS, name).unwrap();
        o["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        (o["metadata"].clone(), o["spec"].clone())
    };
    let theirs = (
        written("deployments", "shop-cluster-dev-api"),
        written("services", "web"),
    );
    let before = fake.requests().len();
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: namespace `shop` has objects named as this site's that are not its own: \
         Deployment shop-cluster-dev-api (no cookbook labels; field managers: kubectl-create); \
         Service web (labelled io.cookbook.container=web, io.cookbook.project=shop, \
         io.cookbook.site=edge, io.cookbook.stage=dev; field managers: cookbook/edge); cookbook \
         applies over, replaces and deletes only objects carrying its project, site, stage and \
         container labels (rename or remove them, or deploy this site to another namespace)\n",
        "{}",
        run.context()
    );
    // Nothing was sent, and both objects are as their owners left them.
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
    assert_eq!(
        (
            written("deployments", "shop-cluster-dev-api"),
            written("services", "web"),
        ),
        theirs
    );
    // status says the Deployment of that name is not ours, rather than reporting it as api.
    let run = run_in(
        dir.path(),
        &[
            "status", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    // Not as the lock says: exit 1, each problem named.
    run.assert_code(1);
    let doc = json(&run);
    assert_eq!(doc["ok"], false);
    assert!(
        doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["container"] == "api" && p["kind"] == "foreign"),
        "{doc}"
    );
    assert_eq!(doc["containers"][1]["name"], "shop-cluster-dev-api");
    assert_eq!(doc["containers"][1]["state"], "foreign");
    assert_eq!(doc["containers"][1]["running_digest"], Value::Null);
    // Once they are gone, db's name is taken by an object of this very stage, but labelled as
    // web's: this site's, yet not db's, so not applied over either.
    assert!(fake.delete("deployments", NS, "shop-cluster-dev-api"));
    assert!(fake.delete("services", NS, "web"));
    fake.apply(
        "deployments",
        NS,
        "shop-cluster-dev-db",
        "cookbook/cluster",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shop-cluster-dev-db", "namespace": NS,
                            "labels": {"io.cookbook.project": "shop", "io.cookbook.site": "cluster",
                                       "io.cookbook.stage": "dev", "io.cookbook.container": "web"}},
               "spec": {"paused": true}}),
    );
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(
            "error: namespace `shop` has an object named as this site's that is not its own: \
             Deployment shop-cluster-dev-db (labelled io.cookbook.container=web, "
        ),
        "{}",
        run.context()
    );
    // Gone too, the deploy goes through.
    assert!(fake.delete("deployments", NS, "shop-cluster-dev-db"));
    deploy(dir.path(), &[]).assert_code(0);
}

/// Issue 21: deploys moved from `io.cookbook.*` labels to `dev.cookbook.*`. Objects an earlier
/// version applied under the old labels are still the stage's own: web's Deployment is applied
/// again (its old config hash is not trusted), which moves it to the new labels (server-side
/// apply drops the fields the site's manager no longer sends), and a Deployment of a container
/// the stage no longer has, found by the old labels, is pruned; neither is refused as a namesake.
#[test]
fn objects_labelled_the_old_way_are_ours_applied_again_and_pruned() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    fake.apply(
        "namespaces",
        "",
        NS,
        "kubectl-create",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    for (name, container) in [
        ("shop-cluster-dev-web", "web"),
        ("shop-cluster-dev-gone", "gone"),
    ] {
        fake.apply(
            "deployments",
            NS,
            name,
            "cookbook/cluster",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": name, "namespace": NS,
                                "labels": {"io.cookbook.project": "shop", "io.cookbook.site": "cluster",
                                           "io.cookbook.stage": "dev", "io.cookbook.container": container},
                                "annotations": {"io.cookbook.config-hash": "0".repeat(64)}},
                   "spec": {"replicas": 1}}),
        );
    }
    deploy(dir.path(), &[]).assert_code(0);
    let web = fake
        .object("deployments", NS, "shop-cluster-dev-web")
        .unwrap();
    assert_eq!(labels_of(&web), ("cluster".to_owned(), "web".to_owned()));
    assert_eq!(
        web["metadata"]["labels"]["io.cookbook.site"],
        Value::Null,
        "{web}"
    );
    assert_eq!(
        web["metadata"]["annotations"]["io.cookbook.config-hash"],
        Value::Null,
        "{web}"
    );
    assert!(fake
        .object("deployments", NS, "shop-cluster-dev-gone")
        .is_none());
}

/// A Service goes with its container: when web leaves the site, its Deployment and the
/// Service named like it are pruned; api's and db's, which worker still needs, stay.
#[test]
fn a_service_is_pruned_with_its_container() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    assert_eq!(fake.names("services", NS), vec!["api", "db", "web"]);
    edit(dir.path(), |doc| {
        doc["federation"]["sites"]["cluster"]["containers"] = json!(["worker"]);
    });
    let before = fake.requests().len();
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    let doc = json(&run);
    assert_eq!(strings(&doc["started"]), Vec::<String>::new());
    assert_eq!(
        strings(&doc["removed"]),
        vec!["deployment/shop-cluster-dev-web", "service/web"]
    );
    assert_eq!(
        changes(&fake.requests()[before..]),
        vec![
            "DELETE deployments/shop-cluster-dev-web",
            "DELETE services/web"
        ]
    );
    assert_eq!(fake.names("services", NS), vec!["api", "db"]);
    // The next deploy has nothing left to do.
    let before = fake.requests().len();
    deploy(dir.path(), &[]).assert_code(0);
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
}

#[test]
fn objects_deployed_under_the_names_without_the_site_are_ours_and_pruned() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    // What the previous version applied: the same objects, named `<project>-<stage>-<container>`,
    // with our labels, under the field manager `cookbook`.
    let render = run_in(
        dir.path(),
        &[
            "render", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    render.assert_code(0);
    let old = render.stdout.replace("shop-cluster-dev-", "shop-dev-");
    let list: Value = serde_json::from_str(&old).unwrap();
    for item in list["items"].as_array().unwrap() {
        let (kind, name) = (
            item["kind"].as_str().unwrap(),
            item["metadata"]["name"].as_str().unwrap(),
        );
        // That version named a Service like its Deployment, for the containers publishing
        // ports (api, web), and made no budgets.
        match kind {
            "Namespace" => fake.apply("namespaces", "", name, "cookbook", item.clone()),
            "Deployment" => fake.apply("deployments", NS, name, "cookbook", item.clone()),
            "Service" if name != "db" => {
                let name = format!("shop-dev-{name}");
                let mut item = item.clone();
                item["metadata"]["name"] = json!(name);
                fake.apply("services", NS, &name, "cookbook", item);
            }
            "Service" | "PodDisruptionBudget" => {}
            other => panic!("{other}"),
        }
    }
    let before = fake.requests().len();
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    let doc = json(&run);
    assert_eq!(doc["started"].as_array().unwrap().len(), 4);
    assert_eq!(
        strings(&doc["removed"]),
        vec![
            "deployment/shop-dev-api",
            "deployment/shop-dev-db",
            "deployment/shop-dev-web",
            "deployment/shop-dev-worker",
            "service/shop-dev-api",
            "service/shop-dev-web",
        ]
    );
    // The old objects go only after the last wave of their successors is healthy.
    let requests = fake.requests()[before..].to_vec();
    let last_patch = requests.iter().rposition(|r| r.method == "PATCH").unwrap();
    let first_delete = requests.iter().position(|r| r.method == "DELETE").unwrap();
    assert!(last_patch < first_delete);
    assert_eq!(
        fake.names("deployments", NS),
        vec![
            "shop-cluster-dev-api",
            "shop-cluster-dev-db",
            "shop-cluster-dev-web",
            "shop-cluster-dev-worker"
        ]
    );
    assert_eq!(fake.names("services", NS), vec!["api", "db", "web"]);
}

/// Waiting for a rollout is a WATCH, not a poll loop: for each Deployment a wave waits on, one
/// LIST by name and one WATCH (kube-runtime's watcher), whatever the rollout's length; the only
/// GET by name is the check, before anything is sent, that the name is free or ours.
#[test]
fn waiting_for_a_rollout_watches_and_never_polls() {
    // 15 steps of the fake's controller: 300 ms a rollout, long enough for a poll loop to show.
    let fake = FakeKube::start(15);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    let requests = fake.requests();
    let count = |short: &str| requests.iter().filter(|r| r.short() == short).count();
    for unit in ["db", "api", "web", "worker"] {
        let name = format!("shop-cluster-dev-{unit}");
        assert_eq!(
            (
                count(&format!("GET deployments/{name}")),
                count(&format!("LIST deployments/{name}")),
                count(&format!("WATCH deployments/{name}")),
            ),
            (1, 1, 1),
            "{:#?}",
            requests.iter().map(Recorded::short).collect::<Vec<_>>()
        );
        assert!(reached(&fake, &name, "complete") > 0);
    }
    // The watch asked for the changes after the list it resumed from, by name.
    let watch = requests
        .iter()
        .find(|r| r.short() == "WATCH deployments/shop-cluster-dev-db")
        .unwrap();
    assert!(
        watch.query.contains("resourceVersion=")
            && watch
                .query
                .contains("fieldSelector=metadata.name%3Dshop-cluster-dev-db"),
        "{watch:?}"
    );
}

/// A watch the server ends before the rollout completes is resumed from the last
/// resourceVersion seen (the resync), without listing again and without polling.
#[test]
fn a_watch_ended_by_the_server_is_resumed() {
    let fake = FakeKube::start(15);
    fake.end_watches_after(std::time::Duration::from_millis(60));
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    let requests = fake.requests();
    let count = |short: &str| requests.iter().filter(|r| r.short() == short).count();
    let name = "shop-cluster-dev-db";
    assert!(
        count(&format!("WATCH deployments/{name}")) >= 2
            && count(&format!("LIST deployments/{name}")) == 1
            && count(&format!("GET deployments/{name}")) == 1,
        "{:#?}",
        requests.iter().map(Recorded::short).collect::<Vec<_>>()
    );
    let watches: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.short() == format!("WATCH deployments/{name}"))
        .collect();
    // Each resumed from the resourceVersion of the last change seen (no change between two
    // watches: the same one), never from scratch.
    let versions: Vec<u64> = watches
        .iter()
        .map(|r| {
            r.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        versions[0] > 0 && versions.windows(2).all(|w| w[0] <= w[1]),
        "{versions:?}"
    );
}

/// Server-side apply merges the lists Kubernetes keys (`x-kubernetes-list-map-keys`): an env
/// var and a sidecar container another manager added to our Deployment (a mesh injector) stay,
/// owned by it, when cookbook applies a new image.
#[test]
fn a_list_merged_by_key_keeps_another_managers_entries() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    let name = "shop-cluster-dev-api";
    fake.apply(
        "deployments",
        NS,
        name,
        "mesh-injector",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "api", "env": [{"name": "MESH", "value": "on"}]},
                   {"name": "mesh-proxy", "image": "127.0.0.1:5000/mesh/proxy:1"}]}}}}),
    );
    let mut lock = lock_v1();
    lock[1].1 = digest(7);
    write_lock(dir.path(), &lock);
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(strings(&json(&run)["started"]), vec![name]);
    let api = fake.object("deployments", NS, name).unwrap();
    let containers = &api["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "api");
    assert_eq!(
        containers[0]["image"],
        format!("127.0.0.1:5000/shop/api@{}", digest(7))
    );
    let env: Vec<&str> = containers[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, vec!["MODE", "MESH"]);
    assert_eq!(containers[1]["name"], "mesh-proxy");
    // Each entry stays its manager's.
    let fields = |manager: &str| -> Value {
        api["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["manager"] == manager)
            .unwrap_or_else(|| panic!("no {manager} in {api}"))["fieldsV1"]
            .clone()
    };
    let containers =
        |manager: &str| fields(manager)["f:spec"]["f:template"]["f:spec"]["f:containers"].clone();
    let mesh = containers("mesh-injector");
    assert!(
        mesh["k:{\"name\":\"mesh-proxy\"}"]["f:image"].is_object(),
        "{mesh}"
    );
    assert!(
        mesh["k:{\"name\":\"api\"}"]["f:env"]["k:{\"name\":\"MESH\"}"]["f:value"].is_object(),
        "{mesh}"
    );
    let ours = containers("cookbook/cluster");
    assert!(
        ours["k:{\"name\":\"api\"}"]["f:image"].is_object(),
        "{ours}"
    );
    assert!(ours.get("k:{\"name\":\"mesh-proxy\"}").is_none(), "{ours}");
}

/// A field-manager conflict inside a wave is a wave failure like any other (issue 25): the
/// stage runs the previous release again, its earlier waves' new objects re-applied as they
/// were, and the report says so; on a first deploy there is nothing to restore, and the report
/// says that.
#[test]
fn a_conflict_in_a_wave_rolls_the_wave_back() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    let first = deploy(dir.path(), &[]);
    first.assert_code(0);
    let good = json(&first)["release"].as_str().unwrap().to_owned();
    // Someone annotates api by hand with the value it has: their manager owns the field now.
    let api = fake
        .object("deployments", NS, "shop-cluster-dev-api")
        .unwrap();
    let hash = api["metadata"]["annotations"]["dev.cookbook.config-hash"].clone();
    fake.update(
        "deployments",
        NS,
        "shop-cluster-dev-api",
        "kubectl-annotate",
        json!({"metadata": {"annotations": {"dev.cookbook.config-hash": hash}}}),
    );
    // v2: new db (wave 1) and api (wave 2) images; api's apply conflicts.
    let mut lock = lock_v1();
    lock[0].1 = digest(5);
    lock[1].1 = digest(6);
    write_lock(dir.path(), &lock);
    let before = fake.requests().len();
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains(" to cluster/dev stopped: wave 2: Deployment shop-cluster-dev-api: server-side apply conflict: field .metadata.annotations.dev.cookbook.config-hash is owned by manager \"kubectl-annotate\"")
            && run.stderr.ends_with(&format!(
                "; rolled back to release {good} (recreated: shop-cluster-dev-db)\n"
            )),
        "{}",
        run.context()
    );
    // db v2 (its Deployment and Service), the refused api, then db v1 again; api as it was.
    assert_eq!(
        changes(&fake.requests()[before..]),
        vec![
            "PATCH deployments/shop-cluster-dev-db",
            "PATCH services/db",
            "PATCH deployments/shop-cluster-dev-api",
            "PATCH deployments/shop-cluster-dev-db",
            "PATCH services/db",
        ]
    );
    let image = |name: &str| {
        fake.object("deployments", NS, name).unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .clone()
    };
    assert_eq!(
        image("shop-cluster-dev-db"),
        format!("127.0.0.1:5000/shop/db@{}", digest(1))
    );
    assert_eq!(
        image("shop-cluster-dev-api"),
        format!("127.0.0.1:5000/shop/api@{}", digest(2))
    );

    // A first deploy: api's name is held by an object of ours another manager wrote.
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    fake.apply(
        "deployments",
        NS,
        "shop-cluster-dev-api",
        "helm",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shop-cluster-dev-api", "namespace": NS,
                            "labels": {"dev.cookbook.project": "shop", "dev.cookbook.site": "cluster",
                                       "dev.cookbook.stage": "dev", "dev.cookbook.container": "api"}},
               "spec": {"replicas": 7}}),
    );
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.ends_with(
            " to cluster/dev stopped: wave 2: Deployment shop-cluster-dev-api: server-side apply conflict: field .spec.replicas is owned by manager \"helm\"; cookbook leaves fields other managers own alone (run with --force-conflicts to take them over); no earlier release of this stage to roll back to\n"
        ),
        "{}",
        run.context()
    );
}

/// A Secret the stage references (`{"secret": "NAME/KEY"}`, a `secretKeyRef` in the cluster)
/// must exist with its key before anything changes: missing, the deploy stops with exit 2
/// naming the reference, and sends nothing; present, the value is never read into a report.
#[test]
fn a_missing_secret_fails_before_anything_changes() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    edit(dir.path(), |doc| {
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["api"]["env"]["DB_PASSWORD"] =
            json!({"secret": "db/password"});
    });
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("secret db/password: no Secret `db`;"),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()), Vec::<String>::new());
    // The Secret without that key.
    fake.update(
        "secrets",
        NS,
        "db",
        "kubectl-create",
        json!({"data": {"user": "YWRtaW4="}}),
    );
    let run = run_in(
        dir.path(),
        &["deploy", "--site", "cluster", "--stage", "dev"],
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("secret db/password: Secret `db` has no key `password`;"),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()), Vec::<String>::new());
    // With it: deployed, the env a reference, the value nowhere in the output.
    fake.update(
        "secrets",
        NS,
        "db",
        "kubectl-create",
        json!({"data": {"password": "czNjcjN0LXZhbHVl"}}),
    );
    let run = deploy(dir.path(), &[]);
    run.assert_code(0);
    assert!(!run.stdout.contains("czNjcjN0") && !run.stderr.contains("czNjcjN0"));
    let api = fake
        .object("deployments", NS, "shop-cluster-dev-api")
        .unwrap();
    let env = &api["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DB_PASSWORD"
                && e["valueFrom"]["secretKeyRef"] == json!({"name": "db", "key": "password"})),
        "{env}"
    );
}

/// `site detect` on a Kubernetes site asks the cluster: its version, API groups and resources
/// (discovery), storage and ingress classes with the default marked; a cluster without an API
/// lists it not.
#[test]
fn site_detect_lists_what_the_cluster_offers() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    fake.update(
        "storageclasses",
        "",
        "standard",
        "kubectl-create",
        json!({"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path"}),
    );
    fake.update(
        "storageclasses",
        "",
        "fast",
        "kubectl-create",
        json!({"provisioner": "ebs.csi.aws.com"}),
    );
    fake.update(
        "ingressclasses",
        "",
        "nginx",
        "kubectl-create",
        json!({"spec": {"controller": "k8s.io/ingress-nginx"}}),
    );
    fake.without("poddisruptionbudgets");
    let run = run_in(
        dir.path(),
        &["site", "detect", "--site", "cluster", "--format", "json"],
    );
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["target"], "kubernetes", "{doc}");
    assert_eq!(doc["server_version"], "v1.34.0-fake");
    assert_eq!(doc["minor"], 34);
    assert_eq!(
        doc["storage_classes"],
        json!([{"name": "fast", "default": false, "by": "ebs.csi.aws.com"},
               {"name": "standard", "default": true, "by": "rancher.io/local-path"}])
    );
    assert_eq!(
        doc["ingress_classes"],
        json!([{"name": "nginx", "default": false, "by": "k8s.io/ingress-nginx"}])
    );
    assert_eq!(strings(&doc["groups"]["apps/v1"]), vec!["deployments"]);
    assert!(strings(&doc["groups"]["v1"]).contains(&"secrets".to_owned()));
    assert_eq!(doc["groups"].get("policy/v1"), None, "{doc}");
    assert_eq!(doc["missing"], json!([]));
    let run = run_in(dir.path(), &["site", "detect", "--site", "cluster"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(
            "kubernetes    v1.34.0-fake\n\
             storage       fast (ebs.csi.aws.com), standard (rancher.io/local-path) [default]\n\
             ingress       nginx (k8s.io/ingress-nginx)\n"
        ) && run
            .stdout
            .contains("\napi apps/v1                deployments\n"),
        "{}",
        run.context()
    );
}

/// The gallery example's dev stage on a cluster: web's pod is one Deployment (seed an init
/// container, proxy a native sidecar, the scratch volume an emptyDir), api's persistent volume a
/// claim. Deploy refuses, before anything is sent, a cluster without a default StorageClass
/// for that claim, or too old for native sidecars; a claim outlives its volume's removal from
/// the pod while its container stays.
#[test]
fn the_gallery_pod_deploys_as_one_deployment_and_what_the_cluster_lacks_is_refused() {
    let fake = FakeKube::start(1);
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("gallery", dir.path());
    std::fs::write(
        dir.path().join("kubeconfig.yaml"),
        fake.kubeconfig("gallery-dev"),
    )
    .unwrap();
    edit(dir.path(), |doc| {
        doc["federation"]["sites"]["cluster"]["target"]["kubernetes"]["kubeconfig"] =
            json!("kubeconfig.yaml");
    });
    let containers = ["seed", "proxy", "web", "api"];
    let lock: serde_json::Map<String, Value> = containers
        .iter()
        .enumerate()
        .map(|(n, c)| {
            (
                (*c).to_owned(),
                json!({ "input_hash": "00".repeat(32),
                        "image": format!("127.0.0.1:5000/gallery/{c}:{}", "00".repeat(32)),
                        "tags": [], "digest": digest(u32::try_from(n).unwrap() + 1) }),
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("cookbook.lock"),
        json!({ "lock_version": 1, "hash_version": 1, "project": "gallery", "containers": lock })
            .to_string(),
    )
    .unwrap();
    let deploy = || {
        run_in(
            dir.path(),
            &["deploy", "--site", "cluster", "--stage", "dev"],
        )
    };

    // No StorageClass at all: api's claim has no default class to take.
    let run = deploy();
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "error: the cluster lacks what this stage needs: a default StorageClass (it has: none)"
        ),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()), Vec::<String>::new());

    fake.update(
        "storageclasses",
        "",
        "standard",
        "kubectl-create",
        json!({"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path"}),
    );
    deploy().assert_code(0);
    let web = fake
        .object("deployments", "gallery-dev", "gallery-cluster-dev-web")
        .unwrap();
    let pod = &web["spec"]["template"]["spec"];
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&pod["containers"]), vec!["web"]);
    assert_eq!(names(&pod["initContainers"]), vec!["seed", "proxy"]);
    assert_eq!(pod["initContainers"][0].get("restartPolicy"), None, "{pod}");
    assert_eq!(pod["initContainers"][1]["restartPolicy"], "Always", "{pod}");
    assert!(pod["volumes"][0].get("emptyDir").is_some(), "{pod}");
    assert_eq!(
        fake.names("persistentvolumeclaims", "gallery-dev"),
        vec!["gallery-cluster-dev-api-store"]
    );
    assert_eq!(
        fake.names("deployments", "gallery-dev").len(),
        2,
        "one per pod"
    );

    // A server before 1.29 runs no native sidecars: refused, even with nothing to change.
    fake.set_minor(28);
    let before = fake.requests().len();
    let run = deploy();
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "native sidecars, which need Kubernetes 1.29 or later (it runs v1.28.0-fake)"
        ),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
    fake.set_minor(34);

    // api drops its persistent volume: its claim stays, data outlives the pod's declaration.
    edit(dir.path(), |doc| {
        let api = doc["containers"]["api"].as_object_mut().unwrap();
        api.remove("volumes");
        api.remove("mounts");
    });
    let run = run_in(
        dir.path(),
        &[
            "deploy", "--site", "cluster", "--stage", "dev", "--format", "json",
        ],
    );
    run.assert_code(0);
    assert_eq!(strings(&json(&run)["removed"]), Vec::<String>::new());
    assert_eq!(
        fake.names("persistentvolumeclaims", "gallery-dev"),
        vec!["gallery-cluster-dev-api-store"]
    );

    // An Ingress of a class the cluster has not: refused, naming the class and what it has.
    fake.update(
        "ingressclasses",
        "",
        "nginx",
        "kubectl-create",
        json!({"spec": {"controller": "k8s.io/ingress-nginx"}}),
    );
    edit(dir.path(), |doc| {
        doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"]["ingress"] =
            json!({"host": "gallery.test", "path": "/", "port": 8080, "class": "traefik"});
    });
    let before = fake.requests().len();
    let run = deploy();
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("IngressClass `traefik` (it has: nginx)"),
        "{}",
        run.context()
    );
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());
}

/// `cookbook down` on a Kubernetes site deletes every object of the stage that is ours (by uid,
/// Deployments first), leaves a hand-made namesake, and a second `down` sends nothing; `exec` is
/// refused with the exact `kubectl exec` that does it.
#[test]
fn down_deletes_only_our_objects_and_exec_names_the_kubectl_command() {
    let fake = FakeKube::start(1);
    let dir = project(&fake, &lock_v1());
    deploy(dir.path(), &[]).assert_code(0);
    fake.update(
        "deployments",
        NS,
        "legacy",
        "kubectl-create",
        json!({"spec": {"replicas": 1}}),
    );
    let down = |dir: &Path| {
        let run = run_in(
            dir,
            &[
                "down", "--site", "cluster", "--stage", "dev", "--format", "json",
            ],
        );
        run.assert_code(0);
        json(&run)
    };
    let before = fake.requests().len();
    let doc = down(dir.path());
    assert_eq!(doc["unchanged"], false, "{doc}");
    assert_eq!(doc["removed"]["target"], "kubernetes");
    let removed = strings(&doc["removed"]["removed"]);
    let mut deleted = changes(&fake.requests()[before..]);
    assert!(
        deleted.iter().all(|c| c.starts_with("DELETE ")),
        "{deleted:?}"
    );
    assert_eq!(deleted.len(), removed.len(), "{deleted:?} {removed:?}");
    // Deployments before the Services that point at them.
    assert!(deleted[0].starts_with("DELETE deployments/"), "{deleted:?}");
    deleted.sort();
    assert!(
        deleted.contains(&"DELETE deployments/shop-cluster-dev-api".to_owned())
            && deleted.contains(&"DELETE services/api".to_owned()),
        "{deleted:?}"
    );
    assert_eq!(fake.names("deployments", NS), vec!["legacy"]);
    assert!(fake.names("services", NS).is_empty());
    // Nothing left: a second down sends no change.
    let before = fake.requests().len();
    let doc = down(dir.path());
    assert_eq!(doc["unchanged"], true, "{doc}");
    assert_eq!(changes(&fake.requests()[before..]), Vec::<String>::new());

    let run = run_in(
        dir.path(),
        &[
            "exec", "--site", "cluster", "--stage", "dev", "api", "--", "ls", "-l", "/a b",
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "help: run: kubectl exec -i -n shop deploy/shop-cluster-dev-api -c api -- ls -l '/a b'"
        ),
        "{}",
        run.context()
    );
}
