//! Scenarios: each sets participants up, runs the load, drains, and builds a [`Report`].
//!
//! - [`broadcast`]: one room, one publisher, N viewers, K stalled viewers.
//! - [`ceiling`]: the broadcast load against the in-process fan-out server ([`crate::fanout`]).
//! - [`cobrowse`]: R rooms of customer + agents with chat and late joiners.
//! - [`churn`]: connect, join (or resume), leave at a constant rate.
//! - [`snapshot`]: chunked upload of a large FullSnapshot, then join-to-keyframe of fresh agents.
//!
//! [`Run`] holds what they share: the dialer, the clock, live counters, the stop signal, and the
//! spawning of viewer and publisher tasks.

pub mod broadcast;
pub mod ceiling;
pub mod churn;
pub mod cobrowse;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use assist_relay_proto::Codec;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::cli::{CodecArg, Common, ProtocolArg, Scenario};
use crate::clock::Clock;
use crate::driver::{
    run_publisher, run_replier, run_viewer, PublishCounters, PublishOutcome, PublishPlan,
    PublisherCtx, RunCtx, StreamEnds, ViewerOutcome, ViewerPlan, REPLY_QUEUE,
};
use crate::progress::{Live, Progress, ProgressPlan};
use crate::report::Report;
use crate::sampler::{Sampler, Target};
use crate::stats::{record_us, ViewerStats};
use crate::token::Minter;
use crate::transport::{parse_ips, Dialer, Session};
use crate::wire::{PusherApp, Wire};

/// Runs a scenario to its report (thresholds checked, JSON written when asked).
pub async fn run(scenario: Scenario) -> anyhow::Result<Report> {
    let common = match &scenario {
        Scenario::Broadcast(a) => a.common.clone(),
        Scenario::Ceiling(a) => a.load.common.clone(),
        Scenario::Cobrowse(a) => a.common.clone(),
        Scenario::Churn(a) => a.common.clone(),
        Scenario::Snapshot(a) => a.common.clone(),
        Scenario::CeilingServer => bail!("ceiling-server is a server, not a scenario"),
    };
    let mut report = match scenario {
        Scenario::Broadcast(a) => broadcast::run(&a, None).await?,
        Scenario::Ceiling(a) => ceiling::run(&a).await?,
        Scenario::Cobrowse(a) => cobrowse::run(&a).await?,
        Scenario::Churn(a) => churn::run(&a).await?,
        Scenario::Snapshot(a) => snapshot::run(&a).await?,
        Scenario::CeilingServer => bail!("ceiling-server is a server, not a scenario"),
    };
    report.check(&common.all_thresholds());
    if let Some(path) = &common.json {
        report.write_json(path)?;
    }
    Ok(report)
}

/// The dialect the options ask for.
pub fn wire_of(c: &Common) -> anyhow::Result<Wire> {
    let codec = match c.codec {
        CodecArg::Json => Codec::Json,
        CodecArg::Msgpack => Codec::MsgPack,
    };
    Ok(match c.protocol {
        ProtocolArg::Relay => Wire::Relay(codec),
        ProtocolArg::Socketio => {
            if codec != Codec::Json {
                bail!("--protocol socketio speaks JSON text only; drop --codec msgpack");
            }
            Wire::SocketIo
        }
        ProtocolArg::Pusher => {
            if codec != Codec::Json {
                bail!("--protocol pusher speaks JSON text only; drop --codec msgpack");
            }
            // One app per process, shared by every participant for the whole run.
            Wire::Pusher(Box::leak(Box::new(PusherApp {
                key: c.pusher_key.clone(),
                secret: c.pusher_secret.clone(),
            })))
        }
    })
}

/// A label for the dialect.
pub fn protocol_label(w: Wire) -> &'static str {
    match w {
        Wire::Relay(_) => "relay",
        Wire::SocketIo => "socketio",
        Wire::Pusher(_) => "pusher",
        Wire::Raw(_) => "fanout",
    }
}

/// A room-id suffix unique to this run, so runs never share a room's log.
pub fn run_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}-{}", std::process::id(), t % 100_000_000)
}

/// Sampling targets: the `--server-pid`s, and this process.
pub fn sample_targets(c: &Common, self_label: &str) -> Vec<Target> {
    let mut t: Vec<Target> = c
        .server_pids
        .iter()
        .map(|&pid| Target {
            pid,
            label: "server".to_owned(),
        })
        .collect();
    t.push(Target {
        pid: std::process::id(),
        label: self_label.to_owned(),
    });
    t
}

/// A viewer task and its readiness.
pub struct ViewerTask {
    /// The task.
    pub task: JoinHandle<ViewerOutcome>,
    /// Fires when the viewer is past its catch-up.
    pub ready: oneshot::Receiver<()>,
}

/// A publisher: its reader task (it receives chat echoes and must be read), its writer task.
pub struct PublisherTask {
    /// The reader.
    pub reader: ViewerTask,
    /// The writer.
    pub writer: JoinHandle<PublishOutcome>,
    /// Fires when the schedule is over.
    pub done: oneshot::Receiver<()>,
    /// Live counts.
    pub counters: Arc<PublishCounters>,
}

/// What a run's tasks share.
pub struct Run {
    /// Opens participants.
    pub dialer: Arc<Dialer>,
    /// Send-stamp time base.
    pub clock: Clock,
    /// Live counters.
    pub live: Arc<Live>,
    stop: watch::Sender<bool>,
    ends: watch::Sender<Option<StreamEnds>>,
    complete: Arc<AtomicU64>,
    /// Open participants at most this many at once.
    pub concurrency: usize,
}

impl Run {
    /// A run over the common options' targets (or `urls`, when given).
    pub fn new(c: &Common, wire: Wire, urls: Option<Vec<String>>) -> anyhow::Result<Run> {
        let minter = c.secret.as_ref().map(|s| {
            Minter::new(
                s.as_bytes(),
                c.publish_duration() + c.drain + Duration::from_secs(3600),
            )
        });
        let dialer = Dialer::new(
            urls.unwrap_or_else(|| c.urls.clone()),
            parse_ips(&c.source_ips)?,
            wire,
            minter,
        )?;
        Ok(Run {
            dialer: Arc::new(dialer),
            clock: Clock::new(),
            live: Live::new(),
            stop: watch::channel(false).0,
            ends: watch::channel(None).0,
            complete: Arc::new(AtomicU64::new(0)),
            concurrency: c.connect_concurrency,
        })
    }

    /// The dialect.
    pub fn wire(&self) -> Wire {
        self.dialer.wire
    }

    fn ctx(&self) -> RunCtx {
        RunCtx {
            wire: self.wire(),
            clock: self.clock,
            live: self.live.clone(),
            stop: self.stop.subscribe(),
            ends: self.ends.subscribe(),
            complete: self.complete.clone(),
        }
    }

    /// Starts the per-second timeline over these processes, and its progress line unless quiet.
    pub fn progress(&self, c: &Common, label: &str, targets: Vec<Target>) -> Progress {
        Progress::start(
            self.live.clone(),
            ProgressPlan {
                label: label.to_owned(),
                print: !c.quiet,
                targets,
                stages: c.stages.clone().map(Arc::new),
            },
        )
    }

    /// Starts reading an opened session as a viewer.
    pub fn spawn_viewer(&self, session: Session, plan: ViewerPlan) -> ViewerTask {
        let (ready_tx, ready) = oneshot::channel();
        let (sink, stream) = session.ws.split();
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        tokio::spawn(run_replier(sink, reply_rx));
        let ctx = self.ctx();
        let ctx_wire = ctx.wire;
        let (started, connect, join, pending) = (
            session.started,
            session.connect_time,
            session.join_time,
            session.pending,
        );
        let task = tokio::spawn(async move {
            let mut out = run_viewer(
                started,
                pending,
                stream,
                reply_tx,
                ctx,
                plan,
                Some(ready_tx),
            )
            .await;
            if out.plan.measured {
                record_us(&mut out.stats.connect, connect.as_micros() as u64);
                if !matches!(ctx_wire, Wire::Raw(_)) {
                    record_us(&mut out.stats.join, join.as_micros() as u64);
                }
            }
            out
        });
        ViewerTask { task, ready }
    }

    /// Starts a publisher on an opened session; its reader is not measured.
    pub fn spawn_publisher(&self, session: Session, plan: PublishPlan) -> PublisherTask {
        let (ready_tx, ready) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let (sink, stream) = session.ws.split();
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        let counters = Arc::new(PublishCounters::default());
        let writer = tokio::spawn(run_publisher(
            sink,
            reply_rx,
            PublisherCtx {
                wire: self.wire(),
                clock: self.clock,
                live: self.live.clone(),
                counters: counters.clone(),
                done: done_tx,
            },
            plan,
        ));
        let reader_plan = ViewerPlan {
            expect: Vec::new(),
            must_from: Some(0),
            measure_keyframe: false,
            measured: false,
        };
        let task = tokio::spawn(run_viewer(
            session.started,
            session.pending,
            stream,
            reply_tx,
            self.ctx(),
            reader_plan,
            Some(ready_tx),
        ));
        PublisherTask {
            reader: ViewerTask { task, ready },
            writer,
            done,
            counters,
        }
    }

    /// Waits until every viewer is past its catch-up (at most `timeout`); returns how many are.
    pub async fn wait_ready(&self, viewers: &mut [ViewerTask], timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ready = 0;
        for v in viewers.iter_mut() {
            if tokio::time::timeout_at(deadline, &mut v.ready)
                .await
                .is_ok_and(|r| r.is_ok())
            {
                ready += 1;
            }
        }
        ready
    }

    /// Announces how far every stream went, then waits until `measured` viewers have it all or
    /// `timeout` passes.
    pub async fn drain(
        &self,
        ends: HashMap<crate::stats::StreamKey, u64>,
        measured: u64,
        timeout: Duration,
    ) {
        let _ = self.ends.send(Some(Arc::new(ends)));
        let deadline = Instant::now() + timeout;
        while self.complete.load(Ordering::Relaxed) < measured && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every task.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Starts sampling processes.
    pub fn sampler(&self, targets: Vec<Target>) -> Sampler {
        Sampler::start(targets)
    }
}

/// Joins viewer tasks and merges their final measurements.
pub async fn collect_viewers(
    tasks: Vec<ViewerTask>,
    ends: &HashMap<crate::stats::StreamKey, u64>,
) -> ViewerStats {
    let mut total = ViewerStats::default();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t.task).await {
            Ok(Ok(out)) => total.merge(&out.finish(ends)),
            Ok(Err(_)) => total.error("viewer_task_panicked"),
            Err(_) => total.error("viewer_task_stuck"),
        }
    }
    total
}

/// Joins publisher tasks: (events, chats, merged lag, errors added to `into`).
pub async fn collect_publishers(
    tasks: Vec<PublisherTask>,
    into: &mut ViewerStats,
) -> (u64, u64, hdrhistogram::Histogram<u64>) {
    let (mut events, mut chats) = (0, 0);
    let mut lag = crate::stats::histogram();
    for p in tasks {
        if let Ok(Ok(reader)) = tokio::time::timeout(Duration::from_secs(10), p.reader.task).await {
            for (k, v) in reader.stats.errors {
                *into.errors.entry(format!("publisher_{k}")).or_default() += v;
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), p.writer).await {
            Ok(Ok(out)) => {
                events += out.events;
                chats += out.chats;
                crate::stats::merge_histogram(&mut lag, &out.lag);
                for (k, v) in out.errors {
                    *into.errors.entry(format!("publisher_{k}")).or_default() += v;
                }
            }
            _ => into.error("publisher_task_lost"),
        }
    }
    (events, chats, lag)
}
