//! The server's own metrics, in Prometheus exposition format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub action: String,
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub executions: Family<StatusLabels, Counter>,
    pub step_duration: Family<StepLabels, Histogram>,
    /// Write operations (deliveries, step results, claims) per database commit.
    pub commit_batch: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("alertflow");
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Webhook deliveries by outcome (started, duplicate, filtered, rejected)",
            deliveries.clone(),
        );
        let executions = Family::<StatusLabels, Counter>::default();
        registry.register(
            "executions",
            "Executions that ended, by final status",
            executions.clone(),
        );
        let step_duration = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 10))
        });
        registry.register(
            "step_duration_seconds",
            "Time a step took, all attempts",
            step_duration.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "store_commit_batch_size",
            "Write operations (deliveries, step results, claims) per database commit",
            commit_batch.clone(),
        );
        Metrics {
            registry,
            deliveries,
            executions,
            step_duration,
            commit_batch,
        }
    }

    pub fn delivery(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn execution_finished(&self, status: &str) {
        self.executions
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    pub fn step(&self, action: &str, status: &str, seconds: f64) {
        self.step_duration
            .get_or_create(&StepLabels {
                action: action.to_string(),
                status: status.to_string(),
            })
            .observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
