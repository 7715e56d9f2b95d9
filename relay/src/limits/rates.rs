//! Rates shared by every connection of a participant, and of a room, on this node.
//!
//! A connection's own limiter (`limits::conn`) only bounds that connection; these keyed limiters
//! bound one participant (room + `sub`) across all its connections, and one room across all its
//! participants, with the same hold-back-then-refuse handling. They live in the [`crate::Node`],
//! so a reconnect (after 4501 or otherwise) starts from the state the participant left. Idle keys
//! are evicted (a key whose bucket has refilled carries no state), which keeps the maps bounded by
//! the participants and rooms active within the last burst period. Nothing here waits: a check
//! answers how long to wait, and the connection decides.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

type Keyed = RateLimiter<Arc<str>, HashMapStateStore<Arc<str>>, DefaultClock>;

/// One rate as GCRA parameters (what cluster mode's append script applies): a unit costs
/// `interval_us`; a cost passes while the theoretical arrival time stays within `tolerance_us`
/// of now (the burst).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Gcra {
    /// Microseconds per unit (frame or byte).
    pub interval_us: f64,
    /// Burst, in microseconds of units.
    pub tolerance_us: f64,
}

impl Gcra {
    fn new(rate: u64, burst: u64) -> Gcra {
        let interval_us = 1e6 / rate.max(1) as f64;
        Gcra {
            interval_us,
            tolerance_us: interval_us * burst.max(1) as f64,
        }
    }
}

/// The rates the store holds stored entries to across nodes (cluster mode): the participant's
/// messages and bytes, the room's messages and bytes. Bytes are payload bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryRates(pub [Gcra; 4]);

/// Who sent an entry, and the rates that apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Rated {
    /// The participant (`sub`).
    pub sender: String,
    /// Its rates.
    pub rates: EntryRates,
}

/// Limiters keyed by participant and by room.
pub struct SharedRates {
    msgs: Keyed,
    bytes: Keyed,
    room_msgs: Keyed,
    room_bytes: Keyed,
    checks: AtomicU64,
    entry_rates: EntryRates,
}

/// The key of one participant of one room.
pub fn participant_key(room: &str, sub: &str) -> Arc<str> {
    format!("{room}\u{1f}{sub}").into()
}

/// `v` as a limiter quantity, at least 1 and at most `u32::MAX`.
pub(crate) fn nonzero(v: u64) -> NonZeroU32 {
    NonZeroU32::new(v.clamp(1, u64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
}

fn keyed(rate: u64, burst: u64) -> Keyed {
    RateLimiter::hashmap(Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst)))
}

/// The rate settings, as `relay serve`'s flags give them (`NodeConfig::rates`).
#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// `--max-msgs-per-sec`: frames per second of a connection and of a participant.
    pub max_msgs_per_sec: u32,
    /// `--max-bytes-per-sec`: bytes per second of a connection and of a participant.
    pub max_bytes_per_sec: u32,
    /// `--max-room-msgs-per-sec`: frames per second of a room.
    pub max_room_msgs_per_sec: u32,
    /// `--max-room-bytes-per-sec`: bytes per second of a room.
    pub max_room_bytes_per_sec: u32,
    /// `--max-frame-bytes`: no byte burst is smaller than one frame.
    pub max_frame_bytes: usize,
    /// `--max-rate-delay`: how long a connection's frames may be held back in all.
    pub max_rate_delay: std::time::Duration,
    /// `--max-violations`: refusals before a connection is closed.
    pub max_violations: u32,
}

/// Evict idle keys once every this many checks.
const SWEEP_EVERY: u64 = 4096;

impl SharedRates {
    /// Participant rates are `--max-msgs-per-sec` / `--max-bytes-per-sec` (bursts of twice that,
    /// as for a connection); room rates `--max-room-msgs-per-sec` / `--max-room-bytes-per-sec`.
    pub fn new(cfg: &RateConfig) -> SharedRates {
        let msgs = u64::from(cfg.max_msgs_per_sec);
        let bytes = u64::from(cfg.max_bytes_per_sec);
        let byte_burst = (bytes * 2).max(cfg.max_frame_bytes as u64);
        let room_msgs = u64::from(cfg.max_room_msgs_per_sec);
        let room_bytes = u64::from(cfg.max_room_bytes_per_sec);
        SharedRates {
            msgs: keyed(msgs, msgs * 2),
            bytes: keyed(bytes, byte_burst),
            room_msgs: keyed(room_msgs, room_msgs * 2),
            room_bytes: keyed(room_bytes, (room_bytes * 2).max(cfg.max_frame_bytes as u64)),
            checks: AtomicU64::new(0),
            // Across nodes the store allows a node's burst plus one second of the rate: a sender
            // the node already holds to the rate reaches Redis with jitter (batched writes,
            // scheduling), which a check with the node's own burst would refuse. Senders on two
            // nodes at full rate still run out of it within seconds.
            entry_rates: EntryRates([
                Gcra::new(msgs, msgs * 3),
                Gcra::new(bytes, byte_burst + bytes),
                Gcra::new(room_msgs, room_msgs * 3),
                Gcra::new(
                    room_bytes,
                    (room_bytes * 2).max(cfg.max_frame_bytes as u64) + room_bytes,
                ),
            ]),
        }
    }

    /// What an entry of `sender` carries to the store (cluster mode applies it across nodes).
    pub fn rated(&self, sender: &str) -> Rated {
        Rated {
            sender: sender.to_owned(),
            rates: self.entry_rates,
        }
    }

    /// Number of limiters a frame passes through ([`SharedRates::check`] steps).
    pub const STEPS: usize = 4;

    /// Takes one frame of `len` bytes from step `step` of the participant's and the room's rates
    /// (messages, then bytes; participant, then room). `Err(Some(wait))`: not before `wait` (the
    /// caller holds the frame back and asks this step again, or refuses it). `Err(None)`: the
    /// frame is larger than a burst and never fits.
    pub fn check(
        &self,
        step: usize,
        participant: &Arc<str>,
        room: &Arc<str>,
        len: usize,
    ) -> Result<(), Option<Duration>> {
        if step == 0 && self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
        {
            for l in [&self.msgs, &self.bytes, &self.room_msgs, &self.room_bytes] {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        let (l, key, n) = match step {
            0 => (&self.msgs, participant, 1),
            1 => (&self.room_msgs, room, 1),
            2 => (&self.bytes, participant, len),
            _ => (&self.room_bytes, room, len),
        };
        match l.check_key_n(key, nonzero(n as u64)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Some(not_until.wait_time_from(l.clock().now()))),
            Err(_) => Err(None),
        }
    }

    /// Keys held (participants and rooms with recent traffic), for tests and metrics.
    pub fn len(&self) -> usize {
        self.msgs.len() + self.room_msgs.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
