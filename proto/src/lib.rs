//! Wire protocol of assist-relay, version 1. No I/O: pure types, codecs and validation.
//!
//! # Layout
//! - [`codec`]: the two codecs (JSON text frames, MessagePack binary frames), chosen by WebSocket
//!   subprotocol, and the single [`Envelope`] both of them carry.
//! - [`frame`]: typed frames on top of the envelope. [`ClientFrame`] is what a client may send and is
//!   validated on decode; [`ServerFrame`] is what the relay sends.
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
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod page;

pub use auth::{validate_id, Claims, Role};
pub use chunk::ChunkData;
pub use codec::{Codec, Envelope};
pub use error::{CloseCode, ErrorCode, ProtoError};
pub use event::{EventHead, EventKind, EventPayload, MAX_EVENT_NESTING};
pub use frame::{
    ClientFrame, JoinMode, Limits, Member, Position, ResyncReason, ServerFrame, SnapshotReason,
};
pub use guide::{Capability, Guidance, IceServer, Signal};
pub use page::{NativePage, PageKind, PageRecord};

/// Protocol version carried in the subprotocol names.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest accepted client-chosen id (chat message id, event id, participant id, room id), in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted chat text, in bytes of UTF-8.
pub const MAX_CHAT_TEXT: usize = 8 * 1024;
