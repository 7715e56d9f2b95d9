//! Unit tests of the masking engine: the shared helpers and pages, and whole recorded sessions
//! (fixtures) under every policy. By concern: `json` (parsing, writing, deep and malformed
//! events), `walk` (snapshot and mutation masking: rr-mask, rr-block, inputs, echoes), `state`
//! (typed values, observing, caps, policies), `dom` (reading values as the replayer does),
//! `emit` (the bytes of rewritten events, the token reader against serde_json), `bench`
//! (`#[ignore]`d measurements).

use super::*;

mod bench;
mod dom;
mod emit;
mod json;
mod state;
mod walk;

/// Any JSON value, nested up to `depth`, about `size` nodes, `branch` items per array or object.
fn any_json(
    depth: u32,
    size: u32,
    branch: usize,
) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, size, branch as u32, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..branch).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..branch)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEY: [u8; 32] = [7; 32];
/// Values typed into loan-apply.json's form (the password was masked by the recorder).
const TYPED: [&str; 6] = [
    "张三丰",
    "13800138000",
    "110101199003077777",
    "6222020200112233445",
    "50000",
    "246810",
];
const FIXTURES: [&str; 4] = [
    "demoit.json",
    "loan-apply.json",
    "chat-widget.json",
    "big-catalog.json",
];

fn fixture(name: &str) -> Vec<Box<RawValue>> {
    // `../shared` beside the repository; RRWEB_FIXTURES overrides (a git worktree elsewhere).
    let dir = std::env::var("RRWEB_FIXTURES")
        .unwrap_or_else(|_| format!("{}/../../shared/fixtures/rrweb", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).expect("a fixture is a JSON array of events")
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).expect("test events are JSON")
}

fn value(s: &str) -> Value {
    serde_json::from_str(s).expect("test events are JSON")
}

fn run(policy: MaskPolicy, events: &[Box<RawValue>]) -> Vec<Option<Box<RawValue>>> {
    let mut m = RoomMask::new(policy, KEY);
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            m.mask(e)
                .unwrap_or_else(|err| panic!("{policy}: event {i} refused: {err}"))
        })
        .collect()
}

/// Masks one event given as text; `None` if it passes unchanged.
fn mask(m: &mut RoomMask, event: &str) -> Option<Value> {
    m.mask(&raw(event))
        .expect("the event can be masked")
        .map(|r| value(r.get()))
}

/// Checks that `masked` equals `orig` except for strings replaced by as many `*` (whitespace
/// kept or masked too), and says where it does not.
fn only_masked(orig: &Value, masked: &Value, path: &str) -> Result<(), String> {
    match (orig, masked) {
        (Value::String(a), Value::String(b)) if a != b => {
            let stars = b.chars().all(|c| c == '*' || c.is_whitespace());
            if stars && a.chars().count() == b.chars().count() {
                Ok(())
            } else {
                Err(format!("{path}: {a:?} became {b:?}"))
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Err(format!("{path}: {} items became {}", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                only_masked(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(a), Value::Object(b)) => {
            if a.len() != b.len() || a.keys().any(|k| !b.contains_key(k)) {
                return Err(format!("{path}: keys differ"));
            }
            for (k, x) in a {
                only_masked(x, &b[k.as_str()], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

fn snapshot(body: &str) -> String {
    format!(
        r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[{{"type":2,"tagName":"html","attributes":{{}},"childNodes":[{{"type":2,"tagName":"body","attributes":{{}},"childNodes":[{body}],"id":3}}],"id":2}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":1}}"#
    )
}

fn mutation(texts: &str, attributes: &str, removes: &str, adds: &str) -> String {
    format!(
        r#"{{"type":3,"data":{{"source":0,"texts":[{texts}],"attributes":[{attributes}],"removes":[{removes}],"adds":[{adds}]}},"timestamp":2}}"#
    )
}

fn input(id: u64, text: &str) -> String {
    format!(
        r#"{{"type":3,"data":{{"source":5,"text":{},"isChecked":false,"id":{id}}},"timestamp":3}}"#,
        Value::from(text)
    )
}

fn text_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

#[test]
fn loan_apply_under_inputs_hides_every_typed_value_and_its_echo() {
    let events = fixture("loan-apply.json");
    let out = run(MaskPolicy::Inputs, &events);
    assert_eq!(out.len(), events.len());
    for (i, (e, o)) in events.iter().zip(&out).enumerate() {
        let text = o.as_deref().unwrap_or(e).get();
        for t in TYPED {
            assert!(!text.contains(t), "event {i} still holds {t}: {text}");
        }
        if let Some(o) = o {
            only_masked(&value(e.get()), &value(o.get()), "")
                .unwrap_or_else(|p| panic!("event {i}: {p}"));
        }
        let v = value(e.get());
        let kind = v["type"].as_u64();
        let source = v["data"]["source"].as_u64();
        if !may_need_masking(
            MaskPolicy::Inputs,
            kind.unwrap_or(0) as u8,
            source.map(|s| s as u8),
        ) {
            assert!(o.is_none(), "event {i} of type {kind:?} was rewritten");
        }
    }
    // The confirmation page's FullSnapshot echoes the name as text.
    let confirm = value(out[364].as_ref().expect("the echo is masked").get());
    let before = value(events[364].get());
    let mut names = 0;
    let mut stack = vec![(&before["data"]["node"], &confirm["data"]["node"])];
    while let Some((a, b)) = stack.pop() {
        if a["textContent"] == "张三丰" {
            assert_eq!(b["textContent"], "***");
            names += 1;
        }
        if let (Some(x), Some(y)) = (a["childNodes"].as_array(), b["childNodes"].as_array()) {
            stack.extend(x.iter().zip(y));
        }
    }
    assert_eq!(names, 1);
    // Every Input event with a value not yet masked by the recorder was rewritten.
    let inputs = events
        .iter()
        .zip(&out)
        .filter(|(e, _)| value(e.get())["data"]["source"] == 5)
        .filter(|(e, _)| {
            !value(e.get())["data"]["text"]
                .as_str()
                .is_some_and(|t| t.chars().all(|c| c == '*'))
        });
    for (e, o) in inputs {
        assert!(o.is_some(), "Input event not masked: {}", e.get());
    }
}

#[test]
fn loan_apply_under_inputs_text_is_the_same_without_rr_mask() {
    let events = fixture("loan-apply.json");
    let a = run(MaskPolicy::Inputs, &events);
    let b = run(MaskPolicy::InputsText, &events);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.as_ref().map(|r| r.get()), y.as_ref().map(|r| r.get()));
    }
}

#[test]
fn loan_apply_under_passwords_masks_only_the_password() {
    let events = fixture("loan-apply.json");
    let out = run(MaskPolicy::Passwords, &events);
    // The recorder already masked the password, so every event passes byte-identical.
    for (i, o) in out.iter().enumerate() {
        assert!(
            o.is_none(),
            "event {i} was rewritten: {:?}",
            o.as_ref().map(|r| r.get())
        );
    }
    let all: String = events.iter().map(|e| e.get()).collect();
    for t in TYPED {
        assert!(all.contains(t), "{t}");
    }
    // The same form with the recorder's masking off: only the password changes.
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    m.mask(&events[80]).expect("the form's snapshot");
    let pw = mask(&mut m, &input(193, "S3cret-pass!")).expect("the password is masked");
    assert_eq!(text_of(&pw, "/data/text"), "************");
    assert!(mask(&mut m, &input(154, "13800138000")).is_none());
    assert!(mask(&mut m, &input(89, "travel")).is_none());
    assert!(
        m.take_new_typed().is_empty(),
        "passwords records no typed values"
    );
}

#[test]
fn none_never_rewrites() {
    for name in FIXTURES {
        let events = fixture(name);
        assert!(run(MaskPolicy::None, &events).iter().all(Option::is_none));
    }
    let mut m = RoomMask::new(MaskPolicy::None, KEY);
    let bad = raw(r#"{"type":2,"data":{}}"#);
    assert!(matches!(m.mask(&bad), Ok(None)), "none does not even parse");
    assert!(mask(&mut m, &input(1, "secret")).is_none());
    assert_eq!(m.state_bytes(), 0);
}

#[test]
fn every_fixture_under_every_policy() {
    for name in FIXTURES {
        let events = fixture(name);
        for policy in MaskPolicy::ALL {
            let out = run(policy, &events);
            for (i, (e, o)) in events.iter().zip(&out).enumerate() {
                if let Some(o) = o {
                    only_masked(&value(e.get()), &value(o.get()), "")
                        .unwrap_or_else(|p| panic!("{name} {policy} event {i}: {p}"));
                }
            }
        }
    }
}

const MASK_PAGE: &str = r#"{"type":2,"tagName":"div","attributes":{"class":"x rr-mask"},"childNodes":[{"type":3,"textContent":"Secret Name","id":5},{"type":2,"tagName":"b","attributes":{},"childNodes":[{"type":3,"textContent":" deep 42\n","id":7}],"id":6}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public","id":9}],"id":8}"#;

const BLOCK_PAGE: &str = r#"{"type":2,"tagName":"div","attributes":{"class":"rr-block card","style":"height:40px"},"childNodes":[{"type":3,"textContent":"hidden","id":5},{"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"hidden too","id":7}],"id":6}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public","id":9}],"id":8}"#;

fn block_mutations() -> Vec<String> {
    vec![
        mutation(
            r#"{"id":5,"value":"x"},{"id":9,"value":"y"}"#,
            r#"{"id":6,"attributes":{"class":"z"}},{"id":4,"attributes":{"style":"color:red"}}"#,
            r#"{"parentId":4,"id":5}"#,
            r#"{"parentId":4,"nextId":null,"node":{"type":3,"textContent":"new hidden","id":20}},
               {"parentId":6,"nextId":null,"node":{"type":2,"tagName":"em","attributes":{},"childNodes":[],"id":21}},
               {"parentId":21,"nextId":null,"node":{"type":3,"textContent":"deeper","id":22}},
               {"parentId":8,"nextId":null,"node":{"type":3,"textContent":"ok","id":23}}"#,
        ),
        mutation(
            r#"{"id":22,"value":"leak?"},{"id":7,"value":"leak?"}"#,
            "",
            "",
            "",
        ),
        mutation(r#"{"id":23,"value":"fine"}"#, "", "", ""),
    ]
}
