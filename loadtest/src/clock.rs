//! One time base for senders and receivers.
//!
//! Send timestamps travel inside the payload as microseconds since the Unix epoch, so a viewer in
//! another process on the same host could read them. Within this process both ends derive them from
//! one anchor (`Instant` + wall clock taken together), so latencies are monotonic and immune to
//! wall-clock steps during a run.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The anchor: an `Instant` and the Unix time in microseconds at that instant.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_unix_us: u64,
}

impl Clock {
    /// Anchors the clock now.
    pub fn new() -> Clock {
        let base = Instant::now();
        let base_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clock { base, base_unix_us }
    }

    /// Unix microseconds of an instant (instants before the anchor saturate at the anchor).
    pub fn unix_us(&self, at: Instant) -> u64 {
        self.base_unix_us + at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Unix microseconds now.
    pub fn now_us(&self) -> u64 {
        self.unix_us(Instant::now())
    }

    /// Unix milliseconds of an instant, for rrweb `timestamp` fields.
    pub fn unix_ms(&self, at: Instant) -> u64 {
        self.unix_us(at) / 1000
    }

    /// Time since the anchor.
    pub fn elapsed(&self) -> Duration {
        self.base.elapsed()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
