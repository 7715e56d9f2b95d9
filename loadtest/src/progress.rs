//! Live counters, the once-a-second progress line and the per-second time series.
//!
//! Viewer tasks batch their counts and latencies locally and hand them to [`Live`] every 250 ms, so
//! the hot path touches no shared state. The progress task wakes each second and records a
//! [`Sample`] of that second: what was sent and delivered, the latency percentiles of the second
//! (an interval histogram, reset each second) beside the p99 so far, the errors, and the CPU and
//! RSS of the sampled processes. It prints the sample as a line (through indicatif when stderr is
//! a terminal, as plain lines otherwise, not at all with `--quiet`); the samples become the
//! report's `timeline`. Counts reach [`Live`] up to 250 ms late, so a second's figures are those
//! flushed during it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sampler::{ProcessMeter, ProcessSample, Target};
use crate::stages::Stages;
use crate::stats::{histogram, merge_histogram, Summary};

/// How often viewer tasks flush into [`Live`].
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Counters shared by every task of a run.
pub struct Live {
    /// Messages published (events and chat).
    pub sent: AtomicU64,
    /// Event and chat frames delivered to viewers.
    pub delivered: AtomicU64,
    /// Errors of any kind.
    pub errors: AtomicU64,
    /// Open participants (churn: completed cycles).
    pub connections: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    interval: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            interval: Mutex::new(histogram()),
        }
    }
}

impl Live {
    /// A fresh set of counters.
    pub fn new() -> Arc<Live> {
        Arc::new(Live::default())
    }

    /// Takes a task's batch: `delivered` frames and the latencies in `h` (which is reset).
    pub fn absorb(&self, delivered: u64, h: &mut Histogram<u64>) {
        if delivered > 0 {
            self.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        if !h.is_empty() {
            if let Ok(mut all) = self.latency.lock() {
                merge_histogram(&mut all, h);
            }
            if let Ok(mut now) = self.interval.lock() {
                merge_histogram(&mut now, h);
            }
            h.reset();
        }
    }

    /// Counts one error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn p99_ms(&self) -> Option<f64> {
        let h = self.latency.lock().ok()?;
        (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
    }

    /// The latencies absorbed since the last call, and a fresh interval.
    fn take_interval(&self) -> Option<Summary> {
        let mut h = self.interval.lock().ok()?;
        let s = Summary::of(&h);
        h.reset();
        s
    }
}

/// One interval (a second) of the run: the report's `timeline`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// End of the interval, seconds since publishing began.
    pub t_s: f64,
    /// Length of the interval, seconds (1 but for the last one).
    pub interval_s: f64,
    /// Messages published in the interval (events and chat).
    pub sent: u64,
    /// Event and chat frames delivered to measured viewers in the interval.
    pub deliveries: u64,
    /// Deliveries per second over the interval.
    pub deliveries_per_s: f64,
    /// Errors in the interval.
    pub errors: u64,
    /// End-to-end event latency of the events delivered in the interval (`null`: none).
    pub latency: Option<Summary>,
    /// The p99 of every event so far (what the final report's p99 would be at this point).
    pub p99_cumulative_ms: Option<f64>,
    /// Open participants at the end of the interval (churn: completed cycles so far).
    pub connections: u64,
    /// The `--stages` target at the end of the interval (rate or rooms), if ramping.
    pub target: Option<f64>,
    /// Sampled processes (`--server-pid`s and this one).
    pub processes: Vec<ProcessSample>,
}

impl Sample {
    /// The progress line.
    fn line(&self, label: &str) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |p| format!("{p:.2}ms"));
        let mut line = format!(
            "{label} t={:>3.0}s sent/s={:>7} delivered/s={:>8} p99(1s)={} p99(all)={} errors={} conns={}",
            self.t_s,
            self.sent,
            self.deliveries,
            ms(self.latency.map(|l| l.p99_ms)),
            ms(self.p99_cumulative_ms),
            self.errors,
            self.connections,
        );
        if let Some(t) = self.target {
            line.push_str(&format!(" target={t:.1}"));
        }
        for p in self.processes.iter().filter(|p| p.label == "server") {
            line.push_str(&format!(
                " server[{}]={:.2}cores/{:.0}MiB",
                p.pid,
                p.cpu_cores,
                p.rss_kb as f64 / 1024.0
            ));
        }
        line
    }
}

/// What the progress task is given.
pub struct ProgressPlan {
    /// Line prefix (the scenario).
    pub label: String,
    /// Print lines (false: `--quiet`, only record).
    pub print: bool,
    /// Processes to sample each second.
    pub targets: Vec<Target>,
    /// The ramp, to show its target.
    pub stages: Option<Arc<Stages>>,
}

/// The running progress printer and time-series recorder.
pub struct Progress {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
}

impl Progress {
    /// Starts recording (and printing) every second until [`Progress::finish`].
    pub fn start(live: Arc<Live>, plan: ProgressPlan) -> Progress {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let bar = (plan.print && std::io::stderr().is_terminal()).then(|| {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            });
            let mut meter = ProcessMeter::new(plan.targets);
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut sent0, mut del0, mut err0) = (0u64, 0u64, 0u64);
            let mut last = started;
            let mut samples = Vec::new();
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stopped.changed() => true,
                };
                let now = Instant::now();
                let interval_s = now.duration_since(last).as_secs_f64();
                if stopping && interval_s < 0.1 {
                    break;
                }
                last = now;
                let sent = live.sent.load(Ordering::Relaxed);
                let del = live.delivered.load(Ordering::Relaxed);
                let err = live.errors.load(Ordering::Relaxed);
                let sample = Sample {
                    t_s: now.duration_since(started).as_secs_f64(),
                    interval_s,
                    sent: sent - sent0,
                    deliveries: del - del0,
                    deliveries_per_s: (del - del0) as f64 / interval_s.max(1e-9),
                    errors: err.saturating_sub(err0),
                    latency: live.take_interval(),
                    p99_cumulative_ms: live.p99_ms(),
                    connections: live.connections.load(Ordering::Relaxed),
                    target: plan
                        .stages
                        .as_ref()
                        .map(|s| s.target_at(now.duration_since(started))),
                    processes: meter.sample(),
                };
                (sent0, del0, err0) = (sent, del, err);
                if plan.print {
                    let line = sample.line(&plan.label);
                    match &bar {
                        Some(b) => {
                            b.set_message(line);
                            b.tick();
                        }
                        None => eprintln!("{line}"),
                    }
                }
                samples.push(sample);
                if stopping {
                    break;
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            samples
        });
        Progress { stop, task }
    }

    /// Stops, records the last partial second, and hands the samples back.
    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record_us;

    #[test]
    fn interval_percentiles_are_per_interval_and_cumulative_ones_are_not() {
        let live = Live::default();
        let mut batch = histogram();
        for _ in 0..100 {
            record_us(&mut batch, 100_000);
        }
        live.absorb(100, &mut batch);
        assert!(batch.is_empty(), "the batch is handed over");
        let first = live.take_interval().expect("a slow second");
        assert!((first.p99_ms - 100.0).abs() < 0.1, "{first:?}");
        for _ in 0..1000 {
            record_us(&mut batch, 1_000);
        }
        live.absorb(1000, &mut batch);
        let second = live.take_interval().expect("a fast second");
        assert!((second.p99_ms - 1.0).abs() < 0.01, "{second:?}");
        assert_eq!(second.count, 1000);
        // 100 of 1100 were slow: the run's p99 still shows them.
        assert!((live.p99_ms().expect("cumulative") - 100.0).abs() < 0.1);
        assert!(live.take_interval().is_none(), "nothing since");
        assert_eq!(live.delivered.load(Ordering::Relaxed), 1100);
    }

    #[test]
    fn the_line_shows_both_p99s_and_the_target() {
        let s = Sample {
            t_s: 3.0,
            interval_s: 1.0,
            sent: 100,
            deliveries: 5000,
            deliveries_per_s: 5000.0,
            errors: 0,
            latency: Summary::of(&{
                let mut h = histogram();
                record_us(&mut h, 2_000);
                h
            }),
            p99_cumulative_ms: Some(7.5),
            connections: 51,
            target: Some(20.0),
            processes: vec![ProcessSample {
                pid: 42,
                label: "server".into(),
                cpu_cores: 0.5,
                rss_kb: 20480,
            }],
        };
        let line = s.line("broadcast");
        for part in [
            "p99(1s)=2.00ms",
            "p99(all)=7.50ms",
            "target=20.0",
            "server[42]=0.50cores/20MiB",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }
}
