//! Server process sampling from `/proc` (Linux): CPU time and resident memory.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` in clock ticks, converted with `getconf
//! CLK_TCK` (read once; 100, the Linux value, if `getconf` is missing). RSS is `VmRSS` of
//! `/proc/PID/status`. The sampler reads each process when started, every second, and when
//! finished; CPU is the difference between the first and the last reading.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One process to sample.
#[derive(Debug, Clone)]
pub struct Target {
    /// Process id.
    pub pid: u32,
    /// What it is, for the report.
    pub label: String,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu_ticks: u64,
    rss_kb: u64,
}

/// What one process used during the sampled window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Process id.
    pub pid: u32,
    /// What it is.
    pub label: String,
    /// CPU seconds (user + system) used in the window.
    pub cpu_s: f64,
    /// Average CPU use in the window, in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    /// CPU milliseconds per 1000 deliveries (filled in by the scenario).
    pub cpu_ms_per_1k_deliveries: Option<f64>,
    /// Smallest RSS seen, KiB.
    pub rss_min_kb: u64,
    /// Largest RSS seen, KiB.
    pub rss_max_kb: u64,
    /// Readings that succeeded.
    pub samples: usize,
    /// Set when the process could not be read (gone, or not Linux).
    pub error: Option<String>,
}

/// Clock ticks per second for `/proc/PID/stat` times.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

fn read(pid: u32) -> Result<Reading, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let cpu_ticks = parse_stat_cpu(&stat).ok_or_else(|| format!("/proc/{pid}/stat: unreadable"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let rss_kb = parse_status_rss_kb(&status).unwrap_or(0);
    Ok(Reading { cpu_ticks, rss_kb })
}

/// `utime + stime` from the text of `/proc/PID/stat`.
fn parse_stat_cpu(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
fn parse_status_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// One process in a the time series (`progress::Sample`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessSample {
    /// Process id.
    pub pid: u32,
    /// What it is (`server`, `loadtest (clients)`).
    pub label: String,
    /// CPU used during the interval, in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    /// Resident memory at the end of the interval, KiB.
    pub rss_kb: u64,
}

/// Per-interval readings for the time series: CPU used since the previous call, RSS now.
pub struct ProcessMeter {
    targets: Vec<(Target, Option<(Reading, Instant)>)>,
    ticks: f64,
}

impl ProcessMeter {
    /// Reads every target once, as the baseline.
    pub fn new(targets: Vec<Target>) -> ProcessMeter {
        let now = Instant::now();
        ProcessMeter {
            targets: targets
                .into_iter()
                .map(|t| {
                    let r = read(t.pid).ok().map(|r| (r, now));
                    (t, r)
                })
                .collect(),
            ticks: clock_ticks() as f64,
        }
    }

    /// One sample per process that could be read now (a vanished process is left out).
    pub fn sample(&mut self) -> Vec<ProcessSample> {
        let now = Instant::now();
        let ticks = self.ticks;
        self.targets
            .iter_mut()
            .filter_map(|(t, prev)| {
                let r = read(t.pid).ok()?;
                let cpu_cores = match prev {
                    Some((p, at)) => {
                        let secs = now.duration_since(*at).as_secs_f64().max(1e-9);
                        r.cpu_ticks.saturating_sub(p.cpu_ticks) as f64 / ticks / secs
                    }
                    None => 0.0,
                };
                *prev = Some((r, now));
                Some(ProcessSample {
                    pid: t.pid,
                    label: t.label.clone(),
                    cpu_cores,
                    rss_kb: r.rss_kb,
                })
            })
            .collect()
    }
}

#[derive(Debug)]
struct Track {
    target: Target,
    first: Option<Reading>,
    last: Option<Reading>,
    rss_min: u64,
    rss_max: u64,
    samples: usize,
    error: Option<String>,
}

impl Track {
    fn sample(&mut self) {
        match read(self.target.pid) {
            Ok(r) => {
                self.first.get_or_insert(r);
                self.last = Some(r);
                self.rss_min = self.rss_min.min(r.rss_kb);
                self.rss_max = self.rss_max.max(r.rss_kb);
                self.samples += 1;
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// A running sampler.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Track>>,
    started: Instant,
}

impl Sampler {
    /// Reads every target now, then every second.
    pub fn start(targets: Vec<Target>) -> Sampler {
        let mut tracks: Vec<Track> = targets
            .into_iter()
            .map(|target| Track {
                target,
                first: None,
                last: None,
                rss_min: u64::MAX,
                rss_max: 0,
                samples: 0,
                error: None,
            })
            .collect();
        for t in &mut tracks {
            t.sample();
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => tracks.iter_mut().for_each(Track::sample),
                    _ = stopped.changed() => break,
                }
            }
            tracks.iter_mut().for_each(Track::sample);
            tracks
        });
        Sampler {
            stop,
            task,
            started: Instant::now(),
        }
    }

    /// Takes the last reading and reports each process's usage over the window.
    pub async fn finish(self) -> Vec<Usage> {
        let _ = self.stop.send(true);
        let window = self.started.elapsed().as_secs_f64().max(1e-9);
        let tracks = self.task.await.unwrap_or_default();
        let ticks = clock_ticks() as f64;
        tracks
            .into_iter()
            .map(|t| {
                let cpu_s = match (t.first, t.last) {
                    (Some(a), Some(b)) => b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks,
                    _ => 0.0,
                };
                Usage {
                    pid: t.target.pid,
                    label: t.target.label,
                    cpu_s,
                    cpu_cores: cpu_s / window,
                    cpu_ms_per_1k_deliveries: None,
                    rss_min_kb: if t.samples == 0 { 0 } else { t.rss_min },
                    rss_max_kb: t.rss_max,
                    samples: t.samples,
                    error: t.error,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name() {
        let stat = "4242 (my (odd) relay) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat_cpu(stat), Some(175));
    }

    #[test]
    fn status_rss() {
        let status = "Name:\trelay\nVmPeak:\t  1000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss_kb(status), Some(12345));
    }

    #[test]
    fn meter_reports_own_process_per_interval() {
        let mut m = ProcessMeter::new(vec![
            Target {
                pid: std::process::id(),
                label: "me".into(),
            },
            Target {
                pid: u32::MAX,
                label: "gone".into(),
            },
        ]);
        let s = m.sample();
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].rss_kb > 0 && s[0].cpu_cores >= 0.0, "{s:?}");
    }

    #[test]
    fn own_process_can_be_read() {
        let r = read(std::process::id()).expect("own /proc entry");
        assert!(r.rss_kb > 0);
    }
}
