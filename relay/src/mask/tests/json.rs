//! Parsing and writing events (serde_json equivalence, lenient surrogates), deep documents
//! on a small stack, and malformed events.

use super::*;

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

proptest::proptest! {
    #[test]
    fn parse_and_write_round_trip(v in any_json(6, 64, 8)) {
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
