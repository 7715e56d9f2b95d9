//! Per-publisher sequence checking: gaps, duplicates, reordering, resyncs.
//!
//! Every payload carries its publisher's sequence number. A viewer keeps one [`SeqChecker`] per
//! stream (publisher and channel) and feeds it each sequence number in arrival order. The checker
//! keeps the set of sequence numbers it skipped (as ranges), so a late arrival is told apart from a
//! duplicate, and loss at the end is "skipped and never filled, plus the tail never seen".
//!
//! After a `resync` the relay replays a full state (keyframe and tail), which repeats entries the
//! viewer already had: the checker then resets its expectations. Entries at or below the highest
//! one seen before the resync are replays (filling a hole still counts them as received), and the
//! first sequence number after the resync is not judged as a gap.

use std::collections::BTreeMap;

/// Counts of one stream as seen by one viewer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SeqCounts {
    /// Distinct sequence numbers received.
    pub received: u64,
    /// Sequence numbers that should have arrived (see [`SeqChecker::finish`]).
    pub expected: u64,
    /// `expected - received`: skipped and never filled, plus the tail that never came.
    pub lost: u64,
    /// Forward jumps (each may skip several sequence numbers).
    pub gaps: u64,
    /// A sequence number received again (not counting replays after a resync).
    pub dups: u64,
    /// A sequence number that arrived after a later one (it filled a gap).
    pub reorders: u64,
    /// Resyncs seen.
    pub resyncs: u64,
}

impl SeqCounts {
    /// Adds another viewer's (or stream's) counts.
    pub fn merge(&mut self, o: &SeqCounts) {
        self.received += o.received;
        self.expected += o.expected;
        self.lost += o.lost;
        self.gaps += o.gaps;
        self.dups += o.dups;
        self.reorders += o.reorders;
        self.resyncs += o.resyncs;
    }
}

/// Sequence bookkeeping for one stream at one viewer.
#[derive(Debug, Default, Clone)]
pub struct SeqChecker {
    /// Lowest sequence number of the window (first seen, or lowered by an earlier arrival).
    start: Option<u64>,
    /// One past the highest sequence number seen.
    high: u64,
    /// Skipped sequence numbers not yet filled, as `start -> end` (exclusive) ranges.
    missing: BTreeMap<u64, u64>,
    missing_count: u64,
    /// After a resync: sequence numbers below this are replays, not duplicates.
    replay_below: Option<u64>,
    /// After a resync, the next sequence number is a new baseline.
    rebase: bool,
    counts: SeqCounts,
}

/// What one sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first one, or the next expected one, or a replay after a resync.
    InOrder,
    /// A jump forward over `skipped` sequence numbers.
    Gap {
        /// How many were skipped.
        skipped: u64,
    },
    /// Seen before.
    Duplicate,
    /// Filled a hole left by an earlier gap.
    Late,
}

impl SeqChecker {
    /// A checker that has seen nothing.
    pub fn new() -> SeqChecker {
        SeqChecker::default()
    }

    /// Records one sequence number.
    pub fn observe(&mut self, seq: u64) -> Arrival {
        let Some(start) = self.start else {
            self.start = Some(seq);
            self.high = seq + 1;
            self.counts.received += 1;
            self.rebase = false;
            return Arrival::InOrder;
        };
        let rebase = std::mem::take(&mut self.rebase);
        if let Some(limit) = self.replay_below {
            if seq >= limit {
                self.replay_below = None;
            }
        }
        if seq >= self.high {
            let skipped = seq - self.high;
            if skipped > 0 {
                self.add_missing(self.high, seq);
            }
            self.high = seq + 1;
            self.counts.received += 1;
            if skipped == 0 || rebase {
                return Arrival::InOrder;
            }
            self.counts.gaps += 1;
            return Arrival::Gap { skipped };
        }
        if seq < start {
            // Older than anything seen (a catch-up reaching further back): widen the window.
            if seq + 1 < start {
                self.add_missing(seq + 1, start);
            }
            self.start = Some(seq);
            self.counts.received += 1;
            if rebase || self.replay_below.is_some() {
                return Arrival::InOrder;
            }
            self.counts.reorders += 1;
            return Arrival::Late;
        }
        let replaying = rebase || self.replay_below.is_some();
        if self.take_missing(seq) {
            self.counts.received += 1;
            if replaying {
                return Arrival::InOrder;
            }
            self.counts.reorders += 1;
            return Arrival::Late;
        }
        if replaying {
            return Arrival::InOrder;
        }
        self.counts.dups += 1;
        Arrival::Duplicate
    }

    /// The live stream was interrupted and a full state follows: reset expectations.
    pub fn resync(&mut self) {
        self.counts.resyncs += 1;
        if self.start.is_some() {
            self.replay_below = Some(self.high);
            self.rebase = true;
        }
    }

    /// Whether anything was received.
    pub fn started(&self) -> bool {
        self.start.is_some()
    }

    /// One past the highest sequence number received.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// Final counts. `published` is one past the last sequence number the publisher sent;
    /// `must_from`, when known, is the first sequence number this viewer had to receive (0 for a
    /// viewer that joined before publishing began). Without it the first sequence number seen is
    /// the baseline (a late joiner starts at the room's keyframe).
    pub fn finish(&self, published: u64, must_from: Option<u64>) -> SeqCounts {
        let mut c = self.counts;
        let Some(start) = self.start else {
            let from = must_from.unwrap_or(published);
            c.expected = published.saturating_sub(from);
            c.lost = c.expected;
            return c;
        };
        let from = must_from.map_or(start, |m| m.min(start));
        // Sequence numbers the window covers and received are `received`; everything else from
        // `from` to `published` that is missing counts as lost.
        let top = published.max(self.high);
        c.expected = top - from;
        let unseen_head = start - from;
        let unseen_tail = top - self.high;
        c.lost = self.missing_count + unseen_head + unseen_tail;
        c
    }

    fn add_missing(&mut self, from: u64, to: u64) {
        self.missing.insert(from, to);
        self.missing_count += to - from;
    }

    fn take_missing(&mut self, seq: u64) -> bool {
        let Some((&from, &to)) = self.missing.range(..=seq).next_back() else {
            return false;
        };
        if seq >= to {
            return false;
        }
        self.missing.remove(&from);
        if from < seq {
            self.missing.insert(from, seq);
        }
        if seq + 1 < to {
            self.missing.insert(seq + 1, to);
        }
        self.missing_count -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64]) -> SeqChecker {
        let mut c = SeqChecker::new();
        for &s in seqs {
            c.observe(s);
        }
        c
    }

    #[test]
    fn in_order_stream_has_no_findings() {
        let c = feed(&[0, 1, 2, 3, 4]);
        let n = c.finish(5, Some(0));
        assert_eq!(
            n,
            SeqCounts {
                received: 5,
                expected: 5,
                ..Default::default()
            }
        );
    }

    #[test]
    fn gap_is_counted_once_and_its_size_is_lost() {
        let mut c = SeqChecker::new();
        assert_eq!(c.observe(0), Arrival::InOrder);
        assert_eq!(c.observe(4), Arrival::Gap { skipped: 3 });
        assert_eq!(c.observe(5), Arrival::InOrder);
        let n = c.finish(6, Some(0));
        assert_eq!((n.gaps, n.lost, n.received, n.expected), (1, 3, 3, 6));
    }

    #[test]
    fn late_arrival_fills_the_gap_and_counts_as_reorder() {
        let mut c = feed(&[0, 2]);
        assert_eq!(c.observe(1), Arrival::Late);
        assert_eq!(c.observe(3), Arrival::InOrder);
        let n = c.finish(4, Some(0));
        assert_eq!((n.gaps, n.reorders, n.lost, n.dups), (1, 1, 0, 0));
    }

    #[test]
    fn repeated_sequence_is_a_duplicate_not_a_reorder() {
        let mut c = feed(&[0, 1, 2]);
        assert_eq!(c.observe(1), Arrival::Duplicate);
        assert_eq!(c.observe(2), Arrival::Duplicate);
        let n = c.finish(3, Some(0));
        assert_eq!((n.dups, n.reorders, n.received, n.lost), (2, 0, 3, 0));
    }

    #[test]
    fn filling_a_hole_twice_is_a_duplicate_the_second_time() {
        let mut c = feed(&[0, 3]);
        assert_eq!(c.observe(1), Arrival::Late);
        assert_eq!(c.observe(1), Arrival::Duplicate);
        let n = c.finish(4, Some(0));
        assert_eq!((n.reorders, n.dups, n.lost), (1, 1, 1));
    }

    #[test]
    fn tail_never_received_is_lost() {
        let c = feed(&[0, 1, 2]);
        let n = c.finish(10, Some(0));
        assert_eq!((n.expected, n.lost, n.gaps), (10, 7, 0));
    }

    #[test]
    fn missing_head_counts_when_the_viewer_joined_before_publishing() {
        let c = feed(&[3, 4]);
        assert_eq!(c.finish(5, Some(0)).lost, 3);
        // A late joiner's baseline is its first sequence number.
        assert_eq!(c.finish(5, None).lost, 0);
    }

    #[test]
    fn nothing_received_loses_everything_it_had_to_receive() {
        let c = SeqChecker::new();
        assert_eq!(c.finish(7, Some(2)).lost, 5);
        assert_eq!(c.finish(7, None).lost, 0);
    }

    #[test]
    fn replay_after_resync_is_neither_dup_nor_gap() {
        let mut c = feed(&[0, 1, 2, 3, 6, 7]); // gap 4..6
        c.resync();
        // The full state restarts at a keyframe (seq 2) and runs past the old high.
        for s in [2, 3, 4, 5, 6, 7, 8, 9] {
            assert_eq!(c.observe(s), Arrival::InOrder, "seq {s}");
        }
        assert_eq!(c.observe(9), Arrival::Duplicate);
        let n = c.finish(10, Some(0));
        assert_eq!(
            (n.resyncs, n.gaps, n.dups, n.reorders, n.lost),
            (1, 1, 1, 0, 0)
        );
    }

    #[test]
    fn first_sequence_after_resync_may_jump_without_a_gap() {
        let mut c = feed(&[0, 1]);
        c.resync();
        assert_eq!(c.observe(5), Arrival::InOrder);
        assert_eq!(c.observe(6), Arrival::InOrder);
        let n = c.finish(7, Some(0));
        // The skipped entries are still not received: a resync costs them.
        assert_eq!((n.gaps, n.lost, n.resyncs), (0, 3, 1));
    }

    #[test]
    fn earlier_arrival_below_the_first_widens_the_window() {
        let mut c = feed(&[5, 6]);
        assert_eq!(c.observe(3), Arrival::Late);
        let n = c.finish(7, None);
        assert_eq!((n.expected, n.received, n.lost), (4, 3, 1));
    }

    #[test]
    fn counts_merge_by_adding() {
        let mut a = feed(&[0, 2]).finish(3, Some(0));
        let b = feed(&[0, 0, 1]).finish(2, Some(0));
        a.merge(&b);
        assert_eq!(
            a,
            SeqCounts {
                received: 4,
                expected: 5,
                lost: 1,
                gaps: 1,
                dups: 1,
                reorders: 0,
                resyncs: 0
            }
        );
    }
}
