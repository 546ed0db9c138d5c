//! After the waves: the mutable policy tags move (only when every container succeeded), and the
//! lock records what the run finished.

use super::report::{ContainerReport, Event, Report};
use super::run::Run;
use super::{parse_repo, pin, ApplyError};
use crate::build::blocking;
use crate::context::dockerfile::local_image;
use crate::engine::Engine;
use crate::hash::InputHash;
use crate::model::{Cookbook, Tagging};
use crate::oci::{Digest, WrittenReference};
use crate::registry::{RegistryClient, Repository};
use crate::state::lock::{self as lockfile, Lock, LockedImage};

/// The mutable tags `packaging.tagging` asks for.
pub fn policy_tags(cookbook: &Cookbook, revision: Option<&str>) -> Vec<String> {
    let mut tags = Vec::new();
    match cookbook.packaging.tagging {
        Tagging::ContentHash => {}
        Tagging::GitSha => tags.extend(revision.map(|r| r[..r.len().min(12)].to_owned())),
        Tagging::Semver => tags.extend(cookbook.packaging.version.clone()),
    }
    if cookbook.packaging.latest {
        tags.push("latest".to_owned());
    }
    tags
}

impl<E: Engine> Run<'_, E> {
    /// Moves the mutable tags, only after every container succeeded. When pushing, in the
    /// registry (a manifest GET and PUT, so the digest is the content tag's and nothing is
    /// pulled); with `--no-push`, in the local engine.
    pub(super) async fn move_policy_tags(&self, report: &mut Report) -> Result<(), ApplyError> {
        let cookbook = self.job.cookbook;
        let tags = policy_tags(cookbook, self.job.options.revision.as_deref());
        if tags.is_empty() {
            return Ok(());
        }
        for (name, entry) in report.containers.iter_mut() {
            let hash = entry.input_hash.clone();
            let repo_text = cookbook.repository(name);
            let target = match self.registry {
                Some(registry) => TagTarget::Registry(registry, parse_repo(&repo_text)?),
                None => TagTarget::Local(self.ensure_local(name).await?.ok_or_else(|| {
                    ApplyError::LocalImageMissing {
                        image: local_image(&cookbook.project.name, name, &hash),
                    }
                })?),
            };
            for tag in &tags {
                match &target {
                    TagTarget::Registry(registry, repo) => {
                        registry.retag(repo, &hash, tag).await?;
                    }
                    TagTarget::Local(image) => self.engine().tag(image, &repo_text, tag).await?,
                }
                let reference = format!("{repo_text}:{tag}");
                self.reporter.event(Event::Tagged {
                    name,
                    reference: &reference,
                });
                entry.tags.push(reference);
            }
        }
        Ok(())
    }

    /// Merges this run's finished containers (all of them, or what completed before a
    /// cancellation) into `cookbook.lock`, under its file lock, on a blocking thread.
    pub(super) async fn write_lock(&self, report: &Report) -> Result<bool, ApplyError> {
        let path = Lock::path_for(self.job.cookbook_file);
        let cookbook = self.job.cookbook;
        let dockerfiles = {
            let (cookbook, dir) = (cookbook.clone(), path.clone());
            blocking(move || pin::dockerfile_bases(&cookbook, crate::load::base_dir(&dir)))
                .await
                .map_err(|e| ApplyError::Pin(Box::new(e.into())))?
        };
        // A site's apply updates its containers and keeps the others'; containers the cookbook
        // no longer has are dropped.
        let update = lockfile::Update {
            project: cookbook.project.name.clone(),
            containers_in_cookbook: cookbook.containers.keys().cloned().collect(),
            bases_in_cookbook: pin::bases_in_cookbook(cookbook, &dockerfiles),
            // The pins this run's fingerprints (and so its builds) used: generated containers'
            // bases and Dockerfile containers' external stages.
            bases: self
                .job
                .fingerprints
                .values()
                .flat_map(|fp| fp.base_pins())
                .map(|(reference, pin)| (reference.clone(), pin.clone()))
                .collect(),
            entries: report
                .containers
                .iter()
                .filter(|(_, c)| c.outcome.succeeded())
                .map(|(name, c)| Ok((name.clone(), locked_image(c)?)))
                .collect::<Result<_, ApplyError>>()?,
        };
        Ok(blocking(move || lockfile::update(&path, &update)).await?)
    }
}

/// A finished container's lock entry: the report's names and digests, as typed values. They
/// are what this run made and the registry and engine answered (already parsed once there), so
/// a value that does not parse is a repository name the cookbook allows but Docker does not.
fn locked_image(c: &ContainerReport) -> Result<LockedImage, ApplyError> {
    let reference = |text: &str| {
        WrittenReference::parse(text).map_err(|e| ApplyError::BadRepository {
            reference: text.to_owned(),
            reason: e.to_string(),
        })
    };
    let digest = |text: &Option<String>| {
        text.as_deref()
            .map(|d| {
                Digest::parse(d).map_err(|e| ApplyError::BadRepository {
                    reference: c.image.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    Ok(LockedImage {
        input_hash: InputHash::parse(&c.input_hash).ok_or_else(|| ApplyError::BadRepository {
            reference: c.image.clone(),
            reason: format!("`{}` is not an input hash", c.input_hash),
        })?,
        image: reference(&c.image)?,
        tags: c
            .tags
            .iter()
            .map(|t| reference(t))
            .collect::<Result<_, _>>()?,
        digest: digest(&c.digest)?,
        image_id: digest(&c.image_id)?,
    })
}

/// Where a container's mutable tags move: its repository in the registry (from the content
/// tag), or its image in the local engine.
enum TagTarget<'r> {
    Registry(&'r RegistryClient, Repository),
    Local(String),
}
