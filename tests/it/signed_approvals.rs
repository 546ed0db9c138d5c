//! Signed approvals against the real Docker engine, with the `stages` example (dev `automatic`,
//! prod `manual`) given `lifecycle.approvers` for prod: `promote` refuses an unsigned approval, one
//! signed by a key not listed and a record edited after signing (exit 1, naming why, before
//! anything runs in prod), refuses an approver key file it cannot read as a located problem of the
//! cookbook (exit 2), and takes an approval signed by a listed key. Published (a registry of its
//! own under the test registry): the signed approval is attached to the images, and a second
//! checkout with its own empty state directory deploys and promotes on it; a registry that
//! cannot be reached when approving leaves the approval recorded, with a warning per image.

use crate::common;

use common::deploy::{deploy, edit, json_answer, services, Project};
use common::{run_in, run_in_env};
use cookbook::attest::dsse::Envelope;
use cookbook::deploy::approval_referrers::{self, APPROVAL_ARTIFACT_TYPE};
use cookbook::oci::{Digest, WrittenReference};
use cookbook::registry::{Artifact, RegistryClient};

fn promote(p: &Project) -> common::Run {
    run_in(
        p.path(),
        &[
            "promote", "--site", "local", "--from", "dev", "--to", "prod", "--format", "json",
        ],
    )
}

/// `key generate -o keys/NAME`: the key id.
fn key(p: &Project, name: &str) -> String {
    std::fs::create_dir_all(p.path().join("keys")).unwrap();
    let run = run_in(
        p.path(),
        &[
            "key",
            "generate",
            "-o",
            &format!("keys/{name}"),
            "--format",
            "json",
        ],
    );
    run.assert_code(0);
    json_answer(&run)["key_id"].as_str().unwrap().to_owned()
}

fn approvals_file(p: &Project) -> std::path::PathBuf {
    p.path().join(".cookbook/deploy/approvals.json")
}

/// The error message of a failed `--format json` run.
fn refusal(run: &common::Run) -> String {
    json_answer(run)["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", run.context()))
        .to_owned()
}

#[test]
fn a_stage_with_approvers_takes_only_an_approval_signed_by_one_of_them() {
    if !services() {
        return;
    }
    let p = Project::new("stages", "signed");
    let alice = key(&p, "alice");
    let mallory = key(&p, "mallory");
    edit(p.path(), |doc| {
        doc["lifecycle"]["approvers"] =
            serde_json::json!({ "prod": [{ "name": "alice", "key": "keys/alice.pub" }] });
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    deploy(p.path());
    let prefix =
        "stage `prod` takes only approvals signed by its approvers: the approval by alice at ";

    // No approval at all: the rule's refusal (2), whose help now asks for a signature.
    let run = promote(&p);
    run.assert_code(2);
    assert!(
        run.stderr.contains("--by NAME --signing-key KEY`"),
        "{}",
        run.context()
    );

    // Unsigned.
    run_in(p.path(), &["approve", "--stage", "prod", "--by", "alice"]).assert_code(0);
    let run = promote(&p);
    run.assert_code(1);
    let message = refusal(&run);
    assert!(
        message.starts_with(prefix) && message.ends_with(" is not signed"),
        "{}",
        run.context()
    );
    assert_eq!(json_answer(&run)["errors"][0]["code"], "approval");
    assert!(p.engine_state_in("prod").is_empty());

    // Signed by a key that is not listed.
    let run = run_in(
        p.path(),
        &[
            "approve",
            "--stage",
            "prod",
            "--by",
            "alice",
            "--signing-key",
            "keys/mallory.key",
        ],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .ends_with(&format!(" for stage prod by alice, signed by {mallory}\n")),
        "{}",
        run.context()
    );
    let run = promote(&p);
    run.assert_code(1);
    let message = refusal(&run);
    assert!(
        message.starts_with(prefix)
            && message.contains(&format!(
                " is signed by {mallory}, which is not one of prod's approvers: alice ({alice})"
            )),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("prod").is_empty());

    // Signed by alice's key (named in the environment, as CI would).
    let run = run_in_env(
        p.path(),
        &["approve", "--stage", "prod", "--by", "alice"],
        &[("COOKBOOK_SIGNING_KEY", "keys/alice.key")],
    );
    run.assert_code(0);
    assert!(
        run.stdout.ends_with(&format!(", signed by {alice}\n")),
        "{}",
        run.context()
    );
    let signed = std::fs::read_to_string(approvals_file(&p)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&signed).unwrap();
    let envelope = &doc["approvals"][2]["envelope"];
    assert_eq!(
        envelope["payloadType"],
        "application/vnd.cookbook.approval.v1+json"
    );
    assert_eq!(envelope["signatures"][0]["keyid"], alice.as_str());

    // The record edited after signing: the envelope's statement now names another approver.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload =
        String::from_utf8(b64.decode(envelope["payload"].as_str().unwrap()).unwrap()).unwrap();
    let statement: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(statement["approver"], "alice");
    assert_eq!(statement["stage"], "prod");
    assert_eq!(statement["site"], "local");
    assert_eq!(statement["digests"], doc["approvals"][2]["digests"]);
    let mut tampered = doc.clone();
    tampered["approvals"][2]["envelope"]["payload"] = b64
        .encode(payload.replace("\"stage\":\"prod\"", "\"stage\":\"prod\" "))
        .into();
    std::fs::write(
        approvals_file(&p),
        serde_json::to_string(&tampered).unwrap(),
    )
    .unwrap();
    let run = promote(&p);
    run.assert_code(1);
    let message = refusal(&run);
    assert!(
        message.contains(&format!(
            " carries a signature by alice ({alice}) that does not verify: the record was changed after it was signed"
        )) && message.ends_with("(2 older approval(s) of these images refused too)"),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("prod").is_empty());

    // An approver's key file that is no key: a problem of the cookbook, located at the entry.
    std::fs::write(approvals_file(&p), &signed).unwrap();
    let public = std::fs::read(p.path().join("keys/alice.pub")).unwrap();
    std::fs::write(p.path().join("keys/alice.pub"), "not a key\n").unwrap();
    let run = run_in(
        p.path(),
        &[
            "promote", "--site", "local", "--from", "dev", "--to", "prod",
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            ": error[approver/key]: /lifecycle/approvers/prod/0/key: approver \"alice\"'s key: "
        ) && run.stderr.contains("keys/alice.pub: not a PEM file"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.starts_with("cookbook.json:"),
        "{}",
        run.context()
    );
    std::fs::write(p.path().join("keys/alice.pub"), public).unwrap();

    // The signed record as written: prod runs dev's images.
    let run = promote(&p);
    run.assert_code(0);
    assert_eq!(json_answer(&run)["stage"], "prod");
    let (dev, prod) = (p.engine_state_in("dev"), p.engine_state_in("prod"));
    for c in ["db", "api", "web"] {
        assert_eq!(prod[c].1, dev[c].1, "{c}");
    }
}

/// A signing key others may read is refused before anything is recorded, as ssh refuses one.
#[test]
fn approve_refuses_a_signing_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new("stages", "openkey");
    key(&p, "alice");
    let path = p.path().join("keys/alice.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = run_in(
        p.path(),
        &[
            "approve",
            "--stage",
            "prod",
            "--by",
            "alice",
            "--signing-key",
            "keys/alice.key",
        ],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: keys/alice.key: permissions 0644 are too open: a private key must be readable by its owner only\n  help: chmod 600 keys/alice.key\n",
        "{}",
        run.context()
    );
    assert!(!approvals_file(&p).exists());
}

/// "Machine B": a second checkout of `p`'s cookbook and lock (its keys' public halves, its
/// sources) with a state directory of its own, empty.
fn second_checkout(p: &Project) -> tempfile::TempDir {
    let b = tempfile::tempdir().unwrap();
    common::copy_tree(p.path(), b.path());
    std::fs::copy(
        p.path().join("cookbook.lock"),
        b.path().join("cookbook.lock"),
    )
    .unwrap();
    assert!(!b.path().join(".cookbook").exists());
    b
}

fn approve_lock(dir: &std::path::Path, key: &str) -> common::Run {
    run_in(
        dir,
        &[
            "approve",
            "--stage",
            "prod",
            "--lock",
            "--by",
            "alice",
            "--signing-key",
            key,
        ],
    )
}

fn deploy_prod(dir: &std::path::Path) -> common::Run {
    run_in(
        dir,
        &[
            "deploy", "--site", "local", "--stage", "prod", "--format", "json",
        ],
    )
}

/// Published images: `approve --signing-key` attaches the signed approval to each of them, and
/// a second checkout with none of the first one's records deploys to the approvers' stage on
/// the approval it finds in the registry — refused with no approval anywhere (the rule, 2) and
/// with one attached by a key that is not listed (1, naming the referrer and the key), beside
/// which something that is no envelope is one more refused approval; attaching the same
/// envelope again writes nothing.
#[test]
fn a_site_sharing_the_registry_takes_the_approval_attached_to_the_images() {
    if !services() {
        return;
    }
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = Project::new("stages", "shared");
    let alice = key(&p, "alice");
    let mallory = key(&p, "mallory");
    let repository = format!("{registry}/{}", common::unique("approvals-"));
    edit(p.path(), |doc| {
        doc["lifecycle"]["approvers"] =
            serde_json::json!({ "prod": [{ "name": "alice", "key": "keys/alice.pub" }] });
        doc["packaging"]["registry"] = repository.clone().into();
    });
    run_in(p.path(), &["apply"]).assert_code(0);
    let b = second_checkout(&p);

    // No approval anywhere: the rule's refusal, as before.
    let run = deploy_prod(b.path());
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("no approval by a person recorded for these images"),
        "{}",
        run.context()
    );

    // Mallory's approval, attached to the three images on machine A.
    let run = approve_lock(p.path(), "keys/mallory.key");
    run.assert_code(0);
    let attached: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  attached to "))
        .collect();
    assert_eq!(attached.len(), 3, "{}", run.context());
    for line in &attached {
        assert!(
            line.starts_with(&format!("  attached to {repository}/")),
            "{line}"
        );
    }
    assert!(run.stderr.is_empty(), "{}", run.context());

    let run = deploy_prod(b.path());
    run.assert_code(1);
    let message = refusal(&run);
    assert!(
        message.starts_with(&format!(
            "stage `prod` takes only approvals signed by its approvers: the approval attached to {repository}/"
        )) && message.contains(&format!(
            " is signed by {mallory}, which is not one of prod's approvers: alice ({alice})"
        )),
        "{}",
        run.context()
    );
    assert!(p.engine_state_in("prod").is_empty());
    assert!(!approvals_file_in(b.path()).exists());

    // Whoever can push may attach anything: something that is no envelope is one more refused
    // approval, never an error.
    let (api, api_digest) = locked_image(&p, "api");
    let client = RegistryClient::new().unwrap();
    let garbage = Artifact {
        artifact_type: APPROVAL_ARTIFACT_TYPE.to_owned(),
        layer_media_type: "application/vnd.dsse.envelope.v1+json".to_owned(),
        payload: b"{\"payloadType\": 1}".to_vec(),
        annotations: Default::default(),
    };
    let repo = api.reference().repository();
    let subject = common::block_on(client.descriptor(repo, &api_digest)).unwrap();
    common::block_on(client.attach(repo, &subject, &garbage)).unwrap();
    let run = deploy_prod(b.path());
    run.assert_code(1);
    let message = refusal(&run);
    assert!(
        message.ends_with("(1 older approval(s) of these images refused too)"),
        "{}",
        run.context()
    );

    // Alice's, attached on machine A: machine B deploys on it (the garbage beside it passed
    // over) and records where it found it.
    let run = approve_lock(p.path(), "keys/alice.key");
    run.assert_code(0);
    // Attaching the same envelope again writes nothing.
    let mine: serde_json::Value =
        serde_json::from_slice(&std::fs::read(approvals_file(&p)).unwrap()).unwrap();
    let envelope =
        Envelope::parse(mine["approvals"][1]["envelope"].to_string().as_bytes()).unwrap();
    let again = common::block_on(approval_referrers::attach(
        &client,
        &api,
        &api_digest,
        &envelope,
        "prod",
    ))
    .unwrap();
    assert!(!again.pushed);
    assert!(
        run.stdout
            .contains(&format!("@{api_digest} as {}\n", again.manifest)),
        "{}",
        run.context()
    );
    let run = deploy_prod(b.path());
    run.assert_code(0);
    assert_eq!(json_answer(&run)["stage"], "prod");
    let prod = p.engine_state_in("prod");
    assert_eq!(prod.len(), 3, "{prod:?}");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(approvals_file_in(b.path())).unwrap()).unwrap();
    let taken = &recorded["approvals"][0];
    assert_eq!(taken["by"], "alice");
    assert_eq!(taken["stage"], "prod");
    assert_eq!(taken["envelope"]["signatures"][0]["keyid"], alice.as_str());
    assert!(
        taken["from"]
            .as_str()
            .unwrap()
            .starts_with(&format!("attached to {repository}/")),
        "{recorded}"
    );
    // Deployed again: the record holds now, nothing new is recorded.
    deploy_prod(b.path()).assert_code(0);
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(approvals_file_in(b.path())).unwrap()).unwrap();
    assert_eq!(again["approvals"].as_array().unwrap().len(), 1);

    // A third checkout promotes what it runs in dev on the same approval.
    let c = second_checkout(&p);
    run_in(c.path(), &["deploy", "--site", "local", "--stage", "dev"]).assert_code(0);
    let run = promote_in(c.path());
    run.assert_code(0);
    assert_eq!(json_answer(&run)["stage"], "prod");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(approvals_file_in(c.path())).unwrap()).unwrap();
    assert_eq!(recorded["approvals"][0]["by"], "alice");
}

fn promote_in(dir: &std::path::Path) -> common::Run {
    run_in(
        dir,
        &[
            "promote", "--site", "local", "--from", "dev", "--to", "prod", "--format", "json",
        ],
    )
}

/// A registry that cannot be reached when the approval is made: the approval is recorded all
/// the same (exit 0), and each image it is not attached to is a warning; a deploy elsewhere that
/// would look there for it ends with the registry's error.
#[test]
fn an_approval_the_registry_does_not_take_is_recorded_with_a_warning() {
    if !services() {
        return;
    }
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = Project::new("stages", "unattached");
    key(&p, "alice");
    let repository = format!("{registry}/{}", common::unique("approvals-"));
    edit(p.path(), |doc| {
        doc["lifecycle"]["approvers"] =
            serde_json::json!({ "prod": [{ "name": "alice", "key": "keys/alice.pub" }] });
        doc["packaging"]["registry"] = repository.clone().into();
    });
    run_in(p.path(), &["apply"]).assert_code(0);
    // The same images, named at a registry nobody listens on.
    let gone = format!("127.0.0.1:{}", common::deploy::free_port());
    for file in ["cookbook.json", "cookbook.lock"] {
        let path = p.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(&registry, &gone)).unwrap();
    }
    let run = approve_lock(p.path(), "keys/alice.key");
    run.assert_code(0);
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 3, "{}", run.context());
    for w in warnings {
        assert!(
            w.starts_with(&format!(
                "warning: the approval is recorded here but not attached to {gone}/"
            )),
            "{}",
            run.context()
        );
    }
    assert!(!run.stdout.contains("attached"), "{}", run.context());
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(approvals_file(&p)).unwrap()).unwrap();
    assert!(recorded["approvals"][0]["envelope"].is_object());

    // Another checkout, with no record of its own, cannot ask that registry: the registry's
    // error (3), not "unapproved".
    let b = second_checkout(&p);
    let run = deploy_prod(b.path());
    run.assert_code(3);
    assert!(p.engine_state_in("prod").is_empty());
}

/// A container's image as `p`'s lock names it: its reference and manifest digest.
fn locked_image(p: &Project, container: &str) -> (WrittenReference, Digest) {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path().join("cookbook.lock")).unwrap()).unwrap();
    let entry = &lock["containers"][container];
    (
        WrittenReference::parse(entry["image"].as_str().unwrap()).unwrap(),
        Digest::parse(entry["digest"].as_str().unwrap()).unwrap(),
    )
}

fn approvals_file_in(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(".cookbook/deploy/approvals.json")
}
