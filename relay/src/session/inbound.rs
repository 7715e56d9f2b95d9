//! The client's side of a connection: the state that handling its frames needs (rates, masking,
//! the page it is on, guidance rates), decoding a frame and holding it to the rates, storing an
//! entry, and the replies (`ack`, `error`, ...) a frame produces. It owns no socket: replies are
//! queued as they are produced ([`Inbound::reply`]) and the session writes them, in order.
//! What each frame type does is `dispatch.rs`'s (and `publish.rs`, `upload.rs`, `relay.rs`).

use std::sync::Arc;

use assist_relay_proto::{
    ClientFrame, CloseCode, Codec, ErrorCode, Member, ProtoError, ServerFrame,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::exit::Exit;
use super::roles::{Act, Rights};
use super::socket::Replies;
use crate::auth::Admission;
use crate::guide::GuideRates;
use crate::hub::encode_message;
use crate::limits::conn::{Admit, ConnRates};
use crate::mask::{MaskPolicy, RoomMask};
use crate::pages::MetaInfo;
use crate::store::{Appended, NewEntry, StoreError};
use crate::Node;

/// Everything handling one client frame needs; owned by that handling while it runs.
pub(super) struct Inbound {
    pub(super) node: Arc<Node>,
    pub(super) room: Arc<str>,
    pub(super) me: Member,
    pub(super) rights: Rights,
    codec: Codec,
    rates: ConnRates,
    /// Masking policy of what this connection publishes.
    pub(super) mask_policy: MaskPolicy,
    /// Masking state, built from the room log on the first event that needs it.
    pub(super) mask: Option<RoomMask>,
    /// The last Meta this connection published (URL and viewport of the current web page).
    pub(super) meta: Option<MetaInfo>,
    /// When this connection was last sent a `snapshot_request`.
    pub(super) snapshot_asked: Option<Instant>,
    /// When this connection last queued a live compaction.
    pub(super) compacted_at: Option<Instant>,
    /// Guidance and signaling rates, and a coalesced pointer move.
    pub(super) guide: GuideRates,
    /// Frames for the client, in order; the session's outbound side writes them.
    replies: Arc<Replies>,
}

impl Inbound {
    pub(super) fn new(
        node: Arc<Node>,
        adm: &Admission,
        me: Member,
        replies: Arc<Replies>,
    ) -> Inbound {
        let mask_policy = adm
            .claims
            .mask
            .as_deref()
            .and_then(MaskPolicy::parse)
            .unwrap_or(node.config.mask_policy);
        Inbound {
            rates: ConnRates::new(&node.config.rates(), &adm.claims.room, &adm.claims.sub),
            room: Arc::from(adm.claims.room.as_str()),
            rights: Rights::new(&adm.claims),
            codec: adm.codec,
            me,
            mask_policy,
            mask: None,
            meta: None,
            snapshot_asked: None,
            compacted_at: None,
            guide: GuideRates::default(),
            replies,
            node,
        }
    }

    /// Queues a frame for the client.
    pub(super) fn reply(&mut self, frame: &ServerFrame<'_>) {
        let msg = encode_message(self.codec, frame);
        self.replies.push((msg, Some(frame.type_name())));
    }

    /// Decodes a client frame and holds it to the connection's rates. `None` when the frame was
    /// refused (the client is told why).
    pub(super) async fn admit<'m>(
        &mut self,
        msg: &'m Message,
    ) -> Result<Option<ClientFrame<'m>>, Exit> {
        let frame = match self.decode(msg) {
            Ok(f) => f,
            Err(e) => {
                // Echo the refused frame's id whenever its envelope could be read.
                let id = match msg {
                    Message::Text(t) => ClientFrame::refused_id(self.codec, t.as_bytes(), &e),
                    Message::Binary(b) => ClientFrame::refused_id(self.codec, b, &e),
                    _ => None,
                };
                self.send_error(e.code(), e.to_string(), id)?;
                return Ok(None);
            }
        };
        match self.rates.admit(&self.node.rates, msg.len()).await {
            Admit::Now => Ok(Some(frame)),
            Admit::Delayed => {
                // The sender was slowed rather than refused: while this frame waited, the
                // session read nothing more from the client, and TCP backpressure held its
                // next frames.
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
                self.send_error(ErrorCode::RateLimited, text.into(), id)?;
                Ok(None)
            }
        }
    }

    fn decode<'m>(&self, msg: &'m Message) -> Result<ClientFrame<'m>, ProtoError> {
        let codec = self.codec;
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

    /// Queues an error frame. Errors the client caused draw on its violation budget; when that is
    /// spent the connection is closed with 4501 (after the error frame).
    pub(super) fn send_error(
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
        self.reply(&ServerFrame::Error { code, message, id });
        let client_fault = !matches!(code, ErrorCode::Unavailable | ErrorCode::Internal);
        if client_fault && !self.rates.violation() {
            tracing::info!(code = code.as_str(), "violation budget spent");
            return Err(Exit::Close(CloseCode::PolicyViolation));
        }
        Ok(())
    }

    /// `Ok(true)` when this connection may do `act`; otherwise the client is sent `forbidden`
    /// (with the frame's `id`) and this is `Ok(false)`.
    pub(super) fn allowed(&mut self, act: Act, id: Option<&str>) -> Result<bool, Exit> {
        match self.rights.may(act) {
            Ok(()) => Ok(true),
            Err(why) => self
                .send_error(ErrorCode::Forbidden, why.into(), id.map(str::to_owned))
                .map(|()| false),
        }
    }

    /// Appends to the room log and acknowledges when the client gave an id. Returns the append
    /// (`None` when it was refused and the connection goes on).
    pub(super) async fn store(
        &mut self,
        entry: NewEntry,
        id: Option<String>,
        kind: &'static str,
    ) -> Result<Option<Appended>, Exit> {
        let node = self.node.clone();
        match node.log.append(&self.room, entry).await {
            Ok(appended) => {
                if !appended.duplicate {
                    node.metrics.appends.with_label_values(&[kind]).inc();
                }
                if let Some(id) = id {
                    self.reply(&ServerFrame::Ack {
                        id,
                        offset: appended.offset,
                        duplicate: appended.duplicate,
                    });
                }
                Ok(Some(appended))
            }
            Err(e) => self.store_failed(e, id).map(|()| None),
        }
    }

    /// An append failed: tell the client and close, so that it resends in order.
    pub(super) fn store_failed(&mut self, e: StoreError, id: Option<String>) -> Result<(), Exit> {
        if matches!(e, StoreError::Closed) {
            return Err(Exit::Close(CloseCode::RoomClosed));
        }
        if let StoreError::LogFull(why) = e {
            // Nothing was stored and nothing after it depends on it: refuse it and go on.
            return self.send_error(ErrorCode::LogFull, why.into(), id);
        }
        if matches!(e, StoreError::RateLimited) {
            self.node
                .metrics
                .rate_limited
                .with_label_values(&["refused"])
                .inc();
            let msg = "over the participant's or the room's rate across nodes; resend later \
                       with the same id";
            return self.send_error(ErrorCode::RateLimited, msg.into(), id);
        }
        if self.node.metrics.may_log() {
            tracing::warn!(error = %e, "append failed; closing so the client resends in order");
        }
        // Frames already queued behind this one must not be stored ahead of its resend:
        // stop here, and let the client reconnect, resume and resend in order.
        let msg = "the room store is unavailable; reconnect, resume and resend from this id";
        self.send_error(ErrorCode::Unavailable, msg.into(), id)?;
        Err(Exit::Close(CloseCode::Unavailable))
    }
}

/// The client's id of a frame, echoed in errors about it.
pub(super) fn frame_id(frame: &ClientFrame<'_>) -> Option<String> {
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
