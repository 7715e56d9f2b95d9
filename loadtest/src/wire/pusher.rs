//! The Pusher channels protocol 7 over a WebSocket (the sockudo peer, `shared/peers/sockudo`).
//!
//! - Connect to `/app/KEY?protocol=7&client=loadtest&version=1`; the server's first frame is
//!   `pusher:connection_established`, whose `data` is a JSON *string* holding `socket_id`.
//! - A room is the private channel `private-ROOM`. Subscribing takes
//!   `auth = KEY:hex(HMAC-SHA256(secret, "SOCKET_ID:private-ROOM"))`; the answer is
//!   `pusher_internal:subscription_succeeded`.
//! - Events are client events `{"event":"client-event","channel":...,"data":<rrweb event>}`; the
//!   relay's chat is mapped to the client event `client-chat` with `data` `{"id":...,"text":...}`.
//!   Every *other* subscriber receives the frame (the sender gets no echo, and the server keeps
//!   no history: a subscriber receives what is published after it subscribed).
//! - `pusher:ping` is answered with `pusher:pong`.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;

use super::{has_path, json_str, with_query, Inbound};
use crate::payload::EventProbe;

/// The client event that carries an rrweb event.
pub const EVENT: &str = "client-event";
/// The client event that carries a chat message.
pub const CHAT: &str = "client-chat";

/// The app credentials clients need (the app id is only used by the server's HTTP API).
#[derive(Clone, PartialEq, Eq)]
pub struct PusherApp {
    /// App key (in the URL and the auth string).
    pub key: String,
    /// App secret (signs channel subscriptions).
    pub secret: String,
}

impl std::fmt::Debug for PusherApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherApp")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PusherApp {
    /// The `auth` of a subscription: `KEY:hex(HMAC-SHA256(secret, "SOCKET_ID:CHANNEL"))`.
    pub fn auth(&self, socket_id: &str, channel: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(socket_id.as_bytes());
        mac.update(b":");
        mac.update(channel.as_bytes());
        format!("{}:{}", self.key, hex::encode(mac.finalize().into_bytes()))
    }

    /// The WebSocket URL: `BASE/app/KEY?protocol=7&client=loadtest&version=1` (a base that already
    /// has a path keeps it).
    pub fn url(&self, base: &str) -> String {
        let base = if has_path(base) {
            base.to_owned()
        } else {
            format!("{}/app/{}", base.trim_end_matches('/'), self.key)
        };
        with_query(&base, "protocol=7&client=loadtest&version=1")
    }

    /// `pusher:subscribe` to the room's private channel, signed for this socket.
    pub fn subscribe(&self, socket_id: &str, room: &str) -> Message {
        let ch = channel(room);
        let auth = self.auth(socket_id, &ch);
        Message::text(format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":{},"auth":{}}}}}"#,
            json_str(&ch),
            json_str(&auth)
        ))
    }
}

/// The private channel of a room.
pub fn channel(room: &str) -> String {
    format!("private-{room}")
}

/// A client event on the room's channel; `data_json` goes in verbatim (it must be JSON).
pub fn publish(room: &str, event: &str, data_json: &str) -> Message {
    Message::text(format!(
        r#"{{"event":{},"channel":{},"data":{data_json}}}"#,
        json_str(event),
        json_str(&channel(room))
    ))
}

/// A chat message as a `client-chat` event.
pub fn chat(room: &str, id: &str, text: &str) -> Message {
    let data = format!(r#"{{"id":{},"text":{}}}"#, json_str(id), json_str(text));
    publish(room, CHAT, &data)
}

/// The answer to `pusher:ping`.
pub fn pong() -> Message {
    Message::text(r#"{"event":"pusher:pong","data":{}}"#)
}

/// A received frame: its event name and raw `data` (`channel` and the rest are skipped).
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// `data` is a JSON object, or a JSON string holding one (what the server sends itself).
fn data_text<'a>(data: &'a RawValue) -> Option<Cow<'a, str>> {
    let raw = data.get();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(raw))
    }
}

#[derive(Deserialize)]
struct ChatData<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Established {
    socket_id: String,
}

/// The socket id of a `pusher:connection_established` frame.
pub fn socket_id(msg: &Message) -> Option<String> {
    let Message::Text(t) = msg else {
        return None;
    };
    let f: Frame<'_> = serde_json::from_str(t.as_str()).ok()?;
    if f.event != "pusher:connection_established" {
        return None;
    }
    let data = data_text(f.data?)?;
    serde_json::from_str::<Established>(&data)
        .ok()
        .map(|e| e.socket_id)
}

/// Reads one received text frame.
pub fn decode(text: &str) -> Inbound {
    let Ok(f) = serde_json::from_str::<Frame<'_>>(text) else {
        return Inbound::Garbage;
    };
    match f.event.as_ref() {
        EVENT => match f.data.and_then(data_text) {
            Some(d) => match EventProbe::from_json(d.as_bytes()) {
                Some(probe) => Inbound::Event {
                    offset: None,
                    probe,
                },
                None => Inbound::Garbage,
            },
            None => Inbound::Garbage,
        },
        CHAT => {
            let lt = f
                .data
                .and_then(data_text)
                .and_then(|d| {
                    serde_json::from_str::<ChatData<'_>>(&d)
                        .ok()?
                        .text
                        .map(|t| t.into_owned())
                })
                .and_then(|t| serde_json::from_str(&t).ok());
            Inbound::Chat { offset: None, lt }
        }
        "pusher:ping" => Inbound::Reply(pong()),
        "pusher_internal:subscription_succeeded" => Inbound::CaughtUp { offset: None },
        "pusher:subscription_error" => Inbound::Error {
            code: "pusher_subscription_error",
        },
        "pusher:error" => Inbound::Error {
            code: "pusher_error",
        },
        _ => Inbound::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Lt;
    use crate::wire::Wire;

    static APP: PusherApp = PusherApp {
        key: String::new(),
        secret: String::new(),
    };

    fn app(key: &str, secret: &str) -> PusherApp {
        PusherApp {
            key: key.to_owned(),
            secret: secret.to_owned(),
        }
    }

    fn lt(seq: u64) -> Lt {
        Lt {
            p: 2,
            seq,
            sent_us: 42,
        }
    }

    #[test]
    fn auth_matches_the_pusher_docs_example() {
        let a = app("278d425bdf160c739803", "7ad3773142a6692b25b8");
        assert_eq!(
            a.auth("1234.1234", "private-foobar"),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn auth_is_the_hmac_of_socket_and_channel() {
        // Computed here independently of `auth`: HMAC-SHA256 per RFC 2104 from plain SHA-256.
        use sha2::Digest;
        let (secret, msg) = (b"secret", b"5.17:private-room-1");
        let mut key = [0u8; 64];
        key[..secret.len()].copy_from_slice(secret);
        let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(msg)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        assert_eq!(
            app("key", "secret").auth("5.17", "private-room-1"),
            format!("key:{}", hex::encode(outer))
        );
    }

    #[test]
    fn subscribe_and_url() {
        let a = app("key", "secret");
        let sub: serde_json::Value =
            serde_json::from_str(a.subscribe("1.2", "r1").to_text().expect("text")).expect("json");
        assert_eq!(sub["event"], "pusher:subscribe");
        assert_eq!(sub["data"]["channel"], "private-r1");
        assert_eq!(sub["data"]["auth"], a.auth("1.2", "private-r1").as_str());
        assert_eq!(
            a.url("ws://127.0.0.1:6001"),
            "ws://127.0.0.1:6001/app/key?protocol=7&client=loadtest&version=1"
        );
        assert_eq!(
            a.url("ws://127.0.0.1:6001/app/other"),
            "ws://127.0.0.1:6001/app/other?protocol=7&client=loadtest&version=1"
        );
    }

    #[test]
    fn connection_established_gives_the_socket_id() {
        let m = Message::text(
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#,
        );
        assert_eq!(socket_id(&m).as_deref(), Some("123.456"));
        assert_eq!(Wire::Pusher(&APP).decode(&m), Inbound::Other);
        let obj = Message::text(
            r#"{"event":"pusher:connection_established","data":{"socket_id":"1.2"}}"#,
        );
        assert_eq!(socket_id(&obj).as_deref(), Some("1.2"));
        assert_eq!(
            socket_id(&Message::text(r#"{"event":"pusher:ping"}"#)),
            None
        );
    }

    #[test]
    fn events_and_chat_round_trip() {
        let wire = Wire::Pusher(&APP);
        let ev = wire
            .event(
                "r1",
                format!(r#"{{"type":3,"data":{{"lt":{}}}}}"#, lt(4).to_json()),
            )
            .expect("event");
        let v: serde_json::Value = serde_json::from_str(ev.to_text().expect("text")).expect("json");
        assert_eq!(v["event"], "client-event");
        assert_eq!(v["channel"], "private-r1");
        assert_eq!(v["data"]["type"], 3);
        let Inbound::Event { offset, probe } = wire.decode(&ev) else {
            panic!("event");
        };
        assert_eq!(
            (offset, probe.lt(), probe.kind),
            (None, Some(lt(4)), Some(3))
        );
        // A recorded event with its top-level side channel, data sent as a JSON string.
        let as_string = format!(
            r#"{{"event":"client-event","channel":"private-r1","data":{}}}"#,
            json_str(&format!(r#"{{"type":2,"_lt":{}}}"#, lt(5).to_json()))
        );
        let Inbound::Event { probe, .. } = wire.decode(&Message::text(as_string)) else {
            panic!("string data");
        };
        assert!(probe.is_full_snapshot());
        assert_eq!(probe.lt(), Some(lt(5)));

        let chat = wire.chat("r1", "m1", &lt(6).to_json()).expect("chat");
        let v: serde_json::Value =
            serde_json::from_str(chat.to_text().expect("text")).expect("json");
        assert_eq!(v["event"], "client-chat");
        assert_eq!(v["data"]["id"], "m1");
        assert_eq!(
            wire.decode(&chat),
            Inbound::Chat {
                offset: None,
                lt: Some(lt(6))
            }
        );
    }

    #[test]
    fn control_frames() {
        let wire = Wire::Pusher(&APP);
        let decode = |s: &str| wire.decode(&Message::text(s));
        assert_eq!(
            decode(r#"{"event":"pusher:ping","data":{}}"#),
            Inbound::Reply(pong())
        );
        assert_eq!(
            pong().to_text().expect("text"),
            r#"{"event":"pusher:pong","data":{}}"#
        );
        assert_eq!(
            decode(
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-r","data":"{}"}"#
            ),
            Inbound::CaughtUp { offset: None }
        );
        assert_eq!(
            decode(r#"{"event":"pusher:error","data":{"code":4301,"message":"x"}}"#),
            Inbound::Error {
                code: "pusher_error"
            }
        );
        assert_eq!(
            decode(r#"{"event":"pusher:subscription_error","channel":"private-r","data":{}}"#),
            Inbound::Error {
                code: "pusher_subscription_error"
            }
        );
        assert_eq!(
            decode(r#"{"event":"pusher:pong","data":{}}"#),
            Inbound::Other
        );
        assert_eq!(
            decode(r#"{"event":"client-event","data":[1]}"#),
            Inbound::Garbage
        );
        assert_eq!(decode("nonsense"), Inbound::Garbage);
        assert_eq!(wire.decode(&Message::binary(vec![1, 2])), Inbound::Garbage);
    }
}
