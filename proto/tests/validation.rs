//! What a client frame must satisfy, the ids and close codes of the protocol, and its tolerance of
//! unknown fields.

mod common;

use assist_relay_proto::*;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn code_of(codec: Codec, bytes: &[u8]) -> Result<ClientFrame<'_>, ErrorCode> {
    ClientFrame::decode(codec, bytes).map_err(|e| e.code())
}

fn json_code(json: &str) -> Result<ClientFrame<'_>, ErrorCode> {
    code_of(Codec::Json, json.as_bytes())
}

/// Encodes an envelope in both codecs.
fn both(env: &Envelope<'_>) -> [(Codec, Vec<u8>); 2] {
    Codec::ALL.map(|c| (c, c.encode(env).expect("encode")))
}

fn chat_env(id: Option<&str>, text: Option<&str>) -> Envelope<'static> {
    Envelope {
        kind: "chat".into(),
        id: id.map(str::to_owned),
        text: text.map(str::to_owned),
        ..Default::default()
    }
}

/// Adds fields to an encoded frame without touching its other bytes (the event payload stays
/// byte-exact): JSON text spliced after `{`, MessagePack entries after a rewritten map header.
fn add_fields(codec: Codec, encoded: &[u8], extra: &[(String, Mp, serde_json::Value)]) -> Vec<u8> {
    match codec {
        Codec::Json => {
            assert_eq!(encoded[0], b'{');
            let mut out = b"{".to_vec();
            for (k, _, v) in extra {
                out.extend(serde_json::to_vec(k).expect("key"));
                out.push(b':');
                out.extend(serde_json::to_vec(v).expect("value"));
                out.push(b',');
            }
            out.extend(&encoded[1..]);
            out
        }
        Codec::MsgPack => {
            let n = usize::from(encoded[0] & 0x0f);
            assert_eq!(encoded[0] & 0xf0, 0x80, "our frames are fixmaps");
            let total = n + extra.len();
            let mut out = Vec::new();
            if total <= 15 {
                out.push(0x80 | total as u8);
            } else {
                out.push(0xde);
                out.extend((total as u16).to_be_bytes());
            }
            for (k, v, _) in extra {
                write_mp(&mp_str(k), &mut out);
                write_mp(v, &mut out);
            }
            out.extend(&encoded[1..]);
            out
        }
    }
}

/// An unknown field with the same value in both codecs.
fn arb_unknown_field() -> impl Strategy<Value = (String, Mp, serde_json::Value)> {
    use serde_json::Value;
    let value = prop_oneof![
        Just((Mp::Nil, Value::Null)),
        any::<bool>().prop_map(|b| (Mp::Bool(b), Value::Bool(b))),
        any::<u64>().prop_map(|u| (Mp::UInt(u, false), Value::from(u))),
        any::<i64>().prop_map(|i| (Mp::Int(i, false), Value::from(i))),
        arb_text().prop_map(|s| (Mp::Str(s.clone(), false), Value::String(s))),
        vec(any::<u8>(), 0..4).prop_map(|v| (
            Mp::Arr(
                v.iter().map(|b| Mp::UInt(u64::from(*b), false)).collect(),
                false
            ),
            Value::from(v)
        )),
        (arb_text(), any::<i64>()).prop_map(|(k, i)| (
            Mp::Map(vec![(mp_str(&k), Mp::Int(i, false))], false),
            serde_json::json!({ k: i })
        )),
    ];
    (arb_unknown_field_name(), value).prop_map(|(k, (m, j))| (k, m, j))
}

fn dedupe_fields(
    mut fields: Vec<(String, Mp, serde_json::Value)>,
) -> Vec<(String, Mp, serde_json::Value)> {
    let mut seen = std::collections::HashSet::new();
    fields.retain(|(k, _, _)| seen.insert(k.clone()));
    fields
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn unknown_fields_are_ignored(frame in arb_client_frame(), extra in vec(arb_unknown_field(), 1..6)) {
        let extra = dedupe_fields(extra);
        for codec in Codec::ALL {
            let encoded = frame.encode(codec).expect("encode");
            let with_extra = add_fields(codec, &encoded, &extra);
            let decoded = ClientFrame::decode(codec, &with_extra);
            prop_assert_eq!(decoded.as_ref(), Ok(&frame), "{:?}", String::from_utf8_lossy(&with_extra));
        }
    }

    #[test]
    fn unknown_fields_are_ignored_in_server_frames(frame in arb_server_frame(), extra in vec(arb_unknown_field(), 1..6)) {
        let extra = dedupe_fields(extra);
        for codec in Codec::ALL {
            let encoded = frame.encode(codec).expect("encode");
            let with_extra = add_fields(codec, &encoded, &extra);
            let decoded = ServerFrame::decode(codec, &with_extra);
            prop_assert_eq!(decoded.as_ref(), Ok(&frame));
        }
    }

    #[test]
    fn fields_may_come_in_any_order(frame in arb_client_frame(), seed in any::<u64>()) {
        // Rebuild the JSON object with its members rotated; the event payload is copied as text.
        let json = frame.encode(Codec::Json).expect("encode");
        let env = Codec::Json.decode(&json).expect("env");
        let mut members: Vec<String> = Vec::new();
        let v: serde_json::Value = serde_json::from_slice(&json).expect("value");
        for (k, val) in v.as_object().expect("object") {
            let text = if k == "event" {
                env.event.as_ref().expect("event").json().to_owned()
            } else {
                serde_json::to_string(val).expect("value")
            };
            members.push(format!("{}:{}", serde_json::to_string(k).expect("key"), text));
        }
        let n = members.len();
        members.rotate_left((seed as usize) % n);
        let rotated = format!("{{{}}}", members.join(","));
        prop_assert_eq!(ClientFrame::decode(Codec::Json, rotated.as_bytes()), Ok(frame));
    }

    #[test]
    fn unknown_type_is_unknown_type(kind in any::<String>().prop_filter("not a client type", |k| !CLIENT_TYPES.contains(&k.as_str()))) {
        for (codec, bytes) in both(&Envelope { kind: kind.clone().into(), id: Some("x".into()), ..Default::default() }) {
            let err = ClientFrame::decode(codec, &bytes).expect_err("unknown type");
            prop_assert_eq!(err.code(), ErrorCode::UnknownType);
            // The echoed type is cut to at most 64 bytes, on a char boundary.
            let ProtoError::UnknownType(echo) = err else { panic!() };
            prop_assert!(echo.len() <= 64 && kind.starts_with(&echo));
        }
    }

    #[test]
    fn chat_ids_must_be_1_to_128_bytes(id in prop_oneof![".{0,40}", "[a-z]{100,140}", "é{60,70}"]) {
        for (codec, bytes) in both(&chat_env(Some(&id), Some("hi"))) {
            let ok = !id.is_empty() && id.len() <= MAX_ID_LEN;
            let res = code_of(codec, &bytes);
            prop_assert_eq!(res.is_ok(), ok, "{} bytes", id.len());
            if !ok {
                prop_assert_eq!(res, Err(ErrorCode::InvalidFrame));
            }
        }
    }

    #[test]
    fn event_ids_must_be_1_to_128_bytes(id in prop_oneof![".{0,40}", "[a-z]{100,140}", "é{60,70}"]) {
        let f = client_event(Some(&id), r#"{"type":3,"data":{"source":1}}"#);
        let ok = !id.is_empty() && id.len() <= MAX_ID_LEN;
        for codec in Codec::ALL {
            let bytes = f.encode(codec).expect("encode");
            let res = code_of(codec, &bytes).map(|_| ());
            prop_assert_eq!(res, if ok { Ok(()) } else { Err(ErrorCode::InvalidFrame) });
        }
    }

    #[test]
    fn chat_text_must_be_1_to_8192_bytes(len in prop_oneof![0usize..4, 8180usize..8200], wide in any::<bool>()) {
        // Multi-byte text counts bytes, not characters.
        let text = if wide { "€".repeat(len / 3) + &"a".repeat(len % 3) } else { "a".repeat(len) };
        prop_assert_eq!(text.len(), len);
        let ok = (1..=MAX_CHAT_TEXT).contains(&len);
        for (codec, bytes) in both(&chat_env(Some("m1"), Some(&text))) {
            let res = code_of(codec, &bytes).map(|_| ());
            prop_assert_eq!(res, if ok { Ok(()) } else { Err(ErrorCode::InvalidFrame) });
        }
    }

    #[test]
    fn resume_epoch_must_be_1_to_128_bytes(epoch in prop_oneof![".{0,40}", "[a-z]{120,140}"], offset in any::<u64>()) {
        let env = Envelope { kind: "join".into(), resume: Some(Position { epoch: epoch.clone(), offset }), ..Default::default() };
        let ok = !epoch.is_empty() && epoch.len() <= MAX_ID_LEN;
        for (codec, bytes) in both(&env) {
            let res = code_of(codec, &bytes);
            if ok {
                prop_assert_eq!(res, Ok(ClientFrame::Join { resume: Some(Position { epoch: epoch.clone(), offset }) }));
            } else {
                prop_assert_eq!(res, Err(ErrorCode::InvalidFrame));
            }
        }
    }

    #[test]
    fn validate_id_accepts_exactly_the_documented_alphabet(id in prop_oneof!["[A-Za-z0-9._:-]{0,140}", ".{0,20}", "[a-z]{0,5}[^A-Za-z0-9._:-][a-z]{0,5}"]) {
        let ok = (1..=MAX_ID_LEN).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
            && !id.bytes().all(|b| b == b'.');
        let res = validate_id("room", &id);
        prop_assert_eq!(res.is_ok(), ok, "{:?}", id);
        if let Err(msg) = res {
            prop_assert!(msg.starts_with("room "), "{}", msg);
        }
    }
}

#[test]
fn unknown_fields_are_ignored_example() {
    assert_eq!(
        json_code(r#"{"type":"ping","id":"p1","sdk":"js/1.2.0","trace":{"a":[1,2]}}"#),
        Ok(ClientFrame::Ping {
            id: Some("p1".into())
        })
    );
}

#[test]
fn fields_of_other_frame_types_are_ignored_but_type_checked() {
    // Envelope fields that a frame type does not use are ignored...
    assert_eq!(
        json_code(r#"{"type":"ping","offset":5,"text":"x","members":[]}"#),
        Ok(ClientFrame::Ping { id: None })
    );
    // ...but, being envelope fields, they must still have their type.
    assert_eq!(
        json_code(r#"{"type":"ping","offset":"5"}"#),
        Err(ErrorCode::Malformed)
    );
    assert_eq!(
        json_code(r#"{"type":"join","text":5}"#),
        Err(ErrorCode::Malformed)
    );
}

#[test]
fn null_fields_count_as_absent() {
    assert_eq!(
        json_code(r#"{"type":"join","resume":null,"id":null}"#),
        Ok(ClientFrame::Join { resume: None })
    );
    assert_eq!(
        json_code(r#"{"type":"chat","id":null,"text":"hi"}"#),
        Err(ErrorCode::InvalidFrame)
    );
}

#[test]
fn unknown_type_is_unknown_type_example() {
    for kind in [
        "subscribe",
        "JOIN",
        "Join",
        "",
        "joined",
        "ack",
        "pong",
        "join ",
    ] {
        let bytes = format!(
            r#"{{"type":{}}}"#,
            serde_json::to_string(kind).expect("json")
        );
        assert_eq!(json_code(&bytes), Err(ErrorCode::UnknownType), "{kind:?}");
    }
}

#[test]
fn server_decode_of_unknown_type_is_unknown_type() {
    for codec in Codec::ALL {
        let bytes = codec
            .encode(&Envelope {
                kind: "join".into(),
                ..Default::default()
            })
            .expect("encode");
        assert_eq!(
            ServerFrame::decode(codec, &bytes).map_err(|e| e.code()),
            Err(ErrorCode::UnknownType)
        );
    }
}

#[test]
fn missing_chat_id_is_invalid_frame() {
    for (codec, bytes) in both(&chat_env(None, Some("hello"))) {
        let err = ClientFrame::decode(codec, &bytes).expect_err("no id");
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
        assert!(err.to_string().contains("`id`"), "{err}");
    }
}

#[test]
fn missing_chat_text_is_invalid_frame() {
    for (codec, bytes) in both(&chat_env(Some("m1"), None)) {
        let err = ClientFrame::decode(codec, &bytes).expect_err("no text");
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
        assert!(err.to_string().contains("`text`"), "{err}");
    }
}

#[test]
fn over_long_ids_and_chat_text_are_refused() {
    let at_limit = "i".repeat(MAX_ID_LEN);
    let over = "i".repeat(MAX_ID_LEN + 1);
    let text_at_limit = "t".repeat(MAX_CHAT_TEXT);
    let text_over = "t".repeat(MAX_CHAT_TEXT + 1);
    for codec in Codec::ALL {
        let ok = |env: Envelope<'_>| {
            let bytes = codec.encode(&env).expect("encode");
            ClientFrame::decode(codec, &bytes)
                .map(|_| ())
                .map_err(|e| e.code())
        };
        assert_eq!(ok(chat_env(Some(&at_limit), Some("x"))), Ok(()));
        assert_eq!(
            ok(chat_env(Some(&over), Some("x"))),
            Err(ErrorCode::InvalidFrame)
        );
        assert_eq!(
            ok(chat_env(Some(""), Some("x"))),
            Err(ErrorCode::InvalidFrame)
        );
        assert_eq!(ok(chat_env(Some("m"), Some(&text_at_limit))), Ok(()));
        assert_eq!(
            ok(chat_env(Some("m"), Some(&text_over))),
            Err(ErrorCode::InvalidFrame)
        );
        assert_eq!(
            ok(chat_env(Some("m"), Some(""))),
            Err(ErrorCode::InvalidFrame)
        );
        let event = |id: &str| {
            client_event(Some(id), r#"{"type":0}"#)
                .encode(codec)
                .expect("encode")
        };
        assert!(ClientFrame::decode(codec, &event(&at_limit)).is_ok());
        assert_eq!(
            ClientFrame::decode(codec, &event(&over)).map_err(|e| e.code()),
            Err(ErrorCode::InvalidFrame)
        );
        assert_eq!(
            ClientFrame::decode(codec, &event("")).map_err(|e| e.code()),
            Err(ErrorCode::InvalidFrame)
        );
    }
}

#[test]
fn ping_id_is_optional_and_echoed_as_is() {
    for id in [None, Some(String::new()), Some("x".repeat(300))] {
        for codec in Codec::ALL {
            let bytes = ClientFrame::Ping { id: id.clone() }
                .encode(codec)
                .expect("encode");
            assert_eq!(
                ClientFrame::decode(codec, &bytes),
                Ok(ClientFrame::Ping { id: id.clone() })
            );
        }
    }
}

#[test]
fn validate_id_examples() {
    for ok in [
        "a",
        "room-1",
        "tenant:42.room_7",
        "A-Z.a-z_0-9:-",
        ".a",
        "..a",
        "a..",
        "room:42",
        &"x".repeat(128),
    ] {
        assert_eq!(validate_id("room", ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        &"x".repeat(129),
        "room 1",
        "room/1",
        "{room}",
        "rüm",
        "a\n",
        "a*",
        "é",
        ".",
        "..",
        "...",
    ] {
        let err = validate_id("participant id", bad).expect_err(bad);
        assert!(err.starts_with("participant id "), "{err}");
    }
}

#[test]
fn close_codes_round_trip_through_from_code() {
    let mut found = 0;
    for n in 0..=u16::MAX {
        match CloseCode::from_code(n) {
            Some(c) => {
                assert_eq!(c.code(), n);
                assert!(CloseCode::ALL.contains(&c));
                found += 1;
            }
            None => assert!(CloseCode::ALL.iter().all(|c| c.code() != n)),
        }
    }
    assert_eq!(found, CloseCode::ALL.len());
}

#[test]
fn close_codes_split_into_reconnect_and_do_not_reconnect_ranges() {
    let expected = [
        (CloseCode::Shutdown, 4000, "shutdown", true),
        (CloseCode::Slow, 4001, "slow", true),
        (CloseCode::JoinTimeout, 4002, "join_timeout", true),
        (CloseCode::IdleTimeout, 4003, "idle_timeout", true),
        (CloseCode::Unavailable, 4004, "unavailable", true),
        (CloseCode::TokenExpired, 4500, "token_expired", false),
        (CloseCode::PolicyViolation, 4501, "policy_violation", false),
        (CloseCode::RoomClosed, 4502, "room_closed", false),
        (CloseCode::RoomFull, 4503, "room_full", false),
        (
            CloseCode::TooManyConnections,
            4504,
            "too_many_connections_for_participant",
            false,
        ),
    ];
    assert_eq!(CloseCode::ALL.len(), expected.len());
    for ((c, n, reason, reconnect), listed) in expected.into_iter().zip(CloseCode::ALL) {
        assert_eq!(c, listed);
        assert_eq!(c.code(), n);
        assert_eq!(c.reason(), reason);
        assert_eq!(c.should_reconnect(), reconnect, "{reason}");
        assert!((4000..5000).contains(&n), "private-use range");
        assert_eq!(c.should_reconnect(), (4000..4500).contains(&n));
        // A close reason must fit a control frame (123 bytes).
        assert!(reason.len() <= 123);
    }
}

#[test]
fn roles_parse_and_print_their_wire_names() {
    for (role, s) in [(Role::Customer, "customer"), (Role::Agent, "agent")] {
        assert_eq!(role.as_str(), s);
        assert_eq!(role.to_string(), s);
        assert_eq!(s.parse::<Role>(), Ok(role));
        assert_eq!(
            serde_json::to_string(&role).expect("json"),
            format!("\"{s}\"")
        );
    }
    assert!("Agent".parse::<Role>().is_err());
    assert!("admin".parse::<Role>().is_err());
}

#[test]
fn claims_need_sub_room_role_and_exp() {
    let claims: Claims = serde_json::from_str(
        r#"{"sub":"c1","room":"room-1","role":"customer","exp":1700000000,"iss":"ignored"}"#,
    )
    .expect("claims");
    assert_eq!(
        claims,
        Claims {
            sub: "c1".into(),
            room: "room-1".into(),
            role: Role::Customer,
            exp: 1_700_000_000,
            iat: None,
            mask: None,
            caps: None,
        }
    );
    for missing in [
        r#"{"room":"r","role":"agent","exp":1}"#,
        r#"{"sub":"s","role":"agent","exp":1}"#,
        r#"{"sub":"s","room":"r","exp":1}"#,
        r#"{"sub":"s","room":"r","role":"agent"}"#,
        r#"{"sub":"s","room":"r","role":"owner","exp":1}"#,
    ] {
        assert!(
            serde_json::from_str::<Claims>(missing).is_err(),
            "{missing}"
        );
    }
    let with_iat: Claims =
        serde_json::from_str(r#"{"sub":"a1","room":"r","role":"agent","exp":2,"iat":1}"#)
            .expect("claims");
    assert_eq!(with_iat.iat, Some(1));
}

#[test]
fn server_frames_need_their_required_fields() {
    for json in [
        r#"{"type":"joined","epoch":"e","you":{"id":"a","role":"agent"},"members":[],"mode":"fresh","head":0}"#,
        r#"{"type":"joined","room":"r","epoch":"e","you":{"id":"a","role":"agent"},"members":[],"mode":"sideways","head":0}"#,
        r#"{"type":"event","event":{"type":3}}"#,
        r#"{"type":"chat","offset":1,"id":"m","text":"t","ts":1}"#,
        r#"{"type":"ack","offset":1}"#,
        r#"{"type":"member_joined"}"#,
        r#"{"type":"resync","epoch":"e"}"#,
        r#"{"type":"resync","epoch":"e","reason":"bored"}"#,
        r#"{"type":"caught_up"}"#,
        r#"{"type":"error","message":"m"}"#,
        r#"{"type":"error","code":"teapot"}"#,
    ] {
        assert_eq!(
            ServerFrame::decode(Codec::Json, json.as_bytes()).map_err(|e| e.code()),
            Err(ErrorCode::InvalidFrame),
            "{json}"
        );
    }
    // An unknown resync reason in `joined` is dropped rather than refused.
    let f = ServerFrame::decode(
        Codec::Json,
        br#"{"type":"joined","room":"r","epoch":"e","you":{"id":"a","role":"agent"},"members":[],"mode":"resync","reason":"new_reason","head":3}"#,
    )
    .expect("decode");
    assert!(matches!(f, ServerFrame::Joined { reason: None, .. }));
}

#[test]
fn a_msgpack_type_that_is_bin_not_str_is_malformed() {
    // {"type": bin("ping")}
    let bin_type = [
        0x81, 0xa4, b't', b'y', b'p', b'e', 0xc4, 4, b'p', b'i', b'n', b'g',
    ];
    assert_eq!(
        code_of(Codec::MsgPack, &bin_type),
        Err(ErrorCode::Malformed)
    );
    // {"type": "ping"} (str) is a ping.
    let str_type = [
        0x81, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'p', b'i', b'n', b'g',
    ];
    assert_eq!(
        code_of(Codec::MsgPack, &str_type),
        Ok(ClientFrame::Ping { id: None })
    );
}

#[test]
fn the_id_of_a_refused_frame_is_read_whenever_the_envelope_decodes() {
    let cases: [(&str, Option<&str>); 6] = [
        (r#"{"type":"chat","id":"c1","text":""}"#, Some("c1")),
        (r#"{"type":"nope","id":"u1"}"#, Some("u1")),
        (
            r#"{"type":"event","id":"e1","event":{"type":"x"}}"#,
            Some("e1"),
        ),
        (r#"{"type":"native_page","id":"n1","page":{}}"#, Some("n1")),
        (r#"{"type":"nope","id":""}"#, None),
        (r#"{"type":"chat","id":"c1","text":5}"#, None),
    ];
    for (json, want) in cases {
        let err = ClientFrame::decode(Codec::Json, json.as_bytes()).expect_err(json);
        assert_eq!(
            ClientFrame::refused_id(Codec::Json, json.as_bytes(), &err).as_deref(),
            want,
            "{json}"
        );
    }
    // A missing page_id is invalid_frame, like every missing required field.
    assert_eq!(
        json_code(r#"{"type":"native_page","page":{"title":"Pay"}}"#),
        Err(ErrorCode::InvalidFrame)
    );
}
