//! A terminal client for trying the relay by hand.
//!
//! ```text
//! cargo run -p assist-relay --example client -- --token "$AGENT"            # watch and chat
//! cargo run -p assist-relay --example client -- --token "$CUSTOMER" \
//!     --publish ../shared/fixtures/rrweb/demoit.json --speed 10               # stream a recording
//! ```
//! Every frame received is printed as one line; every line typed on stdin is sent as a chat message.

use std::time::Duration;

use anyhow::Context;
use assist_relay_proto::{ClientFrame, Codec, EventHead, EventPayload, ServerFrame};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Participant token (`relay token ...`).
    #[arg(long, env = "TOKEN")]
    token: String,
    /// Use MessagePack instead of JSON.
    #[arg(long)]
    msgpack: bool,
    /// Stream the rrweb events of this recording (a JSON array), as the customer.
    #[arg(long)]
    publish: Option<std::path::PathBuf>,
    /// Replay speed-up for --publish (10 = ten times faster than recorded).
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
}

fn encode(codec: Codec, frame: &ClientFrame<'_>) -> anyhow::Result<Message> {
    let bytes = frame.encode(codec)?;
    Ok(if codec.is_binary() {
        Message::Binary(bytes.into())
    } else {
        Message::Text(String::from_utf8(bytes)?.into())
    })
}

fn describe(frame: &ServerFrame<'_>) -> String {
    match frame {
        ServerFrame::Event { offset, event } => {
            let json = event.json();
            let head = serde_json::from_str::<&RawValue>(json)
                .ok()
                .and_then(|r| EventHead::scan(r).ok());
            format!(
                "event  @{offset} {} ({} bytes)",
                head.map_or("?", |h| h.kind.label()),
                json.len()
            )
        }
        ServerFrame::Chat {
            offset, from, text, ..
        } => format!("chat   @{offset} {} ({}): {text}", from.id, from.role),
        other => format!("{:<6} {:?}", other.type_name(), other),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let codec = if args.msgpack {
        Codec::MsgPack
    } else {
        Codec::Json
    };
    let mut req = args.url.as_str().into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", args.token))?,
    );
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(codec.subprotocol()),
    );
    let (ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            anyhow::bail!("refused: {} {body}", resp.status());
        }
        Err(e) => return Err(e).context("connecting"),
    };
    let (mut sink, mut stream) = ws.split();
    sink.send(encode(codec, &ClientFrame::Join { resume: None })?)
        .await?;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(256);
    if let Some(path) = args.publish.clone() {
        let tx = tx.clone();
        let speed = args.speed.max(0.001);
        tokio::spawn(async move {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => return eprintln!("reading {}: {e}", path.display()),
            };
            let events: Vec<&RawValue> = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return eprintln!("{} is not a JSON array of events: {e}", path.display())
                }
            };
            let mut prev: Option<f64> = None;
            for raw in &events {
                let Ok(head) = EventHead::scan(raw) else {
                    continue;
                };
                if let (Some(p), Some(t)) = (prev, head.timestamp) {
                    tokio::time::sleep(Duration::from_secs_f64(
                        ((t - p) / 1000.0 / speed).clamp(0.0, 5.0),
                    ))
                    .await;
                }
                prev = head.timestamp.or(prev);
                let frame = ClientFrame::Event {
                    id: None,
                    event: EventPayload(std::borrow::Cow::Borrowed(*raw)),
                    head,
                };
                let Ok(m) = encode(codec, &frame) else { return };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            eprintln!("published {} events", events.len());
        });
    }
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut n = 0u64;
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().is_empty() {
                continue;
            }
            n += 1;
            let id = format!("{}-{n}", std::process::id());
            let Ok(m) = encode(codec, &ClientFrame::Chat { id, text: line }) else {
                return;
            };
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });

    loop {
        tokio::select! {
            Some(out) = rx.recv() => sink.send(out).await?,
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => println!("{}", describe(&ServerFrame::decode(codec, t.as_bytes())?)),
                Some(Ok(Message::Binary(b))) => println!("{}", describe(&ServerFrame::decode(codec, &b)?)),
                Some(Ok(Message::Close(frame))) => {
                    println!("closed: {frame:?}");
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            }
        }
    }
}
