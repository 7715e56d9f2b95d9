//! rrweb events travel as raw JSON: byte for byte through both codecs and both directions, with
//! only a head scan (`type`, `data.source`, `timestamp`) read by the relay.

mod common;

use assist_relay_proto::*;
use common::*;
use proptest::prelude::*;

fn json_client_frame(id: Option<&str>, event_json: &str) -> Vec<u8> {
    let mut s = String::from(r#"{"type":"event","#);
    if let Some(id) = id {
        s.push_str(&format!(
            r#""id":{},"#,
            serde_json::to_string(id).expect("id")
        ));
    }
    s.push_str(r#""event":"#);
    s.push_str(event_json);
    s.push('}');
    s.into_bytes()
}

fn decode_event(codec: Codec, bytes: &[u8]) -> Result<(String, EventHead), ProtoError> {
    match ClientFrame::decode(codec, bytes)? {
        ClientFrame::Event { event, head, .. } => Ok((event.json().to_owned(), head)),
        other => panic!("expected an event, got {other:?}"),
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= a.abs() * 1e-12,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn rrweb_events_survive_byte_for_byte_through_json(ev in arb_rrweb_event(), id in proptest::option::of(arb_client_id())) {
        let frame = json_client_frame(id.as_deref(), &ev.json);
        let (json, head) = decode_event(Codec::Json, &frame).expect("decode");
        prop_assert_eq!(&json, &ev.json);
        prop_assert_eq!(head.kind.as_u8(), ev.kind);
        prop_assert_eq!(head.source, ev.source);
        prop_assert!(close(head.timestamp, ev.timestamp), "{:?} vs {:?}", head.timestamp, ev.timestamp);

        // Re-encoded as JSON by a client SDK, and relayed as a server frame.
        let f = ClientFrame::decode(Codec::Json, &frame).expect("decode");
        let again = f.encode(Codec::Json).expect("encode");
        prop_assert_eq!(decode_event(Codec::Json, &again).expect("decode").0, ev.json.clone());
        let s = ServerFrame::Event { offset: 1, event: payload(&ev.json) }.encode(Codec::Json).expect("encode");
        let back = ServerFrame::decode(Codec::Json, &s).expect("decode");
        let ServerFrame::Event { event, .. } = &back else { panic!() };
        prop_assert_eq!(event.json(), ev.json.as_str());
    }

    #[test]
    fn rrweb_events_survive_byte_for_byte_through_msgpack(ev in arb_rrweb_event(), id in proptest::option::of(arb_client_id())) {
        // JSON in, MessagePack out (a JSON customer, a MessagePack agent) and back.
        let frame = json_client_frame(id.as_deref(), &ev.json);
        let from_json = ClientFrame::decode(Codec::Json, &frame).expect("decode");
        let mp = from_json.encode(Codec::MsgPack).expect("encode");
        let (json, head) = decode_event(Codec::MsgPack, &mp).expect("decode");
        prop_assert_eq!(&json, &ev.json);
        prop_assert_eq!(head.kind.as_u8(), ev.kind);
        prop_assert_eq!(head.source, ev.source);

        let s = ServerFrame::Event { offset: u64::MAX, event: payload(&ev.json) };
        let bytes = s.encode(Codec::MsgPack).expect("encode");
        let back = ServerFrame::decode(Codec::MsgPack, &bytes).expect("decode");
        let ServerFrame::Event { event, offset } = &back else { panic!() };
        prop_assert_eq!(event.json(), ev.json.as_str());
        prop_assert_eq!(*offset, u64::MAX);
        // The same frame through JSON is the same frame.
        let j = s.encode(Codec::Json).expect("encode");
        prop_assert_eq!(ServerFrame::decode(Codec::Json, &j).expect("decode"), back);
    }

    /// A MessagePack client may put the event JSON in a `str` instead of a `bin`.
    #[test]
    fn msgpack_event_as_str_or_bin_decodes_the_same(ev in arb_rrweb_event(), wide in any::<bool>()) {
        let with = |payload: Mp| mp_bytes(&Mp::Map(vec![(mp_str("type"), mp_str("event")), (mp_str("event"), payload)], wide));
        let as_str = with(Mp::Str(ev.json.clone(), wide));
        let as_bin = with(Mp::Bin(ev.json.clone().into_bytes(), wide));
        let a = ClientFrame::decode(Codec::MsgPack, &as_str).expect("str");
        let b = ClientFrame::decode(Codec::MsgPack, &as_bin).expect("bin");
        prop_assert_eq!(&a, &b);
        let ClientFrame::Event { event, .. } = a else { panic!() };
        prop_assert_eq!(event.json(), ev.json.as_str());
    }

    #[test]
    fn any_json_object_with_an_integer_type_is_an_event(kind in any::<u8>(), rest in proptest::collection::vec((arb_json_key(), arb_j()), 0..4), seeds in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut kv: Vec<(String, J)> = rest.into_iter().filter(|(k, _)| k != "type").collect();
        kv.insert(0, ("type".to_owned(), J::Int(i64::from(kind))));
        let mut seen = std::collections::HashSet::new();
        kv.retain(|(k, _)| seen.insert(k.clone()));
        let json = render(&J::Obj(kv), &seeds);
        for codec in Codec::ALL {
            let frame = ClientFrame::Event { id: None, event: payload(&json), head: EventHead { kind: EventKind::from_u8(kind), source: None, timestamp: None } };
            let bytes = frame.encode(codec).expect("encode");
            let (raw, head) = decode_event(codec, &bytes).expect("an object with an integer type is an event");
            prop_assert_eq!(&raw, &json);
            prop_assert_eq!(head.kind, EventKind::from_u8(kind));
        }
    }

    #[test]
    fn event_kind_numbers_round_trip(n in any::<u8>()) {
        let kind = EventKind::from_u8(n);
        prop_assert_eq!(kind.as_u8(), n);
        prop_assert_eq!(matches!(kind, EventKind::Other(_)), n > 7);
    }

    #[test]
    fn non_object_events_are_invalid_event(v in arb_json().prop_filter("not an object", |v| !v.is_object())) {
        let text = serde_json::to_string(&v).expect("json");
        let frame = json_client_frame(None, &text);
        // In JSON, `"event":null` is an absent event (null fields count as absent).
        let expected = if v.is_null() { ErrorCode::InvalidFrame } else { ErrorCode::InvalidEvent };
        prop_assert_eq!(ClientFrame::decode(Codec::Json, &frame).map(|_| ()).map_err(|e| e.code()), Err(expected));
        let mp = mp_bytes(&Mp::Map(vec![(mp_str("type"), mp_str("event")), (mp_str("event"), Mp::Bin(text.into_bytes(), false))], false));
        prop_assert_eq!(ClientFrame::decode(Codec::MsgPack, &mp).map(|_| ()).map_err(|e| e.code()), Err(ErrorCode::InvalidEvent));
    }
}

#[test]
fn event_kinds_are_the_rrweb_numbers() {
    let kinds = [
        (0, EventKind::DomContentLoaded, "dom_content_loaded"),
        (1, EventKind::Load, "load"),
        (2, EventKind::FullSnapshot, "full_snapshot"),
        (3, EventKind::IncrementalSnapshot, "incremental"),
        (4, EventKind::Meta, "meta"),
        (5, EventKind::Custom, "custom"),
        (6, EventKind::Plugin, "plugin"),
        (7, EventKind::Asset, "asset"),
        (8, EventKind::Other(8), "other"),
        (255, EventKind::Other(255), "other"),
    ];
    for (n, kind, label) in kinds {
        assert_eq!(EventKind::from_u8(n), kind);
        assert_eq!(kind.label(), label);
    }
}

#[test]
fn event_without_integer_type_is_invalid_event() {
    let bad = [
        r#"{}"#,
        r#"{"data":{"source":1}}"#,
        r#"{"type":null}"#,
        r#"{"type":"3"}"#,
        r#"{"type":3.0}"#,
        r#"{"type":3.5}"#,
        r#"{"type":3e0}"#,
        r#"{"type":-1}"#,
        r#"{"type":256}"#,
        r#"{"type":true}"#,
        r#"{"type":[3]}"#,
        r#"{"type":3,"type":4}"#,
        r#"[3]"#,
        r#"[3,{"source":1},5]"#,
        r#"3"#,
        r#""{\"type\":3}""#,
        r#"null"#,
    ];
    for json in bad {
        let frame = json_client_frame(None, json);
        let err = ClientFrame::decode(Codec::Json, &frame).expect_err(json);
        // In JSON, `"event":null` is an absent event (null fields count as absent).
        let expected = if json == "null" {
            ErrorCode::InvalidFrame
        } else {
            ErrorCode::InvalidEvent
        };
        assert_eq!(err.code(), expected, "{json}: {err}");
        let mp = mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("event")),
                (mp_str("event"), Mp::Bin(json.as_bytes().to_vec(), false)),
            ],
            false,
        ));
        let err = ClientFrame::decode(Codec::MsgPack, &mp).expect_err(json);
        assert_eq!(err.code(), ErrorCode::InvalidEvent, "msgpack {json}: {err}");
    }
}

#[test]
fn event_that_is_not_json_is_malformed() {
    for bad in [
        &b"{"[..],
        b"{\"type\":3",
        b"",
        b"{\"type\":3} x",
        b"\xff\xfe",
    ] {
        let mp = mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("event")),
                (mp_str("event"), Mp::Bin(bad.to_vec(), false)),
            ],
            false,
        ));
        let err = ClientFrame::decode(Codec::MsgPack, &mp).expect_err("not JSON");
        assert_eq!(err.code(), ErrorCode::Malformed, "{bad:?}: {err}");
    }
    // In MessagePack the payload must be a bin or a str.
    let mp = mp_bytes(&Mp::Map(
        vec![
            (mp_str("type"), mp_str("event")),
            (
                mp_str("event"),
                Mp::Map(vec![(mp_str("type"), Mp::UInt(3, false))], false),
            ),
        ],
        false,
    ));
    let err = ClientFrame::decode(Codec::MsgPack, &mp).expect_err("a map is not a payload");
    assert_eq!(err.code(), ErrorCode::Malformed);
}

#[test]
fn event_frame_without_event_is_invalid_frame() {
    for codec in Codec::ALL {
        let bytes = codec
            .encode(&Envelope {
                kind: "event".into(),
                id: Some("e1".into()),
                ..Default::default()
            })
            .expect("encode");
        let err = ClientFrame::decode(codec, &bytes).expect_err("no event");
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
    }
    let err = ClientFrame::decode(Codec::Json, br#"{"type":"event","event":null}"#)
        .expect_err("null event");
    assert_eq!(err.code(), ErrorCode::InvalidFrame);
}

#[test]
fn head_scan_tolerates_any_data_and_timestamp() {
    let cases: [(&str, Option<u8>, Option<f64>); 12] = [
        (
            r#"{"type":3,"data":{"source":1},"timestamp":5}"#,
            Some(1),
            Some(5.0),
        ),
        (
            r#"{"timestamp":5,"data":{"x":[],"source":2},"type":3}"#,
            Some(2),
            Some(5.0),
        ),
        (
            r#"{"type":3,"data":{"source":300},"timestamp":5}"#,
            None,
            Some(5.0),
        ),
        (r#"{"type":3,"data":{"source":"1"}}"#, None, None),
        (r#"{"type":3,"data":{"source":null}}"#, None, None),
        (r#"{"type":3,"data":[1]}"#, None, None),
        (
            r#"{"type":5,"data":"tag","timestamp":1.25}"#,
            None,
            Some(1.25),
        ),
        (r#"{"type":5,"data":null}"#, None, None),
        (r#"{"type":2,"data":{"node":{"source":9}}}"#, None, None),
        (r#"{"type":3,"timestamp":"yesterday"}"#, None, None),
        (
            r#"{"type":3,"timestamp":null,"data":{"source":0}}"#,
            Some(0),
            None,
        ),
        (
            r#"{"\u0074ype":4,"data":{"href":"h","width":1,"height":2}}"#,
            None,
            None,
        ),
    ];
    for (json, source, timestamp) in cases {
        let frame = json_client_frame(None, json);
        let (raw, head) =
            decode_event(Codec::Json, &frame).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(raw, json);
        assert_eq!(head.source, source, "{json}");
        assert_eq!(head.timestamp, timestamp, "{json}");
    }
}

#[test]
fn msgpack_str_payload_with_surrounding_whitespace_is_trimmed() {
    let mp = mp_bytes(&Mp::Map(
        vec![
            (mp_str("type"), mp_str("event")),
            (mp_str("event"), mp_str(" \n{\"type\":3}\t ")),
        ],
        false,
    ));
    let (raw, _) = decode_event(Codec::MsgPack, &mp).expect("decode");
    assert_eq!(raw, r#"{"type":3}"#);
}

#[test]
fn event_whitespace_inside_the_payload_is_kept() {
    let json = "{ \"type\" : 3 ,\n\t\"data\" : { \"source\" : 1 } }";
    let frame = json_client_frame(None, json);
    let (raw, head) = decode_event(Codec::Json, &frame).expect("decode");
    assert_eq!(raw, json);
    assert_eq!(head.source, Some(1));
    // Whitespace around the value in the frame is not part of the payload.
    let padded = format!("{{\"type\":\"event\",\"event\":  {json}  }}");
    assert_eq!(
        decode_event(Codec::Json, padded.as_bytes())
            .expect("decode")
            .0,
        json
    );
}

/// Masking is decided by `type` and `data.source`: an event a browser reads as an Input or a
/// Mutation must never scan as something else (issue 16).
#[test]
fn routing_fields_must_be_canonical_and_unique() {
    let refused = [
        r#"{"type":3,"data":{"source":5.0,"id":7,"text":"secret"},"timestamp":1}"#,
        r#"{"type":3,"data":{"source":5e0,"id":7,"text":"secret"}}"#,
        r#"{"type":3,"data":{"source":0.5e1,"id":7,"text":"secret"}}"#,
        r#"{"type":3,"data":{"source":-0,"adds":[]}}"#,
        r#"{"type":3,"data":{"source":0.0,"adds":[]}}"#,
        r#"{"type":3,"data":{"source":2,"id":7,"text":"secret","source":5}}"#,
        r#"{"type":3,"data":{"source":5,"source":5,"id":7,"text":"secret"}}"#,
        r#"{"type":3,"data":{"sourc\u0065":2,"source":5,"id":7,"text":"secret"}}"#,
        r#"{"type":3,"data":{"source":2},"data":{"source":5,"id":7,"text":"secret"}}"#,
        r#"{"type":4,"type":3,"data":{"source":5,"id":7,"text":"secret"}}"#,
        r#"{"type":3.0,"data":{"source":5,"id":7,"text":"secret"}}"#,
        r#"{"type":2e0,"data":{"node":{}}}"#,
        r#"{"typ\u0065":3,"type":3,"data":{"source":5}}"#,
    ];
    for event in refused {
        let frame = json_client_frame(None, event);
        let got = ClientFrame::decode(Codec::Json, &frame)
            .map(|_| ())
            .map_err(|e| e.code());
        assert_eq!(got, Err(ErrorCode::InvalidEvent), "{event}");
    }
    let accepted = [
        // Not a source any rrweb replayer acts on: nothing to mask, nothing to refuse.
        (r#"{"type":3,"data":{"source":"5","text":"x"}}"#, 3, None),
        (r#"{"type":3,"data":{"source":300}}"#, 3, None),
        (r#"{"type":3,"data":{"source":-5}}"#, 3, None),
        (r#"{"type":3,"data":[5]}"#, 3, None),
        (r#"{"type":3}"#, 3, None),
        (
            r#"{"type":3,"data":{"sourc\u0065":5,"text":"x"}}"#,
            3,
            Some(5),
        ),
        // Other events' data may be anything, and a timestamp that is no number is absent.
        (r#"{"type":5,"data":{"source":5.0,"source":"x"}}"#, 5, None),
        (r#"{"type":4,"data":7,"timestamp":"soon"}"#, 4, None),
        (r#"{"type":1,"timestamp":1,"timestamp":2}"#, 1, None),
    ];
    for (event, kind, source) in accepted {
        let frame = json_client_frame(None, event);
        let (_, head) = decode_event(Codec::Json, &frame).expect(event);
        assert_eq!((head.kind.as_u8(), head.source), (kind, source), "{event}");
    }
}

#[test]
fn nesting_is_bounded_at_ingress() {
    let deep = |levels: usize| {
        format!(
            r#"{{"type":5,"data":{{"tag":"x","payload":{}{}}}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // The event object and `data` take two levels.
    let ok = deep(MAX_EVENT_NESTING - 2);
    assert!(decode_event(Codec::Json, &json_client_frame(None, &ok)).is_ok());
    let too_deep = deep(MAX_EVENT_NESTING - 1);
    let err = ClientFrame::decode(Codec::Json, &json_client_frame(None, &too_deep))
        .map(|_| ())
        .expect_err("too deep");
    assert_eq!(err.code(), ErrorCode::InvalidEvent);
    assert!(err.to_string().contains("nested deeper than 1024"), "{err}");
    // Brackets inside strings do not count.
    let strings = format!(r#"{{"type":5,"data":"{}"}}"#, "[{".repeat(5000));
    assert!(decode_event(Codec::Json, &json_client_frame(None, &strings)).is_ok());
}
