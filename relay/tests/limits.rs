//! Connection admission under hostile input: handshakes in progress (idle sockets), connections
//! per participant, rooms per node, and the admin listener's limits. Over the wire, against both
//! backends (`RELAY_TEST_BACKEND=redis`: two nodes sharing one Redis).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use assist_relay_proto::{ClientFrame, Codec, Role};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Upgrades to `addr` with a bearer token and the JSON codec: the client, or the refusal's HTTP
/// status and JSON body.
async fn try_connect(
    addr: SocketAddr,
    room: &str,
    role: Role,
    sub: &str,
) -> Result<Client, (u16, serde_json::Value)> {
    let token = token_with(room, role, sub, 3600);
    let req = ws_request(addr, Some(room), &token, Codec::Json);
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Client::new(ws, Codec::Json, role, sub)),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Err((resp.status().as_u16(), json))
        }
        Err(e) => panic!("expected an upgrade or an HTTP refusal, got {e}"),
    }
}

/// Expects `status` and the JSON error `code`.
fn assert_refusal(got: Result<Client, (u16, serde_json::Value)>, status: u16, code: &str) {
    match got {
        Ok(c) => panic!("{}: upgrade was accepted", c.me.id),
        Err((s, body)) => assert_eq!(
            (s, body["error"].as_str()),
            (status, Some(code)),
            "body: {body}"
        ),
    }
}

/// A TCP connection to `to` from the loopback address `from` (Linux routes all of 127/8).
async fn tcp_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("tcp connect")
}

/// Whether the server closed `s` (EOF or reset) within `within`; bytes before the close are
/// ignored.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sockets this process has accepted on `port` (server side, established): lines of
/// `/proc/net/tcp` whose local port is `port` and that have an inode (a connection still in the
/// kernel's accept queue has none).
fn accepted_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9
                && f[1].rsplit(':').next() == Some(&format!("{port:04X}"))
                && f[3] == "01"
                && f[9] != "0"
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// Handshakes in progress

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_take_connection_slots_and_a_real_client_still_joins() {
    let relay = Relay::start_with(|cfg| {
        cfg.max_connections = 10;
        cfg.quotas.max_pending_handshakes = 8;
        cfg.quotas.max_pending_per_address = 0;
    })
    .await;
    relay.pin_first_node();
    // Slowloris: 30 sockets that never send the upgrade request (3x the connection cap).
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(relay.addr).await.expect("tcp connect"));
    }
    // The oldest ones gave their slots to newer ones: the first 20 are closed at once.
    for s in idle.iter_mut().take(20) {
        assert!(
            closed_by_server(s, Duration::from_secs(3)).await,
            "an old idle handshake kept its slot"
        );
    }
    assert_eq!(
        relay.open_connections(),
        0,
        "idle sockets are not connections"
    );
    // A real client connects and joins at once.
    let (mut c, _) = tokio::time::timeout(
        Duration::from_secs(2),
        relay.join("r1", Role::Customer, "cust", Codec::Json),
    )
    .await
    .expect("a real client joins while idle sockets are open");
    c.chat("m1", "still here").await;
    c.recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Ack { id, .. } if id == "m1"))
        .await;
    relay
        .await_metric(
            "relay_handshake_rejections_total{reason=\"handshake_evicted\"}",
            23.0, // 30 idle + 1 real through 8 slots
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_progress_are_capped_per_source_address() {
    let relay = Relay::start_with(|cfg| {
        cfg.quotas.max_pending_per_address = 4;
        cfg.handshake_timeout = Duration::from_secs(30);
    })
    .await;
    relay.pin_first_node();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tcp_from([127, 0, 0, 2], relay.addr).await);
    }
    // The fifth from the same address is answered 429 at once.
    relay.await_metric("relay_pending_handshakes", 4.0).await;
    let mut fifth = tcp_from([127, 0, 0, 2], relay.addr).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), fifth.read_to_end(&mut answer))
        .await
        .expect("the fifth idle socket is answered at once")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains("\"too_many_pending_from_address\""),
        "{answer}"
    );
    // Another address is not affected; the four still hold their slots.
    let (_c, _) = relay.join("r1", Role::Customer, "cust", Codec::Json).await;
    for s in &mut idle {
        assert!(!closed_by_server(s, Duration::from_millis(50)).await);
    }
    // A slot comes back when its socket goes.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = tcp_from([127, 0, 0, 2], relay.addr).await;
    assert!(!closed_by_server(&mut again, Duration::from_millis(300)).await);
}

// ---------------------------------------------------------------------------------------------
// Connections per participant

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_of_one_participant_are_capped_at_the_handshake_with_429() {
    let relay = Relay::start_with(|cfg| cfg.quotas.max_connections_per_participant = 3).await;
    let addr = relay.addr;
    // Upgraded, never joined: these held connection slots for the whole join timeout.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            try_connect(addr, "r1", Role::Customer, "cust")
                .await
                .expect("under the cap"),
        );
    }
    assert_refusal(
        try_connect(addr, "r1", Role::Customer, "cust").await,
        429,
        "too_many_connections_for_participant",
    );
    relay
        .await_metric(
            "relay_handshake_rejections_total{reason=\"too_many_connections_for_participant\"}",
            1.0,
        )
        .await;
    // Other participants of the room are not affected.
    let (_agent, _) = relay.join("r1", Role::Agent, "agent", Codec::Json).await;
    // Closing one frees its slot.
    let mut first = held.remove(0);
    first.ws.close(None).await.expect("close");
    first.closed().await;
    let mut next = None;
    for _ in 0..50 {
        match try_connect(addr, "r1", Role::Customer, "cust").await {
            Ok(c) => {
                next = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    next.expect("a closed connection frees its slot")
        .join(None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_participant_is_capped_over_every_node_and_a_closed_connection_frees_its_slot() {
    let relay = Relay::start_with(|cfg| cfg.quotas.max_connections_per_participant = 2).await;
    let addrs = relay.node_addrs();
    let on = |i: usize| addrs[i % addrs.len()];
    // One connection on each node (both on the single node when embedded), joined.
    let mut a = try_connect(on(0), "r1", Role::Customer, "cust")
        .await
        .expect("first");
    a.join(None).await;
    let mut b = try_connect(on(1), "r1", Role::Customer, "cust")
        .await
        .expect("second");
    b.join(None).await;
    // The third: refused at the handshake by the node that has both, or at `join` (close 4504)
    // by a node that only has one of them (the count is in Redis).
    match try_connect(on(0), "r1", Role::Customer, "cust").await {
        Err((status, body)) => {
            assert!(!cluster_mode(), "node 0 holds one connection only");
            assert_eq!(
                (status, body["error"].as_str()),
                (429, Some("too_many_connections_for_participant"))
            );
        }
        Ok(mut c) => {
            assert!(cluster_mode(), "one node holds both connections");
            c.send(&ClientFrame::Join { resume: None }).await;
            assert_eq!(
                c.closed().await,
                Closed::Frame(4504, "too_many_connections_for_participant".into())
            );
        }
    }
    // The first two still work.
    b.chat("m1", "hello").await;
    b.recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Ack { id, .. } if id == "m1"))
        .await;
    // Closing one gives its slot back (cluster: at once, through the presence exit).
    a.ws.close(None).await.expect("close");
    a.closed().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut c) = try_connect(on(0), "r1", Role::Customer, "cust").await {
            c.send(&ClientFrame::Join { resume: None }).await;
            match c.next_raw().await {
                Some(assist_relay_proto::ServerFrame::Joined { .. }) => break,
                other => assert!(
                    tokio::time::Instant::now() < deadline,
                    "reconnect after close: {other:?}"
                ),
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "slot not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Rooms per node

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_room_past_max_rooms_is_refused_with_503_and_existing_rooms_are_unaffected() {
    let relay = Relay::start_with(|cfg| cfg.quotas.max_rooms = 2).await;
    relay.pin_first_node(); // the cap is per node
    let (mut a, _) = relay.join("ra", Role::Customer, "cust", Codec::Json).await;
    let (_b, _) = relay.join("rb", Role::Customer, "cust", Codec::Json).await;
    assert_refusal(
        try_connect(relay.addr, "rc", Role::Customer, "cust").await,
        503,
        "too_many_rooms",
    );
    // Existing rooms take more participants.
    let (_a2, _) = relay.join("ra", Role::Agent, "agent", Codec::Json).await;
    // When a room's last connection goes, a new room fits again.
    a.ws.close(None).await.expect("close");
    a.closed().await;
    drop(_a2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut c = loop {
        match try_connect(relay.addr, "rc", Role::Customer, "cust").await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still refused: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    c.join(None).await;
}

// ---------------------------------------------------------------------------------------------
// Admin listener

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_admin_request_is_closed_after_the_header_timeout() {
    let relay =
        Relay::start_with(|cfg| cfg.quotas.admin_header_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(relay.admin).await.expect("connect");
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert!(
        closed_by_server(&mut s, Duration::from_secs(3)).await,
        "a half-sent request holds its connection"
    );
    // An idle connection that sends nothing at all goes too.
    let mut quiet = TcpStream::connect(relay.admin).await.expect("connect");
    assert!(closed_by_server(&mut quiet, Duration::from_secs(3)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_flood_holds_few_sockets_and_livez_and_ws_still_answer() {
    let relay = Relay::start_with(|cfg| {
        cfg.quotas.admin_max_connections = 4;
        cfg.quotas.admin_header_timeout = Duration::from_millis(500);
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(relay.admin).await.expect("connect");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        flood.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = accepted_sockets(relay.admin.port());
    assert!(held <= 4, "the admin listener holds {held} sockets");
    // The public listener is unaffected.
    let (_c, _) = relay.join("r1", Role::Customer, "cust", Codec::Json).await;
    // /livez answers at once (it takes the oldest connection's place).
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(2), http_get(relay.admin, "/livez"))
            .await
            .expect("/livez answered");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_the_bearer_token_when_one_is_set() {
    let relay = Relay::start_with(|cfg| {
        cfg.quotas.metrics_token = Some("scrape-token-0123456789".into());
    })
    .await;
    let (status, body) = http_get(relay.admin, "/metrics").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = raw_http(
        relay.admin,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = raw_http(
        relay.admin,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer scrape-token-0123456789\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("relay_connections"), "{body}");
    // Health probes stay open.
    assert_eq!(http_get(relay.admin, "/livez").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_open_without_a_token() {
    let relay = Relay::start().await;
    let (status, body) = http_get(relay.admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
}

/// A `relay serve` process with at most 256 file descriptors, killed on drop.
struct SmallProcess(std::process::Child);

impl Drop for SmallProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_flood_cannot_exhaust_the_processs_file_descriptors() {
    let (ws, admin) = (free_port(), free_port());
    let _relay = SmallProcess(
        std::process::Command::new("prlimit")
            .arg("--nofile=256:256")
            .arg(env!("CARGO_BIN_EXE_relay"))
            .args(["serve", "--listen", &format!("127.0.0.1:{ws}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--jwt-secret", SECRET, "--recordings", "false"])
            // Only the connection cap protects here: half-sent requests are not timed out.
            .args(["--admin-header-timeout", "60s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prlimit and relay run"),
    );
    let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
    let ws: SocketAddr = ([127, 0, 0, 1], ws).into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(admin).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not start"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // 600 half-sent requests: more than the process may open.
    let mut flood = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..600 {
        // (A connect can fail on a busy machine, e.g. no free ephemeral port: skip it.)
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(admin)).await {
            Ok(Ok(mut s)) => {
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
                flood.push(s);
            }
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(_) => {
                // The kernel's queue is full: the node stopped accepting.
                failed.push("connect timed out".into());
                break;
            }
        }
    }
    assert!(
        flood.len() >= 300,
        "only {} half-sent requests went out (more than the 256 descriptors are needed): {failed:?}",
        flood.len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The public listener still accepts and upgrades.
    let mut c = tokio::time::timeout(
        Duration::from_secs(5),
        try_connect(ws, "r1", Role::Customer, "cust"),
    )
    .await
    .expect("the public listener still accepts")
    .expect("upgraded");
    c.join(None).await;
    // And /livez answers.
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), http_get(admin, "/livez"))
        .await
        .expect("/livez answered");
    assert_eq!(status, 200);
}
