//! Helpers for the deploy tests (`tests/it/deploy.rs` with the `stages` example, `tests/it/deploy_shop.rs`
//! with `shop`): a private copy of an example under a project name of its own, the engine's view
//! of its containers, and `--format json` answers checked against the output schema.

use std::collections::BTreeMap;
use std::path::Path;

use cookbook::engine::DockerEngine;

use super::{copy_example, repo_root, run_in, Run};

/// A copy of an example under a project name of its own, so that concurrent test runs on the
/// same engine never share containers; removes what it deployed (every stage) when dropped: the
/// containers and networks labelled with its project, and anything left at its instances' names.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    containers: Vec<String>,
    stages: Vec<String>,
}

/// What the engine says about one container: (StartedAt, image id, restart count).
pub type Seen = (String, String, i64);

impl Project {
    pub fn new(example: &str, tag: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_example(example, dir.path());
        let name = format!("{example}-{tag}-{}", std::process::id());
        let mut containers = Vec::new();
        let mut stages = Vec::new();
        edit(dir.path(), |doc| {
            doc["project"]["name"] = name.clone().into();
            containers = doc["containers"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            stages = doc["lifecycle"]["stages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
        });
        Project {
            dir,
            name,
            containers,
            stages,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The engine's name of a container's first instance in `stage` of the examples' site,
    /// `local`.
    pub fn instance(&self, stage: &str, container: &str) -> String {
        format!("{}-local-{stage}-{container}-1", self.name)
    }

    /// The name an earlier version gave the same instance (no site in it).
    pub fn old_instance(&self, stage: &str, container: &str) -> String {
        format!("{}-{stage}-{container}-1", self.name)
    }

    /// The names of the engine's containers labelled as this project's on site `local`, sorted.
    pub fn containers(&self) -> Vec<String> {
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![
                format!("dev.cookbook.project={}", self.name),
                "dev.cookbook.site=local".to_owned(),
            ],
        )]);
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let options = bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            let mut names: Vec<String> = engine
                .client()
                .list_containers(Some(options))
                .await
                .unwrap()
                .into_iter()
                .flat_map(|c| c.names.unwrap_or_default())
                .map(|n| n.trim_start_matches('/').to_owned())
                .collect();
            names.sort();
            names
        })
    }

    /// Each container's first instance in `stage` that the engine has.
    pub fn engine_state_in(&self, stage: &str) -> BTreeMap<String, Seen> {
        block_on(async {
            let engine = DockerEngine::connect().await.unwrap();
            let mut out = BTreeMap::new();
            for c in &self.containers {
                if let Ok(info) = engine
                    .client()
                    .inspect_container(&self.instance(stage, c), None)
                    .await
                {
                    let state = info.state.unwrap();
                    out.insert(
                        c.clone(),
                        (
                            state.started_at.unwrap(),
                            info.image.unwrap(),
                            info.restart_count.unwrap_or(0),
                        ),
                    );
                }
            }
            out
        })
    }

    pub fn engine_state(&self) -> BTreeMap<String, Seen> {
        self.engine_state_in("dev")
    }

    /// Runs `argv` in the instance and returns its standard output (exit code must be 0).
    pub fn exec(&self, instance: &str, argv: &[&str]) -> String {
        exec(instance, argv)
    }

    /// Removes a container by name, whatever it is.
    pub fn remove_by_hand(&self, name: &str) {
        let name = name.to_owned();
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let options = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            engine
                .client()
                .remove_container(&name, Some(options))
                .await
                .unwrap();
        });
    }

    /// Replaces an instance by a hand-made container of the same name running `cmd` in the
    /// base image, with none of cookbook's labels: a namesake that is not ours.
    pub fn replace_by_hand(&self, instance: &str, cmd: &[&str]) {
        self.replace(instance, cmd, false);
    }

    /// Replaces an instance by a hand-made container of the same name running `cmd` in the
    /// base image, with the replaced container's labels but its config hash: still the stage's
    /// by its labels (an operator's `docker run` copying them), but another image and command —
    /// drift, which the next deploy converges.
    pub fn replace_keeping_labels(&self, instance: &str, cmd: &[&str]) {
        self.replace(instance, cmd, true);
    }

    /// Recreates an instance exactly as it runs (image, command, network, config hash) but
    /// labelled as a version before issue 21 labelled it: `io.cookbook.*` for site, stage,
    /// release, container and config hash. The image still carries `dev.cookbook.project` and
    /// `.container`, as every cookbook image does.
    pub fn relabel_as_legacy(&self, instance: &str) {
        let instance = instance.to_owned();
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let docker = engine.client();
            let info = docker.inspect_container(&instance, None).await.unwrap();
            let config = info.config.unwrap();
            let labels: std::collections::HashMap<String, String> = config
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| match k.strip_prefix("dev.cookbook.") {
                    Some(key @ ("site" | "stage" | "release" | "config-hash")) => {
                        (format!("io.cookbook.{key}"), v)
                    }
                    _ => (k, v),
                })
                .chain(
                    ["project", "container"]
                        .iter()
                        .filter_map(|key| {
                            let v = config
                                .labels
                                .as_ref()?
                                .get(&format!("dev.cookbook.{key}"))?;
                            Some((format!("io.cookbook.{key}"), v.clone()))
                        })
                        .collect::<Vec<_>>(),
                )
                .collect();
            let network = info
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone());
            let options = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            docker
                .remove_container(&instance, Some(options))
                .await
                .unwrap();
            let body = bollard::models::ContainerCreateBody {
                image: info.image,
                cmd: config.cmd,
                labels: Some(labels),
                host_config: Some(bollard::models::HostConfig {
                    network_mode: network,
                    ..Default::default()
                }),
                ..Default::default()
            };
            run_container(docker, &instance, body).await;
        });
    }

    fn replace(&self, instance: &str, cmd: &[&str], keep_labels: bool) {
        let instance = instance.to_owned();
        let cmd: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            let docker = engine.client();
            let labels = if keep_labels {
                docker
                    .inspect_container(&instance, None)
                    .await
                    .unwrap()
                    .config
                    .and_then(|c| c.labels)
                    .map(|mut labels| {
                        labels.remove("dev.cookbook.config-hash");
                        labels
                    })
            } else {
                None
            };
            let options = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            docker
                .remove_container(&instance, Some(options))
                .await
                .unwrap();
            let body = bollard::models::ContainerCreateBody {
                image: Some("cookbook-test/busybox:latest".to_owned()),
                cmd: Some(cmd),
                labels,
                ..Default::default()
            };
            run_container(docker, &instance, body).await;
        });
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let name = self.name.clone();
        let containers = self.containers.clone();
        let stages = self.stages.clone();
        block_on(async move {
            let Ok(engine) = DockerEngine::connect().await else {
                return;
            };
            let docker = engine.client();
            // What this version labels, and what an earlier one did (the upgrade tests make
            // such containers and networks).
            for key in ["dev.cookbook.project", "io.cookbook.project"] {
                let filters = std::collections::HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{key}={name}")],
                )]);
                let labelled = docker
                    .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                        all: true,
                        filters: Some(filters.clone()),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.id);
                for container in labelled {
                    let options = bollard::query_parameters::RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_container(&container, Some(options)).await;
                }
            }
            let mut names = Vec::new();
            for stage in &stages {
                for c in &containers {
                    for n in 1..=2 {
                        names.push(format!("{name}-local-{stage}-{c}-{n}"));
                        names.push(format!("{name}-{stage}-{c}-{n}"));
                    }
                }
            }
            for container in names {
                let options = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&container, Some(options)).await;
            }
            for key in ["dev.cookbook.project", "io.cookbook.project"] {
                let filters = std::collections::HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{key}={name}")],
                )]);
                let networks = docker
                    .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                        filters: Some(filters),
                    }))
                    .await
                    .unwrap_or_default();
                for network in networks.into_iter().filter_map(|n| n.id) {
                    let _ = docker.remove_network(&network).await;
                }
            }
        });
    }
}

/// A container a test made itself (another owner's, as far as cookbook can tell): removed when
/// dropped.
pub struct Foreign {
    pub name: String,
    pub id: String,
}

impl Foreign {
    /// Creates and starts `name` (`sleep 600` in the base image) with `labels`.
    pub fn start(name: &str, labels: &[(&str, &str)]) -> Foreign {
        let name = name.to_owned();
        let labels: std::collections::HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let id = block_on({
            let name = name.clone();
            async move {
                let engine = DockerEngine::connect().await.unwrap();
                let body = bollard::models::ContainerCreateBody {
                    image: Some("cookbook-test/busybox:latest".to_owned()),
                    cmd: Some(vec!["sleep".to_owned(), "600".to_owned()]),
                    labels: Some(labels),
                    ..Default::default()
                };
                run_container(engine.client(), &name, body).await
            }
        });
        Foreign { name, id }
    }

    /// Whether the engine still has this very container (same id), running.
    pub fn is_intact(&self) -> bool {
        let id = self.id.clone();
        block_on(async move {
            let engine = DockerEngine::connect().await.unwrap();
            match engine.client().inspect_container(&id, None).await {
                Ok(info) => info.state.and_then(|s| s.running) == Some(true),
                Err(_) => false,
            }
        })
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let id = self.id.clone();
        block_on(async move {
            if let Ok(engine) = DockerEngine::connect().await {
                let options = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = engine.client().remove_container(&id, Some(options)).await;
            }
        });
    }
}

/// Creates the container `name` from `body` and starts it; its id.
pub async fn run_container(
    docker: &bollard::Docker,
    name: &str,
    body: bollard::models::ContainerCreateBody,
) -> String {
    let options = bollard::query_parameters::CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    id
}

/// A port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub use super::block_on;

/// Rewrites `dir/cookbook.json` through `change`.
pub fn edit(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("cookbook.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut doc);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// Whether the engine is there (else skipped, or failed when the services are required).
pub fn services() -> bool {
    if std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty()) {
        true
    } else {
        super::skip_or_fail();
        false
    }
}

/// `deploy --site local --stage STAGE --format json`, which must succeed.
pub fn deploy_to(dir: &Path, stage: &str) -> serde_json::Value {
    let run = run_in(
        dir,
        &[
            "deploy", "--site", "local", "--stage", stage, "--format", "json",
        ],
    );
    run.assert_code(0);
    json_answer(&run)
}

pub fn deploy(dir: &Path) -> serde_json::Value {
    deploy_to(dir, "dev")
}

/// `status --site local --stage STAGE --format json`, which must answer: exit 0 when the stage
/// is what the lock says (`ok`), 1 when it is not, never anything else.
pub fn status_in(dir: &Path, stage: &str) -> serde_json::Value {
    let run = run_in(
        dir,
        &[
            "status", "--site", "local", "--stage", stage, "--format", "json",
        ],
    );
    let doc = json_answer(&run);
    let ok = doc["ok"].as_bool().expect("status has `ok`");
    run.assert_code(if ok { 0 } else { 1 });
    assert_eq!(ok, doc["problems"].as_array().unwrap().is_empty(), "{doc}");
    doc
}

/// Parses a `--format json` answer and checks it against the published output schema.
pub fn json_answer(run: &Run) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.context()));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/cookbook-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}\n{}", run.context());
    doc
}

pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Runs `argv` in a running container through the engine; returns its standard output and
/// fails the test unless it exits 0.
pub fn exec(container: &str, argv: &[&str]) -> String {
    use futures_util::StreamExt;
    let container = container.to_owned();
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    block_on(async move {
        let engine = DockerEngine::connect().await.unwrap();
        let docker = engine.client();
        let exec = docker
            .create_exec(
                &container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(argv.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut out = String::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await.unwrap()
        {
            while let Some(Ok(item)) = output.next().await {
                if let bollard::container::LogOutput::StdOut { message } = item {
                    out.push_str(&String::from_utf8_lossy(&message));
                }
            }
        }
        let code = docker.inspect_exec(&exec.id).await.unwrap().exit_code;
        assert_eq!(code, Some(0), "{argv:?} in {container}: {out}");
        out
    })
}

/// Removes the volumes labelled with a project when dropped (a deploy never removes persistent
/// ones, and `Project` removes only containers and networks).
pub struct Volumes(pub String);

impl Drop for Volumes {
    fn drop(&mut self) {
        let project = self.0.clone();
        block_on(async move {
            let Ok(engine) = DockerEngine::connect().await else {
                return;
            };
            let docker = engine.client();
            let filters = std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("dev.cookbook.project={project}")],
            )]);
            let found = docker
                .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                    filters: Some(filters),
                }))
                .await
                .ok()
                .and_then(|v| v.volumes)
                .unwrap_or_default();
            for v in found {
                let _ = docker
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        });
    }
}

/// The gallery under a project name of its own, applied; the volume guard drops after the
/// project (its containers go first).
pub fn gallery(tag: &str) -> (Volumes, Project) {
    let p = Project::new("gallery", tag);
    // No host port: tests run at once on one engine.
    edit(p.path(), |doc| {
        let web = &mut doc["lifecycle"]["stage_config"]["dev"]["containers"]["web"];
        web.as_object_mut().unwrap().remove("ports");
    });
    run_in(p.path(), &["apply", "--no-push"]).assert_code(0);
    (Volumes(p.name.clone()), p)
}

/// What the engine says of a container (which must exist), by name or id.
pub fn inspect(name: &str) -> bollard::models::ContainerInspectResponse {
    let name = name.to_owned();
    block_on(async move {
        let engine = DockerEngine::connect().await.unwrap();
        engine
            .client()
            .inspect_container(&name, None)
            .await
            .unwrap()
    })
}
