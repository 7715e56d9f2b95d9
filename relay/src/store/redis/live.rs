//! One room's live stream on this node: the ordering state the pub/sub reader and the room's
//! pump share ([`Live`]), the pump that fetches referenced payloads and fills gaps from the log,
//! and the recovery request. It does not read the pub/sub connection (see `bus`) and knows
//! nothing of WebSocket frames: it hands ordered entries to the hub's room ([`crate::hub`]), which
//! rings them for the node's local members.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus::IntCounter;
use redis::streams::StreamRangeReply;
use redis::AsyncCommands;
use tokio::sync::{mpsc, watch};

use super::body::{decode_body, parse_entries, parse_member, parse_published};
use super::commands::{lock, unavailable, Commands};
use super::keys::Keys;
use super::shared::Inner;
use crate::hub::Room;
use crate::hub::{Entry, EntryBody, RoomMsg};
use crate::store::StoreError;

/// What the reader hands a room's pump.
pub(super) enum Inbound {
    Published(bytes::Bytes),
    Recover,
}

/// What this backend keeps for a room with live subscribers on this node, as the feed of the
/// hub's room ([`crate::hub::Room::feed`]): it lives exactly as long as the room has subscribers
/// here (the hub is the one registry of them), and dropping it stops the pump and unsubscribes
/// the channel.
pub(super) struct Feed {
    room: String,
    inner: Weak<Inner>,
    pub(super) inbox: mpsc::Sender<Inbound>,
    pub(super) live: Arc<Live>,
    /// Becomes `Some(result)` once the SUBSCRIBE is confirmed (or failed).
    pub(super) ready: watch::Receiver<Option<Result<(), StoreError>>>,
    pub(super) ready_tx: watch::Sender<Option<Result<(), StoreError>>>,
    pub(super) recover_pending: Arc<AtomicBool>,
    /// The channel's first subscription confirmation was seen: any later one is a
    /// resubscription after the connection came back.
    pub(super) confirmed: AtomicBool,
    pump: tokio::task::JoinHandle<()>,
}

impl Feed {
    /// Starts the room's pump; the caller subscribes the channel.
    pub(super) fn start(
        inner: &Arc<Inner>,
        room: &str,
        hub_room: Weak<Room>,
        inbox: usize,
    ) -> Feed {
        let (inbox_tx, inbox_rx) = mpsc::channel(inbox);
        let (ready_tx, ready_rx) = watch::channel(None);
        let live = Arc::new(Live::new(hub_room));
        let pump = tokio::spawn(pump(
            inner.conn.clone(),
            inner.metrics.gap_fills.clone(),
            room.to_owned(),
            inbox_rx,
            live.clone(),
        ));
        Feed {
            room: room.to_owned(),
            inner: Arc::downgrade(inner),
            inbox: inbox_tx,
            live,
            ready: ready_rx,
            ready_tx,
            recover_pending: Arc::new(AtomicBool::new(false)),
            confirmed: AtomicBool::new(false),
            pump,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(inner) = self.inner.upgrade() {
            inner.unsubscribe_channel(std::mem::take(&mut self.room));
        }
    }
}

pub(super) fn request_recover(r: &Feed) {
    if !r.recover_pending.swap(true, Ordering::SeqCst) {
        // Counted now, so the reader queues what follows behind the recovery.
        lock(&r.live.state).queued += 1;
        let inbox = r.inbox.clone();
        let flag = r.recover_pending.clone();
        let live = r.live.clone();
        tokio::spawn(async move {
            if inbox.send(Inbound::Recover).await.is_err() {
                let mut st = lock(&live.state);
                st.queued = st.queued.saturating_sub(1);
            }
            flag.store(false, Ordering::SeqCst);
        });
    }
}

/// A room's live ordering state, shared by the pub/sub reader and the room's pump.
///
/// The reader handles a message itself (no task hand-off, no wake-up) when nothing is queued for
/// the room and the message needs no read from the log: the common case, an inline entry right
/// after the last one. Anything else (a gap, a payload published by reference, a recovery) goes
/// to the pump, and everything after it too until the pump's queue is empty again, so a room's
/// messages are always handled in arrival order.
pub(super) struct Live {
    /// Where ordered entries go: the hub's room (weak: the room owns this feed).
    room: Weak<Room>,
    pub(super) state: Mutex<LiveState>,
}

pub(super) struct LiveState {
    epoch: Arc<str>,
    last: Option<u64>,
    /// Messages handed to the pump and not yet handled. While non-zero the reader queues.
    pub(super) queued: usize,
}

/// What handling a published message still needs.
pub(super) enum Step<'a> {
    Done,
    /// Read `from..=offset` from the log (a gap before `offset`, or a payload published by
    /// reference); `body` is the inline payload, if any.
    Fetch {
        from: u64,
        gap: bool,
        offset: u64,
        accepted: u64,
        body: &'a [u8],
    },
}

impl Live {
    pub(super) fn new(room: Weak<Room>) -> Live {
        Live {
            room,
            state: Mutex::new(LiveState {
                epoch: Arc::from(""),
                last: None,
                queued: 0,
            }),
        }
    }

    /// Hands `msg` to the hub's room.
    pub(super) fn send(&self, msg: RoomMsg) {
        if let Some(r) = self.room.upgrade() {
            r.send(msg);
        }
    }

    /// Handles one published message as far as it can without the log.
    pub(super) fn handle<'a>(&self, st: &mut LiveState, bytes: &'a [u8], room: &str) -> Step<'a> {
        match bytes.first() {
            Some(b'C') => {
                self.send(RoomMsg::Closed);
            }
            Some(b'G') => {
                // `<epoch>:<head>:<payload>`: relayed in arrival order, which is stream order.
                let mut parts = bytes[1..].splitn(3, |&c| c == b':');
                let parsed = (|| {
                    let e = std::str::from_utf8(parts.next()?).ok()?;
                    let head = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
                    crate::hub::Relayed::from_bytes(e, head, parts.next()?)
                })();
                match parsed {
                    Some(r) => {
                        self.send(RoomMsg::Relay(Arc::new(r)));
                    }
                    None => tracing::warn!("unreadable relayed message"),
                }
            }
            Some(b'J') | Some(b'L') => {
                if let Some(m) = std::str::from_utf8(&bytes[1..]).ok().and_then(parse_member) {
                    let m = Arc::new(m);
                    self.send(if bytes[0] == b'J' {
                        RoomMsg::Joined(m)
                    } else {
                        RoomMsg::Left(m)
                    });
                }
            }
            Some(b'E') => {
                let Some((e, offset, accepted, body)) = parse_published(&bytes[1..]) else {
                    tracing::warn!("unreadable pub/sub message");
                    return Step::Done;
                };
                if *st.epoch != *e {
                    st.epoch = Arc::from(e);
                    st.last = None;
                }
                if st.last.is_some_and(|l| offset <= l) {
                    return Step::Done;
                }
                let gap_from = st.last.map(|l| l + 1).filter(|&from| from < offset);
                if gap_from.is_some() || body.is_empty() {
                    return Step::Fetch {
                        from: gap_from.unwrap_or(offset),
                        gap: gap_from.is_some(),
                        offset,
                        accepted,
                        body,
                    };
                }
                match decode_body(body) {
                    Ok(b) => self.emit(st, vec![(offset, accepted, b)]),
                    Err(err) => {
                        tracing::error!(error = %err, room, offset, "unreadable live entry");
                    }
                }
            }
            _ => {}
        }
        Step::Done
    }

    /// Broadcasts entries in offset order, skipping what was already sent.
    fn emit(&self, st: &mut LiveState, batch: Vec<(u64, u64, EntryBody)>) {
        for (off, acc, body) in batch {
            if st.last.is_some_and(|l| off <= l) {
                continue;
            }
            let entry = Entry::new(off, st.epoch.clone(), body).accepted_at(acc);
            if let Some(r) = self.room.upgrade() {
                r.deliver(entry);
            }
            st.last = Some(off);
        }
    }
}

/// Entries `from..=to` of a room's log.
async fn read_range(
    conn: &Commands,
    room: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, u64, EntryBody)>, StoreError> {
    let k = Keys::of(room);
    let mut conn = conn.clone();
    let reply: StreamRangeReply = conn
        .xrange(&k.log, format!("{from}-0"), format!("{to}-0"))
        .await
        .map_err(unavailable)?;
    parse_entries(reply)
}

/// Handles what the reader queued for one room: fetches referenced payloads, fills gaps, and
/// broadcasts, in arrival order. `gap_fills` counts the entries fetched to fill a gap.
pub(super) async fn pump(
    conn: Commands,
    gap_fills: IntCounter,
    room: String,
    mut inbox: mpsc::Receiver<Inbound>,
    live: Arc<Live>,
) {
    while let Some(msg) = inbox.recv().await {
        match msg {
            Inbound::Recover => {
                lock(&live.state).last = None;
                live.send(RoomMsg::Recover);
            }
            Inbound::Published(bytes) => {
                let step = live.handle(&mut lock(&live.state), &bytes, &room);
                if let Step::Fetch {
                    from,
                    gap,
                    offset,
                    accepted,
                    body,
                } = step
                {
                    // Nobody else touches the state meanwhile: the reader queues while this
                    // message is counted in `queued`.
                    let fetched = read_range(&conn, &room, from, offset).await;
                    let mut st = lock(&live.state);
                    match fetched {
                        Ok(mut batch) => {
                            if gap {
                                gap_fills.inc_by(batch.len().saturating_sub(1) as u64);
                            }
                            if !body.is_empty() && !batch.iter().any(|(o, _, _)| *o == offset) {
                                if let Ok(b) = decode_body(body) {
                                    batch.push((offset, accepted, b));
                                }
                            }
                            live.emit(&mut st, batch);
                        }
                        Err(err) => {
                            if matches!(err, StoreError::Corrupt(_)) {
                                tracing::error!(error = %err, room, offset, "corrupt room log entry");
                            }
                            live.send(RoomMsg::Recover);
                            st.last = None;
                        }
                    }
                }
            }
        }
        let mut st = lock(&live.state);
        st.queued = st.queued.saturating_sub(1);
    }
}
