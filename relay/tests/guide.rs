//! Agent guidance and call signaling: relayed to the right participants in room order, refused
//! from the wrong ones, rate-limited, validated; ICE servers in `joined`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::Auth;
use assist_relay::guide::{turn_credential, IceConfig};
use assist_relay_proto::{
    Claims, ClientFrame, Codec, ErrorCode, Guidance, Member, Role, ServerFrame, Signal,
};
use common::*;
use tokio_tungstenite::tungstenite::Message;

/// A token with an explicit `caps` claim.
fn token_with_caps(room: &str, role: Role, sub: &str, caps: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    Auth::new(SECRET.as_bytes())
        .mint(&Claims {
            sub: sub.into(),
            room: room.into(),
            role,
            exp: now + 3600,
            iat: Some(now),
            mask: None,
            caps: Some(caps.iter().map(|c| c.to_string()).collect()),
        })
        .expect("mint")
}

fn guide(g: Guidance) -> ClientFrame<'static> {
    ClientFrame::Guide { id: None, guide: g }
}

fn highlight(node: u32) -> ClientFrame<'static> {
    guide(Guidance::Highlight { node })
}

fn signal(kind: &str, to: Option<&str>) -> ClientFrame<'static> {
    let mut s = Signal {
        kind: Some(kind.into()),
        call: Some("call-1".into()),
        ..Default::default()
    };
    match kind {
        "offer" | "answer" => s.sdp = Some(format!("v=0\r\ns=-\r\na={kind}\r\n")),
        "ice" => s.candidate = Some("candidate:1 1 udp 2122260223 10.0.0.2 5000 typ host".into()),
        _ => {}
    }
    ClientFrame::Signal {
        id: Some(format!("sig-{kind}")),
        to: to.map(str::to_owned),
        signal: s,
    }
}

/// The next `guide` frame: (offset, sender, guidance).
async fn next_guide(c: &mut Client) -> (u64, Member, Guidance) {
    match c
        .recv_until(|f| matches!(f, ServerFrame::Guide { .. }))
        .await
    {
        ServerFrame::Guide {
            offset,
            from,
            guide,
        } => (offset, from, guide),
        _ => unreachable!(),
    }
}

/// The next `error` frame: (code, id).
async fn next_error(c: &mut Client) -> (ErrorCode, Option<String>) {
    match c
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, id, .. } => (code, id),
        _ => unreachable!(),
    }
}

/// Asserts that no guide or signal frame arrives for `d` (other frames are allowed).
async fn expect_no_guidance(c: &mut Client, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(f)) = tokio::time::timeout_at(deadline, c.next_raw()).await {
        assert!(
            !matches!(f, ServerFrame::Guide { .. } | ServerFrame::Signal { .. }),
            "{}: unexpected {f:?}",
            c.me.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guidance_reaches_customers_only_after_the_entry_it_follows() {
    let relay = Relay::start().await;
    let room = "guide-route";
    let mut customer = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    customer.join(None).await;
    let mut guide_agent = relay
        .connect_on(1, room, Role::Agent, "alice", Codec::MsgPack)
        .await;
    guide_agent.join(None).await;
    let mut other_agent = relay
        .connect_on(0, room, Role::Agent, "bob", Codec::Json)
        .await;
    other_agent.join(None).await;

    customer.publish(&synthetic(3, 1), Some("e1")).await;
    customer.chat("m1", "where is export?").await;
    let chat_offset = match customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await
    {
        ServerFrame::Chat { offset, .. } => offset,
        _ => unreachable!(),
    };
    // The agent has seen the chat before it points at something.
    guide_agent
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await;
    guide_agent.send(&highlight(57)).await;
    guide_agent
        .send(&guide(Guidance::Annotate {
            node: 57,
            text: "Export is here 🙂".into(),
        }))
        .await;
    let (offset, from, g) = next_guide(&mut customer).await;
    assert_eq!(offset, chat_offset, "guidance follows the last entry");
    assert_eq!(from.id, "alice");
    assert_eq!(g, Guidance::Highlight { node: 57 });
    let (_, _, g) = next_guide(&mut customer).await;
    assert!(matches!(g, Guidance::Annotate { node: 57, ref text } if text == "Export is here 🙂"));

    // Later entries come after it, with the next offset: guidance takes none.
    guide_agent.chat("m2", "click the highlighted button").await;
    match customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await
    {
        ServerFrame::Chat { offset, .. } => assert_eq!(offset, chat_offset + 1),
        _ => unreachable!(),
    }
    expect_no_guidance(&mut other_agent, Duration::from_millis(300)).await;
    expect_no_guidance(&mut guide_agent, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guidance_is_not_stored_nor_replayed_on_join() {
    let relay = Relay::start().await;
    let room = "guide-unstored";
    let (mut customer, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join(room, Role::Agent, "alice", Codec::Json).await;
    agent.send(&highlight(3)).await;
    next_guide(&mut customer).await;
    let (_, late) = relay
        .join(room, Role::Customer, "cust-2", Codec::MsgPack)
        .await;
    assert!(
        !late
            .catch_up
            .iter()
            .any(|f| matches!(f, ServerFrame::Guide { .. })),
        "a joining customer gets no old guidance"
    );
    assert_eq!(late.caught_up, 0, "guidance took no offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_may_not_guide() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("guide-cust", Role::Customer, "cust", Codec::Json)
        .await;
    customer
        .send(&ClientFrame::Guide {
            id: Some("g1".into()),
            guide: Guidance::Clear,
        })
        .await;
    assert_eq!(
        next_error(&mut customer).await,
        (ErrorCode::Forbidden, Some("g1".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_need_the_guide_capability_when_their_token_lists_caps() {
    let relay = Relay::start().await;
    let room = "guide-caps";
    let (mut customer, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let token = token_with_caps(room, Role::Agent, "caller", &["call"]);
    let mut caller = relay
        .connect_with_token(room, &token, Role::Agent, "caller", Codec::Json)
        .await;
    caller.join(None).await;
    caller
        .send(&ClientFrame::Guide {
            id: Some("g1".into()),
            guide: Guidance::Highlight { node: 9 },
        })
        .await;
    assert_eq!(
        next_error(&mut caller).await,
        (ErrorCode::Forbidden, Some("g1".into()))
    );
    let token = token_with_caps(room, Role::Agent, "guide", &["guide"]);
    let mut guider = relay
        .connect_with_token(room, &token, Role::Agent, "guide", Codec::MsgPack)
        .await;
    guider.join(None).await;
    guider.send(&highlight(9)).await;
    let (_, from, _) = next_guide(&mut customer).await;
    assert_eq!(
        from.id, "guide",
        "only the capable agent's guidance arrives"
    );
    guider.send(&signal("offer", Some("cust"))).await;
    assert_eq!(
        next_error(&mut guider).await,
        (ErrorCode::Forbidden, Some("sig-offer".into())),
        "caps without call: no calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_guidance_gets_its_error_and_the_room_carries_on() {
    let relay = Relay::start().await;
    let room = "guide-bad";
    let (mut customer, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join(room, Role::Agent, "alice", Codec::Json).await;
    let long = "x".repeat(501);
    let cases = [
        (r#"{"type":"guide"}"#.to_owned(), ErrorCode::InvalidFrame),
        (
            r#"{"type":"guide","guide":{"kind":"highlight"}}"#.to_owned(),
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"guide","guide":{"kind":"highlight","node":0}}"#.to_owned(),
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"guide","guide":{"kind":"wave"}}"#.to_owned(),
            ErrorCode::InvalidFrame,
        ),
        (
            format!(r#"{{"type":"guide","guide":{{"kind":"annotate","node":4,"text":"{long}"}}}}"#),
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"guide","guide":{"kind":"pointer","x":1e400,"y":2}}"#.to_owned(),
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"guide","guide":{"kind":"highlight","node":"57"}}"#.to_owned(),
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"guide","guide":[1]}"#.to_owned(),
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"signal","signal":{"kind":"offer","call":"c"}}"#.to_owned(),
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"signal","to":"bad id!","signal":{"kind":"hangup","call":"c"}}"#.to_owned(),
            ErrorCode::InvalidFrame,
        ),
    ];
    for (raw, code) in cases {
        agent.send_raw(Message::Text(raw.clone().into())).await;
        assert_eq!(next_error(&mut agent).await.0, code, "{raw}");
    }
    agent.chat("m1", "still here").await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "m1"))
        .await;
    agent
        .send(&guide(Guidance::Pointer {
            x: 10.5,
            y: 20.0,
            node: Some(4),
        }))
        .await;
    let (_, _, g) = next_guide(&mut customer).await;
    assert_eq!(
        g,
        Guidance::Pointer {
            x: 10.5,
            y: 20.0,
            node: Some(4)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guidance_over_the_rate_is_refused_and_pointer_moves_coalesce() {
    let relay = Relay::start().await;
    let room = "guide-rate";
    let (mut customer, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join(room, Role::Agent, "alice", Codec::Json).await;

    // Highlights: a burst of 10 passes, then `rate_limited`.
    for i in 0..14 {
        agent
            .send(&ClientFrame::Guide {
                id: Some(format!("h{i}")),
                guide: Guidance::Highlight { node: i + 1 },
            })
            .await;
    }
    let (code, id) = next_error(&mut agent).await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(id.is_some_and(|id| id.starts_with('h')));
    let mut highlights = 0;
    while highlights < 10 {
        if let (_, _, Guidance::Highlight { .. }) = next_guide(&mut customer).await {
            highlights += 1;
        }
    }

    // Pointer moves: 60 at once are coalesced, never refused, and the last one arrives.
    for x in 0..60 {
        agent
            .send(&guide(Guidance::Pointer {
                x: f64::from(x),
                y: 1.0,
                node: None,
            }))
            .await;
    }
    let mut seen = Vec::new();
    loop {
        let (_, _, g) = next_guide(&mut customer).await;
        if let Guidance::Pointer { x, .. } = g {
            seen.push(x);
            if x == 59.0 {
                break;
            }
        }
    }
    assert!(seen.len() < 60, "moves were coalesced: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    expect_no_guidance(&mut customer, Duration::from_millis(200)).await;
    let refused = relay
        .metric("relay_rate_limited_total{outcome=\"coalesced\"}")
        .await;
    if !cluster_mode() {
        assert!(refused.is_some_and(|n| n > 0.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_is_routed_to_the_other_role_across_nodes() {
    let relay = Relay::start().await;
    let room = "call";
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    let mut other_cust = relay
        .connect_on(1, room, Role::Customer, "cust-2", Codec::Json)
        .await;
    other_cust.join(None).await;
    let mut agent = relay
        .connect_on(1, room, Role::Agent, "alice", Codec::MsgPack)
        .await;
    agent.join(None).await;
    let mut agent_2 = relay
        .connect_on(0, room, Role::Agent, "bob", Codec::Json)
        .await;
    agent_2.join(None).await;

    for kind in ["offer", "ice", "hangup"] {
        agent.send(&signal(kind, Some("cust"))).await;
        match cust
            .recv_until(|f| matches!(f, ServerFrame::Signal { .. }))
            .await
        {
            ServerFrame::Signal { from, signal } => {
                assert_eq!(from.id, "alice");
                assert_eq!(signal.kind.as_deref(), Some(kind));
                assert_eq!(signal.call.as_deref(), Some("call-1"));
            }
            _ => unreachable!(),
        }
    }
    // Without `to`: every participant of the other role.
    cust.send(&signal("answer", None)).await;
    for a in [&mut agent, &mut agent_2] {
        match a
            .recv_until(|f| matches!(f, ServerFrame::Signal { .. }))
            .await
        {
            ServerFrame::Signal { from, signal } => {
                assert_eq!(from.id, "cust");
                assert!(signal.sdp.is_some_and(|s| s.contains("answer")));
            }
            _ => unreachable!(),
        }
    }
    expect_no_guidance(&mut other_cust, Duration::from_millis(300)).await;
    expect_no_guidance(&mut cust, Duration::from_millis(50)).await;

    agent.send(&signal("hangup", Some("alice"))).await;
    assert_eq!(next_error(&mut agent).await.0, ErrorCode::InvalidFrame);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_over_the_rate_are_refused() {
    let relay = Relay::start().await;
    let room = "call-rate";
    let (mut agent, _) = relay.join(room, Role::Agent, "alice", Codec::Json).await;
    for _ in 0..60 {
        agent.send(&signal("ice", Some("cust"))).await;
    }
    assert_eq!(next_error(&mut agent).await.0, ErrorCode::RateLimited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_carries_the_ice_servers_with_minted_turn_credentials() {
    let relay = Relay::start_with(|c| {
        c.ice = IceConfig::parse(
            None,
            &["stun:stun.example.com:3478".into()],
            &["turn:turn.example.com:3478?transport=udp".into()],
            Some("turn-secret"),
            Duration::from_secs(600),
        )
        .expect("ice config");
    })
    .await;
    for (role, sub, codec) in [
        (Role::Customer, "cust", Codec::Json),
        (Role::Agent, "alice", Codec::MsgPack),
    ] {
        let (_, j) = relay.join("ice", role, sub, codec).await;
        let ServerFrame::Joined { ice_servers, .. } = j.frame else {
            unreachable!()
        };
        assert_eq!(ice_servers.len(), 2, "{ice_servers:?}");
        assert_eq!(ice_servers[0].urls, ["stun:stun.example.com:3478"]);
        assert!(ice_servers[0].credential.is_none());
        let turn = &ice_servers[1];
        let user = turn.username.as_deref().expect("username");
        let (expiry, who) = user.split_once(':').expect("<expiry>:<sub>");
        assert_eq!(who, sub);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let expiry: u64 = expiry.parse().expect("expiry");
        assert!(expiry > now && expiry <= now + 600, "{expiry} vs {now}");
        assert_eq!(
            turn.credential.as_deref(),
            Some(turn_credential(b"turn-secret", user).as_str())
        );
    }
    let plain = Relay::start().await;
    let (_, j) = plain.join("ice", Role::Customer, "c", Codec::Json).await;
    assert!(
        matches!(j.frame, ServerFrame::Joined { ref ice_servers, .. } if ice_servers.is_empty())
    );
}
