//! `churn`: connect, join (fresh, or resuming the identity's last position), catch up, optionally
//! hold, leave; started open-loop at `--rate` per second for `--duration`.
//!
//! Each room has a customer publishing synthetic events meanwhile, so joins have a catch-up to
//! serve and resumes have something to resume. Cycles reuse `--identities` participant ids
//! round-robin; each identity remembers where its last cycle left off.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use assist_relay_proto::{JoinMode, Position, Role};
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;

use crate::cli::ChurnArgs;
use crate::driver::{open_many, EventSource, PublishPlan};
use crate::payload::Synthetic;
use crate::report::{ChurnReport, Report, ReportInput};
use crate::scenario::{
    collect_publishers, protocol_label, run_suffix, sample_targets, wire_of, Run,
};
use crate::stats::{histogram, record_us, Summary, ViewerStats};
use crate::transport::{Dialer, Participant};
use crate::wire::{Inbound, Wire};

/// Longest a cycle waits for its catch-up to end.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Cycle {
    connect: Option<Duration>,
    join: Option<Duration>,
    catch_up: Option<Duration>,
    total: Option<Duration>,
    mode: Option<JoinMode>,
    frames: u64,
    error: Option<String>,
}

/// Runs the scenario.
pub async fn run(a: &ChurnArgs) -> anyhow::Result<Report> {
    let c = &a.common;
    if a.rate <= 0.0 || a.rooms == 0 || a.identities == 0 {
        bail!("--rate, --rooms and --identities must be positive");
    }
    let wire = wire_of(c)?;
    let run = Run::new(c, wire, None)?;
    let suffix = run_suffix();
    let room = |r: usize| format!("{}-churn{r}-{suffix}", c.room_prefix);
    let mut stats = ViewerStats::default();

    let sampler = run.sampler(sample_targets(c, "loadtest (clients)"));
    let progress = run.progress(c, "churn", sample_targets(c, "loadtest (clients)"));
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + c.publish_duration();

    let mut publishers = Vec::new();
    if a.publish_rate > 0.0 {
        let customers = (0..a.rooms)
            .map(|r| Participant {
                room: room(r),
                sub: "customer".to_owned(),
                role: Role::Customer,
                resume: None,
            })
            .collect();
        for (r, s) in open_many(&run.dialer, customers, run.concurrency, &run.live)
            .await
            .into_iter()
            .enumerate()
        {
            match s {
                Ok(s) => publishers.push(run.spawn_publisher(
                    s,
                    PublishPlan {
                        room: room(r),
                        publisher: r as u32,
                        start,
                        end,
                        events: Some(EventSource::Synthetic {
                            rate: a.publish_rate,
                            shape: Synthetic {
                                size: a.size,
                                keyframe_every: 100,
                            },
                            stages: None,
                        }),
                        chat_rate: 0.0,
                    },
                )),
                Err(e) => stats.error(format!("open_customer_{}", e.kind)),
            }
        }
    }

    let positions: Arc<Vec<Mutex<Option<Position>>>> =
        Arc::new((0..a.identities).map(|_| Mutex::new(None)).collect());
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut churn = ChurnReport::default();
    let (mut catch_up, mut cycle) = (histogram(), histogram());
    let mut set: JoinSet<Cycle> = JoinSet::new();
    let mut absorb = |out: Cycle, stats: &mut ViewerStats, churn: &mut ChurnReport| {
        if let Some(d) = out.connect {
            record_us(&mut stats.connect, d.as_micros() as u64);
        }
        if let Some(d) = out.join {
            record_us(&mut stats.join, d.as_micros() as u64);
        }
        if let Some(d) = out.catch_up {
            record_us(&mut catch_up, d.as_micros() as u64);
        }
        if let Some(d) = out.total {
            record_us(&mut cycle, d.as_micros() as u64);
        }
        match out.mode {
            Some(JoinMode::Fresh) => churn.fresh += 1,
            Some(JoinMode::Resume) => churn.resumed += 1,
            Some(JoinMode::Resync) => churn.resynced += 1,
            None => {}
        }
        stats.events += out.frames;
        match out.error {
            Some(e) => {
                churn.failed += 1;
                stats.error(e);
            }
            None => churn.completed += 1,
        }
    };

    let mut k: u64 = 0;
    loop {
        // With --stages the cycle rate follows the ramp; past its end nothing more is due.
        let due = match &c.stages {
            Some(s) => match s.time_of(k as f64) {
                Some(t) => start + t,
                None => break,
            },
            None => start + Duration::from_secs_f64(k as f64 / a.rate),
        };
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        while let Some(done) = set.try_join_next() {
            match done {
                Ok(out) => absorb(out, &mut stats, &mut churn),
                Err(_) => stats.error("cycle_task_panicked"),
            }
        }
        churn.attempted += 1;
        let slot = (k % a.identities as u64) as usize;
        k += 1;
        if inflight.load(Ordering::Relaxed) >= a.max_inflight {
            churn.skipped += 1;
            continue;
        }
        inflight.fetch_add(1, Ordering::Relaxed);
        let who = Participant {
            room: room(slot % a.rooms),
            sub: format!("churn-{slot}"),
            role: Role::Agent,
            resume: if a.resume {
                positions[slot].lock().ok().and_then(|p| p.clone())
            } else {
                None
            },
        };
        let (dialer, positions, inflight, live) = (
            run.dialer.clone(),
            positions.clone(),
            inflight.clone(),
            run.live.clone(),
        );
        let hold = a.hold;
        set.spawn(async move {
            let out = one_cycle(&dialer, &who, hold, &positions[slot]).await;
            inflight.fetch_sub(1, Ordering::Relaxed);
            if out.error.is_some() {
                live.error();
            } else {
                live.connections.fetch_add(1, Ordering::Relaxed);
            }
            out
        });
    }
    let publish_s = start.elapsed().as_secs_f64();
    let drain_until = Instant::now() + c.drain + CATCH_UP_TIMEOUT;
    while let Ok(Some(done)) = tokio::time::timeout_at(drain_until.into(), set.join_next()).await {
        match done {
            Ok(out) => absorb(out, &mut stats, &mut churn),
            Err(_) => stats.error("cycle_task_panicked"),
        }
    }
    if !set.is_empty() {
        stats.error("cycle_unfinished");
        set.shutdown().await;
    }
    let window_s = start.elapsed().as_secs_f64();
    let processes = sampler.finish().await;
    let timeline = progress.finish().await;
    run.stop();
    let (events, chats, lag) = collect_publishers(publishers, &mut stats).await;
    churn.catch_up = Summary::of(&catch_up);
    churn.cycle = Summary::of(&cycle);
    let params = serde_json::json!({
        "rate": if c.stages.is_some() { None } else { Some(a.rate) },
        "stages": c.stages.as_ref().map(|s| s.to_string()),
        "rooms": a.rooms,
        "identities": a.identities,
        "resume": a.resume,
        "hold_s": a.hold.as_secs_f64(),
        "publish_rate": a.publish_rate,
        "size": a.size,
        "duration_s": c.publish_duration().as_secs_f64(),
        "urls": run.dialer.urls(),
    });
    let mut report = Report::build(ReportInput {
        scenario: "churn",
        protocol: protocol_label(wire).to_owned(),
        codec: wire.codec().label().to_owned(),
        params,
        publish_s,
        window_s,
        stalled: 0,
        published_events: events,
        published_chats: chats,
        publisher_lag: lag,
        viewers: stats,
        processes,
    });
    report.churn = Some(churn);
    report.timeline = timeline;
    Ok(report)
}

/// One connect-join-catch-up-leave cycle.
async fn one_cycle(
    dialer: &Dialer,
    who: &Participant,
    hold: Duration,
    position: &Mutex<Option<Position>>,
) -> Cycle {
    let mut out = Cycle::default();
    let mut session = match dialer.open(who).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(format!("open_{}", e.kind));
            return out;
        }
    };
    out.connect = Some(session.connect_time);
    out.join = Some(session.join_time);
    let wire = dialer.wire;
    let mut epoch = session.joined.as_ref().map(|(e, _)| e.clone());
    out.mode = session.joined.as_ref().map(|(_, m)| *m);
    let join_sent = session.started + session.connect_time;
    let mut offset: Option<u64> = None;
    // Catch up (relay); the other dialects are live once joined.
    if matches!(wire, Wire::Relay(_)) {
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, session.ws.next()).await {
                Err(_) => {
                    out.error = Some("catch_up_timeout".to_owned());
                    return out;
                }
                Ok(None) | Ok(Some(Err(_))) => {
                    out.error = Some("closed_during_catch_up".to_owned());
                    return out;
                }
                Ok(Some(Ok(m))) => match wire.decode(&m) {
                    Inbound::Event { offset: o, .. } | Inbound::Chat { offset: o, .. } => {
                        out.frames += 1;
                        offset = o.or(offset);
                    }
                    Inbound::Resync { epoch: e } => epoch = Some(e),
                    Inbound::CaughtUp { offset: o } => {
                        offset = o.or(offset);
                        break;
                    }
                    Inbound::Closed { code } => {
                        out.error = Some(format!("closed_{}", code.unwrap_or(1005)));
                        return out;
                    }
                    _ => {}
                },
            }
        }
    }
    out.catch_up = Some(join_sent.elapsed());
    if !hold.is_zero() {
        let until = tokio::time::Instant::now() + hold;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, session.ws.next()).await {
            if let Inbound::Event { offset: o, .. } | Inbound::Chat { offset: o, .. } =
                wire.decode(&m)
            {
                out.frames += 1;
                offset = o.or(offset);
            }
        }
    }
    if let (Some(epoch), Some(offset)) = (epoch, offset) {
        if let Ok(mut p) = position.lock() {
            *p = Some(Position { epoch, offset });
        }
    }
    // Leave: close and wait for the server's close (or the end of the stream).
    let _ = session
        .ws
        .send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = session.ws.next().await {}
    })
    .await;
    out.total = Some(session.started.elapsed());
    out
}
