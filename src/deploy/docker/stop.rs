//! Stopping a container of ours as `docker stop` and compose do before they remove one: its stop
//! signal (the image's `STOPSIGNAL`, else SIGTERM), then, once its own grace is over, the kill.
//! The grace is the container's `StopTimeout`, set from the cookbook's `stop_grace` when it was
//! created (the engine's 10 s without one), so a container is stopped by the settings it was
//! started with. Every removal of a running container of ours — a deploy replacing it, a
//! rollback, `down` — stops it here first: a database gets to flush and a server to finish its
//! requests, where a forced removal would kill them mid-write.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::StopContainerOptions;
use futures_util::future::try_join_all;

use crate::engine::docker::REQUEST_TIMEOUT;
use crate::engine::{DockerEngine, EngineError};

/// The engine's own grace when a container has no `StopTimeout` (`docker stop`'s default).
const ENGINE_DEFAULT_GRACE: u64 = 10;

/// Stops the container `id` if it runs, waiting as long as its own grace (at most `cap` seconds,
/// when given) and the kill take; a container already gone or stopped is fine.
pub(super) async fn stop(
    engine: &DockerEngine,
    id: &str,
    cap: Option<u32>,
) -> Result<(), EngineError> {
    let docker = engine.client();
    let found = match docker.inspect_container(id, None).await {
        Ok(found) => found,
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(()),
        Err(e) => return Err(engine.classify_error("inspect container", e)),
    };
    let running = found
        .state
        .as_ref()
        .is_some_and(|s| s.running == Some(true) || s.restarting == Some(true));
    if !running {
        return Ok(());
    }
    let own = found
        .config
        .and_then(|c| c.stop_timeout)
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(ENGINE_DEFAULT_GRACE);
    let grace = cap.map_or(own, |cap| own.min(u64::from(cap)));
    // Without a cap the engine applies the container's own grace; with one, it is said.
    let options = cap.map(|_| StopContainerOptions {
        t: Some(i32::try_from(grace).unwrap_or(i32::MAX)),
        ..Default::default()
    });
    // The engine answers once the container has exited: after the grace at most, then the kill.
    // The request's own deadline is that plus the usual one, so a hung engine is still reported.
    let patient = docker
        .clone()
        .with_timeout(Duration::from_secs(grace) + REQUEST_TIMEOUT);
    match patient.stop_container(id, options).await {
        Ok(())
        | Err(BollardError::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => Ok(()),
        Err(e) => Err(engine.classify_error("stop container", e)),
    }
}

/// Stops every container of `ids` at once: stopping them takes their longest grace, not the
/// sum of them.
pub(super) async fn stop_all(
    engine: &DockerEngine,
    ids: &[String],
    cap: Option<u32>,
) -> Result<(), EngineError> {
    try_join_all(ids.iter().map(|id| stop(engine, id, cap))).await?;
    Ok(())
}
