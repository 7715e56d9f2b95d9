//! Rooms, keyframe catch-up, live fan-out, resume and resync, with real clients over loopback.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use assist_relay_proto::{Codec, JoinMode, Position, ResyncReason, Role, ServerFrame};
use common::*;

/// Reads frames until `n` events have arrived; returns (offset, raw JSON) of each.
async fn collect_events(c: &mut Client, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        if let Some(e) = event_json(&c.recv().await) {
            out.push(e);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_streams_identically_to_early_and_halfway_agents() {
    let relay = Relay::start().await;
    let events = fixture_events("demoit.json");
    let half = events.len() / 2;
    let (mut customer, _) = relay
        .join("demo", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut early, j) = relay.join("demo", Role::Agent, "early", Codec::Json).await;
    assert_eq!(j.mode(), JoinMode::Fresh);
    assert!(j.catch_up.is_empty());

    for e in &events[..half] {
        customer.publish(e, None).await;
    }
    let mut early_seen = collect_events(&mut early, half).await;

    let (mut late, j) = relay.join("demo", Role::Agent, "late", Codec::Json).await;
    let mut late_seen: Vec<(u64, String)> = j.catch_up.iter().filter_map(event_json).collect();
    assert!(
        !late_seen.is_empty(),
        "the late agent gets the keyframe and tail"
    );
    assert!(
        late_seen[0].1.starts_with(r#"{"type":4"#),
        "catch-up starts with the keyframe's Meta"
    );

    for e in &events[half..] {
        customer.publish(e, None).await;
    }
    early_seen.extend(collect_events(&mut early, events.len() - half).await);
    let missing = events.len() - late_seen.len();
    late_seen.extend(collect_events(&mut late, missing).await);

    // Byte for byte: what the customer sent, what each agent received.
    let sent: Vec<&str> = events.iter().map(String::as_str).collect();
    let early_raw: Vec<&str> = early_seen.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(early_raw, sent);
    let keyframe_at = early_seen
        .iter()
        .position(|(o, _)| *o == late_seen[0].0)
        .expect("keyframe offset");
    assert_eq!(late_seen, early_seen[keyframe_at..].to_vec());
    customer.expect_no_entries(Duration::from_millis(200)).await;
}
