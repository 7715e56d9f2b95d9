//! One customer token trying to make a node (and Redis) hold as much memory as it can: several
//! connections (spread over the given URLs) publish large events with ids, chat, and stage
//! unfinished uploads as fast as the relay lets them, for `--secs`. Prints what was stored and
//! refused, by error code. `scripts/measure-quota.sh` runs it against a node and samples memory.
//!
//! ```text
//! cargo run -p assist-relay --example flood -- --token "$CUSTOMER" --secs 40 \
//!     --url ws://127.0.0.1:8080/ws --url ws://127.0.0.1:8081/ws
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use assist_relay_proto::{ChunkData, ClientFrame, Codec, EventHead, EventPayload, ServerFrame};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Relay WebSocket URLs; connections are spread over them.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// Customer token (`relay token ...`).
    #[arg(long, env = "TOKEN")]
    token: String,
    /// Connections of the token.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// How long to flood.
    #[arg(long, default_value_t = 40)]
    secs: u64,
    /// Payload bytes of each event.
    #[arg(long, default_value_t = 512 * 1024)]
    event_bytes: usize,
}

type Tally = Arc<Mutex<BTreeMap<String, u64>>>;

fn text(frame: &ClientFrame<'_>) -> anyhow::Result<Message> {
    Ok(Message::Text(
        String::from_utf8(frame.encode(Codec::Json)?)?.into(),
    ))
}

fn event(n: u64, pad: &str) -> String {
    match n {
        0 => r#"{"type":4,"data":{"href":"https://x.example/","width":1280,"height":800},"timestamp":0}"#.into(),
        1 => r#"{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1}"#.into(),
        _ => format!(
            r#"{{"type":3,"data":{{"source":0,"texts":[{{"id":7,"value":"{pad}{n}"}}],"attributes":[],"removes":[],"adds":[]}},"timestamp":{n}}}"#
        ),
    }
}

async fn flood(
    url: String,
    args: Arc<Args>,
    conn: usize,
    tally: Tally,
    end: Instant,
) -> anyhow::Result<()> {
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", args.token))?,
    );
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(Codec::Json.subprotocol()),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .context("connecting")?;
    let (mut sink, mut stream) = ws.split();
    sink.send(text(&ClientFrame::Join { resume: None })?)
        .await?;
    let pad = "x".repeat(args.event_bytes);
    let slice = "y".repeat(256 * 1024);
    let digest = format!("sha256:{}", "0".repeat(64));
    let reader = {
        let tally = tally.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let key = match &m {
                    Message::Text(t) => match ServerFrame::decode(Codec::Json, t.as_bytes()) {
                        Ok(ServerFrame::Ack { id, .. }) if id.starts_with('t') => {
                            "chat stored".to_owned()
                        }
                        Ok(ServerFrame::Ack { .. }) => "event stored".to_owned(),
                        Ok(ServerFrame::ChunkAck { .. }) => "slice staged".to_owned(),
                        Ok(ServerFrame::Error { code, id, .. }) => {
                            let what = match id.as_deref().and_then(|i| i.chars().next()) {
                                Some('t') => "chat",
                                Some('u') => "slice",
                                Some('c') => "event",
                                _ => "frame",
                            };
                            format!("{what} {code}")
                        }
                        Ok(_) => continue,
                        Err(_) => "undecodable".to_owned(),
                    },
                    Message::Close(f) => format!("closed {:?}", f.as_ref().map(|f| f.code)),
                    _ => continue,
                };
                *tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_default() += 1;
            }
        })
    };
    // Stage all but the last slice of one upload (16 MiB; four connections, four uploads: the
    // participant's whole staging share), then publish events and chat until the deadline.
    for index in 0..63u32 {
        let up = ClientFrame::Chunk {
            id: format!("u{}", conn % 4),
            index,
            count: 64,
            size: 64 * slice.len() as u64,
            digest: digest.clone(),
            data: ChunkData::Text(std::borrow::Cow::Borrowed(&slice)),
        };
        if sink.send(text(&up)?).await.is_err() {
            break;
        }
    }
    // The keyframe goes once, first: another one would trim the log.
    static KEYFRAME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let first = conn == 0 && !KEYFRAME.swap(true, std::sync::atomic::Ordering::Relaxed);
    let mut n: u64 = if first {
        0
    } else {
        2 + conn as u64 * 1_000_000_000
    };
    while Instant::now() < end {
        let id = format!("c{conn}-{n}");
        let json = event(n, &pad);
        let raw: &RawValue = serde_json::from_str(&json)?;
        let frame = ClientFrame::Event {
            id: Some(id.clone()),
            event: EventPayload(std::borrow::Cow::Borrowed(raw)),
            head: EventHead::scan(raw)?,
        };
        let chat = ClientFrame::Chat {
            id: format!("t{conn}-{n}"),
            text: "z".repeat(8000),
        };
        if sink.send(text(&frame)?).await.is_err() || sink.send(text(&chat)?).await.is_err() {
            break;
        }
        n += 1;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    reader.abort();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let tally: Tally = Arc::default();
    let mut tasks = Vec::new();
    let end = Instant::now() + Duration::from_secs(args.secs);
    for c in 0..args.conns {
        let url = args.url[c % args.url.len()].clone();
        let (args, tally) = (args.clone(), tally.clone());
        // Reconnect whenever the relay closes the connection (4501 included), until the end.
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if let Err(e) = flood(url.clone(), args.clone(), c, tally.clone(), end).await {
                    eprintln!("connection: {e:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
        if c == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await; // the keyframe goes first
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    for (k, v) in tally.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{k}: {v}");
    }
    Ok(())
}
