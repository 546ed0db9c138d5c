//! The registry round trips of a run, up front and concurrently: is each content tag cached, and
//! may we push where we will push.
//!
//! Pipeline position: after the engine answers and before the first wave. A no-op apply of 60
//! cached containers used to cost 60 sequential push-access checks (a POST and a DELETE each)
//! and then a manifest lookup per container, two at a time inside the waves: 0.77 s against
//! 16 ms for `cookbook hash`. Now every lookup runs at once, at most [`CONCURRENT_CHECKS`] in
//! flight, and push access is proven once per repository the run will actually write to —
//! repositories of containers to build, and with mutable tags to move every repository —
//! concurrently as well. A run that writes nothing (everything cached, no mutable tag) proves
//! nothing: it pushes nothing. The registry client reuses each token for its scope (and a push
//! token for the pulls of the same repository), so a repository costs one token, not one per
//! request.
//!
//! The lookups are the same as [`super::lookup`]'s, made once: a content tag names immutable
//! content, so what the lookup found stays true for the run (a concurrent apply can only add
//! images, which at worst makes this run build one again).
//!
//! The registry's answers are the floor of a no-op apply: 60 manifest lookups cost this
//! machine's registry:2 about 45 ms whoever asks (curl, 4 to 60 at once), three times what
//! `cookbook hash` takes in all. So when the lock already records a container's image for its
//! current input hash ([`recorded`]: the usual no-op), a plain apply only asks whether its
//! content tag still exists, and asks it of the repository's tag list ([`listed`]): one request
//! per repository whatever the number of its containers, the digest and image id being the
//! lock's. (Every container has a repository of its own today, `<registry>/<container>`, so
//! that is still a request per container, a cheaper one for the registry than a manifest:
//! docs/BENCHMARKS.md, issue 24.) A tag list holds no digests: the listing confirms that the
//! content tag exists, and the digest is the lock's (as the issue asks: "when the lock already
//! records the digests"). So a content tag that another run pushed again with other bytes (a
//! build that is not reproducible), or a lock whose digest was edited by hand to another image
//! of that repository, is not corrected by a no-op apply as a manifest request would; `verify
//! --registry` compares every locked digest with the registry and says so. A tag the list
//! lacks, or a listing that fails, goes to the manifest request of before ([`lookup`]), with its
//! errors. The listings start before the sources are hashed ([`TagLists`]).
//!
//! `--trust-lock` ([`trusted`]) is the opt-in that skips the registry for what the lock already
//! records as published: a container whose lock entry has the input hash it has now, in the
//! repository it publishes to now, and a manifest digest, is taken as cached from the lock
//! (`cached (lock)`), as cargo's `--offline` takes the registry index it has. What it trusts is that nobody deleted or garbage-collected those images in the
//! registry since the lock was written; everything else is looked up as without it, and a
//! moved base is still checked and reported (the pin step does not depend on it).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::dry_run::lookup;
use super::{parse_repo, policy_tags, ApplyError, CacheSource, Job};
use crate::build::blocking;
use crate::engine::Engine;
use crate::model::Name;
use crate::registry::{RegistryClient, Repository};
use crate::state::lock::Lock;

/// A repository's tags as listed, or `None` when its listing failed (the caller then asks the
/// manifest of each of its containers, as without a listing).
pub type Listing = Option<BTreeSet<String>>;

/// The tag lists of the repositories the lock records the plan's containers in, asked for at
/// the start of a run, before the sources are hashed: a tag list needs no input hash (a
/// manifest request by content tag does), so its round trips overlap the hashing, and a no-op
/// apply costs little more than `hash` (docs/BENCHMARKS.md). [`listed`] takes them; a run that
/// ends before is not kept waiting for them (dropping aborts the listing).
#[derive(Debug, Default)]
pub struct TagLists(
    std::sync::Mutex<Option<tokio::task::JoinHandle<BTreeMap<Repository, Listing>>>>,
);

impl TagLists {
    /// Starts listing, on the current runtime, each repository in which the lock records an
    /// image of a container of `job`'s plan, with its digest and image id (what [`listed`] can
    /// use). Nothing without a lock of this project.
    pub fn start(job: &Job<'_>, registry: &std::sync::Arc<RegistryClient>) -> TagLists {
        let Ok(Some(lock)) = Lock::read(&Lock::path_for(job.cookbook_file)) else {
            return TagLists::default();
        };
        if lock.project != job.cookbook.project.name {
            return TagLists::default();
        }
        let repositories: BTreeSet<Repository> = job
            .plan
            .order()
            .filter_map(|name| {
                let entry = lock.containers.get(name.as_str())?;
                let repository = job.cookbook.repository(name);
                let listable = entry.digest.is_some()
                    && entry.image_id.is_some()
                    && entry
                        .image
                        .as_str()
                        .strip_prefix(repository.as_str())?
                        .starts_with(':');
                listable.then(|| parse_repo(&repository).ok()).flatten()
            })
            .collect();
        if repositories.is_empty() {
            return TagLists::default();
        }
        let registry = registry.clone();
        let listing = tokio::spawn(async move {
            stream::iter(repositories)
                .map(|repository| {
                    let registry = &registry;
                    async move {
                        let tags = registry.tags_list_once(&repository).await.ok();
                        (repository, tags.map(|t| t.into_iter().collect()))
                    }
                })
                .buffer_unordered(CONCURRENT_CHECKS)
                .collect()
                .await
        });
        TagLists(std::sync::Mutex::new(Some(listing)))
    }

    /// The listings started, once (later calls, and a listing that panicked, give none).
    async fn take(&self) -> BTreeMap<Repository, Listing> {
        let handle = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        match handle {
            Some(handle) => handle.await.unwrap_or_default(),
            None => BTreeMap::new(),
        }
    }
}

impl Drop for TagLists {
    fn drop(&mut self) {
        if let Some(handle) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            handle.abort();
        }
    }
}

/// Registry (or engine) requests in flight at once: enough to hide a loopback or LAN round trip
/// behind the others, few enough not to look like a flood to a registry's rate limiter.
pub const CONCURRENT_CHECKS: usize = 16;

/// Where a cached image was found and its (manifest digest, image id); `None`: to build.
pub type Found = Option<(CacheSource, (Option<String>, Option<String>))>;

/// Looks every container of the plan up by its content tag, concurrently: with `--trust-lock`,
/// those the lock records as published are taken from it ([`trusted`]); without it, those are
/// found in their repository's tag list ([`listed`]: one request per repository); the rest, and
/// every one the listing could not answer for, by [`lookup`].
pub async fn lookup_all<E: Engine>(
    job: &Job<'_>,
    engine: &E,
    registry: Option<&RegistryClient>,
) -> Result<BTreeMap<Name, Found>, ApplyError> {
    let mut found = BTreeMap::new();
    if let Some(registry) = registry {
        let path = Lock::path_for(job.cookbook_file);
        let lock = blocking(move || Lock::read(&path)).await?;
        let recorded = recorded(job, lock.as_ref());
        found = if job.options.trust_lock {
            trusted(recorded)
        } else {
            listed(registry, recorded, job.tag_lists.take().await).await
        };
    }
    let looked_up: Vec<(Name, Found)> = stream::iter(job.plan.order())
        .filter(|name| std::future::ready(!found.contains_key(*name)))
        .map(|name| async move {
            let found = lookup(job, engine, registry, name).await?;
            Ok::<_, ApplyError>((name.clone(), found))
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .try_collect()
        .await?;
    found.extend(looked_up);
    Ok(found)
}

/// What the lock records of a container as it is now: published by its content tag, with the
/// lock's manifest digest and image id ([`recorded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub repository: Repository,
    /// The content tag: the container's input hash.
    pub tag: String,
    pub digest: String,
    pub image_id: Option<String>,
}

/// Each container of the plan whose lock entry (same project) has its current input hash, its
/// current content-tagged image (so the same repository) and a manifest digest: what
/// `--trust-lock` takes as cached ([`trusted`]), and what a plain apply confirms by tag list
/// ([`listed`]). Nothing else: a container the lock does not record so is looked up.
pub fn recorded(job: &Job<'_>, lock: Option<&Lock>) -> BTreeMap<Name, Recorded> {
    let Some(lock) = lock.filter(|l| l.project == job.cookbook.project.name) else {
        return BTreeMap::new();
    };
    job.plan
        .order()
        .filter_map(|name| {
            let entry = lock.containers.get(name.as_str())?;
            let hash = job.fingerprints.get(name)?.input_hash();
            let repository = job.cookbook.repository(name);
            if entry.input_hash.as_str() != hash
                || entry.image.as_str() != format!("{repository}:{hash}")
            {
                return None;
            }
            let recorded = Recorded {
                repository: parse_repo(&repository).ok()?,
                tag: hash.to_owned(),
                digest: entry.digest.as_ref()?.to_string(),
                image_id: entry.image_id.as_ref().map(ToString::to_string),
            };
            Some((name.clone(), recorded))
        })
        .collect()
}

/// What `--trust-lock` takes from the lock: every [`recorded`] container, as cached where the
/// lock says (`cached (lock)`), with the lock's digest and image id, and no request.
pub fn trusted(recorded: BTreeMap<Name, Recorded>) -> BTreeMap<Name, Found> {
    recorded
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                Some((CacheSource::Lock, (Some(r.digest), r.image_id))),
            )
        })
        .collect()
}

/// The [`recorded`] containers whose content tag their repository's tag list has: cached in the
/// registry with the lock's digest and image id, as [`lookup`] would have found them. One
/// listing per repository, concurrently, each tried once (`tags_list_once`).
///
/// Only a tag listed counts: a container whose tag is not in the list, or whose repository's
/// listing failed for any reason (a registry without the API or without list rights for us,
/// an error, a hostile page refused), or whose lock entry has no image id, is left to
/// [`lookup`] — the manifest request per container of before, so the run's outcome and its
/// errors are what they were (an absent tag is confirmed missing by it, then built).
pub async fn listed(
    registry: &RegistryClient,
    recorded: BTreeMap<Name, Recorded>,
    mut started: BTreeMap<Repository, Listing>,
) -> BTreeMap<Name, Found> {
    let mut by_repository: BTreeMap<Repository, Vec<(Name, Recorded)>> = BTreeMap::new();
    for (name, r) in recorded {
        if r.image_id.is_some() {
            by_repository
                .entry(r.repository.clone())
                .or_default()
                .push((name, r));
        }
    }
    let by_repository: Vec<_> = by_repository
        .into_iter()
        .map(|(repository, members)| {
            let started = started.remove(&repository);
            (repository, members, started)
        })
        .collect();
    stream::iter(by_repository)
        .map(|(repository, members, started)| async move {
            let listing = match started {
                Some(listing) => listing,
                None => registry
                    .tags_list_once(&repository)
                    .await
                    .ok()
                    .map(|tags| tags.into_iter().collect()),
            };
            let Some(tags) = listing else {
                return Vec::new();
            };
            members
                .into_iter()
                .filter(|(_, r)| tags.contains(&r.tag))
                .map(|(name, r)| {
                    let found = (CacheSource::Registry, (Some(r.digest), r.image_id));
                    (name, Some(found))
                })
                .collect()
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .flat_map(stream::iter)
        .collect()
        .await
}

/// The repositories a run writes to, given what is cached: each container to build (its content
/// tag is pushed), and every container's when mutable tags move.
pub fn repositories_written(
    job: &Job<'_>,
    found: &BTreeMap<Name, Found>,
) -> Result<BTreeSet<Repository>, ApplyError> {
    let retag = !policy_tags(job.cookbook, job.options.revision.as_deref()).is_empty();
    job.plan
        .order()
        .filter(|name| retag || !matches!(found.get(*name), Some(Some(_))))
        .map(|name| parse_repo(&job.cookbook.repository(name)))
        .collect()
}

/// Proves push access to each repository once, concurrently; the first refusal is the error.
pub async fn check_push_access(
    client: &RegistryClient,
    repositories: &BTreeSet<Repository>,
) -> Result<(), ApplyError> {
    stream::iter(repositories)
        .map(|repo| async move { client.check_push_access(repo).await })
        .buffer_unordered(CONCURRENT_CHECKS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
