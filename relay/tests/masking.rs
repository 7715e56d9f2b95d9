//! Server-side masking: what agents receive and what the room log stores never holds a masked
//! value, whichever node the customer publishes through.

mod common;

use assist_relay::store::{CatchUpRequest, EntryBody};
use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;

/// The values typed into `loan-apply.json` (see the fixture's README).
const TYPED: [&str; 6] = [
    "张三丰",
    "13800138000",
    "110101199003077777",
    "6222020200112233445",
    "50000",
    "246810",
];

/// Whether `masked` equals `original` except for strings replaced by as many `*` (whitespace
/// kept). Counts the masked strings.
fn same_but_masked(original: &Value, masked: &Value, count: &mut usize) -> bool {
    match (original, masked) {
        (Value::String(a), Value::String(b)) if a != b => {
            let ok = a.chars().count() == b.chars().count()
                && b.chars().all(|c| c == '*' || c.is_whitespace());
            *count += 1;
            ok
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_but_masked(x, y, count))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_but_masked(v, w, count)))
        }
        (a, b) => a == b,
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Publishes events with ids and waits for the last ack; returns the offsets.
async fn publish_all(cust: &mut Client, events: &[String]) -> Vec<u64> {
    for (i, e) in events.iter().enumerate() {
        cust.publish(e, Some(&format!("e{i}"))).await;
    }
    let mut offsets = vec![0; events.len()];
    let mut acked = 0;
    while acked < events.len() {
        match cust.recv().await {
            ServerFrame::Ack { id, offset, .. } => {
                let i: usize = id[1..].parse().expect("own id");
                offsets[i] = offset;
                acked += 1;
            }
            ServerFrame::Error { code, message, id } => panic!("{code} {id:?}: {message}"),
            _ => {}
        }
    }
    offsets
}

async fn collect_until(agent: &mut Client, last: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        if let Some((o, json)) = event_json(&agent.recv().await) {
            out.push((o, json));
            if o >= last {
                return out;
            }
        }
    }
}

async fn customer(relay: &Relay, node: usize, room: &str, mask: Option<&str>) -> Client {
    let token = token_masked(room, Role::Customer, "cust", 3600, mask);
    let mut c = relay
        .connect_on_with_token(node, room, &token, Role::Customer, "cust", Codec::Json)
        .await;
    c.join(None).await;
    c
}

async fn capturing_agent(
    relay: &Relay,
    node: usize,
    room: &str,
    sub: &str,
    codec: Codec,
) -> Client {
    let mut a = relay.connect_on(node, room, Role::Agent, sub, codec).await;
    a.capturing = true;
    a.join(None).await;
    a
}

/// Every stored byte of the room the store still holds: the keyframe and tail as a fresh agent
/// would get them.
async fn stored_bytes(relay: &Relay, room: &str) -> Vec<u8> {
    let cu = relay
        .node
        .log
        .catch_up(
            room,
            CatchUpRequest {
                resume: None,
                events: true,
                chat_limit: 1000,
            },
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_inputs_masks_every_typed_value_and_changes_nothing_else() {
    let relay = Relay::start().await;
    let room = "loan";
    let events = fixture_events("loan-apply.json");
    let mut agent = capturing_agent(&relay, 1, room, "agent-json", Codec::Json).await;
    let mut agent_mp = capturing_agent(&relay, 1, room, "agent-mp", Codec::MsgPack).await;
    // The customer publishes the first part through one node and, after a reconnect, the rest
    // through the other: the masking state (and the typed values, for echoes) follow the room.
    let mut cust = customer(&relay, 0, room, Some("inputs")).await;
    let split = 300; // after every typed value, before the confirmation page echoes the name
    let mut offsets = publish_all(&mut cust, &events[..split]).await;
    cust.drop_abruptly();
    let mut cust = customer(&relay, 1, room, Some("inputs")).await;
    let rest: Vec<String> = events[split..].to_vec();
    for (i, e) in rest.iter().enumerate() {
        cust.publish(e, Some(&format!("e{}", split + i))).await;
    }
    let mut acked = 0;
    offsets.resize(events.len(), 0);
    while acked < rest.len() {
        match cust.recv().await {
            ServerFrame::Ack { id, offset, .. } => {
                offsets[id[1..].parse::<usize>().expect("id")] = offset;
                acked += 1;
            }
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
    let last = *offsets.iter().max().expect("offsets");
    // Every Input event with a value must come out masked.
    let inputs = events
        .iter()
        .filter(|e| {
            let v: Value = serde_json::from_str(e).expect("fixture");
            // (The recorder already masked the password input's events as `*`.)
            v["data"]["source"] == 5
                && v["data"]["text"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty() && !t.chars().all(|c| c == '*'))
        })
        .count();

    for a in [&mut agent, &mut agent_mp] {
        let got = collect_until(a, last).await;
        assert_eq!(got.len(), events.len(), "{}: every event arrives", a.me.id);
        let mut masked = 0;
        for ((offset, json), original) in got.iter().zip(&events) {
            let o: Value = serde_json::from_str(original).expect("fixture");
            let m: Value = serde_json::from_str(json).expect("relayed");
            assert!(
                same_but_masked(&o, &m, &mut masked),
                "{}: event at {offset} differs beyond masking:\n{original}\n{json}",
                a.me.id
            );
        }
        assert!(
            masked >= inputs,
            "{}: {masked} strings masked, {inputs} inputs",
            a.me.id
        );
        for t in TYPED {
            assert!(
                !contains(&a.captured, t),
                "{}: {t} reached the agent",
                a.me.id
            );
        }
    }
    let stored = stored_bytes(&relay, room).await;
    assert!(!stored.is_empty());
    for t in TYPED {
        assert!(!contains(&stored, t), "{t} is in the stored log");
    }
    // A late agent (keyframe and tail from the store) sees no typed value either.
    let mut late = capturing_agent(&relay, 0, room, "late", Codec::Json).await;
    late.expect_no_entries(std::time::Duration::from_millis(100))
        .await;
    for t in TYPED {
        assert!(!contains(&late.captured, t), "late agent got {t}");
    }
    let masked_events = relay
        .metric("relay_masked_events_total{policy=\"inputs\"}")
        .await
        .unwrap_or(0.0);
    assert!(masked_events >= inputs as f64, "{masked_events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_passwords_masks_passwords_only_and_none_passes_bytes_through() {
    let relay = Relay::start().await;
    let events = fixture_events("loan-apply.json");
    for (room, mask) in [
        ("loan-passwords", Some("passwords")),
        ("loan-none", Some("none")),
    ] {
        let mut agent = capturing_agent(&relay, 1, room, "agent", Codec::Json).await;
        let mut cust = customer(&relay, 0, room, mask).await;
        let offsets = publish_all(&mut cust, &events).await;
        let got = collect_until(&mut agent, *offsets.last().expect("last")).await;
        assert_eq!(got.len(), events.len());
        let identical = got
            .iter()
            .zip(&events)
            .filter(|((_, j), e)| j == *e)
            .count();
        // The recorder already masked the password; values typed into other inputs stay.
        assert!(contains(&agent.captured, "13800138000"), "{room}");
        assert!(!contains(&agent.captured, "S3cret-pass!"), "{room}");
        if mask == Some("passwords") {
            // Only events touching the password input are rewritten.
            assert!(
                identical >= events.len() - 20,
                "{room}: {identical} identical"
            );
        } else {
            assert_eq!(
                identical,
                events.len(),
                "{room}: policy none is a pass-through"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_mask_text_and_rr_block_subtrees_never_leave_the_relay() {
    let relay = Relay::start().await;
    let room = "marked";
    let mut agent = capturing_agent(&relay, 1, room, "agent", Codec::Json).await;
    let mut cust = customer(&relay, 0, room, Some("inputs+text")).await;
    let events = vec![
        r#"{"type":4,"data":{"href":"https://bank.example/","width":390,"height":844},"timestamp":1}"#.to_owned(),
        r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{},"childNodes":[
            {"type":2,"tagName":"p","attributes":{"class":"note rr-mask"},"childNodes":[{"type":3,"textContent":"account 4242 owner Alice","id":5}],"id":4},
            {"type":2,"tagName":"div","attributes":{"class":"rr-block","style":"height:80px"},"childNodes":[{"type":3,"textContent":"blocked statement","id":7},{"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"hidden balance","id":9}],"id":8}],"id":6},
            {"type":2,"tagName":"input","attributes":{"type":"text","value":"prefilled secret"},"childNodes":[],"id":10},
            {"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public text","id":12}],"id":11}
        ],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":2}"#.replace(['\n', ' '], "").replace("noterr-mask", "note rr-mask").replace("account4242ownerAlice", "account 4242 owner Alice").replace("blockedstatement", "blocked statement").replace("hiddenbalance", "hidden balance").replace("prefilledsecret", "prefilled secret").replace("publictext", "public text"),
        // Text changes inside the masked subtree and inside the blocked one; an add under each.
        r#"{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"account 9999 owner Bob"},{"id":9,"value":"balance 1000000"},{"id":12,"value":"public update"}],"attributes":[],"removes":[],"adds":[{"parentId":4,"nextId":null,"node":{"type":3,"textContent":"second secret line","id":20}},{"parentId":6,"nextId":null,"node":{"type":2,"tagName":"b","attributes":{},"childNodes":[{"type":3,"textContent":"blocked addition","id":22}],"id":21}}]},"timestamp":3}"#.to_owned(),
        r#"{"type":3,"data":{"source":5,"text":"typed secret","isChecked":false,"id":10},"timestamp":4}"#.to_owned(),
    ];
    let offsets = publish_all(&mut cust, &events).await;
    let got = collect_until(&mut agent, *offsets.last().expect("last")).await;
    assert_eq!(got.len(), events.len());
    let all: String = got.iter().map(|(_, j)| j.as_str()).collect();
    for secret in [
        "account 4242 owner Alice",
        "account 9999 owner Bob",
        "second secret line",
        "blocked statement",
        "hidden balance",
        "balance 1000000",
        "blocked addition",
        "prefilled secret",
        "typed secret",
    ] {
        assert!(
            !contains(all.as_bytes(), secret),
            "{secret} reached the agent"
        );
    }
    assert!(all.contains("public text") && all.contains("public update"));
    assert!(
        all.contains("******* **** ***** *****"),
        "masked text keeps its shape"
    );
    assert!(
        all.contains("rr-block") && all.contains("height:80px"),
        "the blocked box stays"
    );
    let stored = stored_bytes(&relay, room).await;
    assert!(!contains(&stored, "Alice") && !contains(&stored, "hidden balance"));
}
