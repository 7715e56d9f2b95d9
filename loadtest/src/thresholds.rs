//! Pass/fail criteria (`--threshold 'p99<50ms'`), checked against the final report like k6's
//! thresholds: each one gets a pass/fail line, and any failure makes the exit code 1.
//!
//! A threshold is `METRIC OP VALUE`:
//! - latency percentiles of the end-to-end event latency: `p50`, `p90`, `p99`, `p999` (also
//!   k6's `p(99)`, `p(99.9)`), `max`, `mean`; prefixed `chat.`, `connect.`, `join.` or
//!   `keyframe.` for the other latency rows (`join.p99<20ms`). Units `us`, `ms` (the default), `s`.
//! - `loss`: lost over expected, events and chat together, as a fraction or with `%`.
//! - `errors`: the number of errors of every kind.
//!
//! `OP` is `<`, `<=`, `>` or `>=`. A latency with no samples fails (nothing was measured).

use serde::Serialize;

use crate::stats::Summary;

/// Which latency row a percentile is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// End-to-end event latency.
    Event,
    /// End-to-end chat latency.
    Chat,
    /// TCP connect + upgrade.
    Connect,
    /// Join sent to join answered.
    Join,
    /// Join-to-first-keyframe of late joiners.
    Keyframe,
}

/// A statistic of a latency row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest.
    Max,
    /// Mean.
    Mean,
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency statistic, in milliseconds.
    Latency(Series, Stat),
    /// Lost over expected.
    Loss,
    /// Errors counted.
    Errors,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written (spaces removed).
    pub expr: String,
    /// What it measures.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit, in the metric's base unit (ms, fraction, count).
    pub limit: f64,
}

/// A threshold checked against a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The threshold as written.
    pub threshold: String,
    /// Whether it held.
    pub pass: bool,
    /// The measured value (ms, fraction or count); `null` when nothing was measured.
    pub value: Option<f64>,
    /// The measured value in words, e.g. `p99 = 12.34 ms`.
    pub observed: String,
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Threshold::parse(s)
    }
}

impl Threshold {
    /// Parses `METRIC OP VALUE` (see the module documentation).
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let expr: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, op, len) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|o| {
                expr.find(o).map(|i| {
                    let op = match *o {
                        "<=" => Op::Le,
                        ">=" => Op::Ge,
                        "<" => Op::Lt,
                        _ => Op::Gt,
                    };
                    (i, op, o.len())
                })
            })
            .ok_or_else(|| {
                format!("threshold {s:?} has no <, <=, > or >= (e.g. 'p99<50ms', 'loss<=0')")
            })?;
        let (name, value) = (&expr[..at], &expr[at + len..]);
        let metric = metric(name).ok_or_else(|| {
            format!(
                "threshold {s:?}: unknown metric {name:?} (p50, p90, p99, p999, max, mean, \
                 optionally prefixed chat., connect., join. or keyframe.; loss; errors)"
            )
        })?;
        let limit = match metric {
            Metric::Latency(..) => millis(value),
            Metric::Loss => fraction(value),
            Metric::Errors => value.parse::<u64>().ok().map(|n| n as f64),
        }
        .ok_or_else(|| {
            let want = match metric {
                Metric::Latency(..) => "a duration such as 50ms, 0.5s or 800us",
                Metric::Loss => "a fraction such as 0.001, or a percentage such as 0.1%",
                Metric::Errors => "a whole number",
            };
            format!("threshold {s:?}: bad value {value:?}: {want}")
        })?;
        Ok(Threshold {
            expr,
            metric,
            op,
            limit,
        })
    }

    /// The metric's name as written (`p99`, `join.p99`, `loss`).
    pub fn name(&self) -> &str {
        self.expr.split(['<', '>']).next().unwrap_or_default()
    }

    /// The result for a measured `value` (`None`: nothing measured, which fails), described
    /// as `observed`.
    pub fn result(&self, value: Option<f64>, observed: String) -> ThresholdResult {
        ThresholdResult {
            threshold: self.expr.clone(),
            pass: value.is_some_and(|v| self.op.holds(v, self.limit)),
            value,
            observed,
        }
    }
}

fn metric(name: &str) -> Option<Metric> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "loss" => return Some(Metric::Loss),
        "errors" => return Some(Metric::Errors),
        _ => {}
    }
    let series_of = |prefix: &str| match prefix {
        "event" => Some(Series::Event),
        "chat" => Some(Series::Chat),
        "connect" => Some(Series::Connect),
        "join" => Some(Series::Join),
        "keyframe" => Some(Series::Keyframe),
        _ => None,
    };
    // `p(99.9)` and `p99.9` hold a dot too: only a known prefix is a series.
    let (series, stat) = match name.split_once('.') {
        Some((prefix, stat)) if !prefix.starts_with('p') || series_of(prefix).is_some() => {
            (series_of(prefix)?, stat)
        }
        _ => (Series::Event, name.as_str()),
    };
    let stat = match stat {
        "p50" | "p(50)" | "med" => Stat::P50,
        "p90" | "p(90)" => Stat::P90,
        "p99" | "p(99)" => Stat::P99,
        "p999" | "p99.9" | "p(99.9)" => Stat::P999,
        "max" => Stat::Max,
        "mean" | "avg" => Stat::Mean,
        _ => return None,
    };
    Some(Metric::Latency(series, stat))
}

/// A statistic of a latency row, ms.
pub fn stat_of(x: &Summary, stat: Stat) -> f64 {
    match stat {
        Stat::P50 => x.p50_ms,
        Stat::P90 => x.p90_ms,
        Stat::P99 => x.p99_ms,
        Stat::P999 => x.p999_ms,
        Stat::Max => x.max_ms,
        Stat::Mean => x.mean_ms,
    }
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// `50ms`, `0.5s`, `800us` / `800µs`, or a bare number of milliseconds.
fn millis(s: &str) -> Option<f64> {
    let s = s.to_ascii_lowercase();
    if let Some(n) = s.strip_suffix("ms") {
        number(n)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        number(n).map(|v| v / 1000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        number(n).map(|v| v * 1000.0)
    } else {
        number(&s)
    }
}

/// `0.001` or `0.1%`.
fn fraction(s: &str) -> Option<f64> {
    match s.strip_suffix('%') {
        Some(p) => number(p).map(|v| v / 100.0),
        None => number(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        Threshold::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_latency_loss_and_errors() {
        let p = t("p99<50ms");
        assert_eq!(p.metric, Metric::Latency(Series::Event, Stat::P99));
        assert_eq!((p.op, p.limit), (Op::Lt, 50.0));
        assert_eq!(t("p(99.9) <= 0.2s").limit, 200.0);
        assert_eq!(
            t("p(99.9)<=0.2s").metric,
            Metric::Latency(Series::Event, Stat::P999)
        );
        assert_eq!(t("p50<800us").limit, 0.8);
        assert_eq!(t("p90<12").limit, 12.0);
        assert_eq!(
            t("join.p99<20ms").metric,
            Metric::Latency(Series::Join, Stat::P99)
        );
        assert_eq!(
            t("keyframe.max<2s").metric,
            Metric::Latency(Series::Keyframe, Stat::Max)
        );
        let l = t("loss<=0.1%");
        assert_eq!(l.metric, Metric::Loss);
        assert_eq!(l.op, Op::Le);
        assert!((l.limit - 0.001).abs() < 1e-12);
        assert_eq!(t("loss<=0").limit, 0.0);
        let e = t("errors<=0");
        assert_eq!((e.metric, e.limit), (Metric::Errors, 0.0));
        assert_eq!(t("errors >= 3").op, Op::Ge);
        assert_eq!(t("p99 < 50 ms").expr, "p99<50ms");
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        for (bad, says) in [
            ("p99", "no <"),
            ("p98<5ms", "unknown metric"),
            ("foo.p99<5ms", "unknown metric"),
            ("p99<fast", "a duration"),
            ("p99<-5ms", "a duration"),
            ("loss<lots", "a fraction"),
            ("errors<1.5", "whole number"),
        ] {
            let e = Threshold::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && !Op::Le.holds(2.1, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
        assert!(Op::Ge.holds(2.0, 2.0) && !Op::Ge.holds(1.9, 2.0));
    }
}
