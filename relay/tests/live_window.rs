//! What a node's live ring holds for one room is bounded in bytes, not only in slots: one
//! customer flooding large events behind a stalled viewer cannot make a node hold
//! `--room-buffer` times the largest event (cluster mode, where the ring's entries are the
//! node's own copies; embedded, the ring shares the log's entries and the gauge stays 0). Every
//! viewer still gets every event in order.

mod common;

use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;

/// A mutation of about `size` bytes.
fn big_mutation(n: u64, size: usize) -> String {
    let pad = "x".repeat(size);
    format!(
        r#"{{"type":3,"data":{{"source":0,"texts":[{{"id":7,"value":"{pad}"}}],"attributes":[],"removes":[],"adds":[]}},"timestamp":{n}}}"#
    )
}

/// Reads until the event at offset `n`, checking that events arrive in order without a gap
/// (a recovery from the log resumes silently; a resync restarts from its catch-up).
async fn read_to(viewer: &mut Client, n: u64) {
    let mut last = 0;
    while last < n {
        match viewer.recv().await {
            ServerFrame::Event { offset, .. } => {
                assert_eq!(offset, last + 1, "events in order, none skipped");
                last = offset;
            }
            ServerFrame::Resync { .. } => {
                let (entries, _) = viewer.read_catch_up().await;
                for f in &entries {
                    if let ServerFrame::Event { offset, .. } = f {
                        last = *offset;
                    }
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_events_behind_a_stalled_viewer_keeps_the_live_ring_within_its_bytes() {
    const BOUND: u64 = 512 * 1024;
    const SIZE: usize = 80 * 1024; // over the 64 KiB a cluster node publishes inline
    const N: u64 = 200;
    let relay = Relay::start_with(|c| {
        c.max_queue_bytes = BOUND;
        c.log.room_buffer_bytes = BOUND;
        c.max_msgs_per_sec = 10_000;
        c.max_bytes_per_sec = 64 * 1024 * 1024;
        c.max_room_bytes_per_sec = 64 * 1024 * 1024;
        c.write_timeout = Duration::from_secs(60);
        c.slow_timeout = Duration::from_secs(60);
    })
    .await;
    // Everyone on the node whose metrics are read.
    relay.pin_first_node();
    let (mut customer, _) = relay
        .join("flood", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut watcher, _) = relay
        .join("flood", Role::Agent, "watcher", Codec::Json)
        .await;
    // Joins, then reads nothing until the flood is over: its socket buffers fill, its
    // connection stops reading the room's ring, and the ring's slots keep their entries.
    let (mut stalled, _) = relay
        .join("flood", Role::Agent, "stalled", Codec::Json)
        .await;
    let watching = tokio::spawn(async move {
        read_to(&mut watcher, N).await;
        watcher
    });

    let mut peak = 0.0f64;
    for i in 0..N {
        customer.publish(&big_mutation(i, SIZE), None).await;
        if i % 10 == 9 {
            let held = relay.metric("relay_redis_live_bytes").await.unwrap_or(0.0);
            peak = peak.max(held);
        }
    }
    customer.chat("done", "all sent").await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "done"))
        .await;
    let held = relay.metric("relay_redis_live_bytes").await.unwrap_or(0.0);
    peak = peak.max(held);
    eprintln!("live ring bytes: peak {peak}, bound {BOUND}");
    // The bound plus the newest entry (an event's stored size is a little over SIZE).
    assert!(
        peak <= (BOUND + 2 * SIZE as u64) as f64,
        "a node's live ring held {peak} bytes for one room, over the {BOUND} bound"
    );

    let _watcher = watching
        .await
        .expect("the watcher got every event in order");
    // The stalled viewer catches up from the log, in order.
    tokio::time::timeout(Duration::from_secs(30), read_to(&mut stalled, N))
        .await
        .expect("the stalled viewer caught up");
}
