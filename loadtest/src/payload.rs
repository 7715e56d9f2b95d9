//! What publishers send: rrweb events that carry a load-test side channel.
//!
//! Each event carries [`Lt`] `{p, seq, sent_us}`: the publisher, its sequence number and the
//! *scheduled* send time. Synthetic events put it in `data.lt` of an otherwise ordinary rrweb event;
//! events of a recording get a top-level `"_lt"` field injected (rrweb ignores unknown fields). Chat
//! messages carry it as their text. Viewers read it back with [`EventProbe`], which deserializes only
//! those fields and skips everything else.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use assist_relay_proto::{EventHead, EventKind};
use serde::de::{self, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The side channel of one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lt {
    /// Publisher (stream) id.
    #[serde(default)]
    pub p: u32,
    /// Sequence number within the publisher's stream, from 0.
    pub seq: u64,
    /// Scheduled send time, microseconds since the Unix epoch.
    pub sent_us: u64,
}

impl Lt {
    /// As JSON text (also the text of a chat message).
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"p":{},"seq":{},"sent_us":{}}}"#,
            self.p, self.seq, self.sent_us
        )
    }
}

/// The rrweb event types a synthetic stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticKind {
    /// Meta (4), first half of a keyframe.
    Meta,
    /// FullSnapshot (2), second half of a keyframe.
    FullSnapshot,
    /// IncrementalSnapshot (3), source Mutation (0).
    Mutation,
}

/// Synthetic rrweb events of a fixed size, with a keyframe (Meta + FullSnapshot) at the start of
/// the stream and every `keyframe_every` events.
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    /// Target size of one event's JSON, in bytes (events are never smaller than their skeleton).
    pub size: usize,
    /// Events between keyframes (0: only the first).
    pub keyframe_every: u64,
}

impl Synthetic {
    /// The kind of the event with this sequence number.
    pub fn kind(&self, seq: u64) -> SyntheticKind {
        let pos = match self.keyframe_every {
            0 | 1 => seq,
            k => seq % k,
        };
        match pos {
            0 => SyntheticKind::Meta,
            1 => SyntheticKind::FullSnapshot,
            _ => SyntheticKind::Mutation,
        }
    }

    /// The event JSON for one sequence number.
    pub fn event(&self, lt: Lt, timestamp_ms: u64) -> String {
        let lt_json = lt.to_json();
        let (kind, data) = match self.kind(lt.seq) {
            SyntheticKind::Meta => (
                4,
                format!(
                    r#"{{"href":"https://loadtest.invalid/","width":1280,"height":720,"lt":{lt_json}"#
                ),
            ),
            SyntheticKind::FullSnapshot => (
                2,
                format!(
                    r#"{{"node":{{"type":0,"childNodes":[],"id":1}},"initialOffset":{{"left":0,"top":0}},"lt":{lt_json}"#
                ),
            ),
            SyntheticKind::Mutation => (
                3,
                format!(
                    r#"{{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[],"lt":{lt_json}"#
                ),
            ),
        };
        let head = format!(r#"{{"type":{kind},"data":{data}"#);
        let tail = format!(r#"}},"timestamp":{timestamp_ms}}}"#);
        const PAD_FIELD: usize = r#","pad":"""#.len();
        let bare = head.len() + tail.len();
        let mut out = String::with_capacity(self.size.max(bare));
        out.push_str(&head);
        if self.size > bare + PAD_FIELD {
            out.push_str(r#","pad":""#);
            out.extend(std::iter::repeat_n('x', self.size - bare - PAD_FIELD));
            out.push('"');
        }
        out.push_str(&tail);
        out
    }
}

/// One event of a recording, ready for injection of the side channel.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// When it happens, relative to the recording's first event (before speed-up).
    pub at: Duration,
    /// rrweb type.
    pub kind: EventKind,
    /// The event's JSON after its opening `{` (with a leading comma when non-empty).
    rest: String,
}

impl RecordedEvent {
    /// The event with `"_lt"` injected as its first field.
    pub fn with_lt(&self, lt: Lt) -> String {
        let lt_json = lt.to_json();
        let mut out = String::with_capacity(self.rest.len() + lt_json.len() + 8);
        out.push_str(r#"{"_lt":"#);
        out.push_str(&lt_json);
        out.push_str(&self.rest);
        out
    }
}

/// A recording: a JSON array of rrweb events.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The events, in recorded order.
    pub events: Vec<RecordedEvent>,
    /// Time from the first event to the last one (after clamping idle gaps).
    pub span: Duration,
}

/// Idle gaps longer than this (recorded time) are shortened to it, as the example client does.
pub const MAX_RECORDED_GAP: Duration = Duration::from_secs(5);

impl Recording {
    /// Loads a recording file.
    pub fn load(path: &Path) -> anyhow::Result<Recording> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Recording::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a JSON array of rrweb events.
    pub fn parse(text: &str) -> anyhow::Result<Recording> {
        let raw: Vec<&RawValue> =
            serde_json::from_str(text).context("expected a JSON array of rrweb events")?;
        let mut events = Vec::with_capacity(raw.len());
        let mut prev_ts: Option<f64> = None;
        let mut at = Duration::ZERO;
        for (i, r) in raw.into_iter().enumerate() {
            let head = EventHead::scan(r).with_context(|| format!("event {i}"))?;
            if let (Some(p), Some(t)) = (prev_ts, head.timestamp) {
                let gap = Duration::from_secs_f64(((t - p) / 1000.0).max(0.0));
                at += gap.min(MAX_RECORDED_GAP);
            }
            prev_ts = head.timestamp.or(prev_ts);
            // A raw value never has leading whitespace; `scan` checked it opens an object.
            let inner = r.get()[1..].trim_start();
            let rest = if inner.starts_with('}') {
                inner.to_owned()
            } else {
                format!(",{inner}")
            };
            events.push(RecordedEvent {
                at,
                kind: head.kind,
                rest,
            });
        }
        if events.is_empty() {
            bail!("the recording holds no events");
        }
        Ok(Recording { events, span: at })
    }
}

/// The fields of a received rrweb event that the load test reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct EventProbe {
    /// rrweb type.
    #[serde(rename = "type", default)]
    pub kind: Option<u8>,
    /// Side channel of a recorded event.
    #[serde(rename = "_lt", default)]
    lt_top: Option<Lt>,
    /// Side channel of a synthetic event (in `data.lt`).
    #[serde(default, deserialize_with = "data_lt")]
    data: Option<Lt>,
}

impl EventProbe {
    /// Reads an event from its JSON text.
    pub fn from_json(bytes: &[u8]) -> Option<EventProbe> {
        // serde's derive would also read the struct from an array (fields by position).
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    /// The side channel, wherever it was.
    pub fn lt(&self) -> Option<Lt> {
        self.lt_top.or(self.data)
    }

    /// Whether the event is a FullSnapshot (the second half of a keyframe).
    pub fn is_full_snapshot(&self) -> bool {
        self.kind == Some(2)
    }
}

/// `data.lt` of an event whose `data` may be any JSON value.
fn data_lt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lt>, D::Error> {
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        lt: Option<Lt>,
    }
    struct AnyData;
    impl<'de> de::Visitor<'de> for AnyData {
        type Value = Option<Lt>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Data::deserialize(de::value::MapAccessDeserializer::new(map)).map(|d| d.lt)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(AnyData)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(seq: u64) -> Lt {
        Lt {
            p: 3,
            seq,
            sent_us: 1_700_000_000_000_000 + seq,
        }
    }

    #[test]
    fn synthetic_events_are_rrweb_events_of_the_asked_size() {
        let s = Synthetic {
            size: 500,
            keyframe_every: 100,
        };
        for seq in [0, 1, 2, 99, 100, 101] {
            let json = s.event(lt(seq), 1_700_000_000_000);
            assert_eq!(json.len(), 500, "seq {seq}");
            let raw: &RawValue = serde_json::from_str(&json).expect("valid JSON");
            let head = EventHead::scan(raw).expect("rrweb head");
            let want = match seq % 100 {
                0 => EventKind::Meta,
                1 => EventKind::FullSnapshot,
                _ => EventKind::IncrementalSnapshot,
            };
            assert_eq!(head.kind, want);
            let probe = EventProbe::from_json(json.as_bytes()).expect("probe");
            assert_eq!(probe.lt(), Some(lt(seq)));
        }
    }

    #[test]
    fn small_size_gives_the_bare_event() {
        let s = Synthetic {
            size: 10,
            keyframe_every: 0,
        };
        let json = s.event(lt(5), 1);
        assert!(!json.contains("pad"));
        assert_eq!(
            EventProbe::from_json(json.as_bytes()).and_then(|p| p.lt()),
            Some(lt(5))
        );
    }

    #[test]
    fn recorded_events_get_a_top_level_lt() {
        let rec = Recording::parse(
            r#"[{"type":4,"data":{"href":"x"},"timestamp":1000},
                {"type":2,"data":{"node":{}},"timestamp":1500},
                {"type":3,"data":[1,2],"timestamp":30000},
                {"type":5}]"#,
        )
        .expect("recording");
        assert_eq!(rec.events.len(), 4);
        assert_eq!(rec.events[1].at, Duration::from_millis(500));
        // The 28.5 s idle gap is clamped.
        assert_eq!(
            rec.events[2].at,
            Duration::from_millis(500) + MAX_RECORDED_GAP
        );
        for (i, e) in rec.events.iter().enumerate() {
            let json = e.with_lt(lt(i as u64));
            let raw: &RawValue = serde_json::from_str(&json).expect("valid JSON");
            EventHead::scan(raw).expect("still an rrweb event");
            let probe = EventProbe::from_json(json.as_bytes()).expect("probe");
            assert_eq!(probe.lt(), Some(lt(i as u64)));
        }
        let full = EventProbe::from_json(rec.events[1].with_lt(lt(1)).as_bytes()).expect("probe");
        assert!(full.is_full_snapshot());
    }

    #[test]
    fn empty_object_event_stays_valid() {
        let rec = Recording::parse(r#"[{"type":1}]"#).expect("recording");
        let json = rec.events[0].with_lt(lt(0));
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }

    #[test]
    fn events_without_side_channel_probe_to_none() {
        let p = EventProbe::from_json(br#"{"type":3,"data":"text"}"#).expect("probe");
        assert_eq!((p.kind, p.lt()), (Some(3), None));
        assert!(EventProbe::from_json(b"[1]").is_none());
    }
}
