//! Reading an image as the Docker engine exports it (`docker save`, `GET /images/{name}/get`).
//!
//! Two layouts exist, and both put a `manifest.json` at the root
//! (`[{"Config": path, "RepoTags": […], "Layers": [path, …]}]`), which is what this reads:
//! - the legacy layout (Docker before 25, including Debian's docker.io 20.10 on this project's
//!   test machine): `<id>.json` config, `<v1 id>/layer.tar` uncompressed layers (a repeated layer
//!   is a symlink to the first copy), `repositories`;
//! - the OCI layout (Docker 25 and later): `blobs/sha256/<hex>` for every blob plus `index.json`
//!   and `oci-layout`; with the containerd image store the layer blobs may be gzip-compressed.
//!
//! An archive with `index.json` and no `manifest.json` (a plain OCI layout, as other tools write)
//! is read through the index. The tar entries come in no useful order (`manifest.json` is last in
//! both of Docker's layouts, and the legacy layout's layer directories are sorted by their v1 ids,
//! not in layer order), so which layer is which is only known at the end: the caller
//! (layout.rs) unpacks the export into a spool directory, normalizing the legacy layout's
//! `layer.tar` entries on the way, and [`locate`]s the image afterwards; nothing is held in memory
//! but the JSON documents.

use std::fs;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

use super::ImageError;

/// Where an exported image's parts are, inside the spool directory.
#[derive(Debug)]
pub(crate) struct Exported {
    pub config: PathBuf,
    pub layers: Vec<PathBuf>,
}

/// One entry of Docker's `manifest.json`.
#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Finds the one image in an export unpacked into `spool`.
pub(crate) fn locate(spool: &Path) -> Result<Exported, ImageError> {
    let docker_manifest = spool.join("manifest.json");
    if docker_manifest.is_file() {
        let raw = fs::read(&docker_manifest).map_err(ImageError::Export)?;
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(&raw).map_err(|source| ImageError::Json {
                what: "manifest.json",
                source,
            })?;
        let [entry] = <[DockerManifestEntry; 1]>::try_from(entries).map_err(|all| {
            ImageError::Layout(format!(
                "manifest.json lists {} images; export exactly one",
                all.len()
            ))
        })?;
        return Ok(Exported {
            config: inside(spool, &entry.config)?,
            layers: entry
                .layers
                .iter()
                .map(|layer| inside(spool, layer))
                .collect::<Result<_, _>>()?,
        });
    }
    if spool.join("index.json").is_file() {
        return from_index(spool);
    }
    Err(ImageError::Layout(
        "neither manifest.json nor index.json at the root of the export".into(),
    ))
}

/// The image an OCI layout's `index.json` names (following nested indexes).
fn from_index(spool: &Path) -> Result<Exported, ImageError> {
    let read = |path: &Path| fs::read(path).map_err(ImageError::Export);
    let mut index: ImageIndex = parse(&read(&spool.join("index.json"))?, "index.json")?;
    loop {
        let [descriptor] = <[_; 1]>::try_from(index.manifests().clone()).map_err(|all| {
            ImageError::Layout(format!(
                "index.json lists {} manifests; export exactly one image",
                all.len()
            ))
        })?;
        let raw = read(&blob_path(spool, descriptor.digest().as_ref())?)?;
        match descriptor.media_type() {
            MediaType::ImageIndex => index = parse(&raw, "nested index")?,
            _ => {
                let manifest: ImageManifest = parse(&raw, "image manifest")?;
                return Ok(Exported {
                    config: blob_path(spool, manifest.config().digest().as_ref())?,
                    layers: manifest
                        .layers()
                        .iter()
                        .map(|layer| blob_path(spool, layer.digest().as_ref()))
                        .collect::<Result<_, _>>()?,
                });
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(raw: &[u8], what: &'static str) -> Result<T, ImageError> {
    serde_json::from_slice(raw).map_err(|source| ImageError::Json { what, source })
}

/// `blobs/<algorithm>/<hex>` for a digest.
fn blob_path(spool: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| ImageError::Layout(format!("`{digest}` is not a digest")))?;
    inside(spool, &format!("blobs/{algorithm}/{hex}"))
}

/// Whether the export entry at `path` is a legacy layout's layer (`<v1 id>/layer.tar`), which
/// is normalized while the export streams in (see layout.rs).
pub(crate) fn is_legacy_layer(path: &Path) -> bool {
    let parts: Vec<Component> = path.components().collect();
    matches!(parts.as_slice(), [Component::Normal(_), Component::Normal(name)] if *name == "layer.tar")
}

/// `relative` resolved in `spool`, refusing anything that leaves it (`..`, absolute paths, a
/// symlink pointing out), since the names come from the export.
fn inside(spool: &Path, relative: &str) -> Result<PathBuf, ImageError> {
    let escapes = Path::new(relative)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    let outside = || ImageError::Layout(format!("`{relative}` points outside the export"));
    if escapes {
        return Err(outside());
    }
    let path = spool.join(relative);
    let real = path
        .canonicalize()
        .map_err(|e| ImageError::Layout(format!("`{relative}` is missing from the export: {e}")))?;
    let root = spool.canonicalize().map_err(ImageError::Export)?;
    if !real.starts_with(root) {
        return Err(outside());
    }
    Ok(real)
}
