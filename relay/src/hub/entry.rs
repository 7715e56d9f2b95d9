//! A room log entry as the hub carries it, and its encoded frames.
//!
//! Backends build [`Entry`] values (offset, epoch, body) and hand them to the hub; they never
//! encode a frame. [`Entry::messages`] encodes an entry at most once per codec, however many
//! viewers receive it, catch-up and live alike: encode once, send many.

use std::sync::{Arc, OnceLock};

use assist_relay_proto::{ChunkData, Codec, EventKind, Member, ServerFrame};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One stored entry of a room log: an rrweb event or a chat message, with its offset.
///
/// The encoded frame is cached per codec, so a relayed entry is serialized at most once per codec
/// however many viewers receive it; each viewer gets a reference-counted clone.
#[derive(Debug)]
pub struct Entry {
    /// Room offset.
    pub offset: u64,
    /// Room epoch this offset belongs to.
    pub epoch: Arc<str>,
    /// What was stored.
    pub body: EntryBody,
    /// When the relay accepted it from the publisher, µs since the Unix epoch (fan-out latency).
    pub accepted_us: u64,
    /// Payload bytes of this room's entries up to and including this one, as counted by the
    /// subscription that delivered it (see [`Subscription::head_bytes`]).
    pub cum_bytes: u64,
    frames: [OnceLock<Frames>; 2],
}

/// The encoded form of an entry in one codec: one frame, or `chunk` frames when the frame would
/// exceed the node's frame limit.
#[derive(Debug)]
enum Frames {
    One(Message),
    Chunked(Vec<Message>),
}

/// Bytes of envelope around a chunk's data (type, offset, index, count, size), generously.
const CHUNK_ENVELOPE: usize = 512;

/// The chunk data size that fits a frame of `max_frame` bytes in `codec`. JSON strings may double
/// in size when escaped (every `"` and `\` of the event text); MessagePack `bin` does not grow.
pub fn chunk_data_bytes(codec: Codec, max_frame: usize) -> usize {
    let room = max_frame.saturating_sub(CHUNK_ENVELOPE).max(1024);
    match codec {
        Codec::Json => room / 2,
        Codec::MsgPack => room,
    }
}

/// An rrweb event's JSON text: valid JSON by construction. It is checked where it enters the
/// cluster (a client's frame, a generated placeholder: [`EventJson::checked`]) and trusted where
/// a backend reads it back from this cluster's own room log ([`EventJson::stored`]), which only
/// ever holds text checked on entry: a node forwards what another node stored without parsing
/// it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJson(Box<str>);

impl EventJson {
    /// Text a parser has already checked.
    pub fn checked(raw: Box<RawValue>) -> EventJson {
        EventJson(raw.into())
    }

    /// Text read back from this cluster's room log, which only holds checked text (store
    /// backends only).
    pub(crate) fn stored(text: Box<str>) -> EventJson {
        EventJson(text)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The text as a [`RawValue`], for the few readers off the delivery path that need one (the
    /// masking state's rebuild, recordings). Checks it again; `None` cannot happen for text made
    /// by [`EventJson::checked`] or stored by this cluster.
    pub fn raw(&self) -> Option<&RawValue> {
        serde_json::from_str(&self.0).ok()
    }
}

impl From<Box<RawValue>> for EventJson {
    fn from(raw: Box<RawValue>) -> EventJson {
        EventJson::checked(raw)
    }
}

/// The payload of an [`Entry`].
#[derive(Debug, Clone)]
pub enum EntryBody {
    /// An rrweb event, raw JSON.
    Event {
        /// The event.
        event: EventJson,
        /// Its rrweb type.
        kind: EventKind,
        /// `data.source` of an incremental snapshot.
        source: Option<u8>,
    },
    /// A chat message.
    Chat {
        /// Sender's message id.
        id: String,
        /// Sender.
        from: Member,
        /// Text.
        text: String,
        /// Acceptance time, ms since the Unix epoch.
        ts: u64,
    },
}

impl EntryBody {
    /// Whether this is a chat message (delivered to every role) rather than an rrweb event.
    pub fn is_chat(&self) -> bool {
        matches!(self, EntryBody::Chat { .. })
    }

    /// Size of the payload, for memory accounting.
    pub fn size(&self) -> usize {
        match self {
            EntryBody::Event { event, .. } => event.get().len(),
            EntryBody::Chat { id, text, from, .. } => id.len() + text.len() + from.id.len() + 32,
        }
    }
}

impl Entry {
    /// A new entry accepted now.
    pub fn new(offset: u64, epoch: Arc<str>, body: EntryBody) -> Entry {
        Entry {
            offset,
            epoch,
            body,
            accepted_us: now_us(),
            cum_bytes: 0,
            frames: Default::default(),
        }
    }

    /// Sets when the entry was accepted (entries read back from a shared log).
    pub fn accepted_at(mut self, accepted_us: u64) -> Entry {
        if accepted_us > 0 {
            self.accepted_us = accepted_us;
        }
        self
    }

    /// Sets the running byte count (done by the subscription side before broadcasting).
    pub fn with_cum_bytes(mut self, cum_bytes: u64) -> Entry {
        self.cum_bytes = cum_bytes;
        self
    }

    /// The frames for this entry in `codec`, encoded on first use and shared afterwards: one
    /// frame, or `chunk` frames when one frame would be larger than `max_frame` bytes.
    pub fn messages(&self, codec: Codec, max_frame: usize) -> &[Message] {
        let frames = self.frames[codec.index()].get_or_init(|| match &self.body {
            EntryBody::Event { event, .. } => {
                // Straight from the text: no parse, the same bytes as the `event` frame's
                // envelope (assist_relay_proto::encode_event).
                let one = match assist_relay_proto::encode_event(codec, self.offset, event.get()) {
                    Ok(bytes) => message(codec, bytes),
                    Err(e) => {
                        tracing::error!(error = %e, "event frame encoding failed");
                        encode_message(codec, &internal_error())
                    }
                };
                if one.len() > max_frame {
                    Frames::Chunked(self.chunk_messages(codec, event.get(), max_frame))
                } else {
                    Frames::One(one)
                }
            }
            EntryBody::Chat { .. } => Frames::One(encode_message(codec, &self.frame())),
        });
        match frames {
            Frames::One(m) => std::slice::from_ref(m),
            Frames::Chunked(v) => v,
        }
    }

    fn chunk_messages(&self, codec: Codec, json: &str, max_frame: usize) -> Vec<Message> {
        let max = chunk_data_bytes(codec, max_frame);
        let parts: Vec<ChunkData<'_>> = match codec {
            Codec::Json => assist_relay_proto::chunk::split_text(json, max)
                .into_iter()
                .map(|s| ChunkData::Text(std::borrow::Cow::Borrowed(s)))
                .collect(),
            Codec::MsgPack => json
                .as_bytes()
                .chunks(max)
                .map(|b| ChunkData::Bytes(std::borrow::Cow::Borrowed(b)))
                .collect(),
        };
        let count = parts.len() as u32;
        parts
            .into_iter()
            .enumerate()
            .map(|(i, data)| {
                let frame = ServerFrame::Chunk {
                    offset: self.offset,
                    index: i as u32,
                    count,
                    size: json.len() as u64,
                    data,
                };
                encode_message(codec, &frame)
            })
            .collect()
    }

    /// The server frame type this entry is sent as (a metric label; no frame is built).
    pub fn type_name(&self) -> &'static str {
        match self.body {
            EntryBody::Event { .. } => "event",
            EntryBody::Chat { .. } => "chat",
        }
    }

    /// A chat entry as a server frame (an event's frame is encoded from its text, in
    /// [`Entry::messages`]).
    fn frame(&self) -> ServerFrame<'_> {
        match &self.body {
            EntryBody::Chat { id, from, text, ts } => ServerFrame::Chat {
                offset: self.offset,
                id: id.clone(),
                from: from.clone(),
                text: text.clone(),
                ts: *ts,
            },
            EntryBody::Event { .. } => internal_error(),
        }
    }

    /// Whether a participant of `role` receives this entry. Customers get chat only.
    pub fn is_for(&self, receives_events: bool) -> bool {
        receives_events || self.body.is_chat()
    }
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Encodes a server frame as a ready-to-send WebSocket message.
pub fn encode_message(codec: Codec, frame: &ServerFrame<'_>) -> Message {
    let bytes = match frame.encode(codec) {
        Ok(b) => b,
        // Only a bug in the frame types can get here; send an `internal` error instead.
        Err(e) => {
            tracing::error!(error = %e, frame = frame.type_name(), "frame encoding failed");
            internal_error().encode(codec).unwrap_or_default()
        }
    };
    message(codec, bytes)
}

fn internal_error() -> ServerFrame<'static> {
    ServerFrame::Error {
        code: assist_relay_proto::ErrorCode::Internal,
        message: "encoding failed".into(),
        id: None,
    }
}

/// Encoded frame bytes as the WebSocket message of `codec`.
fn message(codec: Codec, bytes: Vec<u8>) -> Message {
    match codec {
        Codec::MsgPack => Message::Binary(bytes.into()),
        // serde_json writes UTF-8 only, and event text is a `str`.
        Codec::Json => match String::from_utf8(bytes) {
            Ok(s) => Message::Text(Utf8Bytes::from(s)),
            Err(e) => Message::Binary(e.into_bytes().into()),
        },
    }
}
