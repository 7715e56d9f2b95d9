//! `EventHead::scan` (a byte pass that falls back to serde where it cannot decide) agrees with the
//! serde scan alone (`EventHead::scan_serde`) on every event: the same head, or the same error.
//! Hand-picked odd cases, the real recordings, and random events shaped like rrweb's with every
//! key, number form and nesting the scan has an opinion on.

use assist_relay_proto::EventHead;
use proptest::prelude::*;
use serde_json::value::RawValue;

fn same(src: &str) {
    let Ok(raw) = serde_json::from_str::<&RawValue>(src) else {
        return; // not JSON: a frame carrying it never decodes, so no scan ever sees it
    };
    let fast = EventHead::scan(raw).map_err(|e| e.to_string());
    let slow = EventHead::scan_serde(raw).map_err(|e| e.to_string());
    assert_eq!(fast, slow, "scan and scan_serde disagree on {src}");
}

#[test]
fn odd_events_are_read_as_serde_reads_them() {
    let cases = [
        r#"{"type":3,"data":{"source":5,"id":7,"text":"x"},"timestamp":1}"#,
        r#"{"type":3,"data":{"source":5.0}}"#,
        r#"{"type":3,"data":{"source":5e0}}"#,
        r#"{"type":3,"data":{"source":-0}}"#,
        r#"{"type":3,"data":{"source":-3}}"#,
        r#"{"type":3,"data":{"source":300}}"#,
        r#"{"type":3,"data":{"source":99999999999999999999999}}"#,
        r#"{"type":3,"data":{"source":"5"}}"#,
        r#"{"type":3,"data":{"source":null}}"#,
        r#"{"type":3,"data":{"source":[5]}}"#,
        r#"{"type":3,"data":{"source":{"a":5}}}"#,
        r#"{"type":3,"data":{"source":5,"source":5}}"#,
        r#"{"type":3,"data":{"sour\u0063e":5}}"#,
        r#"{"typ\u0065":3,"data":{"source":5}}"#,
        r#"{"type":3,"type":3}"#,
        r#"{"type":3,"data":{},"data":{}}"#,
        r#"{"type":3.0}"#,
        r#"{"type":-1}"#,
        r#"{"type":256}"#,
        r#"{"type":"3"}"#,
        r#"{"type":null}"#,
        r#"{"data":{"source":5}}"#,
        r#"{}"#,
        r#"[]"#,
        r#"3"#,
        r#"{"type":3,"data":[1,2]}"#,
        r#"{"type":3,"data":"x"}"#,
        r#"{"type":2,"data":{"node":{"childNodes":[{"a":"}]\"{["}]}}}"#,
        r#" { "type" : 3 , "data" : { "source" : 2 } , "timestamp" : 17 } "#,
        r#"{"type":3,"timestamp":"soon"}"#,
        r#"{"type":3,"timestamp":1.5}"#,
        r#"{"type":3,"timestamp":-5}"#,
        r#"{"type":3,"timestamp":1e3}"#,
        r#"{"type":3,"timestamp":1,"timestamp":2}"#,
        r#"{"type":3,"timestamp":9007199254740993}"#,
        r#"{"Type":3}"#,
        r#"{"type":3,"data":{"Source":5}}"#,
        r#"{"type":0003}"#,
        r#"{"type":3,"x":{"y":[true,false,null,1.5e-3,"\\\""]}}"#,
    ];
    for c in cases {
        same(c);
    }
}

#[test]
fn nesting_at_and_past_the_bound() {
    for depth in [127usize, 128, 129, 200, 1022, 1023, 1024, 1025, 1100] {
        // `depth` containers in all: the event itself, `data`, then arrays.
        let inner = depth.saturating_sub(2);
        let src = format!(
            r#"{{"type":3,"data":{{"source":2,"x":{}{}}}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        );
        same(&src);
        let src = format!(
            r#"{{"type":3,"y":{}{}}}"#,
            "{\"a\":".repeat(inner + 1),
            "}".repeat(inner + 1)
        );
        same(&src);
    }
}

#[test]
fn the_recordings_are_read_as_serde_reads_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/rrweb");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no recordings at {}; skipped", dir.display());
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".json") || name.ends_with(".meta.json") || name.starts_with("big-") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("recording");
        let events: Vec<&RawValue> = serde_json::from_str(&text).expect("an array of events");
        for ev in events {
            same(ev.get());
            n += 1;
        }
    }
    eprintln!("{n} recorded events compared");
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..400).prop_map(|v| v.to_string()),
        Just("-0".to_owned()),
        (-300i64..0).prop_map(|v| v.to_string()),
        (0u32..10).prop_map(|v| format!("{v}.0")),
        (0u32..10).prop_map(|v| format!("{v}e0")),
        Just("1e400".to_owned()),
        Just("123456789012345678901234".to_owned()),
    ]
}

fn value(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        number(),
        Just("null".to_owned()),
        Just("true".to_owned()),
        "[a-z\\\\\"{}\\[\\] ,:]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(value(depth - 1), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        1 => prop::collection::vec((key(), value(depth - 1)), 0..4).prop_map(|v| {
            format!("{{{}}}", v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","))
        }),
    ]
    .boxed()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"type\"".to_owned()),
        Just("\"data\"".to_owned()),
        Just("\"source\"".to_owned()),
        Just("\"timestamp\"".to_owned()),
        Just("\"typ\\u0065\"".to_owned()),
        Just("\"id\"".to_owned()),
        "[a-z]{1,5}".prop_map(|s| format!("\"{s}\"")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn random_events_are_read_as_serde_reads_them(
        fields in prop::collection::vec((key(), value(3)), 0..6),
        ws in prop::bool::ANY,
    ) {
        let sep = if ws { " , " } else { "," };
        let body = fields.into_iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(sep);
        same(&format!("{{{body}}}"));
    }
}
