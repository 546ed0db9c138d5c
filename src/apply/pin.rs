//! Pinning base images: the step of `apply` (and all of `cookbook update`) that resolves each
//! external base image to the exact image it names now, and records it in `cookbook.lock`: a
//! generated container's `base_image`, and every external image of a Dockerfile container's
//! `FROM` lines, every stage's ([`dockerfile_bases`]: the Dockerfile read through
//! `context::file`, capped, its lines by `context::from_lines`, the one reader hashing uses too).
//!
//! Pipeline position: cookbook + lock → **pins** → fingerprints (hash_version 2 covers generated
//! bases' pins, 3 also a Dockerfile's) → builds (`FROM ref@digest`, or the pinned engine image
//! id; a Dockerfile container's `FROM`s rewritten so in the build's copy of its Dockerfile). Like `Cargo.lock`: the first
//! apply pins, later applies build on the pin whatever the tag says now, and only `cookbook
//! update` moves a pin on purpose.
//!
//! `scratch` is no image: it is never pinned and never looked up (the model makes it a base of
//! its own, not a reference).
//!
//! How a reference resolves ([`resolve`]):
//! - it carries a digest (`name@sha256:…`): that is the pin (`reference`), no I/O;
//! - the local engine has it and knows no registry digest for it in the reference's own
//!   repository (it was built or loaded here, never pushed there or pulled from there:
//!   `cookbook-test/busybox:latest` in the tests, even after tests pushed it under other names):
//!   its image id (`engine`);
//! - otherwise the registry's manifest digest of its tag (`registry`); when the registry has no
//!   such tag but the engine has the image, the engine's id.
//!
//! A base already pinned is checked, not re-pinned: if the reference now resolves to something
//! else, the run says so (a [`Moved`]), builds on the pin, and names `cookbook update`. That
//! check is best effort: a registry that cannot be reached then is reported and the pin used.
//! Resolving a base that is not pinned yet is not best effort: an engine or registry that cannot
//! be reached is exit 3, a reference nobody has exit 1. (An invalid reference never gets here:
//! the model refuses it, located in the cookbook.) A digest from the engine or the registry
//! that is not sha256 is refused too (exit 1): the lock records only what it can check.
//! One exception: with no engine, a base named only by Dockerfile containers, which are then
//! not built at all (each reported as needing an engine), is left unpinned when it cannot be
//! resolved, so that it does not stop the containers that can be built.
//!
//! [`pin_plan`] records new pins in the lock as soon as they are resolved, before any build, so
//! that a run that fails later (`apply --keep-going` with a failed container) still leaves the
//! pins its published images were built on, and `hash` prints the hashes they are tagged with.
//!
//! Distinct references are resolved concurrently (a handful of requests at once).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::stream::{self, StreamExt};

use super::{Event, Reporter};
use crate::build::blocking;
use crate::context::file::FileError;
use crate::context::{from_lines, ContextError};
use crate::engine::{Engine, EngineError, ImageInfo};
use crate::graph::Plan;
use crate::hash::{BasePin, BasePins, PinSource};
use crate::model::{BaseImage, Container, ContainerKind, Cookbook, Name};
use crate::oci::{Digest, WrittenReference};
use crate::registry::{ImageReference, RegistryClient, RegistryError, Repository};
use crate::state::lock::{self as lockfile, LockError};

/// References resolved at once.
const CONCURRENT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Exit code 1: the engine or the registry named the image by something the lock cannot
    /// record (see `state::lock`: sha256 only).
    #[error(
        "cannot pin base image `{reference}` of {containers}: {origin} names it {}, not a \
         sha256 digest",
        crate::diagnostic::excerpt(found)
    )]
    NotSha256 {
        reference: String,
        containers: String,
        origin: &'static str,
        found: String,
    },
    /// Exit code 3 when unreachable, else the registry's own mapping.
    #[error("cannot resolve base image `{reference}` of {containers}: {source}")]
    Registry {
        reference: String,
        containers: String,
        source: RegistryError,
    },
    /// Exit code 3 when unreachable, else the engine's own mapping.
    #[error("cannot resolve base image `{reference}` of {containers}: {source}")]
    Engine {
        reference: String,
        containers: String,
        source: EngineError,
    },
    /// Exit code 1.
    #[error(
        "cannot resolve base image `{reference}` of {containers}: neither the local engine nor \
         the registry {registry} has it"
    )]
    NotFound {
        reference: String,
        containers: String,
        registry: String,
    },
    /// Exit code 3: the engine that could have it does not answer.
    #[error(
        "cannot resolve base image `{reference}` of {containers}: the registry {registry} does \
         not have it, and no Docker engine answers (an image built or loaded there could be it)"
    )]
    NoEngine {
        reference: String,
        containers: String,
        registry: String,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A Dockerfile whose `FROM` lines cannot be read (exit code 2 for what it says).
    #[error(transparent)]
    Dockerfile(#[from] ContextError),
}

/// A pinned base whose reference now names another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub reference: WrittenReference,
    pub pinned: BasePin,
    pub now: BasePin,
    /// The containers built on it (in the plan).
    pub containers: Vec<Name>,
}

/// What the pin step found.
#[derive(Debug, Clone, Default)]
pub struct PinReport {
    /// Every external base of the plan, pinned (the lock's pins and the new ones).
    pub pins: BasePins,
    /// Pinned by this run (not pinned before, or re-resolved by `update`), with the pin before.
    pub pinned: BTreeMap<WrittenReference, (Option<BasePin>, BasePin)>,
    /// Pinned bases that moved under their tag (not followed).
    pub moved: Vec<Moved>,
    /// Pinned bases whose tag could not be checked, and why.
    pub unchecked: BTreeMap<WrittenReference, String>,
}

/// Each Dockerfile container's external `FROM` images (every stage's, in stage order), read
/// from its Dockerfile by `context::from_lines`.
pub type DockerfileBases = BTreeMap<Name, Vec<WrittenReference>>;

/// The largest Dockerfile read for its `FROM` lines: far above any written by hand, and what a
/// file linked to something endless is cut off at.
const MAX_DOCKERFILE: u64 = 4 << 20;

/// Reads the `FROM` lines of every Dockerfile container of `cookbook` (whose directory is
/// `base_dir`). Blocking. A Dockerfile that is not a small regular file, or whose `FROM` names
/// no image cookbook can pin (a variable with no value), is refused naming it (exit 2): the
/// whole cookbook, as its paths are checked, not only the containers a run builds.
pub fn dockerfile_bases(
    cookbook: &Cookbook,
    base_dir: &Path,
) -> Result<DockerfileBases, ContextError> {
    let mut out = DockerfileBases::new();
    for (name, container) in &cookbook.containers {
        let ContainerKind::Dockerfile(d) = &container.kind else {
            continue;
        };
        let path = d.dockerfile.under(base_dir);
        let named: std::path::PathBuf = d.dockerfile.as_str().into();
        let bytes = match crate::context::file::read_regular(&path, MAX_DOCKERFILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(ContextError::Missing {
                    what: "Dockerfile",
                    path: named,
                })
            }
            Err(FileError::Io(source)) => return Err(ContextError::Io { path, source }),
            Err(why) => {
                return Err(ContextError::DockerfileFile {
                    path: named,
                    why: why.to_string(),
                })
            }
        };
        // As hashing reads it (`hash::fingerprint`): the same text gives the same references.
        let text = String::from_utf8_lossy(&bytes);
        let lines =
            from_lines::parse(&text, &d.build_args).map_err(|source| ContextError::FromLine {
                path: named.clone(),
                source,
            })?;
        out.insert(
            name.clone(),
            lines.external().into_iter().cloned().collect(),
        );
    }
    Ok(out)
}

/// The external base references of a container: a generated one's `base_image`, a Dockerfile
/// one's external `FROM` images.
fn bases_of<'c>(
    container: &'c Container,
    dockerfiles: &'c DockerfileBases,
) -> Vec<&'c WrittenReference> {
    match &container.kind {
        ContainerKind::Generated(g) => match &g.base {
            BaseImage::Image(reference) => vec![reference],
            BaseImage::Scratch | BaseImage::Container(_) => Vec::new(),
        },
        ContainerKind::Dockerfile(_) => dockerfiles
            .get(&container.name)
            .map(|refs| refs.iter().collect())
            .unwrap_or_default(),
    }
}

/// The external base references of `plan`'s containers, with the containers naming each
/// (`scratch`, `container:` bases, earlier stages and `cookbook.local/` images are not
/// external).
pub fn external_bases<'c>(
    cookbook: &'c Cookbook,
    plan: &Plan,
    dockerfiles: &'c DockerfileBases,
) -> BTreeMap<&'c WrittenReference, Vec<Name>> {
    let mut bases: BTreeMap<&WrittenReference, Vec<Name>> = BTreeMap::new();
    for name in plan.order() {
        for reference in bases_of(&cookbook.containers[name], dockerfiles) {
            bases.entry(reference).or_default().push(name.clone());
        }
    }
    bases
}

/// The external base references `containers` name (for `cookbook update CONTAINER…`).
pub fn bases_named<'c>(
    cookbook: &'c Cookbook,
    containers: &[&Name],
    dockerfiles: &'c DockerfileBases,
) -> BTreeSet<&'c WrittenReference> {
    containers
        .iter()
        .filter_map(|n| cookbook.containers.get(*n))
        .flat_map(|c| bases_of(c, dockerfiles))
        .collect()
}

/// Every external base reference of the whole cookbook (the lock keeps only these pins).
pub fn bases_in_cookbook(
    cookbook: &Cookbook,
    dockerfiles: &DockerfileBases,
) -> Vec<WrittenReference> {
    let set: BTreeSet<&WrittenReference> = cookbook
        .containers
        .values()
        .flat_map(|c| bases_of(c, dockerfiles))
        .collect();
    set.into_iter().cloned().collect()
}

/// The containers of `plan` that a change of the bases `moved` rebuilds: those built on them
/// (a Dockerfile container on any of its stages) and, transitively, their `container:`
/// children. In plan order.
pub fn rebuilt_by(
    cookbook: &Cookbook,
    plan: &Plan,
    dockerfiles: &DockerfileBases,
    moved: &BTreeSet<&str>,
) -> Vec<Name> {
    let mut out: Vec<Name> = Vec::new();
    for name in plan.order() {
        let container = &cookbook.containers[name];
        let on_moved = bases_of(container, dockerfiles)
            .iter()
            .any(|r| moved.contains(r.as_str()));
        let on_rebuilt = container.build_parent().is_some_and(|p| out.contains(p));
        if on_moved || on_rebuilt {
            out.push(name.clone());
        }
    }
    out
}

fn names(containers: &[Name]) -> String {
    containers
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves one reference to the image it names now (see the module header).
pub async fn resolve<E: Engine>(
    engine: Option<&E>,
    registry: &RegistryClient,
    reference: &WrittenReference,
    containers: &[Name],
) -> Result<BasePin, PinError> {
    let base = Base {
        reference,
        containers: names(containers),
    };
    let parsed = reference.reference();
    if let Some(digest) = parsed.digest() {
        return Ok(BasePin {
            digest: digest.clone(),
            source: PinSource::Reference,
        });
    }
    let local = match engine {
        Some(engine) => engine
            .inspect_image(reference.as_str())
            .await
            .map_err(|source| PinError::Engine {
                reference: reference.to_string(),
                containers: base.containers.clone(),
                source,
            })?,
        None => None,
    };
    if let Some(info) = &local {
        // Never pushed to nor pulled from its own repository: the engine is the only place this
        // reference names it. (Pushed elsewhere — another repository, a mirror — it has repo
        // digests, but none of them says what the reference's registry has under this tag.)
        if !came_from(info, parsed.repository()) {
            return base
                .pin(info.id.as_str(), PinSource::Engine)
                .map_err(|e| *e);
        }
    }
    let found = registry
        .manifest_head(parsed.repository(), parsed.manifest_reference())
        .await
        .map_err(|source| PinError::Registry {
            reference: reference.to_string(),
            containers: base.containers.clone(),
            source,
        })?;
    let registry_host = || parsed.repository().registry().to_owned();
    match (found, local) {
        (Some(digest), _) => base
            .pin(digest.as_str(), PinSource::Registry)
            .map_err(|e| *e),
        (None, Some(info)) => base
            .pin(info.id.as_str(), PinSource::Engine)
            .map_err(|e| *e),
        (None, None) if engine.is_none() => Err(PinError::NoEngine {
            reference: reference.to_string(),
            containers: base.containers,
            registry: registry_host(),
        }),
        (None, None) => Err(PinError::NotFound {
            reference: reference.to_string(),
            containers: base.containers,
            registry: registry_host(),
        }),
    }
}

/// The base being resolved, as its errors name it: the reference and the containers on it.
struct Base<'r> {
    reference: &'r WrittenReference,
    containers: String,
}

impl Base<'_> {
    /// `found` (an engine's image id, a registry's manifest digest) as the pin, if it is a
    /// sha256 digest: what the lock records must be what it reads back (see `state::lock`);
    /// else the error naming it.
    fn pin(&self, found: &str, source: PinSource) -> Result<BasePin, Box<PinError>> {
        Digest::parse(found)
            .ok()
            .filter(|d| d.as_str().starts_with("sha256:"))
            .map(|digest| BasePin { digest, source })
            .ok_or_else(|| Box::new(self.not_sha256(found, source)))
    }

    fn not_sha256(&self, found: &str, source: PinSource) -> PinError {
        PinError::NotSha256 {
            reference: self.reference.to_string(),
            containers: self.containers.clone(),
            origin: match source {
                PinSource::Registry => "its registry",
                _ => "the local engine",
            },
            found: found.to_owned(),
        }
    }
}

/// Whether the engine recorded a push or pull of the image `info` to or from `repository` (one
/// of its repo digests, `repo@sha256:…`, names that repository; Docker Hub's are spelt short).
fn came_from(info: &ImageInfo, repository: &Repository) -> bool {
    info.repo_digests
        .iter()
        .any(|entry| ImageReference::parse(entry).is_ok_and(|r| r.repository() == repository))
}

/// The pin step of a run: pins every external base of `plan` the lock does not pin yet (and
/// those in `renew`, for `cookbook update`), checks the pinned ones for a move, reports both to
/// `reporter`, and — when `write` — records the new pins in the lock at `lock_path` at once,
/// before the caller builds anything. A lock that is not valid is refused (exit 2), whatever the
/// plan pins: every command that reads the lock refuses it alike.
#[allow(clippy::too_many_arguments)]
pub async fn pin_plan<E: Engine>(
    engine: Option<&E>,
    registry: Option<&RegistryClient>,
    cookbook: &Cookbook,
    plan: &Plan,
    lock_path: &Path,
    renew: &BTreeSet<String>,
    write: bool,
    reporter: &dyn Reporter,
) -> Result<PinReport, PinError> {
    let dockerfiles = {
        let (cookbook, dir) = (cookbook.clone(), lock_dir(lock_path));
        blocking(move || dockerfile_bases(&cookbook, &dir)).await?
    };
    let bases = external_bases(cookbook, plan, &dockerfiles);
    let locked = {
        let path = lock_path.to_path_buf();
        let project = cookbook.project.name.clone();
        blocking(move || lockfile::Lock::read_for(&path, &project))
            .await?
            .map(|l| l.bases)
            .unwrap_or_default()
    };
    let own_client;
    let registry = match registry {
        Some(r) => r,
        None if bases.is_empty() => return Ok(PinReport::default()),
        None => {
            own_client = RegistryClient::new().map_err(|source| PinError::Registry {
                reference: bases
                    .keys()
                    .next()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                containers: String::new(),
                source,
            })?;
            &own_client
        }
    };
    let results = resolve_all(engine, registry, &bases, &locked, renew).await;
    // With no engine, bases named by Dockerfile containers only: those are not built at all
    // (each is reported as needing an engine), so a base that cannot be resolved now (only an
    // engine has it, its registry does not answer) stops nothing else.
    let engine_built: BTreeSet<&WrittenReference> = bases
        .iter()
        .filter(|_| engine.is_none())
        .filter(|(_, names)| {
            names
                .iter()
                .all(|n| matches!(cookbook.containers[n].kind, ContainerKind::Dockerfile(_)))
        })
        .map(|(r, _)| *r)
        .collect();
    let mut report = sort_out(results, &locked, &bases, &engine_built).map_err(|e| *e)?;
    report.moved.sort_by(|a, b| a.reference.cmp(&b.reference));
    announce(&report, reporter);
    if write && !report.pinned.is_empty() {
        let new: BasePins = report
            .pinned
            .iter()
            .map(|(r, (_, p))| (r.clone(), p.clone()))
            .collect();
        let (path, project) = (lock_path.to_path_buf(), cookbook.project.name.clone());
        blocking(move || lockfile::record_pins(&path, &project, &new)).await?;
    }
    Ok(report)
}

/// The cookbook's directory, which the lock sits in (`Lock::path_for`).
fn lock_dir(lock_path: &Path) -> std::path::PathBuf {
    crate::load::base_dir(lock_path).to_path_buf()
}

/// A base of the plan: its pin in the lock (unless renewed), and what it resolves to now (`None`:
/// it cannot be asked, an engine's image without an engine).
type Resolved<'r> = (
    &'r WrittenReference,
    Option<BasePin>,
    Option<Result<BasePin, PinError>>,
);

/// Resolves every external base at once (a handful of requests in flight).
async fn resolve_all<'r, E: Engine>(
    engine: Option<&E>,
    registry: &RegistryClient,
    bases: &'r BTreeMap<&'r WrittenReference, Vec<Name>>,
    locked: &BasePins,
    renew: &BTreeSet<String>,
) -> Vec<Resolved<'r>> {
    stream::iter(bases.iter())
        .map(|(reference, containers)| {
            let pinned = locked
                .get(*reference)
                .filter(|_| !renew.contains(reference.as_str()))
                .cloned();
            async move {
                // An engine's image, and no engine to ask: its registry knows nothing of it.
                let unanswerable = engine.is_none()
                    && pinned
                        .as_ref()
                        .is_some_and(|p| p.source == PinSource::Engine);
                let now = match unanswerable {
                    true => None,
                    false => Some(resolve(engine, registry, reference, containers).await),
                };
                (*reference, pinned, now)
            }
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await
}

/// What the resolutions come to: pins kept (a move or a failed check is a note), new pins, and
/// the first base that could not be pinned at all (boxed: it is large, and rare).
fn sort_out(
    results: Vec<Resolved<'_>>,
    locked: &BasePins,
    bases: &BTreeMap<&WrittenReference, Vec<Name>>,
    engine_built: &BTreeSet<&WrittenReference>,
) -> Result<PinReport, Box<PinError>> {
    let mut report = PinReport::default();
    for (reference, pinned, now) in results {
        let Some(now) = now else {
            report.unchecked.insert(
                reference.clone(),
                "an image of the local engine, which does not answer".to_owned(),
            );
            if let Some(pin) = pinned {
                report.pins.insert(reference.clone(), pin);
            }
            continue;
        };
        match (pinned, now) {
            (Some(pin), Ok(now)) => {
                if now != pin {
                    report.moved.push(Moved {
                        reference: reference.clone(),
                        pinned: pin.clone(),
                        now,
                        containers: bases[reference].clone(),
                    });
                }
                report.pins.insert(reference.clone(), pin);
            }
            // A pinned base is built on whatever its tag says now: a failed check is a note.
            (Some(pin), Err(e)) => {
                report.unchecked.insert(reference.clone(), e.to_string());
                report.pins.insert(reference.clone(), pin);
            }
            (None, Ok(now)) => {
                report.pins.insert(reference.clone(), now.clone());
                report
                    .pinned
                    .insert(reference.clone(), (locked.get(reference).cloned(), now));
            }
            // Left unpinned: only Dockerfile containers name it, and without an engine they are
            // not built (the run names each as needing one); the next run with one pins it.
            (None, Err(_)) if engine_built.contains(reference) => {}
            (None, Err(e)) => return Err(Box::new(e)),
        }
    }
    Ok(report)
}

/// Tells `reporter` what the pin step found: new pins, moves, unchecked bases.
fn announce(report: &PinReport, reporter: &dyn Reporter) {
    for (reference, (before, pin)) in &report.pinned {
        reporter.event(Event::BasePinned {
            reference: reference.as_str(),
            before: before.as_ref(),
            pin,
        });
    }
    for m in &report.moved {
        reporter.event(Event::BaseMoved { moved: m });
    }
    for (reference, why) in &report.unchecked {
        reporter.event(Event::BaseUnchecked {
            reference: reference.as_str(),
            why,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_by_follows_container_children_only() {
        let parsed = crate::load::parse(
            br#"{"manifest_version": "1.0", "project": {"name": "p"},
                "applications": {"a": {}},
                "containers": {
                    "one": {"base_image": "b:1", "applications": ["a"]},
                    "child": {"base_image": "container:one", "applications": ["a"]},
                    "grandchild": {"base_image": "container:child", "applications": ["a"]},
                    "other": {"base_image": "b:2", "applications": ["a"], "depends_on": ["one"]}
                }}"#,
        )
        .unwrap();
        let (cookbook, plan) = (parsed.cookbook, parsed.plan);
        let moved = BTreeSet::from(["b:1"]);
        let none = DockerfileBases::new();
        let got: Vec<String> = rebuilt_by(&cookbook, &plan, &none, &moved)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["one", "child", "grandchild"]);
        let bases = external_bases(&cookbook, &plan, &none);
        fn texts(refs: Vec<&WrittenReference>) -> Vec<&str> {
            refs.into_iter().map(WrittenReference::as_str).collect()
        }
        assert_eq!(texts(bases.keys().copied().collect()), ["b:1", "b:2"]);
        assert_eq!(
            texts(bases_in_cookbook(&cookbook, &none).iter().collect()),
            ["b:1", "b:2"]
        );
    }

    #[test]
    fn dockerfile_stages_are_bases_and_their_children_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "d/Dockerfile",
            "ARG TAG=1\nFROM b:${TAG} AS one\nFROM one\nFROM c:2\nFROM scratch\n",
        );
        write("e/Dockerfile", "FROM cookbook.local/p/one:abc\n");
        let parsed = crate::load::parse(
            br#"{"manifest_version": "1.0", "project": {"name": "p"},
                "applications": {"a": {}},
                "containers": {
                    "gen": {"base_image": "c:2", "applications": ["a"]},
                    "docker": {"dockerfile": "d/Dockerfile", "context": "d",
                               "build_args": {"TAG": "3"}},
                    "local": {"dockerfile": "e/Dockerfile", "context": "e"}
                }}"#,
        )
        .unwrap();
        let (cookbook, plan) = (parsed.cookbook, parsed.plan);
        let dockerfiles = dockerfile_bases(&cookbook, dir.path()).unwrap();
        let texts = |refs: Vec<&WrittenReference>| -> Vec<String> {
            refs.into_iter().map(|r| r.as_str().to_owned()).collect()
        };
        // Every external stage (the build arg over the default), each once; no stage, scratch
        // or cookbook.local image.
        assert_eq!(
            texts(
                dockerfiles[&Name::parse("docker").unwrap()]
                    .iter()
                    .collect()
            ),
            ["b:3", "c:2"]
        );
        assert!(dockerfiles[&Name::parse("local").unwrap()].is_empty());
        let bases = external_bases(&cookbook, &plan, &dockerfiles);
        assert_eq!(texts(bases.keys().copied().collect()), ["b:3", "c:2"]);
        assert_eq!(bases[&WrittenReference::parse("c:2").unwrap()].len(), 2);
        assert_eq!(
            texts(bases_in_cookbook(&cookbook, &dockerfiles).iter().collect()),
            ["b:3", "c:2"]
        );
        let rebuilt = |moved: &str| -> Vec<String> {
            rebuilt_by(&cookbook, &plan, &dockerfiles, &BTreeSet::from([moved]))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(rebuilt("b:3"), ["docker"]);
        assert_eq!(rebuilt("c:2"), ["docker", "gen"]);
        let docker = Name::parse("docker").unwrap();
        assert_eq!(
            texts(
                bases_named(&cookbook, &[&docker], &dockerfiles)
                    .into_iter()
                    .collect()
            ),
            ["b:3", "c:2"]
        );
        // A FROM with a variable of no value: refused, naming the file and the line (exit 2).
        write("d/Dockerfile", "# base\nARG BASE\nFROM $BASE\n");
        let e = dockerfile_bases(&cookbook, dir.path()).unwrap_err();
        assert!(matches!(e, ContextError::FromLine { .. }), "{e}");
        assert!(e.to_string().starts_with("d/Dockerfile:3: "), "{e}");
    }
}
