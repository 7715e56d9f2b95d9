//! Writing changed events (as serde_json wrote the tree they were once parsed into: compact,
//! keys sorted, its escapes and numbers) and the token reader's refusals.

use super::*;
use crate::mask::json::Doc;

/// What masking an Input event's `text` gave before events stopped being parsed into a tree:
/// serde_json's text of the event with the text starred.
fn as_serde_json_wrote(event: &str, stars: &str) -> String {
    let mut v = value(event);
    v["data"]["text"] = Value::from(stars);
    serde_json::to_string(&v).expect("writes")
}

#[test]
fn changed_events_are_written_as_serde_json_writes_them() {
    let event = " { \"type\" : 3 , \"data\" : { \"source\" : 5, \"text\" : \"a\\u00e9\\ud83d\\ude00\\n\", \"id\" : 1e1,\n \"x\" : [ 1.50, -0, 1E3, 18446744073709551616, -12, 0, \"\\u002f\\/\\\"\\\\\\u0001\\u007f\u{e9}\" , {\"b\":null,\"a\":true,\"\\u0041\":false} ], \"\\u0069sChecked\" : false } , \"timestamp\" : 1 } ";
    let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
    let out = m.mask(&raw(event)).expect("masks").expect("changed");
    assert_eq!(out.get(), as_serde_json_wrote(event, "****"));
    // A number typed into an input is masked as the digits serde_json prints.
    let event = r#"{"type":3,"data":{"source":5,"text":1e3,"id":1}}"#;
    let out = m.mask(&raw(event)).expect("masks").expect("changed");
    assert_eq!(out.get(), as_serde_json_wrote(event, "******"));
}

#[test]
fn repeated_keys_are_refused_however_spelled_and_however_many() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let many: Vec<String> = (0..12).map(|i| format!("\"k{i}\":{i}")).collect();
    let many = many.join(",");
    for event in [
        r#"{"type":3,"data":{"source":5,"id":1,"text":"a","\u0074ext":"b"}}"#,
        &format!(r#"{{"type":3,"data":{{"source":5,{many},"k3":0}}}}"#),
        &format!(r#"{{"type":3,"data":{{"source":5,{many},"\u006b3":0}}}}"#),
        r#"{"type":3,"data":{"source":5,"ab":1,"ba":2,"ab":3}}"#,
    ] {
        assert!(
            matches!(m.mask(&raw(event)), Err(MaskError::Json(_))),
            "{event}"
        );
    }
    for event in [
        &format!(r#"{{"type":3,"data":{{"source":5,{many}}}}}"#),
        r#"{"type":3,"data":{"source":5,"ab":1,"ba":2,"aab":3,"a\u0062c":4}}"#,
    ] {
        assert!(m.mask(&raw(event)).is_ok(), "{event}");
    }
}

proptest::proptest! {
    #[test]
    fn a_changed_event_is_serde_jsons_text_of_it(extra in any_json(4, 32, 6), text in "[^*]{1,8}", pretty: bool) {
        let v = serde_json::json!({"type": 3, "data": {"source": 5, "id": 4, "text": text, "extra": extra}});
        let event = if pretty {
            serde_json::to_string_pretty(&v).expect("writes")
        } else {
            serde_json::to_string(&v).expect("writes")
        };
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        let out = m.mask(&raw(&event)).expect("masks").expect("changed");
        let stars = "*".repeat(text.chars().count());
        proptest::prop_assert_eq!(out.get(), as_serde_json_wrote(&event, &stars));
    }
}

proptest::proptest! {
    /// One byte of valid JSON changed, added or removed: the token reader accepts what serde_json
    /// accepts, except repeated keys.
    #[test]
    fn the_reader_accepts_what_serde_json_accepts(
        v in any_json(4, 32, 6),
        pretty: bool,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        how in 0u8..3,
        byte in proptest::sample::select(b"{}[]:,\"\\ 0123456789.eE+-tfnrul\x01x".to_vec()),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).expect("writes")
        } else {
            serde_json::to_string(&v).expect("writes")
        };
        let mut b = text.into_bytes();
        let i = at.index(b.len() + 1);
        match how {
            0 if i < b.len() => b[i] = byte,
            1 if i < b.len() => {
                b.remove(i);
            }
            _ => b.insert(i, byte),
        }
        let Ok(s) = String::from_utf8(b) else { return Ok(()) };
        let theirs = serde_json::from_str::<Value>(&s).is_ok();
        match Doc::parse(&s) {
            Ok(_) => proptest::prop_assert!(theirs, "accepted {s:?}"),
            Err(e) => proptest::prop_assert!(
                !theirs || e.to_string().contains("repeats a key"),
                "refused {s:?}: {e}"
            ),
        }
    }
}
