//! The client's socket: reading the next data frame, writing frames in batches with one flush per
//! batch, per-flush metrics, and the closing handshake. It decides nothing about what is read or
//! written (that is `inbound.rs`'s and `outbound.rs`'s).

use std::sync::Arc;
use std::time::Duration;

use assist_relay_proto::CloseCode;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::exit::{classify, Exit};
use crate::hub::now_us;
use crate::Node;

/// The upgraded client socket (re-exported as `crate::session::Socket`; the accept path names it
/// through that).
pub(crate) type Socket = WebSocketStream<TcpStream>;

/// A frame to write and its type for `relay_frames_out_total` (`None`: not counted).
pub(super) type Out = (Message, Option<&'static str>);

/// The replies a connection's inbound job queues for its writer, in order. Both sides are in the
/// connection's own task, so the lock is never contended; unlike a channel, whose first block of
/// slots every connection would hold from the start (about 2 KiB), an empty queue holds nothing.
#[derive(Default)]
pub(super) struct Replies {
    queue: std::sync::Mutex<std::collections::VecDeque<Out>>,
    ready: tokio::sync::Notify,
}

impl Replies {
    fn queue(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Out>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a reply.
    pub(super) fn push(&self, out: Out) {
        self.queue().push_back(out);
        self.ready.notify_one();
    }

    /// The next queued reply, if any.
    pub(super) fn pop(&self) -> Option<Out> {
        self.queue().pop_front()
    }

    /// Waits for the next reply.
    pub(super) async fn next(&self) -> Out {
        loop {
            if let Some(out) = self.pop() {
                return out;
            }
            // A push between the pop and here left a permit: this returns at once.
            self.ready.notified().await;
        }
    }
}

/// One connection's socket and what its writes owe the metrics.
pub(super) struct Wire {
    node: Arc<Node>,
    ws: Socket,
    /// When the client last sent anything.
    pub(super) last_inbound: Instant,
    /// The last read found no whole frame buffered (see `next_inbound`).
    read_blocked: bool,
    /// Acceptance times (µs) of live entries written since the last flush.
    pub(super) unflushed: Vec<u64>,
    /// Frames and bytes written since the last flush, not yet in the metrics.
    tally: OutTally,
}

impl Wire {
    pub(super) fn new(node: Arc<Node>, ws: Socket) -> Wire {
        Wire {
            node,
            ws,
            last_inbound: Instant::now(),
            read_blocked: false,
            unflushed: Vec::new(),
            tally: OutTally::default(),
        }
    }

    /// The peer's address, for the audit log.
    pub(super) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.ws.get_ref().peer_addr().ok()
    }

    /// The next data message from the client. `Ok(None)` for control frames (already handled).
    pub(super) async fn next_inbound(&mut self) -> Result<Option<Message>, Exit> {
        // After tungstenite found no whole frame (it read until the socket would block), wait
        // for the socket before asking again: every attempt zero-fills its read buffer first, and
        // the live loop asks after every batch it writes. After a frame, ask at once: more whole
        // frames may be buffered, whatever the socket's readiness says.
        if self.read_blocked {
            let _ = std::future::poll_fn(|cx| self.ws.get_ref().poll_read_ready(cx)).await;
        }
        let next = std::future::poll_fn(|cx| {
            let next = self.ws.poll_next_unpin(cx);
            self.read_blocked = next.is_pending();
            next
        })
        .await;
        let msg = match next {
            None => return Err(Exit::PeerGone),
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(classify(e)),
        };
        self.last_inbound = Instant::now();
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                self.node.metrics.bytes_in.inc_by(msg.len() as u64);
                Ok(Some(msg))
            }
            Message::Close(_) => {
                // tungstenite queued the close reply; push it out.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                Err(Exit::PeerGone)
            }
            // tungstenite queued the pong; a read would send it, but the next read now waits
            // for the socket, so push it out here.
            Message::Ping(_) => self.flush().await.map(|()| None),
            Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

    pub(super) async fn send(
        &mut self,
        msg: Message,
        kind: Option<&'static str>,
    ) -> Result<(), Exit> {
        self.feed_counted(msg, kind).await?;
        self.flush().await
    }

    pub(super) async fn feed(&mut self, msg: Message, kind: &'static str) -> Result<(), Exit> {
        self.feed_counted(msg, Some(kind)).await
    }

    /// Writes a frame without flushing; `kind` `None`: not counted in `relay_frames_out_total`.
    pub(super) async fn feed_counted(
        &mut self,
        msg: Message,
        kind: Option<&'static str>,
    ) -> Result<(), Exit> {
        let len = msg.len() as u64;
        match within(self.node.config.write_timeout, self.ws.feed(msg)).await {
            Some(Ok(())) => {
                self.tally.count(&self.node.metrics, kind, len);
                Ok(())
            }
            Some(Err(e)) => Err(classify(e)),
            None => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    pub(super) async fn flush(&mut self) -> Result<(), Exit> {
        let flushed = within(self.node.config.write_timeout, self.ws.flush()).await;
        self.tally.publish(&self.node.metrics);
        match flushed {
            Some(Ok(())) => {
                let latency = &self.node.metrics.fanout_latency;
                let now = now_us();
                let secs = |accepted: u64| now.saturating_sub(accepted) as f64 / 1e6;
                match self.unflushed.len() {
                    0 => {}
                    1 => latency.observe(secs(self.unflushed[0])),
                    _ => {
                        // One update of the shared histogram per batch, not one per frame.
                        let local = latency.local();
                        for &accepted in &self.unflushed {
                            local.observe(secs(accepted));
                        }
                        local.flush();
                    }
                }
                self.unflushed.clear();
                Ok(())
            }
            Some(Err(e)) => Err(classify(e)),
            None => Err(Exit::Close(CloseCode::Slow)),
        }
    }

    /// Sends the close frame for `exit` (bounded in time) and records why.
    pub(super) async fn finish(mut self, exit: Exit) {
        self.tally.publish(&self.node.metrics);
        // A peer closed for not reading (idle, slow) will not answer the close: do not wait.
        let linger = match exit {
            Exit::Close(c) => !matches!(c, CloseCode::IdleTimeout | CloseCode::Slow),
            Exit::Standard(..) | Exit::PeerGone => false,
        };
        let frame = match exit {
            Exit::PeerGone => None,
            Exit::Close(code) => Some(CloseFrame {
                code: WsCloseCode::from(code.code()),
                reason: code.reason().into(),
            }),
            Exit::Standard(code, reason) => Some(CloseFrame {
                code,
                reason: reason.into(),
            }),
        };
        // Bounded label set: our close reasons, the standard ones we use, and `peer`.
        let reason = frame.as_ref().map_or("peer", |f| f.reason.as_str());
        let label = match reason {
            "peer" | "too_large" | "protocol_error" => reason,
            r => CloseCode::ALL
                .iter()
                .map(|c| c.reason())
                .find(|c| *c == r)
                .unwrap_or("other"),
        };
        self.node.metrics.closes.with_label_values(&[label]).inc();
        tracing::info!(reason = label, "connection closed");
        if let Some(frame) = frame {
            // Send the close frame, then (`linger`) read and drop what the client still sends
            // until its close reply, bounded in time. Dropping a socket with unread bytes makes
            // the kernel answer with a reset, which can discard the error and close frames the
            // client has not read yet (a client sending refused frames back to back saw 1006).
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                self.ws.close(Some(frame)).await?;
                while linger && self.ws.next().await.transpose()?.is_some() {}
                Ok::<(), tokio_tungstenite::tungstenite::Error>(())
            })
            .await;
        }
    }
}

/// Frames and bytes written since the last flush. They go into `relay_frames_out_total` and
/// `relay_bytes_out_total` once per flush (per run of one frame type), not once per frame: a
/// labelled counter costs a hash and a shared lock to find.
#[derive(Default)]
struct OutTally {
    kind: Option<&'static str>,
    frames: u64,
    bytes: u64,
}

impl OutTally {
    fn count(&mut self, metrics: &crate::telemetry::Metrics, kind: Option<&'static str>, len: u64) {
        self.bytes += len;
        let Some(kind) = kind else { return };
        if self.kind != Some(kind) {
            self.publish_frames(metrics);
            self.kind = Some(kind);
        }
        self.frames += 1;
    }

    fn publish_frames(&mut self, metrics: &crate::telemetry::Metrics) {
        if let (Some(kind), 1..) = (self.kind, self.frames) {
            metrics
                .frames_out
                .with_label_values(&[kind])
                .inc_by(self.frames);
        }
        self.frames = 0;
    }

    fn publish(&mut self, metrics: &crate::telemetry::Metrics) {
        self.publish_frames(metrics);
        if self.bytes > 0 {
            metrics.bytes_out.inc_by(self.bytes);
            self.bytes = 0;
        }
    }
}

/// Runs `io`, or gives up after `limit`. The timer is armed only if the first poll does not
/// finish it: most writes only fill the write buffer, and most flushes go out at once.
async fn within<F: std::future::Future>(limit: Duration, io: F) -> Option<F::Output> {
    let mut io = std::pin::pin!(io);
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(io.as_mut(), cx))
    })
    .await;
    match first {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, io).await.ok(),
    }
}
