//! Cluster mode under failure, with real processes: `relay serve` nodes sharing a redis-server,
//! nginx in front, nodes killed with SIGKILL, Redis stopped and restarted.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assist_relay_proto::{ClientFrame, Codec, ErrorCode, Position, Role, ServerFrame};
use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A `relay serve` process.
struct NodeProcess {
    addr: SocketAddr,
    admin: SocketAddr,
    child: Child,
}

impl NodeProcess {
    async fn start(redis_url: &str, extra: &[&str]) -> NodeProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .args(["--redis-url", redis_url, "--log-format", "json"])
            .args(extra)
            .env("RELAY_JWT_SECRET", SECRET)
            .env(
                "RELAY_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(match std::env::var("NODE_LOG_DIR") {
                Ok(dir) => Stdio::from(
                    std::fs::File::create(format!("{dir}/node-{}.log", addr.port()))
                        .expect("log file"),
                ),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("relay binary runs");
        let node = NodeProcess { addr, admin, child };
        wait_until(Duration::from_secs(20), || async {
            ready(node.admin).await
        })
        .await;
        node
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    async fn connections(&self) -> f64 {
        let (_, body) = http_get(self.admin, "/metrics").await;
        body.lines()
            .filter(|l| l.starts_with("relay_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn ready(admin: SocketAddr) -> bool {
    if tokio::net::TcpStream::connect(admin).await.is_err() {
        return false;
    }
    http_get(admin, "/readyz").await.0 == 200
}

async fn wait_until<F, Fut>(limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A redis-server with AOF `appendfsync always` in its own directory: what the no-loss guarantee
/// across a Redis restart assumes (docs/operations.md).
struct DurableRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl DurableRedis {
    async fn start() -> DurableRedis {
        let dir =
            std::env::temp_dir().join(format!("ar-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = DurableRedis {
            port: free_port(),
            dir,
            child: None,
        };
        r.restart().await;
        r
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx with one of the deploy/nginx configurations, its upstream list replaced by our nodes.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

fn nginx_conf(template: &str, dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr]) -> PathBuf {
    let path = format!("{}/../deploy/nginx/{template}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.contains("# BEGIN upstream servers") {
            skipping = true;
            for u in upstreams {
                out.push_str(&format!("    server {u} max_fails=1 fail_timeout=10s;\n"));
            }
            continue;
        }
        if line.contains("# END upstream servers") {
            skipping = false;
            continue;
        }
        if skipping {
            continue;
        }
        if line.trim() == "listen 8080;" {
            out.push_str(&format!("    listen {listen};\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(dir.join("relay.conf"), out).expect("write relay.conf");
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
         include {d}/relay.conf;\n}}\n"
    );
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).expect("write nginx.conf");
    conf
}

impl Nginx {
    async fn start(template: &str, upstreams: &[SocketAddr]) -> Nginx {
        let dir =
            std::env::temp_dir().join(format!("ar-nginx-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let conf = nginx_conf(template, &dir, addr, upstreams);
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test installs it)");
        wait_until(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        Nginx { addr, child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers first (SIGKILL would orphan them, port and all).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

/// A three-master Redis Cluster (no replicas) on free loopback ports.
struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = 20_000 + (rand_u16() % 20_000);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            return p;
        }
    }
}

fn rand_u16() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        % 65_521) as u16
}

impl RedisCluster {
    async fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "ar-rcluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let p = cluster_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut children = Vec::new();
        for p in &ports {
            children.push(
                Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                    .arg("--dir")
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server runs"),
            );
        }
        let cluster = RedisCluster {
            ports,
            children,
            dir,
        };
        for p in &cluster.ports {
            let p = *p;
            wait_until(Duration::from_secs(10), || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", p))
                    .await
                    .is_ok()
            })
            .await;
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &cluster.ports {
            let p = *p;
            wait_until(Duration::from_secs(20), || async move {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output();
                out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            })
            .await;
        }
        cluster
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn dbsize(&self, port: u16) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DBSIZE"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
