//! Live counters and the once-a-second progress line.
//!
//! Viewer tasks batch their counts and latencies locally and hand them to [`Live`] every 250 ms, so
//! the hot path touches no shared state. The progress task prints, each second, what was sent and
//! delivered in that second, the p99 latency so far, and the error count: through indicatif when
//! stderr is a terminal, as plain lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::stats::{histogram, merge_histogram};

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
}

impl Default for Live {
    fn default() -> Self {
        Live {
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
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
}

/// The running progress printer.
pub struct Progress {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts printing every second until [`Progress::finish`].
    pub fn start(live: Arc<Live>, label: String) -> Progress {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let bar = std::io::stderr().is_terminal().then(|| {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            });
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut sent0, mut del0) = (0u64, 0u64);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let sent = live.sent.load(Ordering::Relaxed);
                let del = live.delivered.load(Ordering::Relaxed);
                let line = format!(
                    "{label} t={:>3}s sent/s={:>7} delivered/s={:>8} p99={} errors={} conns={}",
                    started.elapsed().as_secs(),
                    sent - sent0,
                    del - del0,
                    live.p99_ms()
                        .map_or_else(|| "-".to_owned(), |p| format!("{p:.2}ms")),
                    live.errors.load(Ordering::Relaxed),
                    live.connections.load(Ordering::Relaxed),
                );
                (sent0, del0) = (sent, del);
                match &bar {
                    Some(b) => {
                        b.set_message(line);
                        b.tick();
                    }
                    None => eprintln!("{line}"),
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        Progress { stop, task }
    }

    /// Stops printing.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
