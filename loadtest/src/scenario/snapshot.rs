//! `snapshot`: large keyframes. One room, one customer and, afterwards, a series of fresh agents.
//!
//! 1. **Stitching throughput.** `--rounds` times, the customer publishes a Meta event and then
//!    uploads one large FullSnapshot (generated, `--snapshot-mb`, or the largest one of
//!    `--snapshot-from`) as `chunk` frames sliced to the `chunk_bytes` the relay announced in
//!    `joined`. The frames are encoded before the clock starts; the time is from writing the first
//!    slice to the relay's `ack` of the upload (staging, stitching, digest check, masking, append).
//!    Slices are sent back to back without waiting for their `chunk_ack`s.
//! 2. **Join to keyframe.** Then `--joins` fresh agents per `--join-codecs` codec (alternating
//!    codecs, one agent at a time) connect and join. Each measures from the start of its TCP connect
//!    to having the keyframe's FullSnapshot whole: every `chunk` frame of it received and
//!    reassembled (or its `event` frame, if it fit one frame). Each checks the event's size and
//!    whether it is byte-identical to what was uploaded (it differs only if the relay's masking
//!    rewrote it), then closes.
//!
//! One connection at a time: the figures are latencies and throughput of a quiet relay, not of one
//! under load.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use assist_relay_proto::{ClientFrame, Codec, EventHead, EventPayload, Role, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::chunked::{
    generated_snapshot, load_full_snapshot, meta_event, Fed, Reassembler, Upload,
};
use crate::cli::{CodecArg, ProtocolArg, SnapshotArgs};
use crate::report::{JoinFigures, Report, ReportInput, SnapshotReport, Spread, UploadRound};
use crate::scenario::{run_suffix, sample_targets};
use crate::stats::{histogram, record_us, Summary, ViewerStats};
use crate::token::Minter;
use crate::wire::Wire;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for one upload's `ack` or one agent's keyframe.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

fn codec_of(c: CodecArg) -> Codec {
    match c {
        CodecArg::Json => Codec::Json,
        CodecArg::Msgpack => Codec::MsgPack,
    }
}

fn message(codec: Codec, bytes: Vec<u8>) -> anyhow::Result<Message> {
    Ok(if codec.is_binary() {
        Message::binary(bytes)
    } else {
        Message::text(String::from_utf8(bytes)?)
    })
}

/// One participant's socket.
struct Conn {
    ws: Socket,
    codec: Codec,
    /// Bytes of data frames received.
    bytes_in: u64,
}

impl Conn {
    async fn open(url: &str, room: &str, token: &str, codec: Codec) -> anyhow::Result<Conn> {
        let req = Wire::Relay(codec).request(url, room, Some(token))?;
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(Conn {
            ws,
            codec,
            bytes_in: 0,
        })
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) -> anyhow::Result<()> {
        let msg = message(self.codec, frame.encode(self.codec)?)?;
        self.ws.send(msg).await?;
        Ok(())
    }

    /// The next data frame's bytes; an error once the connection ends.
    async fn next_bytes(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            let msg = match self.ws.next().await {
                Some(m) => m?,
                None => bail!("connection closed"),
            };
            let bytes: Vec<u8> = match msg {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.into(),
                Message::Close(f) => bail!(
                    "connection closed by the relay{}",
                    f.map_or_else(String::new, |f| format!(" ({} {})", f.code, f.reason))
                ),
                _ => continue,
            };
            self.bytes_in += bytes.len() as u64;
            return Ok(bytes);
        }
    }

    /// Closes and reads until the relay has closed too (so it has let the member go).
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.ws.close(None).await;
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// What the customer read from `joined`.
async fn join(conn: &mut Conn) -> anyhow::Result<Option<u64>> {
    conn.send(&ClientFrame::Join { resume: None }).await?;
    loop {
        let bytes = conn.next_bytes().await?;
        match ServerFrame::decode(conn.codec, &bytes)? {
            ServerFrame::Joined { limits, .. } => return Ok(limits.map(|l| l.chunk_bytes)),
            ServerFrame::Error { code, message, .. } => bail!("join refused: {code}: {message}"),
            _ => {}
        }
    }
}

/// Reads until the `ack` of `id` (its offset); counts `chunk_ack`s on the way.
async fn await_ack(conn: &mut Conn, id: &str, chunk_acks: &mut u32) -> anyhow::Result<u64> {
    loop {
        let bytes = conn.next_bytes().await?;
        match ServerFrame::decode(conn.codec, &bytes)? {
            ServerFrame::Ack { id: i, offset, .. } if i == id => return Ok(offset),
            ServerFrame::ChunkAck { id: i, .. } if i == id => *chunk_acks += 1,
            ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
            _ => {}
        }
    }
}

/// Publishes one small event with an id and waits for its `ack`.
async fn publish(conn: &mut Conn, id: &str, json: String) -> anyhow::Result<u64> {
    let raw = RawValue::from_string(json)?;
    let head = EventHead::scan(&raw)?;
    conn.send(&ClientFrame::Event {
        id: Some(id.to_owned()),
        event: EventPayload(Cow::Borrowed(&*raw)),
        head,
    })
    .await?;
    await_ack(conn, id, &mut 0).await
}

/// One agent's measurements.
struct Joined {
    connect: Duration,
    joined: Duration,
    keyframe: Duration,
    chunk_frames: u64,
    bytes_in: u64,
    identical: bool,
}

/// Connects, joins and reads until the event at `keyframe` is whole.
async fn join_to_keyframe(
    url: &str,
    room: &str,
    token: &str,
    codec: Codec,
    keyframe: u64,
    expect: &str,
) -> anyhow::Result<Joined> {
    let started = Instant::now();
    let mut conn = Conn::open(url, room, token, codec).await?;
    let connect = started.elapsed();
    conn.send(&ClientFrame::Join { resume: None }).await?;
    let mut joined = None;
    let mut chunk_frames = 0;
    let mut parts = Reassembler::new();
    let event = loop {
        let bytes = conn.next_bytes().await?;
        let frame = ServerFrame::decode(codec, &bytes)?;
        if parts.in_progress() && !matches!(frame, ServerFrame::Chunk { .. }) {
            bail!("a {} frame inside a chunked event", frame.type_name());
        }
        match frame {
            ServerFrame::Joined { .. } => joined = Some(started.elapsed()),
            ServerFrame::Event { offset, event } if offset == keyframe => {
                break event.json().as_bytes().to_vec()
            }
            ServerFrame::Chunk {
                offset,
                index,
                count,
                size,
                data,
            } => {
                chunk_frames += 1;
                if let Fed::Complete { offset: o, event } = parts
                    .feed(offset, index, count, size, data.as_bytes())
                    .map_err(anyhow::Error::msg)?
                {
                    if o == keyframe {
                        break event;
                    }
                }
            }
            ServerFrame::CaughtUp { offset } => {
                bail!("caught_up at {offset} without the keyframe at {keyframe}")
            }
            ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
            _ => {}
        }
    };
    let keyframe_time = started.elapsed();
    let out = Joined {
        connect,
        joined: joined.unwrap_or(keyframe_time),
        keyframe: keyframe_time,
        chunk_frames,
        bytes_in: conn.bytes_in,
        identical: event.as_slice() == expect.as_bytes(),
    };
    conn.close().await;
    Ok(out)
}

/// Median, extremes and mean of a sample.
fn spread(xs: &[f64]) -> Option<Spread> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        mean: v.iter().sum::<f64>() / n as f64,
    })
}

/// Runs the scenario.
pub async fn run(a: &SnapshotArgs) -> anyhow::Result<Report> {
    let c = &a.common;
    if c.protocol != ProtocolArg::Relay {
        bail!("snapshot speaks the relay protocol only");
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1 (the joins read the last upload)");
    }
    if c.stages.is_some() {
        bail!("snapshot does not ramp: drop --stages (use --rounds and --joins)");
    }
    let Some(secret) = &c.secret else {
        bail!("the relay needs tokens: pass --secret or set RELAY_JWT_SECRET");
    };
    let url = c.urls.first().context("no --url")?.clone();
    let minter = Minter::new(secret.as_bytes(), Duration::from_secs(3600));
    let codec = codec_of(c.codec);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (snapshot, source) = match &a.snapshot_from {
        Some(p) => (load_full_snapshot(p)?, p.display().to_string()),
        None => {
            if !a.snapshot_mb.is_finite() || a.snapshot_mb <= 0.0 {
                bail!("--snapshot-mb must be positive");
            }
            let bytes = (a.snapshot_mb * 1e6) as usize;
            (generated_snapshot(bytes, now_ms), "generated".to_owned())
        }
    };
    let room = format!("{}-snap-{}", c.room_prefix, run_suffix());
    let mut errors = ViewerStats::default();
    let mut breaches = Vec::new();
    let sampler = crate::sampler::Sampler::start(sample_targets(c, "loadtest (clients)"));
    let started = Instant::now();

    // 1. Uploads.
    let token = minter.mint("customer", &room, Role::Customer)?;
    let mut cust = Conn::open(&url, &room, &token, codec).await?;
    let announced = join(&mut cust).await?;
    let slice = match (a.chunk_bytes, announced) {
        (Some(n), _) => n,
        (None, Some(n)) => n as usize,
        (None, None) => bail!("the relay announced no limits in joined; pass --chunk-bytes"),
    };
    let mut uploads = Vec::new();
    let mut keyframe = None;
    let mut chunks = 0;
    for r in 0..a.rounds {
        let meta_id = format!("meta-{r}");
        let id = format!("snap-{r}");
        let step = async {
            publish(&mut cust, &meta_id, meta_event(now_ms)).await?;
            let up = Upload::new(&id, &snapshot, slice)?;
            let frames = up.encode_all(&snapshot, codec)?;
            let messages = frames
                .into_iter()
                .map(|f| message(codec, f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let t0 = Instant::now();
            for m in messages {
                cust.ws.feed(m).await?;
            }
            cust.ws.flush().await?;
            let mut acks = 0;
            let offset = await_ack(&mut cust, &id, &mut acks).await?;
            anyhow::Ok((t0.elapsed(), offset, up.count(), acks))
        };
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(Ok((took, offset, count, acks))) => {
                let seconds = took.as_secs_f64();
                chunks = count;
                keyframe = Some(offset);
                uploads.push(UploadRound {
                    round: r,
                    seconds,
                    mb_per_s: snapshot.len() as f64 / seconds.max(1e-9) / 1e6,
                    chunk_acks: acks,
                    offset,
                });
            }
            Ok(Err(e)) => {
                errors.error(format!("upload: {e:#}"));
                breaches.push(format!("upload round {r} failed: {e:#}"));
                break;
            }
            Err(_) => {
                errors.error("upload_timeout");
                breaches.push(format!("upload round {r}: no ack within {STEP_TIMEOUT:?}"));
                break;
            }
        }
    }

    // 2. Joins, codecs alternating.
    let codecs: Vec<Codec> = a.join_codecs.iter().copied().map(codec_of).collect();
    let mut figures: Vec<(Codec, Vec<Joined>, u32)> =
        codecs.iter().map(|&c| (c, Vec::new(), 0)).collect();
    if let Some(kf) = keyframe {
        for i in 0..a.joins {
            for fig in figures.iter_mut() {
                let agent_codec = fig.0;
                let sub = format!("agent-{}-{i}", agent_codec.label());
                let token = minter.mint(&sub, &room, Role::Agent)?;
                let step = join_to_keyframe(&url, &room, &token, agent_codec, kf, &snapshot);
                match tokio::time::timeout(STEP_TIMEOUT, step).await {
                    Ok(Ok(j)) => fig.1.push(j),
                    Ok(Err(e)) => {
                        fig.2 += 1;
                        errors.error(format!("join_{}: {e:#}", agent_codec.label()));
                    }
                    Err(_) => {
                        fig.2 += 1;
                        errors.error(format!("join_{}_timeout", agent_codec.label()));
                    }
                }
            }
        }
    }
    cust.close().await;
    let window_s = started.elapsed().as_secs_f64();
    let processes = sampler.finish().await;

    let joins: Vec<JoinFigures> = figures
        .into_iter()
        .map(|(codec, js, failed)| {
            let (mut connect, mut joined, mut kf) = (histogram(), histogram(), histogram());
            for j in &js {
                record_us(&mut connect, j.connect.as_micros() as u64);
                record_us(&mut joined, j.joined.as_micros() as u64);
                record_us(&mut kf, j.keyframe.as_micros() as u64);
            }
            let n = js.len().max(1) as f64;
            let keyframe = Summary::of(&kf);
            if failed > 0 {
                breaches.push(format!(
                    "{failed} of {} {} agents never had the keyframe",
                    a.joins,
                    codec.label()
                ));
            }
            JoinFigures {
                codec: codec.label().to_owned(),
                attempted: a.joins,
                completed: js.len() as u32,
                failed,
                identical: js.iter().filter(|j| j.identical).count() as u32,
                connect: Summary::of(&connect),
                joined: Summary::of(&joined),
                keyframe_mb_per_s_p50: keyframe
                    .map(|k| snapshot.len() as f64 / (k.p50_ms / 1000.0).max(1e-9) / 1e6),
                keyframe,
                chunk_frames_per_join: js.iter().map(|j| j.chunk_frames).sum::<u64>() as f64 / n,
                bytes_per_join: js.iter().map(|j| j.bytes_in).sum::<u64>() as f64 / n,
                keyframe_samples_ms: js
                    .iter()
                    .map(|j| j.keyframe.as_secs_f64() * 1000.0)
                    .collect(),
            }
        })
        .collect();
    let rates: Vec<f64> = uploads.iter().map(|u| u.mb_per_s).collect();
    let snap = SnapshotReport {
        source,
        snapshot_bytes: snapshot.len() as u64,
        announced_chunk_bytes: announced,
        chunk_bytes: slice as u64,
        chunks,
        upload_codec: codec.label().to_owned(),
        upload_mb_per_s: spread(&rates),
        uploads,
        keyframe_offset: keyframe,
        joins,
    };
    let params = serde_json::json!({
        "snapshot_mb": a.snapshot_from.is_none().then_some(a.snapshot_mb),
        "snapshot_from": a.snapshot_from.as_ref().map(|p| p.display().to_string()),
        "rounds": a.rounds,
        "joins": a.joins,
        "join_codecs": codecs.iter().map(|c| c.label()).collect::<Vec<_>>(),
        "chunk_bytes": a.chunk_bytes,
        "url": url,
    });
    let mut report = Report::build(ReportInput {
        scenario: "snapshot",
        protocol: "relay".to_owned(),
        codec: codec.label().to_owned(),
        params,
        publish_s: window_s,
        window_s,
        stalled: 0,
        published_events: 0,
        published_chats: 0,
        publisher_lag: histogram(),
        viewers: errors,
        processes,
    });
    report.snapshot = Some(snap);
    report.breaches.extend(breaches);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Scenario};
    use clap::Parser;

    fn args(argv: &[&str]) -> SnapshotArgs {
        let cli = Cli::try_parse_from(std::iter::once("loadtest").chain(argv.iter().copied()))
            .expect("valid arguments");
        match cli.scenario {
            Scenario::Snapshot(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_and_defaults() {
        let a = args(&["snapshot"]);
        assert_eq!((a.snapshot_mb, a.rounds, a.joins), (5.0, 5, 20));
        assert_eq!(a.join_codecs, vec![CodecArg::Json, CodecArg::Msgpack]);
        assert!(a.snapshot_from.is_none() && a.chunk_bytes.is_none());
        let a = args(&[
            "snapshot",
            "--join-codecs",
            "msgpack",
            "--codec",
            "msgpack",
            "--snapshot-from",
            "x.json",
            "--chunk-bytes",
            "1000",
        ]);
        assert_eq!(a.join_codecs, vec![CodecArg::Msgpack]);
        assert_eq!(codec_of(a.common.codec), Codec::MsgPack);
        assert_eq!(a.chunk_bytes, Some(1000));
    }

    #[tokio::test]
    async fn refuses_what_cannot_be_measured() {
        let no_rounds = args(&["snapshot", "--secret", "s", "--rounds", "0"]);
        assert!(run(&no_rounds).await.is_err());
        let bad_size = args(&["snapshot", "--secret", "s", "--snapshot-mb", "0"]);
        assert!(run(&bad_size).await.is_err());
        let sio = args(&["snapshot", "--secret", "s", "--protocol", "socketio"]);
        assert!(run(&sio).await.is_err());
    }

    #[test]
    fn spread_of_samples() {
        assert!(spread(&[]).is_none());
        let s = spread(&[3.0, 1.0, 2.0]).expect("some");
        assert_eq!((s.median, s.min, s.max, s.mean), (2.0, 1.0, 3.0, 2.0));
        let s = spread(&[4.0, 1.0, 2.0, 3.0]).expect("some");
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }
}
