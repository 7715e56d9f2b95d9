//! The `ceiling` server: a WebSocket fan-out with no logic at all.
//!
//! Every text or binary message a connection sends is forwarded to every other connection as a
//! clone of the same `Utf8Bytes`/`Bytes` (no copy, no re-encoding) through one bounded
//! `tokio::sync::broadcast` channel. Each connection's writer feeds every message already queued
//! and flushes once (batching), like a relay's writer would. A receiver that falls more than the
//! channel's capacity behind loses the oldest messages; they are counted as dropped. A connection
//! subscribes before its upgrade completes, so a client whose handshake finished misses nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Messages a receiver may lag behind before it loses some.
pub const CAPACITY: usize = 8192;

/// A running fan-out server.
pub struct FanoutServer {
    /// Where it listens.
    pub addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FanoutServer {
    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start() -> std::io::Result<FanoutServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let dropped = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let (tx, _) = broadcast::channel::<(u64, Message)>(CAPACITY);
        let task = tokio::spawn(accept_loop(listener, tx, dropped.clone(), stopped));
        Ok(FanoutServer {
            addr,
            dropped,
            stop,
            task,
        })
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Messages dropped for lagging receivers so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: broadcast::Sender<(u64, Message)>,
    dropped: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_id = 0u64;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                next_id += 1;
                // Subscribe before the upgrade completes: nothing sent after the client's
                // handshake is missed.
                let rx = tx.subscribe();
                conns.spawn(serve(stream, next_id, tx.clone(), rx, dropped.clone(), stop.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn serve(
    stream: TcpStream,
    id: u64,
    tx: broadcast::Sender<(u64, Message)>,
    mut rx: broadcast::Receiver<(u64, Message)>,
    dropped: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            incoming = source.next() => match incoming {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let _ = tx.send((id, m));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            queued = rx.recv() => {
                let mut next = queued;
                let mut fed = false;
                // Feed everything already queued, then flush once.
                loop {
                    match next {
                        Ok((from, m)) => {
                            if from != id {
                                if sink.feed(m).await.is_err() {
                                    return;
                                }
                                fed = true;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            dropped.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                    next = match rx.try_recv() {
                        Ok(v) => Ok(v),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Err(broadcast::error::RecvError::Lagged(n))
                        }
                        Err(_) => break,
                    };
                }
                if fed && sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// `loadtest ceiling-server`: serves on 127.0.0.1 (a free port) until standard input closes.
/// Prints `listening ADDR` once bound and `dropped N` when done.
pub async fn serve_until_stdin_closes() -> std::io::Result<()> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    let server = FanoutServer::start().await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", server.addr)?;
        out.flush()?;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    let dropped = server.stop().await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "dropped {dropped}")?;
    out.flush()
}
