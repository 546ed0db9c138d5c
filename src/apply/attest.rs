//! Attestations: a signed provenance statement and a signed SBOM attached to every image `apply`
//! publishes, when the run has a signing key.
//!
//! Pipeline position: inside `apply`, right after an image is published under its content tag,
//! while its normalized layers are still on disk (the SBOM lists the files of the layers above
//! the base from them); or, for an image found cached in the registry, after the lookup: when
//! its referrers hold no attestation of each kind by this key, the image is fetched into the
//! engine by its content tag, normalized again (the same bytes: normalization is reproducible)
//! and attested then — so a run stopped between the push and the attach, or an image published
//! before signing was turned on, is attested by the next apply.
//!
//! Attached, not embedded: each statement is wrapped in a DSSE envelope and pushed as an OCI 1.1
//! artifact whose `subject` is the image manifest ([`RegistryClient::attach`]), so the image
//! digest is exactly what it is without signing. A no-op apply pushes nothing: an image already
//! attested by this key costs one referrers listing, and no statement is made again (the
//! statements' timestamps could otherwise make every run push).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::StreamExt;

use serde::Serialize;

use super::error::Failure;
use super::parse_repo;
use super::report::{CacheSource, Event};
use super::run::Run;
use crate::attest::dsse::{Envelope, ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE};
use crate::attest::key::Signer;
use crate::attest::provenance::{self, Provenance};
use crate::attest::sbom::{self, SbomInput};
use crate::attest::{BuildMetadata, ResolvedBase, Subject};
use crate::build::{self, Normalized};
use crate::engine::Engine;
use crate::labels::attestation as annotation;
use crate::model::Name;
use crate::oci::{Digest, WrittenReference};
use crate::registry::{Artifact, Descriptor, RegistryClient, RegistryError, Repository};

/// What signing needs besides the image: who signs, and the facts of the run that the
/// provenance names.
pub struct Attesting {
    pub signer: Arc<dyn Signer>,
    /// The cookbook's path relative to its repository's root (its file name outside one).
    pub cookbook: String,
    /// The federation site applied, if one.
    pub site: Option<Name>,
    /// Names this run in the statements of the images it builds (`invocationId`).
    pub invocation: String,
}

impl std::fmt::Debug for Attesting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attesting")
            .field("key_id", &self.signer.key_id())
            .field("cookbook", &self.cookbook)
            .field("site", &self.site)
            .field("invocation", &self.invocation)
            .finish()
    }
}

/// What is attached to one image: the two artifacts' manifest digests, and whether this run
/// pushed anything for them (false: they were there already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attested {
    pub provenance: String,
    pub sbom: String,
    pub pushed: bool,
}

/// A built image waiting for its attestations ([`Run::queue_attestation`]): its published
/// digest, its normalized layers (kept on disk until then), and when its build ran.
pub(super) struct Pending {
    name: Name,
    digest: Digest,
    normalized: Normalized,
    started: SystemTime,
    finished: SystemTime,
}

/// Where built images wait for their attestations; `None` once the waves are done (or when the
/// run does not sign).
pub(super) type Queue = std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Pending>>>;

/// What one image's attestations came to, in its report (`attestations` in `apply --format
/// json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Attestations {
    /// Attached (by this run, or before it).
    Attached(Attested),
    /// Not attached: the image is published and correct, and the next signing apply attests
    /// it. The run fails (exit 1), but its dependents were built on the published image.
    Failed { error: String },
}

impl Attestations {
    pub fn failed(&self) -> bool {
        matches!(self, Attestations::Failed { .. })
    }
}

/// The two kinds, in the order they are attached.
const KINDS: [&str; 2] = [provenance::PREDICATE_TYPE, sbom::PREDICATE_TYPE];

/// RFC 3339, UTC, to the second: the provenance's timestamps.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

impl<E: Engine> Run<'_, E> {
    /// Queues the attestations of an image this run built (or assembled) and published
    /// (`ids`: its manifest digest and image id; none: not published, nothing to attach to).
    /// They are made and attached beside the later waves ([`Run::attest_queued`]), so a child's
    /// build never waits for its parent's attestations, only for its push.
    pub(super) fn queue_attestation(
        &self,
        name: &Name,
        ids: &(Option<String>, Option<String>),
        normalized: Normalized,
        started: Instant,
    ) {
        let (Some(digest), Some(_)) = (&ids.0, &self.job.options.attest) else {
            return;
        };
        let Ok(digest) = Digest::parse(digest) else {
            return;
        };
        let now = SystemTime::now();
        let pending = Pending {
            name: name.clone(),
            digest,
            normalized,
            started: now - started.elapsed(),
            finished: now,
        };
        if let Some(queue) = self.attest_queue.lock().expect("never poisoned").as_ref() {
            // The receiver lives as long as the run's waves: a send cannot fail before
            // `close_attestations`, and after it nothing is built.
            let _ = queue.send(pending);
        }
    }

    /// No more images will be queued: [`Run::attest_queued`] ends once the queued ones are done.
    pub(super) fn close_attestations(&self) {
        self.attest_queue.lock().expect("never poisoned").take();
    }

    /// Attests the images queued, at most `jobs` at once, until the queue is closed and empty;
    /// returns the failures. A cancelled run stops attesting: what was published stays, and the
    /// next apply attests it (the cached path).
    pub(super) async fn attest_queued(
        &self,
        mut queue: tokio::sync::mpsc::UnboundedReceiver<Pending>,
    ) -> Vec<(Name, Failure)> {
        let Some(registry) = self.registry else {
            return Vec::new();
        };
        let pending = futures_util::stream::poll_fn(move |cx| queue.poll_recv(cx));
        pending
            .map(|p| async move {
                let metadata = BuildMetadata {
                    invocation_id: self
                        .job
                        .options
                        .attest
                        .as_ref()
                        .map(|a| a.invocation.clone()),
                    started_on: Some(rfc3339(p.started)),
                    finished_on: Some(rfc3339(p.finished)),
                };
                let done = self
                    .unless_cancelled(self.attest(
                        registry,
                        &p.name,
                        &p.digest,
                        &p.normalized,
                        Some(metadata),
                    ))
                    .await;
                (p.name, done)
            })
            .buffer_unordered(self.job.options.jobs.max(1))
            .filter_map(|(name, done)| async move {
                match done {
                    Some(Err(failure)) => Some((name, failure)),
                    _ => None,
                }
            })
            .collect()
            .await
    }

    /// Attests an image found cached, when it was found in the registry: an image only in the
    /// local engine is not published (nothing to attach to), and `--trust-lock` asks the
    /// registry nothing about what the lock records, its attestations included.
    pub(super) async fn attest_found(
        &self,
        name: &Name,
        source: CacheSource,
        (digest, _): &(Option<String>, Option<String>),
    ) -> Result<(), Failure> {
        let (Some(registry), Some(digest), Some(_)) =
            (self.registry, digest, &self.job.options.attest)
        else {
            return Ok(());
        };
        if source != CacheSource::Registry {
            return Ok(());
        }
        let digest = Digest::parse(digest).map_err(|e| Failure::Container {
            reason: format!("its digest `{digest}` is not one: {e}"),
            log: Vec::new(),
        })?;
        self.attest_cached(registry, name, &digest).await
    }

    /// Attests an image found cached in the registry as `digest`, unless both kinds by this key
    /// are attached already (then nothing is written).
    pub(super) async fn attest_cached(
        &self,
        registry: &RegistryClient,
        name: &Name,
        digest: &Digest,
    ) -> Result<(), Failure> {
        let Some(attesting) = self.job.options.attest.as_deref() else {
            return Ok(());
        };
        let repo = parse_repo(&self.job.cookbook.repository(name)).map_err(Failure::Run)?;
        let (referrers, _) = registry
            .referrers(&repo, digest, Some(IN_TOTO_PAYLOAD_TYPE))
            .await
            .map_err(attach_failure)?;
        let key_id = attesting.signer.key_id();
        let ours = |kind: &str| {
            referrers.iter().find(|r| {
                r.annotations
                    .get(annotation::PREDICATE_TYPE)
                    .map(String::as_str)
                    == Some(kind)
                    && r.annotations.get(annotation::KEY_ID) == Some(&key_id)
            })
        };
        if let (Some(provenance), Some(sbom)) = (ours(KINDS[0]), ours(KINDS[1])) {
            self.record(
                name,
                Attested {
                    provenance: provenance.digest.to_string(),
                    sbom: sbom.digest.to_string(),
                    pushed: false,
                },
            );
            return Ok(());
        }
        // Published without attestations (before signing was on, or a run stopped between
        // the push and the attach): its layers again, from the registry through the engine.
        if let Some(down) = &self.engine_down {
            return Err(Failure::NeedsEngine {
                reason: format!("its image is not attested yet, and reading its layers needs the engine: {down}"),
            });
        }
        let local = self
            .ensure_local(name)
            .await
            .map_err(Failure::Run)?
            .ok_or_else(|| Failure::Container {
                reason: "its image is not attested yet and cannot be fetched to read its layers"
                    .to_owned(),
                log: Vec::new(),
            })?;
        let fp = &self.job.fingerprints[name];
        let normalized = build::normalize_built(self.engine(), self.job.cookbook, fp, &local)
            .await
            .map_err(Failure::publish)?;
        self.attest(registry, name, digest, &normalized, None).await
    }

    /// Makes both statements of `name`'s image `digest`, signs and attaches them.
    async fn attest(
        &self,
        registry: &RegistryClient,
        name: &Name,
        digest: &Digest,
        normalized: &Normalized,
        metadata: Option<BuildMetadata>,
    ) -> Result<(), Failure> {
        let attesting = self.job.options.attest.as_deref().expect("attesting");
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let image = WrittenReference::parse(&format!(
            "{}:{}",
            cookbook.repository(name),
            fp.input_hash()
        ))
        .map_err(|e| Failure::Container {
            reason: format!("cannot name its image for the attestations: {e}"),
            log: Vec::new(),
        })?;
        let subject = Subject::image(&image, digest.clone());
        let provenance = provenance::statement(&Provenance {
            subject: subject.clone(),
            cookbook: attesting.cookbook.clone(),
            container: name.clone(),
            site: attesting.site.clone(),
            commit: self.job.options.revision.clone(),
            bases: fp
                .base_pins()
                .into_iter()
                .map(|(reference, pin)| ResolvedBase::pinned(reference, pin))
                .collect(),
            input_hash: fp.input_hash().to_owned(),
            hash_version: fp.hash_version,
            manifest_digest: provenance::manifest_digest(fp),
            builder_version: env!("CARGO_PKG_VERSION").to_owned(),
            metadata,
        });
        let base = self.sbom_base(registry, name).await?;
        let (layers, created) = {
            let layers = build::sbom::layer_files(normalized);
            let created = build::sbom::created(normalized.image.config());
            match (layers, created) {
                (Ok(l), Ok(c)) => (l, c),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(Failure::Container {
                        reason: format!("cannot read its layers for the SBOM: {e}"),
                        log: Vec::new(),
                    })
                }
            }
        };
        let sbom = sbom::statement(&SbomInput {
            subject,
            image_name: image.to_string(),
            base,
            layers,
            packages: sbom::packages(cookbook, name, self.job.base_dir()),
            created,
        });
        let repo = image.reference().repository().clone();
        // The manifest just published (or normalized again to the same bytes): no need to ask
        // the registry what it is — unless the bytes at hand are not that manifest.
        let descriptor = if normalized.image.manifest_digest().as_ref() == digest.as_str() {
            Descriptor {
                media_type: build::OCI_MANIFEST.to_owned(),
                digest: digest.clone(),
                size: normalized.image.manifest().len() as u64,
            }
        } else {
            registry
                .descriptor(&repo, digest)
                .await
                .map_err(attach_failure)?
        };
        let attested = attach(registry, &repo, attesting, &descriptor, [provenance, sbom]).await?;
        self.reporter.event(Event::Attested {
            name,
            pushed: attested.pushed,
        });
        self.record(name, attested);
        Ok(())
    }

    /// The base an SBOM names: the pin, or a `container:` parent's published image (its content
    /// tag's digest, asked of the registry).
    async fn sbom_base(
        &self,
        registry: &RegistryClient,
        name: &Name,
    ) -> Result<Option<ResolvedBase>, Failure> {
        let cookbook = self.job.cookbook;
        let fp = &self.job.fingerprints[name];
        let parent = cookbook.containers[name].build_parent().cloned();
        let parent_image = match &parent {
            Some(parent) => {
                let hash = self.job.fingerprints[parent].input_hash();
                let text = format!("{}:{hash}", cookbook.repository(parent));
                let repo = parse_repo(&cookbook.repository(parent)).map_err(Failure::Run)?;
                let digest = registry
                    .manifest_head(&repo, hash)
                    .await
                    .map_err(attach_failure)?;
                WrittenReference::parse(&text)
                    .ok()
                    .zip(digest)
                    .map(|(reference, digest)| ResolvedBase {
                        reference,
                        digest,
                        source: None,
                    })
            }
            None => None,
        };
        Ok(build::sbom::base(cookbook, fp, |_| parent_image))
    }

    fn record(&self, name: &Name, attested: Attested) {
        self.record_outcome(name, Attestations::Attached(attested));
    }

    /// What `name`'s attestations came to, for its report ([`Run::merge_attestations`]).
    pub(super) fn record_outcome(&self, name: &Name, outcome: Attestations) {
        self.attested
            .lock()
            .expect("the attestations map is never poisoned: nothing panics holding it")
            .insert(name.clone(), outcome);
    }
}

/// A registry failure while attesting: an unreachable registry ends the run (exit 3), anything
/// else fails the container (its image is published, not attested).
fn attach_failure(e: RegistryError) -> Failure {
    Failure::publish(build::BuildError::Registry(e))
}

/// Signs both statements and attaches them to `subject` (`descriptor`) in `repo`, pushed
/// together: one write of the referrers index for both.
async fn attach(
    registry: &RegistryClient,
    repo: &Repository,
    attesting: &Attesting,
    descriptor: &Descriptor,
    statements: [Vec<u8>; 2],
) -> Result<Attested, Failure> {
    let mut artifacts = Vec::new();
    for (predicate_type, statement) in KINDS.into_iter().zip(statements) {
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &statement, attesting.signer.as_ref())
            .map_err(|e| Failure::Container {
                reason: format!("cannot sign its attestations: {e}"),
                log: Vec::new(),
            })?;
        artifacts.push(Artifact {
            artifact_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            layer_media_type: ENVELOPE_MEDIA_TYPE.to_owned(),
            payload: envelope.to_bytes(),
            annotations: BTreeMap::from([
                (
                    annotation::PREDICATE_TYPE.to_owned(),
                    predicate_type.to_owned(),
                ),
                (annotation::KEY_ID.to_owned(), attesting.signer.key_id()),
            ]),
        });
    }
    let attached = registry
        .attach_all(repo, descriptor, &artifacts)
        .await
        .map_err(attach_failure)?;
    Ok(Attested {
        provenance: attached[0].manifest.to_string(),
        sbom: attached[1].manifest.to_string(),
        pushed: attached.iter().any(|a| a.pushed),
    })
}
