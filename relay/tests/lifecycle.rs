//! Frames and connection lifecycle: error frames that keep the connection open, the closes the
//! relay initiates (size, join and idle timeouts, token expiry, drain), presence, and the admin
//! endpoints.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay_proto::{ClientFrame, Codec, ErrorCode, Member, Role, ServerFrame};
use common::*;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The next frame must be an `error`; returns its code and id.
async fn expect_error(c: &mut Client) -> (ErrorCode, Option<String>) {
    match c.recv().await {
        ServerFrame::Error { code, message, id } => {
            assert!(!message.is_empty(), "error {code} carries a message");
            (code, id)
        }
        other => panic!("{}: expected an error frame, got {other:?}", c.me.id),
    }
}

/// Sends an app-level ping and expects the matching pong as the next frame.
async fn assert_usable(c: &mut Client, id: &str) {
    c.send(&ClientFrame::Ping {
        id: Some(id.into()),
    })
    .await;
    let f = c.recv().await;
    assert_eq!(
        f,
        ServerFrame::Pong {
            id: Some(id.into())
        },
        "{}",
        c.me.id
    );
}

fn text(s: impl Into<String>) -> Message {
    Message::Text(s.into().into())
}

fn member(id: &str, role: Role) -> Member {
    Member {
        id: id.into(),
        role,
    }
}

// ---------------------------------------------------------------------------------------------
// Error frames

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_join_get_not_joined_and_join_still_works() {
    let relay = Relay::start().await;
    let mut c = relay
        .connect("early", Role::Customer, "cust", Codec::Json)
        .await;
    c.chat("c1", "hello?").await;
    assert_eq!(
        expect_error(&mut c).await,
        (ErrorCode::NotJoined, Some("c1".into()))
    );
    c.publish(&synthetic(4, 0), Some("e1")).await;
    assert_eq!(
        expect_error(&mut c).await,
        (ErrorCode::NotJoined, Some("e1".into()))
    );
    let j = c.join(None).await;
    assert!(
        matches!(j.frame, ServerFrame::Joined { head: 0, .. }),
        "nothing sent before join was stored: {:?}",
        j.frame
    );
    assert!(j.catch_up.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_join_gets_already_joined() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("twice", Role::Agent, "agent", Codec::Json).await;
    c.send(&ClientFrame::Join { resume: None }).await;
    assert_eq!(expect_error(&mut c).await, (ErrorCode::AlreadyJoined, None));
    assert_usable(&mut c, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_type_gets_unknown_type_and_the_connection_stays_usable() {
    let relay = Relay::start().await;
    let (mut c, _) = relay
        .join("unknown", Role::Agent, "agent", Codec::Json)
        .await;
    c.send_raw(text(r#"{"type":"dance","id":"d1"}"#)).await;
    assert_eq!(expect_error(&mut c).await.0, ErrorCode::UnknownType);
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_text_gets_malformed() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("bad", Role::Agent, "agent", Codec::Json).await;
    for raw in ["{not json", r#"{"type":5}"#, r#"{"id":"x"}"#, "null"] {
        c.send_raw(text(raw)).await;
        assert_eq!(
            expect_error(&mut c).await,
            (ErrorCode::Malformed, None),
            "{raw}"
        );
    }
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_frame_gets_malformed() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("array", Role::Agent, "agent", Codec::Json).await;
    // Not answered as a ping: a frame is a map, never an array of fields.
    for raw in [r#"[{"type":"ping","id":"a"}]"#, r#"["ping","a"]"#] {
        c.send_raw(text(raw)).await;
        assert_eq!(
            expect_error(&mut c).await,
            (ErrorCode::Malformed, None),
            "{raw}"
        );
    }
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_on_a_json_connection_gets_wrong_frame_kind() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("kind", Role::Agent, "agent", Codec::Json).await;
    c.send_raw(Message::Binary(
        br#"{"type":"ping","id":"b"}"#.to_vec().into(),
    ))
    .await;
    assert_eq!(
        expect_error(&mut c).await,
        (ErrorCode::WrongFrameKind, None)
    );
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frame_on_a_msgpack_connection_gets_wrong_frame_kind() {
    let relay = Relay::start().await;
    let (mut c, _) = relay
        .join("kind", Role::Agent, "agent", Codec::MsgPack)
        .await;
    c.send_raw(text(r#"{"type":"ping","id":"t"}"#)).await;
    // `recv` asserts the error itself arrives as a binary (MessagePack) frame.
    assert_eq!(
        expect_error(&mut c).await,
        (ErrorCode::WrongFrameKind, None)
    );
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_without_integer_type_gets_invalid_event() {
    let relay = Relay::start().await;
    let (mut c, _) = relay
        .join("events", Role::Customer, "cust", Codec::Json)
        .await;
    for raw in [
        r#"{"type":"event","event":{"type":"x","data":{}}}"#,
        r#"{"type":"event","event":{"data":{},"timestamp":1}}"#,
        r#"{"type":"event","event":{"type":2.5}}"#,
        r#"{"type":"event","event":[4]}"#,
    ] {
        c.send_raw(text(raw)).await;
        assert_eq!(
            expect_error(&mut c).await.0,
            ErrorCode::InvalidEvent,
            "{raw}"
        );
    }
    // Nothing was stored: the next valid event gets offset 1.
    c.publish(&synthetic(4, 0), Some("ok")).await;
    assert_eq!(
        c.recv().await,
        ServerFrame::Ack {
            id: "ok".into(),
            offset: 1,
            duplicate: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_without_id_gets_invalid_frame() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("chat", Role::Agent, "agent", Codec::Json).await;
    c.send_raw(text(r#"{"type":"chat","text":"hi"}"#)).await;
    assert_eq!(expect_error(&mut c).await, (ErrorCode::InvalidFrame, None));
    assert_usable(&mut c, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_text_over_8192_bytes_gets_invalid_frame() {
    let relay = Relay::start().await;
    let (mut c, _) = relay.join("chat", Role::Agent, "agent", Codec::Json).await;
    c.chat("long", &"a".repeat(8193)).await;
    assert_eq!(expect_error(&mut c).await.0, ErrorCode::InvalidFrame);
    // Exactly at the limit is fine, and is the first entry stored.
    c.chat("max", &"a".repeat(8192)).await;
    let f = c.recv_until(|f| matches!(f, ServerFrame::Ack { .. })).await;
    assert_eq!(
        f,
        ServerFrame::Ack {
            id: "max".into(),
            offset: 1,
            duplicate: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_publishing_an_event_gets_forbidden_and_the_room_is_unaffected() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("forbid", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("forbid", Role::Agent, "agent", Codec::Json)
        .await;
    agent.publish(&synthetic(4, 666), Some("a-e1")).await;
    assert_eq!(
        expect_error(&mut agent).await,
        (ErrorCode::Forbidden, Some("a-e1".into()))
    );

    let sent = synthetic(4, 1);
    customer.publish(&sent, Some("c-e1")).await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { id, offset: 1, .. } if id == "c-e1"))
        .await;
    let f = agent.recv().await;
    assert_eq!(
        event_json(&f),
        Some((1, sent)),
        "the agent's event was not stored"
    );
}

// ---------------------------------------------------------------------------------------------
// Closes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_frame_bytes_closes_with_1009_and_the_room_goes_on() {
    let relay = Relay::start_with(|cfg| cfg.max_frame_bytes = 64 * 1024).await;
    let (mut big, _) = relay.join("big", Role::Customer, "cust", Codec::Json).await;
    let (mut tab, _) = relay.join("big", Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join("big", Role::Agent, "agent", Codec::Json).await;

    let pad = "x".repeat(100 * 1024);
    big.send_raw(text(format!(
        r#"{{"type":"event","event":{{"type":3,"data":{{"source":0,"pad":"{pad}"}}}}}}"#
    )))
    .await;
    assert_eq!(big.closed().await, Closed::Frame(1009, "too_large".into()));
    relay
        .await_metric("relay_closes_total{reason=\"too_large\"}", 1.0)
        .await;

    // The room and its other members carry on.
    let sent = synthetic(3, 2);
    tab.publish(&sent, Some("e2")).await;
    let f = agent
        .recv_until(|f| matches!(f, ServerFrame::Event { .. }))
        .await;
    assert_eq!(event_json(&f), Some((1, sent)));
    tab.recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "e2"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_level_ping_gets_pong_with_the_same_id_before_and_after_join() {
    let relay = Relay::start().await;
    let mut c = relay
        .connect("ping", Role::Agent, "agent", Codec::Json)
        .await;
    assert_usable(&mut c, "before-join").await;
    c.join(None).await;
    assert_usable(&mut c, "after-join").await;
    c.send(&ClientFrame::Ping { id: None }).await;
    assert_eq!(c.recv().await, ServerFrame::Pong { id: None });

    let (mut mp, _) = relay
        .join("ping", Role::Customer, "cust", Codec::MsgPack)
        .await;
    assert_usable(&mut mp, "msgpack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_that_never_joins_is_closed_with_4002_join_timeout() {
    let relay = Relay::start_with(|cfg| cfg.join_timeout = Duration::from_millis(300)).await;
    // Connected first, so its join deadline passes no later than the idle one's.
    let mut joined = relay.connect("jt", Role::Agent, "agent", Codec::Json).await;
    let mut idle = relay
        .connect("jt", Role::Customer, "cust", Codec::Json)
        .await;
    joined.join(None).await;

    assert_eq!(
        idle.closed().await,
        Closed::Frame(4002, "join_timeout".into())
    );
    relay
        .await_metric("relay_closes_total{reason=\"join_timeout\"}", 1.0)
        .await;
    // Joining in time cancels the deadline.
    assert_usable(&mut joined, "alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_stops_answering_pings_is_closed_for_idle_timeout() {
    let relay = Relay::start_with(|cfg| {
        cfg.ping_interval = Duration::from_millis(100);
        cfg.idle_timeout = Duration::from_millis(300);
    })
    .await;
    // The live agent keeps reading, which answers the server's WebSocket pings.
    let (mut live, _) = relay.join("idle", Role::Agent, "live", Codec::Json).await;
    // The dead customer joins and then never reads (so never pongs) again.
    let (mut dead, _) = relay
        .join("idle", Role::Customer, "dead", Codec::Json)
        .await;
    // Reading answers pings on the way (and `recv_until` fails if the live agent is closed).
    let reader = tokio::spawn(async move {
        let left = live
            .recv_until(|f| matches!(f, ServerFrame::MemberLeft { .. }))
            .await;
        (live, left)
    });

    relay
        .await_metric("relay_closes_total{reason=\"idle_timeout\"}", 1.0)
        .await;
    relay.await_open_connections(1).await;

    let (mut live, left) = reader.await.expect("live reader");
    assert_eq!(
        left,
        ServerFrame::MemberLeft {
            member: member("dead", Role::Customer)
        }
    );
    assert_usable(&mut live, "alive").await;
    assert_eq!(
        relay
            .metric("relay_closes_total{reason=\"idle_timeout\"}")
            .await,
        Some(1.0),
        "only the dead peer timed out"
    );
    // What the dead peer finds in its socket: server pings, then the close frame, then EOF. Read
    // below tungstenite, which would try to answer the pings on a socket the server has closed.
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(RECV_TIMEOUT, dead.ws.get_mut().read_to_end(&mut raw))
        .await
        .expect("the server closed the dead peer's socket");
    assert_eq!(
        close_frame_in(&raw),
        Some((4003, "idle_timeout".into())),
        "raw bytes: {raw:?}"
    );
}

/// The first close frame (code, reason) in raw server-to-client WebSocket bytes (unmasked frames).
fn close_frame_in(mut bytes: &[u8]) -> Option<(u16, String)> {
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
                4,
            ),
            127 => return None, // not expected here
            n => (usize::from(n), 2),
        };
        let payload = bytes.get(header..header + len)?;
        if opcode == 0x8 {
            let code = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
        bytes = &bytes[header + len..];
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_clients_with_4000_refuses_new_ones_and_exits_within_the_drain_deadline() {
    let drain = Duration::from_secs(5);
    let mut relay = Relay::start_with(|cfg| {
        cfg.drain_timeout = drain;
        // A stalled upgrade keeps the node draining for this long, so /readyz can be observed.
        cfg.handshake_timeout = Duration::from_secs(3);
    })
    .await;
    let (mut customer, _) = relay
        .join("drain", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut agent, _) = relay
        .join("drain", Role::Agent, "agent", Codec::MsgPack)
        .await;
    assert_eq!(relay.admin_get("/readyz").await.0, 200);
    let mut stalled = tokio::net::TcpStream::connect(relay.addr)
        .await
        .expect("tcp connect");
    relay.await_open_connections(2).await;
    relay.await_pending_handshakes(1).await;

    relay.begin_shutdown();
    assert_eq!(
        customer.closed().await,
        Closed::Frame(4000, "shutdown".into())
    );
    assert_eq!(agent.closed().await, Closed::Frame(4000, "shutdown".into()));

    let (status, body) = relay.admin_get("/readyz").await;
    assert_eq!((status, body.trim()), (503, "draining"));
    assert_eq!(relay.metric("relay_draining").await, Some(1.0));

    // New connections are refused: the listener is gone (or, racing it, a 503 shutting_down).
    let token = relay.token("drain", Role::Agent, "late");
    let mut req = relay.url("drain").into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => panic!("a new connection was accepted while draining"),
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
            let body: serde_json::Value =
                serde_json::from_slice(&resp.body().clone().unwrap_or_default()).expect("json");
            assert_eq!(body["error"], "shutting_down");
        }
        Err(_) => {} // connection refused or reset
    }

    tokio::time::timeout(drain, relay.shutdown())
        .await
        .expect("the node did not exit within the drain deadline");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), stalled.read(&mut buf))
        .await
        .expect("the stalled connection is closed once the node is gone");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_ends_the_node_even_with_a_stalled_connection() {
    let drain = Duration::from_millis(300);
    let relay = Relay::start_with(|cfg| {
        cfg.drain_timeout = drain;
        cfg.handshake_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stalled = tokio::net::TcpStream::connect(relay.addr)
        .await
        .expect("tcp connect");
    relay.await_pending_handshakes(1).await;

    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), relay.shutdown())
        .await
        .expect("the node did not stop at its drain deadline");
    assert!(
        started.elapsed() >= drain,
        "the node waited for the drain deadline"
    );
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), stalled.read(&mut buf))
        .await
        .expect("the stalled connection was dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_connection_closes_with_4500_token_expired() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay.join("exp", Role::Customer, "cust", Codec::Json).await;
    let token = token_with("exp", Role::Agent, "agent", 2);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 2;
    let mut agent = relay
        .connect_with_token("exp", &token, Role::Agent, "agent", Codec::Json)
        .await;
    agent.join(None).await;

    let closed = tokio::time::timeout(Duration::from_secs(4), agent.closed())
        .await
        .expect("not closed within 4 s of a 2 s token");
    assert_eq!(closed, Closed::Frame(4500, "token_expired".into()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(now >= exp as f64, "closed at {now}, before exp {exp}");

    // Only that connection: the customer (long token) is told the agent left and stays.
    assert_eq!(
        customer
            .recv_until(|f| matches!(f, ServerFrame::MemberLeft { .. }))
            .await,
        ServerFrame::MemberLeft {
            member: member("agent", Role::Agent)
        }
    );
    assert_usable(&mut customer, "alive").await;
}

// ---------------------------------------------------------------------------------------------
// Admin endpoints

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_liveness_readiness_and_metrics() {
    let relay = Relay::start().await;
    let (status, body) = relay.admin_get("/livez").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = relay.admin_get("/readyz").await;
    assert_eq!((status, body.trim()), (200, "ready"));

    let (_agent, _) = relay.join("adm", Role::Agent, "agent", Codec::Json).await;
    let (status, body) = relay.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("relay_build_info"), "{body}");
    assert_eq!(
        relay
            .metric(&format!(
                "relay_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ))
            .await,
        Some(1.0)
    );
    assert_eq!(
        relay.metric("relay_connections{role=\"agent\"}").await,
        Some(1.0)
    );
    assert_eq!(
        relay.metric("relay_connections{role=\"customer\"}").await,
        Some(0.0)
    );
    assert_eq!(relay.admin_get("/nope").await.0, 404);
}

// ---------------------------------------------------------------------------------------------
// Presence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_lists_members_on_join_and_announces_joins_and_leaves() {
    let relay = Relay::start().await;
    let (mut customer, j) = relay
        .join("presence", Role::Customer, "cust", Codec::Json)
        .await;
    assert_eq!(j.members(), vec![member("cust", Role::Customer)]);

    let (mut agent, j) = relay
        .join("presence", Role::Agent, "agent", Codec::MsgPack)
        .await;
    let members: HashSet<Member> = j.members().into_iter().collect();
    assert_eq!(
        members,
        HashSet::from([member("cust", Role::Customer), member("agent", Role::Agent)])
    );
    assert_eq!(
        customer.recv().await,
        ServerFrame::MemberJoined {
            member: member("agent", Role::Agent)
        }
    );

    agent.ws.close(None).await.expect("close");
    agent.closed().await;
    assert_eq!(
        customer.recv().await,
        ServerFrame::MemberLeft {
            member: member("agent", Role::Agent)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_with_two_connections_is_announced_once_and_leaves_with_the_last() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay
        .join("tabs", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut tab1, _) = relay.join("tabs", Role::Agent, "agent", Codec::Json).await;
    assert_eq!(
        customer.recv().await,
        ServerFrame::MemberJoined {
            member: member("agent", Role::Agent)
        }
    );

    let (mut tab2, j) = relay.join("tabs", Role::Agent, "agent", Codec::Json).await;
    assert_eq!(j.members().len(), 2, "one entry per participant");
    // A chat after the second join is the next thing the customer sees: no second member_joined.
    tab2.chat("m1", "second tab").await;
    assert!(
        matches!(customer.recv().await, ServerFrame::Chat { id, .. } if id == "m1"),
        "no member_joined for a second connection"
    );

    tab1.ws.close(None).await.expect("close");
    tab1.closed().await;
    relay.await_open_connections(2).await;
    tab2.chat("m2", "first tab gone").await;
    assert!(
        matches!(customer.recv().await, ServerFrame::Chat { id, .. } if id == "m2"),
        "no member_left while a connection remains"
    );

    // The last connection vanishes without a close handshake.
    tab2.drop_abruptly();
    assert_eq!(
        customer.recv().await,
        ServerFrame::MemberLeft {
            member: member("agent", Role::Agent)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_has_not_joined_yet_is_closed_with_4000_on_drain() {
    let mut relay = Relay::start().await;
    let mut waiting = relay
        .connect("drain2", Role::Agent, "agent", Codec::Json)
        .await;
    relay.await_open_connections(1).await;
    relay.begin_shutdown();
    assert_eq!(
        waiting.closed().await,
        Closed::Frame(4000, "shutdown".into())
    );
}
