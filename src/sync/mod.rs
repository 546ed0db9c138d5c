//! `cookbook sync`: pull a master cookbook from git and keep a site on its last good revision.
//!
//! Place in the pipeline: an edge around the pure core. A round fetches the branch into a bare
//! mirror (`git`), checks the new commit's cookbook straight from its tree with
//! [`crate::load::parse`] (syntax, schema, model, plan), the site's portion, and the
//! `cookbook.lock` beside it with [`Lock::parse`] (the lock is input like the cookbook: its pins
//! become `FROM` lines), and only then materializes a fresh checkout and switches `current` to it
//! (`state`). With an [`Applier`], it
//! applies the portion; a revision counts as applied only when that apply succeeded.
//!
//! Invariants (what the GitOps peers got wrong, see issue 5):
//! - `current` never points at an invalid, half-written or older revision: checkouts are written
//!   under a temp name, renamed, and only then is `current` switched by a rename.
//! - A refused revision is recorded with its rendered diagnostics and its commit; the next valid
//!   revision replaces that record, so no error outlives its fix.
//! - Only a fast-forward is taken. A history rewrite, including the branch moving back, is
//!   refused unless `allow_force`, and a taken one is logged in the state.
//! - A remote that cannot be reached changes nothing in the state.
//! - The library prints nothing: a round returns a [`RoundReport`]; the CLI renders it.

pub mod lock;
pub mod schedule;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use git2::Oid;

use crate::diagnostic::{Diagnostic, Rendered};
use crate::graph::Plan;
use crate::model::{Cookbook, Name};
use crate::state::lock::Lock;

use self::lock::{Holder, StateLock};
use self::state::{
    now, sync_dir, Attempt, AttemptOutcome, ForcedUpdate, Stamp, StateDir, SyncState, Taken,
    STATE_FORMAT,
};
use crate::git::{GitError, Mirror};

/// What one round works on.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Any URL git2 fetches from: https, ssh, `git://`, a file URL or a path.
    pub remote: String,
    pub branch: String,
    /// The cookbook file inside the repository, `/`-separated and relative.
    pub path: String,
    /// Keep only this federation site's portion of the plan.
    pub site: Option<String>,
    /// Take a revision that is not a descendant of the current one (logged in the state).
    pub allow_force: bool,
    /// Refuse a revision whose commit signature `git verify-commit` does not accept.
    pub require_signed: bool,
}

impl SyncOptions {
    /// The name of the directory the cookbook lies in as a developer's `git clone` of the remote
    /// has it, which names a project the cookbook does not name: the last directory of `path`,
    /// or, for a cookbook at the repository's root, the directory `git clone` makes (the
    /// remote's last path component without `.git`). Never the checkout's own directory, which
    /// is named after the commit and would rename the project at every revision.
    pub fn project_directory(&self) -> Option<String> {
        if let Some((dir, _)) = self.path.rsplit_once('/') {
            return dir.rsplit('/').next().map(str::to_owned);
        }
        let remote = self.remote.trim_end_matches('/');
        // `host:path` (scp-like), `scheme://host/path`, or a path.
        let last = remote.rsplit(['/', ':']).next().unwrap_or(remote);
        let name = last.strip_suffix(".git").unwrap_or(last);
        (!name.is_empty()).then(|| name.to_owned())
    }
}

/// A validated revision, ready to apply.
pub struct ApplyRequest<'a> {
    /// The full commit id.
    pub commit: &'a str,
    /// The revision's complete checkout (build contexts are relative to it).
    pub checkout: &'a Path,
    /// The cookbook file inside `checkout`.
    pub cookbook_file: &'a Path,
    /// The cookbook file as the repository names it (`/`-separated, relative to its root).
    pub path: &'a str,
    pub cookbook: &'a Cookbook,
    /// The plan to apply: the whole cookbook's, or only the site's portion.
    pub plan: &'a Plan,
    pub site: Option<&'a str>,
}

/// Why an apply failed. Boxed so that the apply engine keeps its own structured error (the
/// caller may downcast it); the state records its message.
pub type ApplierError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The apply step of a round: the apply engine (issue 4) implements it.
pub trait Applier {
    /// Applies `request.plan`. `Ok` means applied: the state records the revision as applied
    /// only then; on `Err` the next round retries the same revision.
    fn apply(&mut self, request: &ApplyRequest<'_>) -> Result<(), ApplierError>;
}

/// Why a revision was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The cookbook at this revision is missing, invalid, or lacks the site.
    Invalid {
        /// `path@commit`, as the diagnostics are located.
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// The `cookbook.lock` beside the cookbook at this revision is not a valid lock.
    InvalidLock {
        /// `path@commit` of the lock, as the diagnostics are located.
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// Not a fast-forward from `current`.
    NotFastForward {
        current: String,
        /// The remote went back to an ancestor of `current` rather than rewriting it.
        backwards: bool,
    },
    /// `--require-signed` and git did not accept the signature; `detail` is what git said.
    Unsigned { detail: String },
}

impl Refusal {
    fn outcome(&self) -> AttemptOutcome {
        match self {
            Refusal::Invalid { .. } | Refusal::InvalidLock { .. } => AttemptOutcome::Invalid,
            Refusal::NotFastForward { .. } => AttemptOutcome::NotFastForward,
            Refusal::Unsigned { .. } => AttemptOutcome::Unsigned,
        }
    }

    /// The problems, one rendered line each, as recorded in the state.
    pub fn errors(&self) -> Vec<String> {
        match self {
            Refusal::Invalid { file, diagnostics } | Refusal::InvalidLock { file, diagnostics } => {
                diagnostics
                    .iter()
                    .map(|diagnostic| Rendered { file, diagnostic }.to_string())
                    .collect()
            }
            Refusal::NotFastForward { current, backwards } => vec![if *backwards {
                format!("the branch went back to an ancestor of the current revision {current}; the sync never goes back by itself (--allow-force takes it)")
            } else {
                format!("the branch history was rewritten: not a descendant of the current revision {current} (--allow-force takes it)")
            }],
            Refusal::Unsigned { detail } => {
                vec![format!(
                    "no signature that git verify-commit accepts: {detail}"
                )]
            }
        }
    }

    /// A one-line reason.
    pub fn summary(&self) -> String {
        match self {
            Refusal::Invalid { diagnostics, .. } => {
                format!("invalid cookbook ({} problem(s))", diagnostics.len())
            }
            Refusal::InvalidLock { diagnostics, .. } => {
                format!("invalid cookbook.lock ({} problem(s))", diagnostics.len())
            }
            Refusal::NotFastForward {
                backwards: true, ..
            } => "the branch went back to an older revision".to_owned(),
            Refusal::NotFastForward { .. } => "not a fast-forward (force-push)".to_owned(),
            Refusal::Unsigned { .. } => "commit signature not verified".to_owned(),
        }
    }
}

/// What the round did with the remote's revision.
#[derive(Debug)]
pub enum Outcome {
    /// The remote's revision is the current one.
    UpToDate,
    /// Switched to the remote's revision.
    Taken {
        previous: Option<String>,
        /// Over a history rewrite, with `allow_force`.
        forced: bool,
    },
    /// Kept the current revision.
    Refused(Refusal),
}

/// What the round's apply step did (only with an applier).
#[derive(Debug)]
pub enum ApplyOutcome {
    Applied,
    /// The current revision had already been applied; nothing to do.
    AlreadyApplied,
    Failed(ApplierError),
}

/// The result of one round, for the CLI to render.
#[derive(Debug)]
pub struct RoundReport {
    /// The commit at the tip of the remote branch.
    pub remote_commit: String,
    /// What `current` points at after the round.
    pub current: Option<String>,
    pub outcome: Outcome,
    pub apply: Option<ApplyOutcome>,
    /// Set when the round found `current` ahead of `state.json` (a crash between the switch and
    /// the record) and recorded it.
    pub recovered: Option<String>,
    /// Housekeeping that failed without harm (an old checkout not removed).
    pub warnings: Vec<String>,
}

impl RoundReport {
    /// Whether the round failed: a refused revision or a failed apply (exit 1).
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(_))
            || matches!(self.apply, Some(ApplyOutcome::Failed(_)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The mirror's git work failed (see `GitError` for which are which exit code).
    #[error(transparent)]
    Git(GitError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: unreadable sync state: {source}", path.display())]
    StateCorrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("another sync is running on this state ({}): {}", path.display(), describe_holder(holder.as_ref()))]
    Busy {
        path: PathBuf,
        holder: Option<Holder>,
    },
    #[error("stopped by a signal between two steps; the state is consistent")]
    Interrupted,
}

impl From<GitError> for SyncError {
    /// A fetch stopped by a signal is the round's interruption, like any other step's.
    fn from(e: GitError) -> SyncError {
        match e {
            GitError::Interrupted => SyncError::Interrupted,
            other => SyncError::Git(other),
        }
    }
}

fn describe_holder(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!("held by {h}"),
        None => "held by a process that has not said who it is yet".to_owned(),
    }
}

/// Runs one round on `dir`, which `_lock` proves this process holds: fetch, then either an owed
/// apply of the current revision, or the new revision's checks (fast-forward, signature, the
/// cookbook), its checkout, the switch, and its apply. A refusal ends the round, recorded.
pub fn run_round(
    dir: &StateDir,
    _lock: &StateLock,
    options: &SyncOptions,
    applier: Option<&mut dyn Applier>,
    stop: &AtomicBool,
) -> Result<RoundReport, SyncError> {
    let mut round = Round::fetch(dir, options, stop)?;
    if round.current.as_deref() == Some(round.head_id.as_str()) {
        // Nothing new: a fetch and nothing else, unless an apply of this revision is owed.
        if let Some(applier) = applier {
            round.apply_owed(applier, stop)?;
        }
        return Ok(round.report);
    }
    check_stop(stop)?;
    let Some(forced) = round.fast_forward()? else {
        return Ok(round.report);
    };
    let Some(checked) = round.check_new()? else {
        return Ok(round.report);
    };
    check_stop(stop)?;
    if !round.checkout()? {
        return Ok(round.report);
    }
    crate::state::record::test_pause("COOKBOOK_SYNC_TEST_PAUSE", "before-switch");
    check_stop(stop)?;
    round.take(forced)?;
    if let Some(applier) = applier {
        check_stop(stop)?;
        let applied = apply(
            dir,
            &mut round.state,
            &round.head_id,
            &checked,
            options,
            applier,
        )?;
        round.report.apply = Some(applied);
    }
    Ok(round.report)
}

/// One round's working set: the state as read, the mirror and the remote's head, and the report
/// so far.
struct Round<'a> {
    dir: &'a StateDir,
    options: &'a SyncOptions,
    state: SyncState,
    mirror: Mirror,
    head: Oid,
    head_id: String,
    /// What `current` pointed at when the round began.
    current: Option<String>,
    report: RoundReport,
}

impl<'a> Round<'a> {
    /// Reads the state (recovering an interrupted round's switch) and fetches the remote.
    fn fetch(
        dir: &'a StateDir,
        options: &'a SyncOptions,
        stop: &AtomicBool,
    ) -> Result<Self, SyncError> {
        let mut state = dir.read()?;
        let recovered = recover(dir, &mut state)?;
        check_stop(stop)?;
        let mirror = Mirror::open_or_init(&dir.mirror())?;
        let head = mirror.fetch(&options.remote, &options.branch, stop)?;
        // Crash tests set COOKBOOK_SYNC_TEST_PAUSE=<step>:<ms> to kill the process at a step
        // (`after-fetch`, `checkout-written`, `before-switch`, `after-switch`).
        crate::state::record::test_pause("COOKBOOK_SYNC_TEST_PAUSE", "after-fetch");
        let head_id = head.to_string();
        let current = state.current.as_ref().map(|t| t.commit.clone());
        let report = RoundReport {
            remote_commit: head_id.clone(),
            current: current.clone(),
            outcome: Outcome::UpToDate,
            apply: None,
            recovered,
            warnings: Vec::new(),
        };
        Ok(Round {
            dir,
            options,
            state,
            mirror,
            head,
            head_id,
            current,
            report,
        })
    }

    /// Records `refusal` and makes it the round's outcome.
    fn refuse(&mut self, refusal: Refusal) -> Result<(), SyncError> {
        record_refusal(
            self.dir,
            &mut self.state,
            &self.head_id,
            &refusal,
            self.options,
        )?;
        self.report.outcome = Outcome::Refused(refusal);
        Ok(())
    }

    /// The current revision again: applies it unless it was applied already. It was valid when
    /// taken; with another `--site` it may not be.
    fn apply_owed(
        &mut self,
        applier: &mut dyn Applier,
        stop: &AtomicBool,
    ) -> Result<(), SyncError> {
        let applied = self.state.last_applied.as_ref().map(|s| s.commit.as_str());
        if applied == Some(self.head_id.as_str()) {
            self.report.apply = Some(ApplyOutcome::AlreadyApplied);
            return Ok(());
        }
        check_stop(stop)?;
        match check_revision(&self.mirror, self.head, self.options)? {
            Ok(checked) => {
                let applied = apply(
                    self.dir,
                    &mut self.state,
                    &self.head_id,
                    &checked,
                    self.options,
                    applier,
                )?;
                self.report.apply = Some(applied);
                Ok(())
            }
            Err(refusal) => self.refuse(refusal),
        }
    }

    /// Whether the head descends from the current revision: `Some(forced)` to go on (`forced`: a
    /// history rewrite `--allow-force` takes), `None` when refused.
    fn fast_forward(&mut self) -> Result<Option<bool>, SyncError> {
        let Some(current) = self.current.clone() else {
            return Ok(Some(false));
        };
        let current_oid = Oid::from_str(&current).map_err(|source| GitError::Git {
            operation: "read the current commit id from the state",
            source,
        })?;
        if self.mirror.descends_from(self.head, current_oid)? {
            return Ok(Some(false));
        }
        if self.options.allow_force {
            return Ok(Some(true));
        }
        let backwards = self.mirror.descends_from(current_oid, self.head)?;
        self.refuse(Refusal::NotFastForward { current, backwards })?;
        Ok(None)
    }

    /// The new revision's signature (under `--require-signed`) and cookbook: `None` when refused.
    fn check_new(&mut self) -> Result<Option<Checked>, SyncError> {
        if self.options.require_signed {
            if let Err(detail) = self.mirror.verify_signature(self.head)? {
                self.refuse(Refusal::Unsigned { detail })?;
                return Ok(None);
            }
        }
        match check_revision(&self.mirror, self.head, self.options)? {
            Ok(checked) => Ok(Some(checked)),
            Err(refusal) => {
                self.refuse(refusal)?;
                Ok(None)
            }
        }
    }

    /// Writes the head's checkout: under a temp name, renamed into place once complete (a
    /// checkout already at the final name was completed by an earlier, interrupted round:
    /// renames are atomic), then checked on disk. `false` when refused.
    fn checkout(&mut self) -> Result<bool, SyncError> {
        let dir = self.dir;
        dir.create()?;
        let checkout = dir.checkout(&self.head_id);
        if !checkout.is_dir() {
            let tmp = dir.checkouts().join(format!("{}.tmp", self.head_id));
            remove_dir_if_present(&tmp)?;
            self.mirror.materialize(self.head, &tmp)?;
            sync_tree(&tmp)?;
            crate::state::record::test_pause("COOKBOOK_SYNC_TEST_PAUSE", "checkout-written");
            std::fs::rename(&tmp, &checkout).map_err(|source| SyncError::Io {
                path: checkout.clone(),
                source,
            })?;
            sync_dir(&dir.checkouts())?;
        }
        if let Err(refusal) = check_checkout(&checkout, self.head, self.options)? {
            remove_dir_if_present(&checkout)?;
            self.refuse(refusal)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Switches `current` to the head and records it (with a forced update's log entry).
    fn take(&mut self, forced: bool) -> Result<(), SyncError> {
        let head_id = self.head_id.clone();
        self.dir.switch_current(&head_id)?;
        crate::state::record::test_pause("COOKBOOK_SYNC_TEST_PAUSE", "after-switch");
        self.mirror.pin(self.head)?;
        let at = now();
        let state = &mut self.state;
        if forced {
            state.forced.push(ForcedUpdate {
                from: self.current.clone().unwrap_or_default(),
                to: head_id.clone(),
                at: at.clone(),
            });
        }
        state.previous = self.current.clone();
        state.current = Some(Taken {
            commit: head_id.clone(),
            at: at.clone(),
            forced,
        });
        state.last_attempt = Some(Attempt {
            commit: head_id.clone(),
            at,
            outcome: AttemptOutcome::Taken,
            errors: Vec::new(),
        });
        describe_run(state, self.options);
        self.dir.write(state)?;
        self.report.current = Some(head_id);
        self.report.outcome = Outcome::Taken {
            previous: self.current.clone(),
            forced,
        };
        self.report.warnings = prune(self.dir, &self.state);
        Ok(())
    }
}

/// Takes the lock on `dir` and runs one round.
pub fn sync_once(
    dir: &StateDir,
    options: &SyncOptions,
    applier: Option<&mut dyn Applier>,
    me: &Holder,
    wait: lock::Wait,
    on_busy: &mut dyn FnMut(Option<&Holder>),
    stop: &AtomicBool,
) -> Result<RoundReport, SyncError> {
    dir.create()?;
    let lock = StateLock::acquire(dir.lock_file(), me, wait, on_busy)?;
    run_round(dir, &lock, options, applier, stop)
}

/// A revision's cookbook, checked and restricted to the site.
pub struct Checked {
    pub cookbook: Cookbook,
    pub plan: Plan,
}

/// Reads and checks the cookbook of `commit` from the mirror, without a checkout, and the
/// `cookbook.lock` beside it when there is one.
pub fn check_revision(
    mirror: &Mirror,
    commit: Oid,
    options: &SyncOptions,
) -> Result<Result<Checked, Refusal>, SyncError> {
    let id = commit.to_string();
    let file = format!("{}@{}", options.path, &id[..12]);
    let invalid = |diagnostics| Refusal::Invalid {
        file: file.clone(),
        diagnostics,
    };
    let Some(bytes) = mirror.read_file(commit, &options.path)? else {
        return Ok(Err(invalid(vec![Diagnostic::new(
            "sync/missing-file",
            "",
            format!("revision {id} has no file `{}`", options.path),
        )
        .with_help(
            "check --path: the cookbook's path inside the repository",
        )])));
    };
    // The text only: the disk checks run on the checkout (`check_checkout`).
    let directory = options.project_directory();
    let (cookbook, whole) = match crate::load::load_bytes_as(&bytes, None, directory.as_deref()) {
        Ok(loaded) => (loaded.cookbook, loaded.plan),
        Err(diagnostics) => return Ok(Err(invalid(diagnostics))),
    };
    let plan = match &options.site {
        None => whole,
        Some(site) => match cookbook.sites.get(site.as_str()) {
            Some(s) => whole.restrict(&s.containers),
            None => {
                let known: Vec<&str> = cookbook.sites.keys().map(Name::as_str).collect();
                return Ok(Err(invalid(vec![Diagnostic::new(
                    "sync/unknown-site",
                    "/sites",
                    format!("this revision has no site `{site}`"),
                )
                .with_help(if known.is_empty() {
                    "this revision defines no sites".to_owned()
                } else {
                    format!("sites in this revision: {}", known.join(", "))
                })])));
            }
        },
    };
    // The lock is read from the tree as the cookbook is: what `apply` on the checkout will read.
    let lock_path = match options.path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/cookbook.lock"),
        None => "cookbook.lock".to_owned(),
    };
    if let Some(bytes) = mirror.read_file(commit, &lock_path)? {
        if let Err(diagnostics) = Lock::parse(&bytes) {
            return Ok(Err(Refusal::InvalidLock {
                file: format!("{lock_path}@{}", &id[..12]),
                diagnostics,
            }));
        }
    }
    Ok(Ok(Checked { cookbook, plan }))
}

/// The load stage's disk checks on a revision's checkout: every path exists and, symlinks
/// followed, stays inside the checkout — what git's tree alone cannot tell.
fn check_checkout(
    checkout: &Path,
    commit: Oid,
    options: &SyncOptions,
) -> Result<Result<(), Refusal>, SyncError> {
    let directory = options.project_directory();
    match crate::load::load_file_as(&checkout.join(&options.path), directory.as_deref()) {
        Ok(_) => Ok(Ok(())),
        Err(crate::load::LoadError::Invalid { diagnostics }) => Ok(Err(Refusal::Invalid {
            file: format!("{}@{}", options.path, &commit.to_string()[..12]),
            diagnostics,
        })),
        Err(crate::load::LoadError::Read { path, source }) => Err(SyncError::Io { path, source }),
    }
}

fn apply(
    dir: &StateDir,
    state: &mut SyncState,
    commit: &str,
    checked: &Checked,
    options: &SyncOptions,
    applier: &mut dyn Applier,
) -> Result<ApplyOutcome, SyncError> {
    let checkout = dir.checkout(commit);
    let cookbook_file = checkout.join(&options.path);
    let request = ApplyRequest {
        commit,
        checkout: &checkout,
        cookbook_file: &cookbook_file,
        path: &options.path,
        cookbook: &checked.cookbook,
        plan: &checked.plan,
        site: options.site.as_deref(),
    };
    let result = applier.apply(&request);
    let at = now();
    let outcome = match result {
        Ok(()) => {
            state.last_applied = Some(Stamp {
                commit: commit.to_owned(),
                at: at.clone(),
            });
            state.last_attempt = Some(Attempt {
                commit: commit.to_owned(),
                at,
                outcome: AttemptOutcome::Applied,
                errors: Vec::new(),
            });
            ApplyOutcome::Applied
        }
        Err(e) => {
            state.last_attempt = Some(Attempt {
                commit: commit.to_owned(),
                at,
                outcome: AttemptOutcome::ApplyFailed,
                errors: vec![e.to_string()],
            });
            ApplyOutcome::Failed(e)
        }
    };
    describe_run(state, options);
    dir.write(state)?;
    Ok(outcome)
}

fn record_refusal(
    dir: &StateDir,
    state: &mut SyncState,
    commit: &str,
    refusal: &Refusal,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    state.last_attempt = Some(Attempt {
        commit: commit.to_owned(),
        at: now(),
        outcome: refusal.outcome(),
        errors: refusal.errors(),
    });
    describe_run(state, options);
    dir.write(state)
}

fn describe_run(state: &mut SyncState, options: &SyncOptions) {
    state.format = STATE_FORMAT;
    state.remote = Some(options.remote.clone());
    state.branch = Some(options.branch.clone());
    state.path = Some(options.path.clone());
    state.site = options.site.clone();
}

/// Brings `state.json` in line with `current` after a crash between the switch and the record.
/// `current` is trusted: only a complete, validated checkout is ever linked.
fn recover(dir: &StateDir, state: &mut SyncState) -> Result<Option<String>, SyncError> {
    let Some(linked) = dir.current_commit()? else {
        return Ok(None);
    };
    let recorded = state.current.as_ref().map(|t| t.commit.as_str());
    if recorded == Some(linked.as_str()) || !dir.checkout(&linked).is_dir() {
        return Ok(None);
    }
    state.previous = state
        .current
        .take()
        .map(|t| t.commit)
        .or(state.previous.take());
    state.current = Some(Taken {
        commit: linked.clone(),
        at: now(),
        forced: false,
    });
    state.format = STATE_FORMAT;
    dir.write(state)?;
    Ok(Some(linked))
}

/// Removes every checkout but the current and the previous one (and leftover temp dirs).
fn prune(dir: &StateDir, state: &SyncState) -> Vec<String> {
    let keep: Vec<&str> = state
        .current
        .iter()
        .map(|t| t.commit.as_str())
        .chain(state.previous.as_deref())
        .collect();
    let mut warnings = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.checkouts()) else {
        return warnings;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if keep.iter().any(|k| name.to_str() == Some(k)) {
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            warnings.push(format!(
                "could not remove the old checkout {}: {e}",
                entry.path().display()
            ));
        }
    }
    warnings
}

fn remove_dir_if_present(path: &Path) -> Result<(), SyncError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SyncError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Flushes every file and directory of a fresh checkout before it is renamed into place, so a
/// power loss cannot leave `current` pointing at empty files. (libgit2 fsyncs only its gitdir.)
fn sync_tree(root: &Path) -> Result<(), SyncError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SyncError::Io { path, source }
    };
    for entry in std::fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    sync_dir(root)
}

fn check_stop(stop: &AtomicBool) -> Result<(), SyncError> {
    if stop.load(Ordering::Relaxed) {
        Err(SyncError::Interrupted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
