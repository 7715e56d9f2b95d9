//! The WebSocket upgrade on the public listener: whether a request is an upgrade at all, the
//! admission answer (`101 Switching Protocols` with `Sec-WebSocket-Accept` and the codec's
//! subprotocol echoed, or the refusal's status and JSON body), and turning the upgraded
//! connection back into a plain [`WsStream`] over the TCP socket.
//!
//! Who may connect is decided in [`crate::auth::admit`] and by the node's quotas; the session
//! that follows is `crate::session`'s.

use axum::body::Body;
use axum::response::Response;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::auth::RejectReason;
use crate::config::NodeConfig;

/// The socket of an upgraded connection: the TCP stream itself (hyper's upgrade is unwrapped,
/// see [`into_ws`]), so reads and writes cost what they did before hyper served the handshake,
/// and the session keeps its `WebSocketStream<TcpStream>` (its socket's readiness and peer
/// address are the TCP stream's).
pub type WsStream = WebSocketStream<TcpStream>;

/// Initial WebSocket read buffer per connection. tungstenite allocates and zero-fills it on the
/// first read, so it is resident for every connection, idle or not.
const READ_BUFFER: usize = 1024;

/// Bytes of frames a connection queues before writing them to its socket without waiting for the
/// writer's flush: about one write batch of small events (`WRITE_BATCH` in `session/live.rs`), so that a
/// batch costs one `send`, not one per frame.
const WRITE_BUFFER: usize = 16 * 1024;

/// The WebSocket settings of every connection.
pub(crate) fn ws_config(config: &NodeConfig) -> WebSocketConfig {
    let max = config.max_frame_bytes;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // Viewers mostly write; a small read buffer keeps idle connections cheap (it grows to
        // fit a larger frame when one arrives, and is the most read per `recv`).
        .read_buffer_size(READ_BUFFER)
        // Frames collect here and go out in one `send` when the writer flushes (after a
        // batch, see `session/live.rs`), or when this much is queued.
        .write_buffer_size(WRITE_BUFFER)
        // Bounded: a stalled peer makes writes wait (and time out) instead of growing memory.
        .max_write_buffer_size(max.saturating_mul(2).max(64 * 1024) + WRITE_BUFFER)
}

/// Whether a header holds `token` in its comma-separated list (case-insensitive).
fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The request's `Sec-WebSocket-Key` if it is a WebSocket upgrade (RFC 6455 §4.2.1: `GET`,
/// HTTP/1.1, `Connection: Upgrade`, `Upgrade: websocket`, version 13, a key); `None` otherwise
/// (the same requests tungstenite's handshake refused).
pub(crate) fn upgrade_key<B>(req: &Request<B>) -> Option<HeaderValue> {
    let h = req.headers();
    let ok = req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && header_has(h, header::CONNECTION, "upgrade")
        && header_has(h, header::UPGRADE, "websocket")
        && h.get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    ok.then(|| h.get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten()
}

/// The `101 Switching Protocols` answer to an admitted upgrade.
pub(crate) fn switching(key: &HeaderValue, protocol: Option<&'static str>) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

/// The HTTP answer that carries a refusal: its status, `{"error": code, "message": text}`.
pub(crate) fn refusal(reason: RejectReason) -> Response {
    let body =
        serde_json::json!({ "error": reason.as_str(), "message": reason.message() }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = reason.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// What a plain browser request for `/` or `/demo/...` gets from a node without `--demo`: what
/// this listener is, and how to turn the demo on (`/`: 200; `/demo...`: 404 `demo_off`).
pub(crate) fn listener_info(path: &str) -> Response {
    let (status, body) = if path == "/" {
        (
            StatusCode::OK,
            serde_json::json!({
                "service": "assist-relay",
                "websocket": "/ws",
                "protocol": "docs/protocol.md",
                "demo": "off; start the node with `relay serve --demo` to serve the demo pages at /demo/",
            }),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            serde_json::json!({
                "error": "demo_off",
                "message": "the demo pages are served only by a node started with `relay serve --demo` (loopback only unless --demo-unsafe-public)",
            }),
        )
    };
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The WebSocket over an upgraded connection. hyper hands the connection back boxed (a
/// `Box<dyn Io>` with a rewind buffer, one virtual call per read and write); it is unboxed here
/// to the TCP stream it was built on, and the bytes the client sent after its request (if it
/// did not wait for the 101) go first into tungstenite's read buffer. `None` if the connection
/// is not the TCP stream the listener accepted (it always is).
pub(crate) async fn into_ws(
    upgraded: hyper::upgrade::Upgraded,
    config: WebSocketConfig,
) -> Option<WsStream> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>().ok()?;
    let stream = parts.io.into_inner();
    Some(if parts.read_buf.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(
            stream,
            parts.read_buf.to_vec(),
            Role::Server,
            Some(config),
        )
        .await
    })
}
