//! A hung Redis (SIGSTOP: its sockets stay open and say nothing) in cluster mode: a client whose
//! append fails hears its close at once, `/readyz` turns 503 and back, and live delivery resumes
//! promptly after Redis answers again. Embedded mode has no Redis: the tests return at once.
//! Figures are printed (`--nocapture`); the bounds asserted are loose on purpose (a busy machine).

mod common;

use std::time::Duration;

use assist_relay_proto::{Codec, ErrorCode, Role, ServerFrame};
use common::*;
use tokio::time::Instant;

/// Thaws Redis when the test ends, even by a panic (the server is killed after the nodes).
struct Frozen<'a>(&'a Relay);

impl Frozen<'_> {
    fn freeze(relay: &Relay) -> Option<Frozen<'_>> {
        relay.signal_redis("-STOP").then_some(Frozen(relay))
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal_redis("-CONT");
    }
}

async fn ready(admin: std::net::SocketAddr) -> bool {
    http_get(admin, "/readyz").await.0 == 200
}

/// Polls every node's `/readyz` until all read `want`; returns how long that took.
async fn until_readiness(relay: &Relay, want: bool) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for admin in relay.admin_addrs() {
            all &= ready(admin).await == want;
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < RECV_TIMEOUT,
            "/readyz never read ready={want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_append_fails_on_a_frozen_redis_gets_its_close_at_once() {
    let relay = Relay::start().await;
    if !cluster_mode() {
        return;
    }
    let (mut customer, _) = relay
        .join("frozen", Role::Customer, "cust", Codec::Json)
        .await;
    customer.publish(&synthetic(4, 0), Some("e1")).await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "e1"))
        .await;

    let frozen = Frozen::freeze(&relay).expect("cluster mode");
    let sent = Instant::now();
    // A Meta event: no masking, so the append is the one store call (a masked event's first
    // store call is loading the mask: `a_masked_event_on_a_frozen_redis_gets_its_error_and_close`).
    customer.publish(&synthetic(4, 1), Some("e2")).await;
    let err = loop {
        match customer.next_raw().await {
            Some(f @ ServerFrame::Error { .. }) => break f,
            Some(_) => {}
            None => panic!(
                "closed after {:?} without an error: {:?}",
                sent.elapsed(),
                customer.close_frame
            ),
        }
    };
    let errored = sent.elapsed();
    assert!(
        matches!(&err, ServerFrame::Error { code: ErrorCode::Unavailable, id: Some(id), .. } if id == "e2"),
        "{err:?}"
    );
    // The close follows the error at once: presence cleanup (which waits on the frozen Redis
    // until the response timeout, 5 s) comes after the close frame.
    let after_error = Instant::now();
    let closed = customer.closed().await;
    let close_gap = after_error.elapsed();
    eprintln!("append error after {errored:?}; close {close_gap:?} after the error");
    assert_eq!(closed, Closed::Frame(4004, "unavailable".into()));
    // The append's own timeout (2 s), not the connection's response timeout (5 s).
    assert!(
        errored < Duration::from_secs(4),
        "append failed after {errored:?}"
    );
    assert!(
        close_gap < Duration::from_secs(2),
        "the close waited {close_gap:?} after the error"
    );
    drop(frozen);

    // After Redis answers again, the client resumes and resends: stored once.
    let mut again = relay
        .connect("frozen", Role::Customer, "cust", Codec::Json)
        .await;
    again.join(None).await;
    again.publish(&synthetic(4, 1), Some("e2")).await;
    loop {
        match again.next_raw().await {
            Some(ServerFrame::Ack { id, .. }) if id == "e2" => break,
            Some(_) => {}
            None => panic!("closed: {:?}", again.close_frame),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_live_delivery_follow_a_frozen_redis_promptly() {
    let relay = Relay::start().await;
    if !cluster_mode() {
        return;
    }
    // Customer and agent on different nodes.
    let (mut customer, _) = relay
        .join("thaw", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("thaw", Role::Agent, "agent", Codec::Json).await;
    customer.publish(&synthetic(4, 0), Some("k1")).await;
    customer.publish(&synthetic(2, 1), Some("k2")).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;
    until_readiness(&relay, true).await;

    let frozen = Frozen::freeze(&relay).expect("cluster mode");
    let unready = until_readiness(&relay, false).await;
    drop(frozen);
    let thawed = Instant::now();
    customer.publish(&synthetic(3, 2), Some("m1")).await;
    let ready_again = until_readiness(&relay, true).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 3, .. }))
        .await;
    let delivered = thawed.elapsed();
    eprintln!(
        "every node unready {unready:?} after the freeze; ready {ready_again:?} and the agent \
         had the next event {delivered:?} after the thaw"
    );
    // Loose bounds: the figures are about a second and well under one (docs/operations.md).
    assert!(
        unready < Duration::from_secs(3),
        "unready after {unready:?}"
    );
    assert!(
        ready_again < Duration::from_secs(2),
        "ready after {ready_again:?}"
    );
    assert!(
        delivered < Duration::from_secs(2),
        "delivered after {delivered:?}"
    );
}

/// The first event that needs masking loads the room's masking state from the store; when that
/// read fails the client hears what a failed append says (`unavailable` with its id, then 4004),
/// not a bare close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_event_on_a_frozen_redis_gets_its_error_and_close() {
    let relay = Relay::start().await;
    if !cluster_mode() {
        return;
    }
    let (mut customer, _) = relay
        .join("frozen-mask", Role::Customer, "cust", Codec::Json)
        .await;
    let frozen = Frozen::freeze(&relay).expect("cluster mode");
    // An Input event (source 5): masked under every policy but `none`.
    let input =
        r#"{"type":3,"data":{"source":5,"id":7,"text":"secret","isChecked":false},"timestamp":1}"#;
    customer.publish(input, Some("m1")).await;
    let err = loop {
        match customer.next_raw().await {
            Some(f @ ServerFrame::Error { .. }) => break f,
            Some(_) => {}
            None => panic!("closed without an error: {:?}", customer.close_frame),
        }
    };
    assert!(
        matches!(&err, ServerFrame::Error { code: ErrorCode::Unavailable, id: Some(id), .. } if id == "m1"),
        "{err:?}"
    );
    assert_eq!(
        customer.closed().await,
        Closed::Frame(4004, "unavailable".into())
    );
    drop(frozen);
}
