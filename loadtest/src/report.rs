//! The final report: one struct with every number, printed as a table and written as JSON, and
//! the pass/fail thresholds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::checker::SeqCounts;
use crate::progress::Sample;
use crate::sampler::Usage;
use crate::stats::{Summary, ViewerStats};
use crate::thresholds::{stat_of, Metric, Series, Threshold, ThresholdResult};

/// Churn-only figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    /// Cycles due.
    pub attempted: u64,
    /// Cycles that connected, joined, caught up and left.
    pub completed: u64,
    /// Cycles that failed (see `errors`).
    pub failed: u64,
    /// Cycles not started because --max-inflight were open.
    pub skipped: u64,
    /// Joins answered `fresh`.
    pub fresh: u64,
    /// Joins answered `resume`.
    pub resumed: u64,
    /// Joins answered `resync`.
    pub resynced: u64,
    /// Join sent to `caught_up`.
    pub catch_up: Option<Summary>,
    /// Connect start to the close completing.
    pub cycle: Option<Summary>,
}

/// A sample's median, extremes and mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One upload of the `snapshot` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct UploadRound {
    /// Round number, from 0.
    pub round: u32,
    /// First slice written to the upload's `ack`, seconds.
    pub seconds: f64,
    /// Snapshot bytes / seconds, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// `chunk_ack`s received before the `ack`.
    pub chunk_acks: u32,
    /// Offset the stitched event was stored at.
    pub offset: u64,
}

/// The agents of one codec in the `snapshot` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct JoinFigures {
    /// `json` or `msgpack`.
    pub codec: String,
    /// Agents started.
    pub attempted: u32,
    /// Agents that had the whole keyframe.
    pub completed: u32,
    /// Agents that failed (see `errors`).
    pub failed: u32,
    /// Agents whose keyframe was byte-identical to the upload.
    pub identical: u32,
    /// TCP connect + WebSocket upgrade.
    pub connect: Option<Summary>,
    /// Connect start to `joined`.
    pub joined: Option<Summary>,
    /// Connect start to the keyframe's FullSnapshot whole (all its chunk frames reassembled).
    pub keyframe: Option<Summary>,
    /// Snapshot bytes / median join-to-keyframe time, MB/s.
    pub keyframe_mb_per_s_p50: Option<f64>,
    /// `chunk` frames per agent.
    pub chunk_frames_per_join: f64,
    /// Bytes of data frames per agent until the keyframe was whole.
    pub bytes_per_join: f64,
    /// Every agent's join-to-keyframe time, ms, in join order (to merge runs exactly).
    pub keyframe_samples_ms: Vec<f64>,
}

/// `snapshot`-only figures.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    /// `generated` or the recording it was taken from.
    pub source: String,
    /// Size of the FullSnapshot, bytes.
    pub snapshot_bytes: u64,
    /// `joined.limits.chunk_bytes`, if the relay announced it.
    pub announced_chunk_bytes: Option<u64>,
    /// Slice size used, bytes.
    pub chunk_bytes: u64,
    /// Slices per upload.
    pub chunks: u32,
    /// Codec of the uploading customer.
    pub upload_codec: String,
    /// Each upload.
    pub uploads: Vec<UploadRound>,
    /// Their MB/s.
    pub upload_mb_per_s: Option<Spread>,
    /// Offset of the keyframe the agents read (the last upload).
    pub keyframe_offset: Option<u64>,
    /// Agents, per codec.
    pub joins: Vec<JoinFigures>,
}

/// What became of the stalled viewers, read out after the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StalledReport {
    /// Events the server had buffered or still sent to them (kernel buffers included).
    pub events_received: u64,
    /// `resync` frames among them (the server dropped their backlog and restarts them from a
    /// keyframe).
    pub resyncs: u64,
    /// How their sockets ended: `still_open`, `closed_<code>`, `eof`, `reset`.
    pub outcomes: BTreeMap<String, u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `relay`, `socketio` or `fanout` (ceiling).
    pub protocol: String,
    /// `json` or `msgpack`.
    pub codec: String,
    /// The scenario's parameters.
    pub params: serde_json::Value,
    /// Publishing window plus drain, in seconds (the window rates are computed over).
    pub window_s: f64,
    /// Measured viewers.
    pub viewers: u64,
    /// Stalled viewers (not measured).
    pub stalled: u64,
    /// Events published.
    pub published_events: u64,
    /// Chat messages published.
    pub published_chats: u64,
    /// Published messages per second over the publishing window.
    pub publish_rate: f64,
    /// How late publishers sent against their schedule.
    pub publisher_lag: Option<Summary>,
    /// Event and chat frames received by measured viewers.
    pub deliveries: u64,
    /// Deliveries per second over the window.
    pub deliveries_per_s: f64,
    /// Bytes of those frames.
    pub bytes_delivered: u64,
    /// Sequence findings over events.
    pub events: SeqCounts,
    /// Sequence findings over chat.
    pub chat: SeqCounts,
    /// Lost over expected, events and chat together.
    pub loss_fraction: f64,
    /// End-to-end event latency (receive minus scheduled send), live events only.
    pub latency: Option<Summary>,
    /// End-to-end chat latency.
    pub chat_latency: Option<Summary>,
    /// TCP connect + WebSocket upgrade.
    pub connect: Option<Summary>,
    /// Join sent to join answered.
    pub join: Option<Summary>,
    /// Connect start to first FullSnapshot event (late joiners).
    pub first_keyframe: Option<Summary>,
    /// Churn figures.
    pub churn: Option<ChurnReport>,
    /// Snapshot figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotReport>,
    /// Sampled processes.
    pub processes: Vec<Usage>,
    /// Messages the ceiling's fan-out server dropped for lagging receivers.
    pub fanout_dropped: Option<u64>,
    /// Stalled viewers, read out after the run.
    pub stalled_viewers: Option<StalledReport>,
    /// Errors by kind (viewers, publishers, connects).
    pub errors: BTreeMap<String, u64>,
    /// What the well-known error kinds mean and what to change, by kind.
    pub error_causes: BTreeMap<String, String>,
    /// Every threshold (`--threshold`, `--max-p99-ms`, `--max-loss`) and whether it held.
    pub thresholds: Vec<ThresholdResult>,
    /// The thresholds that failed, in words.
    pub breaches: Vec<String>,
    /// One sample per second of the run (see `loadtest/README.md`, "JSON report").
    pub timeline: Vec<Sample>,
}

/// Inputs of [`Report::build`] that every scenario has.
pub struct ReportInput {
    /// Scenario name.
    pub scenario: &'static str,
    /// Dialect label.
    pub protocol: String,
    /// Codec label.
    pub codec: String,
    /// Parameters.
    pub params: serde_json::Value,
    /// Publishing time, seconds.
    pub publish_s: f64,
    /// Publishing plus drain, seconds.
    pub window_s: f64,
    /// Stalled viewers.
    pub stalled: u64,
    /// Events published.
    pub published_events: u64,
    /// Chat published.
    pub published_chats: u64,
    /// Merged publisher lag (µs).
    pub publisher_lag: hdrhistogram::Histogram<u64>,
    /// Merged viewer measurements.
    pub viewers: ViewerStats,
    /// Sampled processes.
    pub processes: Vec<Usage>,
}

impl Report {
    /// Derives rates and fractions.
    pub fn build(i: ReportInput) -> Report {
        let v = &i.viewers;
        let deliveries = v.deliveries();
        let lost = v.event_seq.lost + v.chat_seq.lost;
        let expected = v.event_seq.expected + v.chat_seq.expected;
        let window = i.window_s.max(1e-9);
        let mut processes = i.processes;
        for p in &mut processes {
            if deliveries > 0 {
                p.cpu_ms_per_1k_deliveries = Some(p.cpu_s * 1000.0 / (deliveries as f64 / 1000.0));
            }
        }
        Report {
            scenario: i.scenario.to_owned(),
            protocol: i.protocol,
            codec: i.codec,
            params: i.params,
            window_s: i.window_s,
            viewers: v.viewers,
            stalled: i.stalled,
            published_events: i.published_events,
            published_chats: i.published_chats,
            publish_rate: (i.published_events + i.published_chats) as f64 / i.publish_s.max(1e-9),
            publisher_lag: Summary::of(&i.publisher_lag),
            deliveries,
            deliveries_per_s: deliveries as f64 / window,
            bytes_delivered: v.bytes,
            events: v.event_seq,
            chat: v.chat_seq,
            loss_fraction: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            latency: Summary::of(&v.latency),
            chat_latency: Summary::of(&v.chat_latency),
            connect: Summary::of(&v.connect),
            join: Summary::of(&v.join),
            first_keyframe: Summary::of(&v.first_keyframe),
            churn: None,
            snapshot: None,
            processes,
            fanout_dropped: None,
            stalled_viewers: None,
            errors: v.errors.clone(),
            error_causes: BTreeMap::new(),
            thresholds: Vec::new(),
            breaches: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// Checks the thresholds, records each result and the failed ones, and names the causes of
    /// the errors seen.
    pub fn check(&mut self, thresholds: &[Threshold]) {
        self.error_causes = self
            .errors
            .keys()
            .filter_map(|k| crate::causes::explain(k).map(|why| (k.clone(), why.to_owned())))
            .collect();
        self.thresholds = thresholds.iter().map(|t| self.evaluate(t)).collect();
        self.breaches = self
            .thresholds
            .iter()
            .filter(|r| !r.pass)
            .map(|r| format!("{}: {}", r.threshold, r.observed))
            .collect();
    }

    fn evaluate(&self, t: &Threshold) -> ThresholdResult {
        let name = t.name();
        match t.metric {
            Metric::Latency(series, stat) => {
                let row = match series {
                    Series::Event => &self.latency,
                    Series::Chat => &self.chat_latency,
                    Series::Connect => &self.connect,
                    Series::Join => &self.join,
                    Series::Keyframe => &self.first_keyframe,
                };
                match row {
                    Some(x) => {
                        let v = stat_of(x, stat);
                        t.result(Some(v), format!("{name} = {v:.2} ms ({} samples)", x.count))
                    }
                    None => t.result(None, format!("{name}: no samples (nothing measured)")),
                }
            }
            Metric::Loss => t.result(
                Some(self.loss_fraction),
                format!(
                    "loss = {:.6} ({} of {} events, {} of {} chat lost)",
                    self.loss_fraction,
                    self.events.lost,
                    self.events.expected,
                    self.chat.lost,
                    self.chat.expected
                ),
            ),
            Metric::Errors => {
                let n: u64 = self.errors.values().sum();
                t.result(Some(n as f64), format!("errors = {n}"))
            }
        }
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== {} ({}, {}) ==  {}",
            self.scenario, self.protocol, self.codec, self.params
        );
        let _ = writeln!(
            s,
            "viewers {} (+{} stalled)   window {:.1} s",
            self.viewers, self.stalled, self.window_s
        );
        let _ = writeln!(
            s,
            "published   {} events + {} chat   ({:.0}/s)",
            self.published_events, self.published_chats, self.publish_rate
        );
        let _ = writeln!(
            s,
            "delivered   {} frames ({:.0}/s, {:.1} MB)",
            self.deliveries,
            self.deliveries_per_s,
            self.bytes_delivered as f64 / 1e6
        );
        if self.events.expected > 0 || self.events.received > 0 {
            let _ = writeln!(
            s,
            "events      expected {}  received {}  lost {}  gaps {}  dups {}  reorders {}  resyncs {}",
            self.events.expected,
            self.events.received,
            self.events.lost,
            self.events.gaps,
            self.events.dups,
            self.events.reorders,
            self.events.resyncs
        );
        }
        if self.chat.expected > 0 || self.chat.received > 0 {
            let _ = writeln!(
                s,
                "chat        expected {}  received {}  lost {}  gaps {}  dups {}  reorders {}",
                self.chat.expected,
                self.chat.received,
                self.chat.lost,
                self.chat.gaps,
                self.chat.dups,
                self.chat.reorders
            );
        }
        let _ = writeln!(s, "loss        {:.6}", self.loss_fraction);
        let _ = writeln!(
            s,
            "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean", "count"
        );
        let rows: [(&str, &Option<Summary>); 7] = [
            ("end-to-end event", &self.latency),
            ("end-to-end chat", &self.chat_latency),
            ("connect", &self.connect),
            ("join", &self.join),
            ("join-to-keyframe", &self.first_keyframe),
            ("publisher lag", &self.publisher_lag),
            (
                "churn catch-up",
                match &self.churn {
                    Some(c) => &c.catch_up,
                    None => &None,
                },
            ),
        ];
        for (name, sum) in rows {
            if let Some(x) = sum {
                let _ = writeln!(
                    s,
                    "{name:<22}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>10}",
                    x.p50_ms, x.p90_ms, x.p99_ms, x.p999_ms, x.max_ms, x.mean_ms, x.count
                );
            }
        }
        if let Some(c) = &self.churn {
            let _ = writeln!(
                s,
                "churn       attempted {}  completed {}  failed {}  skipped {}  fresh {}  resume {}  resync {}",
                c.attempted, c.completed, c.failed, c.skipped, c.fresh, c.resumed, c.resynced
            );
            if let Some(x) = &c.cycle {
                let _ = writeln!(
                    s,
                    "churn cycle p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                    x.p50_ms, x.p99_ms, x.max_ms
                );
            }
        }
        if let Some(sn) = &self.snapshot {
            snapshot_table(&mut s, sn);
        }
        for p in &self.processes {
            let _ = writeln!(
                s,
                "process {} ({}): cpu {:.2} s ({:.2} cores), {} per 1000 deliveries, RSS {:.1}-{:.1} MiB{}",
                p.pid,
                p.label,
                p.cpu_s,
                p.cpu_cores,
                p.cpu_ms_per_1k_deliveries
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.2} CPU-ms")),
                p.rss_min_kb as f64 / 1024.0,
                p.rss_max_kb as f64 / 1024.0,
                p.error
                    .as_deref()
                    .map_or_else(String::new, |e| format!("  [{e}]"))
            );
        }
        if let Some(st) = &self.stalled_viewers {
            let list: Vec<String> = st
                .outcomes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(
                s,
                "stalled     {} events still delivered after the run (of {} each), {} resyncs  sockets: {}",
                st.events_received,
                self.published_events,
                st.resyncs,
                list.join(" ")
            );
        }
        if let Some(d) = self.fanout_dropped {
            let _ = writeln!(
                s,
                "fan-out server dropped {d} messages for lagging receivers"
            );
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "errors      {}", list.join("  "));
        }
        for (kind, why) in &self.error_causes {
            let _ = writeln!(s, "  {kind}: {why}");
        }
        for t in &self.thresholds {
            let _ = writeln!(
                s,
                "threshold   {} {:<20} {}",
                if t.pass { "PASS" } else { "FAIL" },
                t.threshold,
                t.observed
            );
        }
        if !self.thresholds.is_empty() {
            let failed = self.thresholds.iter().filter(|t| !t.pass).count();
            let _ = writeln!(
                s,
                "thresholds  {} of {} passed{}",
                self.thresholds.len() - failed,
                self.thresholds.len(),
                if failed > 0 { " (exit code 1)" } else { "" }
            );
        }
        s
    }
}

fn snapshot_table(s: &mut String, sn: &SnapshotReport) {
    let _ = writeln!(
        s,
        "snapshot    {} bytes ({}), {} slices of <= {} bytes (relay announced {}), uploaded as {}",
        sn.snapshot_bytes,
        sn.source,
        sn.chunks,
        sn.chunk_bytes,
        sn.announced_chunk_bytes
            .map_or_else(|| "-".to_owned(), |b| b.to_string()),
        sn.upload_codec
    );
    let rounds: Vec<String> = sn
        .uploads
        .iter()
        .map(|u| format!("{:.1}", u.mb_per_s))
        .collect();
    if let Some(r) = &sn.upload_mb_per_s {
        let _ = writeln!(
            s,
            "upload      median {:.1} MB/s  (min {:.1}, max {:.1}; rounds: {})",
            r.median,
            r.min,
            r.max,
            rounds.join(" ")
        );
    }
    let _ = writeln!(
        s,
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}{:>12}",
        "join-to-keyframe (ms)", "p50", "p90", "p99", "max", "mean", "count", "MB/s @p50"
    );
    for j in &sn.joins {
        if let Some(k) = &j.keyframe {
            let _ = writeln!(
                s,
                "{:<22}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>10}{:>12.1}",
                j.codec,
                k.p50_ms,
                k.p90_ms,
                k.p99_ms,
                k.max_ms,
                k.mean_ms,
                k.count,
                j.keyframe_mb_per_s_p50.unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            s,
            "  {:<8} {} of {} had it ({} byte-identical), {:.0} chunk frames and {:.1} MB per join, joined p50 {}",
            j.codec,
            j.completed,
            j.attempted,
            j.identical,
            j.chunk_frames_per_join,
            j.bytes_per_join / 1e6,
            j.joined
                .map_or_else(|| "-".to_owned(), |x| format!("{:.2} ms", x.p50_ms))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{histogram, record_us};

    fn input(lost: u64) -> ReportInput {
        let mut v = ViewerStats {
            viewers: 2,
            events: 198,
            ..Default::default()
        };
        for i in 1..=198u64 {
            record_us(&mut v.latency, i * 100);
        }
        v.event_seq = SeqCounts {
            received: 200 - lost,
            expected: 200,
            lost,
            ..Default::default()
        };
        ReportInput {
            scenario: "broadcast",
            protocol: "relay".into(),
            codec: "json".into(),
            params: serde_json::json!({"viewers": 2}),
            publish_s: 1.0,
            window_s: 2.0,
            stalled: 0,
            published_events: 100,
            published_chats: 0,
            publisher_lag: histogram(),
            viewers: v,
            processes: vec![Usage {
                pid: 1,
                label: "relay".into(),
                cpu_s: 0.5,
                cpu_cores: 0.25,
                cpu_ms_per_1k_deliveries: None,
                rss_min_kb: 1000,
                rss_max_kb: 2000,
                samples: 3,
                error: None,
            }],
        }
    }

    #[test]
    fn rates_loss_and_cpu_per_delivery() {
        let r = Report::build(input(2));
        assert_eq!(r.deliveries, 198);
        assert!((r.deliveries_per_s - 99.0).abs() < 1e-9);
        assert!((r.publish_rate - 100.0).abs() < 1e-9);
        assert!((r.loss_fraction - 0.01).abs() < 1e-9);
        let cpu = r.processes[0].cpu_ms_per_1k_deliveries.expect("cpu");
        assert!((cpu - 500.0 / 0.198).abs() < 1e-6);
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["events"]["lost"], 2);
        assert!(json["latency"]["p99_ms"].as_f64().is_some());
        assert!(r.table().contains("end-to-end event"));
    }

    fn thresholds(list: &[&str]) -> Vec<Threshold> {
        list.iter()
            .map(|t| Threshold::parse(t).expect("valid"))
            .collect()
    }

    #[test]
    fn thresholds_pass_and_fail_with_a_line_each() {
        let mut r = Report::build(input(0));
        r.check(&thresholds(&["p99<=100ms", "loss<=0", "errors<1"]));
        assert!(r.breaches.is_empty(), "{:?}", r.breaches);
        assert!(r.thresholds.iter().all(|t| t.pass));
        assert!(
            r.table().contains("thresholds  3 of 3 passed\n"),
            "{}",
            r.table()
        );

        let mut r = Report::build(input(2));
        r.check(&thresholds(&[
            "p99<1ms",
            "p50<1s",
            "loss<=0.1%",
            "chat.p99<1s",
        ]));
        let pass: Vec<bool> = r.thresholds.iter().map(|t| t.pass).collect();
        assert_eq!(pass, [false, true, false, false], "{:?}", r.thresholds);
        // p99 of 100..19800 µs.
        let p99 = r.thresholds[0].value.expect("measured");
        assert!((19.5..19.9).contains(&p99), "{p99}");
        // No chat was measured: a threshold on it fails rather than passing vacuously.
        assert_eq!(r.thresholds[3].value, None);
        assert_eq!(r.breaches.len(), 3, "{:?}", r.breaches);
        let table = r.table();
        assert!(table.contains("threshold   FAIL p99<1ms"), "{table}");
        assert!(table.contains("threshold   PASS p50<1s"), "{table}");
        assert!(table.contains("1 of 4 passed (exit code 1)"), "{table}");
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["thresholds"][0]["threshold"], "p99<1ms");
        assert_eq!(json["thresholds"][0]["pass"], false);
    }

    #[test]
    fn error_causes_name_the_setting() {
        let mut i = input(0);
        i.viewers.error("open_viewer_closed_4503_room_full");
        let mut r = Report::build(i);
        r.check(&[]);
        let why = &r.error_causes["open_viewer_closed_4503_room_full"];
        assert!(why.contains("--max-room-members"), "{why}");
        assert!(r.table().contains("--max-room-members"));
    }
}
