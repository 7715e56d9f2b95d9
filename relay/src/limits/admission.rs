//! Connection admission quotas, decided before a WebSocket exists or during its upgrade:
//! - handshakes in progress (accepted TCP connections that have not finished the upgrade): a
//!   node-wide cap, where the oldest pending handshake is dropped to make room for a new one (a
//!   slow client that never finishes loses to one that does), and a cap per source address;
//! - upgraded connections per participant (room and `sub` of the token) and rooms with
//!   connections on this node.
//!
//! Only a completed upgrade counts against `--max-connections` (see `http/public.rs`). Every guard
//! releases its slot when dropped. The state is two small maps behind mutexes that are held for a
//! few map operations, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::RejectReason;

/// Settings of the admission quotas and of the admin listener.
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// Handshakes in progress on this node at most; a new one evicts the oldest.
    pub max_pending_handshakes: usize,
    /// Handshakes in progress from one source address at most (0: no limit).
    pub max_pending_per_address: usize,
    /// Upgraded connections of one participant (room and `sub`) at most.
    pub max_connections_per_participant: usize,
    /// Rooms with connections on this node at most.
    pub max_rooms: usize,
    /// Concurrent connections of the admin listener.
    pub admin_max_connections: usize,
    /// Time an admin client has to send a request's headers.
    pub admin_header_timeout: Duration,
    /// Time an admin request has to be answered (body read included).
    pub admin_request_timeout: Duration,
    /// Bearer token `/metrics` requires (None: open).
    pub metrics_token: Option<String>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            max_pending_handshakes: 1000,
            max_pending_per_address: 64,
            max_connections_per_participant: 8,
            max_rooms: 5000,
            admin_max_connections: 64,
            admin_header_timeout: Duration::from_secs(5),
            admin_request_timeout: Duration::from_secs(30),
            metrics_token: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct PendingState {
    next: u64,
    /// Pending handshakes by age (id), with the signal that drops them.
    order: BTreeMap<u64, Arc<Notify>>,
    by_addr: HashMap<IpAddr, usize>,
}

#[derive(Default)]
struct RoomConns {
    conns: usize,
    by_sub: HashMap<String, usize>,
}

/// The node's admission state.
pub struct Quotas {
    cfg: QuotaConfig,
    pending: Mutex<PendingState>,
    rooms: Mutex<HashMap<String, RoomConns>>,
}

impl Quotas {
    /// Empty quotas under `cfg`.
    pub fn new(cfg: QuotaConfig) -> Arc<Quotas> {
        Arc::new(Quotas {
            cfg,
            pending: Mutex::default(),
            rooms: Mutex::default(),
        })
    }

    /// Registers a handshake from `addr`. Refused when that address already has its most pending
    /// handshakes; when the node has its most, the oldest pending handshake is told to give up
    /// (its guard's [`PendingGuard::evicted`] resolves) and this one takes its place.
    pub fn begin_handshake(self: &Arc<Self>, addr: IpAddr) -> Result<PendingGuard, RejectReason> {
        let mut st = lock(&self.pending);
        let per_addr = st.by_addr.get(&addr).copied().unwrap_or(0);
        if self.cfg.max_pending_per_address > 0 && per_addr >= self.cfg.max_pending_per_address {
            return Err(RejectReason::TooManyPendingFromAddress);
        }
        if st.order.len() >= self.cfg.max_pending_handshakes.max(1) {
            if let Some((_, oldest)) = st.order.pop_first() {
                oldest.notify_one();
            }
        }
        let id = st.next;
        st.next += 1;
        let evicted = Arc::new(Notify::new());
        st.order.insert(id, evicted.clone());
        *st.by_addr.entry(addr).or_insert(0) += 1;
        Ok(PendingGuard {
            quotas: self.clone(),
            id,
            addr,
            evicted,
        })
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        lock(&self.pending).order.len()
    }

    /// Admits one upgraded connection of `sub` in `room`: refused when the participant already
    /// has its most connections here, or when the room is new and the node has its most rooms.
    pub fn admit(self: &Arc<Self>, room: &str, sub: &str) -> Result<ConnGuard, RejectReason> {
        let mut rooms = lock(&self.rooms);
        let known = rooms.contains_key(room);
        if !known && rooms.len() >= self.cfg.max_rooms {
            return Err(RejectReason::TooManyRooms);
        }
        let entry = rooms.entry(room.to_owned()).or_default();
        let mine = entry.by_sub.get(sub).copied().unwrap_or(0);
        if mine >= self.cfg.max_connections_per_participant {
            if entry.conns == 0 {
                rooms.remove(room);
            }
            return Err(RejectReason::TooManyConnectionsForParticipant);
        }
        entry.conns += 1;
        *entry.by_sub.entry(sub.to_owned()).or_insert(0) += 1;
        Ok(ConnGuard {
            quotas: self.clone(),
            room: room.to_owned(),
            sub: sub.to_owned(),
        })
    }

    /// Rooms with connections on this node.
    pub fn rooms(&self) -> usize {
        lock(&self.rooms).len()
    }
}

/// A handshake in progress; dropping it frees its slot.
pub struct PendingGuard {
    quotas: Arc<Quotas>,
    id: u64,
    addr: IpAddr,
    evicted: Arc<Notify>,
}

impl PendingGuard {
    /// Resolves when a newer handshake needed this one's slot.
    pub async fn evicted(&self) {
        self.evicted.notified().await
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut st = lock(&self.quotas.pending);
        st.order.remove(&self.id);
        if let Some(n) = st.by_addr.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.by_addr.remove(&self.addr);
            }
        }
    }
}

/// An admitted connection's room and participant slot; dropping it frees both.
pub struct ConnGuard {
    quotas: Arc<Quotas>,
    room: String,
    sub: String,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut rooms = lock(&self.quotas.rooms);
        let Some(entry) = rooms.get_mut(&self.room) else {
            return;
        };
        entry.conns = entry.conns.saturating_sub(1);
        if let Some(n) = entry.by_sub.get_mut(&self.sub) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                entry.by_sub.remove(&self.sub);
            }
        }
        if entry.conns == 0 {
            rooms.remove(&self.room);
        }
    }
}
