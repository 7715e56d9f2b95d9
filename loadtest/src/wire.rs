//! The wire dialects the driver speaks, and the one decoder viewers use on the hot path.
//!
//! - [`Wire::Relay`]: assist-relay v1 (`docs/protocol.md`) with the JSON or MessagePack codec.
//! - [`Wire::SocketIo`]: the socket.io v4 / Engine.IO v4 websocket contract of the incumbent peer
//!   (`shared/peers/socketio-relay`): `42["event",{...}]` packets, ping `2` answered with `3`.
//! - [`Wire::Pusher`]: the Pusher channels protocol 7 of the sockudo peer (`shared/peers/sockudo`),
//!   in [`pusher`]: rooms are private channels, events and chat are client events.
//! - [`Wire::Raw`]: what the `ceiling` fan-out server forwards: relay client frames, no join, no
//!   offsets.
//!
//! Viewers decode with [`Wire::decode`]: relay `event` and `chat` frames go through a probe that
//! deserializes only `type`, `offset`, the event's side channel and the chat text, skipping the
//! rest; rarer frames go through the proto crate's [`ServerFrame`] decoder.

use std::borrow::Cow;

use anyhow::{bail, Context};
use assist_relay_proto::ServerFrame;
use assist_relay_proto::{ClientFrame, Codec, Envelope, EventPayload, JoinMode, Position, Role};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::payload::{EventProbe, Lt};

pub mod pusher;

pub use pusher::PusherApp;

/// Which server dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// assist-relay v1 with this codec.
    Relay(Codec),
    /// socket.io v4 over the websocket transport.
    SocketIo,
    /// Pusher channels protocol 7 with these app credentials.
    Pusher(&'static PusherApp),
    /// The in-process fan-out server of `ceiling`: relay client frames forwarded verbatim.
    Raw(Codec),
}

/// What a received message was, as far as the load test cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// An rrweb event.
    Event {
        /// Room offset (relay only).
        offset: Option<u64>,
        /// What the event's side channel and type say.
        probe: EventProbe,
    },
    /// A chat message; `lt` is its text read as the side channel.
    Chat {
        /// Room offset (relay only).
        offset: Option<u64>,
        /// The side channel, if the text carried one.
        lt: Option<Lt>,
    },
    /// Relay `joined`.
    Joined {
        /// Room epoch.
        epoch: String,
        /// How the join was served.
        mode: JoinMode,
    },
    /// Relay `caught_up`, the socket.io join ack, or Pusher's `subscription_succeeded`.
    CaughtUp {
        /// The offset to resume from (relay only).
        offset: Option<u64>,
    },
    /// Relay `resync`: a full state follows.
    Resync {
        /// New epoch.
        epoch: String,
    },
    /// Relay `error`.
    Error {
        /// Its code.
        code: &'static str,
    },
    /// Something that must be answered (Engine.IO or Pusher ping).
    Reply(Message),
    /// The server closed the connection.
    Closed {
        /// Close code, if one was sent.
        code: Option<u16>,
    },
    /// Anything else (acks, presence, pongs, control frames).
    Other,
    /// A message that could not be read.
    Garbage,
}

/// Relay frame fields read on the hot path.
#[derive(Deserialize)]
struct FrameProbe<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    event: Option<EventField>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// The `event` field: a JSON value, or (MessagePack) a bin or str of JSON text.
struct EventField(EventProbe);

impl<'de> Deserialize<'de> for EventField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return EventProbe::deserialize(d).map(EventField);
        }
        struct JsonText;
        impl<'de> de::Visitor<'de> for JsonText {
            type Value = EventField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bin or str holding JSON")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                serde_json::from_slice(v).map(EventField).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                self.visit_bytes(v.as_bytes())
            }
        }
        d.deserialize_bytes(JsonText)
    }
}

/// socket.io `["name", payload]` with the payload probed as an event (its `text` read for chat).
#[derive(Deserialize)]
struct SioPacket<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(default)] Option<SioPayload<'a>>,
);

#[derive(Deserialize)]
struct SioPayload<'a> {
    #[serde(flatten)]
    probe: EventProbe,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

impl Wire {
    /// The codec of relay frames (socket.io and Pusher are always JSON text).
    pub fn codec(self) -> Codec {
        match self {
            Wire::Relay(c) | Wire::Raw(c) => c,
            Wire::SocketIo | Wire::Pusher(_) => Codec::Json,
        }
    }

    /// The HTTP upgrade request for a participant.
    pub fn request(self, base: &str, room: &str, token: Option<&str>) -> anyhow::Result<Request> {
        let url = match self {
            Wire::Relay(_) => with_query(base, &format!("room={room}")),
            Wire::Raw(_) => base.to_owned(),
            Wire::SocketIo => {
                let base = if has_path(base) {
                    base.to_owned()
                } else {
                    format!("{}/socket.io/", base.trim_end_matches('/'))
                };
                with_query(&base, "EIO=4&transport=websocket")
            }
            Wire::Pusher(app) => app.url(base),
        };
        let mut req = url
            .as_str()
            .into_client_request()
            .with_context(|| format!("bad URL {url}"))?;
        if let Wire::Relay(codec) = self {
            if let Some(token) = token {
                req.headers_mut().insert(
                    "authorization",
                    HeaderValue::from_str(&format!("Bearer {token}"))?,
                );
            }
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(codec.subprotocol()),
            );
        }
        Ok(req)
    }

    /// The relay `join` frame (with a resume point).
    pub fn join(self, resume: Option<Position>) -> anyhow::Result<Message> {
        encode(self.codec(), &ClientFrame::Join { resume }.to_envelope())
    }

    /// The socket.io join packet, asking for an ack with id 1.
    pub fn sio_join(room: &str, role: Role) -> Message {
        Message::text(format!(
            r#"421["join",{{"room":{},"role":"{}"}}]"#,
            json_str(room),
            role.as_str()
        ))
    }

    /// One rrweb event (its JSON text) as the message a publisher sends.
    pub fn event(self, room: &str, event_json: String) -> anyhow::Result<Message> {
        match self {
            Wire::Relay(codec) | Wire::Raw(codec) => {
                let raw = RawValue::from_string(event_json).context("event is not JSON")?;
                encode(
                    codec,
                    &Envelope {
                        kind: Cow::Borrowed("event"),
                        event: Some(EventPayload(Cow::Owned(raw))),
                        ..Default::default()
                    },
                )
            }
            Wire::SocketIo => Ok(Message::text(sio_with_room("event", room, &event_json)?)),
            Wire::Pusher(_) => Ok(pusher::publish(room, pusher::EVENT, &event_json)),
        }
    }

    /// One chat message.
    pub fn chat(self, room: &str, id: &str, text: &str) -> anyhow::Result<Message> {
        match self {
            Wire::Relay(codec) | Wire::Raw(codec) => encode(
                codec,
                &ClientFrame::Chat {
                    id: id.to_owned(),
                    text: text.to_owned(),
                }
                .to_envelope(),
            ),
            Wire::SocketIo => Ok(Message::text(format!(
                r#"42["chat",{{"room":{},"id":{},"text":{}}}]"#,
                json_str(room),
                json_str(id),
                json_str(text)
            ))),
            Wire::Pusher(_) => Ok(pusher::chat(room, id, text)),
        }
    }

    /// Reads one received message.
    pub fn decode(self, msg: &Message) -> Inbound {
        match msg {
            Message::Close(frame) => Inbound::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)),
            },
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Other,
            Message::Text(t) => match self {
                Wire::SocketIo => decode_sio(t.as_str()),
                Wire::Pusher(_) => pusher::decode(t.as_str()),
                Wire::Relay(Codec::Json) | Wire::Raw(Codec::Json) => {
                    decode_relay(self, Codec::Json, t.as_bytes())
                }
                _ => Inbound::Garbage,
            },
            Message::Binary(b) => match self {
                Wire::Relay(Codec::MsgPack) | Wire::Raw(Codec::MsgPack) => {
                    decode_relay(self, Codec::MsgPack, b)
                }
                _ => Inbound::Garbage,
            },
        }
    }
}

fn encode(codec: Codec, env: &Envelope<'_>) -> anyhow::Result<Message> {
    let bytes = codec.encode(env)?;
    Ok(if codec.is_binary() {
        Message::binary(bytes)
    } else {
        Message::text(String::from_utf8(bytes)?)
    })
}

fn probe(codec: Codec, bytes: &[u8]) -> Option<FrameProbe<'_>> {
    match codec {
        Codec::Json => serde_json::from_slice(bytes).ok(),
        Codec::MsgPack => rmp_serde::from_slice(bytes).ok(),
    }
}

fn decode_relay(wire: Wire, codec: Codec, bytes: &[u8]) -> Inbound {
    let Some(p) = probe(codec, bytes) else {
        return Inbound::Garbage;
    };
    match p.kind.as_ref() {
        "event" => match p.event {
            Some(EventField(probe)) => Inbound::Event {
                offset: p.offset,
                probe,
            },
            None => Inbound::Garbage,
        },
        "chat" => Inbound::Chat {
            offset: p.offset,
            lt: p.text.and_then(|t| serde_json::from_str(&t).ok()),
        },
        // The fan-out server forwards every client frame; only events and chat matter.
        _ if matches!(wire, Wire::Raw(_)) => Inbound::Other,
        _ => match ServerFrame::decode(codec, bytes) {
            Ok(ServerFrame::Joined { epoch, mode, .. }) => Inbound::Joined { epoch, mode },
            Ok(ServerFrame::CaughtUp { offset }) => Inbound::CaughtUp {
                offset: Some(offset),
            },
            Ok(ServerFrame::Resync { epoch, .. }) => Inbound::Resync { epoch },
            Ok(ServerFrame::Error { code, .. }) => Inbound::Error {
                code: code.as_str(),
            },
            Ok(_) => Inbound::Other,
            Err(_) => Inbound::Garbage,
        },
    }
}

fn decode_sio(text: &str) -> Inbound {
    match text.as_bytes().first() {
        // Engine.IO ping: answer pong.
        Some(b'2') => Inbound::Reply(Message::text("3")),
        Some(b'1') => Inbound::Closed { code: None },
        Some(b'4') => decode_sio_packet(&text[1..]),
        _ => Inbound::Other,
    }
}

/// A socket.io packet (the Engine.IO `4` already stripped).
fn decode_sio_packet(packet: &str) -> Inbound {
    match packet.as_bytes().first() {
        Some(b'2') => {
            let body = packet[1..].trim_start_matches(|c: char| c.is_ascii_digit());
            let Ok(SioPacket(name, payload)) = serde_json::from_str::<SioPacket<'_>>(body) else {
                return Inbound::Garbage;
            };
            match (name.as_ref(), payload) {
                ("event", Some(p)) => Inbound::Event {
                    offset: None,
                    probe: p.probe,
                },
                ("chat", Some(p)) => Inbound::Chat {
                    offset: None,
                    lt: p.text.and_then(|t| serde_json::from_str(&t).ok()),
                },
                _ => Inbound::Other,
            }
        }
        // Ack of our join (id 1).
        Some(b'3') if packet[1..].starts_with('1') => Inbound::CaughtUp { offset: None },
        Some(b'1') => Inbound::Closed { code: None },
        Some(b'4') => Inbound::Error {
            code: "socketio_connect_error",
        },
        _ => Inbound::Other,
    }
}

/// `42["name",{"room":ROOM,<rest of the object>}]`.
fn sio_with_room(name: &str, room: &str, object_json: &str) -> anyhow::Result<String> {
    let Some(inner) = object_json.trim_start().strip_prefix('{') else {
        bail!("payload is not a JSON object");
    };
    let inner = inner.trim_start();
    let sep = if inner.starts_with('}') { "" } else { "," };
    Ok(format!(
        r#"42["{name}",{{"room":{}{sep}{inner}]"#,
        json_str(room)
    ))
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn has_path(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme
        .split_once('/')
        .is_some_and(|(_, path)| !path.split('?').next().unwrap_or_default().is_empty())
}

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(seq: u64) -> Lt {
        Lt {
            p: 1,
            seq,
            sent_us: 42,
        }
    }

    fn relay_event(codec: Codec, seq: u64) -> Message {
        let event = format!(
            r#"{{"type":3,"data":{{"source":0,"lt":{}}}}}"#,
            lt(seq).to_json()
        );
        let raw = RawValue::from_string(event).expect("json");
        let frame = ServerFrame::Event {
            offset: 7 + seq,
            event: EventPayload(Cow::Owned(raw)),
        };
        let bytes = frame.encode(codec).expect("encode");
        if codec.is_binary() {
            Message::binary(bytes)
        } else {
            Message::text(String::from_utf8(bytes).expect("utf8"))
        }
    }

    #[test]
    fn relay_events_decode_in_both_codecs() {
        for codec in Codec::ALL {
            let got = Wire::Relay(codec).decode(&relay_event(codec, 3));
            let Inbound::Event { offset, probe } = got else {
                panic!("{codec:?}: {got:?}");
            };
            assert_eq!(offset, Some(10));
            assert_eq!(probe.lt(), Some(lt(3)));
            assert_eq!(probe.kind, Some(3));
        }
    }

    #[test]
    fn publisher_frames_are_what_the_relay_accepts() {
        for codec in Codec::ALL {
            let wire = Wire::Relay(codec);
            let msg = wire
                .event("r", r#"{"type":3,"data":{"source":0}}"#.to_owned())
                .expect("event");
            let bytes = msg.clone().into_data();
            let frame = ClientFrame::decode(codec, &bytes).expect("valid client frame");
            assert_eq!(frame.type_name(), "event");
            let chat = wire.chat("r", "c-1", &lt(1).to_json()).expect("chat");
            let bytes = chat.into_data();
            assert!(matches!(
                ClientFrame::decode(codec, &bytes),
                Ok(ClientFrame::Chat { .. })
            ));
            // The fan-out server forwards the publisher's frame verbatim; viewers read it.
            let Inbound::Event { offset: None, .. } = Wire::Raw(codec).decode(&msg) else {
                panic!("raw event");
            };
        }
    }

    #[test]
    fn relay_control_frames_decode() {
        let wire = Wire::Relay(Codec::Json);
        let joined = r#"{"type":"joined","epoch":"e1","room":"r","you":{"id":"a","role":"agent"},"members":[],"mode":"fresh","head":0}"#;
        assert_eq!(
            wire.decode(&Message::text(joined)),
            Inbound::Joined {
                epoch: "e1".into(),
                mode: JoinMode::Fresh
            }
        );
        assert_eq!(
            wire.decode(&Message::text(r#"{"type":"caught_up","offset":5}"#)),
            Inbound::CaughtUp { offset: Some(5) }
        );
        assert_eq!(
            wire.decode(&Message::text(
                r#"{"type":"resync","epoch":"e2","reason":"lagged"}"#
            )),
            Inbound::Resync { epoch: "e2".into() }
        );
        assert_eq!(
            wire.decode(&Message::text(
                r#"{"type":"error","code":"rate_limited","message":"x"}"#
            )),
            Inbound::Error {
                code: "rate_limited"
            }
        );
        let chat = format!(
            r#"{{"type":"chat","offset":9,"id":"c","from":{{"id":"a","role":"agent"}},"text":{},"ts":1}}"#,
            json_str(&lt(4).to_json())
        );
        assert_eq!(
            wire.decode(&Message::text(chat)),
            Inbound::Chat {
                offset: Some(9),
                lt: Some(lt(4))
            }
        );
        assert_eq!(wire.decode(&Message::text("nonsense")), Inbound::Garbage);
        assert_eq!(wire.decode(&Message::binary(vec![0x80])), Inbound::Garbage);
    }

    #[test]
    fn socketio_packets() {
        let wire = Wire::SocketIo;
        let ev = wire
            .event(
                "r1",
                format!(r#"{{"type":3,"data":{{"lt":{}}}}}"#, lt(2).to_json()),
            )
            .expect("event");
        let text = ev.to_text().expect("text").to_owned();
        assert!(
            text.starts_with(r#"42["event",{"room":"r1","type":3"#),
            "{text}"
        );
        let Inbound::Event { probe, .. } = wire.decode(&ev) else {
            panic!("event");
        };
        assert_eq!(probe.lt(), Some(lt(2)));
        let chat = wire.chat("r1", "m1", &lt(5).to_json()).expect("chat");
        assert_eq!(
            wire.decode(&chat),
            Inbound::Chat {
                offset: None,
                lt: Some(lt(5))
            }
        );
        assert_eq!(
            wire.decode(&Message::text("2")),
            Inbound::Reply(Message::text("3"))
        );
        assert_eq!(
            wire.decode(&Message::text(r#"431[{"ok":true}]"#)),
            Inbound::CaughtUp { offset: None }
        );
        assert_eq!(
            Wire::sio_join("r1", Role::Agent).to_text().expect("text"),
            r#"421["join",{"room":"r1","role":"agent"}]"#
        );
    }

    #[test]
    fn urls() {
        let req = Wire::SocketIo
            .request("ws://127.0.0.1:3001", "r", None)
            .expect("req");
        assert_eq!(
            req.uri().to_string(),
            "ws://127.0.0.1:3001/socket.io/?EIO=4&transport=websocket"
        );
        let req = Wire::Relay(Codec::MsgPack)
            .request("ws://127.0.0.1:8080/ws", "room-1", Some("tok"))
            .expect("req");
        assert_eq!(req.uri().to_string(), "ws://127.0.0.1:8080/ws?room=room-1");
        assert_eq!(
            req.headers().get("authorization").map(|v| v.as_bytes()),
            Some(&b"Bearer tok"[..])
        );
        assert_eq!(
            req.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(Codec::MSGPACK_PROTOCOL.as_bytes())
        );
    }
}
