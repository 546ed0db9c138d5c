//! `apply --dry-run`: what a run would do with each container, from the same lookups, doing
//! none of it; with a pool of builders, which builder each build would go to
//! ([`pool::predict`]: as if every build took the same time — a prediction, since a real run
//! gives a freed slot to whichever build waits).
//!
//! Offline, it still plans: fingerprinted on the lock's pins (a pinned base that cannot be
//! checked is a warning of the pin step), and when the registry cannot be reached, every
//! container is `unchecked` ([`Action::Unchecked`]: whether its image exists is not known) and
//! the plan says why, instead of failing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pool::{self, Pool};
use super::{
    check, connect_and_fingerprint, needs_revision, parse_repo, policy_tags, ApplyError,
    CacheSource, Fingerprinter, Job, Reporter,
};
use crate::context::dockerfile::local_image;
use crate::engine::Engine;
use crate::model::Name;
use crate::registry::RegistryClient;

/// Whether a container's image exists already, by its content tag: in the registry when pushing
/// (its manifest digest, and its configuration's digest as the image id), else in the local
/// engine (its id). `None`: it has to be built. Only reads: `apply` and [`dry_run`] share it.
pub(super) async fn lookup<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
    name: &Name,
) -> Result<check::Found, ApplyError> {
    let cookbook = job.cookbook;
    let hash = job.fingerprints[name].input_hash();
    if let Some(registry) = registry {
        let repo = parse_repo(&cookbook.repository(name))?;
        return Ok(registry.manifest_get(&repo, hash).await?.map(|manifest| {
            let image_id = manifest.config_digest().map(|d| d.to_string());
            (
                CacheSource::Registry,
                (Some(manifest.digest.to_string()), image_id),
            )
        }));
    }
    let local = local_image(&cookbook.project.name, name, hash);
    Ok(engine
        .image_exists(&local)
        .await?
        .map(|id| (CacheSource::LocalEngine, (None, Some(id.to_string())))))
}

/// What an apply would do with one container ([`dry_run`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// `cached` (its content tag exists), `build`, or `unchecked` (the registry could not be
    /// reached).
    pub action: Action,
    /// Why it could not be checked (the registry's failure), when `unchecked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// Where the cached image was found: `registry` or `local engine`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<CacheSource>,
    pub input_hash: String,
    /// The content-tagged reference.
    pub image: String,
    /// The content tag a build would push (`None` when cached or with `--no-push`).
    pub push: Option<String>,
    /// The mutable tags (`packaging.tagging`, `latest`) the run would move once every container
    /// succeeded: in the registry when pushing, else in the local engine.
    pub tags: Vec<String>,
    /// The builder of the pool a build would go to (none when cached, assembled without an
    /// engine, or with one engine and no pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
}

/// What a run would do with a container's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Cached,
    Build,
    /// The registry could not be reached (a dry run offline): cached or built, not known.
    Unchecked,
}

/// Whether a registry's failure means this machine is offline — no connection could be made
/// (refused, unresolvable, timed out) —, so that a dry run plans on without its answers. A
/// certificate or handshake failure, a registry that answers 5xx or 429, a refusal: those are
/// answers, and stay errors (a dry run in CI must not pass on a registry that lies or is broken).
fn unreachable(e: &ApplyError) -> Option<String> {
    use crate::registry::RegistryError as R;
    match e {
        ApplyError::Registry(r @ R::Unreachable { source, .. })
            if (source.is_connect() || source.is_timeout()) && !is_tls(source) =>
        {
            Some(r.to_string())
        }
        _ => None,
    }
}

/// Whether `e` comes from TLS (a certificate the registry presented, a handshake): the peer
/// answered, and its answer was refused.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| {
        // An `io::Error` hides what it wraps from `source()`: look inside it too.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        e.downcast_ref::<rustls::Error>().is_some()
            || wrapped.is_some_and(|w| w.downcast_ref::<rustls::Error>().is_some())
            || e.to_string().to_ascii_lowercase().contains("certificate")
    })
}

/// [`dry_run`] against the Docker engine of the environment and (when pushing) the registry, as
/// [`super::apply_with_docker`] would run: bases not pinned yet are resolved (and reported) but
/// not recorded.
pub async fn dry_run_with_docker(
    mut job: Job<'_>,
    fingerprint: &Fingerprinter<'_>,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<Name, Planned>, ApplyError> {
    let (pool, registry) = connect_and_fingerprint(&mut job, fingerprint, reporter, false).await?;
    dry_run(&job, &pool, registry.as_deref()).await
}

/// What [`apply`] would do, per container of the plan, without doing any of it: the same cache
/// check (by content tag, in the registry when pushing, else in the local engine); nothing is
/// built, pulled, pushed or tagged, and the lock is not written. (A container built FROM a
/// changed parent has a new input hash too, so the same lookup finds it missing.)
pub async fn dry_run<E: Engine>(
    job: &Job<'_>,
    pool: &Pool<E>,
    registry: Option<&RegistryClient>,
) -> Result<BTreeMap<Name, Planned>, ApplyError> {
    let cookbook = job.cookbook;
    let engine = pool.first();
    needs_revision(job)?;
    if job.options.push && cookbook.packaging.registry.is_none() {
        return Err(ApplyError::NoRegistry);
    }
    if !job.options.push {
        engine.ping().await?;
    }
    let registry = registry.filter(|_| job.options.push);
    let tags = policy_tags(cookbook, job.options.revision.as_deref());
    let (found, unchecked) = match check::lookup_all(job, engine, registry).await {
        Ok(found) => (found, None),
        Err(e) => (BTreeMap::new(), Some(unreachable(&e).ok_or(e)?)),
    };
    let mut planned = BTreeMap::new();
    for name in job.plan.order() {
        let repo_text = cookbook.repository(name);
        let hash = job.fingerprints[name].input_hash();
        let source = found.get(name).and_then(|f| f.as_ref()).map(|(s, _)| *s);
        let image = format!("{repo_text}:{hash}");
        let action = match (source, &unchecked) {
            (Some(_), _) => Action::Cached,
            (None, None) => Action::Build,
            (None, Some(_)) => Action::Unchecked,
        };
        planned.insert(
            name.clone(),
            Planned {
                action,
                unchecked: unchecked.clone(),
                source,
                input_hash: hash.to_owned(),
                push: (action == Action::Build && registry.is_some()).then(|| image.clone()),
                image,
                tags: tags.iter().map(|t| format!("{repo_text}:{t}")).collect(),
                builder: None,
            },
        );
    }
    if pool.is_named() && pool.all_down().is_none() {
        assign_builders(job, pool, &mut planned);
    }
    Ok(planned)
}

/// Each container an engine would build, given the builder [`pool::predict`] sends it to.
fn assign_builders<E>(job: &Job<'_>, pool: &Pool<E>, planned: &mut BTreeMap<Name, Planned>) {
    let cookbook = job.cookbook;
    let waves: Vec<Vec<(Name, Option<Name>)>> = job
        .plan
        .waves()
        .iter()
        .map(|wave| {
            wave.iter()
                .filter(|name| {
                    planned[*name].action == Action::Build
                        && crate::context::assembly::plan(cookbook, name).is_none()
                })
                .map(|name| {
                    let parent = cookbook.containers[name].build_parent().cloned();
                    (name.clone(), parent)
                })
                .collect()
        })
        .collect();
    let down = vec![false; pool.builders().len()];
    for (name, index) in pool::predict(&down, job.options.jobs, &waves) {
        if let Some(entry) = planned.get_mut(&name) {
            entry.builder = pool.builders()[index].name.clone();
        }
    }
}
