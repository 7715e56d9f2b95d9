//! A node under pressure: stalled and slow viewers, floods, full rooms, and garbage on a live
//! connection. In every case the rest of the room carries on.

mod common;

use std::time::Duration;

use assist_relay_proto::{Codec, ErrorCode, JoinMode, Position, Role, ServerFrame};
use common::*;
use tokio_tungstenite::tungstenite::Message;

/// A mutation of about `size` bytes.
fn big_mutation(n: u64, size: usize) -> String {
    let pad = "x".repeat(size);
    format!(
        r#"{{"type":3,"data":{{"source":0,"texts":[{{"id":7,"value":"{pad}"}}],"attributes":[],"removes":[],"adds":[]}},"timestamp":{n}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_is_closed_as_slow_and_slows_no_one_else() {
    let relay = Relay::start_with(|c| {
        c.write_timeout = Duration::from_millis(500);
        c.max_bytes_per_sec = 64 * 1024 * 1024;
        c.max_msgs_per_sec = 10_000;
    })
    .await;
    let (mut customer, _) = relay
        .join("stall", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut watcher, _) = relay
        .join("stall", Role::Agent, "watcher", Codec::Json)
        .await;
    // Joins, then never reads again: its socket buffers fill and the relay's writes stall.
    let (mut stalled, _) = relay
        .join("stall", Role::Agent, "stalled", Codec::Json)
        .await;

    const N: u64 = 600;
    // The other viewer reads as it should, concurrently, and gets everything in order.
    let watching = tokio::spawn(async move {
        let mut next = 1;
        while next <= N {
            if let ServerFrame::Event { offset, .. } = watcher.recv().await {
                assert_eq!(offset, next);
                next += 1;
            }
        }
    });
    for i in 0..N {
        customer.publish(&big_mutation(i, 32 * 1024), None).await;
    }
    customer.chat("done", "all sent").await;
    // The customer is never held back: its chat is acknowledged after all its events.
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "done"))
        .await;
    watching
        .await
        .expect("the watcher got every event in order");
    // The stalled viewer was cut off with 4001 (slow): reconnect and resume.
    let mut closed_slow = false;
    for _ in 0..100 {
        if relay
            .metric("relay_closes_total{reason=\"slow\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
        {
            closed_slow = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed_slow, "the stalled viewer is closed as slow");
    // Its close frame (4001) reaches it only if it fits behind the data it never read; otherwise
    // the TCP connection is simply dropped. Either way the connection ends.
    let end = stalled.closed().await;
    assert!(
        matches!(&end, Closed::NoFrame) || end == Closed::Frame(4001, "slow".into()),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_falls_behind_the_room_buffer_is_recovered_not_buffered() {
    let relay = Relay::start_with(|c| {
        c.log.room_buffer = 8;
        c.max_msgs_per_sec = 100_000;
    })
    .await;
    let (mut customer, _) = relay.join("lag", Role::Customer, "cust", Codec::Json).await;
    let (mut slow, _) = relay.join("lag", Role::Agent, "slow", Codec::Json).await;
    const N: u64 = 3000;
    let publisher = tokio::spawn(async move {
        for i in 0..N {
            customer
                .publish(
                    &synthetic(
                        if i % 1000 == 0 {
                            4
                        } else if i % 1000 == 1 {
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
        customer.chat("end", "end").await;
        customer
    });
    // Read slowly; whatever happens, the viewer ends at the room's head, having been resumed or
    // visibly resynced, never silently skipped.
    let mut resyncs = 0;
    let mut last_event = 0;
    let mut ended = false;
    loop {
        match slow.recv().await {
            ServerFrame::Resync { .. } => {
                resyncs += 1;
                let (entries, _) = slow.read_catch_up().await;
                for f in &entries {
                    match f {
                        ServerFrame::Event { offset, .. } => last_event = *offset,
                        ServerFrame::Chat { id, .. } if id == "end" => ended = true,
                        _ => {}
                    }
                }
                if ended {
                    break;
                }
            }
            ServerFrame::Event { offset, .. } => {
                last_event = offset;
                if offset % 200 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            ServerFrame::Chat { id, .. } if id == "end" => break,
            _ => {}
        }
    }
    assert_eq!(last_event, N, "the viewer reached the last event");
    let overflows = relay
        .metric("relay_queue_overflows_total{bound=\"messages\"}")
        .await
        .unwrap_or(0.0);
    eprintln!("overflows: {overflows}, resyncs seen by the viewer: {resyncs}");
    publisher.await.expect("publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_slightly_over_its_rate_is_slowed_down_not_refused() {
    let relay = Relay::start_with(|c| {
        c.max_msgs_per_sec = 50; // bursts of 100
        c.max_rate_delay = Duration::from_secs(5);
    })
    .await;
    let (mut agent, _) = relay.join("pace", Role::Agent, "agent", Codec::Json).await;
    for i in 0..150 {
        agent.chat(&format!("m{i}"), "hi").await;
    }
    let mut acked = 0;
    while acked < 150 {
        match agent.recv().await {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { code, .. } => panic!("refused: {code}"),
            _ => {}
        }
    }
    assert!(
        relay
            .metric("relay_rate_limited_total{outcome=\"delayed\"}")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(
        relay
            .metric("relay_rate_limited_total{outcome=\"refused\"}")
            .await
            .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_participant_is_refused_then_closed_and_the_room_carries_on() {
    let relay = Relay::start_with(|c| {
        c.max_msgs_per_sec = 20;
        c.max_rate_delay = Duration::from_millis(200);
        c.max_violations = 5;
    })
    .await;
    let (mut customer, _) = relay
        .join("flood", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut flooder, _) = relay
        .join("flood", Role::Agent, "flooder", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("flood", Role::Agent, "agent", Codec::Json).await;
    for i in 0..400 {
        if flooder
            .ws_send(Message::Text(
                format!(r#"{{"type":"chat","id":"f{i}","text":"spam"}}"#).into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut refused = 0;
    let closed = loop {
        match tokio::time::timeout(RECV_TIMEOUT, flooder.next_raw())
            .await
            .expect("flooder hears back")
        {
            Some(ServerFrame::Error {
                code: ErrorCode::RateLimited,
                id,
                ..
            }) => {
                assert!(id.is_some(), "the refused frame's id is echoed");
                refused += 1;
            }
            Some(_) => {}
            None => break flooder.close_frame.clone(),
        }
    };
    assert!(refused >= 1);
    assert_eq!(closed, Some((4501, "policy_violation".into())));
    // Everyone else is unaffected.
    customer.publish(&synthetic(4, 1), None).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { .. }))
        .await;
    customer.chat("ok", "still fine").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "ok"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_a_new_participant_but_not_another_tab_of_a_member() {
    let relay = Relay::start_with(|c| c.max_room_members = 2).await;
    let (_customer, _) = relay
        .join("full", Role::Customer, "cust", Codec::Json)
        .await;
    let (_agent, _) = relay.join("full", Role::Agent, "agent", Codec::Json).await;
    let mut third = relay
        .connect("full", Role::Agent, "third", Codec::Json)
        .await;
    third
        .send(&assist_relay_proto::ClientFrame::Join { resume: None })
        .await;
    assert_eq!(
        third.closed().await,
        Closed::Frame(4503, "room_full".into())
    );
    let (_tab2, j) = relay.join("full", Role::Agent, "agent", Codec::Json).await;
    assert_eq!(j.members().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resyncing_viewer_gets_only_the_latest_pointer_position() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("coalesce", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("coalesce", Role::Agent, "agent", Codec::Json)
        .await;
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;
    let pos = agent.position();
    agent.drop_abruptly();
    // A new keyframe, then pointer moves interleaved with a mutation.
    customer.publish(&synthetic(4, 2), None).await; // 3
    customer.publish(&synthetic(2, 3), None).await; // 4
    for i in 0..20 {
        customer.publish(&mouse_move(100 + i), None).await; // 5..=24
    }
    customer.publish(&synthetic(3, 200), None).await; // 25
    for i in 0..5 {
        customer.publish(&mouse_move(300 + i), None).await; // 26..=30
    }
    customer.chat("sync", "x").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "sync"))
        .await;
    let offsets = resync_offsets(&relay, "coalesce", pos.epoch).await;
    assert_eq!(
        offsets,
        vec![3, 4, 25, 30, 31],
        "keyframe, mutation, last pointer move, chat"
    );
}

/// An agent of `room` rejoining from offset 1 of `epoch` after the keyframe moved on: a resync;
/// the offsets of its catch-up.
async fn resync_offsets(relay: &Relay, room: &str, epoch: String) -> Vec<u64> {
    let mut agent = relay.connect(room, Role::Agent, "agent", Codec::Json).await;
    let j = agent.join(Some(Position { epoch, offset: 1 })).await;
    assert_eq!(j.mode(), JoinMode::Resync);
    j.catch_up.iter().filter_map(|f| f.offset()).collect()
}

/// A MouseMove whose positions are over the nodes `ids` (-1: no node, e.g. inside an rr-block).
fn move_over(n: u64, ids: &[i64]) -> String {
    let positions: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"x":{n},"y":2,"id":{id},"timeOffset":0}}"#))
        .collect();
    format!(
        r#"{{"type":3,"data":{{"source":1,"positions":[{}]}},"timestamp":{n}}}"#,
        positions.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_keeps_the_last_pointer_move_over_a_real_node() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("hover", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("hover", Role::Agent, "agent", Codec::Json).await;
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;
    let pos = agent.position();
    agent.drop_abruptly();
    customer.publish(&synthetic(4, 2), None).await; // 3
    customer.publish(&synthetic(2, 3), None).await; // 4
    customer.publish(&move_over(10, &[5]), None).await; // 5
    customer.publish(&move_over(11, &[6]), None).await; // 6
    customer.publish(&move_over(12, &[7, -1]), None).await; // 7: last over a node
    customer.publish(&synthetic(3, 13), None).await; // 8
    customer.publish(&move_over(14, &[-1]), None).await; // 9
    customer.publish(&move_over(15, &[-1, -1]), None).await; // 10: last position
    customer.chat("sync", "x").await; // 11
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "sync"))
        .await;
    let offsets = resync_offsets(&relay, "hover", pos.epoch).await;
    assert_eq!(
        offsets,
        vec![3, 4, 7, 8, 10, 11],
        "keyframe, the last move over a node, mutation, the last move, chat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_a_live_connection_harm_no_one_else() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let relay = Relay::start_with(|c| c.max_violations = 1000).await;
    let (mut customer, _) = relay
        .join("fuzz", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("fuzz", Role::Agent, "agent", Codec::MsgPack)
        .await;
    let mut json_garbage = relay.join("fuzz", Role::Agent, "g1", Codec::Json).await.0;
    let mut mp_garbage = relay
        .join("fuzz", Role::Customer, "g2", Codec::MsgPack)
        .await
        .0;

    // Draw the cases up front, then send them from this async test.
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<bool>(),
    );
    let mut cases = Vec::new();
    for _ in 0..64 {
        cases.push(strategy.new_tree(&mut runner).expect("strategy").current());
    }
    for (bytes, binary) in cases {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let m1 = if binary {
            Message::Binary(bytes.clone().into())
        } else {
            Message::Text(text.clone().into())
        };
        let m2 = if binary {
            Message::Binary(bytes.into())
        } else {
            Message::Text(text.into())
        };
        let _ = json_garbage.ws_send(m1).await;
        let _ = mp_garbage.ws_send(m2).await;
    }
    // The room still works, both ways, for everyone else.
    for i in 0..10 {
        customer
            .publish(&synthetic(3, i), Some(&format!("e{i}")))
            .await;
    }
    let mut got = 0;
    while got < 10 {
        if let ServerFrame::Event { .. } = agent.recv().await {
            got += 1;
        }
    }
    agent.chat("still", "here").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { id, .. } if id == "still"))
        .await;
    // The garbage senders got error frames, not silence.
    assert!(matches!(
        json_garbage
            .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
            .await,
        ServerFrame::Error { .. }
    ));
    assert!(matches!(
        mp_garbage
            .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
            .await,
        ServerFrame::Error { .. }
    ));
    assert_eq!(relay.open_connections(), 4);
}
