//! A cluster node started while its Redis is unreachable: the admin listener is bound at once,
//! `/livez` answers 200 and `/readyz` 503 naming the Redis address while the node retries, the
//! log names the address, and the node turns ready once Redis comes up; the same for
//! `relay compactor`'s admin listener (a real `relay serve`
//! process and a redis-server of this test started late on the port it was pointed at).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assist_relay_proto::{Codec, Role};
use common::*;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn probe(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    tokio::net::TcpStream::connect(admin).await.ok()?;
    Some(http_get(admin, path).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_redis_is_unreachable_and_readiness_follows_redis() {
    let redis_port = free_port(); // closed until redis-server starts below
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let log_path = std::env::temp_dir().join(format!(
        "ar-redis-startup-{}-{redis_port}.log",
        std::process::id()
    ));
    let log = std::fs::File::create(&log_path).expect("log file");
    let _node = Node(
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["serve", "--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/0")])
            .env("RELAY_JWT_SECRET", SECRET)
            .env("RELAY_LOG", "info")
            .env("RELAY_LOG_FORMAT", "json")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("relay runs"),
    );
    let address = format!("127.0.0.1:{redis_port}");
    // A compactor pointed at the same closed port.
    let compactor_admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let archive = std::env::temp_dir().join(format!(
        "ar-redis-startup-{}-{redis_port}-archive",
        std::process::id()
    ));
    let _compactor = Node(
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["compactor", "--admin-listen", &compactor_admin.to_string()])
            .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/0")])
            .args(["--archive-dir", &archive.display().to_string()])
            .env("RELAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay compactor runs"),
    );

    // Live, not ready, and both say why.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let livez = loop {
        if let Some(r) = probe(admin, "/livez").await {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admin listener never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(livez.0, 200, "{livez:?}");
    let (status, body) = probe(admin, "/readyz").await.expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&address), "/readyz names Redis: {body}");

    // The log names the address of the Redis it retries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("not reachable yet") && l.contains(&address))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry line naming {address}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still 503 after the first retries; the compactor's admin listener says the same.
    assert_eq!(probe(admin, "/readyz").await.map(|r| r.0), Some(503));
    assert_eq!(
        probe(compactor_admin, "/livez").await.map(|r| r.0),
        Some(200)
    );
    let (status, body) = probe(compactor_admin, "/readyz")
        .await
        .expect("the compactor's /readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&address), "{body}");

    // Redis comes up on that port: the node turns ready and serves.
    let _redis = RedisServer::start_on(redis_port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while probe(admin, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready after Redis started:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while probe(compactor_admin, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the compactor never ready after Redis started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let room = "startup-room";
    let req = ws_request(
        addr,
        Some(room),
        &token_with(room, Role::Agent, "alice", 600),
        Codec::Json,
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the node serves once ready");
    let mut agent = Client::new(ws, Codec::Json, Role::Agent, "alice");
    agent.join(None).await;
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_dir_all(&archive);
}
