//! What this connection has been sent: the room position (epoch and last offset) its stream has
//! reached, how long it has been behind, and the writing of entries and server frames onto the
//! [`Wire`]. Catch-up (`catchup.rs`) and the live stream (`live.rs`) build on it; it reads nothing
//! from the client.

use std::sync::Arc;

use assist_relay_proto::{Codec, Member, ServerFrame};
use tokio::time::Instant;

use super::exit::Exit;
use super::roles::Rights;
use super::socket::{Out, Replies, Wire};
use crate::hub::{encode_message, Entry};
use crate::Node;

/// The socket side of a connection.
pub(super) struct Outbound {
    pub(super) node: Arc<Node>,
    pub(super) wire: Wire,
    pub(super) codec: Codec,
    pub(super) room: Arc<str>,
    pub(super) me: Member,
    pub(super) rights: Rights,
    pub(super) conn_id: u64,
    /// Epoch of the offsets below.
    pub(super) epoch: Arc<str>,
    /// The last room offset this connection has processed (sent, or skipped as not for its role).
    pub(super) last: u64,
    /// Since when this viewer has been behind the room (overflowed and not drained since).
    pub(super) behind_since: Option<Instant>,
    /// Replies the inbound side queued (`ack`, `error`, `pong`, ...), in the order produced.
    pub(super) replies: Arc<Replies>,
}

impl Outbound {
    /// Writes `first` (if any) and every other queued reply, in order, with one flush.
    pub(super) async fn send_replies(&mut self, first: Option<Out>) -> Result<(), Exit> {
        let mut next = first.or_else(|| self.replies.pop());
        if next.is_none() {
            return Ok(());
        }
        while let Some((msg, kind)) = next {
            self.wire.feed_counted(msg, kind).await?;
            next = self.replies.pop();
        }
        self.wire.flush().await
    }

    /// Writes a server frame without flushing.
    pub(super) async fn feed_frame(&mut self, frame: &ServerFrame<'_>) -> Result<(), Exit> {
        let msg = encode_message(self.codec, frame);
        self.wire.feed(msg, frame.type_name()).await
    }

    /// Writes an entry's frames (one, or its chunks) without flushing.
    pub(super) async fn feed_entry(&mut self, e: &Entry) -> Result<(), Exit> {
        let max_frame = self.node.config.max_frame_bytes;
        let kind = e.type_name();
        let frames = e.messages(self.codec, max_frame);
        if frames.len() == 1 {
            return self.wire.feed(frames[0].clone(), kind).await;
        }
        for m in frames {
            self.wire.feed(m.clone(), "chunk").await?;
        }
        Ok(())
    }
}
