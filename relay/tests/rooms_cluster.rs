//! The live-room listing (`GET /v1/rooms`) across `relay serve` processes sharing Redis: a killed
//! node's members drop out within the presence TTL, and on a three-master Redis Cluster (rooms on
//! every master, the directory's index on one) every node lists every room once with all its
//! members. Starts its own redis-server(s) whatever `RELAY_TEST_BACKEND` says.

mod cluster_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use assist_relay_proto::Role;
use cluster_support::resilient::Resilient;
use cluster_support::*;
use common::*;
use serde_json::Value;

const API_KEY: &str = "rooms-cluster-key-0123456789";

async fn rooms(admin: SocketAddr, query: &str) -> Value {
    let (status, body) = raw_http(
        admin,
        &format!(
            "GET /v1/rooms{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn subs(room: &Value) -> Vec<String> {
    let mut s: Vec<String> = room["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["sub"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or("")
            )
        })
        .collect();
    s.sort();
    s
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_agent_leaves_the_listing_and_the_customer_waits_again() {
    let redis = RedisServer::start().await;
    let flags = ["--presence-ttl", "2s", "--api-key", API_KEY];
    let a = NodeProcess::start(&redis.url(), &flags).await;
    let mut b = NodeProcess::start(&redis.url(), &flags).await;
    let mut customer = Resilient::new(
        &format!("ws://{}/ws?room=dead", a.addr),
        Role::Customer,
        "cust",
    );
    let mut agent = Resilient::new(
        &format!("ws://{}/ws?room=dead", b.addr),
        Role::Agent,
        "agent",
    );
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    wait_until(Duration::from_secs(10), || async {
        let l = rooms(a.admin, "").await;
        l["rooms"][0]["state"] == "assisted"
    })
    .await;
    let both = rooms(b.admin, "").await;
    assert_eq!(both["rooms"].as_array().map(Vec::len), Some(1), "{both}");
    assert_eq!(subs(&both["rooms"][0]), ["agent/agent", "cust/customer"]);

    let killed = now_ms();
    b.kill9();
    wait_until(Duration::from_secs(10), || async {
        rooms(a.admin, "?state=waiting").await["rooms"][0]["room"] == "dead"
    })
    .await;
    let l = rooms(a.admin, "").await;
    let room = &l["rooms"][0];
    assert_eq!(subs(room), ["cust/customer"]);
    // Waiting since about when the agent was last seen: after the kill, less its refresh period.
    let since = room["waiting_since_ms"].as_u64().expect("waiting since");
    assert!(since + 2_000 >= killed && since <= now_ms(), "{room}");
    customer.pump(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_every_node_lists_every_room_once_with_all_its_members() {
    let redis = RedisCluster::start().await;
    let flags = ["--redis-cluster", "--api-key", API_KEY];
    let a = NodeProcess::start(&redis.urls(), &flags).await;
    let b = NodeProcess::start(&redis.urls(), &flags).await;
    let mut clients = Vec::new();
    for r in 0..9 {
        let room = format!("rc-{r}");
        let mut customer = Resilient::new(
            &format!("ws://{}/ws?room={room}", a.addr),
            Role::Customer,
            "cust",
        );
        customer.pump(Duration::from_millis(50)).await;
        clients.push(customer);
        if r % 2 == 0 {
            let mut agent = Resilient::new(
                &format!("ws://{}/ws?room={room}", b.addr),
                Role::Agent,
                "agent",
            );
            agent.pump(Duration::from_millis(50)).await;
            clients.push(agent);
        }
    }
    for admin in [a.admin, b.admin] {
        wait_until(Duration::from_secs(10), || async {
            rooms(admin, "").await["rooms"].as_array().map(Vec::len) == Some(9)
        })
        .await;
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = rooms(admin, &format!("?limit=4&cursor={cursor}")).await;
            for r in page["rooms"].as_array().expect("rooms") {
                let n: usize = r["room"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("rc-"))
                    .and_then(|s| s.parse().ok())
                    .expect("room");
                let want: Vec<&str> = if n % 2 == 0 {
                    vec!["agent/agent", "cust/customer"]
                } else {
                    vec!["cust/customer"]
                };
                assert_eq!(subs(r), want, "{r}");
                assert_eq!(r["state"], if n % 2 == 0 { "assisted" } else { "waiting" });
                seen.push(n);
            }
            match page["next"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
    }
    let waiting = rooms(b.admin, "?state=waiting").await;
    assert_eq!(waiting["rooms"].as_array().map(Vec::len), Some(4));
}
