//! The compactor's metrics: jobs by outcome, pending jobs, bytes in and out, durations, in
//! their own registry (served on a worker's admin port; an embedded node keeps them too). It
//! counts; it does not run jobs.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::job::Outcome;

/// The compactor's metrics (on its own admin port; embedded nodes register them too).
#[derive(Clone)]
pub struct CompactorMetrics {
    registry: Registry,
    /// Jobs finished.
    pub done: IntCounter,
    /// Attempts that failed (and will be retried).
    pub failed: IntCounter,
    /// Jobs taken over from a worker that stopped answering.
    pub reclaimed: IntCounter,
    /// Jobs moved to the dead-letter stream.
    pub dead: IntCounter,
    /// Jobs delivered but not yet acknowledged.
    pub pending: IntGauge,
    /// Age of the oldest pending job, seconds.
    pub oldest_pending: IntGauge,
    /// Payload bytes read from room logs.
    pub bytes_in: IntCounter,
    /// Bytes written to the archive.
    pub bytes_out: IntCounter,
    /// Job durations.
    pub duration: Histogram,
}

impl CompactorMetrics {
    /// Registers the metrics in a new registry.
    pub fn new() -> CompactorMetrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric");
            registry.register(Box::new(c.clone())).expect("once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric");
            registry.register(Box::new(g.clone())).expect("once");
            g
        };
        let jobs = IntCounterVec::new(
            Opts::new(
                "relay_compactor_jobs_total",
                "Compaction jobs by outcome: done, failed (an attempt that will be retried), \
                 reclaimed (taken over from a stopped worker), dead (dead-lettered).",
            ),
            &["outcome"],
        )
        .expect("static metric");
        registry.register(Box::new(jobs.clone())).expect("once");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "relay_compactor_job_duration_seconds",
                "Duration of compaction jobs.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("static metric");
        registry.register(Box::new(duration.clone())).expect("once");
        CompactorMetrics {
            done: jobs.with_label_values(&["done"]),
            failed: jobs.with_label_values(&["failed"]),
            reclaimed: jobs.with_label_values(&["reclaimed"]),
            dead: jobs.with_label_values(&["dead"]),
            pending: gauge(
                "relay_compactor_jobs_pending",
                "Jobs delivered to a worker but not acknowledged.",
            ),
            oldest_pending: gauge(
                "relay_compactor_oldest_pending_seconds",
                "Age of the oldest pending job.",
            ),
            bytes_in: counter(
                "relay_compactor_bytes_in_total",
                "Payload bytes read from room logs.",
            ),
            bytes_out: counter(
                "relay_compactor_bytes_out_total",
                "Bytes written to the archive.",
            ),
            duration,
            registry,
        }
    }

    /// Counts a finished job.
    pub fn record_done(&self, out: &Outcome, took: Duration) {
        self.done.inc();
        self.bytes_in.inc_by(out.bytes_in);
        self.bytes_out.inc_by(out.bytes_out);
        self.duration.observe(took.as_secs_f64());
    }

    /// The registry (the render stage registers `relay_render_*` in it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for CompactorMetrics {
    fn default() -> Self {
        Self::new()
    }
}
