//! Kubernetes sites: the second `deploy::Backend`, through the Kubernetes API (`kube`, with
//! `k8s-openapi`'s types).
//!
//! Pipeline position: `Desired` → `objects` (pure: per pod its claims, Deployment, Service,
//! budget and Ingress; a Namespace) → `deploy::session` → **`cluster::KubeSite`**: checks
//! before anything changes (referenced Secrets, what the cluster offers: `detect::Cluster`),
//! then server-side apply under the site's field manager (`cookbook/<site>`), wave by wave, each
//! wave held (by WATCH) until every Deployment's rollout is complete by the rules `kubectl
//! rollout status` uses; prune, kind by kind, of our labelled objects no container wants
//! (claims of a container still in the stage excepted).
//!
//! Invariants: a field another manager owns is never taken over unless `--force-conflicts` says
//! so (the conflict is reported naming the field and the manager); an object whose config-hash
//! annotation (and replicas) already match is not sent at all, so an unchanged deploy changes
//! nothing; an object is ours only if it carries our project, site, stage and container labels:
//! nothing else is ever applied over, replaced or deleted, whatever its name (a namesake that is
//! not ours stops the deploy before anything is sent, naming it and its owner).

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
    /// Objects with the names this site's objects take exist and are not ours (another site's,
    /// another project's, or not cookbook's at all): nothing was applied.
    #[error("namespace `{namespace}` has {} named as this site's that {} not its own: {}; cookbook applies over, replaces and deletes only objects carrying its project, site, stage and container labels (rename or remove {}, or deploy this site to another namespace)",
        if objects.len() == 1 { "an object" } else { "objects" },
        if objects.len() == 1 { "is" } else { "are" },
        objects.iter().map(Foreign::to_string).collect::<Vec<_>>().join("; "),
        if objects.len() == 1 { "it" } else { "them" })]
    NotOurs {
        namespace: String,
        objects: Vec<Foreign>,
    },
    /// Server-side apply found fields owned by other managers.
    #[error("{kind} {name}: server-side apply conflict: {}; cookbook leaves fields other managers own alone (run with --force-conflicts to take them over)", conflicts.iter().map(|c| format!("field {} is owned by manager \"{}\"", c.field, c.manager)).collect::<Vec<_>>().join(", "))]
    Conflict {
        kind: &'static str,
        name: String,
        conflicts: Vec<Conflict>,
    },
    /// A Secret the stage's env references (`secretKeyRef`) is not in the namespace, or has
    /// not the key: nothing was applied. Names the reference only, never a value.
    #[error("secret {reference}: {why}; create it in namespace `{namespace}` before deploying (kubectl create secret generic …)")]
    Secret {
        /// `NAME/KEY`.
        reference: String,
        namespace: String,
        why: String,
    },
    /// The stage's objects need what the cluster does not offer (an API, a storage or ingress
    /// class, a server version): nothing was applied.
    #[error("the cluster lacks what this stage needs: {}", missing.join("; "))]
    Lacks { missing: Vec<String> },
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {operation} failed: {message} ({code})")]
    Api {
        operation: String,
        code: u16,
        message: String,
    },
}

/// An object that has a name one of ours would take, and is not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// `Deployment`, `Service`.
    pub kind: &'static str,
    pub name: String,
    /// Whose it is, by its labels.
    pub owner: objects::Owner,
    /// The field managers its `managedFields` name, in order (who wrote it).
    pub managers: Vec<String>,
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (", self.kind, self.name)?;
        match &self.owner {
            objects::Owner::Cookbook(labels) => write!(
                f,
                "labelled {}",
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            objects::Owner::Other {
                managed_by: Some(tool),
            } => write!(f, "no cookbook labels, managed by {tool}")?,
            objects::Owner::Other { managed_by: None } | objects::Owner::Ours => {
                write!(f, "no cookbook labels")?
            }
        }
        if self.managers.is_empty() {
            write!(f, ")")
        } else {
            write!(f, "; field managers: {})", self.managers.join(", "))
        }
    }
}

/// One field another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// As the API server names it: `.spec.replicas`.
    pub field: String,
    pub manager: String,
}
