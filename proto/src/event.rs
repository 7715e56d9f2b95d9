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

/// rrweb `EventType` values (rrweb `packages/types`). The metric labels ([`EventKind::label`])
/// come from strum: every kind by [`strum::IntoEnumIterator::iter`] (`Other` once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    /// 0
    DomContentLoaded,
    /// 1
    Load,
    /// 2: the whole DOM; with the preceding Meta, a keyframe.
    FullSnapshot,
    /// 3: a change, with `data.source` telling which.
    #[strum(serialize = "incremental")]
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
        self.into()
    }
}

/// Deepest `[`/`{` nesting of an event's JSON accepted at ingress. Real rrweb events measured
/// 19 to 37 levels (a DOM level takes two: the node and its `childNodes`); this leaves room for
/// about 500 DOM levels. Deeper events are refused with `invalid_event`: deep nesting crashes
/// recursive JSON readers downstream (a replay page's script parser, a viewer's rrweb).
pub const MAX_EVENT_NESTING: usize = 1024;

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

/// Top-level keys the scan reads (JSON escapes in keys are decoded first, as `JSON.parse` does).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum HeadField {
    Type,
    Data,
    Timestamp,
    #[serde(other)]
    Other,
}

/// Keys of `data` the scan reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum DataField {
    Source,
    #[serde(other)]
    Other,
}

/// What `data.source` holds, as a browser's `JSON.parse` would see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SourceScan {
    /// No `data` object, or no `source` in it.
    Absent,
    /// A number written as a canonical integer (`5`), in 0..=255.
    Canonical(u8),
    /// Something no rrweb source can equal (a string, `null`, `-3`, `300`, an object, ...).
    NotASource,
    /// A number not written as a canonical integer (`5.0`, `5e0`, `-0`, ...) or a repeated
    /// `source` key: JavaScript may read it as a source the relay would not.
    Ambiguous(&'static str),
}

/// `data`: an object's `source`; any other value has none.
struct DataScan(SourceScan);

impl<'de> Deserialize<'de> for DataScan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = DataScan;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<DataScan, A::Error> {
                let mut source = SourceScan::Absent;
                while let Some(key) = map.next_key::<DataField>()? {
                    match key {
                        DataField::Source => {
                            let s = map.next_value::<SourceValue>()?.0;
                            source = if source == SourceScan::Absent {
                                s
                            } else {
                                SourceScan::Ambiguous("a repeated \"source\" key")
                            };
                        }
                        DataField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(DataScan(source))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<DataScan, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
            fn visit_unit<E: de::Error>(self) -> Result<DataScan, E> {
                Ok(DataScan(SourceScan::Absent))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `source` value. serde_json hands a number written as a plain non-negative integer to
/// `visit_u64`, a negative integer to `visit_i64`, and anything with a fraction, an exponent or
/// `-0` (or too big for 64 bits) to `visit_f64`.
struct SourceValue(SourceScan);

impl<'de> Deserialize<'de> for SourceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = SourceValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SourceValue, E> {
                Ok(SourceValue(
                    u8::try_from(v).map_or(SourceScan::NotASource, SourceScan::Canonical),
                ))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SourceValue, E> {
                Ok(SourceValue(SourceScan::NotASource))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SourceValue, E> {
                Ok(SourceValue(SourceScan::Ambiguous(
                    "a number not written as a plain integer",
                )))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SourceValue, E> {
                Ok(SourceValue(SourceScan::NotASource))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SourceValue, E> {
                Ok(SourceValue(SourceScan::NotASource))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SourceValue, E> {
                Ok(SourceValue(SourceScan::NotASource))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<SourceValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(SourceValue(SourceScan::NotASource))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<SourceValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SourceValue(SourceScan::NotASource))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `timestamp`: a number, or anything else (tolerated, read as absent).
struct TimestampValue(Option<f64>);

impl<'de> Deserialize<'de> for TimestampValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = TimestampValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(Some(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TimestampValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TimestampValue(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TimestampValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TimestampValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole head, read in one pass: repeated `type` or `data` keys are an error.
struct HeadScan {
    kind: u8,
    source: SourceScan,
    timestamp: Option<f64>,
}

impl<'de> Deserialize<'de> for HeadScan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = HeadScan;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<HeadScan, A::Error> {
                let (mut kind, mut source, mut timestamp) = (None, None, None);
                while let Some(key) = map.next_key::<HeadField>()? {
                    match key {
                        HeadField::Type => {
                            if kind.replace(map.next_value::<u8>()?).is_some() {
                                return Err(de::Error::duplicate_field("type"));
                            }
                        }
                        HeadField::Data => {
                            if source.replace(map.next_value::<DataScan>()?.0).is_some() {
                                return Err(de::Error::duplicate_field("data"));
                            }
                        }
                        // The last one counts, as in `JSON.parse`; the relay only files by it.
                        HeadField::Timestamp => timestamp = map.next_value::<TimestampValue>()?.0,
                        HeadField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(HeadScan {
                    kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    source: source.unwrap_or(SourceScan::Absent),
                    timestamp,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// The deepest `[`/`{` nesting of JSON text, or `None` past `limit` (a byte scan, before any
/// parser recurses into it).
pub fn json_nesting(src: &str, limit: usize) -> Option<usize> {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in src.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return None;
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

impl EventHead {
    /// Reads the head of a raw rrweb event. Fails (`invalid_event`) unless it is a JSON object
    /// with one `type`, an integer in 0..=255, nested at most [`MAX_EVENT_NESTING`] deep, and,
    /// for an IncrementalSnapshot, one `data`, whose `source`, if a number, is written as a
    /// plain integer and appears once (the relay decides masking by it: `"source":5.0` is an
    /// Input event to a browser). `data` of other events may be anything, and a `timestamp`
    /// that is not a number is read as absent.
    pub fn scan(raw: &RawValue) -> Result<EventHead, crate::error::ProtoError> {
        const SHAPE: &str = "expected a JSON object with an integer \"type\" (0-255)";
        // serde's derive would also read a struct from an array; a raw value never starts
        // with whitespace.
        if !raw.get().starts_with('{') {
            return Err(crate::error::ProtoError::InvalidEvent(SHAPE.to_owned()));
        }
        // One byte pass decides the common case; anything it cannot decide exactly as the
        // serde scan does goes to that scan (`headscan`).
        match crate::headscan::scan(raw.get(), MAX_EVENT_NESTING) {
            Some(h) => Ok(EventHead {
                kind: EventKind::from_u8(h.kind),
                source: h.source,
                timestamp: h.timestamp,
            }),
            None => EventHead::scan_serde(raw),
        }
    }

    /// [`EventHead::scan`] by serde alone: the reference the fast path is held to.
    #[doc(hidden)]
    pub fn scan_serde(raw: &RawValue) -> Result<EventHead, crate::error::ProtoError> {
        const SHAPE: &str = "expected a JSON object with an integer \"type\" (0-255)";
        if !raw.get().starts_with('{') {
            return Err(crate::error::ProtoError::InvalidEvent(SHAPE.to_owned()));
        }
        if json_nesting(raw.get(), MAX_EVENT_NESTING).is_none() {
            return Err(crate::error::ProtoError::InvalidEvent(format!(
                "nested deeper than {MAX_EVENT_NESTING} levels"
            )));
        }
        let head: HeadScan = serde_json::from_str(raw.get())
            .map_err(|e| crate::error::ProtoError::InvalidEvent(format!("{SHAPE}: {e}")))?;
        let kind = EventKind::from_u8(head.kind);
        let source = match (kind, head.source) {
            (EventKind::IncrementalSnapshot, SourceScan::Ambiguous(why)) => {
                return Err(crate::error::ProtoError::InvalidEvent(format!(
                    "data.source of an IncrementalSnapshot must be written once, as a plain \
                     integer (found {why})"
                )));
            }
            (_, SourceScan::Canonical(s)) => Some(s),
            _ => None,
        };
        Ok(EventHead {
            kind,
            source,
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
