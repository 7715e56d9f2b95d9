//! Parsing and writing events for the masker: serde_json through serde_stacker (deep DOMs exceed
//! serde_json's 128 levels), refusing repeated object keys anywhere.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::policy::{MaskError, MAX_NESTING};

/// Drops a value without recursion (a deep tree would overflow the stack).
pub(super) fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Stack a recursive drop of one nesting level of a [`Value`] may take (measured: about 512
/// bytes for objects in debug builds, 190 in release).
const DROP_STACK_PER_LEVEL: usize = 1024;

/// Parses an event into a [`Value`] with serde_json, growing the stack as deep nesting needs
/// (serde_stacker) instead of stopping at serde_json's 128 levels. Returns the deepest nesting.
pub(super) fn parse(src: &str) -> Result<(Value, usize), MaskError> {
    let depth = nesting(src)
        .ok_or_else(|| MaskError::Shape(format!("nested deeper than {MAX_NESTING} levels")))?;
    match parse_value(src, depth) {
        Ok(v) => Ok((v, depth)),
        Err(e) => match replace_lone_surrogates(src) {
            Some(fixed) => parse_value(&fixed, depth).map(|v| (v, depth)),
            None => Err(e),
        }
        .map_err(|e| MaskError::Json(e.to_string())),
    }
}

fn parse_value(src: &str, depth: usize) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(src);
    de.disable_recursion_limit();
    let mut stacked = serde_stacker::Deserializer::new(&mut de);
    // serde_json drops what it built so far recursively, deep inside the nesting, when a value
    // fails or a key repeats: keep room below every level to drop a subtree of the whole depth.
    stacked.red_zone = stacked.red_zone.max(depth * DROP_STACK_PER_LEVEL);
    stacked.stack_size = stacked.stack_size.max(2 * stacked.red_zone);
    let Strict(value) = Strict::deserialize(stacked)?;
    match de.end() {
        Ok(()) => Ok(value),
        Err(e) => {
            drop_deep(value);
            Err(e)
        }
    }
}

/// The deepest nesting, or `None` past [`MAX_NESTING`] (checked before parsing, so that hostile
/// nesting cannot make the stack grow without bound).
fn nesting(src: &str) -> Option<usize> {
    assist_relay_proto::event::json_nesting(src, MAX_NESTING)
}

/// A [`Value`] read like serde_json's own, except that an object with a repeated key is an
/// error. `JSON.parse` (and rrweb's replayer after it) keeps the last of repeated keys, as does
/// serde_json's `Map`, but other readers keep the first; and an event passed on unchanged keeps
/// its repeats. No recorder writes them (`JSON.stringify` cannot), so the masker refuses them
/// instead of guessing which one a viewer reads.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if let Some(old) = out.insert(key, v) {
                drop_deep(old);
                return Err(de::Error::custom("an object repeats a key"));
            }
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// JSON.stringify writes lone UTF-16 surrogates (text cut inside an emoji) as `\udXXX` escapes,
/// which serde_json refuses in a string: the text with each replaced by `\ufffd` (as
/// `String::from_utf16_lossy` would), or `None` if it has none.
fn replace_lone_surrogates(src: &str) -> Option<String> {
    if !src.contains("\\ud") && !src.contains("\\uD") {
        return None;
    }
    let mut b = src.as_bytes().to_vec();
    let hex = |b: &[u8], i: usize| {
        let digits = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let (mut i, mut changed) = (0, false);
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
        } else if b[i + 1] != b'u' {
            i += 2;
        } else {
            match hex(&b, i + 2) {
                Some(0xD800..=0xDBFF)
                    if b.get(i + 6..i + 8) == Some(&b"\\u"[..])
                        && matches!(hex(&b, i + 8), Some(0xDC00..=0xDFFF)) =>
                {
                    i += 12;
                }
                Some(0xD800..=0xDFFF) => {
                    b[i + 2..i + 6].copy_from_slice(b"fffd");
                    changed = true;
                    i += 6;
                }
                _ => i += 2,
            }
        }
    }
    changed.then(|| String::from_utf8(b).ok()).flatten()
}

/// Writes a [`Value`] as compact JSON with serde_json (object keys in sorted order), growing the
/// stack as deep nesting needs.
pub(super) fn write(value: &Value) -> Result<String, MaskError> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    value
        .serialize(serde_stacker::Serializer::new(&mut ser))
        .map_err(|e| MaskError::Json(e.to_string()))?;
    String::from_utf8(out).map_err(|e| MaskError::Json(e.to_string()))
}
