//! Building ONE image, the same way for everyone who builds: `apply` (which then publishes it)
//! and `verify --rebuild` (which compares it with the locked image).
//!
//! Pipeline position: fingerprint → **context tar → engine build, or engine-less assembly →
//! export → normalize** → (apply) load back and publish / (verify) compare. What is here:
//! - [`write_context`]: a container's context as a tar, a temporary file of this run, with the
//!   Dockerfile the engine builds (a Dockerfile container's external `FROM`s on their pins);
//! - [`request`]: the engine's [`BuildRequest`] for it (build args, target, [`labels`]);
//! - [`normalize_built`]: what the engine built, exported and normalized ([`normalize`]),
//!   carrying the layers of the image it was built FROM ([`base_of`]) byte for byte;
//! - [`assemble`]: the engine-less build of a container with no build commands;
//! - [`pull_as`]: a parent image fetched by its immutable reference and named as the child's
//!   `FROM` line names it;
//! - [`labels`]: the labels every image carries.
//!
//! It owns no run: no cancellation, no reporter, no lock. The callers decide what a failure means
//! (one container failed, or the whole run) from the typed errors here.

pub mod assemble;
pub mod labels;
mod normalize;
pub mod sbom;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub use labels::{image_labels, LABEL_REVISION};
pub use normalize::{
    base_diff_ids, base_reference, download_blob, load, normalize_image, Normalized, OCI_MANIFEST,
};

use crate::context::{ContextError, Entry, EntryKind, EntrySource};
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::hash::Fingerprint;
use crate::image::ImageError;
use crate::model::{ContainerKind, Cookbook};
use crate::registry::{Credential, RegistryError, Repository};

/// Why an image could not be built, assembled, normalized, loaded or published.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot normalize the built image: {0}")]
    Image(#[from] ImageError),
    #[error("cannot create a scratch directory for the normalized image: {0}")]
    Scratch(#[source] std::io::Error),
    #[error("the engine gave the loaded image the id {actual}, not its config digest {expected}")]
    LoadedId { expected: String, actual: String },
    /// The base image of an assembled container cannot be used.
    #[error("base image {reference}: {message}")]
    Base { reference: String, message: String },
    /// The layer of an assembled container could not be written from its context.
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// A repository name the cookbook allows but the registry's grammar does not.
#[derive(Debug, thiserror::Error)]
#[error("invalid registry repository `{reference}`: {reason}")]
pub struct BadRepository {
    pub reference: String,
    pub reason: String,
}

/// Parses a cookbook repository (`registry/name`) for the registry API.
pub fn parse_repo(reference: &str) -> Result<Repository, BadRepository> {
    Repository::parse(reference).map_err(|e| BadRepository {
        reference: reference.to_owned(),
        reason: e.to_string(),
    })
}

/// Why a context tar could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ContextFileError {
    /// The temporary file itself (the system temp dir is full, missing, not writable).
    #[error("cannot write {}: {source}", path.display())]
    Temp {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Writes a container's context to a temporary file of this run: a unique name in the system
/// temp dir (`$TMPDIR`), outside every checkout, deleted when the returned handle drops.
/// Blocking: callers run it on a blocking thread ([`blocking`]).
pub fn write_context(fp: &Fingerprint) -> Result<tempfile::NamedTempFile, ContextFileError> {
    let temp = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextFileError::Temp { path, source }
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!("cookbook-context-{}-", fp.container))
        .suffix(".tar")
        .tempfile()
        .map_err(temp(&std::env::temp_dir()))?;
    let path = tmp.path().to_path_buf();
    let writer = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let (entries, digests) = build_entries(fp);
    let writer = crate::context::tar::write_named(&entries, &digests, writer, &path)?;
    writer.into_inner().map_err(|e| temp(&path)(e.into_error()))
}

/// The context's entries as the engine gets them: with the Dockerfile the build runs
/// ([`Fingerprint::build_dockerfile`]: each external `FROM` naming its pin) in place of the
/// context's, at the same path, so the build's copy is rewritten and the user's tree never is.
fn build_entries(fp: &Fingerprint) -> (Cow<'_, [Entry]>, Cow<'_, [[u8; 32]]>) {
    let at = fp
        .entries
        .iter()
        .position(|e| e.path == fp.context.dockerfile);
    let (Some(text), Some(at)) = (&fp.build_dockerfile, at) else {
        return (Cow::Borrowed(&fp.entries), Cow::Borrowed(&fp.digests));
    };
    let (mut entries, mut digests) = (fp.entries.clone(), fp.digests.clone());
    entries[at] = Entry {
        path: fp.context.dockerfile.clone(),
        kind: EntryKind::File,
        size: text.len() as u64,
        source: EntrySource::Generated(text.clone()),
    };
    digests[at] = Sha256::digest(text).into();
    (Cow::Owned(entries), Cow::Owned(digests))
}

/// The engine build of `fp`'s container from the context tar at `context`: a Dockerfile's build
/// args and target (a generated Dockerfile carries its build args as `ARG` defaults), `labels`,
/// the names to give the image (`tags`), and whether the engine may reuse its build cache.
pub fn request(
    cookbook: &Cookbook,
    fp: &Fingerprint,
    context: &Path,
    labels: BTreeMap<String, String>,
    tags: Vec<String>,
    no_cache: bool,
) -> BuildRequest {
    let (build_args, target) = match &cookbook.containers[&fp.container].kind {
        ContainerKind::Dockerfile(d) => (d.build_args.clone(), d.target.clone()),
        ContainerKind::Generated(_) => (BTreeMap::new(), None),
    };
    BuildRequest {
        context: context.to_path_buf(),
        dockerfile: fp.context.dockerfile.clone(),
        build_args,
        target,
        labels,
        tags,
        pull: false,
        no_cache,
    }
}

/// The image a container's build starts FROM: the final stage of the Dockerfile the engine
/// builds (generated Dockerfiles name a `container:` parent by its local name; a Dockerfile
/// container's external images are named by their pins), with the build arguments.
pub fn base_of(cookbook: &Cookbook, fp: &Fingerprint) -> Option<String> {
    let text = match &fp.build_dockerfile {
        Some(pinned) => std::str::from_utf8(pinned).ok()?,
        None => fp.recipe.get("dockerfile_text")?.as_str()?,
    };
    match &cookbook.containers.get(&fp.container)?.kind {
        ContainerKind::Dockerfile(d) => base_reference(text, &d.build_args, d.target.as_deref()),
        ContainerKind::Generated(g) => base_reference(text, &g.build_args, None),
    }
}

/// Exports the image the engine built for `fp` (`image_id`) and normalizes it, carrying the
/// layers of the image it was built FROM unchanged when it starts with them.
pub async fn normalize_built<E: Engine>(
    engine: &E,
    cookbook: &Cookbook,
    fp: &Fingerprint,
    image_id: &str,
) -> Result<Normalized, BuildError> {
    let base = base_of(cookbook, fp);
    let built = engine
        .inspect_image(image_id)
        .await?
        .map(|info| info.layers)
        .unwrap_or_default();
    let base_ids = base_diff_ids(engine, base.as_deref(), &built).await?;
    normalize_image(engine, image_id, base_ids).await
}

/// Pulls `repo:tag` and names it `local` (`cookbook.local/<project>/<parent>:<hash>`), the name a
/// `container:` child's `FROM` line uses.
pub async fn pull_as<E: Engine>(
    engine: &E,
    repo: &Repository,
    tag: &str,
    credentials: Option<&Credential>,
    local: &str,
) -> Result<(), EngineError> {
    engine.pull(repo, tag, credentials).await?;
    let (local_repo, local_tag) = local.rsplit_once(':').expect("local names have a tag");
    // By the name the engine itself gives what it pulled.
    engine.tag(&repo.with_tag(tag), local_repo, local_tag).await
}

/// Runs `f` on tokio's blocking threads; a panic there is resumed here.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
