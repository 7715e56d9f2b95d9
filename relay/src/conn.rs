//! One task per connection: join, catch-up, then one `select!` over the client's frames, the room's
//! live stream, the ping timer, token expiry and shutdown.
//!
//! Ordering without gaps or duplicates rests on one rule: subscribe to the room *before* reading the
//! catch-up, then drop live entries at or below the last offset already sent. An entry above
//! `last + 1`, a lagged receiver, a backlog over the byte bound, or a new epoch sends the connection
//! through [`Conn::recover`], which resumes from the log when it can and resyncs (clearly marked)
//! when it cannot.
//!
//! Backpressure: the room's live stream is a bounded ring shared by every local member
//! (`--room-buffer` messages); each member also has a byte bound (`--max-queue-bytes`) on how far it
//! may fall behind. A member past either bound skips its backlog and recovers from the log; one that
//! stays behind for `--slow-timeout`, or whose socket accepts nothing for `--write-timeout`, is
//! closed with 4001. The publisher never waits for viewers.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assist_relay_proto::{
    Capability, ChunkData, ClientFrame, CloseCode, ErrorCode, EventHead, EventKind, Guidance,
    JoinMode, Limits as WireLimits, Member, NativePage, Position, ProtoError, ResyncReason, Role,
    ServerFrame, Signal, SnapshotReason,
};
use futures_util::{SinkExt, StreamExt};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::auth::Admission;
use crate::config::NodeConfig;
use crate::guide::{GuideRates, Relayed, RelayedBody};
use crate::hub::{chunk_data_bytes, encode_message, now_us};
use crate::mask::{may_need_masking, MaskPolicy, RoomMask};
use crate::pages::{read_meta, MetaInfo};
use crate::server::Node;
use crate::store::{
    Appended, CatchUp, CatchUpRequest, ChunkIn, Entered, Entry, EntryBody, NewEntry, RoomMsg,
    Staged, StoreError, Subscription, UploadLimits,
};

/// Events larger than this are masked on the blocking pool.
const BLOCKING_MASK_BYTES: usize = 256 * 1024;

/// Payload bytes of the room's log read at once while building a connection's masking state (in
/// cluster mode each read is a copy; the log may hold `--max-log-bytes`).
const MASK_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// At most one live compaction queued per connection in this long.
const LIVE_COMPACTION_INTERVAL: Duration = Duration::from_secs(10);

/// At most one `snapshot_request` per connection in this long.
const SNAPSHOT_REQUEST_INTERVAL: Duration = Duration::from_secs(10);

/// Live entries written before one flush.
const WRITE_BATCH: usize = 64;

/// rrweb incremental sources that only move a pointer; a lagging viewer needs only the last one.
const POINTER_SOURCES: [u8; 2] = [1, 6]; // MouseMove, TouchMove

/// How a connection ends.
#[derive(Debug)]
enum Exit {
    /// The relay closes with one of its own codes.
    Close(CloseCode),
    /// The relay closes with a standard code.
    Standard(WsCloseCode, &'static str),
    /// The peer closed or vanished; nothing to send.
    PeerGone,
}

impl Exit {
    /// How the connection ended, for the audit log: the close reason, or `peer_gone`.
    fn audit_name(&self) -> &'static str {
        match self {
            Exit::Close(c) => c.reason(),
            Exit::Standard(_, reason) => reason,
            Exit::PeerGone => "peer_gone",
        }
    }
}

impl From<StoreError> for Exit {
    fn from(e: StoreError) -> Exit {
        if matches!(e, StoreError::Closed) {
            return Exit::Close(CloseCode::RoomClosed);
        }
        tracing::warn!(error = %e, "room store failed; closing so the client resumes elsewhere");
        Exit::Close(CloseCode::Unavailable)
    }
}

/// Per-connection rate limits. Frames over the message or byte rate are held back (TCP
/// backpressure then slows the sender) while the connection's hold-back budget lasts: up to
/// `--max-rate-delay` in total, refilled over [`HOLD_BACK_REFILL`]. Past it they are refused with
/// `rate_limited`, and every refusal draws on the violation budget, whose exhaustion closes the
/// connection (4501). A burst from a busy page is slowed; a flood ends.
struct Limits {
    /// This participant's and this room's keys in the node's [`crate::quota::SharedRates`].
    participant: Arc<str>,
    room: Arc<str>,
    msgs: DefaultDirectRateLimiter,
    bytes: DefaultDirectRateLimiter,
    /// Milliseconds of hold-back left.
    hold_back: DefaultDirectRateLimiter,
    violations: DefaultDirectRateLimiter,
}

/// The hold-back budget refills over this long.
const HOLD_BACK_REFILL: Duration = Duration::from_secs(30);

fn nonzero(v: u64) -> NonZeroU32 {
    NonZeroU32::new(v.clamp(1, u64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    fn new(cfg: &NodeConfig, room: &str, sub: &str) -> Limits {
        let msgs = u64::from(cfg.max_msgs_per_sec);
        let bytes = u64::from(cfg.max_bytes_per_sec);
        let byte_burst = (bytes * 2).max(cfg.max_frame_bytes as u64);
        let hold_back_ms = cfg.max_rate_delay.as_millis() as u64;
        let per_second = |rate: u64, burst: u64| {
            RateLimiter::direct(Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst)))
        };
        Limits {
            participant: crate::quota::participant_key(room, sub),
            room: Arc::from(room),
            msgs: per_second(msgs, msgs * 2),
            bytes: per_second(bytes, byte_burst),
            hold_back: per_second(hold_back_ms / HOLD_BACK_REFILL.as_secs(), hold_back_ms),
            violations: per_second(1, u64::from(cfg.max_violations)),
        }
    }

    /// Whether a hold-back of `wait` fits the remaining budget (and spends it if so).
    fn hold_back(&self, wait: Duration) -> bool {
        matches!(
            self.hold_back.check_n(nonzero(wait.as_millis() as u64)),
            Ok(Ok(()))
        )
    }

    /// Takes one frame of `len` bytes from the rates, waiting (within the hold-back budget) for
    /// tokens that are not there yet.
    async fn admit(&self, shared: &crate::quota::SharedRates, len: usize) -> Admit {
        let mut outcome = Admit::Now;
        loop {
            // The limiter's own clock: a new `DefaultClock` per call probes the CPU (`cpuid`,
            // a hypervisor trap on VMs), which cost 20-40 % of a node's CPU in B2.
            let wait = match self.msgs.check() {
                Ok(()) => break,
                Err(not_until) => not_until.wait_time_from(self.msgs.clock().now()),
            };
            if !self.hold_back(wait) {
                return Admit::Refused;
            }
            outcome = Admit::Delayed;
            tokio::time::sleep(wait).await;
        }
        loop {
            let wait = match self.bytes.check_n(nonzero(len as u64)) {
                Ok(Ok(())) => break,
                Ok(Err(not_until)) => not_until.wait_time_from(self.bytes.clock().now()),
                Err(_) => return Admit::Refused, // larger than the burst: never fits
            };
            if !self.hold_back(wait) {
                return Admit::Refused;
            }
            outcome = Admit::Delayed;
            tokio::time::sleep(wait).await;
        }
        // The participant's and the room's rates, across connections.
        for step in 0..crate::quota::SharedRates::STEPS {
            loop {
                let wait = match shared.check(step, &self.participant, &self.room, len) {
                    Ok(()) => break,
                    Err(Some(wait)) => wait,
                    Err(None) => return Admit::Refused,
                };
                if !self.hold_back(wait) {
                    return Admit::Refused;
                }
                outcome = Admit::Delayed;
                tokio::time::sleep(wait).await;
            }
        }
        outcome
    }
}

/// How a frame fared against the rates.
enum Admit {
    Now,
    Delayed,
    Refused,
}

struct Conn {
    node: Arc<Node>,
    ws: WebSocketStream<TcpStream>,
    adm: Admission,
    me: Member,
    conn_id: u64,
    /// Epoch of the offsets below.
    epoch: Arc<str>,
    /// The last room offset this connection has processed (sent, or skipped as not for its role).
    last: u64,
    last_inbound: Instant,
    limits: Limits,
    /// Since when this viewer has been behind the room (overflowed and not drained since).
    behind_since: Option<Instant>,
    /// Acceptance times (µs) of live entries written since the last flush.
    unflushed: Vec<u64>,
    /// The last read found no whole frame buffered (see `next_inbound`).
    read_blocked: bool,
    /// Frames and bytes written since the last flush, not yet in the metrics.
    tally: OutTally,
    /// Masking policy of what this connection publishes.
    mask_policy: MaskPolicy,
    /// Masking state, built from the room log on the first event that needs it.
    mask: Option<RoomMask>,
    /// The last Meta this connection published (URL and viewport of the current web page).
    meta: Option<MetaInfo>,
    /// When this connection was last sent a `snapshot_request`.
    snapshot_asked: Option<Instant>,
    /// When this connection last queued a live compaction.
    compacted_at: Option<Instant>,
    /// Guidance and signaling rates, and a coalesced pointer move.
    guide: GuideRates,
}

/// Serves one upgraded connection until it ends.
pub(crate) async fn serve(
    node: Arc<Node>,
    ws: WebSocketStream<TcpStream>,
    adm: Admission,
    conn_id: u64,
) {
    let role = adm.claims.role;
    let gauge = node.metrics.connections.with_label_values(&[role.as_str()]);
    gauge.inc();
    let me = Member {
        id: adm.claims.sub.clone(),
        role,
    };
    let mask_policy = adm
        .claims
        .mask
        .as_deref()
        .and_then(MaskPolicy::parse)
        .unwrap_or(node.config.mask_policy);
    let mut conn = Conn {
        node: node.clone(),
        ws,
        limits: Limits::new(&node.config, &adm.claims.room, &adm.claims.sub),
        adm,
        me,
        conn_id,
        epoch: Arc::from(""),
        last: 0,
        last_inbound: Instant::now(),
        behind_since: None,
        unflushed: Vec::new(),
        read_blocked: false,
        tally: OutTally::default(),
        mask_policy,
        mask: None,
        meta: None,
        snapshot_asked: None,
        compacted_at: None,
        guide: GuideRates::default(),
    };
    let mut entered = false;
    let exit = conn.session(&mut entered).await;
    if entered {
        crate::audit::leave(conn.room(), &conn.me.id, role, conn_id, exit.audit_name());
        if let Err(e) = node.broker.exit(conn.room(), &conn.me, conn_id).await {
            tracing::warn!(error = %e, "presence exit failed");
        }
        if conn.me.role == Role::Customer {
            let grace = node.config.upload_orphan_ttl;
            if let Err(e) = node
                .log
                .release_uploads(conn.room(), &conn.me.id, grace)
                .await
            {
                tracing::warn!(error = %e, "releasing staged uploads failed");
            }
        }
    }
    conn.finish(exit).await;
    gauge.dec();
}

impl Conn {
    fn receives_events(&self) -> bool {
        self.me.role == Role::Agent
    }

    fn room(&self) -> &str {
        &self.adm.claims.room
    }

    async fn session(&mut self, entered: &mut bool) -> Exit {
        let mut shutdown = self.node.shutdown_signal();
        let join_timeout = self.node.config.join_timeout;
        let join = tokio::select! {
            join = tokio::time::timeout(join_timeout, self.await_join()) => join,
            () = wait_shutdown(&mut shutdown) => return Exit::Close(CloseCode::Shutdown),
        };
        let resume = match join {
            Err(_) => return Exit::Close(CloseCode::JoinTimeout),
            Ok(Err(exit)) => return exit,
            Ok(Ok(resume)) => resume,
        };
        match self.joined(resume, entered).await {
            Ok(sub) => self.live(sub).await,
            Err(exit) => exit,
        }
    }

    /// Reads frames until `join`. Pings are answered; anything else is refused with `not_joined`.
    async fn await_join(&mut self) -> Result<Option<Position>, Exit> {
        loop {
            let Some(msg) = self.next_inbound().await? else {
                continue;
            };
            match self.inbound(&msg).await? {
                None => {}
                Some(ClientFrame::Join { resume }) => return Ok(resume),
                Some(ClientFrame::Ping { id }) => {
                    self.send_frame(&ServerFrame::Pong { id }).await?
                }
                Some(other) => {
                    let id = frame_id(&other);
                    self.send_error(ErrorCode::NotJoined, "send join first".into(), id)
                        .await?
                }
            }
        }
    }

    /// Subscribes, registers presence, sends `joined` and the catch-up.
    async fn joined(
        &mut self,
        resume: Option<Position>,
        entered: &mut bool,
    ) -> Result<Subscription, Exit> {
        let node = self.node.clone();
        let room = self.room().to_owned();
        // Subscribe first: every entry after the catch-up's head then reaches us live.
        let sub = node.broker.subscribe(&room).await?;
        let members = match node
            .broker
            .enter(
                &room,
                &self.me,
                self.conn_id,
                node.config.max_room_members,
                node.config.quotas.max_connections_per_participant,
            )
            .await?
        {
            Entered::Members(m) => m,
            Entered::Full => return Err(Exit::Close(CloseCode::RoomFull)),
            Entered::TooManyConnections => return Err(Exit::Close(CloseCode::TooManyConnections)),
        };
        *entered = true;
        let request = CatchUpRequest {
            resume,
            events: self.receives_events(),
            chat_limit: node.config.chat_history,
        };
        let cu = node.log.catch_up(&room, request).await?;
        if cu.sealed {
            return Err(Exit::Close(CloseCode::RoomClosed));
        }
        if let Some(reason) = cu.reason {
            node.metrics
                .resyncs
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        tracing::info!(
            mode = cu.mode.as_str(),
            entries = cu.entries.len(),
            head = cu.head,
            "joined"
        );
        let remote = self.ws.get_ref().peer_addr().ok();
        crate::audit::join(
            &room,
            &self.me.id,
            self.me.role,
            self.conn_id,
            self.adm.codec,
            remote,
        );
        self.epoch = cu.epoch.clone();
        let max_frame = node.config.max_frame_bytes;
        let joined = ServerFrame::Joined {
            room,
            epoch: cu.epoch.to_string(),
            you: self.me.clone(),
            members,
            mode: cu.mode,
            reason: cu.reason,
            head: cu.head,
            pages: cu.pages.clone(),
            limits: Some(WireLimits {
                max_frame_bytes: max_frame as u64,
                max_upload_bytes: node.config.max_upload_bytes,
                chunk_bytes: chunk_data_bytes(assist_relay_proto::Codec::Json, max_frame) as u64,
            }),
            ice_servers: node
                .config
                .ice
                .servers_for(&self.me.id, now_us() / 1_000_000),
        };
        self.feed(encode_message(self.adm.codec, &joined), "joined")
            .await?;
        self.send_catch_up(&cu, true).await?;
        Ok(sub)
    }

    /// Writes catch-up entries (all of them, or only those after `last`), then `caught_up` if
    /// `marked`, and flushes.
    async fn send_catch_up(&mut self, cu: &CatchUp, marked: bool) -> Result<(), Exit> {
        let after = if marked { 0 } else { self.last };
        let entries: Vec<&Arc<Entry>> = cu.entries.iter().filter(|e| e.offset > after).collect();
        let coalesce = !marked || cu.mode == JoinMode::Resync;
        let mut bytes = 0u64;
        let mut sent = 0u64;
        for (i, e) in entries.iter().enumerate() {
            if coalesce && superseded_pointer_move(e, &entries[i + 1..]) {
                continue;
            }
            bytes += e.body.size() as u64;
            sent += 1;
            self.feed_entry(e).await?;
        }
        self.node.metrics.catchup_entries.observe(sent as f64);
        self.node.metrics.catchup_bytes.observe(bytes as f64);
        self.epoch = cu.epoch.clone();
        self.last = if marked {
            cu.head
        } else {
            self.last.max(cu.head)
        };
        if marked {
            let frame = ServerFrame::CaughtUp { offset: self.last };
            self.feed(encode_message(self.adm.codec, &frame), "caught_up")
                .await?;
        }
        self.flush().await
    }

    async fn live(&mut self, mut sub: Subscription) -> Exit {
        let cfg = self.node.config.clone();
        let mut ping =
            tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
        let mut shutdown = self.node.shutdown_signal();
        // Made once, not per iteration: a fresh `changed()` after every batch would join and
        // leave the node-wide signal's waiter list, under its lock, every time.
        let shutdown = wait_shutdown(&mut shutdown);
        tokio::pin!(shutdown);
        let expiry = token_expiry(self.adm.claims.exp);
        tokio::pin!(expiry);
        loop {
            let pointer_due = self.guide.due();
            let step: Result<(), Exit> = tokio::select! {
                biased;
                () = &mut shutdown => Err(Exit::Close(CloseCode::Shutdown)),
                () = &mut expiry => Err(Exit::Close(CloseCode::TokenExpired)),
                inbound = self.next_inbound() => match inbound {
                    Ok(Some(msg)) => self.on_frame(&msg).await,
                    Ok(None) => Ok(()),
                    Err(exit) => Err(exit),
                },
                msg = sub.rx.recv() => self.on_room_msg(msg, &mut sub).await,
                () = sleep_until_due(pointer_due), if pointer_due.is_some() => {
                    match self.guide.take_due() {
                        Some(g) => self.relay(RelayedBody::Guide(g)).await,
                        None => Ok(()),
                    }
                }
                _ = ping.tick() => {
                    if self.last_inbound.elapsed() > cfg.idle_timeout {
                        Err(Exit::Close(CloseCode::IdleTimeout))
                    } else {
                        self.send(Message::Ping(Default::default()), None).await
                    }
                }
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Handles one message from the room's live stream, plus whatever else is already queued, and
    /// flushes once.
    async fn on_room_msg(
        &mut self,
        first: Result<RoomMsg, RecvError>,
        sub: &mut Subscription,
    ) -> Result<(), Exit> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(msg) = next.take() {
            match msg {
                Ok(RoomMsg::Entry(e)) => written += self.on_entry(e, &sub.head_bytes).await?,
                Ok(RoomMsg::Held(h)) => match h.entry() {
                    Some(e) => written += self.on_entry(e, &sub.head_bytes).await?,
                    // Dropped from the node's live window: this receiver is that far behind.
                    None if h.offset > self.last => {
                        self.overflow("bytes").await?;
                        written += 1;
                    }
                    None => {}
                },
                Ok(RoomMsg::Joined(m)) if *m != self.me => {
                    let frame = ServerFrame::MemberJoined {
                        member: Arc::unwrap_or_clone(m),
                    };
                    self.feed(encode_message(self.adm.codec, &frame), "member_joined")
                        .await?;
                    written += 1;
                }
                Ok(RoomMsg::Left(m)) if *m != self.me => {
                    let frame = ServerFrame::MemberLeft {
                        member: Arc::unwrap_or_clone(m),
                    };
                    self.feed(encode_message(self.adm.codec, &frame), "member_left")
                        .await?;
                    written += 1;
                }
                Ok(RoomMsg::Closed) => return Err(Exit::Close(CloseCode::RoomClosed)),
                Ok(RoomMsg::Relay(r)) => written += self.on_relayed(&r).await?,
                Ok(RoomMsg::Recover) => {
                    self.recover(ResyncReason::Lagged).await?;
                    written += 1;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "fell behind the room's buffer");
                    self.overflow("messages").await?;
                }
                Err(RecvError::Closed) => {
                    // The room's stream was torn down (its log was dropped or recreated):
                    // subscribe again and catch up from whatever the log now holds.
                    *sub = self.node.broker.subscribe(self.room()).await?;
                    self.recover(ResyncReason::EpochChanged).await?;
                }
            }
            if written < WRITE_BATCH {
                next = match sub.rx.try_recv() {
                    Ok(m) => Some(Ok(m)),
                    Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => None,
                };
            }
        }
        self.flush().await?;
        if sub.rx.is_empty() {
            self.behind_since = None;
        }
        Ok(())
    }

    /// Sends one live entry if it is next in order; recovers from the log on a gap, a new epoch, or
    /// a backlog over the byte bound. Returns how many frames were written.
    async fn on_entry(&mut self, e: Arc<Entry>, head_bytes: &AtomicU64) -> Result<usize, Exit> {
        if *e.epoch != *self.epoch {
            return self.recover(ResyncReason::EpochChanged).await.map(|()| 1);
        }
        if e.offset <= self.last {
            return Ok(0); // already sent in the catch-up or a recovery
        }
        let backlog = head_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(e.cum_bytes);
        if backlog > self.node.config.max_queue_bytes {
            self.overflow("bytes").await?;
            return Ok(1);
        }
        if e.offset > self.last + 1 {
            self.recover(ResyncReason::Lagged).await?;
            if e.offset <= self.last {
                return Ok(1);
            }
        }
        self.last = e.offset;
        if e.is_for(self.receives_events()) {
            self.feed_entry(&e).await?;
            self.unflushed.push(e.accepted_us);
            return Ok(1);
        }
        Ok(0)
    }

    /// The viewer's backlog passed a bound: skip it and recover from the log, unless the viewer
    /// has been behind for too long already.
    async fn overflow(&mut self, bound: &'static str) -> Result<(), Exit> {
        self.node
            .metrics
            .queue_overflows
            .with_label_values(&[bound])
            .inc();
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        if since.elapsed() > self.node.config.slow_timeout {
            return Err(Exit::Close(CloseCode::Slow));
        }
        self.recover(ResyncReason::Lagged).await
    }

    /// Brings the connection up to the log's head: a silent resume when everything after `last`
    /// is still in the log, otherwise a `resync` frame, the full state, and `caught_up`.
    async fn recover(&mut self, cause: ResyncReason) -> Result<(), Exit> {
        let node = self.node.clone();
        let request = CatchUpRequest {
            resume: Some(Position {
                epoch: self.epoch.to_string(),
                offset: self.last,
            }),
            events: self.receives_events(),
            chat_limit: node.config.chat_history,
        };
        let cu = node.log.catch_up(self.room(), request).await?;
        let resync = cu.mode != JoinMode::Resume;
        if resync {
            // Mid-stream, the cause (lag, a gap) is what the client and operator need to know;
            // a new epoch overrides it because the client must discard its offsets.
            let reason = match cu.reason {
                Some(ResyncReason::EpochChanged) => ResyncReason::EpochChanged,
                _ => cause,
            };
            node.metrics
                .resyncs
                .with_label_values(&[reason.as_str()])
                .inc();
            tracing::info!(reason = reason.as_str(), "resync");
            let frame = ServerFrame::Resync {
                epoch: cu.epoch.to_string(),
                reason,
            };
            self.feed(encode_message(self.adm.codec, &frame), "resync")
                .await?;
        }
        self.send_catch_up(&cu, resync).await
    }

    /// Handles one client frame after join.
    async fn on_frame(&mut self, msg: &Message) -> Result<(), Exit> {
        let Some(frame) = self.inbound(msg).await? else {
            return Ok(());
        };
        match frame {
            ClientFrame::Join { .. } => {
                self.send_error(ErrorCode::AlreadyJoined, "already joined".into(), None)
                    .await
            }
            ClientFrame::Ping { id } => self.send_frame(&ServerFrame::Pong { id }).await,
            ClientFrame::Event { id, event, head } => {
                if self.me.role != Role::Customer {
                    let msg = "only the customer publishes rrweb events";
                    return self.send_error(ErrorCode::Forbidden, msg.into(), id).await;
                }
                self.publish(id, event.into_owned(), head).await
            }
            ClientFrame::Chat { id, text } => {
                let ts = now_us() / 1000;
                let body = EntryBody::Chat {
                    id: id.clone(),
                    from: self.me.clone(),
                    text,
                    ts,
                };
                let entry = NewEntry {
                    body,
                    dedup: Some((self.me.id.clone(), id.clone())),
                    sender: Some(self.node.rates.rated(&self.me.id)),
                    page: None,
                };
                self.store(entry, Some(id), "chat").await.map(drop)
            }
            ClientFrame::Chunk {
                id,
                index,
                count,
                size,
                digest,
                data,
            } => {
                let chunk = Chunk {
                    id,
                    index,
                    count,
                    size,
                    digest,
                    data,
                };
                self.on_chunk(chunk).await
            }
            ClientFrame::NativePage { id, page } => self.on_native_page(id, page).await,
            ClientFrame::Guide { id, guide } => self.on_guide(id, guide).await,
            ClientFrame::Signal { id, to, signal } => self.on_signal(id, to, signal).await,
            ClientFrame::End => {
                if self.me.role != Role::Agent {
                    let msg = "only an agent ends the session";
                    return self
                        .send_error(ErrorCode::Forbidden, msg.into(), None)
                        .await;
                }
                let node = self.node.clone();
                let closed = node.close_room(self.room()).await?;
                crate::audit::session_ended(self.room(), &self.me.id, closed);
                // Everyone, this connection included, is closed by the room's `Closed` message.
                Ok(())
            }
        }
    }

    /// Masks, stores and acknowledges one rrweb event from this (customer) connection, records
    /// web pages in the timeline, and asks for a fresh snapshot when the room needs one.
    async fn publish(
        &mut self,
        id: Option<String>,
        mut event: Box<RawValue>,
        head: EventHead,
    ) -> Result<(), Exit> {
        let policy = self.mask_policy;
        if may_need_masking(policy, head.kind.as_u8(), head.source) {
            self.load_mask().await?;
            if let Some(mut mask) = self.mask.take() {
                // A big snapshot takes a parse and a walk (about 100 ms for 7 MB): off the
                // runtime's worker threads.
                let (mask_back, event_back, result) = if event.get().len() > BLOCKING_MASK_BYTES {
                    let job = tokio::task::spawn_blocking(move || {
                        let r = mask.mask(&event);
                        (mask, event, r)
                    });
                    match job.await {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::error!(error = %e, "masking task failed");
                            let msg = "masking failed; the event was not stored".to_owned();
                            return self.send_error(ErrorCode::Internal, msg, id).await;
                        }
                    }
                } else {
                    let r = mask.mask(&event);
                    (mask, event, r)
                };
                event = event_back;
                let mask = self.mask.insert(mask_back);
                match result {
                    Ok(Some(masked)) => {
                        self.node
                            .metrics
                            .masked_events
                            .with_label_values(&[policy.as_str()])
                            .inc();
                        event = masked;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let msg = format!("the event cannot be masked, so it was not stored: {e}");
                        return self.send_error(ErrorCode::InvalidEvent, msg, id).await;
                    }
                }
                let typed = mask.take_new_typed();
                if !typed.is_empty() {
                    let node = self.node.clone();
                    node.log.add_typed_hashes(self.room(), &typed).await?;
                }
            }
        }
        let page = match head.kind {
            EventKind::Meta => {
                self.meta = read_meta(&event);
                None
            }
            EventKind::FullSnapshot => Some(crate::pages::web_page(self.meta.as_ref(), &event)),
            _ => None,
        };
        let entry = NewEntry {
            body: EntryBody::Event {
                event,
                kind: head.kind,
                source: head.source,
            },
            dedup: id.as_ref().map(|i| (self.me.id.clone(), i.clone())),
            sender: Some(self.node.rates.rated(&self.me.id)),
            page,
        };
        if let Some(appended) = self.store(entry, id, head.kind.label()).await? {
            if head.kind == EventKind::FullSnapshot && !appended.duplicate {
                self.maybe_compact_live().await;
            }
            self.maybe_request_snapshot(&appended, head.kind).await?;
        }
        Ok(())
    }

    /// After a new keyframe, queues a live compaction of what lies below it (at most once per
    /// [`LIVE_COMPACTION_INTERVAL`]).
    async fn maybe_compact_live(&mut self) {
        if !self.node.config.log.keep_until_archived
            || self
                .compacted_at
                .is_some_and(|t| t.elapsed() < LIVE_COMPACTION_INTERVAL)
        {
            return;
        }
        self.compacted_at = Some(Instant::now());
        let node = self.node.clone();
        node.compact_live(self.room()).await;
    }

    /// Builds the masking state from the room's keyframe and tail (already masked) and the
    /// room's typed-value hashes, once per connection.
    async fn load_mask(&mut self) -> Result<(), Exit> {
        if self.mask.is_some() || self.mask_policy == MaskPolicy::None {
            return Ok(());
        }
        let node = self.node.clone();
        let mut mask = RoomMask::new(self.mask_policy, node.mask_key)
            .with_classes(node.config.mask_classes.clone());
        let state = node.log.log_state(self.room()).await?;
        let (after, room) = (state.floor.saturating_sub(1), self.room());
        crate::store::for_each_entry(&*node.log, room, after, state.head, MASK_PAGE_BYTES, |e| {
            if let EntryBody::Event { event, .. } = &e.body {
                mask.observe(event);
            }
        })
        .await?;
        mask.add_typed(node.log.typed_hashes(self.room()).await?);
        self.mask = Some(mask);
        Ok(())
    }

    /// Sends `snapshot_request` when the room's keyframe is a native placeholder but web-page
    /// events arrive, or when the tail after the keyframe is over the threshold; at most once per
    /// [`SNAPSHOT_REQUEST_INTERVAL`].
    async fn maybe_request_snapshot(&mut self, a: &Appended, kind: EventKind) -> Result<(), Exit> {
        if a.duplicate || matches!(kind, EventKind::Meta | EventKind::FullSnapshot) {
            return Ok(());
        }
        let threshold = self.node.config.snapshot_after_bytes;
        let reason = if a.native_keyframe && kind == EventKind::IncrementalSnapshot {
            SnapshotReason::NativePageLeft
        } else if threshold > 0 && a.tail_bytes > threshold {
            SnapshotReason::TailTooLarge
        } else {
            return Ok(());
        };
        if self
            .snapshot_asked
            .is_some_and(|t| t.elapsed() < SNAPSHOT_REQUEST_INTERVAL)
        {
            return Ok(());
        }
        self.snapshot_asked = Some(Instant::now());
        self.node
            .metrics
            .snapshot_requests
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::info!(
            reason = reason.as_str(),
            "asking the customer for a snapshot"
        );
        self.send_frame(&ServerFrame::SnapshotRequest { reason })
            .await
    }

    /// Stages one upload slice; stitches, checks and publishes the event when it completes.
    async fn on_chunk(&mut self, c: Chunk<'_>) -> Result<(), Exit> {
        let node = self.node.clone();
        let uploads = &node.metrics.uploads;
        if self.me.role != Role::Customer {
            let msg = "only the customer publishes rrweb events";
            return self
                .send_error(ErrorCode::Forbidden, msg.into(), Some(c.id))
                .await;
        }
        if c.size > node.config.max_upload_bytes {
            uploads.with_label_values(&["too_large"]).inc();
            let msg = format!(
                "an upload may be at most {} bytes",
                node.config.max_upload_bytes
            );
            return self.send_error(ErrorCode::TooLarge, msg, Some(c.id)).await;
        }
        node.metrics.upload_bytes.inc_by(c.data.len() as u64);
        let max_staged = node.config.log.max_staged_bytes;
        let limits = UploadLimits {
            max_uploads: node.config.max_uploads,
            ttl: node.config.upload_ttl,
            participant_share: crate::store::cap::participant_staging_share(
                max_staged,
                node.config.max_upload_bytes,
            ),
            room_share: crate::store::cap::room_staging_share(
                max_staged,
                node.config.max_upload_bytes,
            ),
        };
        let chunk = ChunkIn {
            sender: &self.me.id,
            upload: &c.id,
            index: c.index,
            count: c.count,
            size: c.size,
            digest: &c.digest,
            data: c.data.as_bytes(),
        };
        let staged = match node.log.stage_chunk(self.room(), chunk, limits).await {
            Ok(s) => s,
            Err(e) => return self.store_failed(e, Some(c.id)).await,
        };
        let whole = match staged {
            Staged::Partial { first: true } => {
                // A resend after a lost final `ack`: the event is stored already.
                if let Some(offset) = node
                    .log
                    .stored_offset(self.room(), &self.me.id, &c.id)
                    .await?
                {
                    node.log
                        .drop_upload(self.room(), &self.me.id, &c.id)
                        .await?;
                    let ack = ServerFrame::Ack {
                        id: c.id,
                        offset,
                        duplicate: true,
                    };
                    return self.send_frame(&ack).await;
                }
                let ack = ServerFrame::ChunkAck {
                    id: c.id,
                    index: c.index,
                };
                return self.send_frame(&ack).await;
            }
            Staged::Partial { first: false } => {
                let ack = ServerFrame::ChunkAck {
                    id: c.id,
                    index: c.index,
                };
                return self.send_frame(&ack).await;
            }
            Staged::TooMany => {
                uploads.with_label_values(&["limit"]).inc();
                let msg = format!(
                    "too many uploads in progress (at most {} per participant), or the staging \
                     share of this participant, room or node is full; finish one, or resend this \
                     slice later",
                    node.config.max_uploads
                );
                return self
                    .send_error(ErrorCode::UploadLimit, msg, Some(c.id))
                    .await;
            }
            Staged::Mismatch(why) => {
                uploads.with_label_values(&["invalid"]).inc();
                let msg = format!("upload discarded: {why}");
                return self
                    .send_error(ErrorCode::UploadInvalid, msg, Some(c.id))
                    .await;
            }
            Staged::Complete(whole) => whole,
        };
        let ack = ServerFrame::ChunkAck {
            id: c.id.clone(),
            index: c.index,
        };
        self.send_frame(&ack).await?;
        let checked = check_upload(whole, &c.digest);
        let event = match checked {
            Ok(e) => e,
            Err((code, why)) => {
                uploads.with_label_values(&["invalid"]).inc();
                node.log
                    .drop_upload(self.room(), &self.me.id, &c.id)
                    .await?;
                let msg = format!("upload discarded: {why}");
                return self.send_error(code, msg, Some(c.id)).await;
            }
        };
        let head = match EventHead::scan(&event) {
            Ok(h) => h,
            Err(e) => {
                uploads.with_label_values(&["invalid"]).inc();
                node.log
                    .drop_upload(self.room(), &self.me.id, &c.id)
                    .await?;
                return self
                    .send_error(ErrorCode::InvalidEvent, e.to_string(), Some(c.id))
                    .await;
            }
        };
        self.publish(Some(c.id.clone()), event, head).await?;
        uploads.with_label_values(&["stored"]).inc();
        node.log
            .drop_upload(self.room(), &self.me.id, &c.id)
            .await?;
        Ok(())
    }

    /// Relays guidance to the room's customers: agents with the `guide` capability only; pointer
    /// moves over the rate are coalesced, other guidance over it is refused.
    async fn on_guide(&mut self, id: Option<String>, guide: Guidance) -> Result<(), Exit> {
        if self.me.role != Role::Agent {
            let msg = "only agents guide";
            return self.send_error(ErrorCode::Forbidden, msg.into(), id).await;
        }
        if !self.adm.claims.can(Capability::Guide) {
            let msg = "the token lacks the guide capability";
            return self.send_error(ErrorCode::Forbidden, msg.into(), id).await;
        }
        if guide.is_pointer() {
            return match self.guide.pointer(guide) {
                Some(g) => self.relay(RelayedBody::Guide(g)).await,
                None => {
                    self.node
                        .metrics
                        .rate_limited
                        .with_label_values(&["coalesced"])
                        .inc();
                    Ok(())
                }
            };
        }
        if !self.guide.guide() {
            return self.guide_rate_limited(id).await;
        }
        self.relay(RelayedBody::Guide(guide)).await
    }

    /// Relays a call signaling message to the other role (or one participant of it).
    async fn on_signal(
        &mut self,
        id: Option<String>,
        to: Option<String>,
        signal: Signal,
    ) -> Result<(), Exit> {
        if !self.adm.claims.can(Capability::Call) {
            let msg = "the token lacks the call capability";
            return self.send_error(ErrorCode::Forbidden, msg.into(), id).await;
        }
        if to.as_deref() == Some(self.me.id.as_str()) {
            let msg = "a signal goes to a participant of the other role";
            return self
                .send_error(ErrorCode::InvalidFrame, msg.into(), id)
                .await;
        }
        if !self.guide.signal() {
            return self.guide_rate_limited(id).await;
        }
        self.relay(RelayedBody::Signal { to, signal }).await
    }

    async fn guide_rate_limited(&mut self, id: Option<String>) -> Result<(), Exit> {
        self.node
            .metrics
            .rate_limited
            .with_label_values(&["refused"])
            .inc();
        let text = "over this connection's guidance or signaling rate; slow down";
        self.send_error(ErrorCode::RateLimited, text.into(), id)
            .await
    }

    /// Publishes on the room's live stream (every node); nothing is stored.
    async fn relay(&mut self, body: RelayedBody) -> Result<(), Exit> {
        let node = self.node.clone();
        let msg = Relayed::new(self.me.clone(), body);
        node.broker.relay(self.room(), msg).await?;
        Ok(())
    }

    /// Delivers relayed guidance or signaling meant for this connection. Guidance follows the
    /// entry at its offset: one that predates what this connection has already been sent is
    /// stale and dropped; one ahead of it waits for the log to catch up first.
    async fn on_relayed(&mut self, r: &Relayed) -> Result<usize, Exit> {
        if !r.is_for(&self.me) {
            return Ok(0);
        }
        if r.is_guide() {
            let same_epoch = r.epoch.is_empty() || *r.epoch == *self.epoch;
            if !same_epoch || r.offset < self.last {
                return Ok(0);
            }
            if r.offset > self.last {
                self.recover(ResyncReason::Lagged).await?;
            }
        }
        self.feed(r.message(self.adm.codec), r.type_name()).await?;
        Ok(1)
    }

    /// Stores a native-page placeholder reported by the app.
    async fn on_native_page(&mut self, id: Option<String>, page: NativePage) -> Result<(), Exit> {
        let node = self.node.clone();
        if self.me.role != Role::Customer {
            let msg = "only the customer reports native pages";
            return self.send_error(ErrorCode::Forbidden, msg.into(), id).await;
        }
        let viewport = self
            .meta
            .as_ref()
            .filter(|m| m.width > 0 && m.height > 0)
            .map_or(crate::pages::DEFAULT_VIEWPORT, |m| (m.width, m.height));
        let stored = crate::pages::store_native_page(
            node.log.as_ref(),
            &node.templates,
            self.room(),
            &page,
            &self.me.id,
            id.as_deref(),
            viewport,
        )
        .await;
        match stored {
            Ok(appended) => {
                if !appended.duplicate {
                    node.metrics
                        .native_pages
                        .with_label_values(&["frame"])
                        .inc();
                    node.metrics
                        .appends
                        .with_label_values(&["native_page"])
                        .inc();
                }
                match id {
                    Some(id) => {
                        let ack = ServerFrame::Ack {
                            id,
                            offset: appended.offset,
                            duplicate: appended.duplicate,
                        };
                        self.send_frame(&ack).await
                    }
                    None => Ok(()),
                }
            }
            Err(crate::pages::NativePageError::Invalid(e)) => {
                self.send_error(ErrorCode::InvalidFrame, e.to_string(), id)
                    .await
            }
            Err(crate::pages::NativePageError::Store(e)) => self.store_failed(e, id).await,
        }
    }

    /// Appends to the room log and acknowledges when the client gave an id. Returns the append
    /// (`None` never: a failed append ends the connection).
    async fn store(
        &mut self,
        entry: NewEntry,
        id: Option<String>,
        kind: &'static str,
    ) -> Result<Option<Appended>, Exit> {
        let node = self.node.clone();
        match node.log.append(self.room(), entry).await {
            Ok(appended) => {
                if !appended.duplicate {
                    node.metrics.appends.with_label_values(&[kind]).inc();
                }
                if let Some(id) = id {
                    let ack = ServerFrame::Ack {
                        id,
                        offset: appended.offset,
                        duplicate: appended.duplicate,
                    };
                    self.send_frame(&ack).await?;
                }
                Ok(Some(appended))
            }
            Err(e) => self.store_failed(e, id).await.map(|()| None),
        }
    }

    /// An append failed: tell the client and close, so that it resends in order.
    async fn store_failed(&mut self, e: StoreError, id: Option<String>) -> Result<(), Exit> {
        if matches!(e, StoreError::Closed) {
            return Err(Exit::Close(CloseCode::RoomClosed));
        }
        if let StoreError::LogFull(why) = e {
            // Nothing was stored and nothing after it depends on it: refuse it and go on.
            return self.send_error(ErrorCode::LogFull, why.into(), id).await;
        }
        if matches!(e, StoreError::RateLimited) {
            self.node
                .metrics
                .rate_limited
                .with_label_values(&["refused"])
                .inc();
            let msg = "over the participant's or the room's rate across nodes; resend later \
                       with the same id";
            return self
                .send_error(ErrorCode::RateLimited, msg.into(), id)
                .await;
        }
        if self.node.metrics.may_log() {
            tracing::warn!(error = %e, "append failed; closing so the client resends in order");
        }
        // Frames already queued behind this one must not be stored ahead of its resend:
        // stop here, and let the client reconnect, resume and resend in order.
        let msg = "the room store is unavailable; reconnect, resume and resend from this id";
        self.send_error(ErrorCode::Unavailable, msg.into(), id)
            .await?;
        Err(Exit::Close(CloseCode::Unavailable))
    }

    /// Writes an entry's frames (one, or its chunks) without flushing.
    async fn feed_entry(&mut self, e: &Entry) -> Result<(), Exit> {
        let max_frame = self.node.config.max_frame_bytes;
        let kind = e.type_name();
        let frames = e.messages(self.adm.codec, max_frame);
        if frames.len() == 1 {
            return self.feed(frames[0].clone(), kind).await;
        }
        for m in frames {
            self.feed(m.clone(), "chunk").await?;
        }
        Ok(())
    }

    /// Decodes a client frame and holds it to the connection's rates. `None` when the frame was
    /// refused (the client has been told why).
    async fn inbound<'m>(&mut self, msg: &'m Message) -> Result<Option<ClientFrame<'m>>, Exit> {
        let frame = match self.decode(msg) {
            Ok(f) => f,
            Err(e) => {
                self.send_error(e.code(), e.to_string(), None).await?;
                return Ok(None);
            }
        };
        match self.limits.admit(&self.node.rates, msg.len()).await {
            Admit::Now => Ok(Some(frame)),
            Admit::Delayed => {
                // The sender was slowed rather than refused: while this task waited, TCP
                // backpressure held its next frames.
                self.node
                    .metrics
                    .rate_limited
                    .with_label_values(&["delayed"])
                    .inc();
                Ok(Some(frame))
            }
            Admit::Refused => {
                self.node
                    .metrics
                    .rate_limited
                    .with_label_values(&["refused"])
                    .inc();
                let id = frame_id(&frame);
                let text = "over the rate limit of this connection, participant or room; resend \
                            later with the same id";
                self.send_error(ErrorCode::RateLimited, text.into(), id)
                    .await?;
                Ok(None)
            }
        }
    }

    fn decode<'m>(&self, msg: &'m Message) -> Result<ClientFrame<'m>, ProtoError> {
        let codec = self.adm.codec;
        let bytes: &[u8] = match (msg, codec.is_binary()) {
            (Message::Text(t), false) => t.as_bytes(),
            (Message::Binary(b), true) => b,
            _ => {
                self.node
                    .metrics
                    .frames_in
                    .with_label_values(&["invalid"])
                    .inc();
                let expected = if codec.is_binary() { "binary" } else { "text" };
                return Err(ProtoError::WrongFrameKind { expected });
            }
        };
        let result = ClientFrame::decode(codec, bytes);
        let label = match &result {
            Ok(f) => f.type_name(),
            Err(_) => "invalid",
        };
        self.node
            .metrics
            .frames_in
            .with_label_values(&[label])
            .inc();
        result
    }

    /// The next data message from the client. `Ok(None)` for control frames (already handled).
    async fn next_inbound(&mut self) -> Result<Option<Message>, Exit> {
        // After tungstenite found no whole frame (it read until the socket would block), wait
        // for the socket before asking again: every attempt zero-fills its read buffer first, and
        // the live loop asks after every batch it writes. After a frame, ask at once: more whole
        // frames may be buffered, whatever the socket's readiness says.
        if self.read_blocked {
            let _ = std::future::poll_fn(|cx| self.ws.get_ref().poll_read_ready(cx)).await;
        }
        let next = std::future::poll_fn(|cx| {
            let next = self.ws.poll_next_unpin(cx);
            self.read_blocked = next.is_pending();
            next
        })
        .await;
        let msg = match next {
            None => return Err(Exit::PeerGone),
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(classify(e)),
        };
        self.last_inbound = Instant::now();
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                self.node.metrics.bytes_in.inc_by(msg.len() as u64);
                Ok(Some(msg))
            }
            Message::Close(_) => {
                // tungstenite queued the close reply; push it out.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                Err(Exit::PeerGone)
            }
            // tungstenite queued the pong; a read would send it, but the next read now waits
            // for the socket, so push it out here.
            Message::Ping(_) => self.flush().await.map(|()| None),
            Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

    /// Sends an error frame. Errors the client caused draw on its violation budget; when that is
    /// spent the connection is closed with 4501.
    async fn send_error(
        &mut self,
        code: ErrorCode,
        message: String,
        id: Option<String>,
    ) -> Result<(), Exit> {
        self.node
            .metrics
            .errors
            .with_label_values(&[code.as_str()])
            .inc();
        tracing::debug!(code = code.as_str(), %message, "error frame");
        self.send_frame(&ServerFrame::Error { code, message, id })
            .await?;
        let client_fault = !matches!(code, ErrorCode::Unavailable | ErrorCode::Internal);
        if client_fault && self.limits.violations.check().is_err() {
            tracing::info!(code = code.as_str(), "violation budget spent");
            return Err(Exit::Close(CloseCode::PolicyViolation));
        }
        Ok(())
    }

    async fn send_frame(&mut self, frame: &ServerFrame<'_>) -> Result<(), Exit> {
        self.send(
            encode_message(self.adm.codec, frame),
            Some(frame.type_name()),
        )
        .await
    }

    async fn send(&mut self, msg: Message, kind: Option<&'static str>) -> Result<(), Exit> {
        self.feed_inner(msg, kind).await?;
        self.flush().await
    }

    async fn feed(&mut self, msg: Message, kind: &'static str) -> Result<(), Exit> {
        self.feed_inner(msg, Some(kind)).await
    }

    async fn feed_inner(&mut self, msg: Message, kind: Option<&'static str>) -> Result<(), Exit> {
        let len = msg.len() as u64;
        match within(self.node.config.write_timeout, self.ws.feed(msg)).await {
            Some(Ok(())) => {
                self.tally.count(&self.node.metrics, kind, len);
                Ok(())
            }
            Some(Err(e)) => Err(classify(e)),
            None => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    async fn flush(&mut self) -> Result<(), Exit> {
        let flushed = within(self.node.config.write_timeout, self.ws.flush()).await;
        self.tally.publish(&self.node.metrics);
        match flushed {
            Some(Ok(())) => {
                let latency = &self.node.metrics.fanout_latency;
                let now = now_us();
                let secs = |accepted: u64| now.saturating_sub(accepted) as f64 / 1e6;
                match self.unflushed.len() {
                    0 => {}
                    1 => latency.observe(secs(self.unflushed[0])),
                    _ => {
                        // One update of the shared histogram per batch, not one per frame.
                        let local = latency.local();
                        for &accepted in &self.unflushed {
                            local.observe(secs(accepted));
                        }
                        local.flush();
                    }
                }
                self.unflushed.clear();
                Ok(())
            }
            Some(Err(e)) => Err(classify(e)),
            None => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    /// Sends the close frame for `exit` (bounded in time) and records why.
    async fn finish(mut self, exit: Exit) {
        self.tally.publish(&self.node.metrics);
        let frame = match exit {
            Exit::PeerGone => None,
            Exit::Close(code) => Some(CloseFrame {
                code: WsCloseCode::from(code.code()),
                reason: code.reason().into(),
            }),
            Exit::Standard(code, reason) => Some(CloseFrame {
                code,
                reason: reason.into(),
            }),
        };
        // Bounded label set: our close reasons, the standard ones we use, and `peer`.
        let reason = frame.as_ref().map_or("peer", |f| f.reason.as_str());
        let label = match reason {
            "peer" | "too_large" | "protocol_error" => reason,
            r => CloseCode::ALL
                .iter()
                .map(|c| c.reason())
                .find(|c| *c == r)
                .unwrap_or("other"),
        };
        self.node.metrics.closes.with_label_values(&[label]).inc();
        tracing::info!(reason = label, "connection closed");
        if let Some(frame) = frame {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(Some(frame))).await;
        }
    }
}

/// Frames and bytes written since the last flush. They go into `relay_frames_out_total` and
/// `relay_bytes_out_total` once per flush (per run of one frame type), not once per frame: a
/// labelled counter costs a hash and a shared lock to find.
#[derive(Default)]
struct OutTally {
    kind: Option<&'static str>,
    frames: u64,
    bytes: u64,
}

impl OutTally {
    fn count(&mut self, metrics: &crate::telemetry::Metrics, kind: Option<&'static str>, len: u64) {
        self.bytes += len;
        let Some(kind) = kind else { return };
        if self.kind != Some(kind) {
            self.publish_frames(metrics);
            self.kind = Some(kind);
        }
        self.frames += 1;
    }

    fn publish_frames(&mut self, metrics: &crate::telemetry::Metrics) {
        if let (Some(kind), 1..) = (self.kind, self.frames) {
            metrics
                .frames_out
                .with_label_values(&[kind])
                .inc_by(self.frames);
        }
        self.frames = 0;
    }

    fn publish(&mut self, metrics: &crate::telemetry::Metrics) {
        self.publish_frames(metrics);
        if self.bytes > 0 {
            metrics.bytes_out.inc_by(self.bytes);
            self.bytes = 0;
        }
    }
}

/// Runs `io`, or gives up after `limit`. The timer is armed only if the first poll does not
/// finish it: most writes only fill the write buffer, and most flushes go out at once.
async fn within<F: std::future::Future>(limit: Duration, io: F) -> Option<F::Output> {
    let mut io = std::pin::pin!(io);
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(io.as_mut(), cx))
    })
    .await;
    match first {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, io).await.ok(),
    }
}

/// Whether `e` is a pointer move that a later entry of the same source makes redundant (the
/// replayer only needs the pointer's latest position). Mutations and every other event are kept.
fn superseded_pointer_move(e: &Entry, later: &[&Arc<Entry>]) -> bool {
    let EntryBody::Event {
        source: Some(src), ..
    } = e.body
    else {
        return false;
    };
    POINTER_SOURCES.contains(&src)
        && later
            .iter()
            .any(|l| matches!(l.body, EntryBody::Event { source: Some(s), .. } if s == src))
}

/// An upload slice as received.
struct Chunk<'a> {
    id: String,
    index: u32,
    count: u32,
    size: u64,
    digest: String,
    data: ChunkData<'a>,
}

/// Checks a stitched upload against its digest and reads it as one JSON value.
fn check_upload(whole: Vec<u8>, digest: &str) -> Result<Box<RawValue>, (ErrorCode, String)> {
    use sha2::Digest;
    let actual = hex::encode(sha2::Sha256::digest(&whole));
    let expected = digest
        .strip_prefix(assist_relay_proto::chunk::DIGEST_PREFIX)
        .unwrap_or(digest);
    if actual != expected {
        return Err((
            ErrorCode::UploadInvalid,
            format!("digest mismatch: the stitched event hashes to sha256:{actual}"),
        ));
    }
    let text = String::from_utf8(whole)
        .map_err(|_| (ErrorCode::InvalidEvent, "the event is not UTF-8".to_owned()))?;
    RawValue::from_string(text).map_err(|e| {
        (
            ErrorCode::InvalidEvent,
            format!("the event is not JSON: {e}"),
        )
    })
}

fn frame_id(frame: &ClientFrame<'_>) -> Option<String> {
    match frame {
        ClientFrame::Event { id, .. }
        | ClientFrame::Ping { id }
        | ClientFrame::NativePage { id, .. }
        | ClientFrame::Guide { id, .. }
        | ClientFrame::Signal { id, .. } => id.clone(),
        ClientFrame::Chat { id, .. } | ClientFrame::Chunk { id, .. } => Some(id.clone()),
        ClientFrame::Join { .. } | ClientFrame::End => None,
    }
}

fn classify(e: tungstenite::Error) -> Exit {
    match e {
        tungstenite::Error::Capacity(_) => Exit::Standard(WsCloseCode::Size, "too_large"),
        // A peer that vanished without a closing handshake is gone, not misbehaving.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Exit::PeerGone,
        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
            Exit::Standard(WsCloseCode::Protocol, "protocol_error")
        }
        _ => Exit::PeerGone,
    }
}

/// Resolves once the node starts draining.
async fn wait_shutdown(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves at `due` (never without one).
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the token's `exp` passes.
async fn token_expiry(exp: u64) {
    let now = now_us() / 1_000_000;
    tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
}
