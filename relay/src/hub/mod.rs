//! The node's fan-out: one registry of the rooms this node has live subscribers in, each with its
//! broadcast ring, the byte count that measures how far a receiver is behind, and (cluster mode)
//! the byte bound on what the ring holds.
//!
//! A backend decides *what* is delivered and in which order: the memory store under its room lock
//! as it appends, the Redis bus after ordering pub/sub messages by offset and filling gaps from
//! the stream. It hands each entry to [`Hub::deliver`] (and presence, relayed guidance, recovery
//! and closing to [`Hub::send`]) and knows nothing of WebSocket frames or receivers. The hub
//! stamps the running byte count, puts the entry on the room's ring, and the sessions of the room
//! read it from their [`Subscription`]; an [`Entry`] caches its encoded frames per codec, so each
//! entry is encoded once per codec on this node however many viewers it has.
//!
//! Lag: a receiver more than the ring's length behind gets `Lagged`; one whose next entry is more
//! than `--max-queue-bytes` behind the newest is told so by [`Subscription::behind`]; in cluster
//! mode the ring releases entries past that bound ([`window`]). Either way the session recovers
//! from the log (`session`), which is what makes a slow viewer cost the node a bounded amount.
//!
//! What the hub does not own: storage and offsets (`store`), the pub/sub connection and the
//! ordering of what it receives (`store::redis`), sockets and per-viewer state (`session`).

pub mod entry;
pub mod relayed;
pub mod window;

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use assist_relay_proto::Member;
use dashmap::DashMap;
use prometheus::IntGauge;
use tokio::sync::broadcast;

pub use entry::{chunk_data_bytes, encode_message, now_us, Entry, EntryBody, EventJson};
pub use relayed::{Relayed, RelayedBody};

/// Live traffic of one room.
///
/// Every slot of a room's broadcast ring holds one of these, allocated up front whether the room
/// is busy or idle, so it is kept to a tag and a pointer (16 bytes; a slot is 40).
#[derive(Debug, Clone)]
pub enum RoomMsg {
    /// A newly stored entry.
    Entry(Arc<Entry>),
    /// Cluster mode: a newly stored entry, released once it is more than the room's live byte
    /// bound behind the newest (see [`window`]); a receiver that still needs it then recovers
    /// from the log.
    Held(Arc<window::HeldEntry>),
    /// A participant's first connection entered the room.
    Joined(Arc<Member>),
    /// A participant's last connection left the room.
    Left(Arc<Member>),
    /// The live stream may have missed entries (the broker lost its connection, or its inbox
    /// overflowed, or the room's log was lost): every member recovers from the log.
    Recover,
    /// The room was closed: every member is disconnected with `room_closed`.
    Closed,
    /// Guidance or signaling, relayed in stream order without being stored (see
    /// [`relayed`]).
    Relay(Arc<Relayed>),
}

/// A live subscription to one room. Dropping it unsubscribes.
pub struct Subscription {
    /// Entries and presence, in order. A receiver that falls more than the channel capacity behind
    /// gets `Lagged` and must recover through the log's catch-up.
    pub rx: broadcast::Receiver<RoomMsg>,
    /// Payload bytes broadcast so far on this subscription's channel. A receiver whose next entry
    /// has `cum_bytes` far below this is that many bytes behind.
    pub head_bytes: Arc<AtomicU64>,
    /// Kept alive while subscribed; the hub and the backend unsubscribe when it drops.
    pub guard: Box<dyn Send + Sync>,
}

impl Subscription {
    /// How many payload bytes the room's newest entry on this node is ahead of `e`: the receiver's
    /// backlog when `e` is the next entry it reads.
    pub fn behind(&self, e: &Entry) -> u64 {
        self.head_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(e.cum_bytes)
    }
}

/// How a hub rings its rooms' live traffic.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Slots of each room's broadcast ring (`--room-buffer`).
    pub buffer: usize,
    /// Cluster mode: payload bytes of live entries a room's ring holds besides the newest one,
    /// and the gauge of what every room holds (`relay_redis_live_bytes`). Embedded mode: `None`,
    /// the ring's entries are the log's own and cost nothing extra.
    pub held: Option<(u64, IntGauge)>,
}

/// One room with live subscribers on this node.
pub struct Room {
    tx: broadcast::Sender<RoomMsg>,
    sent_bytes: Arc<AtomicU64>,
    window: Option<Mutex<window::Window>>,
    subscribers: AtomicUsize,
    /// What the backend keeps per subscribed room (the Redis bus: inbox, ordering state, pump),
    /// dropped with the room when its last subscriber goes.
    feed: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Room {
    /// Puts a stored entry on the ring: stamps the running byte count (and, in cluster mode, holds
    /// it within the byte bound). Returns the entry as the ring carries it.
    pub fn deliver(&self, entry: Entry) -> Arc<Entry> {
        let size = entry.body.size() as u64;
        let cum = self.sent_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let entry = Arc::new(entry.with_cum_bytes(cum));
        let msg = match &self.window {
            Some(w) => RoomMsg::Held(lock(w).hold(entry.clone())),
            None => RoomMsg::Entry(entry.clone()),
        };
        let _ = self.tx.send(msg);
        entry
    }

    /// Sends presence, relayed guidance, a recovery or the room's closing.
    pub fn send(&self, msg: RoomMsg) {
        let _ = self.tx.send(msg);
    }

    /// The backend's per-room state, made by `init` on first use.
    pub fn feed<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.feed.get_or_init(|| Box::new(init())).downcast_ref()
    }

    /// The backend's per-room state, if made.
    pub fn feed_if<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.feed.get()?.downcast_ref()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node's one room registry (rooms with live subscribers here) and its fan-out.
pub struct Hub {
    rooms: DashMap<String, Arc<Room>>,
    config: HubConfig,
    /// `relay_rooms`, once the node has its metrics.
    gauge: OnceLock<IntGauge>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: DashMap::new(),
            config,
            gauge: OnceLock::new(),
        })
    }

    /// Reports the number of rooms into `gauge` (`relay_rooms`) from now on.
    pub fn report_rooms(&self, gauge: IntGauge) {
        gauge.set(self.rooms.len() as i64);
        let _ = self.gauge.set(gauge);
    }

    /// Subscribes to `room`'s live traffic on this node. Returns the subscription and the room,
    /// whose feed the backend sets up on first use.
    pub fn subscribe(self: &Arc<Self>, room: &str) -> (Subscription, Arc<Room>) {
        // Counted under the shard's lock, which a leaving guard takes to check the count, so a
        // room is never removed between being found here and being joined.
        let r = {
            let r = self.rooms.entry(room.to_owned()).or_insert_with(|| {
                Arc::new(Room {
                    tx: broadcast::channel(self.config.buffer.max(1)).0,
                    sent_bytes: Arc::new(AtomicU64::new(0)),
                    window: self.config.held.as_ref().map(|(bytes, gauge)| {
                        Mutex::new(window::Window::new(
                            self.config.buffer,
                            *bytes,
                            gauge.clone(),
                        ))
                    }),
                    subscribers: AtomicUsize::new(0),
                    feed: OnceLock::new(),
                })
            });
            r.subscribers.fetch_add(1, Ordering::SeqCst);
            r.clone()
        };
        let sub = Subscription {
            rx: r.tx.subscribe(),
            head_bytes: r.sent_bytes.clone(),
            guard: Box::new(HubGuard {
                hub: self.clone(),
                room: room.to_owned(),
                of: Arc::downgrade(&r),
            }),
        };
        self.report();
        (sub, r)
    }

    /// The room, if it has live subscribers on this node.
    pub fn get(&self, room: &str) -> Option<Arc<Room>> {
        self.rooms.get(room).map(|r| r.clone())
    }

    /// Puts a stored entry on `room`'s ring if anyone here listens; returns it as shared.
    pub fn deliver(&self, room: &str, entry: Entry) -> Arc<Entry> {
        match self.rooms.get(room) {
            Some(r) => r.deliver(entry),
            None => Arc::new(entry),
        }
    }

    /// Sends `msg` to `room`'s subscribers on this node, if any.
    pub fn send(&self, room: &str, msg: RoomMsg) {
        if let Some(r) = self.rooms.get(room) {
            r.send(msg);
        }
    }

    /// Calls `f` with every room that has live subscribers here (a snapshot: `f` may use the hub).
    pub fn each(&self, mut f: impl FnMut(&str, &Room)) {
        let rooms: Vec<(String, Arc<Room>)> = self
            .rooms
            .iter()
            .map(|r| (r.key().clone(), r.value().clone()))
            .collect();
        for (name, room) in &rooms {
            f(name, room);
        }
    }

    /// Live subscribers of `room` on this node.
    pub fn subscribers(&self, room: &str) -> usize {
        self.rooms
            .get(room)
            .map_or(0, |r| r.subscribers.load(Ordering::SeqCst))
    }

    /// Rooms with live subscribers on this node.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room has live subscribers here.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    fn report(&self) {
        if let Some(g) = self.gauge.get() {
            g.set(self.rooms.len() as i64);
        }
    }
}

/// Leaves the room's subscribers on drop; the last one removes the room (and its backend feed).
struct HubGuard {
    hub: Arc<Hub>,
    room: String,
    of: std::sync::Weak<Room>,
}

impl Drop for HubGuard {
    fn drop(&mut self) {
        let removed = self.hub.rooms.remove_if(&self.room, |_, r| {
            // Only the room this guard joined: a removed-and-recreated room is not ours to count.
            std::ptr::eq(Arc::as_ptr(r), self.of.as_ptr())
                && r.subscribers.fetch_sub(1, Ordering::SeqCst) == 1
        });
        drop(removed);
        self.hub.report();
    }
}
