//! The Kubernetes objects of a stage, derived from a `Desired` alone (pure): per container a
//! `Deployment` (its image by digest, the stage's env, ports, replicas and resource limits,
//! readiness and liveness probes from the container's health check) and a `Service` for its
//! published ports; the site's `Namespace` when the target asks for it. `cookbook render` prints
//! them; the cluster backend applies them; a rollback re-derives them from a recorded `Desired`,
//! which is what re-applying the previous release's objects means.
//!
//! Invariants: the same `Desired` gives byte-identical objects (maps are `BTreeMap`s in
//! k8s-openapi, lists are in wave and declaration order); every Deployment and Service carries
//! the labels that make it ours (`dev.cookbook.project`, `.site`, `.stage`, `.container`) and the
//! recommended `app.kubernetes.io/*` labels, and is named `<project>-<site>-<stage>-<container>`
//! (`model::lifecycle::kubernetes_name`), so sites sharing a namespace never share a name; the
//! Namespace, shared by stages, carries the project and the site that created it. Whether an
//! object that exists is ours is decided by those labels alone (`owner`), never by its name; an
//! earlier version's `io.cookbook.*` labels count too (`crate::labels`), and such an object is
//! applied again, which moves it to the current labels. The config hash (64 hex characters, too long for a label value) is an annotation.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Namespace, PodSpec,
    PodTemplateSpec, Probe as KubeProbe, ResourceRequirements, SecretKeySelector, Service,
    ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::deploy::desired::{Desired, Instance};
use crate::labels::deploy as label;
use crate::labels::SCHEMES;
use crate::model::lifecycle::{kubernetes_name, Health, Probe};
use crate::model::pod::EnvValue;
use crate::model::Name;

/// The `app.kubernetes.io/managed-by` value of everything cookbook creates.
pub const MANAGED_BY: &str = "cookbook";
pub use crate::labels::kubernetes::{
    INSTANCE as LABEL_INSTANCE, MANAGED_BY as LABEL_MANAGED_BY, NAME as LABEL_NAME,
    PART_OF as LABEL_PART_OF,
};
/// The image reference the lock names (with its tag), for people reading the object.
pub const ANNOTATION_IMAGE: &str = label::IMAGE;

/// The field manager a site's applies use: `cookbook/<site>`. One per site, not one for every
/// cookbook, so that two sites writing one object are two writers to the API server, which then
/// reports their disagreement as a server-side apply conflict naming the other site; under one
/// shared manager the second apply would silently take every field over and drop the first
/// site's. At most 128 characters, as the API server requires (a long site name is shortened
/// the way `kubernetes_name` shortens).
pub fn field_manager(site: &Name) -> String {
    const MAX: usize = 128;
    let manager = format!("{MANAGED_BY}/{site}");
    if manager.len() <= MAX {
        return manager;
    }
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(manager.as_bytes()));
    format!("{}-{}", &manager[..MAX - 11], &hash[..10])
}

/// One container of the stage: its Deployment and, when it publishes ports, its Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// `<project>-<site>-<stage>-<container>`: the Deployment's and the Service's name.
    pub name: String,
    pub container: Name,
    pub config_hash: String,
    pub replicas: i32,
    pub deployment: Deployment,
    /// Named like the container (`cache`), so that the names containers use on a Docker site
    /// resolve in the cluster: for a container another depends on or that listens on a port.
    pub service: Option<Service>,
    /// One PersistentVolumeClaim per persistent volume of its pod.
    pub claims: Vec<PersistentVolumeClaim>,
    /// The stage's Ingress for it (`ingress` in its stage settings).
    pub ingress: Option<Ingress>,
    /// A PodDisruptionBudget when it runs more than one replica.
    pub budget: Option<PodDisruptionBudget>,
}

/// Everything a stage needs on the cluster, in the order it is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    pub namespace: Option<Namespace>,
    /// Bottom-up, as `Desired::waves`.
    pub waves: Vec<Vec<Unit>>,
}

/// The label selectors of the objects of a project's stage on a site (what `changes` lists and
/// prune may remove, once `owner` says an object is ours), one per label scheme deploy
/// recognises, newest first.
pub fn ours(desired: &Desired) -> Vec<String> {
    desired.filters().into_iter().map(|f| f.join(",")).collect()
}

/// Whose an object that exists is, by its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This project's, site's and stage's object of the container asked about (or, asked about
    /// no container, of some container of the stage).
    Ours,
    /// It carries cookbook's labels, of another project, site, stage or container: those labels.
    Cookbook(BTreeMap<String, String>),
    /// It carries none of them: made by hand or by another tool (its
    /// `app.kubernetes.io/managed-by` label, when it has one).
    Other { managed_by: Option<String> },
}

/// Whose the object labelled `labels` is, for the stage of `desired` and its `container` (`None`:
/// any container of the stage, what prune asks). Only cookbook's four ownership labels decide, in
/// the current scheme or an earlier version's: anyone can create any name, and a name is all an
/// older version of cookbook used to check.
pub fn owner(
    desired: &Desired,
    container: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
) -> Owner {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let mut seen = BTreeMap::new();
    for scheme in SCHEMES {
        let ours = [
            (scheme.project, Some(desired.project.as_str())),
            (scheme.site, Some(desired.site.as_str())),
            (scheme.stage, Some(desired.stage.as_str())),
            (scheme.container, container),
        ];
        let mut cookbook = BTreeMap::new();
        let mut matches = true;
        for (key, wanted) in ours {
            match labels.get(key) {
                Some(value) => {
                    cookbook.insert(key.to_owned(), value.clone());
                    matches &= wanted.is_none_or(|w| w == value);
                }
                None => matches = false,
            }
        }
        if matches {
            return Owner::Ours;
        }
        if seen.is_empty() {
            seen = cookbook;
        }
    }
    if seen.is_empty() {
        Owner::Other {
            managed_by: labels.get(LABEL_MANAGED_BY).cloned(),
        }
    } else {
        Owner::Cookbook(seen)
    }
}

/// Whole seconds, rounded up, at least 1 (what probe fields take).
fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX)
}

fn probe(health: &Health, initial_delay: bool) -> Option<KubeProbe> {
    let mut p = KubeProbe {
        period_seconds: Some(seconds(health.interval)),
        timeout_seconds: Some(seconds(health.timeout)),
        failure_threshold: Some(i32::try_from(health.retries.max(1)).unwrap_or(i32::MAX)),
        // Docker's start period: failed probes do not count during the grace period.
        initial_delay_seconds: initial_delay.then(|| seconds(health.grace)),
        ..Default::default()
    };
    match &health.probe {
        Probe::Running => return None,
        Probe::Command(argv) => {
            p.exec = Some(ExecAction {
                command: Some(argv.clone()),
            })
        }
        Probe::Shell(s) => {
            p.exec = Some(ExecAction {
                command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()]),
            })
        }
        Probe::Http { port, path } => {
            p.http_get = Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: IntOrString::Int(i32::from(*port)),
                ..Default::default()
            })
        }
        Probe::Tcp { port } => {
            p.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(*port)),
                ..Default::default()
            })
        }
    }
    Some(p)
}

/// How long a rollout may go without progress: as long as the Docker backend waits for health
/// (every retry timing out, plus the grace period), at least a minute.
pub fn progress_deadline(health: &Health) -> Duration {
    let d = health.grace + (health.interval + health.timeout) * (health.retries + 1);
    d.max(Duration::from_secs(60))
}

/// The image by digest: the lock's repository (its tag dropped) `@` the digest.
pub fn image_by_digest(instance: &Instance) -> String {
    let repository = instance
        .image
        .rsplit_once(':')
        .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
        .map_or(instance.image.as_str(), |(repo, _)| repo);
    format!("{repository}@{}", instance.digest)
}

fn cpu(nano: i64) -> Quantity {
    Quantity(format!("{}m", (nano + 999_999) / 1_000_000))
}

fn memory(bytes: i64) -> Quantity {
    const MI: i64 = 1 << 20;
    Quantity(if bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    })
}

fn protocol(p: &str) -> String {
    p.to_ascii_uppercase()
}

fn unit(desired: &Desired, namespace: Option<&str>, instance: &Instance, replicas: i32) -> Unit {
    let name = kubernetes_name(
        desired.project.as_str(),
        desired.site.as_str(),
        desired.stage.as_str(),
        instance.container.as_str(),
    );
    let selector = BTreeMap::from([(LABEL_INSTANCE.to_owned(), name.clone())]);
    let pod_labels = pod_labels(desired, instance, &name);
    let mut labels = pod_labels.clone();
    labels.insert(label::RELEASE.to_owned(), desired.release.clone());
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([
            (label::CONFIG_HASH.to_owned(), instance.config_hash.clone()),
            (ANNOTATION_IMAGE.to_owned(), instance.image.clone()),
        ])),
        ..Default::default()
    };
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(instance)],
            ..Default::default()
        }),
    };
    let deployment = Deployment {
        metadata: metadata.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            progress_deadline_seconds: Some(seconds(progress_deadline(&instance.health))),
            template: pod,
            ..Default::default()
        }),
        status: None,
    };
    Unit {
        name,
        container: instance.container.clone(),
        config_hash: instance.config_hash.clone(),
        replicas,
        deployment,
        service: service(instance, metadata, selector),
        claims: Vec::new(),
        ingress: None,
        budget: None,
    }
}

/// A pod's labels: the stage's ownership labels with the container's, and the recommended
/// `app.kubernetes.io/*` ones (`instance`: what the Deployment and Service select by).
fn pod_labels(desired: &Desired, instance: &Instance, name: &str) -> BTreeMap<String, String> {
    let mut labels = desired.labels(None);
    labels.insert(label::CONTAINER.to_owned(), instance.container.to_string());
    labels.insert(LABEL_NAME.to_owned(), instance.container.to_string());
    labels.insert(LABEL_INSTANCE.to_owned(), name.to_owned());
    labels.insert(LABEL_PART_OF.to_owned(), desired.project.to_string());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels
}

/// The pod's one container: the image by digest, the stage's env, ports and limits, and the
/// probes of its health check.
fn container(instance: &Instance) -> Container {
    let mut limits = BTreeMap::new();
    if let Some(n) = instance.nano_cpus {
        limits.insert("cpu".to_owned(), cpu(n));
    }
    if let Some(m) = instance.memory {
        limits.insert("memory".to_owned(), memory(m));
    }
    let env = instance.env.iter().map(|(k, v)| match v {
        EnvValue::Text(t) => EnvVar {
            name: k.clone(),
            value: Some(t.clone()),
            ..Default::default()
        },
        // The kubelet reads the value from the namespace's Secret: it never passes through here.
        EnvValue::Secret { secret } => EnvVar {
            name: k.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name().to_owned(),
                    key: secret.key().to_owned(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    });
    let ports = instance.ports.iter().map(|p| ContainerPort {
        container_port: i32::from(p.container),
        protocol: Some(protocol(&p.protocol)),
        ..Default::default()
    });
    Container {
        name: instance.container.to_string(),
        image: Some(image_by_digest(instance)),
        env: (!instance.env.is_empty()).then(|| env.collect()),
        ports: (!instance.ports.is_empty()).then(|| ports.collect()),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        }),
        readiness_probe: probe(&instance.health, false),
        liveness_probe: probe(&instance.health, true),
        ..Default::default()
    }
}

/// The Service of a container that publishes ports (`HOST:CONTAINER` → port `HOST`, target port
/// `CONTAINER`); none for one that publishes none.
fn service(
    instance: &Instance,
    metadata: ObjectMeta,
    selector: BTreeMap<String, String>,
) -> Option<Service> {
    let ports = instance.ports.iter().map(|p| ServicePort {
        name: Some(format!("{}-{}", p.protocol, p.host)),
        port: i32::from(p.host),
        target_port: Some(IntOrString::Int(i32::from(p.container))),
        protocol: Some(protocol(&p.protocol)),
        ..Default::default()
    });
    (!instance.ports.is_empty()).then(|| Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports.collect()),
            ..Default::default()
        }),
        status: None,
    })
}

/// The objects of `desired` in `namespace` (`None`: no namespace in their metadata, for
/// `render` of a site that is not on Kubernetes); with `create_namespace`, the Namespace too.
pub fn objects(desired: &Desired, namespace: Option<&str>, create_namespace: bool) -> Objects {
    let waves = desired
        .waves
        .iter()
        .map(|wave| {
            // A container's replicas are consecutive instances with the same settings.
            let mut units: Vec<Unit> = Vec::new();
            let mut i = 0;
            while i < wave.len() {
                let first = &wave[i];
                let n = wave[i..]
                    .iter()
                    .take_while(|x| x.container == first.container)
                    .count();
                units.push(unit(
                    desired,
                    namespace,
                    first,
                    i32::try_from(n).unwrap_or(i32::MAX),
                ));
                i += n;
            }
            units
        })
        .collect();
    let namespace = namespace.filter(|_| create_namespace).map(|ns| Namespace {
        metadata: ObjectMeta {
            name: Some(ns.to_owned()),
            labels: Some(BTreeMap::from([
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                (label::PROJECT.to_owned(), desired.project.to_string()),
                (label::SITE.to_owned(), desired.site.to_string()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    });
    Objects { namespace, waves }
}

/// One object of a rendering, whatever its kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Any<'a> {
    Namespace(&'a Namespace),
    Deployment(&'a Deployment),
    Service(&'a Service),
}

impl Objects {
    fn all(&self) -> Vec<Any<'_>> {
        let mut out: Vec<Any<'_>> = self.namespace.iter().map(Any::Namespace).collect();
        for unit in self.waves.iter().flatten() {
            out.push(Any::Deployment(&unit.deployment));
            if let Some(s) = &unit.service {
                out.push(Any::Service(s));
            }
        }
        out
    }

    /// YAML documents separated by `---`, in apply order.
    pub fn to_yaml(&self) -> String {
        self.all()
            .iter()
            .map(|o| yaml_serde::to_string(o).expect("Kubernetes objects serialize"))
            .map(|doc| format!("---\n{doc}"))
            .collect()
    }

    /// A `v1` `List` of the objects, in apply order.
    pub fn to_json(&self) -> String {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": self.all(),
        });
        serde_json::to_string_pretty(&list).expect("Kubernetes objects serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::lock::{Lock, LockedImage};

    const COOKBOOK: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "packaging": { "registry": "reg:5000/p" },
      "applications": { "a": {} },
      "containers": {
        "db": { "base_image": "b", "applications": ["a"], "health": { "tcp": { "port": 5432 } } },
        "api": { "base_image": "b", "applications": ["a"], "depends_on": ["db"] }
      },
      "lifecycle": {
        "stages": ["dev"],
        "stage_config": { "dev": { "containers": { "api": {
          "replicas": 3, "ports": ["8080:80/udp"], "resources": { "cpus": 0.25, "memory": "1000" }
        } } } }
      },
      "federation": { "sites": { "k": {
        "containers": ["api"], "target": { "kubernetes": { "namespace": "ns" } }
      } } }
    }"#;

    /// The Docker backend requests a probe path literally (exec-form `wget`, no shell); so does
    /// Kubernetes' httpGet: `&`, `;` and `$()` are characters of the path, never commands.
    #[test]
    fn an_http_probe_is_a_literal_get_of_its_path() {
        let path = "/health&x;y$(touch$IFS/tmp/pwned)";
        let health = Health {
            probe: Probe::Http {
                port: 8080,
                path: crate::model::lifecycle::HttpPath::parse(path).unwrap(),
            },
            ..Health::default()
        };
        let p = probe(&health, true).unwrap();
        let get = p.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(8080));
        assert!(p.exec.is_none());
    }

    fn desired() -> Desired {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let mut lock = Lock::new(&crate::model::Name::parse("p").unwrap());
        for (c, d) in [("db", '1'), ("api", '2')] {
            lock.containers.insert(
                crate::model::Name::parse(c).unwrap(),
                LockedImage {
                    input_hash: crate::hash::InputHash::parse(&"0".repeat(64)).unwrap(),
                    image: crate::oci::WrittenReference::parse(&format!("reg:5000/p/{c}:tag"))
                        .unwrap(),
                    tags: vec![],
                    digest: Some(
                        crate::oci::Digest::parse(&format!("sha256:{}", d.to_string().repeat(64)))
                            .unwrap(),
                    ),
                    image_id: None,
                },
            );
        }
        crate::deploy::desired::desired(&cookbook, &plan, &lock, "k", "dev").unwrap()
    }

    #[test]
    fn one_deployment_per_container_with_its_replicas_and_a_service_for_published_ports() {
        let d = desired();
        let o = objects(&d, Some("ns"), false);
        assert!(o.namespace.is_none());
        let names: Vec<Vec<&str>> = o
            .waves
            .iter()
            .map(|w| w.iter().map(|u| u.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["p-k-dev-db"], vec!["p-k-dev-api"]]);
        let api = &o.waves[1][0];
        assert_eq!(api.replicas, 3);
        let spec = api.deployment.spec.as_ref().unwrap();
        let c = &spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some(format!("reg:5000/p/api@sha256:{}", "2".repeat(64)).as_str())
        );
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(
            (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
            ("250m", "1000")
        );
        assert!(c.readiness_probe.is_none(), "no probe, no readiness probe");
        let port = &api
            .service
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()[0];
        assert_eq!((port.port, port.protocol.as_deref()), (8080, Some("UDP")));
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        let db = &o.waves[0][0];
        assert!(db.service.is_none());
        let probe = db
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .liveness_probe
            .clone()
            .unwrap();
        assert_eq!(probe.tcp_socket.unwrap().port, IntOrString::Int(5432));
        assert_eq!(probe.initial_delay_seconds, Some(3));
        // The Namespace only when asked; the same input, the same bytes.
        let with_ns = objects(&d, Some("ns"), true);
        assert_eq!(
            with_ns.namespace.unwrap().metadata.name.as_deref(),
            Some("ns")
        );
        assert_eq!(o.to_yaml(), objects(&d, Some("ns"), false).to_yaml());
        assert_eq!(
            ours(&d),
            [
                "dev.cookbook.project=p,dev.cookbook.site=k,dev.cookbook.stage=dev",
                "io.cookbook.project=p,io.cookbook.site=k,io.cookbook.stage=dev"
            ]
        );
    }

    #[test]
    fn ours_by_the_labels_of_project_site_stage_and_container_only() {
        let d = desired();
        let o = objects(&d, Some("ns"), true);
        let api = &o.waves[1][0];
        let labels = api.deployment.metadata.labels.as_ref();
        assert_eq!(owner(&d, Some("api"), labels), Owner::Ours);
        assert_eq!(owner(&d, None, labels), Owner::Ours);
        assert_eq!(
            owner(
                &d,
                Some("api"),
                api.service.as_ref().unwrap().metadata.labels.as_ref()
            ),
            Owner::Ours
        );
        // Another site's object of the same container, whatever its name.
        let mut other = labels.unwrap().clone();
        other.insert(label::SITE.to_owned(), "edge".to_owned());
        let Owner::Cookbook(seen) = owner(&d, Some("api"), Some(&other)) else {
            panic!("another site's object is not ours");
        };
        assert_eq!(seen[label::SITE], "edge");
        // What an earlier version deployed, labelled `io.cookbook.*`, is still ours; another
        // site's so labelled is still not.
        let legacy = |site: &str| {
            BTreeMap::from([
                (crate::labels::legacy::PROJECT.to_owned(), "p".to_owned()),
                (crate::labels::legacy::SITE.to_owned(), site.to_owned()),
                (crate::labels::legacy::STAGE.to_owned(), "dev".to_owned()),
                (
                    crate::labels::legacy::CONTAINER.to_owned(),
                    "api".to_owned(),
                ),
            ])
        };
        assert_eq!(owner(&d, Some("api"), Some(&legacy("k"))), Owner::Ours);
        let Owner::Cookbook(seen) = owner(&d, Some("api"), Some(&legacy("edge"))) else {
            panic!("another site's legacy object is not ours");
        };
        assert_eq!(seen[crate::labels::legacy::SITE], "edge");
        // Ours for the stage but another container's: not this unit's.
        assert!(matches!(owner(&d, Some("db"), labels), Owner::Cookbook(_)));
        // A hand-made object: no cookbook label at all.
        let helm = BTreeMap::from([(LABEL_MANAGED_BY.to_owned(), "Helm".to_owned())]);
        assert_eq!(
            owner(&d, Some("api"), Some(&helm)),
            Owner::Other {
                managed_by: Some("Helm".to_owned())
            }
        );
        assert_eq!(
            owner(&d, Some("api"), None),
            Owner::Other { managed_by: None }
        );
        // The Namespace says which project and site created it.
        let ns = o.namespace.unwrap().metadata.labels.unwrap();
        assert_eq!(
            (ns[label::PROJECT].as_str(), ns[label::SITE].as_str()),
            ("p", "k")
        );
        assert_eq!(field_manager(&d.site), "cookbook/k");
        let long = Name::parse(&"s".repeat(128)).unwrap();
        assert_eq!(field_manager(&long).len(), 128);
    }
}
