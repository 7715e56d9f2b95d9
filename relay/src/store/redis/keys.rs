//! Key and channel names of one room in Redis. This module owns the layout below and nothing
//! else: what is stored under each key is read and written by the modules that use it.
//!
//! # Keys (all of one room share the hash tag `{room}`, so they live on one Redis Cluster slot)
//! - `ar:{R}:meta` hash: `epoch`, `head` (last offset), `floor` (the keyframe's first offset),
//!   `chat_floor`, `meta` (a Meta waiting for its FullSnapshot), the byte counts of the cap, and
//!   the rates' theoretical arrival times across nodes (`r:m:<sub>`, `r:b:<sub>`, `r:m`, `r:b`;
//!   µs), all read and written once per append (`scripts/append.lua`).
//! - `ar:{R}:log` stream: every entry from `floor` on, stream id `<offset>-0`.
//! - `ar:{R}:chat` stream: the last `--chat-retain` chat messages, same ids.
//! - `ar:{R}:d:<sender>\x1f<id>` string: offset of an idempotent send, with a TTL.
//! - `ar:{R}:presence` sorted set: one member per connection, scored by its expiry time.
//! - `ar:{R}:pages` list: the page timeline, `<offset>\x1f<page json>`, the last 200.
//! - `ar:{R}:typed` set: hashes of typed values (masking of their echoes).
//! - `ar:{R}:up:<sender>\x1f<upload>` hash: a staged upload (`m` count|size|digest, `b` bytes,
//!   `n` slices, `c<i>` slice i), expiring `--upload-ttl` after its last slice; and
//!   `ar:{R}:ups:<sender>` sorted set: that sender's uploads in progress, scored by expiry.
//! - `ar:{R}:stg` hash and `ar:{R}:stx` sorted set: the room's staging tally (see
//!   `scripts/staging.lua`).
//! - channel `ar:{R}:ch`: live entries and presence changes.
//!
//! The room directory adds to `meta` the fields `opened` (first entry, ms), `j:<sub>` (when that
//! participant's first connection present entered, ms) and `aseen` (an agent last present, ms),
//! and keeps one key outside any room: [`LIVE_ROOMS`].

/// `ar:rooms` sorted set (all scores 0, so ordered by room id): rooms that may be live. A node
/// adds a room when a member enters and again on every presence refresh; closing or removing the
/// room takes it out, and the listing drops rooms whose keys are gone. Not hash-tagged: on a
/// Redis Cluster it lives on one slot of its own.
pub(super) const LIVE_ROOMS: &str = "ar:rooms";

/// Key names of one room.
pub(super) struct Keys {
    pub(super) meta: String,
    pub(super) log: String,
    pub(super) chat: String,
    pub(super) presence: String,
    pub(super) pages: String,
    pub(super) typed: String,
    pub(super) channel: String,
    room: String,
}

impl Keys {
    pub(super) fn of(room: &str) -> Keys {
        Keys {
            meta: format!("ar:{{{room}}}:meta"),
            log: format!("ar:{{{room}}}:log"),
            chat: format!("ar:{{{room}}}:chat"),
            presence: format!("ar:{{{room}}}:presence"),
            pages: format!("ar:{{{room}}}:pages"),
            typed: format!("ar:{{{room}}}:typed"),
            channel: format!("ar:{{{room}}}:ch"),
            room: room.to_owned(),
        }
    }

    pub(super) fn dedup(&self, sender: &str, id: &str) -> String {
        format!("ar:{{{}}}:d:{sender}\x1f{id}", self.room)
    }

    /// The key `append` is given when the entry has no idempotency key (never written).
    pub(super) fn no_dedup(&self) -> String {
        format!("ar:{{{}}}:d:", self.room)
    }

    pub(super) fn upload(&self, sender: &str, upload: &str) -> String {
        format!("ar:{{{}}}:up:{sender}\x1f{upload}", self.room)
    }

    /// The room's staging tally (`stg` hash, `stx` sorted set; see `scripts/staging.lua`).
    pub(super) fn staging(&self) -> (String, String) {
        (
            format!("ar:{{{}}}:stg", self.room),
            format!("ar:{{{}}}:stx", self.room),
        )
    }

    pub(super) fn uploads(&self, sender: &str) -> String {
        format!("ar:{{{}}}:ups:{sender}", self.room)
    }

    pub(super) fn room_of_channel(channel: &str) -> Option<&str> {
        channel.strip_prefix("ar:{")?.strip_suffix("}:ch")
    }

    /// The room of a meta key (`ar:{R}:meta`), as SCAN finds them.
    pub(super) fn room_of_meta(key: &str) -> Option<&str> {
        key.strip_prefix("ar:{")?.strip_suffix("}:meta")
    }
}
