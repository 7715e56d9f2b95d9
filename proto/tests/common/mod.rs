//! Strategies and helpers shared by the property tests: arbitrary frames, rrweb-shaped events
//! rendered as exact JSON text, and a small MessagePack writer for arbitrary (also hostile) values.
#![allow(dead_code)]

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

// ---------------------------------------------------------------------------------------------
// JSON values rendered with random (valid) formatting
// ---------------------------------------------------------------------------------------------

/// A JSON value whose text rendering we control exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    /// Keys are unique.
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn dedupe(kv: Vec<(String, J)>) -> Vec<(String, J)> {
    let mut seen = std::collections::HashSet::new();
    kv.into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

/// Unicode text including quotes, backslashes, control characters and astral characters.
pub fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\u{0}-\u{1f}a-zé€😀\u{2028}\u{feff}]{0,16}",
    ]
}

pub fn arb_json_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-zA-Z]{1,10}", 1 => arb_text()]
}

pub fn arb_j() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Int),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(J::Float),
        arb_text().prop_map(J::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(J::Arr),
            vec((arb_json_key(), inner), 0..6).prop_map(|kv| J::Obj(dedupe(kv))),
        ]
    })
}

/// Renders JSON text, taking every formatting decision (escapes, whitespace, number notation)
/// from `seeds`, so the same value has many valid spellings.
pub struct Renderer<'s> {
    seeds: &'s [u8],
    next: usize,
    pub out: String,
}

impl<'s> Renderer<'s> {
    pub fn new(seeds: &'s [u8]) -> Self {
        Renderer {
            seeds,
            next: 0,
            out: String::new(),
        }
    }

    fn seed(&mut self) -> u8 {
        if self.seeds.is_empty() {
            return 0;
        }
        let s = self.seeds[self.next % self.seeds.len()];
        self.next += 1;
        s.wrapping_add((self.next / self.seeds.len()) as u8)
    }

    fn ws(&mut self) {
        const WS: [&str; 8] = ["", "", "", "", " ", "\n", "\t ", "\r\n  "];
        let w = WS[usize::from(self.seed() % 8)];
        self.out.push_str(w);
    }

    fn hex4(&mut self, unit: u16) {
        if self.seed() & 1 == 0 {
            self.out.push_str(&format!("\\u{unit:04x}"));
        } else {
            self.out.push_str(&format!("\\u{unit:04X}"));
        }
    }

    fn escaped(&mut self, c: char) {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let u = *unit;
            self.hex4(u);
        }
    }

    pub fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escape = self.seed() < 86; // about one char in three
            match c {
                '"' if !escape => self.out.push_str("\\\""),
                '\\' if !escape => self.out.push_str("\\\\"),
                '/' if escape => self.out.push_str("\\/"),
                '\n' if !escape => self.out.push_str("\\n"),
                '\r' if !escape => self.out.push_str("\\r"),
                '\t' if !escape => self.out.push_str("\\t"),
                '\u{8}' if !escape => self.out.push_str("\\b"),
                '\u{c}' if !escape => self.out.push_str("\\f"),
                c if escape || c < ' ' || c == '"' || c == '\\' => self.escaped(c),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn float(&mut self, f: f64) {
        let text = match self.seed() % 3 {
            0 => format!("{f}"),
            1 => format!("{f:e}"),
            _ => format!("{f:E}"),
        };
        self.out.push_str(&text);
    }

    pub fn value(&mut self, v: &J) {
        match v {
            J::Null => self.out.push_str("null"),
            J::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => self.out.push_str(&i.to_string()),
            J::Float(f) => self.float(*f),
            J::Str(s) => self.string(s),
            J::Arr(items) => {
                self.out.push('[');
                self.ws();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.value(item);
                }
                self.ws();
                self.out.push(']');
            }
            J::Obj(kv) => {
                self.out.push('{');
                self.ws();
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.ws();
                    self.value(v);
                }
                self.ws();
                self.out.push('}');
            }
        }
    }
}

/// Renders `v` with the formatting picked by `seeds`.
pub fn render(v: &J, seeds: &[u8]) -> String {
    let mut r = Renderer::new(seeds);
    r.value(v);
    r.out
}

// ---------------------------------------------------------------------------------------------
// rrweb-shaped events
// ---------------------------------------------------------------------------------------------

/// An rrweb-shaped event as exact JSON text, with what a head scan must read from it.
#[derive(Debug, Clone)]
pub struct RrwebEvent {
    pub json: String,
    pub kind: u8,
    pub source: Option<u8>,
    pub timestamp: Option<f64>,
}

/// An rrweb-shaped event: a JSON object with an integer `type` in 0..=7, for type 3 a `data`
/// object with an optional `source`, for other types any `data` (or none), an optional numeric
/// `timestamp`, arbitrary extra fields, keys in any order, rendered with random escapes and
/// whitespace (none around the whole value).
pub fn arb_rrweb_event() -> impl Strategy<Value = RrwebEvent> {
    let incremental_data = (
        proptest::option::of(0u8..=16),
        vec(
            (
                arb_json_key().prop_filter("not source", |k| k != "source"),
                arb_j(),
            ),
            0..4,
        ),
    )
        .prop_map(|(source, rest)| {
            let mut kv = Vec::new();
            if let Some(s) = source {
                kv.push(("source".to_owned(), J::Int(i64::from(s))));
            }
            kv.extend(rest);
            J::Obj(dedupe(kv))
        })
        .boxed();
    let data = (0u8..=7).prop_flat_map(move |kind| {
        let data = if kind == 3 {
            proptest::option::of(incremental_data.clone()).boxed()
        } else {
            proptest::option::of(arb_j()).boxed()
        };
        (Just(kind), data)
    });
    let timestamp = proptest::option::of(prop_oneof![
        (0u64..(1 << 53)).prop_map(|t| J::Int(t as i64)),
        (0u64..(1 << 42), 0u32..1000)
            .prop_map(|(ms, frac)| J::Float(ms as f64 + f64::from(frac) / 1000.0)),
    ]);
    let extra = vec(
        (
            arb_json_key().prop_filter("not a head field", |k| {
                !matches!(k.as_str(), "type" | "data" | "timestamp")
            }),
            arb_j(),
        ),
        0..4,
    );
    (data, timestamp, extra, vec(any::<u8>(), 1..64))
        .prop_flat_map(|((kind, data), timestamp, extra, seeds)| {
            let mut kv = vec![("type".to_owned(), J::Int(i64::from(kind)))];
            if let Some(d) = data {
                kv.push(("data".to_owned(), d));
            }
            if let Some(t) = timestamp {
                kv.push(("timestamp".to_owned(), t));
            }
            kv.extend(extra);
            let kv = dedupe(kv);
            (Just(kind), Just(kv).prop_shuffle(), Just(seeds))
        })
        .prop_map(|(kind, kv, seeds)| {
            let event = J::Obj(kv);
            let source = match event.get("data").and_then(|d| d.get("source")) {
                Some(J::Int(s)) => u8::try_from(*s).ok(),
                _ => None,
            };
            let timestamp = match event.get("timestamp") {
                Some(J::Int(t)) => Some(*t as f64),
                Some(J::Float(t)) => Some(*t),
                _ => None,
            };
            // The renderer puts whitespace only inside the object, never around it.
            let json = render(&event, &seeds);
            RrwebEvent {
                json,
                kind,
                source,
                timestamp,
            }
        })
}

// ---------------------------------------------------------------------------------------------
// MessagePack values, including ones no serializer would write
// ---------------------------------------------------------------------------------------------

/// A MessagePack value. `wide` picks a longer encoding than the shortest one where there is one.
#[derive(Debug, Clone)]
pub enum Mp {
    Nil,
    Bool(bool),
    UInt(u64, bool),
    Int(i64, bool),
    F32(f32),
    F64(f64),
    Str(String, bool),
    /// A `str` whose bytes need not be UTF-8.
    RawStr(Vec<u8>),
    Bin(Vec<u8>, bool),
    Arr(Vec<Mp>, bool),
    Map(Vec<(Mp, Mp)>, bool),
    Ext(i8, Vec<u8>),
    /// A reserved marker (0xc1) that no valid value uses.
    Reserved,
}

pub fn mp_str(s: &str) -> Mp {
    Mp::Str(s.to_owned(), false)
}

fn write_len(
    out: &mut Vec<u8>,
    len: usize,
    wide: bool,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) {
    match fix {
        Some((base, max)) if len <= max && !wide => out.push(base | len as u8),
        _ => match m8 {
            Some(m) if len <= 0xff && !wide => {
                out.push(m);
                out.push(len as u8);
            }
            _ if len <= 0xffff && !wide => {
                out.push(m16);
                out.extend((len as u16).to_be_bytes());
            }
            _ => {
                out.push(m32);
                out.extend((len as u32).to_be_bytes());
            }
        },
    }
}

/// Writes `v` as MessagePack.
pub fn write_mp(v: &Mp, out: &mut Vec<u8>) {
    match v {
        Mp::Nil => out.push(0xc0),
        Mp::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Mp::UInt(u, wide) => {
            if *wide {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            } else if *u < 0x80 {
                out.push(*u as u8);
            } else if *u <= 0xff {
                out.extend([0xcc, *u as u8]);
            } else if *u <= 0xffff {
                out.push(0xcd);
                out.extend((*u as u16).to_be_bytes());
            } else if *u <= 0xffff_ffff {
                out.push(0xce);
                out.extend((*u as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            }
        }
        Mp::Int(i, wide) => {
            if *wide {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            } else if (-32..0).contains(i) {
                out.push(*i as u8);
            } else if i8::try_from(*i).is_ok() {
                out.extend([0xd0, *i as u8]);
            } else if i16::try_from(*i).is_ok() {
                out.push(0xd1);
                out.extend((*i as i16).to_be_bytes());
            } else if i32::try_from(*i).is_ok() {
                out.push(0xd2);
                out.extend((*i as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            }
        }
        Mp::F32(f) => {
            out.push(0xca);
            out.extend(f.to_be_bytes());
        }
        Mp::F64(f) => {
            out.push(0xcb);
            out.extend(f.to_be_bytes());
        }
        Mp::Str(s, wide) => {
            write_len(
                out,
                s.len(),
                *wide,
                Some((0xa0, 31)),
                Some(0xd9),
                0xda,
                0xdb,
            );
            out.extend(s.as_bytes());
        }
        Mp::RawStr(b) => {
            write_len(
                out,
                b.len(),
                false,
                Some((0xa0, 31)),
                Some(0xd9),
                0xda,
                0xdb,
            );
            out.extend(b);
        }
        Mp::Bin(b, wide) => {
            write_len(out, b.len(), *wide, None, Some(0xc4), 0xc5, 0xc6);
            out.extend(b);
        }
        Mp::Arr(items, wide) => {
            write_len(out, items.len(), *wide, Some((0x90, 15)), None, 0xdc, 0xdd);
            for item in items {
                write_mp(item, out);
            }
        }
        Mp::Map(kv, wide) => {
            write_len(out, kv.len(), *wide, Some((0x80, 15)), None, 0xde, 0xdf);
            for (k, v) in kv {
                write_mp(k, out);
                write_mp(v, out);
            }
        }
        Mp::Ext(tag, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => {
                    out.push(0xc7);
                    out.push(n as u8);
                }
            }
            out.push(*tag as u8);
            out.extend(data);
        }
        Mp::Reserved => out.push(0xc1),
    }
}

pub fn mp_bytes(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    write_mp(v, &mut out);
    out
}

pub fn arb_mp_leaf() -> impl Strategy<Value = Mp> {
    prop_oneof![
        Just(Mp::Nil),
        any::<bool>().prop_map(Mp::Bool),
        (any::<u64>(), any::<bool>()).prop_map(|(u, w)| Mp::UInt(u, w)),
        (any::<i64>(), any::<bool>()).prop_map(|(i, w)| Mp::Int(i, w)),
        any::<f32>().prop_map(Mp::F32),
        any::<f64>().prop_map(Mp::F64),
        (arb_text(), any::<bool>()).prop_map(|(s, w)| Mp::Str(s, w)),
        vec(any::<u8>(), 0..8).prop_map(Mp::RawStr),
        (vec(any::<u8>(), 0..16), any::<bool>()).prop_map(|(b, w)| Mp::Bin(b, w)),
        // Bins holding JSON, as an event payload would.
        (arb_j(), vec(any::<u8>(), 1..8))
            .prop_map(|(j, seeds)| Mp::Bin(render(&j, &seeds).into_bytes(), false)),
        (any::<i8>(), vec(any::<u8>(), 0..20)).prop_map(|(t, d)| Mp::Ext(t, d)),
        Just(Mp::Reserved),
    ]
}

/// Any MessagePack value, nested.
pub fn arb_mp() -> impl Strategy<Value = Mp> {
    arb_mp_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..6), any::<bool>()).prop_map(|(v, w)| Mp::Arr(v, w)),
            (vec((inner.clone(), inner), 0..6), any::<bool>()).prop_map(|(kv, w)| Mp::Map(kv, w)),
        ]
    })
}

/// A map that looks like a frame: a `type` (known or not) and known and unknown fields with
/// values of any type, in any order.
pub fn arb_mp_frameish() -> impl Strategy<Value = Mp> {
    let kind = prop_oneof![
        proptest::sample::select(CLIENT_TYPES.to_vec()).prop_map(mp_str),
        proptest::sample::select(SERVER_TYPES.to_vec()).prop_map(mp_str),
        arb_mp_leaf(),
    ];
    let field = prop_oneof![
        (
            proptest::sample::select(ENVELOPE_FIELDS.to_vec()).prop_map(mp_str),
            arb_mp()
        ),
        // Well-typed values for the fields client frames use, so that some maps decode.
        (
            Just(mp_str("event")),
            (arb_rrweb_event(), any::<bool>()).prop_map(|(e, as_str)| if as_str {
                Mp::Str(e.json, false)
            } else {
                Mp::Bin(e.json.into_bytes(), false)
            }),
        ),
        (
            proptest::sample::select(vec!["id", "text", "epoch", "message"]).prop_map(mp_str),
            arb_text().prop_map(|s| Mp::Str(s, false)),
        ),
        (
            proptest::sample::select(vec!["offset", "head", "ts"]).prop_map(mp_str),
            any::<u64>().prop_map(|u| Mp::UInt(u, false)),
        ),
        (arb_unknown_field_name().prop_map(|k| mp_str(&k)), arb_mp()),
        (arb_mp_leaf(), arb_mp_leaf()),
    ];
    (kind, vec(field, 0..8), any::<bool>()).prop_map(|(kind, mut fields, wide)| {
        fields.insert(0, (mp_str("type"), kind));
        Mp::Map(fields, wide)
    })
}

/// Any JSON value (as serde_json builds it).
pub fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((arb_json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object that looks like a frame: a `type` (known or not) and known and unknown fields
/// with values of any type.
pub fn arb_json_frameish() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let kind = prop_oneof![
        proptest::sample::select(CLIENT_TYPES.to_vec()).prop_map(Value::from),
        proptest::sample::select(SERVER_TYPES.to_vec()).prop_map(Value::from),
        arb_json(),
    ];
    let field = prop_oneof![
        (
            proptest::sample::select(ENVELOPE_FIELDS.to_vec()).prop_map(str::to_owned),
            arb_json()
        ),
        (
            Just("event".to_owned()),
            arb_rrweb_event().prop_map(|e| serde_json::from_str(&e.json).expect("event JSON")),
        ),
        (
            proptest::sample::select(vec!["id", "text", "epoch", "message"])
                .prop_map(str::to_owned),
            arb_text().prop_map(Value::String),
        ),
        (arb_unknown_field_name(), arb_json()),
    ];
    (kind, vec(field, 0..8)).prop_map(|(kind, fields)| {
        let mut map: serde_json::Map<String, Value> = fields.into_iter().collect();
        map.insert("type".to_owned(), kind);
        Value::Object(map)
    })
}
