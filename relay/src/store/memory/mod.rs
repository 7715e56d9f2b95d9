//! Embedded mode: every room log, subscription and presence set lives in this process.
//!
//! Each room is one `RoomState` behind a `std::sync::Mutex` that is never held across an `.await`
//! (nothing here awaits). `append` assigns the offset, stores the entry and broadcasts it under that
//! lock, which gives the ordering contract of [`super`] for free.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assist_relay_proto::{EventKind, Member, PageKind, PageRecord};
use async_trait::async_trait;
use dashmap::DashMap;

mod staging;

use self::staging::Staging;
use super::cap;
use super::plan::{plan, Bounds};
use super::{
    Appended, Archival, Bus, CatchUp, CatchUpRequest, ChunkIn, Entry, EntryBody, LogConfig,
    LogState, NewEntry, PresenceChange, PresenceWatcher, RoomInfo, RoomLog, RoomMsg, Staged,
    StoreError, Subscription, TypedValues, UploadLimits, Uploads, MAX_PAGES, MAX_TYPED_HASHES,
};
use crate::hub::{Hub, HubConfig};

/// In-process room store (embedded mode).
pub struct MemoryStore {
    rooms: DashMap<String, Arc<Mutex<RoomState>>>,
    /// Staged uploads by (room, sender, upload id).
    uploads: Mutex<Staging>,
    config: LogConfig,
    /// Payload bytes of every room log plus every staged upload (the node's memory budget).
    used: Arc<AtomicU64>,
    /// The node's fan-out: appends are delivered to it under the room lock.
    hub: Arc<Hub>,
    watcher: std::sync::OnceLock<PresenceWatcher>,
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
    presence: HashMap<String, (Member, HashSet<u64>)>,
    /// A member has entered this room (its `room.opened` was reported).
    opened: bool,
    last_activity: Instant,
    /// Page timeline, oldest first, at most `MAX_PAGES`.
    pages: VecDeque<PageRecord>,
    /// Payload bytes of events after the keyframe.
    tail_bytes: u64,
    /// The keyframe is a native-page placeholder.
    native_keyframe: bool,
    /// Hashes of typed values (masking of echoes).
    typed: HashSet<u64>,
    /// Entries up to here are archived.
    archived: u64,
    /// Payload bytes from the keyframe's first offset on, and from a pending Meta on (see
    /// [`super::cap`]).
    key_bytes: u64,
    meta_bytes: Option<u64>,
    /// The node's `MemoryStore::used`, kept in step with `log_bytes`.
    used: Arc<AtomicU64>,
    /// Closed: no appends, no joins.
    sealed: bool,
    /// When the last customer connection left (None while one is present or none ever was).
    customer_left: Option<Instant>,
    /// What the room directory shows besides presence.
    seen: directory::Seen,
}

fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

fn lock(room: &Mutex<RoomState>) -> MutexGuard<'_, RoomState> {
    // A panic while holding the lock leaves consistent-enough state (every mutation is a push or a
    // pop); keep serving rather than poisoning the room forever.
    room.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for RoomState {
    fn drop(&mut self) {
        self.used
            .fetch_sub(self.log_bytes as u64, Ordering::Relaxed);
    }
}

impl RoomState {
    fn new(used: Arc<AtomicU64>) -> RoomState {
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
            presence: HashMap::new(),
            opened: false,
            last_activity: Instant::now(),
            pages: VecDeque::new(),
            tail_bytes: 0,
            native_keyframe: false,
            typed: HashSet::new(),
            archived: 0,
            sealed: false,
            customer_left: None,
            seen: Default::default(),
            key_bytes: 0,
            meta_bytes: None,
            used,
        }
    }

    /// Moves the keyframe floor to `offset`; with `keep`, entries below it stay until they are
    /// archived. Chat stays in the chat ring either way.
    fn trim_below(&mut self, offset: u64, keep: bool) {
        self.floor = self.floor.max(offset);
        let drop_below = if keep {
            self.floor.min(self.archived + 1)
        } else {
            self.floor
        };
        while let Some(front) = self.log.front() {
            if front.offset >= drop_below {
                break;
            }
            let size = front.body.size();
            self.log_bytes -= size;
            self.used.fetch_sub(size as u64, Ordering::Relaxed);
            self.log.pop_front();
        }
    }

    /// The cap's view of this room (see [`super::cap`]).
    fn counts(&self) -> cap::Counts {
        cap::Counts {
            key: self.key_bytes,
            meta: self.meta_bytes,
        }
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
        let used = Arc::new(AtomicU64::new(0));
        Arc::new(MemoryStore {
            rooms: DashMap::new(),
            uploads: Mutex::new(Staging::new(used.clone())),
            hub: Hub::new(HubConfig {
                buffer: config.room_buffer,
                held: None,
            }),
            config,
            used,
            watcher: Default::default(),
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
                let now = Instant::now();
                store
                    .uploads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .expire(now);
                let ttl = store.config.empty_room_ttl;
                store.rooms.retain(|name, room| {
                    let st = lock(room);
                    !(st.presence.is_empty()
                        && store.hub.subscribers(name) == 0
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
            .or_insert_with(|| Arc::new(Mutex::new(RoomState::new(self.used.clone()))))
            .clone()
    }

    /// Payload bytes of every room log and staged upload held (the memory budget's measure).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the node's memory budget refuses `size` more bytes in a room that would then hold
    /// `room_after`: only when the node is over its budget and the room over its fair share (the
    /// budget split evenly over the rooms held), so one room cannot starve the others.
    fn over_budget(&self, size: u64, room_after: u64) -> bool {
        let budget = self.config.max_memory_bytes;
        if budget == 0 || self.used.load(Ordering::Relaxed) + size <= budget {
            return false;
        }
        room_after > budget / self.rooms.len().max(1) as u64
    }

    /// Number of rooms held (for metrics).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Forgets a room entirely, as if its log had been lost; the next use starts a new epoch.
    /// Tests use it to exercise resync after an epoch change.
    pub fn drop_room(&self, room: &str) {
        self.rooms.remove(room);
        // Its subscribers here recover from the log, which now starts a new epoch.
        self.hub.send(room, RoomMsg::Recover);
    }
}

#[async_trait]
impl RoomLog for MemoryStore {
    async fn append(&self, room_id: &str, new: NewEntry) -> Result<Appended, StoreError> {
        let room = self.room(room_id);
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        if st.sealed {
            return Err(StoreError::Closed);
        }
        if let Some(key) = &new.dedup {
            if let Some(&offset) = st.dedup.get(key) {
                return Ok(Appended {
                    offset,
                    duplicate: true,
                    tail_bytes: st.tail_bytes,
                    native_keyframe: st.native_keyframe,
                });
            }
        }
        let size = new.body.size() as u64;
        let kind = match &new.body {
            EntryBody::Event { kind, .. } => Some(*kind),
            EntryBody::Chat { .. } => None,
        };
        let counts = st.counts();
        if cap::check(self.config.max_log_bytes as u64, counts, kind, size) == cap::Verdict::Refuse
        {
            return Err(StoreError::LogFull(cap::LOG_FULL));
        }
        let room_after = match kind {
            Some(EventKind::FullSnapshot) => counts.meta.unwrap_or(0) + size,
            Some(EventKind::Meta) if counts.meta.is_none() => 0,
            _ => st.log_bytes as u64 + size,
        };
        if self.over_budget(size, room_after) {
            // Whatever is below the keyframe goes first.
            let floor = st.floor;
            st.trim_below(floor, false);
            if self.over_budget(size, room_after.min(st.log_bytes as u64 + size)) {
                return Err(StoreError::LogFull(cap::NODE_FULL));
            }
        }
        st.head += 1;
        let offset = st.head;
        // On the ring of this node's subscribers, if any, under the room lock: they see entries
        // in offset order, and only after a catch-up read (which takes the lock) could see them.
        let entry = self
            .hub
            .deliver(room_id, Entry::new(offset, st.epoch.clone(), new.body));
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
                st.key_bytes = st.meta_bytes.take().unwrap_or(0);
                st.trim_below(start, self.config.keep_until_archived);
                st.tail_bytes = 0;
                st.native_keyframe = new
                    .page
                    .as_ref()
                    .is_some_and(|p| p.kind == PageKind::Native);
                if let Some(mut page) = new.page {
                    if page.offset == 0 {
                        page.offset = start;
                    }
                    st.pages.push_back(page);
                    if st.pages.len() > MAX_PAGES {
                        st.pages.pop_front();
                    }
                }
            }
            EntryBody::Chat { .. } => {
                st.chats.push_back(entry.clone());
                if st.chats.len() > self.config.chat_retain.max(1) {
                    if let Some(old) = st.chats.pop_front() {
                        st.chat_floor = old.offset + 1;
                    }
                }
            }
            EntryBody::Event { .. } => st.tail_bytes += size,
        }
        if kind == Some(EventKind::Meta) {
            st.meta_bytes = Some(0);
        }
        st.key_bytes += size;
        if let Some(m) = st.meta_bytes.as_mut() {
            *m += size;
        }
        st.log_bytes += size as usize;
        self.used.fetch_add(size, Ordering::Relaxed);
        st.log.push_back(entry.clone());
        if st.log_bytes > self.config.max_log_bytes
            && st.log.front().map(|e| e.offset) < Some(st.floor)
        {
            let floor = st.floor;
            st.trim_below(floor, false);
            tracing::debug!(
                floor,
                "room log over its byte cap; entries below the keyframe trimmed"
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
        Ok(Appended {
            offset,
            duplicate: false,
            tail_bytes: st.tail_bytes,
            native_keyframe: st.native_keyframe,
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
            pages: st.pages.iter().cloned().collect(),
            sealed: st.sealed,
        })
    }

    async fn seal(&self, room_id: &str) -> Result<bool, StoreError> {
        let room = self.room(room_id);
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        if st.sealed {
            return Ok(false);
        }
        st.sealed = true;
        self.hub.send(room_id, RoomMsg::Closed);
        Ok(true)
    }

    async fn info(&self, room_id: &str) -> Result<RoomInfo, StoreError> {
        let room = self.room(room_id);
        let st = lock(&room);
        Ok(RoomInfo {
            room: room_id.to_owned(),
            epoch: st.epoch.to_string(),
            head: st.head,
            pages: st.pages.iter().cloned().collect(),
        })
    }

    async fn stored_offset(
        &self,
        room: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let Some(room) = self.rooms.get(room).map(|r| r.clone()) else {
            return Ok(None);
        };
        let st = lock(&room);
        Ok(st.dedup.get(&(sender.to_owned(), id.to_owned())).copied())
    }
}

#[async_trait]
impl Archival for MemoryStore {
    async fn log_state(&self, room: &str) -> Result<LogState, StoreError> {
        let Some(room) = self.rooms.get(room).map(|r| r.clone()) else {
            return Ok(LogState::default());
        };
        let st = lock(&room);
        Ok(LogState {
            exists: true,
            epoch: st.epoch.to_string(),
            head: st.head,
            floor: st.floor,
            archived: st.archived,
            sealed: st.sealed,
        })
    }

    async fn read_log(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, StoreError> {
        let Some(room) = self.rooms.get(room).map(|r| r.clone()) else {
            return Ok(Vec::new());
        };
        let st = lock(&room);
        let start = st.log.partition_point(|e| e.offset <= after);
        Ok(st
            .log
            .range(start..)
            .take_while(|e| e.offset <= upto)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_archived(&self, room: &str, upto: u64) -> Result<(), StoreError> {
        let Some(room) = self.rooms.get(room).map(|r| r.clone()) else {
            return Ok(());
        };
        let mut st = lock(&room);
        st.archived = st.archived.max(upto);
        let floor = st.floor;
        st.trim_below(floor, true);
        Ok(())
    }

    async fn remove_room(&self, room: &str) -> Result<(), StoreError> {
        // Members still connected are reported as left now: their connections end with the room.
        let left = self.rooms.remove(room).map(|(_, r)| {
            let mut left: Vec<Member> = lock(&r).presence.drain().map(|(_, (m, _))| m).collect();
            left.sort_by(|a, b| a.id.cmp(&b.id));
            left
        });
        let left = left
            .unwrap_or_default()
            .into_iter()
            .map(PresenceChange::Left);
        presence::report(self.watcher.get(), room, left.collect()).await;
        Ok(())
    }

    async fn idle_rooms(
        &self,
        gone_for: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for r in self.rooms.iter() {
            if out.len() >= limit {
                break;
            }
            let st = lock(r.value());
            if !st.sealed && st.customer_left.is_some_and(|t| t.elapsed() >= gone_for) {
                out.push(r.key().clone());
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl TypedValues for MemoryStore {
    async fn typed_hashes(&self, room: &str) -> Result<Vec<u64>, StoreError> {
        let room = self.room(room);
        let st = lock(&room);
        Ok(st.typed.iter().copied().collect())
    }

    async fn add_typed_hashes(&self, room: &str, hashes: &[u64]) -> Result<(), StoreError> {
        let room = self.room(room);
        let mut st = lock(&room);
        for h in hashes {
            if st.typed.len() >= MAX_TYPED_HASHES {
                break;
            }
            st.typed.insert(*h);
        }
        Ok(())
    }
}

#[async_trait]
impl Uploads for MemoryStore {
    async fn stage_chunk(
        &self,
        room: &str,
        c: ChunkIn<'_>,
        limits: UploadLimits,
    ) -> Result<Staged, StoreError> {
        let max_staged = self.config.max_staged_bytes;
        let mut staging = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        Ok(
            staging.stage(room, c, limits, max_staged, |len, room_after| {
                self.over_budget(len, room_after)
            }),
        )
    }

    async fn drop_upload(&self, room: &str, sender: &str, upload: &str) -> Result<(), StoreError> {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(room.to_owned(), sender.to_owned(), upload.to_owned()));
        Ok(())
    }

    async fn release_uploads(
        &self,
        room: &str,
        sender: &str,
        grace: Duration,
    ) -> Result<(), StoreError> {
        if let Some(r) = self.rooms.get(room).map(|r| r.clone()) {
            if lock(&r).presence.contains_key(sender) {
                return Ok(()); // another connection of the sender is still here
            }
        }
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(room, sender, grace);
        Ok(())
    }
}

#[async_trait]
impl Bus for MemoryStore {
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError> {
        let _ = self.room(room);
        Ok(self.hub.subscribe(room).0)
    }

    async fn relay(&self, room_id: &str, msg: crate::hub::Relayed) -> Result<(), StoreError> {
        let Some(room) = self.rooms.get(room_id).map(|r| r.clone()) else {
            return Ok(()); // nobody is subscribed
        };
        let st = lock(&room);
        // Under the room lock, so no append slips between the head read and the send.
        let msg = msg.stamped(&st.epoch, st.head);
        self.hub.send(room_id, RoomMsg::Relay(Arc::new(msg)));
        Ok(())
    }

    async fn healthy(&self) -> bool {
        true
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

mod presence;

mod directory;
#[cfg(test)]
mod tests;
