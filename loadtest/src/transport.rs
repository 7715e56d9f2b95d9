//! Opening participants: target and source-address selection, TCP, the WebSocket upgrade and the
//! dialect's join handshake.
//!
//! Connections go round-robin over the `--url` targets and over the `--source-ips` loopback
//! addresses (a client socket is bound to its source address before it connects, which spreads
//! connections over more ephemeral-port space than one source address has).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use assist_relay_proto::{JoinMode, Position, Role};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::token::Minter;
use crate::wire::{pusher, Inbound, PusherApp, Wire};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Longest wait for TCP connect, upgrade and join together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Why opening a participant failed: a short `kind` for counting, and the detail.
#[derive(Debug, Clone)]
pub struct OpenError {
    /// Bounded kind, e.g. `tcp_connect`, `refused_token_bad_signature`, `closed_4503_room_full`.
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for OpenError {}

fn fail(kind: impl Into<String>, detail: impl std::fmt::Display) -> OpenError {
    OpenError {
        kind: kind.into(),
        detail: detail.to_string(),
    }
}

/// Who connects where.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Room id.
    pub room: String,
    /// Participant id (token `sub`).
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Where a reconnecting participant left off (relay only).
    pub resume: Option<Position>,
}

/// A participant whose join has been answered.
pub struct Session {
    /// The socket.
    pub ws: Ws,
    /// When opening began (before TCP connect).
    pub started: Instant,
    /// TCP connect plus WebSocket upgrade.
    pub connect_time: Duration,
    /// From sending the join to its answer (`joined`, or the socket.io ack).
    pub join_time: Duration,
    /// Relay `joined`: epoch and mode.
    pub joined: Option<(String, JoinMode)>,
    /// Messages that arrived during the handshake after the join was answered.
    pub pending: Vec<Message>,
}

/// Targets, source addresses, dialect and credentials: everything needed to open participants.
pub struct Dialer {
    urls: Vec<String>,
    source_ips: Vec<IpAddr>,
    next_url: AtomicUsize,
    next_ip: AtomicUsize,
    /// The dialect.
    pub wire: Wire,
    minter: Option<Minter>,
    config: WebSocketConfig,
}

impl Dialer {
    /// A dialer over these targets. A relay needs a `minter`.
    pub fn new(
        urls: Vec<String>,
        source_ips: Vec<IpAddr>,
        wire: Wire,
        minter: Option<Minter>,
    ) -> anyhow::Result<Dialer> {
        if urls.is_empty() {
            bail!("no target URL (--url)");
        }
        for u in &urls {
            if !u.starts_with("ws://") {
                bail!("only ws:// URLs are supported (got {u})");
            }
        }
        if matches!(wire, Wire::Relay(_)) && minter.is_none() {
            bail!("the relay needs tokens: pass --secret or set RELAY_JWT_SECRET");
        }
        Ok(Dialer {
            urls,
            source_ips,
            next_url: AtomicUsize::new(0),
            next_ip: AtomicUsize::new(0),
            wire,
            minter,
            // Viewers read small frames; tungstenite's 128 KiB default read buffer per socket adds
            // up over thousands of connections (it still grows for large messages).
            config: WebSocketConfig::default().read_buffer_size(16 * 1024),
        })
    }

    /// The target URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    fn pick<'a, T>(items: &'a [T], next: &AtomicUsize) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        Some(&items[next.fetch_add(1, Ordering::Relaxed) % items.len()])
    }

    /// Opens a participant: connect, upgrade, join; within [`OPEN_TIMEOUT`].
    pub async fn open(&self, who: &Participant) -> Result<Session, OpenError> {
        match tokio::time::timeout(OPEN_TIMEOUT, self.open_inner(who)).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                "open_timeout",
                "connect, upgrade and join took too long",
            )),
        }
    }

    async fn open_inner(&self, who: &Participant) -> Result<Session, OpenError> {
        let url = Dialer::pick(&self.urls, &self.next_url)
            .ok_or_else(|| fail("config", "no URL"))?
            .clone();
        let source = Dialer::pick(&self.source_ips, &self.next_ip).copied();
        let token = match &self.minter {
            Some(m) if matches!(self.wire, Wire::Relay(_)) => Some(
                m.mint(&who.sub, &who.room, who.role)
                    .map_err(|e| fail("token", e))?,
            ),
            _ => None,
        };
        let request = self
            .wire
            .request(&url, &who.room, token.as_deref())
            .map_err(|e| fail("config", e))?;
        let started = Instant::now();
        let stream = tcp_connect(request.uri(), source).await?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(self.config))
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Http(resp) => {
                        let body = resp
                            .body()
                            .as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default()
                            .into_owned();
                        let (kind, detail) =
                            crate::causes::refusal_kind(resp.status().as_u16(), &body);
                        fail(kind, detail)
                    }
                    other => fail("ws_upgrade", other),
                })?;
        let connect_time = started.elapsed();
        let mut session = Session {
            ws,
            started,
            connect_time,
            join_time: Duration::ZERO,
            joined: None,
            pending: Vec::new(),
        };
        let join_start = Instant::now();
        match self.wire {
            Wire::Raw(_) => {}
            Wire::Relay(_) => relay_join(&mut session, self.wire, who.resume.clone()).await?,
            Wire::SocketIo => sio_join(&mut session, who).await?,
            Wire::Pusher(app) => pusher_join(&mut session, self.wire, app, who).await?,
        }
        session.join_time = join_start.elapsed();
        Ok(session)
    }
}

async fn tcp_connect(
    uri: &tungstenite::http::Uri,
    source: Option<IpAddr>,
) -> Result<TcpStream, OpenError> {
    let host = uri
        .host()
        .ok_or_else(|| fail("config", "URL without host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| fail("resolve", e))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .copied()
        .ok_or_else(|| {
            fail(
                "resolve",
                format!("no address of {host} matches the source"),
            )
        })?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| fail("socket", e))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| fail("bind_source", format!("{ip}: {e}")))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| fail("tcp_connect", format!("{addr}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| fail("socket", e))?;
    Ok(stream)
}

async fn next_inbound(ws: &mut Ws, wire: Wire) -> Result<(Message, Inbound), OpenError> {
    match ws.next().await {
        Some(Ok(m)) => {
            let inbound = wire.decode(&m);
            Ok((m, inbound))
        }
        Some(Err(e)) => Err(fail("ws_read", e)),
        None => Err(fail("closed_during_join", "connection closed")),
    }
}

async fn relay_join(
    session: &mut Session,
    wire: Wire,
    resume: Option<Position>,
) -> Result<(), OpenError> {
    let join = wire.join(resume).map_err(|e| fail("encode", e))?;
    session
        .ws
        .send(join)
        .await
        .map_err(|e| fail("ws_write", e))?;
    loop {
        match next_inbound(&mut session.ws, wire).await?.1 {
            Inbound::Joined { epoch, mode } => {
                session.joined = Some((epoch, mode));
                return Ok(());
            }
            Inbound::Error { code } => return Err(fail(format!("join_error_{code}"), code)),
            Inbound::Closed { code } => {
                return Err(fail(
                    crate::causes::close_kind(wire, code),
                    "closed before joined",
                ))
            }
            _ => {}
        }
    }
}

async fn sio_join(session: &mut Session, who: &Participant) -> Result<(), OpenError> {
    let wire = Wire::SocketIo;
    let ws = &mut session.ws;
    // Engine.IO open packet, then connect to the default namespace.
    let (first, _) = next_inbound(ws, wire).await?;
    if !first.to_text().is_ok_and(|t| t.starts_with('0')) {
        return Err(fail("socketio_handshake", "no Engine.IO open packet"));
    }
    ws.send(Message::text("40"))
        .await
        .map_err(|e| fail("ws_write", e))?;
    loop {
        let (m, inbound) = next_inbound(ws, wire).await?;
        match inbound {
            Inbound::Reply(r) => ws.send(r).await.map_err(|e| fail("ws_write", e))?,
            Inbound::Closed { .. } => return Err(fail("closed_during_join", "closed")),
            _ if m.to_text().is_ok_and(|t| t.starts_with("40")) => break,
            Inbound::Error { code } => return Err(fail(code, "namespace connect refused")),
            _ => {}
        }
    }
    ws.send(Wire::sio_join(&who.room, who.role))
        .await
        .map_err(|e| fail("ws_write", e))?;
    loop {
        let (m, inbound) = next_inbound(ws, wire).await?;
        match inbound {
            Inbound::CaughtUp { .. } => return Ok(()),
            Inbound::Reply(r) => ws.send(r).await.map_err(|e| fail("ws_write", e))?,
            Inbound::Closed { .. } => return Err(fail("closed_during_join", "closed")),
            _ => session.pending.push(m),
        }
    }
}

async fn pusher_join(
    session: &mut Session,
    wire: Wire,
    app: &PusherApp,
    who: &Participant,
) -> Result<(), OpenError> {
    let ws = &mut session.ws;
    let socket_id = loop {
        let (m, inbound) = next_inbound(ws, wire).await?;
        if let Some(id) = pusher::socket_id(&m) {
            break id;
        }
        match inbound {
            Inbound::Reply(r) => ws.send(r).await.map_err(|e| fail("ws_write", e))?,
            Inbound::Closed { code } => {
                return Err(fail(
                    format!("closed_{}", code.unwrap_or(1005)),
                    "closed before connection_established",
                ))
            }
            Inbound::Error { code } => return Err(fail(code, "refused before subscribing")),
            _ => {}
        }
    };
    ws.send(app.subscribe(&socket_id, &who.room))
        .await
        .map_err(|e| fail("ws_write", e))?;
    loop {
        let (m, inbound) = next_inbound(ws, wire).await?;
        match inbound {
            Inbound::CaughtUp { .. } => return Ok(()),
            Inbound::Reply(r) => ws.send(r).await.map_err(|e| fail("ws_write", e))?,
            Inbound::Error { code } => return Err(fail(format!("join_error_{code}"), code)),
            Inbound::Closed { code } => {
                return Err(fail(
                    format!("closed_{}", code.unwrap_or(1005)),
                    "closed before subscription_succeeded",
                ))
            }
            _ => session.pending.push(m),
        }
    }
}

/// Parses `--source-ips 127.0.0.1,127.0.0.2`.
pub fn parse_ips(list: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    list.iter()
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|e| anyhow!("bad source IP {s:?}: {e}"))
        })
        .collect()
}
