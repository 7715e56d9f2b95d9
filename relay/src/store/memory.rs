//! Embedded mode: every room log, subscription and presence set lives in this process.
//!
//! Each room is one `RoomState` behind a `std::sync::Mutex` that is never held across an `.await`
//! (nothing here awaits). `append` assigns the offset, stores the entry and broadcasts it under that
//! lock, which gives the ordering contract of [`super`] for free.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assist_relay_proto::{EventKind, Member};
use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::broadcast;

use super::plan::{plan, Bounds};
use super::{
    Appended, Broker, CatchUp, CatchUpRequest, Entered, Entry, EntryBody, LogConfig, NewEntry,
    RoomLog, RoomMsg, StoreError, Subscription,
};

/// In-process room store (embedded mode).
pub struct MemoryStore {
    rooms: DashMap<String, Arc<Mutex<RoomState>>>,
    config: LogConfig,
}

struct RoomState {
    epoch: Arc<str>,
    head: u64,
    /// Every entry with offset >= `floor`, in offset order.
    log: VecDeque<Arc<Entry>>,
    log_bytes: usize,
    floor: u64,
    /// Offset of a Meta not yet followed by its FullSnapshot.
    pending_meta: Option<u64>,
    /// The most recent `chat_retain` chat messages; every chat with offset >= `chat_floor` is here.
    chats: VecDeque<Arc<Entry>>,
    chat_floor: u64,
    dedup: HashMap<(String, String), u64>,
    dedup_order: VecDeque<(String, String)>,
    tx: broadcast::Sender<RoomMsg>,
    /// Payload bytes broadcast so far (see `Subscription::head_bytes`).
    sent_bytes: Arc<AtomicU64>,
    presence: HashMap<String, (Member, HashSet<u64>)>,
    last_activity: Instant,
}

fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

fn lock(room: &Mutex<RoomState>) -> MutexGuard<'_, RoomState> {
    // A panic while holding the lock leaves consistent-enough state (every mutation is a push or a
    // pop); keep serving rather than poisoning the room forever.
    room.lock().unwrap_or_else(|p| p.into_inner())
}

impl RoomState {
    fn new(buffer: usize) -> RoomState {
        RoomState {
            epoch: new_epoch(),
            head: 0,
            log: VecDeque::new(),
            log_bytes: 0,
            floor: 1,
            pending_meta: None,
            chats: VecDeque::new(),
            chat_floor: 1,
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            tx: broadcast::channel(buffer.max(1)).0,
            sent_bytes: Arc::new(AtomicU64::new(0)),
            presence: HashMap::new(),
            last_activity: Instant::now(),
        }
    }

    /// Drops log entries below `offset`; chat stays in the chat ring.
    fn trim_below(&mut self, offset: u64) {
        while let Some(front) = self.log.front() {
            if front.offset >= offset {
                break;
            }
            self.log_bytes -= front.body.size();
            self.log.pop_front();
        }
        self.floor = self.floor.max(offset);
    }

    /// Trims the oldest entries while the log is over `max` bytes. Returns whether it trimmed.
    fn enforce_byte_cap(&mut self, max: usize) -> bool {
        let mut trimmed = false;
        while self.log_bytes > max && self.log.len() > 1 {
            if let Some(front) = self.log.pop_front() {
                self.log_bytes -= front.body.size();
            }
            self.floor = self.log.front().map_or(self.head + 1, |e| e.offset);
            trimmed = true;
        }
        trimmed
    }

    fn members(&self) -> Vec<Member> {
        let mut m: Vec<Member> = self.presence.values().map(|(m, _)| m.clone()).collect();
        m.sort_by(|a, b| a.id.cmp(&b.id));
        m
    }

    fn recent_chats(&self, below: u64, after: Option<u64>, limit: usize) -> Vec<Arc<Entry>> {
        let mut out: Vec<Arc<Entry>> = self
            .chats
            .iter()
            .rev()
            .filter(|c| c.offset < below && after.is_none_or(|a| c.offset > a))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

impl MemoryStore {
    /// An empty store. Call [`MemoryStore::spawn_sweeper`] to drop rooms idle past their TTL.
    pub fn new(config: LogConfig) -> Arc<MemoryStore> {
        Arc::new(MemoryStore {
            rooms: DashMap::new(),
            config,
        })
    }

    /// Drops rooms that have had no members, subscribers or appends for `empty_room_ttl`.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = (self.config.empty_room_ttl / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                let ttl = store.config.empty_room_ttl;
                store.rooms.retain(|_, room| {
                    let st = lock(room);
                    !(st.presence.is_empty()
                        && st.tx.receiver_count() == 0
                        && st.last_activity.elapsed() >= ttl)
                });
            }
        })
    }

    fn room(&self, room: &str) -> Arc<Mutex<RoomState>> {
        if let Some(r) = self.rooms.get(room) {
            return r.clone();
        }
        self.rooms
            .entry(room.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(RoomState::new(self.config.room_buffer))))
            .clone()
    }

    /// Number of rooms held (for metrics).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Forgets a room entirely, as if its log had been lost; the next use starts a new epoch.
    /// Tests use it to exercise resync after an epoch change.
    pub fn drop_room(&self, room: &str) {
        self.rooms.remove(room);
    }
}

#[async_trait]
impl RoomLog for MemoryStore {
    async fn append(&self, room: &str, new: NewEntry) -> Result<Appended, StoreError> {
        let room = self.room(room);
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        if let Some(key) = &new.dedup {
            if let Some(&offset) = st.dedup.get(key) {
                return Ok(Appended {
                    offset,
                    duplicate: true,
                });
            }
        }
        st.head += 1;
        let offset = st.head;
        let size = new.body.size() as u64;
        let cum = st.sent_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let entry = Arc::new(Entry::new(offset, st.epoch.clone(), new.body).with_cum_bytes(cum));
        match &entry.body {
            EntryBody::Event {
                kind: EventKind::Meta,
                ..
            } => st.pending_meta = Some(offset),
            EntryBody::Event {
                kind: EventKind::FullSnapshot,
                ..
            } => {
                let start = st.pending_meta.take().unwrap_or(offset);
                st.trim_below(start);
            }
            EntryBody::Chat { .. } => {
                st.chats.push_back(entry.clone());
                if st.chats.len() > self.config.chat_retain.max(1) {
                    if let Some(old) = st.chats.pop_front() {
                        st.chat_floor = old.offset + 1;
                    }
                }
            }
            EntryBody::Event { .. } => {}
        }
        st.log_bytes += entry.body.size();
        st.log.push_back(entry.clone());
        if st.enforce_byte_cap(self.config.max_log_bytes) {
            tracing::debug!(
                floor = st.floor,
                "room log over its byte cap; oldest events trimmed"
            );
        }
        if let Some(key) = new.dedup {
            st.dedup.insert(key.clone(), offset);
            st.dedup_order.push_back(key);
            if st.dedup_order.len() > self.config.dedup_window {
                if let Some(old) = st.dedup_order.pop_front() {
                    st.dedup.remove(&old);
                }
            }
        }
        // No receivers is fine: nobody is watching this room on this node.
        let _ = st.tx.send(RoomMsg::Entry(entry));
        Ok(Appended {
            offset,
            duplicate: false,
        })
    }

    async fn catch_up(&self, room: &str, req: CatchUpRequest) -> Result<CatchUp, StoreError> {
        let room = self.room(room);
        let st = lock(&room);
        let bounds = Bounds {
            epoch: st.epoch.to_string(),
            head: st.head,
            floor: st.floor,
            chat_floor: st.chat_floor,
        };
        let p = plan(&bounds, &req);
        let mut entries: Vec<Arc<Entry>> = match p.chats {
            Some(r) => st.recent_chats(r.before, Some(r.after), r.limit),
            None => Vec::new(),
        };
        if let Some(after) = p.log_after {
            entries.extend(st.log.iter().filter(|e| e.offset > after).cloned());
        }
        Ok(CatchUp {
            epoch: st.epoch.clone(),
            head: st.head,
            mode: p.mode,
            reason: p.reason,
            entries,
        })
    }
}

#[async_trait]
impl Broker for MemoryStore {
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError> {
        let room = self.room(room);
        let st = lock(&room);
        Ok(Subscription {
            rx: st.tx.subscribe(),
            head_bytes: st.sent_bytes.clone(),
            guard: Box::new(()),
        })
    }

    async fn enter(
        &self,
        room: &str,
        member: &Member,
        conn: u64,
        max_members: usize,
    ) -> Result<Entered, StoreError> {
        let room = self.room(room);
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        let first = !st.presence.contains_key(&member.id);
        if first && st.presence.len() >= max_members {
            return Ok(Entered::Full);
        }
        st.presence
            .entry(member.id.clone())
            .or_insert_with(|| (member.clone(), HashSet::new()))
            .1
            .insert(conn);
        if first {
            let _ = st.tx.send(RoomMsg::Joined(member.clone()));
        }
        Ok(Entered::Members(st.members()))
    }

    async fn exit(&self, room: &str, member: &Member, conn: u64) -> Result<(), StoreError> {
        let Some(room) = self.rooms.get(room).map(|r| r.clone()) else {
            return Ok(());
        };
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        let last = match st.presence.get_mut(&member.id) {
            Some((_, conns)) => {
                conns.remove(&conn);
                conns.is_empty()
            }
            None => false,
        };
        if last {
            st.presence.remove(&member.id);
            let _ = st.tx.send(RoomMsg::Left(member.clone()));
        }
        Ok(())
    }

    async fn healthy(&self) -> bool {
        true
    }
}
