//! `GET /metrics`: what the agent has seen, as Prometheus metrics.
//!
//! Pure: the round loop and the webhook route report observations ([`Metrics::round`],
//! [`Metrics::webhook`], [`Metrics::stages`]); the server answers a scrape with
//! [`Metrics::encode`]. prometheus-client keeps the values (atomics behind `&self`, so one
//! `Arc<Metrics>` serves every task).
//!
//! Names follow Prometheus' conventions: a unit suffix, `_total` on counters (prometheus-client
//! adds it), labels with few values. A revision (a commit) is a label value in one place only,
//! the `cookbook_agent_revision_info` gauge, which holds the current revision alone.
//!
//! The gauges that are replaced whole (the revision, the containers) are cleared and set under
//! one lock that [`Metrics::encode`] takes too, so a scrape never sees them half replaced.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::ops::agent::status::{Health, StageView};
use crate::ops::agent::webhook::Rejected;

/// One round as the round loop saw it.
pub struct RoundObservation<'a> {
    /// "ok" | "failed" (as `sync --format json`'s `result`).
    pub result: &'a str,
    /// "up_to_date" | "taken" | "refused" | "error".
    pub outcome: &'a str,
    pub finished: SystemTime,
    pub duration: Duration,
    /// (commit, branch) of the revision the site now runs, when known.
    pub revision: Option<(&'a str, &'a str)>,
    /// Containers built, taken from the cache, and failed by this round's apply (None: no apply ran).
    pub builds: Option<BuildCounts>,
    pub deploys: &'a [DeployObservation<'a>],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildCounts {
    pub built: u64,
    pub cached: u64,
    pub failed: u64,
}

/// One stage's deploy in a round.
pub struct DeployObservation<'a> {
    pub stage: &'a str,
    /// "deployed" | "unchanged" | "skipped" | "outside_window" | "failed".
    pub result: &'a str,
    /// The stage's failed wave was rolled back.
    pub rolled_back: bool,
}

/// What became of a webhook delivery (the server's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// A round started.
    Accepted,
    /// A round was running: the delivery was folded into the next one.
    Coalesced,
    /// Authenticated, but nothing to do (another branch, a tag, a ping).
    Ignored,
    Unauthorized,
    Replayed,
    TooLarge,
    BadRequest,
}

impl WebhookResult {
    /// The `result` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Coalesced => "coalesced",
            WebhookResult::Ignored => "ignored",
            WebhookResult::Unauthorized => "unauthorized",
            WebhookResult::Replayed => "replayed",
            WebhookResult::TooLarge => "too_large",
            WebhookResult::BadRequest => "bad_request",
        }
    }
}

/// A rejected delivery is counted as what it was refused for.
impl From<&Rejected> for WebhookResult {
    fn from(rejected: &Rejected) -> WebhookResult {
        match rejected {
            Rejected::Unauthorized(_) => WebhookResult::Unauthorized,
            Rejected::BadRequest(_) => WebhookResult::BadRequest,
            Rejected::TooLarge => WebhookResult::TooLarge,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    result: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
    branch: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageResultLabels {
    stage: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    stage: String,
    container: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    result: String,
}

/// A gauge of seconds since the epoch, with their fractions.
type Seconds = Gauge<f64, AtomicU64>;

/// A round takes from a second (nothing new) to an hour (a cold build of everything).
const ROUND_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The agent's metrics: a registry and the families in it.
pub struct Metrics {
    registry: Registry,
    rounds: Family<RoundLabels, Counter>,
    round_duration: Histogram,
    last_success: Seconds,
    revision: Family<RevisionLabels, Gauge>,
    builds: Family<ResultLabels, Counter>,
    deploys: Family<StageResultLabels, Counter>,
    rollbacks: Family<StageLabels, Counter>,
    healthy: Family<ContainerLabels, Gauge>,
    drift: Family<ContainerLabels, Gauge>,
    webhooks: Family<WebhookLabels, Counter>,
    /// Held while a replaced-whole family is cleared and set, and while encoding.
    replacing: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The families, registered; the start time is now.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let rounds = Family::<RoundLabels, Counter>::default();
        registry.register(
            "cookbook_agent_rounds",
            "Sync rounds the agent ran, by result (ok, failed) and outcome (up_to_date, taken, refused, error)",
            rounds.clone(),
        );
        let round_duration = Histogram::new(ROUND_BUCKETS);
        registry.register_with_unit(
            "cookbook_agent_round_duration",
            "How long a sync round took, from fetch to the last stage deployed",
            Unit::Seconds,
            round_duration.clone(),
        );
        let last_success = Seconds::default();
        registry.register(
            "cookbook_agent_last_success_timestamp_seconds",
            "When the last round with result ok finished (Unix time)",
            last_success.clone(),
        );
        let revision = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "cookbook_agent_revision_info",
            "The revision the site runs and the branch it follows: 1 for the current revision only",
            revision.clone(),
        );
        let builds = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cookbook_builds",
            "Containers the rounds' applies handled, by result: built, cached (a cache hit: already published), failed",
            builds.clone(),
        );
        let deploys = Family::<StageResultLabels, Counter>::default();
        registry.register(
            "cookbook_deploys",
            "Stage deploys by stage and result (deployed, unchanged, skipped, outside_window, failed)",
            deploys.clone(),
        );
        let rollbacks = Family::<StageLabels, Counter>::default();
        registry.register(
            "cookbook_rollbacks",
            "Deploys whose failed wave was rolled back, by stage",
            rollbacks.clone(),
        );
        let healthy = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "cookbook_container_healthy",
            "1 when a container on the site is healthy (or running with no health probe), else 0",
            healthy.clone(),
        );
        let drift = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "cookbook_container_drift",
            "1 when a container on the site runs other than the lock wants, or is missing, else 0",
            drift.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "cookbook_webhook_deliveries",
            "Webhook deliveries by provider (github, gitlab, unknown) and what became of them",
            webhooks.clone(),
        );
        let start_time = Seconds::default();
        start_time.set(unix_seconds(SystemTime::now()));
        registry.register(
            "cookbook_agent_start_time_seconds",
            "When the agent started (Unix time)",
            start_time,
        );
        // The three build results exist from the start, so a rate over them is defined before
        // the first apply.
        for result in ["built", "cached", "failed"] {
            let _ = builds.get_or_create(&ResultLabels {
                result: result.to_owned(),
            });
        }
        Metrics {
            registry,
            rounds,
            round_duration,
            last_success,
            revision,
            builds,
            deploys,
            rollbacks,
            healthy,
            drift,
            webhooks,
            replacing: Mutex::new(()),
        }
    }

    /// Counts a round, its builds and deploys, and moves the revision and last success.
    pub fn round(&self, round: &RoundObservation<'_>) {
        self.rounds
            .get_or_create(&RoundLabels {
                result: round.result.to_owned(),
                outcome: round.outcome.to_owned(),
            })
            .inc();
        self.round_duration.observe(round.duration.as_secs_f64());
        if round.result == "ok" {
            self.last_success.set(unix_seconds(round.finished));
        }
        // A round that knows no revision (it could not fetch) leaves the one the site runs.
        if let Some((commit, branch)) = round.revision {
            let _replacing = self.replacing.lock().unwrap_or_else(|e| e.into_inner());
            self.revision.clear();
            self.revision
                .get_or_create(&RevisionLabels {
                    revision: commit.to_owned(),
                    branch: branch.to_owned(),
                })
                .set(1);
        }
        if let Some(builds) = round.builds {
            for (result, n) in [
                ("built", builds.built),
                ("cached", builds.cached),
                ("failed", builds.failed),
            ] {
                self.builds
                    .get_or_create(&ResultLabels {
                        result: result.to_owned(),
                    })
                    .inc_by(n);
            }
        }
        for deploy in round.deploys {
            self.deploys
                .get_or_create(&StageResultLabels {
                    stage: deploy.stage.to_owned(),
                    result: deploy.result.to_owned(),
                })
                .inc();
            if deploy.rolled_back {
                self.rollbacks
                    .get_or_create(&StageLabels {
                        stage: deploy.stage.to_owned(),
                    })
                    .inc();
            }
        }
    }

    /// Counts a webhook delivery.
    pub fn webhook(&self, provider: &str, result: WebhookResult) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_owned(),
                result: result.as_str().to_owned(),
            })
            .inc();
    }

    /// Replaces the container gauges with these stages' containers (a container gone from the
    /// site is gone from the metrics).
    pub fn stages(&self, stages: &[StageView]) {
        let _replacing = self.replacing.lock().unwrap_or_else(|e| e.into_inner());
        self.healthy.clear();
        self.drift.clear();
        for stage in stages {
            for container in &stage.containers {
                let labels = ContainerLabels {
                    stage: stage.name.clone(),
                    container: container.container.clone(),
                };
                let healthy = matches!(container.health, Health::Healthy | Health::None);
                self.healthy.get_or_create(&labels).set(i64::from(healthy));
                self.drift
                    .get_or_create(&labels)
                    .set(i64::from(container.drift));
            }
        }
    }

    /// The text exposition: Prometheus' text format 0.0.4 (prometheus-client's
    /// `prometheus_text` encoder), not OpenMetrics: `promtool check metrics` (2.42, Debian's)
    /// reads the 0.0.4 format, where an OpenMetrics counter's `# HELP cookbook_builds` does not
    /// describe its `cookbook_builds_total` samples ("no help text"). Every Prometheus scrapes it.
    pub fn encode(&self) -> String {
        let _replacing = self.replacing.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        // Writing into a String does not fail.
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding into a String");
        text
    }

    /// The Content-Type `/metrics` answers with.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::agent::status::ContainerView;

    /// The value of one series (`name{labels}` exactly as encoded), from the exposition text.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(rest.parse().unwrap())
        })
    }

    fn round<'a>(
        result: &'a str,
        outcome: &'a str,
        finished: u64,
        revision: Option<(&'a str, &'a str)>,
        builds: Option<BuildCounts>,
        deploys: &'a [DeployObservation<'a>],
    ) -> RoundObservation<'a> {
        RoundObservation {
            result,
            outcome,
            finished: UNIX_EPOCH + Duration::from_secs(finished),
            duration: Duration::from_millis(1500),
            revision,
            builds,
            deploys,
        }
    }

    fn stage(name: &str, containers: &[(&str, Health, bool)]) -> StageView {
        StageView {
            name: name.to_owned(),
            release: None,
            deployed_at: None,
            images: Default::default(),
            containers: containers
                .iter()
                .map(|(c, health, drift)| ContainerView {
                    container: (*c).to_owned(),
                    name: format!("p-s-{name}-{c}"),
                    state: "running".to_owned(),
                    health: *health,
                    drift: *drift,
                    restarts: 0,
                    services: Vec::new(),
                })
                .collect(),
            in_sync: true,
            error: None,
        }
    }

    #[test]
    fn a_new_agent_has_a_start_time_and_zero_builds() {
        let text = Metrics::new().encode();
        assert!(value(&text, "cookbook_agent_start_time_seconds").unwrap() > 1.7e9);
        for result in ["built", "cached", "failed"] {
            let series = format!("cookbook_builds_total{{result=\"{result}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{text}");
        }
        assert!(!text.contains("cookbook_agent_revision_info{"), "{text}");
        assert_eq!(
            value(&text, "cookbook_agent_last_success_timestamp_seconds"),
            Some(0.0)
        );
    }

    #[test]
    fn values_follow_the_rounds() {
        let metrics = Metrics::new();
        let deployed = [DeployObservation {
            stage: "staging",
            result: "deployed",
            rolled_back: false,
        }];
        let counts = BuildCounts {
            built: 2,
            cached: 5,
            failed: 0,
        };
        metrics.round(&round(
            "ok",
            "taken",
            1000,
            Some(("aaa", "main")),
            Some(counts),
            &deployed,
        ));
        let text = metrics.encode();
        let rounds = "cookbook_agent_rounds_total{result=\"ok\",outcome=\"taken\"}";
        assert_eq!(value(&text, rounds), Some(1.0));
        assert_eq!(
            value(&text, "cookbook_agent_last_success_timestamp_seconds"),
            Some(1000.0)
        );
        let revision_a = "cookbook_agent_revision_info{revision=\"aaa\",branch=\"main\"}";
        assert_eq!(value(&text, revision_a), Some(1.0));
        assert_eq!(
            value(&text, "cookbook_builds_total{result=\"cached\"}"),
            Some(5.0)
        );
        let staging = "cookbook_deploys_total{stage=\"staging\",result=\"deployed\"}";
        assert_eq!(value(&text, staging), Some(1.0));
        assert_eq!(
            value(&text, "cookbook_agent_round_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "cookbook_agent_round_duration_seconds_bucket{le=\"1\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "cookbook_agent_round_duration_seconds_bucket{le=\"2.5\"}"
            ),
            Some(1.0)
        );

        // A failed round: no new success, no revision known, so the site still runs aaa.
        metrics.round(&round("failed", "error", 2000, None, None, &[]));
        let text = metrics.encode();
        let failed = "cookbook_agent_rounds_total{result=\"failed\",outcome=\"error\"}";
        assert_eq!(value(&text, failed), Some(1.0));
        assert_eq!(value(&text, rounds), Some(1.0));
        assert_eq!(
            value(&text, "cookbook_agent_last_success_timestamp_seconds"),
            Some(1000.0)
        );
        assert_eq!(value(&text, revision_a), Some(1.0));
        assert_eq!(
            value(&text, "cookbook_builds_total{result=\"cached\"}"),
            Some(5.0)
        );

        // A new revision replaces the old one; builds add up; a rollback is counted.
        let failed_deploy = [
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
        let counts = BuildCounts {
            built: 1,
            cached: 0,
            failed: 1,
        };
        metrics.round(&round(
            "ok",
            "taken",
            3000,
            Some(("bbb", "main")),
            Some(counts),
            &failed_deploy,
        ));
        let text = metrics.encode();
        assert_eq!(value(&text, rounds), Some(2.0));
        assert_eq!(value(&text, revision_a), None, "{text}");
        assert_eq!(
            value(
                &text,
                "cookbook_agent_revision_info{revision=\"bbb\",branch=\"main\"}"
            ),
            Some(1.0)
        );
        assert_eq!(text.matches("cookbook_agent_revision_info{").count(), 1);
        assert_eq!(
            value(&text, "cookbook_agent_last_success_timestamp_seconds"),
            Some(3000.0)
        );
        assert_eq!(
            value(&text, "cookbook_builds_total{result=\"built\"}"),
            Some(3.0)
        );
        assert_eq!(
            value(&text, "cookbook_builds_total{result=\"cached\"}"),
            Some(5.0)
        );
        assert_eq!(
            value(&text, "cookbook_builds_total{result=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(value(&text, staging), Some(2.0));
        assert_eq!(
            value(
                &text,
                "cookbook_deploys_total{stage=\"production\",result=\"failed\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "cookbook_rollbacks_total{stage=\"production\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "cookbook_rollbacks_total{stage=\"staging\"}"),
            None
        );
        assert_eq!(
            value(&text, "cookbook_agent_round_duration_seconds_count"),
            Some(3.0)
        );
        assert_eq!(
            value(&text, "cookbook_agent_round_duration_seconds_sum"),
            Some(4.5)
        );
    }

    #[test]
    fn container_gauges_are_replaced_by_each_status() {
        let metrics = Metrics::new();
        metrics.stages(&[
            stage(
                "production",
                &[
                    ("web", Health::Healthy, false),
                    ("worker", Health::None, true),
                    ("db", Health::Starting, false),
                ],
            ),
            stage("staging", &[("web", Health::Down, true)]),
        ]);
        let text = metrics.encode();
        let healthy = |stage: &str, c: &str| {
            value(
                &text,
                &format!("cookbook_container_healthy{{stage=\"{stage}\",container=\"{c}\"}}"),
            )
        };
        let drift = |stage: &str, c: &str| {
            value(
                &text,
                &format!("cookbook_container_drift{{stage=\"{stage}\",container=\"{c}\"}}"),
            )
        };
        assert_eq!(healthy("production", "web"), Some(1.0));
        // Running with no probe counts as healthy.
        assert_eq!(healthy("production", "worker"), Some(1.0));
        assert_eq!(healthy("production", "db"), Some(0.0));
        assert_eq!(healthy("staging", "web"), Some(0.0));
        assert_eq!(drift("production", "web"), Some(0.0));
        assert_eq!(drift("production", "worker"), Some(1.0));
        assert_eq!(drift("staging", "web"), Some(1.0));

        // The worker is gone from the site, staging could not be asked: gone from the metrics.
        let mut unreachable = stage("staging", &[]);
        unreachable.error = Some("the engine is unreachable".to_owned());
        metrics.stages(&[
            stage("production", &[("web", Health::Unhealthy, false)]),
            unreachable,
        ]);
        let text = metrics.encode();
        assert_eq!(
            text.matches("cookbook_container_healthy{").count(),
            1,
            "{text}"
        );
        assert_eq!(
            text.matches("cookbook_container_drift{").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("cookbook_container_healthy{stage=\"production\",container=\"web\"} 0\n")
        );
    }

    /// One `Arc<Metrics>` is shared by the server's tasks and the round loop.
    #[test]
    fn metrics_are_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Metrics>();
    }

    #[test]
    fn a_rejection_is_counted_as_what_it_was() {
        let metrics = Metrics::new();
        metrics.webhook("github", (&Rejected::Unauthorized("x".to_owned())).into());
        metrics.webhook("github", (&Rejected::BadRequest("x".to_owned())).into());
        metrics.webhook("github", (&Rejected::TooLarge).into());
        let text = metrics.encode();
        for result in ["unauthorized", "bad_request", "too_large"] {
            let series = format!(
                "cookbook_webhook_deliveries_total{{provider=\"github\",result=\"{result}\"}}"
            );
            assert_eq!(value(&text, &series), Some(1.0), "{text}");
        }
    }

    #[test]
    fn webhook_deliveries_are_counted_by_provider_and_result() {
        let metrics = Metrics::new();
        metrics.webhook("github", WebhookResult::Accepted);
        metrics.webhook("github", WebhookResult::Accepted);
        metrics.webhook("github", WebhookResult::Replayed);
        metrics.webhook("gitlab", WebhookResult::TooLarge);
        let text = metrics.encode();
        let series = |p: &str, r: &str| {
            value(
                &text,
                &format!("cookbook_webhook_deliveries_total{{provider=\"{p}\",result=\"{r}\"}}"),
            )
        };
        assert_eq!(series("github", "accepted"), Some(2.0));
        assert_eq!(series("github", "replayed"), Some(1.0));
        assert_eq!(series("gitlab", "too_large"), Some(1.0));
        assert_eq!(series("gitlab", "accepted"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.round(&round(
            "ok",
            "taken",
            1,
            Some(("c0ffee", "we\"ird\\branch\n")),
            None,
            &[],
        ));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"cookbook_agent_revision_info{revision="c0ffee",branch="we\"ird\\branch\n"} 1"#
            ),
            "{text}"
        );
    }
}
