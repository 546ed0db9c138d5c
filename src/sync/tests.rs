//! The round logic against a real repository on disk (a path remote), with a fault-injecting
//! applier: "a revision counts as applied only when its apply succeeded".

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::lock::{Holder, StateLock, Wait};
use super::state::{AttemptOutcome, StateDir};
use super::*;

const SHOP: &str = include_str!("../../cookbooks/shop/cookbook.json");

/// Fails while `fail` is set; counts calls and remembers the last commit it was asked for.
struct FlakyApplier {
    fail: Cell<bool>,
    calls: usize,
    last: Option<(String, usize, bool)>,
}

#[derive(Debug)]
struct InjectedFault;
impl std::fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected fault: the engine refused")
    }
}
impl std::error::Error for InjectedFault {}

impl Applier for FlakyApplier {
    fn apply(&mut self, request: &ApplyRequest<'_>) -> Result<(), ApplierError> {
        self.calls += 1;
        self.last = Some((
            request.commit.to_owned(),
            request.plan.len(),
            request.cookbook_file.is_file(),
        ));
        if self.fail.get() {
            Err(Box::new(InjectedFault))
        } else {
            Ok(())
        }
    }
}

/// Copies a directory tree (regular files only: the example's sources).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn commit(repo: &git2::Repository, content: &str, message: &str) -> String {
    let workdir = repo.workdir().unwrap();
    std::fs::write(workdir.join("cookbook.json"), content).unwrap();
    // The example's sources: a checkout is refused when a path the cookbook names is missing.
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("cookbooks/shop/services");
    copy_tree(&services, &workdir.join("services"));
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.target())
        .map(|oid| repo.find_commit(oid).unwrap())
        .into_iter()
        .collect();
    let parents: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
        .to_string()
}

fn options(remote: &Path) -> SyncOptions {
    SyncOptions {
        remote: remote.display().to_string(),
        branch: "main".to_owned(),
        path: "cookbook.json".to_owned(),
        site: Some("edge".to_owned()),
        allow_force: false,
        require_signed: false,
    }
}

fn round(dir: &StateDir, options: &SyncOptions, applier: &mut FlakyApplier) -> RoundReport {
    dir.create().unwrap();
    let lock = StateLock::acquire(
        dir.lock_file(),
        &Holder::me("test".into()),
        Wait::No,
        &mut |_| {},
    )
    .unwrap();
    run_round(dir, &lock, options, Some(applier), &AtomicBool::new(false)).unwrap()
}

#[test]
fn a_revision_counts_as_applied_only_once_its_apply_succeeded() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let repo = git2::Repository::init_opts(
        &source,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    let first = commit(&repo, SHOP, "first");
    let dir = StateDir::new(tmp.path().join("state"));
    let options = options(&source);
    let mut applier = FlakyApplier {
        fail: Cell::new(true),
        calls: 0,
        last: None,
    };

    // Taken (current switches: the revision is valid) but not applied.
    let report = round(&dir, &options, &mut applier);
    assert!(
        matches!(report.outcome, Outcome::Taken { .. }),
        "{report:?}"
    );
    assert!(
        matches!(report.apply, Some(ApplyOutcome::Failed(_))),
        "{report:?}"
    );
    assert!(report.failed());
    let state = dir.read().unwrap();
    assert_eq!(state.current.as_ref().unwrap().commit, first);
    assert_eq!(state.last_applied, None);
    let attempt = state.last_attempt.unwrap();
    assert_eq!(attempt.outcome, AttemptOutcome::ApplyFailed);
    assert_eq!(attempt.errors, vec!["injected fault: the engine refused"]);
    let (asked, plan_len, file_there) = applier.last.clone().unwrap();
    assert_eq!(asked, first);
    assert!(file_there, "the applier gets the checked-out cookbook file");
    assert!(
        plan_len > 0 && plan_len < 4,
        "edge's portion only, got {plan_len}"
    );

    // Nothing new on the remote: the apply is retried, still failing.
    let report = round(&dir, &options, &mut applier);
    assert!(matches!(report.outcome, Outcome::UpToDate));
    assert!(matches!(report.apply, Some(ApplyOutcome::Failed(_))));
    assert_eq!(applier.calls, 2);
    assert_eq!(dir.read().unwrap().last_applied, None);

    // The engine recovers: now, and only now, the revision counts as applied.
    applier.fail.set(false);
    let report = round(&dir, &options, &mut applier);
    assert!(matches!(report.apply, Some(ApplyOutcome::Applied)));
    assert!(!report.failed());
    let state = dir.read().unwrap();
    assert_eq!(state.last_applied.unwrap().commit, first);
    assert_eq!(state.last_attempt.unwrap().outcome, AttemptOutcome::Applied);

    // Applied and unchanged: no second apply.
    let report = round(&dir, &options, &mut applier);
    assert!(matches!(report.apply, Some(ApplyOutcome::AlreadyApplied)));
    assert_eq!(applier.calls, 3);

    // A new revision whose apply fails leaves last_applied on the older one.
    let second = commit(&repo, &SHOP.replace("\"edge\"", "\"edge\" "), "second");
    applier.fail.set(true);
    let report = round(&dir, &options, &mut applier);
    assert!(matches!(report.outcome, Outcome::Taken { .. }));
    let state = dir.read().unwrap();
    assert_eq!(state.current.unwrap().commit, second);
    assert_eq!(state.last_applied.unwrap().commit, first);
}

#[test]
fn an_invalid_revision_is_never_handed_to_the_applier() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let repo = git2::Repository::init_opts(
        &source,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    let first = commit(&repo, SHOP, "first");
    let dir = StateDir::new(tmp.path().join("state"));
    let options = options(&source);
    let mut applier = FlakyApplier {
        fail: Cell::new(false),
        calls: 0,
        last: None,
    };
    round(&dir, &options, &mut applier);
    commit(&repo, "{ \"manifest_version\": ", "broken");
    let report = round(&dir, &options, &mut applier);
    assert!(matches!(
        report.outcome,
        Outcome::Refused(Refusal::Invalid { .. })
    ));
    assert!(report.apply.is_none());
    assert_eq!(applier.calls, 1);
    assert_eq!(dir.read().unwrap().last_applied.unwrap().commit, first);
}

#[test]
fn a_project_less_cookbook_is_named_as_git_clone_names_its_directory() {
    let named = |remote: &str, path: &str| {
        SyncOptions {
            remote: remote.to_owned(),
            branch: "main".to_owned(),
            path: path.to_owned(),
            site: None,
            allow_force: false,
            require_signed: false,
        }
        .project_directory()
    };
    for (remote, want) in [
        ("https://github.com/example/shop.git", "shop"),
        ("https://github.com/example/shop/", "shop"),
        ("git@github.com:example/shop.git", "shop"),
        ("git@host:shop.git", "shop"),
        ("ssh://git@host:2222/srv/shop", "shop"),
        ("git://127.0.0.1:9418/shop.git", "shop"),
        ("file:///srv/git/shop.git", "shop"),
        ("/srv/git/shop.git/", "shop"),
    ] {
        assert_eq!(
            named(remote, "cookbook.json").as_deref(),
            Some(want),
            "{remote}"
        );
    }
    // In a subdirectory, that directory names it, whatever the remote.
    assert_eq!(
        named("https://example.com/mono.git", "deploy/shop/cookbook.json").as_deref(),
        Some("shop")
    );
}
