//! The audit trail (`--audit-log FILE`): a real `relay serve` process and `relay export`, and the
//! JSON lines they append to the file (docs/operations.md, "Audit log").

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const API_KEY: &str = "audit-test-api-key-0123456789";

struct Node {
    addr: SocketAddr,
    admin: SocketAddr,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(addr: SocketAddr, room: &str, token: &str) -> Result<Client, String> {
    let mut req = format!("ws://{addr}/ws?room={room}")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Client::new(ws, Codec::Json, Role::Customer, "x"))
}

fn api(admin: SocketAddr, method: &str, path: &str, key: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn find<'a>(all: &'a [Value], event: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    all.iter()
        .find(|l| l["event"] == event && pred(l))
        .unwrap_or_else(|| panic!("no {event} line matches in:\n{all:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_refusals_api_calls_session_ends_recordings_and_exports_are_audited() {
    let dir = std::env::temp_dir().join(format!("ar-audit-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let audit = dir.join("audit.jsonl");
    let archive = dir.join("archive");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .args(["--audit-log", &audit.display().to_string()])
        .args(["--archive-dir", &archive.display().to_string()])
        .env("RELAY_JWT_SECRET", SECRET)
        .env("RELAY_API_KEY", API_KEY)
        // The normal stream may be quiet: the audit file does not depend on RELAY_LOG.
        .env("RELAY_LOG", "off")
        .stdout(Stdio::null())
        .spawn()
        .expect("relay runs");
    let node = Node { addr, admin, child };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http_get_ok(node.admin).await.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "node not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Joins, and an event so that the room has a recording.
    let room = "audit-room";
    let mut customer = connect(
        node.addr,
        room,
        &token_with(room, Role::Customer, "cust", 600),
    )
    .await
    .expect("customer connects");
    customer.join(None).await;
    let mut agent = connect(
        node.addr,
        room,
        &token_with(room, Role::Agent, "agent", 600),
    )
    .await
    .expect("agent connects");
    agent.join(None).await;
    customer.publish(&synthetic(4, 1), Some("e1")).await;
    customer.publish(&synthetic(2, 2), Some("e2")).await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;

    // Refused tokens: an expired one, one signed with another key, one for another room.
    let expired = token_with(room, Role::Agent, "late", -120);
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "mallory", "room": room, "role": "agent", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .expect("mint");
    let other_room = token_with("elsewhere", Role::Agent, "a2", 600);
    for t in [&expired, &forged, &other_room] {
        assert!(connect(node.addr, room, t).await.is_err(), "refused");
    }

    // `/v1`: a wrong key, then the session is ended through the API.
    let (status, _) = raw_http(
        node.admin,
        &api(
            node.admin,
            "GET",
            &format!("/v1/rooms/{room}"),
            "wrong-key-wrong-key",
        ),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = raw_http(
        node.admin,
        &api(
            node.admin,
            "POST",
            &format!("/v1/rooms/{room}/close"),
            API_KEY,
        ),
    )
    .await;
    assert_eq!((status, body.trim()), (200, r#"{"closed":true}"#));
    assert!(matches!(customer.closed().await, Closed::Frame(4502, _)));

    // The recording, then its export by another process appending to the same file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lines(&audit)
        .iter()
        .any(|l| l["event"] == "recording_written")
    {
        assert!(tokio::time::Instant::now() < deadline, "no recording");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out_dir = dir.join("export");
    let export = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["export", room, "--out", &out_dir.display().to_string()])
        .arg("--no-player")
        .args(["--archive-dir", &archive.display().to_string()])
        .args(["--audit-log", &audit.display().to_string()])
        .output()
        .expect("relay export runs");
    assert!(export.status.success(), "{export:?}");
    let stdout = String::from_utf8_lossy(&export.stdout);
    assert!(
        stdout.trim().ends_with("index.html"),
        "stdout is only the page: {stdout}"
    );
    // Leaves are written when the connections end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while lines(&audit)
        .iter()
        .filter(|l| l["event"] == "leave")
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "no leave lines");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let all = lines(&audit);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&audit)
            .expect("audit file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the audit file is private");
    }
    let text = std::fs::read_to_string(&audit).expect("audit file");
    for l in &all {
        assert_eq!(l["target"], "audit", "only audit events: {l}");
        assert!(l["event"].is_string() && l["node"].is_string() && l["timestamp"].is_string());
    }
    assert!(!text.contains(API_KEY) && !text.contains("wrong-key-wrong-key"));
    assert!(
        !text.contains(&expired) && !text.contains(&forged),
        "no token is logged"
    );

    let join = find(&all, "join", |l| l["sub"] == "cust");
    assert_eq!(join["room"], room);
    assert_eq!(join["role"], "customer");
    assert_eq!(join["codec"], Codec::Json.subprotocol());
    assert!(join["conn"].is_u64());
    assert!(join["remote"]
        .as_str()
        .is_some_and(|r| r.starts_with("127.0.0.1:")));
    assert_eq!(find(&all, "join", |l| l["sub"] == "agent")["role"], "agent");

    for reason in ["token_expired", "token_bad_signature", "room_mismatch"] {
        let r = find(&all, "token_refused", |l| l["reason"] == reason);
        assert!(r["remote"].is_string(), "{r}");
    }

    let denied = find(&all, "api_call", |l| l["status"] == 401);
    assert_eq!(denied["method"], "GET");
    assert_eq!(denied["path"], format!("/v1/rooms/{room}"));
    assert_eq!(denied["authorized"], false);
    assert_eq!(denied["key_id"], key_id("wrong-key-wrong-key"));
    let close = find(&all, "api_call", |l| l["status"] == 200);
    assert_eq!(close["method"], "POST");
    assert_eq!(close["path"], format!("/v1/rooms/{room}/close"));
    assert_eq!(close["authorized"], true);
    assert_eq!(close["key_id"], key_id(API_KEY));

    let ended = find(&all, "session_ended", |_| true);
    assert_eq!(
        (&ended["room"], &ended["by"], &ended["closed"]),
        (&room.into(), &"api".into(), &true.into())
    );
    let left = find(&all, "leave", |l| l["sub"] == "cust");
    assert_eq!(left["close"], "room_closed");

    let rec = find(&all, "recording_written", |_| true);
    assert_eq!(rec["room"], room);
    let epoch = rec["epoch"].as_str().expect("epoch");
    assert_eq!(rec["manifest"], format!("{room}/{epoch}/manifest.json"));
    let exp = find(&all, "export", |_| true);
    assert_eq!((&exp["room"], &exp["epoch"]), (&room.into(), &epoch.into()));
    assert_eq!(exp["out"], out_dir.display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The documented `key_id`: the first 8 hex digits of the key's SHA-256.
fn key_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))[..8].to_owned()
}

async fn http_get_ok(admin: SocketAddr) -> Option<()> {
    tokio::net::TcpStream::connect(admin).await.ok()?;
    (http_get(admin, "/readyz").await.0 == 200).then_some(())
}
