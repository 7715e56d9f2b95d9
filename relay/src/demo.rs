//! Demo mode (`relay serve --demo`, off by default): the node's WebSocket listener also answers
//! plain HTTP `GET`s under `/demo/` with the sample pages built from `sdk/demo` (a customer page
//! that records itself, an agent console) and with demo tokens.
//!
//! - `/demo/` the index, `/demo/customer.html`, `/demo/agent.html`, `/demo/assets/*`: files of the
//!   demo directory, nothing outside it (no `..`, no hidden files, symlinks resolved and checked).
//! - `/demo/token?room=R&role=customer|agent&sub=NAME`: `{"token":"…"}`, an HS256 token minted with
//!   the node's secret, valid for an hour, with the claim `"demo": true`. **Anyone who reaches the
//!   node gets a token**: this is why demo mode is off by default, logs a warning, and refuses to
//!   start on a non-loopback listener or in cluster mode without `--demo-unsafe-public`; nodes not
//!   in demo mode refuse demo tokens (`token_demo_only`) even when they share the secret.
//!
//! The hook is [`intercept`], called by the accept path before the WebSocket handshake: it peeks
//! at the request line (nothing is consumed) and keeps every request whose path is not under
//! `/demo` on the WebSocket path, unchanged. Without demo mode it returns the stream at once.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay_proto::{validate_id, Claims, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::Node;

/// The files a demo directory must hold.
const REQUIRED: [&str; 3] = ["index.html", "customer.html", "agent.html"];
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Lifetime of demo tokens.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Where the built demo pages are: `explicit` (`--demo-dir`) if given, else the first of
/// `./sdk/demo/dist`, this workspace's `sdk/demo/dist` (where the binary was built), and `demo/`
/// or `sdk/demo/dist` next to the binary. The directory must hold [`REQUIRED`]'s files.
pub fn resolve_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => {
            let mut c = vec![PathBuf::from("sdk/demo/dist")];
            c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/demo/dist"));
            if let Some(exe_dir) = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf))
            {
                c.push(exe_dir.join("demo"));
                c.push(exe_dir.join("sdk/demo/dist"));
            }
            c
        }
    };
    for dir in &candidates {
        if REQUIRED.iter().all(|f| dir.join(f).is_file()) {
            return dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()));
        }
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "the demo pages are not built (looked for index.html, customer.html and agent.html in {}): run `npm ci && npm run build` in sdk/demo, or pass --demo-dir",
        looked.join(", ")
    ))
}

/// Answers a demo HTTP request on `stream` and returns `None`, or returns the stream untouched
/// for the WebSocket handshake (always when demo mode is off).
pub async fn intercept(node: &Node, stream: TcpStream) -> Option<TcpStream> {
    let Some(dir) = node.config.demo_dir.as_deref() else {
        return Some(stream);
    };
    let path = match tokio::time::timeout(node.config.handshake_timeout, peek_path(&stream)).await {
        Ok(Some(path)) => path,
        _ => return Some(stream),
    };
    if path != "/demo" && !path.starts_with("/demo/") {
        return Some(stream);
    }
    let _ = tokio::time::timeout(node.config.handshake_timeout, serve(node, dir, stream)).await;
    None
}

/// The path of the request target, read without consuming anything.
async fn peek_path(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(&buf[..end]).ok()?;
            let target = line.split(' ').nth(1)?;
            return Some(target.split('?').next().unwrap_or("").to_owned());
        }
        if n == buf.len() {
            return None; // a request line this long is not ours
        }
        if n == seen {
            // peek returns at once while bytes are buffered: wait for more to arrive
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, reason: &'static str, body: serde_json::Value) -> Response {
        Response {
            status,
            reason,
            content_type: "application/json",
            extra: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    fn error(status: u16, reason: &'static str, code: &str, message: &str) -> Response {
        Response::json(
            status,
            reason,
            serde_json::json!({ "error": code, "message": message }),
        )
    }

    fn not_found() -> Response {
        Response::error(404, "Not Found", "not_found", "no such demo page")
    }
}

async fn serve(node: &Node, dir: &Path, mut stream: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let resp = if !complete {
        Response::error(
            431,
            "Request Header Fields Too Large",
            "bad_request",
            "request head too large",
        )
    } else if method != "GET" && method != "HEAD" {
        let mut r = Response::error(405, "Method Not Allowed", "method_not_allowed", "GET only");
        r.extra.push(("allow", "GET, HEAD".into()));
        r
    } else {
        route(node, dir, target).await
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n",
        resp.status,
        resp.reason,
        resp.content_type,
        resp.body.len()
    );
    for (name, value) in &resp.extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&resp.body);
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

async fn route(node: &Node, dir: &Path, target: &str) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/demo" {
        let mut r = Response {
            status: 308,
            reason: "Permanent Redirect",
            content_type: "text/plain; charset=utf-8",
            extra: Vec::new(),
            body: b"/demo/\n".to_vec(),
        };
        let location = if query.is_empty() {
            "/demo/".to_owned()
        } else {
            format!("/demo/?{query}")
        };
        r.extra.push(("location", location));
        return r;
    }
    let Some(rel) = path.strip_prefix("/demo/") else {
        return Response::not_found();
    };
    match rel {
        "token" => token(node, query),
        "" => file(dir, "index.html").await,
        "index.html" | "customer.html" | "agent.html" => file(dir, rel).await,
        _ if rel.starts_with("assets/") => file(dir, rel).await,
        _ => Response::not_found(),
    }
}

fn token(node: &Node, query: &str) -> Response {
    let mut room = "demo".to_owned();
    let mut role = None;
    let mut sub = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "room" => room = v.into_owned(),
            "role" => role = Some(v.into_owned()),
            "sub" => sub = Some(v.into_owned()),
            _ => {}
        }
    }
    let bad = |m: &str| Response::error(400, "Bad Request", "bad_request", m);
    let role: Role = match role.as_deref().unwrap_or("").parse() {
        Ok(r) => r,
        Err(_) => return bad("role must be customer or agent"),
    };
    let sub = sub.unwrap_or_else(|| role.as_str().to_owned());
    if let Err(e) = validate_id("room", &room).and_then(|()| validate_id("sub", &sub)) {
        return bad(&e);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Built from JSON so that optional claims added later keep their defaults.
    let claims: Claims = match serde_json::from_value(serde_json::json!({
        "sub": sub,
        "room": room,
        "role": role.as_str(),
        "exp": now + TOKEN_TTL.as_secs(),
        "iat": now,
    })) {
        Ok(c) => c,
        Err(_) => return Response::error(500, "Internal Server Error", "internal", "claims"),
    };
    let demo = crate::auth::ExtraClaims {
        demo: true,
        ..Default::default()
    };
    match node.auth.mint_with(&claims, &demo) {
        Ok(t) => Response::json(200, "OK", serde_json::json!({ "token": t })),
        Err(_) => Response::error(500, "Internal Server Error", "internal", "signing failed"),
    }
}

/// Percent-decodes a URL path (not `+`, which is a plus in paths).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file `rel` under `dir`, if it is a regular file inside it: no `..`, `.` or empty segment,
/// no hidden name, no backslash or NUL, and (symlinks resolved) still under `dir`.
fn safe_path(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = percent_decode(rel)?;
    if rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    for seg in rel.split('/') {
        if seg.is_empty() || seg.starts_with('.') {
            return None;
        }
    }
    let rel_path = Path::new(&rel);
    if !rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let full = dir.join(rel_path).canonicalize().ok()?;
    (full.starts_with(dir) && full.is_file()).then_some(full)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn file(dir: &Path, rel: &str) -> Response {
    let Some(path) = safe_path(dir, rel) else {
        return Response::not_found();
    };
    let ct = content_type(&path);
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(body)) => Response {
            status: 200,
            reason: "OK",
            content_type: ct,
            extra: Vec::new(),
            body,
        },
        _ => Response::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_traversal() {
        let dir = std::env::temp_dir().join(format!("relay-demo-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).expect("temp dir");
        std::fs::write(dir.join("assets/a.js"), "x").expect("temp file");
        let dir = dir.canonicalize().expect("canonical temp dir");
        assert!(safe_path(&dir, "assets/a.js").is_some());
        assert!(safe_path(&dir, "assets/%61.js").is_some());
        for bad in [
            "assets/../assets/a.js",
            "assets/%2e%2e/assets/a.js",
            "assets//a.js",
            "assets/.a.js",
            "assets\\a.js",
            "/etc/passwd",
            "assets/%zz",
            "assets/missing.js",
            "assets",
        ] {
            assert!(safe_path(&dir, bad).is_none(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
