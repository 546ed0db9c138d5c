//! An in-process fake Kubernetes API server for tests/it/kubernetes.rs: no API server can run here.
//!
//! It implements only what cookbook calls, and refuses everything else with 501. Each behaviour
//! names the Kubernetes documentation it follows:
//! - `GET /version`, and discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`
//!   (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api, the
//!   unaggregated documents); a test can leave a resource out (`without`) or set the minor
//!   version (`set_minor`);
//! - the kinds in `RESOURCES`: GET one (404 as a `Status`,
//!   https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris), LIST with an
//!   equality `labelSelector` (`k=v,k=v`) or the `fieldSelector` `metadata.name=NAME`
//!   (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/), WATCH
//!   (below), server-side apply (`PATCH`, `application/apply-patch+yaml`, `fieldManager`,
//!   `force`), DELETE (honouring a `preconditions.uid` in its `DeleteOptions` body with 409,
//!   https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/);
//! - LIST of Pods (by label) and Events (`fieldSelector=type=Warning`) that a test seeds.
//!
//! Every write that changes an object gives it the next `metadata.resourceVersion` of one
//! counter, and a LIST answers with the counter in its `metadata.resourceVersion`
//! (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions). WATCH
//! (`?watch=true`, https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
//! a stream of JSON lines `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": …}`, every change
//! after the `resourceVersion` asked for (without one, or with `0`, first an `ADDED` for each
//! object that exists: https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-watch),
//! held open until `timeoutSeconds` has passed, as the real server does.
//!
//! Server-side apply (https://kubernetes.io/docs/reference/using-api/server-side-apply/): a
//! manager owns the leaf paths of what it applied; maps are walked (`granular` maps); the lists
//! Kubernetes' OpenAPI marks `x-kubernetes-list-type: map` are merged by their
//! `x-kubernetes-list-map-keys` (`MERGE_KEYS`: containers, initContainers, env and volumes by
//! `name`, volumeMounts by `mountPath`, container ports by `containerPort` and `protocol`,
//! Service ports by `port` and `protocol`; #merge-strategy), so an entry another manager applied
//! is kept and stays its own; any other list is an atomic leaf. An entry is identified in a path
//! and in `managedFields` as `k:{"name":"web"}`, its existence as `.`
//! (https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management).
//! Applying a path another manager owns with a different value is a 409 `Conflict` with the
//! standard `Status` body (one `FieldManagerConflict` cause per field, naming the manager in its
//! message; #conflicts) unless `force=true`, which takes the field over; fields the applier owned
//! and no longer sends are removed unless another manager owns them too (#merge-strategy, "if a
//! field is removed from the configuration … and no other manager owns it").
//! Bodies are parsed as JSON (what kube sends; JSON is YAML).
//!
//! A Deployment's status is the fake's controller's work, driven by time: `polls` steps of
//! `STEP` after its spec last changed its rollout is complete (observed generation, updated and
//! available replicas, https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#complete-deployment),
//! unless its image's digest was marked stuck, in which case its `Progressing` condition says
//! `ProgressDeadlineExceeded` (#failed-deployment). Each change of status is a `MODIFIED` event.
//! Every request is recorded, and every rollout state a Deployment reached (`rollouts`), with
//! the number of requests answered by then.
#![allow(dead_code)] // each test uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

/// One step of the fake's Deployment controller.
pub const STEP: Duration = Duration::from_millis(20);

/// A resource the fake serves: (plural, group/version, kind, namespaced).
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("deployments", "apps/v1", "Deployment", true),
    ("services", "v1", "Service", true),
    ("namespaces", "v1", "Namespace", false),
    ("pods", "v1", "Pod", true),
    ("events", "v1", "Event", true),
    ("secrets", "v1", "Secret", true),
    (
        "persistentvolumeclaims",
        "v1",
        "PersistentVolumeClaim",
        true,
    ),
    ("ingresses", "networking.k8s.io/v1", "Ingress", true),
    (
        "ingressclasses",
        "networking.k8s.io/v1",
        "IngressClass",
        false,
    ),
    (
        "poddisruptionbudgets",
        "policy/v1",
        "PodDisruptionBudget",
        true,
    ),
    ("storageclasses", "storage.k8s.io/v1", "StorageClass", false),
];

/// The lists Kubernetes' OpenAPI marks `x-kubernetes-list-type: map`, by their field name
/// (and, for `ports`, whose: a container's or a Service's), with their
/// `x-kubernetes-list-map-keys`; `protocol` defaults to `TCP`, as the API server defaults it
/// before merging.
fn merge_keys(resource: &str, field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers" | "initContainers" | "env" | "volumes" => &["name"],
        "volumeMounts" => &["mountPath"],
        "ports" if resource == "services" => &["port", "protocol"],
        "ports" => &["containerPort", "protocol"],
        _ => return None,
    })
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl Recorded {
    /// `METHOD kind/name` (`PATCH deployments/shop-dev-api`), the short form tests compare; a
    /// LIST by name is `LIST deployments/NAME`, a WATCH `WATCH deployments/NAME` (or
    /// `WATCH deployments`).
    pub fn short(&self) -> String {
        let parts: Vec<&str> = self.path.split('/').collect();
        let tail = match parts
            .iter()
            .rposition(|p| RESOURCES.iter().any(|r| r.0 == *p))
        {
            Some(i) => parts[i..].join("/"),
            None => self.path.clone(),
        };
        let named = query_param(&self.query, "fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name=").map(str::to_owned));
        if self.is_watch() {
            return match named {
                Some(n) => format!("WATCH {tail}/{n}"),
                None => format!("WATCH {tail}"),
            };
        }
        match named {
            Some(n) => format!("LIST {tail}/{n}"),
            None => format!("{} {tail}", self.method),
        }
    }

    pub fn is_watch(&self) -> bool {
        query_param(&self.query, "watch").as_deref() == Some("true")
    }

    pub fn changes(&self) -> bool {
        !matches!(self.method.as_str(), "GET")
    }
}

/// A rollout state a Deployment reached (`progressing`, `complete`, `stuck`), and how many
/// requests the fake had answered by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub name: String,
    pub state: String,
    pub after_requests: usize,
}

type Key = (String, String, String);

struct Stored {
    object: Value,
    /// manager → (operation, leaf paths it owns).
    managers: BTreeMap<String, (String, BTreeSet<Vec<String>>)>,
    generation: i64,
    /// When its spec last changed (the controller's clock starts there).
    changed: Instant,
    /// Its rollout state as last published.
    state: String,
}

/// A change, as WATCH streams it.
struct Change {
    rv: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

#[derive(Default)]
struct State {
    /// (resource, namespace or "", name) → object.
    objects: BTreeMap<Key, Stored>,
    requests: Vec<Recorded>,
    stuck: BTreeSet<String>,
    /// (resource, name) whose next apply is refused (`refuse_next_apply`), then accepted again.
    refuse: BTreeSet<(String, String)>,
    polls: u32,
    pods: Vec<Value>,
    events: Vec<Value>,
    next_uid: u64,
    /// The last resourceVersion given.
    rv: u64,
    log: Vec<Change>,
    rollouts: Vec<Rollout>,
    /// Resources discovery leaves out and requests for which are 404s.
    without: BTreeSet<String>,
    minor: u32,
    /// Ends every watch after this long (`end_watches_after`).
    watch_limit: Option<Duration>,
}

pub struct FakeKube {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The key of a merge-keyed list's entry, as `managedFields` writes it: `k:{"name":"web"}`.
fn entry_key(keys: &[&str], entry: &Value) -> String {
    let mut m = Map::new();
    for k in keys {
        let v = match (entry.get(*k), *k) {
            (Some(v), _) => v.clone(),
            (None, "protocol") => json!("TCP"),
            (None, _) => Value::Null,
        };
        m.insert((*k).to_owned(), v);
    }
    format!("k:{}", Value::Object(m))
}

/// The field names along `path`, without entry keys (what `merge_keys` is asked about).
fn field_of(path: &[String]) -> &str {
    path.iter()
        .rev()
        .find(|s| !s.starts_with("k:") && s.as_str() != ".")
        .map_or("", String::as_str)
}

fn leaves(resource: &str, v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(resource, child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if merge_keys(resource, field_of(prefix)).is_some() => {
            let keys = merge_keys(resource, field_of(prefix)).expect("checked");
            for item in items {
                prefix.push(entry_key(keys, item));
                prefix.push(".".to_owned());
                out.insert(prefix.clone());
                prefix.pop();
                leaves(resource, item, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The leaf paths an applied object sets, without its identity (apiVersion, kind, name,
/// namespace), which no manager owns.
fn owned_paths(resource: &str, v: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    leaves(resource, v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
        )
    });
    out
}

/// The entry of a merge-keyed list whose key segment is `segment`.
fn entry_index(list: &[Value], segment: &str, keys: &[&str]) -> Option<usize> {
    list.iter().position(|e| entry_key(keys, e) == segment)
}

fn get<'a>(resource: &str, v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for (i, k) in path.iter().enumerate() {
        if k == "." {
            continue;
        }
        if k.starts_with("k:") {
            let keys = merge_keys(resource, field_of(&path[..i]))?;
            let list = cur.as_array()?;
            cur = &list[entry_index(list, k, keys)?];
        } else {
            cur = cur.get(k)?;
        }
    }
    Some(cur)
}

/// Merges `patch` into `into`: maps key by key, merge-keyed lists entry by entry (the patch's
/// entries in its order, then the entries only `into` has), anything else replaced.
fn merge(resource: &str, into: &mut Value, patch: &Value, path: &mut Vec<String>) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                path.push(k.clone());
                match a.get_mut(k) {
                    Some(existing) => merge(resource, existing, v, path),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(a), Value::Array(b)) if merge_keys(resource, field_of(path)).is_some() => {
            let keys = merge_keys(resource, field_of(path)).expect("checked");
            let mut out = Vec::new();
            let mut rest = std::mem::take(a);
            for entry in b {
                let key = entry_key(keys, entry);
                match entry_index(&rest, &key, keys) {
                    Some(i) => {
                        let mut existing = rest.remove(i);
                        path.push(key);
                        merge(resource, &mut existing, entry, path);
                        path.pop();
                        out.push(existing);
                    }
                    None => out.push(entry.clone()),
                }
            }
            out.extend(rest);
            *a = out;
        }
        (into, patch) => *into = patch.clone(),
    }
}

/// Removes the field at `path` (a whole entry for a `.` path).
fn remove(resource: &str, v: &mut Value, path: &[String]) {
    let (last, parents) = match path.last().map(String::as_str) {
        Some(".") => (&path[path.len() - 2], &path[..path.len() - 2]),
        Some(_) => (&path[path.len() - 1], &path[..path.len() - 1]),
        None => return,
    };
    let mut cur = &mut *v;
    for (i, k) in parents.iter().enumerate() {
        let next = if k.starts_with("k:") {
            let Some(keys) = merge_keys(resource, field_of(&parents[..i])) else {
                return;
            };
            let Some(list) = cur.as_array_mut() else {
                return;
            };
            let Some(at) = entry_index(list, k, keys) else {
                return;
            };
            &mut list[at]
        } else {
            match cur.get_mut(k) {
                Some(next) => next,
                None => return,
            }
        };
        cur = next;
    }
    if last.starts_with("k:") {
        let Some(keys) = merge_keys(resource, field_of(parents)) else {
            return;
        };
        if let Some(list) = cur.as_array_mut() {
            if let Some(at) = entry_index(list, last, keys) {
                list.remove(at);
            }
        }
        // The list's last entry gone: no manager owns the list any more, so it goes too.
        if cur.as_array().is_some_and(Vec::is_empty) {
            remove(resource, v, parents);
        }
    } else if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// `.spec.template.spec.containers[name="web"].image`, as the API server names a field in a
/// conflict.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for k in path {
        if k == "." {
            continue;
        }
        match k.strip_prefix("k:") {
            Some(key) => {
                let m: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                let terms: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", terms.join(",")));
            }
            None => out.push_str(&format!(".{k}")),
        }
    }
    out
}

/// The `FieldsV1` form of a set of paths: `{"f:spec": {"f:replicas": {}}}`, an entry
/// `{"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}`.
fn fields_v1(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let key = if k == "." || k.starts_with("k:") {
                k.clone()
            } else {
                format!("f:{k}")
            };
            if cur.get(&key).is_none() {
                cur[key.as_str()] = json!({});
            }
            cur = cur.get_mut(&key).expect("just made");
        }
    }
    root
}

fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn resource_of(resource: &str) -> (&'static str, &'static str, bool) {
    RESOURCES
        .iter()
        .find(|r| r.0 == resource)
        .map(|r| (r.1, r.2, r.3))
        .unwrap_or(("v1", "Unknown", true))
}

fn api_version(resource: &str) -> &'static str {
    resource_of(resource).0
}

fn kind(resource: &str) -> &'static str {
    resource_of(resource).1
}

fn matches_labels(object: &Value, selector: &str) -> Option<bool> {
    let mut ok = true;
    for term in selector.split(',').filter(|t| !t.is_empty()) {
        let (k, v) = term.split_once('=')?;
        if k.ends_with('!') || v.starts_with('=') {
            return None; // `!=` and `==`: not implemented
        }
        ok &= object["metadata"]["labels"][k].as_str() == Some(v);
    }
    Some(ok)
}

/// Whether `object` matches a field selector the fake implements: none, or `metadata.name=N`.
fn matches_fields(object: &Value, selector: &str) -> Option<bool> {
    if selector.is_empty() {
        return Some(true);
    }
    let name = selector.strip_prefix("metadata.name=")?;
    if name.contains(',') {
        return None;
    }
    Some(object["metadata"]["name"].as_str() == Some(name))
}

impl State {
    fn render(&self, key: &Key) -> Value {
        let stored = &self.objects[key];
        let mut o = stored.object.clone();
        o["metadata"]["managedFields"] = Value::Array(
            stored
                .managers
                .iter()
                .map(|(m, (op, paths))| {
                    json!({
                        "manager": m, "operation": op, "apiVersion": api_version(&key.0),
                        "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths),
                    })
                })
                .collect(),
        );
        if key.0 == "deployments" {
            o["metadata"]["generation"] = json!(stored.generation);
        }
        o
    }

    /// Gives `key` the next resourceVersion and logs the change for watchers.
    fn changed(&mut self, key: &Key, kind: &'static str) {
        self.rv += 1;
        let rv = self.rv;
        if let Some(stored) = self.objects.get_mut(key) {
            stored.object["metadata"]["resourceVersion"] = json!(rv.to_string());
        }
        let object = if kind == "DELETED" {
            Value::Null
        } else {
            self.render(key)
        };
        self.log.push(Change {
            rv,
            kind,
            key: key.clone(),
            object,
        });
    }

    /// The fake controller: each Deployment's status as of now (`polls` steps of `STEP` after
    /// its spec last changed); a status that changed is a `MODIFIED` event.
    fn tick(&mut self) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == "deployments")
            .cloned()
            .collect();
        for key in keys {
            let (label, status) = self.rollout(&key);
            let stored = self.objects.get_mut(&key).expect("listed");
            if stored.object.get("status") == Some(&status) {
                continue;
            }
            stored.object["status"] = status;
            if stored.state != label {
                stored.state = label.clone();
                self.rollouts.push(Rollout {
                    name: key.2.clone(),
                    state: label,
                    after_requests: self.requests.len(),
                });
            }
            self.changed(&key, "MODIFIED");
        }
    }

    /// A Deployment's rollout state and status as of now.
    fn rollout(&self, key: &Key) -> (String, Value) {
        let stored = &self.objects[key];
        let steps = stored.changed.elapsed().as_millis() / STEP.as_millis();
        let replicas = stored.object["spec"]["replicas"].as_i64().unwrap_or(1);
        let image = stored.object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("");
        let stuck = self.stuck.iter().any(|d| image.ends_with(d.as_str()));
        let g = stored.generation;
        if steps < u128::from(self.polls) {
            (
                "progressing".to_owned(),
                json!({
                    "observedGeneration": g - 1, "replicas": replicas, "updatedReplicas": 0,
                    "availableReplicas": 0,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
                }),
            )
        } else if stuck {
            (
                "stuck".to_owned(),
                json!({
                    "observedGeneration": g, "replicas": replicas, "updatedReplicas": replicas,
                    "availableReplicas": 0, "unavailableReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                    "message": format!("ReplicaSet \"{}-7c9d\" has timed out progressing.", key.2)}],
                }),
            )
        } else {
            (
                "complete".to_owned(),
                json!({
                    "observedGeneration": g, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
                }),
            )
        }
    }

    fn entry(&mut self, key: &Key) -> &mut Stored {
        let uid = self.next_uid;
        let (api, kind, namespaced) = resource_of(&key.0);
        let stored = self.objects.entry(key.clone()).or_insert_with(|| {
            let mut metadata = json!({"name": key.2, "uid": format!("uid-{uid}")});
            if namespaced {
                metadata["namespace"] = json!(key.1);
            }
            Stored {
                object: json!({"apiVersion": api, "kind": kind, "metadata": metadata}),
                managers: BTreeMap::new(),
                generation: 0,
                changed: Instant::now(),
                state: String::new(),
            }
        });
        self.next_uid += 1;
        stored
    }

    /// Server-side apply of `body` by `manager`.
    fn apply(
        &mut self,
        key: Key,
        manager: &str,
        force: bool,
        mut body: Value,
    ) -> Result<Value, Value> {
        if let Some(m) = body.get_mut("status").and_then(Value::as_object_mut) {
            m.clear();
        }
        let resource = key.0.clone();
        let r = resource.as_str();
        let paths = owned_paths(r, &body);
        let created = !self.objects.contains_key(&key);
        let entry = self.entry(&key);
        let mut conflicts = Vec::new();
        for (other, (_, owned)) in &entry.managers {
            if other == manager {
                continue;
            }
            // An entry's existence (`.`) is shared, never a conflict.
            for p in paths
                .intersection(owned)
                .filter(|p| p.last().unwrap() != ".")
            {
                if get(r, &entry.object, p) != get(r, &body, p) {
                    conflicts.push((dotted(p), other.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            if created {
                self.objects.remove(&key);
            }
            let api = api_version(r);
            let message = format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts
                    .iter()
                    .map(|(f, m)| format!("conflict with \"{m}\" using {api}: {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(f, m)| {
                    json!({"reason": "FieldManagerConflict",
                           "message": format!("conflict with \"{m}\" using {api}"), "field": f})
                })
                .collect();
            return Err(status_body(
                409,
                "Conflict",
                &message,
                Some(
                    json!({"name": key.2, "group": api.split_once('/').map_or("", |(g, _)| g),
                            "kind": kind(r).to_lowercase(), "causes": causes}),
                ),
            ));
        }
        let before = entry.object.clone();
        // Forced (or the same value): the other managers lose what this apply takes, except an
        // entry's existence, which they keep sharing.
        for (other, (_, owned)) in entry.managers.iter_mut() {
            if other != manager {
                owned.retain(|p| p.last().unwrap() == "." || !paths.contains(p));
            }
        }
        let previously = entry
            .managers
            .get(manager)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let mut body_meta = body.clone();
        if let Some(m) = body_meta.as_object_mut() {
            m.remove("status");
        }
        merge(r, &mut entry.object, &body_meta, &mut Vec::new());
        for p in previously.difference(&paths) {
            // Still owned by another manager (the path itself, or for an entry anything in it).
            let shared = entry.managers.iter().any(|(m, (_, o))| {
                m != manager
                    && o.iter().any(|q| {
                        if p.last().unwrap() == "." {
                            q.starts_with(&p[..p.len() - 1])
                        } else {
                            q == p
                        }
                    })
            });
            if !shared {
                remove(r, &mut entry.object, p);
            }
        }
        entry
            .managers
            .insert(manager.to_owned(), ("Apply".to_owned(), paths));
        entry.managers.retain(|_, (_, o)| !o.is_empty());
        let spec_changed = before.get("spec") != entry.object.get("spec");
        if r == "deployments" && (spec_changed || created) {
            entry.generation += 1;
            entry.changed = Instant::now();
        }
        if created || before != entry.object {
            self.changed(&key, if created { "ADDED" } else { "MODIFIED" });
        }
        Ok(self.render(&key))
    }

    /// The changes after `rv` to `resource` objects in `ns` that match the selectors.
    fn changes_after(
        &self,
        rv: u64,
        resource: &str,
        ns: &str,
        labels: &str,
        fields: &str,
    ) -> Vec<String> {
        self.log
            .iter()
            .filter(|c| c.rv > rv && c.key.0 == resource && c.key.1 == ns)
            .filter(|c| {
                c.object.is_null()
                    || (matches_labels(&c.object, labels) == Some(true)
                        && matches_fields(&c.object, fields) == Some(true))
            })
            .filter(|c| {
                !c.object.is_null() || fields.is_empty() || {
                    // A deletion: matched by the name it had.
                    fields.strip_prefix("metadata.name=") == Some(c.key.2.as_str())
                }
            })
            .map(|c| {
                let mut object = c.object.clone();
                if object.is_null() {
                    object = json!({"apiVersion": api_version(resource), "kind": kind(resource),
                                    "metadata": {"name": c.key.2, "namespace": c.key.1,
                                                 "resourceVersion": c.rv.to_string()}});
                }
                format!("{}\n", json!({"type": c.kind, "object": object}))
            })
            .collect()
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("a response")
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(n) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A WATCH: the changes after the `resourceVersion` asked for, then each new one as it comes,
/// until `timeoutSeconds` (the real server's default is a few minutes; kube asks for 290 s).
fn watch(
    state: Arc<Mutex<State>>,
    resource: &str,
    ns: &str,
    query: &str,
) -> Result<Response<Body>, (u16, Value)> {
    let labels = query_param(query, "labelSelector").unwrap_or_default();
    let fields = query_param(query, "fieldSelector").unwrap_or_default();
    let probe = json!({"metadata": {"name": ""}});
    if matches_labels(&probe, &labels).is_none() || matches_fields(&probe, &fields).is_none() {
        return Err(not_implemented("GET", &format!("watch with {query}")));
    }
    let timeout = query_param(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let timeout = state
        .lock()
        .unwrap()
        .watch_limit
        .map_or(timeout, |l| l.min(timeout));
    let asked = query_param(query, "resourceVersion").unwrap_or_default();
    let mut initial = Vec::new();
    let mut rv = match asked.as_str() {
        "" | "0" => {
            let state = state.lock().unwrap();
            for key in state
                .objects
                .keys()
                .filter(|k| k.0 == resource && k.1 == ns)
            {
                let o = state.render(key);
                if matches_labels(&o, &labels) == Some(true)
                    && matches_fields(&o, &fields) == Some(true)
                {
                    initial.push(format!("{}\n", json!({"type": "ADDED", "object": o})));
                }
            }
            state.rv
        }
        n => match n.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return Err((
                    400,
                    status_body(400, "BadRequest", "bad resourceVersion", None),
                ))
            }
        },
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (resource, ns) = (resource.to_owned(), ns.to_owned());
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let lines = {
                let mut state = state.lock().unwrap();
                state.tick();
                let lines = state.changes_after(rv, &resource, &ns, &labels, &fields);
                rv = state.rv;
                lines
            };
            for line in lines {
                if tx.send(Bytes::from(line)).await.is_err() {
                    return; // the client hung up
                }
            }
            tokio::time::sleep(STEP / 2).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("a response"))
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let watched = (method == "GET" && query_param(&query, "watch").as_deref() == Some("true"))
        .then(|| {
            let s = state.lock().unwrap();
            s.route_of(&path)
        })
        .flatten();
    let (status, answer) = match watched {
        Some((resource, ns, None)) => match watch(state.clone(), &resource, &ns, &query) {
            Ok(response) => {
                record(&state, method, path, query, 200);
                return Ok(response);
            }
            Err(refused) => refused,
        },
        _ => {
            let mut s = state.lock().unwrap();
            s.tick();
            route(&mut s, &method, &path, &query, &content_type, &body)
        }
    };
    record(&state, method, path, query, status);
    Ok(respond(status, &answer))
}

fn record(state: &Mutex<State>, method: String, path: String, query: String, status: u16) {
    state.lock().unwrap().requests.push(Recorded {
        method,
        path,
        query,
        status,
    });
}

fn not_implemented(method: &str, path: &str) -> (u16, Value) {
    (
        501,
        status_body(
            501,
            "NotImplemented",
            &format!("the fake API server does not implement {method} {path}"),
            None,
        ),
    )
}

impl State {
    /// (resource, namespace or "", name) a path names, for a resource the fake serves.
    fn route_of(&self, path: &str) -> Option<(String, String, Option<String>)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (gv, rest) = match parts.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return None,
        };
        let (resource, ns, name) = match rest {
            ["namespaces", ns, r, tail @ ..] if tail.len() <= 1 => (*r, *ns, tail.first().copied()),
            [r, tail @ ..] if tail.len() <= 1 => (*r, "", tail.first().copied()),
            _ => return None,
        };
        let (api, _, namespaced) = RESOURCES
            .iter()
            .find(|r| r.0 == resource)
            .map(|r| (r.1, r.2, r.3))?;
        if api != gv || namespaced == ns.is_empty() || self.without.contains(resource) {
            return None;
        }
        Some((resource.to_owned(), ns.to_owned(), name.map(str::to_owned)))
    }

    /// The discovery documents (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#unaggregated-discovery).
    fn discovery(&self, path: &str) -> Option<Value> {
        let served: Vec<&(&str, &str, &str, bool)> = RESOURCES
            .iter()
            .filter(|r| !self.without.contains(r.0))
            .collect();
        let resources = |gv: &str| -> Vec<Value> {
            served
                .iter()
                .filter(|r| r.1 == gv)
                .map(|r| {
                    json!({"name": r.0, "singularName": r.2.to_lowercase(), "namespaced": r.3,
                           "kind": r.2, "verbs": ["get", "list", "watch", "patch", "delete"]})
                })
                .collect()
        };
        let mut groups: Vec<&str> = served
            .iter()
            .filter_map(|r| r.1.split_once('/').map(|(g, _)| g))
            .collect();
        groups.dedup();
        groups.sort_unstable();
        groups.dedup();
        Some(match path {
            "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
            "/api/v1" => {
                json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("v1")})
            }
            "/apis" => {
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups.iter().map(|g| {
                let gv = format!("{g}/v1");
                json!({"name": g, "versions": [{"groupVersion": gv, "version": "v1"}],
                       "preferredVersion": {"groupVersion": gv, "version": "v1"}})
            }).collect::<Vec<_>>()})
            }
            _ => {
                let gv = path.strip_prefix("/apis/")?;
                let (g, _) = gv.split_once('/')?;
                if !groups.contains(&g) || gv.matches('/').count() != 1 {
                    return None;
                }
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources(gv)})
            }
        })
    }
}

fn route(
    state: &mut State,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    if method == "GET" && path == "/version" {
        return (
            200,
            json!({"major": "1", "minor": state.minor.to_string(), "gitVersion": format!("v1.{}.0-fake", state.minor),
                   "gitCommit": "fake", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    if method == "GET" {
        if let Some(doc) = state.discovery(path) {
            return (200, doc);
        }
    }
    let Some((resource, ns, name)) = state.route_of(path) else {
        if method == "GET" {
            return (
                404,
                status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ),
            );
        }
        return not_implemented(method, path);
    };
    let (resource, ns, name) = (resource.as_str(), ns.as_str(), name.as_deref());
    match (method, name) {
        ("GET", None) => {
            let selector = query_param(query, "labelSelector").unwrap_or_default();
            let fields = query_param(query, "fieldSelector").unwrap_or_default();
            let items: Vec<Value> = match resource {
                "pods" | "events" => {
                    let seeded = if resource == "pods" {
                        &state.pods
                    } else {
                        &state.events
                    };
                    let mut out = Vec::new();
                    for item in seeded {
                        if item["metadata"]["namespace"] != ns {
                            continue;
                        }
                        let Some(ok) = matches_labels(item, &selector) else {
                            return not_implemented(method, &format!("{path}?{query}"));
                        };
                        let field_ok = match fields.as_str() {
                            "" => true,
                            "type=Warning" => item["type"] == "Warning",
                            _ => return not_implemented(method, &format!("{path}?{query}")),
                        };
                        if ok && field_ok {
                            out.push(item.clone());
                        }
                    }
                    out
                }
                _ => {
                    let keys: Vec<_> = state
                        .objects
                        .keys()
                        .filter(|(r, n, _)| r == resource && n == ns)
                        .cloned()
                        .collect();
                    let mut out = Vec::new();
                    for key in keys {
                        let object = state.render(&key);
                        let (Some(labels_ok), Some(fields_ok)) = (
                            matches_labels(&object, &selector),
                            matches_fields(&object, &fields),
                        ) else {
                            return not_implemented(method, &format!("{path}?{query}"));
                        };
                        if labels_ok && fields_ok {
                            out.push(object);
                        }
                    }
                    out
                }
            };
            let list_kind = format!("{}List", kind(resource));
            (
                200,
                json!({"apiVersion": api_version(resource), "kind": list_kind,
                       "metadata": {"resourceVersion": state.rv.to_string()}, "items": items}),
            )
        }
        ("GET", Some(name)) => {
            let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
            if !state.objects.contains_key(&key) {
                return (
                    404,
                    status_body(
                        404,
                        "NotFound",
                        &format!("{resource} \"{name}\" not found"),
                        None,
                    ),
                );
            }
            (200, state.render(&key))
        }
        ("PATCH", Some(name)) => {
            if content_type != "application/apply-patch+yaml" {
                return not_implemented(method, &format!("{path} as {content_type}"));
            }
            // An injected refusal, as an admission webhook gives one: nothing stored.
            if state.refuse.remove(&(resource.to_owned(), name.to_owned())) {
                return (
                    422,
                    status_body(
                        422,
                        "Invalid",
                        &format!("admission webhook \"policy.example\" denied the request: {resource} \"{name}\" refused"),
                        None,
                    ),
                );
            }
            let Some(manager) = query_param(query, "fieldManager") else {
                return (
                    400,
                    status_body(
                        400,
                        "BadRequest",
                        "fieldManager is required for apply patch",
                        None,
                    ),
                );
            };
            let force = query_param(query, "force").as_deref() == Some("true");
            let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
                return not_implemented(method, "a YAML body that is not JSON");
            };
            let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
            match state.apply(key, &manager, force, parsed) {
                Ok(o) => (200, o),
                Err(status) => (409, status),
            }
        }
        ("DELETE", Some(name)) => {
            let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(_) => {
                        return not_implemented(method, "a DeleteOptions body that is not JSON")
                    }
                }
            };
            if let Some(m) = options.as_object() {
                if m.keys().any(|k| {
                    !["kind", "apiVersion", "propagationPolicy", "preconditions"]
                        .contains(&k.as_str())
                }) || options["preconditions"].get("resourceVersion").is_some()
                {
                    return not_implemented(method, &format!("{path} with {options}"));
                }
            }
            if let (Some(wanted), Some(stored)) = (
                options["preconditions"]["uid"].as_str(),
                state.objects.get(&key),
            ) {
                let actual = stored.object["metadata"]["uid"].as_str().unwrap_or("");
                if wanted != actual {
                    return (
                        409,
                        status_body(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on {resource} \"{name}\": Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
                            ),
                            None,
                        ),
                    );
                }
            }
            if state.objects.contains_key(&key) {
                state.changed(&key, "DELETED");
                state.objects.remove(&key);
                (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                )
            } else {
                (
                    404,
                    status_body(
                        404,
                        "NotFound",
                        &format!("{resource} \"{name}\" not found"),
                        None,
                    ),
                )
            }
        }
        _ => not_implemented(method, path),
    }
}

impl FakeKube {
    /// Starts the fake on 127.0.0.1 (port 0), a Kubernetes 1.34 serving every kind in
    /// `RESOURCES`; a rollout completes `polls` steps of `STEP` after its spec changed.
    pub fn start(polls: u32) -> FakeKube {
        let state = Arc::new(Mutex::new(State {
            polls,
            minor: 34,
            ..Default::default()
        }));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = served.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    handle(state.clone(), req)
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        FakeKube {
            addr: addr_rx.recv().unwrap(),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// A kubeconfig naming this server, context `fake`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\n",
            self.addr
        )
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Refuses the next apply of `resource`/`name` with a 422, as an admission webhook would
    /// (a fault a real server gives and a test cannot provoke otherwise); later ones succeed.
    pub fn refuse_next_apply(&self, resource: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .refuse
            .insert((resource.to_owned(), name.to_owned()));
    }

    /// Marks images whose reference ends with `digest` as never becoming available.
    pub fn stuck(&self, digest: &str) {
        self.state.lock().unwrap().stuck.insert(digest.to_owned());
    }

    /// The stored object (with its managed fields), if any.
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        state.objects.contains_key(&key).then(|| state.render(&key))
    }

    pub fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .keys()
            .filter(|(r, n, _)| r == resource && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Server-side apply by another client (`kubectl apply --server-side`, an older cookbook):
    /// the same apply cookbook's requests get, under `manager`. Panics on a conflict.
    pub fn apply(&self, resource: &str, ns: &str, name: &str, manager: &str, body: Value) {
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        self.state
            .lock()
            .unwrap()
            .apply(key, manager, false, body)
            .expect("the seeded apply conflicts");
    }

    /// Deletes an object as another client would (no request recorded).
    pub fn delete(&self, resource: &str, ns: &str, name: &str) -> bool {
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        let mut state = self.state.lock().unwrap();
        if !state.objects.contains_key(&key) {
            return false;
        }
        state.changed(&key, "DELETED");
        state.objects.remove(&key).is_some()
    }

    /// What another client does with a plain update (`kubectl edit`, `kubectl scale`): merges
    /// `patch` into the object (creating it; lists merged by key as apply merges them) and gives
    /// `manager` the fields it changed, taking them from whoever owned them.
    pub fn update(&self, resource: &str, ns: &str, name: &str, manager: &str, patch: Value) {
        let mut state = self.state.lock().unwrap();
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        let created = !state.objects.contains_key(&key);
        let entry = state.entry(&key);
        if created {
            entry.generation = 1;
        }
        let paths = owned_paths(resource, &patch);
        for (_, (_, owned)) in entry.managers.iter_mut() {
            owned.retain(|p| p.last().unwrap() == "." || !paths.contains(p));
        }
        merge(resource, &mut entry.object, &patch, &mut Vec::new());
        if patch.get("spec").is_some() {
            entry.generation += 1;
            entry.changed = Instant::now();
        }
        entry
            .managers
            .entry(manager.to_owned())
            .or_insert_with(|| ("Update".to_owned(), BTreeSet::new()))
            .1
            .extend(paths);
        entry.managers.retain(|_, (_, o)| !o.is_empty());
        state.changed(&key, if created { "ADDED" } else { "MODIFIED" });
    }

    /// Every rollout state a Deployment reached, in order.
    pub fn rollouts(&self) -> Vec<Rollout> {
        self.state.lock().unwrap().rollouts.clone()
    }

    /// Serves no `resource` from now on (discovery leaves it out, requests are 404s), as a
    /// cluster without that API.
    pub fn without(&self, resource: &str) {
        self.state
            .lock()
            .unwrap()
            .without
            .insert(resource.to_owned());
    }

    /// Ends every watch `after` it started, as a server does at its own timeout or on a
    /// restart (a client must watch again from the last resourceVersion it saw:
    /// https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
    pub fn end_watches_after(&self, after: Duration) {
        self.state.lock().unwrap().watch_limit = Some(after);
    }

    /// Answers `/version` as Kubernetes 1.`minor`.
    pub fn set_minor(&self, minor: u32) {
        self.state.lock().unwrap().minor = minor;
    }

    /// A Pod for `status` to find (the fake runs no pods of its own).
    pub fn seed_pod(&self, ns: &str, name: &str, labels: Value, restarts: i64) {
        self.state.lock().unwrap().pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "status": {"containerStatuses": [{"name": "c", "ready": true, "restartCount": restarts,
                        "image": "x", "imageID": "x"}]},
        }));
    }

    pub fn seed_event(&self, ns: &str, object: &str, reason: &str, message: &str, at: &str) {
        let n = self.state.lock().unwrap().events.len();
        self.state.lock().unwrap().events.push(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{object}.{n}"), "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": object, "namespace": ns},
            "reason": reason, "message": message, "type": "Warning", "lastTimestamp": at,
        }));
    }
}

pub type Object = Map<String, Value>;
