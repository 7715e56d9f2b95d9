//! Cluster mode: a byte bound on what one room's live ring holds on a node.
//!
//! In embedded mode the ring's entries are the log's own, so the ring costs nothing extra. A
//! cluster node decodes each entry from pub/sub (or the stream) into memory only it holds, and a
//! broadcast slot keeps its entry until every receiver has read it or the slot is reused: behind
//! one slow receiver, a ring of `--room-buffer` slots of large entries would hold `--room-buffer`
//! times the largest entry per room. So the ring carries [`HeldEntry`] handles, and the room's
//! [`Window`] releases the entry of every handle more than `--max-queue-bytes` of payload behind
//! the newest one. A receiver that reaches a released entry is that far behind and recovers from
//! the log, as it would on a backlog over `--max-queue-bytes`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use prometheus::IntGauge;

use super::Entry;

/// A live entry as a cluster node's ring carries it.
#[derive(Debug)]
pub struct HeldEntry {
    /// The entry's offset, readable after the entry was released.
    pub offset: u64,
    size: u64,
    entry: Mutex<Option<Arc<Entry>>>,
    /// Payload bytes every handle of this node holds (`relay_redis_live_bytes`).
    gauge: IntGauge,
}

impl HeldEntry {
    /// The entry, unless the window released it.
    pub fn entry(&self) -> Option<Arc<Entry>> {
        self.entry.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn release(&self) {
        let taken = self.entry.lock().unwrap_or_else(|p| p.into_inner()).take();
        if taken.is_some() {
            self.gauge.sub(self.size as i64);
        }
    }
}

impl Drop for HeldEntry {
    fn drop(&mut self) {
        self.release();
    }
}

/// The handles of one room's newest entries on this node.
pub(super) struct Window {
    held: VecDeque<(Weak<HeldEntry>, u64)>,
    bytes: u64,
    max_len: usize,
    max_bytes: u64,
    gauge: IntGauge,
}

impl Window {
    pub(super) fn new(max_len: usize, max_bytes: u64, gauge: IntGauge) -> Window {
        Window {
            held: VecDeque::new(),
            bytes: 0,
            max_len: max_len.max(1),
            max_bytes,
            gauge,
        }
    }

    /// Wraps `entry` for the ring, and releases the oldest entries past `max_bytes` of payload
    /// (never the newest one). Past `max_len` the ring has reused their slots already.
    pub(super) fn hold(&mut self, entry: Arc<Entry>) -> Arc<HeldEntry> {
        let size = entry.body.size() as u64;
        self.gauge.add(size as i64);
        let held = Arc::new(HeldEntry {
            offset: entry.offset,
            size,
            entry: Mutex::new(Some(entry)),
            gauge: self.gauge.clone(),
        });
        self.held.push_back((Arc::downgrade(&held), size));
        self.bytes += size;
        while self.held.len() > 1 && (self.held.len() > self.max_len || self.bytes > self.max_bytes)
        {
            if let Some((old, size)) = self.held.pop_front() {
                self.bytes -= size;
                if let Some(old) = old.upgrade() {
                    old.release();
                }
            }
        }
        held
    }
}
