//! [`Engine`] on the Docker Engine API, through bollard.
//!
//! - Connection: the engine the docker CLI would choose ([`super::endpoint`]: `DOCKER_HOST`,
//!   its TLS variables, contexts) over the transport its endpoint needs ([`super::transport`]:
//!   a unix socket, plain HTTP, TLS, SSH), then API version negotiation: bollard
//!   targets its newest API version (1.53) by default, newer than Docker 20.10's 1.41, so
//!   [`DockerEngine::connect`] asks `/version`, downgrades, and pins every request path to the
//!   negotiated `/v1.xx` (bollard 0.21 drops that prefix itself: see [`pin_version`]).
//! - Builds use the classic builder (`version=1`, no BuildKit session): BuildKit over the API
//!   needs a gRPC session that bollard only offers behind a feature, and the classic builder
//!   is what Docker 20.10 runs by default. With `pull` unset it never pulls, so a `FROM` of a
//!   local image uses that image.
//! - The classic builder's API takes a single `t=` per bollard's option type, so the first tag
//!   is given to the build and the others are added with `tag` afterwards.
//! - The pushed manifest digest: the daemon sends it in the push stream's `aux` member, but
//!   bollard's `PushImageInfo` has no `aux` field and drops it. The daemon also records it as a
//!   `RepoDigests` entry of the image, a structured field, which is what this module reads.
//! - bollard's timeout bounds the wait for response headers. Requests that answer at once
//!   (ping, inspect, tag, push, whose progress streams without a bound) wait at most
//!   [`REQUEST_TIMEOUT`], so a hung engine is reported; a build answers only after the whole
//!   context is uploaded, so it gets [`BUILD_TIMEOUT`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use super::endpoint::{self, Endpoint, Environment, Selector};
use super::transport::{self, ConnectionCause};
use super::{BuildOutcome, BuildRequest, Engine, EngineError, ImageId, ImageInfo};
use crate::registry::{Credential, Digest, ImageReference, Repository};
use crate::retry::{is_permanent, RetryPolicy};

/// How long to wait for the engine's response headers (see the module header).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a build may take to upload its context before the engine answers.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// A connection to a Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// The same connection with [`BUILD_TIMEOUT`].
    builder: Docker,
    endpoint: String,
    retry: RetryPolicy,
}

impl DockerEngine {
    /// Connects to the environment's engine, as the docker CLI chooses it (`DOCKER_HOST` and
    /// its TLS variables, `DOCKER_CONTEXT`, the current context: [`super::endpoint`]), and
    /// negotiates the API version.
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        DockerEngine::connect_selected(&Selector::Environment).await
    }

    /// Connects to the engine `selector` chooses and negotiates the API version.
    pub async fn connect_selected(selector: &Selector) -> Result<DockerEngine, EngineError> {
        let endpoint = endpoint::resolve(selector, &Environment::from_process())?;
        DockerEngine::connect_endpoint(&endpoint, REQUEST_TIMEOUT).await
    }

    /// [`DockerEngine::connect_selected`], or, when the engine cannot be reached, an
    /// [`unanswered`] client and why (for the commands that go on without an engine: `apply`
    /// when pushing, `verify --rebuild`). Any other failure is an error.
    ///
    /// [`unanswered`]: DockerEngine::unanswered
    pub async fn connect_or_unanswered(
        selector: &Selector,
    ) -> Result<(DockerEngine, Option<EngineError>), EngineError> {
        let endpoint = endpoint::resolve(selector, &Environment::from_process())?;
        match DockerEngine::connect_endpoint(&endpoint, REQUEST_TIMEOUT).await {
            Ok(engine) => Ok((engine, None)),
            Err(e) if e.is_unreachable() => Ok((DockerEngine::unanswered(&endpoint)?, Some(e))),
            Err(e) => Err(e),
        }
    }

    /// Connects to `host` (`unix:///path`, `tcp://host:port` in plain HTTP, `ssh://…`) and
    /// negotiates the API version.
    pub async fn connect_to(host: &str) -> Result<DockerEngine, EngineError> {
        DockerEngine::connect_with_timeout(host, REQUEST_TIMEOUT).await
    }

    /// [`DockerEngine::connect_to`], waiting at most `request_timeout` for an answer to the
    /// requests that answer at once (a hung engine is then reported as unreachable).
    pub async fn connect_with_timeout(
        host: &str,
        request_timeout: Duration,
    ) -> Result<DockerEngine, EngineError> {
        let selector = Selector::Host {
            host: host.to_owned(),
            tls: None,
        };
        let endpoint = endpoint::resolve(&selector, &Environment::from_process())?;
        DockerEngine::connect_endpoint(&endpoint, request_timeout).await
    }

    /// Connects to `endpoint` and negotiates the API version, waiting at most
    /// `request_timeout` for an answer to the requests that answer at once.
    pub async fn connect_endpoint(
        endpoint: &Endpoint,
        request_timeout: Duration,
    ) -> Result<DockerEngine, EngineError> {
        let name = endpoint.describe();
        let docker = transport::client(endpoint, request_timeout)?;
        let docker = docker
            .with_timeout(request_timeout)
            .negotiate_version()
            .await
            .map_err(|e| match e {
                // An answer, but not the engine's: another HTTP server at that address, or an
                // engine that speaks TLS answering a plain-HTTP request.
                BollardError::DockerResponseServerError {
                    status_code,
                    message,
                } if status_code == 400 && message.contains("HTTP request to an HTTPS server") => {
                    EngineError::Connection {
                        endpoint: name.clone(),
                        cause: ConnectionCause::TlsRequired,
                    }
                }
                BollardError::DockerResponseServerError {
                    status_code,
                    message,
                } => EngineError::NotAnEngine {
                    endpoint: name.clone(),
                    message: format!("GET /version answered HTTP {status_code}: {message}"),
                },
                BollardError::JsonDataError { .. }
                | BollardError::JsonSerdeError { .. }
                | BollardError::APIVersionParseError {} => EngineError::NotAnEngine {
                    endpoint: name.clone(),
                    message: format!("GET /version did not answer a Docker version: {e}"),
                },
                other => classify(&name, "version negotiation", other),
            })?;
        let version = docker.client_version();
        let prefix = format!("/v{}.{}", version.major_version, version.minor_version);
        let docker = docker.with_request_modifier(move |request| pin_version(request, &prefix));
        Ok(DockerEngine {
            builder: docker.clone().with_timeout(BUILD_TIMEOUT),
            docker,
            endpoint: name,
            retry: RetryPolicy::default(),
        })
    }

    /// A client for `endpoint`, whose engine did not answer [`DockerEngine::connect_endpoint`]:
    /// nothing is negotiated, and every call fails as that engine fails (unreachable). `apply`
    /// holds one when it goes on without an engine (engine-less builds, `apply/assemble.rs`),
    /// so that the code paths stay the same and any call that would need the engine reports it
    /// as unreachable.
    pub fn unanswered(endpoint: &Endpoint) -> Result<DockerEngine, EngineError> {
        let name = endpoint.describe();
        let docker = match transport::client(endpoint, REQUEST_TIMEOUT) {
            Ok(docker) => docker,
            // bollard refuses to make a client for a socket path that does not exist (a stopped
            // engine's): this one fails every request the same way.
            Err(EngineError::Unreachable {
                source: BollardError::SocketNotFoundError(path),
                ..
            }) => Docker::connect_with_custom_transport(
                move |_request| {
                    let path = path.clone();
                    async move { Err(BollardError::SocketNotFoundError(path)) }
                },
                // Only for building request URIs, which this transport never sends.
                Some("http://localhost"),
                REQUEST_TIMEOUT.as_secs(),
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|e| classify(&name, "connect", e))?,
            Err(other) => return Err(other),
        };
        let docker = docker.with_timeout(REQUEST_TIMEOUT);
        Ok(DockerEngine {
            builder: docker.clone().with_timeout(BUILD_TIMEOUT),
            docker,
            endpoint: name,
            retry: RetryPolicy::default(),
        })
    }

    /// The retry policy for pushes.
    pub fn with_retry(mut self, retry: RetryPolicy) -> DockerEngine {
        self.retry = retry;
        self
    }

    /// The bollard client, for modules that speak other parts of the API (deploy: containers and
    /// networks).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// An error of `operation` on this engine, classified like this module's own.
    pub fn classify_error(&self, operation: &str, error: BollardError) -> EngineError {
        classify(&self.endpoint, operation, error)
    }

    /// The negotiated API version, `1.41` on Docker 20.10.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// One push attempt, its progress messages appended to `log`.
    async fn push_once(
        &self,
        repo: &Repository,
        tag: &str,
        auth: &Option<bollard::auth::DockerCredentials>,
        log: &mut Vec<String>,
    ) -> Result<(), PushAttemptError> {
        let options = PushImageOptions {
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let mut stream = self
            .docker
            .push_image(&repo.to_string(), Some(options), auth.clone());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => log.extend(info.status),
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(PushAttemptError::Daemon(error))
                }
                Err(other) => {
                    let transient = is_transient(&other);
                    return Err(PushAttemptError::Engine(
                        classify(&self.endpoint, "push", other),
                        transient,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The digest the daemon recorded for `repo` on the image `repo:tag` after a push.
    async fn pushed_digest(
        &self,
        repo: &Repository,
        tag: &str,
        log: &[String],
    ) -> Result<Digest, EngineError> {
        let reference = repo.with_tag(tag);
        let info = self
            .inspect_image(&reference)
            .await?
            .ok_or_else(|| EngineError::Protocol {
                endpoint: self.endpoint.clone(),
                message: format!("{reference} vanished after its push"),
            })?;
        let candidates: Vec<Digest> = info
            .repo_digests
            .iter()
            .filter_map(|name| ImageReference::parse(name).ok())
            .filter(|r| r.repository() == repo)
            .filter_map(|r| r.digest().cloned())
            .collect();
        match candidates.as_slice() {
            [only] => Ok(only.clone()),
            // The same image pushed under other manifests earlier: the one this push announced
            // is among the words of its progress messages.
            several => several
                .iter()
                .find(|d| {
                    log.iter()
                        .any(|line| line.split_whitespace().any(|w| w == d.as_str()))
                })
                .cloned()
                .ok_or_else(|| EngineError::Protocol {
                    endpoint: self.endpoint.clone(),
                    message: format!(
                        "no single pushed digest recorded for {reference}: {:?}",
                        info.repo_digests
                    ),
                }),
        }
    }
}

impl Engine for DockerEngine {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| classify(&self.endpoint, "ping", e))
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(inspect) => {
                let id = inspect.id.ok_or_else(|| EngineError::Protocol {
                    endpoint: self.endpoint.clone(),
                    message: format!("image {reference} has no id"),
                })?;
                Ok(Some(ImageInfo {
                    id: ImageId::new(id),
                    labels: inspect
                        .config
                        .and_then(|c| c.labels)
                        .map(|l| l.into_iter().collect())
                        .unwrap_or_default(),
                    repo_tags: inspect.repo_tags.unwrap_or_default(),
                    repo_digests: inspect.repo_digests.unwrap_or_default(),
                    layers: inspect.root_fs.and_then(|fs| fs.layers).unwrap_or_default(),
                }))
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(classify(&self.endpoint, "image inspect", e)),
        }
    }

    async fn build_until(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(&str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, EngineError> {
        let file = tokio::fs::File::open(&request.context)
            .await
            .map_err(|source| EngineError::Context {
                path: request.context.clone(),
                source,
            })?;
        let body = bollard::body_try_stream(ReaderStream::with_capacity(file, 256 * 1024));
        let mut stream = self
            .builder
            .build_image(build_options(request), None, Some(body));
        let mut build = BuildStream::default();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = cancel.cancelled() => {
                    if build.running.is_none() {
                        build.running = step_container_announced(&mut stream).await;
                    }
                    drop(stream);
                    build.log.end_line(progress);
                    self.stop_build_container(build.running.as_deref()).await;
                    return Err(EngineError::Cancelled);
                }
            };
            let Some(item) = item else { break };
            match item {
                Ok(info) => build.record(info, progress),
                Err(e) => return Err(self.build_failed(e, build.log, progress)),
            }
        }
        build.log.end_line(progress);

        let image_id = self.built_image(request, build.image_id).await?;
        for name in request.tags.iter().skip(1) {
            let (repo, tag) = split_tag(name);
            self.tag(image_id.as_str(), repo, tag).await?;
        }
        Ok(BuildOutcome {
            image_id,
            log: build.log.lines,
        })
    }

    async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let options = TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| classify(&self.endpoint, "tag", e))
    }

    async fn push(
        &self,
        repo: &Repository,
        tag: &str,
        credentials: Option<&Credential>,
    ) -> Result<Digest, EngineError> {
        let auth = credentials.map(|c| to_docker_credentials(c, repo));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut log = Vec::new();
            let (failure, retryable) = match self.push_once(repo, tag, &auth, &mut log).await {
                Ok(()) => return self.pushed_digest(repo, tag, &log).await,
                // The daemon already retries each layer upload itself; what reaches us is its
                // final word, without a structured cause. Retrying it costs little (layers
                // already uploaded are skipped), unless the words are a refusal: "denied" stays
                // denied however often it is asked.
                Err(PushAttemptError::Daemon(message)) => {
                    let retryable = !is_permanent(&message);
                    (
                        EngineError::PushFailed {
                            reference: repo.with_tag(tag),
                            attempts: attempt,
                            message,
                            log,
                        },
                        retryable,
                    )
                }
                Err(PushAttemptError::Engine(error, transient)) => (error, transient),
            };
            match self.retry.backoff(attempt, None).filter(|_| retryable) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(failure),
            }
        }
    }

    async fn pull(
        &self,
        repo: &Repository,
        tag: &str,
        credentials: Option<&Credential>,
    ) -> Result<ImageId, EngineError> {
        let auth = credentials.map(|c| to_docker_credentials(c, repo));
        let reference = repo.with_tag(tag);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let options = bollard::query_parameters::CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_owned()),
                ..Default::default()
            };
            let mut stream = self.docker.create_image(Some(options), None, auth.clone());
            let mut failure = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(_) => {}
                    // The engine's own words, as they are; retried unless they are a refusal
                    // or say the image does not exist.
                    Err(BollardError::DockerStreamError { error }) => {
                        let retryable = !is_permanent(&error);
                        failure = Some((
                            EngineError::PullFailed {
                                reference: reference.clone(),
                                attempts: attempt,
                                message: error,
                            },
                            retryable,
                        ));
                        break;
                    }
                    Err(other) => {
                        let retryable = is_transient(&other);
                        failure = Some((classify(&self.endpoint, "pull", other), retryable));
                        break;
                    }
                }
            }
            match failure {
                None => {
                    return self.image_exists(&reference).await?.ok_or_else(|| {
                        EngineError::Protocol {
                            endpoint: self.endpoint.clone(),
                            message: format!("{reference} is missing right after its pull"),
                        }
                    })
                }
                Some((error, retryable)) => match retryable
                    .then(|| self.retry.backoff(attempt, None))
                    .flatten()
                {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(error),
                },
            }
        }
    }

    fn export_image(
        &self,
        reference: &str,
    ) -> futures_util::stream::BoxStream<'_, Result<bytes::Bytes, EngineError>> {
        // The export streams for as long as the image is large: the build connection's timeout,
        // not the one for requests that answer at once.
        self.builder
            .export_image(reference)
            .map(|chunk| chunk.map_err(|e| classify(&self.endpoint, "image export", e)))
            .boxed()
    }

    async fn load_image(&self, archive: &std::path::Path) -> Result<(), EngineError> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|source| EngineError::Context {
                path: archive.to_path_buf(),
                source,
            })?;
        let body = bollard::body_try_stream(ReaderStream::with_capacity(file, 256 * 1024));
        let options = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut stream = self.builder.import_image(options, body, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {}
                // The daemon's own words (a layer that does not match, a bad archive).
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(EngineError::Api {
                        endpoint: self.endpoint.clone(),
                        operation: "image load".into(),
                        status: 500,
                        message: error,
                    })
                }
                Err(e) => return Err(classify(&self.endpoint, "image load", e)),
            }
        }
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<bool, EngineError> {
        let options = RemoveImageOptions {
            force: true,
            noprune: false,
            ..Default::default()
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(classify(&self.endpoint, "image removal", e)),
        }
    }
}

impl DockerEngine {
    /// After a cancelled build: closing the build request makes dockerd cancel a classic build
    /// and remove its step container, but on its own time (about a second, measured on 20.10).
    /// Removing the container here, then waiting until the engine no longer knows it, makes
    /// "nothing keeps running" true when the apply returns. Best effort: a failure here leaves
    /// the daemon's own cleanup to finish the job.
    async fn stop_build_container(&self, id: Option<&str>) {
        let Some(id) = id else { return };
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        // 404: the daemon removed it first; 409: its removal is already under way.
        let _ = self.docker.remove_container(id, Some(options)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            match self
                .docker
                .inspect_container(
                    id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
            {
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return,
                Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// The step container a classic-build output chunk announces (" ---> Running in <id>").
fn running_in(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("---> Running in "))
        .map(|id| id.trim().to_owned())
}

/// How long a cancelled build's output is still read for the id of a step container the daemon
/// may have created but not yet announced (it announces it right after creating it).
const ANNOUNCE_GRACE: Duration = Duration::from_millis(500);

/// Reads a cancelled build's output for up to [`ANNOUNCE_GRACE`], for the id of a step
/// container created just before the cancellation (measured: without this, a container created
/// in that instant outlived the apply by about a second, until the daemon removed it).
async fn step_container_announced(
    stream: &mut (impl futures_util::Stream<Item = Result<bollard::models::BuildInfo, BollardError>>
              + Unpin),
) -> Option<String> {
    let deadline = tokio::time::sleep(ANNOUNCE_GRACE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return None,
            item = stream.next() => match item {
                Some(Ok(info)) => {
                    if let Some(id) = info.stream.as_deref().and_then(running_in) {
                        return Some(id);
                    }
                }
                _ => return None,
            },
        }
    }
}

/// Why one push attempt failed.
enum PushAttemptError {
    /// The daemon reported an error in the push stream (`errorDetail`).
    Daemon(String),
    /// The request itself failed; `bool`: worth another attempt.
    Engine(EngineError, bool),
}

/// Puts the negotiated `/v1.xx` in front of the request path. bollard 0.21 builds its URLs with
/// `Url::join` on an absolute path, which drops the version it meant to send, so every request
/// would otherwise be unversioned and served at whatever API the engine speaks newest.
fn pin_version(mut request: bollard::BollardRequest, prefix: &str) -> bollard::BollardRequest {
    let uri = request.uri();
    let path = uri.path();
    let versioned = path
        .strip_prefix("/v")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if versioned {
        return request;
    }
    let text = format!(
        "{}://{}{prefix}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or(path),
    );
    if let Ok(pinned) = text.parse() {
        *request.uri_mut() = pinned;
    }
    request
}

impl DockerEngine {
    /// The error a build stream ended with: the daemon's refusal or a failed step is a failed
    /// build of this container (with its log so far); anything else is the engine's failure.
    fn build_failed(
        &self,
        error: BollardError,
        mut log: LineLog,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> EngineError {
        match error {
            BollardError::DockerStreamError { error } => {
                log.end_line(progress);
                EngineError::BuildFailed {
                    log: log.lines,
                    message: error,
                }
            }
            // The daemon refused the request before building: still a failed build of this
            // container, whatever the status. Docker 20.10 answers a context without its
            // Dockerfile with a 500, so a 5xx here is no sign of a transient failure.
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => {
                log.end_line(progress);
                EngineError::BuildFailed {
                    log: log.lines,
                    message: format!("HTTP {status_code}: {message}"),
                }
            }
            e => classify(&self.endpoint, "build", e),
        }
    }

    /// The built image: the id the stream named, else (engines before API 1.30 send no aux id)
    /// the image the first tag names.
    async fn built_image(
        &self,
        request: &BuildRequest,
        announced: Option<String>,
    ) -> Result<ImageId, EngineError> {
        if let Some(id) = announced {
            return Ok(ImageId::new(id));
        }
        match request.tags.first() {
            Some(tag) => self
                .image_exists(tag)
                .await?
                .ok_or_else(|| EngineError::Protocol {
                    endpoint: self.endpoint.clone(),
                    message: format!("build finished but {tag} does not exist"),
                }),
            None => Err(EngineError::Protocol {
                endpoint: self.endpoint.clone(),
                message: "build finished without an image id".into(),
            }),
        }
    }
}

/// The build API's query for `request`.
fn build_options(request: &BuildRequest) -> BuildImageOptions {
    // bollard's option type wants HashMaps; they only shape this request's query string
    // (the daemon sorts labels into the image config), so no order leaks into an image.
    let to_hash = |map: &BTreeMap<String, String>| -> Option<HashMap<String, String>> {
        (!map.is_empty()).then(|| map.clone().into_iter().collect())
    };
    BuildImageOptions {
        dockerfile: request.dockerfile.clone(),
        t: request.tags.first().cloned(),
        pull: request.pull.then(|| "1".to_owned()),
        rm: true,
        // Also remove the intermediate container of a failed step.
        forcerm: true,
        buildargs: to_hash(&request.build_args),
        labels: to_hash(&request.labels),
        target: request.target.clone().unwrap_or_default(),
        nocache: request.no_cache,
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    }
}

/// What a build's stream has said so far.
#[derive(Default)]
struct BuildStream {
    log: LineLog,
    /// The image id the daemon announced (`aux.ID`).
    image_id: Option<String>,
    /// The container of the step running now: the classic builder names it only in its output
    /// (" ---> Running in <id>", "Removing intermediate container <id>"); there is no
    /// structured field for it.
    running: Option<String>,
}

impl BuildStream {
    fn record(
        &mut self,
        info: bollard::models::BuildInfo,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) {
        if let Some(text) = &info.stream {
            if let Some(id) = running_in(text) {
                self.running = Some(id);
            } else if text.contains("Removing intermediate container") {
                self.running = None;
            }
            self.log.push(text, progress);
        }
        if let Some(status) = &info.status {
            self.log.push(status, progress);
            self.log.end_line(progress);
        }
        if let Some(id) = info.aux.and_then(|aux| aux.id) {
            self.image_id = Some(id);
        }
    }
}

/// Build output arrives in chunks that need not end at line ends: cut it into lines, without
/// the terminal colour codes the classic builder wraps around a step's stderr
/// (`ESC[91m` … `ESC[0m`), which would only be noise in a CI log or a JSON summary. A step whose
/// output does not end in a newline runs into the daemon's next message, exactly as it does in
/// `docker build`: the stream has no other line boundary to go by.
#[derive(Default)]
struct LineLog {
    lines: Vec<String>,
    partial: String,
}

impl LineLog {
    fn push(&mut self, text: &str, progress: &(dyn Fn(&str) + Send + Sync)) {
        for piece in text.split_inclusive('\n') {
            self.partial.push_str(piece);
            if self.partial.ends_with('\n') {
                self.end_line(progress);
            }
        }
    }

    fn end_line(&mut self, progress: &(dyn Fn(&str) + Send + Sync)) {
        if self.partial.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.partial);
        let line = strip_escapes(line.trim_end_matches(['\n', '\r']));
        progress(&line);
        self.lines.push(line);
    }
}

/// `text` without ANSI CSI sequences (`ESC [ params final`). Written here because only the
/// daemon's SGR colour codes need removing; a terminal-emulator crate would be overkill.
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameter and intermediate bytes, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `repo:tag` → (`repo`, `tag`); a name without a tag means `latest`, as in Docker.
fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

fn to_docker_credentials(
    credential: &Credential,
    repo: &Repository,
) -> bollard::auth::DockerCredentials {
    let server = Some(repo.credentials_key().to_owned());
    match credential {
        Credential::Basic { username, password } => bollard::auth::DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.clone()),
            serveraddress: server,
            ..Default::default()
        },
        Credential::IdentityToken(token) => bollard::auth::DockerCredentials {
            identitytoken: Some(token.clone()),
            serveraddress: server,
            ..Default::default()
        },
    }
}

/// Transport failures and overload answers, worth another try; not a 5xx whose message is a
/// refusal (the daemon answers some registry refusals with a 500).
fn is_transient(error: &BollardError) -> bool {
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => (*status_code == 429 || *status_code >= 500) && !is_permanent(message),
        other => is_transport(other),
    }
}

/// Failures to talk to the engine at all (as opposed to the engine saying no).
fn is_transport(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
    )
}

pub(super) fn classify(endpoint: &str, operation: &str, error: BollardError) -> EngineError {
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            endpoint: endpoint.to_owned(),
            operation: operation.to_owned(),
            status: status_code,
            message,
        },
        // A transport of ours that names the failed step (a certificate, a refused
        // connection, ssh's host key): that step, not a generic "is it running?".
        e if is_transport(&e) => match transport::cause_of(&e) {
            Some(cause) => EngineError::Connection {
                endpoint: endpoint.to_owned(),
                cause,
            },
            None => EngineError::Unreachable {
                endpoint: endpoint.to_owned(),
                source: e,
            },
        },
        e => EngineError::Protocol {
            endpoint: endpoint.to_owned(),
            message: format!("{operation}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines() {
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |line: &str| seen.lock().unwrap().push(line.to_owned());
        let mut log = LineLog::default();
        log.push("Step 1/2 : FROM x\n ---> abc\nhal", &progress);
        log.push("f a line\r\n", &progress);
        log.push("no newline at the end", &progress);
        log.end_line(&progress);
        log.end_line(&progress);
        let expected = vec![
            "Step 1/2 : FROM x",
            " ---> abc",
            "half a line",
            "no newline at the end",
        ];
        assert_eq!(log.lines, expected);
        assert_eq!(*seen.lock().unwrap(), expected);
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(strip_escapes("\u{1b}[91mon-stderr"), "on-stderr");
        assert_eq!(strip_escapes("\u{1b}[0mRemoving x"), "Removing x");
        assert_eq!(strip_escapes("a\u{1b}[1;31mb\u{1b}[0m"), "ab");
        assert_eq!(strip_escapes("plain [91m"), "plain [91m");
        assert_eq!(strip_escapes("dangling \u{1b}"), "dangling \u{1b}");
    }

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b", "v1")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(split_tag("a:b"), ("a", "b"));
        assert_eq!(split_tag("a"), ("a", "latest"));
    }
}
