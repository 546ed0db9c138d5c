//! `sbom CONTAINER`: the SPDX 2.3 document of the container's image, without a registry.
//!
//! The image is the one the lock names (`image_id`), read from the local engine: exported and
//! normalized through `build::normalize_built` exactly as `apply` does after a build, so its
//! manifest digest is the one `apply` published and its layers after the base's are the
//! container's own. Those layers' files, the base's pin and the packages the applications pin
//! (`attest::sbom::packages`) make the document; `created` is the image config's (normalized
//! images carry a fixed one), so two runs print the same bytes. Sources changed since the image
//! was built (another input hash than the lock's) are refused: their packages would not be the
//! image's.

use serde::Serialize;

use super::Workspace;
use crate::attest::sbom::{self, SbomInput};
use crate::attest::{ResolvedBase, Subject};
use crate::error::Error;

/// `sbom CONTAINER`: the document, which is the whole report.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SbomReport {
    pub document: serde_json::Value,
}

/// `sbom CONTAINER`.
pub fn sbom(ws: &Workspace, container: &str) -> Result<SbomReport, Error> {
    let name = ws.containers_named(&[container.to_owned()])?.remove(0);
    let lock = ws.published()?;
    let entry = lock
        .containers
        .get(&name)
        .ok_or_else(|| Error::NotPublished {
            container: name.to_string(),
        })?;
    // Only a version-1 lock has no image id: the image was built before ids were recorded.
    let image_id = entry.image_id.as_ref().ok_or_else(|| Error::Usage {
        message: format!("cookbook.lock records no image id for `{name}`"),
        help: Some("run `cookbook apply` to record it".to_owned()),
    })?;
    // Under the lock's own hash version, so that a lock written by an earlier cookbook still
    // matches sources that have not changed.
    let pins = ws.pins()?;
    let pinning = crate::hash::Pinning::version(lock.hash_version, &pins).ok_or_else(|| {
        Error::Usage {
            message: format!(
                "cookbook.lock was written under hash_version {}, which this cookbook cannot compute",
                lock.hash_version
            ),
            help: Some("run `cookbook apply` to rebuild under the current version".to_owned()),
        }
    })?;
    let prints = ws.fingerprints_pinned(&ws.plan.restrict([&name]), pinning)?;
    let print = &prints[&name];
    // The packages and the base pin come from the sources: they describe the image only if it
    // was built from these sources.
    if print.input_hash() != entry.input_hash.as_str() {
        return Err(Error::ChangedSinceBuilt {
            container: name.to_string(),
            computed: print.input_hash().to_owned(),
            locked: entry.input_hash.to_string(),
        });
    }

    let normalized = super::runtime()?.block_on(async {
        let engine = crate::engine::DockerEngine::connect_selected(&ws.engine).await?;
        if crate::engine::Engine::inspect_image(&engine, image_id.as_str())
            .await?
            .is_none()
        {
            return Err(Error::ImageNotInEngine {
                container: name.to_string(),
                image_id: image_id.to_string(),
                image: entry.image.to_string(),
            });
        }
        Ok(crate::build::normalize_built(&engine, &ws.cookbook, print, image_id.as_str()).await?)
    })?;
    let image = &normalized.image;
    let layers = crate::build::sbom::layer_files(&normalized)?;
    let input = SbomInput {
        subject: Subject::image(
            &entry.image,
            crate::build::sbom::digest(image.manifest_digest())?,
        ),
        image_name: entry.image.to_string(),
        base: crate::build::sbom::base(&ws.cookbook, print, |parent| {
            let parent = ws.lock().ok()??.containers.get(parent)?;
            Some(ResolvedBase {
                reference: parent.image.clone(),
                digest: parent.digest.clone()?,
                source: None,
            })
        }),
        layers,
        packages: sbom::packages(&ws.cookbook, &name, ws.base_dir()),
        created: crate::build::sbom::created(image.config())?,
    };
    Ok(SbomReport {
        document: sbom::document(&input),
    })
}
