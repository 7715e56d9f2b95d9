//! rrweb events, kept opaque.
//!
//! The relay never builds a tree of an rrweb event on the hot path. An event is held as validated raw
//! JSON text; [`EventHead`] reads the few fields the relay needs (the event `type`, the incremental
//! `data.source`, the `timestamp`) in one pass that allocates nothing.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// rrweb `EventType` values (rrweb `packages/types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// 0
    DomContentLoaded,
    /// 1
    Load,
    /// 2: the whole DOM; with the preceding Meta, a keyframe.
    FullSnapshot,
    /// 3: a change, with `data.source` telling which.
    IncrementalSnapshot,
    /// 4: page URL and viewport size; precedes every FullSnapshot.
    Meta,
    /// 5
    Custom,
    /// 6
    Plugin,
    /// 7
    Asset,
    /// A type this version does not know; relayed as it is.
    Other(u8),
}

impl EventKind {
    /// From the numeric rrweb type.
    pub fn from_u8(v: u8) -> EventKind {
        match v {
            0 => EventKind::DomContentLoaded,
            1 => EventKind::Load,
            2 => EventKind::FullSnapshot,
            3 => EventKind::IncrementalSnapshot,
            4 => EventKind::Meta,
            5 => EventKind::Custom,
            6 => EventKind::Plugin,
            7 => EventKind::Asset,
            other => EventKind::Other(other),
        }
    }

    /// The numeric rrweb type.
    pub fn as_u8(self) -> u8 {
        match self {
            EventKind::DomContentLoaded => 0,
            EventKind::Load => 1,
            EventKind::FullSnapshot => 2,
            EventKind::IncrementalSnapshot => 3,
            EventKind::Meta => 4,
            EventKind::Custom => 5,
            EventKind::Plugin => 6,
            EventKind::Asset => 7,
            EventKind::Other(v) => v,
        }
    }

    /// A bounded label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::DomContentLoaded => "dom_content_loaded",
            EventKind::Load => "load",
            EventKind::FullSnapshot => "full_snapshot",
            EventKind::IncrementalSnapshot => "incremental",
            EventKind::Meta => "meta",
            EventKind::Custom => "custom",
            EventKind::Plugin => "plugin",
            EventKind::Asset => "asset",
            EventKind::Other(_) => "other",
        }
    }
}

/// The fields of an rrweb event the relay reads. Everything else is skipped without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventHead {
    /// rrweb event type.
    pub kind: EventKind,
    /// `data.source` of an IncrementalSnapshot, if present.
    pub source: Option<u8>,
    /// `timestamp` (ms since the Unix epoch), if present.
    pub timestamp: Option<f64>,
}

#[derive(Deserialize)]
struct HeadScan {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, deserialize_with = "data_object")]
    data: Option<DataScan>,
    #[serde(default)]
    timestamp: Option<f64>,
}

/// `data` as an object only: serde's derive would also read [`DataScan`] from an array, taking
/// `[1]` for `{"source":1}`. Anything but an object or null fails the strict scan.
fn data_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DataScan>, D::Error> {
    struct ObjectOnly;
    impl<'de> de::Visitor<'de> for ObjectOnly {
        type Value = Option<DataScan>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            DataScan::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(ObjectOnly)
}

#[derive(Deserialize)]
struct DataScan {
    #[serde(default)]
    source: Option<u8>,
    // Any other field is skipped by serde's derive, as IgnoredAny.
}

impl EventHead {
    /// Reads the head of a raw rrweb event. Fails unless it is a JSON object with an integer `type`
    /// in 0..=255.
    pub fn scan(raw: &RawValue) -> Result<EventHead, crate::ProtoError> {
        // serde's derive would also read the structs below from an array (fields by position).
        // A raw value never starts with whitespace.
        if !raw.get().starts_with('{') {
            return Err(crate::ProtoError::InvalidEvent(
                "expected a JSON object with an integer \"type\" (0-255)".to_owned(),
            ));
        }
        // `data` of non-incremental events may be any JSON value; tolerate that.
        let head: HeadScan = serde_json::from_str(raw.get())
            .or_else(|_| {
                #[derive(Deserialize)]
                struct Loose {
                    #[serde(rename = "type")]
                    kind: u8,
                    #[serde(default)]
                    timestamp: Option<f64>,
                    #[serde(default)]
                    #[allow(dead_code)]
                    data: Option<IgnoredAny>,
                }
                serde_json::from_str::<Loose>(raw.get()).map(|l| HeadScan {
                    kind: l.kind,
                    data: None,
                    timestamp: l.timestamp,
                })
            })
            .or_else(|_| {
                // Nor must a non-numeric `timestamp` make an event with an integer `type` invalid.
                #[derive(Deserialize)]
                struct TypeOnly {
                    #[serde(rename = "type")]
                    kind: u8,
                }
                serde_json::from_str::<TypeOnly>(raw.get()).map(|t| HeadScan {
                    kind: t.kind,
                    data: None,
                    timestamp: None,
                })
            })
            .map_err(|e| {
                crate::ProtoError::InvalidEvent(format!(
                    "expected a JSON object with an integer \"type\" (0-255): {e}"
                ))
            })?;
        Ok(EventHead {
            kind: EventKind::from_u8(head.kind),
            source: head.data.and_then(|d| d.source),
            timestamp: head.timestamp,
        })
    }
}

/// An rrweb event as it travels in a frame: raw JSON text.
///
/// In JSON frames it is embedded as the JSON value itself. In MessagePack frames it is a `bin`
/// holding the event's UTF-8 JSON text (a `str` is accepted too), so both codecs relay the same bytes
/// without re-encoding the payload, and a JSON viewer and a MessagePack viewer see the same event.
#[derive(Debug, Clone)]
pub struct EventPayload<'a>(pub Cow<'a, RawValue>);

impl EventPayload<'_> {
    /// The raw JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Box<RawValue> {
        self.0.into_owned()
    }
}

impl PartialEq for EventPayload<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for EventPayload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            s.serialize_bytes(self.json().as_bytes())
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EventPayload<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let raw: &'de RawValue = Deserialize::deserialize(d)?;
            return Ok(EventPayload(Cow::Borrowed(raw)));
        }
        struct JsonBytes;
        impl<'de> de::Visitor<'de> for JsonBytes {
            type Value = EventPayload<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bin or str holding the rrweb event as JSON text")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                serde_json::from_slice::<&RawValue>(v)
                    .map(|r| EventPayload(Cow::Borrowed(r)))
                    .map_err(|e| E::custom(format!("event is not valid JSON: {e}")))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                self.visit_borrowed_bytes(v.as_bytes())
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                let text = std::str::from_utf8(v)
                    .map_err(|_| E::custom("event is not UTF-8 JSON text"))?;
                self.visit_str(text)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                RawValue::from_string(v.to_owned())
                    .map(|r| EventPayload(Cow::Owned(r)))
                    .map_err(|e| E::custom(format!("event is not valid JSON: {e}")))
            }
        }
        d.deserialize_bytes(JsonBytes)
    }
}
