//! The tasks every scenario is made of: viewers that read and check, and open-loop publishers.
//!
//! A participant's socket is split: a reader task ([`run_viewer`]) decodes, checks and measures
//! what arrives; a writer task ([`run_publisher`] or [`run_replier`]) owns the sending half and
//! takes the reader's replies (socket.io pongs) over a bounded channel.
//!
//! Publishers are open-loop: the i-th message is *scheduled* at `start + i / rate` (or at its
//! recorded time divided by the speed-up), its send timestamp is that scheduled time, and nothing
//! waits for an answer. A publisher that falls behind sends the overdue messages back to back,
//! still stamped with their scheduled times, so a stall shows up as latency rather than as a
//! quieter schedule (no coordinated omission).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assist_relay_proto::Position;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::checker::SeqChecker;
use crate::clock::Clock;
use crate::payload::{Lt, Recording, Synthetic};
use crate::progress::{Live, FLUSH_EVERY};
use crate::stages::Stages;
use crate::stats::{histogram, record_us, Channel, StreamKey, ViewerStats};
use crate::transport::{Dialer, OpenError, Participant, Session, Ws};
use crate::wire::{Inbound, Wire};

/// Capacity of a participant's reply channel (reader to writer).
pub const REPLY_QUEUE: usize = 64;

/// Where publishers announce how far their streams went: one past the last sequence number of
/// each stream, set once every publisher has finished its schedule.
pub type StreamEnds = Arc<HashMap<StreamKey, u64>>;

/// What a viewer task is told.
#[derive(Debug, Clone)]
pub struct ViewerPlan {
    /// The streams this viewer must receive.
    pub expect: Vec<StreamKey>,
    /// The first sequence number it must receive (0 when it joined before publishing began);
    /// `None`: its first one is its baseline (late joiners start at the room's keyframe).
    pub must_from: Option<u64>,
    /// Record connect-to-first-FullSnapshot.
    pub measure_keyframe: bool,
    /// Keep statistics (false for a publisher's own reader, whose chat echo is not measured).
    pub measured: bool,
}

/// What a viewer task hands back.
#[derive(Debug)]
pub struct ViewerOutcome {
    /// Measurements; its sequence counts are filled in by [`ViewerOutcome::finish`].
    pub stats: ViewerStats,
    /// One checker per stream seen.
    pub streams: BTreeMap<StreamKey, SeqChecker>,
    /// The plan it ran.
    pub plan: ViewerPlan,
    /// The last position (epoch, offset) received, for resuming.
    pub position: Option<Position>,
}

impl ViewerOutcome {
    /// Final sequence counts against how far each stream went.
    pub fn finish(mut self, ends: &HashMap<StreamKey, u64>) -> ViewerStats {
        let mut keys: Vec<StreamKey> = self.plan.expect.clone();
        keys.extend(self.streams.keys().copied());
        keys.sort();
        keys.dedup();
        let empty = SeqChecker::new();
        for key in keys {
            let checker = self.streams.get(&key).unwrap_or(&empty);
            let published = ends.get(&key).copied().unwrap_or(checker.high());
            let counts = checker.finish(published, self.plan.must_from);
            match key.channel {
                Channel::Event => self.stats.event_seq.merge(&counts),
                Channel::Chat => self.stats.chat_seq.merge(&counts),
            }
        }
        self.stats
    }
}

/// Everything a viewer task shares with the run.
#[derive(Clone)]
pub struct RunCtx {
    /// Dialect.
    pub wire: Wire,
    /// Time base of send stamps.
    pub clock: Clock,
    /// Live counters.
    pub live: Arc<Live>,
    /// Set to true to end every task.
    pub stop: watch::Receiver<bool>,
    /// Set once publishers are done, with how far each stream went.
    pub ends: watch::Receiver<Option<StreamEnds>>,
    /// Viewers that have everything their streams published (drain detection).
    pub complete: Arc<AtomicU64>,
}

/// Reads one participant's socket until the run stops or the socket closes.
///
/// `ready` fires when the catch-up is over (relay `caught_up`; at once for the other dialects).
pub async fn run_viewer(
    session_started: Instant,
    pending: Vec<Message>,
    mut stream: SplitStream<Ws>,
    replies: mpsc::Sender<Message>,
    mut ctx: RunCtx,
    plan: ViewerPlan,
    mut ready: Option<oneshot::Sender<()>>,
) -> ViewerOutcome {
    let mut v = Viewer {
        wire: ctx.wire,
        clock: ctx.clock,
        started: session_started,
        live_phase: !matches!(ctx.wire, Wire::Relay(_)),
        stats: ViewerStats {
            viewers: u64::from(plan.measured),
            ..Default::default()
        },
        streams: BTreeMap::new(),
        interval: histogram(),
        unflushed: 0,
        saw_keyframe: !plan.measure_keyframe,
        position: None,
        epoch: None,
    };
    if v.live_phase {
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
    }
    let mut ends: Option<StreamEnds> = ctx.ends.borrow().clone();
    let mut complete = false;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut open = true;
    for msg in pending {
        if let Step::Reply(r) = step(&mut v, msg, &mut ready) {
            let _ = replies.try_send(r);
        }
    }
    while open {
        tokio::select! {
            biased;
            _ = ctx.stop.changed() => break,
            changed = ctx.ends.changed() => match changed {
                Ok(()) => ends = ctx.ends.borrow().clone(),
                Err(_) => break,
            },
            _ = flush.tick() => v.flush(&ctx.live),
            msg = stream.next() => match msg {
                Some(Ok(msg)) => match step(&mut v, msg, &mut ready) {
                    Step::Continue => {}
                    Step::Reply(r) => {
                        if replies.send(r).await.is_err() {
                            open = false;
                        }
                    }
                    Step::Closed(kind) => {
                        if !*ctx.stop.borrow() {
                            v.stats.error(kind);
                            ctx.live.error();
                        }
                        open = false;
                    }
                },
                Some(Err(e)) => {
                    if !*ctx.stop.borrow() {
                        v.stats.error(format!("ws_read: {}", error_kind(&e)));
                        ctx.live.error();
                    }
                    open = false;
                }
                None => {
                    if !*ctx.stop.borrow() {
                        v.stats.error("eof");
                        ctx.live.error();
                    }
                    open = false;
                }
            },
        }
        if !complete && plan.measured {
            if let Some(ends) = &ends {
                if plan.expect.iter().all(|k| {
                    let end = ends.get(k).copied().unwrap_or(0);
                    end == 0 || v.streams.get(k).is_some_and(|c| c.high() >= end)
                }) {
                    complete = true;
                    ctx.complete.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    // A viewer that stopped reading early will never complete; count it so draining ends.
    if !complete && plan.measured {
        ctx.complete.fetch_add(1, Ordering::Relaxed);
    }
    v.flush(&ctx.live);
    if !plan.measured {
        // A publisher's own reader: only its errors matter (e.g. `rate_limited` answers).
        let errors = std::mem::take(&mut v.stats.errors);
        v.stats = ViewerStats {
            errors,
            ..Default::default()
        };
        v.streams.clear();
    }
    ViewerOutcome {
        stats: v.stats,
        streams: v.streams,
        plan,
        position: v
            .epoch
            .zip(v.position)
            .map(|(epoch, offset)| Position { epoch, offset }),
    }
}

fn error_kind(e: &tokio_tungstenite::tungstenite::Error) -> &'static str {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "closed",
        E::Io(_) => "io",
        E::Protocol(_) => "protocol",
        E::Capacity(_) => "capacity",
        _ => "other",
    }
}

/// Handles one message and fires `ready` once the catch-up is over.
fn step(v: &mut Viewer, msg: Message, ready: &mut Option<oneshot::Sender<()>>) -> Step {
    let outcome = v.handle(&msg);
    if v.live_phase {
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
    }
    outcome
}

enum Step {
    Continue,
    Reply(Message),
    Closed(String),
}

struct Viewer {
    wire: Wire,
    clock: Clock,
    started: Instant,
    /// Past the catch-up: latencies are recorded.
    live_phase: bool,
    stats: ViewerStats,
    streams: BTreeMap<StreamKey, SeqChecker>,
    interval: Histogram<u64>,
    unflushed: u64,
    /// A FullSnapshot was seen (or is not being looked for).
    saw_keyframe: bool,
    position: Option<u64>,
    epoch: Option<String>,
}

impl Viewer {
    fn handle(&mut self, msg: &Message) -> Step {
        let len = msg.len() as u64;
        match self.wire.decode(msg) {
            Inbound::Event { offset, probe } => {
                self.stats.events += 1;
                self.stats.bytes += len;
                self.unflushed += 1;
                if offset.is_some() {
                    self.position = offset;
                }
                if !self.saw_keyframe && probe.is_full_snapshot() {
                    self.saw_keyframe = true;
                    record_us(
                        &mut self.stats.first_keyframe,
                        self.started.elapsed().as_micros() as u64,
                    );
                }
                match probe.lt() {
                    Some(lt) => self.observe(Channel::Event, lt),
                    None => self.stats.error("event_without_lt"),
                }
            }
            Inbound::Chat { offset, lt } => {
                self.stats.chats += 1;
                self.stats.bytes += len;
                self.unflushed += 1;
                if offset.is_some() {
                    self.position = offset;
                }
                if let Some(lt) = lt {
                    self.observe(Channel::Chat, lt);
                }
            }
            Inbound::CaughtUp { offset } => {
                self.live_phase = true;
                if offset.is_some() {
                    self.position = offset;
                }
            }
            Inbound::Resync { epoch } => {
                self.live_phase = false;
                self.epoch = Some(epoch);
                self.streams.values_mut().for_each(SeqChecker::resync);
                self.stats.error("resync");
            }
            Inbound::Joined { epoch, .. } => self.epoch = Some(epoch),
            Inbound::Error { code } => self.stats.error(format!("server_error_{code}")),
            Inbound::Reply(r) => return Step::Reply(r),
            Inbound::Closed { code } => {
                return Step::Closed(crate::causes::close_kind(self.wire, code))
            }
            Inbound::Garbage => self.stats.error("undecodable"),
            Inbound::Other => {}
        }
        Step::Continue
    }

    fn observe(&mut self, channel: Channel, lt: Lt) {
        let key = StreamKey {
            channel,
            publisher: lt.p,
        };
        self.streams.entry(key).or_default().observe(lt.seq);
        if self.live_phase {
            let lat = self.clock.now_us().saturating_sub(lt.sent_us);
            match channel {
                Channel::Event => {
                    record_us(&mut self.stats.latency, lat);
                    record_us(&mut self.interval, lat);
                }
                Channel::Chat => record_us(&mut self.stats.chat_latency, lat),
            }
        }
    }

    fn flush(&mut self, live: &Live) {
        live.absorb(std::mem::take(&mut self.unflushed), &mut self.interval);
    }
}

/// A writer that only forwards the reader's replies, then closes the socket.
pub async fn run_replier(mut sink: SplitSink<Ws, Message>, mut replies: mpsc::Receiver<Message>) {
    while let Some(m) = replies.recv().await {
        if sink.send(m).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
}

/// Where a publisher's events come from.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// Synthetic events at a constant rate.
    Synthetic {
        /// Events per second.
        rate: f64,
        /// Their shape.
        shape: Synthetic,
        /// A ramp of the rate (`--stages`), replacing `rate`.
        stages: Option<Arc<Stages>>,
    },
    /// A recording replayed with a speed-up, looping.
    Recording {
        /// The recording.
        recording: Arc<Recording>,
        /// Time compression (10 = ten times faster).
        speed: f64,
    },
}

impl EventSource {
    /// When the i-th event is due (after the start) and its JSON.
    fn at(&self, i: u64) -> Duration {
        match self {
            EventSource::Synthetic {
                stages: Some(s), ..
            } => s
                .time_of(i as f64)
                // Past the ramp's end: after any `end` the publisher is given.
                .unwrap_or_else(|| s.total() + Duration::from_secs(3600)),
            EventSource::Synthetic { rate, .. } => Duration::from_secs_f64(i as f64 / rate),
            EventSource::Recording { recording, speed } => {
                let n = recording.events.len() as u64;
                let lap = recording.span + Duration::from_millis(100);
                let laps = (i / n) as u32;
                let e = &recording.events[(i % n) as usize];
                (lap * laps + e.at).div_f64(*speed)
            }
        }
    }

    fn event(&self, lt: Lt, timestamp_ms: u64) -> String {
        match self {
            EventSource::Synthetic { shape, .. } => shape.event(lt, timestamp_ms),
            EventSource::Recording { recording, .. } => {
                let n = recording.events.len() as u64;
                recording.events[(lt.seq % n) as usize].with_lt(lt)
            }
        }
    }
}

/// What a publisher task is told.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// Room (socket.io puts it in every payload).
    pub room: String,
    /// Publisher id, in every payload's side channel.
    pub publisher: u32,
    /// Schedule origin.
    pub start: Instant,
    /// Nothing scheduled at or after this is sent.
    pub end: Instant,
    /// Events, if this publisher sends any.
    pub events: Option<EventSource>,
    /// Chat messages per second (0: none).
    pub chat_rate: f64,
}

/// How far a publisher got; readable while it runs.
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// Events sent (one past the last event sequence number).
    pub events: AtomicU64,
    /// Chat messages sent.
    pub chats: AtomicU64,
}

/// What a publisher task hands back.
#[derive(Debug)]
pub struct PublishOutcome {
    /// Events sent.
    pub events: u64,
    /// Chat messages sent.
    pub chats: u64,
    /// How late each send was against its schedule (µs).
    pub lag: Histogram<u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

/// What a publisher task shares with the run.
pub struct PublisherCtx {
    /// Dialect.
    pub wire: Wire,
    /// Time base of send stamps.
    pub clock: Clock,
    /// Live counters.
    pub live: Arc<Live>,
    /// How far the publisher got, readable while it runs.
    pub counters: Arc<PublishCounters>,
    /// Fires when the schedule is over (every message due before `end` was sent or failed).
    pub done: oneshot::Sender<()>,
}

/// Sends a publisher's schedule, then forwards replies until the reader ends.
pub async fn run_publisher(
    mut sink: SplitSink<Ws, Message>,
    mut replies: mpsc::Receiver<Message>,
    ctx: PublisherCtx,
    plan: PublishPlan,
) -> PublishOutcome {
    let PublisherCtx {
        wire,
        clock: ctx_clock,
        live,
        counters,
        done,
    } = ctx;
    let mut out = PublishOutcome {
        events: 0,
        chats: 0,
        lag: histogram(),
        errors: BTreeMap::new(),
    };
    let error = |out: &mut PublishOutcome, kind: String| {
        live.error();
        *out.errors.entry(kind).or_default() += 1;
    };
    let (mut ev_i, mut chat_i) = (0u64, 0u64);
    let mut dirty = false;
    let mut alive = true;
    while alive {
        let next_ev = plan.events.as_ref().map(|s| plan.start + s.at(ev_i));
        let next_chat = (plan.chat_rate > 0.0)
            .then(|| plan.start + Duration::from_secs_f64(chat_i as f64 / plan.chat_rate));
        let (due, is_chat) = match (next_ev, next_chat) {
            (Some(e), Some(c)) if c < e => (c, true),
            (Some(e), _) => (e, false),
            (None, Some(c)) => (c, true),
            (None, None) => break,
        };
        if due >= plan.end {
            break;
        }
        if due > Instant::now() {
            if dirty {
                if let Err(e) = sink.flush().await {
                    error(&mut out, format!("send: {}", error_kind(&e)));
                    break;
                }
                dirty = false;
            }
            let sleep = crate::timer::sleep_until(due);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    r = replies.recv() => match r {
                        Some(m) => {
                            if sink.send(m).await.is_err() {
                                alive = false;
                                break;
                            }
                        }
                        None => {
                            alive = false;
                            break;
                        }
                    },
                }
            }
            if !alive {
                break;
            }
        }
        let sent_us = ctx_clock.unix_us(due);
        let msg = if is_chat {
            let lt = Lt {
                p: plan.publisher,
                seq: chat_i,
                sent_us,
            };
            chat_i += 1;
            wire.chat(
                &plan.room,
                &format!("{}-{}", plan.room, lt.seq),
                &lt.to_json(),
            )
        } else {
            let lt = Lt {
                p: plan.publisher,
                seq: ev_i,
                sent_us,
            };
            ev_i += 1;
            match &plan.events {
                Some(src) => wire.event(&plan.room, src.event(lt, ctx_clock.unix_ms(due))),
                None => break,
            }
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                error(&mut out, format!("encode: {e}"));
                continue;
            }
        };
        record_us(
            &mut out.lag,
            Instant::now().saturating_duration_since(due).as_micros() as u64,
        );
        if let Err(e) = sink.feed(msg).await {
            error(&mut out, format!("send: {}", error_kind(&e)));
            break;
        }
        dirty = true;
        live.sent.fetch_add(1, Ordering::Relaxed);
        if is_chat {
            out.chats += 1;
            counters.chats.store(chat_i, Ordering::Release);
        } else {
            out.events += 1;
            counters.events.store(ev_i, Ordering::Release);
        }
    }
    if dirty {
        if let Err(e) = sink.flush().await {
            error(&mut out, format!("send: {}", error_kind(&e)));
        }
    }
    let _ = done.send(());
    // Keep the connection open (and answer pings) until the reader ends.
    while let Some(m) = replies.recv().await {
        if sink.send(m).await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
    out
}

/// Opens many participants, at most `concurrency` at a time, in order.
pub async fn open_many(
    dialer: &Dialer,
    who: Vec<Participant>,
    concurrency: usize,
    live: &Live,
) -> Vec<Result<Session, OpenError>> {
    futures_util::stream::iter(who)
        .map(|p| async move {
            let r = dialer.open(&p).await;
            match &r {
                Ok(_) => live.connections.fetch_add(1, Ordering::Relaxed),
                Err(_) => live.errors.fetch_add(1, Ordering::Relaxed),
            };
            r
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}
