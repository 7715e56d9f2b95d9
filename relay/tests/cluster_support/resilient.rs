//! A client that survives its node (reconnects, resumes, resends what was not acknowledged), and
//! the checks on what it received: tests/cluster.rs and tests/convergence.rs.

use std::collections::HashMap;
use std::time::Duration;

use assist_relay_proto::{ClientFrame, Codec, ErrorCode, Position, Role, ServerFrame};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::super::common::*;

/// A client that survives its node: reconnects (through `url`), resumes from its position, and,
/// as a customer, resends whatever was not acknowledged.
pub struct Resilient {
    pub url: String,
    pub role: Role,
    pub sub: String,
    pub client: Option<Client>,
    pub epoch: String,
    pub last: u64,
    /// Events received, in order: (offset, raw JSON).
    pub events: Vec<(u64, String)>,
    /// Chat received: (offset, sender, id).
    pub chats: Vec<(u64, String, String)>,
    /// Acknowledged event indexes (customer).
    pub acked: std::collections::BTreeSet<usize>,
    /// Chat ids acknowledged.
    pub chat_acks: Vec<String>,
    pub resyncs: usize,
    /// How long `publish_all` waits for acks between sends (the quiet gap that ends a pump).
    pub quiet: Duration,
}

impl Resilient {
    pub fn new(url: &str, role: Role, sub: &str) -> Resilient {
        Resilient {
            url: url.to_owned(),
            role,
            sub: sub.to_owned(),
            client: None,
            epoch: String::new(),
            last: 0,
            events: Vec::new(),
            chats: Vec::new(),
            acked: Default::default(),
            chat_acks: Vec::new(),
            resyncs: 0,
            quiet: Duration::from_millis(500),
        }
    }

    pub async fn ensure(&mut self) {
        if self.client.is_some() {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let token = token_with(&url_room(&self.url), self.role, &self.sub, 3600);
            let mut req = self.url.as_str().into_client_request().expect("request");
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("h"),
            );
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(Codec::Json.subprotocol()),
            );
            if let Ok(Ok((ws, _))) = tokio::time::timeout(
                Duration::from_secs(3),
                tokio_tungstenite::connect_async(req),
            )
            .await
            {
                let mut c = Client::new(ws, Codec::Json, self.role, &self.sub);
                let resume = (!self.epoch.is_empty()).then(|| Position {
                    epoch: self.epoch.clone(),
                    offset: self.last,
                });
                c.send(&ClientFrame::Join { resume }).await;
                self.client = Some(c);
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} could not reconnect",
                self.sub
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Handles frames until `d` passes without one; reconnects if the connection drops.
    pub async fn pump(&mut self, d: Duration) {
        self.ensure().await;
        loop {
            let Some(c) = self.client.as_mut() else {
                return;
            };
            let next = tokio::time::timeout(d, c.next_raw()).await;
            match next {
                Err(_) => return,
                Ok(None) => {
                    self.client = None;
                    self.ensure().await;
                }
                Ok(Some(f)) => self.on_frame(f),
            }
        }
    }

    pub fn on_frame(&mut self, f: ServerFrame<'static>) {
        match f {
            ServerFrame::Joined { epoch, mode, .. } => {
                if mode == assist_relay_proto::JoinMode::Resync {
                    self.resyncs += 1;
                }
                self.epoch = epoch;
            }
            ServerFrame::Resync { epoch, .. } => {
                self.resyncs += 1;
                self.epoch = epoch;
            }
            ServerFrame::Event { offset, event } => {
                assert!(
                    offset > self.last,
                    "{}: offset {offset} after {}",
                    self.sub,
                    self.last
                );
                self.last = offset;
                self.events.push((offset, event.json().to_owned()));
            }
            ServerFrame::Chat {
                offset, from, id, ..
            } => {
                assert!(
                    offset > self.last,
                    "{}: offset {offset} after {}",
                    self.sub,
                    self.last
                );
                self.last = offset;
                self.chats.push((offset, from.id, id));
            }
            ServerFrame::CaughtUp { offset } => self.last = self.last.max(offset),
            ServerFrame::Ack { id, .. } => {
                if let Some(i) = id.strip_prefix('e').and_then(|n| n.parse::<usize>().ok()) {
                    self.acked.insert(i);
                } else if !self.chat_acks.contains(&id) {
                    self.chat_acks.push(id);
                }
            }
            ServerFrame::Error { code, .. } => {
                assert!(
                    matches!(code, ErrorCode::Unavailable),
                    "{}: error {code}",
                    self.sub
                );
            }
            _ => {}
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.ensure().await;
        if let Some(c) = self.client.as_mut() {
            if c.ws_send(encode(frame)).await.is_err() {
                self.client = None;
            }
        }
    }

    /// Publishes events[from..to] with ids `e<index>` on the current connection, stopping if it
    /// breaks: nothing may be sent on a new connection before the unacknowledged are resent.
    pub async fn publish_from(&mut self, events: &[String], from: usize, to: usize) {
        self.ensure().await;
        for (i, e) in events.iter().enumerate().take(to).skip(from) {
            let raw: &serde_json::value::RawValue = serde_json::from_str(e).expect("raw");
            let head = assist_relay_proto::EventHead::scan(raw).expect("head");
            let frame = ClientFrame::Event {
                id: Some(format!("e{i}")),
                event: assist_relay_proto::EventPayload(std::borrow::Cow::Borrowed(raw)),
                head,
            };
            let Some(c) = self.client.as_mut() else {
                return;
            };
            if c.ws_send(encode(&frame)).await.is_err() {
                self.client = None;
                return;
            }
        }
    }

    /// The first event index not acknowledged yet.
    pub fn first_unacked(&self) -> usize {
        (0..).find(|i| !self.acked.contains(i)).unwrap_or(0)
    }

    /// Publishes every event until all are acknowledged, resending in order from the first
    /// unacknowledged one after any failure (what the SDK does).
    pub async fn publish_all(&mut self, events: &[String], upto: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.first_unacked() < upto {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events never all acknowledged"
            );
            let from = self.first_unacked();
            self.publish_from(events, from, upto).await;
            self.pump(self.quiet).await;
        }
    }

    pub async fn chat_until_acked(&mut self, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.chat_acks.iter().any(|a| a == id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat {id} never acknowledged"
            );
            self.send(&ClientFrame::Chat {
                id: id.into(),
                text: format!("text of {id}"),
            })
            .await;
            self.pump(Duration::from_millis(300)).await;
        }
    }
}

pub fn url_room(url: &str) -> String {
    url.split("room=")
        .nth(1)
        .unwrap_or("")
        .split('&')
        .next()
        .unwrap_or("")
        .to_owned()
}

pub fn encode(frame: &ClientFrame<'_>) -> tokio_tungstenite::tungstenite::Message {
    let bytes = frame.encode(Codec::Json).expect("encode");
    tokio_tungstenite::tungstenite::Message::Text(String::from_utf8(bytes).expect("utf8").into())
}

pub fn assert_exactly_once(who: &Resilient, acked: &[&str]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, _, id) in &who.chats {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for id in acked {
        assert_eq!(
            counts.get(id).copied(),
            Some(1),
            "{} saw chat {id} {:?} times",
            who.sub,
            counts.get(id)
        );
    }
}

/// The agent's events equal what the customer sent, each once, in order (a compact diff if not).
pub fn assert_same_events(agent: &Resilient, want: &[String]) {
    let got: Vec<&str> = agent.events.iter().map(|(_, e)| e.as_str()).collect();
    if let Some(i) = (0..got.len().max(want.len()))
        .find(|&i| got.get(i).copied() != want.get(i).map(String::as_str))
    {
        let show = |v: Option<&str>| v.map(|s| s.chars().take(120).collect::<String>());
        panic!(
            "agent has {} events, customer sent {}; first difference at index {i} (offset {:?}): got {:?}, want {:?}",
            got.len(),
            want.len(),
            agent.events.get(i).map(|e| e.0),
            show(got.get(i).copied()),
            show(want.get(i).map(String::as_str)),
        );
    }
}

pub fn events(n: usize) -> Vec<String> {
    (0..n as u64)
        .map(|i| {
            synthetic(
                if i == 0 {
                    4
                } else if i == 1 {
                    2
                } else {
                    3
                },
                i,
            )
        })
        .collect()
}
