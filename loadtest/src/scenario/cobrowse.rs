//! `cobrowse`: R rooms, each with one customer and V agents; the customer replays a recording (or
//! synthetic events) and chats; late joiners enter halfway and measure join-to-first-keyframe.
//!
//! Agents that join before the customer starts must receive every event and chat message. A late
//! joiner's catch-up starts at the room's latest keyframe, so its first sequence number is its
//! baseline; it must then receive everything after it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use assist_relay_proto::Role;

use crate::cli::CobrowseArgs;
use crate::driver::{open_many, EventSource, PublishPlan, ViewerPlan};
use crate::payload::{Recording, Synthetic};
use crate::report::{Report, ReportInput};
use crate::scenario::{
    collect_publishers, collect_viewers, protocol_label, run_suffix, sample_targets, wire_of, Run,
    ViewerTask,
};
use crate::stats::{Channel, StreamKey, ViewerStats};
use crate::transport::Participant;

/// Runs the scenario.
pub async fn run(a: &CobrowseArgs) -> anyhow::Result<Report> {
    let c = &a.common;
    if a.rooms == 0 && c.stages.is_none() {
        bail!("--rooms must be at least 1");
    }
    // Room r replays recording r mod n (or everyone publishes synthetic events).
    let synthetic = a.recording.is_empty() && a.synthetic.rate.is_some();
    let paths = match (synthetic, a.recording.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => vec![default_recording()?],
        (false, false) => a.recording.clone(),
    };
    let sources: Vec<EventSource> = if synthetic {
        if a.synthetic.rate() <= 0.0 {
            bail!("--rate must be positive");
        }
        vec![EventSource::Synthetic {
            rate: a.synthetic.rate(),
            shape: Synthetic {
                size: a.synthetic.size,
                keyframe_every: a.synthetic.keyframe_every,
            },
            stages: None,
        }]
    } else {
        if a.speed <= 0.0 {
            bail!("--speed must be positive");
        }
        paths
            .iter()
            .map(|path| {
                Ok(EventSource::Recording {
                    recording: Arc::new(Recording::load(path)?),
                    speed: a.speed,
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    // With --stages, room r publishes while the ramp's target is at least r + 1.
    let rooms = match &c.stages {
        Some(s) => s.peak().floor() as usize,
        None => a.rooms,
    };
    if rooms == 0 {
        bail!("--stages never reaches 1 room");
    }
    let window = |r: usize| -> Option<(Duration, Duration)> {
        match &c.stages {
            Some(s) => s.window(r as f64 + 1.0),
            None => Some((Duration::ZERO, c.duration)),
        }
    };
    let source_of = |r: usize| sources[r % sources.len()].clone();
    let wire = wire_of(c)?;
    let run = Run::new(c, wire, None)?;
    let suffix = run_suffix();
    let room = |r: usize| format!("{}-co{r}-{suffix}", c.room_prefix);
    let keys = |r: usize| {
        let mut k = vec![StreamKey {
            channel: Channel::Event,
            publisher: r as u32,
        }];
        if a.chat_rate > 0.0 {
            k.push(StreamKey {
                channel: Channel::Chat,
                publisher: r as u32,
            });
        }
        k
    };
    let mut setup = ViewerStats::default();

    // Agents first: they see every entry from the first on.
    let mut who = Vec::new();
    let mut plans = Vec::new();
    for r in 0..rooms {
        for i in 0..a.agents {
            who.push(Participant {
                room: room(r),
                sub: format!("agent-{i}"),
                role: Role::Agent,
                resume: None,
            });
            plans.push(ViewerPlan {
                expect: keys(r),
                must_from: Some(0),
                measure_keyframe: false,
                measured: true,
            });
        }
    }
    let mut tasks: Vec<ViewerTask> = Vec::new();
    for (s, plan) in open_many(&run.dialer, who, run.concurrency, &run.live)
        .await
        .into_iter()
        .zip(plans)
    {
        match s {
            Ok(s) => tasks.push(run.spawn_viewer(s, plan)),
            Err(e) => setup.error(format!("open_agent_{}", e.kind)),
        }
    }
    let ready = run.wait_ready(&mut tasks, Duration::from_secs(15)).await;
    if ready < tasks.len() {
        setup.error("viewer_not_ready");
    }

    // Customers: each publishes, and reads its socket (its chat echo is not measured).
    let customers: Vec<Participant> = (0..rooms)
        .map(|r| Participant {
            room: room(r),
            sub: "customer".to_owned(),
            role: Role::Customer,
            resume: None,
        })
        .collect();
    let sessions = open_many(&run.dialer, customers, run.concurrency, &run.live).await;
    let sampler = run.sampler(sample_targets(c, "loadtest (clients)"));
    let progress = run.progress(c, "cobrowse", sample_targets(c, "loadtest (clients)"));
    let start = Instant::now() + Duration::from_millis(50);
    let duration = c.publish_duration();
    // Spread the rooms' schedules so they do not all send at the same instant.
    let spread = match &sources[0] {
        EventSource::Synthetic { rate, .. } => 1.0 / rate,
        EventSource::Recording { .. } => 1.0,
    };
    let mut publishers = Vec::new();
    let mut live_rooms = Vec::new();
    for (r, s) in sessions.into_iter().enumerate() {
        match s {
            Ok(s) => {
                let Some((from, to)) = window(r) else {
                    continue;
                };
                let offset = Duration::from_secs_f64(spread * r as f64 / rooms as f64);
                publishers.push(run.spawn_publisher(
                    s,
                    PublishPlan {
                        room: room(r),
                        publisher: r as u32,
                        start: start + from + offset,
                        end: start + to,
                        events: Some(source_of(r)),
                        chat_rate: a.chat_rate,
                    },
                ));
                live_rooms.push(r);
            }
            Err(e) => setup.error(format!("open_customer_{}", e.kind)),
        }
    }
    if publishers.is_empty() {
        bail!(
            "no customer could connect: {}",
            crate::causes::describe(&setup.errors)
        );
    }

    // Late joiners, halfway through, into the rooms publishing then.
    let half = duration / 2;
    tokio::time::sleep_until((start + half).into()).await;
    let (late, late_rooms): (Vec<Participant>, Vec<usize>) = live_rooms
        .iter()
        .filter(|&&r| window(r).is_some_and(|(from, to)| from <= half && half < to))
        .flat_map(|&r| {
            (0..a.late_joiners).map(move |j| {
                let p = Participant {
                    room: room(r),
                    sub: format!("late-{j}"),
                    role: Role::Agent,
                    resume: None,
                };
                (p, r)
            })
        })
        .unzip();
    for (s, r) in open_many(&run.dialer, late, run.concurrency, &run.live)
        .await
        .into_iter()
        .zip(late_rooms)
    {
        match s {
            Ok(s) => tasks.push(run.spawn_viewer(
                s,
                ViewerPlan {
                    expect: keys(r),
                    must_from: None,
                    measure_keyframe: true,
                    measured: true,
                },
            )),
            Err(e) => setup.error(format!("open_late_{}", e.kind)),
        }
    }

    for p in &mut publishers {
        let _ = (&mut p.done).await;
    }
    let publish_s = start.elapsed().as_secs_f64();
    let mut ends = HashMap::new();
    for (p, &r) in publishers.iter().zip(&live_rooms) {
        ends.insert(
            StreamKey {
                channel: Channel::Event,
                publisher: r as u32,
            },
            p.counters.events.load(Ordering::Acquire),
        );
        ends.insert(
            StreamKey {
                channel: Channel::Chat,
                publisher: r as u32,
            },
            p.counters.chats.load(Ordering::Acquire),
        );
    }
    run.drain(ends.clone(), tasks.len() as u64, c.drain).await;
    let window_s = start.elapsed().as_secs_f64();
    let processes = sampler.finish().await;
    let timeline = progress.finish().await;
    run.stop();

    let mut viewers = collect_viewers(tasks, &ends).await;
    viewers.merge(&setup);
    let (events, chats, lag) = collect_publishers(publishers, &mut viewers).await;
    let params = serde_json::json!({
        "rooms": rooms,
        "stages": c.stages.as_ref().map(|s| s.to_string()),
        "agents": a.agents,
        "late_joiners": a.late_joiners,
        "recording": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "speed": a.speed,
        "rate": synthetic.then_some(a.synthetic.rate()),
        "size": synthetic.then_some(a.synthetic.size),
        "chat_rate": a.chat_rate,
        "duration_s": duration.as_secs_f64(),
        "urls": run.dialer.urls(),
    });
    let mut report = Report::build(ReportInput {
        scenario: "cobrowse",
        protocol: protocol_label(wire).to_owned(),
        codec: wire.codec().label().to_owned(),
        params,
        publish_s,
        window_s,
        stalled: 0,
        published_events: events,
        published_chats: chats,
        publisher_lag: lag,
        viewers,
        processes,
    });
    report.timeline = timeline;
    Ok(report)
}

/// The recording `cobrowse` replays by default, the demo shop's: `loadtest/fixtures/demo-shop.json`
/// from the repository root, `fixtures/demo-shop.json` from `loadtest/`, or where this binary was
/// built from.
pub const DEFAULT_RECORDING: &str = "loadtest/fixtures/demo-shop.json";

/// Finds [`DEFAULT_RECORDING`], or says what to pass instead.
pub fn default_recording() -> anyhow::Result<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-shop.json");
    first_present(&[
        PathBuf::from(DEFAULT_RECORDING),
        PathBuf::from("fixtures/demo-shop.json"),
        built,
    ])
}

fn first_present(candidates: &[PathBuf]) -> anyhow::Result<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no --recording given and the default recording {DEFAULT_RECORDING} is not here \
         (looked for {}): run from the repository root, or pass --recording FILE (a JSON array \
         of rrweb events), or --rate N for synthetic events",
        looked.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_recording_says_what_to_pass() {
        let e = first_present(&[PathBuf::from("/nonexistent/demo-shop.json")])
            .expect_err("missing")
            .to_string();
        for part in [
            "/nonexistent/demo-shop.json",
            "--recording FILE",
            "--rate N",
            "repository root",
        ] {
            assert!(e.contains(part), "{part} in {e}");
        }
    }

    #[test]
    fn the_default_recording_ships_with_the_repository() {
        let path = default_recording().expect("found");
        let rec = Recording::load(&path).expect("a JSON array of rrweb events");
        assert!(!rec.events.is_empty());
    }
}
