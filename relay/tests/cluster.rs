//! Cluster mode under failure, with real processes: `relay serve` nodes sharing a redis-server,
//! nginx in front, nodes killed with SIGKILL, Redis stopped and restarted.

mod cluster_support;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use std::process::Command;
use std::time::Duration;

use assist_relay_proto::{ClientFrame, Codec, ErrorCode, Position, Role, ServerFrame};
use cluster_support::*;
use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[test]
fn both_nginx_configurations_pass_nginx_t() {
    for template in ["assist-relay.conf", "assist-relay-room-affinity.conf"] {
        let dir =
            std::env::temp_dir().join(format!("ar-nginx-t-{}-{template}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let nodes: Vec<SocketAddr> = vec![
            "127.0.0.1:8081".parse().expect("addr"),
            "127.0.0.1:8082".parse().expect("addr"),
        ];
        let conf = nginx_conf(
            template,
            &dir,
            "127.0.0.1:18080".parse().expect("addr"),
            &nodes,
        );
        let out = Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nginx -t");
        assert!(
            out.status.success(),
            "{template}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A client that survives its node: reconnects (through `url`), resumes from its position, and,
/// as a customer, resends whatever was not acknowledged.
struct Resilient {
    url: String,
    role: Role,
    sub: String,
    client: Option<Client>,
    epoch: String,
    last: u64,
    /// Events received, in order: (offset, raw JSON).
    events: Vec<(u64, String)>,
    /// Chat received: (offset, sender, id).
    chats: Vec<(u64, String, String)>,
    /// Acknowledged event indexes (customer).
    acked: std::collections::BTreeSet<usize>,
    /// Chat ids acknowledged.
    chat_acks: Vec<String>,
    resyncs: usize,
}

impl Resilient {
    fn new(url: &str, role: Role, sub: &str) -> Resilient {
        Resilient {
            url: url.to_owned(),
            role,
            sub: sub.to_owned(),
            client: None,
            epoch: String::new(),
            last: 0,
            events: Vec::new(),
            chats: Vec::new(),
            acked: Default::default(),
            chat_acks: Vec::new(),
            resyncs: 0,
        }
    }

    async fn ensure(&mut self) {
        if self.client.is_some() {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let token = token_with(&url_room(&self.url), self.role, &self.sub, 3600);
            let mut req = self.url.as_str().into_client_request().expect("request");
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("h"),
            );
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(Codec::Json.subprotocol()),
            );
            if let Ok(Ok((ws, _))) = tokio::time::timeout(
                Duration::from_secs(3),
                tokio_tungstenite::connect_async(req),
            )
            .await
            {
                let mut c = Client::new(ws, Codec::Json, self.role, &self.sub);
                let resume = (!self.epoch.is_empty()).then(|| Position {
                    epoch: self.epoch.clone(),
                    offset: self.last,
                });
                c.send(&ClientFrame::Join { resume }).await;
                self.client = Some(c);
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} could not reconnect",
                self.sub
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Handles frames until `d` passes without one; reconnects if the connection drops.
    async fn pump(&mut self, d: Duration) {
        self.ensure().await;
        loop {
            let Some(c) = self.client.as_mut() else {
                return;
            };
            let next = tokio::time::timeout(d, c.next_raw()).await;
            match next {
                Err(_) => return,
                Ok(None) => {
                    self.client = None;
                    self.ensure().await;
                }
                Ok(Some(f)) => self.on_frame(f),
            }
        }
    }

    fn on_frame(&mut self, f: ServerFrame<'static>) {
        match f {
            ServerFrame::Joined { epoch, mode, .. } => {
                if mode == assist_relay_proto::JoinMode::Resync {
                    self.resyncs += 1;
                }
                self.epoch = epoch;
            }
            ServerFrame::Resync { epoch, .. } => {
                self.resyncs += 1;
                self.epoch = epoch;
            }
            ServerFrame::Event { offset, event } => {
                assert!(
                    offset > self.last,
                    "{}: offset {offset} after {}",
                    self.sub,
                    self.last
                );
                self.last = offset;
                self.events.push((offset, event.json().to_owned()));
            }
            ServerFrame::Chat {
                offset, from, id, ..
            } => {
                assert!(
                    offset > self.last,
                    "{}: offset {offset} after {}",
                    self.sub,
                    self.last
                );
                self.last = offset;
                self.chats.push((offset, from.id, id));
            }
            ServerFrame::CaughtUp { offset } => self.last = self.last.max(offset),
            ServerFrame::Ack { id, .. } => {
                if let Some(i) = id.strip_prefix('e').and_then(|n| n.parse::<usize>().ok()) {
                    self.acked.insert(i);
                } else if !self.chat_acks.contains(&id) {
                    self.chat_acks.push(id);
                }
            }
            ServerFrame::Error { code, .. } => {
                assert!(
                    matches!(code, ErrorCode::Unavailable),
                    "{}: error {code}",
                    self.sub
                );
            }
            _ => {}
        }
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.ensure().await;
        if let Some(c) = self.client.as_mut() {
            if c.ws_send(encode(frame)).await.is_err() {
                self.client = None;
            }
        }
    }

    /// Publishes events[from..to] with ids `e<index>` on the current connection, stopping if it
    /// breaks: nothing may be sent on a new connection before the unacknowledged are resent.
    async fn publish_from(&mut self, events: &[String], from: usize, to: usize) {
        self.ensure().await;
        for (i, e) in events.iter().enumerate().take(to).skip(from) {
            let raw: &serde_json::value::RawValue = serde_json::from_str(e).expect("raw");
            let head = assist_relay_proto::EventHead::scan(raw).expect("head");
            let frame = ClientFrame::Event {
                id: Some(format!("e{i}")),
                event: assist_relay_proto::EventPayload(std::borrow::Cow::Borrowed(raw)),
                head,
            };
            let Some(c) = self.client.as_mut() else {
                return;
            };
            if c.ws_send(encode(&frame)).await.is_err() {
                self.client = None;
                return;
            }
        }
    }

    /// The first event index not acknowledged yet.
    fn first_unacked(&self) -> usize {
        (0..).find(|i| !self.acked.contains(i)).unwrap_or(0)
    }

    /// Publishes every event until all are acknowledged, resending in order from the first
    /// unacknowledged one after any failure (what the SDK does).
    async fn publish_all(&mut self, events: &[String], upto: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.first_unacked() < upto {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events never all acknowledged"
            );
            let from = self.first_unacked();
            self.publish_from(events, from, upto).await;
            self.pump(Duration::from_millis(500)).await;
        }
    }

    async fn chat_until_acked(&mut self, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.chat_acks.iter().any(|a| a == id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat {id} never acknowledged"
            );
            self.send(&ClientFrame::Chat {
                id: id.into(),
                text: format!("text of {id}"),
            })
            .await;
            self.pump(Duration::from_millis(300)).await;
        }
    }
}

fn url_room(url: &str) -> String {
    url.split("room=")
        .nth(1)
        .unwrap_or("")
        .split('&')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn encode(frame: &ClientFrame<'_>) -> tokio_tungstenite::tungstenite::Message {
    let bytes = frame.encode(Codec::Json).expect("encode");
    tokio_tungstenite::tungstenite::Message::Text(String::from_utf8(bytes).expect("utf8").into())
}

fn assert_exactly_once(who: &Resilient, acked: &[&str]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, _, id) in &who.chats {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for id in acked {
        assert_eq!(
            counts.get(id).copied(),
            Some(1),
            "{} saw chat {id} {:?} times",
            who.sub,
            counts.get(id)
        );
    }
}

/// The agent's events equal what the customer sent, each once, in order (a compact diff if not).
fn assert_same_events(agent: &Resilient, want: &[String]) {
    let got: Vec<&str> = agent.events.iter().map(|(_, e)| e.as_str()).collect();
    if let Some(i) = (0..got.len().max(want.len()))
        .find(|&i| got.get(i).copied() != want.get(i).map(String::as_str))
    {
        let show = |v: Option<&str>| v.map(|s| s.chars().take(120).collect::<String>());
        panic!(
            "agent has {} events, customer sent {}; first difference at index {i} (offset {:?}): got {:?}, want {:?}",
            got.len(),
            want.len(),
            agent.events.get(i).map(|e| e.0),
            show(got.get(i).copied()),
            show(want.get(i).map(String::as_str)),
        );
    }
}

fn events(n: usize) -> Vec<String> {
    (0..n as u64)
        .map(|i| {
            synthetic(
                if i == 0 {
                    4
                } else if i == 1 {
                    2
                } else {
                    3
                },
                i,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_of_a_customer_and_an_agent_loses_nothing_acknowledged() {
    let redis = RedisServer::start().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(NodeProcess::start(&redis.url(), &[]).await);
    }
    let nginx = Nginx::start(
        "assist-relay.conf",
        &nodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
    )
    .await;
    let url = format!("ws://{}/ws?room=kill", nginx.addr);
    let all = events(400);

    let mut customer = Resilient::new(&url, Role::Customer, "cust");
    let mut agent = Resilient::new(&url, Role::Agent, "agent");
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    customer.publish_all(&all, 200).await;
    customer.chat_until_acked("c-before").await;
    agent.chat_until_acked("a-before").await;
    agent.pump(Duration::from_millis(300)).await;

    // ip_hash sends every loopback client to one node: kill that one, mid-stream.
    let mut victim = None;
    for (i, n) in nodes.iter().enumerate() {
        if n.connections().await >= 2.0 {
            victim = Some(i);
        }
    }
    let victim = victim.expect("a node holds both clients");
    customer.publish_from(&all, 200, 260).await; // some of these are in flight when the node dies
    nodes[victim].kill9();

    customer.publish_all(&all, 400).await;
    customer.chat_until_acked("c-after").await;
    agent.chat_until_acked("a-after").await;
    while agent.events.len() < 400 || agent.chats.len() < 4 {
        let before = (agent.events.len(), agent.chats.len());
        agent.pump(Duration::from_secs(2)).await;
        if (agent.events.len(), agent.chats.len()) == before {
            break; // no progress: the comparison below says what is missing
        }
    }
    customer.pump(Duration::from_millis(500)).await;

    assert_same_events(&agent, &all);
    assert_eq!(
        agent.resyncs, 0,
        "the log still held everything, so the agent resumed"
    );
    let acked = ["c-before", "a-before", "c-after", "a-after"];
    assert_exactly_once(&agent, &acked);
    assert_exactly_once(&customer, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_turns_readiness_off_and_everyone_converges_after_it() {
    let mut redis = DurableRedis::start().await;
    let a = NodeProcess::start(&redis.url(), &[]).await;
    let b = NodeProcess::start(&redis.url(), &[]).await;
    let all = events(300);
    let mut customer = Resilient::new(
        &format!("ws://{}/ws?room=outage", a.addr),
        Role::Customer,
        "cust",
    );
    let mut agent = Resilient::new(
        &format!("ws://{}/ws?room=outage", b.addr),
        Role::Agent,
        "agent",
    );
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    customer.publish_all(&all, 100).await;
    customer.chat_until_acked("c-before").await;
    agent.chat_until_acked("a-before").await;

    redis.kill9();
    wait_until(Duration::from_secs(10), || async {
        !ready(a.admin).await && !ready(b.admin).await
    })
    .await;
    // Sends during the outage are refused as unavailable; the clients keep them to resend.
    customer.publish_from(&all, 100, 150).await;
    customer.pump(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    redis.restart().await;
    let restarted = tokio::time::Instant::now();
    wait_until(Duration::from_secs(10), || async {
        ready(a.admin).await && ready(b.admin).await
    })
    .await;
    eprintln!(
        "both nodes ready {:?} after redis came back",
        restarted.elapsed()
    );

    customer.publish_all(&all, 300).await;
    customer.chat_until_acked("c-after").await;
    while agent.events.len() < 300 || agent.chats.len() < 3 {
        let before = (agent.events.len(), agent.chats.len());
        agent.pump(Duration::from_secs(2)).await;
        if (agent.events.len(), agent.chats.len()) == before {
            break; // no progress: the comparison below says what is missing
        }
    }
    assert_same_events(&agent, &all);
    assert_exactly_once(&agent, &["c-before", "a-before", "c-after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_killed_node_are_reported_left_within_the_presence_ttl() {
    let redis = RedisServer::start().await;
    let a = NodeProcess::start(&redis.url(), &["--presence-ttl", "3s"]).await;
    let mut b = NodeProcess::start(&redis.url(), &["--presence-ttl", "3s"]).await;
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
    let c = customer.client.as_mut().expect("connected");
    c.recv_until(|f| matches!(f, ServerFrame::MemberJoined { member } if member.id == "agent"))
        .await;

    b.kill9();
    let killed = tokio::time::Instant::now();
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next_raw().await {
                Some(ServerFrame::MemberLeft { member }) if member.id == "agent" => return,
                Some(_) => {}
                None => panic!("customer disconnected"),
            }
        }
    })
    .await;
    assert!(
        left.is_ok(),
        "the agent of the dead node was never reported as left"
    );
    eprintln!(
        "member_left {:?} after the kill (presence ttl 3 s)",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_with_rooms_on_all_three_masters_relays_across_nodes() {
    let redis = RedisCluster::start().await;
    let a = NodeProcess::start(&redis.urls(), &["--redis-cluster"]).await;
    let b = NodeProcess::start(&redis.urls(), &["--redis-cluster"]).await;
    let all = events(40);
    let mut rooms = Vec::new();
    for r in 0..9 {
        let room = format!("rc-{r}");
        let mut customer = Resilient::new(
            &format!("ws://{}/ws?room={room}", a.addr),
            Role::Customer,
            "cust",
        );
        let mut agent = Resilient::new(
            &format!("ws://{}/ws?room={room}", b.addr),
            Role::Agent,
            "agent",
        );
        customer.pump(Duration::from_millis(100)).await;
        agent.pump(Duration::from_millis(100)).await;
        rooms.push((customer, agent));
    }
    for (customer, agent) in &mut rooms {
        customer.publish_all(&all, all.len()).await;
        customer.chat_until_acked("hello").await;
        agent.chat_until_acked("hi").await;
    }
    for (customer, agent) in &mut rooms {
        while agent.events.len() < all.len() || agent.chats.len() < 2 {
            let before = (agent.events.len(), agent.chats.len());
            agent.pump(Duration::from_secs(2)).await;
            if (agent.events.len(), agent.chats.len()) == before {
                break;
            }
        }
        customer.pump(Duration::from_millis(200)).await;
        assert_same_events(agent, &all);
        assert_exactly_once(agent, &["hello", "hi"]);
        assert_exactly_once(customer, &["hello", "hi"]);
    }
    for p in &redis.ports {
        assert!(
            redis.dbsize(*p) > 0,
            "master on port {p} holds no room keys"
        );
    }
}
