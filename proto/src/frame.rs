//! Typed frames on top of the [`Envelope`].
//!
//! Decoding a [`ClientFrame`] validates it: required fields, id lengths, chat size, and the rrweb
//! event head. A relay can therefore trust every `ClientFrame` it holds.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::chunk::{validate_digest, ChunkData, MAX_CHUNKS};
use crate::codec::{Codec, EncodeError, Envelope};
use crate::error::{ErrorCode, ProtoError};
use crate::event::{EventHead, EventPayload};
use crate::guide::{Guidance, IceServer, Signal};
use crate::page::{NativePage, PageRecord};
use crate::Role;

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Participant id (the token's `sub`).
    pub id: String,
    /// Role.
    pub role: Role,
}

/// A point in a room's log: where a client left off.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The room epoch the offset belongs to.
    pub epoch: String,
    /// The last offset the client processed.
    pub offset: u64,
}

/// How a `join` was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinMode {
    /// No resume point was given: keyframe, tail and recent chat follow.
    Fresh,
    /// Exactly the entries after the resume point follow.
    Resume,
    /// The resume point could not be served; a full state (keyframe, tail, missed chat) follows.
    /// The client must reset its view.
    Resync,
}

impl JoinMode {
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinMode::Fresh => "fresh",
            JoinMode::Resume => "resume",
            JoinMode::Resync => "resync",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [JoinMode::Fresh, JoinMode::Resume, JoinMode::Resync]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Why a client is resynced instead of resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResyncReason {
    /// The room's log was recreated (new epoch); old offsets mean nothing.
    EpochChanged,
    /// The entries after the resume point were trimmed (older than the keyframe).
    Trimmed,
    /// The client fell too far behind the live stream.
    Lagged,
    /// The resume offset is ahead of the room's log.
    AheadOfLog,
}

impl ResyncReason {
    /// Every reason, for metrics.
    pub const ALL: [ResyncReason; 4] = [
        ResyncReason::EpochChanged,
        ResyncReason::Trimmed,
        ResyncReason::Lagged,
        ResyncReason::AheadOfLog,
    ];
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::EpochChanged => "epoch_changed",
            ResyncReason::Trimmed => "trimmed",
            ResyncReason::Lagged => "lagged",
            ResyncReason::AheadOfLog => "ahead_of_log",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why the relay asks the customer for a fresh full snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotReason {
    /// The events after the room's keyframe passed the node's size threshold; a new keyframe
    /// keeps catch-up small.
    TailTooLarge,
    /// The room shows a native-page placeholder but the customer sent web-page events: the web
    /// view came back without a new snapshot.
    NativePageLeft,
    /// The room has no keyframe (it was trimmed or never sent).
    NoKeyframe,
}

impl SnapshotReason {
    /// Every reason.
    pub const ALL: [SnapshotReason; 3] = [
        SnapshotReason::TailTooLarge,
        SnapshotReason::NativePageLeft,
        SnapshotReason::NoKeyframe,
    ];
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotReason::TailTooLarge => "tail_too_large",
            SnapshotReason::NativePageLeft => "native_page_left",
            SnapshotReason::NoKeyframe => "no_keyframe",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A node's size limits, announced in `joined` so that clients size their chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame the node accepts, in bytes (larger ones close the connection with 1009).
    pub max_frame_bytes: u64,
    /// Largest event an upload may stitch, in bytes.
    pub max_upload_bytes: u64,
    /// Recommended chunk data size, in bytes (fits a frame in either codec).
    pub chunk_bytes: u64,
}

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame<'a> {
    /// Enter the room named by the token; optionally resume after a position.
    Join {
        /// Where the client left off, if reconnecting.
        resume: Option<Position>,
    },
    /// One rrweb event (customers only).
    Event {
        /// Optional client id; makes a resend idempotent and asks for an `ack`.
        id: Option<String>,
        /// The event, raw.
        event: EventPayload<'a>,
        /// What the relay read from it.
        head: EventHead,
    },
    /// A chat message. The id makes a resend idempotent; the relay answers with `ack`.
    Chat {
        /// Client message id.
        id: String,
        /// Text, at most [`crate::MAX_CHAT_TEXT`] bytes.
        text: String,
    },
    /// Application-level ping (browsers cannot send WebSocket pings); answered with `pong`.
    Ping {
        /// Echoed in the pong.
        id: Option<String>,
    },
    /// One slice of a large rrweb event (customers only). Answered with `chunk_ack`; when the
    /// last missing slice arrives the relay stitches and stores the event and answers `ack`.
    Chunk {
        /// Upload id; also the stitched event's id (idempotency and `ack`).
        id: String,
        /// Slice number, `0..count`.
        index: u32,
        /// Number of slices.
        count: u32,
        /// Size of the whole event, bytes.
        size: u64,
        /// `sha256:<hex>` of the whole event's bytes.
        digest: String,
        /// The slice.
        data: ChunkData<'a>,
    },
    /// End the session (agents only): the room is closed for everyone (close 4502
    /// `room_closed`) and its recording is made.
    End,
    /// The customer's app is on a native screen (customers only). The relay shows agents a
    /// placeholder page; with an id, answers `ack` with the placeholder's offset.
    NativePage {
        /// Optional client id (idempotency and `ack`).
        id: Option<String>,
        /// The screen.
        page: NativePage,
    },
    /// Guidance on the customer's page (agents with the `guide` capability). Relayed to the
    /// room's customers, not stored.
    Guide {
        /// Optional client id, echoed in errors.
        id: Option<String>,
        /// What to show.
        guide: Guidance,
    },
    /// A WebRTC signaling message, relayed to the other role (or one participant of it).
    Signal {
        /// Optional client id, echoed in errors.
        id: Option<String>,
        /// The participant it is for; absent: every participant of the other role.
        to: Option<String>,
        /// The message.
        signal: Signal,
    },
}

fn invalid(frame: &'static str, reason: impl Into<String>) -> ProtoError {
    ProtoError::Invalid {
        frame,
        reason: reason.into(),
    }
}

fn check_client_id(frame: &'static str, id: &str) -> Result<(), ProtoError> {
    if id.is_empty() || id.len() > crate::MAX_ID_LEN {
        return Err(invalid(
            frame,
            format!("id must be 1 to {} bytes", crate::MAX_ID_LEN),
        ));
    }
    Ok(())
}

impl<'a> ClientFrame<'a> {
    /// Decodes and validates one frame.
    pub fn decode(codec: Codec, bytes: &'a [u8]) -> Result<Self, ProtoError> {
        Self::from_envelope(codec.decode(bytes)?)
    }

    /// Validates an envelope as a client frame.
    pub fn from_envelope(env: Envelope<'a>) -> Result<Self, ProtoError> {
        match env.kind.as_ref() {
            "join" => {
                if let Some(p) = &env.resume {
                    if p.epoch.is_empty() || p.epoch.len() > crate::MAX_ID_LEN {
                        return Err(invalid("join", "resume.epoch must be 1 to 128 bytes"));
                    }
                }
                Ok(ClientFrame::Join { resume: env.resume })
            }
            "event" => {
                if let Some(id) = &env.id {
                    check_client_id("event", id)?;
                }
                let event = env
                    .event
                    .ok_or_else(|| invalid("event", "missing field `event`"))?;
                let head = EventHead::scan(&event.0)?;
                Ok(ClientFrame::Event {
                    id: env.id,
                    event,
                    head,
                })
            }
            "chat" => {
                let id = env
                    .id
                    .ok_or_else(|| invalid("chat", "missing field `id`"))?;
                check_client_id("chat", &id)?;
                let text = env
                    .text
                    .ok_or_else(|| invalid("chat", "missing field `text`"))?;
                if text.is_empty() || text.len() > crate::MAX_CHAT_TEXT {
                    return Err(invalid(
                        "chat",
                        format!("text must be 1 to {} bytes", crate::MAX_CHAT_TEXT),
                    ));
                }
                Ok(ClientFrame::Chat { id, text })
            }
            "ping" => Ok(ClientFrame::Ping { id: env.id }),
            "chunk" => {
                let id = env
                    .id
                    .ok_or_else(|| invalid("chunk", "missing field `id`"))?;
                check_client_id("chunk", &id)?;
                let field = |v: Option<u64>, name: &str| {
                    v.ok_or_else(|| invalid("chunk", format!("missing field `{name}`")))
                };
                let index = field(env.index.map(u64::from), "index")? as u32;
                let count = field(env.count.map(u64::from), "count")? as u32;
                let size = field(env.size, "size")?;
                if count == 0 || count > MAX_CHUNKS {
                    return Err(invalid("chunk", format!("count must be 1 to {MAX_CHUNKS}")));
                }
                if index >= count {
                    return Err(invalid("chunk", "index must be below count"));
                }
                if size < u64::from(count) {
                    return Err(invalid("chunk", "size must be at least count"));
                }
                let digest = env
                    .digest
                    .ok_or_else(|| invalid("chunk", "missing field `digest`"))?;
                validate_digest(&digest).map_err(|e| invalid("chunk", e))?;
                let data = env
                    .data
                    .ok_or_else(|| invalid("chunk", "missing field `data`"))?;
                if data.is_empty() || data.len() as u64 > size {
                    return Err(invalid("chunk", "data must be 1 byte to size"));
                }
                Ok(ClientFrame::Chunk {
                    id,
                    index,
                    count,
                    size,
                    digest,
                    data,
                })
            }
            "end" => Ok(ClientFrame::End),
            "native_page" => {
                if let Some(id) = &env.id {
                    check_client_id("native_page", id)?;
                }
                let page = env
                    .page
                    .ok_or_else(|| invalid("native_page", "missing field `page`"))?;
                page.validate().map_err(|e| invalid("native_page", e))?;
                Ok(ClientFrame::NativePage { id: env.id, page })
            }
            "guide" => {
                if let Some(id) = &env.id {
                    check_client_id("guide", id)?;
                }
                let wire = env
                    .guide
                    .ok_or_else(|| invalid("guide", "missing field `guide`"))?;
                let guide = Guidance::from_wire(wire).map_err(|e| invalid("guide", e))?;
                Ok(ClientFrame::Guide { id: env.id, guide })
            }
            "signal" => {
                if let Some(id) = &env.id {
                    check_client_id("signal", id)?;
                }
                if let Some(to) = &env.to {
                    crate::validate_id("to", to).map_err(|e| invalid("signal", e))?;
                }
                let signal = env
                    .signal
                    .ok_or_else(|| invalid("signal", "missing field `signal`"))?;
                signal.validate().map_err(|e| invalid("signal", e))?;
                Ok(ClientFrame::Signal {
                    id: env.id,
                    to: env.to,
                    signal,
                })
            }
            other => Err(ProtoError::UnknownType(truncate(other, 64))),
        }
    }

    /// The frame type, for logs and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Event { .. } => "event",
            ClientFrame::Chat { .. } => "chat",
            ClientFrame::Ping { .. } => "ping",
            ClientFrame::Chunk { .. } => "chunk",
            ClientFrame::NativePage { .. } => "native_page",
            ClientFrame::End => "end",
            ClientFrame::Guide { .. } => "guide",
            ClientFrame::Signal { .. } => "signal",
        }
    }

    /// The envelope of this frame (for clients that send it).
    pub fn to_envelope(&self) -> Envelope<'_> {
        let mut env = Envelope {
            kind: Cow::Borrowed(self.type_name()),
            ..Default::default()
        };
        match self {
            ClientFrame::Join { resume } => env.resume = resume.clone(),
            ClientFrame::Event { id, event, .. } => {
                env.id = id.clone();
                env.event = Some(EventPayload(Cow::Borrowed(&*event.0)));
            }
            ClientFrame::Chat { id, text } => {
                env.id = Some(id.clone());
                env.text = Some(text.clone());
            }
            ClientFrame::Ping { id } => env.id = id.clone(),
            ClientFrame::Chunk {
                id,
                index,
                count,
                size,
                digest,
                data,
            } => {
                env.id = Some(id.clone());
                env.index = Some(*index);
                env.count = Some(*count);
                env.size = Some(*size);
                env.digest = Some(digest.clone());
                env.data = Some(match data {
                    ChunkData::Text(t) => ChunkData::Text(Cow::Borrowed(t)),
                    ChunkData::Bytes(b) => ChunkData::Bytes(Cow::Borrowed(b)),
                });
            }
            ClientFrame::NativePage { id, page } => {
                env.id = id.clone();
                env.page = Some(page.clone());
            }
            ClientFrame::End => {}
            ClientFrame::Guide { id, guide } => {
                env.id = id.clone();
                env.guide = Some(guide.to_wire());
            }
            ClientFrame::Signal { id, to, signal } => {
                env.id = id.clone();
                env.to = to.clone();
                env.signal = Some(signal.clone());
            }
        }
        env
    }

    /// Encodes the frame.
    pub fn encode(&self, codec: Codec) -> Result<Vec<u8>, EncodeError> {
        codec.encode(&self.to_envelope())
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A frame the relay sends.
#[derive(Debug, Clone, PartialEq)]
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
        match self {
            ServerFrame::Joined { .. } => "joined",
            ServerFrame::Event { .. } => "event",
            ServerFrame::Chat { .. } => "chat",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::MemberJoined { .. } => "member_joined",
            ServerFrame::MemberLeft { .. } => "member_left",
            ServerFrame::Resync { .. } => "resync",
            ServerFrame::CaughtUp { .. } => "caught_up",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Chunk { .. } => "chunk",
            ServerFrame::ChunkAck { .. } => "chunk_ack",
            ServerFrame::SnapshotRequest { .. } => "snapshot_request",
            ServerFrame::Guide { .. } => "guide",
            ServerFrame::Signal { .. } => "signal",
        }
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
            v.ok_or_else(|| invalid(frame, format!("missing field `{field}`")))
        }
        let frame = match env.kind.as_ref() {
            "joined" => ServerFrame::Joined {
                room: need(env.room, "joined", "room")?,
                epoch: need(env.epoch, "joined", "epoch")?,
                you: need(env.you, "joined", "you")?,
                members: need(env.members, "joined", "members")?,
                mode: JoinMode::parse(&need(env.mode, "joined", "mode")?)
                    .ok_or_else(|| invalid("joined", "unknown mode"))?,
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
                    .ok_or_else(|| invalid("resync", "unknown reason"))?,
            },
            "caught_up" => ServerFrame::CaughtUp {
                offset: need(env.offset, "caught_up", "offset")?,
            },
            "error" => {
                let code = need(env.code, "error", "code")?;
                ServerFrame::Error {
                    code: ErrorCode::ALL
                        .into_iter()
                        .find(|c| c.as_str() == code)
                        .ok_or_else(|| invalid("error", format!("unknown code {code:?}")))?,
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
                    .ok_or_else(|| invalid("snapshot_request", "unknown reason"))?,
            },
            "guide" => ServerFrame::Guide {
                offset: need(env.offset, "guide", "offset")?,
                from: need(env.from, "guide", "from")?,
                guide: Guidance::from_wire(need(env.guide, "guide", "guide")?)
                    .map_err(|e| invalid("guide", e))?,
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
