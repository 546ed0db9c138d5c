//! `cookbook logs` on the real engine, with `dev`'s two-container project deployed by `apply
//! --no-push` and `deploy`: every line under its container's padded name, stderr apart, one
//! container by name, a name not in the stage refused with the nearest, and `--follow` picking up
//! a container a redeploy replaced, ended by Ctrl-C with 0.

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::common;
use crate::dev::DevProject;
use common::deploy::services;
use common::run_in;

fn deployed(tag: &str) -> DevProject {
    let p = DevProject::new(tag);
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]).assert_code(0);
    p
}

#[test]
fn lines_are_prefixed_per_container_and_stderr_stays_apart() {
    if !services() {
        return;
    }
    let p = deployed("logs");
    let run = run_in(p.path(), &["logs", "--site", "local", "--stage", "dev"]);
    run.assert_code(0);
    let mut out: Vec<&str> = run.stdout.lines().collect();
    out.sort();
    assert_eq!(
        out,
        vec!["a | a says one", "b | b says one"],
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("a | a warns"), "{}", run.context());
    assert!(!run.stdout.contains("warns"), "{}", run.context());

    let only_b = run_in(
        p.path(),
        &["logs", "--site", "local", "--stage", "dev", "b"],
    );
    only_b.assert_code(0);
    assert_eq!(only_b.stdout, "b | b says one\n", "{}", only_b.context());

    let typo = run_in(
        p.path(),
        &["logs", "--site", "local", "--stage", "dev", "bb"],
    );
    typo.assert_code(2);
    assert!(
        typo.stderr.contains("container `bb` is not in this stage"),
        "{}",
        typo.context()
    );
    assert!(
        typo.stderr.contains("did you mean `b`?"),
        "{}",
        typo.context()
    );
}

#[test]
fn follow_picks_up_a_replaced_container_and_ctrl_c_exits_0() {
    if !services() {
        return;
    }
    let p = deployed("follow");
    let mut child = Command::new(common::bin())
        .args(["logs", "--site", "local", "--stage", "dev", "--follow", "a"])
        .current_dir(p.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("the stream ended").unwrap();
    assert_eq!(next(), "a | a says one");

    let before = p.seen("a").unwrap();
    std::fs::write(p.path().join("svc/a/msg.txt"), "two\n").unwrap();
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    run_in(p.path(), &["deploy", "--site", "local", "--stage", "dev"]).assert_code(0);
    assert_ne!(p.seen("a").unwrap().0, before.0, "a was replaced");
    // The replacement's first line, read from its start.
    assert_eq!(next(), "a | a says two");

    common::signal(&child, "-INT");
    let (code, _) = common::exit_within(&mut child, common::DEADLINE, "cookbook logs --follow");
    assert_eq!(code, Some(0));
}

#[test]
fn a_kubernetes_site_is_refused_with_the_kubectl_command() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        &common::repo_root().join("tests/fixtures/kubernetes"),
        dir.path(),
    );
    let run = run_in(
        dir.path(),
        &[
            "logs", "--site", "cluster", "--stage", "dev", "--follow", "web",
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "kubectl logs -n shop -l dev.cookbook.project=shop,dev.cookbook.site=cluster,\
             dev.cookbook.stage=dev,dev.cookbook.container=web --all-containers --prefix --follow"
        ),
        "{}",
        run.context()
    );
    let dev = run_in(dir.path(), &["dev", "--site", "cluster", "--stage", "dev"]);
    dev.assert_code(2);
    assert!(
        dev.stderr.contains("Kubernetes cluster"),
        "{}",
        dev.context()
    );

    let typo = run_in(dir.path(), &["logs", "--site", "clustr", "--stage", "dev"]);
    typo.assert_code(2);
}
