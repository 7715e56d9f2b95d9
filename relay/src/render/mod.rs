//! Recordings become videos: `relay render` and the compactor's render stage.
//!
//! A recording's rrweb events (as agents saw them: masked when they entered the room log) are
//! replayed by rrweb's Replayer in headless Chromium and the frames encoded by ffmpeg (H.264 in
//! MP4, or VP9 in WebM), with the chat as a subtitle track.
//!
//! # Layout
//! - [`plan`]: which replay time each frame shows (a fixed rate on the recording's own clock),
//!   the idle stretches cut and their captions, the size, the subtitles. Pure, no I/O.
//! - this module: runs a plan. `relay/render/render.mjs` (Node with playwright-core and rrweb
//!   from npm: `npm ci` in that directory) replays and captures one PNG per frame on its standard
//!   output, piped straight into ffmpeg. The video is written to a temporary name beside the
//!   output and renamed when complete; every child is killed when the job's timeout passes.
//! - [`metrics`]: `relay_render_*`. [`options`]: the flags of `relay render` and the compactor.
//!
//! It knows nothing of the archive: the compactor's render stage (`compactor::video`) reads
//! recordings and records each video's status in its manifest.

pub mod metrics;
pub mod options;
pub mod plan;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use self::metrics::RenderMetrics;
pub use self::plan::{ChatCue, Plan, PlanSettings, Skip};

/// Recordings larger than this replay without rrweb's virtual DOM: its per-seek diff of the
/// whole page matches the player exactly but costs seconds per frame on a page of tens of
/// thousands of elements (big-catalog: 7 times slower). Without it, scroll positions can differ
/// from the player's by a few pixels.
pub const VIRTUAL_DOM_MAX_BYTES: usize = 4 << 20;

/// Container and codec of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VideoFormat {
    /// H.264 (libx264, yuv420p) in MP4 with the index in front (faststart); mov_text subtitles.
    Mp4,
    /// VP9 (libvpx-vp9) in WebM; WebVTT subtitles.
    Webm,
}

impl VideoFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "mp4",
            VideoFormat::Webm => "webm",
        }
    }
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    /// The renderer package: the directory of `render.mjs` with its `node_modules` (`npm ci`).
    pub script_dir: PathBuf,
    /// The Node.js binary.
    pub node: PathBuf,
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// Container and codec.
    pub format: VideoFormat,
    /// Frame rate, idle cuts and size and duration limits.
    pub plan: PlanSettings,
    /// A render running longer than this is killed and fails.
    pub timeout: Duration,
    /// Add the chat as a subtitle track.
    pub subtitles: bool,
}

impl RenderConfig {
    /// The defaults, with the renderer package in `script_dir`.
    pub fn new(script_dir: impl Into<PathBuf>) -> RenderConfig {
        RenderConfig {
            script_dir: script_dir.into(),
            node: "node".into(),
            chromium: "/usr/bin/chromium".into(),
            ffmpeg: "ffmpeg".into(),
            format: VideoFormat::Mp4,
            plan: PlanSettings::default(),
            timeout: Duration::from_secs(30 * 60),
            subtitles: true,
        }
    }
}

/// Why a render failed. [`RenderError::Setup`] is this machine's problem (retry elsewhere or
/// later); the others are the recording's (rendering it again gives the same answer).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The renderer cannot start (Node, Chromium, ffmpeg or the npm package missing), or the
    /// disk failed.
    #[error("renderer unavailable: {0}")]
    Setup(String),
    /// The settings are out of range.
    #[error("bad render settings: {0}")]
    Settings(String),
    /// The recording cannot be replayed (no FullSnapshot, not rrweb events).
    #[error("cannot render this recording: {0}")]
    BadRecording(String),
    /// The video would be longer than the limit.
    #[error("too long: {0}")]
    TooLong(String),
    /// The job ran past its timeout and was stopped.
    #[error("timed out after {0:?} (--render-timeout)")]
    Timeout(Duration),
    /// The replay in Chromium failed.
    #[error("replay failed: {0}")]
    Replay(String),
    /// ffmpeg failed.
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl RenderError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::Setup(_) => "setup",
            RenderError::Settings(_) => "settings",
            RenderError::BadRecording(_) => "bad_recording",
            RenderError::TooLong(_) => "too_long",
            RenderError::Timeout(_) => "timeout",
            RenderError::Replay(_) => "replay",
            RenderError::Encode(_) => "encode",
        }
    }
}

/// What a recording is made of, for a render.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The rrweb events, a JSON array.
    pub events: &'a [u8],
    /// The chat, as subtitle lines.
    pub chat: &'a [ChatCue],
    /// The relay's time of the recording's first entry (ms since the Unix epoch), where the chat
    /// times are measured from.
    pub started_ms: u64,
}

/// A finished video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// Container and codec.
    pub format: VideoFormat,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames.
    pub frames: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Idle time cut out, ms of the recording.
    pub skipped_ms: u64,
    /// The cuts (where in the video, and which replay times).
    pub skips: Vec<Skip>,
    /// File size.
    pub bytes: u64,
    /// Wall time the render took, ms.
    pub render_ms: u64,
}

/// Renders `src` into `out` (replaced atomically: nothing appears at `out` unless the video is
/// complete). Blocking: run it on a blocking thread.
pub fn render(src: Source<'_>, cfg: &RenderConfig, out: &Path) -> Result<Video, RenderError> {
    let started = Instant::now();
    let script_dir = std::fs::canonicalize(&cfg.script_dir).unwrap_or(cfg.script_dir.clone());
    let script = script_dir.join("render.mjs");
    if !script.is_file() || !script_dir.join("node_modules/rrweb").is_dir() {
        return Err(RenderError::Setup(format!(
            "{} is not the renderer package with its dependencies installed (run `npm ci` in \
             relay/render and pass that directory as --render-dir)",
            cfg.script_dir.display()
        )));
    }
    let plan = plan::plan(src.events, src.chat, src.started_ms, &cfg.plan)?;
    let setup = |e: std::io::Error| RenderError::Setup(format!("temporary files: {e}"));
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RenderError::Setup(format!("{} is not a file name", out.display())))?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(setup)?;
    // Fixed names per output: what a render killed half-way leaves, the next one replaces.
    let tmp = dir.join(format!(".{name}.rendering"));
    let _ = std::fs::remove_file(&tmp);
    let work = WorkDir::new(dir.join(format!(".{name}.work")))?;
    let events = work.0.join("events.json");
    std::fs::write(&events, src.events).map_err(setup)?;
    let job = serde_json::json!({
        "events": events,
        "chromium": cfg.chromium,
        "width": plan.width,
        "height": plan.height,
        "scale": plan.scale,
        "frames": plan.frames,
        "captions": plan.captions,
        "virtual_dom": src.events.len() <= VIRTUAL_DOM_MAX_BYTES,
    });
    let job_path = work.0.join("job.json");
    std::fs::write(&job_path, job.to_string()).map_err(setup)?;
    let subs = (cfg.subtitles && !plan.cues.is_empty()).then(|| work.0.join("chat.srt"));
    if let Some(path) = &subs {
        std::fs::write(path, plan::srt(&plan.cues)).map_err(setup)?;
    }
    let result = run(
        cfg,
        &plan,
        &script,
        &job_path,
        subs.as_deref(),
        &tmp,
        started,
    );
    let bytes = match result {
        Ok(()) => std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if bytes == 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(RenderError::Encode("ffmpeg wrote an empty file".into()));
    }
    let publish = || -> std::io::Result<()> {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, out)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    publish().map_err(|e| RenderError::Setup(format!("writing {}: {e}", out.display())))?;
    Ok(Video {
        format: cfg.format,
        width: plan.width,
        height: plan.height,
        fps: plan.fps,
        frames: plan.frames.len() as u64,
        duration_ms: plan.duration_ms(),
        skipped_ms: plan.skipped_ms(),
        skips: plan.skips.clone(),
        bytes,
        render_ms: started.elapsed().as_millis() as u64,
    })
}

/// The ffmpeg arguments that encode PNG frames from standard input into `tmp`.
fn ffmpeg_args(cfg: &RenderConfig, fps: u32, subs: Option<&Path>, tmp: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y"]
        .map(String::from)
        .to_vec();
    a.extend(["-f", "image2pipe", "-c:v", "png", "-framerate"].map(String::from));
    a.push(fps.to_string());
    a.extend(["-i", "-"].map(String::from));
    if let Some(s) = subs {
        a.extend([
            "-f".into(),
            "srt".into(),
            "-i".into(),
            s.display().to_string(),
        ]);
        a.extend(
            [
                "-map",
                "0:v",
                "-map",
                "1:s",
                "-metadata:s:s:0",
                "title=chat",
            ]
            .map(String::from),
        );
    }
    let codec: &[&str] = match cfg.format {
        VideoFormat::Mp4 => &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-c:s",
            "mov_text",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
        VideoFormat::Webm => &[
            "-c:v",
            "libvpx-vp9",
            "-b:v",
            "0",
            "-crf",
            "33",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
            "-pix_fmt",
            "yuv420p",
            "-c:s",
            "webvtt",
            "-f",
            "webm",
        ],
    };
    a.extend(codec.iter().map(|s| s.to_string()));
    a.push(tmp.display().to_string());
    a
}

/// Runs the replay piped into ffmpeg until both finish, one fails, or the timeout passes.
fn run(
    cfg: &RenderConfig,
    plan: &Plan,
    script: &Path,
    job: &Path,
    subs: Option<&Path>,
    tmp: &Path,
    started: Instant,
) -> Result<(), RenderError> {
    let spawn_err = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| RenderError::Setup(format!("cannot start {what}: {e}"))
    };
    // The replay's stdin stays open while we live: when this process dies it closes, and the
    // script stops (and with it Chromium).
    let mut replay = Children(vec![Command::new(&cfg.node)
        .arg(script)
        .arg(job)
        .current_dir(script.parent().unwrap_or(Path::new(".")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(&cfg.node))?]);
    let frames = replay.0[0]
        .stdout
        .take()
        .map(Stdio::from)
        .unwrap_or(Stdio::null());
    let encoder = Command::new(&cfg.ffmpeg)
        .args(ffmpeg_args(cfg, plan.fps, subs, tmp))
        .stdin(frames)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(&cfg.ffmpeg))?;
    replay.0.push(encoder);
    let replay_err = tail_of(replay.0[0].stderr.take());
    let encode_err = tail_of(replay.0[1].stderr.take());
    let deadline = started + cfg.timeout;
    let mut status = [None, None];
    loop {
        for (i, child) in replay.0.iter_mut().enumerate() {
            if status[i].is_none() {
                status[i] = child
                    .try_wait()
                    .map_err(|e| RenderError::Setup(e.to_string()))?;
            }
        }
        match status {
            [Some(r), _] if !r.success() => {
                replay.kill();
                let why = join_tail(replay_err);
                return Err(if why.is_empty() {
                    RenderError::Replay(format!("the renderer exited with {r}"))
                } else {
                    RenderError::Replay(why)
                });
            }
            [_, Some(e)] if !e.success() => {
                replay.kill();
                return Err(RenderError::Encode(or_status(join_tail(encode_err), e)));
            }
            [Some(_), Some(_)] => return Ok(()),
            _ => {}
        }
        if Instant::now() >= deadline {
            replay.kill();
            return Err(RenderError::Timeout(cfg.timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn or_status(why: String, status: std::process::ExitStatus) -> String {
    if why.is_empty() {
        format!("ffmpeg exited with {status}")
    } else {
        why
    }
}

/// The children of one render, killed together (and reaped) when it stops early or is dropped.
struct Children(Vec<Child>);

impl Children {
    fn kill(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Reads a child's stderr on a thread; the last lines are its failure reason.
fn tail_of<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> Option<std::thread::JoinHandle<String>> {
    let mut pipe = pipe?;
    Some(std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        tail.chars().take(1000).collect()
    }))
}

fn join_tail(h: Option<std::thread::JoinHandle<String>>) -> String {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// The working directory of one render, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    /// The render's working directory (the events, the job, the subtitles), emptied first and
    /// removed on drop.
    fn new(dir: PathBuf) -> Result<WorkDir, RenderError> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RenderError::Setup(format!("temporary directory: {e}")))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
