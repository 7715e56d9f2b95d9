//! One client frame, from decoding to its replies: before `join` (only `join` and `ping` are
//! accepted) and after it (every frame type, each checked against the connection's [`Rights`]
//! here, once). [`run`] is the unit the session's live loop keeps in flight: it owns the
//! [`Inbound`] state while it runs, so rate waits and store calls proceed while the session goes
//! on delivering the room's stream, and hands it back when done.
//!
//! [`Rights`]: super::roles::Rights

use assist_relay_proto::{ClientFrame, ErrorCode, Position, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

use super::exit::Exit;
use super::inbound::{frame_id, Inbound};
use super::roles::Act;
use super::upload::Chunk;
use crate::hub::{now_us, EntryBody};
use crate::store::NewEntry;

/// Inbound work the session runs one at a time.
pub(super) enum Work {
    /// A data frame read from the client after `join`.
    Frame(Message),
    /// The held pointer move's slot has come.
    DuePointer,
}

/// Does `work`, owning the inbound state meanwhile (its replies are queued as they come); returns
/// the state and how the work ended.
pub(super) async fn run(mut inbound: Inbound, work: Work) -> (Inbound, Result<(), Exit>) {
    let result = match &work {
        Work::Frame(msg) => inbound.on_frame(msg).await,
        Work::DuePointer => inbound.relay_due_pointer().await,
    };
    (inbound, result)
}

impl Inbound {
    /// Handles a frame before `join`: `Some(resume)` for `join`; pings are answered; anything
    /// else is refused with `not_joined`.
    pub(super) async fn before_join(
        &mut self,
        msg: &Message,
    ) -> Result<Option<Option<Position>>, Exit> {
        match self.admit(msg).await? {
            None => {}
            Some(ClientFrame::Join { resume }) => return Ok(Some(resume)),
            Some(ClientFrame::Ping { id }) => self.reply(&ServerFrame::Pong { id }),
            Some(other) => {
                let id = frame_id(&other);
                self.send_error(ErrorCode::NotJoined, "send join first".into(), id)?
            }
        }
        Ok(None)
    }

    /// Handles one client frame after join.
    async fn on_frame(&mut self, msg: &Message) -> Result<(), Exit> {
        let Some(frame) = self.admit(msg).await? else {
            return Ok(());
        };
        match frame {
            ClientFrame::Join { .. } => {
                self.send_error(ErrorCode::AlreadyJoined, "already joined".into(), None)
            }
            ClientFrame::Ping { id } => {
                self.reply(&ServerFrame::Pong { id });
                Ok(())
            }
            ClientFrame::Event { id, event, head } => {
                if !self.allowed(Act::PublishEvents, id.as_deref())? {
                    return Ok(());
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
                if !self.allowed(Act::PublishEvents, Some(&id))? {
                    return Ok(());
                }
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
            ClientFrame::NativePage { id, page } => {
                if !self.allowed(Act::ReportNativePages, id.as_deref())? {
                    return Ok(());
                }
                self.on_native_page(id, page).await
            }
            ClientFrame::Guide { id, guide } => {
                if !self.allowed(Act::Guide, id.as_deref())? {
                    return Ok(());
                }
                self.on_guide(id, guide).await
            }
            ClientFrame::Signal { id, to, signal } => {
                if !self.allowed(Act::Signal, id.as_deref())? {
                    return Ok(());
                }
                self.on_signal(id, to, signal).await
            }
            ClientFrame::End => {
                if !self.allowed(Act::EndSession, None)? {
                    return Ok(());
                }
                let node = self.node.clone();
                let closed = node
                    .close_room_by(&self.room, "ended", Some(&self.me))
                    .await?;
                crate::audit::session_ended(&self.room, &self.me.id, closed);
                // Everyone, this connection included, is closed by the room's `Closed` message.
                Ok(())
            }
        }
    }
}
