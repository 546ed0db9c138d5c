//! The one place that maps failures to exit codes.
//!
//! | code | meaning                                                                    |
//! |------|----------------------------------------------------------------------------|
//! | 0    | success                                                                    |
//! | 1    | the work failed, or a service or the local system said no                  |
//! | 2    | invalid input: the cookbook, an argument, a path, a config file            |
//! | 3    | an external service (Docker engine, registry, git remote) is unreachable   |
//! | 130  | stopped by SIGINT (Ctrl-C): builds cancelled, completed work in the lock   |
//! | 143  | stopped by SIGTERM: the same                                               |
//!
//! Row by row (README.md "Exit codes" has the same table; tests/it/exit_codes.rs runs the binary
//! for the rows a local run can reach, the unit tests below map the others' typed errors, and
//! tests/it/hostile_registry.rs, tests/it/deploy.rs and tests/it/kubernetes.rs reach the registry's and
//! the sites' rows end to end):
//!
//! | failure                                                                  | code |
//! |--------------------------------------------------------------------------|------|
//! | the cookbook is invalid (every problem located), an unknown site/container | 2  |
//! | `cookbook.lock` is malformed or does not fit itself (every problem located: line:column, JSON pointer), for every command that reads it | 2 |
//! | a path that names nothing usable (ENOENT, ENOTDIR, EISDIR), read or written | 2 |
//! | local I/O failure (ENOSPC, EIO, EACCES, EFBIG…) reading or writing a tar, the lock, an explain document, the cookbook: path and verb named | 1 |
//! | a build context input at fault (special file, link out, not UTF-8, bad `.dockerignore`, too deep) | 2 |
//! | a file changed while its context was written                             | 1    |
//! | a build or push failed; verify found a mismatch                          | 1    |
//! | the engine refused a request (its status and message kept)               | 1    |
//! | a push/pull refused ("denied", "unauthorized", "manifest unknown"): not retried | 1 |
//! | the registry refused: 401/403 or a body saying `DENIED`, never retried   | 1    |
//! | the registry answered something unusable (bad digest, unexpected status) | 1    |
//! | the registry sent a body past its cap (a manifest over 4 MiB, a blob longer than its descriptor…) | 1 |
//! | the registry handed over a URL that would take HTTPS to plain HTTP (or not HTTP at all) | 1 |
//! | a registry host that makes no URL (a port out of range)                 | 2    |
//! | a malformed Docker config (`config.json` with a JSON error): file:line:column | 2 |
//! | a Docker config that cannot be read, a failing credential helper         | 1    |
//! | the Docker engine cannot be reached, or what answers is not a Docker engine | 3 |
//! | the registry cannot be reached, or answers 5xx/429 until the retries run out | 3 |
//! | `DOCKER_HOST` with a transport cookbook does not speak; an image reference that does not parse | 2 |
//! | a base image that cannot be pinned: the engine or registry is unreachable    | 3    |
//! | a base image that cannot be pinned: neither the engine nor its registry has it | 1  |
//! | a base image that cannot be pinned: the engine or registry names it by a digest that is not sha256 | 1 |
//! | git: the remote refused (credentials, no such repository), naming what to check | 1 |
//! | git: a malformed remote URL; a branch the remote does not have           | 2    |
//! | git: no connection to the remote                                         | 3    |
//! | Kubernetes: an unusable kubeconfig                                       | 2    |
//! | Kubernetes: the API server does not answer                               | 3    |
//! | Kubernetes: a server-side apply conflict, or the API server refused      | 1    |
//! | Kubernetes: an object with one of our names that is not ours (by labels) | 1    |
//! | a key file that is not a usable key (not PEM, not PKCS#8/SPKI, encrypted, an algorithm cookbook does not sign with), missing, or a private key others may read | 2 |
//! | a signature that does not verify                                         | 1    |
//! | promote, deploy into a stage with `approvers`: its approval unsigned, signed by a key not listed, changed after signing, or signed for other images or another stage | 1 |
//! | deploy, promote, status, render, sync --deploy: an unknown site or stage, a stage the site does not serve, a lock of another project or naming an image outside its container's repository | 2 |
//! | deploy, promote, status, render, sync --deploy: a container not published yet (not in the lock) | 1 |
//! | deploy: a name the stage needs held by what is not its own (compose's, another site's) | 1 |
//! | deploy: a wave not healthy, or the engine/API failing mid-deploy (then rolled back per `on_failure`) | 1; 3 if the site became unreachable |
//! | deploy: stopped by SIGINT/SIGTERM between steps (then rolled back per `on_failure`) | 130/143 |
//! | status: the stage is not what the lock says (exited, missing, restarting, unhealthy, drifted), after the report (`NotAsLocked`) | 1 |
//! | exec: the command's exit code (`Exited`, 1–255; another code is 1) | its code |
//! | exec: a container the stage does not have; a Kubernetes site (the `kubectl exec` named) | 2 |
//! | exec: the container is not running | 1 |
//! | down: an unknown site or stage, or one the site does not serve | 2 |
//! | a TLS file that is not usable (missing, not PEM, no certificate or key in it, a key that does not match its certificate) | 2 |
//! | fleet: a sites file that does not parse or fit (unknown field, an URL not `https://`, a name twice): file:line:column | 2 |
//! | fleet: a site that gave no status (no connection, TLS refused, an HTTP error, an unusable document) | 3 |
//! | events: `--state` names a file, not a directory; a `--since` that is neither a duration nor RFC 3339 | 2 |
//! | events: the event log cannot be read (EACCES, EIO…) | 1 |
//!
//! Why: 3 says "the service, not the work, failed: retry later"; 1 says "it takes a person"
//! (credentials, a full disk, a failed build); 2 says "the command as given cannot work".
//! The edges (`engine`, `registry`, `sync`, `context`) do not import this module; it imports
//! them, so that the mapping stays here and no import cycle forms.

use std::path::PathBuf;

use crate::apply::pin::PinError;
use crate::apply::ApplyError;
use crate::attest::key::KeyError;
use crate::context::ContextError;
use crate::deploy::desired::DesiredError;
use crate::deploy::kubernetes::KubeError;
use crate::deploy::session::{listed, DeployError, WaveError};
use crate::deploy::BackendError;
use crate::diagnostic::Diagnostic;
use crate::engine::EngineError;
use crate::git::{GitError, RevisionError};
use crate::registry::{CredentialError, ReferenceError, RegistryError};
use crate::state::lock::LockError;
use crate::tls::TlsError;
use crate::verify::VerifyError;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;
/// 128 + the signal's number, as shells report a process a signal ended.
pub const EXIT_SIGINT: i32 = 130;
pub const EXIT_SIGTERM: i32 = 143;

/// Documented in `--help`; tested in `tests/it/cli.rs`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  the work failed (a build, a push, a verification)
  2  invalid input (the cookbook, an argument, a path)
  3  an external service (Docker engine, registry, git remote) is unreachable";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cookbook (or another input file in its format's terms: the fleet's sites file) has
    /// problems; each diagnostic is located in it.
    #[error("{file}: {} problem(s) found", diagnostics.len())]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// `diff` found this many differences: the normal "they differ" answer, already printed in
    /// full, so no error line follows (exit 1, as diff(1)).
    #[error("{0} difference(s)")]
    Differences(usize),

    /// `cookbook exec`: the command ran and exited with this code (not 0), which is the
    /// command's exit code; it printed all there is to say.
    #[error("the command exited with code {code}")]
    Exited { code: i32 },

    /// `cookbook status`: the stage is not what the lock says (a container exited, missing,
    /// unhealthy or drifted); the report, printed already, names each problem.
    #[error("{stage}: {problems} problem(s): the stage is not what cookbook.lock says")]
    NotAsLocked { stage: String, problems: usize },

    /// A well-formed request that does not fit the cookbook (an unknown site or container).
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },

    /// A build context could not be listed, read or written: the input at fault (2), or the local
    /// system failing (1; see [`context_exit_code`]).
    #[error(transparent)]
    Context(#[from] ContextError),

    /// The work was done and its answer is "no" (two manifests differ, a verification failed).
    #[error("{0}")]
    Failed(String),

    /// The Docker engine failed or could not be reached.
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The registry failed, refused, or could not be reached.
    #[error(transparent)]
    Registry(#[from] RegistryError),

    /// A stage with `lifecycle.approvers` refused the approval these images have: unsigned,
    /// signed by a key not listed, not verifying, or signed for something else.
    #[error(transparent)]
    Approval(Box<crate::deploy::approvals::SignedRefusal>),

    /// `deploy --require-attestations`: an image whose provenance or SBOM does not verify (1);
    /// nothing was deployed.
    #[error("{}", unattested(stage, refused))]
    Unattested {
        stage: String,
        /// Each refused container with every reason.
        refused: Vec<(String, Vec<crate::verify::Reason>)>,
    },

    /// A key file (`--signing-key`, `key id`) that cannot be used, or a signature that does
    /// not verify.
    #[error(transparent)]
    Key(#[from] KeyError),

    /// A Kubernetes site's API failed, refused (a server-side apply conflict), or could not be
    /// reached; or its kubeconfig cannot be used.
    #[error(transparent)]
    Kube(#[from] crate::deploy::kubernetes::KubeError),

    /// An image or repository name that does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// `cookbook.lock` could not be read or written, or is not a valid lock (every problem
    /// located).
    #[error(transparent)]
    Lock(#[from] LockError),

    /// A whole apply run failed (as opposed to one of its containers).
    #[error(transparent)]
    Apply(#[from] ApplyError),

    /// `cookbook sync` could not run its round (see `SyncError` for which are which code).
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),

    /// The event log (`cookbook events`) could not be read or written.
    #[error(transparent)]
    Events(#[from] crate::state::events::EventsError),

    /// `cookbook sync` refused the remote's revision and kept the current one.
    #[error("refused revision {commit}: {reason}")]
    SyncRefused { commit: String, reason: String },

    /// `cookbook sync --apply` took a revision but its apply failed; it is not counted as applied.
    #[error("apply of revision {commit} failed: {message}")]
    SyncApplyFailed { commit: String, message: String },
    /// `verify` could not verify at all (a bad lock file, an unknown revision); a mismatch is
    /// [`Error::Failed`].
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A run stopped by a signal (`code`: 130 for SIGINT, 143 for SIGTERM).
    #[error("stopped by {signal}: running builds cancelled; what completed is in cookbook.lock")]
    Interrupted { signal: &'static str, code: i32 },
    /// `cookbook sync --deploy` could not deploy a stage (`stage`), or the site (`None`): the
    /// error that stopped it (a deploy that changed something was rolled back).
    #[error("sync --deploy{}: {source}", stage.as_deref().map(|s| format!(" of stage {s}")).unwrap_or_default())]
    SyncDeployFailed {
        stage: Option<String>,
        source: Box<Error>,
    },
    /// A deploy, `status` or `render` of a container the lock has no image for yet: the request
    /// is fine, what it needs is not there yet (1, for every command).
    #[error("container `{container}` is not in cookbook.lock: it has not been published yet; run `cookbook apply` to build and publish it")]
    NotPublished { container: String },
    /// An image read from the engine (`sbom`) could not be exported and normalized: the
    /// engine's failure (its own code), or the export not being one image (1).
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    /// A normalized image's blob could not be read back (1).
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// The lock names an image the local engine does not hold (1): `sbom` reads it from there.
    #[error("the image of `{container}` ({image_id}) is not in the local engine: run `cookbook apply --no-push` to build it here, or pull {image} and run `cookbook apply` (it loads what it pulls)")]
    ImageNotInEngine {
        container: String,
        image_id: String,
        image: String,
    },
    /// The sources give another input hash than the lock's image was built from (1): what
    /// they say (`sbom`'s packages) would not describe that image.
    #[error("`{container}` changed since its image was built (input hash {computed}, cookbook.lock's {locked}): run `cookbook apply`, then `cookbook sbom {container}`")]
    ChangedSinceBuilt {
        container: String,
        computed: String,
        locked: String,
    },
    /// A certificate, key or CA file for the agent's or the fleet client's TLS that cannot be
    /// used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `fleet status`: these sites (of `total`) gave no status; the others' rows were printed.
    #[error("{} of {total} site(s) did not answer: {}", sites.len(), sites.join(", "))]
    Unanswered { sites: Vec<String>, total: usize },
    /// A deploy that stopped once it had changed something (what failed, what was restored:
    /// `DeployError::Stopped`), or refused to touch what is not the stage's
    /// (`BackendError::NotOurs`). `signal`: the signal that stopped it, and its exit code.
    #[error("{}{error}", signal.map(|(name, _)| format!("{name}: ")).unwrap_or_default())]
    Deploy {
        error: Box<DeployError>,
        signal: Option<(&'static str, i32)>,
    },
}

impl From<Box<crate::deploy::approvals::SignedRefusal>> for Error {
    fn from(e: Box<crate::deploy::approvals::SignedRefusal>) -> Error {
        Error::Approval(e)
    }
}

/// A local I/O error: 2 when the path given names nothing usable (it is the argument, or the
/// cookbook's, that is wrong), 1 for the system failing (a full disk, EIO, a refused
/// permission, a file grown past its limit).
pub fn io_exit_code(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound | K::NotADirectory | K::IsADirectory | K::InvalidFilename => EXIT_INVALID,
        _ => EXIT_FAILED,
    }
}

fn context_exit_code(e: &ContextError) -> i32 {
    match e {
        ContextError::Io { source, .. } | ContextError::Write { source, .. } => {
            io_exit_code(source)
        }
        // The input moved under the run: nothing is wrong with the command; run again.
        ContextError::Changed { .. } => EXIT_FAILED,
        ContextError::Special { .. }
        | ContextError::LinkOutside { .. }
        | ContextError::Outside { .. }
        | ContextError::NotUtf8 { .. }
        | ContextError::Ignore { .. }
        | ContextError::IgnoreFile { .. }
        | ContextError::Missing { .. }
        | ContextError::TooDeep { .. }
        | ContextError::FromLine { .. }
        | ContextError::DockerfileFile { .. } => EXIT_INVALID,
    }
}

fn engine_exit_code(e: &EngineError) -> i32 {
    match e {
        EngineError::Unreachable { .. }
        | EngineError::NotAnEngine { .. }
        | EngineError::Connection { .. } => EXIT_UNREACHABLE,
        EngineError::Endpoint(_) => EXIT_INVALID,
        EngineError::Api { .. }
        | EngineError::BuildFailed { .. }
        | EngineError::PushFailed { .. }
        | EngineError::PullFailed { .. }
        | EngineError::Context { .. }
        | EngineError::Cancelled
        | EngineError::Protocol { .. } => EXIT_FAILED,
    }
}

fn registry_exit_code(e: &RegistryError) -> i32 {
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. } => EXIT_UNREACHABLE,
        RegistryError::Credentials(CredentialError::Malformed { .. }) => EXIT_INVALID,
        RegistryError::Credentials(CredentialError::Unreadable { source, .. }) => {
            io_exit_code(source)
        }
        // A registry that breaks the protocol (a body past its cap, a URL handed over that
        // would downgrade HTTPS) answered, so it is not 3, and retrying later will not change
        // its answer; nor is it the user's input (2): it takes a person, like any other
        // unusable answer.
        RegistryError::Unauthorized { .. }
        | RegistryError::Credentials(CredentialError::Lookup { .. })
        | RegistryError::UnexpectedStatus { .. }
        | RegistryError::InvalidResponse { .. }
        | RegistryError::TooLarge { .. }
        | RegistryError::UnsafeUrl { .. }
        | RegistryError::Client { .. } => EXIT_FAILED,
        // What the registry holds beside an image is not what it should be (an attestation
        // attached to another image, bytes that do not match their digest, a referrers list
        // that is no index): a check that fails, like a digest `verify` finds moved.
        RegistryError::ManifestMissing { .. }
        | RegistryError::DigestMismatch { .. }
        | RegistryError::OtherSubject { .. }
        | RegistryError::NotAnArtifact { .. }
        | RegistryError::BadReferrersIndex { .. }
        | RegistryError::ReferrersTagContended { .. } => EXIT_FAILED,
        // A repository whose host makes no URL (a port out of range): the reference is wrong.
        RegistryError::BadHost { .. } => EXIT_INVALID,
    }
}

fn lock_exit_code(e: &LockError) -> i32 {
    match e {
        LockError::Write { .. } => EXIT_FAILED,
        LockError::Read { source, .. } => io_exit_code(source),
        LockError::Invalid { .. } | LockError::Unusable { .. } | LockError::OtherProject { .. } => {
            EXIT_INVALID
        }
    }
}

fn pin_exit_code(e: &PinError) -> i32 {
    match e {
        PinError::NotSha256 { .. } => EXIT_FAILED,
        PinError::Registry { source, .. } => registry_exit_code(source),
        PinError::Engine { source, .. } => engine_exit_code(source),
        PinError::NotFound { .. } => EXIT_FAILED,
        PinError::NoEngine { .. } => EXIT_UNREACHABLE,
        PinError::Lock(e) => lock_exit_code(e),
        PinError::Dockerfile(e) => context_exit_code(e),
    }
}

fn kube_exit_code(e: &KubeError) -> i32 {
    match e {
        KubeError::Config { .. } => EXIT_INVALID,
        KubeError::Unreachable { .. } => EXIT_UNREACHABLE,
        KubeError::Secret { .. } => EXIT_INVALID,
        KubeError::Conflict { .. }
        | KubeError::NotOurs { .. }
        | KubeError::Lacks { .. }
        | KubeError::Api { .. } => EXIT_FAILED,
    }
}

fn backend_exit_code(e: &BackendError) -> i32 {
    match e {
        BackendError::Engine(e) => engine_exit_code(e),
        BackendError::Kube(e) => kube_exit_code(e),
        BackendError::NotOurs { .. } => EXIT_FAILED,
        BackendError::Secret(_) => EXIT_INVALID,
    }
}

/// What should run cannot be worked out: the one mapping of every command that asks (`deploy`,
/// `promote`, `status`, `render`, `sync --deploy`). A request that does not fit the cookbook, or a
/// lock that is not this project's or points a container elsewhere, is input (2, its help naming
/// what would fit); a container not published yet is [`Error::NotPublished`] (1).
fn unattested(stage: &str, refused: &[(String, Vec<crate::verify::Reason>)]) -> String {
    let mut text = format!(
        "refusing to deploy to {stage}: {} image(s) without a sound attestation",
        refused.len()
    );
    for (container, reasons) in refused {
        for reason in reasons {
            text.push_str(&format!("\n  {container}: {reason}"));
        }
    }
    text
}

impl From<DesiredError> for Error {
    fn from(e: DesiredError) -> Self {
        let help = match &e {
            DesiredError::NotPublished { container } => {
                return Error::NotPublished {
                    container: container.clone(),
                }
            }
            DesiredError::UnknownSite { site, known } => {
                crate::model::suggest(site, "sites", known.iter().map(String::as_str))
            }
            DesiredError::UnknownStage { stage, known } => {
                crate::model::suggest(stage, "stages", known.iter().map(String::as_str))
            }
            DesiredError::StageNotServed { served, .. } => listed("it serves", served),
            // The lock is input: one another project wrote is refused as `Lock::read_for` refuses
            // it; one that points a container elsewhere like a malformed one.
            DesiredError::OtherProject { .. } => None,
            DesiredError::ForeignImage { .. } => Some(
                "`cookbook apply` writes each container's own repository; restore cookbook.lock from git (`git log -p -- cookbook.lock` shows who changed it)".to_owned(),
            ),
        };
        Error::Usage {
            message: e.to_string(),
            help,
        }
    }
}

/// The library's deploy failures as the command's errors. A failure that is the backend's keeps
/// its edge's arm (engine, cluster); one that changed something, refused a namesake or could not
/// keep its records stays a [`DeployError`] (its code: [`deploy_exit_code`]).
impl From<DeployError> for Error {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Backend(BackendError::Engine(e)) => Error::Engine(e),
            DeployError::Backend(BackendError::Kube(e)) => Error::Kube(e),
            DeployError::Desired(e) => e.into(),
            DeployError::Unapproved(u) => Error::Usage {
                message: u.to_string(),
                help: Some(u.help()),
            },
            DeployError::RuleNotMet(message) | DeployError::Failed(message) => {
                Error::Failed(message)
            }
            DeployError::Usage { message, help } => Error::Usage { message, help },
            e @ (DeployError::Backend(BackendError::NotOurs { .. } | BackendError::Secret(_))
            | DeployError::Records(_)
            | DeployError::Stopped(_)) => Error::Deploy {
                error: Box::new(e),
                signal: None,
            },
        }
    }
}

/// A deploy that stopped: by its cause (the site gone unreachable mid-deploy is 3), whatever the
/// rollback did.
fn deploy_exit_code(e: &DeployError) -> i32 {
    match e {
        DeployError::Backend(e) => backend_exit_code(e),
        DeployError::Records(_) | DeployError::RuleNotMet(_) | DeployError::Failed(_) => {
            EXIT_FAILED
        }
        DeployError::Usage { .. } | DeployError::Unapproved(_) => EXIT_INVALID,
        DeployError::Desired(e) => Error::from(e.clone()).exit_code(),
        DeployError::Stopped(stopped) => match &stopped.cause {
            WaveError::Backend { source, .. } => backend_exit_code(source),
            WaveError::Unhealthy { .. } | WaveError::Interrupted { .. } => EXIT_FAILED,
        },
    }
}

fn key_exit_code(e: &KeyError) -> i32 {
    match e {
        KeyError::InFile { source, .. } => key_exit_code(source),
        KeyError::BadSignature => EXIT_FAILED,
        // Signing with a key that parsed does not fail; if it does, the system failed.
        KeyError::Signing(_) => EXIT_FAILED,
        KeyError::Read {
            source: crate::context::file::FileError::Io(e),
            ..
        } => io_exit_code(e),
        KeyError::Read { .. }
        | KeyError::UnknownAlgorithm(_)
        | KeyError::NotPem(_)
        | KeyError::WrongPem { .. }
        | KeyError::Encrypted
        | KeyError::Traditional(_)
        | KeyError::Unsupported { .. }
        | KeyError::Malformed(_)
        | KeyError::MalformedSignature(_)
        | KeyError::Missing { .. }
        | KeyError::TooOpen { .. } => EXIT_INVALID,
    }
}

fn tls_exit_code(e: &TlsError) -> i32 {
    match e {
        TlsError::Read {
            source: crate::context::file::FileError::Io(e),
            ..
        } => io_exit_code(e),
        TlsError::Missing { .. }
        | TlsError::Read { .. }
        | TlsError::NotPem { .. }
        | TlsError::MalformedPem { .. }
        | TlsError::NoCertificate { .. }
        | TlsError::NoKey { .. }
        | TlsError::Rejected { .. }
        | TlsError::BadCa { .. } => EXIT_INVALID,
        // The TLS stack could not start: the system, not the files.
        TlsError::Client(_) => EXIT_FAILED,
    }
}

fn git_exit_code(e: &GitError) -> i32 {
    match e {
        GitError::Unreachable { .. } => EXIT_UNREACHABLE,
        GitError::BranchNotFound { .. } | GitError::BadRemote { .. } => EXIT_INVALID,
        GitError::Refused { .. }
        | GitError::Git { .. }
        | GitError::Io { .. }
        | GitError::Verifier { .. }
        | GitError::Interrupted => EXIT_FAILED,
    }
}

fn revision_exit_code(e: &RevisionError) -> i32 {
    match e {
        RevisionError::Checkout { .. } | RevisionError::TempDir { .. } => EXIT_FAILED,
        RevisionError::NotInRepository { .. }
        | RevisionError::NoWorkTree { .. }
        | RevisionError::UnknownRevision { .. }
        | RevisionError::NotInRevision { .. } => EXIT_INVALID,
    }
}

impl Error {
    /// A run a signal stopped: an apply it cancelled, a deploy it rolled back. The command ends
    /// with the signal's code, and a loop of rounds ends with it too.
    pub fn stopped_by_signal(&self) -> bool {
        matches!(
            self,
            Error::Interrupted { .. }
                | Error::Deploy {
                    signal: Some(_),
                    ..
                }
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } | Error::Usage { .. } | Error::Reference(_) => EXIT_INVALID,
            Error::Read { source, .. } => io_exit_code(source),
            Error::Context(e) => context_exit_code(e),
            Error::Failed(_) | Error::Differences(_) | Error::NotAsLocked { .. } => EXIT_FAILED,
            // 0..=255 as a shell sees it; a code outside (a negative one) is a failure.
            Error::Exited { code } => {
                if (1..=255).contains(code) {
                    *code
                } else {
                    EXIT_FAILED
                }
            }
            Error::Write { source, .. } => io_exit_code(source),
            Error::Engine(e) => engine_exit_code(e),
            Error::Registry(e) => registry_exit_code(e),
            Error::Lock(e) => lock_exit_code(e),
            Error::Kube(e) => kube_exit_code(e),
            Error::Key(e) => key_exit_code(e),
            Error::Approval(_) | Error::Unattested { .. } => EXIT_FAILED,
            Error::NotPublished { .. } | Error::SyncDeployFailed { .. } => EXIT_FAILED,
            Error::Build(e) => match e {
                crate::build::BuildError::Engine(e) => engine_exit_code(e),
                crate::build::BuildError::Registry(e) => registry_exit_code(e),
                crate::build::BuildError::Context(e) => context_exit_code(e),
                _ => EXIT_FAILED,
            },
            Error::Image(_) | Error::ImageNotInEngine { .. } | Error::ChangedSinceBuilt { .. } => {
                EXIT_FAILED
            }
            Error::Deploy { signal, error } => match signal {
                Some((_, code)) => *code,
                None => deploy_exit_code(error),
            },
            Error::Apply(e) => match e {
                ApplyError::Engine(e) => engine_exit_code(e),
                ApplyError::Registry(e) => registry_exit_code(e),
                ApplyError::Context(e) => context_exit_code(e),
                ApplyError::NoRegistry
                | ApplyError::BadRepository { .. }
                | ApplyError::NoRevision { .. }
                | ApplyError::PoolWithoutPush
                | ApplyError::DuplicateBuilder { .. } => EXIT_INVALID,
                ApplyError::Pin(e) => pin_exit_code(e),
                ApplyError::Lock(e) => lock_exit_code(e),
                ApplyError::EngineNeeded { .. } => EXIT_UNREACHABLE,
                ApplyError::State { .. } | ApplyError::LocalImageMissing { .. } => EXIT_FAILED,
            },
            Error::SyncRefused { .. } | Error::SyncApplyFailed { .. } => EXIT_FAILED,
            Error::Events(e) => {
                use crate::state::events::EventsError as E;
                match e {
                    E::NotADirectory { .. } => EXIT_INVALID,
                    E::Read { .. } | E::Write { .. } | E::TooLong { .. } => EXIT_FAILED,
                }
            }
            Error::Interrupted { code, .. } => *code,
            Error::Sync(e) => {
                use crate::sync::SyncError as S;
                match e {
                    S::Git(g) => git_exit_code(g),
                    // Busy: another sync holds the state; this one did nothing (documented).
                    S::Busy { .. } | S::Io { .. } | S::StateCorrupt { .. } | S::Interrupted => {
                        EXIT_FAILED
                    }
                }
            }
            Error::Tls(e) => tls_exit_code(e),
            // Like a registry that does not answer: the service, not the request.
            Error::Unanswered { .. } => EXIT_UNREACHABLE,
            Error::Verify(e) => match e {
                VerifyError::Lock(e) => lock_exit_code(e),
                VerifyError::Revision(r) => revision_exit_code(r),
                VerifyError::NoLock { .. } | VerifyError::ProjectMismatch { .. } => EXIT_INVALID,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file at fault is input (2), wherever it is named; a signature that does not verify
    /// is a check that failed (1); so is a refused signed approval (tests/it/signed_approvals.rs).
    #[test]
    fn key_errors_map_to_input_and_bad_signatures_to_failure() {
        let in_file = |e: KeyError| KeyError::InFile {
            path: "k.key".into(),
            source: Box::new(e),
        };
        let cases = [
            (KeyError::NotPem("x".into()), EXIT_INVALID),
            (in_file(KeyError::Encrypted), EXIT_INVALID),
            (
                in_file(KeyError::Unsupported {
                    oid: "1.3.101.113".into(),
                    name: "Ed448".into(),
                }),
                EXIT_INVALID,
            ),
            (
                KeyError::TooOpen {
                    path: "k.key".into(),
                    mode: 0o644,
                },
                EXIT_INVALID,
            ),
            (
                KeyError::Missing {
                    path: "k.key".into(),
                },
                EXIT_INVALID,
            ),
            (
                KeyError::Read {
                    path: "k.key".into(),
                    source: crate::context::file::FileError::Io(std::io::Error::from(
                        std::io::ErrorKind::PermissionDenied,
                    )),
                },
                EXIT_FAILED,
            ),
            (KeyError::BadSignature, EXIT_FAILED),
        ];
        for (e, code) in cases {
            assert_eq!(Error::Key(e).exit_code(), code);
        }
    }

    /// Issue 21: what should run, when it cannot be worked out, exits the same in every command
    /// (`deploy`, `promote`, `status`, `render`, `sync --deploy`): the request not fitting the
    /// cookbook or the lock not fitting the project is input (2), an image not published yet is 1.
    #[test]
    fn a_desired_error_has_one_exit_code() {
        let cases = [
            (
                DesiredError::UnknownSite {
                    site: "x".into(),
                    known: vec!["local".into()],
                },
                EXIT_INVALID,
            ),
            (
                DesiredError::UnknownStage {
                    stage: "x".into(),
                    known: vec![],
                },
                EXIT_INVALID,
            ),
            (
                DesiredError::StageNotServed {
                    site: "s".into(),
                    stage: "x".into(),
                    served: vec![],
                },
                EXIT_INVALID,
            ),
            (
                DesiredError::OtherProject {
                    lock: "a".into(),
                    cookbook: "b".into(),
                },
                EXIT_INVALID,
            ),
            (
                DesiredError::ForeignImage {
                    container: "web".into(),
                    image: "evil/web".into(),
                    expected: "r/web".into(),
                },
                EXIT_INVALID,
            ),
            (
                DesiredError::NotPublished {
                    container: "web".into(),
                },
                EXIT_FAILED,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(Error::from(e.clone()).exit_code(), code, "{e}");
            // Through the deploy session (promote), the same code.
            assert_eq!(
                Error::from(DeployError::Desired(e.clone())).exit_code(),
                code,
                "{e}"
            );
            assert_eq!(
                deploy_exit_code(&DeployError::Desired(e.clone())),
                code,
                "{e}"
            );
        }
        let help = match Error::from(DesiredError::UnknownStage {
            stage: "qa".into(),
            known: vec!["dev".into(), "prod".into()],
        }) {
            Error::Usage { help, .. } => help,
            other => panic!("{other:?}"),
        };
        assert_eq!(help.as_deref(), Some("stages in this cookbook: dev, prod"));
        let help = match Error::from(DesiredError::UnknownSite {
            site: "lcoal".into(),
            known: vec!["cluster".into(), "local".into()],
        }) {
            Error::Usage { help, .. } => help,
            other => panic!("{other:?}"),
        };
        assert_eq!(help.as_deref(), Some("did you mean `local`?"));
    }

    /// `sbom` reads an image from the engine: an engine it cannot reach is 3 as everywhere, an
    /// image not there or not readable is 1 (the request is fine, what it needs is missing).
    #[test]
    fn reading_an_image_maps_to_the_edges_codes() {
        let unreachable =
            Error::Build(crate::build::BuildError::Engine(EngineError::Unreachable {
                endpoint: "unix:///nonexistent".into(),
                source: bollard::errors::Error::SocketNotFoundError("/nonexistent".into()),
            }));
        assert_eq!(unreachable.exit_code(), EXIT_UNREACHABLE);
        let missing = Error::ImageNotInEngine {
            container: "c".into(),
            image_id: "sha256:00".into(),
            image: "r/c:1".into(),
        };
        assert_eq!(missing.exit_code(), EXIT_FAILED);
        let unreadable = Error::Image(crate::image::ImageError::Layout("no manifest".into()));
        assert_eq!(unreadable.exit_code(), EXIT_FAILED);
    }

    /// TLS files are input (2) unless the system fails reading them; a fleet with a site that
    /// gave no status is 3, naming the sites.
    #[test]
    fn tls_files_and_the_fleet_map_to_their_codes() {
        let missing = Error::Tls(TlsError::Missing {
            path: "ca.pem".into(),
        });
        assert_eq!(missing.exit_code(), EXIT_INVALID);
        let mismatch = Error::Tls(TlsError::Rejected {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            message: "the private key does not match the certificate".into(),
        });
        assert_eq!(mismatch.exit_code(), EXIT_INVALID);
        let eacces = Error::Tls(TlsError::Read {
            path: "k.pem".into(),
            source: crate::context::file::FileError::Io(os_error(13)),
        });
        assert_eq!(eacces.exit_code(), EXIT_FAILED);
        let unanswered = Error::Unanswered {
            sites: vec!["lyon".into(), "oslo".into()],
            total: 3,
        };
        assert_eq!(unanswered.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            unanswered.to_string(),
            "2 of 3 site(s) did not answer: lyon, oslo"
        );
    }

    #[test]
    fn edge_errors_map_to_documented_exit_codes() {
        let engine_unreachable = Error::Engine(EngineError::Unreachable {
            endpoint: "unix:///nonexistent".into(),
            source: bollard::errors::Error::SocketNotFoundError("/nonexistent".into()),
        });
        assert_eq!(engine_unreachable.exit_code(), EXIT_UNREACHABLE);
        let build_failed = Error::Engine(EngineError::BuildFailed {
            log: vec!["Step 2/2 : RUN false".into()],
            message: "returned a non-zero code: 1".into(),
        });
        assert_eq!(build_failed.exit_code(), EXIT_FAILED);
        let bad_host = Error::Engine(EngineError::Endpoint(
            crate::engine::EndpointError::Unsupported {
                host: "npipe://x".into(),
            },
        ));
        assert_eq!(bad_host.exit_code(), EXIT_INVALID);
        let unauthorized = Error::Registry(RegistryError::Unauthorized {
            endpoint: "http://127.0.0.1:5000/v2/a/blobs/uploads/".into(),
            status: 401,
            message: None,
        });
        assert_eq!(unauthorized.exit_code(), EXIT_FAILED);
        let unavailable = Error::Registry(RegistryError::Unavailable {
            endpoint: "http://127.0.0.1:5000/v2/".into(),
            status: 503,
            attempts: 4,
            message: None,
        });
        assert_eq!(unavailable.exit_code(), EXIT_UNREACHABLE);
        let reference =
            Error::Reference(crate::registry::Repository::parse("a/b:tag").unwrap_err());
        assert_eq!(reference.exit_code(), EXIT_INVALID);
        let invalid_lock = || LockError::Invalid {
            path: "cookbook.lock".into(),
            diagnostics: vec![Diagnostic::new(
                "lock/digest",
                "/bases/b:1/digest",
                "\"sha256:…\" is not a digest",
            )],
        };
        // Every command that reads a malformed lock refuses it alike: invalid input.
        for bad_lock in [
            Error::Verify(VerifyError::Lock(invalid_lock())),
            Error::Lock(invalid_lock()),
            Error::Apply(ApplyError::Lock(invalid_lock())),
            Error::Apply(ApplyError::Pin(Box::new(PinError::Lock(invalid_lock())))),
        ] {
            assert_eq!(bad_lock.exit_code(), EXIT_INVALID, "{bad_lock:?}");
        }
        let no_lock = Error::Verify(VerifyError::NoLock {
            path: "cookbook.lock".into(),
        });
        assert_eq!(no_lock.exit_code(), EXIT_INVALID);
        let mismatch = Error::Failed("1 of 4 container(s) do not match cookbook.lock".into());
        assert_eq!(mismatch.exit_code(), EXIT_FAILED);
    }

    /// `status` of a stage not as locked is 1; `exec` ends with the command's code when a shell
    /// could see it, else 1.
    #[test]
    fn status_and_exec_map_to_their_codes() {
        let not = Error::NotAsLocked {
            stage: "local/dev".into(),
            problems: 3,
        };
        assert_eq!(not.exit_code(), EXIT_FAILED);
        for (code, expected) in [
            (3, 3),
            (255, 255),
            (1, 1),
            (-1, EXIT_FAILED),
            (256, EXIT_FAILED),
        ] {
            assert_eq!(Error::Exited { code }.exit_code(), expected, "{code}");
        }
    }

    /// The deploy rows: a refusal to touch what is not ours is 1; a deploy that stopped is coded
    /// by its cause (an engine gone mid-deploy is 3), or by the signal that stopped it.
    #[test]
    fn deploy_failures_map_to_their_cause() {
        use crate::deploy::session::{Recovery, Step, Stopped};
        use crate::model::Name;
        let deploy = |error: DeployError, signal| Error::Deploy {
            error: Box::new(error),
            signal,
        };
        let not_ours = deploy(
            DeployError::Backend(BackendError::NotOurs {
                kind: "container",
                name: "p-local-dev-web-1".into(),
                owner: "it belongs to docker compose project `p` (service `web`)".into(),
                stage: "local/dev".into(),
                labels: "io.cookbook.project=p, io.cookbook.site=local, io.cookbook.stage=dev"
                    .into(),
            }),
            None,
        );
        assert_eq!(not_ours.exit_code(), EXIT_FAILED);
        let stopped = |cause| {
            DeployError::Stopped(Box::new(Stopped {
                release: "0123456789ab".into(),
                site: Name::parse("local").unwrap(),
                stage: Name::parse("dev").unwrap(),
                started: vec!["p-local-dev-api-1".into()],
                cause,
                recovery: Recovery::LeftAsIs,
            }))
        };
        let unhealthy = stopped(WaveError::Unhealthy {
            wave: 2,
            unit: "p-local-dev-api-1".into(),
            why: "its health check failed".into(),
        });
        assert_eq!(deploy(unhealthy, None).exit_code(), EXIT_FAILED);
        let gone = stopped(WaveError::Backend {
            at: Step::Wave(2),
            source: BackendError::Engine(EngineError::Unreachable {
                endpoint: "unix:///nonexistent".into(),
                source: bollard::errors::Error::SocketNotFoundError("/nonexistent".into()),
            }),
        });
        assert_eq!(deploy(gone, None).exit_code(), EXIT_UNREACHABLE);
        let interrupted = stopped(WaveError::Interrupted { at: Step::Wave(2) });
        let by_sigterm = deploy(interrupted, Some(("SIGTERM", EXIT_SIGTERM)));
        assert_eq!(by_sigterm.exit_code(), EXIT_SIGTERM);
        assert_eq!(
            by_sigterm.to_string(),
            "SIGTERM: deploy of release 0123456789ab to local/dev stopped: wave 2: interrupted; left as it is (on_failure: none)"
        );
    }

    fn os_error(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    /// The rows tests/it/exit_codes.rs cannot produce through the binary on this machine.
    #[test]
    fn local_io_failures_are_1_and_paths_that_name_nothing_are_2() {
        const ENOENT: i32 = 2;
        const EIO: i32 = 5;
        const EACCES: i32 = 13;
        const ENOTDIR: i32 = 20;
        const EISDIR: i32 = 21;
        const ENOSPC: i32 = 28;
        // An explain document or the state directory: always the local system.
        for code in [EIO, EACCES, ENOSPC, ENOTDIR] {
            let explain = Error::Apply(ApplyError::State {
                path: ".cookbook/explain/api/x.json".into(),
                source: os_error(code),
            });
            assert_eq!(explain.exit_code(), EXIT_FAILED, "{explain}");
            assert!(explain
                .to_string()
                .starts_with("cannot write .cookbook/explain/api/x.json: "));
        }
        let write = |code| {
            Error::Context(ContextError::Write {
                path: "out.tar".into(),
                source: os_error(code),
            })
        };
        let read = |code| {
            Error::Apply(ApplyError::Context(ContextError::Io {
                path: "services/api/main.py".into(),
                source: os_error(code),
            }))
        };
        for code in [EIO, EACCES, ENOSPC] {
            assert_eq!(write(code).exit_code(), EXIT_FAILED);
            assert_eq!(read(code).exit_code(), EXIT_FAILED);
        }
        for code in [ENOENT, ENOTDIR, EISDIR] {
            assert_eq!(write(code).exit_code(), EXIT_INVALID);
            assert_eq!(read(code).exit_code(), EXIT_INVALID);
        }
        assert!(write(ENOSPC)
            .to_string()
            .starts_with("cannot write out.tar: "));
        assert!(read(EIO)
            .to_string()
            .starts_with("cannot read services/api/main.py: "));
        let changed = Error::Context(ContextError::Changed {
            path: "services/api/main.py".into(),
        });
        assert_eq!(changed.exit_code(), EXIT_FAILED);
        let special = Error::Context(ContextError::Special {
            path: "services/api/fifo".into(),
            what: "a FIFO",
        });
        assert_eq!(special.exit_code(), EXIT_INVALID);
        let lock_read = Error::Verify(VerifyError::Lock(LockError::Read {
            path: "cookbook.lock".into(),
            source: os_error(EIO),
        }));
        assert_eq!(lock_read.exit_code(), EXIT_FAILED);
        let cookbook_missing = Error::Read {
            path: "cookbook.json".into(),
            source: os_error(ENOENT),
        };
        assert_eq!(cookbook_missing.exit_code(), EXIT_INVALID);
        let cookbook_eio = Error::Read {
            path: "cookbook.json".into(),
            source: os_error(EIO),
        };
        assert_eq!(cookbook_eio.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn service_answers_map_to_what_happened() {
        let not_docker = Error::Engine(EngineError::NotAnEngine {
            endpoint: "tcp://127.0.0.1:5000".into(),
            message: "GET /version answered HTTP 404: 404 page not found".into(),
        });
        assert_eq!(not_docker.exit_code(), EXIT_UNREACHABLE);
        let pull = Error::Apply(ApplyError::Engine(EngineError::PullFailed {
            reference: "127.0.0.1:5000/a/b:v1".into(),
            attempts: 1,
            message: "manifest unknown".into(),
        }));
        assert_eq!(pull.exit_code(), EXIT_FAILED);
        let malformed = Error::Registry(RegistryError::Credentials(CredentialError::Malformed {
            path: "/root/.docker/config.json".into(),
            line: 3,
            column: 10,
            message: "expected `,` or `}`".into(),
        }));
        assert_eq!(malformed.exit_code(), EXIT_INVALID);
        assert_eq!(
            malformed.to_string(),
            "/root/.docker/config.json:3:10: malformed Docker config: expected `,` or `}`"
        );
        let unreadable = |code| {
            Error::Registry(RegistryError::Credentials(CredentialError::Unreadable {
                path: "/root/.docker/config.json".into(),
                source: os_error(code),
            }))
        };
        assert_eq!(unreadable(13).exit_code(), EXIT_FAILED);
        assert_eq!(unreadable(21).exit_code(), EXIT_INVALID);
        let helper = Error::Registry(RegistryError::Credentials(CredentialError::Lookup {
            registry: "ghcr.io".into(),
            source: docker_credential::CredentialRetrievalError::HelperCommunicationError,
        }));
        assert_eq!(helper.exit_code(), EXIT_FAILED);
        let too_large = Error::Registry(RegistryError::TooLarge {
            endpoint: "http://127.0.0.1:5000/v2/a/manifests/v1".into(),
            body: crate::registry::BodyKind::Manifest,
            limit: crate::registry::MAX_MANIFEST_BYTES,
            declared: None,
            received: 5 << 20,
        });
        assert_eq!(too_large.exit_code(), EXIT_FAILED);
        let downgrade = Error::Registry(RegistryError::UnsafeUrl {
            endpoint: "https://registry.example/v2/a/blobs/uploads/".into(),
            url: "http://registry.example/upload?_state=…".into(),
            reason: "would downgrade HTTPS to plain HTTP",
        });
        assert_eq!(downgrade.exit_code(), EXIT_FAILED);
        let bad_host = Error::Registry(RegistryError::BadHost {
            host: "127.0.0.1:99999".into(),
            reason: "invalid port number".into(),
        });
        assert_eq!(bad_host.exit_code(), EXIT_INVALID);
        // A registry whose referrers lie: a check that fails, naming both digests.
        let image = crate::oci::Digest::sha256_of(b"image");
        let other = crate::oci::Digest::sha256_of(b"other");
        let other_subject = Error::Registry(RegistryError::OtherSubject {
            endpoint: "http://127.0.0.1:5000/v2/a/manifests/sha256:…".into(),
            referrer: crate::oci::Digest::sha256_of(b"referrer"),
            subject: image.clone(),
            found: other.clone(),
        });
        assert_eq!(other_subject.exit_code(), EXIT_FAILED);
        let text = other_subject.to_string();
        assert!(
            text.contains(image.as_str()) && text.contains(other.as_str()),
            "{text}"
        );
        let mismatch = Error::Registry(RegistryError::DigestMismatch {
            endpoint: "http://127.0.0.1:5000/v2/a/blobs/sha256:…".into(),
            what: "payload",
            expected: image,
            actual: other,
        });
        assert_eq!(mismatch.exit_code(), EXIT_FAILED);
        let refused = Error::Sync(crate::sync::SyncError::Git(GitError::Refused {
            remote: "git://127.0.0.1/x.git".into(),
            message: "remote error: access denied".into(),
        }));
        assert_eq!(refused.exit_code(), EXIT_FAILED);
        let bad_url = Error::Sync(crate::sync::SyncError::Git(GitError::BadRemote {
            remote: "htp://x".into(),
            message: "unsupported URL protocol".into(),
        }));
        assert_eq!(bad_url.exit_code(), EXIT_INVALID);
    }
}
