//! Engine-less builds: a generated container whose applications have no build commands is
//! assembled from its base image and its context, as ko and Jib build images — no Docker engine
//! runs anything.
//!
//! Pipeline position: inside [`crate::build`], for `apply` and `verify --rebuild`, in place of an
//! engine build for the containers [`crate::context::assembly::plan`] accepts. The steps:
//! 1. [`base_source`]: where the base comes from. A registry's image (the pinned `ref@digest`, or
//!    a `container:` parent's content tag) is read through the registry API — its manifest, its
//!    config, and its layers *by digest only*: they are mounted or copied when the image is
//!    published, never unpacked. An image that exists only in a local engine (a pin of source
//!    `engine`), and every base of a `--no-push` run, is exported from the engine and carried as
//!    its uncompressed layer tars, as the engine path carries bases;
//! 2. the one layer is written from the context listing (`context::tar::write_layer`) and the
//!    image assembled and normalized (`image::assemble`), on a blocking thread;
//! 3. the caller publishes it (`apply::publish`, which mounts or copies the base's
//!    blobs from [`Assembled::base_repo`]) or loads it into the engine (`--no-push`).
//!
//! So with a registry, the whole build needs no engine: `apply` on a machine without Docker
//! builds these containers and names each one that needs an engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};

use super::{download_blob, normalize_image, parse_repo, BadRepository, BuildError, Normalized};
use crate::context::assembly::{self, Assembly};
use crate::context::dockerfile::local_image;
use crate::engine::Engine;
use crate::hash::{Fingerprint, PinSource};
use crate::image::assemble::{base_entries, host_architecture, index_layer_file, Base, LayerIndex};
use crate::image::{ImageError, LayerInfo};
use crate::model::{BaseImage, ContainerKind, Cookbook};
use crate::registry::{Digest, ImageReference, RegistryClient, Repository};

/// Where an assembled container's base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSource {
    Scratch,
    /// The manifest (or image index) `reference` (a digest or a tag) of `repo`.
    Registry {
        repo: Repository,
        reference: String,
    },
    /// An image of the local engine, by id or name.
    Engine {
        image: String,
    },
}

/// What a run has read of its registry bases, so that containers on one base read it once (one
/// manifest and config request per base, not per container — Docker Hub counts them): each
/// base's manifest and config by `repo@reference`, and each layer's index by digest
/// (`image::assemble::LayerIndex`: directories, symlinks, whiteouts).
#[derive(Debug, Default)]
pub struct BaseCache {
    bases: tokio::sync::Mutex<BTreeMap<String, Base>>,
    indexes: tokio::sync::Mutex<BTreeMap<String, Arc<LayerIndex>>>,
}

/// An assembled image and the repository its base's blobs are in (for a registry base: the
/// publish step mounts them from there, or copies them when it is another registry).
#[derive(Debug)]
pub struct Assembled {
    pub normalized: Normalized,
    pub base_repo: Option<Repository>,
}

/// Where the base of the assembled container `fp.container` comes from: with `push`, from the
/// registry whenever the base is there (an external base pinned by its registry digest, a
/// `container:` parent by its content tag); an image only a local engine has, and every base of a
/// run without a registry, from the engine.
pub fn base_source(
    cookbook: &Cookbook,
    fp: &Fingerprint,
    push: bool,
) -> Result<BaseSource, BadRepository> {
    let container = &cookbook.containers[&fp.container];
    let ContainerKind::Generated(g) = &container.kind else {
        unreachable!("only generated containers are assembled (context::assembly::plan)")
    };
    Ok(match &g.base {
        BaseImage::Container(parent) => {
            let hash =
                fp.dependencies.get(parent.as_str()).cloned().expect(
                    "a container: base is a dependency of the fingerprint (hash::fingerprint)",
                );
            if push {
                BaseSource::Registry {
                    repo: parse_repo(&cookbook.repository(parent))?,
                    reference: hash,
                }
            } else {
                BaseSource::Engine {
                    image: local_image(&cookbook.project.name, parent, &hash),
                }
            }
        }
        // No image: the assembled image is its one layer (no base layers, a new config).
        BaseImage::Scratch => BaseSource::Scratch,
        BaseImage::Image(reference) => {
            let pin = fp.external_base.as_ref().and_then(|(_, pin)| pin.as_ref());
            match pin {
                Some(pin) if pin.source == PinSource::Engine => BaseSource::Engine {
                    image: pin.digest.to_string(),
                },
                _ if !push => BaseSource::Engine {
                    image: pin.map_or_else(
                        || reference.to_string(),
                        |p| p.from_line(reference).to_string(),
                    ),
                },
                _ => {
                    let parsed = reference.reference();
                    BaseSource::Registry {
                        repo: parsed.repository().clone(),
                        reference: match pin {
                            Some(p) if p.source == PinSource::Registry => p.digest.to_string(),
                            _ => parsed.manifest_reference().to_owned(),
                        },
                    }
                }
            }
        }
    })
}

/// Assembles `assembly` (container `fp.container`) on the base `source` with the build's
/// `labels`, into a scratch directory of this run. `cache`: what the run read of its bases.
pub async fn assemble<E: Engine>(
    engine: &E,
    registry: Option<&RegistryClient>,
    source: &BaseSource,
    fp: Arc<Fingerprint>,
    assembly: Assembly,
    labels: BTreeMap<String, String>,
    cache: &BaseCache,
) -> Result<Assembled, BuildError> {
    let (base, dir, base_repo) = read_base(engine, registry, source, cache).await?;
    let out = dir.path().join("oci");
    let blobs = crate::image::create_blobs_dir(&out)?;
    let layers = index_layers(registry, source, &base, &blobs, cache).await?;
    // What the base has where the layer writes directories (see context/assembly.rs).
    let found = base_entries(&layers, &assembly::directories(&assembly, &fp.entries));
    let base_name = match source {
        BaseSource::Scratch => "scratch".to_owned(),
        BaseSource::Registry { repo, reference } => format!("{repo}@{reference}"),
        BaseSource::Engine { image } => image.clone(),
    };
    let base_layers = base.layers.len();
    let layer = Layer {
        assembly,
        fp,
        found,
        base_name,
        labels,
    };
    let (image, dir) = super::blocking(move || write_image(layer, &base, dir, &out)).await?;
    Ok(Assembled {
        normalized: Normalized::new(image, base_layers, dir),
        base_repo,
    })
}

/// The base's manifest, config and layers (a registry base read once per run through `cache`,
/// an engine base exported), the scratch directory to assemble in, and the repository a registry
/// base's blobs are in.
async fn read_base<E: Engine>(
    engine: &E,
    registry: Option<&RegistryClient>,
    source: &BaseSource,
    cache: &BaseCache,
) -> Result<(Base, tempfile::TempDir, Option<Repository>), BuildError> {
    Ok(match source {
        BaseSource::Scratch => (Base::default(), scratch_dir()?, None),
        BaseSource::Registry { repo, reference } => {
            let registry = registry.ok_or_else(|| BuildError::Base {
                reference: format!("{repo}:{reference}"),
                message: "a registry base needs a registry client".into(),
            })?;
            let key = format!("{repo}@{reference}");
            let mut bases = cache.bases.lock().await;
            let base = match bases.get(&key) {
                Some(base) => base.clone(),
                None => {
                    let base = registry_base(registry, repo, reference).await?;
                    bases.insert(key, base.clone());
                    base
                }
            };
            drop(bases);
            (base, scratch_dir()?, Some(repo.clone()))
        }
        BaseSource::Engine { image } => {
            let exported = engine_base(engine, image).await?;
            let base = Base {
                config: Some(exported.image.config().to_vec()),
                layers: exported.image.layers().to_vec(),
            };
            (base, exported.into_dir(), None)
        }
    })
}

/// The index of each of the base's layers (directories, symlinks, whiteouts), read once per run
/// through `cache`; a registry base's layer is downloaded into `blobs` first.
async fn index_layers(
    registry: Option<&RegistryClient>,
    source: &BaseSource,
    base: &Base,
    blobs: &std::path::Path,
    cache: &BaseCache,
) -> Result<Vec<Arc<LayerIndex>>, BuildError> {
    let mut layers = Vec::with_capacity(base.layers.len());
    for layer in &base.layers {
        let key = layer.digest.to_string();
        let mut known = cache.indexes.lock().await;
        let index = match known.get(&key) {
            Some(index) => Arc::clone(index),
            None => {
                let path = blobs.join(layer.digest.digest());
                if !path.exists() {
                    let BaseSource::Registry { repo, .. } = source else {
                        unreachable!("an engine's base is exported with its layers")
                    };
                    let registry = registry.expect("a registry base has a registry client");
                    let digest = Digest::parse(&key).map_err(|e| BuildError::Base {
                        reference: repo.to_string(),
                        message: e.to_string(),
                    })?;
                    download_blob(registry, repo, &digest, layer.size, &path).await?;
                }
                let index = super::blocking(move || index_layer_file(&path)).await?;
                let index = Arc::new(index);
                known.insert(key, Arc::clone(&index));
                index
            }
        };
        layers.push(index);
    }
    Ok(layers)
}

/// What the one layer of an assembled image is written from.
struct Layer {
    assembly: Assembly,
    fp: Arc<Fingerprint>,
    /// What the base has where the layer writes.
    found: BTreeMap<String, assembly::BaseEntry>,
    base_name: String,
    labels: BTreeMap<String, String>,
}

/// Writes the layer from the context and assembles the image on `base` into `out` (blocking).
fn write_image(
    layer: Layer,
    base: &Base,
    dir: tempfile::TempDir,
    out: &std::path::Path,
) -> Result<(crate::image::NormalizedImage, tempfile::TempDir), BuildError> {
    let Layer {
        assembly,
        fp,
        found,
        base_name,
        labels,
    } = layer;
    let items = assembly::layer_items(&assembly, &fp.entries, &found).map_err(|message| {
        BuildError::Base {
            reference: base_name,
            message,
        }
    })?;
    // The raw layer is spooled, then re-encoded into its blob: small for the trees this path
    // takes (sources, no build output), and it keeps one tar encoder (normalize_layer).
    let spool = tempfile::tempfile_in(dir.path()).map_err(BuildError::Scratch)?;
    let name = dir.path().join("layer.tar");
    let writer = std::io::BufWriter::new(spool);
    let writer = crate::context::tar::write_layer(&items, &fp.entries, &fp.digests, writer, &name)?;
    let mut spool = writer
        .into_inner()
        .map_err(|e| BuildError::Scratch(e.into_error()))?;
    std::io::Seek::rewind(&mut spool).map_err(BuildError::Scratch)?;
    let image = crate::image::assemble::assemble(
        base,
        &assembly,
        &labels,
        std::io::BufReader::new(spool),
        out,
    )?;
    Ok((image, dir))
}

fn scratch_dir() -> Result<tempfile::TempDir, BuildError> {
    tempfile::Builder::new()
        .prefix("cookbook-image-")
        .tempdir()
        .map_err(BuildError::Scratch)
}

/// A base exported from the local engine, every layer carried as it is; pulled first when the
/// engine does not have it and it names a registry image.
async fn engine_base<E: Engine>(engine: &E, image: &str) -> Result<Normalized, BuildError> {
    let info = match engine.inspect_image(image).await? {
        Some(info) => info,
        None => {
            let missing = || BuildError::Base {
                reference: image.to_owned(),
                message: "the local engine does not have it".into(),
            };
            let reference = ImageReference::parse(image).map_err(|_| missing())?;
            engine
                .pull(reference.repository(), reference.manifest_reference(), None)
                .await?;
            engine.inspect_image(image).await?.ok_or_else(missing)?
        }
    };
    normalize_image(engine, image, info.layers).await
}

/// A registry's base: its manifest (this machine's platform when it is an index), its config,
/// and its layers' descriptors (Docker media types named by their OCI equivalents; the blobs are
/// not fetched).
async fn registry_base(
    registry: &RegistryClient,
    repo: &Repository,
    reference: &str,
) -> Result<Base, BuildError> {
    let named = if reference.contains(':') {
        format!("{repo}@{reference}")
    } else {
        format!("{repo}:{reference}")
    };
    let base_err = |message: String| BuildError::Base {
        reference: named.clone(),
        message,
    };
    let fetch = |reference: String| async move {
        registry
            .manifest_get(repo, &reference)
            .await?
            .ok_or_else(|| BuildError::Base {
                reference: format!("{repo}:{reference}"),
                message: "the registry has no such manifest".into(),
            })
    };
    let unreadable =
        |e: oci_spec::OciSpecError| base_err(format!("its manifest cannot be read: {e}"));
    // Docker's manifest lists and schema 2 manifests have the fields of OCI's index and
    // manifest that matter here, so oci_spec reads both kinds.
    let mut bytes = fetch(reference.to_owned()).await?.bytes;
    if is_index(&bytes) {
        let index = ImageIndex::from_reader(bytes.as_slice()).map_err(unreadable)?;
        let arch = host_architecture();
        let chosen = index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == arch
                })
            })
            .ok_or_else(|| base_err(format!("its index has no linux/{arch} image")))?;
        bytes = fetch(chosen.digest().to_string()).await?.bytes;
        if is_index(&bytes) {
            return Err(base_err("an index inside an index".into()));
        }
    }
    let manifest = ImageManifest::from_reader(bytes.as_slice()).map_err(unreadable)?;
    let config_digest =
        Digest::parse(manifest.config().digest().as_ref()).map_err(|e| base_err(e.to_string()))?;
    let config_bytes = registry
        .blob_get(repo, &config_digest)
        .await?
        .ok_or_else(|| base_err(format!("the registry has no config blob {config_digest}")))?;
    let diff_ids = crate::image::config_diff_ids(&config_bytes)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(base_err(format!(
            "its manifest lists {} layers, its config {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            Ok(LayerInfo {
                digest: layer.digest().clone(),
                diff_id: diff_id
                    .parse()
                    .map_err(|e| ImageError::Layout(format!("`{diff_id}` is not a digest: {e}")))?,
                size: layer.size(),
                media_type: oci_layer_type(layer.media_type()),
            })
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    Ok(Base {
        config: Some(config_bytes),
        layers,
    })
}

/// Whether a manifest's bytes are an image index (or a Docker manifest list): it lists
/// `manifests` rather than `layers`.
fn is_index(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("manifests").is_some())
}

/// A layer's media type in an OCI manifest: Docker's names for the same bytes become the OCI
/// ones; anything else is kept as written.
fn oci_layer_type(media_type: &MediaType) -> MediaType {
    match media_type.to_string().as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::ImageLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
        _ => media_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_layer_types_become_oci_ones() {
        let named = |text: &str| MediaType::from(text);
        assert_eq!(
            oci_layer_type(&named("application/vnd.docker.image.rootfs.diff.tar.gzip")),
            MediaType::ImageLayerGzip
        );
        assert_eq!(
            oci_layer_type(&named("application/vnd.oci.image.layer.v1.tar")),
            MediaType::ImageLayer
        );
        assert_eq!(
            oci_layer_type(&named("application/vnd.oci.image.layer.v1.tar+zstd")),
            MediaType::ImageLayerZstd
        );
    }
}
