//! The engine edge: what `cookbook apply` needs from a container engine, as a trait.
//!
//! Place in the pipeline: after hashing and writing the deterministic build context (a tar
//! file), `apply` asks the engine whether an image is already there ([`Engine::image_exists`]),
//! builds it from the context ([`Engine::build`]), tags and pushes it ([`Engine::tag`],
//! [`Engine::push`]). [`docker::DockerEngine`] implements it on the Docker Engine API through
//! bollard; nothing here shells out to the docker CLI.
//!
//! Invariants:
//! - the build context is streamed from its file, never held whole in memory;
//! - a build never pulls (`pull: false` unless asked), so `FROM` a local image built earlier in
//!   the run is used as is, never replaced by a registry copy;
//! - a failed build keeps its whole log ([`EngineError::BuildFailed`]);
//! - an unreachable engine is [`EngineError::Unreachable`] naming the endpoint, and an HTTP
//!   server that is not a Docker engine is [`EngineError::NotAnEngine`] (both exit code 3; the
//!   codes are mapped in src/error.rs, which imports this module, never the other way round);
//! - the engine's own words are kept: a push or pull that fails in its progress stream reports
//!   the daemon's message as it is, with no invented status.
//! - a cancelled build ([`Engine::build_until`]) is stopped in the engine before the call
//!   returns: no build step keeps running behind a cancelled apply.
//! - an image leaves the engine as a stream ([`Engine::export_image`], `docker save`) and comes
//!   back from a file ([`Engine::load_image`], `docker load`): `apply` normalizes between the two
//!   (crate::image), never holding a layer in memory.
//!
//! The trait's methods return `impl Future + Send` (not `async fn`) so that `apply` can run
//! builds on tokio tasks; implementations may still write `async fn`.

pub mod docker;
pub mod endpoint;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::registry::{Credential, Digest, Repository};

pub use docker::DockerEngine;
pub use endpoint::{Endpoint, EndpointError, Selector};
pub use transport::ConnectionCause;

/// The engine's id of a local image (`sha256:…` of its configuration).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageId(String);

impl ImageId {
    pub fn new(id: impl Into<String>) -> ImageId {
        ImageId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the engine knows about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: ImageId,
    pub labels: BTreeMap<String, String>,
    /// `repo:tag` names pointing at the image.
    pub repo_tags: Vec<String>,
    /// `repo@digest` names the engine recorded when it pushed or pulled the image.
    pub repo_digests: Vec<String>,
    /// The image's layers' diff_ids (`sha256:…` of each uncompressed layer tar), base first.
    pub layers: Vec<String>,
}

/// One image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The build context: an uncompressed tar file, streamed to the engine.
    pub context: PathBuf,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    /// The stage to build in a multi-stage Dockerfile; `None` for the last one.
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `repo:tag` names for the built image (may be empty).
    pub tags: Vec<String>,
    /// Ask the engine to pull newer base images. `apply` never does: bases are either built in
    /// the same run or pinned, and a pull would replace them.
    pub pull: bool,
    /// Build every step afresh, without the engine's build cache: `verify --rebuild` asks for
    /// it, since a cached step would only show the first build again.
    pub no_cache: bool,
}

impl BuildRequest {
    /// A request for `context` with its `Dockerfile` at the root and nothing else set.
    pub fn new(context: impl Into<PathBuf>) -> BuildRequest {
        BuildRequest {
            context: context.into(),
            dockerfile: "Dockerfile".to_owned(),
            build_args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            tags: Vec::new(),
            pull: false,
            no_cache: false,
        }
    }
}

/// A successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    pub image_id: ImageId,
    /// Every line the engine printed, in order.
    pub log: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No connection to the engine. Exit code 3.
    #[error("cannot connect to the Docker engine at {endpoint}: is it running, and is DOCKER_HOST right?")]
    Unreachable {
        endpoint: String,
        source: bollard::errors::Error,
    },
    /// Something answers at `DOCKER_HOST`, but not as a Docker engine (its `/version` is not
    /// the engine's). Exit code 3: there is no engine to talk to.
    #[error("not a Docker engine at {endpoint}: {message}")]
    NotAnEngine { endpoint: String, message: String },
    /// No engine could be chosen: a host that does not parse, a docker context that does not
    /// exist or is broken ([`endpoint`]). Exit code 2.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The engine's address was reached, or tried, and the connection failed at a step that
    /// `cause` names: a certificate, the TLS handshake, a refused connection, SSH's host key or
    /// login. Exit code 3.
    #[error("cannot connect to the Docker engine at {endpoint}: {cause}")]
    Connection {
        endpoint: String,
        cause: ConnectionCause,
    },
    /// The engine refused a request (`status` is its HTTP status). Exit code 1.
    #[error("Docker engine at {endpoint} refused {operation}: HTTP {status}: {message}")]
    Api {
        endpoint: String,
        operation: String,
        status: u16,
        message: String,
    },
    /// A build step failed; `log` is the whole build output up to the failure. Exit code 1.
    #[error("build failed: {message}")]
    BuildFailed { log: Vec<String>, message: String },
    /// A push failed after its retries; `log` is the last attempt's progress. Exit code 1.
    #[error("push of {reference} failed after {attempts} attempt(s): {message}")]
    PushFailed {
        reference: String,
        attempts: u32,
        message: String,
        log: Vec<String>,
    },
    /// A pull failed after its retries (a refusal or a missing image is not retried); `message`
    /// is the engine's own. Exit code 1.
    #[error("pull of {reference} failed after {attempts} attempt(s): {message}")]
    PullFailed {
        reference: String,
        attempts: u32,
        message: String,
    },
    /// The build context file cannot be read. Exit code 1.
    #[error("cannot read the build context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The build was cancelled (`Engine::build_until`) and the engine has stopped it.
    #[error("build cancelled")]
    Cancelled,
    /// The engine answered something this client cannot use. Exit code 1.
    #[error("unexpected answer from the Docker engine at {endpoint}: {message}")]
    Protocol { endpoint: String, message: String },
}

impl EngineError {
    /// No engine to talk to: none answers at the address ([`EngineError::Unreachable`]), or the
    /// connection failed at a step ([`EngineError::Connection`]: a certificate, a handshake,
    /// ssh). The flows that go on without an engine, or end the run with exit code 3, ask this.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            EngineError::Unreachable { .. } | EngineError::Connection { .. }
        )
    }
}

/// What `apply` needs from a container engine.
pub trait Engine: Send + Sync {
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`).
    fn endpoint(&self) -> &str;

    /// Ok when the engine answers.
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// The local image `reference` (a name, `repo:tag` or id) names, if any.
    fn inspect_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, EngineError>> + Send;

    /// The id of the local image `reference` names, if any.
    fn image_exists(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageId>, EngineError>> + Send {
        async move { Ok(self.inspect_image(reference).await?.map(|info| info.id)) }
    }

    /// Builds `request`, calling `progress` with each output line as it arrives.
    fn build(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> impl Future<Output = Result<BuildOutcome, EngineError>> + Send {
        async move {
            self.build_until(request, progress, &CancellationToken::new())
                .await
        }
    }

    /// [`Engine::build`], stopped when `cancel` fires: the engine stops the build (nothing of it
    /// keeps running once this returns) and the answer is [`EngineError::Cancelled`].
    fn build_until(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(&str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<BuildOutcome, EngineError>> + Send;

    /// Points `repo:tag` at the local image `source`.
    fn tag(
        &self,
        source: &str,
        repo: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Pushes `repo:tag` and returns the registry's manifest digest for it. Transient failures
    /// are retried with backoff; a refusal (`denied`, `unauthorized`) is not.
    fn push(
        &self,
        repo: &Repository,
        tag: &str,
        credentials: Option<&Credential>,
    ) -> impl Future<Output = Result<Digest, EngineError>> + Send;

    /// Pulls `repo:tag` from its registry into the local engine (apply uses it to bring a
    /// parent image that is cached only in the registry, by its immutable content tag).
    fn pull(
        &self,
        repo: &Repository,
        tag: &str,
        credentials: Option<&Credential>,
    ) -> impl Future<Output = Result<ImageId, EngineError>> + Send;

    /// The local image `reference` as the engine exports it (`docker save`: a tar of its config,
    /// layers and a `manifest.json`), streamed as it is produced.
    fn export_image(
        &self,
        reference: &str,
    ) -> futures_util::stream::BoxStream<'_, Result<bytes::Bytes, EngineError>>;

    /// Loads the image archive `archive` (a `docker load` tar), streamed from its file; the
    /// names in its `manifest.json` then point at it.
    fn load_image(&self, archive: &Path) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes the local image name `reference` (untags; deletes when it was the last name).
    /// `false` when there was no such image.
    fn remove_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send;
}
