//! Property test (issue 16): rrweb-shaped events whose numbers are spelled as JavaScript reads
//! them the same (`5`, `5.0`, `5e0`, `50e-1`, `-0`), with repeated keys and shuffled keys, and
//! attribute names and types in the spellings `setAttribute` reads the same (`VALUE`,
//! `["password"]`), never carry a typed value past the relay, under every policy that masks it.

use proptest::prelude::*;
use serde_json::value::RawValue;

use super::{may_need_masking, MaskPolicy, RoomMask};
use assist_relay_proto::EventHead;

/// The password input's id, the text input's, the body's.
const PASSWORD: u64 = 10;
const TEXT: u64 = 11;
const BODY: u64 = 8;

/// `n` spelled one of several ways a browser's `JSON.parse` reads as the same number.
fn spell(n: u64, how: u8) -> String {
    match how % 5 {
        0 => n.to_string(),
        1 => format!("{n}.0"),
        2 => format!("{n}e0"),
        3 => format!("{}e-1", n * 10),
        _ if n == 0 => "-0".to_owned(),
        _ => format!("{n}.000"),
    }
}

/// An object from key/value texts, keys shuffled by `order`, with `dup` (a key and another
/// value for it, placed first or last) repeated.
fn object(
    mut kv: Vec<(String, String)>,
    order: &[usize],
    dup: Option<(usize, String, bool)>,
) -> String {
    for (i, &o) in order.iter().enumerate() {
        let n = kv.len();
        if n > 1 {
            kv.swap(i % n, o % n);
        }
    }
    if let Some((which, value, first)) = dup {
        let key = kv[which % kv.len()].0.clone();
        if first {
            kv.insert(0, (key, value));
        } else {
            kv.push((key, value));
        }
    }
    let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

fn kv(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// One generated event: what it is, the spelling choices, and its secret's number.
#[derive(Debug, Clone)]
struct Gen {
    what: u8,
    spells: [u8; 4],
    order: Vec<usize>,
    dup: Option<(usize, u8, bool)>,
    to_text: bool,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0u8..4,
        any::<[u8; 4]>(),
        proptest::collection::vec(any::<usize>(), 0..6),
        proptest::option::of((any::<usize>(), any::<u8>(), any::<bool>())),
        any::<bool>(),
    )
        .prop_map(|(what, spells, order, dup, to_text)| Gen {
            what,
            spells,
            order,
            dup,
            to_text,
        })
}

/// The `value` attribute's name in one of the cases `setAttribute` lowercases.
fn value_key(how: u8) -> &'static str {
    ["value", "VALUE", "Value"][usize::from(how / 8 % 3)]
}

/// `password` as a `type` attribute JavaScript reads the same.
fn password(how: u8) -> &'static str {
    [r#""password""#, r#""PASSWORD""#, r#"["password"]"#][usize::from(how / 32 % 3)]
}

/// A decoy value for a repeated key.
fn decoy(how: u8) -> String {
    match how % 4 {
        0 => "2".into(),
        1 => TEXT.to_string(),
        2 => "\"decoy\"".into(),
        _ => "0".into(),
    }
}

/// The event text and its secret (`sx..` typed into a password field, `tx..` into a text
/// input).
fn render(g: &Gen, n: usize) -> (String, String) {
    let s = g.spells;
    let target = if g.to_text { TEXT } else { PASSWORD };
    let secret = format!("{}x{n}q", if g.to_text && g.what == 0 { "t" } else { "s" });
    let dup = g.dup.map(|(w, how, first)| (w, decoy(how), first));
    let quoted = format!("\"{secret}\"");
    let event = match g.what {
        // An Input event.
        0 => {
            let data = object(
                kv(&[
                    ("source", spell(5, s[0])),
                    ("id", spell(target, s[1])),
                    ("text", quoted),
                    ("isChecked", "false".into()),
                ]),
                &g.order,
                dup,
            );
            format!(
                r#"{{"type":{},"data":{data},"timestamp":5}}"#,
                spell(3, s[2])
            )
        }
        // A `value` change of the password input.
        1 => {
            let change = object(
                kv(&[
                    ("id", spell(PASSWORD, s[1])),
                    (
                        "attributes",
                        format!(r#"{{"{}":{quoted}}}"#, value_key(s[3])),
                    ),
                ]),
                &g.order,
                dup,
            );
            format!(
                r#"{{"type":3,"data":{{"source":{},"texts":[],"removes":[],"adds":[],"attributes":[{change}]}},"timestamp":5}}"#,
                spell(0, s[0])
            )
        }
        // An added password input.
        2 => {
            let node = object(
                kv(&[
                    ("type", spell(2, s[2])),
                    ("tagName", "\"input\"".into()),
                    (
                        "attributes",
                        format!(
                            r#"{{"type":{},"{}":{quoted}}}"#,
                            password(s[1]),
                            value_key(s[1])
                        ),
                    ),
                    ("childNodes", "[]".into()),
                    ("id", spell(100 + n as u64, s[3])),
                ]),
                &g.order,
                dup,
            );
            format!(
                r#"{{"type":3,"data":{{"source":{},"texts":[],"removes":[],"attributes":[],"adds":[{{"parentId":{},"nextId":null,"node":{node}}}]}},"timestamp":5}}"#,
                spell(0, s[0]),
                spell(BODY, s[1])
            )
        }
        // A new page whose password input holds the value.
        _ => {
            let node = object(
                kv(&[
                    ("type", spell(2, s[2])),
                    ("tagName", "\"input\"".into()),
                    (
                        "attributes",
                        format!(
                            r#"{{"type":{},"{}":{quoted}}}"#,
                            password(s[1]),
                            value_key(s[1])
                        ),
                    ),
                    ("childNodes", "[]".into()),
                    ("id", spell(PASSWORD, s[3])),
                ]),
                &g.order,
                dup,
            );
            page(&node, &spell(2, s[0]))
        }
    };
    (event, secret)
}

fn page(input: &str, kind: &str) -> String {
    format!(
        r#"{{"type":{kind},"data":{{"node":{{"type":0,"childNodes":[{{"type":2,"tagName":"html","attributes":{{}},"childNodes":[{{"type":2,"tagName":"body","attributes":{{}},"childNodes":[{input},{{"type":2,"tagName":"input","attributes":{{"type":"text"}},"childNodes":[],"id":{TEXT}}}],"id":{BODY}}}],"id":2}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":2}}"#
    )
}

/// What the relay stores and relays for one published event (`session/publish.rs`): `None` if
/// refused.
fn relay(mask: &mut RoomMask, event: &str) -> Option<String> {
    let raw: Box<RawValue> = serde_json::from_str(event).ok()?;
    let head = EventHead::scan(&raw).ok()?;
    if !may_need_masking(mask.policy(), head.kind.as_u8(), head.source) {
        return Some(raw.get().to_owned());
    }
    match mask.mask(&raw) {
        Ok(Some(masked)) => Some(masked.get().to_owned()),
        Ok(None) => Some(raw.get().to_owned()),
        Err(_) => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_values_never_pass_in_any_spelling(events in proptest::collection::vec(gen(), 1..8)) {
        for policy in [MaskPolicy::Passwords, MaskPolicy::Inputs, MaskPolicy::InputsText] {
            let mut mask = RoomMask::new(policy, [1; 32]);
            let first = page(
                &format!(r#"{{"type":2,"tagName":"input","attributes":{{"type":"password","value":"sx-first"}},"childNodes":[],"id":{PASSWORD}}}"#),
                "2",
            );
            let out = relay(&mut mask, &first).expect("the page is stored");
            prop_assert!(!out.contains("sx-first"));
            for (n, g) in events.iter().enumerate() {
                let (event, secret) = render(g, n);
                let Some(out) = relay(&mut mask, &event) else { continue };
                let must_hide = secret.starts_with('s') || policy != MaskPolicy::Passwords;
                prop_assert!(
                    !(must_hide && out.contains(&secret)),
                    "{policy}: {secret} passed in\n{event}\nas\n{out}"
                );
            }
        }
    }
}
