//! Strategies and helpers shared by the property tests: arbitrary frames, rrweb-shaped events
//! rendered as exact JSON text, and a small MessagePack writer for arbitrary (also hostile) values.
#![allow(dead_code)]

pub mod json;
pub mod msgpack;
#[allow(unused_imports)]
pub use json::*;
#[allow(unused_imports)]
pub use msgpack::*;

use std::borrow::Cow;

use assist_relay_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::value::RawValue;

/// Every field name the envelope knows. Anything else is an unknown field.
pub const ENVELOPE_FIELDS: [&str; 31] = [
    "type",
    "id",
    "offset",
    "epoch",
    "event",
    "text",
    "from",
    "ts",
    "room",
    "you",
    "members",
    "member",
    "mode",
    "reason",
    "head",
    "index",
    "count",
    "size",
    "digest",
    "data",
    "page",
    "pages",
    "limits",
    "code",
    "message",
    "resume",
    "duplicate",
    "guide",
    "signal",
    "to",
    "ice_servers",
];

/// The frame types a client may send.
pub const CLIENT_TYPES: [&str; 9] = [
    "end",
    "guide",
    "signal",
    "join",
    "event",
    "chat",
    "ping",
    "chunk",
    "native_page",
];

/// The frame types the relay sends.
pub const SERVER_TYPES: [&str; 15] = [
    "guide",
    "signal",
    "chunk",
    "chunk_ack",
    "snapshot_request",
    "joined",
    "event",
    "chat",
    "ack",
    "member_joined",
    "member_left",
    "resync",
    "caught_up",
    "error",
    "pong",
];

/// The codes `ClientFrame::decode` may fail with.
pub const DECODE_ERROR_CODES: [ErrorCode; 4] = [
    ErrorCode::Malformed,
    ErrorCode::InvalidFrame,
    ErrorCode::UnknownType,
    ErrorCode::InvalidEvent,
];

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// A payload from JSON text (which must be one JSON value without surrounding whitespace).
pub fn payload(json: &str) -> EventPayload<'static> {
    EventPayload(Cow::Owned(
        RawValue::from_string(json.to_owned()).expect("test payload is valid JSON"),
    ))
}

/// A client `event` frame as `ClientFrame::decode` would produce it.
pub fn client_event(id: Option<&str>, json: &str) -> ClientFrame<'static> {
    let event = payload(json);
    let head = EventHead::scan(&event.0).expect("test event is an rrweb event");
    ClientFrame::Event {
        id: id.map(str::to_owned),
        event,
        head,
    }
}

pub fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Customer), Just(Role::Agent)]
}

/// A participant or room id: 1-128 bytes of the documented alphabet, not only dots.
pub fn arb_participant_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,128}".prop_filter("not only dots", |id| !id.bytes().all(|b| b == b'.'))
}

pub fn arb_member() -> impl Strategy<Value = Member> {
    (arb_participant_id(), arb_role()).prop_map(|(id, role)| Member { id, role })
}

/// A client-chosen id (chat, event): any text of 1 to 128 bytes.
pub fn arb_client_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,128}",
        // Up to 32 chars of at most 4 bytes each: never over 128 bytes.
        ".{1,32}",
        "[\u{10000}-\u{10FFFF}]{32}",
    ]
}

/// An epoch: opaque text of 1 to 128 bytes.
pub fn arb_epoch() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9a-f]{1,32}", ".{1,32}"]
}

pub fn arb_position() -> impl Strategy<Value = Position> {
    (arb_epoch(), any::<u64>()).prop_map(|(epoch, offset)| Position { epoch, offset })
}

/// Chat text of 1 to 8192 bytes, including the exact limits.
pub fn arb_chat_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{1,100}",
        1 => (1usize..=MAX_CHAT_TEXT).prop_map(|n| "a".repeat(n)),
        1 => (1usize..=MAX_CHAT_TEXT / 2).prop_map(|n| "é".repeat(n)),
        1 => (1usize..=MAX_CHAT_TEXT / 4).prop_map(|n| "😀".repeat(n)),
    ]
}

pub fn arb_client_frame() -> BoxedStrategy<ClientFrame<'static>> {
    prop_oneof![
        proptest::option::of(arb_position()).prop_map(|resume| ClientFrame::Join { resume }),
        (proptest::option::of(arb_client_id()), arb_rrweb_event())
            .prop_map(|(id, ev)| { client_event(id.as_deref(), &ev.json) }),
        (arb_client_id(), arb_chat_text()).prop_map(|(id, text)| ClientFrame::Chat { id, text }),
        proptest::option::of(any::<String>()).prop_map(|id| ClientFrame::Ping { id }),
        (arb_client_id(), 1u32..100, "[0-9a-f]{64}", ".{1,64}").prop_flat_map(
            |(id, count, hex, data)| {
                (0..count).prop_map(move |index| ClientFrame::Chunk {
                    id: id.clone(),
                    index,
                    count,
                    size: u64::from(count) + data.len() as u64,
                    digest: format!("sha256:{hex}"),
                    data: ChunkData::Text(Cow::Owned(data.clone())),
                })
            }
        ),
        (proptest::option::of(arb_client_id()), arb_native_page())
            .prop_map(|(id, page)| ClientFrame::NativePage { id, page }),
        Just(ClientFrame::End),
        (proptest::option::of(arb_client_id()), arb_guidance())
            .prop_map(|(id, guide)| ClientFrame::Guide { id, guide }),
        (
            proptest::option::of(arb_client_id()),
            proptest::option::of(arb_participant_id()),
            arb_signal()
        )
            .prop_map(|(id, to, signal)| ClientFrame::Signal { id, to, signal }),
    ]
    .boxed()
}

/// Valid guidance of every kind.
pub fn arb_guidance() -> impl Strategy<Value = Guidance> {
    let coord = prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        -1.0e7f64..1.0e7,
    ];
    prop_oneof![
        (coord.clone(), coord, proptest::option::of(1u32..))
            .prop_map(|(x, y, node)| Guidance::Pointer { x, y, node }),
        (1u32..).prop_map(|node| Guidance::Highlight { node }),
        (1u32.., "[^\u{0}]{1,60}")
            .prop_filter("at most 500 bytes", |(_, t)| t.len() <= 500)
            .prop_map(|(node, text)| Guidance::Annotate { node, text }),
        Just(Guidance::Clear),
    ]
}

/// A valid signaling message of every kind.
pub fn arb_signal() -> impl Strategy<Value = Signal> {
    (
        arb_client_id(),
        0usize..4,
        ".{1,200}",
        proptest::option::of("[a-z0-9]{1,8}"),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(call, kind, text, mid, mline)| {
            let mut s = Signal {
                kind: Some(["offer", "answer", "ice", "hangup"][kind].to_owned()),
                call: Some(call),
                ..Default::default()
            };
            match kind {
                0 | 1 => s.sdp = Some(text),
                2 => {
                    s.candidate = Some(text.chars().take(100).collect());
                    s.sdp_mid = mid;
                    s.sdp_mline_index = mline;
                }
                _ => s.reason = mid,
            }
            s
        })
}

pub fn arb_ice_server() -> impl Strategy<Value = IceServer> {
    (
        vec("(stun|turn):[a-z.]{1,20}:[0-9]{1,5}", 1..3),
        proptest::option::of("[0-9]{1,10}:[a-z]{1,8}"),
        proptest::option::of("[A-Za-z0-9+/=]{1,28}"),
    )
        .prop_map(|(urls, username, credential)| IceServer {
            urls,
            username,
            credential,
        })
}

pub fn arb_native_page() -> impl Strategy<Value = NativePage> {
    (
        "[A-Za-z0-9._:-]{1,40}".prop_filter("not only dots", |id| !id.bytes().all(|b| b == b'.')),
        ".{0,40}",
        proptest::option::of("[a-z-]{1,20}"),
        proptest::collection::btree_map("[a-z_]{1,10}", ".{0,30}", 0..4),
    )
        .prop_map(|(page_id, title, template, fields)| NativePage {
            page_id,
            title,
            template,
            fields,
        })
}

pub fn arb_page_record() -> impl Strategy<Value = PageRecord> {
    (
        any::<bool>(),
        ".{0,40}",
        proptest::option::of(".{1,20}"),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(native, url, title, offset, ts)| PageRecord {
            kind: if native {
                PageKind::Native
            } else {
                PageKind::Web
            },
            page_id: native.then(|| "screen".to_owned()),
            url,
            title,
            offset,
            ts,
        })
}

pub fn arb_join_mode() -> impl Strategy<Value = JoinMode> {
    prop_oneof![
        Just(JoinMode::Fresh),
        Just(JoinMode::Resume),
        Just(JoinMode::Resync)
    ]
}

pub fn arb_resync_reason() -> impl Strategy<Value = ResyncReason> {
    proptest::sample::select(ResyncReason::ALL.to_vec())
}

pub fn arb_error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

pub fn arb_server_frame() -> BoxedStrategy<ServerFrame<'static>> {
    prop_oneof![
        (
            arb_participant_id(),
            arb_epoch(),
            arb_member(),
            vec(arb_member(), 0..6),
            arb_join_mode(),
            proptest::option::of(arb_resync_reason()),
            any::<u64>(),
            vec(arb_page_record(), 0..3),
            proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>())),
            vec(arb_ice_server(), 0..3),
        )
            .prop_map(
                |(room, epoch, you, members, mode, reason, head, pages, limits, ice_servers)| {
                    ServerFrame::Joined {
                        room,
                        epoch,
                        you,
                        members,
                        mode,
                        reason,
                        head,
                        pages,
                        limits: limits.map(|(a, b, c)| Limits {
                            max_frame_bytes: a,
                            max_upload_bytes: b,
                            chunk_bytes: c,
                        }),
                        ice_servers,
                    }
                }
            ),
        (any::<u64>(), arb_rrweb_event()).prop_map(|(offset, ev)| ServerFrame::Event {
            offset,
            event: payload(&ev.json),
        }),
        (
            any::<u64>(),
            arb_client_id(),
            arb_member(),
            arb_chat_text(),
            any::<u64>()
        )
            .prop_map(|(offset, id, from, text, ts)| ServerFrame::Chat {
                offset,
                id,
                from,
                text,
                ts,
            }),
        (arb_client_id(), any::<u64>(), any::<bool>()).prop_map(|(id, offset, duplicate)| {
            ServerFrame::Ack {
                id,
                offset,
                duplicate,
            }
        }),
        arb_member().prop_map(|member| ServerFrame::MemberJoined { member }),
        arb_member().prop_map(|member| ServerFrame::MemberLeft { member }),
        (arb_epoch(), arb_resync_reason())
            .prop_map(|(epoch, reason)| ServerFrame::Resync { epoch, reason }),
        any::<u64>().prop_map(|offset| ServerFrame::CaughtUp { offset }),
        (
            arb_error_code(),
            any::<String>(),
            proptest::option::of(arb_client_id())
        )
            .prop_map(|(code, message, id)| ServerFrame::Error { code, message, id }),
        proptest::option::of(any::<String>()).prop_map(|id| ServerFrame::Pong { id }),
        (any::<u64>(), 1u32..100, any::<u64>(), ".{1,64}").prop_flat_map(
            |(offset, count, size, data)| {
                (0..count).prop_map(move |index| ServerFrame::Chunk {
                    offset,
                    index,
                    count,
                    size,
                    data: ChunkData::Text(Cow::Owned(data.clone())),
                })
            }
        ),
        (arb_client_id(), any::<u32>()).prop_map(|(id, index)| ServerFrame::ChunkAck { id, index }),
        proptest::sample::select(SnapshotReason::ALL.to_vec())
            .prop_map(|reason| ServerFrame::SnapshotRequest { reason }),
        (any::<u64>(), arb_member(), arb_guidance()).prop_map(|(offset, from, guide)| {
            ServerFrame::Guide {
                offset,
                from,
                guide,
            }
        }),
        (arb_member(), arb_signal())
            .prop_map(|(from, signal)| ServerFrame::Signal { from, signal }),
    ]
    .boxed()
}

/// A name that is not an envelope field.
pub fn arb_unknown_field_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{1,12}", "[A-Z][a-zA-Z]{0,8}", ".{0,8}"]
        .prop_filter("must not be a known field", |k| {
            !ENVELOPE_FIELDS.contains(&k.as_str())
        })
}

/// Asserts the invariants a decoded client frame promises.
pub fn assert_client_frame_valid(frame: &ClientFrame<'_>) {
    match frame {
        ClientFrame::Join { resume } => {
            if let Some(p) = resume {
                assert!(!p.epoch.is_empty() && p.epoch.len() <= MAX_ID_LEN);
            }
        }
        ClientFrame::Event { id, event, head } => {
            if let Some(id) = id {
                assert!(!id.is_empty() && id.len() <= MAX_ID_LEN);
            }
            assert!(event.json().starts_with('{'));
            assert_eq!(EventHead::scan(&event.0).expect("scan"), *head);
        }
        ClientFrame::Chat { id, text } => {
            assert!(!id.is_empty() && id.len() <= MAX_ID_LEN);
            assert!(!text.is_empty() && text.len() <= MAX_CHAT_TEXT);
        }
        ClientFrame::Ping { .. } => {}
        ClientFrame::Chunk {
            id,
            index,
            count,
            size,
            digest,
            data,
        } => {
            assert!(!id.is_empty() && id.len() <= MAX_ID_LEN);
            assert!(index < count && *count >= 1);
            assert!(*size >= u64::from(*count) && !data.is_empty());
            assert!(data.len() as u64 <= *size);
            assert!(digest.starts_with("sha256:") && digest.len() == 71);
        }
        ClientFrame::NativePage { page, .. } => assert!(page.validate().is_ok()),
        ClientFrame::End => {}
        ClientFrame::Guide { guide, .. } => {
            assert_eq!(Guidance::from_wire(guide.to_wire()).as_ref(), Ok(guide));
        }
        ClientFrame::Signal { signal, to, .. } => {
            assert!(signal.validate().is_ok());
            if let Some(to) = to {
                assert!(validate_id("to", to).is_ok());
            }
        }
    }
}
