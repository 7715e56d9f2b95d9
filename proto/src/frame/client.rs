//! Frames a client sends ([`ClientFrame`]): decoding validates them (required fields, id lengths,
//! chat size, the rrweb event head), so a relay can trust every `ClientFrame` it holds.
//!
//! Built on the envelope of `codec`; the frames the relay sends are in `server`.

use std::borrow::Cow;

use crate::chunk::{validate_digest, ChunkData, MAX_CHUNKS};
use crate::codec::{Codec, EncodeError, Envelope};
use crate::error::ProtoError;
use crate::event::{EventHead, EventPayload};
use crate::guide::{Guidance, Signal};
use crate::page::NativePage;
use crate::types::{truncate, Position, MAX_CHAT_TEXT, MAX_ID_LEN};

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(ClientFrameKind),
    vis(pub),
    derive(Hash, strum::IntoStaticStr, strum::VariantArray),
    strum(serialize_all = "snake_case"),
    doc = "The type of a [`ClientFrame`]: its wire `type` string and, for metrics, every one."
)]
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
        /// Text, at most [`MAX_CHAT_TEXT`] bytes.
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

fn check_client_id(frame: &'static str, id: &str) -> Result<(), ProtoError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ProtoError::invalid(
            frame,
            format!("id must be 1 to {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

impl<'a> ClientFrame<'a> {
    /// Decodes and validates one frame.
    pub fn decode(codec: Codec, bytes: &'a [u8]) -> Result<Self, ProtoError> {
        Self::from_envelope(codec.decode(bytes)?)
    }

    /// The `id` of a frame that [`ClientFrame::decode`] refused with `err`, when it could be read:
    /// the envelope decoded (so the refusal is `invalid_frame`, `invalid_event` or
    /// `unknown_type`) and its `id` is a string of 1 to 128 bytes. Error frames echo it. Decodes
    /// the envelope again: refusals are rare, so accepted frames pay nothing for this.
    pub fn refused_id(codec: Codec, bytes: &[u8], err: &ProtoError) -> Option<String> {
        if !matches!(
            err,
            ProtoError::Invalid { .. } | ProtoError::InvalidEvent(_) | ProtoError::UnknownType(_)
        ) {
            return None;
        }
        let id = codec.decode(bytes).ok()?.id?;
        (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(id)
    }

    /// Validates an envelope as a client frame.
    pub fn from_envelope(env: Envelope<'a>) -> Result<Self, ProtoError> {
        match env.kind.as_ref() {
            "join" => {
                if let Some(p) = &env.resume {
                    if p.epoch.is_empty() || p.epoch.len() > MAX_ID_LEN {
                        return Err(ProtoError::invalid(
                            "join",
                            "resume.epoch must be 1 to 128 bytes",
                        ));
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
                    .ok_or_else(|| ProtoError::invalid("event", "missing field `event`"))?;
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
                    .ok_or_else(|| ProtoError::invalid("chat", "missing field `id`"))?;
                check_client_id("chat", &id)?;
                let text = env
                    .text
                    .ok_or_else(|| ProtoError::invalid("chat", "missing field `text`"))?;
                if text.is_empty() || text.len() > MAX_CHAT_TEXT {
                    return Err(ProtoError::invalid(
                        "chat",
                        format!("text must be 1 to {} bytes", MAX_CHAT_TEXT),
                    ));
                }
                Ok(ClientFrame::Chat { id, text })
            }
            "ping" => Ok(ClientFrame::Ping { id: env.id }),
            "chunk" => {
                let id = env
                    .id
                    .ok_or_else(|| ProtoError::invalid("chunk", "missing field `id`"))?;
                check_client_id("chunk", &id)?;
                let field = |v: Option<u64>, name: &str| {
                    v.ok_or_else(|| ProtoError::invalid("chunk", format!("missing field `{name}`")))
                };
                let index = field(env.index.map(u64::from), "index")? as u32;
                let count = field(env.count.map(u64::from), "count")? as u32;
                let size = field(env.size, "size")?;
                if count == 0 || count > MAX_CHUNKS {
                    return Err(ProtoError::invalid(
                        "chunk",
                        format!("count must be 1 to {MAX_CHUNKS}"),
                    ));
                }
                if index >= count {
                    return Err(ProtoError::invalid("chunk", "index must be below count"));
                }
                if size < u64::from(count) {
                    return Err(ProtoError::invalid("chunk", "size must be at least count"));
                }
                let digest = env
                    .digest
                    .ok_or_else(|| ProtoError::invalid("chunk", "missing field `digest`"))?;
                validate_digest(&digest).map_err(|e| ProtoError::invalid("chunk", e))?;
                let data = env
                    .data
                    .ok_or_else(|| ProtoError::invalid("chunk", "missing field `data`"))?;
                if data.is_empty() || data.len() as u64 > size {
                    return Err(ProtoError::invalid("chunk", "data must be 1 byte to size"));
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
                    .ok_or_else(|| ProtoError::invalid("native_page", "missing field `page`"))?;
                page.validate()
                    .map_err(|e| ProtoError::invalid("native_page", e))?;
                Ok(ClientFrame::NativePage { id: env.id, page })
            }
            "guide" => {
                if let Some(id) = &env.id {
                    check_client_id("guide", id)?;
                }
                let wire = env
                    .guide
                    .ok_or_else(|| ProtoError::invalid("guide", "missing field `guide`"))?;
                let guide =
                    Guidance::from_wire(wire).map_err(|e| ProtoError::invalid("guide", e))?;
                Ok(ClientFrame::Guide { id: env.id, guide })
            }
            "signal" => {
                if let Some(id) = &env.id {
                    check_client_id("signal", id)?;
                }
                if let Some(to) = &env.to {
                    crate::auth::validate_id("to", to)
                        .map_err(|e| ProtoError::invalid("signal", e))?;
                }
                let signal = env
                    .signal
                    .ok_or_else(|| ProtoError::invalid("signal", "missing field `signal`"))?;
                signal
                    .validate()
                    .map_err(|e| ProtoError::invalid("signal", e))?;
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
        ClientFrameKind::from(self).into()
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
