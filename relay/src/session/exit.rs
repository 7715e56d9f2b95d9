//! How a connection ends: the [`Exit`] every part of a session returns, and how socket errors map
//! to it. It owns no I/O; sending the close frame is `socket.rs`'s.

use assist_relay_proto::CloseCode;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use crate::store::StoreError;

/// How a connection ends.
#[derive(Debug)]
pub(super) enum Exit {
    /// The relay closes with one of its own codes.
    Close(CloseCode),
    /// The relay closes with a standard code.
    Standard(WsCloseCode, &'static str),
    /// The peer closed or vanished; nothing to send.
    PeerGone,
}

impl Exit {
    /// How the connection ended, for the audit log: the close reason, or `peer_gone`.
    pub(super) fn audit_name(&self) -> &'static str {
        match self {
            Exit::Close(c) => c.reason(),
            Exit::Standard(_, reason) => reason,
            Exit::PeerGone => "peer_gone",
        }
    }

    /// Whether the connection still finishes the client frame it is handling (its store calls
    /// and replies) before closing: it ends in order (shutdown, token expiry, room closed), not
    /// because the socket failed or the client stopped reading.
    pub(super) fn lets_frame_finish(&self) -> bool {
        matches!(self, Exit::Close(code) if *code != CloseCode::Slow)
    }
}

impl From<StoreError> for Exit {
    fn from(e: StoreError) -> Exit {
        if matches!(e, StoreError::Closed) {
            return Exit::Close(CloseCode::RoomClosed);
        }
        tracing::warn!(error = %e, "room store failed; closing so the client resumes elsewhere");
        Exit::Close(CloseCode::Unavailable)
    }
}

/// The exit a socket error means.
pub(super) fn classify(e: tungstenite::Error) -> Exit {
    match e {
        tungstenite::Error::Capacity(_) => Exit::Standard(WsCloseCode::Size, "too_large"),
        // A peer that vanished without a closing handshake is gone, not misbehaving.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Exit::PeerGone,
        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
            Exit::Standard(WsCloseCode::Protocol, "protocol_error")
        }
        _ => Exit::PeerGone,
    }
}
