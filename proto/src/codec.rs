//! The two codecs and the one envelope they carry.
//!
//! A client picks its codec with the WebSocket subprotocol: [`Codec::JSON_PROTOCOL`] (text frames,
//! the default when none is offered) or [`Codec::MSGPACK_PROTOCOL`] (binary frames). Both carry the
//! same [`Envelope`]: a map with a string `type` and the optional fields below. Unknown fields are
//! ignored, so later versions may add fields.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkData;
use crate::error::ProtoError;
use crate::event::EventPayload;
use crate::guide::{GuideWire, IceServer, Signal};
use crate::page::{NativePage, PageRecord};
use crate::types::{all, Limits, Member, Position};

/// How frames are encoded on one connection.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
pub enum Codec {
    /// JSON in WebSocket text frames.
    #[strum(serialize = "json")]
    Json,
    /// MessagePack (maps with field names) in WebSocket binary frames.
    #[strum(serialize = "msgpack")]
    MsgPack,
}

impl Codec {
    /// Subprotocol name of the JSON codec.
    pub const JSON_PROTOCOL: &'static str = "assist-relay.v1.json";
    /// Subprotocol name of the MessagePack codec.
    pub const MSGPACK_PROTOCOL: &'static str = "assist-relay.v1.msgpack";
    /// Both codecs, for tables and metrics.
    pub const ALL: [Codec; <Codec as strum::EnumCount>::COUNT] =
        all(<Codec as strum::VariantArray>::VARIANTS);

    /// The codec named by a subprotocol, if any.
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name.trim() {
            Self::JSON_PROTOCOL => Some(Codec::Json),
            Self::MSGPACK_PROTOCOL => Some(Codec::MsgPack),
            _ => None,
        }
    }

    /// The subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => Self::JSON_PROTOCOL,
            Codec::MsgPack => Self::MSGPACK_PROTOCOL,
        }
    }

    /// Whether frames travel as WebSocket binary frames (else text).
    pub fn is_binary(self) -> bool {
        matches!(self, Codec::MsgPack)
    }

    /// A small index, for per-codec caches.
    pub fn index(self) -> usize {
        match self {
            Codec::Json => 0,
            Codec::MsgPack => 1,
        }
    }

    /// A bounded label for metrics.
    pub fn label(self) -> &'static str {
        self.into()
    }

    /// Encodes an envelope.
    pub fn encode(self, envelope: &Envelope<'_>) -> Result<Vec<u8>, EncodeError> {
        match self {
            Codec::Json => serde_json::to_vec(envelope).map_err(|e| EncodeError(e.to_string())),
            Codec::MsgPack => {
                rmp_serde::to_vec_named(envelope).map_err(|e| EncodeError(e.to_string()))
            }
        }
    }

    /// Decodes an envelope, borrowing from `bytes` where it can (the rrweb payload always).
    pub fn decode(self, bytes: &[u8]) -> Result<Envelope<'_>, ProtoError> {
        // serde's derive would also read a struct from an array (fields by position, i.e. the
        // declaration order of `Envelope`), which the protocol does not define: a frame is a map.
        if !self.starts_with_map(bytes) {
            return Err(ProtoError::Malformed(match self {
                Codec::Json => "expected a JSON object".to_owned(),
                Codec::MsgPack => "expected a MessagePack map".to_owned(),
            }));
        }
        match self {
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
            }
            Codec::MsgPack => {
                rmp_serde::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
            }
        }
    }

    /// Whether `bytes` open a map: `{` after JSON whitespace, or a MessagePack map marker.
    fn starts_with_map(self, bytes: &[u8]) -> bool {
        match self {
            Codec::Json => bytes
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .is_some_and(|&b| b == b'{'),
            Codec::MsgPack => matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)),
        }
    }
}

/// Encoding failed. Only a bug (a map with non-string keys) can cause it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot encode frame: {0}")]
pub struct EncodeError(pub String);

/// The one envelope of every frame, in both directions and both codecs. The typed views are
/// [`crate::ClientFrame`] and [`crate::ServerFrame`]; see `docs/protocol.md` for which fields each
/// frame type uses.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Envelope<'a> {
    /// Frame type.
    #[serde(rename = "type", borrow, deserialize_with = "str_only")]
    pub kind: Cow<'a, str>,
    /// Client-chosen id (chat, event, ping), echoed by `ack`, `error` and `pong`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Room offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Room epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// rrweb event (raw JSON).
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub event: Option<EventPayload<'a>>,
    /// Chat text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Sender of a chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Member>,
    /// Server time, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
    /// Room id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The receiving participant, in `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub you: Option<Member>,
    /// Everyone present, in `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// The participant of a presence frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    /// How a join was served: `fresh`, `resume` or `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why a resync happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The room's last offset when the frame was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where a reconnecting client left off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Position>,
    /// In `ack`: the id had been stored already; `offset` is the original one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Chunk number, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Number of chunks of the whole event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Size of the whole event in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Digest of the whole event (`sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A slice of the event's JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub data: Option<ChunkData<'a>>,
    /// A native-page report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<NativePage>,
    /// The room's page timeline, in `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<Vec<PageRecord>>,
    /// The node's size limits, in `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Agent guidance, in `guide`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::guide::opt_map"
    )]
    pub guide: Option<GuideWire>,
    /// A WebRTC signaling message, in `signal`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::guide::opt_map"
    )]
    pub signal: Option<Signal>,
    /// The participant a client `signal` is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// STUN/TURN servers for calls, in `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_servers: Option<Vec<IceServer>>,
}

/// Reads a string, and only a string: a MessagePack `bin` (which serde would take as UTF-8 text)
/// is refused, so a frame whose `type` is not a string is `malformed` in both codecs.
fn str_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(V)
}
