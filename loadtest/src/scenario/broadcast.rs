//! `broadcast`: one room, one publisher at a constant rate, N measured viewers, K stalled viewers.
//!
//! Viewers join first and must all be caught up before the publisher starts, so every viewer must
//! receive every event (`must_from = 0`). Stalled viewers join and then are never read: the
//! server's per-viewer queue for them fills, which is what the scenario measures the effect of.
//! After the run their sockets are read out: how many events the server still had for them, and
//! whether it had closed them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use assist_relay_proto::Role;
use futures_util::StreamExt;

use crate::cli::BroadcastArgs;
use crate::driver::{open_many, EventSource, PublishPlan, ViewerPlan};
use crate::payload::Synthetic;
use crate::report::{Report, ReportInput, StalledReport};
use crate::scenario::{
    collect_publishers, collect_viewers, protocol_label, run_suffix, sample_targets, wire_of, Run,
};
use crate::stats::{Channel, StreamKey, ViewerStats};
use crate::transport::{Participant, Session};
use crate::wire::{Inbound, Wire};

/// How the ceiling scenario redirects the load.
pub struct Redirect {
    /// Dialect to speak.
    pub wire: Wire,
    /// Target URL.
    pub url: String,
    /// Label of this process in the sampled processes.
    pub self_label: &'static str,
}

/// Runs the scenario.
pub async fn run(a: &BroadcastArgs, redirect: Option<Redirect>) -> anyhow::Result<Report> {
    let c = &a.common;
    if a.synthetic.rate() <= 0.0 {
        bail!("--rate must be positive");
    }
    if c.stages.is_some() && a.synthetic.rate.is_some() {
        bail!("--stages sets the rate over time: drop --rate");
    }
    let (wire, urls, self_label) = match redirect {
        Some(r) => (r.wire, Some(vec![r.url]), r.self_label),
        None => (wire_of(c)?, None, "loadtest (clients)"),
    };
    let scenario = if matches!(wire, Wire::Raw(_)) {
        "ceiling"
    } else {
        "broadcast"
    };
    let run = Run::new(c, wire, urls)?;
    let room = format!("{}-bcast-{}", c.room_prefix, run_suffix());
    let agent = |sub: String| Participant {
        room: room.clone(),
        sub,
        role: Role::Agent,
        resume: None,
    };
    let mut setup_errors = ViewerStats::default();

    let viewers: Vec<Participant> = (0..a.viewers)
        .map(|i| agent(format!("viewer-{i}")))
        .collect();
    let stalled: Vec<Participant> = (0..a.stalled)
        .map(|i| agent(format!("stalled-{i}")))
        .collect();
    let key = StreamKey {
        channel: Channel::Event,
        publisher: 0,
    };
    let plan = ViewerPlan {
        expect: vec![key],
        must_from: Some(0),
        measure_keyframe: false,
        measured: true,
    };

    let mut tasks = Vec::new();
    for s in open_many(&run.dialer, viewers, run.concurrency, &run.live).await {
        match s {
            Ok(s) => tasks.push(run.spawn_viewer(s, plan.clone())),
            Err(e) => setup_errors.error(format!("open_viewer_{}", e.kind)),
        }
    }
    // Stalled viewers: joined, then never read (held until the end).
    let mut held = Vec::new();
    for s in open_many(&run.dialer, stalled, run.concurrency, &run.live).await {
        match s {
            Ok(s) => held.push(s),
            Err(e) => setup_errors.error(format!("open_stalled_{}", e.kind)),
        }
    }
    let ready = run.wait_ready(&mut tasks, Duration::from_secs(15)).await;
    if ready < tasks.len() {
        setup_errors.error("viewer_not_ready");
        eprintln!(
            "warning: {} of {} viewers not caught up",
            tasks.len() - ready,
            tasks.len()
        );
    }
    if tasks.is_empty() {
        bail!(
            "no viewer could connect: {}",
            crate::causes::describe(&setup_errors.errors)
        );
    }

    let publisher = match run
        .dialer
        .open(&Participant {
            room: room.clone(),
            sub: "publisher-0".to_owned(),
            role: Role::Customer,
            resume: None,
        })
        .await
    {
        Ok(s) => s,
        Err(e) => match crate::causes::explain(&e.kind) {
            Some(why) => bail!("the publisher could not connect: {e} ({why})"),
            None => bail!("the publisher could not connect: {e}"),
        },
    };

    let sampler = run.sampler(sample_targets(c, self_label));
    let progress = run.progress(c, scenario, sample_targets(c, self_label));
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + c.publish_duration();
    let mut pubtask = run.spawn_publisher(
        publisher,
        PublishPlan {
            room: room.clone(),
            publisher: 0,
            start,
            end,
            events: Some(EventSource::Synthetic {
                rate: a.synthetic.rate(),
                shape: Synthetic {
                    size: a.synthetic.size,
                    keyframe_every: a.synthetic.keyframe_every,
                },
                stages: c.stages.clone().map(Arc::new),
            }),
            chat_rate: 0.0,
        },
    );
    let _ = (&mut pubtask.done).await;
    let publish_s = start.elapsed().as_secs_f64();
    let published = pubtask
        .counters
        .events
        .load(std::sync::atomic::Ordering::Acquire);
    let ends: HashMap<StreamKey, u64> = [(key, published)].into();
    run.drain(ends.clone(), tasks.len() as u64, c.drain).await;
    let window_s = start.elapsed().as_secs_f64();
    let processes = sampler.finish().await;
    let timeline = progress.finish().await;
    run.stop();
    let stalled_report = read_stalled(held, wire).await;

    let mut viewers = collect_viewers(tasks, &ends).await;
    viewers.merge(&setup_errors);
    let (events, chats, lag) = collect_publishers(vec![pubtask], &mut viewers).await;
    let params = serde_json::json!({
        "viewers": a.viewers,
        "stalled": a.stalled,
        "rate": if c.stages.is_some() { None } else { Some(a.synthetic.rate()) },
        "stages": c.stages.as_ref().map(|s| s.to_string()),
        "size": a.synthetic.size,
        "keyframe_every": a.synthetic.keyframe_every,
        "duration_s": c.publish_duration().as_secs_f64(),
        "urls": run.dialer.urls(),
    });
    let mut report = Report::build(ReportInput {
        scenario,
        protocol: protocol_label(wire).to_owned(),
        codec: wire.codec().label().to_owned(),
        params,
        publish_s,
        window_s,
        stalled: a.stalled as u64,
        published_events: events,
        published_chats: chats,
        publisher_lag: lag,
        viewers,
        processes,
    });
    report.stalled_viewers = stalled_report;
    report.timeline = timeline;
    Ok(report)
}

/// Reads what the server had kept for the stalled viewers, once the run is over: how many events
/// were still delivered to them, and whether the server had closed them (e.g. 4001 `slow`).
async fn read_stalled(held: Vec<Session>, wire: Wire) -> Option<StalledReport> {
    if held.is_empty() {
        return None;
    }
    let reads = held.into_iter().map(|s| async move {
        let mut ws = s.ws;
        let (mut events, mut resyncs) = (0u64, 0u64);
        let outcome = loop {
            match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                Err(_) => break "still_open".to_owned(),
                Ok(None) => break "eof".to_owned(),
                Ok(Some(Err(_))) => break "reset".to_owned(),
                Ok(Some(Ok(m))) => match wire.decode(&m) {
                    Inbound::Event { .. } => events += 1,
                    Inbound::Resync { .. } => resyncs += 1,
                    Inbound::Closed { code } => break crate::causes::close_kind(wire, code),
                    _ => {}
                },
            }
        };
        (events, resyncs, outcome)
    });
    let mut report = StalledReport::default();
    for (events, resyncs, outcome) in futures_util::future::join_all(reads).await {
        report.events_received += events;
        report.resyncs += resyncs;
        *report.outcomes.entry(outcome).or_default() += 1;
    }
    Some(report)
}
