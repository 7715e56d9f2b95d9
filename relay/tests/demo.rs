//! Demo mode (`relay serve --demo`): a real node on loopback answers plain HTTP GETs under
//! `/demo/` (pages, assets, tokens), refuses paths outside its demo directory, keeps `/ws` working
//! on the same listener, and without demo mode has none of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use assist_relay::auth::Auth;
use assist_relay::config::NodeConfig;
use assist_relay::store::memory::MemoryStore;
use assist_relay::Node;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "demo-test-secret-demo-test-secret";

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake built demo (`dist/`), with a secret file beside it that must never be served.
fn demo_dir(tag: &str) -> (TempDir, PathBuf) {
    let root = std::env::temp_dir().join(format!(
        "relay-demo-test-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("assets")).expect("writing the fake demo dir");
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><title>index</title>",
    )
    .expect("writing the fake demo dir");
    std::fs::write(
        dist.join("customer.html"),
        "<!doctype html><title>customer</title>",
    )
    .expect("writing the fake demo dir");
    std::fs::write(
        dist.join("agent.html"),
        "<!doctype html><title>agent</title>",
    )
    .expect("writing the fake demo dir");
    std::fs::write(dist.join("assets/agent.js"), "export const x = 1;\n")
        .expect("writing the fake demo dir");
    std::fs::write(dist.join("assets/agent.css"), "body{}\n").expect("writing the fake demo dir");
    std::fs::write(dist.join("assets/.hidden"), "hidden").expect("writing the fake demo dir");
    std::fs::write(dist.join("other.txt"), "not a demo page").expect("writing the fake demo dir");
    std::fs::write(root.join("secret.txt"), "TOP-SECRET").expect("writing the fake demo dir");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), dist.join("assets/link.txt"))
        .expect("writing the fake demo dir");
    (TempDir(root), dist)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Verification as a demo node does it (demo tokens accepted).
fn demo_auth() -> Auth {
    Auth::new(SECRET.as_bytes()).with_policy(assist_relay::auth::TokenPolicy {
        accept_demo: true,
        ..Default::default()
    })
}

async fn start(demo: bool) -> Running {
    let (tmp, dist) = demo_dir(if demo { "on" } else { "off" });
    let mut config = NodeConfig::with_secret(SECRET);
    config.handshake_timeout = Duration::from_secs(3);
    if demo {
        config.demo_dir = Some(assist_relay::demo::resolve_dir(Some(&dist)).expect("demo dir"));
    }
    let store = MemoryStore::new(config.log.clone());
    let node: Arc<Node> = Node::new(config, store.clone(), store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bind loopback");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(assist_relay::run(listener, node, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
        _dir: tmp,
    }
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw request bytes; `None` when the server closed without a response.
async fn raw(addr: SocketAddr, request: &str) -> Option<HttpResponse> {
    let mut s = TcpStream::connect(addr).await.expect("http request");
    s.write_all(request.as_bytes()).await.expect("http request");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "no answer within 10 s to {request:?}");
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(HttpResponse {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

async fn get(addr: SocketAddr, target: &str) -> HttpResponse {
    raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n"),
    )
    .await
    .unwrap_or_else(|| panic!("GET {target}: no HTTP response"))
}

#[tokio::test]
async fn serves_pages_and_assets_with_content_types() {
    let relay = start(true).await;
    let a = relay.addr;
    for (target, ct, needle) in [
        ("/demo/", "text/html; charset=utf-8", "<title>index</title>"),
        ("/demo/index.html", "text/html; charset=utf-8", "index"),
        (
            "/demo/customer.html",
            "text/html; charset=utf-8",
            "customer",
        ),
        (
            "/demo/customer.html?room=r1&page=2",
            "text/html; charset=utf-8",
            "customer",
        ),
        ("/demo/agent.html", "text/html; charset=utf-8", "agent"),
        (
            "/demo/assets/agent.js",
            "text/javascript; charset=utf-8",
            "export const x",
        ),
        (
            "/demo/assets/agent.css",
            "text/css; charset=utf-8",
            "body{}",
        ),
        (
            "/demo/assets/%61gent.js",
            "text/javascript; charset=utf-8",
            "export",
        ),
    ] {
        let r = get(a, target).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(ct), "{target}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.header("content-length").and_then(|l| l.parse().ok()),
            Some(r.body.len())
        );
        assert!(r.text().contains(needle), "{target}: {}", r.text());
    }
    // /demo redirects to /demo/
    let r = get(a, "/demo").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/demo/"));
    // HEAD: headers only
    let r = raw(a, "HEAD /demo/agent.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("demo test");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    // other methods are refused
    let r = raw(
        a,
        "POST /demo/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .expect("demo test");
    assert_eq!(r.status, 405);
    relay.stop().await;
}

#[tokio::test]
async fn refuses_traversal_and_files_outside_the_demo_pages() {
    let relay = start(true).await;
    for target in [
        "/demo/../secret.txt",
        "/demo/assets/../../secret.txt",
        "/demo/assets/%2e%2e/%2e%2e/secret.txt",
        "/demo/assets/..%2f..%2fsecret.txt",
        "/demo/assets/%2e%2e%5c..%5csecret.txt",
        "/demo/assets//etc/passwd",
        "/demo/assets/.hidden",
        "/demo/assets/link.txt",
        "/demo/assets/missing.js",
        "/demo/assets/",
        "/demo/assets",
        "/demo/other.txt",
        "/demo/token/../../secret.txt",
        "/demo/%00",
    ] {
        let r = get(relay.addr, target).await;
        assert_eq!(r.status, 404, "{target}: {}", r.text());
        assert!(!r.text().contains("TOP-SECRET"), "{target}");
        assert!(!r.text().contains("not a demo page"), "{target}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn token_endpoint_mints_tokens_that_the_node_accepts() {
    let relay = start(true).await;
    let a = relay.addr;
    let r = get(a, "/demo/token?room=room-7&role=agent&sub=alice").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    let token = v["token"].as_str().expect("token").to_owned();
    let claims = demo_auth().verify(&token).expect("valid");
    assert_eq!(
        (
            claims.room.as_str(),
            claims.role.as_str(),
            claims.sub.as_str()
        ),
        ("room-7", "agent", "alice")
    );

    // defaults: room "demo", sub = role
    let r = get(a, "/demo/token?role=customer").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    let claims = demo_auth()
        .verify(v["token"].as_str().expect("token string"))
        .expect("demo test");
    assert_eq!(
        (claims.room.as_str(), claims.sub.as_str()),
        ("demo", "customer")
    );

    for bad in [
        "/demo/token",
        "/demo/token?role=admin",
        "/demo/token?role=agent&room=a%20b",
        "/demo/token?role=agent&sub=",
    ] {
        let r = get(a, bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("bad_request"));
    }

    // the same listener still upgrades /ws, with a demo token
    let mut req = format!("ws://{a}/ws?room=room-7")
        .into_client_request()
        .expect("demo test");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    ws.send(Message::text(r#"{"type":"join"}"#))
        .await
        .expect("send join");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("joined in time")
        .expect("a frame")
        .expect("ok");
    let f: serde_json::Value =
        serde_json::from_str(first.to_text().expect("text frame")).expect("JSON frame");
    assert_eq!(f["type"], "joined");
    assert_eq!(f["you"]["id"], "alice");
    let _ = ws.close(None).await;
    // and other paths keep the WebSocket refusal
    if let Some(r) = raw(a, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await {
        assert_ne!(r.status, 200);
    }
    relay.stop().await;
}

#[tokio::test]
async fn without_demo_mode_no_page_is_served_and_the_listener_says_so() {
    let relay = start(false).await;
    for target in [
        "/demo/",
        "/demo/customer.html",
        "/demo/token?role=agent&room=r",
    ] {
        let r = raw(
            relay.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        // Not an empty reply: a 404 that says how to turn the demo on.
        let r = r.unwrap_or_else(|| panic!("{target}: no answer"));
        assert_eq!(r.status, 404, "{target}");
        assert!(r.text().contains("demo_off"), "{target}: {}", r.text());
        assert!(r.text().contains("--demo"), "{target}: {}", r.text());
        assert!(!r.text().contains("token\""), "{target}: {}", r.text());
        assert!(!r.text().contains("<title>"), "{target}");
    }
    // `/` says what this listener is.
    let r = raw(relay.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"websocket\":\"/ws\""), "{}", r.text());
    // a WebSocket upgrade of /demo/token gets the usual 404 not_found refusal
    let r = raw(
        relay.addr,
        "GET /demo/token?role=agent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("a refusal");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("not_found"), "{}", r.text());
    relay.stop().await;
}

#[test]
fn missing_demo_build_is_a_clear_startup_error() {
    let err = assist_relay::demo::resolve_dir(Some(Path::new("/nonexistent/demo/dist")))
        .expect_err("not built");
    assert!(err.contains("npm ci && npm run build"), "{err}");
    assert!(err.contains("sdk/demo"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--demo",
            "--demo-dir",
            "/nonexistent/demo/dist",
        ])
        .env("RELAY_JWT_SECRET", SECRET)
        .env_remove("RELAY_DEMO")
        .output()
        .expect("relay runs");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("run `npm ci && npm run build` in sdk/demo"),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_tokens_are_refused_by_nodes_not_in_demo_mode_even_with_the_same_secret() {
    let demo = start(true).await;
    let production = start(false).await;
    let r = get(
        demo.addr,
        "/demo/token?room=customer-42&role=agent&sub=stranger",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(
        Auth::new(SECRET.as_bytes()).verify(&token).map(|_| ()),
        Err(assist_relay::auth::RejectReason::TokenDemoOnly)
    );
    let upgrade = |addr: SocketAddr| {
        let mut req = format!("ws://{addr}/ws?room=customer-42")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
        );
        req
    };
    match tokio_tungstenite::connect_async(upgrade(production.addr)).await {
        Ok(_) => panic!("a node without --demo accepted a demo token"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
            let body: serde_json::Value =
                serde_json::from_slice(&resp.body().clone().unwrap_or_default()).expect("JSON");
            assert_eq!(body["error"], "token_demo_only", "{body}");
        }
        Err(e) => panic!("expected a refusal, got {e}"),
    }
    // The demo node itself still takes it.
    let (ws, _) = tokio_tungstenite::connect_async(upgrade(demo.addr))
        .await
        .expect("the demo node accepts its own tokens");
    drop(ws);
    demo.stop().await;
    production.stop().await;
}

#[test]
fn demo_mode_refuses_to_start_on_a_public_listener_or_in_cluster_mode() {
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--demo"])
            .args(["--demo-dir", "/nonexistent/demo/dist"])
            .args(extra)
            .env("RELAY_JWT_SECRET", SECRET)
            .env_remove("RELAY_DEMO")
            .env_remove("RELAY_DEMO_UNSAFE_PUBLIC")
            .env_remove("RELAY_REDIS_URL")
            .env_remove("RELAY_LISTEN")
            .output()
            .expect("relay runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for extra in [
        &["--listen", "0.0.0.0:0"][..],
        &["--listen", "[::]:0"][..],
        &["--listen", "192.0.2.1:0"][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ][..],
    ] {
        let (code, stderr) = run(extra);
        assert_eq!(code, Some(64), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("--demo-unsafe-public"),
            "{extra:?}: {stderr}"
        );
    }
    // With the explicit flag the guard lets it through (here it stops next, at the missing
    // demo build, before binding anything).
    let (code, stderr) = run(&["--listen", "0.0.0.0:0", "--demo-unsafe-public"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("npm ci && npm run build"), "{stderr}");
    assert!(!stderr.contains("--demo-unsafe-public"), "{stderr}");
}
