//! Reproducible images (issue 11), against the real engine and registry: the same sources give
//! the same manifest digests from two checkouts into two repositories with the local images
//! deleted and the clock moved on in between; `--no-push` loads the normalized image (its id is
//! its config digest, and a `container:` child is built FROM it); `verify --rebuild` passes on a
//! clean tree and names the layer, the step and the path of a RUN step that writes the date.
//!
//! Each test gives the cookbook a project name of its own, so its images (found by their
//! `dev.cookbook.project` label) can be deleted without touching any other test's, and no build
//! cache of an earlier run can stand in for a build.

use crate::common;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

const SHOP: [&str; 4] = ["api", "db", "web", "worker"];

/// `cookbooks/shop` copied into `dir`, as project `project`, publishing to `registry`. Every
/// container's first step after FROM names the project (a build argument's default), so no other
/// build's cached steps can stand in for this project's: the engine's build cache is shared by
/// every test and helper on the machine.
fn prepare_shop(dir: &Path, project: &str, registry: &str) {
    std::fs::create_dir_all(dir).unwrap();
    common::copy_example("shop", dir);
    let file = dir.join("cookbook.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["project"]["name"] = Value::from(project);
    doc["packaging"]["registry"] = Value::from(registry);
    // One name per container: a step shared by two containers of one run is rightly reused.
    for generated in ["api", "web"] {
        doc["containers"][generated]["build_args"] =
            serde_json::json!({ format!("REPRO_{generated}"): project });
    }
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let dockerfile = dir.join("services/db/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let (from, rest) = text.split_once('\n').unwrap();
    std::fs::write(
        &dockerfile,
        format!("{from}\nARG REPRO_db={project}\n{rest}"),
    )
    .unwrap();
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("cookbook.lock")).unwrap()).unwrap()
}

fn entry<'a>(lock: &'a Value, name: &str, key: &str) -> &'a str {
    lock["containers"][name][key]
        .as_str()
        .unwrap_or_else(|| panic!("lock has no {name}.{key}: {lock:#}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_host(&std::env::var("DOCKER_HOST").unwrap()).unwrap()
}

/// Every local image of `project` (built, loaded or pulled: all carry its label) and the
/// untagged images its builds left in the engine's build cache (the classic builder's
/// intermediate images, found through each image's history), so that nothing of a first build
/// can be reused by a second.
fn remove_project_images(project: &str) {
    runtime().block_on(async {
        let docker = docker();
        let options = bollard::query_parameters::ListImagesOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("dev.cookbook.project={project}")],
            )])),
            ..Default::default()
        };
        // Newest first: an image's children go before it.
        let mut doomed: Vec<String> = Vec::new();
        for image in docker.list_images(Some(options)).await.unwrap() {
            let history = docker.image_history(&image.id).await.unwrap_or_default();
            for step in history {
                let untagged = step.tags.iter().all(|t| t == "<none>:<none>");
                let ours = step.id == image.id;
                if step.id != "<missing>" && (ours || untagged) && !doomed.contains(&step.id) {
                    doomed.push(step.id);
                }
            }
        }
        // Removing in rounds: an image with children left is refused until they are gone.
        loop {
            let mut left = Vec::new();
            for id in doomed.iter().cloned() {
                let remove = bollard::query_parameters::RemoveImageOptions {
                    force: true,
                    noprune: false,
                    ..Default::default()
                };
                match docker.remove_image(&id, Some(remove), None).await {
                    Ok(_)
                    | Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => {}
                    Err(_) => left.push(id),
                }
            }
            // Done, or only images others still build on (the base's own) are left.
            if left.is_empty() || left.len() == doomed.len() {
                break;
            }
            doomed = left;
        }
    });
}

fn project_images(project: &str) -> usize {
    runtime().block_on(async {
        let options = bollard::query_parameters::ListImagesOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("dev.cookbook.project={project}")],
            )])),
            ..Default::default()
        };
        docker().list_images(Some(options)).await.unwrap().len()
    })
}

/// The local image `name`'s id and layers' diff_ids.
fn local(name: &str) -> (String, Vec<String>) {
    runtime().block_on(async {
        let info = docker()
            .inspect_image(name)
            .await
            .unwrap_or_else(|e| panic!("no local image {name}: {e}"));
        (
            info.id.unwrap(),
            info.root_fs.and_then(|r| r.layers).unwrap_or_default(),
        )
    })
}

/// The manifest under `tag` in `repository`: its digest, media type and config digest.
fn published(repository: &str, tag: &str) -> (String, String, String) {
    runtime().block_on(async {
        let client = cookbook::registry::RegistryClient::new().unwrap();
        let repo = cookbook::registry::Repository::parse(repository).unwrap();
        let manifest = client
            .manifest_get(&repo, tag)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no manifest {repository}:{tag}"));
        (
            manifest.digest.to_string(),
            manifest.media_type.clone(),
            manifest.config_digest().unwrap().to_string(),
        )
    })
}

/// `doc` is valid against the published output schema (schemas/cookbook-output.schema.json).
fn assert_output_schema(doc: &Value) {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(common::repo_root().join("schemas/cookbook-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the output schema compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// The ```sh block after `<!-- reproducible-test -->` in docs/REPRODUCIBILITY.md.
fn documented_check() -> String {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/REPRODUCIBILITY.md")).unwrap();
    let after = doc
        .split_once("<!-- reproducible-test -->\n```sh\n")
        .expect("docs/REPRODUCIBILITY.md has the marked block")
        .1;
    after.split_once("\n```").unwrap().0.to_owned()
}

#[test]
fn shop_from_two_checkouts_into_two_repositories_gives_one_digest_per_container() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = common::unique("repro");
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("one").join("shop");
    let b = work.path().join("two").join("elsewhere").join("checkout");
    let (repo_a, repo_b) = (
        format!("{registry}/{project}-a"),
        format!("{registry}/{project}-b"),
    );
    prepare_shop(&a, &project, &repo_a);
    prepare_shop(&b, &project, &repo_b);

    common::run_in(&a, &["apply", "-v"]).assert_code(0);
    let first = lock(&a);
    remove_project_images(&project);
    assert_eq!(project_images(&project), 0, "local images left behind");
    // The classic builder stamps whole seconds: a second build in the same second would hide
    // the clock.
    std::thread::sleep(Duration::from_millis(1100));
    let second_run = common::run_in(&b, &["apply", "-v"]);
    second_run.assert_code(0);
    assert!(
        !second_run.stderr.contains("Using cache"),
        "the second apply must build every step afresh\n{}",
        second_run.context()
    );
    let second = lock(&b);

    for name in SHOP {
        let digest = entry(&first, name, "digest");
        assert_eq!(digest, entry(&second, name, "digest"), "{name}");
        let image_id = entry(&first, name, "image_id");
        assert_eq!(image_id, entry(&second, name, "image_id"), "{name}");
        let hash = entry(&second, name, "input_hash");
        // Published as normalized: an OCI manifest under the content tag, in both repositories;
        // its config digest is the image id.
        for repo in [&repo_a, &repo_b] {
            let (pushed, media_type, config) = published(&format!("{repo}/{name}"), hash);
            assert_eq!(pushed, digest, "{repo}/{name}");
            assert_eq!(media_type, "application/vnd.oci.image.manifest.v1+json");
            assert_eq!(config, image_id, "{repo}/{name}");
        }
        // Loaded back: the local names point at the normalized image.
        let (id, _) = local(&format!("cookbook.local/{project}/{name}:{hash}"));
        assert_eq!(id, image_id, "{name}");
        let (id, _) = local(&format!("{repo_b}/{name}:{hash}"));
        assert_eq!(id, image_id, "{name}");
    }
    // The `container:` child is built FROM the normalized parent: it starts with its layers.
    let api = local(&format!(
        "cookbook.local/{project}/api:{}",
        entry(&second, "api", "input_hash")
    ));
    let worker = local(&format!(
        "cookbook.local/{project}/worker:{}",
        entry(&second, "worker", "input_hash")
    ));
    assert!(worker.1.starts_with(&api.1), "{worker:?} {api:?}");
    assert!(worker.1.len() > api.1.len());

    // The digests check out by hand, with curl, jq and sha256sum, as docs/REPRODUCIBILITY.md
    // shows.
    let script = documented_check();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&b)
        .env("REG", &registry)
        .env("REPO", format!("{project}-b/api"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the documented check failed\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout)
        .contains(&format!("api: {} checked", entry(&second, "api", "digest"))));

    // Rebuilt from the clean tree, every container is the locked image.
    let verify = common::run_in(&b, &["verify", "--rebuild"]);
    verify.assert_code(0);
    let lines: Vec<&str> = verify.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", verify.context());
    for (line, name) in lines.iter().zip(SHOP) {
        assert!(
            line.starts_with(&format!("ok        {name:<6}  ")),
            "{}",
            verify.context()
        );
    }
    assert!(
        verify
            .stderr
            .contains("verify: 4 ok, 0 mismatch(es), rebuilt"),
        "{}",
        verify.context()
    );
    let json = common::run_in(&b, &["verify", "--rebuild", "db", "--format", "json"]);
    json.assert_code(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_output_schema(&doc);
    assert_eq!(doc["rebuild_checked"], true);
    assert_eq!(
        doc["containers"]["db"]["rebuilt_digest"].as_str(),
        Some(entry(&second, "db", "digest"))
    );
    // Only db was rebuilt.
    assert_eq!(doc["containers"]["api"]["rebuilt_digest"], Value::Null);

    // From a git revision: the image was built outside any checkout (no revision label), and
    // the rebuild takes the locked image's label, not the commit it is rebuilt from.
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&b)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    };
    git(&["init", "-q", "."]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "shop"]);
    let at_rev = common::run_in(&b, &["verify", "--rebuild", "--rev", "HEAD", "db"]);
    at_rev.assert_code(0);
    assert!(
        at_rev.stdout.starts_with("ok        api"),
        "{}",
        at_rev.context()
    );
    remove_project_images(&project);
}

#[test]
fn no_push_loads_the_normalized_image_and_the_push_publishes_the_same_one() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = common::unique("nopush");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("shop");
    let repo = format!("{registry}/{project}");
    prepare_shop(&dir, &project, &repo);

    common::run_in(&dir, &["apply", "--no-push"]).assert_code(0);
    let local_lock = lock(&dir);
    for name in SHOP {
        assert_eq!(local_lock["containers"][name]["digest"], Value::Null);
        let hash = entry(&local_lock, name, "input_hash");
        let (id, _) = local(&format!("cookbook.local/{project}/{name}:{hash}"));
        assert_eq!(id, entry(&local_lock, name, "image_id"), "{name}");
    }
    let hash = |name| entry(&local_lock, name, "input_hash").to_owned();
    let api = local(&format!("cookbook.local/{project}/api:{}", hash("api")));
    let worker = local(&format!(
        "cookbook.local/{project}/worker:{}",
        hash("worker")
    ));
    assert!(worker.1.starts_with(&api.1), "{worker:?} {api:?}");

    // A --no-push lock is compared with the local engine's image.
    common::run_in(&dir, &["verify", "--rebuild", "worker"]).assert_code(0);

    // Pushed, the registry gets the very image the engine holds: its config digest is the id.
    common::run_in(&dir, &["apply"]).assert_code(0);
    let pushed = lock(&dir);
    for name in SHOP {
        let (digest, _, config) = published(&format!("{repo}/{name}"), &hash(name));
        assert_eq!(digest, entry(&pushed, name, "digest"), "{name}");
        assert_eq!(config, entry(&local_lock, name, "image_id"), "{name}");
    }
    remove_project_images(&project);
}

#[test]
fn verify_rebuild_names_the_layer_step_and_path_of_a_run_step_that_writes_the_date() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let project = common::unique("stamp");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned());
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "manifest_version": "1.0",
            "project": { "name": project },
            "containers": { "stamp": { "dockerfile": "Dockerfile", "context": "." } },
            "packaging": { "registry": format!("{registry}/{project}") }
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN echo fixed > /fixed.txt\nRUN mkdir -p /out && date > /out/built-at && echo same > /out/same\n"
        ),
    )
    .unwrap();
    common::run_in(dir, &["apply"]).assert_code(0);
    let locked = lock(dir);
    let layers = local(&base).1.len() + 2;
    std::thread::sleep(Duration::from_millis(1100));

    let text = common::run_in(dir, &["verify", "--rebuild"]);
    text.assert_code(1);
    assert_eq!(
        text.stdout,
        format!(
            "MISMATCH  stamp  rebuild differs from the lock at layer {layers} of {layers} (RUN mkdir -p /out && date > /out/built-at && echo same > /out/same): out/built-at (content)\n"
        ),
        "{}",
        text.context()
    );
    assert!(
        text.stderr
            .contains("verify: 0 ok, 1 mismatch(es), rebuilt"),
        "{}",
        text.context()
    );

    std::thread::sleep(Duration::from_millis(1100));
    let json = common::run_in(dir, &["verify", "--rebuild", "--format", "json"]);
    json.assert_code(1);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_output_schema(&doc);
    let stamp = &doc["containers"]["stamp"];
    assert_eq!(stamp["status"], "mismatch");
    let reason = &stamp["reasons"][0];
    assert_eq!(reason["kind"], "rebuild_differs");
    assert_eq!(
        reason["locked"].as_str(),
        Some(entry(&locked, "stamp", "digest"))
    );
    assert_eq!(reason["rebuilt"], stamp["rebuilt_digest"]);
    assert_ne!(reason["rebuilt"], reason["locked"]);
    let difference = &reason["difference"];
    assert_eq!(difference["kind"], "layer");
    assert_eq!(difference["index"], layers - 1);
    assert_eq!(difference["layers"], layers);
    assert_eq!(
        difference["paths"],
        serde_json::json!([{ "path": "out/built-at", "what": ["content"] }])
    );
    remove_project_images(&project);
}
