//! The webhook metrics (`relay_webhook_*`), registered at 0 in the node's registry: attempts by
//! outcome, retries, dead letters, drops, and the queue's size and age. It counts; it sends
//! nothing.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why an attempt failed (bounded label values of `relay_webhook_failed_total`).
pub const FAILURE_REASONS: [&str; 4] = ["status", "timeout", "connect", "other"];

/// Webhook counters and gauges.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Events delivered (a 2xx answer).
    pub sent: IntCounter,
    /// Failed attempts, by reason.
    pub failed: IntCounterVec,
    /// Attempts scheduled again after a failure.
    pub retried: IntCounter,
    /// Events given up on and put on the dead-letter list.
    pub dead_lettered: IntCounter,
    /// Events dropped before queueing (embedded queue full, or the outbox unreachable).
    pub dropped: IntCounter,
    /// Events taken by this node's delivery and not yet settled.
    pub queued: IntGauge,
    /// Age of the oldest of them, seconds (since it was emitted).
    pub queue_age: IntGauge,
}

impl WebhookMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> WebhookMetrics {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let failed = IntCounterVec::new(
            Opts::new(
                "relay_webhook_failed_total",
                "Webhook delivery attempts that failed, by reason: status (not 2xx), timeout, \
                 connect, other.",
            ),
            &["reason"],
        )
        .expect("static metric");
        registry
            .register(Box::new(failed.clone()))
            .expect("registered once");
        for r in FAILURE_REASONS {
            failed.with_label_values(&[r]);
        }
        WebhookMetrics {
            sent: counter("relay_webhook_sent_total", "Webhooks delivered (2xx)."),
            failed,
            retried: counter(
                "relay_webhook_retried_total",
                "Webhook attempts retried after a failure.",
            ),
            dead_lettered: counter(
                "relay_webhook_dead_lettered_total",
                "Webhooks given up on after --webhook-max-attempts (dead-letter list).",
            ),
            dropped: counter(
                "relay_webhook_dropped_total",
                "Webhooks dropped before queueing (embedded queue full, or the Redis outbox \
                 unreachable).",
            ),
            queued: gauge(
                "relay_webhook_queued",
                "Webhooks this node's delivery holds and has not settled.",
            ),
            queue_age: gauge(
                "relay_webhook_queue_age_seconds",
                "Age of the oldest webhook this node's delivery has not settled.",
            ),
        }
    }
}
