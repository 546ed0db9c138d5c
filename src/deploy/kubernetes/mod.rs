//! Kubernetes sites: the second `deploy::Backend`, through the Kubernetes API (`kube`, with
//! `k8s-openapi`'s types).
//!
//! Pipeline position: `Desired` → `objects` (pure: Deployments, Services, a Namespace) →
//! `deploy::session` → **`cluster::KubeSite`**: server-side apply under the field manager
//! `cookbook`, wave by wave, each wave held until every Deployment's rollout is complete by the
//! rules `kubectl rollout status` uses; prune of our labelled objects no container wants.
//!
//! Invariants: a field another manager owns is never taken over unless `--force-conflicts` says
//! so (the conflict is reported naming the field and the manager); an object whose config-hash
//! annotation (and replicas) already match is not sent at all, so an unchanged deploy changes
//! nothing; only objects carrying our project, stage and site labels are ever deleted.

pub mod cluster;
pub mod objects;

/// A Kubernetes API failure, classified by what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be read or used (a missing file, an unknown context).
    #[error("cannot use the Kubernetes configuration{}: {message}", at.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Config { at: Option<String>, message: String },
    /// No answer from the API server.
    #[error("cannot connect to the Kubernetes API at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// Server-side apply found fields owned by other managers.
    #[error("{kind} {name}: server-side apply conflict: {}; cookbook leaves fields other managers own alone (run with --force-conflicts to take them over)", conflicts.iter().map(|c| format!("field {} is owned by manager \"{}\"", c.field, c.manager)).collect::<Vec<_>>().join(", "))]
    Conflict {
        kind: &'static str,
        name: String,
        conflicts: Vec<Conflict>,
    },
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {operation} failed: {message} ({code})")]
    Api {
        operation: String,
        code: u16,
        message: String,
    },
}

/// One field another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// As the API server names it: `.spec.replicas`.
    pub field: String,
    pub manager: String,
}
