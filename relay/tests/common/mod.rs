//! Test harness: starts real relay nodes on port 0 and talks to them with real WebSocket clients
//! over loopback. Tests only use this API, so the same tests can later run against a cluster.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::Auth;
use assist_relay::config::NodeConfig;
use assist_relay::store::memory::MemoryStore;
use assist_relay::store::redis::{RedisConfig, RedisStore};
use assist_relay::telemetry::Metrics;
use assist_relay::{Node, NodeBuilder};
use assist_relay_proto::{Claims, Codec, Role, ServerFrame};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod client;
#[allow(unused_imports)] // each test file uses some
pub use client::{Client, Closed, Joined};

pub const SECRET: &str = "test-secret-test-secret-test-secret";
/// Longest a test waits for one expected frame.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// One node of a test relay.
struct TestNode {
    addr: SocketAddr,
    admin: SocketAddr,
    node: Arc<Node>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

enum Backend {
    Memory(Arc<MemoryStore>),
    Redis {
        stores: Vec<RedisStore>,
        _server: RedisServer,
    },
}

/// A running relay: one embedded node, or (with `RELAY_TEST_BACKEND=redis`) two nodes sharing a
/// private redis-server. Connections made through [`Relay::connect`] alternate between nodes, so
/// a customer and an agent of one test sit on different nodes.
pub struct Relay {
    /// The first node's WebSocket address.
    pub addr: SocketAddr,
    /// The first node's admin address.
    pub admin: SocketAddr,
    /// The first node.
    pub node: Arc<Node>,
    nodes: Vec<TestNode>,
    next: std::sync::atomic::AtomicUsize,
    pinned: std::sync::atomic::AtomicBool,
    backend: Backend,
}

/// Whether this run uses the Redis cluster backend.
pub fn cluster_mode() -> bool {
    std::env::var("RELAY_TEST_BACKEND").is_ok_and(|v| v == "redis")
}

/// A redis-server of this test alone, on a free port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = free_port();
        RedisServer::start_on(port).await
    }

    pub async fn start_on(port: u16) -> RedisServer {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        let server = RedisServer { port, child };
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").await.is_ok()
                    && s.read(&mut buf).await.is_ok_and(|n| n > 0)
                {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A room store on this server, as a node (or a compactor worker) of the test cluster has.
    pub async fn store(
        &self,
        log: assist_relay::store::LogConfig,
        metrics: assist_relay::store::redis::RedisMetrics,
    ) -> RedisStore {
        RedisStore::connect(
            RedisConfig {
                url: self.url(),
                tls: None,
                inline_max: 64 * 1024,
                presence_ttl: Duration::from_secs(5),
                dedup_ttl: Duration::from_secs(3600),
                room_ttl: Duration::from_secs(3600),
                cluster: false,
            },
            log,
            metrics,
            Duration::from_secs(10),
        )
        .await
        .expect("connect to the test redis")
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: its sockets stay open and say nothing,
    /// as a hung Redis does.
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server");
    }

    /// Stops the server (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Listens on loopback ports and serves a built node there, as `relay serve` does.
async fn start_node(node: Arc<Node>) -> TestNode {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let addr = listener.local_addr().expect("addr");
    let admin = admin_listener.local_addr().expect("admin addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(assist_relay::http::serve(
        listener,
        admin_listener,
        node.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    TestNode {
        addr,
        admin,
        node,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Relay {
    pub async fn start() -> Relay {
        Relay::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut NodeConfig)) -> Relay {
        Relay::start_nodes(2, tweak).await
    }

    /// Like [`Relay::start_with`], with `n` nodes in cluster mode (one embedded node otherwise).
    pub async fn start_nodes(n: usize, tweak: impl FnOnce(&mut NodeConfig)) -> Relay {
        let mut config = NodeConfig::with_secret(SECRET);
        tweak(&mut config);
        let (nodes, backend) = if cluster_mode() {
            let server = RedisServer::start().await;
            let mut nodes = Vec::new();
            let mut stores = Vec::new();
            for _ in 0..n {
                let metrics = Metrics::new();
                let store = server
                    .store(config.log.clone(), metrics.redis.clone())
                    .await;
                let node = NodeBuilder::new(config.clone())
                    .metrics(metrics)
                    .cluster(store.clone())
                    .await
                    .expect("cluster node");
                let node = start_node(node).await;
                if let Some(dir) = &config.archive_dir {
                    if stores.is_empty() {
                        // One in-process worker of the job stream.
                        let archive: Arc<dyn assist_relay::compactor::Archive> =
                            Arc::new(assist_relay::compactor::FsArchive::new(dir));
                        let cfg = assist_relay::compactor::worker::WorkerConfig {
                            consumer: "test-worker".into(),
                            claim_after: Duration::from_secs(30),
                            max_attempts: 3,
                            hold: Duration::ZERO,
                            idle_close: config.customer_idle_close,
                            webhooks: assist_relay::webhook::Webhooks::disabled(),
                            render: None,
                        };
                        let (_keep, stop) = tokio::sync::watch::channel(false);
                        std::mem::forget(_keep);
                        // Its own connection: the worker's blocking reads must not hold up a
                        // node's commands.
                        let worker_store =
                            server.store(config.log.clone(), Metrics::new().redis).await;
                        // Queues `recording.*` (the nodes deliver them), and the members of the
                        // rooms it removes as left.
                        let hooks = assist_relay::webhook::Webhooks::cluster(
                            config.webhooks.clone(),
                            worker_store.clone(),
                            Metrics::new().webhook,
                            false,
                        );
                        if hooks.enabled() {
                            use assist_relay::store::Presence;
                            worker_store
                                .watch(assist_relay::webhook::presence_watcher(hooks.clone()));
                        }
                        let cfg = assist_relay::compactor::worker::WorkerConfig {
                            webhooks: hooks,
                            ..cfg
                        };
                        tokio::spawn(assist_relay::compactor::worker::run(
                            worker_store,
                            archive,
                            cfg,
                            assist_relay::compactor::worker::CompactorMetrics::new(),
                            stop,
                        ));
                    }
                }
                nodes.push(node);
                stores.push(store);
            }
            (
                nodes,
                Backend::Redis {
                    stores,
                    _server: server,
                },
            )
        } else {
            let (node, store) = NodeBuilder::new(config).embedded();
            let node = start_node(node).await;
            (vec![node], Backend::Memory(store))
        };
        Relay {
            addr: nodes[0].addr,
            admin: nodes[0].admin,
            node: nodes[0].node.clone(),
            nodes,
            next: Default::default(),
            pinned: Default::default(),
            backend,
        }
    }

    /// Every node's WebSocket address.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// Every node's admin address.
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.admin).collect()
    }

    /// Connects to node `i` (modulo the node count: embedded mode has one).
    pub async fn connect_on(
        &self,
        i: usize,
        room: &str,
        role: Role,
        sub: &str,
        codec: Codec,
    ) -> Client {
        let token = self.token(room, role, sub);
        self.connect_on_with_token(i, room, &token, role, sub, codec)
            .await
    }

    /// Connects to node `i` with a given token.
    pub async fn connect_on_with_token(
        &self,
        i: usize,
        room: &str,
        token: &str,
        role: Role,
        sub: &str,
        codec: Codec,
    ) -> Client {
        let addr = self.nodes[i % self.nodes.len()].addr;
        let req = ws_request(addr, Some(room), token, codec);
        let (ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(codec.subprotocol())
        );
        Client::new(ws, codec, role, sub)
    }

    pub fn token(&self, room: &str, role: Role, sub: &str) -> String {
        token_with(room, role, sub, 3600)
    }

    /// Sends every later connection to the first node (for behaviour that is per node, such as
    /// the connection cap).
    pub fn pin_first_node(&self) {
        self.pinned
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next node in turn (the first one when pinned).
    fn next_node(&self) -> usize {
        if self.pinned.load(std::sync::atomic::Ordering::Relaxed) {
            0
        } else {
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.nodes.len()
        }
    }

    /// The URL of the next node in turn.
    pub fn url(&self, room: &str) -> String {
        format!("ws://{}/ws?room={room}", self.nodes[self.next_node()].addr)
    }

    /// Open WebSocket connections over all nodes.
    pub fn open_connections(&self) -> usize {
        self.nodes.iter().map(|n| n.node.open_connections()).sum()
    }

    /// Loses a room's log, as a Redis flush or an embedded restart would: the next use of the
    /// room starts a new epoch.
    pub async fn lose_room_log(&self, room: &str) {
        match &self.backend {
            Backend::Memory(store) => store.drop_room(room),
            Backend::Redis { stores, .. } => {
                stores[0].delete_room(room).await.expect("delete room")
            }
        }
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the shared redis-server; false in embedded mode.
    pub fn signal_redis(&self, sig: &str) -> bool {
        match &self.backend {
            Backend::Redis { _server, .. } => {
                _server.signal(sig);
                true
            }
            Backend::Memory(_) => false,
        }
    }

    /// Makes Redis forget its scripts (`SCRIPT FLUSH`, as a restart does); nothing embedded.
    pub async fn flush_scripts(&self) {
        if let Backend::Redis { stores, .. } = &self.backend {
            let mut flush = redis::cmd("SCRIPT");
            flush.arg("FLUSH");
            let _: String = stores[0].command(&flush).await.expect("script flush");
        }
    }

    /// Connects with a bearer token and the given codec; does not join.
    pub async fn connect(&self, room: &str, role: Role, sub: &str, codec: Codec) -> Client {
        let token = self.token(room, role, sub);
        self.connect_with_token(room, &token, role, sub, codec)
            .await
    }

    /// Connects with a given token (bearer) and codec to the next node in turn; does not join.
    pub async fn connect_with_token(
        &self,
        room: &str,
        token: &str,
        role: Role,
        sub: &str,
        codec: Codec,
    ) -> Client {
        self.connect_on_with_token(self.next_node(), room, token, role, sub, codec)
            .await
    }

    /// The value of one series (`name{labels}`) in `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = self.admin_get("/metrics").await;
        assert_eq!(status, 200, "/metrics: {body}");
        body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Polls `/metrics` (bounded) until `series` reads `want`.
    pub async fn await_metric(&self, series: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.metric(series).await;
            if got == Some(want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series}: expected {want}, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls (bounded) until the relay counts `n` open connections.
    pub async fn await_open_connections(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.open_connections() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "open connections stayed at {} (expected {n})",
                self.open_connections()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls (bounded) until the nodes count `n` handshakes in progress (accepted TCP
    /// connections not yet upgraded; they are not open connections).
    pub async fn await_pending_handshakes(&self, n: usize) {
        let pending = || -> usize { self.nodes.iter().map(|t| t.node.quotas.pending()).sum() };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pending() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "handshakes in progress stayed at {} (expected {n})",
                pending()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Connects and joins fresh.
    pub async fn join(&self, room: &str, role: Role, sub: &str, codec: Codec) -> (Client, Joined) {
        let mut c = self.connect(room, role, sub, codec).await;
        let j = c.join(None).await;
        (c, j)
    }

    /// Begins draining every node, as on SIGTERM.
    pub fn begin_shutdown(&mut self) {
        for n in &mut self.nodes {
            if let Some(stop) = n.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    /// Drains and waits for every node to stop.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        for n in &mut self.nodes {
            if let Some(task) = n.task.take() {
                let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
            }
        }
    }

    /// GET on the admin listener. `/metrics` is merged over the nodes that still answer
    /// (counters and histograms summed, gauges the maximum), so assertions read the same whichever
    /// node served a connection; other paths go to the first node.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        if path != "/metrics" || self.nodes.len() == 1 {
            return http_get(self.admin, path).await;
        }
        let mut order: Vec<String> = Vec::new();
        let mut values: std::collections::HashMap<String, f64> = Default::default();
        let mut gauges: std::collections::HashSet<String> = Default::default();
        for n in &self.nodes {
            if TcpStream::connect(n.admin).await.is_err() {
                continue; // that node has finished draining
            }
            let (_, body) = http_get(n.admin, path).await;
            for line in body.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    if let Some((name, "gauge")) = rest.split_once(' ') {
                        gauges.insert(name.to_owned());
                    }
                }
                let Some((series, value)) =
                    line.rsplit_once(' ').filter(|_| !line.starts_with('#'))
                else {
                    if !values.contains_key(line) {
                        order.push(line.to_owned());
                        values.insert(line.to_owned(), f64::NAN);
                    }
                    continue;
                };
                let value: f64 = value.parse().unwrap_or(0.0);
                let name = series.split('{').next().unwrap_or(series);
                match values.get_mut(series) {
                    Some(v) if gauges.contains(name) => *v = v.max(value),
                    Some(v) => *v += value,
                    None => {
                        order.push(series.to_owned());
                        values.insert(series.to_owned(), value);
                    }
                }
            }
        }
        let body = order
            .iter()
            .map(|k| {
                if k.starts_with('#') {
                    k.clone()
                } else {
                    format!("{k} {}", values[k])
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (200, body + "\n")
    }
}

/// Minimal HTTP/1.1 GET over a raw socket (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends a raw HTTP request and reads the whole response (status, body).
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(RECV_TIMEOUT, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn token_with(room: &str, role: Role, sub: &str, ttl_secs: i64) -> String {
    token_masked(room, role, sub, ttl_secs, None)
}

/// A token that names a masking policy.
pub fn token_masked(
    room: &str,
    role: Role,
    sub: &str,
    ttl_secs: i64,
    mask: Option<&str>,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    Auth::new(SECRET.as_bytes())
        .mint(&Claims {
            sub: sub.into(),
            room: room.into(),
            role,
            exp: (now + ttl_secs).max(0) as u64,
            iat: Some(now as u64),
            mask: mask.map(str::to_owned),
            caps: None,
        })
        .expect("mint")
}

/// The rrweb events of a fixture recording, as raw JSON text, in order.
pub fn fixture_events(name: &str) -> Vec<String> {
    // `../shared` beside the repository; RRWEB_FIXTURES overrides (a git worktree elsewhere).
    let dir = std::env::var("RRWEB_FIXTURES")
        .unwrap_or_else(|_| format!("{}/../../shared/fixtures/rrweb", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let events: Vec<&RawValue> = serde_json::from_str(&text).expect("fixture is a JSON array");
    events.into_iter().map(|r| r.get().to_owned()).collect()
}

/// A synthetic rrweb event: 4 Meta, 2 FullSnapshot, anything else a Mutation (never coalesced).
/// `n` makes it unique.
pub fn synthetic(kind: u8, n: u64) -> String {
    match kind {
        4 => format!(
            r#"{{"type":4,"data":{{"href":"https://shop.example/{n}","width":1280,"height":800}},"timestamp":{n}}}"#
        ),
        2 => format!(
            r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":{n}}}"#
        ),
        _ => format!(
            r#"{{"type":3,"data":{{"source":0,"texts":[{{"id":7,"value":"line {n}"}}],"attributes":[],"removes":[],"adds":[]}},"timestamp":{n}}}"#
        ),
    }
}

/// A synthetic MouseMove (incremental source 1), which a lagging viewer may get coalesced.
pub fn mouse_move(n: u64) -> String {
    format!(
        r#"{{"type":3,"data":{{"source":1,"positions":[{{"x":{n},"y":2,"id":5,"timeOffset":0}}]}},"timestamp":{n}}}"#
    )
}

/// Raw JSON of an event frame.
pub fn event_json(f: &ServerFrame<'_>) -> Option<(u64, String)> {
    match f {
        ServerFrame::Event { offset, event } => Some((*offset, event.json().to_owned())),
        _ => None,
    }
}

/// The upgrade request of a client: `/ws` (with `?room=` when given), the token as a bearer
/// header, the codec's subprotocol.
pub fn ws_request(
    addr: SocketAddr,
    room: Option<&str>,
    token: &str,
    codec: Codec,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let query = room.map(|r| format!("?room={r}")).unwrap_or_default();
    let mut req = format!("ws://{addr}/ws{query}")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(codec.subprotocol()),
    );
    req
}
