//! The harness's WebSocket client: one connection, its frames decoded, chunked events
//! reassembled, offsets checked in order; joining, catch-up and waiting helpers.

use std::time::Duration;

use assist_relay_proto::{
    ClientFrame, Codec, EventHead, EventPayload, Member, Position, Role, ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::RECV_TIMEOUT;

/// What a join returned: the `joined` frame fields and the catch-up up to `caught_up`.
#[derive(Debug)]
pub struct Joined {
    pub frame: ServerFrame<'static>,
    pub catch_up: Vec<ServerFrame<'static>>,
    pub caught_up: u64,
}

impl Joined {
    pub fn mode(&self) -> assist_relay_proto::JoinMode {
        match &self.frame {
            ServerFrame::Joined { mode, .. } => *mode,
            _ => unreachable!(),
        }
    }
    pub fn members(&self) -> Vec<Member> {
        match &self.frame {
            ServerFrame::Joined { members, .. } => members.clone(),
            _ => unreachable!(),
        }
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub codec: Codec,
    pub me: Member,
    pub epoch: String,
    /// The last offset received (event, chat or caught_up).
    pub last: u64,
    /// The close frame received, if the server closed the connection.
    pub close_frame: Option<(u16, String)>,
    /// Largest WebSocket message received, bytes.
    pub max_message_len: usize,
    /// `chunk` frames received (reassembled into `event` frames by `recv`).
    pub chunk_frames: u64,
    /// Every byte received in data frames, when `capturing`.
    pub captured: Vec<u8>,
    /// Whether to keep received bytes in `captured`.
    pub capturing: bool,
    /// A chunked event being reassembled: (offset, count, size, bytes so far).
    partial: Option<(u64, u32, u64, Vec<u8>)>,
}

/// What a closed connection said.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Frame(u16, String),
    NoFrame,
}

impl Client {
    /// A client over an upgraded connection.
    pub fn new(
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        codec: Codec,
        role: Role,
        sub: &str,
    ) -> Client {
        Client {
            ws,
            codec,
            me: Member {
                id: sub.into(),
                role,
            },
            epoch: String::new(),
            last: 0,
            close_frame: None,
            max_message_len: 0,
            chunk_frames: 0,
            captured: Vec::new(),
            capturing: false,
            partial: None,
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame<'_>) {
        let bytes = frame.encode(self.codec).expect("encode");
        let msg = if self.codec.is_binary() {
            Message::Binary(bytes.into())
        } else {
            Message::Text(String::from_utf8(bytes).expect("utf8").into())
        };
        self.ws.send(msg).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends a message; the connection may already be gone.
    pub async fn ws_send(
        &mut self,
        msg: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(msg).await
    }

    /// The next data frame, or `None` once the connection is closed (the close frame, if any, is
    /// kept in `close_frame`).
    pub async fn next_raw(&mut self) -> Option<ServerFrame<'static>> {
        self.next_frame().await
    }

    /// Next data frame, decoded; fails the test on timeout or close.
    pub async fn recv(&mut self) -> ServerFrame<'static> {
        match tokio::time::timeout(RECV_TIMEOUT, self.next_frame()).await {
            Ok(Some(f)) => f,
            Ok(None) => panic!(
                "{}: connection closed while a frame was expected",
                self.me.id
            ),
            Err(_) => panic!("{}: no frame within {RECV_TIMEOUT:?}", self.me.id),
        }
    }

    async fn next_frame(&mut self) -> Option<ServerFrame<'static>> {
        loop {
            let msg = self.ws.next().await?.ok()?;
            let bytes: Vec<u8> = match msg {
                Message::Text(t) => {
                    assert!(!self.codec.is_binary(), "text frame on a binary connection");
                    t.as_bytes().to_vec()
                }
                Message::Binary(b) => {
                    assert!(self.codec.is_binary(), "binary frame on a text connection");
                    b.to_vec()
                }
                Message::Close(frame) => {
                    self.close_frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return None;
                }
                _ => continue,
            };
            self.max_message_len = self.max_message_len.max(bytes.len());
            if self.capturing {
                self.captured.extend_from_slice(&bytes);
            }
            let mut frame = ServerFrame::decode(self.codec, &bytes)
                .expect("server frame decodes")
                .into_owned();
            if let ServerFrame::Chunk {
                offset,
                index,
                count,
                size,
                data,
            } = &frame
            {
                self.chunk_frames += 1;
                if *index == 0 {
                    assert!(
                        self.partial.is_none(),
                        "a chunked event started inside another"
                    );
                    self.partial =
                        Some((*offset, *count, *size, Vec::with_capacity(*size as usize)));
                }
                let part = self.partial.as_mut().expect("chunk 0 comes first");
                assert_eq!(
                    (part.0, part.1, part.2),
                    (*offset, *count, *size),
                    "chunk header"
                );
                part.3.extend_from_slice(data.as_bytes());
                if *index + 1 < *count {
                    continue;
                }
                let (offset, _, size, whole) = self.partial.take().expect("partial");
                assert_eq!(whole.len() as u64, size, "reassembled size");
                let json = String::from_utf8(whole).expect("utf-8 event");
                let raw = serde_json::value::RawValue::from_string(json).expect("json event");
                frame = ServerFrame::Event {
                    offset,
                    event: assist_relay_proto::EventPayload(std::borrow::Cow::Owned(raw)),
                };
            } else {
                assert!(self.partial.is_none(), "a frame inside a chunked event");
            }
            match &frame {
                ServerFrame::Event { offset, .. } | ServerFrame::Chat { offset, .. } => {
                    assert!(
                        *offset > self.last,
                        "{}: offset {offset} after {}",
                        self.me.id,
                        self.last
                    );
                    self.last = *offset;
                }
                ServerFrame::CaughtUp { offset } => self.last = *offset,
                ServerFrame::Joined { epoch, .. } | ServerFrame::Resync { epoch, .. } => {
                    self.epoch = epoch.clone();
                    self.last = 0;
                }
                _ => {}
            }
            return Some(frame);
        }
    }

    /// Sends `join` and reads `joined`, the catch-up and `caught_up`.
    pub async fn join(&mut self, resume: Option<Position>) -> Joined {
        self.send(&ClientFrame::Join { resume }).await;
        let frame = self.recv().await;
        assert!(
            matches!(frame, ServerFrame::Joined { .. }),
            "expected joined, got {frame:?}"
        );
        let (catch_up, caught_up) = self.read_catch_up().await;
        Joined {
            frame,
            catch_up,
            caught_up,
        }
    }

    /// Reads entries until `caught_up`; presence frames in between are skipped.
    pub async fn read_catch_up(&mut self) -> (Vec<ServerFrame<'static>>, u64) {
        let mut entries = Vec::new();
        loop {
            match self.recv().await {
                ServerFrame::CaughtUp { offset } => return (entries, offset),
                f @ (ServerFrame::Event { .. } | ServerFrame::Chat { .. }) => entries.push(f),
                ServerFrame::MemberJoined { .. } | ServerFrame::MemberLeft { .. } => {}
                other => panic!("unexpected frame during catch-up: {other:?}"),
            }
        }
    }

    /// Where this client would resume from.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.last,
        }
    }

    pub async fn publish(&mut self, raw: &str, id: Option<&str>) {
        let raw: &RawValue = serde_json::from_str(raw).expect("raw event");
        let head = EventHead::scan(raw).expect("event head");
        self.send(&ClientFrame::Event {
            id: id.map(str::to_owned),
            event: EventPayload(std::borrow::Cow::Borrowed(raw)),
            head,
        })
        .await;
    }

    pub async fn chat(&mut self, id: &str, text: &str) {
        self.send(&ClientFrame::Chat {
            id: id.into(),
            text: text.into(),
        })
        .await;
    }

    /// Reads frames until one matches, returning it; fails on timeout.
    pub async fn recv_until(
        &mut self,
        mut pred: impl FnMut(&ServerFrame<'static>) -> bool,
    ) -> ServerFrame<'static> {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let f = tokio::time::timeout_at(deadline, self.next_frame())
                .await
                .unwrap_or_else(|_| panic!("{}: expected frame never came", self.me.id))
                .unwrap_or_else(|| panic!("{}: closed while waiting", self.me.id));
            if pred(&f) {
                return f;
            }
        }
    }

    /// Asserts that no data frame arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(Some(f)) = tokio::time::timeout(d, self.next_frame()).await {
            panic!("{}: unexpected frame {f:?}", self.me.id);
        }
    }

    /// Asserts that no room entry (event or chat) arrives for `d`; presence frames are allowed.
    pub async fn expect_no_entries(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(f)) = tokio::time::timeout_at(deadline, self.next_frame()).await {
            assert!(
                !matches!(f, ServerFrame::Event { .. } | ServerFrame::Chat { .. }),
                "{}: unexpected entry {f:?}",
                self.me.id
            );
        }
    }

    /// Waits for the connection to close and returns the close frame.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("{}: connection did not close", self.me.id),
                Ok(None) | Ok(Some(Err(_))) => return Closed::NoFrame,
                Ok(Some(Ok(Message::Close(Some(CloseFrame { code, reason }))))) => {
                    return Closed::Frame(code.into(), reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return Closed::NoFrame,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Drops the TCP connection without a close handshake.
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }
}
