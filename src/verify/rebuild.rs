//! `verify --rebuild`: build each container again from the sources, normalize it as `apply`
//! does, and compare it with what the lock (and the registry) hold — layer by layer, so that a
//! mismatch names the first differing layer and, inside it, the first differing paths.
//!
//! Pipeline position: after [`super::compare`] (only a container whose input hash matches the
//! lock is rebuilt: other sources cannot give the locked image), built as `apply` builds it,
//! through [`crate::build`] (the same request, labels, assembly and normalization; this module
//! imports nothing of `apply`): the engine builds without its build cache (else the first build
//! would only be shown again). The rebuilt image gets no name and is removed from the engine
//! afterwards; nothing is pushed and the lock is not written.
//!
//! The locked image to compare with: a published entry's manifest (by its locked digest) and
//! blobs from the registry, streamed into an OCI layout; an entry applied with `--no-push` is
//! exported from the local engine by its locked image id. A `container:` child is rebuilt FROM
//! its parent's locked image (pulled by content tag when the engine lacks it), so a parent that
//! does not reproduce is reported at the parent, and the child's own steps are checked on their own.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::build::{self, assemble, BuildError, Normalized};
use crate::context::dockerfile::local_image;
use crate::engine::{Engine, EngineError};
use crate::graph::Plan;
use crate::hash::Fingerprint;
use crate::image::{self, EntryAspect, ImageDifference, NormalizedImage};
use crate::model::{Cookbook, Name};
use crate::registry::{Digest, RegistryClient, RegistryError};
use crate::state::lock::{Lock, LockedImage};

use super::{Reason, Report};

/// How many differing paths of a layer a mismatch lists.
pub const MAX_PATHS: usize = 10;

/// A failure to rebuild at all (an unreachable engine or registry): not a mismatch.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot write {}: {source}", path.display())]
    Scratch {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What differs between the locked image and the rebuild (see [`crate::image::diff`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RebuildDifference {
    /// Layer `index` (0-based, base layers included) is the first that differs.
    Layer {
        index: usize,
        layers: usize,
        /// The build step that made the layer (the config history's `created_by`), if known.
        step: Option<String>,
        locked_diff_id: String,
        rebuilt_diff_id: String,
        /// The first differing paths, each with what differs about it.
        paths: Vec<PathChange>,
    },
    /// The images have different numbers of layers; the first `common` are identical.
    LayerCount {
        locked: usize,
        rebuilt: usize,
        common: usize,
    },
    /// Same layers, different configuration: the JSON pointers of what differs
    /// (`/config/Env`, `/config/Labels/x`…).
    Config { fields: Vec<String> },
    /// Same layers and configuration, different manifests (compression, media types).
    Manifest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    pub path: String,
    /// `content`, `mode 100644 → 100755`, `owner 0:0 → 1000:1000`, `link target a → b`,
    /// `type 0 → 5`, `capability`, `only in the locked image`, `only in the rebuild`.
    pub what: Vec<String>,
}

impl std::fmt::Display for RebuildDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildDifference::Layer {
                index,
                layers,
                step,
                paths,
                ..
            } => {
                write!(f, "at layer {} of {layers}", index + 1)?;
                if let Some(step) = step {
                    write!(f, " ({step})")?;
                }
                let shown: Vec<String> = paths
                    .iter()
                    .map(|p| format!("{} ({})", p.path, p.what.join(", ")))
                    .collect();
                if !shown.is_empty() {
                    write!(f, ": {}", shown.join("; "))?;
                }
                Ok(())
            }
            RebuildDifference::LayerCount {
                locked, rebuilt, ..
            } => write!(
                f,
                "in its number of layers: {locked} locked, {rebuilt} rebuilt"
            ),
            RebuildDifference::Config { fields } => {
                write!(f, "in the image configuration (the layers are the same)")?;
                if !fields.is_empty() {
                    write!(f, ": {}", fields.join(", "))?;
                }
                Ok(())
            }
            RebuildDifference::Manifest => write!(
                f,
                "in the manifest (the layers and configuration are the same)"
            ),
        }
    }
}

fn describe(
    difference: ImageDifference,
    layers: usize,
    config: &[u8],
    locked_config: &[u8],
) -> RebuildDifference {
    match difference {
        ImageDifference::Layer {
            index,
            left_diff_id,
            right_diff_id,
            paths,
        } => RebuildDifference::Layer {
            index,
            layers,
            step: layer_step(config, index),
            locked_diff_id: left_diff_id,
            rebuilt_diff_id: right_diff_id,
            paths: paths
                .into_iter()
                .map(|p| PathChange {
                    path: p.path,
                    what: p.aspects.iter().map(aspect).collect(),
                })
                .collect(),
        },
        ImageDifference::LayerCount {
            left,
            right,
            common,
        } => RebuildDifference::LayerCount {
            locked: left,
            rebuilt: right,
            common,
        },
        ImageDifference::Config => RebuildDifference::Config {
            fields: config_fields(locked_config, config),
        },
        ImageDifference::Manifest => RebuildDifference::Manifest,
    }
}

/// The JSON pointers at which two configs differ (objects compared key by key, anything else
/// as a whole), at most [`MAX_PATHS`].
fn config_fields(left: &[u8], right: &[u8]) -> Vec<String> {
    fn walk(pointer: String, l: Option<&Value>, r: Option<&Value>, out: &mut Vec<String>) {
        match (l, r) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    walk(format!("{pointer}/{escaped}"), a.get(key), b.get(key), out);
                }
            }
            (a, b) if a != b => out.push(pointer),
            _ => {}
        }
    }
    let (Ok(l), Ok(r)) = (
        serde_json::from_slice::<Value>(left),
        serde_json::from_slice::<Value>(right),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(String::new(), Some(&l), Some(&r), &mut out);
    out.truncate(MAX_PATHS);
    out
}

/// The build step that made layer `index`, from the config's history (entries marked
/// `empty_layer` made none), shortened: `RUN date > /built-at`.
fn layer_step(config: &[u8], index: usize) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(config).ok()?;
    let step = config
        .get("history")?
        .as_array()?
        .iter()
        .filter(|h| {
            !h.get("empty_layer")
                .and_then(|e| e.as_bool())
                .unwrap_or(false)
        })
        .nth(index)?
        .get("created_by")?
        .as_str()?
        .trim();
    // The classic builder writes `/bin/sh -c <command>` for RUN, `/bin/sh -c #(nop) COPY …` for
    // the others.
    let step = match step.strip_prefix("/bin/sh -c ") {
        Some(rest) => match rest.strip_prefix("#(nop) ") {
            Some(instruction) => instruction.trim().to_owned(),
            None => format!("RUN {rest}"),
        },
        None => step.to_owned(),
    };
    Some(match step.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &step[..cut]),
        None => step,
    })
}

fn aspect(a: &EntryAspect) -> String {
    match a {
        EntryAspect::OnlyInLeft => "only in the locked image".into(),
        EntryAspect::OnlyInRight => "only in the rebuild".into(),
        EntryAspect::Kind { left, right } => format!("type {left} → {right}"),
        EntryAspect::Content => "content".into(),
        EntryAspect::Mode { left, right } => format!("mode {left:o} → {right:o}"),
        EntryAspect::Owner { left, right } => {
            format!("owner {}:{} → {}:{}", left.0, left.1, right.0, right.1)
        }
        EntryAspect::LinkTarget { left, right } => format!("link target {left} → {right}"),
        EntryAspect::Capability => "capability".into(),
    }
}

/// What `--rebuild` compares: the cookbook, its plan and fingerprints, and the lock.
pub struct Subject<'a> {
    pub cookbook: &'a Cookbook,
    pub plan: &'a Plan,
    pub fingerprints: &'a BTreeMap<Name, Fingerprint>,
    pub lock: &'a Lock,
    /// The commit checked out (the revision label of an image the lock's labels do not name).
    pub revision: Option<&'a str>,
}

/// Rebuilds `selected` (plan order; each must be in the plan) and adds what it finds to
/// `report`: the rebuilt digest, and a [`Reason::RebuildDiffers`] or [`Reason::RebuildFailed`].
pub async fn rebuild<E: Engine>(
    report: &mut Report,
    subject: &Subject<'_>,
    selected: &[Name],
    engine: &E,
    registry: &RegistryClient,
) -> Result<(), RebuildError> {
    report.rebuild_checked = true;
    let cookbook = subject.cookbook;
    // Containers assembled without an engine are rebuilt without one too (build/assemble.rs).
    if selected
        .iter()
        .any(|name| crate::context::assembly::plan(cookbook, name).is_none())
    {
        engine.ping().await?;
    }
    for name in subject.plan.order() {
        if !selected.contains(name) {
            continue;
        }
        let Some(verdict) = report.containers.get_mut(name.as_str()) else {
            continue;
        };
        let (Some(entry), Some(fp)) = (
            subject.lock.containers.get(name.as_str()),
            subject.fingerprints.get(name),
        ) else {
            continue;
        };
        if !verdict.ok() {
            // Other sources than the locked ones: a rebuild cannot give the locked image, and
            // the reasons already say why.
            continue;
        }
        let one = Container { name, fp, entry };
        match rebuild_one(subject, &one, engine, registry).await {
            Ok(Rebuilt::Same(digest)) => verdict.rebuilt_digest = Some(digest),
            Ok(Rebuilt::Differs { digest, difference }) => {
                verdict.rebuilt_digest = Some(digest.clone());
                verdict.push(Reason::RebuildDiffers {
                    locked: entry
                        .digest
                        .as_ref()
                        .or(entry.image_id.as_ref())
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    rebuilt: digest,
                    difference,
                });
            }
            Err(Stop::Failed(message)) => verdict.push(Reason::RebuildFailed { message }),
            Err(Stop::Fatal(e)) => return Err(e),
        }
    }
    Ok(())
}

/// What one container's rebuild came to, when it could be compared.
enum Rebuilt {
    Same(String),
    Differs {
        digest: String,
        difference: RebuildDifference,
    },
}

/// Why one container's rebuild stopped: a reason it failed (reported at the container, the
/// others go on), or a failure of the whole check (an unreachable engine or registry).
enum Stop {
    Failed(String),
    Fatal(RebuildError),
}

impl From<RebuildError> for Stop {
    fn from(e: RebuildError) -> Stop {
        Stop::Fatal(e)
    }
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Stop {
        Stop::Fatal(e.into())
    }
}

impl From<RegistryError> for Stop {
    fn from(e: RegistryError) -> Stop {
        Stop::Fatal(e.into())
    }
}

impl Stop {
    /// A build or normalization error: an unreachable engine or registry stops the check;
    /// anything else fails the container.
    fn build(e: BuildError) -> Stop {
        match e {
            BuildError::Engine(e) if e.is_unreachable() => Stop::Fatal(e.into()),
            BuildError::Registry(
                e @ (RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. }),
            ) => Stop::Fatal(e.into()),
            other => Stop::Failed(other.to_string()),
        }
    }
}

/// The container being rebuilt: its name, fingerprint and lock entry.
struct Container<'a> {
    name: &'a Name,
    fp: &'a Fingerprint,
    entry: &'a LockedImage,
}

async fn rebuild_one<E: Engine>(
    subject: &Subject<'_>,
    one: &Container<'_>,
    engine: &E,
    registry: &RegistryClient,
) -> Result<Rebuilt, Stop> {
    let rebuilt = build_again(subject, one, engine, registry).await?;
    let entry = one.entry;
    let digest = rebuilt.image.manifest_digest().to_string();
    let same = match (&entry.digest, &entry.image_id) {
        (Some(locked), _) if published(entry) => locked.as_str() == digest,
        (_, Some(id)) => id.as_str() == rebuilt.image.config_digest().to_string(),
        _ => false,
    };
    if same {
        return Ok(Rebuilt::Same(digest));
    }
    let scratch = tempfile::Builder::new()
        .prefix("cookbook-verify-")
        .tempdir()
        .map_err(|source| RebuildError::Scratch {
            path: std::env::temp_dir(),
            source,
        })?;
    let (locked, _keep) = locked_image(entry, engine, registry, scratch.path()).await?;
    let layers = locked.layers().len();
    let difference = {
        let rebuilt_image = rebuilt.image.clone();
        let locked = locked.clone();
        build::blocking(move || image::diff(&locked, &rebuilt_image, MAX_PATHS)).await
    };
    match difference {
        Ok(Some(d)) => Ok(Rebuilt::Differs {
            digest,
            difference: describe(d, layers, rebuilt.image.config(), locked.config()),
        }),
        Ok(None) => Ok(Rebuilt::Same(digest)),
        Err(e) => Err(Stop::Failed(format!("cannot compare the images: {e}"))),
    }
}

/// The container built again as `apply` built it (assembled, or by the engine FROM its parent's
/// locked image), with the locked image's revision label, normalized.
async fn build_again<E: Engine>(
    subject: &Subject<'_>,
    one: &Container<'_>,
    engine: &E,
    registry: &RegistryClient,
) -> Result<Normalized, Stop> {
    let (cookbook, name, fp, entry) = (subject.cookbook, one.name, one.fp, one.entry);
    let assembly = crate::context::assembly::plan(cookbook, name);
    // An engine build names its parent in the engine; an assembly of a published entry reads
    // it from the registry.
    if let Some(parent) = cookbook.containers[name].build_parent() {
        if assembly.is_none() || !published(entry) {
            ensure_parent(cookbook, subject.lock, parent, engine, registry).await?;
        }
    }
    // The revision label says which commit the image was first built at: `apply` reuses an
    // image for every later commit with the same input hash, so the rebuild takes the locked
    // image's label, not the commit checked out now (which is not part of what was built).
    let revision = match locked_labels(entry, engine, registry).await? {
        Some(labels) => labels.get(build::LABEL_REVISION).cloned(),
        None => subject.revision.map(str::to_owned),
    };
    let labels = build::image_labels(cookbook, name, fp.input_hash(), revision.as_deref());
    match assembly {
        Some(assembly) => {
            // As apply assembled it: the base from the registry when the entry was published.
            let source = assemble::base_source(cookbook, fp, published(entry))
                .map_err(|e| Stop::Failed(e.to_string()))?;
            let assembled = assemble::assemble(
                engine,
                Some(registry),
                &source,
                std::sync::Arc::new(fp.clone()),
                assembly,
                labels,
                &Default::default(),
            )
            .await
            .map_err(Stop::build)?;
            Ok(assembled.normalized)
        }
        None => engine_rebuild(cookbook, fp, labels, engine).await,
    }
}

/// Builds the container again in the engine (no build cache) and normalizes what it built;
/// the build leaves no image behind.
async fn engine_rebuild<E: Engine>(
    cookbook: &Cookbook,
    fp: &Fingerprint,
    labels: BTreeMap<String, String>,
    engine: &E,
) -> Result<Normalized, Stop> {
    let context = {
        let fp = fp.clone();
        build::blocking(move || build::write_context(&fp))
            .await
            .map_err(|e| Stop::Failed(format!("cannot write the build context: {e}")))?
    };
    let request = build::request(cookbook, fp, context.path(), labels, Vec::new(), true);
    let built = match engine.build(&request, &|_| {}).await {
        Ok(outcome) => outcome.image_id,
        Err(e) if e.is_unreachable() => return Err(e.into()),
        Err(e) => return Err(Stop::Failed(e.to_string())),
    };
    drop(context);
    let result = build::normalize_built(engine, cookbook, fp, built.as_str()).await;
    // The rebuild was for comparing only: it leaves no image behind.
    let _ = engine.remove_image(built.as_str()).await;
    result.map_err(|e| match e {
        BuildError::Engine(e) if e.is_unreachable() => Stop::Fatal(e.into()),
        other => Stop::Failed(other.to_string()),
    })
}

/// The labels of the locked image (registry by digest, or the local engine by id), if it is there.
async fn locked_labels<E: Engine>(
    entry: &LockedImage,
    engine: &E,
    registry: &RegistryClient,
) -> Result<Option<BTreeMap<String, String>>, RebuildError> {
    if let (Some(digest), true) = (&entry.digest, published(entry)) {
        return Ok(registry
            .image_labels(entry.image.reference().repository(), digest.as_str())
            .await?);
    }
    match &entry.image_id {
        Some(id) => Ok(engine
            .inspect_image(id.as_str())
            .await?
            .map(|info| info.labels)),
        None => Ok(None),
    }
}

/// Whether the lock entry was pushed to a registry (not a `--no-push` local image).
fn published(entry: &LockedImage) -> bool {
    entry.published_digest().is_some()
}

/// The parent's locked image under its local name, pulled by content tag when only the registry
/// has it.
async fn ensure_parent<E: Engine>(
    cookbook: &Cookbook,
    lock: &Lock,
    parent: &Name,
    engine: &E,
    registry: &RegistryClient,
) -> Result<(), Stop> {
    let Some(entry) = lock.containers.get(parent.as_str()) else {
        return Err(Stop::Failed(format!("parent {parent} is not in the lock")));
    };
    if !cookbook.owns(parent, entry.image.reference()) {
        return Err(Stop::Failed(format!(
            "parent {parent}'s locked image {} is outside its repository {}: not pulled",
            entry.image,
            cookbook.repository(parent)
        )));
    }
    let local = local_image(&cookbook.project.name, parent, entry.input_hash.as_str());
    if engine.image_exists(&local).await?.is_some() {
        return Ok(());
    }
    if !published(entry) {
        return Err(Stop::Failed(format!(
            "parent image {local} is not in the local engine"
        )));
    }
    let reference = entry.image.reference();
    let credentials = registry.credential_for(reference.repository()).await?;
    let tag = reference.manifest_reference().to_owned();
    match build::pull_as(
        engine,
        reference.repository(),
        &tag,
        credentials.as_ref(),
        &local,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_unreachable() => Err(e.into()),
        Err(other) => Err(Stop::Failed(other.to_string())),
    }
}

/// The locked image as a normalized image layout in `dir`: from the registry by its locked
/// digest, or exported from the engine by its locked id. The second value keeps an exported
/// image's scratch directory alive.
async fn locked_image<E: Engine>(
    entry: &LockedImage,
    engine: &E,
    registry: &RegistryClient,
    dir: &Path,
) -> Result<(NormalizedImage, Option<Normalized>), Stop> {
    if let (Some(digest), true) = (&entry.digest, published(entry)) {
        let image =
            download_locked(registry, entry.image.reference().repository(), digest, dir).await?;
        return Ok((image, None));
    }
    let Some(id) = entry.image_id.as_ref().map(Digest::as_str) else {
        return Err(Stop::Failed(
            "the lock records neither a digest nor an image id".into(),
        ));
    };
    let Some(info) = engine.inspect_image(id).await? else {
        return Err(Stop::Failed(format!(
            "the locked image {id} is not in the local engine"
        )));
    };
    // Already normalized when it was applied: every layer is carried as it is.
    match build::normalize_image(engine, id, info.layers).await {
        Ok(n) => Ok((n.image.clone(), Some(n))),
        Err(BuildError::Engine(e)) => Err(e.into()),
        Err(e) => Err(Stop::Failed(e.to_string())),
    }
}

/// The published image `digest` of `repo`, its manifest and blobs written into an image layout
/// in `dir`.
async fn download_locked(
    registry: &RegistryClient,
    repo: &crate::registry::Repository,
    digest: &Digest,
    dir: &Path,
) -> Result<NormalizedImage, Stop> {
    let Some(manifest) = registry.manifest_get(repo, digest.as_str()).await? else {
        return Err(Stop::Failed(format!(
            "the registry has no {digest} in {repo}"
        )));
    };
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| local_error(&blobs, e))?;
    let write = |digest: &Digest, bytes: &[u8]| {
        let path = blobs.join(digest.as_str().trim_start_matches("sha256:"));
        std::fs::write(&path, bytes).map_err(|e| local_error(&path, e))
    };
    write(&manifest.digest, &manifest.bytes)?;
    let wire = oci_spec::image::ImageManifest::from_reader(manifest.bytes.as_slice())
        .map_err(|e| Stop::Failed(format!("the locked manifest is not an image manifest: {e}")))?;
    for descriptor in std::iter::once(wire.config()).chain(wire.layers()) {
        let Ok(blob) = Digest::parse(descriptor.digest().as_ref()) else {
            return Err(Stop::Failed(format!(
                "`{}` is not a digest",
                descriptor.digest()
            )));
        };
        let path = blobs.join(blob.as_str().trim_start_matches("sha256:"));
        if !registry
            .blob_to_file(repo, &blob, descriptor.size(), &path)
            .await?
        {
            return Err(Stop::Failed(format!(
                "the registry has no blob {blob} in {repo}"
            )));
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": build::OCI_MANIFEST,
            "digest": manifest.digest.as_str(),
            "size": manifest.bytes.len(),
        }],
    });
    let index_path = dir.join("index.json");
    std::fs::write(&index_path, index.to_string()).map_err(|e| local_error(&index_path, e))?;
    NormalizedImage::open(dir).map_err(|e| Stop::Failed(e.to_string()))
}

fn local_error(path: &Path, source: std::io::Error) -> RebuildError {
    RebuildError::Scratch {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_is_named_by_the_step_that_made_it() {
        let config = br#"{"history":[
            {"created_by":"/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by":"/bin/sh -c #(nop)  ARG X","empty_layer":true},
            {"created_by":"/bin/sh -c #(nop) COPY file:def in /srv/ "},
            {"created_by":"/bin/sh -c date > /built-at"}]}"#;
        assert_eq!(layer_step(config, 0).as_deref(), Some("ADD file:abc in /"));
        assert_eq!(
            layer_step(config, 1).as_deref(),
            Some("COPY file:def in /srv/")
        );
        assert_eq!(
            layer_step(config, 2).as_deref(),
            Some("RUN date > /built-at")
        );
        assert_eq!(layer_step(config, 3), None);
        assert_eq!(layer_step(b"{}", 0), None);
    }

    #[test]
    fn differences_read_as_documented() {
        let layer = RebuildDifference::Layer {
            index: 3,
            layers: 4,
            step: Some("RUN date > /built-at".into()),
            locked_diff_id: "sha256:a".into(),
            rebuilt_diff_id: "sha256:b".into(),
            paths: vec![
                PathChange {
                    path: "built-at".into(),
                    what: vec![aspect(&EntryAspect::Content)],
                },
                PathChange {
                    path: "etc/x".into(),
                    what: vec![
                        aspect(&EntryAspect::Mode {
                            left: 0o100644,
                            right: 0o100755,
                        }),
                        aspect(&EntryAspect::Owner {
                            left: (0, 0),
                            right: (1000, 1000),
                        }),
                    ],
                },
            ],
        };
        assert_eq!(
            layer.to_string(),
            "at layer 4 of 4 (RUN date > /built-at): built-at (content); etc/x (mode 100644 → 100755, owner 0:0 → 1000:1000)"
        );
        assert_eq!(
            RebuildDifference::Config { fields: vec![] }.to_string(),
            "in the image configuration (the layers are the same)"
        );
        let fields = config_fields(
            br#"{"config":{"Env":["A=1"],"Labels":{"a/b":"1","k":"v"}},"os":"linux"}"#,
            br#"{"config":{"Env":["A=2"],"Labels":{"a/b":"2","k":"v"}},"os":"linux","x":1}"#,
        );
        assert_eq!(fields, ["/config/Env", "/config/Labels/a~1b", "/x"]);
        assert_eq!(
            RebuildDifference::Config { fields }.to_string(),
            "in the image configuration (the layers are the same): /config/Env, /config/Labels/a~1b, /x"
        );
    }
}
