//! `verify --registry`: is each locked image published as the lock says?
//!
//! The registry edge of `verify`. For every lock entry of a container the cookbook still has:
//! the manifest under the content tag must exist and have the locked digest, and the image
//! configuration of that exact manifest (fetched by digest, so a tag moved in between cannot
//! mix two images) must carry the locked input hash in its `dev.cookbook.input-hash` label.
//! An entry with no manifest digest was applied with `--no-push`: it is "not published", never
//! compared with whatever the registry may hold under that name (which would be a false tamper
//! alarm). Findings become [`Reason`]s; only a failure to ask (unreachable registry, refused
//! credentials) is an error.

use crate::image::LABEL_INPUT_HASH;
use crate::registry::{RegistryClient, RegistryError};
use crate::state::lock::Lock;

use super::{Reason, Report};

/// Adds the registry's findings to `report`.
pub async fn check(
    report: &mut Report,
    lock: &Lock,
    client: &RegistryClient,
) -> Result<(), RegistryError> {
    report.registry_checked = true;
    for (name, entry) in &lock.containers {
        let Some(verdict) = report.containers.get_mut(name.as_str()) else {
            continue;
        };
        if verdict.input_hash.is_none() || verdict.foreign() {
            // Not in the cookbook any more, or outside its container's repository: already a
            // mismatch, and a host the lock names is never asked.
            continue;
        }
        let Some(locked_digest) = entry.published_digest() else {
            verdict.push(Reason::NotPublished {
                image: entry.image.to_string(),
            });
            continue;
        };
        let reference = entry.image.reference();
        let repo = reference.repository();
        let tag = reference.manifest_reference();
        let Some(digest) = client.manifest_head(repo, tag).await? else {
            verdict.push(Reason::DigestMissing {
                reference: entry.image.to_string(),
                digest: locked_digest.to_string(),
            });
            continue;
        };
        verdict.registry_digest = Some(digest.to_string());
        if digest != *locked_digest {
            verdict.push(Reason::RegistryDigestDiffers {
                reference: entry.image.to_string(),
                registry: digest.to_string(),
                lock: locked_digest.to_string(),
            });
        }
        let labels = client.image_labels(repo, digest.as_str()).await?;
        let label = labels.and_then(|mut l| l.remove(LABEL_INPUT_HASH));
        if label.as_deref() != Some(entry.input_hash.as_str()) {
            verdict.push(Reason::LabelDiffers {
                reference: entry.image.to_string(),
                registry: label,
                lock: entry.input_hash.to_string(),
            });
        }
    }
    Ok(())
}
