//! Frames the relay sends ([`ServerFrame`]), with their encoding and, for clients (the SDK, tests,
//! the load driver), their decoding.
//!
//! Built on the envelope of `codec`; the frames a client sends are in `client`.

use std::borrow::Cow;

use crate::chunk::ChunkData;
use crate::codec::{Codec, EncodeError, Envelope};
use crate::error::{ErrorCode, ProtoError};
use crate::event::EventPayload;
use crate::frame::reasons::{JoinMode, ResyncReason, SnapshotReason};
use crate::guide::{Guidance, IceServer, Signal};
use crate::page::PageRecord;
use crate::types::{truncate, Limits, Member};

/// A frame the relay sends.
#[derive(Debug, Clone, PartialEq, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(ServerFrameKind),
    vis(pub),
    derive(Hash, strum::IntoStaticStr, strum::VariantArray),
    strum(serialize_all = "snake_case"),
    doc = "The type of a [`ServerFrame`]: its wire `type` string and, for metrics, every one."
)]
pub enum ServerFrame<'a> {
    /// Answer to `join`. Catch-up entries follow, then `caught_up`, then live entries.
    Joined {
        /// Room id.
        room: String,
        /// Current room epoch.
        epoch: String,
        /// The receiving participant.
        you: Member,
        /// Everyone present (including `you`).
        members: Vec<Member>,
        /// How the join is served.
        mode: JoinMode,
        /// With `mode: resync`, why.
        reason: Option<ResyncReason>,
        /// The room's last offset at join time.
        head: u64,
        /// The room's page timeline (web pages and native screens), oldest first.
        pages: Vec<PageRecord>,
        /// The node's size limits.
        limits: Option<Limits>,
        /// STUN/TURN servers for calls (empty: none configured).
        ice_servers: Vec<IceServer>,
    },
    /// A relayed rrweb event.
    Event {
        /// Room offset.
        offset: u64,
        /// The event, raw.
        event: EventPayload<'a>,
    },
    /// A chat message.
    Chat {
        /// Room offset.
        offset: u64,
        /// Sender's message id.
        id: String,
        /// Sender.
        from: Member,
        /// Text.
        text: String,
        /// Server time of acceptance, ms since the Unix epoch.
        ts: u64,
    },
    /// The sender's chat or event with this id is stored at `offset`.
    Ack {
        /// The client id.
        id: String,
        /// Where it is stored.
        offset: u64,
        /// It had been stored before (a resend); `offset` is the original one.
        duplicate: bool,
    },
    /// Someone entered the room.
    MemberJoined {
        /// Who.
        member: Member,
    },
    /// Someone left the room (closed, timed out, or their node died).
    MemberLeft {
        /// Who.
        member: Member,
    },
    /// The live stream is interrupted; a full state follows, then `caught_up`. Reset the view.
    Resync {
        /// Current room epoch.
        epoch: String,
        /// Why.
        reason: ResyncReason,
    },
    /// Catch-up is complete; what follows is live.
    CaughtUp {
        /// The last offset sent in the catch-up (or the resume offset).
        offset: u64,
    },
    /// A client frame was refused. The connection stays open.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// The id of the refused frame, if it had one.
        id: Option<String>,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's id.
        id: Option<String>,
    },
    /// One slice of a relayed rrweb event too large for one frame. Slices `0..count` arrive in
    /// order, back to back; their data concatenated is the event at `offset`.
    Chunk {
        /// Room offset of the event.
        offset: u64,
        /// Slice number.
        index: u32,
        /// Number of slices.
        count: u32,
        /// Size of the whole event, bytes.
        size: u64,
        /// The slice.
        data: ChunkData<'a>,
    },
    /// The upload slice `index` of upload `id` is staged (it survives a reconnect to any node).
    ChunkAck {
        /// Upload id.
        id: String,
        /// Slice number.
        index: u32,
    },
    /// The relay asks the customer for a fresh Meta + FullSnapshot.
    SnapshotRequest {
        /// Why.
        reason: SnapshotReason,
    },
    /// Guidance from an agent (customers only). Not stored: `offset` is the room entry it
    /// follows (the room's head when it was relayed).
    Guide {
        /// The last room offset before this guidance.
        offset: u64,
        /// The agent.
        from: Member,
        /// What to show.
        guide: Guidance,
    },
    /// A WebRTC signaling message from a participant of the other role.
    Signal {
        /// The sender.
        from: Member,
        /// The message.
        signal: Signal,
    },
}

impl<'a> ServerFrame<'a> {
    /// The frame type.
    pub fn type_name(&self) -> &'static str {
        ServerFrameKind::from(self).into()
    }

    /// The room offset this frame carries, for log entries.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ServerFrame::Event { offset, .. }
            | ServerFrame::Chat { offset, .. }
            | ServerFrame::Chunk { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Detaches the frame from the buffer it was decoded from.
    pub fn into_owned(self) -> ServerFrame<'static> {
        match self {
            ServerFrame::Event { offset, event } => ServerFrame::Event {
                offset,
                event: EventPayload(Cow::Owned(event.into_owned())),
            },
            ServerFrame::Joined {
                room,
                epoch,
                you,
                members,
                mode,
                reason,
                head,
                pages,
                limits,
                ice_servers,
            } => ServerFrame::Joined {
                room,
                epoch,
                you,
                members,
                mode,
                reason,
                head,
                pages,
                limits,
                ice_servers,
            },
            ServerFrame::Chat {
                offset,
                id,
                from,
                text,
                ts,
            } => ServerFrame::Chat {
                offset,
                id,
                from,
                text,
                ts,
            },
            ServerFrame::Ack {
                id,
                offset,
                duplicate,
            } => ServerFrame::Ack {
                id,
                offset,
                duplicate,
            },
            ServerFrame::MemberJoined { member } => ServerFrame::MemberJoined { member },
            ServerFrame::MemberLeft { member } => ServerFrame::MemberLeft { member },
            ServerFrame::Resync { epoch, reason } => ServerFrame::Resync { epoch, reason },
            ServerFrame::CaughtUp { offset } => ServerFrame::CaughtUp { offset },
            ServerFrame::Error { code, message, id } => ServerFrame::Error { code, message, id },
            ServerFrame::Pong { id } => ServerFrame::Pong { id },
            ServerFrame::Chunk {
                offset,
                index,
                count,
                size,
                data,
            } => ServerFrame::Chunk {
                offset,
                index,
                count,
                size,
                data: data.into_owned(),
            },
            ServerFrame::ChunkAck { id, index } => ServerFrame::ChunkAck { id, index },
            ServerFrame::SnapshotRequest { reason } => ServerFrame::SnapshotRequest { reason },
            ServerFrame::Guide {
                offset,
                from,
                guide,
            } => ServerFrame::Guide {
                offset,
                from,
                guide,
            },
            ServerFrame::Signal { from, signal } => ServerFrame::Signal { from, signal },
        }
    }

    /// The envelope of this frame.
    pub fn to_envelope(&self) -> Envelope<'_> {
        let mut env = Envelope {
            kind: Cow::Borrowed(self.type_name()),
            ..Default::default()
        };
        match self {
            ServerFrame::Joined {
                room,
                epoch,
                you,
                members,
                mode,
                reason,
                head,
                pages,
                limits,
                ice_servers,
            } => {
                env.pages = (!pages.is_empty()).then(|| pages.clone());
                env.limits = *limits;
                env.ice_servers = (!ice_servers.is_empty()).then(|| ice_servers.clone());
                env.room = Some(room.clone());
                env.epoch = Some(epoch.clone());
                env.you = Some(you.clone());
                env.members = Some(members.clone());
                env.mode = Some(mode.as_str().to_owned());
                env.reason = reason.map(|r| r.as_str().to_owned());
                env.head = Some(*head);
            }
            ServerFrame::Event { offset, event } => {
                env.offset = Some(*offset);
                env.event = Some(EventPayload(Cow::Borrowed(&*event.0)));
            }
            ServerFrame::Chat {
                offset,
                id,
                from,
                text,
                ts,
            } => {
                env.offset = Some(*offset);
                env.id = Some(id.clone());
                env.from = Some(from.clone());
                env.text = Some(text.clone());
                env.ts = Some(*ts);
            }
            ServerFrame::Ack {
                id,
                offset,
                duplicate,
            } => {
                env.id = Some(id.clone());
                env.offset = Some(*offset);
                env.duplicate = duplicate.then_some(true);
            }
            ServerFrame::MemberJoined { member } | ServerFrame::MemberLeft { member } => {
                env.member = Some(member.clone());
            }
            ServerFrame::Resync { epoch, reason } => {
                env.epoch = Some(epoch.clone());
                env.reason = Some(reason.as_str().to_owned());
            }
            ServerFrame::CaughtUp { offset } => env.offset = Some(*offset),
            ServerFrame::Error { code, message, id } => {
                env.code = Some(code.as_str().to_owned());
                env.message = Some(message.clone());
                env.id = id.clone();
            }
            ServerFrame::Pong { id } => env.id = id.clone(),
            ServerFrame::Chunk {
                offset,
                index,
                count,
                size,
                data,
            } => {
                env.offset = Some(*offset);
                env.index = Some(*index);
                env.count = Some(*count);
                env.size = Some(*size);
                env.data = Some(match data {
                    ChunkData::Text(t) => ChunkData::Text(Cow::Borrowed(t)),
                    ChunkData::Bytes(b) => ChunkData::Bytes(Cow::Borrowed(b)),
                });
            }
            ServerFrame::ChunkAck { id, index } => {
                env.id = Some(id.clone());
                env.index = Some(*index);
            }
            ServerFrame::SnapshotRequest { reason } => {
                env.reason = Some(reason.as_str().to_owned());
            }
            ServerFrame::Guide {
                offset,
                from,
                guide,
            } => {
                env.offset = Some(*offset);
                env.from = Some(from.clone());
                env.guide = Some(guide.to_wire());
            }
            ServerFrame::Signal { from, signal } => {
                env.from = Some(from.clone());
                env.signal = Some(signal.clone());
            }
        }
        env
    }

    /// Encodes the frame.
    pub fn encode(&self, codec: Codec) -> Result<Vec<u8>, EncodeError> {
        codec.encode(&self.to_envelope())
    }

    /// Decodes a server frame (for clients: the SDK, tests, the load tester).
    pub fn decode(codec: Codec, bytes: &'a [u8]) -> Result<Self, ProtoError> {
        Self::from_envelope(codec.decode(bytes)?)
    }

    /// Reads an envelope as a server frame.
    pub fn from_envelope(env: Envelope<'a>) -> Result<Self, ProtoError> {
        fn need<T>(v: Option<T>, frame: &'static str, field: &str) -> Result<T, ProtoError> {
            v.ok_or_else(|| ProtoError::invalid(frame, format!("missing field `{field}`")))
        }
        let frame = match env.kind.as_ref() {
            "joined" => ServerFrame::Joined {
                room: need(env.room, "joined", "room")?,
                epoch: need(env.epoch, "joined", "epoch")?,
                you: need(env.you, "joined", "you")?,
                members: need(env.members, "joined", "members")?,
                mode: JoinMode::parse(&need(env.mode, "joined", "mode")?)
                    .ok_or_else(|| ProtoError::invalid("joined", "unknown mode"))?,
                reason: env.reason.as_deref().and_then(ResyncReason::parse),
                head: need(env.head, "joined", "head")?,
                pages: env.pages.unwrap_or_default(),
                limits: env.limits,
                ice_servers: env.ice_servers.unwrap_or_default(),
            },
            "event" => ServerFrame::Event {
                offset: need(env.offset, "event", "offset")?,
                event: need(env.event, "event", "event")?,
            },
            "chat" => ServerFrame::Chat {
                offset: need(env.offset, "chat", "offset")?,
                id: need(env.id, "chat", "id")?,
                from: need(env.from, "chat", "from")?,
                text: need(env.text, "chat", "text")?,
                ts: need(env.ts, "chat", "ts")?,
            },
            "ack" => ServerFrame::Ack {
                id: need(env.id, "ack", "id")?,
                offset: need(env.offset, "ack", "offset")?,
                duplicate: env.duplicate.unwrap_or(false),
            },
            "member_joined" => ServerFrame::MemberJoined {
                member: need(env.member, "member_joined", "member")?,
            },
            "member_left" => ServerFrame::MemberLeft {
                member: need(env.member, "member_left", "member")?,
            },
            "resync" => ServerFrame::Resync {
                epoch: need(env.epoch, "resync", "epoch")?,
                reason: ResyncReason::parse(&need(env.reason, "resync", "reason")?)
                    .ok_or_else(|| ProtoError::invalid("resync", "unknown reason"))?,
            },
            "caught_up" => ServerFrame::CaughtUp {
                offset: need(env.offset, "caught_up", "offset")?,
            },
            "error" => {
                let code = need(env.code, "error", "code")?;
                ServerFrame::Error {
                    code: ErrorCode::parse(&code).ok_or_else(|| {
                        ProtoError::invalid("error", format!("unknown code {code:?}"))
                    })?,
                    message: env.message.unwrap_or_default(),
                    id: env.id,
                }
            }
            "pong" => ServerFrame::Pong { id: env.id },
            "chunk" => ServerFrame::Chunk {
                offset: need(env.offset, "chunk", "offset")?,
                index: need(env.index, "chunk", "index")?,
                count: need(env.count, "chunk", "count")?,
                size: need(env.size, "chunk", "size")?,
                data: need(env.data, "chunk", "data")?,
            },
            "chunk_ack" => ServerFrame::ChunkAck {
                id: need(env.id, "chunk_ack", "id")?,
                index: need(env.index, "chunk_ack", "index")?,
            },
            "snapshot_request" => ServerFrame::SnapshotRequest {
                reason: SnapshotReason::parse(&need(env.reason, "snapshot_request", "reason")?)
                    .ok_or_else(|| ProtoError::invalid("snapshot_request", "unknown reason"))?,
            },
            "guide" => ServerFrame::Guide {
                offset: need(env.offset, "guide", "offset")?,
                from: need(env.from, "guide", "from")?,
                guide: Guidance::from_wire(need(env.guide, "guide", "guide")?)
                    .map_err(|e| ProtoError::invalid("guide", e))?,
            },
            "signal" => ServerFrame::Signal {
                from: need(env.from, "signal", "from")?,
                signal: need(env.signal, "signal", "signal")?,
            },
            other => return Err(ProtoError::UnknownType(truncate(other, 64))),
        };
        Ok(frame)
    }
}
