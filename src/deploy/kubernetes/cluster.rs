//! The cluster edge: `KubeSite`, a `deploy::Backend` over the Kubernetes API.
//!
//! Its units are pods, one Deployment each, named `<project>-<site>-<stage>-<container>`, with
//! their other objects: a Service named like the container, PersistentVolumeClaims, an Ingress,
//! a PodDisruptionBudget (`objects::Unit`). `prepare` checks that every Secret the stage
//! references exists with its key (reading key names only, never a value) before anything
//! changes. `changes` lists our objects of each kind by label, and asks by name for each wanted
//! object it did not list: one that exists is not ours, and the deploy stops there
//! (`KubeError::NotOurs`) before anything is sent. A unit is unchanged when its Deployment and
//! each of its other objects exist, are ours and carry its config hash, and then nothing of it
//! is sent. `apply` sends each changed unit's objects with server-side apply (`PATCH`
//! `application/apply-patch+yaml`, field manager `cookbook/<site>`, `force` only with
//! `--force-conflicts`); `wait` WATCHes every Deployment of the wave at once (kube-runtime's
//! watcher: one LIST and one long-lived WATCH each, no polling) until its rollout is complete
//! or its progress deadline is exceeded. What is no longer wanted is reported per object,
//! `deployment/NAME`, `service/NAME`, `ingress/NAME`, … (a Service goes when nothing needs it
//! any more, while its Deployment stays), except a PersistentVolumeClaim: its data outlives
//! redeploys, new images, its container leaving the stage and rollbacks (never pruned, as a
//! Docker site's persistent volume). `remove` deletes only those, listed again by our labels and
//! deleted with their uid as a precondition, so an object recreated under that name meanwhile
//! is not ours to delete. A kind the cluster does not serve (404 on its LIST) holds nothing of
//! ours.
//!
//! Upgrading from the names without the site (`<project>-<stage>-<container>`): those objects
//! carry our labels, so they are listed as ours, wanted by no container, and pruned after the
//! last wave, once their successors are healthy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::objects::{field_manager, objects, ours, owner, Objects, Owner, Unit, LABEL_INSTANCE};
use super::{Conflict, Foreign, KubeError};
use crate::deploy::backend::{Backend, BackendError, Unhealthy};
use crate::deploy::desired::{Changes, Desired};
use crate::deploy::detect::{minor_version, Class, Cluster, Detected, Needs};
use crate::labels::deploy::CONFIG_HASH;
use crate::model::lifecycle::KubernetesTarget;

/// How `changes` names an orphan of each kind (`deployment/NAME`), as kubectl does.
const DEPLOYMENT: &str = "deployment";
const SERVICE: &str = "service";
const CLAIM: &str = "persistentvolumeclaim";
const INGRESS: &str = "ingress";
const BUDGET: &str = "poddisruptionbudget";

/// How many warning events `status` shows per container.
const EVENTS: usize = 3;

/// The names of `objects` as `kind/NAME`.
fn keys<K>(kind: &str, objects: &BTreeMap<String, K>) -> Vec<String> {
    objects.keys().map(|n| format!("{kind}/{n}")).collect()
}

/// What [`KubeSite::down`] did: objects as `kind/NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Down {
    /// Deleted (their deletion requested, by uid: the cluster finishes it).
    pub removed: Vec<String>,
    /// PersistentVolumeClaims left in place (no `--volumes`).
    pub kept: Vec<String>,
}

/// A connected Kubernetes site.
pub struct KubeSite {
    client: Client,
    url: String,
    namespace: String,
    create_namespace: bool,
    force_conflicts: bool,
}

/// Where a container's Deployment is (`cookbook status`'s STATE column, and its JSON `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// No Deployment of that name.
    Missing,
    /// A Deployment of that name exists and is not ours.
    Foreign,
    Progressing,
    /// Its rollout is complete.
    Available,
    /// Its progress deadline was exceeded.
    Failed,
}

impl UnitState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Missing => "missing",
            UnitState::Foreign => "foreign",
            UnitState::Progressing => "progressing",
            UnitState::Available => "available",
            UnitState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that a table's column width applies.
        f.pad(self.as_str())
    }
}

/// What the cluster says about one container's Deployment (`cookbook status`; serialized, a row
/// of its JSON document).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitStatus {
    /// The Deployment's name.
    pub name: String,
    pub container: String,
    pub state: UnitState,
    pub desired_digest: String,
    /// The digest of the image the Deployment runs (`None`: missing, or not by digest).
    pub running_digest: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// Container restarts over the Deployment's pods.
    pub restarts: i64,
    /// The latest warning events about the Deployment and its pods, oldest first:
    /// `Reason: message`.
    pub warnings: Vec<String>,
    /// Another image or other settings (its config-hash annotation) than desired, or missing.
    pub drift: bool,
}

impl UnitStatus {
    /// Its rollout complete, with what the lock wants.
    pub fn in_sync(&self) -> bool {
        !self.drift && self.state == UnitState::Available
    }
}

fn api_error(operation: &str, e: kube::Error, url: &str) -> KubeError {
    match e {
        kube::Error::Api(status) => KubeError::Api {
            operation: operation.to_owned(),
            code: status.code,
            message: status.message,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => KubeError::Unreachable {
            url: url.to_owned(),
            message: error_chain(&e),
        },
        other => KubeError::Api {
            operation: operation.to_owned(),
            code: 0,
            message: error_chain(&other),
        },
    }
}

/// An error and its causes, as one line (kube's errors wrap hyper's, which wrap the system's).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The conflicts of a 409 from server-side apply. The API server names each field in its
/// cause's `field`, and the manager only inside the cause's `message`
/// (`conflict with "kubectl-edit" using apps/v1`): there is no structured field for it.
fn conflicts(status: &kube::core::Status) -> Vec<Conflict> {
    status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| Conflict {
            field: c.field.clone(),
            manager: c.message.split('"').nth(1).unwrap_or(&c.message).to_owned(),
        })
        .collect()
}

/// Whether a Deployment's rollout is done, by `kubectl rollout status`'s rules:
/// `Ok(true)` complete, `Ok(false)` still going, `Err(why)` failed.
pub fn rollout(d: &Deployment) -> Result<bool, String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Ok(false);
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Ok(false);
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
    {
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return Err(format!(
                "its rollout exceeded its progress deadline ({}s){}",
                d.spec
                    .as_ref()
                    .and_then(|s| s.progress_deadline_seconds)
                    .unwrap_or(600),
                c.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < wanted {
        return Ok(false);
    }
    if status.replicas.unwrap_or(0) > updated {
        return Ok(false);
    }
    if status.available_replicas.unwrap_or(0) < updated {
        return Ok(false);
    }
    Ok(true)
}

fn digest_of(image: &str) -> Option<String> {
    image.split_once('@').map(|(_, d)| d.to_owned())
}

/// A namespaced kind cookbook lists, reads and deletes (Deployment, Service): the bounds kube's
/// `Api` needs, named once.
trait Listed:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Listed for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

impl KubeSite {
    /// Connects through kube's own configuration loading: the target's `kubeconfig` (relative to
    /// `base`, the cookbook's directory) at its `context`; else `KUBECONFIG` or `~/.kube/config`;
    /// else, with neither a file nor a context, the in-cluster service account. Asks the API
    /// server its version, so an unreachable cluster is reported before anything is planned.
    pub async fn connect(
        target: &KubernetesTarget,
        base: &Path,
        force_conflicts: bool,
    ) -> Result<KubeSite, KubeError> {
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = match (&target.kubeconfig, &target.context) {
            (Some(file), _) => {
                let path = base.join(file);
                let at = Some(path.display().to_string());
                let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| KubeError::Config {
                    at: at.clone(),
                    message: error_chain(&e),
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| KubeError::Config {
                        at,
                        message: error_chain(&e),
                    })?
            }
            (None, Some(_)) => {
                Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| KubeError::Config {
                        at: None,
                        message: error_chain(&e),
                    })?
            }
            (None, None) => Config::infer().await.map_err(|e| KubeError::Config {
                at: None,
                message: error_chain(&e),
            })?,
        };
        let url = config.cluster_url.to_string();
        // rustls is built with both `ring` (kube's choice) and `aws-lc-rs` (through other
        // crates), so it cannot pick a process-wide provider by itself: name kube's. An error
        // only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_from(config).map_err(|e| KubeError::Config {
            at: None,
            message: error_chain(&e),
        })?;
        client
            .apiserver_version()
            .await
            .map_err(|e| api_error("GET /version", e, &url))?;
        Ok(KubeSite {
            client,
            url,
            namespace: target.namespace.clone(),
            create_namespace: target.create_namespace,
            force_conflicts,
        })
    }

    fn objects(&self, desired: &Desired) -> Objects {
        objects(desired, Some(&self.namespace), self.create_namespace)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side apply of one object under `manager`, the site's field manager.
    async fn apply_object<K>(
        &self,
        api: &Api<K>,
        manager: &str,
        kind: &'static str,
        name: &str,
        object: &K,
    ) -> Result<(), KubeError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let mut params = PatchParams::apply(manager);
        params.force = self.force_conflicts;
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let found = conflicts(&status);
                if found.is_empty() {
                    Err(KubeError::Api {
                        operation: format!("apply {kind} {name}"),
                        code: status.code,
                        message: status.message,
                    })
                } else {
                    Err(KubeError::Conflict {
                        kind,
                        name: name.to_owned(),
                        conflicts: found,
                    })
                }
            }
            Err(e) => Err(api_error(&format!("apply {kind} {name}"), e, &self.url)),
        }
    }

    /// Deletes the objects of kind `K` named in `names` — only those that are ours by their
    /// labels, listed again now, and only the very objects listed (their uid is the delete's
    /// precondition): never a namesake, not even one created since.
    async fn delete_ours<K>(
        &self,
        what: &str,
        kind: &str,
        desired: &Desired,
        names: &[&str],
    ) -> Result<(), KubeError>
    where
        K: Listed,
    {
        if names.is_empty() {
            return Ok(());
        }
        for object in self.list_ours::<K>(what, desired).await? {
            let meta = object.meta();
            let Some(name) = meta.name.as_deref().filter(|n| names.contains(n)) else {
                continue;
            };
            if owner(desired, None, meta.labels.as_ref()) != Owner::Ours {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match self.api::<K>().delete(name, &params).await {
                Ok(_) => {}
                // Gone already (404), or replaced by a namesake since it was listed (409: the
                // uid precondition failed): ours is gone either way, and the namesake is not
                // ours to delete.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(e) => return Err(api_error(&format!("delete {kind} {name}"), e, &self.url)),
            }
        }
        Ok(())
    }

    /// The objects of kind `K` that are ours in the stage of `desired`, by name.
    async fn ours<K>(&self, what: &str, desired: &Desired) -> Result<BTreeMap<String, K>, KubeError>
    where
        K: Listed,
    {
        Ok(self
            .list_ours::<K>(what, desired)
            .await?
            .into_iter()
            .filter(|o| owner(desired, None, o.meta().labels.as_ref()) == Owner::Ours)
            .filter_map(|o| Some((o.meta().name.clone()?, o)))
            .collect())
    }

    /// `cookbook down`: deletes every object of the stage of `desired` that is ours by its
    /// labels (its instances are not read: a stage-only `Desired` will do), Deployments first,
    /// and its PersistentVolumeClaims only with `claims`. Returns the objects deleted and the
    /// claims kept, as `kind/NAME`. The Namespace stays: others may share it.
    pub async fn down(&self, desired: &Desired, claims: bool) -> Result<Down, KubeError> {
        let deployments: BTreeMap<String, Deployment> = self.ours("deployments", desired).await?;
        let services: BTreeMap<String, Service> = self.ours("services", desired).await?;
        let ingresses: BTreeMap<String, Ingress> =
            self.ours_if_served("ingresses", desired).await?;
        let budgets: BTreeMap<String, PodDisruptionBudget> =
            self.ours_if_served("poddisruptionbudgets", desired).await?;
        let found_claims: BTreeMap<String, PersistentVolumeClaim> = self
            .ours_if_served("persistentvolumeclaims", desired)
            .await?;
        let mut removed = keys(DEPLOYMENT, &deployments);
        removed.extend(keys(SERVICE, &services));
        removed.extend(keys(INGRESS, &ingresses));
        removed.extend(keys(BUDGET, &budgets));
        let claim_names = keys(CLAIM, &found_claims);
        let kept = if claims {
            removed.extend(claim_names);
            Vec::new()
        } else {
            claim_names
        };
        Backend::remove(self, desired, &removed)
            .await
            .map_err(|e| match e {
                BackendError::Kube(k) => k,
                other => KubeError::Api {
                    operation: "delete".to_owned(),
                    code: 0,
                    message: other.to_string(),
                },
            })?;
        Ok(Down { removed, kept })
    }

    /// What the cluster offers, by discovery
    /// (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api): its version,
    /// every group version with its resources, its StorageClasses and IngressClasses (the
    /// default one by its `…/is-default-class` annotation).
    pub async fn discover(&self) -> Result<Cluster, KubeError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| api_error("get the server version", e, &self.url))?;
        let discovery = kube::discovery::Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| api_error("discover the API", e, &self.url))?;
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, _) in group.versioned_resources(version) {
                    groups
                        .entry(resource.api_version.clone())
                        .or_default()
                        .push(resource.plural);
                }
            }
        }
        for resources in groups.values_mut() {
            resources.sort();
            resources.dedup();
        }
        let serves = |gv: &str, r: &str| groups.get(gv).is_some_and(|x| x.iter().any(|y| y == r));
        let default = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                       key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == "true")
        };
        let mut storage_classes = Vec::new();
        if serves("storage.k8s.io/v1", "storageclasses") {
            let api: Api<StorageClass> = Api::all(self.client.clone());
            for c in api
                .list(&ListParams::default())
                .await
                .map_err(|e| api_error("list storageclasses", e, &self.url))?
            {
                storage_classes.push(Class {
                    default: default(&c.metadata, "storageclass.kubernetes.io/is-default-class"),
                    name: c.metadata.name.unwrap_or_default(),
                    by: Some(c.provisioner),
                });
            }
        }
        let mut ingress_classes = Vec::new();
        if serves("networking.k8s.io/v1", "ingressclasses") {
            let api: Api<IngressClass> = Api::all(self.client.clone());
            for c in api
                .list(&ListParams::default())
                .await
                .map_err(|e| api_error("list ingressclasses", e, &self.url))?
            {
                ingress_classes.push(Class {
                    default: default(&c.metadata, "ingressclass.kubernetes.io/is-default-class"),
                    name: c.metadata.name.unwrap_or_default(),
                    by: c.spec.and_then(|s| s.controller),
                });
            }
        }
        Ok(Cluster {
            server_version: info.git_version,
            minor: minor_version(&info.minor),
            groups,
            storage_classes,
            ingress_classes,
        })
    }

    /// Every Secret `desired` references (`Desired::secrets`) exists in the namespace with the
    /// key named. Only the key names are read: the values are skipped as they are parsed
    /// (`IgnoredAny`), never held, logged or reported.
    async fn check_secrets(&self, desired: &Desired) -> Result<(), KubeError> {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(default)]
            data: BTreeMap<String, serde::de::IgnoredAny>,
        }
        let secrets =
            kube::core::Request::new(format!("/api/v1/namespaces/{}/secrets", self.namespace));
        for reference in desired.secrets() {
            let (name, key) = (reference.name(), reference.key());
            let fail = |why: String| KubeError::Secret {
                reference: format!("{name}/{key}"),
                namespace: self.namespace.clone(),
                why,
            };
            let operation = format!("get Secret {name}");
            let request = secrets
                .get(name, &kube::api::GetParams::default())
                .map_err(|e| KubeError::Api {
                    operation: operation.clone(),
                    code: 0,
                    message: e.to_string(),
                })?;
            match self.client.request::<Keys>(request).await {
                Ok(keys) if keys.data.contains_key(key) => {}
                Ok(_) => return Err(fail(format!("Secret `{name}` has no key `{key}`"))),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Err(fail(format!("no Secret `{name}`")))
                }
                Err(e) => return Err(api_error(&operation, e, &self.url)),
            }
        }
        Ok(())
    }

    /// `ours`, for a kind the cluster may not serve (an API group it lacks): none of ours
    /// there.
    async fn ours_if_served<K>(
        &self,
        what: &str,
        desired: &Desired,
    ) -> Result<BTreeMap<String, K>, KubeError>
    where
        K: Listed,
    {
        match self.ours(what, desired).await {
            Err(KubeError::Api { code: 404, .. }) => Ok(BTreeMap::new()),
            other => other,
        }
    }

    /// Whether the name `name` of kind `kind`, which `container` wants, is held by an object that
    /// is not ours: looked up among those listed as ours, else asked for by name.
    async fn taken<K>(
        &self,
        listed: &BTreeMap<String, K>,
        kind: &'static str,
        name: &str,
        desired: &Desired,
        container: &str,
    ) -> Result<Option<Foreign>, KubeError>
    where
        K: Listed,
    {
        match listed.get(name) {
            Some(o) => Ok(foreign_of(kind, o.meta(), desired, container)),
            None => self.foreign::<K>(kind, name, desired, container).await,
        }
    }

    /// The object of kind `K` named `name`, if one exists that is not ours (for `container`).
    async fn foreign<K>(
        &self,
        kind: &'static str,
        name: &str,
        desired: &Desired,
        container: &str,
    ) -> Result<Option<Foreign>, KubeError>
    where
        K: Listed,
    {
        let Some(object) = self
            .api::<K>()
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("get {kind} {name}"), e, &self.url))?
        else {
            return Ok(None);
        };
        Ok(foreign_of(kind, object.meta(), desired, container))
    }

    /// The objects of kind `K` labelled as the stage's under any label scheme deploy recognises
    /// (an upgrade finds what an earlier version applied), each once.
    async fn list_ours<K>(&self, what: &str, desired: &Desired) -> Result<Vec<K>, KubeError>
    where
        K: Listed,
    {
        let mut out: Vec<K> = Vec::new();
        for selector in ours(desired) {
            for object in self.list::<K>(what, &selector).await? {
                let uid = object.meta().uid.clone();
                if uid.is_none() || !out.iter().any(|o| o.meta().uid == uid) {
                    out.push(object);
                }
            }
        }
        Ok(out)
    }

    async fn list<K>(&self, what: &str, selector: &str) -> Result<Vec<K>, KubeError>
    where
        K: Listed,
    {
        Ok(self
            .api::<K>()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| api_error(&format!("list {what}"), e, &self.url))?
            .items)
    }

    /// A unit's objects, its claims first (a pod waits for its volumes), its Ingress and
    /// budget last (they point at what runs).
    async fn apply_unit(&self, manager: &str, unit: &Unit) -> Result<(), KubeError> {
        for claim in &unit.claims {
            let name = claim.metadata.name.as_deref().unwrap_or(&unit.name);
            self.apply_object(&self.api(), manager, "PersistentVolumeClaim", name, claim)
                .await?;
        }
        self.apply_object(
            &self.api(),
            manager,
            "Deployment",
            &unit.name,
            &unit.deployment,
        )
        .await?;
        if let Some(service) = &unit.service {
            let name = service.metadata.name.as_deref().unwrap_or(&unit.name);
            self.apply_object(&self.api(), manager, "Service", name, service)
                .await?;
        }
        if let Some(ingress) = &unit.ingress {
            let name = ingress.metadata.name.as_deref().unwrap_or(&unit.name);
            self.apply_object(&self.api(), manager, "Ingress", name, ingress)
                .await?;
        }
        if let Some(budget) = &unit.budget {
            let name = budget.metadata.name.as_deref().unwrap_or(&unit.name);
            self.apply_object(&self.api(), manager, "PodDisruptionBudget", name, budget)
                .await?;
        }
        Ok(())
    }

    /// Watches a Deployment until its rollout completes, fails, or outlives its deadline:
    /// kube-runtime's `watch_object` (a LIST then a WATCH by the field selector
    /// `metadata.name=<name>`, which lists again when its watch ends or falls behind: the
    /// resync), each event judged by `rollout`. A watch that fails midway is resumed after a
    /// backoff; one that cannot start is the API's answer.
    async fn wait_rollout(&self, unit: &Unit) -> Result<Result<(), String>, KubeError> {
        let deadline_secs = unit
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        // The server's own deadline decides; ours only guards against a server that never says.
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::try_from(deadline_secs).unwrap_or(600) + 30);
        let operation = format!("watch Deployment {}", unit.name);
        let events = watcher::watch_object(self.api::<Deployment>(), &unit.name).default_backoff();
        let mut events = std::pin::pin!(events);
        // Once the watch has answered, a failure to list or watch again (a 410 Gone, a blip of
        // the API server) is retried after the backoff until the deadline, not a failed wave.
        let mut answered = false;
        loop {
            let next = match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => return Ok(Err("its rollout did not complete in time".to_owned())),
                // The watcher's stream never ends by itself.
                Ok(None) => return Ok(Err("its Deployment's watch ended".to_owned())),
                Ok(Some(next)) => next,
            };
            answered |= next.is_ok();
            match next {
                Ok(Some(d)) => match rollout(&d) {
                    Ok(true) => return Ok(Ok(())),
                    Err(why) => return Ok(Err(why)),
                    Ok(false) => {}
                },
                Ok(None) => return Ok(Err("its Deployment is gone".to_owned())),
                Err(watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e))
                    if !answered =>
                {
                    return Err(api_error(&operation, e, &self.url))
                }
                Err(watcher::Error::InitialListFailed(_) | watcher::Error::WatchStartFailed(_)) => {
                }
                // Mid-stream: the watcher lists again (a 410 Gone) or watches again.
                Err(
                    watcher::Error::WatchError(_)
                    | watcher::Error::WatchFailed(_)
                    | watcher::Error::NoResourceVersion,
                ) => {}
            }
        }
    }

    /// Waits for the rollouts of a wave's units all at once (each its own watch); the first
    /// failure to come is the wave's, and ends the other watches.
    async fn wait_rollouts(&self, units: &[&Unit]) -> Result<Result<(), Unhealthy>, KubeError> {
        enum Stop {
            Unhealthy(Unhealthy),
            Api(KubeError),
        }
        let waits = units.iter().map(|unit| async move {
            match self.wait_rollout(unit).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(Stop::Unhealthy(Unhealthy {
                    unit: unit.name.clone(),
                    why,
                })),
                Err(e) => Err(Stop::Api(e)),
            }
        });
        match futures_util::future::try_join_all(waits).await {
            Ok(_) => Ok(Ok(())),
            Err(Stop::Unhealthy(mut failed)) => {
                failed.why.push_str(&self.last_warning(&failed.unit).await);
                Ok(Err(failed))
            }
            Err(Stop::Api(e)) => Err(e),
        }
    }

    /// "; its latest warning: Reason: message" about the Deployment `name` or its pods (the
    /// kubelet's `Unhealthy: Readiness probe failed: …` says what the probe answered), escaped
    /// and capped as a Docker probe's output is; empty when there is none or the events cannot
    /// be listed (the failure is the rollout's, not its explanation's).
    async fn last_warning(&self, name: &str) -> String {
        let Ok(events) = self
            .api::<Event>()
            .list(&ListParams::default().fields("type=Warning"))
            .await
        else {
            return String::new();
        };
        let Some(last) = latest_warnings(&events.items, name).pop() else {
            return String::new();
        };
        let shown = crate::deploy::escape_controls(last.trim().chars().take(400));
        format!("; its latest warning: {shown}")
    }

    /// Whether every desired Deployment has completed its rollout with the desired image
    /// (`automatic` progression asks the previous stage's sites); `Err` says what is not.
    pub async fn healthy(&self, desired: &Desired) -> Result<Result<(), String>, BackendError> {
        let units = self.unit_status(desired).await?;
        if units.is_empty() {
            return Ok(Err("it runs none of these containers".to_owned()));
        }
        for u in &units {
            if u.state != UnitState::Available {
                return Ok(Err(format!("{} is {}", u.name, u.state)));
            }
            if u.running_digest.as_deref() != Some(u.desired_digest.as_str()) {
                return Ok(Err(format!("{} runs other images", u.name)));
            }
        }
        Ok(Ok(()))
    }

    /// Each desired Deployment as the cluster runs it.
    pub async fn unit_status(&self, desired: &Desired) -> Result<Vec<UnitStatus>, KubeError> {
        let objects = self.objects(desired);
        let events: Vec<Event> = self
            .api::<Event>()
            .list(&ListParams::default().fields("type=Warning"))
            .await
            .map_err(|e| api_error("list events", e, &self.url))?
            .items;
        let mut out = Vec::new();
        for unit in objects.waves.iter().flatten() {
            out.push(self.one_unit_status(desired, unit, &events).await?);
        }
        Ok(out)
    }

    /// One unit's Deployment as the cluster runs it: missing, a namesake not ours, or ours with
    /// its rollout, restarts and latest warnings.
    async fn one_unit_status(
        &self,
        desired: &Desired,
        unit: &Unit,
        events: &[Event],
    ) -> Result<UnitStatus, KubeError> {
        let desired_digest = desired
            .instances()
            .find(|i| i.container == unit.container)
            .map(|i| i.digest.clone())
            .unwrap_or_default();
        let live = self
            .api::<Deployment>()
            .get_opt(&unit.name)
            .await
            .map_err(|e| api_error(&format!("get Deployment {}", unit.name), e, &self.url))?;
        let mut status = UnitStatus {
            name: unit.name.clone(),
            container: unit.container.to_string(),
            state: UnitState::Missing,
            desired_digest,
            running_digest: None,
            replicas: 0,
            ready_replicas: 0,
            restarts: 0,
            warnings: Vec::new(),
            drift: true,
        };
        let Some(d) = live else {
            return Ok(status);
        };
        // A namesake that is not ours: its image and rollout say nothing about ours.
        let labels = d.metadata.labels.as_ref();
        if owner(desired, Some(unit.container.as_str()), labels) != Owner::Ours {
            status.state = UnitState::Foreign;
            return Ok(status);
        }
        let pods: Vec<Pod> = self
            .list("pods", &format!("{LABEL_INSTANCE}={}", unit.name))
            .await?;
        status.restarts = pods
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| i64::from(c.restart_count))
            .sum();
        status.warnings = latest_warnings(events, &unit.name);
        status.running_digest = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            .and_then(digest_of);
        let hash = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_HASH));
        status.state = match rollout(&d) {
            Ok(true) => UnitState::Available,
            Ok(false) => UnitState::Progressing,
            Err(_) => UnitState::Failed,
        };
        status.drift = status.running_digest.as_deref() != Some(status.desired_digest.as_str())
            || hash != Some(&unit.config_hash);
        status.replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        status.ready_replicas = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        Ok(status)
    }
}

/// What the deploy reports about an object named as one of ours (for `container`) that is not
/// ours; `None` when it is ours.
fn foreign_of(
    kind: &'static str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    desired: &Desired,
    container: &str,
) -> Option<Foreign> {
    let owner = owner(desired, Some(container), meta.labels.as_ref());
    if owner == Owner::Ours {
        return None;
    }
    let mut managers: Vec<String> = Vec::new();
    for m in meta.managed_fields.iter().flatten() {
        if let Some(name) = &m.manager {
            if !managers.contains(name) {
                managers.push(name.clone());
            }
        }
    }
    Some(Foreign {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        owner,
        managers,
    })
}

/// The latest `EVENTS` warning events about the Deployment `name` and its pods, oldest first:
/// `Reason: message`.
fn latest_warnings(events: &[Event], name: &str) -> Vec<String> {
    let pod_prefix = format!("{name}-");
    let mut warnings: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n == name || n.starts_with(&pod_prefix))
        })
        .collect();
    warnings.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    warnings
        .iter()
        .rev()
        .take(EVENTS)
        .rev()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("Warning"),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}

fn hash_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH))
        .map(String::as_str)
}

/// What a stage's objects need from the cluster: the class of each Ingress and claim (a claim
/// naming the empty class binds statically: none needed), native sidecars, budgets.
fn needs(objects: &Objects) -> Needs {
    let mut needs = Needs::default();
    for unit in objects.waves.iter().flatten() {
        if let Some(ingress) = &unit.ingress {
            let class = ingress
                .spec
                .as_ref()
                .and_then(|s| s.ingress_class_name.clone());
            needs.ingress_classes.push(class);
        }
        for claim in &unit.claims {
            let class = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone());
            if class.as_deref() != Some("") {
                needs.storage_classes.push(class);
            }
        }
        let pod = unit
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        needs.sidecars |= pod
            .and_then(|p| p.init_containers.as_ref())
            .is_some_and(|i| {
                i.iter()
                    .any(|c| c.restart_policy.as_deref() == Some("Always"))
            });
        needs.budgets |= unit.budget.is_some();
    }
    needs
}

/// The objects of each kind that are ours in the stage, by name, as `changes` found them.
struct Live {
    deployments: BTreeMap<String, Deployment>,
    services: BTreeMap<String, Service>,
    claims: BTreeMap<String, PersistentVolumeClaim>,
    ingresses: BTreeMap<String, Ingress>,
    budgets: BTreeMap<String, PodDisruptionBudget>,
}

/// The names of some objects.
fn names<'a, K: kube::Resource + 'a>(objects: impl Iterator<Item = &'a K>) -> Vec<&'a str> {
    objects.filter_map(|o| o.meta().name.as_deref()).collect()
}

impl Live {
    /// A unit is unchanged when its Deployment (with its replicas) and each of its other
    /// objects exist, are ours (listed as ours) and carry its config hash: the hash does not
    /// cover the Service, Ingress or claims by itself, but every object carries the unit's.
    fn unchanged(&self, unit: &Unit) -> bool {
        let hashed = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            hash_of(meta) == Some(unit.config_hash.as_str())
        };
        fn all<K: kube::Resource>(
            wanted: Option<&K>,
            live: &BTreeMap<String, K>,
            ok: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool,
        ) -> bool {
            wanted.is_none_or(|w| {
                let name = w.meta().name.as_deref().unwrap_or_default();
                live.get(name).is_some_and(|o| ok(o.meta()))
            })
        }
        let deployment_ok = self.deployments.get(&unit.name).is_some_and(|d| {
            hashed(&d.metadata) && d.spec.as_ref().and_then(|s| s.replicas) == Some(unit.replicas)
        });
        deployment_ok
            && all(unit.service.as_ref(), &self.services, hashed)
            && unit
                .claims
                .iter()
                .all(|c| all(Some(c), &self.claims, hashed))
            && all(unit.ingress.as_ref(), &self.ingresses, hashed)
            && all(unit.budget.as_ref(), &self.budgets, hashed)
    }

    /// Our objects no unit wants, kind by kind (`deployment/NAME`): a Service goes when its
    /// container stops listening and nothing depends on it, while its Deployment stays. A
    /// PersistentVolumeClaim is never one: its data outlives a redeploy, a volume dropped from
    /// the pod, its container leaving the stage and a rollback to a release without it (which
    /// would otherwise come back to an empty claim), as a Docker site's persistent volume does;
    /// deleting one is its owner's decision (`kubectl delete pvc`).
    fn orphans(&self, objects: &Objects) -> Vec<String> {
        let units = || objects.waves.iter().flatten();
        let wanted = |names: Vec<&str>, live: Vec<&String>, kind: &str| -> Vec<String> {
            live.into_iter()
                .filter(|n| !names.contains(&n.as_str()))
                .map(|n| format!("{kind}/{n}"))
                .collect()
        };
        let mut out = Vec::new();
        out.extend(wanted(
            units().map(|u| u.name.as_str()).collect(),
            self.deployments.keys().collect(),
            DEPLOYMENT,
        ));
        out.extend(wanted(
            names(units().filter_map(|u| u.service.as_ref())),
            self.services.keys().collect(),
            SERVICE,
        ));
        out.extend(wanted(
            names(units().filter_map(|u| u.ingress.as_ref())),
            self.ingresses.keys().collect(),
            INGRESS,
        ));
        out.extend(wanted(
            names(units().filter_map(|u| u.budget.as_ref())),
            self.budgets.keys().collect(),
            BUDGET,
        ));
        out
    }
}

impl Backend for KubeSite {
    type Status = Vec<UnitStatus>;

    /// Checks, before anything changes, that every Secret the stage references exists with
    /// its key; then creates the site's Namespace when asked to and missing.
    async fn prepare(&self, desired: &Desired) -> Result<(), BackendError> {
        self.check_secrets(desired).await?;
        let objects = self.objects(desired);
        let needs = needs(&objects);
        if needs != Needs::default() {
            let missing = self.discover().await?.lacks(&needs);
            if !missing.is_empty() {
                return Err(KubeError::Lacks { missing }.into());
            }
        }
        let Some(namespace) = objects.namespace else {
            return Ok(());
        };
        let api: Api<Namespace> = Api::all(self.client.clone());
        let exists = api
            .get_opt(&self.namespace)
            .await
            .map_err(|e| api_error("get Namespace", e, &self.url))?;
        // An existing Namespace is left as it is, whoever made it: namespaces are shared.
        if exists.is_none() {
            let manager = field_manager(&desired.site);
            self.apply_object(&api, &manager, "Namespace", &self.namespace, &namespace)
                .await?;
        }
        Ok(())
    }

    async fn changes(&self, desired: &Desired) -> Result<Changes, BackendError> {
        let objects = self.objects(desired);
        let live = Live {
            deployments: self.ours("deployments", desired).await?,
            services: self.ours("services", desired).await?,
            claims: self
                .ours_if_served("persistentvolumeclaims", desired)
                .await?,
            ingresses: self.ours_if_served("ingresses", desired).await?,
            budgets: self.ours_if_served("poddisruptionbudgets", desired).await?,
        };
        // Every name a wanted object takes: ours for that very container, free (asked by name
        // when we did not list it), or a namesake that is not ours, which stops the deploy
        // before anything is sent.
        let mut foreign = Vec::new();
        for unit in objects.waves.iter().flatten() {
            let c = unit.container.as_str();
            foreign.extend(
                self.taken(&live.deployments, "Deployment", &unit.name, desired, c)
                    .await?,
            );
            for name in names(unit.service.iter()) {
                foreign.extend(
                    self.taken(&live.services, "Service", name, desired, c)
                        .await?,
                );
            }
            for name in names(unit.claims.iter()) {
                let kind = "PersistentVolumeClaim";
                foreign.extend(self.taken(&live.claims, kind, name, desired, c).await?);
            }
            for name in names(unit.ingress.iter()) {
                foreign.extend(
                    self.taken(&live.ingresses, "Ingress", name, desired, c)
                        .await?,
                );
            }
            for name in names(unit.budget.iter()) {
                let kind = "PodDisruptionBudget";
                foreign.extend(self.taken(&live.budgets, kind, name, desired, c).await?);
            }
        }
        if !foreign.is_empty() {
            return Err(KubeError::NotOurs {
                namespace: self.namespace.clone(),
                objects: foreign,
            }
            .into());
        }
        let mut out = Changes::default();
        for wave in &objects.waves {
            let mut apply = Vec::new();
            for unit in wave {
                if live.unchanged(unit) {
                    out.unchanged.push(unit.name.clone());
                } else {
                    apply.push(unit.name.clone());
                }
            }
            out.waves.push(apply);
        }
        out.orphans = live.orphans(&objects);
        Ok(out)
    }

    async fn apply(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<(), BackendError> {
        let objects = self.objects(desired);
        let manager = field_manager(&desired.site);
        for unit in objects.waves[wave]
            .iter()
            .filter(|u| units.contains(&u.name))
        {
            self.apply_unit(&manager, unit).await?;
        }
        Ok(())
    }

    async fn wait(
        &self,
        desired: &Desired,
        wave: usize,
        units: &[String],
    ) -> Result<Result<(), Unhealthy>, BackendError> {
        let objects = self.objects(desired);
        let waited: Vec<&Unit> = objects.waves[wave]
            .iter()
            .filter(|u| units.contains(&u.name))
            .collect();
        Ok(self.wait_rollouts(&waited).await?)
    }

    /// `units` are objects as `changes` names orphans: `deployment/NAME`, `service/NAME`,
    /// `persistentvolumeclaim/NAME`, `ingress/NAME`, `poddisruptionbudget/NAME`.
    async fn remove(&self, desired: &Desired, units: &[String]) -> Result<(), BackendError> {
        let named = |kind: &str| -> Vec<&str> {
            units
                .iter()
                .filter_map(|u| u.strip_prefix(kind)?.strip_prefix('/'))
                .collect()
        };
        // As before these kinds existed (Deployment, then Service), then the objects pointing
        // at them, then data last.
        self.delete_ours::<Deployment>("deployments", "Deployment", desired, &named(DEPLOYMENT))
            .await?;
        self.delete_ours::<Service>("services", "Service", desired, &named(SERVICE))
            .await?;
        self.delete_ours::<Ingress>("ingresses", "Ingress", desired, &named(INGRESS))
            .await?;
        self.delete_ours::<PodDisruptionBudget>(
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            desired,
            &named(BUDGET),
        )
        .await?;
        self.delete_ours::<PersistentVolumeClaim>(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            desired,
            &named(CLAIM),
        )
        .await?;
        Ok(())
    }

    async fn status(&self, desired: &Desired) -> Result<Vec<UnitStatus>, BackendError> {
        Ok(self.unit_status(desired).await?)
    }

    /// What the cluster's API offers (`discover`); its nodes are not observed, so declared
    /// capabilities are taken on their word.
    async fn detect(&self) -> Result<Option<Detected>, BackendError> {
        Ok(Some(Detected::Kubernetes(self.discover().await?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(generation: i64, replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                progress_deadline_seconds: Some(60),
                ..Default::default()
            }),
            status: Some(status),
        }
    }

    fn status(observed: i64, total: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(total),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..Default::default()
        }
    }

    #[test]
    fn rollout_follows_kubectl_rollout_status() {
        // Not observed yet; updating; old replicas left; not available yet; complete.
        assert_eq!(rollout(&deployment(2, 2, status(1, 2, 2, 2))), Ok(false));
        assert_eq!(rollout(&deployment(2, 2, status(2, 2, 1, 1))), Ok(false));
        assert_eq!(rollout(&deployment(2, 2, status(2, 3, 2, 2))), Ok(false));
        assert_eq!(rollout(&deployment(2, 2, status(2, 2, 2, 1))), Ok(false));
        assert_eq!(rollout(&deployment(2, 2, status(2, 2, 2, 2))), Ok(true));
        let mut stuck = status(2, 2, 2, 0);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".to_owned(),
            status: "False".to_owned(),
            reason: Some("ProgressDeadlineExceeded".to_owned()),
            message: Some("timed out".to_owned()),
            ..Default::default()
        }]);
        assert_eq!(
            rollout(&deployment(2, 2, stuck)),
            Err("its rollout exceeded its progress deadline (60s): timed out".to_owned())
        );
    }

    /// db ← api on site `s`, stage `dev`, with a lock.
    fn stage() -> Desired {
        const COOKBOOK: &str = r#"{
          "manifest_version": "1.1",
          "project": { "name": "p" },
          "applications": { "a": { "source": "a" } },
          "containers": {
            "db": { "base_image": "b", "applications": ["a"] },
            "api": { "base_image": "b", "applications": ["a"], "depends_on": ["db"] }
          },
          "lifecycle": { "stages": ["dev"] },
          "federation": { "sites": { "s": { "containers": ["api"] } } }
        }"#;
        let crate::load::Parsed { cookbook, plan } =
            crate::load::parse(COOKBOOK.as_bytes()).unwrap();
        let mut lock = crate::state::lock::Lock::new(&crate::model::Name::parse("p").unwrap());
        for (c, d) in [("db", "1"), ("api", "2")] {
            lock.containers.insert(
                crate::model::Name::parse(c).unwrap(),
                crate::state::lock::LockedImage {
                    input_hash: crate::hash::InputHash::parse(&"0".repeat(64)).unwrap(),
                    image: crate::oci::WrittenReference::parse(&format!("cookbook.local/p/{c}:t"))
                        .unwrap(),
                    tags: vec![],
                    digest: Some(
                        crate::oci::Digest::parse(&format!("sha256:{}", d.repeat(64))).unwrap(),
                    ),
                    image_id: None,
                },
            );
        }
        crate::deploy::desired::desired(&cookbook, &plan, &lock, "s", "dev").unwrap()
    }

    /// An object of ours for `container` (`None`: no cookbook labels), carrying `hash`.
    fn meta(name: &str, container: Option<&str>, hash: &str) -> ObjectMeta {
        use crate::labels::deploy as label;
        let labels = container.map(|c| {
            BTreeMap::from([
                (label::PROJECT.to_owned(), "p".to_owned()),
                (label::SITE.to_owned(), "s".to_owned()),
                (label::STAGE.to_owned(), "dev".to_owned()),
                (label::CONTAINER.to_owned(), c.to_owned()),
            ])
        });
        ObjectMeta {
            name: Some(name.to_owned()),
            labels,
            annotations: Some(BTreeMap::from([(CONFIG_HASH.to_owned(), hash.to_owned())])),
            ..Default::default()
        }
    }

    fn claim(name: &str, container: &str, hash: &str) -> (String, PersistentVolumeClaim) {
        (
            name.to_owned(),
            PersistentVolumeClaim {
                metadata: meta(name, Some(container), hash),
                ..Default::default()
            },
        )
    }

    /// A unit is unchanged only when every object of it is there with its hash; a claim no
    /// unit wants stays while its container is in the stage, and goes once it left.
    #[test]
    fn unchanged_and_orphans_cover_every_kind_and_keep_the_data_of_containers_still_here() {
        let desired = stage();
        let mut objects = objects(&desired, Some("ns"), false);
        let db = &mut objects.waves[0][0];
        assert_eq!(db.name, "p-s-dev-db");
        db.claims = vec![claim("p-s-dev-db-data", "db", &db.config_hash).1];
        let (db_hash, db_replicas) = (db.config_hash.clone(), db.replicas);
        let deployment = |name: &str, container: &str, hash: &str| {
            let mut d = deployment(1, db_replicas, DeploymentStatus::default());
            d.metadata = meta(name, Some(container), hash);
            (name.to_owned(), d)
        };
        let api_hash = objects.waves[1][0].config_hash.clone();
        let mut live = Live {
            deployments: BTreeMap::from([
                deployment("p-s-dev-db", "db", &db_hash),
                deployment("p-s-dev-gone", "gone", "x"),
            ]),
            services: BTreeMap::new(),
            claims: BTreeMap::from([
                claim("p-s-dev-db-data", "db", &db_hash),
                // A volume db no longer declares: its data stays.
                claim("p-s-dev-db-old", "db", "x"),
                // Nor the claim of a container that left the stage: a rollback may want it.
                claim("p-s-dev-gone-data", "gone", "x"),
            ]),
            ingresses: BTreeMap::new(),
            budgets: BTreeMap::new(),
        };
        let db = &objects.waves[0][0];
        // db is depended on: a Service named like it.
        let service = db.service.as_ref().unwrap().metadata.name.clone().unwrap();
        assert_eq!(service, "db");
        assert!(!live.unchanged(db));
        live.services.insert(
            service.clone(),
            Service {
                metadata: meta(&service, Some("db"), &db_hash),
                ..Default::default()
            },
        );
        assert!(live.unchanged(db));
        assert_eq!(live.orphans(&objects), vec!["deployment/p-s-dev-gone"]);
        // Its claim with another hash, or missing: changed.
        live.claims
            .extend([claim("p-s-dev-db-data", "db", "other")]);
        assert!(!live.unchanged(db));
        live.claims.remove("p-s-dev-db-data");
        assert!(!live.unchanged(db));
        // api: no Deployment of it yet.
        assert!(!live.unchanged(&objects.waves[1][0]));
        live.deployments
            .extend([deployment("p-s-dev-api", "api", &api_hash)]);
        let api = &objects.waves[1][0];
        if let Some(name) = api
            .service
            .as_ref()
            .and_then(|s| s.metadata.name.as_deref())
        {
            // Its Service missing: changed; there with the hash: unchanged.
            assert!(!live.unchanged(api));
            let service = Service {
                metadata: meta(name, Some("api"), &api_hash),
                ..Default::default()
            };
            live.services.insert(name.to_owned(), service);
        }
        assert!(live.unchanged(api));
    }

    #[test]
    fn needs_come_from_the_objects() {
        use k8s_openapi::api::core::v1::{
            Container, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
        };
        use k8s_openapi::api::networking::v1::IngressSpec;
        let claim = |class: Option<&str>| PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut d = deployment(1, 1, DeploymentStatus::default());
        d.spec.as_mut().unwrap().template = PodTemplateSpec {
            spec: Some(PodSpec {
                init_containers: Some(vec![Container {
                    name: "proxy".to_owned(),
                    restart_policy: Some("Always".to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let unit = Unit {
            name: "p-s-dev-app".to_owned(),
            container: crate::model::Name::parse("app").unwrap(),
            config_hash: String::new(),
            replicas: 1,
            deployment: d,
            service: None,
            claims: vec![claim(None), claim(Some("fast")), claim(Some(""))],
            ingress: Some(Ingress {
                spec: Some(IngressSpec {
                    ingress_class_name: Some("nginx".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            budget: Some(PodDisruptionBudget::default()),
        };
        let objects = Objects {
            namespace: None,
            waves: vec![vec![unit]],
        };
        assert_eq!(
            needs(&objects),
            Needs {
                ingress_classes: vec![Some("nginx".to_owned())],
                storage_classes: vec![None, Some("fast".to_owned())],
                sidecars: true,
                budgets: true,
            }
        );
        let mut plain = objects;
        let unit = &mut plain.waves[0][0];
        unit.claims.clear();
        unit.ingress = None;
        unit.budget = None;
        unit.deployment = deployment(1, 1, DeploymentStatus::default());
        assert_eq!(needs(&plain), Needs::default());
    }

    #[test]
    fn a_conflict_names_field_and_manager() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 409, "reason": "Conflict",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas",
            "details": { "causes": [{ "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-edit\" using apps/v1", "field": ".spec.replicas" }] }
        }))
        .unwrap();
        assert_eq!(
            conflicts(&status),
            vec![Conflict {
                field: ".spec.replicas".to_owned(),
                manager: "kubectl-edit".to_owned()
            }]
        );
    }
}
