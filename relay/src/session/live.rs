//! The room's live stream to this connection: entries in order without gaps or duplicates,
//! presence, relayed guidance and signaling, and the bounds on how far a viewer may fall behind
//! (skip the backlog and recover from the log; close with 4001 when behind for too long). Writes
//! are batched: up to [`WRITE_BATCH`] frames, one flush. It reads nothing from the client.

use std::sync::Arc;

use assist_relay_proto::{CloseCode, ResyncReason, ServerFrame};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::exit::Exit;
use super::outbound::Outbound;
use crate::guide::Relayed;
use crate::hub::{Entry, RoomMsg, Subscription};

/// Live entries written before one flush.
const WRITE_BATCH: usize = 64;

impl Outbound {
    /// Handles one message from the room's live stream, plus whatever else is already queued, and
    /// flushes once.
    pub(super) async fn on_room_msg(
        &mut self,
        first: Result<RoomMsg, RecvError>,
        sub: &mut Subscription,
    ) -> Result<(), Exit> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(msg) = next.take() {
            match msg {
                Ok(RoomMsg::Entry(e)) => {
                    let backlog = sub.behind(&e);
                    written += self.on_entry(e, backlog).await?
                }
                Ok(RoomMsg::Held(h)) => match h.entry() {
                    Some(e) => {
                        let backlog = sub.behind(&e);
                        written += self.on_entry(e, backlog).await?
                    }
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
                    self.feed_frame(&frame).await?;
                    written += 1;
                }
                Ok(RoomMsg::Left(m)) if *m != self.me => {
                    let frame = ServerFrame::MemberLeft {
                        member: Arc::unwrap_or_clone(m),
                    };
                    self.feed_frame(&frame).await?;
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
                    *sub = self.node.broker.subscribe(&self.room).await?;
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
        self.wire.flush().await?;
        if sub.rx.is_empty() {
            self.behind_since = None;
        }
        Ok(())
    }

    /// Sends one live entry if it is next in order; recovers from the log on a gap, a new epoch, or
    /// a backlog (the hub's count of payload bytes the room is ahead of `e`) over the byte bound.
    /// Returns how many frames were written.
    async fn on_entry(&mut self, e: Arc<Entry>, backlog: u64) -> Result<usize, Exit> {
        if *e.epoch != *self.epoch {
            return self.recover(ResyncReason::EpochChanged).await.map(|()| 1);
        }
        if e.offset <= self.last {
            return Ok(0); // already sent in the catch-up or a recovery
        }
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
        if e.is_for(self.rights.receives_events()) {
            self.feed_entry(&e).await?;
            self.wire.unflushed.push(e.accepted_us);
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
        self.wire.feed(r.message(self.codec), r.type_name()).await?;
        Ok(1)
    }
}
