//! Guidance and call signaling from this connection: checked against the connection's guidance
//! and signaling rates (pointer moves over the rate coalesced, the newest held for its slot) and
//! relayed through the room's live stream, never stored. Role checks are the caller's
//! (`dispatch.rs`); delivering what others relay is `live.rs`'s.

use assist_relay_proto::{ErrorCode, Guidance, Signal};
use tokio::time::Instant;

use super::exit::Exit;
use super::inbound::Inbound;
use crate::guide::{Relayed, RelayedBody};

impl Inbound {
    /// Relays guidance to the room's customers; pointer moves over the rate are coalesced, other
    /// guidance over it is refused.
    pub(super) async fn on_guide(
        &mut self,
        id: Option<String>,
        guide: Guidance,
    ) -> Result<(), Exit> {
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
            return self.guide_rate_limited(id);
        }
        self.relay(RelayedBody::Guide(guide)).await
    }

    /// Relays a call signaling message to the other role (or one participant of it).
    pub(super) async fn on_signal(
        &mut self,
        id: Option<String>,
        to: Option<String>,
        signal: Signal,
    ) -> Result<(), Exit> {
        if to.as_deref() == Some(self.me.id.as_str()) {
            let msg = "a signal goes to a participant of the other role";
            return self.send_error(ErrorCode::InvalidFrame, msg.into(), id);
        }
        if !self.guide.signal() {
            return self.guide_rate_limited(id);
        }
        self.relay(RelayedBody::Signal { to, signal }).await
    }

    fn guide_rate_limited(&mut self, id: Option<String>) -> Result<(), Exit> {
        self.node
            .metrics
            .rate_limited
            .with_label_values(&["refused"])
            .inc();
        let text = "over this connection's guidance or signaling rate; slow down";
        self.send_error(ErrorCode::RateLimited, text.into(), id)
    }

    /// When the held (coalesced) pointer move may go, if one is held.
    pub(super) fn pointer_due(&self) -> Option<Instant> {
        self.guide.due()
    }

    /// Relays the held pointer move once its slot has come (else it stays held, rescheduled).
    pub(super) async fn relay_due_pointer(&mut self) -> Result<(), Exit> {
        match self.guide.take_due() {
            Some(g) => self.relay(RelayedBody::Guide(g)).await,
            None => Ok(()),
        }
    }

    /// Publishes on the room's live stream (every node); nothing is stored.
    async fn relay(&mut self, body: RelayedBody) -> Result<(), Exit> {
        let node = self.node.clone();
        let msg = Relayed::new(self.me.clone(), body);
        node.broker.relay(&self.room, msg).await?;
        Ok(())
    }
}
