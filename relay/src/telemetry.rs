//! Metrics in one place. Names are `relay_<name>_<unit>`, counters end in `_total`, and label
//! values are bounded enumerations (roles, frame types, codes), never room or participant ids.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The node's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections by role (joined or not).
    pub connections: IntGaugeVec,
    /// Frames received from clients by type (`invalid` for undecodable ones).
    pub frames_in: IntCounterVec,
    /// Frames sent to clients by type.
    pub frames_out: IntCounterVec,
    /// Bytes received in WebSocket messages.
    pub bytes_in: IntCounter,
    /// Bytes sent in WebSocket messages.
    pub bytes_out: IntCounter,
    /// Error frames sent, by code.
    pub errors: IntCounterVec,
    /// Refused upgrades, by reason.
    pub handshake_rejections: IntCounterVec,
    /// Connections closed by the relay, by close reason.
    pub closes: IntCounterVec,
    /// Resyncs sent, by reason.
    pub resyncs: IntCounterVec,
    /// Entries stored.
    pub appends: IntCounterVec,
    /// 1 while the node is draining.
    pub draining: IntGauge,
    /// Rooms with at least one member on this node.
    pub rooms: IntGauge,
    /// Handshakes in progress (accepted, not yet upgraded).
    pub pending_handshakes: IntGauge,
    /// Seconds from accepting an entry from its publisher to writing it to a viewer's socket.
    pub fanout_latency: Histogram,
    /// Entries sent in one catch-up (join, resume, resync).
    pub catchup_entries: Histogram,
    /// Payload bytes sent in one catch-up.
    pub catchup_bytes: Histogram,
    /// Viewers whose backlog overflowed, by which bound (`messages` or `bytes`).
    pub queue_overflows: IntCounterVec,
    /// Frames held back or refused by the per-connection rate limits, by outcome.
    pub rate_limited: IntCounterVec,
    /// Uploads (chunked events) by outcome: `stored`, `invalid`, `too_large`, `limit`.
    pub uploads: IntCounterVec,
    /// Bytes of upload slices received.
    pub upload_bytes: IntCounter,
    /// `snapshot_request` frames sent to customers, by reason.
    pub snapshot_requests: IntCounterVec,
    /// rrweb events the masking rewrote before storing, by policy.
    pub masked_events: IntCounterVec,
    /// Native-page placeholders stored, by source (`frame` or `api`).
    pub native_pages: IntCounterVec,
    /// Rooms closed (session ended) through this node.
    pub rooms_closed: IntCounter,
    /// Redis backend counters (zero in embedded mode).
    pub redis: crate::store::redis::RedisMetrics,
    /// Webhook delivery (`relay_webhook_*`).
    pub webhook: crate::webhook::WebhookMetrics,
    /// Per-message warnings pass through here so that a flood cannot flood the logs.
    pub log_limiter: DefaultDirectRateLimiter,
}

/// Registers a counter.
fn counter(reg: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    reg.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

/// Registers a histogram.
fn histogram(reg: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    reg.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn counter_vec(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    reg.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    /// Registers every metric.
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new("relay_connections", "Open WebSocket connections by role."),
            &["role"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(connections.clone()))
            .expect("metric registered once");
        let draining = IntGauge::new("relay_draining", "1 while the node is draining.")
            .expect("static metric definition");
        registry
            .register(Box::new(draining.clone()))
            .expect("metric registered once");
        let build = IntGaugeVec::new(
            Opts::new("relay_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(build.clone()))
            .expect("metric registered once");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        let m = Metrics {
            connections,
            frames_in: counter_vec(
                &registry,
                "relay_frames_in_total",
                "Frames received, by type.",
                &["type"],
            ),
            frames_out: counter_vec(
                &registry,
                "relay_frames_out_total",
                "Frames sent, by type.",
                &["type"],
            ),
            bytes_in: IntCounter::new(
                "relay_bytes_in_total",
                "Bytes received in WebSocket messages.",
            )
            .expect("static metric definition"),
            bytes_out: IntCounter::new(
                "relay_bytes_out_total",
                "Bytes sent in WebSocket messages.",
            )
            .expect("static metric definition"),
            uploads: counter_vec(
                &registry,
                "relay_uploads_total",
                "Chunked uploads by outcome (stored, invalid, too_large, limit).",
                &["outcome"],
            ),
            upload_bytes: counter(
                &registry,
                "relay_upload_bytes_total",
                "Bytes of upload slices received.",
            ),
            snapshot_requests: counter_vec(
                &registry,
                "relay_snapshot_requests_total",
                "snapshot_request frames sent to customers, by reason.",
                &["reason"],
            ),
            masked_events: counter_vec(
                &registry,
                "relay_masked_events_total",
                "rrweb events rewritten by server-side masking, by policy.",
                &["policy"],
            ),
            native_pages: counter_vec(
                &registry,
                "relay_native_pages_total",
                "Native-page placeholders stored, by source (frame or api).",
                &["source"],
            ),
            rooms_closed: counter(
                &registry,
                "relay_rooms_closed_total",
                "Rooms closed (sessions ended) through this node.",
            ),
            errors: counter_vec(
                &registry,
                "relay_errors_total",
                "Error frames sent, by code.",
                &["code"],
            ),
            handshake_rejections: counter_vec(
                &registry,
                "relay_handshake_rejections_total",
                "Refused WebSocket upgrades, by reason.",
                &["reason"],
            ),
            closes: counter_vec(
                &registry,
                "relay_closes_total",
                "Connections closed by the relay, by reason.",
                &["reason"],
            ),
            resyncs: counter_vec(
                &registry,
                "relay_resyncs_total",
                "Resyncs sent, by reason.",
                &["reason"],
            ),
            appends: counter_vec(
                &registry,
                "relay_appends_total",
                "Entries stored, by kind.",
                &["kind"],
            ),
            draining,
            pending_handshakes: {
                let g = IntGauge::new(
                    "relay_pending_handshakes",
                    "Handshakes in progress: accepted TCP connections not yet upgraded.",
                )
                .expect("static metric definition");
                registry
                    .register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            rooms: {
                let g = IntGauge::new(
                    "relay_rooms",
                    "Rooms with at least one member on this node.",
                )
                .expect("static metric definition");
                registry
                    .register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            fanout_latency: histogram(
                &registry,
                "relay_fanout_latency_seconds",
                "Seconds from accepting an entry to writing it to a viewer's socket.",
                vec![
                    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0,
                ],
            ),
            catchup_entries: histogram(
                &registry,
                "relay_catchup_entries",
                "Entries sent in one catch-up (join, resume or resync).",
                vec![0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0],
            ),
            catchup_bytes: histogram(
                &registry,
                "relay_catchup_bytes",
                "Payload bytes sent in one catch-up.",
                prometheus::exponential_buckets(1024.0, 4.0, 10).expect("static buckets"),
            ),
            queue_overflows: counter_vec(
                &registry,
                "relay_queue_overflows_total",
                "Viewers whose backlog overflowed, by bound.",
                &["bound"],
            ),
            rate_limited: counter_vec(
                &registry,
                "relay_rate_limited_total",
                "Frames over the per-connection rate, by outcome (delayed or refused).",
                &["outcome"],
            ),
            webhook: crate::webhook::WebhookMetrics::new(&registry),
            redis: crate::store::redis::RedisMetrics {
                reconnects: counter(&registry, "relay_redis_reconnects_total", "Redis pub/sub reconnections."),
                gap_fills: counter(&registry, "relay_redis_gap_fills_total", "Entries read from the room stream to fill pub/sub gaps."),
                recoveries: counter(
                    &registry,
                    "relay_redis_recoveries_total",
                    "Times local members were told to recover from the log (outage or overflowing inbox).",
                ),
                live_bytes: {
                    let g = IntGauge::new(
                        "relay_redis_live_bytes",
                        "Payload bytes of live entries this node keeps for its rooms' rings (cluster mode).",
                    )
                    .expect("static metric definition");
                    registry.register(Box::new(g.clone())).expect("metric registered once");
                    g
                },
            },
            log_limiter: RateLimiter::direct(
                Quota::per_second(std::num::NonZeroU32::MIN.saturating_add(4))
                    .allow_burst(std::num::NonZeroU32::MIN.saturating_add(19)),
            ),
            registry,
        };
        m.registry
            .register(Box::new(m.bytes_in.clone()))
            .expect("metric registered once");
        m.registry
            .register(Box::new(m.bytes_out.clone()))
            .expect("metric registered once");
        m.preregister();
        for r in crate::auth::RejectReason::ALL {
            m.handshake_rejections.with_label_values(&[r.as_str()]);
        }
        m
    }

    /// Touches every label combination of the labelled metrics whose values are a known, finite
    /// set, so that each series exists at 0 from the first scrape (a dashboard shows 0, not "No
    /// data", before the first increment). The sets come from the enums' derived lists; the few
    /// labels that are not an enum's (`invalid` frames, `peer` closes, upload outcomes) are listed
    /// here as their call sites spell them.
    fn preregister(&self) {
        use assist_relay_proto::{
            ClientFrameKind, CloseCode, ErrorCode, EventKind, ResyncReason, Role, ServerFrameKind,
            SnapshotReason,
        };
        use strum::{IntoEnumIterator, VariantArray};

        for role in Role::VARIANTS.iter().filter(|r| **r != Role::System) {
            self.connections.with_label_values(&[role.as_str()]);
        }
        for kind in ClientFrameKind::VARIANTS {
            self.frames_in.with_label_values(&[<&str>::from(kind)]);
        }
        self.frames_in.with_label_values(&["invalid"]);
        for kind in ServerFrameKind::VARIANTS {
            self.frames_out.with_label_values(&[<&str>::from(kind)]);
        }
        // Entry kinds: rrweb event kinds (`EventKind::label`), chat messages, native pages.
        for kind in EventKind::iter()
            .map(EventKind::label)
            .chain(["chat", "native_page"])
        {
            self.appends.with_label_values(&[kind]);
        }
        for policy in crate::mask::MaskPolicy::ALL {
            self.masked_events.with_label_values(&[policy.as_str()]);
        }
        for reason in ResyncReason::ALL {
            self.resyncs.with_label_values(&[reason.as_str()]);
        }
        // Our close reasons, the standard ones the relay uses, `peer` and `other` (session/exit.rs).
        for reason in CloseCode::ALL.map(CloseCode::reason).into_iter().chain([
            "peer",
            "too_large",
            "protocol_error",
            "other",
        ]) {
            self.closes.with_label_values(&[reason]);
        }
        for outcome in ["stored", "invalid", "too_large", "limit"] {
            self.uploads.with_label_values(&[outcome]);
        }
        for reason in SnapshotReason::ALL {
            self.snapshot_requests.with_label_values(&[reason.as_str()]);
        }
        for source in ["frame", "api"] {
            self.native_pages.with_label_values(&[source]);
        }
        for code in ErrorCode::ALL {
            self.errors.with_label_values(&[code.as_str()]);
        }
        for bound in ["messages", "bytes"] {
            self.queue_overflows.with_label_values(&[bound]);
        }
        for outcome in ["delayed", "refused", "coalesced"] {
            self.rate_limited.with_label_values(&[outcome]);
        }
    }

    /// Whether a per-message warning may be logged now (at most 5 a second, bursts of 20).
    pub fn may_log(&self) -> bool {
        self.log_limiter.check().is_ok()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// A fresh node's `/metrics` text already has every known label combination at 0, in
    /// particular the three counters that used to appear only after their first increment.
    #[test]
    fn labelled_series_exist_at_zero_from_the_start() {
        let text = Metrics::new().render();
        for series in [
            r#"relay_appends_total{kind="chat"} 0"#,
            r#"relay_appends_total{kind="full_snapshot"} 0"#,
            r#"relay_appends_total{kind="incremental"} 0"#,
            r#"relay_appends_total{kind="native_page"} 0"#,
            r#"relay_frames_out_total{type="joined"} 0"#,
            r#"relay_frames_out_total{type="event"} 0"#,
            r#"relay_frames_out_total{type="snapshot_request"} 0"#,
            r#"relay_frames_in_total{type="end"} 0"#,
            r#"relay_frames_in_total{type="invalid"} 0"#,
            r#"relay_masked_events_total{policy="passwords"} 0"#,
            r#"relay_masked_events_total{policy="inputs"} 0"#,
            r#"relay_masked_events_total{policy="inputs+text"} 0"#,
            r#"relay_closes_total{reason="too_many_connections_for_participant"} 0"#,
            r#"relay_closes_total{reason="other"} 0"#,
            r#"relay_errors_total{code="log_full"} 0"#,
            r#"relay_resyncs_total{reason="ahead_of_log"} 0"#,
            r#"relay_connections{role="agent"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == series),
                "no {series} in a fresh /metrics"
            );
        }
        let count = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count()
        };
        assert_eq!(count("relay_frames_out_total"), 15);
        assert_eq!(count("relay_frames_in_total"), 10);
        assert_eq!(count("relay_appends_total"), 11);
        assert_eq!(count("relay_masked_events_total"), 4);
    }
}
