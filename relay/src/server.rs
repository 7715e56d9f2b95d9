//! The node: accept loop, handshake, and the shared state every connection sees.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::Instrument;

use crate::auth::{admit, Admission, Auth, RejectReason};
use crate::config::NodeConfig;
use crate::store::{Broker, RoomLog};
use crate::telemetry::Metrics;

/// Initial WebSocket read buffer per connection. tungstenite allocates and zero-fills it on the
/// first read, so it is resident for every connection, idle or not.
const READ_BUFFER: usize = 1024;

/// Bytes of frames a connection queues before writing them to its socket without waiting for the
/// writer's flush: about one write batch of small events (`WRITE_BATCH` in `conn.rs`), so that a
/// batch costs one `send`, not one per frame.
const WRITE_BUFFER: usize = 16 * 1024;

/// State shared by the accept loop, every connection and the admin listener.
pub struct Node {
    /// Settings.
    pub config: NodeConfig,
    /// Token verification.
    pub auth: Auth,
    /// Room logs.
    pub log: Arc<dyn RoomLog>,
    /// Live fan-out and presence.
    pub broker: Arc<dyn Broker>,
    /// Metrics.
    pub metrics: Metrics,
    /// Native-page placeholder templates.
    pub templates: crate::native::Templates,
    /// Salt of typed-value hashes (masking of echoes): `config.mask_key`, shared by every node of
    /// a cluster and independent of the token keys (rotating those changes no hash).
    pub mask_key: [u8; 32],
    /// Where compaction jobs go (set once at startup; without it rooms still close, and no
    /// recording is made).
    pub jobs: std::sync::OnceLock<Arc<dyn crate::compactor::JobQueue>>,
    /// Admission quotas: handshakes in progress, connections per participant, rooms.
    pub quotas: Arc<crate::limits::Quotas>,
    /// Rates shared by a participant's connections and by a room's participants.
    pub rates: crate::quota::SharedRates,
    draining: AtomicBool,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    open: AtomicUsize,
}

impl Node {
    /// A node over a store.
    pub fn new(config: NodeConfig, log: Arc<dyn RoomLog>, broker: Arc<dyn Broker>) -> Arc<Node> {
        Node::with_metrics(config, log, broker, Metrics::new())
    }

    /// A node over a store whose backend already reports into `metrics`.
    pub fn with_metrics(
        config: NodeConfig,
        log: Arc<dyn RoomLog>,
        broker: Arc<dyn Broker>,
        metrics: Metrics,
    ) -> Arc<Node> {
        let templates = crate::native::Templates::load(config.native_templates.as_deref())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "native-page templates; using the built-in one");
                crate::native::Templates::builtin()
            });
        broker.hub().report_rooms(metrics.rooms.clone());
        Arc::new(Node {
            templates,
            mask_key: config.mask_key,
            jobs: std::sync::OnceLock::new(),
            quotas: crate::limits::Quotas::new(config.quotas.clone()),
            rates: crate::quota::SharedRates::new(&config),
            auth: Auth::from_config(&config),
            config,
            log,
            broker,
            metrics,
            draining: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            next_conn: AtomicU64::new(1),
            open: AtomicUsize::new(0),
        })
    }

    /// Closes a room: queues its final compaction, then seals it (members are disconnected with
    /// `room_closed`). Returns whether this call closed it. Queueing first means a crash in
    /// between leaves a job whose worker seals the room itself.
    pub async fn close_room(&self, room: &str) -> Result<bool, crate::store::StoreError> {
        if let Some(jobs) = self.jobs.get() {
            jobs.enqueue(crate::compactor::Job {
                room: room.to_owned(),
                kind: crate::compactor::JobKind::Final,
            })
            .await?;
        }
        let closed = self.log.seal(room).await?;
        if closed {
            self.metrics.rooms_closed.inc();
            tracing::info!(room, "room closed");
        }
        Ok(closed)
    }

    /// Queues a live compaction of a room (archive what lies below its keyframe).
    pub async fn compact_live(&self, room: &str) {
        if let Some(jobs) = self.jobs.get() {
            let job = crate::compactor::Job {
                room: room.to_owned(),
                kind: crate::compactor::JobKind::Live,
            };
            if let Err(e) = jobs.enqueue(job).await {
                tracing::warn!(error = %e, "live compaction not queued");
            }
        }
    }

    /// Whether the node should receive traffic.
    pub async fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.broker.healthy().await
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.set(1);
        self.shutdown.send_replace(true);
    }

    fn ws_config(&self) -> WebSocketConfig {
        let max = self.config.max_frame_bytes;
        WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            // Viewers mostly write; a small read buffer keeps idle connections cheap (it grows to
            // fit a larger frame when one arrives, and is the most read per `recv`).
            .read_buffer_size(READ_BUFFER)
            // Frames collect here and go out in one `send` when the writer flushes (after a
            // batch, see `conn.rs`), or when this much is queued.
            .write_buffer_size(WRITE_BUFFER)
            // Bounded: a stalled peer makes writes wait (and time out) instead of growing memory.
            .max_write_buffer_size(max.saturating_mul(2).max(64 * 1024) + WRITE_BUFFER)
    }
}

/// Counts a connection for its whole life.
struct OpenGuard(Arc<Node>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves WebSocket clients on `listener` until `shutdown` resolves, then drains: stops accepting,
/// tells every client to reconnect elsewhere (close 4000), and returns once they are gone or the
/// drain deadline passes.
pub async fn run(listener: TcpListener, node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let node = node.clone();
                    conns.spawn(accept(node, stream, peer).instrument(tracing::debug_span!("accept", %peer)));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!(open = node.open_connections(), "draining");
    node.begin_drain();
    drop(listener);
    let deadline = tokio::time::sleep(node.config.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                tracing::warn!(left = conns.len(), "drain deadline passed; closing the rest");
                conns.abort_all();
                break;
            }
        }
    }
    tracing::info!("drained");
}

// The handshake callback's error type is tungstenite's `ErrorResponse`, which we cannot box.
#[allow(clippy::result_large_err)]
async fn accept(node: Arc<Node>, stream: TcpStream, peer: std::net::SocketAddr) {
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().ok();
    if node.is_draining() {
        reject_raw(&node, stream, RejectReason::ShuttingDown).await;
        return;
    }
    // Cheap early answer; the slot itself is taken when the upgrade is accepted.
    if node.open.load(Ordering::SeqCst) >= node.config.max_connections {
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

    let mut admission: Result<Admission, RejectReason> = Err(RejectReason::BadHandshake);
    let mut slots: Option<(OpenGuard, crate::limits::ConnGuard)> = None;
    let outcome = {
        let admission = &mut admission;
        let slots = &mut slots;
        let node = &node;
        let upgrade = async move {
            // Demo mode only (off: the stream comes back untouched): plain GETs under /demo/.
            let stream = crate::demo::intercept(node, stream).await?;
            let callback = |req: &Request, mut resp: Response| {
                let admitted = admit(&node.auth, req).and_then(|a| {
                    *slots = Some(take_slots(node, &a)?);
                    Ok(a)
                });
                *admission = admitted;
                match &*admission {
                    Ok(a) => {
                        if a.echo_protocol {
                            resp.headers_mut().insert(
                                "sec-websocket-protocol",
                                HeaderValue::from_static(a.codec.subprotocol()),
                            );
                        }
                        Ok(resp)
                    }
                    Err(reason) => Err(reason.response()),
                }
            };
            Some(
                tokio_tungstenite::accept_hdr_async_with_config(
                    stream,
                    callback,
                    Some(node.ws_config()),
                )
                .await,
            )
        };
        tokio::select! {
            r = tokio::time::timeout(node.config.handshake_timeout, upgrade) => r.map_err(|_| RejectReason::BadHandshake),
            () = pending.evicted() => Err(RejectReason::HandshakeEvicted),
        }
    };
    drop(pending);
    node.metrics
        .pending_handshakes
        .set(node.quotas.pending() as i64);
    let ws = match outcome {
        Ok(Some(Ok(ws))) => ws,
        Ok(None) => return, // served by the demo
        Ok(Some(Err(e))) => {
            let reason = admission.err().unwrap_or(RejectReason::BadHandshake);
            crate::audit::handshake_refused(reason.as_str(), remote);
            node.metrics
                .handshake_rejections
                .with_label_values(&[reason.as_str()])
                .inc();
            tracing::debug!(reason = reason.as_str(), error = %e, "upgrade refused");
            return;
        }
        Err(reason) => {
            node.metrics
                .handshake_rejections
                .with_label_values(&[reason.as_str()])
                .inc();
            tracing::debug!(reason = reason.as_str(), "upgrade timed out or evicted");
            return;
        }
    };
    let (Ok(admission), Some(_slots)) = (admission, slots) else {
        return;
    };
    let conn_id = node.next_conn.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "conn",
        conn = conn_id,
        room = %admission.claims.room,
        role = %admission.claims.role,
        sub = %admission.claims.sub,
    );
    // Boxed: a handshake in progress then holds a small future, not room for a whole session.
    Box::pin(crate::conn::serve(node, ws, admission, conn_id))
        .instrument(span)
        .await;
}

/// Takes an admitted upgrade's connection slot and its participant and room slots, or says
/// which limit refuses it.
fn take_slots(
    node: &Arc<Node>,
    a: &Admission,
) -> Result<(OpenGuard, crate::limits::ConnGuard), RejectReason> {
    if node.open.fetch_add(1, Ordering::SeqCst) >= node.config.max_connections {
        node.open.fetch_sub(1, Ordering::SeqCst);
        return Err(RejectReason::TooManyConnections);
    }
    let open = OpenGuard(node.clone());
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
