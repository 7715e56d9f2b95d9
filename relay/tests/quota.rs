//! Quotas that keep one token from exhausting what others share: the room log's byte cap, rates
//! per participant across connections, and staging shares. Both backends
//! (`RELAY_TEST_BACKEND=redis` runs the same tests against two nodes sharing a Redis).

mod common;

use std::borrow::Cow;
use std::time::Duration;

use assist_relay_proto::{ChunkData, ClientFrame, Codec, ErrorCode, Role, ServerFrame};
use common::*;

/// Reads until the `ack` of `id` (Ok offset) or an `error` for it (Err code).
async fn outcome(c: &mut Client, id: &str) -> Result<u64, ErrorCode> {
    loop {
        match c.recv().await {
            ServerFrame::Ack { id: i, offset, .. } if i == id => return Ok(offset),
            ServerFrame::Error {
                code, id: Some(i), ..
            } if i == id => return Err(code),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_log_over_its_byte_cap_refuses_with_log_full_until_a_new_keyframe() {
    let relay = Relay::start_with(|c| c.log.max_log_bytes = 4000).await;
    let room = "capped";
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    cust.publish(&synthetic(4, 1), Some("m1")).await;
    outcome(&mut cust, "m1").await.expect("meta");
    cust.publish(&synthetic(2, 2), Some("s1")).await;
    outcome(&mut cust, "s1").await.expect("snapshot");
    // ~130-byte mutations: about 30 fit, then the log is full.
    let mut stored = 0;
    let mut refused = None;
    for n in 3..200u64 {
        let id = format!("e{n}");
        cust.publish(&synthetic(3, n), Some(&id)).await;
        match outcome(&mut cust, &id).await {
            Ok(_) => stored += 1,
            Err(code) => {
                refused = Some(code);
                break;
            }
        }
    }
    assert_eq!(refused, Some(ErrorCode::LogFull), "after {stored} events");
    assert!((20..40).contains(&stored), "{stored} events stored");
    // Chat is refused too; the connection stays open.
    cust.chat("c1", &"hello ".repeat(40)).await;
    assert_eq!(outcome(&mut cust, "c1").await, Err(ErrorCode::LogFull));
    // A new keyframe passes and trims everything before it; appends work again.
    cust.publish(&synthetic(4, 500), Some("m2")).await;
    let m2 = outcome(&mut cust, "m2").await.expect("meta passes the cap");
    cust.publish(&synthetic(2, 501), Some("s2")).await;
    outcome(&mut cust, "s2")
        .await
        .expect("snapshot passes the cap");
    cust.publish(&synthetic(3, 502), Some("e502")).await;
    let last = outcome(&mut cust, "e502").await.expect("room usable again");
    // A joiner on the other node replays from the new keyframe.
    let (_agent, joined) = relay_join(&relay, room).await;
    let offsets: Vec<u64> = joined
        .catch_up
        .iter()
        .filter_map(event_json)
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, vec![m2, m2 + 1, last]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_node_memory_budget_only_rooms_over_their_share_are_refused() {
    if cluster_mode() {
        return; // --max-memory-bytes bounds the embedded store; Redis has --max-log-bytes
    }
    let relay = Relay::start_with(|c| c.log.max_memory_bytes = 20_000).await;
    let mut hog = relay
        .connect_on(0, "hog", Role::Customer, "hog", Codec::Json)
        .await;
    hog.join(None).await;
    let mut refused = None;
    let mut stored = 0u64;
    for n in 0..400u64 {
        let id = format!("h{n}");
        hog.publish(&synthetic(3, n), Some(&id)).await;
        match outcome(&mut hog, &id).await {
            Ok(_) => stored += 1,
            Err(code) => {
                refused = Some(code);
                break;
            }
        }
    }
    assert_eq!(refused, Some(ErrorCode::LogFull), "after {stored} events");
    assert!(stored * 120 <= 20_000, "{stored} events stored");
    // Another room, under its share (half the budget now), goes on.
    let mut calm = relay
        .connect_on(0, "calm", Role::Customer, "calm", Codec::Json)
        .await;
    calm.join(None).await;
    for n in 0..20u64 {
        let id = format!("c{n}");
        calm.publish(&synthetic(3, n), Some(&id)).await;
        assert!(outcome(&mut calm, &id).await.is_ok(), "{id}");
    }
    // The hog stays refused; a new keyframe within its share passes.
    hog.publish(&synthetic(3, 999), Some("again")).await;
    assert_eq!(outcome(&mut hog, "again").await, Err(ErrorCode::LogFull));
    hog.publish(&synthetic(4, 1000), Some("m")).await;
    outcome(&mut hog, "m").await.expect("meta");
    hog.publish(&synthetic(2, 1001), Some("s")).await;
    outcome(&mut hog, "s")
        .await
        .expect("a small keyframe fits the share");
}

async fn relay_join(relay: &Relay, room: &str) -> (Client, Joined) {
    let mut a = relay
        .connect_on(1, room, Role::Agent, "agent", Codec::Json)
        .await;
    let j = a.join(None).await;
    (a, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_of_one_participant_share_its_rate_and_others_are_unaffected() {
    let relay = Relay::start_with(|c| {
        c.max_msgs_per_sec = 20;
        c.max_rate_delay = Duration::from_millis(300);
        c.max_violations = 1000;
    })
    .await;
    // Two connections of the same customer token: on one node (embedded: the node's shared
    // limiter) or on two nodes (cluster: the append script's rate across nodes).
    let mut a = relay
        .connect_on(0, "flood", Role::Customer, "cust", Codec::Json)
        .await;
    a.join(None).await;
    let mut b = relay
        .connect_on(1, "flood", Role::Customer, "cust", Codec::Json)
        .await;
    b.join(None).await;
    // Each connection alone stays within its own rate (20/s, bursts of 40): 30 frames each over
    // two seconds. Together they are 60/s against the participant's 20/s.
    let mut limited = 0;
    for n in 0..60u64 {
        for (c, tag) in [(&mut a, "a"), (&mut b, "b")] {
            let id = format!("{tag}{n}");
            c.publish(&synthetic(3, n), Some(&id)).await;
            if outcome(c, &id).await == Err(ErrorCode::RateLimited) {
                limited += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    assert!(limited > 0, "no rate_limited across the two connections");
    // Another participant of another room is unaffected.
    let mut other = relay
        .connect_on(0, "calm", Role::Customer, "other", Codec::Json)
        .await;
    other.join(None).await;
    for n in 0..20u64 {
        let id = format!("o{n}");
        other.publish(&synthetic(3, n), Some(&id)).await;
        assert!(outcome(&mut other, &id).await.is_ok(), "{id}");
    }
    // Reconnecting does not reset the participant's rate.
    drop(a);
    drop(b);
    let mut c = relay
        .connect_on(0, "flood", Role::Customer, "cust", Codec::Json)
        .await;
    c.join(None).await;
    let mut limited = 0;
    for n in 100..160u64 {
        let id = format!("c{n}");
        c.publish(&synthetic(3, n), Some(&id)).await;
        if outcome(&mut c, &id).await == Err(ErrorCode::RateLimited) {
            limited += 1;
        }
    }
    assert!(limited > 0, "a fresh connection got a fresh budget");
}

fn slice<'a>(id: &str, index: u32, count: u32, data: &'a str) -> ClientFrame<'a> {
    ClientFrame::Chunk {
        id: id.into(),
        index,
        count,
        size: u64::from(count) * data.len() as u64,
        digest: format!("sha256:{}", "0".repeat(64)),
        data: ChunkData::Text(Cow::Borrowed(data)),
    }
}

/// Stages slice 0 of a 2-slice upload; Ok(()) on `chunk_ack`, Err(code) on an error.
async fn stage(c: &mut Client, id: &str, data: &str) -> Result<(), ErrorCode> {
    c.send(&slice(id, 0, 2, data)).await;
    loop {
        match c.recv().await {
            ServerFrame::ChunkAck { id: i, .. } if i == id => return Ok(()),
            ServerFrame::Error {
                code, id: Some(i), ..
            } if i == id => return Err(code),
            f => eprintln!("{f:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_fills_only_its_staging_share_and_leaving_releases_it() {
    // 64 KiB of staging: a participant may stage 8 KiB (an eighth), a room 16 KiB.
    let relay = Relay::start_with(|c| {
        c.log.max_staged_bytes = 64 * 1024;
        c.max_upload_bytes = 6000;
        c.upload_orphan_ttl = Duration::ZERO;
        c.max_violations = 1000;
    })
    .await;
    let data = "x".repeat(3000);
    let mut hog = relay
        .connect_on(0, "hog", Role::Customer, "hog", Codec::Json)
        .await;
    hog.join(None).await;
    stage(&mut hog, "u1", &data).await.expect("first");
    stage(&mut hog, "u2", &data).await.expect("second");
    assert_eq!(
        stage(&mut hog, "u3", &data).await,
        Err(ErrorCode::UploadLimit),
        "9000 bytes are over the participant's 8192"
    );
    // Another participant of another room (on the other node in cluster mode) can upload.
    let mut other = relay
        .connect_on(1, "other", Role::Customer, "other", Codec::Json)
        .await;
    other.join(None).await;
    stage(&mut other, "v1", &data).await.expect("another room");
    // The hog leaves: its staging is released at once and it can stage again on return. (Had it
    // reconnected before its old connection was gone, its uploads would have been kept.)
    drop(hog);
    relay.await_open_connections(1).await;
    let mut back = relay
        .connect_on(0, "hog", Role::Customer, "hog", Codec::Json)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    back.join(None).await;
    // Until the old 6000 bytes are released, 3000 more do not fit the 8192 share.
    let mut n = 0;
    while stage(&mut back, &format!("w{n}"), &data).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "staging not released"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stage(&mut back, "final", &data)
        .await
        .expect("the old uploads no longer count");
}
