//! The seam between a node and where rooms live.
//!
//! The seam is a few narrow traits, by who uses them: [`RoomLog`] stores a room's entries (rrweb
//! events and chat) under per-room offsets and answers catch-up and resume reads (the hot path);
//! [`Uploads`] stages large events slice by slice; [`TypedValues`] keeps the masking hashes;
//! [`Archival`] is what the compactor reads and trims; [`Bus`] fans a room's live traffic out to
//! the nodes that have members in it and [`Presence`] tracks who is there ([`Broker`] is both);
//! [`Directory`] lists the live rooms over every node.
//! A backend implements all of them, which makes it a [`Store`]: [`memory::MemoryStore`]
//! in-process (embedded mode), [`redis::RedisStore`] for cluster mode.
//!
//! Contract every implementation keeps (the session, `session/`, relies on it):
//! - `append` assigns the next offset of the room and publishes the entry to subscribers as one
//!   atomic step: subscribers see entries in offset order, and an entry is in the log before any
//!   subscriber sees it.
//! - A subscriber that subscribed before a `catch_up` read sees every entry with an offset above
//!   that read's `head` (possibly some at or below it too, which the reader drops by offset).

pub mod cap;
pub mod directory;
pub mod memory;
pub mod plan;
pub mod redis;

use std::sync::Arc;

use assist_relay_proto::{JoinMode, Member, PageRecord, Position, ResyncReason};
use async_trait::async_trait;

pub use crate::hub::{Entry, EntryBody, RoomMsg, Subscription};

/// What a sender asks to store.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The payload.
    pub body: EntryBody,
    /// (sender, client id): a second append with the same key returns the first offset.
    pub dedup: Option<(String, String)>,
    /// The participant that sent it and the rates that apply: cluster mode holds the
    /// participant's and the room's stored entries to them across nodes ([`crate::limits`]).
    /// None: not rate-limited by the store.
    pub sender: Option<crate::limits::Rated>,
    /// With a FullSnapshot: the page it starts, for the room's page timeline. An `offset` of 0
    /// is filled in by the store (the pending Meta's offset, else the snapshot's own). A
    /// [`assist_relay_proto::PageKind::Native`] page marks the keyframe as a placeholder.
    pub page: Option<PageRecord>,
}

impl NewEntry {
    /// An entry with no idempotency key and no page.
    pub fn new(body: EntryBody) -> NewEntry {
        NewEntry {
            body,
            dedup: None,
            sender: None,
            page: None,
        }
    }
}

/// Result of an append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the entry (the original one for a duplicate).
    pub offset: u64,
    /// The key had been stored before; nothing was appended or published.
    pub duplicate: bool,
    /// Payload bytes of the events after the room's keyframe (including this one).
    pub tail_bytes: u64,
    /// The room's keyframe is a native-page placeholder.
    pub native_keyframe: bool,
}

/// A room at a glance (admin API).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomInfo {
    /// Room id.
    pub room: String,
    /// Current epoch.
    pub epoch: String,
    /// Last offset.
    pub head: u64,
    /// Page timeline, oldest first.
    pub pages: Vec<PageRecord>,
}

/// Most page timeline records kept per room.
pub const MAX_PAGES: usize = 200;

/// One slice of an upload, as the store stages it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkIn<'a> {
    /// Uploading participant.
    pub sender: &'a str,
    /// Upload id.
    pub upload: &'a str,
    /// Slice number.
    pub index: u32,
    /// Number of slices.
    pub count: u32,
    /// Size of the whole event.
    pub size: u64,
    /// Digest of the whole event.
    pub digest: &'a str,
    /// The slice.
    pub data: &'a [u8],
}

/// Bounds on staged uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Uploads one sender may have in progress per room.
    pub max_uploads: usize,
    /// How long an upload is kept after its last slice.
    pub ttl: std::time::Duration,
    /// Bytes one sender may have staged in one room ([`cap::participant_staging_share`]).
    pub participant_share: u64,
    /// Bytes one room may have staged ([`cap::room_staging_share`]).
    pub room_share: u64,
}

/// What staging a slice led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// Stored (or already there); more slices are missing. `first`: this slice started the
    /// upload (nothing was staged under its id).
    Partial {
        /// This slice started the upload.
        first: bool,
    },
    /// Every slice is there: the whole event, stitched. The staging stays until
    /// [`Uploads::drop_upload`], so that a crash before the event is stored loses nothing.
    Complete(Vec<u8>),
    /// The sender already has `max_uploads` uploads in progress.
    TooMany,
    /// The slice disagrees with the upload (count, size or digest), or the slices overflow the
    /// declared size. The upload is dropped.
    Mismatch(&'static str),
}

/// What a joining or recovering client needs.
#[derive(Debug, Clone)]
pub struct CatchUpRequest {
    /// Where the client left off, if anywhere.
    pub resume: Option<Position>,
    /// Whether the client receives rrweb events (agents) or chat only (customers).
    pub events: bool,
    /// How many recent chat messages a fresh join gets.
    pub chat_limit: usize,
}

/// The answer to a [`CatchUpRequest`].
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// Current room epoch.
    pub epoch: Arc<str>,
    /// The room's last offset when the read was made.
    pub head: u64,
    /// Fresh, resume or resync.
    pub mode: JoinMode,
    /// With resync, why.
    pub reason: Option<ResyncReason>,
    /// Entries to send, in offset order, already filtered for the client's role.
    pub entries: Vec<Arc<Entry>>,
    /// The room's page timeline, oldest first.
    pub pages: Vec<PageRecord>,
    /// The room has been closed: no joins, no appends.
    pub sealed: bool,
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached or did not answer ([`Unavailable`]); retry later.
    #[error("room store unavailable: {1}")]
    Unavailable(Unavailable, String),
    /// The store holds data this node cannot read.
    #[error("room store data corrupt: {0}")]
    Corrupt(String),
    /// The room has been closed; nothing more is stored.
    #[error("the room is closed")]
    Closed,
    /// Cluster mode: the sender or the room is over its rate across nodes; nothing was stored.
    #[error("over the participant's or the room's rate across nodes")]
    RateLimited,
    /// The entry would put the room's log over `--max-log-bytes` (or, embedded, a room over its
    /// fair share of a node over `--max-memory-bytes`); nothing was stored. See [`cap`].
    #[error("{0}")]
    LogFull(&'static str),
}

/// What kind of [`StoreError::Unavailable`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The connection to the store failed, dropped, was refused, or is down.
    Connection,
    /// The store did not answer in time.
    Timeout,
    /// The store answered with an error (its code is in the message).
    Server,
    /// This node could not finish the call (a part stopped, an unusable reply, a moving log).
    Local,
}

/// Where a room's log stands, for the compactor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// Whether the room has any log at all.
    pub exists: bool,
    /// Current epoch.
    pub epoch: String,
    /// Last offset.
    pub head: u64,
    /// First offset of the current keyframe (entries below it are only kept for archiving).
    pub floor: u64,
    /// Entries up to this offset are archived (and may be gone from the log).
    pub archived: u64,
    /// The room is closed.
    pub sealed: bool,
}

/// The hot path of a room's log: what a connection does on every join, resume and send, and
/// closing the room.
#[async_trait]
pub trait RoomLog: Send + Sync + 'static {
    /// Stores an entry under the next offset and publishes it, atomically.
    async fn append(&self, room: &str, entry: NewEntry) -> Result<Appended, StoreError>;

    /// Reads what a joining or recovering client needs.
    async fn catch_up(&self, room: &str, req: CatchUpRequest) -> Result<CatchUp, StoreError>;

    /// The room at a glance.
    async fn info(&self, room: &str) -> Result<RoomInfo, StoreError>;

    /// The offset stored under an idempotency key (sender, client id), if any.
    async fn stored_offset(
        &self,
        room: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Closes the room: later appends fail with [`StoreError::Closed`], joins are refused, and
    /// every member gets [`RoomMsg::Closed`]. Returns whether this call closed it.
    async fn seal(&self, room: &str) -> Result<bool, StoreError>;
}

/// Uploads staged slice by slice until the whole event can be appended.
#[async_trait]
pub trait Uploads: Send + Sync + 'static {
    /// Stages one slice of an upload (idempotent per slice).
    async fn stage_chunk(
        &self,
        room: &str,
        chunk: ChunkIn<'_>,
        limits: UploadLimits,
    ) -> Result<Staged, StoreError>;

    /// Forgets an upload (stored, abandoned or invalid).
    async fn drop_upload(&self, room: &str, sender: &str, upload: &str) -> Result<(), StoreError>;

    /// A connection of `sender` left the room: unless it still has another connection there, its
    /// unfinished uploads expire after `grace` (at once when zero) instead of `--upload-ttl`. A
    /// slice staged again within the grace restores the full TTL (reconnect and go on).
    async fn release_uploads(
        &self,
        room: &str,
        sender: &str,
        grace: std::time::Duration,
    ) -> Result<(), StoreError>;
}

/// Hashes of values typed in a room, kept for masking their echoes (see `mask`).
#[async_trait]
pub trait TypedValues: Send + Sync + 'static {
    /// Hashes of values typed in the room.
    async fn typed_hashes(&self, room: &str) -> Result<Vec<u64>, StoreError>;

    /// Remembers more typed-value hashes (at most [`MAX_TYPED_HASHES`] per room).
    async fn add_typed_hashes(&self, room: &str, hashes: &[u64]) -> Result<(), StoreError>;
}

/// What the compactor reads and trims (and a connection reads to build its mask): where a
/// room's log stands, ranges of it, the archive mark, removal, and idle rooms.
#[async_trait]
pub trait Archival: Send + Sync + 'static {
    /// Where the room's log stands.
    async fn log_state(&self, room: &str) -> Result<LogState, StoreError>;

    /// Stored entries with offsets in `(after, upto]`, in order, at most `limit`.
    async fn read_log(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, StoreError>;

    /// Records that entries up to `upto` are archived and drops those below the keyframe.
    async fn mark_archived(&self, room: &str, upto: u64) -> Result<(), StoreError>;

    /// Deletes every key of a room (after its recording is written).
    async fn remove_room(&self, room: &str) -> Result<(), StoreError>;

    /// Open rooms whose customer has been gone for longer than `gone_for` (at most `limit`).
    async fn idle_rooms(
        &self,
        gone_for: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
}

/// Most typed-value hashes kept per room.
pub const MAX_TYPED_HASHES: usize = 4096;

/// The answer to [`Presence::enter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entered {
    /// Admitted; everyone present, including the new member.
    Members(Vec<Member>),
    /// The room is at its member limit.
    Full,
    /// The member already has its most connections in the room (over every node).
    TooManyConnections,
}

/// Per-room live fan-out: a room's stream of entries, presence changes and relayed messages.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Subscribes to a room's live traffic. Returns once the subscription is in effect.
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError>;

    /// Publishes `msg` on the room's live stream as [`RoomMsg::Relay`], stamped with the room's
    /// epoch and head (the offset of the last entry published before it), without storing it.
    async fn relay(&self, room: &str, msg: crate::hub::Relayed) -> Result<(), StoreError>;

    /// Whether the backing store is reachable (feeds `/readyz`).
    async fn healthy(&self) -> bool;

    /// The node's fan-out this backend delivers into ([`crate::hub`]).
    fn hub(&self) -> &Arc<crate::hub::Hub>;
}

/// A presence change, decided in the same atomic step as the change itself, so that exactly
/// one node reports it however many nodes serve the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// The first member entered a room that had not been entered before (in this life of the
    /// room: a closed and removed room opens again).
    Opened,
    /// A participant's first connection entered.
    Joined(Member),
    /// A participant's last connection left, or expired with its node.
    Left(Member),
}

/// Receives a room's presence changes (the node's webhooks). The store awaits it after the
/// change, outside any lock.
pub type PresenceWatcher = Arc<
    dyn Fn(String, PresenceChange) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// Who is in a room, over every node.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Reports presence changes to `watcher` from now on (set once; later calls are ignored).
    fn watch(&self, watcher: PresenceWatcher);

    /// Registers one connection of `member`, unless the room already has `max_members` other
    /// participants or the member already has `max_conns` connections in it (counted over every
    /// node); returns everyone present afterwards. Publishes [`RoomMsg::Joined`] if this is
    /// the member's first connection in the room. The check and the entry are one atomic step.
    async fn enter(
        &self,
        room: &str,
        member: &Member,
        conn: u64,
        max_members: usize,
        max_conns: usize,
    ) -> Result<Entered, StoreError>;

    /// Removes one connection of `member`. Publishes [`RoomMsg::Left`] if it was the last.
    async fn exit(&self, room: &str, member: &Member, conn: u64) -> Result<(), StoreError>;
}

/// Which rooms are live over every node (the `/v1/rooms` listing).
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Open rooms with at least one member present on any node, with ids above `after`, in id
    /// order: at most `limit` looked at (rooms found empty or closed are skipped, so fewer may
    /// come back while [`directory::DirectoryPage::more_after`] says more may follow).
    async fn live_rooms(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<directory::DirectoryPage, StoreError>;
}

/// Live fan-out and presence: what a connection needs besides the log.
pub trait Broker: Bus + Presence {}

impl<T: Bus + Presence> Broker for T {}

/// Everything a backend implements; a node holds its store as one `Arc<dyn Store>`.
pub trait Store: RoomLog + Uploads + TypedValues + Archival + Broker + Directory {}

impl<T: RoomLog + Uploads + TypedValues + Archival + Broker + Directory> Store for T {}

/// Calls `f` with every stored entry in `(after, upto]`, in order, read in pages of about
/// `page_bytes` of payload: in cluster mode every entry read is a copy, and a room's log may hold
/// `--max-log-bytes`, so a large log is never in memory at once.
pub async fn for_each_entry(
    log: &(impl Archival + ?Sized),
    room: &str,
    mut after: u64,
    upto: u64,
    page_bytes: usize,
    mut f: impl FnMut(&Entry),
) -> Result<(), StoreError> {
    let mut limit = 64;
    while after < upto {
        let page = log.read_log(room, after, upto, limit).await?;
        let Some(last) = page.last() else { break };
        after = last.offset;
        let bytes: usize = page.iter().map(|e| e.body.size()).sum();
        page.iter().for_each(|e| f(e));
        // The next page sized by this one's entries.
        limit = (page_bytes / (bytes / page.len()).max(1)).clamp(1, 4096);
    }
    Ok(())
}

/// Settings that shape every room log, whatever the backend.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Chat messages kept per room for joins and resyncs.
    pub chat_retain: usize,
    /// Client ids remembered per room for idempotent resends.
    pub dedup_window: usize,
    /// Upper bound of a room's log in payload bytes (see [`cap`]): past it entries below the
    /// keyframe are trimmed, then appends are refused with `log_full` until a new keyframe.
    pub max_log_bytes: usize,
    /// Live messages buffered per room per node before a slow receiver lags.
    pub room_buffer: usize,
    /// Cluster mode: payload bytes of live entries a node's ring holds per room (besides the
    /// newest one); a receiver further behind recovers from the log (see [`window`]). The node
    /// sets it to `--max-queue-bytes`.
    pub room_buffer_bytes: u64,
    /// How long a room with no members is kept before its log is dropped.
    pub empty_room_ttl: std::time::Duration,
    /// Upload bytes staged at most: in this process (embedded mode) or, in cluster mode, per
    /// room in Redis. One participant may stage [`cap::participant_staging_share`] of it and one
    /// room [`cap::room_staging_share`].
    pub max_staged_bytes: u64,
    /// Embedded mode: bytes of every room log plus staged uploads this process holds at most;
    /// over it, rooms over their fair share get `log_full` (see [`cap`]). 0: no budget.
    pub max_memory_bytes: u64,
    /// Keep entries below the keyframe until the compactor archived them (recordings on);
    /// otherwise a new keyframe drops them at once.
    pub keep_until_archived: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            chat_retain: 1000,
            dedup_window: 10_000,
            max_log_bytes: 256 * 1024 * 1024,
            room_buffer: 256,
            room_buffer_bytes: 8 * 1024 * 1024,
            empty_room_ttl: std::time::Duration::from_secs(600),
            max_staged_bytes: 512 * 1024 * 1024,
            max_memory_bytes: 0,
            keep_until_archived: false,
        }
    }
}
