//! Sessions end and become recordings: sealing, the final compaction, live compaction of long
//! sessions, and the recording's contents.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use assist_relay::compactor::{read_recording, FsArchive};
use assist_relay_proto::{ClientFrame, Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;

fn temp_archive(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "assist-relay-{name}-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Waits (bounded) for the room's recording to be complete.
async fn await_recording(
    dir: &std::path::Path,
    room: &str,
) -> (
    assist_relay::compactor::Manifest,
    Vec<u8>,
    Vec<assist_relay::compactor::ChatLine>,
) {
    let archive = FsArchive::new(dir);
    for _ in 0..200 {
        if let Ok(r) = read_recording(&archive, room, None) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no recording of {room} in {}", dir.display());
}

async fn customer(relay: &Relay, room: &str) -> Client {
    let token = token_masked(room, Role::Customer, "cust", 3600, Some("none"));
    let mut c = relay
        .connect_on_with_token(0, room, &token, Role::Customer, "cust", Codec::Json)
        .await;
    c.join(None).await;
    c
}

async fn acked_all(c: &mut Client, n: usize) {
    let mut acked = 0;
    while acked < n {
        match c.recv().await {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_becomes_a_complete_recording() {
    let dir = temp_archive("ended");
    let relay = Relay::start_with(|c| {
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let room = "session-1";
    let mut agent = relay
        .connect_on(1, room, Role::Agent, "agent", Codec::Json)
        .await;
    agent.join(None).await;
    let mut cust = customer(&relay, room).await;
    // chat-widget.json holds five FullSnapshots: the keyframe moves four times during the
    // session, so the recording must come from live-archived parts and the final tail.
    let events = fixture_events("chat-widget.json");
    for (i, e) in events.iter().enumerate() {
        cust.publish(e, Some(&format!("e{i}"))).await;
        if i % 50 == 0 {
            cust.chat(&format!("c{i}"), &format!("customer says {i}"))
                .await;
            agent
                .chat(&format!("a{i}"), &format!("agent says {i}"))
                .await;
        }
    }
    let chats = events.len().div_ceil(50);
    acked_all(&mut cust, events.len() + chats).await;

    // What the agent saw, in order.
    let mut seen: Vec<Value> = Vec::new();
    let mut chat_seen = 0;
    while seen.len() < events.len() || chat_seen < 2 * chats {
        match agent.recv().await {
            ServerFrame::Event { event, .. } => {
                seen.push(serde_json::from_str(event.json()).expect("json"))
            }
            ServerFrame::Chat { .. } => chat_seen += 1,
            _ => {}
        }
    }

    // The agent ends the session: everyone is closed with room_closed; the room refuses joins.
    agent.send(&ClientFrame::End).await;
    assert_eq!(
        agent.closed().await,
        Closed::Frame(4502, "room_closed".into())
    );
    assert_eq!(
        cust.closed().await,
        Closed::Frame(4502, "room_closed".into())
    );

    let (manifest, recorded, chat) = await_recording(&dir, room).await;
    let recorded: Vec<Value> = serde_json::from_slice(&recorded).expect("events array");
    assert_eq!(recorded.len(), events.len());
    assert!(
        recorded == seen,
        "the recording differs from what the agent received"
    );
    let original: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).expect("fixture"))
        .collect();
    assert!(recorded == original);
    assert_eq!(chat.len(), 2 * chats);
    assert!(chat
        .iter()
        .any(|c| c.text == "agent says 0" && c.from.role == Role::Agent));
    assert_eq!(manifest.room, room);
    assert_eq!(manifest.event_count, events.len() as u64);
    assert_eq!(manifest.chat_count, 2 * chats as u64);
    assert_eq!(manifest.events_by_type.get("2"), Some(&5));
    assert_eq!(manifest.files.len(), 2);
    assert!(manifest.duration_ms < 60_000);
    assert_eq!(manifest.format_version, 1);

    // The room is gone from the store; a new session may reuse the id with a new epoch.
    let state = relay.node.log.log_state(room).await.expect("state");
    assert!(!state.exists || !state.sealed, "{state:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_keeps_the_store_bounded_while_the_recording_stays_complete() {
    let dir = temp_archive("long");
    let relay = Relay::start_with(|c| {
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let room = "long-session";
    let mut cust = customer(&relay, room).await;
    let mut published = 0usize;
    let mut max_stored = 0usize;
    for round in 0..6u64 {
        // A keyframe, then a tail of 200 events.
        let mut batch = vec![synthetic(4, round), synthetic(2, round)];
        batch.extend((0..200).map(|n| synthetic(3, round * 1000 + n)));
        for e in &batch {
            cust.publish(e, Some(&format!("e{published}"))).await;
            published += 1;
        }
        acked_all(&mut cust, batch.len()).await;
        // Give the live compaction of this keyframe a moment, then look at the store.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let state = relay.node.log.log_state(room).await.expect("state");
        let stored = relay
            .node
            .log
            .read_log(room, 0, state.head, usize::MAX)
            .await
            .expect("read")
            .len();
        max_stored = max_stored.max(stored);
        // Everything before the previous keyframe has been archived and trimmed.
        assert!(stored <= 2 * 202, "round {round}: {stored} entries stored");
        // The live pass runs once per 10 s per connection; reconnect to trigger it every round.
        cust.drop_abruptly();
        cust = customer(&relay, room).await;
    }
    relay.node.close_room(room).await.expect("close");
    let (manifest, recorded, _) = await_recording(&dir, room).await;
    let recorded: Vec<Value> = serde_json::from_slice(&recorded).expect("events");
    assert_eq!(recorded.len(), published, "max stored {max_stored}");
    assert_eq!(manifest.event_count, published as u64);
    assert_eq!(manifest.first_offset, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_customer_is_gone_too_long_is_closed_and_recorded() {
    let dir = temp_archive("idle");
    let relay = Relay::start_with(|c| {
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
        c.customer_idle_close = Some(Duration::from_millis(800));
    })
    .await;
    let room = "idle-customer";
    let mut agent = relay
        .connect_on(1, room, Role::Agent, "agent", Codec::Json)
        .await;
    agent.join(None).await;
    let mut cust = customer(&relay, room).await;
    cust.publish(&synthetic(4, 1), Some("m")).await;
    cust.publish(&synthetic(2, 2), Some("s")).await;
    acked_all(&mut cust, 2).await;
    // A customer who stays is never timed out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cust.publish(&synthetic(3, 3), Some("still-here")).await;
    acked_all(&mut cust, 1).await;
    // Once the customer is gone, the room closes for the agent and is recorded.
    cust.drop_abruptly();
    assert_eq!(
        agent.closed().await,
        Closed::Frame(4502, "room_closed".into())
    );
    let (manifest, _, _) = await_recording(&dir, room).await;
    assert_eq!(manifest.event_count, 3);
    let _ = std::fs::remove_dir_all(&dir);
}
