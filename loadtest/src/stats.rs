//! What each viewer task measures, and how the tasks' measurements merge.
//!
//! Every viewer task owns its histograms (no shared state on the hot path); the scenario merges
//! them when the run ends. Histograms hold microseconds with 3 significant digits and grow to the
//! largest value recorded.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::checker::SeqCounts;

/// An empty microsecond histogram.
pub fn histogram() -> Histogram<u64> {
    // 3 significant digits; auto-resizing, so a histogram costs only what its range needs.
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is a valid precision");
    h.auto(true);
    h
}

/// Records a duration in microseconds (0 is recorded as 1, the histogram's lowest value).
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    // `record` grows an auto-resizing histogram; `saturating_record` would clamp to its current
    // range instead, so it is only the fallback.
    if h.record(us.max(1)).is_err() {
        h.saturating_record(us.max(1));
    }
}

/// Adds `from` into `into`.
pub fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both auto-resize, so adding cannot fail on range; saturate rather than panic otherwise.
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            let (value, n) = (v.value_iterated_to(), v.count_at_value());
            if into.record_n(value, n).is_err() {
                into.saturating_record_n(value, n);
            }
        }
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Summary {
    /// The summary of a histogram of microseconds; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Summary> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Summary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

/// Which of a publisher's streams a sequence number belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// rrweb events.
    Event,
    /// Chat messages.
    Chat,
}

/// One publisher's stream on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    /// Channel.
    pub channel: Channel,
    /// Publisher id (`Lt::p`).
    pub publisher: u32,
}

/// The measurements of one or more viewers.
#[derive(Debug, Clone)]
pub struct ViewerStats {
    /// Viewers merged in.
    pub viewers: u64,
    /// End-to-end latency of live events: receive time minus *scheduled* send time (µs).
    pub latency: Histogram<u64>,
    /// The same for chat messages (µs).
    pub chat_latency: Histogram<u64>,
    /// TCP connect + WebSocket upgrade (µs).
    pub connect: Histogram<u64>,
    /// Join sent to join answered (µs).
    pub join: Histogram<u64>,
    /// Connect start to the first FullSnapshot event received (µs), for viewers that measure it.
    pub first_keyframe: Histogram<u64>,
    /// Event frames received (catch-up included).
    pub events: u64,
    /// Chat frames received (catch-up included).
    pub chats: u64,
    /// Bytes of event and chat frames received.
    pub bytes: u64,
    /// Sequence findings over event streams.
    pub event_seq: SeqCounts,
    /// Sequence findings over chat streams.
    pub chat_seq: SeqCounts,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Default for ViewerStats {
    fn default() -> Self {
        ViewerStats {
            viewers: 0,
            latency: histogram(),
            chat_latency: histogram(),
            connect: histogram(),
            join: histogram(),
            first_keyframe: histogram(),
            events: 0,
            chats: 0,
            bytes: 0,
            event_seq: SeqCounts::default(),
            chat_seq: SeqCounts::default(),
            errors: BTreeMap::new(),
        }
    }
}

impl ViewerStats {
    /// Counts one error of a kind.
    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Total errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Event and chat frames received.
    pub fn deliveries(&self) -> u64 {
        self.events + self.chats
    }

    /// Adds another task's measurements.
    pub fn merge(&mut self, o: &ViewerStats) {
        self.viewers += o.viewers;
        merge_histogram(&mut self.latency, &o.latency);
        merge_histogram(&mut self.chat_latency, &o.chat_latency);
        merge_histogram(&mut self.connect, &o.connect);
        merge_histogram(&mut self.join, &o.join);
        merge_histogram(&mut self.first_keyframe, &o.first_keyframe);
        self.events += o.events;
        self.chats += o.chats;
        self.bytes += o.bytes;
        self.event_seq.merge(&o.event_seq);
        self.chat_seq.merge(&o.chat_seq);
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(latencies_us: &[u64], lost: u64) -> ViewerStats {
        let mut s = ViewerStats {
            viewers: 1,
            ..Default::default()
        };
        for &l in latencies_us {
            record_us(&mut s.latency, l);
        }
        s.events = latencies_us.len() as u64;
        s.event_seq = SeqCounts {
            received: latencies_us.len() as u64,
            expected: latencies_us.len() as u64 + lost,
            lost,
            ..Default::default()
        };
        s.error("closed_4001");
        s
    }

    #[test]
    fn merge_adds_counts_histograms_and_errors() {
        let mut total = ViewerStats::default();
        total.merge(&viewer(&[1000, 2000, 3000], 0));
        total.merge(&viewer(&[10_000], 2));
        assert_eq!(total.viewers, 2);
        assert_eq!(total.events, 4);
        assert_eq!(total.latency.len(), 4);
        assert_eq!(total.event_seq.expected, 6);
        assert_eq!(total.event_seq.lost, 2);
        assert_eq!(total.errors.get("closed_4001"), Some(&2));
        let s = Summary::of(&total.latency).expect("samples");
        assert_eq!(s.count, 4);
        assert!((s.max_ms - 10.0).abs() < 0.01, "{s:?}");
        assert!((s.p50_ms - 2.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn merged_percentiles_match_one_histogram_of_everything() {
        let a: Vec<u64> = (1..=500).map(|i| i * 100).collect();
        let b: Vec<u64> = (1..=500).map(|i| i * 7 + 20_000).collect();
        let mut merged = ViewerStats::default();
        merged.merge(&viewer(&a, 0));
        merged.merge(&viewer(&b, 0));
        let mut one = histogram();
        for &v in a.iter().chain(&b) {
            record_us(&mut one, v);
        }
        assert_eq!(Summary::of(&merged.latency), Summary::of(&one));
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        assert!(Summary::of(&histogram()).is_none());
    }
}
