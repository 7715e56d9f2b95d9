//! Masking fails closed under hostile input (issue 16): routing fields that are not canonical
//! integers, repeated keys, numeric variants deep inside, `rr-ignore`, deep nesting. Over live
//! frames and chunked uploads; checked on what live agents, late joiners, the store, the
//! recording and `relay export` hold.

mod common;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use assist_relay::compactor::{read_recording, FsArchive};
use assist_relay::store::{CatchUpRequest, EntryBody};
use assist_relay_proto::chunk::split_text;
use assist_relay_proto::{
    ChunkData, ClientFrame, Codec, ErrorCode, EventHead, EventKind, EventPayload, JoinMode,
    Position, Role, ServerFrame,
};
use common::*;
use serde_json::value::RawValue;
use sha2::Digest;

/// A page with a `<style>` before its `<title>`, a password input (id 10), a text input (11),
/// an `rr-ignore` button (12) and an `rr-ignore` option (14).
const PAGE: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"head","attributes":{},"childNodes":[{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"textContent":"body{color:red}","isStyle":true,"id":5}],"id":4},{"type":2,"tagName":"title","attributes":{},"childNodes":[{"type":3,"textContent":"Sign in","id":7}],"id":6}],"id":3},{"type":2,"tagName":"body","attributes":{},"childNodes":[{"type":2,"tagName":"input","attributes":{"type":"password","value":"pw-in-snapshot"},"childNodes":[],"id":10},{"type":2,"tagName":"input","attributes":{"type":"text","value":""},"childNodes":[],"id":11},{"type":2,"tagName":"input","attributes":{"type":"button","class":"rr-ignore","value":"ignored-label-secret"},"childNodes":[],"id":12},{"type":2,"tagName":"select","attributes":{},"childNodes":[{"type":2,"tagName":"option","attributes":{"class":"rr-ignore","value":"ignored-option-secret"},"childNodes":[],"id":14}],"id":13}],"id":8}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":2}"#;
const META: &str = r#"{"type":4,"data":{"href":"https://bank.example/login","width":800,"height":600},"timestamp":1}"#;

/// Hostile events, each carrying its own secret (`hx-...`), and whether the relay may accept it
/// (masked) rather than refuse it.
fn hostile() -> Vec<(&'static str, String)> {
    let input = |source: &str, secret: &str| {
        format!(
            r#"{{"type":3,"data":{{"source":{source},"id":10,"text":"{secret}","isChecked":false}},"timestamp":3}}"#
        )
    };
    vec![
        ("hx-src-5.0", input("5.0", "hx-src-5.0")),
        ("hx-src-5e0", input("5e0", "hx-src-5e0")),
        ("hx-src-0.5e1", input("0.5e1", "hx-src-0.5e1")),
        ("hx-src-dup", input("2,\"source\":5", "hx-src-dup")),
        (
            "hx-data-dup",
            r#"{"type":3,"data":{"source":2},"data":{"source":5,"id":10,"text":"hx-data-dup"},"timestamp":3}"#.into(),
        ),
        (
            "hx-mut-0.0",
            r#"{"type":3,"data":{"source":0.0,"texts":[],"removes":[],"adds":[],"attributes":[{"id":10,"attributes":{"value":"hx-mut-0.0"}}]},"timestamp":3}"#.into(),
        ),
        (
            "hx-mut--0",
            r#"{"type":3,"data":{"source":-0,"texts":[],"removes":[],"adds":[],"attributes":[{"id":10,"attributes":{"value":"hx-mut--0"}}]},"timestamp":3}"#.into(),
        ),
        // Repeated keys inside what masking reads: a reader keeping the first `id` sees the
        // password input.
        (
            "hx-id-dup",
            r#"{"type":3,"data":{"source":5,"id":10,"text":"hx-id-dup","id":11},"timestamp":3}"#.into(),
        ),
        (
            "hx-text-dup",
            r#"{"type":3,"data":{"source":5,"id":10,"text":"hx-text-dup","text":"x"},"timestamp":3}"#.into(),
        ),
        // Numeric variants deep inside: a node type `2.0` is an element to rrweb.
        (
            "hx-node-2.0",
            r#"{"type":3,"data":{"source":0,"texts":[],"removes":[],"attributes":[],"adds":[{"parentId":8,"nextId":null,"node":{"type":2.0,"tagName":"input","attributes":{"type":"password","value":"hx-node-2.0"},"childNodes":[],"id":20}}]},"timestamp":3}"#.into(),
        ),
        // `setAttribute` lowercases names: `VALUE` is the value.
        (
            "hx-case",
            r#"{"type":3,"data":{"source":0,"texts":[],"removes":[],"adds":[],"attributes":[{"id":10,"attributes":{"VALUE":"hx-case"}}]},"timestamp":3}"#.into(),
        ),
        (
            "hx-id-1e1",
            r#"{"type":3,"data":{"source":0,"texts":[],"removes":[],"adds":[],"attributes":[{"id":1e1,"attributes":{"value":"hx-id-1e1"}}]},"timestamp":3}"#.into(),
        ),
    ]
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Sends `event` as a chunked upload of small slices.
async fn upload(c: &mut Client, id: &str, event: &str) {
    let parts = split_text(event, 24);
    let count = parts.len() as u32;
    for (i, p) in parts.iter().enumerate() {
        c.send(&ClientFrame::Chunk {
            id: id.into(),
            index: i as u32,
            count,
            size: event.len() as u64,
            digest: digest(event.as_bytes()),
            data: ChunkData::Text(Cow::Borrowed(p)),
        })
        .await;
    }
}

/// Publishes an event the way a hostile client would: without scanning it first.
async fn publish(c: &mut Client, event: &str, id: &str) {
    let raw: &RawValue = serde_json::from_str(event).expect("JSON");
    let head = EventHead {
        kind: EventKind::Custom,
        source: None,
        timestamp: None,
    };
    c.send(&ClientFrame::Event {
        id: Some(id.to_owned()),
        event: EventPayload(Cow::Borrowed(raw)),
        head,
    })
    .await;
}

/// Waits for the outcome of the frame with this id (sent last): `Ok(())` (ack) or the error
/// code. A frame refused as it is decoded is answered without its id.
async fn outcome(c: &mut Client, want: &str) -> Result<(), ErrorCode> {
    loop {
        match c.recv().await {
            ServerFrame::Ack { id, .. } if id == want => return Ok(()),
            ServerFrame::Error { id, code, .. } if id.is_none() || id.as_deref() == Some(want) => {
                return Err(code)
            }
            _ => {}
        }
    }
}

async fn customer(relay: &Relay, room: &str, mask: Option<&str>) -> Client {
    let token = token_masked(room, Role::Customer, "cust", 3600, mask);
    let mut c = relay
        .connect_on_with_token(0, room, &token, Role::Customer, "cust", Codec::Json)
        .await;
    c.join(None).await;
    c
}

async fn agent(relay: &Relay, room: &str, sub: &str, codec: Codec) -> Client {
    let mut a = relay.connect_on(1, room, Role::Agent, sub, codec).await;
    a.capturing = true;
    a.join(None).await;
    a
}

async fn stored_bytes(relay: &Relay, room: &str) -> Vec<u8> {
    let request = CatchUpRequest {
        resume: None,
        events: true,
        chat_limit: 0,
    };
    let cu = relay
        .node
        .log
        .catch_up(room, request)
        .await
        .expect("catch-up");
    let mut out = Vec::new();
    for e in &cu.entries {
        if let EntryBody::Event { event, .. } = &e.body {
            out.extend_from_slice(event.get().as_bytes());
        }
    }
    out
}

/// Publishes the page and every hostile event (live, or as uploads), then a marker; returns
/// what was refused.
async fn send_all(cust: &mut Client, chunked: bool) -> Vec<&'static str> {
    let mut refused = Vec::new();
    let mut events = vec![("meta", META.to_owned()), ("page", PAGE.to_owned())];
    events.extend(hostile());
    for (i, (name, e)) in events.iter().enumerate() {
        let id = format!("h{i}");
        if chunked {
            upload(cust, &id, e).await;
        } else {
            publish(cust, e, &id).await;
        }
        match outcome(cust, &id).await {
            Ok(()) => {}
            Err(code) => {
                assert_eq!(code, ErrorCode::InvalidEvent, "{name}");
                refused.push(*name);
            }
        }
    }
    refused
}

const SECRETS_IN_PAGE: [&str; 1] = ["pw-in-snapshot"];

fn assert_clean(bytes: &[u8], policy: &str, what: &str) {
    for (secret, _) in hostile() {
        assert!(
            !contains(bytes, secret),
            "{policy}: {secret} reached {what}"
        );
    }
    for secret in SECRETS_IN_PAGE {
        assert!(
            !contains(bytes, secret),
            "{policy}: {secret} reached {what}"
        );
    }
    if policy != "passwords" {
        for secret in ["ignored-label-secret", "ignored-option-secret"] {
            assert!(
                !contains(bytes, secret),
                "{policy}: {secret} reached {what}"
            );
        }
    }
}

async fn never_in_clear(chunked: bool) {
    let relay = Relay::start().await;
    for policy in ["passwords", "inputs", "inputs+text"] {
        let room = format!("hostile-{}-{}", chunked, policy.replace('+', "-"));
        let mut live_json = agent(&relay, &room, "agent-j", Codec::Json).await;
        let mut live_mp = agent(&relay, &room, "agent-m", Codec::MsgPack).await;
        let mut cust = customer(&relay, &room, Some(policy)).await;
        let refused = send_all(&mut cust, chunked).await;
        // Routing fields that are not canonical, and repeated keys, are refused.
        for name in [
            "hx-src-5.0",
            "hx-src-5e0",
            "hx-src-0.5e1",
            "hx-src-dup",
            "hx-data-dup",
            "hx-mut-0.0",
            "hx-mut--0",
            "hx-id-dup",
            "hx-text-dup",
        ] {
            assert!(refused.contains(&name), "{policy}: {name} accepted");
        }
        // Numeric variants inside are read as JavaScript reads them, and masked.
        for name in ["hx-node-2.0", "hx-case"] {
            assert!(!refused.contains(&name), "{policy}: {name} refused");
        }
        cust.publish(&mouse_move(1), Some("end")).await;
        outcome(&mut cust, "end").await.expect("marker stored");
        for a in [&mut live_json, &mut live_mp] {
            a.recv_until(|f| matches!(f, ServerFrame::Event { event, .. } if event.json().contains("\"source\":1")))
                .await;
            assert_clean(&a.captured, policy, "a live agent");
        }
        let mut late = agent(&relay, &room, "late", Codec::Json).await;
        late.expect_silence(Duration::from_millis(100)).await;
        assert_clean(&late.captured, policy, "a late agent");
        // An agent returning with a position of another epoch is resynced.
        let mut back = relay
            .connect_on(0, &room, Role::Agent, "back", Codec::MsgPack)
            .await;
        back.capturing = true;
        let stale = Position {
            epoch: "gone".into(),
            offset: 1,
        };
        assert_eq!(back.join(Some(stale)).await.mode(), JoinMode::Resync);
        assert_clean(&back.captured, policy, "a resynced agent");
        assert_clean(&stored_bytes(&relay, &room).await, policy, "the store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_never_reach_agents_in_clear_live() {
    never_in_clear(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_never_reach_agents_in_clear_uploaded() {
    never_in_clear(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_is_inputs() {
    let relay = Relay::start().await;
    let room = "default-policy";
    let mut a = agent(&relay, room, "agent", Codec::Json).await;
    let mut cust = customer(&relay, room, None).await;
    for (i, e) in [META, PAGE].iter().enumerate() {
        cust.publish(e, Some(&format!("p{i}"))).await;
    }
    let typed = r#"{"type":3,"data":{"source":5,"id":11,"text":"4111 1111 1111 1111","isChecked":false},"timestamp":4}"#;
    cust.publish(typed, Some("typed")).await;
    outcome(&mut cust, "typed").await.expect("stored");
    a.recv_until(
        |f| matches!(f, ServerFrame::Event { event, .. } if event.json().contains("\"source\":5")),
    )
    .await;
    assert!(
        !contains(&a.captured, "4111 1111"),
        "a card number reached the agent"
    );
    assert!(contains(&a.captured, "*******************"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_page_keeps_its_title_in_the_timeline() {
    let relay = Relay::start().await;
    let room = "title";
    let mut cust = customer(&relay, room, Some("passwords")).await;
    for (i, e) in [META, PAGE].iter().enumerate() {
        cust.publish(e, Some(&format!("p{i}"))).await;
        outcome(&mut cust, &format!("p{i}")).await.expect("stored");
    }
    let (_late, joined) = relay.join(room, Role::Agent, "late", Codec::Json).await;
    let ServerFrame::Joined { pages, .. } = &joined.frame else {
        panic!("{:?}", joined.frame)
    };
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].title.as_deref(), Some("Sign in"), "{pages:?}");
    // The page was masked (and so rewritten with sorted keys).
    let stored = stored_bytes(&relay, room).await;
    assert!(!contains(&stored, "pw-in-snapshot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_events_are_refused_at_ingress() {
    let relay = Relay::start().await;
    let room = "deep";
    let mut a = agent(&relay, room, "agent", Codec::Json).await;
    for codec in Codec::ALL {
        let token = token_masked(room, Role::Customer, "cust", 3600, Some("none"));
        let mut cust = relay
            .connect_on_with_token(0, room, &token, Role::Customer, "cust", codec)
            .await;
        cust.join(None).await;
        let deep = format!(
            r#"{{"type":5,"data":{{"tag":"x","payload":{}1{}}},"timestamp":1}}"#,
            "[".repeat(6000),
            "]".repeat(6000)
        );
        publish(&mut cust, &deep, "deep").await;
        assert_eq!(
            outcome(&mut cust, "deep").await,
            Err(ErrorCode::InvalidEvent)
        );
        upload(&mut cust, "deep-up", &deep).await;
        assert_eq!(
            outcome(&mut cust, "deep-up").await,
            Err(ErrorCode::InvalidEvent)
        );
        // Real nesting passes.
        let ok = format!(
            r#"{{"type":5,"data":{{"tag":"x","payload":{}1{}}},"timestamp":1}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        let id = format!("ok-{}", codec.label());
        cust.publish(&ok, Some(&id)).await;
        outcome(&mut cust, &id).await.expect("stored");
    }
    // The agent receives the two accepted events, nothing deeper.
    for _ in 0..2 {
        a.recv_until(|f| matches!(f, ServerFrame::Event { .. }))
            .await;
    }
    assert!(!contains(&a.captured, &"[".repeat(600)));
}

fn temp_archive(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "assist-relay-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The recording and the exported replay page of a masked session hold no typed value, and the
/// page shows the chat even when the replay fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_and_exports_are_masked_and_show_the_chat_if_the_replay_fails() {
    let dir = temp_archive("mask-export");
    let relay = Relay::start_with(|c| {
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let room = "hostile-export";
    let mut a = agent(&relay, room, "agent", Codec::Json).await;
    let mut cust = customer(&relay, room, Some("passwords")).await;
    let refused = send_all(&mut cust, false).await;
    assert!(refused.contains(&"hx-src-5.0"));
    cust.chat("c1", "hello from the customer").await;
    outcome(&mut cust, "c1").await.expect("chat stored");
    a.send(&ClientFrame::End).await;
    let archive = FsArchive::new(&dir);
    let mut recording = None;
    for _ in 0..200 {
        if let Ok(r) = read_recording(&archive, room, None) {
            recording = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, events, chat) = recording.expect("a recording");
    assert_clean(&events, "passwords", "the recording");
    assert_eq!(chat.len(), 1);

    let out = dir.join("export");
    let page = assist_relay::export::export(&dir, room, None, &out, None).expect("export");
    let data = std::fs::read(out.join("recording.js")).expect("recording.js");
    assert_clean(&data, "passwords", "the export");
    let html = std::fs::read_to_string(&page).expect("page");
    // The events are a JSON string parsed in a try block after the chat is shown: a recording
    // whose events a browser cannot build (too deep for its script parser) or replay still
    // shows its chat.
    let data = String::from_utf8(data).expect("utf-8");
    assert!(
        data.contains("\"events_json\": \"["),
        "{}",
        &data[..200.min(data.len())]
    );
    let chat_at = html.find("rec.chat.map").expect("chat rendering");
    let try_at = html.find("try {").expect("a try block");
    assert!(
        chat_at < try_at,
        "the chat is rendered before the replay is attempted"
    );
    assert!(html.contains("JSON.parse(rec.events_json)"));
    assert!(html.contains("id=\"replay-failed\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A page whose recorder uses its own class names: `private` for blocked elements, `no-record`
/// for ignored ones (rrweb's `blockClass` / `ignoreClass`), told to the node with
/// `--mask-block-class` and `--mask-ignore-class`.
const OWN_CLASSES_PAGE: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{},"childNodes":[{"type":2,"tagName":"div","attributes":{"class":"card private"},"childNodes":[{"type":3,"textContent":"secret-in-private","id":6}],"id":5},{"type":2,"tagName":"input","attributes":{"type":"button","class":"no-record","value":"secret-button-label"},"childNodes":[],"id":7},{"type":2,"tagName":"input","attributes":{"type":"button","value":"Visible label"},"childNodes":[],"id":8}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":2}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_own_block_and_ignore_classes_are_honoured() {
    let relay = Relay::start_with(|c| {
        c.mask_classes = std::sync::Arc::new(assist_relay::mask::MaskClasses {
            block: vec!["private".into()],
            mask: vec![],
            ignore: vec!["no-record".into()],
        });
    })
    .await;
    let room = "own-classes";
    let mut a = agent(&relay, room, "agent", Codec::Json).await;
    let mut cust = customer(&relay, room, None).await;
    for (i, e) in [META, OWN_CLASSES_PAGE].iter().enumerate() {
        cust.publish(e, Some(&format!("p{i}"))).await;
        outcome(&mut cust, &format!("p{i}")).await.expect("stored");
    }
    a.recv_until(
        |f| matches!(f, ServerFrame::Event { event, .. } if event.json().contains("\"type\":2")),
    )
    .await;
    let (_late, _) = relay.join(room, Role::Agent, "late", Codec::Json).await;
    for (what, bytes) in [
        ("the live agent", a.captured.clone()),
        ("the store", stored_bytes(&relay, room).await),
    ] {
        assert!(
            !contains(&bytes, "secret-in-private"),
            "{what}: a child of a `private` element"
        );
        assert!(
            !contains(&bytes, "secret-button-label"),
            "{what}: the value of a `no-record` button"
        );
        // A button's label is not an input value: it stays unless its element is ignored.
        assert!(contains(&bytes, "Visible label"), "{what}");
    }
}
