//! A throttled client is never blocked from receiving: while its own frames are held back by the
//! rate limit (up to `--max-rate-delay`), the room's live stream keeps reaching it.

mod common;

use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use tokio::time::Instant;

/// Chats the agent sends at once: 4 fit its burst, the rest are held back at 2 a second.
const CHATS: usize = 16;
/// Events the customer publishes meanwhile, within its own rate.
const EVENTS: usize = 6;
/// How late an event may reach the agent: far below the agent's hold-back (about 6 s).
const PROMPT: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_held_back_by_its_rate_keeps_receiving_the_customers_events() {
    let relay = Relay::start_with(|c| {
        c.max_msgs_per_sec = 2; // bursts of 4
        c.max_rate_delay = Duration::from_secs(30);
    })
    .await;
    let (mut customer, _) = relay
        .join("throttled", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("throttled", Role::Agent, "agent", Codec::Json)
        .await;
    let start = Instant::now();
    for i in 0..CHATS {
        agent
            .chat(&format!("c{i}"), "typing faster than allowed")
            .await;
    }
    let publisher = tokio::spawn(async move {
        let mut sent = Vec::new();
        for n in 0..EVENTS as u64 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            sent.push(Instant::now());
            customer.publish(&synthetic(3, n), None).await;
        }
        (customer, sent)
    });
    let mut received = Vec::new();
    let mut acked = 0;
    let mut last_ack = start;
    while received.len() < EVENTS || acked < CHATS {
        match agent.recv().await {
            ServerFrame::Event { .. } => received.push(Instant::now()),
            ServerFrame::Ack { .. } => {
                acked += 1;
                last_ack = Instant::now();
            }
            ServerFrame::Error { code, message, .. } => panic!("refused: {code}: {message}"),
            _ => {}
        }
    }
    let (_customer, sent) = publisher.await.expect("publisher");
    let held_back = last_ack - start;
    assert!(
        held_back >= Duration::from_secs(4),
        "the agent's chats were held back (the last ack came after {held_back:?})"
    );
    for (i, (sent, got)) in sent.iter().zip(&received).enumerate() {
        let late = *got - *sent;
        assert!(
            late < PROMPT,
            "event {i} reached the agent after {late:?}, while its chats were held back for \
             {held_back:?}"
        );
    }
    assert!(
        received.iter().all(|got| *got < last_ack),
        "every event arrived while the agent's own frames were still held back"
    );
}
