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

/// Publishes `n` synthetic events with a keyframe (Meta + FullSnapshot) every `every` events.
/// Event i (0-based) is stored at offset i + 1 when nothing else is appended.
fn stream_with_keyframes(n: u64, every: u64) -> Vec<String> {
    (0..n)
        .map(|i| match i % every {
            0 => synthetic(4, i),
            1 => synthetic(2, i),
            _ => synthetic(3, i),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_joining_while_the_customer_publishes_get_no_gap_and_no_duplicate() {
    let relay = Relay::start().await;
    let events = stream_with_keyframes(3000, 400);
    let total = events.len() as u64;
    let (mut customer, _) = relay
        .join("race", Role::Customer, "cust", Codec::Json)
        .await;

    let mut agents = Vec::new();
    for a in 0..12u64 {
        let c = relay
            .connect(
                "race",
                Role::Agent,
                &format!("agent{a}"),
                if a % 2 == 0 {
                    Codec::Json
                } else {
                    Codec::MsgPack
                },
            )
            .await;
        agents.push(c);
    }
    let sent = events.clone();
    // Agents join at staggered moments while the customer publishes.
    let mut handles = Vec::new();
    for (a, mut agent) in agents.into_iter().enumerate() {
        let sent = sent.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(a as u64 * 7)).await;
            let j = agent.join(None).await;
            // Segments of the stream the agent replays; a marked resync starts a new one.
            let mut segments: Vec<Vec<(u64, String)>> =
                vec![j.catch_up.iter().filter_map(event_json).collect()];
            while segments
                .last()
                .and_then(|s| s.last())
                .is_none_or(|(o, _)| *o < total)
            {
                match agent.recv().await {
                    ServerFrame::Resync { reason, .. } => {
                        assert_eq!(reason, ResyncReason::Lagged);
                        let (entries, _) = agent.read_catch_up().await;
                        segments.push(entries.iter().filter_map(event_json).collect());
                    }
                    f => segments.last_mut().expect("segment").extend(event_json(&f)),
                }
            }
            // Within each segment: it starts at a keyframe (or the room's start), then every
            // offset once, in order, with the bytes the customer sent at that offset.
            for seen in segments.iter().filter(|s| !s.is_empty()) {
                let first = seen[0].0;
                assert!(
                    first == 1 || sent[(first - 1) as usize].starts_with(r#"{"type":4"#),
                    "agent{a} starts a segment at offset {first}, which is not a keyframe"
                );
                for (i, (offset, raw)) in seen.iter().enumerate() {
                    assert_eq!(*offset, first + i as u64, "agent{a}: gap or duplicate");
                    assert_eq!(
                        raw,
                        &sent[(*offset - 1) as usize],
                        "agent{a}: wrong bytes at {offset}"
                    );
                }
            }
            segments.len() - 1
        }));
    }
    for e in &events {
        customer.publish(e, None).await;
    }
    let mut resyncs = 0;
    for h in handles {
        resyncs += h.await.expect("agent task");
    }
    eprintln!("lagging agents were resynced {resyncs} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_agent_resumes_with_exactly_what_it_missed() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("resume", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("resume", Role::Agent, "agent", Codec::MsgPack)
        .await;
    for i in 0..20 {
        customer
            .publish(
                &synthetic(
                    if i == 0 {
                        4
                    } else if i == 1 {
                        2
                    } else {
                        3
                    },
                    i,
                ),
                None,
            )
            .await;
    }
    let before = collect_events(&mut agent, 20).await;
    let pos = agent.position();
    assert_eq!(pos.offset, 20);
    agent.drop_abruptly();

    for i in 20..50 {
        customer.publish(&synthetic(3, i), None).await;
    }
    customer.chat("c1", "still there?").await;
    // Frames are handled in order: the chat's ack means every event before it is stored.
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "c1"))
        .await;
    let mut agent = relay
        .connect("resume", Role::Agent, "agent", Codec::MsgPack)
        .await;
    let j = agent.join(Some(pos)).await;
    assert_eq!(j.mode(), JoinMode::Resume);
    let offsets: Vec<u64> = j.catch_up.iter().filter_map(|f| f.offset()).collect();
    let expected: Vec<u64> = (21..=51).collect();
    assert_eq!(
        offsets, expected,
        "exactly the missed entries, in order, once"
    );
    assert!(
        matches!(j.catch_up.last(), Some(ServerFrame::Chat { text, .. }) if text == "still there?")
    );
    assert_eq!(before.last().map(|e| e.0), Some(20));

    // Live continues after the resume without a duplicate.
    customer.publish(&synthetic(3, 99), None).await;
    let live = collect_events(&mut agent, 1).await;
    assert_eq!(live[0].0, 52);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_customer_resumes_the_chat_it_missed_but_no_events() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("cust-resume", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("cust-resume", Role::Agent, "agent", Codec::Json)
        .await;
    agent.chat("a1", "hello").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await;
    let pos = customer.position();
    customer.drop_abruptly();
    let mut customer = relay
        .connect("cust-resume", Role::Customer, "cust", Codec::Json)
        .await;
    // Meanwhile: the customer's page (another tab of the same participant) and the agent go on.
    agent.chat("a2", "can you click Apply?").await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "a2"))
        .await;
    let j = customer.join(Some(pos)).await;
    assert_eq!(j.mode(), JoinMode::Resume);
    let texts: Vec<String> = j
        .catch_up
        .iter()
        .map(|f| match f {
            ServerFrame::Chat { text, .. } => text.clone(),
            other => panic!("customer got {other:?}"),
        })
        .collect();
    assert_eq!(texts, vec!["can you click Apply?".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_the_keyframe_moved_on_is_a_marked_resync_from_the_new_keyframe() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("trim", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("trim", Role::Agent, "agent", Codec::Json).await;
    for (i, kind) in [4u8, 2, 3, 3].into_iter().enumerate() {
        customer.publish(&synthetic(kind, i as u64), None).await;
    }
    collect_events(&mut agent, 4).await;
    let pos = agent.position();
    agent.drop_abruptly();
    // A new keyframe at offsets 7-8 makes 1-6 unnecessary; the log trims them.
    for (i, kind) in [3u8, 3, 4, 2, 3].into_iter().enumerate() {
        customer
            .publish(&synthetic(kind, 10 + i as u64), None)
            .await;
    }
    customer.chat("c", "hi").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await;
    let mut agent = relay
        .connect("trim", Role::Agent, "agent", Codec::Json)
        .await;
    let j = agent.join(Some(pos)).await;
    assert_eq!(j.mode(), JoinMode::Resync);
    assert!(matches!(
        j.frame,
        ServerFrame::Joined {
            reason: Some(ResyncReason::Trimmed),
            ..
        }
    ));
    let offsets: Vec<u64> = j.catch_up.iter().filter_map(|f| f.offset()).collect();
    assert_eq!(
        offsets,
        vec![7, 8, 9, 10],
        "keyframe (Meta, FullSnapshot), tail, chat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_room_log_gives_a_new_epoch_and_a_resync_to_live_and_returning_clients() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("epoch", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, j) = relay.join("epoch", Role::Agent, "agent", Codec::Json).await;
    let ServerFrame::Joined {
        epoch: first_epoch, ..
    } = &j.frame
    else {
        unreachable!()
    };
    let first_epoch = first_epoch.clone();
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    collect_events(&mut agent, 2).await;
    let (mut away, _) = relay.join("epoch", Role::Agent, "away", Codec::Json).await;
    collect_events(&mut away, 0).await;
    let away_pos = Position {
        epoch: first_epoch.clone(),
        offset: 2,
    };
    away.drop_abruptly();

    relay.lose_room_log("epoch").await;
    customer.publish(&synthetic(4, 2), None).await;
    customer.publish(&synthetic(2, 3), None).await;

    // The connected agent is told, then gets the new log's state.
    let f = agent
        .recv_until(|f| matches!(f, ServerFrame::Resync { .. }))
        .await;
    let ServerFrame::Resync { epoch, reason } = f else {
        unreachable!()
    };
    assert_eq!(reason, ResyncReason::EpochChanged);
    assert_ne!(epoch, first_epoch);
    let (entries, _) = agent.read_catch_up().await;
    let mut got: Vec<u64> = entries.iter().filter_map(|f| f.offset()).collect();
    while got.len() < 2 {
        got.extend(agent.recv().await.offset());
    }
    assert_eq!(got, vec![1, 2]);

    // A client returning with the old epoch is resynced, never silently resumed.
    let mut away = relay
        .connect("epoch", Role::Agent, "away", Codec::Json)
        .await;
    let j = away.join(Some(away_pos)).await;
    assert_eq!(j.mode(), JoinMode::Resync);
    assert!(matches!(
        j.frame,
        ServerFrame::Joined {
            reason: Some(ResyncReason::EpochChanged),
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_msgpack_viewers_see_the_same_events() {
    let relay = Relay::start().await;
    let events = fixture_events("chat-widget.json");
    // Policy `none`: the events pass byte for byte (the default, `inputs`, rewrites some).
    let token = token_masked("codecs", Role::Customer, "cust", 3600, Some("none"));
    let mut customer = relay
        .connect_with_token("codecs", &token, Role::Customer, "cust", Codec::MsgPack)
        .await;
    customer.join(None).await;
    let (mut json, _) = relay.join("codecs", Role::Agent, "json", Codec::Json).await;
    let (mut mp, _) = relay
        .join("codecs", Role::Agent, "mp", Codec::MsgPack)
        .await;
    for e in &events {
        customer.publish(e, None).await;
    }
    let a = collect_events(&mut json, events.len()).await;
    let b = collect_events(&mut mp, events.len()).await;
    assert_eq!(a, b);
    let raw: Vec<&str> = a.iter().map(|(_, e)| e.as_str()).collect();
    let sent: Vec<&str> = events.iter().map(String::as_str).collect();
    assert_eq!(raw, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_never_receive_rrweb_events() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("quiet", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut second_tab, _) = relay
        .join("quiet", Role::Customer, "cust", Codec::Json)
        .await;
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    customer.chat("c", "done").await;
    second_tab
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await;
    let (mut late, j) = relay
        .join("quiet", Role::Customer, "cust2", Codec::Json)
        .await;
    assert!(j
        .catch_up
        .iter()
        .all(|f| matches!(f, ServerFrame::Chat { .. })));
    late.expect_no_entries(Duration::from_millis(100)).await;
    let _ = HashSet::<u8>::new();
}

/// Entries too large to travel inline in pub/sub (cluster mode: published by reference and read
/// from the log by the room's pump) interleaved with small inline ones, sent back to back: a
/// viewer on another node gets every one, in order, byte for byte. In embedded mode the same
/// stream passes through the in-process broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_entries_interleaved_arrive_in_order() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("mixed", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("mixed", Role::Agent, "agent", Codec::Json).await;
    let events: Vec<String> = (0..60u64)
        .map(|i| {
            // Every third event is over the 64 KiB inline limit of the test cluster.
            let len = if i % 3 == 1 { 80 * 1024 } else { 16 };
            format!(
                r#"{{"type":3,"data":{{"source":0,"texts":[{{"id":7,"value":"{}"}}],"attributes":[],"removes":[],"adds":[]}},"timestamp":{i}}}"#,
                "x".repeat(len)
            )
        })
        .collect();
    for e in &events {
        customer.publish(e, None).await;
    }
    let seen = collect_events(&mut agent, events.len()).await;
    let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    let first = offsets[0];
    assert_eq!(
        offsets,
        (first..first + events.len() as u64).collect::<Vec<_>>(),
        "consecutive offsets, no gap, duplicate or reorder"
    );
    let raw: Vec<&str> = seen.iter().map(|(_, e)| e.as_str()).collect();
    let sent: Vec<&str> = events.iter().map(String::as_str).collect();
    assert!(raw == sent, "every event byte for byte, in order");
    agent.expect_no_entries(Duration::from_millis(200)).await;
}

/// A node sends the append script by its hash; after Redis forgets its scripts (a restart, a
/// `SCRIPT FLUSH`) the next append loads it again and nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_on_after_redis_forgets_its_scripts() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("flush", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("flush", Role::Agent, "ag", Codec::Json).await;
    for i in 0..3 {
        customer.publish(&mouse_move(i), None).await;
    }
    relay.flush_scripts().await;
    for i in 3..6 {
        customer.publish(&mouse_move(i), None).await;
    }
    let seen = collect_events(&mut agent, 6).await;
    let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1..=6).collect::<Vec<u64>>());
    let texts: Vec<String> = (0..6).map(mouse_move).collect();
    assert_eq!(seen.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), texts);
}
