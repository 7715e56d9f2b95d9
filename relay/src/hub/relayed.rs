//! Guidance and signaling as they travel a room's live stream: relayed in stream order without
//! being stored, stamped with the room's epoch and head by the backend that publishes them, and
//! encoded once per codec for every recipient on a node. Rates, ICE servers and TURN credentials
//! are [`crate::guide`]'s.

use std::sync::OnceLock;

use assist_relay_proto::guide::GuideWire;
use assist_relay_proto::{Codec, Guidance, Member, Role, ServerFrame, Signal};
use tokio_tungstenite::tungstenite::Message;

use super::entry::encode_message;

/// What a relayed message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayedBody {
    /// Guidance for the room's customers.
    Guide(Guidance),
    /// Signaling for the other role, or one participant of it.
    Signal {
        /// The participant it is for; `None`: every participant of the other role.
        to: Option<String>,
        /// The message.
        signal: Signal,
    },
}

/// A message relayed through a room's live stream without being stored.
#[derive(Debug)]
pub struct Relayed {
    /// The room epoch when it was relayed (set by the store).
    pub epoch: String,
    /// The room's head when it was relayed (set by the store): the entry it follows.
    pub offset: u64,
    /// The sender.
    pub from: Member,
    /// What it carries.
    pub body: RelayedBody,
    frames: [OnceLock<Message>; 2],
}

/// How a relayed message travels between nodes (the store prefixes epoch and offset).
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    f: String,
    r: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<GuideWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<Signal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

impl Relayed {
    /// A message from `from`; the store fills in epoch and offset.
    pub fn new(from: Member, body: RelayedBody) -> Relayed {
        Relayed {
            epoch: String::new(),
            offset: 0,
            from,
            body,
            frames: Default::default(),
        }
    }

    /// The same message stamped with the room's epoch and head.
    pub fn stamped(self, epoch: &str, offset: u64) -> Relayed {
        Relayed {
            epoch: epoch.to_owned(),
            offset,
            ..self
        }
    }

    /// Whether `me` receives it: guidance goes to customers; a signal to the participants of the
    /// other role (only `to`, when named).
    pub fn is_for(&self, me: &Member) -> bool {
        match &self.body {
            RelayedBody::Guide(_) => me.role == Role::Customer,
            RelayedBody::Signal { to, .. } => {
                me.role != self.from.role && to.as_ref().is_none_or(|t| *t == me.id)
            }
        }
    }

    /// Whether it is guidance (ordered by offset) rather than a signal.
    pub fn is_guide(&self) -> bool {
        matches!(self.body, RelayedBody::Guide(_))
    }

    /// The server frame type (a metric label).
    pub fn type_name(&self) -> &'static str {
        match self.body {
            RelayedBody::Guide(_) => "guide",
            RelayedBody::Signal { .. } => "signal",
        }
    }

    /// The frame recipients get.
    pub fn frame(&self) -> ServerFrame<'static> {
        match &self.body {
            RelayedBody::Guide(g) => ServerFrame::Guide {
                offset: self.offset,
                from: self.from.clone(),
                guide: g.clone(),
            },
            RelayedBody::Signal { signal, .. } => ServerFrame::Signal {
                from: self.from.clone(),
                signal: signal.clone(),
            },
        }
    }

    /// The encoded frame in `codec`, encoded once and shared by every recipient on this node.
    pub fn message(&self, codec: Codec) -> Message {
        self.frames[codec.index()]
            .get_or_init(|| encode_message(codec, &self.frame()))
            .clone()
    }

    /// The payload between nodes (sender, role and body; not epoch or offset).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Wire {
            f: self.from.id.clone(),
            r: self.from.role,
            g: None,
            s: None,
            t: None,
        };
        match &self.body {
            RelayedBody::Guide(g) => w.g = Some(g.to_wire()),
            RelayedBody::Signal { to, signal } => {
                w.s = Some(signal.clone());
                w.t = to.clone();
            }
        }
        serde_json::to_vec(&w).unwrap_or_default()
    }

    /// Reads [`Relayed::to_bytes`] back.
    pub fn from_bytes(epoch: &str, offset: u64, b: &[u8]) -> Option<Relayed> {
        let w: Wire = serde_json::from_slice(b).ok()?;
        let body = match (w.g, w.s) {
            (Some(g), None) => RelayedBody::Guide(Guidance::from_wire(g).ok()?),
            (None, Some(signal)) => RelayedBody::Signal { to: w.t, signal },
            _ => return None,
        };
        let from = Member { id: w.f, role: w.r };
        Some(Relayed::new(from, body).stamped(epoch, offset))
    }
}
