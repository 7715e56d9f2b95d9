//! docs/integration.md's examples, run: every ```sh block marked `<!-- test: NAME -->` runs with
//! `sh -e` and curl against a node this test starts (two nodes and Redis with
//! `RELAY_TEST_BACKEND=redis`), in the order a real integration would call them, and must succeed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;

const API_KEY: &str = "integration-doc-key-0123456789";
const META: &str = r#"{"type":4,"data":{"href":"https://shop.example/cart","width":390,"height":844},"timestamp":1700000000000}"#;

/// The marked blocks of docs/integration.md by name.
fn examples() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/integration.md");
    let text = std::fs::read_to_string(path).expect("docs/integration.md");
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- test:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "{name}: a sh block follows"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let prev = out.insert(name.trim().to_owned(), body.join("\n"));
        assert!(prev.is_none(), "{name} twice");
    }
    out
}

/// Runs one example; its standard output.
fn run(script: &str, env: &[(&'static str, String)], cwd: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(cwd)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\nexit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the example `name` (off the async workers); its standard output.
async fn step(
    examples: &BTreeMap<String, String>,
    ran: &mut BTreeSet<String>,
    name: &str,
    env: &[(&'static str, String)],
    cwd: &std::path::Path,
) -> String {
    let script = examples
        .get(name)
        .unwrap_or_else(|| panic!("no example {name}"))
        .clone();
    ran.insert(name.to_owned());
    let env = env.to_vec();
    let cwd = cwd.to_owned();
    tokio::task::spawn_blocking(move || run(&script, &env, &cwd))
        .await
        .expect("example")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_guide_examples_run_against_a_node() {
    let examples = examples();
    let mut ran = BTreeSet::new();
    let work = std::env::temp_dir().join(format!("relay-integration-doc-{}", std::process::id()));
    let archive = work.join("archive");
    std::fs::create_dir_all(&archive).expect("temp dir");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.log.keep_until_archived = true;
        c.archive_dir = Some(archive.clone());
    })
    .await;
    let room = "room-42";
    // The last node answers the API, the customer sits on the first (in cluster mode).
    let admin = relay.admin_addrs()[relay.admin_addrs().len() - 1];
    let mut env = vec![
        ("RELAY_ADMIN", format!("http://{admin}")),
        ("RELAY_API_KEY", API_KEY.to_owned()),
        ("ROOM", room.to_owned()),
    ];

    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust-7", Codec::Json)
        .await;
    cust.join(None).await;
    cust.publish(META, Some("m")).await;
    cust.publish(&synthetic(2, 2), Some("s")).await;
    let mut listed = Value::Null;
    for _ in 0..100 {
        let out = step(&examples, &mut ran, "waiting-list", &env, &work).await;
        listed = serde_json::from_str(&out).expect("JSON");
        if !listed["rooms"][0]["page"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["rooms"][0]["room"], room, "{listed}");
    assert_eq!(listed["rooms"][0]["state"], "waiting");
    assert_eq!(
        listed["rooms"][0]["page"]["url"],
        "https://shop.example/cart"
    );

    let out = step(&examples, &mut ran, "bot-chat", &env, &work).await;
    let posted: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(posted["duplicate"], false);
    match cust
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await
    {
        ServerFrame::Chat { from, offset, .. } => {
            assert_eq!((from.id.as_str(), from.role), ("ticket-bot", Role::System));
            assert_eq!(Some(offset), posted["offset"].as_u64());
        }
        _ => unreachable!(),
    }
    step(&examples, &mut ran, "bot-chat-retry", &env, &work).await;
    step(&examples, &mut ran, "close", &env, &work).await;

    // The recording, once the compactor wrote it.
    let mut recording = None;
    for _ in 0..200 {
        let (_, body) = raw_http(
            admin,
            &format!("GET /v1/recordings?room={room} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"),
        )
        .await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(id) = v["recordings"][0]["id"].as_str() {
            recording = Some(id.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recording = recording.expect("a recording");
    env.push(("RECORDING", recording.clone()));
    let listed = step(&examples, &mut ran, "recordings", &env, &work).await;
    assert!(listed.contains(&recording), "{listed}");
    let one = step(&examples, &mut ran, "recording", &env, &work).await;
    assert!(one.contains("\"manifest\""), "{one}");
    step(&examples, &mut ran, "recording-events", &env, &work).await;
    let events: Vec<Value> =
        serde_json::from_slice(&std::fs::read(work.join("events.json")).expect("events.json"))
            .expect("a JSON array");
    assert_eq!(events.len(), 2);
    let all: BTreeSet<String> = examples.keys().cloned().collect();
    assert_eq!(ran, all, "every marked example runs");
    let _ = std::fs::remove_dir_all(&work);
}
