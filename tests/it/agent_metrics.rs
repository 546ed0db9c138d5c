//! The agent's `/metrics` text passes Prometheus' own linter, `promtool check metrics`
//! (Debian's `prometheus` package; scripts/test.sh installs it), after observations that reach
//! every family.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use cookbook::ops::agent::metrics::{
    BuildCounts, DeployObservation, Metrics, RoundObservation, WebhookResult,
};
use cookbook::ops::agent::status::{ContainerView, Health, StageView};

use crate::common;

fn container(name: &str, health: Health, drift: bool) -> ContainerView {
    ContainerView {
        container: name.to_owned(),
        name: format!("shop-site-production-{name}"),
        state: "running".to_owned(),
        health,
        drift,
        restarts: 0,
        services: vec!["tcp/8080 http".to_owned()],
    }
}

fn observed() -> Metrics {
    let metrics = Metrics::new();
    let deploys = [
        DeployObservation {
            stage: "staging",
            result: "deployed",
            rolled_back: false,
        },
        DeployObservation {
            stage: "production",
            result: "failed",
            rolled_back: true,
        },
    ];
    metrics.round(&RoundObservation {
        result: "ok",
        outcome: "taken",
        finished: SystemTime::now(),
        duration: Duration::from_millis(4200),
        revision: Some(("0123456789abcdef0123456789abcdef01234567", "main")),
        builds: Some(BuildCounts {
            built: 2,
            cached: 3,
            failed: 0,
        }),
        deploys: &deploys,
    });
    metrics.round(&RoundObservation {
        result: "failed",
        outcome: "error",
        finished: SystemTime::now(),
        duration: Duration::from_millis(300),
        revision: None,
        builds: None,
        deploys: &[],
    });
    metrics.webhook("github", WebhookResult::Accepted);
    metrics.webhook("unknown", WebhookResult::Unauthorized);
    metrics.stages(&[StageView {
        name: "production".to_owned(),
        release: Some("r1".to_owned()),
        deployed_at: None,
        images: Default::default(),
        containers: vec![
            container("web", Health::Healthy, false),
            container("worker", Health::Unhealthy, true),
        ],
        in_sync: false,
        error: None,
    }]);
    metrics
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let text = observed().encode();
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("promtool: {e}");
            common::skip_or_fail();
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}\n--- the text:\n{text}",
        out.status
    );
}

/// The text and its Content-Type are Prometheus' text format 0.0.4: what `promtool check
/// metrics` reads (it finds no help text for an OpenMetrics counter's `_total` samples).
#[test]
fn the_exposition_is_the_prometheus_text_format() {
    let text = observed().encode();
    assert_eq!(
        Metrics::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(text.contains("# HELP cookbook_builds_total "), "{text}");
    assert!(
        text.contains("# TYPE cookbook_builds_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    for family in [
        "cookbook_agent_rounds_total",
        "cookbook_agent_round_duration_seconds",
        "cookbook_agent_last_success_timestamp_seconds",
        "cookbook_agent_revision_info",
        "cookbook_builds_total",
        "cookbook_deploys_total",
        "cookbook_rollbacks_total",
        "cookbook_container_healthy",
        "cookbook_container_drift",
        "cookbook_webhook_deliveries_total",
        "cookbook_agent_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}:\n{text}"
        );
    }
}
