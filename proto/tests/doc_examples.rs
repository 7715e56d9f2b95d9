//! The examples in `docs/protocol.md` are exactly what the codecs produce. If one of these fails
//! after a deliberate change, update the document together with the expectation here.

mod common;

use assist_relay_proto::*;
use common::payload;

const EPOCH: &str = "01J9Z3K8Q4";
const CLICK: &str =
    r#"{"type":3,"data":{"source":2,"type":2,"id":57,"x":120,"y":88},"timestamp":1718000000123}"#;
const MOVE: &str = r#"{"type":3,"data":{"source":1,"positions":[{"x":130,"y":90,"id":57,"timeOffset":-12}]},"timestamp":1718000000180}"#;
const CHAT_TEXT: &str = "Hi! Where is the \"Export\" button? \u{1F642}";
/// The event of the chunked-transfer examples, sliced at 64 bytes (real uploads use
/// `limits.chunk_bytes`).
const SNAPSHOT: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":3,"textContent":"Grüße","id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1718000000500}"#;
/// sha256 of [`SNAPSHOT`]'s bytes (`printf %s "$SNAPSHOT" | sha256sum`).
const SNAPSHOT_DIGEST: &str =
    "sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d";

fn customer() -> Member {
    Member {
        id: "cust-7".into(),
        role: Role::Customer,
    }
}

fn agent() -> Member {
    Member {
        id: "agent-3".into(),
        role: Role::Agent,
    }
}

fn event(id: Option<&str>, json: &str) -> ClientFrame<'static> {
    common::client_event(id, json)
}

/// [`SNAPSHOT`] in the 64-byte slices the examples show.
fn snapshot_slices() -> Vec<&'static str> {
    let slices = chunk::split_text(SNAPSHOT, 64);
    assert_eq!(slices.len(), 3);
    assert_eq!(slices.concat(), SNAPSHOT);
    slices
}

fn upload_chunk(index: u32) -> ClientFrame<'static> {
    ClientFrame::Chunk {
        id: "snap-0007".into(),
        index,
        count: 3,
        size: SNAPSHOT.len() as u64,
        digest: SNAPSHOT_DIGEST.into(),
        data: ChunkData::Text(snapshot_slices()[index as usize].into()),
    }
}

fn delivered_chunk(index: u32) -> ServerFrame<'static> {
    ServerFrame::Chunk {
        offset: 1312,
        index,
        count: 3,
        size: SNAPSHOT.len() as u64,
        data: ChunkData::Text(snapshot_slices()[index as usize].into()),
    }
}

fn checkout_page() -> NativePage {
    NativePage {
        page_id: "checkout".into(),
        title: "Payment".into(),
        template: None,
        fields: [
            ("amount".to_owned(), "¥50,000".to_owned()),
            ("step".to_owned(), "2 of 3".to_owned()),
        ]
        .into(),
    }
}

/// The protocol document, whose examples must match the encoder's output.
fn protocol_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_documented(doc: &str, example: &str) {
    assert!(
        doc.contains(example),
        "docs/protocol.md does not show this exact example:\n{example}"
    );
}

fn json_of_client(f: &ClientFrame<'_>) -> String {
    let bytes = f.encode(Codec::Json).expect("encode");
    assert_eq!(
        &ClientFrame::decode(Codec::Json, &bytes).expect("decode"),
        f
    );
    String::from_utf8(bytes).expect("utf-8")
}

fn json_of_server(f: &ServerFrame<'_>) -> String {
    let bytes = f.encode(Codec::Json).expect("encode");
    assert_eq!(
        &ServerFrame::decode(Codec::Json, &bytes).expect("decode"),
        f
    );
    String::from_utf8(bytes).expect("utf-8")
}

/// The dump format of the document: offset, 16 bytes in hex, printable ASCII.
fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  |{}|\n",
            i * 16,
            hex.join(" "),
            ascii
        ));
    }
    out
}

#[test]
fn client_frame_examples_are_exact() {
    let cases = [
        (ClientFrame::Join { resume: None }, r#"{"type":"join"}"#),
        (
            ClientFrame::Join {
                resume: Some(Position {
                    epoch: EPOCH.into(),
                    offset: 1291,
                }),
            },
            r#"{"type":"join","resume":{"epoch":"01J9Z3K8Q4","offset":1291}}"#,
        ),
        (
            event(Some("ev-1290"), CLICK),
            r#"{"type":"event","id":"ev-1290","event":{"type":3,"data":{"source":2,"type":2,"id":57,"x":120,"y":88},"timestamp":1718000000123}}"#,
        ),
        (
            event(None, MOVE),
            r#"{"type":"event","event":{"type":3,"data":{"source":1,"positions":[{"x":130,"y":90,"id":57,"timeOffset":-12}]},"timestamp":1718000000180}}"#,
        ),
        (
            ClientFrame::Chat {
                id: "cust-7-0001".into(),
                text: CHAT_TEXT.into(),
            },
            "{\"type\":\"chat\",\"id\":\"cust-7-0001\",\"text\":\"Hi! Where is the \\\"Export\\\" button? \u{1F642}\"}",
        ),
        (
            ClientFrame::Ping {
                id: Some("p-17".into()),
            },
            r#"{"type":"ping","id":"p-17"}"#,
        ),
        (ClientFrame::Ping { id: None }, r#"{"type":"ping"}"#),
        (upload_chunk(0), r#"{"type":"chunk","id":"snap-0007","index":0,"count":3,"size":162,"digest":"sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d","data":"{\"type\":2,\"data\":{\"node\":{\"type\":0,\"childNodes\":[{\"type\":3,\"text"}"#),
        (upload_chunk(1), r#"{"type":"chunk","id":"snap-0007","index":1,"count":3,"size":162,"digest":"sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d","data":"Content\":\"Grüße\",\"id\":2}],\"id\":1},\"initialOffset\":{\"left\":0,\"t"}"#),
        (upload_chunk(2), r#"{"type":"chunk","id":"snap-0007","index":2,"count":3,"size":162,"digest":"sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d","data":"op\":0}},\"timestamp\":1718000000500}"}"#),
        (
            ClientFrame::NativePage {
                id: Some("np-3".into()),
                page: checkout_page(),
            },
            r#"{"type":"native_page","id":"np-3","page":{"page_id":"checkout","title":"Payment","fields":{"amount":"¥50,000","step":"2 of 3"}}}"#,
        ),
        (
            ClientFrame::NativePage {
                id: None,
                page: NativePage {
                    page_id: "home".into(),
                    title: "Home".into(),
                    template: None,
                    fields: Default::default(),
                },
            },
            r#"{"type":"native_page","page":{"page_id":"home","title":"Home"}}"#,
        ),
        (ClientFrame::End, r#"{"type":"end"}"#),
    ];
    let doc = protocol_doc();
    for (frame, json) in cases {
        assert_eq!(json_of_client(&frame), json);
        assert_documented(&doc, json);
    }
}

#[test]
fn server_frame_examples_are_exact() {
    let members = vec![customer(), agent()];
    let cases = [
        (
            ServerFrame::Joined {
                room: "room-42".into(),
                epoch: EPOCH.into(),
                you: agent(),
                members: members.clone(),
                mode: JoinMode::Fresh,
                reason: None,
                head: 1289,
                pages: vec![PageRecord {
                    kind: PageKind::Web,
                    url: "https://shop.example/cart".into(),
                    page_id: None,
                    title: Some("Cart".into()),
                    offset: 1201,
                    ts: 1718000000000,
                }],
                limits: Some(Limits {
                    max_frame_bytes: 1048576,
                    max_upload_bytes: 67108864,
                    chunk_bytes: 524032,
                }),
                ice_servers: vec![],
            },
            r#"{"type":"joined","epoch":"01J9Z3K8Q4","room":"room-42","you":{"id":"agent-3","role":"agent"},"members":[{"id":"cust-7","role":"customer"},{"id":"agent-3","role":"agent"}],"mode":"fresh","head":1289,"pages":[{"kind":"web","url":"https://shop.example/cart","title":"Cart","offset":1201,"ts":1718000000000}],"limits":{"max_frame_bytes":1048576,"max_upload_bytes":67108864,"chunk_bytes":524032}}"#,
        ),
        (
            ServerFrame::Joined {
                room: "room-42".into(),
                epoch: EPOCH.into(),
                you: agent(),
                members: members.clone(),
                mode: JoinMode::Resume,
                reason: None,
                head: 1304,
                pages: vec![],
                limits: Some(Limits {
                    max_frame_bytes: 1048576,
                    max_upload_bytes: 67108864,
                    chunk_bytes: 524032,
                }),
                ice_servers: vec![],
            },
            r#"{"type":"joined","epoch":"01J9Z3K8Q4","room":"room-42","you":{"id":"agent-3","role":"agent"},"members":[{"id":"cust-7","role":"customer"},{"id":"agent-3","role":"agent"}],"mode":"resume","head":1304,"limits":{"max_frame_bytes":1048576,"max_upload_bytes":67108864,"chunk_bytes":524032}}"#,
        ),
        (
            ServerFrame::Joined {
                room: "room-42".into(),
                epoch: "01JA0B7T2M".into(),
                you: agent(),
                members,
                mode: JoinMode::Resync,
                reason: Some(ResyncReason::EpochChanged),
                head: 12,
                pages: vec![],
                limits: Some(Limits {
                    max_frame_bytes: 1048576,
                    max_upload_bytes: 67108864,
                    chunk_bytes: 524032,
                }),
                ice_servers: vec![],
            },
            r#"{"type":"joined","epoch":"01JA0B7T2M","room":"room-42","you":{"id":"agent-3","role":"agent"},"members":[{"id":"cust-7","role":"customer"},{"id":"agent-3","role":"agent"}],"mode":"resync","reason":"epoch_changed","head":12,"limits":{"max_frame_bytes":1048576,"max_upload_bytes":67108864,"chunk_bytes":524032}}"#,
        ),
        (
            ServerFrame::Event {
                offset: 1290,
                event: payload(CLICK),
            },
            r#"{"type":"event","offset":1290,"event":{"type":3,"data":{"source":2,"type":2,"id":57,"x":120,"y":88},"timestamp":1718000000123}}"#,
        ),
        (
            ServerFrame::Chat {
                offset: 1291,
                id: "cust-7-0001".into(),
                from: customer(),
                text: CHAT_TEXT.into(),
                ts: 1_718_000_000_412,
            },
            "{\"type\":\"chat\",\"id\":\"cust-7-0001\",\"offset\":1291,\"text\":\"Hi! Where is the \\\"Export\\\" button? \u{1F642}\",\"from\":{\"id\":\"cust-7\",\"role\":\"customer\"},\"ts\":1718000000412}",
        ),
        (
            ServerFrame::Ack {
                id: "cust-7-0001".into(),
                offset: 1291,
                duplicate: false,
            },
            r#"{"type":"ack","id":"cust-7-0001","offset":1291}"#,
        ),
        (
            ServerFrame::Ack {
                id: "cust-7-0001".into(),
                offset: 1291,
                duplicate: true,
            },
            r#"{"type":"ack","id":"cust-7-0001","offset":1291,"duplicate":true}"#,
        ),
        (
            ServerFrame::MemberJoined { member: agent() },
            r#"{"type":"member_joined","member":{"id":"agent-3","role":"agent"}}"#,
        ),
        (
            ServerFrame::MemberLeft { member: agent() },
            r#"{"type":"member_left","member":{"id":"agent-3","role":"agent"}}"#,
        ),
        (
            ServerFrame::Resync {
                epoch: EPOCH.into(),
                reason: ResyncReason::Lagged,
            },
            r#"{"type":"resync","epoch":"01J9Z3K8Q4","reason":"lagged"}"#,
        ),
        (
            ServerFrame::CaughtUp { offset: 1289 },
            r#"{"type":"caught_up","offset":1289}"#,
        ),
        (
            ServerFrame::Error {
                code: ErrorCode::Forbidden,
                message: "only the customer publishes rrweb events".into(),
                id: Some("ev-1290".into()),
            },
            r#"{"type":"error","id":"ev-1290","code":"forbidden","message":"only the customer publishes rrweb events"}"#,
        ),
        (
            ServerFrame::Error {
                code: ErrorCode::UnknownType,
                message: "unknown frame type \"subscribe\"".into(),
                id: None,
            },
            r#"{"type":"error","code":"unknown_type","message":"unknown frame type \"subscribe\""}"#,
        ),
        (
            ServerFrame::Pong {
                id: Some("p-17".into()),
            },
            r#"{"type":"pong","id":"p-17"}"#,
        ),
        (delivered_chunk(0), r#"{"type":"chunk","offset":1312,"index":0,"count":3,"size":162,"data":"{\"type\":2,\"data\":{\"node\":{\"type\":0,\"childNodes\":[{\"type\":3,\"text"}"#),
        (delivered_chunk(1), r#"{"type":"chunk","offset":1312,"index":1,"count":3,"size":162,"data":"Content\":\"Grüße\",\"id\":2}],\"id\":1},\"initialOffset\":{\"left\":0,\"t"}"#),
        (delivered_chunk(2), r#"{"type":"chunk","offset":1312,"index":2,"count":3,"size":162,"data":"op\":0}},\"timestamp\":1718000000500}"}"#),
        (
            ServerFrame::ChunkAck {
                id: "snap-0007".into(),
                index: 0,
            },
            r#"{"type":"chunk_ack","id":"snap-0007","index":0}"#,
        ),
        (
            ServerFrame::SnapshotRequest {
                reason: SnapshotReason::TailTooLarge,
            },
            r#"{"type":"snapshot_request","reason":"tail_too_large"}"#,
        ),
        (
            ServerFrame::SnapshotRequest {
                reason: SnapshotReason::NativePageLeft,
            },
            r#"{"type":"snapshot_request","reason":"native_page_left"}"#,
        ),
        (
            ServerFrame::Joined {
                room: "room-42".into(),
                epoch: EPOCH.into(),
                you: agent(),
                members: vec![customer(), agent()],
                mode: JoinMode::Resume,
                reason: None,
                head: 1306,
                pages: vec![
                    PageRecord {
                        kind: PageKind::Web,
                        url: "https://shop.example/cart".into(),
                        page_id: None,
                        title: Some("Cart".into()),
                        offset: 1201,
                        ts: 1718000000000,
                    },
                    PageRecord {
                        kind: PageKind::Native,
                        url: "native://checkout".into(),
                        page_id: Some("checkout".into()),
                        title: Some("Payment".into()),
                        offset: 1305,
                        ts: 1718000060000,
                    },
                ],
                limits: Some(Limits {
                    max_frame_bytes: 1048576,
                    max_upload_bytes: 67108864,
                    chunk_bytes: 524032,
                }),
                ice_servers: vec![],
            },
            r#"{"type":"joined","epoch":"01J9Z3K8Q4","room":"room-42","you":{"id":"agent-3","role":"agent"},"members":[{"id":"cust-7","role":"customer"},{"id":"agent-3","role":"agent"}],"mode":"resume","head":1306,"pages":[{"kind":"web","url":"https://shop.example/cart","title":"Cart","offset":1201,"ts":1718000000000},{"kind":"native","url":"native://checkout","page_id":"checkout","title":"Payment","offset":1305,"ts":1718000060000}],"limits":{"max_frame_bytes":1048576,"max_upload_bytes":67108864,"chunk_bytes":524032}}"#,
        ),
    ];
    let doc = protocol_doc();
    for (frame, json) in cases {
        assert_eq!(json_of_server(&frame), json);
        assert_documented(&doc, json);
    }
}

#[test]
fn msgpack_hex_dump_examples_are_exact() {
    let doc = protocol_doc();
    let ping = ClientFrame::Ping {
        id: Some("p-17".into()),
    }
    .encode(Codec::MsgPack)
    .expect("encode");
    assert_documented(&doc, &hexdump(&ping));
    assert_eq!(
        hexdump(&ping),
        "\
00000000  82 a4 74 79 70 65 a4 70 69 6e 67 a2 69 64 a4 70  |..type.ping.id.p|
00000010  2d 31 37                                         |-17|
"
    );

    let event = ServerFrame::Event {
        offset: 1290,
        event: payload(r#"{"type":3,"data":{"source":2,"type":2,"id":57}}"#),
    }
    .encode(Codec::MsgPack)
    .expect("encode");
    assert_documented(&doc, &hexdump(&event));
    assert_eq!(
        hexdump(&event),
        "\
00000000  83 a4 74 79 70 65 a5 65 76 65 6e 74 a6 6f 66 66  |..type.event.off|
00000010  73 65 74 cd 05 0a a5 65 76 65 6e 74 c4 2f 7b 22  |set....event./{\"|
00000020  74 79 70 65 22 3a 33 2c 22 64 61 74 61 22 3a 7b  |type\":3,\"data\":{|
00000030  22 73 6f 75 72 63 65 22 3a 32 2c 22 74 79 70 65  |\"source\":2,\"type|
00000040  22 3a 32 2c 22 69 64 22 3a 35 37 7d 7d           |\":2,\"id\":57}}|
"
    );

    let chunk = ServerFrame::Chunk {
        offset: 1312,
        index: 2,
        count: 3,
        size: SNAPSHOT.len() as u64,
        data: ChunkData::Bytes(snapshot_slices()[2].as_bytes().into()),
    }
    .encode(Codec::MsgPack)
    .expect("encode");
    assert_documented(&doc, &hexdump(&chunk));
    assert_eq!(
        hexdump(&chunk),
        "\
00000000  86 a4 74 79 70 65 a5 63 68 75 6e 6b a6 6f 66 66  |..type.chunk.off|
00000010  73 65 74 cd 05 20 a5 69 6e 64 65 78 02 a5 63 6f  |set.. .index..co|
00000020  75 6e 74 03 a4 73 69 7a 65 cc a2 a4 64 61 74 61  |unt..size...data|
00000030  c4 22 6f 70 22 3a 30 7d 7d 2c 22 74 69 6d 65 73  |.\"op\":0}},\"times|
00000040  74 61 6d 70 22 3a 31 37 31 38 30 30 30 30 30 30  |tamp\":1718000000|
00000050  35 30 30 7d                                      |500}|
"
    );

    let ack = ServerFrame::Ack {
        id: "m1".into(),
        offset: 1291,
        duplicate: true,
    }
    .encode(Codec::MsgPack)
    .expect("encode");
    assert_documented(&doc, &hexdump(&ack));
    assert_eq!(
        hexdump(&ack),
        "\
00000000  84 a4 74 79 70 65 a3 61 63 6b a2 69 64 a2 6d 31  |..type.ack.id.m1|
00000010  a6 6f 66 66 73 65 74 cd 05 0b a9 64 75 70 6c 69  |.offset....dupli|
00000020  63 61 74 65 c3                                   |cate.|
"
    );
}

const SDP_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
const SDP_ANSWER: &str =
    "v=0\r\no=- 1021 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

fn signal(kind: &str) -> Signal {
    Signal {
        kind: Some(kind.into()),
        call: Some("call-1".into()),
        ..Default::default()
    }
}

#[test]
fn guide_and_signal_examples_are_exact() {
    let client = [
        (
            ClientFrame::Guide {
                id: None,
                guide: Guidance::Pointer {
                    x: 412.5,
                    y: 230.25,
                    node: Some(57),
                },
            },
            r#"{"type":"guide","guide":{"kind":"pointer","x":412.5,"y":230.25,"node":57}}"#,
        ),
        (
            ClientFrame::Guide {
                id: None,
                guide: Guidance::Highlight { node: 57 },
            },
            r#"{"type":"guide","guide":{"kind":"highlight","node":57}}"#,
        ),
        (
            ClientFrame::Guide {
                id: Some("g-12".into()),
                guide: Guidance::Annotate {
                    node: 57,
                    text: "Export is here".into(),
                },
            },
            r#"{"type":"guide","id":"g-12","guide":{"kind":"annotate","node":57,"text":"Export is here"}}"#,
        ),
        (
            ClientFrame::Guide {
                id: None,
                guide: Guidance::Clear,
            },
            r#"{"type":"guide","guide":{"kind":"clear"}}"#,
        ),
        (
            ClientFrame::Signal {
                id: None,
                to: Some("cust-7".into()),
                signal: Signal {
                    sdp: Some(SDP_OFFER.into()),
                    ..signal("offer")
                },
            },
            r#"{"type":"signal","signal":{"kind":"offer","call":"call-1","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"},"to":"cust-7"}"#,
        ),
        (
            ClientFrame::Signal {
                id: None,
                to: None,
                signal: Signal {
                    sdp: Some(SDP_ANSWER.into()),
                    ..signal("answer")
                },
            },
            r#"{"type":"signal","signal":{"kind":"answer","call":"call-1","sdp":"v=0\r\no=- 1021 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}}"#,
        ),
        (
            ClientFrame::Signal {
                id: None,
                to: Some("cust-7".into()),
                signal: Signal {
                    candidate: Some("candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0".into()),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    ..signal("ice")
                },
            },
            r#"{"type":"signal","signal":{"kind":"ice","call":"call-1","candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0","sdp_mid":"0","sdp_mline_index":0},"to":"cust-7"}"#,
        ),
        (
            ClientFrame::Signal {
                id: None,
                to: None,
                signal: Signal {
                    reason: Some("declined".into()),
                    ..signal("hangup")
                },
            },
            r#"{"type":"signal","signal":{"kind":"hangup","call":"call-1","reason":"declined"}}"#,
        ),
    ];
    let doc = protocol_doc();
    for (frame, json) in client {
        assert_eq!(json_of_client(&frame), json);
        assert_documented(&doc, json);
    }
    let server = [
        (
            ServerFrame::Guide {
                offset: 1291,
                from: agent(),
                guide: Guidance::Highlight { node: 57 },
            },
            r#"{"type":"guide","offset":1291,"from":{"id":"agent-3","role":"agent"},"guide":{"kind":"highlight","node":57}}"#,
        ),
        (
            ServerFrame::Signal {
                from: agent(),
                signal: Signal {
                    sdp: Some(SDP_OFFER.into()),
                    ..signal("offer")
                },
            },
            r#"{"type":"signal","from":{"id":"agent-3","role":"agent"},"signal":{"kind":"offer","call":"call-1","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}}"#,
        ),
        (
            ServerFrame::Joined {
                room: "room-42".into(),
                epoch: EPOCH.into(),
                you: customer(),
                members: vec![customer(), agent()],
                mode: JoinMode::Fresh,
                reason: None,
                head: 1289,
                pages: vec![],
                limits: Some(Limits {
                    max_frame_bytes: 1048576,
                    max_upload_bytes: 67108864,
                    chunk_bytes: 524032,
                }),
                ice_servers: vec![
                    IceServer {
                        urls: vec!["stun:stun.example.com:3478".into()],
                        username: None,
                        credential: None,
                    },
                    IceServer {
                        urls: vec![
                            "turn:turn.example.com:3478?transport=udp".into(),
                            "turns:turn.example.com:5349".into(),
                        ],
                        username: Some("1718003600:cust-7".into()),
                        credential: Some("BiPTixRlDOEwb3I+HROQgj0LLno=".into()),
                    },
                ],
            },
            r#"{"type":"joined","epoch":"01J9Z3K8Q4","room":"room-42","you":{"id":"cust-7","role":"customer"},"members":[{"id":"cust-7","role":"customer"},{"id":"agent-3","role":"agent"}],"mode":"fresh","head":1289,"limits":{"max_frame_bytes":1048576,"max_upload_bytes":67108864,"chunk_bytes":524032},"ice_servers":[{"urls":["stun:stun.example.com:3478"]},{"urls":["turn:turn.example.com:3478?transport=udp","turns:turn.example.com:5349"],"username":"1718003600:cust-7","credential":"BiPTixRlDOEwb3I+HROQgj0LLno="}]}"#,
        ),
    ];
    for (frame, json) in server {
        assert_eq!(json_of_server(&frame), json);
        assert_documented(&doc, json);
    }
}
