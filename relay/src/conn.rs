//! One task per connection: join, catch-up, then one `select!` over the client's frames, the room's
//! live stream, the ping timer, token expiry and shutdown.
//!
//! Ordering without gaps or duplicates rests on one rule: subscribe to the room *before* reading the
//! catch-up, then drop live entries at or below the last offset already sent. An entry above
//! `last + 1`, a lagged receiver, or a new epoch sends the connection through [`Conn::recover`],
//! which resumes from the log when it can and resyncs (clearly marked) when it cannot.

use std::sync::Arc;
use std::time::Duration;

use assist_relay_proto::{
    ClientFrame, CloseCode, ErrorCode, JoinMode, Member, Position, ProtoError, ResyncReason, Role,
    ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::auth::Admission;
use crate::server::Node;
use crate::store::{
    encode_message, CatchUpRequest, Entry, EntryBody, NewEntry, RoomMsg, StoreError, Subscription,
};

/// Live entries written before one flush.
const WRITE_BATCH: usize = 64;

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

impl From<StoreError> for Exit {
    fn from(e: StoreError) -> Exit {
        tracing::warn!(error = %e, "room store failed; closing so the client resumes elsewhere");
        Exit::Close(CloseCode::Unavailable)
    }
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
    let mut conn = Conn {
        node: node.clone(),
        ws,
        adm,
        me,
        conn_id,
        epoch: Arc::from(""),
        last: 0,
        last_inbound: Instant::now(),
    };
    let mut entered = false;
    let exit = conn.session(&mut entered).await;
    if entered {
        if let Err(e) = node
            .broker
            .exit(&conn.adm.claims.room, &conn.me, conn_id)
            .await
        {
            tracing::warn!(error = %e, "presence exit failed");
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
        let join = tokio::time::timeout(self.node.config.join_timeout, self.await_join()).await;
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
            match self.decode(&msg) {
                Ok(ClientFrame::Join { resume }) => return Ok(resume),
                Ok(ClientFrame::Ping { id }) => self.send_frame(&ServerFrame::Pong { id }).await?,
                Ok(other) => {
                    let id = frame_id(&other);
                    self.send_error(ErrorCode::NotJoined, "send join first".into(), id)
                        .await?
                }
                Err(e) => self.send_error(e.code(), e.to_string(), None).await?,
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
        let members = node.broker.enter(&room, &self.me, self.conn_id).await?;
        *entered = true;
        let cu = node
            .log
            .catch_up(
                &room,
                CatchUpRequest {
                    resume,
                    events: self.receives_events(),
                    chat_limit: node.config.chat_history,
                },
            )
            .await?;
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
        self.epoch = cu.epoch.clone();
        let joined = ServerFrame::Joined {
            room: room.clone(),
            epoch: cu.epoch.to_string(),
            you: self.me.clone(),
            members,
            mode: cu.mode,
            reason: cu.reason,
            head: cu.head,
        };
        self.feed(encode_message(self.adm.codec, &joined), "joined")
            .await?;
        for e in &cu.entries {
            self.feed(e.message(self.adm.codec), e.frame().type_name())
                .await?;
        }
        self.last = cu.head;
        self.feed(
            encode_message(self.adm.codec, &ServerFrame::CaughtUp { offset: cu.head }),
            "caught_up",
        )
        .await?;
        self.flush().await?;
        Ok(sub)
    }

    async fn live(&mut self, mut sub: Subscription) -> Exit {
        let cfg = self.node.config.clone();
        let mut ping =
            tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
        let mut shutdown = self.node.shutdown_signal();
        let expiry = token_expiry(self.adm.claims.exp);
        tokio::pin!(expiry);
        loop {
            let step: Result<(), Exit> = tokio::select! {
                biased;
                () = wait_shutdown(&mut shutdown) => Err(Exit::Close(CloseCode::Shutdown)),
                () = &mut expiry => Err(Exit::Close(CloseCode::TokenExpired)),
                inbound = self.next_inbound() => match inbound {
                    Ok(Some(msg)) => self.on_frame(&msg).await,
                    Ok(None) => Ok(()),
                    Err(exit) => Err(exit),
                },
                msg = sub.rx.recv() => self.on_room_msg(msg, &mut sub).await,
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

    /// Handles one message from the room's live stream, plus whatever else is already queued.
    async fn on_room_msg(
        &mut self,
        first: Result<RoomMsg, RecvError>,
        sub: &mut Subscription,
    ) -> Result<(), Exit> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(msg) = next.take() {
            match msg {
                Ok(RoomMsg::Entry(e)) => written += self.on_entry(e).await?,
                Ok(RoomMsg::Joined(m)) if m != self.me => {
                    self.feed(
                        encode_message(self.adm.codec, &ServerFrame::MemberJoined { member: m }),
                        "member_joined",
                    )
                    .await?;
                    written += 1;
                }
                Ok(RoomMsg::Left(m)) if m != self.me => {
                    self.feed(
                        encode_message(self.adm.codec, &ServerFrame::MemberLeft { member: m }),
                        "member_left",
                    )
                    .await?;
                    written += 1;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "fell behind the room; recovering from the log");
                    self.recover(ResyncReason::Lagged).await?;
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
        self.flush().await
    }

    /// Sends one live entry if it is next in order; recovers from the log on a gap or a new epoch.
    /// Returns how many frames were written.
    async fn on_entry(&mut self, e: Arc<Entry>) -> Result<usize, Exit> {
        if *e.epoch != *self.epoch {
            return self.recover(ResyncReason::EpochChanged).await.map(|()| 1);
        }
        if e.offset <= self.last {
            return Ok(0); // already sent in the catch-up or a recovery
        }
        if e.offset > self.last + 1 {
            self.recover(ResyncReason::Lagged).await?;
            if e.offset <= self.last {
                return Ok(1);
            }
        }
        self.last = e.offset;
        if e.is_for(self.receives_events()) {
            self.feed(e.message(self.adm.codec), e.frame().type_name())
                .await?;
            return Ok(1);
        }
        Ok(0)
    }

    /// Brings the connection up to the log's head: a silent resume when everything after `last`
    /// is still in the log, otherwise a `resync` frame, the full state, and `caught_up`.
    async fn recover(&mut self, cause: ResyncReason) -> Result<(), Exit> {
        let node = self.node.clone();
        let cu = node
            .log
            .catch_up(
                self.room(),
                CatchUpRequest {
                    resume: Some(Position {
                        epoch: self.epoch.to_string(),
                        offset: self.last,
                    }),
                    events: self.receives_events(),
                    chat_limit: node.config.chat_history,
                },
            )
            .await?;
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
        for e in &cu.entries {
            if resync || e.offset > self.last {
                self.feed(e.message(self.adm.codec), e.frame().type_name())
                    .await?;
            }
        }
        self.epoch = cu.epoch;
        self.last = if resync {
            cu.head
        } else {
            self.last.max(cu.head)
        };
        if resync {
            self.feed(
                encode_message(self.adm.codec, &ServerFrame::CaughtUp { offset: self.last }),
                "caught_up",
            )
            .await?;
        }
        self.flush().await
    }

    /// Handles one client frame after join.
    async fn on_frame(&mut self, msg: &Message) -> Result<(), Exit> {
        let frame = match self.decode(msg) {
            Ok(f) => f,
            Err(e) => return self.send_error(e.code(), e.to_string(), None).await,
        };
        match frame {
            ClientFrame::Join { .. } => {
                self.send_error(ErrorCode::AlreadyJoined, "already joined".into(), None)
                    .await
            }
            ClientFrame::Ping { id } => self.send_frame(&ServerFrame::Pong { id }).await,
            ClientFrame::Event { id, event, head } => {
                if self.me.role != Role::Customer {
                    return self
                        .send_error(
                            ErrorCode::Forbidden,
                            "only the customer publishes rrweb events".into(),
                            id,
                        )
                        .await;
                }
                let body = EntryBody::Event {
                    event: event.into_owned(),
                    kind: head.kind,
                };
                self.store(body, id, head.kind.label()).await
            }
            ClientFrame::Chat { id, text } => {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let body = EntryBody::Chat {
                    id: id.clone(),
                    from: self.me.clone(),
                    text,
                    ts,
                };
                self.store(body, Some(id), "chat").await
            }
        }
    }

    /// Appends to the room log and acknowledges when the client gave an id.
    async fn store(
        &mut self,
        body: EntryBody,
        id: Option<String>,
        kind: &'static str,
    ) -> Result<(), Exit> {
        let node = self.node.clone();
        let dedup = id.as_ref().map(|i| (self.me.id.clone(), i.clone()));
        match node.log.append(self.room(), NewEntry { body, dedup }).await {
            Ok(appended) => {
                if !appended.duplicate {
                    node.metrics.appends.with_label_values(&[kind]).inc();
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
            Err(e) => {
                tracing::warn!(error = %e, "append failed");
                self.send_error(
                    ErrorCode::Unavailable,
                    "the room store is unavailable; resend with the same id".into(),
                    id,
                )
                .await
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
        let msg = match self.ws.next().await {
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
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

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
            .await
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
        match tokio::time::timeout(self.node.config.write_timeout, self.ws.feed(msg)).await {
            Ok(Ok(())) => {
                if let Some(kind) = kind {
                    self.node
                        .metrics
                        .frames_out
                        .with_label_values(&[kind])
                        .inc();
                }
                self.node.metrics.bytes_out.inc_by(len);
                Ok(())
            }
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    async fn flush(&mut self) -> Result<(), Exit> {
        match tokio::time::timeout(self.node.config.write_timeout, self.ws.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    /// Sends the close frame for `exit` (bounded in time) and records why.
    async fn finish(mut self, exit: Exit) {
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
        let reason = frame.as_ref().map_or("peer", |f| {
            if f.reason.is_empty() {
                "standard"
            } else {
                f.reason.as_str()
            }
        });
        // Bounded label set: our close reasons plus a few standard ones.
        let label = match reason {
            "peer" | "too_large" | "protocol_error" => reason,
            r if CloseCode::ALL.iter().any(|c| c.reason() == r) => r,
            _ => "other",
        };
        self.node.metrics.closes.with_label_values(&[label]).inc();
        tracing::info!(reason, "connection closed");
        if let Some(frame) = frame {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(Some(frame))).await;
        }
    }
}

fn frame_id(frame: &ClientFrame<'_>) -> Option<String> {
    match frame {
        ClientFrame::Event { id, .. } | ClientFrame::Ping { id } => id.clone(),
        ClientFrame::Chat { id, .. } => Some(id.clone()),
        ClientFrame::Join { .. } => None,
    }
}

fn classify(e: tungstenite::Error) -> Exit {
    match e {
        tungstenite::Error::Capacity(_) => Exit::Standard(WsCloseCode::Size, "too_large"),
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

/// Resolves when the token's `exp` passes.
async fn token_expiry(exp: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
}
