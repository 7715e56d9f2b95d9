//! A terminal client for trying the relay by hand.
//!
//! ```text
//! cargo run -p assist-relay --example client -- --token "$AGENT"            # watch and chat
//! cargo run -p assist-relay --example client -- --token "$CUSTOMER" \
//!     --publish loadtest/fixtures/demo-shop.json --speed 10             # stream a recording
//! ```
//! Every frame received is printed as one readable line (`joined room=… as alice (agent) …`,
//! `member_joined bob (customer)`, `event @2 full_snapshot (23850 bytes)`, `chat @5 bob: hello`);
//! every line typed on stdin is sent as a chat message. A `--publish` file that is missing or
//! not a JSON array of rrweb events exits 1 with a one-line error, before connecting.

use std::time::Duration;

use anyhow::Context;
use assist_relay_proto::{
    ClientFrame, Codec, EventHead, EventKind, EventPayload, Guidance, Member, ServerFrame,
};
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

/// `bob (customer)`.
fn member(m: &Member) -> String {
    format!("{} ({})", m.id, m.role.as_str())
}

/// rrweb's `IncrementalSource` names, by `data.source`.
const SOURCES: [&str; 17] = [
    "mutation",
    "mouse_move",
    "mouse_interaction",
    "scroll",
    "viewport_resize",
    "input",
    "touch_move",
    "media_interaction",
    "style_sheet_rule",
    "canvas_mutation",
    "font",
    "log",
    "drag",
    "style_declaration",
    "selection",
    "adopted_style_sheet",
    "custom_element",
];

/// One readable line for a frame, as the README shows it.
fn describe(frame: &ServerFrame<'_>) -> String {
    match frame {
        ServerFrame::Joined {
            room,
            you,
            members,
            mode,
            reason,
            head,
            pages,
            ..
        } => {
            let members: Vec<String> = members.iter().map(member).collect();
            let reason = reason.map_or(String::new(), |r| format!(" ({})", r.as_str()));
            format!(
                "joined room={room} as {} mode={}{reason} head={head} pages={} members: {}",
                member(you),
                mode.as_str(),
                pages.len(),
                members.join(", ")
            )
        }
        ServerFrame::Event { offset, event } => {
            let json = event.json();
            let head = serde_json::from_str::<&RawValue>(json)
                .ok()
                .and_then(|r| EventHead::scan(r).ok());
            let kind = head.map_or("?", |h| h.kind.label());
            match head.map(|h| (h.kind, h.source)) {
                Some((EventKind::Meta, _)) => format!("event @{offset} meta"),
                Some((EventKind::IncrementalSnapshot, Some(source))) => format!(
                    "event @{offset} incremental {} ({} bytes)",
                    SOURCES.get(usize::from(source)).unwrap_or(&"?"),
                    json.len()
                ),
                _ => format!("event @{offset} {kind} ({} bytes)", json.len()),
            }
        }
        ServerFrame::Chat {
            offset, from, text, ..
        } => format!("chat @{offset} {}: {text}", from.id),
        ServerFrame::Ack {
            id,
            offset,
            duplicate,
        } => format!(
            "ack {id} @{offset}{}",
            if *duplicate { " (duplicate)" } else { "" }
        ),
        ServerFrame::MemberJoined { member: m } => format!("member_joined {}", member(m)),
        ServerFrame::MemberLeft { member: m } => format!("member_left {}", member(m)),
        ServerFrame::Resync { epoch, reason } => {
            format!("resync epoch={epoch} reason={}", reason.as_str())
        }
        ServerFrame::CaughtUp { offset } => format!("caught_up @{offset}"),
        ServerFrame::Error { code, message, id } => match id {
            Some(id) => format!("error {} (frame {id}): {message}", code.as_str()),
            None => format!("error {}: {message}", code.as_str()),
        },
        ServerFrame::Pong { .. } => "pong".to_owned(),
        ServerFrame::Chunk {
            offset,
            index,
            count,
            size,
            ..
        } => format!("chunk @{offset} {}/{count} of {size} bytes", index + 1),
        ServerFrame::ChunkAck { id, index } => format!("chunk_ack {id} #{index}"),
        ServerFrame::SnapshotRequest { reason } => {
            format!("snapshot_request {}", reason.as_str())
        }
        ServerFrame::Guide {
            offset,
            from,
            guide,
        } => {
            let what = match guide {
                Guidance::Pointer { x, y, .. } => format!("pointer {x:.0},{y:.0}"),
                Guidance::Highlight { node } => format!("highlight node {node}"),
                Guidance::Annotate { node, text } => format!("annotate node {node}: {text}"),
                Guidance::Clear => "clear".to_owned(),
            };
            format!("guide @{offset} {}: {what}", from.id)
        }
        ServerFrame::Signal { from, signal } => format!(
            "signal {}: {} call={}",
            from.id,
            signal.kind.as_deref().unwrap_or("?"),
            signal.call.as_deref().unwrap_or("?")
        ),
    }
}

/// The events of a recording (a JSON array of rrweb events), read before connecting so that a
/// missing or invalid file fails at once.
fn read_recording(path: &std::path::Path) -> anyhow::Result<Vec<Box<RawValue>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--publish {}: cannot read the file", path.display()))?;
    let events: Vec<Box<RawValue>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--publish {}: not a JSON array of rrweb events",
            path.display()
        )
    })?;
    for (i, raw) in events.iter().enumerate() {
        EventHead::scan(raw).map_err(|e| {
            anyhow::anyhow!(
                "--publish {}: element {i} is not an rrweb event: {e}",
                path.display()
            )
        })?;
    }
    if events.is_empty() {
        anyhow::bail!("--publish {}: the array holds no events", path.display());
    }
    Ok(events)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("client: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let recording = args.publish.as_deref().map(read_recording).transpose()?;
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
    if let Some(events) = recording {
        let tx = tx.clone();
        let speed = args.speed.max(0.001);
        tokio::spawn(async move {
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
                    event: EventPayload(std::borrow::Cow::Borrowed(&**raw)),
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
                    match frame {
                        Some(f) if f.reason.is_empty() => println!("closed {}", u16::from(f.code)),
                        Some(f) => println!("closed {} {}", u16::from(f.code), f.reason),
                        None => println!("closed"),
                    }
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            }
        }
    }
}
