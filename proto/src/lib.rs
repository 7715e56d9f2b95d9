//! Wire protocol of assist-relay, version 1. No I/O: pure types, codecs and validation.
//!
//! # Layout
//! Modules are layered, so `use crate::x` edges form a DAG. From the bottom: `types`, `chunk`
//! (nothing of the crate); `error` (types); `headscan` (nothing); `event` (error, headscan); `guide` (types); `auth` (types,
//! guide); `page` (auth); `codec` (all of these, for the envelope); `frame` (codec and below:
//! frames sit on the envelope, never the reverse).
//! - `types`: the leaf types ([`Role`], [`Member`], [`Position`], [`Limits`]) and the id and text
//!   size bounds; re-exported here.
//! - [`codec`]: the two codecs (JSON text frames, MessagePack binary frames), chosen by WebSocket
//!   subprotocol, and the single [`Envelope`] both of them carry.
//! - [`frame`]: typed frames on top of the envelope. [`ClientFrame`] is what a client may send and is
//!   validated on decode; [`ServerFrame`] is what the relay sends. Their types and the small
//!   enums they carry get their strings from one strum derive.
//! - [`event`]: rrweb events. They stay opaque raw JSON ([`serde_json::value::RawValue`]); only a
//!   cheap head scan ([`EventHead`]) reads their `type` and `data.source`.
//! - [`error`]: stable error codes ([`ErrorCode`]) and WebSocket close codes ([`CloseCode`]).
//! - [`chunk`]: large events as numbered slices (`chunk` frames), both directions.
//! - [`page`]: native-page reports and the room's page timeline.
//! - [`guide`]: agent guidance on the customer's page, WebRTC call signaling, ICE servers and
//!   token capabilities.
//! - [`auth`]: the JWT claims a token carries ([`Claims`]), and the id rules for rooms and participants.
//! - `jwt` (feature `jwt`): HS256 as `jsonwebtoken`'s crypto backend (no RSA/EC code in the build).
//!
//! The protocol is specified for humans in `docs/protocol.md`; every code listed there is defined here.

pub mod auth;
pub mod chunk;
pub mod codec;
pub mod error;
pub mod event;
pub mod frame;
pub mod guide;
mod headscan;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod page;
mod types;

pub use auth::{validate_id, Claims, Role};
pub use chunk::ChunkData;
pub use codec::{Codec, Envelope};
pub use error::{CloseCode, ErrorCode, ProtoError};
pub use event::{EventHead, EventKind, EventPayload, MAX_EVENT_NESTING};
pub use frame::{
    encode_event, ClientFrame, ClientFrameKind, JoinMode, Limits, Member, Position, ResyncReason,
    ServerFrame, ServerFrameKind, SnapshotReason,
};
pub use guide::{Capability, Guidance, IceServer, Signal};
pub use page::{NativePage, PageKind, PageRecord};

/// Protocol version carried in the subprotocol names.
pub const PROTOCOL_VERSION: u32 = 1;
pub use types::{MAX_CHAT_TEXT, MAX_ID_LEN};
