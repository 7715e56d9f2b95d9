//! `GET /v1/recordings*` over real HTTP in both backends: a session ends, the compactor writes
//! its recording into the archive, and a node reading the same archive lists it, answers its
//! manifest and streams its events.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;
use sha2::Digest as _;

const API_KEY: &str = "test-api-key-0123456789";

fn temp_archive(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "assist-relay-api-{name}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("archive dir");
    dir
}

/// GET with the key: status, headers (lowercase names) and the body, de-chunked.
async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(RECV_TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut body = buf[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).expect("hex"), 16)
            .expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = get(addr, path).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> u16 {
    raw_http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {API_KEY}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
    .0
}

/// Publishes `events` as the customer of `room`, has a bot say something, ends the session.
async fn record(relay: &Relay, room: &str, events: &[String]) {
    let token = token_masked(room, Role::Customer, "cust", 3600, Some("none"));
    let mut cust = relay
        .connect_on_with_token(0, room, &token, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    for (i, e) in events.iter().enumerate() {
        cust.publish(e, Some(&format!("e{i}"))).await;
    }
    let mut acked = 0;
    while acked < events.len() {
        match cust.recv().await {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
    let bot = r#"{"from":"ticket-bot","text":"Ticket #1 attached.","id":"t-1"}"#;
    assert_eq!(
        post(relay.admin, &format!("/v1/rooms/{room}/chat"), bot).await,
        201
    );
    assert_eq!(
        post(relay.admin, &format!("/v1/rooms/{room}/close"), "").await,
        200
    );
}

/// Polls the listing of `room` until it has a recording.
async fn await_listed(admin: SocketAddr, room: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = get_json(admin, &format!("/v1/recordings?room={room}")).await;
        assert_eq!(status, 200, "{body}");
        if let Some(r) = body["recordings"].as_array().and_then(|a| a.first()) {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{room} was never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_session_is_listed_with_its_manifest_and_its_events_stream_back() {
    let dir = temp_archive("stream");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let events = fixture_events("chat-widget.json");
    record(&relay, "rec-1", &events).await;
    // Every node reads the same archive.
    let admins = relay.admin_addrs();
    let listed = await_listed(admins[admins.len() - 1], "rec-1").await;
    let id = listed["id"].as_str().expect("id").to_owned();
    let epoch = listed["manifest"]["epoch"].as_str().expect("epoch");
    assert_eq!(id, format!("rec-1:{epoch}"));
    assert_eq!(listed["room"], "rec-1");
    assert_eq!(listed["events_url"], format!("/v1/recordings/{id}/events"));
    assert_eq!(listed["manifest"]["event_count"], events.len());
    assert_eq!(listed["manifest"]["chat_count"], 1);

    let (status, one) = get_json(relay.admin, &format!("/v1/recordings/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one, listed);

    let (status, headers, body) = get(relay.admin, &format!("/v1/recordings/{id}/events")).await;
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("transfer-encoding").as_deref(),
        Some("chunked"),
        "streamed"
    );
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(header("x-content-sha256"), Some(digest.clone()));
    let files = listed["manifest"]["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["sha256"] == digest.as_str()));
    let got: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    let sent: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).expect("event"))
        .collect();
    assert_eq!(got, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_of_every_room_page_by_time_and_filter_by_since() {
    let dir = temp_archive("pages");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.log.keep_until_archived = true;
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let events = vec![synthetic(4, 1), synthetic(2, 2), synthetic(3, 3)];
    let mut ids = Vec::new();
    for room in ["pg-b", "pg-a", "pg-c"] {
        record(&relay, room, &events).await;
        ids.push(
            await_listed(relay.admin, room).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // Oldest first, whatever the room ids.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get_json(
            relay.admin,
            &format!("/v1/recordings?limit=2&cursor={cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let recs = page["recordings"].as_array().expect("recordings");
        assert!(recs.len() <= 2);
        seen.extend(
            recs.iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, last) = get_json(relay.admin, "/v1/recordings?room=pg-c").await;
    let made = last["recordings"][0]["manifest"]["compacted_ms"]
        .as_u64()
        .expect("compacted_ms");
    let (_, since) = get_json(relay.admin, &format!("/v1/recordings?since={made}")).await;
    let since = since["recordings"].as_array().expect("recordings");
    assert_eq!(
        since.last().and_then(|r| r["id"].as_str()),
        Some(ids[2].as_str())
    );
    for r in since {
        assert!(r["manifest"]["compacted_ms"].as_u64().expect("made") >= made);
    }
    let (_, none) = get_json(
        relay.admin,
        &format!("/v1/recordings?since={}", made + 60_000),
    )
    .await;
    assert_eq!(none, serde_json::json!({"recordings": [], "next": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_refuse_bad_ids_queries_and_a_node_without_the_archive() {
    let dir = temp_archive("errors");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.archive_dir = Some(dir.clone());
    })
    .await;
    for (path, status, code) in [
        ("/v1/recordings/no-colon", 400, "invalid_recording_id"),
        ("/v1/recordings/a%20b:00", 400, "invalid_recording_id"),
        (
            "/v1/recordings/room:0123456789abcdef",
            404,
            "recording_not_found",
        ),
        (
            "/v1/recordings/room:0123456789abcdef/events",
            404,
            "recording_not_found",
        ),
        ("/v1/recordings?limit=0", 400, "invalid_query"),
        ("/v1/recordings?since=yesterday", 400, "invalid_query"),
        ("/v1/recordings?room=a%20b", 400, "invalid_query"),
        ("/v1/recordings?cursor=zz", 400, "invalid_cursor"),
    ] {
        let (got, body) = get_json(relay.admin, path).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    let (status, empty) = get_json(relay.admin, "/v1/recordings").await;
    assert_eq!(status, 200);
    assert_eq!(empty["recordings"], serde_json::json!([]));

    // Recordings off: no archive at all.
    let off = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let (status, body) = get_json(off.admin, "/v1/recordings").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("recordings_off"))
    );

    // The archive is not readable here (in cluster mode: not the compactor's storage).
    let file = dir.join("not-a-directory");
    std::fs::write(&file, "x").expect("file");
    let blind = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.archive_dir = Some(file.clone());
    })
    .await;
    for path in ["/v1/recordings", "/v1/recordings/r:0123456789abcdef"] {
        let (status, body) = get_json(blind.admin, path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("archive_unavailable")),
            "{path}"
        );
    }
    let (status, _) = get_json(relay.admin, "/v1/recordings").await;
    assert_eq!(status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
