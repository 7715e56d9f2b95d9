//! The byte cap of a room log and the staging shares, one rule for both backends.
//!
//! The embedded store applies [`check`] in Rust; the cluster store's append script
//! (`relay/src/store/redis/scripts/append.lua`, see [`super::redis`]) applies the same rule to
//! counters kept in the room's meta hash. Keep the two in step (the shared test
//! `relay/tests/quota.rs` runs against both).
//!
//! A room log counts payload bytes three ways:
//! - `log`: every entry still stored, including entries below the keyframe kept until the
//!   compactor archives them (cluster mode: an upper bound, exact after a trim to the keyframe);
//! - `key`: entries from the keyframe's first offset (its Meta) on: what a joiner replays;
//! - `meta`: entries from a Meta still waiting for its FullSnapshot on.
//!
//! The rule, for an entry of `size` bytes against `max` (`--max-log-bytes`):
//! 1. A FullSnapshot starts a new keyframe at the pending Meta (else at itself): it is refused
//!    when that keyframe (`meta + size`, or `size`) alone is over `max`; otherwise stored, and
//!    everything before the new keyframe is trimmed as always.
//! 2. A Meta while no Meta is pending is always stored (so a customer over the cap can start a
//!    new keyframe; at most one Meta past the cap per keyframe).
//! 3. Any other entry (events, chat, a second pending Meta) is refused when `key + size > max`.
//! 4. After a stored entry, when `log > max`, entries below the keyframe are trimmed at once,
//!    archived or not (what the compactor had not archived yet is missing from the recording).
//!
//! Refusals are `log_full` (not retryable: the customer takes a new full snapshot, which the cap
//! lets through). A room thus holds at most `max` bytes plus one Meta.

use assist_relay_proto::EventKind;

/// What the rule says about one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it.
    Store,
    /// Refuse it with `log_full`.
    Refuse,
}

/// The room's counters the rule reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Bytes from the keyframe's first offset on.
    pub key: u64,
    /// Bytes from the pending Meta on, if a Meta is pending.
    pub meta: Option<u64>,
}

/// Rules 1-3 for an entry of `kind` (None: chat) and `size` bytes.
pub fn check(max: u64, counts: Counts, kind: Option<EventKind>, size: u64) -> Verdict {
    let over = match kind {
        Some(EventKind::FullSnapshot) => counts.meta.unwrap_or(0) + size > max,
        Some(EventKind::Meta) if counts.meta.is_none() => false,
        _ => counts.key + size > max,
    };
    if over {
        Verdict::Refuse
    } else {
        Verdict::Store
    }
}

/// The message sent with a `log_full` refusal by the byte cap.
pub const LOG_FULL: &str =
    "the room's log is full (--max-log-bytes); send a new keyframe (Meta + FullSnapshot)";

/// The message sent with a `log_full` refusal by the node's memory budget.
pub const NODE_FULL: &str = "the node's memory budget is spent and this room holds more than \
                             its share; send a new keyframe (Meta + FullSnapshot)";

/// Bytes one participant may have staged in one room: an eighth of `--max-staged-bytes`, and at
/// least one largest upload so that a single big snapshot always fits.
pub fn participant_staging_share(max_staged: u64, max_upload: u64) -> u64 {
    (max_staged / 8).max(max_upload.min(max_staged))
}

/// Bytes one room may have staged: a quarter of `--max-staged-bytes`, and at least one
/// participant's share.
pub fn room_staging_share(max_staged: u64, max_upload: u64) -> u64 {
    (max_staged / 4).max(participant_staging_share(max_staged, max_upload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let c = |key, meta| Counts { key, meta };
        let fs = Some(EventKind::FullSnapshot);
        let meta = Some(EventKind::Meta);
        let inc = Some(EventKind::IncrementalSnapshot);
        assert_eq!(check(100, c(90, None), inc, 10), Verdict::Store);
        assert_eq!(check(100, c(90, None), inc, 11), Verdict::Refuse);
        assert_eq!(check(100, c(90, None), None, 11), Verdict::Refuse);
        // A first Meta always passes, a second one does not.
        assert_eq!(check(100, c(100, None), meta, 5), Verdict::Store);
        assert_eq!(check(100, c(105, Some(5)), meta, 5), Verdict::Refuse);
        // A snapshot is judged by the keyframe it starts.
        assert_eq!(check(100, c(105, Some(5)), fs, 95), Verdict::Store);
        assert_eq!(check(100, c(105, Some(5)), fs, 96), Verdict::Refuse);
        assert_eq!(check(100, c(500, None), fs, 100), Verdict::Store);
    }
}
