//! Prometheus metrics of every component, in one registry per process. Names follow the
//! contract (`hookrelay_*`); counters are registered without `_total`, which the encoder adds.

use std::sync::Arc;

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

type L1 = [(&'static str, &'static str); 1];
type L3 = [(&'static str, &'static str); 3];

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn lateness_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ])
}

/// Every metric hookrelay exports.
pub struct Metrics {
    registry: Registry,
    /// `hookrelay_events_consumed_total{outcome}`: accepted, duplicate, dead_lettered.
    pub events_consumed: Family<L1, Counter>,
    /// `hookrelay_events_dead_lettered_total{reason}`.
    pub events_dead_lettered: Family<L1, Counter>,
    /// `hookrelay_delivery_attempts_total{status,trigger,status_class}`.
    pub delivery_attempts: Family<L3, Counter>,
    /// `hookrelay_delivery_duration_seconds`.
    pub delivery_duration: Histogram,
    /// `hookrelay_deliveries_in_flight`.
    pub deliveries_in_flight: Gauge,
    /// `hookrelay_deliveries_created_total`.
    pub deliveries_created: Counter,
    /// `hookrelay_retries_pending` (the scheduler's view of its sorted set).
    pub retries_pending: Gauge,
    /// `hookrelay_retries_scheduled_total`.
    pub retries_scheduled: Counter,
    /// `hookrelay_retry_lateness_seconds`: fire time minus due time.
    pub retry_lateness: Histogram,
    /// `hookrelay_deliveries_exhausted_total`.
    pub deliveries_exhausted: Counter,
    /// `hookrelay_retention_purged_total{table}`.
    pub retention_purged: Family<L1, Counter>,
    /// `hookrelay_amqp_errors_total{op}`: publish, consume, ack, connect.
    pub amqp_errors: Family<L1, Counter>,
    /// `hookrelay_db_operation_seconds{op}`.
    pub db_operation: Family<L1, Histogram, fn() -> Histogram>,
    /// `hookrelay_redis_operation_seconds{op}`.
    pub redis_operation: Family<L1, Histogram, fn() -> Histogram>,
    /// `hookrelay_http_requests_total{route_class,status_class}` of the query API.
    pub api_requests: Family<[(&'static str, &'static str); 2], Counter>,
    /// `hookrelay_deliveries_deferred_total{reason}`: in_flight, rate_limit, circuit, retry_after.
    pub deliveries_deferred: Family<L1, Counter>,
    /// `hookrelay_circuit_transitions_total{to}`: open, half_open, closed.
    pub circuit_transitions: Family<L1, Counter>,
    /// `hookrelay_webhooks_auto_disabled_total{reason}`: failing, gone.
    pub webhooks_auto_disabled: Family<L1, Counter>,
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let m = Self {
            events_consumed: Family::default(),
            events_dead_lettered: Family::default(),
            delivery_attempts: Family::default(),
            delivery_duration: latency_histogram(),
            deliveries_in_flight: Gauge::default(),
            deliveries_created: Counter::default(),
            retries_pending: Gauge::default(),
            retries_scheduled: Counter::default(),
            retry_lateness: lateness_histogram(),
            deliveries_exhausted: Counter::default(),
            retention_purged: Family::default(),
            amqp_errors: Family::default(),
            db_operation: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            redis_operation: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            api_requests: Family::default(),
            deliveries_deferred: Family::default(),
            circuit_transitions: Family::default(),
            webhooks_auto_disabled: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "hookrelay_events_consumed",
            "Events taken off the events queue, by outcome",
            m.events_consumed.clone(),
        );
        r.register(
            "hookrelay_events_dead_lettered",
            "Messages sent to the dead-letter queue, by reason",
            m.events_dead_lettered.clone(),
        );
        r.register(
            "hookrelay_delivery_attempts",
            "Webhook delivery attempts, by status, trigger and status class",
            m.delivery_attempts.clone(),
        );
        r.register(
            "hookrelay_delivery_duration_seconds",
            "Duration of webhook requests",
            m.delivery_duration.clone(),
        );
        r.register(
            "hookrelay_deliveries_in_flight",
            "Webhook requests in flight in this process",
            m.deliveries_in_flight.clone(),
        );
        r.register(
            "hookrelay_deliveries_created",
            "Deliveries created (event x subscribed webhook)",
            m.deliveries_created.clone(),
        );
        r.register(
            "hookrelay_retries_pending",
            "Retries waiting in the scheduler",
            m.retries_pending.clone(),
        );
        r.register(
            "hookrelay_retries_scheduled",
            "Automatic retries scheduled after a failed attempt",
            m.retries_scheduled.clone(),
        );
        r.register(
            "hookrelay_retry_lateness_seconds",
            "Retry fire time minus due time",
            m.retry_lateness.clone(),
        );
        r.register(
            "hookrelay_deliveries_exhausted",
            "Deliveries that failed after their last automatic retry",
            m.deliveries_exhausted.clone(),
        );
        r.register(
            "hookrelay_retention_purged",
            "Rows removed by retention, by table",
            m.retention_purged.clone(),
        );
        r.register(
            "hookrelay_amqp_errors",
            "RabbitMQ operation errors, by operation",
            m.amqp_errors.clone(),
        );
        r.register(
            "hookrelay_db_operation_seconds",
            "PostgreSQL operation latency, by operation",
            m.db_operation.clone(),
        );
        r.register(
            "hookrelay_redis_operation_seconds",
            "Redis operation latency, by operation",
            m.redis_operation.clone(),
        );
        r.register(
            "hookrelay_http_requests",
            "Query API requests, by route class and status class",
            m.api_requests.clone(),
        );
        r.register(
            "hookrelay_deliveries_deferred",
            "Attempts held back without being made (no attempt, no retry used), by reason",
            m.deliveries_deferred.clone(),
        );
        r.register(
            "hookrelay_circuit_transitions",
            "Webhook circuit breaker transitions, by the state entered",
            m.circuit_transitions.clone(),
        );
        r.register(
            "hookrelay_webhooks_auto_disabled",
            "Webhooks disabled by the dispatcher, by reason",
            m.webhooks_auto_disabled.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts one attempt.
    pub fn attempt(&self, success: bool, trigger: &'static str, response_code: Option<u16>) {
        let status = if success { "success" } else { "failed" };
        let class = match response_code {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) => "other",
            None => "none",
        };
        self.delivery_attempts
            .get_or_create(&[("status", status), ("trigger", trigger), ("status_class", class)])
            .inc();
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_exported() {
        let m = Metrics::new();
        m.events_consumed.get_or_create(&[("outcome", "accepted")]).inc();
        m.attempt(true, "initial", Some(200));
        m.retention_purged.get_or_create(&[("table", "attempts")]).inc();
        m.deliveries_deferred
            .get_or_create(&[("reason", "circuit")])
            .inc();
        m.circuit_transitions.get_or_create(&[("to", "open")]).inc();
        m.webhooks_auto_disabled
            .get_or_create(&[("reason", "gone")])
            .inc();
        let text = m.render();
        for name in [
            "hookrelay_events_consumed_total{outcome=\"accepted\"} 1",
            "hookrelay_delivery_attempts_total{status=\"success\",trigger=\"initial\",status_class=\"2xx\"} 1",
            "hookrelay_delivery_duration_seconds_bucket",
            "hookrelay_retries_pending",
            "hookrelay_retry_lateness_seconds_bucket",
            "hookrelay_deliveries_exhausted_total",
            "hookrelay_retention_purged_total",
            "hookrelay_deliveries_deferred_total{reason=\"circuit\"} 1",
            "hookrelay_circuit_transitions_total{to=\"open\"} 1",
            "hookrelay_webhooks_auto_disabled_total{reason=\"gone\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
