//! The Kubernetes objects of a stage, derived from a `Desired` alone (pure). Per deployed
//! container (a *unit*): its pod's PersistentVolumeClaims (one per persistent volume), a
//! `Deployment` (the pod: the main container by digest with the stage's env, listened ports,
//! replicas, limits and probes; its init containers and native sidecars; `emptyDir` and claimed
//! volumes, `pod`), a `Service` named like the container when another depends on it or it
//! listens on ports, a `PodDisruptionBudget` when it runs several replicas, and the stage's
//! `Ingress` for it; the site's `Namespace` when the target asks for it. `cookbook render` prints
//! them; the cluster backend applies them; a rollback re-derives them from a recorded `Desired`,
//! which is what re-applying the previous release's objects means.
//!
//! Invariants: the same `Desired` gives byte-identical objects (maps are `BTreeMap`s in
//! k8s-openapi, lists are in wave and declaration order); every object of a unit carries the
//! labels that make it ours (`dev.cookbook.project`, `.site`, `.stage`, `.container`) and the
//! recommended `app.kubernetes.io/*` labels. The Deployment, budget and Ingress are named
//! `<project>-<site>-<stage>-<container>` (`model::lifecycle::kubernetes_name`, a claim adds
//! `-<volume>`), so sites sharing a namespace never share those names; the Service takes the
//! container's bare name, so that the names containers use on a Docker site resolve alike (two
//! stages or sites sharing a namespace then want the same Service: the second is refused as not
//! its own). The Namespace, shared by stages, carries the project and the site that created it.
//! Whether an object that exists is ours is decided by those labels alone (`owner`), never by its
//! name; an earlier version's `io.cookbook.*` labels count too (`crate::labels`), and such an
//! object is applied again, which moves it to the current labels.
//!
//! Every object of a unit carries the unit's config hash (`Unit::config_hash`, 64 hex characters:
//! too long for a label value) as an annotation; it covers the instance's config hash and the
//! unit's other objects, so comparing annotations finds any change. The pod template carries
//! none: a change to a Service or an Ingress must not restart pods.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, Service,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::deploy::desired::{Desired, Instance};
use crate::labels::deploy as label;
use crate::labels::SCHEMES;
use crate::model::lifecycle::{kubernetes_name, Health};
use crate::model::pod::{Ingress as StageIngress, Persistent};
use crate::model::Name;

mod pod;

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

/// One deployed container of the stage (its pod) and the objects that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// `<project>-<site>-<stage>-<container>`: the Deployment's, the budget's and the
    /// Ingress's name.
    pub name: String,
    pub container: Name,
    /// Hex SHA-256 over the instance's config hash and the unit's other objects (`unit_hash`):
    /// the `dev.cookbook.config-hash` annotation of every object of the unit.
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

/// How long a rollout may go without progress: as long as the Docker backend waits for health
/// (every retry timing out, plus the grace period), at least a minute.
pub fn progress_deadline(health: &Health) -> Duration {
    let d = health.grace + (health.interval + health.timeout) * (health.retries + 1);
    d.max(Duration::from_secs(60))
}

/// The image by digest: the lock's repository (its tag dropped) `@` the digest.
pub fn image_by_digest(instance: &Instance) -> String {
    pod::by_digest(&instance.image, &instance.digest)
}

/// The name of the PersistentVolumeClaim of `container`'s persistent `volume` in a site's stage:
/// `<project>-<site>-<stage>-<container>-<volume>`, shortened as `kubernetes_name` shortens.
pub fn claim_name(desired: &Desired, container: &str, volume: &str) -> String {
    kubernetes_name(
        desired.project.as_str(),
        desired.site.as_str(),
        desired.stage.as_str(),
        &format!("{container}-{volume}"),
    )
}

/// The unit's objects as first built, before their config-hash annotation.
struct Parts {
    deployment: Deployment,
    service: Option<Service>,
    claims: Vec<PersistentVolumeClaim>,
    ingress: Option<Ingress>,
    budget: Option<PodDisruptionBudget>,
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
    let meta = |object: &str| ObjectMeta {
        name: Some(object.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let claim_names: BTreeMap<Name, String> = instance
        .volumes
        .iter()
        .filter(|(_, v)| v.persistent.is_some())
        .map(|(v, _)| {
            let claim = claim_name(desired, instance.container.as_str(), v.as_str());
            (v.clone(), claim)
        })
        .collect();
    let claims: Vec<PersistentVolumeClaim> = instance
        .volumes
        .iter()
        .filter_map(|(v, volume)| Some((claim_names.get(v)?, volume.persistent.as_ref()?)))
        .map(|(claim, p)| claim_object(meta(claim), p))
        .collect();
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..Default::default()
        }),
        spec: Some(pod::spec(instance, &claim_names)),
    };
    let mut deployment_meta = meta(&name);
    deployment_meta.annotations = Some(BTreeMap::from([(
        ANNOTATION_IMAGE.to_owned(),
        instance.image.clone(),
    )]));
    let deployment = Deployment {
        metadata: deployment_meta,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            // A ReadWriteOnce claim cannot be attached to the old pod and the new one at once:
            // the old one goes first.
            strategy: (!claims.is_empty()).then(|| DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                rolling_update: None,
            }),
            progress_deadline_seconds: Some(pod::seconds(progress_deadline(&instance.health))),
            template: pod,
            ..Default::default()
        }),
        status: None,
    };
    let service = service(instance, meta(instance.container.as_str()), &selector);
    let mut parts = Parts {
        deployment,
        ingress: instance
            .ingress
            .as_ref()
            .map(|i| ingress(i, meta(&name), instance.container.as_str())),
        budget: (replicas > 1).then(|| budget(meta(&name), &selector)),
        service,
        claims,
    };
    let config_hash = unit_hash(&instance.config_hash, &parts);
    let annotate = |m: &mut ObjectMeta| {
        m.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(label::CONFIG_HASH.to_owned(), config_hash.clone());
    };
    annotate(&mut parts.deployment.metadata);
    parts
        .claims
        .iter_mut()
        .for_each(|c| annotate(&mut c.metadata));
    for m in [
        parts.service.as_mut().map(|s| &mut s.metadata),
        parts.ingress.as_mut().map(|i| &mut i.metadata),
        parts.budget.as_mut().map(|b| &mut b.metadata),
    ]
    .into_iter()
    .flatten()
    {
        annotate(m);
    }
    Unit {
        name,
        container: instance.container.clone(),
        config_hash,
        replicas,
        deployment: parts.deployment,
        service: parts.service,
        claims: parts.claims,
        ingress: parts.ingress,
        budget: parts.budget,
    }
}

/// The unit's config hash: hex SHA-256 over the instance's config hash (which covers the pod
/// template) and the canonical JSON (RFC 8785, as `desired` hashes) of the unit's other objects,
/// so that a change to any of them is seen by comparing annotations. The `release` label is left
/// out (it changes whenever any container of the stage does, and would re-apply every unit), and
/// so is the Deployment: its pod template is what the instance's hash covers, its replicas are
/// compared apart.
fn unit_hash(instance_hash: &str, parts: &Parts) -> String {
    fn plain<T: Serialize>(object: &T) -> serde_json::Value {
        let mut v = serde_json::to_value(object).expect("Kubernetes objects serialize");
        if let Some(labels) = v
            .pointer_mut("/metadata/labels")
            .and_then(serde_json::Value::as_object_mut)
        {
            labels.remove(label::RELEASE);
        }
        v
    }
    let doc = serde_json::json!({
        "instance": instance_hash,
        "service": parts.service.as_ref().map(plain),
        "claims": parts.claims.iter().map(plain).collect::<Vec<_>>(),
        "ingress": parts.ingress.as_ref().map(plain),
        "budget": parts.budget.as_ref().map(plain),
    });
    let mut canonical = Vec::new();
    serde_json_canonicalizer::to_writer(&doc, &mut canonical)
        .expect("serializing to memory cannot fail");
    hex::encode(Sha256::digest(&canonical))
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

/// The claim of a persistent volume: one node at a time (`ReadWriteOnce`, what every storage
/// class offers), the size asked, the storage class when named.
fn claim_object(metadata: ObjectMeta, p: &Persistent) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(p.size.clone()),
                )])),
                limits: None,
            }),
            storage_class_name: p.storage_class.clone(),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Service of a container another depends on or that listens on ports, named like the
/// container so that the names containers use on a Docker site's network resolve alike: its
/// ports are the container's (`listens`: port and target port the same; never a Docker site's
/// host port), and one listening on nothing is headless (the name resolves to the pods).
fn service(
    instance: &Instance,
    metadata: ObjectMeta,
    selector: &BTreeMap<String, String>,
) -> Option<Service> {
    if !instance.depended_on && instance.listens.is_empty() {
        return None;
    }
    let ports: Vec<ServicePort> = instance
        .listens
        .iter()
        .map(|l| ServicePort {
            name: Some(format!("{}-{}", l.protocol, l.port)),
            port: i32::from(l.port),
            target_port: Some(IntOrString::Int(i32::from(l.port))),
            protocol: Some(pod::protocol(&l.protocol)),
            ..Default::default()
        })
        .collect();
    let headless = ports.is_empty();
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            cluster_ip: headless.then(|| "None".to_owned()),
            ports: (!headless).then_some(ports),
            ..Default::default()
        }),
        status: None,
    })
}

/// The stage's Ingress for a container: its host and path prefix to its Service's port, TLS
/// from the Secret it names, the IngressClass when named.
fn ingress(i: &StageIngress, metadata: ObjectMeta, service: &str) -> Ingress {
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.to_owned(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(i.port)),
                name: None,
            }),
        }),
        resource: None,
    };
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: i.class.clone(),
            rules: Some(vec![IngressRule {
                host: Some(i.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        backend,
                        path: Some(i.path.clone()),
                        path_type: "Prefix".to_owned(),
                    }],
                }),
            }]),
            tls: i.tls_secret.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![i.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    }
}

/// A budget of one pod unavailable at a time, for a container running several: a node drain
/// then never takes them all at once.
fn budget(metadata: ObjectMeta, selector: &BTreeMap<String, String>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
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

/// One object of a rendering, whatever its kind (it serializes as the object itself).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Any<'a> {
    Namespace(&'a Namespace),
    PersistentVolumeClaim(&'a PersistentVolumeClaim),
    Deployment(&'a Deployment),
    Service(&'a Service),
    PodDisruptionBudget(&'a PodDisruptionBudget),
    Ingress(&'a Ingress),
}

impl Any<'_> {
    /// The object's kind, as its `kind` field says.
    pub fn kind(&self) -> &'static str {
        match self {
            Any::Namespace(_) => "Namespace",
            Any::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Any::Deployment(_) => "Deployment",
            Any::Service(_) => "Service",
            Any::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Any::Ingress(_) => "Ingress",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Any::Namespace(o) => &o.metadata,
            Any::PersistentVolumeClaim(o) => &o.metadata,
            Any::Deployment(o) => &o.metadata,
            Any::Service(o) => &o.metadata,
            Any::PodDisruptionBudget(o) => &o.metadata,
            Any::Ingress(o) => &o.metadata,
        }
    }
}

impl Unit {
    /// The unit's objects in apply order: the claims (a pod waits for its claims to bind), the
    /// Deployment, its Service, its budget, then its Ingress (whose backend is the Service).
    pub fn all(&self) -> Vec<Any<'_>> {
        let mut out: Vec<Any<'_>> = self.claims.iter().map(Any::PersistentVolumeClaim).collect();
        out.push(Any::Deployment(&self.deployment));
        out.extend(self.service.iter().map(Any::Service));
        out.extend(self.budget.iter().map(Any::PodDisruptionBudget));
        out.extend(self.ingress.iter().map(Any::Ingress));
        out
    }
}

impl Objects {
    /// Every object in apply order: the Namespace, then wave by wave, unit by unit,
    /// `Unit::all`'s order.
    pub fn all(&self) -> Vec<Any<'_>> {
        let mut out: Vec<Any<'_>> = self.namespace.iter().map(Any::Namespace).collect();
        for unit in self.waves.iter().flatten() {
            out.extend(unit.all());
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

    fn desired() -> Desired {
        desired_of(COOKBOOK, "dev")
    }

    /// The `Desired` of `cookbook`'s site `k` in `stage`, every container locked with a digest
    /// of its own.
    fn desired_of(cookbook: &str, stage: &str) -> Desired {
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(cookbook.as_bytes()).unwrap();
        let mut lock = Lock::new(&crate::model::Name::parse("p").unwrap());
        for (i, c) in cookbook.containers.keys().enumerate() {
            lock.containers.insert(
                c.clone(),
                LockedImage {
                    input_hash: crate::hash::InputHash::parse(&"0".repeat(64)).unwrap(),
                    image: crate::oci::WrittenReference::parse(&format!("reg:5000/p/{c}:tag"))
                        .unwrap(),
                    tags: vec![],
                    digest: Some(
                        crate::oci::Digest::parse(&format!("sha256:{:064x}", i + 1)).unwrap(),
                    ),
                    image_id: None,
                },
            );
        }
        crate::deploy::desired::desired(&cookbook, &plan, &lock, "k", stage).unwrap()
    }

    #[test]
    fn one_deployment_per_container_with_its_replicas_and_a_service_named_like_it() {
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
            Some(format!("reg:5000/p/api@sha256:{:064x}", 1).as_str())
        );
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(
            (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
            ("250m", "1000")
        );
        assert!(c.readiness_probe.is_none(), "no probe, no readiness probe");
        // `8080:80/udp` on a Docker site: the Service offers the container's port 80, never
        // the host's 8080, under the container's own name.
        let service = api.service.as_ref().unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("api"));
        let port = &service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("udp-80"), 80, Some("UDP"))
        );
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 80);
        // Three replicas: a budget of one unavailable pod, selecting the unit's pods.
        let budget = api.budget.as_ref().unwrap().spec.as_ref().unwrap();
        assert_eq!(budget.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            budget.selector.as_ref().unwrap().match_labels,
            spec.selector.match_labels
        );
        // db listens on nothing but api depends on it: a headless Service by its name.
        let db = &o.waves[0][0];
        let headless = db.service.as_ref().unwrap();
        assert_eq!(headless.metadata.name.as_deref(), Some("db"));
        let hs = headless.spec.as_ref().unwrap();
        assert_eq!(
            (hs.cluster_ip.as_deref(), hs.ports.as_ref()),
            (Some("None"), None)
        );
        assert!(db.budget.is_none(), "one replica, no budget");
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

    const POD: &str = r#"{
      "manifest_version": "1.1",
      "project": { "name": "p" },
      "packaging": { "registry": "reg:5000/p" },
      "applications": { "a": {} },
      "containers": {
        "store": { "base_image": "b", "applications": ["a"], "ports": [9000],
                   "volumes": { "data": { "persistent": true, "size": "2Gi", "storage_class": "fast" } },
                   "mounts": { "data": "/var/lib/store" } },
        "seed": { "base_image": "b", "applications": ["a"], "mounts": { "content": "/out" } },
        "more": { "base_image": "b", "applications": ["a"] },
        "proxy": { "base_image": "b", "applications": ["a"], "mounts": { "content": "/www" },
                   "health": { "tcp": { "port": 8080 }, "interval": "2s", "grace": "4s", "retries": 3 } },
        "web": { "base_image": "b", "applications": ["a"], "ports": [80, 8080], "depends_on": ["store"],
                 "init": ["seed", "more"], "sidecars": ["proxy"],
                 "volumes": { "content": {} }, "mounts": { "content": "/srv/www" } }
      },
      "lifecycle": {
        "stages": ["dev"],
        "stage_config": { "dev": { "containers": {
          "web": { "replicas": 2, "ports": ["127.0.0.1:8088:8080"],
                   "env": { "TOKEN": { "secret": "web-api/token" } },
                   "ingress": { "host": "web.example.com", "port": 8080, "tls_secret": "web-tls", "class": "nginx" } },
          "seed": { "env": { "TITLE": "hello", "KEY": { "secret": "seed-keys/key" } } }
        } } }
      },
      "federation": { "sites": { "k": {
        "containers": ["web"], "target": { "kubernetes": { "namespace": "ns" } }
      } } }
    }"#;

    fn pod_spec(unit: &Unit) -> &k8s_openapi::api::core::v1::PodSpec {
        unit.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    #[test]
    fn a_pod_is_one_deployment_with_its_init_containers_then_native_sidecars_and_its_volumes() {
        let d = desired_of(POD, "dev");
        let o = objects(&d, Some("ns"), false);
        let units: Vec<&Unit> = o.waves.iter().flatten().collect();
        let names: Vec<&str> = units.iter().map(|u| u.container.as_str()).collect();
        assert_eq!(names, ["store", "web"], "members are no units of their own");
        let web = units[1];
        let pod = pod_spec(web);
        assert_eq!(pod.containers.len(), 1);
        let init = pod.init_containers.as_ref().unwrap();
        let order: Vec<(&str, Option<&str>)> = init
            .iter()
            .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
            .collect();
        assert_eq!(
            order,
            [("seed", None), ("more", None), ("proxy", Some("Always"))]
        );
        // An init container takes no probe (the API server refuses one); the sidecar has all
        // three, its startup probe allowing the grace period (4 s at 2 s: 2 more failures).
        assert!(init[0].readiness_probe.is_none() && init[0].startup_probe.is_none());
        let startup = init[2].startup_probe.as_ref().unwrap();
        assert_eq!(startup.failure_threshold, Some(5));
        assert!(init[2].readiness_probe.is_some() && init[2].liveness_probe.is_some());
        // Members by digest, with their own stage env (a secret by reference) and mounts.
        assert_eq!(
            init[0].image.as_deref(),
            Some(format!("reg:5000/p/seed@sha256:{:064x}", 3).as_str())
        );
        let env = init[0].env.as_ref().unwrap();
        let key = env.iter().find(|e| e.name == "KEY").unwrap();
        assert!(key.value.is_none());
        let selector = key
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("seed-keys", "key")
        );
        let mount = |c: &k8s_openapi::api::core::v1::Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .map(|m| (m.name.clone(), m.mount_path.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(mount(&init[0]), [("content".to_owned(), "/out".to_owned())]);
        assert!(mount(&init[1]).is_empty());
        assert_eq!(mount(&init[2]), [("content".to_owned(), "/www".to_owned())]);
        assert_eq!(
            mount(&pod.containers[0]),
            [("content".to_owned(), "/srv/www".to_owned())]
        );
        let volumes = pod.volumes.as_ref().unwrap();
        assert_eq!(volumes.len(), 1);
        assert!(volumes[0].empty_dir.is_some() && volumes[0].persistent_volume_claim.is_none());
        assert!(web.claims.is_empty());
        // Two replicas: a budget; scratch volumes only: rolling updates as usual.
        assert!(web.budget.is_some());
        assert!(web.deployment.spec.as_ref().unwrap().strategy.is_none());
        // The Service offers the ports it listens on, never the host's 8088.
        let ports: Vec<i32> = web
            .service
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [80, 8080]);
        // The Ingress: host, prefix, the Service by name and port, TLS, class.
        let ingress = web.ingress.as_ref().unwrap();
        assert_eq!(ingress.metadata.name.as_deref(), Some("p-k-dev-web"));
        let spec = ingress.spec.as_ref().unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("web.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(
            (path.path.as_deref(), path.path_type.as_str()),
            (Some("/"), "Prefix")
        );
        let backend = path.backend.service.as_ref().unwrap();
        assert_eq!(
            (backend.name.as_str(), backend.port.as_ref().unwrap().number),
            ("web", Some(8080))
        );
        let tls = &spec.tls.as_ref().unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("web-tls"));
        assert_eq!(
            tls.hosts.as_deref(),
            Some(&["web.example.com".to_owned()][..])
        );
        // The persistent volume: a claim, mounted through the pod; recreated, never rolled.
        let store = units[0];
        assert_eq!(store.claims.len(), 1);
        let claim = &store.claims[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("p-k-dev-store-data"));
        let cs = claim.spec.as_ref().unwrap();
        assert_eq!(
            cs.access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_owned()][..])
        );
        assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            cs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "2Gi"
        );
        let sv = &pod_spec(store).volumes.as_ref().unwrap()[0];
        assert_eq!(
            sv.persistent_volume_claim.as_ref().unwrap().claim_name,
            "p-k-dev-store-data"
        );
        let strategy = store
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
        assert_eq!(
            owner(&d, Some("store"), claim.metadata.labels.as_ref()),
            Owner::Ours
        );
        // Apply order: claims, Deployment, Service, budget, Ingress, unit after unit.
        let kinds: Vec<String> = o
            .all()
            .iter()
            .map(|a| format!("{}/{}", a.kind(), a.metadata().name.as_deref().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                "PersistentVolumeClaim/p-k-dev-store-data",
                "Deployment/p-k-dev-store",
                "Service/store",
                "Deployment/p-k-dev-web",
                "Service/web",
                "PodDisruptionBudget/p-k-dev-web",
                "Ingress/p-k-dev-web",
            ]
        );
        // No secret value can be in a rendering: the references are all it has.
        let yaml = o.to_yaml();
        assert!(yaml.contains("secretKeyRef") && yaml.contains("web-api"));
    }

    /// Every object of a unit carries the unit's config hash, and the pod template none; the
    /// hash moves with an object other than the Deployment (an Ingress's host), and not with
    /// the release label another container's change moves.
    #[test]
    fn the_units_config_hash_covers_its_objects_and_is_on_each_of_them() {
        let d = desired_of(POD, "dev");
        let o = objects(&d, Some("ns"), false);
        let web = &o.waves[1][0];
        assert_eq!(web.config_hash.len(), 64);
        assert_ne!(web.config_hash, d.waves[1][0].config_hash);
        for object in web.all() {
            let annotations = object.metadata().annotations.as_ref().unwrap();
            assert_eq!(
                annotations[label::CONFIG_HASH],
                web.config_hash,
                "{}",
                object.kind()
            );
        }
        let template = &web.deployment.spec.as_ref().unwrap().template;
        assert!(template.metadata.as_ref().unwrap().annotations.is_none());
        let changed = desired_of(&POD.replace("web.example.com", "www.example.com"), "dev");
        let changed = objects(&changed, Some("ns"), false);
        assert_eq!(changed.waves[1][0].deployment.spec, web.deployment.spec);
        assert_ne!(changed.waves[1][0].config_hash, web.config_hash);
        // The same objects under another release: the same hash.
        let mut other = d.clone();
        other.release = "another".to_owned();
        let again = objects(&other, Some("ns"), false);
        assert_eq!(again.waves[1][0].config_hash, web.config_hash);
        assert_eq!(again.waves[0][0].config_hash, o.waves[0][0].config_hash);
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
