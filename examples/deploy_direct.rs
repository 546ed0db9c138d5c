//! The "direct" side of `scripts/bench-deploy.sh`: creates the same containers `cookbook deploy`
//! would for the generated 50-container cookbook — same image, network, alias, restart policy,
//! same HEALTHCHECK — straight through the engine API, one wave at a time: create and start every
//! container of the wave, then poll until all of them are healthy, then the next wave. It is the
//! least a deploy with health gates must do; the benchmark compares `cookbook deploy` against it.
//!
//! Usage: `deploy_direct IMAGE PREFIX WAVES PER_WAVE` (DOCKER_HOST names the engine); prints
//! the milliseconds the waves took, and removes what it created.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    NetworkCreateRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use cookbook::engine::DockerEngine;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, prefix, waves, per_wave] = args.as_slice() else {
        eprintln!("usage: deploy_direct IMAGE PREFIX WAVES PER_WAVE");
        std::process::exit(2);
    };
    let waves: usize = waves.parse().expect("WAVES");
    let per_wave: usize = per_wave.parse().expect("PER_WAVE");
    let engine = DockerEngine::connect().await.expect("engine");
    let docker = engine.client();
    let network = format!("{prefix}-net");
    docker
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".to_owned()),
            ..Default::default()
        })
        .await
        .expect("network");
    let ms = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let started = Instant::now();
    let mut all = Vec::new();
    for w in 1..=waves {
        let names: Vec<String> = (1..=per_wave)
            .map(|i| format!("{prefix}-w{w}-c{i}-1"))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let body = ContainerCreateBody {
                image: Some(image.clone()),
                healthcheck: Some(HealthConfig {
                    test: Some(vec![
                        "CMD-SHELL".to_owned(),
                        "wget -q -O /dev/null http://127.0.0.1:80/index.html".to_owned(),
                    ]),
                    interval: Some(ms(Duration::from_millis(200))),
                    timeout: Some(ms(Duration::from_secs(5))),
                    retries: Some(30),
                    start_period: Some(ms(Duration::from_secs(3))),
                    start_interval: None,
                }),
                host_config: Some(HostConfig {
                    network_mode: Some(network.clone()),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        network.clone(),
                        EndpointSettings {
                            aliases: Some(vec![format!("w{w}-c{}", i + 1)]),
                            ..Default::default()
                        },
                    )])),
                }),
                ..Default::default()
            };
            docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name.clone()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .expect("create");
            docker
                .start_container(name, None::<StartContainerOptions>)
                .await
                .expect("start");
        }
        // The wave's gate: every container healthy (polled like deploy's, every 100 ms).
        for name in &names {
            loop {
                let info = docker.inspect_container(name, None).await.expect("inspect");
                let health = info.state.and_then(|s| s.health).and_then(|h| h.status);
                if health == Some(HealthStatusEnum::HEALTHY) {
                    break;
                }
                assert_ne!(health, Some(HealthStatusEnum::UNHEALTHY), "{name}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        all.extend(names);
    }
    println!("{}", started.elapsed().as_millis());
    for name in &all {
        let _ = docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
    let _ = docker.remove_network(&network).await;
}
