//! One connection of the public listener, from `accept` to the WebSocket session: the early raw
//! answers (draining, `--max-connections`, pending handshakes per address), then one HTTP/1.1
//! request served by hyper within `--handshake-timeout` and while the pending-handshake slot is
//! not evicted: `/demo/...` to the demo router (demo mode only), anything else to the WebSocket
//! upgrade, admitted as before ([`crate::auth::admit`], quotas). An admitted upgrade becomes a
//! session (`crate::session::serve`).
//!
//! Not here: the accept loop and draining (`super::run`), the demo pages (`super::demo`), the
//! upgrade's HTTP details (`super::ws`).

use std::sync::{Arc, Mutex};

use axum::response::Response;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::ws;
use crate::auth::{admit, Admission, RejectReason};
use crate::limits::ConnGuard;
use crate::node::{Node, OpenGuard};

/// Largest request head read (request line and headers); hyper answers 431 past it.
const MAX_HEAD: usize = 64 * 1024;

/// The public listener's shared parts: the node and, in demo mode, the demo router.
#[derive(Clone)]
pub(crate) struct Public {
    pub node: Arc<Node>,
    pub demo: Option<axum::Router>,
}

/// What the one request of a connection came to.
enum Outcome {
    /// Nothing yet (the request never came, or was not an upgrade).
    None,
    /// A demo page or token was served.
    Served,
    /// The upgrade was refused with this reason (the answer is written).
    Refused(RejectReason),
    /// The upgrade was admitted; the 101 is written.
    Upgrade(Box<Upgrade>),
}

/// An admitted upgrade, held from the service to the session.
struct Upgrade {
    on: hyper::upgrade::OnUpgrade,
    admission: Admission,
    _slots: (OpenGuard, ConnGuard),
}

/// The request was not a WebSocket upgrade: the connection closes without an answer (as
/// tungstenite's handshake did).
#[derive(Debug)]
struct NotAnUpgrade;
impl std::fmt::Display for NotAnUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a WebSocket upgrade")
    }
}
impl std::error::Error for NotAnUpgrade {}

/// Serves one accepted connection until its session ends.
pub(crate) async fn accept(public: Public, stream: TcpStream, peer: std::net::SocketAddr) {
    let node = public.node.clone();
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().ok();
    if node.is_draining() {
        reject_raw(&node, stream, RejectReason::ShuttingDown).await;
        return;
    }
    // Cheap early answer; the slot itself is taken when the upgrade is accepted.
    if node.open_connections() >= node.config.max_connections {
        reject_raw(&node, stream, RejectReason::TooManyConnections).await;
        return;
    }
    // Until the upgrade completes the connection only holds a pending-handshake slot.
    let pending = match node.quotas.begin_handshake(peer.ip()) {
        Ok(p) => {
            node.metrics
                .pending_handshakes
                .set(node.quotas.pending() as i64);
            p
        }
        Err(reason) => {
            reject_raw(&node, stream, reason).await;
            return;
        }
    };

    // One request per connection (every answer but the 101 says `connection: close`; hyper's
    // keep-alive stays on because turning it off adds `close` to the 101's `Connection:
    // Upgrade`): the outcome is read once the answer is out.
    let outcome = Arc::new(Mutex::new(Outcome::None));
    let service = {
        let outcome = outcome.clone();
        hyper::service::service_fn(move |req| {
            let public = public.clone();
            let outcome = outcome.clone();
            async move { route(&public, req, &outcome).await }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // No header-read timer of hyper's: `--handshake-timeout` below covers the whole request.
    http.max_buf_size(MAX_HEAD);
    let conn = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let served = tokio::select! {
        r = tokio::time::timeout(node.config.handshake_timeout, conn) => {
            r.map_err(|_| RejectReason::BadHandshake)
        }
        () = pending.evicted() => Err(RejectReason::HandshakeEvicted),
    };
    drop(pending);
    node.metrics
        .pending_handshakes
        .set(node.quotas.pending() as i64);
    let outcome = std::mem::replace(
        &mut *outcome.lock().unwrap_or_else(|e| e.into_inner()),
        Outcome::None,
    );
    let refused = |reason: RejectReason| {
        node.metrics
            .handshake_rejections
            .with_label_values(&[reason.as_str()])
            .inc();
    };
    let upgrade = match (served, outcome) {
        (Err(reason), _) => {
            refused(reason);
            tracing::debug!(reason = reason.as_str(), "upgrade timed out or evicted");
            return;
        }
        (Ok(_), Outcome::Served) => return,
        (Ok(_), Outcome::Upgrade(u)) => u,
        (Ok(r), Outcome::Refused(reason)) => {
            crate::audit::handshake_refused(reason.as_str(), remote);
            refused(reason);
            tracing::debug!(reason = reason.as_str(), result = ?r.err(), "upgrade refused");
            return;
        }
        (Ok(r), Outcome::None) => {
            let reason = RejectReason::BadHandshake;
            crate::audit::handshake_refused(reason.as_str(), remote);
            refused(reason);
            tracing::debug!(reason = reason.as_str(), result = ?r.err(), "upgrade refused");
            return;
        }
    };
    let Upgrade {
        on,
        admission,
        _slots,
    } = *upgrade;
    let ws = match on.await {
        Ok(upgraded) => ws::into_ws(upgraded, ws::ws_config(&node.config)).await,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            None
        }
    };
    let Some(ws) = ws else {
        return;
    };
    let conn_id = node.next_conn_id();
    let span = tracing::info_span!(
        "conn",
        conn = conn_id,
        room = %admission.claims.room,
        role = %admission.claims.role,
        sub = %admission.claims.sub,
    );
    // Boxed: a handshake in progress then holds a small future, not room for a whole session.
    Box::pin(crate::session::serve(node, ws, admission, conn_id))
        .instrument(span)
        .await;
}

/// Answers the connection's request: a demo page, or the upgrade's 101 or refusal.
async fn route(
    public: &Public,
    mut req: Request<Incoming>,
    outcome: &Mutex<Outcome>,
) -> Result<Response, NotAnUpgrade> {
    let set = |o: Outcome| *outcome.lock().unwrap_or_else(|e| e.into_inner()) = o;
    if let Some(demo) = &public.demo {
        let path = req.uri().path();
        if path == "/demo" || path.starts_with("/demo/") {
            let answer =
                tower_service::Service::call(&mut demo.clone(), req.map(axum::body::Body::new))
                    .await;
            set(Outcome::Served);
            return Ok(match answer {
                Ok(r) => r,
                Err(never) => match never {},
            });
        }
    }
    let Some(key) = ws::upgrade_key(&req) else {
        // A browser pointed at the listener: say what it is rather than close without a word.
        let path = req.uri().path();
        if path == "/" || path == "/demo" || path.starts_with("/demo/") {
            set(Outcome::Served);
            return Ok(ws::listener_info(path));
        }
        return Err(NotAnUpgrade);
    };
    let node = &public.node;
    let admitted = admit(&node.auth, &req).and_then(|a| {
        let slots = take_slots(node, &a)?;
        Ok((a, slots))
    });
    match admitted {
        Ok((admission, slots)) => {
            let protocol = admission
                .echo_protocol
                .then(|| admission.codec.subprotocol());
            let resp = ws::switching(&key, protocol);
            set(Outcome::Upgrade(Box::new(Upgrade {
                on: hyper::upgrade::on(&mut req),
                admission,
                _slots: slots,
            })));
            Ok(resp)
        }
        Err(reason) => {
            set(Outcome::Refused(reason));
            Ok(ws::refusal(reason))
        }
    }
}

/// Takes an admitted upgrade's connection slot and its participant and room slots, or says
/// which limit refuses it.
fn take_slots(node: &Arc<Node>, a: &Admission) -> Result<(OpenGuard, ConnGuard), RejectReason> {
    let open = node.try_open().ok_or(RejectReason::TooManyConnections)?;
    let conn = node.quotas.admit(&a.claims.room, &a.claims.sub)?;
    Ok((open, conn))
}

/// Answers a connection we will not upgrade with a plain HTTP error, without reading the request.
async fn reject_raw(node: &Node, mut stream: TcpStream, reason: RejectReason) {
    use tokio::io::AsyncWriteExt;
    node.metrics
        .handshake_rejections
        .with_label_values(&[reason.as_str()])
        .inc();
    let body =
        serde_json::json!({ "error": reason.as_str(), "message": reason.message() }).to_string();
    let status = reason.status();
    let resp = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    );
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(resp.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}
