//! `relay_render_*`: render jobs by outcome, failures by kind, render wall time and video time
//! produced. Registered in the registry of the process that renders (a compactor's admin port);
//! each render's log line and its metrics are emitted together here.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use super::{RenderError, Video};

/// The render metrics.
#[derive(Clone)]
pub struct RenderMetrics {
    /// Jobs by outcome (`ready`, `failed`).
    jobs: IntCounterVec,
    /// Failures by kind (`RenderError::kind`).
    failures: IntCounterVec,
    /// Wall time per render.
    seconds: Histogram,
    /// Seconds of video written.
    video_seconds: IntCounter,
}

impl RenderMetrics {
    /// Registers the metrics in `registry` (every series at 0 from the start).
    pub fn register(registry: &Registry) -> prometheus::Result<RenderMetrics> {
        let jobs = IntCounterVec::new(
            Opts::new(
                "relay_render_jobs_total",
                "Recordings rendered to video, by outcome: ready, failed.",
            ),
            &["outcome"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "relay_render_failures_total",
                "Failed renders by reason: setup (renderer unavailable; retried), settings, \
                 bad_recording, too_long, timeout, replay, encode.",
            ),
            &["reason"],
        )?;
        let seconds = Histogram::with_opts(
            HistogramOpts::new(
                "relay_render_seconds",
                "Wall time of renders (failed ones too).",
            )
            .buckets(vec![
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
        )?;
        let video_seconds = IntCounter::new(
            "relay_render_video_seconds_total",
            "Seconds of video written.",
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(video_seconds.clone()))?;
        for outcome in ["ready", "failed"] {
            jobs.with_label_values(&[outcome]);
        }
        for reason in [
            "setup",
            "settings",
            "bad_recording",
            "too_long",
            "timeout",
            "replay",
            "encode",
        ] {
            failures.with_label_values(&[reason]);
        }
        Ok(RenderMetrics {
            jobs,
            failures,
            seconds,
            video_seconds,
        })
    }

    /// A render finished.
    pub fn ready(&self, room: &str, epoch: &str, video: &Video) {
        self.jobs.with_label_values(&["ready"]).inc();
        self.seconds.observe(video.render_ms as f64 / 1000.0);
        self.video_seconds.inc_by(video.duration_ms / 1000);
        tracing::info!(
            room = %room,
            epoch = %epoch,
            duration_ms = video.duration_ms,
            skipped_ms = video.skipped_ms,
            bytes = video.bytes,
            render_ms = video.render_ms,
            "video ready"
        );
    }

    /// A render failed after `took`: a setup failure (the renderer's fault) is retried and not
    /// counted as a failed job; the others (the recording's) are final.
    pub fn failed(&self, room: &str, epoch: &str, e: &RenderError, took: std::time::Duration) {
        self.failures.with_label_values(&[e.kind()]).inc();
        self.seconds.observe(took.as_secs_f64());
        if matches!(e, RenderError::Setup(_)) {
            tracing::warn!(room = %room, epoch = %epoch, error = %e, "render failed; it will be retried");
        } else {
            self.jobs.with_label_values(&["failed"]).inc();
            tracing::warn!(room = %room, epoch = %epoch, error = %e, "video failed");
        }
    }
}
