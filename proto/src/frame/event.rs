//! The `event` server frame, encoded straight from an event's JSON text: the hot path of
//! delivery, and the one frame a relay node builds from text it did not parse again (its own
//! room log's, checked when it entered the cluster). The bytes are exactly those of
//! [`ServerFrame::Event`](crate::ServerFrame::Event) through [`Codec::encode`]; the test below
//! holds the two together.

use serde::{Serialize, Serializer};

use crate::codec::{Codec, EncodeError};

/// Encodes `{"type":"event","offset":offset,"event":json}` in `codec`. `json` must be valid JSON
/// text (the caller's invariant; in JSON frames it is embedded as is, in MessagePack frames it is
/// a `bin` of the text).
pub fn encode_event(codec: Codec, offset: u64, json: &str) -> Result<Vec<u8>, EncodeError> {
    match codec {
        Codec::Json => {
            let mut out = Vec::with_capacity(json.len() + 48);
            out.extend_from_slice(br#"{"type":"event","offset":"#);
            out.extend_from_slice(offset.to_string().as_bytes());
            out.extend_from_slice(br#","event":"#);
            out.extend_from_slice(json.as_bytes());
            out.push(b'}');
            Ok(out)
        }
        Codec::MsgPack => {
            #[derive(Serialize)]
            struct Frame<'a> {
                #[serde(rename = "type")]
                kind: &'static str,
                offset: u64,
                event: Text<'a>,
            }
            struct Text<'a>(&'a str);
            impl Serialize for Text<'_> {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(self.0.as_bytes())
                }
            }
            let frame = Frame {
                kind: "event",
                offset,
                event: Text(json),
            };
            rmp_serde::to_vec_named(&frame).map_err(|e| EncodeError(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::value::RawValue;

    use super::encode_event;
    use crate::codec::Codec;
    use crate::event::EventPayload;
    use crate::frame::ServerFrame;

    #[test]
    fn the_same_bytes_as_the_envelope() {
        let events = [
            r#"{"type":3,"data":{"source":2,"x":1},"timestamp":1}"#.to_owned(),
            r#"{"a":"é \"q\" \\ \u0000"}"#.to_owned(),
            format!(r#"{{"type":2,"data":"{}"}}"#, "x".repeat(70_000)),
            format!(r#"{{"type":2,"data":"{}"}}"#, "y".repeat(200)),
        ];
        for json in &events {
            let raw: Box<RawValue> = serde_json::from_str(json).expect("json");
            for offset in [
                0,
                1,
                127,
                128,
                255,
                256,
                65_535,
                65_536,
                u32::MAX as u64 + 1,
                u64::MAX,
            ] {
                for codec in [Codec::Json, Codec::MsgPack] {
                    let frame = ServerFrame::Event {
                        offset,
                        event: EventPayload(Cow::Borrowed(&*raw)),
                    };
                    assert_eq!(
                        encode_event(codec, offset, raw.get()).expect("encode"),
                        frame.encode(codec).expect("encode"),
                        "{codec:?} offset {offset}"
                    );
                }
            }
        }
    }
}
