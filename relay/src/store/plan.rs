//! The catch-up decision, shared by every [`super::RoomLog`] implementation: given what a log
//! holds (its [`Bounds`]) and what a client asks for, which entries to send and how to label them.

use assist_relay_proto::{JoinMode, ResyncReason};

use super::CatchUpRequest;

/// What a room log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// Current epoch.
    pub epoch: String,
    /// Last offset (0 for an empty log).
    pub head: u64,
    /// Every entry with offset >= `floor` is in the log (the keyframe starts here).
    pub floor: u64,
    /// Every chat message with offset >= `chat_floor` is in the chat history.
    pub chat_floor: u64,
}

/// Chat messages to take from the chat history: offsets in `(after, before)`, the newest `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatRange {
    /// Exclusive lower bound.
    pub after: u64,
    /// Exclusive upper bound.
    pub before: u64,
    /// Most messages, keeping the newest.
    pub limit: usize,
}

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Fresh, resume or resync.
    pub mode: JoinMode,
    /// With resync, why.
    pub reason: Option<ResyncReason>,
    /// Chat from the chat history (sent first: these offsets precede the log part).
    pub chats: Option<ChatRange>,
    /// Log entries (events and chat) with offset greater than this, for clients that get events.
    pub log_after: Option<u64>,
}

/// Decides a catch-up.
pub fn plan(b: &Bounds, req: &CatchUpRequest) -> Plan {
    let (mode, reason, after) = match &req.resume {
        None => (JoinMode::Fresh, None, None),
        Some(p) if p.epoch != b.epoch => (JoinMode::Resync, Some(ResyncReason::EpochChanged), None),
        Some(p) if p.offset > b.head => (JoinMode::Resync, Some(ResyncReason::AheadOfLog), None),
        Some(p) => {
            let floor = if req.events { b.floor } else { b.chat_floor };
            if p.offset + 1 >= floor {
                (JoinMode::Resume, None, Some(p.offset))
            } else {
                (
                    JoinMode::Resync,
                    Some(ResyncReason::Trimmed),
                    Some(p.offset),
                )
            }
        }
    };
    let full_state_log = Some(b.floor.saturating_sub(1));
    let (chats, log_after) = match (mode, req.events) {
        (JoinMode::Resume, true) => (None, after),
        (JoinMode::Resume, false) => {
            let after = after.unwrap_or(0);
            (
                Some(ChatRange {
                    after,
                    before: u64::MAX,
                    limit: usize::MAX,
                }),
                None,
            )
        }
        // Full state: chat before the keyframe (recent, or all missed since `after`), then the log.
        (_, true) => {
            let limit = if after.is_some() {
                usize::MAX
            } else {
                req.chat_limit
            };
            (
                Some(ChatRange {
                    after: after.unwrap_or(0),
                    before: b.floor,
                    limit,
                }),
                full_state_log,
            )
        }
        (_, false) => {
            let limit = if after.is_some() {
                usize::MAX
            } else {
                req.chat_limit
            };
            (
                Some(ChatRange {
                    after: after.unwrap_or(0),
                    before: u64::MAX,
                    limit,
                }),
                None,
            )
        }
    };
    Plan {
        mode,
        reason,
        chats,
        log_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_relay_proto::Position;

    fn bounds() -> Bounds {
        Bounds {
            epoch: "e".into(),
            head: 100,
            floor: 60,
            chat_floor: 10,
        }
    }

    fn req(resume: Option<(&str, u64)>, events: bool) -> CatchUpRequest {
        CatchUpRequest {
            resume: resume.map(|(e, o)| Position {
                epoch: e.into(),
                offset: o,
            }),
            events,
            chat_limit: 5,
        }
    }

    #[test]
    fn fresh_agent_gets_recent_chat_before_the_keyframe_then_the_log() {
        let p = plan(&bounds(), &req(None, true));
        assert_eq!(p.mode, JoinMode::Fresh);
        assert_eq!(
            p.chats,
            Some(ChatRange {
                after: 0,
                before: 60,
                limit: 5
            })
        );
        assert_eq!(p.log_after, Some(59));
    }

    #[test]
    fn agent_resumes_from_inside_the_log_and_resyncs_from_before_it() {
        let p = plan(&bounds(), &req(Some(("e", 59)), true));
        assert_eq!(
            (p.mode, p.log_after, p.chats),
            (JoinMode::Resume, Some(59), None)
        );
        let p = plan(&bounds(), &req(Some(("e", 30)), true));
        assert_eq!(
            (p.mode, p.reason),
            (JoinMode::Resync, Some(ResyncReason::Trimmed))
        );
        assert_eq!(
            p.chats,
            Some(ChatRange {
                after: 30,
                before: 60,
                limit: usize::MAX
            })
        );
        assert_eq!(p.log_after, Some(59));
    }

    #[test]
    fn customers_resume_on_chat_alone() {
        let p = plan(&bounds(), &req(Some(("e", 30)), false));
        assert_eq!(p.mode, JoinMode::Resume);
        assert_eq!(p.log_after, None);
        let p = plan(&bounds(), &req(Some(("e", 5)), false));
        assert_eq!(p.reason, Some(ResyncReason::Trimmed));
    }

    #[test]
    fn another_epoch_or_an_offset_past_the_head_is_a_resync_like_a_fresh_join() {
        let p = plan(&bounds(), &req(Some(("old", 80)), true));
        assert_eq!(p.reason, Some(ResyncReason::EpochChanged));
        assert_eq!(
            p.chats,
            Some(ChatRange {
                after: 0,
                before: 60,
                limit: 5
            })
        );
        let p = plan(&bounds(), &req(Some(("e", 101)), true));
        assert_eq!(p.reason, Some(ResyncReason::AheadOfLog));
    }
}
