//! Engine-less builds (issue 11, item 4), against the real engine and registry that
//! `scripts/services.sh` starts: a generated container whose applications have no build
//! commands is assembled from its base and its context with no Docker engine at all
//! (`DOCKER_HOST` pointing at a closed loopback port, or at a socket nothing serves: what a
//! stopped engine looks like to a client — the suite's one engine is not stopped, since the
//! other tests run beside these), pushed, and then runs when the engine starts it; the same cookbook applied with the engine gives the same digests; `apply` without
//! an engine names each container that needs one and exits 3.
//!
//! The base is the busybox test image pushed to the test registry by the engine itself (a
//! Docker v2 manifest with gzip layers, like the images of Docker Hub), so the engine-less run
//! can read it through the registry API.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common;

use common::unique;

/// A `DOCKER_HOST` where no engine answers: a loopback port nothing listens on.
fn no_engine() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("tcp://127.0.0.1:{port}")
}

/// `cookbook ARGS` in `dir` with extra environment variables (CI output: plain lines).
fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
    let mut all = vec![("CI", "true")];
    all.extend_from_slice(envs);
    common::run_in_env(dir, args, &all)
}

/// The docker CLI (Debian's docker.io, which scripts/services.sh installs) against the test engine.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pushes the busybox test image to `<registry>/<unique>/busybox:1` through the engine and
/// returns that reference.
fn registry_base(registry: &str) -> String {
    let base = format!("{registry}/{}/busybox:1", unique("asmbase"));
    docker(&["tag", "cookbook-test/busybox:latest", &base]);
    docker(&["push", "-q", &base]);
    base
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `site` (no build commands, FROM `base`), `child` (no build commands, FROM `container:site`)
/// and, with `engine_parts`, `app` (build commands) and `db` (a Dockerfile).
fn book(dir: &Path, base: &str, registry: &str, engine_parts: bool) {
    write(
        &dir.join("web/index.html"),
        "hello from an assembled image\n",
    );
    write(&dir.join("web/css/site.css"), "body {}\n");
    // An executable and a symlink: their mode and target are carried into the layer.
    write(&dir.join("web/run.sh"), "#!/bin/sh\necho run\n");
    std::fs::set_permissions(
        dir.join("web/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("web/home.html"));
    std::os::unix::fs::symlink("index.html", dir.join("web/home.html")).unwrap();
    write(&dir.join("extra/notes.txt"), "notes\n");
    let mut applications = json!({
        "web": {
            "source": "web",
            "run_command": "cat index.html && pwd && echo \"$GREETING $TIER\" && stat -c %a /tmp",
            "env": { "GREETING": "hi" }
        },
        "extra": { "source": "extra" }
    });
    let mut containers = json!({
        "site": {
            "base_image": base,
            "applications": ["web"],
            // Under a directory the base has: it keeps the base's mode (1777), not 0755.
            "workdir": "/tmp/www",
            "ports": [8080],
            "env": { "TIER": "frontend" },
            "labels": { "org.example.team": "web", "org.opencontainers.image.title": "Our site" }
        },
        "child": { "base_image": "container:site", "applications": ["extra"] }
    });
    if engine_parts {
        write(&dir.join("app/main.sh"), "echo app\n");
        // FROM an image only the engine has: without an engine it cannot be pinned, and since
        // only a Dockerfile (which needs an engine anyway) names it, that stops nothing else.
        write(
            &dir.join("db/Dockerfile"),
            "FROM cookbook-test/busybox:latest\nRUN echo db > /db.txt\n",
        );
        applications["app"] = json!({ "source": "app", "build_commands": ["chmod 0755 main.sh"] });
        containers["app"] = json!({ "base_image": base, "applications": ["app"] });
        containers["db"] = json!({ "dockerfile": "db/Dockerfile", "context": "db" });
        containers["after_app"] =
            json!({ "base_image": "container:app", "applications": ["extra"] });
    }
    write(
        &dir.join("cookbook.json"),
        &serde_json::to_string_pretty(&json!({
            "manifest_version": "1.0",
            "project": { "name": "assembled" },
            "applications": applications,
            "containers": containers,
            "packaging": { "registry": registry }
        }))
        .unwrap(),
    );
}

fn summary(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

fn digests(doc: &Value) -> Vec<(String, String)> {
    doc["containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, c)| (n.clone(), c["digest"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[test]
fn without_an_engine_a_container_without_build_commands_is_built_pushed_and_runs() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let base = registry_base(&registry);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engine_less = format!("{registry}/{}", unique("asm-a"));
    let with_engine = format!("{registry}/{}", unique("asm-b"));
    book(a.path(), &base, &engine_less, false);
    book(b.path(), &base, &with_engine, false);

    // No engine anywhere: assembled from the registry's base and the context, and pushed.
    let host = no_engine();
    let offline = run(
        a.path(),
        &["apply", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    offline.assert_code(0);
    assert!(
        offline.stderr.contains("warning: no Docker engine"),
        "{}",
        offline.context()
    );
    let doc = summary(&offline);
    assert_eq!(doc["built"], 2, "{}", offline.context());
    let without = digests(&doc);
    assert!(without.iter().all(|(_, d)| d.starts_with("sha256:")));

    // The same cookbook from another checkout, with the engine, into another repository: one
    // procedure, so the same digests.
    let online = run(b.path(), &["apply", "--format", "json"], &[]);
    online.assert_code(0);
    assert_eq!(digests(&summary(&online)), without, "{}", online.context());

    // The engine runs what was built without it: files, working directory, environment, command.
    let digest = |name: &str| {
        without
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    let site = format!("{engine_less}/site@{}", digest("site"));
    let out = docker(&["run", "--rm", &site]);
    assert_eq!(
        out,
        "hello from an assembled image\n/tmp/www/web\nhi frontend\n1777\n"
    );
    let child = format!("{engine_less}/child@{}", digest("child"));
    let out = docker(&[
        "run",
        "--rm",
        &child,
        "sh",
        "-c",
        "cat /srv/extra/notes.txt && ls -ld /tmp/www/web/css | cut -c1-10 && cd /tmp/www/web && stat -c %a run.sh index.html && readlink home.html && ./run.sh",
    ]);
    assert_eq!(out, "notes\ndrwxr-xr-x\n755\n644\nindex.html\nrun\n");
    let config: Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        &site,
        "--format",
        "{{json .Config}}",
    ]))
    .unwrap();
    assert_eq!(config["ExposedPorts"], json!({ "8080/tcp": {} }));
    assert_eq!(config["Labels"]["org.example.team"], "web");
    assert_eq!(config["Labels"]["dev.cookbook.container"], "site");
    // The container's own OCI title is kept, not overwritten with the container's name; the
    // child, which sets none, gets the name.
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"],
        "Our site"
    );
    let child_labels = docker(&[
        "image",
        "inspect",
        &child,
        "--format",
        "{{index .Config.Labels \"org.opencontainers.image.title\"}}",
    ]);
    assert_eq!(child_labels.trim(), "child");

    // A release engineer's rebuild of it needs no engine either, and matches.
    let verify = run(
        a.path(),
        &["verify", "--rebuild", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    verify.assert_code(0);
    let report = summary(&verify);
    for (name, digest) in &without {
        assert_eq!(
            report["containers"][name]["rebuilt_digest"],
            *digest,
            "{}",
            verify.context()
        );
    }
}

#[test]
fn without_an_engine_apply_names_each_container_that_needs_one_and_exits_3() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let base = registry_base(&registry);
    let dir = tempfile::tempdir().unwrap();
    book(
        dir.path(),
        &base,
        &format!("{registry}/{}", unique("asm-c")),
        true,
    );
    // A stopped engine as the default setup has it: a socket path nothing serves.
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let run = run(
        dir.path(),
        &["apply", "--keep-going", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    run.assert_code(3);
    let doc = summary(&run);
    let status = |name: &str| {
        doc["containers"][name]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {}", run.context()))
            .to_owned()
    };
    assert_eq!(status("site"), "built", "{}", run.context());
    assert_eq!(status("child"), "built");
    assert_eq!(status("app"), "needs_engine");
    assert_eq!(status("db"), "needs_engine");
    assert_eq!(status("after_app"), "skipped");
    assert_eq!(doc["needs_engine"], 2);
    for (name, why) in [
        ("app", "the build commands of app run in an engine"),
        ("db", "its Dockerfile db/Dockerfile"),
    ] {
        assert!(
            run.stderr
                .contains(&format!("[{name}] NOT BUILT: needs a Docker engine: ")),
            "{}",
            run.context()
        );
        assert!(
            doc["containers"][name]["reason"]
                .as_str()
                .unwrap()
                .contains(why),
            "{}",
            run.context()
        );
    }
    assert!(
        run.stderr
            .contains("error: not built without a Docker engine: app, db"),
        "{}",
        run.context()
    );
    // Nothing half-done is recorded: the entries are written by complete runs only; the pins
    // the run resolved are there, recorded before any build.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cookbook.lock")).unwrap()).unwrap();
    assert_eq!(lock["containers"], serde_json::json!({}), "{lock:#}");
    assert!(
        lock["bases"].as_object().is_some_and(|b| !b.is_empty()),
        "{lock:#}"
    );
}

#[test]
fn with_no_push_the_assembled_image_is_loaded_into_the_engine() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // An engine-only base: exported from the engine and carried as it is.
    book(
        dir.path(),
        "cookbook-test/busybox:latest",
        &format!("{registry}/{}", unique("asm-d")),
        false,
    );
    let run = run(dir.path(), &["apply", "--no-push", "--format", "json"], &[]);
    run.assert_code(0);
    let doc = summary(&run);
    let site = &doc["containers"]["site"];
    let id = site["image_id"].as_str().unwrap();
    // Loaded under its content-addressed name, its id its config digest.
    let local = format!(
        "cookbook.local/assembled/site:{}",
        site["input_hash"].as_str().unwrap()
    );
    assert_eq!(
        docker(&["image", "inspect", &local, "--format", "{{.Id}}"]).trim(),
        id
    );
    let out = docker(&["run", "--rm", &local]);
    assert_eq!(
        out,
        "hello from an assembled image\n/tmp/www/web\nhi frontend\n1777\n"
    );
}

/// The tests push the busybox test image under other names (above): the engine then knows
/// registry digests of that image, but none in `cookbook-test/busybox`'s own repository, so a
/// base named that way is still the engine's image, not something to ask Docker Hub about.
#[test]
fn a_base_only_the_engine_has_stays_engine_pinned_when_its_image_is_pushed_elsewhere() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    registry_base(&registry);
    let dir = tempfile::tempdir().unwrap();
    book(
        dir.path(),
        "cookbook-test/busybox:latest",
        &format!("{registry}/{}", unique("asm-e")),
        false,
    );
    let run = run(dir.path(), &["apply", "--dry-run", "--no-push"], &[]);
    run.assert_code(0);
    let id = docker(&[
        "image",
        "inspect",
        "cookbook-test/busybox:latest",
        "--format",
        "{{.Id}}",
    ]);
    assert!(
        run.stderr.contains(&format!(
            "would pin base image cookbook-test/busybox:latest to {} (engine)",
            id.trim()
        )),
        "{}",
        run.context()
    );
}

/// A base only the engine has cannot be read without it: a container on it (pinned by an earlier
/// apply) is named as needing the engine, its pin is kept unchecked, and an unpinned one stops
/// the run with exit 3 saying why.
#[test]
fn without_an_engine_a_base_only_the_engine_has_makes_its_containers_need_one() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    book(
        dir.path(),
        "cookbook-test/busybox:latest",
        &format!("{registry}/{}", unique("asm-f")),
        false,
    );
    run(dir.path(), &["apply"], &[]).assert_code(0);
    write(&dir.path().join("web/index.html"), "changed\n");
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let offline = run(
        dir.path(),
        &["apply", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    offline.assert_code(3);
    let doc = summary(&offline);
    assert_eq!(doc["containers"]["site"]["status"], "needs_engine");
    assert!(
        doc["containers"]["site"]["reason"]
            .as_str()
            .unwrap()
            .contains("its base image sha256:"),
        "{}",
        offline.context()
    );
    assert_eq!(doc["containers"]["child"]["status"], "skipped");
    assert!(
        offline
            .stderr
            .contains("an image of the local engine, which does not answer"),
        "{}",
        offline.context()
    );

    // Not pinned yet, with no engine: only the reference's registry can say what it is, and
    // one that answers without it leaves only an engine that could have it.
    std::fs::remove_file(dir.path().join("cookbook.lock")).unwrap();
    let missing = format!("{registry}/{}/missing:1", unique("asm-g"));
    book(
        dir.path(),
        &missing,
        &format!("{registry}/{}", unique("asm-f")),
        false,
    );
    let nowhere = run(dir.path(), &["apply"], &[("DOCKER_HOST", host.as_str())]);
    nowhere.assert_code(3);
    assert!(
        nowhere.stderr.contains(&format!(
            "cannot resolve base image `{missing}` of site: the registry {registry} does not \
             have it, and no Docker engine answers"
        )),
        "{}",
        nowhere.context()
    );
}

/// A base pinned to a multi-platform image index: the assembly reads the entry for this
/// machine's `linux/<arch>`, not the first one. The index is made here from the busybox base:
/// its Docker manifest for this machine, and for `s390x` an OCI manifest of the same layers
/// with a config labelled `platform=s390x`, listed first.
#[test]
fn an_index_base_gives_this_machines_platform() {
    use cookbook::registry::{Digest, ImageReference, RegistryClient};
    let Some(registry) = common::test_registry() else {
        return;
    };
    let base = registry_base(&registry);
    let reference = ImageReference::parse(&base).unwrap();
    let repo = reference.repository().clone();
    let arch = cookbook::image::assemble::host_architecture();
    let scratch = tempfile::tempdir().unwrap();
    let index_tag = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = RegistryClient::new().unwrap();
            let native = client.manifest_get(&repo, "1").await.unwrap().unwrap();
            let mut manifest: Value = serde_json::from_slice(&native.bytes).unwrap();
            let config_digest =
                Digest::parse(manifest["config"]["digest"].as_str().unwrap()).unwrap();
            let mut config: Value = serde_json::from_slice(
                &client
                    .blob_get(&repo, &config_digest)
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
            config["architecture"] = json!("s390x");
            config["config"]["Labels"]["platform"] = json!("s390x");
            let config = serde_json::to_vec(&config).unwrap();
            let other_config = Digest::sha256_of(&config);
            let path = scratch.path().join("config.json");
            std::fs::write(&path, &config).unwrap();
            client
                .blob_upload(&repo, &other_config, &path, config.len() as u64)
                .await
                .unwrap();
            manifest["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
            manifest["config"] = json!({
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": other_config.as_str(),
                "size": config.len(),
            });
            for layer in manifest["layers"].as_array_mut().unwrap() {
                layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
            }
            let other = serde_json::to_vec(&manifest).unwrap();
            let other_digest = client
                .manifest_put(
                    &repo,
                    "s390x",
                    "application/vnd.oci.image.manifest.v1+json",
                    &other,
                )
                .await
                .unwrap();
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    { "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": other_digest.as_str(), "size": other.len(),
                      "platform": { "os": "linux", "architecture": "s390x" } },
                    { "mediaType": native.media_type, "digest": native.digest.as_str(),
                      "size": native.bytes.len(),
                      "platform": { "os": "linux", "architecture": arch } },
                ],
            }))
            .unwrap();
            client
                .manifest_put(
                    &repo,
                    "multi",
                    "application/vnd.oci.image.index.v1+json",
                    &index,
                )
                .await
                .unwrap();
            format!("{repo}:multi")
        });

    let dir = tempfile::tempdir().unwrap();
    let publish_to = format!("{registry}/{}", unique("asm-h"));
    book(dir.path(), &index_tag, &publish_to, false);
    let host = no_engine();
    let offline = run(
        dir.path(),
        &["apply", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    offline.assert_code(0);
    let site = format!(
        "{publish_to}/site@{}",
        summary(&offline)["containers"]["site"]["digest"]
            .as_str()
            .unwrap()
    );
    docker(&["pull", "-q", &site]);
    let config: Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        &site,
        "--format",
        "{{json .}}",
    ]))
    .unwrap();
    assert_eq!(config["Architecture"], arch);
    assert_eq!(config["Config"]["Labels"]["platform"], Value::Null);
    assert_eq!(
        docker(&["run", "--rm", &site]),
        "hello from an assembled image\n/tmp/www/web\nhi frontend\n1777\n"
    );
}

/// A base whose upper layer removes `/opt` (a `.wh.opt` whiteout) over a lower layer holding
/// `/opt/www` at 0700 33:33 and a symlink `/opt/link`: assembled without an engine, `/opt/www`
/// is created as the engine creates it (0755 root), not with the removed directory's mode and
/// owner, and a workdir at the removed link's path is no symlink to refuse. The engine's own
/// build of the same context is the reference.
#[test]
fn ancestor_whiteouts_remove_what_lower_layers_had_as_the_engine_does() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    write(
        &scratch.path().join("Dockerfile"),
        "FROM cookbook-test/busybox:latest\n\
         RUN mkdir -p /opt/www && chown 33:33 /opt/www && chmod 0700 /opt/www && ln -s /nowhere /opt/link\n\
         RUN rm -rf /opt\n",
    );
    let base = format!("{registry}/{}/removed:1", unique("asmwh"));
    docker(&["build", "-q", "-t", &base, scratch.path().to_str().unwrap()]);
    docker(&["push", "-q", &base]);

    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("web/index.html"), "hi\n");
    let publish_to = format!("{registry}/{}", unique("asm-wh"));
    let probe = "stat -c '%a %u %g %n' $(dirname $PWD) $PWD";
    write(
        &dir.path().join("cookbook.json"),
        &serde_json::to_string_pretty(&json!({
            "manifest_version": "1.0",
            "project": { "name": "whiteouts" },
            "applications": { "web": { "source": "web", "run_command": probe } },
            "containers": {
                "www": { "base_image": base, "applications": ["web"], "workdir": "/opt/www" },
                "linked": { "base_image": base, "applications": ["web"], "workdir": "/opt/link" }
            },
            "packaging": { "registry": publish_to }
        }))
        .unwrap(),
    );
    let host = no_engine();
    let applied = run(
        dir.path(),
        &["apply", "--format", "json"],
        &[("DOCKER_HOST", host.as_str())],
    );
    applied.assert_code(0);
    let doc = summary(&applied);
    for (container, workdir) in [("www", "/opt/www"), ("linked", "/opt/link")] {
        let assembled = format!(
            "{publish_to}/{container}@{}",
            doc["containers"][container]["digest"].as_str().unwrap()
        );
        docker(&["pull", "-q", &assembled]);
        let tar = dir.path().join(format!("{container}.tar"));
        run(
            dir.path(),
            &["context", container, "-o", tar.to_str().unwrap()],
            &[],
        )
        .assert_code(0);
        let built = Command::new("docker")
            .args(["build", "-q", "-"])
            .stdin(std::fs::File::open(&tar).unwrap())
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let engine_image = String::from_utf8_lossy(&built.stdout).trim().to_owned();
        let expected = format!("755 0 0 {workdir}\n755 0 0 {workdir}/web\n");
        assert_eq!(docker(&["run", "--rm", &engine_image]), expected);
        assert_eq!(
            docker(&["run", "--rm", &assembled]),
            expected,
            "{container}"
        );
    }
}
