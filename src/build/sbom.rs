//! What an SBOM reads of one normalized image: the files of each layer above its base, and the
//! time the image says it was created. Shared by `apply` (the SBOM attached to a published
//! image, read while its layers are still on disk) and `cookbook sbom` (the same image exported
//! from the engine and normalized again), so both list the same files.

use crate::attest::sbom::{self, LayerFiles};
use crate::attest::ResolvedBase;
use crate::context::from_lines;
use crate::hash::Fingerprint;
use crate::image::ImageError;
use crate::model::{BaseImage, ContainerKind, Cookbook, Name};
use crate::oci::Digest;

use super::Normalized;

/// The files of every layer above the base's, in layer order, each with its diff id.
pub fn layer_files(normalized: &Normalized) -> Result<Vec<LayerFiles>, ImageError> {
    let image = &normalized.image;
    let mut layers = Vec::new();
    for (index, layer) in image
        .layers()
        .iter()
        .enumerate()
        .skip(normalized.base_layers)
    {
        let files = sbom::layer_files(image.open_layer(index)?)
            .map_err(|source| ImageError::Layer { index, source })?;
        layers.push(LayerFiles {
            diff_id: digest(&layer.diff_id)?,
            files,
        });
    }
    Ok(layers)
}

/// A digest of the normalized layout as `oci::Digest` (normalization writes sha256 only).
pub fn digest(digest: &oci_spec::image::Digest) -> Result<Digest, ImageError> {
    Digest::parse(digest.as_ref()).map_err(|e| ImageError::Layout(e.to_string()))
}

/// The config's `created` (RFC 3339); the epoch when it has none, as normalization writes.
pub fn created(config: &[u8]) -> Result<String, ImageError> {
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|source| ImageError::Json {
            what: "config",
            source,
        })?;
    Ok(value
        .get("created")
        .and_then(|c| c.as_str())
        .unwrap_or("1970-01-01T00:00:00Z")
        .to_owned())
}

/// The image a container is built on, as its SBOM names it: a generated container's external
/// base by its pin, a Dockerfile's final stage's external `FROM` image by its pin, a
/// `container:` parent as `parent` gives it (its published image). `None` for `scratch`, an
/// unpinned base, or a final stage the Dockerfile builds from `scratch`.
pub fn base(
    cookbook: &Cookbook,
    fp: &Fingerprint,
    parent: impl FnOnce(&Name) -> Option<ResolvedBase>,
) -> Option<ResolvedBase> {
    if let Some((reference, Some(pin))) = &fp.external_base {
        return Some(ResolvedBase::pinned(reference, pin));
    }
    match &cookbook.containers.get(&fp.container)?.kind {
        ContainerKind::Generated(g) => match &g.base {
            BaseImage::Container(name) => parent(name),
            _ => None,
        },
        ContainerKind::Dockerfile(d) => {
            let text = fp.recipe.get("dockerfile_text")?.as_str()?;
            let lines = from_lines::parse(text, &d.build_args).ok()?;
            let image = lines.final_image(d.target.as_deref())?;
            fp.stage_bases
                .iter()
                .find(|(reference, _)| reference.as_str() == image)
                .and_then(|(reference, pin)| Some(ResolvedBase::pinned(reference, pin.as_ref()?)))
        }
    }
}
