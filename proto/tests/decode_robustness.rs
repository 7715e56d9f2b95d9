//! Untrusted input: decoding never panics, every failure carries one of the stable decode error
//! codes, and whatever decodes re-encodes to the same frame.

mod common;

use assist_relay_proto::*;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Decodes untrusted bytes as a client frame the way the relay does, and checks the outcome.
fn check_client(codec: Codec, bytes: &[u8]) -> Result<(), ErrorCode> {
    match ClientFrame::decode(codec, bytes) {
        Ok(frame) => {
            assert_client_frame_valid(&frame);
            for out in Codec::ALL {
                let again = frame.encode(out).expect("a decoded frame encodes");
                let back = ClientFrame::decode(out, &again).expect("a re-encoded frame decodes");
                assert_eq!(back, frame, "re-encoded with {out:?}");
            }
            Ok(())
        }
        Err(e) => {
            let code = e.code();
            assert!(DECODE_ERROR_CODES.contains(&code), "{e}");
            assert!(!e.to_string().is_empty());
            Err(code)
        }
    }
}

/// The same for server frames (what a client SDK does with what it receives).
fn check_server(codec: Codec, bytes: &[u8]) -> Result<(), ErrorCode> {
    match ServerFrame::decode(codec, bytes) {
        Ok(frame) => {
            for out in Codec::ALL {
                let again = frame.encode(out).expect("a decoded frame encodes");
                let back = ServerFrame::decode(out, &again).expect("a re-encoded frame decodes");
                assert_eq!(back, frame, "re-encoded with {out:?}");
            }
            Ok(())
        }
        Err(e) => {
            let code = e.code();
            // A server frame carries no rrweb validation.
            assert!(
                matches!(
                    code,
                    ErrorCode::Malformed | ErrorCode::InvalidFrame | ErrorCode::UnknownType
                ),
                "{e}"
            );
            Err(code)
        }
    }
}

fn check_both(codec: Codec, bytes: &[u8]) {
    let _ = check_client(codec, bytes);
    let _ = check_server(codec, bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic_and_fail_with_a_stable_code(bytes in vec(any::<u8>(), 0..256)) {
        for codec in Codec::ALL {
            check_both(codec, &bytes);
        }
    }

    #[test]
    fn random_json_never_panics_and_fails_with_a_stable_code(v in prop_oneof![arb_json(), arb_json_frameish()]) {
        let text = serde_json::to_vec(&v).expect("json");
        check_both(Codec::Json, &text);
        // The same bytes on a MessagePack connection: a JSON object starts with `{` (0x7b), a
        // positive fixint, so it is never a map.
        prop_assert_eq!(check_client(Codec::MsgPack, &text), Err(ErrorCode::Malformed));
        if !v.is_object() {
            prop_assert_eq!(check_client(Codec::Json, &text), Err(ErrorCode::Malformed));
        }
    }

    #[test]
    fn random_msgpack_never_panics_and_fails_with_a_stable_code(v in prop_oneof![arb_mp(), arb_mp_frameish()]) {
        let bytes = mp_bytes(&v);
        check_both(Codec::MsgPack, &bytes);
        check_both(Codec::Json, &bytes);
        if !matches!(v, Mp::Map(..)) {
            prop_assert_eq!(check_client(Codec::MsgPack, &bytes), Err(ErrorCode::Malformed));
            prop_assert_eq!(check_server(Codec::MsgPack, &bytes), Err(ErrorCode::Malformed));
        }
    }

    /// Valid frames with bytes flipped, inserted, deleted or cut off.
    #[test]
    fn damaged_frames_never_panic(
        frame in prop_oneof![
            arb_client_frame().prop_map(|f| (f.encode(Codec::Json).expect("json"), f.encode(Codec::MsgPack).expect("mp"))),
            arb_server_frame().prop_map(|f| (f.encode(Codec::Json).expect("json"), f.encode(Codec::MsgPack).expect("mp"))),
        ],
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let (json, mp) = frame;
        for (codec, mut bytes) in [(Codec::Json, json), (Codec::MsgPack, mp)] {
            for (at, byte, op) in &edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = *byte,
                    1 => bytes.insert(i, *byte),
                    2 => { bytes.remove(i); }
                    _ => bytes.truncate(i),
                }
            }
            check_both(codec, &bytes);
        }
    }

    /// A frame whose top level is not a map is malformed, even when the fields would line up by
    /// position (which serde would otherwise accept for a struct).
    #[test]
    fn positional_arrays_are_not_frames(frame in arb_client_frame()) {
        let json: serde_json::Value = serde_json::from_slice(&frame.encode(Codec::Json).expect("json")).expect("value");
        let obj = json.as_object().expect("object");
        let positional: Vec<serde_json::Value> = ENVELOPE_FIELDS
            .iter()
            .map(|f| obj.get(*f).cloned().unwrap_or(serde_json::Value::Null))
            .collect();
        let bytes = serde_json::to_vec(&positional).expect("json");
        prop_assert_eq!(check_client(Codec::Json, &bytes), Err(ErrorCode::Malformed));
        let mp = rmp_serde::to_vec(&frame.to_envelope()).expect("positional msgpack");
        prop_assert_eq!(check_client(Codec::MsgPack, &mp), Err(ErrorCode::Malformed));
    }
}

#[test]
fn empty_and_whitespace_input_is_malformed() {
    for codec in Codec::ALL {
        for bytes in [&b""[..], b" ", b"\n\t\r "] {
            assert_eq!(check_client(codec, bytes), Err(ErrorCode::Malformed));
            assert_eq!(check_server(codec, bytes), Err(ErrorCode::Malformed));
        }
    }
    // Leading JSON whitespace before the object is fine.
    assert_eq!(
        check_client(Codec::Json, b" \r\n\t{\"type\":\"ping\"} "),
        Ok(())
    );
}

#[test]
fn json_frame_needs_a_string_type() {
    for bytes in [
        &br#"{}"#[..],
        br#"{"id":"x"}"#,
        br#"{"type":null}"#,
        br#"{"type":1}"#,
        br#"{"type":["join"]}"#,
        br#"{"type":{"join":1}}"#,
    ] {
        assert_eq!(
            check_client(Codec::Json, bytes),
            Err(ErrorCode::Malformed),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn invalid_json_is_malformed() {
    for bytes in [
        &br#"{"type":"ping""#[..],
        br#"{"type":"ping"} {"type":"ping"}"#,
        br#"{"type":"ping",}"#,
        br#"{'type':'ping'}"#,
        br#"{"type":"ping","id":"\ud800"}"#,
        b"{\"type\":\"ping\",\"id\":\"\xff\"}",
        b"\xef\xbb\xbf{\"type\":\"ping\"}",
        br#"{"type":"chat","id":"a","id":"b","text":"t"}"#,
    ] {
        assert_eq!(
            check_client(Codec::Json, bytes),
            Err(ErrorCode::Malformed),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn invalid_msgpack_is_malformed() {
    let ping = ClientFrame::Ping { id: None }
        .encode(Codec::MsgPack)
        .expect("encode");
    let cases: Vec<Vec<u8>> = vec![
        // Cut short.
        ping[..ping.len() - 1].to_vec(),
        // A map announcing more entries than it has.
        [&[0x83][..], &ping[1..]].concat(),
        // A str that is not UTF-8 as the type.
        mp_bytes(&Mp::Map(
            vec![(mp_str("type"), Mp::RawStr(vec![0xff, 0xfe]))],
            false,
        )),
        // The reserved marker as a value.
        mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("ping")),
                (mp_str("id"), Mp::Reserved),
            ],
            false,
        )),
        // Wrong types of known fields.
        mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("ping")),
                (mp_str("offset"), Mp::Int(-1, false)),
            ],
            false,
        )),
        mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("chat")),
                (mp_str("id"), Mp::UInt(1, false)),
                (mp_str("text"), mp_str("hi")),
            ],
            false,
        )),
        mp_bytes(&Mp::Map(
            vec![
                (mp_str("type"), mp_str("join")),
                (mp_str("resume"), mp_str("e1:5")),
            ],
            false,
        )),
    ];
    for bytes in cases {
        assert_eq!(
            check_client(Codec::MsgPack, &bytes),
            Err(ErrorCode::Malformed),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn wide_msgpack_encodings_are_accepted() {
    // map32 header, str32 keys and values, uint64 offset: any valid MessagePack spelling is fine.
    let bytes = mp_bytes(&Mp::Map(
        vec![
            (Mp::Str("type".into(), true), Mp::Str("join".into(), true)),
            (
                Mp::Str("resume".into(), true),
                Mp::Map(
                    vec![
                        (Mp::Str("epoch".into(), true), Mp::Str("e1".into(), true)),
                        (Mp::Str("offset".into(), true), Mp::UInt(9, true)),
                    ],
                    true,
                ),
            ),
        ],
        true,
    ));
    assert_eq!(bytes[0], 0xdf);
    assert_eq!(
        ClientFrame::decode(Codec::MsgPack, &bytes).expect("decode"),
        ClientFrame::Join {
            resume: Some(Position {
                epoch: "e1".into(),
                offset: 9
            })
        }
    );
}

#[test]
fn error_code_strings_are_stable() {
    let expected = [
        (ErrorCode::Malformed, "malformed", false),
        (ErrorCode::InvalidFrame, "invalid_frame", false),
        (ErrorCode::UnknownType, "unknown_type", false),
        (ErrorCode::WrongFrameKind, "wrong_frame_kind", false),
        (ErrorCode::NotJoined, "not_joined", false),
        (ErrorCode::AlreadyJoined, "already_joined", false),
        (ErrorCode::Forbidden, "forbidden", false),
        (ErrorCode::InvalidEvent, "invalid_event", false),
        (ErrorCode::TooLarge, "too_large", false),
        (ErrorCode::UploadInvalid, "upload_invalid", false),
        (ErrorCode::UploadLimit, "upload_limit", true),
        (ErrorCode::RateLimited, "rate_limited", true),
        (ErrorCode::LogFull, "log_full", false),
        (ErrorCode::Unavailable, "unavailable", true),
        (ErrorCode::Internal, "internal", true),
    ];
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    for ((code, s, retryable), listed) in expected.into_iter().zip(ErrorCode::ALL) {
        assert_eq!(code, listed, "ALL is in documented order");
        assert_eq!(code.as_str(), s);
        assert_eq!(code.to_string(), s);
        assert_eq!(code.retryable(), retryable, "{s}");
        // The serde form is the wire string too.
        assert_eq!(
            serde_json::to_string(&code).expect("json"),
            format!("\"{s}\"")
        );
        assert_eq!(
            serde_json::from_str::<ErrorCode>(&format!("\"{s}\"")).expect("json"),
            code
        );
    }
}

#[test]
fn proto_errors_map_to_their_codes() {
    assert_eq!(
        ProtoError::Malformed("x".into()).code(),
        ErrorCode::Malformed
    );
    assert_eq!(
        ProtoError::Invalid {
            frame: "chat",
            reason: "x".into()
        }
        .code(),
        ErrorCode::InvalidFrame
    );
    assert_eq!(
        ProtoError::UnknownType("x".into()).code(),
        ErrorCode::UnknownType
    );
    assert_eq!(
        ProtoError::InvalidEvent("x".into()).code(),
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        ProtoError::WrongFrameKind { expected: "text" }.code(),
        ErrorCode::WrongFrameKind
    );
}
