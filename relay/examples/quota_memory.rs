//! Measures what the admission quotas let one client make a node hold: the resident memory (RSS)
//! of a `relay serve` process before and after one customer token opens its most connections,
//! after idle sockets fill the handshakes in progress, and per room. Not a test: figures for
//! docs/operations.md.
//!
//! `cargo build --release -p assist-relay --bin relay && cargo run -p assist-relay --example
//! quota_memory -- target/release/relay [redis://127.0.0.1:PORT]` (the node under measurement is
//! the release binary; the clients may be a debug build).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::Auth;
use assist_relay_proto::{Claims, Role};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "quota-memory-secret-quota-memory-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn token(room: &str, role: Role, sub: &str) -> String {
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
            caps: None,
        })
        .expect("mint")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and joins; `None` when refused.
async fn join(port: u16, room: &str, role: Role, sub: &str) -> Option<Ws> {
    let mut req = format!("ws://127.0.0.1:{port}/ws?room={room}")
        .into_client_request()
        .ok()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(room, role, sub))).ok()?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.ok()?;
    ws.send(Message::text(r#"{"type":"join"}"#)).await.ok()?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"joined\"") => return Some(ws),
            Ok(Some(Ok(Message::Text(_)))) | Ok(Some(Ok(Message::Ping(_)))) => {}
            _ => return None,
        }
    }
}

struct Relay {
    child: Child,
    port: u16,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &str, extra: &[&str]) -> Relay {
    let port = free_port();
    let admin = free_port();
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--jwt-secret", SECRET, "--recordings", "false"])
        .args(["--log-format", "json"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay runs");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Relay { child, port }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("target/release/relay");
    let redis: Vec<String> = args
        .get(2)
        .map(|u| vec!["--redis-url".to_owned(), u.clone()])
        .unwrap_or_default();
    let redis: Vec<&str> = redis.iter().map(String::as_str).collect();
    let mode = if redis.is_empty() {
        "embedded"
    } else {
        "cluster"
    };

    // 1. One customer token at --max-connections-per-participant (8), all joined.
    {
        let r = start(bin, &redis).await;
        let pid = r.child.id();
        let _warm = join(r.port, "warm", Role::Agent, "a")
            .await
            .expect("warm-up");
        settle().await;
        let base = rss_kib(pid);
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match join(r.port, "room-1", Role::Customer, "cust").await {
                Some(ws) => held.push(ws),
                None => refused += 1,
            }
        }
        settle().await;
        let after = rss_kib(pid);
        println!(
            "{mode}: one token, {} connections joined ({refused} refused): RSS {base} -> {after} KiB (+{} KiB, {} KiB per connection)",
            held.len(),
            after.saturating_sub(base),
            after.saturating_sub(base) / held.len().max(1) as u64
        );
        if let Some(url) = args.get(2) {
            let client = redis::Client::open(url.as_str()).expect("redis url");
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg("ar:{room-1}:presence")
                .query_async(&mut c)
                .await
                .expect("MEMORY USAGE");
            println!(
                "{mode}: Redis presence set of the room (8 connections of one token): {bytes:?} bytes"
            );
        }
    }

    // 2. Idle sockets from one address, then from any address (per-address limit off).
    for (label, extra) in [
        (
            "idle sockets, one address (default --max-pending-per-address 64)",
            vec![],
        ),
        (
            "idle sockets, per-address limit off (--max-pending-handshakes 1000 full)",
            vec!["--max-pending-per-address", "0"],
        ),
    ] {
        let mut all = redis.clone();
        all.extend(extra);
        let r = start(bin, &all).await;
        let pid = r.child.id();
        let _warm = join(r.port, "warm", Role::Agent, "a")
            .await
            .expect("warm-up");
        settle().await;
        let base = rss_kib(pid);
        let mut idle = Vec::new();
        // From 127.0.0.2; the real client below comes from 127.0.0.1.
        for _ in 0..2000 {
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                continue;
            };
            if socket.bind(([127, 0, 0, 2], 0).into()).is_err() {
                continue;
            }
            if let Ok(s) = socket.connect(([127, 0, 0, 1], r.port).into()).await {
                idle.push(s);
            }
        }
        settle().await;
        let after = rss_kib(pid);
        let still = join(r.port, "room-1", Role::Customer, "real")
            .await
            .is_some();
        println!(
            "{mode}: {label}: 2000 opened: RSS {base} -> {after} KiB (+{} KiB); a real client joins: {still}",
            after.saturating_sub(base)
        );
    }

    // 2b. The admin listener: 2000 half-sent requests (it holds --admin-max-connections, 64).
    {
        let admin = free_port();
        let listen = format!("127.0.0.1:{admin}");
        let mut all2 = redis.clone();
        all2.extend([
            "--admin-header-timeout",
            "60s",
            "--admin-listen",
            listen.as_str(),
        ]);
        let port = free_port();
        let listen_ws = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["serve", "--listen", &listen_ws])
            .args(["--jwt-secret", SECRET, "--recordings", "false"])
            .args(&all2)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay runs");
        let r = Relay { child, port };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = r.child.id();
        let base = rss_kib(pid);
        let mut flood = Vec::new();
        for _ in 0..2000 {
            use tokio::io::AsyncWriteExt;
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await {
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
                flood.push(s);
            }
        }
        settle().await;
        let after = rss_kib(pid);
        println!(
            "{mode}: admin listener, 2000 half-sent requests: RSS {base} -> {after} KiB (+{} KiB)",
            after.saturating_sub(base)
        );
    }

    // 3. Rooms: 500 rooms with one customer each, at two ring sizes.
    for buffer in ["256", "4096"] {
        let mut all = redis.clone();
        all.extend(["--room-buffer", buffer]);
        let r = start(bin, &all).await;
        let pid = r.child.id();
        let _warm = join(r.port, "warm", Role::Agent, "a")
            .await
            .expect("warm-up");
        settle().await;
        let base = rss_kib(pid);
        let mut held = Vec::new();
        for i in 0..500 {
            if let Some(ws) = join(r.port, &format!("room-{i}"), Role::Customer, "c").await {
                held.push(ws);
            }
        }
        settle().await;
        let with_rooms = rss_kib(pid);
        println!(
            "{mode}: --room-buffer {buffer}: {} rooms with one joined customer: RSS {base} -> {with_rooms} KiB ({} KiB per room and connection)",
            held.len(),
            with_rooms.saturating_sub(base) / held.len().max(1) as u64
        );
    }
}
