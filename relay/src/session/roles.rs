//! What a connection may do, decided once from its role and its token's capabilities: the one
//! place for "only the customer publishes", "only agents guide" and the like. It owns no state
//! and sends nothing; the callers turn a refusal into a `forbidden` error frame.

use assist_relay_proto::{Capability, Claims, Role};

/// Something a client frame asks for that not every connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    /// Publish rrweb events (`event`, and uploads in `chunk`s).
    PublishEvents,
    /// Report a native-app page (`native_page`).
    ReportNativePages,
    /// End the session for everyone (`end`).
    EndSession,
    /// Relay guidance to the customers (`guide`).
    Guide,
    /// Relay call signaling (`signal`).
    Signal,
}

/// A connection's rights: its role and the capabilities its token grants.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rights {
    role: Role,
    guide: bool,
    call: bool,
}

impl Rights {
    pub(super) fn new(claims: &Claims) -> Rights {
        Rights {
            role: claims.role,
            guide: claims.can(Capability::Guide),
            call: claims.can(Capability::Call),
        }
    }

    /// Whether the room's rrweb events are sent to this connection (catch-up and live): agents
    /// watch, the customer only publishes.
    pub(super) fn receives_events(self) -> bool {
        self.role == Role::Agent
    }

    /// Whether this connection may have uploads staged (released when it leaves).
    pub(super) fn stages_uploads(self) -> bool {
        self.may(Act::PublishEvents).is_ok()
    }

    /// `Ok` when this connection may do `act`; else why not, for the `forbidden` error frame.
    pub(super) fn may(self, act: Act) -> Result<(), &'static str> {
        let (allowed, why) = match act {
            Act::PublishEvents => (
                self.role == Role::Customer,
                "only the customer publishes rrweb events",
            ),
            Act::ReportNativePages => (
                self.role == Role::Customer,
                "only the customer reports native pages",
            ),
            Act::EndSession => (self.role == Role::Agent, "only an agent ends the session"),
            Act::Guide if self.role != Role::Agent => (false, "only agents guide"),
            Act::Guide => (self.guide, "the token lacks the guide capability"),
            Act::Signal => (self.call, "the token lacks the call capability"),
        };
        if allowed {
            Ok(())
        } else {
            Err(why)
        }
    }
}
