//! An in-process fake Kubernetes API server for tests/it/kubernetes.rs: no API server can run here.
//!
//! It implements only what cookbook calls, and refuses everything else with 501:
//! - `GET /version`;
//! - Deployments (`/apis/apps/v1/namespaces/NS/deployments[/NAME]`), Services and Namespaces
//!   (`/api/v1/…`): GET one (404 as a `Status`), LIST with an equality `labelSelector`
//!   (`k=v,k=v`), server-side apply (`PATCH`, `application/apply-patch+yaml`, `fieldManager`,
//!   `force`), DELETE (honouring a `preconditions.uid` in its `DeleteOptions` body with 409, as
//!   the real server does);
//! - LIST of Pods (by label) and Events (`fieldSelector=type=Warning`) that a test seeds.
//!
//! Server-side apply, simplified and honest about it: a manager owns the leaf paths of what it
//! applied (maps are walked, lists are atomic leaves, as `atomic` list types are in the real
//! server); applying a path another manager owns with a different value is a 409 `Conflict` with
//! the standard `Status` body (one `FieldManagerConflict` cause per field, naming the manager in
//! its message) unless `force=true`, which takes the field over; fields the applier owned and no
//! longer sends are removed. `metadata.managedFields` is written in the `FieldsV1` shape.
//! Bodies are parsed as JSON (what kube sends; JSON is YAML).
//!
//! A Deployment's status is driven by the test: each GET of one Deployment is a poll; after
//! `polls` polls since its spec last changed its rollout is complete (observed generation,
//! updated and available replicas), unless its image's digest was marked stuck, in which case
//! its `Progressing` condition says `ProgressDeadlineExceeded`. Every request is recorded.
#![allow(dead_code)] // each test uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// For a GET of one Deployment: `progressing`, `complete` or `stuck`.
    pub rollout: Option<String>,
}

impl Recorded {
    /// `METHOD kind/name` (`PATCH deployments/shop-dev-api`), the short form tests compare.
    pub fn short(&self) -> String {
        let parts: Vec<&str> = self.path.split('/').collect();
        let tail = match parts
            .iter()
            .rposition(|p| ["deployments", "services", "namespaces", "pods", "events"].contains(p))
        {
            Some(i) => parts[i..].join("/"),
            None => self.path.clone(),
        };
        format!("{} {tail}", self.method)
    }

    pub fn changes(&self) -> bool {
        !matches!(self.method.as_str(), "GET")
    }
}

struct Stored {
    object: Value,
    /// manager → (operation, leaf paths it owns).
    managers: BTreeMap<String, (String, BTreeSet<Vec<String>>)>,
    generation: i64,
    polls: u32,
}

#[derive(Default)]
struct State {
    /// (resource, namespace or "", name) → object.
    objects: BTreeMap<(String, String, String), Stored>,
    requests: Vec<Recorded>,
    stuck: BTreeSet<String>,
    /// (resource, name) whose next apply is refused (`refuse_next_apply`), then accepted again.
    refuse: BTreeSet<(String, String)>,
    polls: u32,
    pods: Vec<Value>,
    events: Vec<Value>,
    next_uid: u64,
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

fn leaves(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
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
fn owned_paths(v: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
        )
    });
    out
}

fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set(v: &mut Value, path: &[String], value: Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = cur.get_mut(k).expect("just made");
    }
    cur[path[path.len() - 1].as_str()] = value;
}

fn remove(v: &mut Value, path: &[String]) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(&path[path.len() - 1]);
    }
}

/// `.spec.replicas`, as the API server names a field in a conflict.
fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// The `FieldsV1` form of a set of paths: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let key = format!("f:{k}");
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

fn api_version(resource: &str) -> &'static str {
    if resource == "deployments" {
        "apps/v1"
    } else {
        "v1"
    }
}

fn kind(resource: &str) -> &'static str {
    match resource {
        "deployments" => "Deployment",
        "services" => "Service",
        "namespaces" => "Namespace",
        "pods" => "Pod",
        _ => "Event",
    }
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

impl State {
    fn render(&self, key: &(String, String, String)) -> Value {
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

    /// A Deployment's status as of `polls` polls since its spec changed.
    fn rollout(&mut self, key: &(String, String, String), poll: bool) -> String {
        let needed = self.polls;
        let stuck_digests = self.stuck.clone();
        let stored = self.objects.get_mut(key).expect("exists");
        if poll {
            stored.polls += 1;
        }
        let replicas = stored.object["spec"]["replicas"].as_i64().unwrap_or(1);
        let image = stored.object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let stuck = stuck_digests.iter().any(|d| image.ends_with(d.as_str()));
        let g = stored.generation;
        let (label, status) = if stored.polls < needed {
            (
                "progressing",
                json!({
                    "observedGeneration": g - 1, "replicas": replicas, "updatedReplicas": 0,
                    "availableReplicas": 0,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
                }),
            )
        } else if stuck {
            (
                "stuck",
                json!({
                    "observedGeneration": g, "replicas": replicas, "updatedReplicas": replicas,
                    "availableReplicas": 0, "unavailableReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                    "message": format!("ReplicaSet \"{}-7c9d\" has timed out progressing.", key.2)}],
                }),
            )
        } else {
            (
                "complete",
                json!({
                    "observedGeneration": g, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
                }),
            )
        };
        stored.object["status"] = status;
        label.to_owned()
    }

    /// Server-side apply of `body` by `manager`.
    fn apply(
        &mut self,
        key: (String, String, String),
        manager: &str,
        force: bool,
        mut body: Value,
    ) -> Result<Value, Value> {
        if let Some(m) = body.get_mut("status").and_then(Value::as_object_mut) {
            m.clear();
        }
        let paths = owned_paths(&body);
        let uid = self.next_uid;
        let entry = self.objects.entry(key.clone()).or_insert_with(|| Stored {
            object: json!({"apiVersion": api_version(&key.0), "kind": kind(&key.0),
                           "metadata": {"name": key.2, "uid": format!("uid-{uid}")}}),
            managers: BTreeMap::new(),
            generation: 0,
            polls: 0,
        });
        self.next_uid += 1;
        let mut conflicts = Vec::new();
        for (other, (_, owned)) in &entry.managers {
            if other == manager {
                continue;
            }
            for p in paths.intersection(owned) {
                if get(&entry.object, p) != get(&body, p) {
                    conflicts.push((dotted(p), other.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let api = api_version(&key.0);
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
                            "kind": kind(&key.0).to_lowercase(), "causes": causes}),
                ),
            ));
        }
        let spec_before = entry.object.get("spec").cloned();
        // Forced: the other managers lose what this apply takes.
        for (other, (_, owned)) in entry.managers.iter_mut() {
            if other != manager {
                owned.retain(|p| !paths.contains(p));
            }
        }
        let previously = entry
            .managers
            .get(manager)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        for p in previously.difference(&paths) {
            let shared = entry
                .managers
                .iter()
                .any(|(m, (_, o))| m != manager && o.contains(p));
            if !shared {
                remove(&mut entry.object, p);
            }
        }
        for p in &paths {
            set(
                &mut entry.object,
                p,
                get(&body, p).cloned().unwrap_or(Value::Null),
            );
        }
        entry
            .managers
            .insert(manager.to_owned(), ("Apply".to_owned(), paths));
        entry.managers.retain(|_, (_, o)| !o.is_empty());
        if key.0 == "deployments" && entry.object.get("spec").cloned() != spec_before {
            entry.generation += 1;
            entry.polls = 0;
        }
        Ok(self.render(&key))
    }
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
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

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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
    let mut state = state.lock().unwrap();
    let mut rollout = None;
    let (status, answer) = route(
        &mut state,
        &method,
        &path,
        &query,
        &content_type,
        &body,
        &mut rollout,
    );
    state.requests.push(Recorded {
        method,
        path,
        query,
        status,
        rollout,
    });
    Ok(respond(status, &answer))
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

fn route(
    state: &mut State,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
    rollout: &mut Option<String>,
) -> (u16, Value) {
    if method == "GET" && path == "/version" {
        return (
            200,
            json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake", "gitCommit": "fake",
                   "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                   "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // (resource, namespace, name)
    let (resource, ns, name) = match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] => ("deployments", *ns, None),
        ["apis", "apps", "v1", "namespaces", ns, "deployments", n] => {
            ("deployments", *ns, Some(*n))
        }
        ["api", "v1", "namespaces", ns, r @ ("services" | "pods" | "events")] => (*r, *ns, None),
        ["api", "v1", "namespaces", ns, "services", n] => ("services", *ns, Some(*n)),
        ["api", "v1", "namespaces"] => ("namespaces", "", None),
        ["api", "v1", "namespaces", n] => ("namespaces", "", Some(*n)),
        _ => return not_implemented(method, path),
    };
    match (method, name) {
        ("GET", None) => {
            let items: Vec<Value> = match resource {
                "pods" | "events" => {
                    let seeded = if resource == "pods" {
                        &state.pods
                    } else {
                        &state.events
                    };
                    let selector = query_param(query, "labelSelector").unwrap_or_default();
                    let fields = query_param(query, "fieldSelector").unwrap_or_default();
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
                    let selector = query_param(query, "labelSelector").unwrap_or_default();
                    if query_param(query, "fieldSelector").is_some()
                        || query_param(query, "watch").is_some()
                    {
                        return not_implemented(method, &format!("{path}?{query}"));
                    }
                    let keys: Vec<_> = state
                        .objects
                        .keys()
                        .filter(|(r, n, _)| r == resource && n == ns)
                        .cloned()
                        .collect();
                    let mut out = Vec::new();
                    for key in keys {
                        let Some(ok) = matches_labels(&state.objects[&key].object, &selector)
                        else {
                            return not_implemented(method, &format!("{path}?{query}"));
                        };
                        if ok {
                            if resource == "deployments" {
                                state.rollout(&key, false);
                            }
                            out.push(state.render(&key));
                        }
                    }
                    out
                }
            };
            let list_kind = format!("{}List", kind(resource));
            (
                200,
                json!({"apiVersion": api_version(resource), "kind": list_kind,
                       "metadata": {"resourceVersion": "1"}, "items": items}),
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
            if resource == "deployments" {
                *rollout = Some(state.rollout(&key, true));
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
            match state.objects.remove(&key) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => (
                    404,
                    status_body(
                        404,
                        "NotFound",
                        &format!("{resource} \"{name}\" not found"),
                        None,
                    ),
                ),
            }
        }
        _ => not_implemented(method, path),
    }
}

impl FakeKube {
    /// Starts the fake on 127.0.0.1 (port 0); a rollout completes after `polls` polls.
    pub fn start(polls: u32) -> FakeKube {
        let state = Arc::new(Mutex::new(State {
            polls,
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
        self.state.lock().unwrap().objects.remove(&key).is_some()
    }

    /// What another client does with a plain update (`kubectl edit`, `kubectl scale`): merges
    /// `patch` into the object (creating it) and gives `manager` the fields it changed, taking
    /// them from whoever owned them.
    pub fn update(&self, resource: &str, ns: &str, name: &str, manager: &str, patch: Value) {
        let mut state = self.state.lock().unwrap();
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        let uid = state.next_uid;
        state.next_uid += 1;
        let entry = state.objects.entry(key).or_insert_with(|| Stored {
            object: json!({"apiVersion": api_version(resource), "kind": kind(resource),
                           "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{uid}")}}),
            managers: BTreeMap::new(),
            generation: 1,
            polls: 0,
        });
        let paths = owned_paths(&patch);
        for (_, (_, owned)) in entry.managers.iter_mut() {
            owned.retain(|p| !paths.contains(p));
        }
        for p in &paths {
            set(
                &mut entry.object,
                p,
                get(&patch, p).cloned().unwrap_or(Value::Null),
            );
        }
        if patch.get("spec").is_some() {
            entry.generation += 1;
            entry.polls = 0;
        }
        entry
            .managers
            .entry(manager.to_owned())
            .or_insert_with(|| ("Update".to_owned(), BTreeSet::new()))
            .1
            .extend(paths);
        entry.managers.retain(|_, (_, o)| !o.is_empty());
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
