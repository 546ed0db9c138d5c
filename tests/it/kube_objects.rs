//! The Kubernetes objects a stage renders to (`cookbook render`), from the examples: the gallery
//! (a pod with an init container, a native sidecar, a scratch and a persistent volume, an
//! Ingress with TLS, two replicas in prod, a secret by reference) and the shop. Rendering asks
//! no cluster, so these need no service but `kubernetes-validate` (installed by scripts/test.sh)
//! for the strict schema check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

use crate::common::{self, check_snapshot, copy_example, repo_root, run_in, run_in_env};

/// A copy of example `name` with a lock naming an image by digest for each of `containers`
/// (render reads digests from the lock only; nothing is built).
fn example(name: &str, containers: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_example(name, dir.path());
    let locked: serde_json::Map<String, Value> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                (*c).to_owned(),
                json!({
                    "input_hash": "00".repeat(32),
                    "image": format!("127.0.0.1:5000/{name}/{c}:{}", "00".repeat(32)),
                    "tags": [],
                    "digest": format!("sha256:{}", (i + 1).to_string().repeat(64)),
                }),
            )
        })
        .collect();
    let lock =
        json!({ "lock_version": 1, "hash_version": 1, "project": name, "containers": locked });
    std::fs::write(dir.path().join("cookbook.lock"), lock.to_string()).unwrap();
    dir
}

const GALLERY: [&str; 4] = ["api", "proxy", "seed", "web"];
const SHOP: [&str; 4] = ["api", "db", "web", "worker"];

fn render(dir: &Path, site: &str, stage: &str, format: &str) -> common::Run {
    let run = run_in(
        dir,
        &[
            "render", "--site", site, "--stage", stage, "--format", format,
        ],
    );
    run.assert_code(0);
    run
}

/// The items of a JSON rendering (a `v1` `List`).
fn items(run: &common::Run) -> Vec<Value> {
    let list: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.context()));
    assert_eq!(list["kind"], "List");
    list["items"].as_array().unwrap().clone()
}

fn of_kind<T: serde::de::DeserializeOwned>(items: &[Value], kind: &str) -> Vec<T> {
    items
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| serde_json::from_value(i.clone()).unwrap())
        .collect()
}

/// The Kubernetes version k8s-openapi is built for (`features = ["v1_34"]` in Cargo.toml →
/// `1.34.0`): what the objects are typed against, so what they must validate against.
fn k8s_openapi_version() -> String {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("k8s-openapi"))
        .expect("Cargo.toml names k8s-openapi");
    let feature = line
        .split('"')
        .find(|s| s.starts_with("v1_"))
        .expect("k8s-openapi's version feature");
    format!("1.{}.0", &feature[3..])
}

/// Strict validation against Kubernetes' own schemas: kubernetes-validate's default version
/// (through the Kubernetes tests' helper, which skips or fails when the tool is missing), and
/// the version k8s-openapi is built for.
fn validate(yaml: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    crate::kubernetes::kubernetes_validate_file(&file, what);
    let version = k8s_openapi_version();
    let out = match std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", &version])
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        // The helper above has said whether a missing tool is allowed here.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("kubernetes-validate: {e}"),
    };
    assert!(
        out.status.success(),
        "kubernetes-validate {version} refused {what}\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn golden(name: &str) -> PathBuf {
    repo_root().join("tests/it/kube_objects").join(name)
}

#[test]
fn the_gallery_renders_byte_stable_golden_and_valid_objects() {
    let dir = example("gallery", &GALLERY);
    for (site, stage) in [("cluster", "dev"), ("production", "prod")] {
        let first = render(dir.path(), site, stage, "yaml");
        let second = render(dir.path(), site, stage, "yaml");
        assert_eq!(first.stdout, second.stdout, "{}", first.context());
        if let Err(e) = check_snapshot(
            &golden(&format!("gallery-{site}-{stage}.yaml")),
            &first.stdout,
            &first,
        ) {
            panic!("{e}");
        }
        validate(&first.stdout, &format!("the gallery's {stage} objects"));
        // JSON: a List of the same objects, in the same order, as stable.
        let json = render(dir.path(), site, stage, "json");
        assert_eq!(json.stdout, render(dir.path(), site, stage, "json").stdout);
        let from_yaml: Vec<Value> = first
            .stdout
            .split("---\n")
            .filter(|d| !d.is_empty())
            .map(|d| yaml_serde::from_str(d).unwrap())
            .collect();
        assert_eq!(items(&json), from_yaml);
    }
}

/// One Deployment per pod (none for its members), its init container then its native sidecar,
/// the scratch volume as `emptyDir` and the persistent one as a claim the pod mounts, recreated
/// rather than rolled; an Ingress with TLS to the Service; a budget only where replicas > 1.
#[test]
fn the_gallerys_pod_is_one_deployment_with_its_members_volumes_claim_ingress_and_budget() {
    let dir = example("gallery", &GALLERY);
    let prod = items(&render(dir.path(), "production", "prod", "json"));
    let kinds: Vec<String> = prod
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace/gallery",
            "PersistentVolumeClaim/gallery-production-prod-api-store",
            "Deployment/gallery-production-prod-api",
            "Service/api",
            "Deployment/gallery-production-prod-web",
            "Service/web",
            "PodDisruptionBudget/gallery-production-prod-web",
            "Ingress/gallery-production-prod-web",
        ]
    );
    let deployments: Vec<Deployment> = of_kind(&prod, "Deployment");
    let web = &deployments[1].spec.as_ref().unwrap();
    let pod = web.template.spec.as_ref().unwrap();
    assert_eq!(web.replicas, Some(2));
    let init = pod.init_containers.as_ref().unwrap();
    let members: Vec<(&str, Option<&str>)> = init
        .iter()
        .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
        .collect();
    assert_eq!(members, [("seed", None), ("proxy", Some("Always"))]);
    assert!(init[1].startup_probe.is_some() && init[1].readiness_probe.is_some());
    let volumes = pod.volumes.as_ref().unwrap();
    assert!(volumes[0].empty_dir.is_some(), "{volumes:?}");
    let mounted = |c: &k8s_openapi::api::core::v1::Container| {
        c.volume_mounts.as_ref().unwrap()[0].name.clone()
    };
    assert_eq!(
        (mounted(&init[0]), mounted(&pod.containers[0])),
        ("content".to_owned(), "content".to_owned())
    );
    // The persistent volume: a claim of its size, mounted by the api's pod, which is recreated
    // (one ReadWriteOnce claim cannot serve the old and the new pod at once).
    let claims: Vec<PersistentVolumeClaim> = of_kind(&prod, "PersistentVolumeClaim");
    let claim = claims[0].spec.as_ref().unwrap();
    assert_eq!(
        claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "1Gi"
    );
    let api = deployments[0].spec.as_ref().unwrap();
    let api_pod = api.template.spec.as_ref().unwrap();
    assert_eq!(
        api_pod.volumes.as_ref().unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "gallery-production-prod-api-store"
    );
    assert_eq!(
        api.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    // The Ingress: the host, its TLS Secret, the Service `web` at the proxy's port.
    let ingress: Vec<Ingress> = of_kind(&prod, "Ingress");
    let spec = ingress[0].spec.as_ref().unwrap();
    let tls = &spec.tls.as_ref().unwrap()[0];
    assert_eq!(
        (
            tls.secret_name.as_deref(),
            tls.hosts.as_ref().unwrap()[0].as_str()
        ),
        (Some("gallery-tls"), "gallery.example.com")
    );
    let backend = spec.rules.as_ref().unwrap()[0].http.as_ref().unwrap().paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(
        (backend.name.as_str(), backend.port.unwrap().number),
        ("web", Some(8080))
    );
    let budgets: Vec<PodDisruptionBudget> = of_kind(&prod, "PodDisruptionBudget");
    assert_eq!(budgets.len(), 1, "only web runs several replicas");
    // dev runs one web: no budget, no Ingress.
    let dev = items(&render(dir.path(), "cluster", "dev", "json"));
    assert!(of_kind::<PodDisruptionBudget>(&dev, "PodDisruptionBudget").is_empty());
    assert!(of_kind::<Ingress>(&dev, "Ingress").is_empty());
}

/// A secret renders as a `secretKeyRef`, and its value — even one the deploying process could
/// read — appears nowhere in a rendering.
#[test]
fn a_secret_renders_as_a_reference_and_its_value_appears_nowhere() {
    let dir = example("gallery", &GALLERY);
    let value = "gallery-secret-value-that-must-not-leak";
    for format in ["yaml", "json"] {
        let run = run_in_env(
            dir.path(),
            &[
                "render",
                "--site",
                "production",
                "--stage",
                "prod",
                "--format",
                format,
            ],
            &[("COOKBOOK_SECRET_GALLERY_API_TOKEN", value)],
        );
        run.assert_code(0);
        assert!(!run.stdout.contains(value) && !run.stderr.contains(value));
        if format == "json" {
            let deployments: Vec<Deployment> = of_kind(&items(&run), "Deployment");
            let api = &deployments[0]
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0];
            let token = api
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == "API_TOKEN")
                .unwrap();
            assert!(token.value.is_none());
            let reference = token
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(
                (reference.name.as_str(), reference.key.as_str()),
                ("gallery-api", "token")
            );
        }
    }
}

/// The host names a value reaches: `http://api:9000` and `db:5432` name `api` and `db`.
fn hosts(value: &str) -> Option<String> {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    let host = &rest[..end];
    let has_port = rest[end..].starts_with(':');
    let is_name = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    (is_name && (has_port || value.contains("://"))).then(|| host.to_owned())
}

/// Every name a deployed container reaches — what it `depends_on`, and the host of each
/// environment value (its applications', its own, its stage's) — as the cookbook says.
fn reached_names(cookbook: &Value, stage: &str, container: &str) -> BTreeSet<String> {
    let c = &cookbook["containers"][container];
    let mut out: BTreeSet<String> = c["depends_on"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let mut values: Vec<&Value> = Vec::new();
    for app in c["applications"].as_array().into_iter().flatten() {
        let env = &cookbook["applications"][app.as_str().unwrap()]["env"];
        values.extend(env.as_object().into_iter().flat_map(|m| m.values()));
    }
    values.extend(c["env"].as_object().into_iter().flat_map(|m| m.values()));
    let staged = &cookbook["lifecycle"]["stage_config"][stage]["containers"][container]["env"];
    values.extend(staged.as_object().into_iter().flat_map(|m| m.values()));
    out.extend(
        values
            .into_iter()
            .filter_map(Value::as_str)
            .filter_map(hosts),
    );
    out
}

/// What `depends_on` and env values name on a Docker site's network is a Service in the
/// rendering, for every stage of a site: the rendered stage can run.
#[test]
fn a_rendered_stage_resolves_every_name_its_containers_use() {
    assert_eq!(hosts("http://api:8080"), Some("api".to_owned()));
    assert_eq!(hosts("db:5432"), Some("db".to_owned()));
    assert_eq!(hosts("5"), None);
    for (name, containers, site, stages) in [
        ("shop", &SHOP, "local", &["dev", "prod"][..]),
        ("gallery", &GALLERY, "cluster", &["dev"][..]),
        ("gallery", &GALLERY, "production", &["prod"][..]),
        ("gallery", &GALLERY, "local", &["dev"][..]),
    ] {
        let dir = example(name, containers);
        let cookbook: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("cookbook.json")).unwrap(),
        )
        .unwrap();
        for stage in stages {
            let items = items(&render(dir.path(), site, stage, "json"));
            let services: BTreeMap<String, Service> = of_kind::<Service>(&items, "Service")
                .into_iter()
                .map(|s| (s.metadata.name.clone().unwrap(), s))
                .collect();
            let deployments: Vec<Deployment> = of_kind(&items, "Deployment");
            let mut reached = BTreeSet::new();
            for d in &deployments {
                let container = &d.metadata.labels.as_ref().unwrap()["dev.cookbook.container"];
                reached.extend(reached_names(&cookbook, stage, container));
                // A Service's ports are its pods' container ports: never a host port.
                let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
                let listened: BTreeSet<i32> = pod.containers[0]
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| p.container_port)
                    .collect();
                if let Some(s) = services.get(container.as_str()) {
                    for p in s.spec.as_ref().unwrap().ports.iter().flatten() {
                        assert!(
                            listened.contains(&p.port),
                            "{name} {stage}: Service {container} port {}",
                            p.port
                        );
                        assert_ne!(p.port, 8088, "the gallery's dev host port");
                    }
                }
            }
            assert!(
                !reached.is_empty(),
                "{name} {site} {stage}: nothing reached?"
            );
            for host in &reached {
                assert!(
                    services.contains_key(host),
                    "{name} {site} {stage}: a container reaches `{host}`, which no Service is named; services: {:?}",
                    services.keys().collect::<Vec<_>>()
                );
            }
            // Every depended-on container has one, headless when it listens on nothing.
            for d in &deployments {
                let container = &d.metadata.labels.as_ref().unwrap()["dev.cookbook.container"];
                let depended = cookbook["containers"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|c| {
                        c["depends_on"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == container.as_str()))
                    });
                if depended {
                    assert!(
                        services.contains_key(container.as_str()),
                        "{name} {stage}: {container}"
                    );
                }
            }
        }
    }
}

/// The shop's `db` listens on no port the cookbook names (its Dockerfile's `EXPOSE` is not
/// read), yet `api` and `worker` depend on it: a headless Service, whose name resolves to the
/// pods' addresses.
#[test]
fn a_depended_on_container_listening_on_nothing_gets_a_headless_service() {
    let dir = example("shop", &SHOP);
    let items = items(&render(dir.path(), "local", "dev", "json"));
    let db = of_kind::<Service>(&items, "Service")
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some("db"))
        .expect("a Service named db");
    let spec = db.spec.unwrap();
    assert_eq!(
        (spec.cluster_ip.as_deref(), spec.ports),
        (Some("None"), None)
    );
}

/// A Service takes its container's name, so a container that needs one must have a name the
/// API server takes for a Service (a DNS-1035 label): refused, located, on a Kubernetes site;
/// the same name is fine where no Service is needed.
#[test]
fn a_container_name_no_service_can_take_is_refused_where_one_is_needed() {
    let dir = example("gallery", &GALLERY);
    let file = dir.path().join("cookbook.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let api = doc["containers"]["api"].take();
    doc["containers"].as_object_mut().unwrap().remove("api");
    doc["containers"]["9api"] = api;
    doc["containers"]["web"]["depends_on"] = json!(["9api"]);
    let stage_config = doc["lifecycle"]["stage_config"].as_object_mut().unwrap();
    for stage in stage_config.values_mut() {
        let containers = stage["containers"].as_object_mut().unwrap();
        if let Some(c) = containers.remove("api") {
            containers.insert("9api".to_owned(), c);
        }
    }
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("model/kubernetes-name")
            && run.stderr.contains(
                "/containers/9api: site `cluster` gives container \"9api\" a Kubernetes Service"
            )
            && run.stderr.contains("DNS-1035"),
        "{}",
        run.context()
    );
    // Deployed, but nothing depends on it and it listens on nothing: no Service, no problem.
    doc["containers"]["web"]["depends_on"] = json!([]);
    doc["federation"]["sites"]["cluster"]["containers"] = json!(["web", "9api"]);
    doc["containers"]["9api"]["ports"] = json!([]);
    doc["containers"]["9api"]["health"] = json!({ "command": ["true"] });
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    run_in(dir.path(), &["validate"]).assert_code(0);
}

/// The example builds as it is (a unique project in the test registry) and renders from the lock
/// `apply` wrote: every image, main or member, by the digest the lock names.
#[test]
fn the_gallery_applies_and_renders_its_objects_from_the_lock() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    copy_example("gallery", dir.path());
    let file = dir.path().join("cookbook.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let project = common::unique("gallery");
    doc["project"]["name"] = json!(project);
    doc["packaging"]["registry"] = json!(format!("{registry}/{project}"));
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    run_in(dir.path(), &["apply"]).assert_code(0);
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cookbook.lock")).unwrap())
            .unwrap();
    let yaml = render(dir.path(), "production", "prod", "yaml");
    validate(&yaml.stdout, "the applied gallery's prod objects");
    let items = items(&render(dir.path(), "production", "prod", "json"));
    let mut images = BTreeMap::new();
    for d in of_kind::<Deployment>(&items, "Deployment") {
        let pod = d.spec.unwrap().template.spec.unwrap();
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            images.insert(c.name.clone(), c.image.clone().unwrap());
        }
    }
    assert_eq!(images.len(), 4, "{images:?}");
    for (container, image) in images {
        let locked = &lock["containers"][&container];
        let digest = locked["digest"].as_str().unwrap();
        let repository = format!("{registry}/{project}/{container}");
        assert_eq!(image, format!("{repository}@{digest}"));
    }
}

/// A pod's volume is named in the pod and in its claim's name, both DNS-1123 labels on
/// Kubernetes: `my_store` is refused, located, where a Docker site takes it.
#[test]
fn a_volume_name_kubernetes_cannot_take_is_refused_on_a_kubernetes_site() {
    let dir = example("gallery", &GALLERY);
    let file = dir.path().join("cookbook.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["containers"]["api"]["volumes"] = json!({ "my_store": { "persistent": true } });
    doc["containers"]["api"]["mounts"] = json!({ "my_store": "/var/lib/gallery" });
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let run = run_in(dir.path(), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("/containers/api/volumes/my_store: site `cluster` runs container `api`'s pod on Kubernetes"),
        "{}",
        run.context()
    );
    // Without the Kubernetes sites, the same volume is fine.
    for site in ["cluster", "production"] {
        doc["federation"]["sites"]
            .as_object_mut()
            .unwrap()
            .remove(site);
    }
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    run_in(dir.path(), &["validate"]).assert_code(0);
}
