//! Embedded mode's staged uploads: every upload being staged, slice by slice, and the bytes
//! staged in all, per room and per (room, sender), against the node's and the shares' bounds.
//! Plain data under the store's lock; it does not know rooms or presence (the store checks
//! those before [`Staging::release`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{ChunkIn, Staged, UploadLimits};

pub(super) type UploadKey = (String, String, String);

/// Every staged upload, and their bytes: in all, per room and per (room, sender).
#[derive(Default)]
pub(super) struct Staging {
    by_key: HashMap<UploadKey, Upload>,
    bytes: u64,
    by_room: HashMap<String, u64>,
    by_sender: HashMap<(String, String), u64>,
    /// The store's measure of its memory budget, kept in step with `bytes`.
    used: Arc<AtomicU64>,
}

impl Staging {
    /// Nothing staged; staged bytes also count in `used`.
    pub(super) fn new(used: Arc<AtomicU64>) -> Staging {
        Staging {
            used,
            ..Staging::default()
        }
    }

    /// Counts `len` more (or, with `add` false, fewer) staged bytes of `key`.
    fn tally(&mut self, key: &UploadKey, len: u64, add: bool) {
        let room = self.by_room.entry(key.0.clone()).or_default();
        let sender = self
            .by_sender
            .entry((key.0.clone(), key.1.clone()))
            .or_default();
        if add {
            *room += len;
            *sender += len;
            self.bytes += len;
            self.used.fetch_add(len, Ordering::Relaxed);
        } else {
            *room -= len;
            *sender -= len;
            self.bytes -= len;
            self.used.fetch_sub(len, Ordering::Relaxed);
        }
        if *sender == 0 {
            self.by_sender.remove(&(key.0.clone(), key.1.clone()));
        }
        if self.by_room.get(&key.0) == Some(&0) {
            self.by_room.remove(&key.0);
        }
    }

    pub(super) fn remove(&mut self, key: &UploadKey) {
        if let Some(u) = self.by_key.remove(key) {
            self.tally(key, u.bytes, false);
        }
    }

    pub(super) fn expire(&mut self, now: Instant) {
        let dead: Vec<UploadKey> = self
            .by_key
            .iter()
            .filter(|(_, u)| u.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            self.remove(&k);
        }
    }
}

/// An upload being staged.
struct Upload {
    count: u32,
    size: u64,
    digest: String,
    chunks: HashMap<u32, Vec<u8>>,
    bytes: u64,
    expires: Instant,
}

impl Staging {
    /// Stages one slice (see [`crate::store::Uploads::stage_chunk`]). `max_staged`: bytes the
    /// node stages at most; `over_budget(len, sender_after)`: whether the node's memory budget
    /// refuses `len` more bytes.
    pub(super) fn stage(
        &mut self,
        room: &str,
        c: ChunkIn<'_>,
        limits: UploadLimits,
        max_staged: u64,
        over_budget: impl Fn(u64, u64) -> bool,
    ) -> Staged {
        let now = Instant::now();
        self.expire(now);
        let key = (room.to_owned(), c.sender.to_owned(), c.upload.to_owned());
        let first = !self.by_key.contains_key(&key);
        if first {
            let mine = self
                .by_key
                .keys()
                .filter(|(r, s, _)| r == room && s == c.sender)
                .count();
            if mine >= limits.max_uploads {
                return Staged::TooMany;
            }
            self.by_key.insert(
                key.clone(),
                Upload {
                    count: c.count,
                    size: c.size,
                    digest: c.digest.to_owned(),
                    chunks: HashMap::new(),
                    bytes: 0,
                    expires: now + limits.ttl,
                },
            );
        }
        let staged_total = self.bytes;
        let room_staged = self.by_room.get(room).copied().unwrap_or(0);
        let mine_staged = self
            .by_sender
            .get(&(key.0.clone(), key.1.clone()))
            .copied()
            .unwrap_or(0);
        let Some(up) = self.by_key.get_mut(&key) else {
            return Staged::Partial { first };
        };
        if up.count != c.count || up.size != c.size || up.digest != c.digest {
            self.remove(&key);
            return Staged::Mismatch("count, size or digest differs from the upload's first slice");
        }
        up.expires = now + limits.ttl;
        if !up.chunks.contains_key(&c.index) {
            let len = c.data.len() as u64;
            if up.bytes + len > up.size {
                self.remove(&key);
                return Staged::Mismatch("the slices add up to more than size");
            }
            if staged_total + len > max_staged
                || room_staged + len > limits.room_share
                || mine_staged + len > limits.participant_share
                || over_budget(len, mine_staged + len)
            {
                // The node's staging, the room's or the sender's share is full: refuse the slice
                // (retryable) and keep the rest.
                if up.chunks.is_empty() {
                    self.remove(&key);
                }
                return Staged::TooMany;
            }
            up.bytes += len;
            up.chunks.insert(c.index, c.data.to_vec());
            self.tally(&key, len, true);
        }
        let Some(up) = self.by_key.get(&key) else {
            return Staged::Partial { first };
        };
        if up.chunks.len() < up.count as usize {
            return Staged::Partial { first };
        }
        if up.bytes != up.size {
            self.remove(&key);
            return Staged::Mismatch("the slices do not add up to size");
        }
        let mut whole = Vec::with_capacity(up.size as usize);
        for i in 0..up.count {
            if let Some(part) = up.chunks.get(&i) {
                whole.extend_from_slice(part);
            }
        }
        Staged::Complete(whole)
    }

    /// The sender's unfinished uploads in `room` expire after `grace` (at once when zero).
    pub(super) fn release(&mut self, room: &str, sender: &str, grace: Duration) {
        let now = Instant::now();
        for ((r, s, _), u) in self.by_key.iter_mut() {
            if r == room && s == sender {
                u.expires = u.expires.min(now + grace);
            }
        }
        self.expire(now);
    }
}
