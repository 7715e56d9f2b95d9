//! Webhooks against a real receiver (an HTTP server started by the test): every event of a
//! session arrives, signed, exactly once after dedup by id and in order per room, through
//! failures, timeouts and 500-then-200; a dead endpoint ends in the dead-letter list. Runs on
//! both backends (`RELAY_TEST_BACKEND=redis`: two nodes and a compactor worker over Redis).

mod cluster_support;
mod common;
mod webhook_support;

use std::path::PathBuf;
use std::time::Duration;

use assist_relay::config::{parse_endpoint, NodeConfig};
use assist_relay_proto::{ClientFrame, Codec, Role};
use common::*;
use webhook_support::{summary, Answer, Delivery, Receiver};

const HOOK_SECRET: &str = "whsec-test-test-test-test-test-test";
const API_KEY: &str = "test-api-key-0123456789";
/// Long enough for a compactor pass and a few retries.
const WITHIN: Duration = Duration::from_secs(30);

fn temp_archive(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "assist-relay-webhooks-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn with_webhooks(c: &mut NodeConfig, urls: &[String], archive: &std::path::Path) {
    c.log.keep_until_archived = true;
    c.archive_dir = Some(archive.to_owned());
    let w = &mut c.webhooks;
    w.endpoints = urls
        .iter()
        .map(|u| parse_endpoint(u).expect("endpoint"))
        .collect();
    w.secret = HOOK_SECRET.as_bytes().to_vec();
    w.key_id = "k1".into();
    w.timeout = Duration::from_millis(500);
    w.max_attempts = 6;
    w.backoff_base = Duration::from_millis(50);
    w.backoff_cap = Duration::from_millis(300);
}

fn position(d: &[Delivery], kind: &str, sub: Option<&str>) -> usize {
    d.iter()
        .position(|x| x.kind == kind && sub.is_none_or(|s| x.body["data"]["sub"] == s))
        .unwrap_or_else(|| panic!("no {kind} {sub:?} in {:#?}", summary(d)))
}

/// Writes the receiver's log of one session under target/ (the issue's closing note).
fn write_stream(name: &str, d: &[Delivery]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/webhooks");
    let _ = std::fs::create_dir_all(&dir);
    let backend = if cluster_mode() { "redis" } else { "memory" };
    let text: String = d.iter().map(|x| format!("{}\n", x.body)).collect();
    let _ = std::fs::write(dir.join(format!("{name}-{backend}.jsonl")), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_arrives_once_in_order_and_signed_through_failures() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    // room.opened: 500 then 200; the customer's join: a timeout first; every other event a
    // 503 on its first attempt, so each is retried and the next must wait for it.
    receiver.script(|ev, attempt| match (ev["type"].as_str(), attempt) {
        (Some("room.opened"), 1) => Answer::Status(500),
        (Some("member.joined"), 1) if ev["data"]["role"] == "customer" => {
            Answer::Hang(Duration::from_millis(900))
        }
        (_, 1) => Answer::Status(503),
        _ => Answer::Ok,
    });
    let dir = temp_archive("session");
    let url = receiver.url("/hooks");
    let relay = Relay::start_with(|c| {
        with_webhooks(c, &[url], &dir);
        c.api_key = Some(API_KEY.into());
    })
    .await;
    let room = "wh-session";
    let (mut cust, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join(room, Role::Agent, "agent", Codec::Json).await;
    cust.publish(&synthetic(4, 1), Some("m")).await;
    cust.publish(&synthetic(2, 2), Some("s")).await;
    // A bot posts into the room's chat over the server API (no webhook of its own: it is in
    // the recording's transcript).
    let bot =
        r#"{"from":"ticket-bot","text":"Ticket 4711 is attached to this session","id":"bot-1"}"#;
    let request = format!(
        "POST /v1/rooms/{room}/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bot}",
        bot.len()
    );
    let (status, body) = raw_http(relay.admin, &request).await;
    assert_eq!(status, 201, "{body}");
    agent.chat("c1", "hello").await;
    // Wait until the entries are stored, then end the session.
    cust.recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Chat { .. }))
        .await;
    agent.send(&ClientFrame::End).await;
    agent.closed().await;
    cust.closed().await;

    let got = receiver
        .await_accepted("the whole session", WITHIN, |d| {
            d.iter().any(|x| x.kind == "recording.ready")
                && d.iter().filter(|x| x.kind == "member.left").count() == 2
        })
        .await;
    // Nothing more trickles in (no duplicate ids would show here anyway: `accepted` dedups).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got_later = receiver.accepted();
    assert_eq!(summary(&got), summary(&got_later), "late extra events");
    write_stream("session", &got);

    let kinds: Vec<&str> = got.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(got.len(), 7, "{kinds:?}");
    for k in ["room.opened", "room.closed", "recording.ready"] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), 1, "{kinds:?}");
    }
    // Causal order per room survives every retry.
    assert_eq!(position(&got, "room.opened", None), 0, "{kinds:?}");
    for sub in ["cust", "agent"] {
        assert!(
            position(&got, "member.joined", Some(sub)) < position(&got, "member.left", Some(sub))
        );
    }
    assert!(
        position(&got, "member.joined", Some("cust"))
            < position(&got, "member.joined", Some("agent"))
    );
    assert!(position(&got, "member.joined", Some("agent")) < position(&got, "room.closed", None));
    assert!(position(&got, "room.closed", None) < position(&got, "recording.ready", None));
    if !cluster_mode() {
        // One process: the outbox order is the emission order.
        assert!(got
            .windows(2)
            .all(|w| w[0].body["timestamp"].as_u64() <= w[1].body["timestamp"].as_u64()));
    }
    let closed = &got[position(&got, "room.closed", None)].body;
    assert_eq!(closed["data"]["reason"], "ended");
    assert_eq!(closed["data"]["by"]["sub"], "agent");
    let ready = &got[position(&got, "recording.ready", None)].body;
    assert!(ready["data"]["sha256"]
        .as_str()
        .is_some_and(|s| s.starts_with("sha256:")));
    assert!(ready["data"]["manifest"]
        .as_str()
        .is_some_and(|s| s.ends_with("manifest.json")));
    // Every request was signed with the key named; every event was retried at least once.
    let log = receiver.log();
    assert!(log.iter().all(|d| d.signature_ok && d.key_id == "k1"));
    assert!(log.len() >= 2 * got.len(), "{} requests", log.len());
    assert!(
        relay
            .metric("relay_webhook_retried_total")
            .await
            .unwrap_or(0.0)
            >= 7.0
    );
    assert!(
        relay
            .metric("relay_webhook_failed_total{reason=\"timeout\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        relay
            .metric("relay_webhook_sent_total")
            .await
            .unwrap_or(0.0)
            >= 7.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_dead_letters_and_the_next_event_goes_on() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    // member.joined always fails: dead-lettered after max attempts; what follows still arrives.
    receiver.script(|ev, _| match ev["type"].as_str() {
        Some("member.joined") => Answer::Status(500),
        _ => Answer::Ok,
    });
    let dir = temp_archive("dead");
    let urls = [
        format!("room.*={}", receiver.url("/rooms")),
        format!("member.*={}", receiver.url("/members")),
    ];
    let relay = Relay::start_with(|c| {
        with_webhooks(c, &urls, &dir);
        c.webhooks.max_attempts = 3;
        c.api_key = Some(API_KEY.into());
    })
    .await;
    let room = "wh-dead";
    let (cust, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    cust.drop_abruptly();
    let got = receiver
        .await_accepted("member.left after the dead letter", WITHIN, |d| {
            d.iter().any(|x| x.kind == "member.left")
        })
        .await;
    let kinds: Vec<&str> = got.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["room.opened", "member.left"]);
    let tries = receiver
        .log()
        .iter()
        .filter(|d| d.kind == "member.joined")
        .count();
    assert_eq!(tries, 3);
    relay
        .await_metric("relay_webhook_dead_lettered_total", 1.0)
        .await;
    // The dead-letter list, over the API (embedded: in memory; cluster: ar:webhooks:dead).
    let request = format!(
        "GET /v1/webhooks/dead?limit=10 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_http(relay.admin, &request).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("json");
    let dead = v["dead_letters"].as_array().expect("list");
    assert_eq!(dead.len(), 1, "{body}");
    assert_eq!(dead[0]["type"], "member.joined");
    assert!(dead[0]["url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/members")));
    assert!(
        dead[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HTTP 500")),
        "{body}"
    );
    let event: serde_json::Value =
        serde_json::from_str(dead[0]["body"].as_str().expect("body")).expect("event");
    assert_eq!(event["data"]["sub"], "cust");
    let (status, _) = raw_http(
        relay.admin,
        "GET /v1/webhooks/dead HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cluster mode with real processes: node A holds every outbox partition and is killed with -9
/// while the receiver refuses everything; node B takes the partitions over when A's leases
/// expire, claims A's pending entries, and delivers all of them, once each and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_loses_no_webhook() {
    use cluster_support::resilient::Resilient;
    use cluster_support::NodeProcess;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if !cluster_mode() {
        eprintln!("cluster mode only (RELAY_TEST_BACKEND=redis)");
        return;
    }
    let receiver = Receiver::start(HOOK_SECRET).await;
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    receiver.script(move |_, _| {
        if gate.load(Ordering::SeqCst) {
            Answer::Ok
        } else {
            Answer::Status(503)
        }
    });
    let redis = RedisServer::start().await;
    let url = receiver.url("/hooks");
    let flags = [
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-max-attempts",
        "1000",
        "--webhook-backoff-base",
        "100ms",
        "--webhook-backoff-cap",
        "200ms",
        "--webhook-timeout",
        "1s",
        "--recordings",
        "false",
    ];
    // A starts first and takes every partition's lease; B finds them held.
    let mut a = NodeProcess::start(&redis.url(), &flags).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = NodeProcess::start(&redis.url(), &flags).await;
    let mut cust = Resilient::new(
        &format!("ws://{}/ws?room=wh-kill", b.addr),
        Role::Customer,
        "cust",
    );
    cust.pump(Duration::from_millis(200)).await;
    let mut agent = Resilient::new(
        &format!("ws://{}/ws?room=wh-kill", b.addr),
        Role::Agent,
        "agent",
    );
    agent.pump(Duration::from_millis(200)).await;
    drop(agent); // member.left (agent)
    let c = cust.client.as_mut().expect("connected");
    c.recv_until(|f| {
        matches!(f, assist_relay_proto::ServerFrame::MemberLeft { member } if member.id == "agent")
    })
    .await;
    // A is retrying the room's first event; the rest wait behind it, read or not.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while receiver.log().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "A never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Long enough for A to read the rest of the stream (they are pending there now).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(receiver.log().iter().all(|d| d.kind == "room.opened"));
    a.kill9();
    open.store(true, Ordering::SeqCst);
    drop(cust); // member.left (customer), queued after the kill
    let got = receiver
        .await_accepted("every event after the kill", WITHIN, |d| {
            d.iter().filter(|x| x.kind == "member.left").count() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        summary(&receiver.accepted()),
        summary(&got),
        "late extra events"
    );
    write_stream("kill", &got);
    assert_eq!(
        summary(&got),
        [
            "wh-kill room.opened",
            "wh-kill member.joined cust",
            "wh-kill member.joined agent",
            "wh-kill member.left agent",
            "wh-kill member.left cust",
        ]
    );
    assert!(receiver.log().iter().all(|d| d.signature_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_reported_to_the_endpoint_of_its_type_only() {
    use assist_relay_proto::ChunkData;
    use std::borrow::Cow;
    let receiver = Receiver::start(HOOK_SECRET).await;
    let dir = temp_archive("upload");
    let urls = [format!("upload.refused={}", receiver.url("/uploads"))];
    let relay = Relay::start_with(|c| {
        with_webhooks(c, &urls, &dir);
        c.max_upload_bytes = 1024;
    })
    .await;
    let (mut cust, _) = relay
        .join("wh-upload", Role::Customer, "cust", Codec::Json)
        .await;
    cust.send(&ClientFrame::Chunk {
        id: "big".into(),
        index: 0,
        count: 1,
        size: 4096,
        digest: format!("sha256:{}", "0".repeat(64)),
        data: ChunkData::Text(Cow::Borrowed("x")),
    })
    .await;
    let refused = cust
        .recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Error { .. }))
        .await;
    assert!(format!("{refused:?}").contains("TooLarge"), "{refused:?}");
    let got = receiver
        .await_accepted("upload.refused", WITHIN, |d| !d.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_later = receiver.accepted();
    assert_eq!(got_later.len(), 1, "{:#?}", summary(&got_later));
    let ev = &got[0].body;
    assert_eq!(ev["type"], "upload.refused");
    assert_eq!(ev["data"]["id"], "big");
    assert_eq!(ev["data"]["reason"], "too_large");
    assert_eq!(ev["data"]["sub"], "cust");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn webhook_urls_without_a_secret_are_refused_at_startup() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["serve", "--webhook-url", "http://127.0.0.1:9/hooks"])
        .env("RELAY_JWT_SECRET", SECRET)
        .env_remove("RELAY_WEBHOOK_SECRET")
        .output()
        .expect("relay runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--webhook-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_customer_is_gone_closes_as_idle_and_is_recorded() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let dir = temp_archive("idle");
    let urls = [receiver.url("/hooks")];
    let relay = Relay::start_with(|c| {
        with_webhooks(c, &urls, &dir);
        c.customer_idle_close = Some(Duration::from_millis(400));
    })
    .await;
    let (mut cust, _) = relay
        .join("wh-idle", Role::Customer, "cust", Codec::Json)
        .await;
    cust.publish(&synthetic(4, 1), Some("m")).await;
    cust.publish(&synthetic(2, 2), Some("s")).await;
    cust.recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Ack { id, .. } if id == "s"))
        .await;
    drop(cust);
    let got = receiver
        .await_accepted("room.closed (idle) and the recording", WITHIN, |d| {
            d.iter().any(|x| x.kind == "recording.ready")
        })
        .await;
    assert_eq!(
        summary(&got),
        [
            "wh-idle room.opened",
            "wh-idle member.joined cust",
            "wh-idle member.left cust",
            "wh-idle room.closed",
            "wh-idle recording.ready",
        ]
    );
    let closed = &got[3].body["data"];
    assert_eq!(closed["reason"], "idle");
    assert!(closed["by"].is_null());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_masking_cannot_make_safe_is_reported_as_masking_refused() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let dir = temp_archive("mask");
    let urls = [format!("masking.*={}", receiver.url("/masking"))];
    let relay = Relay::start_with(|c| with_webhooks(c, &urls, &dir)).await;
    let (mut cust, _) = relay
        .join("wh-mask", Role::Customer, "cust", Codec::Json)
        .await;
    // A FullSnapshot without its node tree: the default policy (`inputs`) cannot mask it.
    cust.publish(r#"{"type":2,"data":{},"timestamp":1}"#, Some("snap"))
        .await;
    let refused = cust
        .recv_until(|f| matches!(f, assist_relay_proto::ServerFrame::Error { .. }))
        .await;
    assert!(
        format!("{refused:?}").contains("cannot be masked"),
        "{refused:?}"
    );
    let got = receiver
        .await_accepted("masking.refused", WITHIN, |d| !d.is_empty())
        .await;
    let ev = &got[0].body;
    assert_eq!(ev["type"], "masking.refused");
    assert_eq!(ev["data"]["id"], "snap");
    assert_eq!(ev["data"]["sub"], "cust");
    assert_eq!(ev["data"]["reason"], "unmaskable");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Embedded mode, a real process: on SIGTERM the node drains its connections, then delivers
/// what is queued (within --drain-timeout) before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_node_delivers_its_queue_before_a_graceful_exit() {
    use cluster_support::resilient::Resilient;
    if cluster_mode() {
        return; // one process, embedded: the memory run covers it
    }
    let receiver = Receiver::start(HOOK_SECRET).await;
    // Every event fails twice: they are still queued when the node is told to stop.
    receiver.script(|_, attempt| {
        if attempt <= 2 {
            Answer::Status(503)
        } else {
            Answer::Ok
        }
    });
    let addr = format!("127.0.0.1:{}", free_port());
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let url = receiver.url("/hooks");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "serve",
            "--listen",
            &addr,
            "--admin-listen",
            &admin.to_string(),
        ])
        .args(["--recordings", "false", "--webhook-url", &url])
        .args(["--webhook-backoff-base", "300ms", "--drain-timeout", "10s"])
        .env("RELAY_JWT_SECRET", SECRET)
        .env("RELAY_WEBHOOK_SECRET", HOOK_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("relay runs");
    cluster_support::wait_until(Duration::from_secs(20), || async {
        cluster_support::ready(admin).await
    })
    .await;
    let mut cust = Resilient::new(
        &format!("ws://{addr}/ws?room=wh-drain"),
        Role::Customer,
        "cust",
    );
    cust.pump(Duration::from_millis(200)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        summary(&receiver.accepted()),
        [
            "wh-drain room.opened",
            "wh-drain member.joined cust",
            "wh-drain member.left cust"
        ]
    );
}

/// Cluster mode with real processes: `relay compactor` (given the same webhook flags) queues
/// `recording.ready` into the Redis outbox and a relay node delivers it; the close came from
/// the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compactor_process_queues_recording_ready_and_a_node_delivers_it() {
    use cluster_support::resilient::{events, Resilient};
    use cluster_support::NodeProcess;
    if !cluster_mode() {
        return; // cluster mode only (RELAY_TEST_BACKEND=redis)
    }
    let receiver = Receiver::start(HOOK_SECRET).await;
    let redis = RedisServer::start().await;
    let archive = temp_archive("compactor");
    let url = receiver.url("/hooks");
    let hooks = [
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        HOOK_SECRET,
    ];
    let node_flags = [&hooks[..], &["--api-key", API_KEY]].concat();
    let node = NodeProcess::start(&redis.url(), &node_flags).await;
    let mut compactor = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["compactor", "--redis-url", &redis.url()])
        .args(["--archive-dir", archive.to_str().expect("path")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .args(hooks)
        .env("RELAY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("relay compactor starts");
    let mut cust = Resilient::new(
        &format!("ws://{}/ws?room=wh-compactor", node.addr),
        Role::Customer,
        "cust",
    );
    let all = events(5);
    cust.publish_all(&all, all.len()).await;
    let request = format!(
        "POST /v1/rooms/wh-compactor/close HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_http(node.admin, &request).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let got = receiver
        .await_accepted("recording.ready from the compactor", WITHIN, |d| {
            d.iter().any(|x| x.kind == "recording.ready")
        })
        .await;
    let _ = compactor.kill();
    let _ = compactor.wait();
    let closed = &got[position(&got, "room.closed", None)].body;
    assert_eq!(closed["data"]["reason"], "api");
    assert!(position(&got, "room.closed", None) < position(&got, "recording.ready", None));
    let ready = &got[position(&got, "recording.ready", None)].body;
    let manifest = ready["data"]["manifest"].as_str().expect("manifest");
    let json = std::fs::read(archive.join(manifest)).expect("the manifest is where it says");
    use sha2::Digest;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&json)));
    assert_eq!(ready["data"]["sha256"], digest);
    let _ = std::fs::remove_dir_all(&archive);
}
