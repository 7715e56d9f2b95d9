//! One connection's own rates: messages and bytes per second, the hold-back budget, and the
//! violation budget. [`ConnRates::admit`] takes a client frame through these and through the
//! participant's and room's [`SharedRates`], waiting (within the hold-back budget) where a frame
//! is early. It sends nothing and closes nothing: the session turns its answers into `ack`s,
//! `rate_limited` errors and 4501.

use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::rates::RateConfig;
use super::rates::{nonzero, participant_key, SharedRates};

/// Per-connection rate limits. Frames over the message or byte rate are held back (TCP
/// backpressure then slows the sender) while the connection's hold-back budget lasts: up to
/// `--max-rate-delay` in total, refilled over [`HOLD_BACK_REFILL`]. Past it they are refused with
/// `rate_limited`, and every refusal draws on the violation budget, whose exhaustion closes the
/// connection (4501). A burst from a busy page is slowed; a flood ends.
pub(crate) struct ConnRates {
    /// This participant's and this room's keys in the node's [`SharedRates`].
    participant: Arc<str>,
    room: Arc<str>,
    msgs: DefaultDirectRateLimiter,
    bytes: DefaultDirectRateLimiter,
    /// Milliseconds of hold-back left.
    hold_back: DefaultDirectRateLimiter,
    violations: DefaultDirectRateLimiter,
}

/// The hold-back budget refills over this long.
const HOLD_BACK_REFILL: Duration = Duration::from_secs(30);

/// How a frame fared against the rates.
pub(crate) enum Admit {
    Now,
    Delayed,
    Refused,
}

impl ConnRates {
    pub(crate) fn new(cfg: &RateConfig, room: &str, sub: &str) -> ConnRates {
        let msgs = u64::from(cfg.max_msgs_per_sec);
        let bytes = u64::from(cfg.max_bytes_per_sec);
        let byte_burst = (bytes * 2).max(cfg.max_frame_bytes as u64);
        let hold_back_ms = cfg.max_rate_delay.as_millis() as u64;
        let per_second = |rate: u64, burst: u64| {
            RateLimiter::direct(Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst)))
        };
        ConnRates {
            participant: participant_key(room, sub),
            room: Arc::from(room),
            msgs: per_second(msgs, msgs * 2),
            bytes: per_second(bytes, byte_burst),
            hold_back: per_second(hold_back_ms / HOLD_BACK_REFILL.as_secs(), hold_back_ms),
            violations: per_second(1, u64::from(cfg.max_violations)),
        }
    }

    /// Draws one violation (an error the client caused); `false` once the budget is spent.
    pub(crate) fn violation(&self) -> bool {
        self.violations.check().is_ok()
    }

    /// Whether a hold-back of `wait` fits the remaining budget (and spends it if so).
    fn hold_back(&self, wait: Duration) -> bool {
        matches!(
            self.hold_back.check_n(nonzero(wait.as_millis() as u64)),
            Ok(Ok(()))
        )
    }

    /// Takes one frame of `len` bytes from the rates, waiting (within the hold-back budget) for
    /// tokens that are not there yet.
    pub(crate) async fn admit(&self, shared: &SharedRates, len: usize) -> Admit {
        let mut outcome = Admit::Now;
        loop {
            // The limiter's own clock: a new `DefaultClock` per call probes the CPU (`cpuid`,
            // a hypervisor trap on VMs), which cost 20-40 % of a node's CPU in B2.
            let wait = match self.msgs.check() {
                Ok(()) => break,
                Err(not_until) => not_until.wait_time_from(self.msgs.clock().now()),
            };
            if !self.hold_back(wait) {
                return Admit::Refused;
            }
            outcome = Admit::Delayed;
            tokio::time::sleep(wait).await;
        }
        loop {
            let wait = match self.bytes.check_n(nonzero(len as u64)) {
                Ok(Ok(())) => break,
                Ok(Err(not_until)) => not_until.wait_time_from(self.bytes.clock().now()),
                Err(_) => return Admit::Refused, // larger than the burst: never fits
            };
            if !self.hold_back(wait) {
                return Admit::Refused;
            }
            outcome = Admit::Delayed;
            tokio::time::sleep(wait).await;
        }
        // The participant's and the room's rates, across connections.
        for step in 0..SharedRates::STEPS {
            loop {
                let wait = match shared.check(step, &self.participant, &self.room, len) {
                    Ok(()) => break,
                    Err(Some(wait)) => wait,
                    Err(None) => return Admit::Refused,
                };
                if !self.hold_back(wait) {
                    return Admit::Refused;
                }
                outcome = Admit::Delayed;
                tokio::time::sleep(wait).await;
            }
        }
        outcome
    }
}
