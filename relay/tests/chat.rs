//! Chat: idempotent sends, acknowledgements, room order, history on join.

mod common;

use assist_relay_proto::{Codec, JoinMode, Role, ServerFrame};
use common::*;

async fn ack(c: &mut Client, want: &str) -> (u64, bool) {
    match c
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == want))
        .await
    {
        ServerFrame::Ack {
            offset, duplicate, ..
        } => (offset, duplicate),
        _ => unreachable!(),
    }
}

/// Reads chat frames until `n` arrived: (offset, sender, id).
async fn chats(c: &mut Client, n: usize) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let ServerFrame::Chat {
            offset, from, id, ..
        } = c.recv().await
        {
            out.push((offset, from.id, id));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_chat_is_stored_once_and_acked_with_the_original_offset() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("idem", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("idem", Role::Agent, "agent", Codec::Json).await;
    customer.chat("m1", "my card was charged twice").await;
    let (first, dup) = ack(&mut customer, "m1").await;
    assert!(!dup);
    customer.chat("m1", "my card was charged twice").await;
    let (second, dup) = ack(&mut customer, "m1").await;
    assert!(dup, "the resend is flagged as a duplicate");
    assert_eq!(first, second);
    customer.chat("m2", "hello?").await;
    let got = chats(&mut agent, 2).await;
    assert_eq!(
        got,
        vec![
            (first, "cust".into(), "m1".into()),
            (first + 1, "cust".into(), "m2".into())
        ],
        "m1 once, then m2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_from_two_senders_is_two_messages() {
    let relay = Relay::start().await;
    let (mut a, _) = relay.join("ids", Role::Agent, "a", Codec::Json).await;
    let (mut b, _) = relay.join("ids", Role::Agent, "b", Codec::Json).await;
    a.chat("1", "from a").await;
    b.chat("1", "from b").await;
    assert!(!ack(&mut a, "1").await.1);
    assert!(!ack(&mut b, "1").await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_resent_after_a_reconnect_is_not_delivered_twice() {
    let relay = Relay::start().await;
    let (mut agent, _) = relay.join("re", Role::Agent, "agent", Codec::Json).await;
    let (mut customer, _) = relay
        .join("re", Role::Customer, "cust", Codec::MsgPack)
        .await;
    customer.chat("k1", "I typed my address").await;
    // The connection drops before the customer reads the ack; the SDK resends on reconnect.
    let pos = customer.position();
    customer.drop_abruptly();
    let first = chats(&mut agent, 1).await;
    let mut customer = relay
        .connect("re", Role::Customer, "cust", Codec::MsgPack)
        .await;
    let j = customer.join(Some(pos)).await;
    assert_eq!(j.mode(), JoinMode::Resume);
    customer.chat("k1", "I typed my address").await;
    let (offset, dup) = ack(&mut customer, "k1").await;
    assert!(dup);
    assert_eq!(offset, first[0].0);
    customer.chat("k2", "next").await;
    let next = chats(&mut agent, 1).await;
    assert_eq!(next[0].2, "k2", "the resend was not delivered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_sees_chat_in_the_same_room_order_as_the_acks() {
    let relay = Relay::start().await;
    let (customer, _) = relay
        .join("order", Role::Customer, "cust", Codec::Json)
        .await;
    let (agent1, _) = relay
        .join("order", Role::Agent, "agent1", Codec::MsgPack)
        .await;
    let (agent2, _) = relay
        .join("order", Role::Agent, "agent2", Codec::Json)
        .await;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for mut c in [customer, agent1, agent2] {
        tasks.push(tokio::spawn(async move {
            let me = c.me.id.clone();
            for i in 0..EACH {
                c.chat(&format!("{me}-{i}"), &format!("message {i} from {me}"))
                    .await;
            }
            // Everything, in order, including our own messages, and our acks.
            let mut seen = Vec::new();
            let mut acks = Vec::new();
            while seen.len() < 3 * EACH || acks.len() < EACH {
                match c.recv().await {
                    ServerFrame::Chat { offset, id, .. } => seen.push((offset, id)),
                    ServerFrame::Ack {
                        offset,
                        id,
                        duplicate,
                    } => {
                        assert!(!duplicate);
                        acks.push((offset, id));
                    }
                    _ => {}
                }
            }
            (me, seen, acks)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("participant"));
    }
    let reference = &results[0].1;
    assert!(
        reference.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase"
    );
    for (me, seen, acks) in &results {
        assert_eq!(seen, reference, "{me} saw another order");
        for (offset, id) in acks {
            assert!(
                reference.contains(&(*offset, id.clone())),
                "{me}'s ack {id}@{offset} matches delivery"
            );
        }
        // Each sender's own messages appear in the order it sent them.
        let own: Vec<&String> = reference
            .iter()
            .map(|(_, id)| id)
            .filter(|id| id.starts_with(&format!("{me}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("{me}-{i}")).collect();
        assert_eq!(own, expected.iter().collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_last_n_chat_messages_whatever_the_keyframe() {
    let relay = Relay::start_with(|c| c.chat_history = 5).await;
    let (mut customer, _) = relay
        .join("hist", Role::Customer, "cust", Codec::Json)
        .await;
    for i in 0..8 {
        customer
            .chat(&format!("old{i}"), "before the keyframe")
            .await;
    }
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    for i in 0..2 {
        customer
            .chat(&format!("new{i}"), "after the keyframe")
            .await;
    }
    ack(&mut customer, "new1").await;

    let (_, j) = relay.join("hist", Role::Agent, "agent", Codec::Json).await;
    let ids: Vec<String> = j
        .catch_up
        .iter()
        .map(|f| match f {
            ServerFrame::Chat { id, .. } => id.clone(),
            ServerFrame::Event { event, .. } => event.json()[..9].to_owned(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        ids,
        [
            "old3",
            "old4",
            "old5",
            "old6",
            "old7",
            r#"{"type":4"#,
            r#"{"type":2"#,
            "new0",
            "new1"
        ],
        "the last 5 chats before the keyframe, then the keyframe and everything after it"
    );

    let (_, j) = relay
        .join("hist", Role::Customer, "cust2", Codec::Json)
        .await;
    let ids: Vec<String> = j
        .catch_up
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Chat { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        ["old5", "old6", "old7", "new0", "new1"],
        "a customer gets the last 5 chats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_an_id_is_acked_and_deduplicated() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("evid", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay.join("evid", Role::Agent, "agent", Codec::Json).await;
    customer.publish(&synthetic(4, 0), Some("e1")).await;
    let (o1, d1) = ack(&mut customer, "e1").await;
    customer.publish(&synthetic(4, 0), Some("e1")).await;
    let (o2, d2) = ack(&mut customer, "e1").await;
    assert_eq!((o1, d1, o2, d2), (1, false, 1, true));
    customer.publish(&synthetic(2, 1), Some("e2")).await;
    let mut offsets = Vec::new();
    while offsets.len() < 2 {
        if let ServerFrame::Event { offset, .. } = agent.recv().await {
            offsets.push(offset);
        }
    }
    assert_eq!(offsets, [1, 2]);
}
