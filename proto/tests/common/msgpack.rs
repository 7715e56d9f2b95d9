//! A small MessagePack writer for arbitrary (also hostile) values, and arbitrary JSON values.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// MessagePack values, including ones no serializer would write
// ---------------------------------------------------------------------------------------------

/// A MessagePack value. `wide` picks a longer encoding than the shortest one where there is one.
#[derive(Debug, Clone)]
pub enum Mp {
    Nil,
    Bool(bool),
    UInt(u64, bool),
    Int(i64, bool),
    F32(f32),
    F64(f64),
    Str(String, bool),
    /// A `str` whose bytes need not be UTF-8.
    RawStr(Vec<u8>),
    Bin(Vec<u8>, bool),
    Arr(Vec<Mp>, bool),
    Map(Vec<(Mp, Mp)>, bool),
    Ext(i8, Vec<u8>),
    /// A reserved marker (0xc1) that no valid value uses.
    Reserved,
}

pub fn mp_str(s: &str) -> Mp {
    Mp::Str(s.to_owned(), false)
}

fn write_len(
    out: &mut Vec<u8>,
    len: usize,
    wide: bool,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) {
    match fix {
        Some((base, max)) if len <= max && !wide => out.push(base | len as u8),
        _ => match m8 {
            Some(m) if len <= 0xff && !wide => {
                out.push(m);
                out.push(len as u8);
            }
            _ if len <= 0xffff && !wide => {
                out.push(m16);
                out.extend((len as u16).to_be_bytes());
            }
            _ => {
                out.push(m32);
                out.extend((len as u32).to_be_bytes());
            }
        },
    }
}

/// Writes `v` as MessagePack.
pub fn write_mp(v: &Mp, out: &mut Vec<u8>) {
    match v {
        Mp::Nil => out.push(0xc0),
        Mp::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Mp::UInt(u, wide) => {
            if *wide {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            } else if *u < 0x80 {
                out.push(*u as u8);
            } else if *u <= 0xff {
                out.extend([0xcc, *u as u8]);
            } else if *u <= 0xffff {
                out.push(0xcd);
                out.extend((*u as u16).to_be_bytes());
            } else if *u <= 0xffff_ffff {
                out.push(0xce);
                out.extend((*u as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            }
        }
        Mp::Int(i, wide) => {
            if *wide {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            } else if (-32..0).contains(i) {
                out.push(*i as u8);
            } else if i8::try_from(*i).is_ok() {
                out.extend([0xd0, *i as u8]);
            } else if i16::try_from(*i).is_ok() {
                out.push(0xd1);
                out.extend((*i as i16).to_be_bytes());
            } else if i32::try_from(*i).is_ok() {
                out.push(0xd2);
                out.extend((*i as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            }
        }
        Mp::F32(f) => {
            out.push(0xca);
            out.extend(f.to_be_bytes());
        }
        Mp::F64(f) => {
            out.push(0xcb);
            out.extend(f.to_be_bytes());
        }
        Mp::Str(s, wide) => {
            write_len(
                out,
                s.len(),
                *wide,
                Some((0xa0, 31)),
                Some(0xd9),
                0xda,
                0xdb,
            );
            out.extend(s.as_bytes());
        }
        Mp::RawStr(b) => {
            write_len(
                out,
                b.len(),
                false,
                Some((0xa0, 31)),
                Some(0xd9),
                0xda,
                0xdb,
            );
            out.extend(b);
        }
        Mp::Bin(b, wide) => {
            write_len(out, b.len(), *wide, None, Some(0xc4), 0xc5, 0xc6);
            out.extend(b);
        }
        Mp::Arr(items, wide) => {
            write_len(out, items.len(), *wide, Some((0x90, 15)), None, 0xdc, 0xdd);
            for item in items {
                write_mp(item, out);
            }
        }
        Mp::Map(kv, wide) => {
            write_len(out, kv.len(), *wide, Some((0x80, 15)), None, 0xde, 0xdf);
            for (k, v) in kv {
                write_mp(k, out);
                write_mp(v, out);
            }
        }
        Mp::Ext(tag, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => {
                    out.push(0xc7);
                    out.push(n as u8);
                }
            }
            out.push(*tag as u8);
            out.extend(data);
        }
        Mp::Reserved => out.push(0xc1),
    }
}

pub fn mp_bytes(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    write_mp(v, &mut out);
    out
}

pub fn arb_mp_leaf() -> impl Strategy<Value = Mp> {
    prop_oneof![
        Just(Mp::Nil),
        any::<bool>().prop_map(Mp::Bool),
        (any::<u64>(), any::<bool>()).prop_map(|(u, w)| Mp::UInt(u, w)),
        (any::<i64>(), any::<bool>()).prop_map(|(i, w)| Mp::Int(i, w)),
        any::<f32>().prop_map(Mp::F32),
        any::<f64>().prop_map(Mp::F64),
        (arb_text(), any::<bool>()).prop_map(|(s, w)| Mp::Str(s, w)),
        vec(any::<u8>(), 0..8).prop_map(Mp::RawStr),
        (vec(any::<u8>(), 0..16), any::<bool>()).prop_map(|(b, w)| Mp::Bin(b, w)),
        // Bins holding JSON, as an event payload would.
        (arb_j(), vec(any::<u8>(), 1..8))
            .prop_map(|(j, seeds)| Mp::Bin(render(&j, &seeds).into_bytes(), false)),
        (any::<i8>(), vec(any::<u8>(), 0..20)).prop_map(|(t, d)| Mp::Ext(t, d)),
        Just(Mp::Reserved),
    ]
}

/// Any MessagePack value, nested.
pub fn arb_mp() -> impl Strategy<Value = Mp> {
    arb_mp_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..6), any::<bool>()).prop_map(|(v, w)| Mp::Arr(v, w)),
            (vec((inner.clone(), inner), 0..6), any::<bool>()).prop_map(|(kv, w)| Mp::Map(kv, w)),
        ]
    })
}

/// A map that looks like a frame: a `type` (known or not) and known and unknown fields with
/// values of any type, in any order.
pub fn arb_mp_frameish() -> impl Strategy<Value = Mp> {
    let kind = prop_oneof![
        proptest::sample::select(CLIENT_TYPES.to_vec()).prop_map(mp_str),
        proptest::sample::select(SERVER_TYPES.to_vec()).prop_map(mp_str),
        arb_mp_leaf(),
    ];
    let field = prop_oneof![
        (
            proptest::sample::select(ENVELOPE_FIELDS.to_vec()).prop_map(mp_str),
            arb_mp()
        ),
        // Well-typed values for the fields client frames use, so that some maps decode.
        (
            Just(mp_str("event")),
            (arb_rrweb_event(), any::<bool>()).prop_map(|(e, as_str)| if as_str {
                Mp::Str(e.json, false)
            } else {
                Mp::Bin(e.json.into_bytes(), false)
            }),
        ),
        (
            proptest::sample::select(vec!["id", "text", "epoch", "message"]).prop_map(mp_str),
            arb_text().prop_map(|s| Mp::Str(s, false)),
        ),
        (
            proptest::sample::select(vec!["offset", "head", "ts"]).prop_map(mp_str),
            any::<u64>().prop_map(|u| Mp::UInt(u, false)),
        ),
        (arb_unknown_field_name().prop_map(|k| mp_str(&k)), arb_mp()),
        (arb_mp_leaf(), arb_mp_leaf()),
    ];
    (kind, vec(field, 0..8), any::<bool>()).prop_map(|(kind, mut fields, wide)| {
        fields.insert(0, (mp_str("type"), kind));
        Mp::Map(fields, wide)
    })
}

/// Any JSON value (as serde_json builds it).
pub fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((arb_json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object that looks like a frame: a `type` (known or not) and known and unknown fields
/// with values of any type.
pub fn arb_json_frameish() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let kind = prop_oneof![
        proptest::sample::select(CLIENT_TYPES.to_vec()).prop_map(Value::from),
        proptest::sample::select(SERVER_TYPES.to_vec()).prop_map(Value::from),
        arb_json(),
    ];
    let field = prop_oneof![
        (
            proptest::sample::select(ENVELOPE_FIELDS.to_vec()).prop_map(str::to_owned),
            arb_json()
        ),
        (
            Just("event".to_owned()),
            arb_rrweb_event().prop_map(|e| serde_json::from_str(&e.json).expect("event JSON")),
        ),
        (
            proptest::sample::select(vec!["id", "text", "epoch", "message"])
                .prop_map(str::to_owned),
            arb_text().prop_map(Value::String),
        ),
        (arb_unknown_field_name(), arb_json()),
    ];
    (kind, vec(field, 0..8)).prop_map(|(kind, fields)| {
        let mut map: serde_json::Map<String, Value> = fields.into_iter().collect();
        map.insert("type".to_owned(), kind);
        Value::Object(map)
    })
}
