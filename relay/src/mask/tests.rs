//! Unit tests of the masking engine.

use super::*;

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

#[test]
fn parse_and_write_are_serde_jsons() {
    let cases = [
        r#"{"a":"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r","b":[1,-2,3.5,-0,1e3,1E-7,0.1,12.5e+2]}"#,
        r#"[18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]"#,
        r#" { "x" : { } , "y" : [ ] , "z" : null , "t" : true , "f" : false , "w" : 2 } "#,
        "\"\\u0001\\u001f\u{7f}\u{10ffff}\"",
        "[[[[[]]]],{\"\":{\"\":[\"\"]}}]",
        "[0.30000000000000004,2.2250738585072014e-308,5e-324,1.7976931348623157e308,9007199254740993.0]",
    ];
    for c in cases {
        let (v, _) = parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        let theirs: Value = serde_json::from_str(c).expect("serde_json parses it");
        assert_eq!(v, theirs, "{c}");
        let text = write(&v).expect("writes");
        assert_eq!(text, serde_json::to_string(&theirs).expect("writes"), "{c}");
        assert_eq!(
            parse(&text).expect("parses").0,
            v,
            "{c}: floats round-trip exactly"
        );
    }
    // Lone surrogates (JSON.stringify emits them) become U+FFFD instead of an error.
    let (v, _) =
        parse(r#"["a\ud800b\udc00c\ud800\u0041\ud83d\ude00","\\ud800",1]"#).expect("lenient");
    assert_eq!(
        v,
        serde_json::json!(["a\u{fffd}b\u{fffd}c\u{fffd}A\u{1f600}", "\\ud800", 1])
    );
    for bad in [
        "",
        "{",
        "[1,2",
        "[1,]",
        "{\"a\"}",
        "{\"a\":1,}",
        "01",
        "1.",
        "-",
        "1e",
        "\"\\x\"",
        "\"\u{1}\"",
        "tru",
        "[1] 2",
        "{\"a\":1}}",
        "1e400",
        "\"\\u12\"",
        "[\"\\ud800\",]",
        "[\"\\ud800\"] x",
    ] {
        assert!(matches!(parse(bad), Err(MaskError::Json(_))), "{bad:?}");
    }
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
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
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn parse_and_write_round_trip(v in any_json()) {
        let text = serde_json::to_string(&v).expect("writes");
        let (parsed, _) = parse(&text).expect("parses");
        proptest::prop_assert_eq!(&parsed, &v);
        proptest::prop_assert_eq!(write(&v).expect("writes"), text);
        let pretty = serde_json::to_string_pretty(&v).expect("writes");
        let (parsed, _) = parse(&pretty).expect("parses");
        proptest::prop_assert_eq!(&parsed, &v);
    }
}

/// Runs `f` on a thread with a 2 MiB stack (a tokio worker's), where recursion would show.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawns a thread")
        .join()
        .expect("no panic");
}

/// A FullSnapshot of an input inside `levels` nested divs, keys in the order serde_json
/// writes them.
fn deep_snapshot(levels: usize, value: &str) -> String {
    let mut s =
        String::from(r#"{"data":{"initialOffset":{"left":0,"top":0},"node":{"childNodes":["#);
    for _ in 0..levels {
        s.push_str(r#"{"attributes":{},"childNodes":["#);
    }
    s.push_str(&format!(
        r#"{{"attributes":{{"type":"text","value":"{value}"}},"childNodes":[],"id":2,"tagName":"input","type":2}}"#
    ));
    for i in 0..levels {
        s.push_str(&format!(r#"],"id":{},"tagName":"div","type":2}}"#, 10 + i));
    }
    s.push_str(r#"],"id":1,"type":0}},"timestamp":1,"type":2}"#);
    s
}

#[test]
fn deep_documents_are_masked_and_too_deep_ones_refused() {
    on_small_stack(|| {
        let event = deep_snapshot(3000, "deep secret");
        assert!(
            serde_json::from_str::<Value>(&event).is_err(),
            "serde_json alone stops at 128 levels"
        );
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        let out = m.mask(&raw(&event)).expect("masks").expect("changed");
        assert_eq!(out.get(), deep_snapshot(3000, "***********"));

        let too_deep = deep_snapshot(MAX_NESTING / 2, "x");
        assert!(matches!(m.mask(&raw(&too_deep)), Err(MaskError::Shape(_))));
        let too_deep = "[".repeat(MAX_NESTING + 1) + "1" + &"]".repeat(MAX_NESTING + 1);
        assert!(matches!(m.mask(&raw(&too_deep)), Err(MaskError::Shape(_))));
        let unclosed = "[".repeat(1 << 20);
        assert!(matches!(
            m.process(&unclosed, true),
            Err(MaskError::Shape(_))
        ));
        let unclosed = "{\"a\":[".repeat(MAX_NESTING / 2);
        assert!(matches!(
            m.process(&unclosed, true),
            Err(MaskError::Json(_))
        ));
    });
}

#[test]
fn failing_deep_inside_a_deep_document_is_an_error_not_a_crash() {
    // serde_json drops a deep value it built recursively when a later sibling fails, or its
    // key repeats, at whatever nesting level that happens.
    on_small_stack(|| {
        let deep = "{\"a\":".repeat(4000) + "1" + &"}".repeat(4000);
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        for outer in (0..4000).step_by(250) {
            let (open, close) = ("[".repeat(outer), "]".repeat(outer));
            for (tail, json_error) in [
                (",1e400]", true),
                (" x]", true),
                (",\"\\ud800\" x]", true),
                (",\"\\ud800\"]", false),
            ] {
                let event = format!("{open}[{deep}{tail}{close}");
                let r = m.process(&event, true);
                assert!(
                    matches!(
                        (&r, json_error),
                        (Err(MaskError::Json(_)), true) | (Err(MaskError::Shape(_)), false)
                    ),
                    "{outer} {tail}: {r:?}"
                );
            }
            // A repeated key is refused (after dropping the deep value it repeats).
            let event = format!("{open}{{\"k\":{deep},\"k\":1}}{close}");
            assert!(matches!(m.process(&event, true), Err(MaskError::Json(_))));
        }
    });
}

#[test]
fn deep_mutation_items_that_are_left_out_are_dropped_safely() {
    on_small_stack(|| {
        let junk = "{\"a\":".repeat(MAX_NESTING - 8) + "1" + &"}".repeat(MAX_NESTING - 8);
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        mask(&mut m, &snapshot(BLOCK_PAGE));
        let ev = mutation(
            &format!(r#"{{"id":5,"value":"x","junk":{junk}}},{{"value":"x","junk":{junk}}}"#),
            &format!(r#"{{"id":6,"attributes":{{}},"junk":{junk}}}"#),
            &format!(r#"{{"parentId":4,"id":5,"junk":{junk}}}"#),
            &format!(
                r#"{{"parentId":4,"nextId":null,"node":{{"type":3,"textContent":"x","id":30,"junk":{junk}}}}},
                   {{"nextId":null,"node":{{"type":3,"textContent":"x","id":31,"junk":{junk}}}}}"#
            ),
        );
        let out = m.mask(&raw(&ev)).expect("masks").expect("items left out");
        let expected = r#"{"data":{"adds":[],"attributes":[],"removes":[],"source":0,"texts":[]},"timestamp":2,"type":3}"#;
        assert_eq!(out.get(), expected);
    });
}

#[test]
fn malformed_events_are_refused() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    assert!(matches!(
        m.process("{\"type\":2", true),
        Err(MaskError::Json(_))
    ));
    assert!(matches!(
        m.process("not json", true),
        Err(MaskError::Json(_))
    ));
    for bad in [
        r#"{"type":2,"data":{"initialOffset":{"left":0,"top":0}}}"#,
        r#"{"type":2}"#,
        r#"{"type":2,"data":{"node":[]}}"#,
        r#"[]"#,
        r#"{"data":{}}"#,
        r#"{"type":"2","data":{}}"#,
        r#"{"type":3,"data":{"source":0,"adds":{"parentId":1}}}"#,
        r#"{"type":3,"data":{"source":0,"texts":"x"}}"#,
    ] {
        assert!(
            matches!(m.mask(&raw(bad)), Err(MaskError::Shape(_))),
            "{bad}"
        );
    }
    // Other types and sources are not looked at.
    assert!(mask(&mut m, r#"{"type":4,"data":{"href":"x"},"timestamp":1}"#).is_none());
    assert!(mask(&mut m, r#"{"type":3,"data":{"source":1,"positions":[]}}"#).is_none());
    assert!(mask(&mut m, r#"{"type":3}"#).is_none());
}

const MASK_PAGE: &str = r#"{"type":2,"tagName":"div","attributes":{"class":"x rr-mask"},"childNodes":[{"type":3,"textContent":"Secret Name","id":5},{"type":2,"tagName":"b","attributes":{},"childNodes":[{"type":3,"textContent":" deep 42\n","id":7}],"id":6}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public","id":9}],"id":8}"#;

#[test]
fn rr_mask_text_under_inputs_text() {
    let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
    let s = mask(&mut m, &snapshot(MASK_PAGE)).expect("masked");
    let div = "/data/node/childNodes/0/childNodes/0/childNodes/0";
    assert_eq!(
        text_of(&s, &format!("{div}/childNodes/0/textContent")),
        "****** ****"
    );
    assert_eq!(
        text_of(&s, &format!("{div}/childNodes/1/childNodes/0/textContent")),
        " **** **\n"
    );
    assert_eq!(text_of(&s, &format!("{div}/attributes/class")), "x rr-mask");
    assert_eq!(
        text_of(
            &s,
            "/data/node/childNodes/0/childNodes/0/childNodes/1/childNodes/0/textContent"
        ),
        "public"
    );

    let ev = mutation(
        r#"{"id":5,"value":"New Secret"},{"id":9,"value":"still public"}"#,
        "",
        "",
        r#"{"parentId":6,"nextId":null,"node":{"type":3,"textContent":"added secret","id":10}},
           {"parentId":4,"nextId":null,"node":{"type":2,"tagName":"i","attributes":{},"childNodes":[],"id":12}},
           {"parentId":12,"nextId":null,"node":{"type":3,"textContent":"nested","id":13}},
           {"parentId":8,"nextId":null,"node":{"type":3,"textContent":"added public","id":11}}"#,
    );
    let out = mask(&mut m, &ev).expect("masked");
    assert_eq!(text_of(&out, "/data/texts/0/value"), "*** ******");
    assert_eq!(text_of(&out, "/data/texts/1/value"), "still public");
    assert_eq!(
        text_of(&out, "/data/adds/0/node/textContent"),
        "***** ******"
    );
    assert_eq!(text_of(&out, "/data/adds/2/node/textContent"), "******");
    assert_eq!(
        text_of(&out, "/data/adds/3/node/textContent"),
        "added public"
    );
    only_masked(&value(&ev), &out, "").expect("only strings masked");

    // Ids added under the mask stay masked.
    let out = mask(
        &mut m,
        &mutation(r#"{"id":13,"value":"again"}"#, "", "", ""),
    )
    .expect("masked");
    assert_eq!(text_of(&out, "/data/texts/0/value"), "*****");
    assert!(mask(&mut m, &mutation(r#"{"id":11,"value":"free"}"#, "", "", "")).is_none());

    // Under `inputs`, rr-mask is not applied.
    let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
    assert!(mask(&mut m, &snapshot(MASK_PAGE)).is_none());
    assert!(mask(&mut m, &ev).is_none());
}

#[test]
fn rr_mask_children_listed_before_their_parent_are_still_masked() {
    let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
    mask(&mut m, &snapshot(MASK_PAGE));
    let ev = mutation(
        "",
        "",
        "",
        r#"{"parentId":21,"nextId":null,"node":{"type":3,"textContent":"child first","id":22}},
           {"parentId":4,"nextId":null,"node":{"type":2,"tagName":"i","attributes":{},"childNodes":[],"id":21}}"#,
    );
    let out = mask(&mut m, &ev).expect("masked");
    assert_eq!(
        text_of(&out, "/data/adds/0/node/textContent"),
        "***** *****"
    );
}

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

#[test]
fn rr_block_children_and_later_changes_inside_are_dropped() {
    for policy in [
        MaskPolicy::Passwords,
        MaskPolicy::Inputs,
        MaskPolicy::InputsText,
    ] {
        let mut m = RoomMask::new(policy, KEY);
        let s = mask(&mut m, &snapshot(BLOCK_PAGE)).expect("children dropped");
        let div = &s["data"]["node"]["childNodes"][0]["childNodes"][0]["childNodes"][0];
        assert_eq!(div["id"], 4);
        assert_eq!(div["childNodes"], serde_json::json!([]));
        assert_eq!(div["attributes"]["style"], "height:40px");
        assert!(!s.to_string().contains("hidden"));

        let muts = block_mutations();
        let out = mask(&mut m, &muts[0]).expect("items dropped");
        let d = &out["data"];
        assert_eq!(d["adds"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["adds"][0]["node"]["id"], 23);
        assert_eq!(d["texts"], serde_json::json!([{"id":9,"value":"y"}]));
        assert_eq!(
            d["attributes"],
            serde_json::json!([{"id":4,"attributes":{"style":"color:red"}}])
        );
        assert_eq!(d["removes"], serde_json::json!([]));

        let out = mask(&mut m, &muts[1]).expect("items dropped");
        assert_eq!(
            out["data"]["texts"],
            serde_json::json!([]),
            "empty but still emitted"
        );
        assert!(mask(&mut m, &muts[2]).is_none());
    }
    let mut m = RoomMask::new(MaskPolicy::None, KEY);
    assert!(mask(&mut m, &snapshot(BLOCK_PAGE)).is_none());
}

#[test]
fn input_values_in_snapshots_and_mutations() {
    let page = r#"{"type":2,"tagName":"INPUT","attributes":{"type":"text","value":"Zhang San"},"childNodes":[],"id":10},
        {"type":2,"tagName":"input","attributes":{"type":"PassWord","value":"hunter2"},"childNodes":[],"id":11},
        {"type":2,"tagName":"textarea","attributes":{"value":"two\nlines"},"childNodes":[{"type":3,"textContent":"two\nlines","id":13}],"id":12},
        {"type":2,"tagName":"select","attributes":{"value":"b"},"childNodes":[{"type":2,"tagName":"option","attributes":{"value":"b","selected":true},"childNodes":[{"type":3,"textContent":"Bee","id":16}],"id":15}],"id":14},
        {"type":2,"tagName":"input","attributes":{"type":"submit","value":"Send"},"childNodes":[],"id":17},
        {"type":2,"tagName":"input","attributes":{"type":"checkbox","value":"yes","checked":true},"childNodes":[],"id":18}"#;
    let body = "/data/node/childNodes/0/childNodes/0/childNodes";

    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let s = mask(&mut m, &snapshot(page)).expect("password masked");
    assert_eq!(
        text_of(&s, &format!("{body}/0/attributes/value")),
        "Zhang San"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/1/attributes/value")),
        "*******"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
        "two\nlines"
    );
    // Value changes: unknown ids fail closed, known non-password elements pass.
    let ev = mutation(
        "",
        r#"{"id":10,"attributes":{"value":"abc"}},{"id":11,"attributes":{"value":"abc"}},{"id":99,"attributes":{"value":"abc"}},{"id":15,"attributes":{"value":"c"}}"#,
        "",
        "",
    );
    let out = mask(&mut m, &ev).expect("masked");
    let values: Vec<&str> = (0..4)
        .map(|i| text_of(&out, &format!("/data/attributes/{i}/attributes/value")))
        .collect();
    assert_eq!(values, ["abc", "***", "***", "c"]);
    // A type change to password is followed.
    mask(
        &mut m,
        &mutation("", r#"{"id":10,"attributes":{"type":"password"}}"#, "", ""),
    );
    assert!(mask(&mut m, &input(10, "now secret")).is_some());
    mask(
        &mut m,
        &mutation("", r#"{"id":11,"attributes":{"type":"text"}}"#, "", ""),
    );
    assert!(mask(&mut m, &input(11, "now visible")).is_none());

    let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
    let s = mask(&mut m, &snapshot(page)).expect("masked");
    assert_eq!(
        text_of(&s, &format!("{body}/0/attributes/value")),
        "*********"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/1/attributes/value")),
        "*******"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/2/attributes/value")),
        "*********"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
        "*********"
    );
    assert_eq!(text_of(&s, &format!("{body}/3/attributes/value")), "*");
    assert_eq!(
        text_of(&s, &format!("{body}/3/childNodes/0/attributes/value")),
        "b"
    );
    assert_eq!(
        text_of(
            &s,
            &format!("{body}/3/childNodes/0/childNodes/0/textContent")
        ),
        "Bee"
    );
    assert_eq!(text_of(&s, &format!("{body}/4/attributes/value")), "Send");
    assert_eq!(text_of(&s, &format!("{body}/5/attributes/value")), "***");
    // Text added to the textarea, and changed in it, is its value.
    let ev = mutation(
        r#"{"id":13,"value":"changed"}"#,
        "",
        "",
        r#"{"parentId":12,"nextId":null,"node":{"type":3,"textContent":"typed","id":19}}"#,
    );
    let out = mask(&mut m, &ev).expect("masked");
    assert_eq!(text_of(&out, "/data/texts/0/value"), "*******");
    assert_eq!(text_of(&out, "/data/adds/0/node/textContent"), "*****");
    // A checkbox's Input event is masked but its value is no typed value.
    assert!(mask(&mut m, &input(18, "on")).is_some());
    assert!(m.take_new_typed().is_empty());
}

#[test]
fn input_events_fail_closed() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let out = mask(&mut m, &input(42, "张三丰 x")).expect("unknown id masked");
    assert_eq!(text_of(&out, "/data/text"), "*****");
    let page = r#"{"type":2,"tagName":"input","attributes":{},"childNodes":[],"id":10}"#;
    assert!(mask(&mut m, &snapshot(page)).is_none());
    assert!(mask(&mut m, &input(10, "visible")).is_none());
    assert!(mask(&mut m, &input(42, "still unknown")).is_some());
    // Removed: unknown again.
    mask(&mut m, &mutation("", "", r#"{"parentId":3,"id":10}"#, ""));
    assert!(mask(&mut m, &input(10, "late")).is_some());
    // Already masked values pass unchanged.
    assert!(mask(&mut m, &input(42, "****")).is_none());

    let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
    mask(&mut m, &snapshot(page));
    assert!(mask(&mut m, &input(10, "typed")).is_some());
    assert!(mask(&mut m, &input(77, "typed")).is_some());
}

#[test]
fn echoes_of_typed_values_are_masked_on_any_node() {
    let page = r#"{"type":2,"tagName":"input","attributes":{},"childNodes":[],"id":10},
        {"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":" Zhang San\n","id":21}],"id":20},
        {"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"Zhang Sanfeng","id":23}],"id":22}"#;
    let mut a = RoomMask::new(MaskPolicy::Inputs, KEY);
    assert!(mask(&mut a, &snapshot(page)).is_none(), "nothing typed yet");
    let out = mask(&mut a, &input(10, "Zhang San ")).expect("masked");
    assert_eq!(text_of(&out, "/data/text"), "**********");
    mask(&mut a, &input(10, "Z"));
    let hashes = a.take_new_typed();
    assert_eq!(hashes.len(), 1, "trimmed, at least 2 chars");
    assert!(a.take_new_typed().is_empty());

    // The same node: the next page echoes it.
    let s = mask(&mut a, &snapshot(page)).expect("echo masked");
    let body = "/data/node/childNodes/0/childNodes/0/childNodes";
    assert_eq!(
        text_of(&s, &format!("{body}/1/childNodes/0/textContent")),
        " ***** ***\n"
    );
    assert_eq!(
        text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
        "Zhang Sanfeng"
    );
    let out = mask(
        &mut a,
        &mutation(r#"{"id":23,"value":"Zhang San"}"#, "", "", ""),
    )
    .expect("echo");
    assert_eq!(text_of(&out, "/data/texts/0/value"), "***** ***");

    // Another node, given the stored hashes.
    let mut b = RoomMask::new(MaskPolicy::InputsText, KEY);
    b.add_typed(hashes.iter().copied());
    assert!(mask(&mut b, &snapshot(page)).is_some());
    assert!(b.take_new_typed().is_empty(), "added hashes are not new");
    // Not under passwords, and not with another key.
    let mut c = RoomMask::new(MaskPolicy::Passwords, KEY);
    c.add_typed(hashes.iter().copied());
    assert!(mask(&mut c, &snapshot(page)).is_none());
    let mut d = RoomMask::new(MaskPolicy::Inputs, [8; 32]);
    d.add_typed(hashes);
    assert!(mask(&mut d, &snapshot(page)).is_none());
}

#[test]
fn typed_values_are_capped() {
    let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
    m.add_typed(0..10_000);
    assert_eq!(m.typed.len(), MAX_TYPED_VALUES);
    assert!(m.typed.contains(&9_999) && !m.typed.contains(&0));
    for i in 0..5000 {
        mask(&mut m, &input(1, &format!("value {i}")));
    }
    assert_eq!(m.take_new_typed().len(), MAX_TYPED_VALUES);
    assert_eq!(m.typed.len(), MAX_TYPED_VALUES);
}

#[test]
fn observed_state_gives_the_same_decisions() {
    let key_events = [snapshot(MASK_PAGE), snapshot(BLOCK_PAGE)];
    for first in key_events {
        let mut later = block_mutations();
        later.push(mutation(
            r#"{"id":5,"value":"New Secret"},{"id":7,"value":"x y"},{"id":9,"value":"z"}"#,
            "",
            "",
            r#"{"parentId":6,"nextId":null,"node":{"type":3,"textContent":"added","id":30}},
               {"parentId":4,"nextId":null,"node":{"type":3,"textContent":"added","id":31}}"#,
        ));
        later.push(mutation(
            r#"{"id":30,"value":"a b"},{"id":31,"value":"c d"}"#,
            "",
            "",
            "",
        ));
        for policy in MaskPolicy::ALL {
            let mut a = RoomMask::new(policy, KEY);
            let stored = a
                .mask(&raw(&first))
                .expect("masks")
                .unwrap_or_else(|| raw(&first));
            let mut b = RoomMask::new(policy, KEY);
            b.observe(&stored);
            for ev in &later {
                let x = a.mask(&raw(ev)).expect("masks");
                let y = b.mask(&raw(ev)).expect("masks");
                assert_eq!(
                    x.as_ref().map(|r| r.get()),
                    y.as_ref().map(|r| r.get()),
                    "{policy}: {ev}"
                );
            }
        }
    }
}

#[test]
fn observed_loan_apply_gives_the_same_decisions() {
    let events = fixture("loan-apply.json");
    for policy in MaskPolicy::ALL {
        for cut in [4, 100, 300, 365] {
            let mut a = RoomMask::new(policy, KEY);
            let mut b = RoomMask::new(policy, KEY);
            for e in &events[..cut] {
                let stored = a.mask(e).expect("masks");
                b.observe(stored.as_deref().unwrap_or(e));
            }
            b.add_typed(a.take_new_typed());
            for (i, e) in events[cut..].iter().enumerate() {
                let x = a.mask(e).expect("masks");
                let y = b.mask(e).expect("masks");
                assert_eq!(
                    x.as_ref().map(|r| r.get()),
                    y.as_ref().map(|r| r.get()),
                    "{policy}, cut {cut}, event {}",
                    cut + i
                );
            }
        }
    }
}

#[test]
fn past_the_id_cap_unknown_ids_are_masked() {
    let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
    m.id_cap = 2;
    mask(&mut m, &snapshot(MASK_PAGE));
    assert!(m.overflow);
    let out = mask(
        &mut m,
        &mutation(r#"{"id":1234,"value":"who knows"}"#, "", "", ""),
    )
    .expect("masked");
    assert_eq!(text_of(&out, "/data/texts/0/value"), "*** *****");
    let out = mask(
        &mut m,
        &mutation(
            "",
            "",
            "",
            r#"{"parentId":999,"nextId":null,"node":{"type":3,"textContent":"what","id":50}}"#,
        ),
    )
    .expect("masked");
    assert_eq!(text_of(&out, "/data/adds/0/node/textContent"), "****");
    // A new page starts over.
    mask(&mut m, &snapshot(r#"{"type":3,"textContent":"x","id":4}"#));
    assert!(!m.overflow);
    assert!(mask(
        &mut m,
        &mutation(r#"{"id":1234,"value":"free"}"#, "", "", "")
    )
    .is_none());
}

#[test]
fn state_stays_small_and_is_reset_by_a_snapshot() {
    let events = fixture("big-catalog.json");
    let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
    for e in &events {
        m.mask(e).expect("masks");
    }
    assert!(
        m.nodes.len() < 100,
        "only ids that matter: {}",
        m.nodes.len()
    );
    assert!(m.state_bytes() < 64 * 1024, "{}", m.state_bytes());
}

#[test]
fn policy_names() {
    for p in MaskPolicy::ALL {
        assert_eq!(MaskPolicy::parse(p.as_str()), Some(p));
        assert_eq!(p.to_string().parse::<MaskPolicy>(), Ok(p));
    }
    assert_eq!(
        MaskPolicy::parse("Inputs+Text"),
        Some(MaskPolicy::InputsText)
    );
    assert_eq!(MaskPolicy::parse("all"), None);
    assert!("text".parse::<MaskPolicy>().is_err());
    assert_eq!(MaskPolicy::default(), MaskPolicy::Inputs);
}

#[test]
fn which_events_may_need_masking() {
    for p in [
        MaskPolicy::Passwords,
        MaskPolicy::Inputs,
        MaskPolicy::InputsText,
    ] {
        assert!(may_need_masking(p, 2, None));
        assert!(may_need_masking(p, 3, Some(0)));
        assert!(may_need_masking(p, 3, Some(5)));
        assert!(!may_need_masking(p, 3, Some(1)));
        assert!(!may_need_masking(p, 3, None));
        assert!(!may_need_masking(p, 4, None));
    }
    assert!(!may_need_masking(MaskPolicy::None, 2, None));
    assert!(!may_need_masking(MaskPolicy::None, 3, Some(5)));
}

/// Rough throughput: `cargo test --release -p assist-relay --lib mask::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn throughput() {
    for name in ["big-catalog.json", "loan-apply.json"] {
        let events = fixture(name);
        let bytes: usize = events.iter().map(|e| e.get().len()).sum();
        for policy in [
            MaskPolicy::Passwords,
            MaskPolicy::Inputs,
            MaskPolicy::InputsText,
        ] {
            let rounds = if bytes > 1 << 20 { 5 } else { 200 };
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let mut m = RoomMask::new(policy, KEY);
                for e in &events {
                    let _ = m.mask(e);
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name} {policy}: {:.0} MB/s",
                (bytes * rounds) as f64 / secs / 1e6
            );
        }
    }
}

#[test]
fn repeated_keys_anywhere_are_refused() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    m.mask(&raw(&snapshot(
        r#"{"type":2,"tagName":"input","attributes":{"type":"password"},"childNodes":[],"id":10},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    )))
    .expect("masks");
    for event in [
        r#"{"type":3,"data":{"source":5,"id":10,"text":"secret","id":11}}"#,
        r#"{"type":3,"data":{"source":5,"id":11,"text":"a","text":"secret"}}"#,
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":11,"attributes":{"value":"a","value":"b"}}]}}"#,
        r#"{"type":3,"data":{"source":0,"adds":[{"parentId":1,"node":{"type":2,"type":3,"tagName":"input","attributes":{},"childNodes":[],"id":30}}]}}"#,
    ] {
        assert!(
            matches!(m.mask(&raw(event)), Err(MaskError::Json(_))),
            "{event}"
        );
    }
}

#[test]
fn numbers_are_read_as_javascript_reads_them() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    // A node `type` of 2.0 is an element; an id of 1e1 is node 10.
    let page = snapshot(
        r#"{"type":2.0,"tagName":"input","attributes":{"type":"password","value":"in-snapshot"},"childNodes":[],"id":1e1},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    );
    let out = m.mask(&raw(&page)).expect("masks").expect("changed");
    assert!(!out.get().contains("in-snapshot"), "{}", out.get());
    for event in [
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":10.0,"attributes":{"value":"secret"}}]}}"#,
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":100e-1,"attributes":{"value":"secret"}}]}}"#,
        r#"{"type":3,"data":{"source":5,"id":10.000,"text":"secret"}}"#,
    ] {
        let out = mask(&mut m, event).expect("changed");
        assert!(!out.to_string().contains("secret"), "{event}: {out}");
    }
    // Node 11 is a text input: under `passwords` its value passes, whatever the spelling.
    assert!(mask(
        &mut m,
        r#"{"type":3,"data":{"source":5,"id":11.0,"text":"plain"}}"#
    )
    .is_none());
}

#[test]
fn rr_ignore_values_are_masked_under_inputs() {
    let body = r#"{"type":2,"tagName":"input","attributes":{"type":"button","class":"x rr-ignore","value":"label-secret"},"childNodes":[],"id":10},{"type":2,"tagName":"select","attributes":{},"childNodes":[{"type":2,"tagName":"option","attributes":{"class":"rr-ignore","value":"option-secret"},"childNodes":[],"id":12}],"id":11},{"type":2,"tagName":"input","attributes":{"type":"submit","value":"Send"},"childNodes":[],"id":13}"#;
    for policy in [MaskPolicy::Inputs, MaskPolicy::InputsText] {
        let mut m = RoomMask::new(policy, KEY);
        let out = mask(&mut m, &snapshot(body)).expect("changed").to_string();
        assert!(
            !out.contains("label-secret") && !out.contains("option-secret"),
            "{out}"
        );
        assert!(
            out.contains("Send"),
            "a plain button keeps its label: {out}"
        );
        // A class change to rr-ignore masks later value changes.
        let change = r#"{"type":3,"data":{"source":0,"attributes":[{"id":13,"attributes":{"class":"rr-ignore","value":"later-secret"}}]}}"#;
        let out = mask(&mut m, change).expect("changed").to_string();
        assert!(!out.contains("later-secret"), "{out}");
    }
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    assert!(
        mask(&mut m, &snapshot(body)).is_none(),
        "passwords leaves rr-ignore alone"
    );
}

#[test]
fn attribute_names_are_read_in_any_case() {
    // rrweb's replayer sets attributes with `setAttribute`, which lowercases their names.
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let page = snapshot(
        r#"{"type":2,"tagName":"INPUT","attributes":{"TYPE":"Password","Value":"in-snapshot","value":"too"},"childNodes":[],"id":10},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    );
    let out = mask(&mut m, &page).expect("changed").to_string();
    assert!(
        !out.contains("in-snapshot") && !out.contains("too"),
        "{out}"
    );
    let change = r#"{"type":3,"data":{"source":0,"attributes":[{"id":10,"attributes":{"VALUE":"later"}},{"id":11,"attributes":{"Type":"password"}},{"id":11,"attributes":{"vAlue":"on-11"}}]}}"#;
    let out = mask(&mut m, change).expect("changed").to_string();
    assert!(!out.contains("later") && !out.contains("on-11"), "{out}");
}

#[test]
fn tags_types_and_classes_are_read_as_javascript_strings() {
    // `createElement(["input"])` makes an input; `setAttribute("class", ["rr-block"])` blocks.
    assert_eq!(js_string(&value(r#"[["a","b"],"c",null,[]]"#)), "a,b,c,,");
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let page = snapshot(
        r#"{"type":2,"tagName":["input"],"attributes":{"type":["password"],"value":"in-snapshot"},"childNodes":[],"id":10},{"type":2,"tagName":"div","attributes":{"class":[["rr-block"]]},"childNodes":[{"type":3,"textContent":"blocked-text","id":12}],"id":11}"#,
    );
    let out = mask(&mut m, &page).expect("changed").to_string();
    assert!(
        !out.contains("in-snapshot") && !out.contains("blocked-text"),
        "{out}"
    );
}
