//! `sync`'s bare mirror of the remote branch, kept in the sync state directory.
//!
//! Place in the pipeline: `sync` fetches here, reads the cookbook straight from a commit's tree
//! (no checkout is needed to validate a revision), and only materializes a checkout for a
//! revision it has validated.
//!
//! libgit2 (through git2, vendored with OpenSSL so no system library is needed) does the fetch,
//! the ancestry check and the checkout. Signature verification is the one thing it does not do
//! (it extracts signatures but checks none), so that goes through `git verify-commit`, which
//! honours the operator's gpg keyring and `gpg.ssh.allowedSignersFile`.
//!
//! A failed fetch says what happened (see [`fetch_error`]): the remote refused (credentials, or
//! no such repository: exit 1), the URL cannot be a remote (exit 2), or there was no connection
//! (exit 3, the only case worth retrying next round).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use git2::{AutotagOption, Cred, CredentialType, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::GitError;

/// The ref that keeps the current revision's objects reachable in the mirror, whatever the
/// remote does to its branch.
const PIN_REF: &str = "refs/cookbook/current";

pub struct Mirror {
    repo: Repository,
    path: PathBuf,
}

impl Mirror {
    /// Opens the mirror at `path`, creating an empty bare repository if there is none.
    pub fn open_or_init(path: &Path) -> Result<Mirror, GitError> {
        let repo = match Repository::open_bare(path) {
            Ok(repo) => repo,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                Repository::init_bare(path).map_err(git_error("create the mirror"))?
            }
            Err(e) => return Err(git_error("open the mirror")(e)),
        };
        Ok(Mirror {
            repo,
            path: path.to_path_buf(),
        })
    }

    /// Fetches `branch` from `url` into `refs/remotes/origin/<branch>` and returns its commit.
    ///
    /// The refspec is forced (`+`) so that the mirror always sees what the remote has; whether
    /// a rewritten history is *taken* is decided by the round, not here. Setting `stop` aborts a
    /// transfer in progress.
    pub fn fetch(&self, url: &str, branch: &str, stop: &AtomicBool) -> Result<Oid, GitError> {
        let local = format!("refs/remotes/origin/{branch}");
        let refspec = format!("+refs/heads/{branch}:{local}");
        let mut remote = self
            .repo
            .remote_anonymous(url)
            .map_err(|source| fetch_error(url, source, false))?;
        let gave_up = AtomicBool::new(false);
        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(|_| !stop.load(Ordering::Relaxed));
        callbacks.credentials(credentials(&gave_up));
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(AutotagOption::None);
        // Without this, a branch that vanished on the remote would leave our old ref in place.
        options.prune(git2::FetchPrune::On);
        match remote.fetch(
            &[refspec.as_str()],
            Some(&mut options),
            Some("cookbook sync"),
        ) {
            Ok(()) => {}
            Err(_) if stop.load(Ordering::Relaxed) => return Err(GitError::Interrupted),
            Err(source) => return Err(fetch_error(url, source, gave_up.load(Ordering::Relaxed))),
        }
        match self.repo.refname_to_id(&local) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Err(GitError::BranchNotFound {
                remote: url.to_owned(),
                branch: branch.to_owned(),
            }),
            Err(e) => Err(git_error("read the fetched branch")(e)),
        }
    }

    /// Whether `commit` has `ancestor` in its history (a fast-forward from `ancestor`).
    /// False when `ancestor` is not in the mirror at all.
    pub fn descends_from(&self, commit: Oid, ancestor: Oid) -> Result<bool, GitError> {
        if commit == ancestor {
            return Ok(true);
        }
        if self.repo.find_commit(ancestor).is_err() {
            return Ok(false);
        }
        self.repo
            .graph_descendant_of(commit, ancestor)
            .map_err(git_error("compare histories"))
    }

    /// The bytes of the file at `path` in `commit`'s tree, or `None` if there is no such file.
    pub fn read_file(&self, commit: Oid, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(git_error("read the commit"))?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(git_error("read the commit's tree")(e)),
        };
        match entry.to_object(&self.repo).map(|o| o.into_blob()) {
            Ok(Ok(blob)) => Ok(Some(blob.content().to_vec())),
            Ok(Err(_)) => Ok(None), // a directory or a submodule, not a file
            Err(e) => Err(git_error("read the cookbook blob")(e)),
        }
    }

    /// Writes `commit`'s whole tree into the empty or missing directory `dir`.
    pub fn materialize(&self, commit: Oid, dir: &Path) -> Result<(), GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(git_error("read the commit"))?;
        let io = |source| GitError::Io {
            path: dir.to_path_buf(),
            source,
        };
        // libgit2 resolves a relative target directory against itself (it nests the path).
        let dir = &std::path::absolute(dir).map_err(io)?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout
            .target_dir(dir)
            .force()
            .recreate_missing(true)
            .update_index(false);
        self.repo
            .checkout_tree(tree.as_object(), Some(&mut checkout))
            .map_err(git_error("write the checkout"))
    }

    /// Records `commit` as the current revision inside the mirror, so its objects stay.
    pub fn pin(&self, commit: Oid) -> Result<(), GitError> {
        self.repo
            .reference(PIN_REF, commit, true, "cookbook sync: current")
            .map(|_| ())
            .map_err(git_error("pin the current revision"))
    }

    /// Checks `commit`'s signature with `git verify-commit`; `Err(detail)` says why it failed.
    pub fn verify_signature(&self, commit: Oid) -> Result<Result<(), String>, GitError> {
        let output = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.path)
            .arg("verify-commit")
            .arg(commit.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| GitError::Verifier { source })?;
        if output.status.success() {
            return Ok(Ok(()));
        }
        // Shown to the operator as git said it; never interpreted.
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Ok(Err(if detail.is_empty() {
            "no signature".to_owned()
        } else {
            detail
        }))
    }
}

/// Credentials for ssh and https remotes: the ssh agent, then git's credential helpers, each
/// tried once (libgit2 calls back again after a refusal; trying forever would hang the sync).
/// Sets `gave_up` when it has nothing (more) to offer: the remote wanted credentials and turned
/// down all there were, which is how the fetch's error is known to be a refusal.
fn credentials(
    gave_up: &AtomicBool,
) -> impl FnMut(&str, Option<&str>, CredentialType) -> Result<Cred, git2::Error> + '_ {
    let mut offer = offer_credentials();
    move |url, username, allowed| {
        let answer = offer(url, username, allowed);
        if answer.is_err() {
            gave_up.store(true, Ordering::Relaxed);
        }
        answer
    }
}

fn offer_credentials() -> impl FnMut(&str, Option<&str>, CredentialType) -> Result<Cred, git2::Error>
{
    let mut tried_agent = false;
    let mut tried_helper = false;
    move |url, username, allowed| {
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::SSH_KEY) && !tried_agent {
            tried_agent = true;
            return Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !tried_helper {
            tried_helper = true;
            if let Ok(config) = git2::Config::open_default() {
                return Cred::credential_helper(&config, url, username);
            }
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str(
            "no usable credentials: none from the ssh agent or git's credential helpers",
        ))
    }
}

/// What a failed fetch from `url` means. libgit2 gives a class and a code, and for the two
/// cases without a code of their own, its fixed texts: a git server's `ERR` packet is relayed as
/// "remote error: …" (git daemon's "no such repository", "access denied"), and an HTTP answer
/// as "unexpected http status code: N".
fn fetch_error(url: &str, source: git2::Error, gave_up: bool) -> GitError {
    use git2::{ErrorClass, ErrorCode};
    let message = source.message().to_owned();
    let refused = || GitError::Refused {
        remote: url.to_owned(),
        message: message.clone(),
    };
    if gave_up || matches!(source.code(), ErrorCode::Auth | ErrorCode::Certificate) {
        return refused();
    }
    if source.class() == ErrorClass::Net && message.starts_with("remote error:") {
        return refused();
    }
    let http_status = message
        .strip_prefix("unexpected http status code: ")
        .and_then(|code| code.trim().parse::<u16>().ok());
    if source.class() == ErrorClass::Http && http_status.is_some_and(|s| (400..500).contains(&s)) {
        return refused();
    }
    let malformed = source.code() == ErrorCode::InvalidSpec
        || source.class() == ErrorClass::Invalid
        || (source.class() == ErrorClass::Net && message == "unsupported URL protocol");
    if malformed {
        return GitError::BadRemote {
            remote: url.to_owned(),
            message,
        };
    }
    match source.class() {
        ErrorClass::Os | ErrorClass::Net | ErrorClass::Ssl | ErrorClass::Ssh | ErrorClass::Http => {
            GitError::Unreachable {
                remote: url.to_owned(),
                source,
            }
        }
        _ => GitError::Git {
            operation: "fetch",
            source,
        },
    }
}

fn git_error(operation: &'static str) -> impl Fn(git2::Error) -> GitError {
    move |source| GitError::Git { operation, source }
}
