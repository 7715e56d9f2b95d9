//! The server API under `/v1` over real HTTP, in both backends (`RELAY_TEST_BACKEND=redis`: two
//! nodes sharing a redis-server, members of one room on different nodes): the live-room listing
//! (and its demo twin `/demo/rooms`), server-side chat, recordings.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;

const API_KEY: &str = "test-api-key-0123456789";

const META: &str = r#"{"type":4,"data":{"href":"https://shop.example/cart","width":390,"height":844},"timestamp":1700000000000}"#;
const SNAPSHOT: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1700000000001}"#;

async fn post(addr: SocketAddr, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let (status, text) = raw_http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, Value) {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let (status, text) = raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n"),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn rooms(addr: SocketAddr, query: &str) -> Value {
    let (status, body) = get(addr, &format!("/v1/rooms{query}"), Some(API_KEY)).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn room<'a>(listing: &'a Value, id: &str) -> Option<&'a Value> {
    listing["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == id)
}

fn ids(listing: &Value) -> Vec<String> {
    listing["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r["room"].as_str().expect("room").to_owned())
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Polls the listing on every node until `ok` holds for each answer.
async fn await_listing(relay: &Relay, query: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    loop {
        let mut all = true;
        let mut last = Value::Null;
        for admin in relay.admin_addrs() {
            last = rooms(admin, query).await;
            all &= ok(&last);
        }
        if all {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listing never matched: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rooms_list_members_roles_waiting_time_and_page_over_every_node() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let before = now_ms();
    // Room "a": the customer on one node, the agent on the other (in cluster mode).
    let mut cust_a = relay
        .connect_on(0, "a", Role::Customer, "alice", Codec::Json)
        .await;
    cust_a.join(None).await;
    cust_a.publish(META, Some("m")).await;
    cust_a.publish(SNAPSHOT, Some("s")).await;
    let mut agent = relay
        .connect_on(1, "a", Role::Agent, "agent-1", Codec::Json)
        .await;
    agent.join(None).await;
    // Room "b": a customer alone, connected twice (one member, two connections).
    let mut cust_b = relay
        .connect_on(1, "b", Role::Customer, "bob", Codec::Json)
        .await;
    cust_b.join(None).await;
    let mut cust_b2 = relay
        .connect_on(0, "b", Role::Customer, "bob", Codec::Json)
        .await;
    cust_b2.join(None).await;

    let listing = await_listing(&relay, "", |l| {
        room(l, "a").is_some_and(|a| !a["page"].is_null())
    })
    .await;
    assert_eq!(ids(&listing), ["a", "b"], "{listing}");
    assert!(listing["next"].is_null());
    let a = room(&listing, "a").expect("a");
    assert_eq!(a["state"], "assisted");
    assert!(a["waiting_since_ms"].is_null());
    let members: Vec<(&str, &str)> = a["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["sub"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(members, [("alice", "customer"), ("agent-1", "agent")]);
    for m in a["members"].as_array().expect("members") {
        assert!(m["joined_ms"].as_u64().expect("joined_ms") >= before);
    }
    assert!(a["opened_ms"].as_u64().expect("opened_ms") >= before);
    assert_eq!(a["page"]["url"], "https://shop.example/cart");
    assert_eq!(a["page"]["kind"], "web");
    assert_eq!(a["page"]["offset"], 1);
    let b = room(&listing, "b").expect("b");
    assert_eq!(b["state"], "waiting");
    assert_eq!(b["members"].as_array().expect("members").len(), 1, "{b}");
    let since = b["waiting_since_ms"].as_u64().expect("waiting since");
    assert!(since >= before && since <= now_ms(), "{b}");
    assert!(b["page"].is_null());

    // Filters.
    let waiting = rooms(relay.admin, "?state=waiting").await;
    assert_eq!(ids(&waiting), ["b"]);
    let assisted = rooms(relay.admin, "?state=assisted").await;
    assert_eq!(ids(&assisted), ["a"]);

    // The agent leaves: "a" waits again, since then.
    let left = now_ms();
    drop(agent);
    let listing = await_listing(&relay, "?state=waiting", |l| ids(l) == ["a", "b"]).await;
    let a = room(&listing, "a").expect("a");
    assert_eq!(a["members"].as_array().expect("members").len(), 1);
    assert!(
        a["waiting_since_ms"].as_u64().expect("since") >= left,
        "{a}"
    );

    // Closed rooms are not live; a room whose members all left is not listed.
    let (status, _) = post(relay.admin, "/v1/rooms/a/close", Some(API_KEY), "").await;
    assert_eq!(status, 200);
    drop(cust_b);
    drop(cust_b2);
    await_listing(&relay, "", |l| ids(l).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_pages_with_a_cursor_and_skips_filtered_rooms() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let mut clients = Vec::new();
    for (i, r) in ["r1", "r2", "r3", "r4", "r5"].iter().enumerate() {
        let role = if i % 2 == 0 {
            Role::Customer
        } else {
            Role::Agent
        };
        let mut c = relay.connect_on(i, r, role, "p", Codec::Json).await;
        c.join(None).await;
        clients.push(c);
    }
    await_listing(&relay, "", |l| ids(l).len() == 5).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = rooms(relay.admin, &format!("?limit=2&cursor={cursor}")).await;
        assert!(ids(&page).len() <= 2);
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["r1", "r2", "r3", "r4", "r5"]);
    // Customers alone (waiting) are r1, r3, r5; pages of 2 skip the agent-only rooms.
    let first = rooms(relay.admin, "?state=waiting&limit=2").await;
    assert_eq!(ids(&first), ["r1", "r3"]);
    let next = first["next"].as_str().expect("next");
    let second = rooms(
        relay.admin,
        &format!("?state=waiting&limit=2&cursor={next}"),
    )
    .await;
    assert_eq!(ids(&second), ["r5"]);
    assert!(second["next"].is_null());
    let others = rooms(relay.admin, "?state=no_customer").await;
    assert_eq!(ids(&others), ["r2", "r4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_refuses_a_bad_key_state_limit_or_cursor() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let (status, body) = get(relay.admin, "/v1/rooms", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = get(relay.admin, "/v1/rooms", Some("wrong")).await;
    assert_eq!(status, 401);
    for (query, code) in [
        ("?state=sleeping", "invalid_query"),
        ("?limit=0", "invalid_query"),
        ("?limit=100000", "invalid_query"),
        ("?limit=x", "invalid_query"),
        ("?cursor=zz", "invalid_cursor"),
    ] {
        let (status, body) = get(relay.admin, &format!("/v1/rooms{query}"), Some(API_KEY)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    let empty = rooms(relay.admin, "").await;
    assert_eq!(empty, serde_json::json!({"rooms": [], "next": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rooms_serves_the_listing_on_the_public_listener_in_demo_mode_only() {
    let dir = std::env::temp_dir().join(format!("relay-api-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("demo dir");
    for page in ["index.html", "customer.html", "agent.html"] {
        std::fs::write(dir.join(page), "<!doctype html>").expect("demo dir");
    }
    let demo_dir = assist_relay::demo::resolve_dir(Some(&dir)).expect("demo dir");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.demo_dir = Some(demo_dir);
    })
    .await;
    let mut cust = relay
        .connect_on(0, "demo-1", Role::Customer, "carol", Codec::Json)
        .await;
    cust.join(None).await;
    let listing = await_listing(&relay, "?state=waiting", |l| ids(l) == ["demo-1"]).await;
    for addr in relay.node_addrs() {
        let (status, body) = get(addr, "/demo/rooms?state=waiting", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ids(&body), ids(&listing));
        assert_eq!(body["rooms"][0]["members"], listing["rooms"][0]["members"]);
    }
    let (status, body) = get(relay.addr, "/demo/rooms?state=bogus", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_query"))
    );
    let _ = std::fs::remove_dir_all(&dir);

    let plain = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let (status, body) = get(plain.addr, "/demo/rooms", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("demo_off")));
}

/// The next chat frame (offset, from, role, id, text).
async fn next_chat(c: &mut Client) -> (u64, String, Role, String, String) {
    match c
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await
    {
        ServerFrame::Chat {
            offset,
            id,
            from,
            text,
            ..
        } => (offset, from.id, from.role, id, text),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_posts_chat_in_the_room_order_once_per_client_id() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let room = "chat-api";
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "dana", Codec::Json)
        .await;
    cust.join(None).await;
    let mut agent = relay
        .connect_on(1, room, Role::Agent, "agent-7", Codec::MsgPack)
        .await;
    agent.join(None).await;
    cust.chat("c-1", "hello?").await;
    let first = next_chat(&mut agent).await;
    assert_eq!(first.3, "c-1");
    assert_eq!(next_chat(&mut cust).await, first, "its own, echoed");

    // Posted through the other node than the customer's (in cluster mode).
    let admin = relay.admin_addrs()[relay.admin_addrs().len() - 1];
    let path = format!("/v1/rooms/{room}/chat");
    let body = r#"{"from":"ticket-bot","text":"Ticket #4711 opened.","id":"t-4711"}"#;
    let (status, posted) = post(admin, &path, Some(API_KEY), body).await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["duplicate"], false);
    let offset = posted["offset"].as_u64().expect("offset");
    assert!(offset > first.0);
    for c in [&mut cust, &mut agent] {
        let got = next_chat(c).await;
        assert_eq!(
            got,
            (
                offset,
                "ticket-bot".to_owned(),
                Role::System,
                "t-4711".to_owned(),
                "Ticket #4711 opened.".to_owned()
            )
        );
    }
    // A retry stores nothing and answers the same offset.
    let (status, again) = post(relay.admin, &path, Some(API_KEY), body).await;
    assert_eq!(status, 201);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["offset"], offset);
    // A participant named like the bot has its own ids.
    let mut late = relay
        .connect_on(1, room, Role::Customer, "ticket-bot", Codec::Json)
        .await;
    let joined = late.join(None).await;
    let chats: Vec<(u64, String)> = joined
        .catch_up
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Chat { offset, from, .. } => {
                Some((*offset, format!("{}/{}", from.id, from.role)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        chats,
        [
            (first.0, "dana/customer".to_owned()),
            (offset, "ticket-bot/system".to_owned())
        ]
    );
    late.chat("t-4711", "me too").await;
    let mine = next_chat(&mut agent).await;
    assert_eq!((mine.1.as_str(), mine.2), ("ticket-bot", Role::Customer));
    assert!(mine.0 > offset, "not taken for the bot's duplicate");
    cust.chat("c-2", "thanks").await;
    let next = next_chat(&mut agent).await;
    assert_eq!(next.3, "c-2", "the retry delivered nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_chat_is_refused_with_a_documented_error_for_each_bad_input() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let room = "chat-refusals";
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "erin", Codec::Json)
        .await;
    cust.join(None).await;
    let path = format!("/v1/rooms/{room}/chat");
    let long = "x".repeat(assist_relay_proto::MAX_CHAT_TEXT + 1);
    let too_long = format!(r#"{{"from":"bot","text":"{long}","id":"1"}}"#);
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "no key",
            r#"{"from":"bot","text":"hi","id":"1"}"#.into(),
            None,
            401,
            "unauthorized",
        ),
        ("not JSON", "{".into(), Some(API_KEY), 400, "invalid_body"),
        (
            "no id",
            r#"{"from":"bot","text":"hi"}"#.into(),
            Some(API_KEY),
            400,
            "invalid_body",
        ),
        (
            "bad from",
            r#"{"from":"a bot","text":"hi","id":"1"}"#.into(),
            Some(API_KEY),
            400,
            "invalid_body",
        ),
        (
            "empty text",
            r#"{"from":"bot","text":"","id":"1"}"#.into(),
            Some(API_KEY),
            400,
            "invalid_body",
        ),
        (
            "unknown field",
            r#"{"from":"bot","text":"hi","id":"1","role":"agent"}"#.into(),
            Some(API_KEY),
            400,
            "invalid_body",
        ),
        ("too long", too_long, Some(API_KEY), 413, "text_too_long"),
    ];
    for (what, body, key, status, code) in cases {
        let (got, answer) = post(relay.admin, &path, key, &body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    let (status, answer) = post(
        relay.admin,
        "/v1/rooms/nobody-here/chat",
        Some(API_KEY),
        r#"{"from":"bot","text":"hi","id":"1"}"#,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("room_not_open"))
    );
    let (status, _) = post(
        relay.admin,
        &format!("/v1/rooms/{room}/close"),
        Some(API_KEY),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = post(
        relay.admin,
        &path,
        Some(API_KEY),
        r#"{"from":"bot","text":"hi","id":"2"}"#,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("room_closed"))
    );
    // Nothing refused reached the room.
    cust.expect_no_entries(Duration::from_millis(200)).await;
}

#[test]
fn a_token_cannot_claim_the_system_role() {
    let auth = assist_relay::auth::Auth::new(SECRET.as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token = auth
        .mint(&assist_relay_proto::Claims {
            sub: "bot".into(),
            room: "r".into(),
            role: Role::System,
            exp: now + 60,
            iat: Some(now),
            mask: None,
            caps: None,
        })
        .expect("token");
    assert_eq!(
        auth.verify(&token).map(|c| c.sub),
        Err(assist_relay::auth::RejectReason::TokenInvalidClaims)
    );
    assert!("system".parse::<Role>().is_err(), "nor a CLI or demo token");
}
