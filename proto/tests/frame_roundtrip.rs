//! Every client and server frame survives both codecs, and the codecs agree on every frame.

mod common;

use assist_relay_proto::*;
use common::*;
use proptest::prelude::*;

/// One example of every client frame variant. The match in `client_variant` is exhaustive, so a
/// new variant fails to compile until it is listed here.
fn client_examples() -> Vec<ClientFrame<'static>> {
    vec![
        ClientFrame::Join { resume: None },
        ClientFrame::Join {
            resume: Some(Position {
                epoch: "01HZX3".into(),
                offset: 42,
            }),
        },
        client_event(None, r#"{"type":3,"data":{"source":1},"timestamp":1}"#),
        client_event(Some("e-1"), r#"{"type":4,"data":{"href":"https://x/"}}"#),
        ClientFrame::Chat {
            id: "m-1".into(),
            text: "hello \"world\" \u{1F600}\n".into(),
        },
        ClientFrame::Ping { id: None },
        ClientFrame::Ping {
            id: Some("p1".into()),
        },
        ClientFrame::Chunk {
            id: "up-1".into(),
            index: 1,
            count: 3,
            size: 30,
            digest: format!("sha256:{}", "0".repeat(64)),
            data: ChunkData::Text("{\"type\":2,".into()),
        },
        ClientFrame::End,
        ClientFrame::Guide {
            id: None,
            guide: Guidance::Pointer {
                x: 120.5,
                y: 88.0,
                node: Some(57),
            },
        },
        ClientFrame::Guide {
            id: Some("g-1".into()),
            guide: Guidance::Annotate {
                node: 57,
                text: "Click here 🙂".into(),
            },
        },
        ClientFrame::Guide {
            id: None,
            guide: Guidance::Clear,
        },
        ClientFrame::Signal {
            id: None,
            to: Some("c1".into()),
            signal: Signal {
                kind: Some("ice".into()),
                call: Some("call-1".into()),
                candidate: Some("candidate:1 1 udp 2122260223 10.0.0.2 5000 typ host".into()),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                ..Default::default()
            },
        },
        ClientFrame::NativePage {
            id: Some("np-1".into()),
            page: NativePage {
                page_id: "checkout".into(),
                title: "Payment".into(),
                template: None,
                fields: [("amount".to_owned(), "¥50,000".to_owned())].into(),
            },
        },
    ]
}

fn client_variant(f: &ClientFrame<'_>) -> usize {
    match f {
        ClientFrame::Join { .. } => 0,
        ClientFrame::Event { .. } => 1,
        ClientFrame::Chat { .. } => 2,
        ClientFrame::Ping { .. } => 3,
        ClientFrame::Chunk { .. } => 4,
        ClientFrame::NativePage { .. } => 5,
        ClientFrame::End => 6,
        ClientFrame::Guide { .. } => 7,
        ClientFrame::Signal { .. } => 8,
    }
}

fn agent(id: &str) -> Member {
    Member {
        id: id.into(),
        role: Role::Agent,
    }
}

fn customer(id: &str) -> Member {
    Member {
        id: id.into(),
        role: Role::Customer,
    }
}

/// One example of every server frame variant (see `server_variant`).
fn server_examples() -> Vec<ServerFrame<'static>> {
    vec![
        ServerFrame::Joined {
            room: "room-1".into(),
            epoch: "e1".into(),
            you: agent("a1"),
            members: vec![customer("c1"), agent("a1")],
            mode: JoinMode::Fresh,
            reason: None,
            head: 17,
            pages: vec![PageRecord {
                kind: PageKind::Native,
                url: "native://checkout".into(),
                page_id: Some("checkout".into()),
                title: Some("Payment".into()),
                offset: 12,
                ts: 1_700_000_000_000,
            }],
            limits: Some(Limits {
                max_frame_bytes: 1 << 20,
                max_upload_bytes: 64 << 20,
                chunk_bytes: 1 << 18,
            }),
            ice_servers: vec![],
        },
        ServerFrame::Joined {
            room: "room-1".into(),
            epoch: "e2".into(),
            you: agent("a1"),
            members: vec![agent("a1")],
            mode: JoinMode::Resync,
            reason: Some(ResyncReason::EpochChanged),
            head: 0,
            pages: vec![],
            limits: None,
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example.com:3478".into()],
                username: Some("1718003600:a1".into()),
                credential: Some("c2VjcmV0".into()),
            }],
        },
        ServerFrame::Event {
            offset: 18,
            event: payload(r#"{"type":2,"data":{"node":{}},"timestamp":1.5}"#),
        },
        ServerFrame::Chat {
            offset: 19,
            id: "m-1".into(),
            from: customer("c1"),
            text: "hi".into(),
            ts: 1_700_000_000_000,
        },
        ServerFrame::Ack {
            id: "m-1".into(),
            offset: 19,
            duplicate: false,
        },
        ServerFrame::Ack {
            id: "m-1".into(),
            offset: 19,
            duplicate: true,
        },
        ServerFrame::MemberJoined {
            member: customer("c1"),
        },
        ServerFrame::MemberLeft {
            member: customer("c1"),
        },
        ServerFrame::Resync {
            epoch: "e1".into(),
            reason: ResyncReason::Lagged,
        },
        ServerFrame::CaughtUp { offset: 19 },
        ServerFrame::Error {
            code: ErrorCode::Forbidden,
            message: "agents may not send events".into(),
            id: Some("e-1".into()),
        },
        ServerFrame::Error {
            code: ErrorCode::Malformed,
            message: String::new(),
            id: None,
        },
        ServerFrame::Pong { id: None },
        ServerFrame::Pong {
            id: Some("p1".into()),
        },
        ServerFrame::Chunk {
            offset: 20,
            index: 0,
            count: 2,
            size: 12,
            data: ChunkData::Text("{\"type\":".into()),
        },
        ServerFrame::ChunkAck {
            id: "up-1".into(),
            index: 4,
        },
        ServerFrame::SnapshotRequest {
            reason: SnapshotReason::TailTooLarge,
        },
        ServerFrame::Guide {
            offset: 20,
            from: agent("a1"),
            guide: Guidance::Highlight { node: 57 },
        },
        ServerFrame::Signal {
            from: agent("a1"),
            signal: Signal {
                kind: Some("offer".into()),
                call: Some("call-1".into()),
                sdp: Some("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into()),
                ..Default::default()
            },
        },
    ]
}

fn server_variant(f: &ServerFrame<'_>) -> usize {
    match f {
        ServerFrame::Joined { .. } => 0,
        ServerFrame::Event { .. } => 1,
        ServerFrame::Chat { .. } => 2,
        ServerFrame::Ack { .. } => 3,
        ServerFrame::MemberJoined { .. } => 4,
        ServerFrame::MemberLeft { .. } => 5,
        ServerFrame::Resync { .. } => 6,
        ServerFrame::CaughtUp { .. } => 7,
        ServerFrame::Error { .. } => 8,
        ServerFrame::Pong { .. } => 9,
        ServerFrame::Chunk { .. } => 10,
        ServerFrame::ChunkAck { .. } => 11,
        ServerFrame::SnapshotRequest { .. } => 12,
        ServerFrame::Guide { .. } => 13,
        ServerFrame::Signal { .. } => 14,
    }
}

fn assert_client_round_trip(frame: &ClientFrame<'_>) {
    let json = frame.encode(Codec::Json).expect("json encode");
    let mp = frame.encode(Codec::MsgPack).expect("msgpack encode");
    let from_json = ClientFrame::decode(Codec::Json, &json).expect("json decode");
    let from_mp = ClientFrame::decode(Codec::MsgPack, &mp).expect("msgpack decode");
    assert_eq!(
        &from_json,
        frame,
        "JSON: {}",
        String::from_utf8_lossy(&json)
    );
    assert_eq!(&from_mp, frame, "MessagePack");
    assert_eq!(from_json, from_mp, "the codecs disagree");
}

fn assert_server_round_trip(frame: &ServerFrame<'_>) {
    let json = frame.encode(Codec::Json).expect("json encode");
    let mp = frame.encode(Codec::MsgPack).expect("msgpack encode");
    let from_json = ServerFrame::decode(Codec::Json, &json).expect("json decode");
    let from_mp = ServerFrame::decode(Codec::MsgPack, &mp).expect("msgpack decode");
    assert_eq!(
        &from_json,
        frame,
        "JSON: {}",
        String::from_utf8_lossy(&json)
    );
    assert_eq!(&from_mp, frame, "MessagePack");
    assert_eq!(from_json, from_mp, "the codecs disagree");
}

#[test]
fn every_client_frame_variant_round_trips_in_both_codecs() {
    let examples = client_examples();
    let mut seen = [false; 9];
    for f in &examples {
        seen[client_variant(f)] = true;
        assert_client_round_trip(f);
    }
    assert!(seen.iter().all(|s| *s), "an example per variant");
}

#[test]
fn every_server_frame_variant_round_trips_in_both_codecs() {
    let examples = server_examples();
    let mut seen = [false; 15];
    for f in &examples {
        seen[server_variant(f)] = true;
        assert_server_round_trip(f);
    }
    assert!(seen.iter().all(|s| *s), "an example per variant");
}

#[test]
fn type_names_are_the_wire_types() {
    for f in client_examples() {
        let env = f.to_envelope();
        assert_eq!(env.kind, f.type_name());
        assert!(CLIENT_TYPES.contains(&f.type_name()));
    }
    for f in server_examples() {
        assert_eq!(f.to_envelope().kind, f.type_name());
        assert!(SERVER_TYPES.contains(&f.type_name()));
    }
}

#[test]
fn only_event_chat_and_chunk_server_frames_carry_an_offset() {
    for f in server_examples() {
        let expected = match &f {
            ServerFrame::Event { offset, .. }
            | ServerFrame::Chat { offset, .. }
            | ServerFrame::Chunk { offset, .. } => Some(*offset),
            _ => None,
        };
        assert_eq!(f.offset(), expected, "{}", f.type_name());
    }
}

#[test]
fn msgpack_frames_are_maps_with_string_keys() {
    // `{"type":"ping","id":"p1"}` as a fixmap of 2 entries with fixstr keys and values.
    let mp = ClientFrame::Ping {
        id: Some("p1".into()),
    }
    .encode(Codec::MsgPack)
    .expect("encode");
    assert_eq!(
        mp,
        [
            &[0x82, 0xa4][..],
            b"type",
            &[0xa4],
            b"ping",
            &[0xa2],
            b"id",
            &[0xa2],
            b"p1"
        ]
        .concat()
    );
}

#[test]
fn msgpack_event_payload_is_a_bin_of_json_text() {
    let json = r#"{"type":3,"data":{"source":2}}"#;
    let frame = ServerFrame::Event {
        offset: 5,
        event: payload(json),
    };
    let mp = frame.encode(Codec::MsgPack).expect("encode");
    let mut expected = vec![0x83, 0xa4];
    expected.extend(b"type");
    expected.push(0xa5);
    expected.extend(b"event");
    expected.push(0xa6);
    expected.extend(b"offset");
    expected.push(0x05);
    expected.push(0xa5);
    expected.extend(b"event");
    expected.extend([0xc4, json.len() as u8]);
    expected.extend(json.as_bytes());
    assert_eq!(mp, expected);
}

#[test]
fn ack_omits_duplicate_unless_true() {
    let plain = ServerFrame::Ack {
        id: "m1".into(),
        offset: 3,
        duplicate: false,
    };
    let json = plain.encode(Codec::Json).expect("encode");
    assert_eq!(json, br#"{"type":"ack","id":"m1","offset":3}"#);
    let dup = ServerFrame::Ack {
        id: "m1".into(),
        offset: 3,
        duplicate: true,
    };
    let json = dup.encode(Codec::Json).expect("encode");
    assert_eq!(
        json,
        br#"{"type":"ack","id":"m1","offset":3,"duplicate":true}"#
    );
    // An explicit false reads like an absent field.
    let f = ServerFrame::decode(
        Codec::Json,
        br#"{"type":"ack","id":"m1","offset":3,"duplicate":false}"#,
    )
    .expect("decode");
    assert_eq!(f, plain);
}

/// The assertions of the first smoke test: an rrweb event keeps its exact JSON through both codecs
/// and both directions, and unknown envelope fields do not disturb it.
#[test]
fn event_keeps_its_raw_json_through_both_codecs_and_directions() {
    let src = br#"{"type":"event","id":"e1","event":{"type":3,"data":{"source":1,"positions":[{"x":1}]},"timestamp":1700000000000.5},"unknown":42}"#;
    let f = ClientFrame::decode(Codec::Json, src).expect("decode");
    let ClientFrame::Event { id, head, event } = &f else {
        panic!("expected an event frame, got {f:?}")
    };
    assert_eq!(id.as_deref(), Some("e1"));
    assert_eq!(head.kind, EventKind::IncrementalSnapshot);
    assert_eq!(head.source, Some(1));
    assert_eq!(head.timestamp, Some(1_700_000_000_000.5));
    assert_eq!(
        event.json(),
        r#"{"type":3,"data":{"source":1,"positions":[{"x":1}]},"timestamp":1700000000000.5}"#
    );
    let mp = f.encode(Codec::MsgPack).expect("encode");
    let g = ClientFrame::decode(Codec::MsgPack, &mp).expect("msgpack decode");
    assert_eq!(f, g);

    let s = ServerFrame::Event {
        offset: 7,
        event: event.clone(),
    };
    let j = s.encode(Codec::Json).expect("encode");
    assert_eq!(
        j,
        br#"{"type":"event","offset":7,"event":{"type":3,"data":{"source":1,"positions":[{"x":1}]},"timestamp":1700000000000.5}}"#
    );
    assert_eq!(ServerFrame::decode(Codec::Json, &j).expect("decode"), s);
    let m = s.encode(Codec::MsgPack).expect("encode");
    assert_eq!(ServerFrame::decode(Codec::MsgPack, &m).expect("decode"), s);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_round_trip_through_json(frame in arb_client_frame()) {
        let bytes = frame.encode(Codec::Json).expect("encode");
        prop_assert!(std::str::from_utf8(&bytes).is_ok());
        let back = ClientFrame::decode(Codec::Json, &bytes).expect("decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn client_frames_round_trip_through_msgpack(frame in arb_client_frame()) {
        let bytes = frame.encode(Codec::MsgPack).expect("encode");
        let back = ClientFrame::decode(Codec::MsgPack, &bytes).expect("decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn json_and_msgpack_decode_the_same_client_frame(frame in arb_client_frame()) {
        let json = frame.encode(Codec::Json).expect("encode");
        let mp = frame.encode(Codec::MsgPack).expect("encode");
        let a = ClientFrame::decode(Codec::Json, &json).expect("decode json");
        let b = ClientFrame::decode(Codec::MsgPack, &mp).expect("decode msgpack");
        prop_assert_eq!(&a, &b);
        // And the envelopes under them agree field by field.
        prop_assert_eq!(Codec::Json.decode(&json).expect("env"), Codec::MsgPack.decode(&mp).expect("env"));
    }

    #[test]
    fn server_frames_round_trip_through_json(frame in arb_server_frame()) {
        let bytes = frame.encode(Codec::Json).expect("encode");
        prop_assert!(std::str::from_utf8(&bytes).is_ok());
        let back = ServerFrame::decode(Codec::Json, &bytes).expect("decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn server_frames_round_trip_through_msgpack(frame in arb_server_frame()) {
        let bytes = frame.encode(Codec::MsgPack).expect("encode");
        let back = ServerFrame::decode(Codec::MsgPack, &bytes).expect("decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn decoded_server_frames_detach_from_their_buffer(frame in arb_server_frame()) {
        for codec in Codec::ALL {
            let owned: ServerFrame<'static> = {
                let bytes = frame.encode(codec).expect("encode");
                ServerFrame::decode(codec, &bytes).expect("decode").into_owned()
            };
            prop_assert_eq!(&owned, &frame);
        }
    }

    #[test]
    fn json_and_msgpack_decode_the_same_server_frame(frame in arb_server_frame()) {
        let json = frame.encode(Codec::Json).expect("encode");
        let mp = frame.encode(Codec::MsgPack).expect("encode");
        let a = ServerFrame::decode(Codec::Json, &json).expect("decode json");
        let b = ServerFrame::decode(Codec::MsgPack, &mp).expect("decode msgpack");
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(Codec::Json.decode(&json).expect("env"), Codec::MsgPack.decode(&mp).expect("env"));
    }

    /// A client frame read back through the envelope keeps its meaning when the relay re-encodes the
    /// same data as a server frame (what it does for chat).
    #[test]
    fn chat_text_and_id_survive_the_relay_path(id in arb_client_id(), text in arb_chat_text(), from in arb_member(), offset in any::<u64>(), ts in any::<u64>()) {
        for codec in Codec::ALL {
            let sent = ClientFrame::Chat { id: id.clone(), text: text.clone() }.encode(codec).expect("encode");
            let ClientFrame::Chat { id, text } = ClientFrame::decode(codec, &sent).expect("decode") else {
                panic!("not chat")
            };
            for out in Codec::ALL {
                let frame = ServerFrame::Chat { offset, id: id.clone(), from: from.clone(), text: text.clone(), ts };
                let bytes = frame.encode(out).expect("encode");
                prop_assert_eq!(ServerFrame::decode(out, &bytes).expect("decode"), frame);
            }
        }
    }
}
