//! Stable error codes (sent in `error` frames) and WebSocket close codes.

use serde::{Deserialize, Serialize};

use crate::types::{all, find};

/// The code of an `error` frame. The string form is stable and documented in `docs/protocol.md`;
/// SDKs switch on it. An error frame never closes the connection by itself.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON / MessagePack, or not a map with a string `type`.
    Malformed,
    /// The frame decodes but a field is missing, of the wrong type, or out of range.
    InvalidFrame,
    /// The `type` is not one this protocol version knows.
    UnknownType,
    /// A binary frame on a JSON connection, or a text frame on a MessagePack connection.
    WrongFrameKind,
    /// A room frame was sent before `join`.
    NotJoined,
    /// `join` was sent twice on one connection.
    AlreadyJoined,
    /// The sender's role may not send this frame (an agent publishing rrweb events).
    Forbidden,
    /// The rrweb event is not a JSON object with an integer `type`.
    InvalidEvent,
    /// An upload (chunked event) is larger than the node's upload limit.
    TooLarge,
    /// An upload's chunks disagree (count, size, digest), overflow the declared size, or the
    /// stitched event does not match its digest. The upload is discarded; start it again.
    UploadInvalid,
    /// The sender already has the most uploads in progress that the node allows.
    UploadLimit,
    /// The sender exceeded its message or byte rate; the frame was not processed.
    RateLimited,
    /// The room's log (or, embedded, the node's memory budget) is full: the entry was not stored.
    /// A new keyframe (Meta + FullSnapshot) frees the room's log.
    LogFull,
    /// The room store is unavailable; the frame was not stored. Retry with the same id.
    Unavailable,
    /// An unexpected server-side failure; the frame was not stored. Retry with the same id.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and metrics pre-registration.
    pub const ALL: [ErrorCode; <ErrorCode as strum::EnumCount>::COUNT] =
        all(<ErrorCode as strum::VariantArray>::VARIANTS);

    /// The stable wire string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The code whose wire string is `s`.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        find(s)
    }

    /// Whether resending the same frame later can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Unavailable
                | ErrorCode::Internal
                | ErrorCode::UploadLimit
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client frame was refused, with the code the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Not decodable as the connection's codec.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Decodable, but a field is missing or wrong.
    #[error("invalid {frame} frame: {reason}")]
    Invalid {
        /// The frame type.
        frame: &'static str,
        /// What is wrong, for humans.
        reason: String,
    },
    /// Unknown frame type.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// The rrweb payload is not an rrweb event.
    #[error("invalid rrweb event: {0}")]
    InvalidEvent(String),
    /// A binary frame on a JSON connection, or a text frame on a MessagePack connection.
    #[error("this connection uses {expected} frames")]
    WrongFrameKind {
        /// `text` or `binary`.
        expected: &'static str,
    },
}

impl ProtoError {
    /// A frame of type `frame` broke a rule.
    pub(crate) fn invalid(frame: &'static str, reason: impl Into<String>) -> ProtoError {
        ProtoError::Invalid {
            frame,
            reason: reason.into(),
        }
    }

    /// The error code sent to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::Malformed(_) => ErrorCode::Malformed,
            ProtoError::Invalid { .. } => ErrorCode::InvalidFrame,
            ProtoError::UnknownType(_) => ErrorCode::UnknownType,
            ProtoError::InvalidEvent(_) => ErrorCode::InvalidEvent,
            ProtoError::WrongFrameKind { .. } => ErrorCode::WrongFrameKind,
        }
    }
}

/// WebSocket close codes the relay uses beyond the standard ones (RFC 6455: 1000 normal,
/// 1001 going away, 1002 protocol error, 1009 message too big, 1011 internal error).
///
/// 4000-4499: the client should reconnect (with jittered backoff) and resume.
/// 4500-4999: the client should not reconnect without fixing something first.
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
#[strum(serialize_all = "snake_case")]
pub enum CloseCode {
    /// The node is shutting down or draining: reconnect (to any node) and resume.
    Shutdown = 4000,
    /// The client could not keep up with the room for too long: reconnect and resume.
    Slow = 4001,
    /// No `join` frame arrived within the join timeout (`--join-timeout`).
    JoinTimeout = 4002,
    /// Nothing was received within the idle timeout (no frames, no pongs).
    IdleTimeout = 4003,
    /// The room store failed persistently: reconnect later and resume.
    Unavailable = 4004,
    /// The token expired during the connection: fetch a new token, then reconnect.
    TokenExpired = 4500,
    /// Too many protocol violations on this connection.
    PolicyViolation = 4501,
    /// The room has been closed; do not reconnect to it.
    RoomClosed = 4502,
    /// The room is full.
    RoomFull = 4503,
    /// The participant already has its most connections in the room (over every node).
    #[strum(serialize = "too_many_connections_for_participant")]
    TooManyConnections = 4504,
}

impl CloseCode {
    /// Every code, for documentation.
    pub const ALL: [CloseCode; <CloseCode as strum::EnumCount>::COUNT] =
        all(<CloseCode as strum::VariantArray>::VARIANTS);

    /// The numeric code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The close reason text (also a stable, documented string).
    pub fn reason(self) -> &'static str {
        self.into()
    }

    /// Whether the client should reconnect and resume.
    pub fn should_reconnect(self) -> bool {
        self.code() < 4500
    }

    /// Looks a numeric code up.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }
}
