//! The per-room masking state: [`RoomMask`] itself, the ids that matter on the current page
//! (kind and flag bits, inferred dropped ranges, the overflow past [`MAX_TRACKED_IDS`](super::MAX_TRACKED_IDS)), and the
//! salted hashes of typed values that make echoes maskable.
//!
//! The public API (`mask`, `observe`, ...) is in the parent module; the walks that fill this
//! state are `walk` and `mutation`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::dom::{is_value_input, F_BLOCKED, F_DROPPED, F_VISIBLE, K_PASSWORD};
use super::policy::{MaskClasses, MaskPolicy, MAX_TYPED_VALUES};

/// Per-room masking state.
pub struct RoomMask {
    pub(super) policy: MaskPolicy,
    pub(super) key: [u8; 32],
    /// Ids that matter on the current page, with their kind and flags.
    pub(super) nodes: HashMap<u64, u8>,
    /// Inclusive id ranges inferred dropped while observing (sorted, disjoint); see `observe`.
    pub(super) ranges: Vec<(u64, u64)>,
    /// The state hit [`MAX_TRACKED_IDS`](super::MAX_TRACKED_IDS) on this page: unknown ids are treated as masked.
    pub(super) overflow: bool,
    /// Rebuilding from stored events: record no typed values, infer dropped ranges.
    pub(super) observing: bool,
    /// Hashes of typed values, and their insertion order (for the cap).
    pub(super) typed: HashSet<u64>,
    pub(super) typed_order: VecDeque<u64>,
    /// Hashes recorded since the last `take_new_typed`.
    pub(super) new_typed: Vec<u64>,
    pub(super) id_cap: usize,
    /// The class names that mark blocked, masked and ignored elements.
    pub(super) classes: Arc<MaskClasses>,
}

impl fmt::Debug for RoomMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomMask")
            .field("policy", &self.policy)
            .field("ids", &self.nodes.len())
            .field("ranges", &self.ranges.len())
            .field("overflow", &self.overflow)
            .field("typed", &self.typed.len())
            .finish_non_exhaustive()
    }
}

impl RoomMask {
    /// Forgets the ids of the previous page (not the typed values).
    pub(super) fn new_page(&mut self) {
        if self.nodes.capacity() > 4096 {
            self.nodes = HashMap::new();
        } else {
            self.nodes.clear();
        }
        self.ranges.clear();
        self.overflow = false;
    }

    /// Whether the `value` of an element of this kind/flags is masked (`kind` 0: unknown).
    pub(super) fn value_masked(&self, kind: u8, flags: u8) -> bool {
        if flags & F_BLOCKED != 0 && (kind == 0 || is_value_input(kind)) {
            return true;
        }
        match self.policy {
            MaskPolicy::None => false,
            MaskPolicy::Passwords => kind == 0 || kind == K_PASSWORD,
            MaskPolicy::Inputs | MaskPolicy::InputsText => kind == 0 || is_value_input(kind),
        }
    }

    /// Kind and flags of an id (0: unknown).
    pub(super) fn flags(&self, id: u64) -> u8 {
        let bits = self.nodes.get(&id).copied().unwrap_or(0);
        if bits & F_VISIBLE == 0 && self.in_ranges(id) {
            bits | F_DROPPED
        } else {
            bits
        }
    }

    /// Records an id's kind and flags (`fresh`: during a snapshot walk, nothing to overwrite).
    pub(super) fn set_node(&mut self, id: u64, bits: u8, fresh: bool) {
        let mut bits = bits;
        if !fresh && bits & F_DROPPED == 0 && self.in_ranges(id) {
            bits |= F_VISIBLE;
        }
        if bits == 0 {
            if !fresh {
                self.nodes.remove(&id);
            }
            return;
        }
        let len = self.nodes.len();
        match self.nodes.entry(id) {
            Entry::Occupied(mut e) => {
                e.insert(bits);
            }
            Entry::Vacant(e) => {
                if len >= self.id_cap {
                    self.overflow = true;
                } else {
                    e.insert(bits);
                }
            }
        }
    }

    /// While observing a snapshot: the ids between a blocked element `b` and the next node were
    /// its dropped descendants.
    pub(super) fn add_range(&mut self, b: u64, next: u64) {
        if next > b.saturating_add(1) {
            if self.ranges.len() >= self.id_cap {
                self.overflow = true;
            } else {
                self.ranges.push((b + 1, next - 1));
            }
        }
    }

    /// Sorts and merges the ranges after a snapshot.
    pub(super) fn finish_ranges(&mut self) {
        if self.ranges.len() < 2 {
            return;
        }
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.ranges = merged;
    }

    pub(super) fn in_ranges(&self, id: u64) -> bool {
        if self.ranges.is_empty() {
            return false;
        }
        let i = self.ranges.partition_point(|r| r.0 <= id);
        i > 0 && self.ranges[i - 1].1 >= id
    }

    /// The salted hash of a typed value.
    pub(super) fn hash(&self, value: &str) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(value.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// Remembers the hash of a typed value (trimmed, at least 2 chars, not already masked).
    pub(super) fn remember_typed(&mut self, value: &str) {
        let v = value.trim();
        if v.chars().nth(1).is_none() || v.chars().all(|c| c == '*') {
            return;
        }
        let h = self.hash(v);
        self.insert_typed(h, true);
    }

    pub(super) fn insert_typed(&mut self, h: u64, new: bool) {
        if !self.typed.insert(h) {
            return;
        }
        self.typed_order.push_back(h);
        if self.typed_order.len() > MAX_TYPED_VALUES {
            if let Some(old) = self.typed_order.pop_front() {
                self.typed.remove(&old);
            }
        }
        if new {
            self.new_typed.push(h);
            if self.new_typed.len() > MAX_TYPED_VALUES {
                let excess = self.new_typed.len() - MAX_TYPED_VALUES;
                self.new_typed.drain(..excess);
            }
        }
    }

    /// Whether any text can echo a typed value (there are some, and the policy masks them).
    pub(super) fn may_echo(&self) -> bool {
        !self.typed.is_empty() && self.policy.all_inputs()
    }

    /// Whether a text echoes a typed value (only under `inputs` / `inputs+text`).
    pub(super) fn is_echo(&self, text: &str) -> bool {
        if !self.may_echo() {
            return false;
        }
        let t = text.trim();
        t.chars().nth(1).is_some() && self.typed.contains(&self.hash(t))
    }
}
