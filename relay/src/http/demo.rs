//! Demo mode (`relay serve --demo`, off by default): the node's public listener also answers
//! plain HTTP `GET`s under `/demo/` with the sample pages built from `sdk/demo` (a customer page
//! that records itself, an agent console) and with demo tokens. An axum router, served on the
//! public listener by `super::public` for paths under `/demo` (demo mode only).
//!
//! - `/demo/` the index, `/demo/customer.html`, `/demo/agent.html`, `/demo/assets/*`: files of the
//!   demo directory, nothing outside it. tower-http's `ServeDir` sends the files (percent-decoding,
//!   no `..` or absolute segment, directories refused); [`allowed`] adds what `ServeDir` does not
//!   check: no hidden name, no backslash or NUL, and symlinks resolved and still inside.
//! - `/demo/rooms?state=waiting|assisted&limit=N&cursor=C`: the live rooms, as `GET /v1/rooms`
//!   answers them (the agent console's waiting list).
//! - `/demo/token?room=R&role=customer|agent&sub=NAME`: `{"token":"…"}`, an HS256 token minted with
//!   the node's secret, valid for an hour, with the claim `"demo": true`. **Anyone who reaches the
//!   node gets a token**: this is why demo mode is off by default, logs a warning, and refuses to
//!   start on a non-loopback listener or in cluster mode without `--demo-unsafe-public`; nodes not
//!   in demo mode refuse demo tokens (`token_demo_only`) even when they share the secret.
//!
//! Where the demo directory is found is configuration: [`resolve_dir`] lives in `crate::config`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay_proto::{validate_id, Claims, Role};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

pub use crate::config::resolve_demo_dir as resolve_dir;
use crate::node::Node;

/// Lifetime of demo tokens.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the demo routes share.
struct Demo {
    node: Arc<Node>,
    /// The demo directory, canonical.
    dir: PathBuf,
    files: ServeDir,
}

/// The demo routes over the node's demo directory (`config.demo_dir`); `None` when demo mode is
/// off.
pub fn router(node: Arc<Node>) -> Option<Router> {
    let dir = node.config.demo_dir.clone()?;
    let files = ServeDir::new(&dir).append_index_html_on_directories(false);
    let demo = Arc::new(Demo { node, dir, files });
    Some(
        Router::new()
            .route("/demo", get(redirect))
            .route("/demo/", get(file))
            .route("/demo/token", get(token))
            .route("/demo/rooms", get(rooms))
            .route("/demo/{page}", get(file))
            .route("/demo/assets/{*rest}", get(file))
            .fallback(|| async { not_found() })
            .method_not_allowed_fallback(|| async {
                let mut r = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "GET only",
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            })
            .layer(axum::middleware::map_response(common_headers))
            .with_state(demo),
    )
}

/// Every demo answer: never cached, never sniffed, and the connection closes after it.
async fn common_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such demo page")
}

/// `/demo` -> `/demo/`, keeping the query.
async fn redirect(uri: Uri) -> Response {
    let location = match uri.query() {
        Some(q) if !q.is_empty() => format!("/demo/?{q}"),
        _ => "/demo/".to_owned(),
    };
    let mut r = (
        StatusCode::PERMANENT_REDIRECT,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "/demo/\n",
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A page or an asset: the request's path below `/demo/` (raw, as sent), checked, then sent by
/// `ServeDir`.
async fn file(State(demo): State<Arc<Demo>>, mut req: Request) -> Response {
    let raw = req
        .uri()
        .path()
        .strip_prefix("/demo/")
        .unwrap_or("")
        .to_owned();
    let raw = if raw.is_empty() { "index.html" } else { &raw };
    let page = matches!(raw, "index.html" | "customer.html" | "agent.html");
    if !(page || raw.starts_with("assets/")) || !allowed(&demo.dir, raw) {
        return not_found();
    }
    let Ok(uri) = Uri::try_from(format!("/{raw}")) else {
        return not_found();
    };
    *req.uri_mut() = uri;
    let mut resp = match demo.files.clone().try_call(req).await {
        Ok(r) if r.status() != StatusCode::NOT_FOUND => r.map(axum::body::Body::new),
        _ => return not_found(),
    };
    if resp.status().is_success() {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(Path::new(raw))),
        );
    }
    resp
}

/// Whether `raw` (a path below the demo directory, percent-encoded as in the URL) names a regular
/// file inside `dir`: valid percent-encoding and UTF-8, no `..`, `.`, empty or hidden segment, no
/// backslash or NUL, and (symlinks resolved) still under `dir`.
pub(crate) fn allowed(dir: &Path, raw: &str) -> bool {
    let Some(rel) = percent_decode(raw) else {
        return false;
    };
    if rel.contains('\\') || rel.contains('\0') {
        return false;
    }
    if rel
        .split('/')
        .any(|seg| seg.is_empty() || seg.starts_with('.'))
    {
        return false;
    }
    dir.join(&rel)
        .canonicalize()
        .is_ok_and(|full| full.starts_with(dir) && full.is_file())
}

/// Percent-decodes a URL path (not `+`, which is a plus in paths); `None` if malformed or not
/// UTF-8.
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

/// `/demo/rooms`: the live-room listing of `GET /v1/rooms` (same query and answer), for the
/// demo console's waiting list. Unauthenticated like the rest of demo mode.
async fn rooms(State(demo): State<Arc<Demo>>, uri: Uri) -> Response {
    crate::http::api::rooms::listing(&demo.node, uri.query()).await
}

/// `/demo/token`: a demo token for the asked room, role and participant.
async fn token(State(demo): State<Arc<Demo>>, uri: Uri) -> Response {
    let mut room = "demo".to_owned();
    let mut role = None;
    let mut sub = None;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "room" => room = v.into_owned(),
            "role" => role = Some(v.into_owned()),
            "sub" => sub = Some(v.into_owned()),
            _ => {}
        }
    }
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "bad_request", m);
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
    let internal = |m: &str| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    // Built from JSON so that optional claims added later keep their defaults.
    let claims: Claims = match serde_json::from_value(serde_json::json!({
        "sub": sub,
        "room": room,
        "role": role.as_str(),
        "exp": now + TOKEN_TTL.as_secs(),
        "iat": now,
    })) {
        Ok(c) => c,
        Err(_) => return internal("claims"),
    };
    let extra = crate::auth::ExtraClaims {
        demo: true,
        ..Default::default()
    };
    match demo.node.auth.mint_with(&claims, &extra) {
        Ok(t) => {
            let body = serde_json::json!({ "token": t }).to_string();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(_) => internal("signing failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule [`allowed`] adds to `ServeDir`'s, and `ServeDir`'s own refusal of `..` (kept by
    /// `allowed` too, so a change of either is seen).
    #[test]
    fn decodes_and_refuses_traversal_hidden_files_and_symlinks_out() {
        let root = std::env::temp_dir().join(format!("relay-demo-unit-{}", std::process::id()));
        let dir = root.join("dist");
        std::fs::create_dir_all(dir.join("assets")).expect("temp dir");
        std::fs::write(dir.join("assets/a.js"), "x").expect("temp file");
        std::fs::write(dir.join("assets/.h.js"), "x").expect("temp file");
        std::fs::write(root.join("secret.txt"), "x").expect("temp file");
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(root.join("secret.txt"), dir.join("assets/out.js"));
            let _ = std::os::unix::fs::symlink(dir.join("assets/a.js"), dir.join("assets/in.js"));
        }
        let dir = dir.canonicalize().expect("canonical temp dir");
        assert!(allowed(&dir, "assets/a.js"));
        assert!(allowed(&dir, "assets/%61.js"));
        #[cfg(unix)]
        assert!(allowed(&dir, "assets/in.js"), "a symlink inside is fine");
        for bad in [
            "assets/../assets/a.js",
            "assets/%2e%2e/assets/a.js",
            "assets/..%2f..%2fsecret.txt",
            "assets//a.js",
            "assets/.h.js",
            "assets/%2eh.js",
            "assets\\a.js",
            "assets/%5ca.js",
            "assets/%00",
            "/etc/passwd",
            "assets/%zz",
            "assets/%ff",
            "assets/missing.js",
            "assets",
            "assets/out.js",
        ] {
            assert!(!allowed(&dir, bad), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
