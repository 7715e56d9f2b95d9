//! The render stage (`relay compactor --render video`): after a final job writes a recording, a
//! `render` job on the same stream turns it into `<room>/<epoch>/video.mp4` (or `.webm`) and
//! records the video's status in the manifest (`video`: ready with its details, or failed with
//! the reason).
//!
//! A render job covers every recording of its room that has no video status yet, so it is
//! idempotent: a job run twice (its worker died, the job was reclaimed) renders what is missing
//! and nothing twice. The video is rendered into a scratch directory under a fixed temporary
//! name (a killed render's leftover is replaced by the next), then moved into the archive
//! atomically, and only then is the manifest updated. A failure of the recording (too long, not
//! replayable, past the timeout) is final and recorded; a failure of the renderer (Chromium or
//! ffmpeg missing, a disk error) leaves the job to be retried.
//!
//! [`RenderStage::notify`] is the seam for notifications: called once per video, ready or failed,
//! after the manifest says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::recording::{read_recording, room_dir, Archive, ChatLine, Manifest};
use super::CompactError;
use crate::render::{self, ChatCue, RenderConfig, RenderError, RenderMetrics, Source, Video};

/// Ready or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoState {
    /// The video is in the archive (`file`).
    Ready,
    /// The recording could not be rendered (`error`); not retried.
    Failed,
}

/// The manifest's `video` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStatus {
    /// Ready or failed.
    pub status: VideoState,
    /// The video's file name in the recording directory (when ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Size, duration, cuts (when ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Video>,
    /// When the status was written, ms since the Unix epoch.
    pub at_ms: u64,
}

/// What [`RenderStage::notify`] is told.
#[derive(Debug, Clone)]
pub struct VideoNotice {
    /// Room id.
    pub room: String,
    /// Room epoch.
    pub epoch: String,
    /// Archive key of the video (when ready).
    pub key: Option<String>,
    /// The status written to the manifest.
    pub status: VideoStatus,
}

/// Called once per video written or failed (webhooks hang here).
pub type VideoHook = Arc<dyn Fn(&VideoNotice) + Send + Sync>;

/// The render stage of a worker.
#[derive(Clone)]
pub struct RenderStage {
    /// How to render.
    pub config: RenderConfig,
    /// `relay_render_*`.
    pub metrics: RenderMetrics,
    /// Where videos are rendered before they move into the archive (best on the archive's
    /// filesystem, so the move is a rename).
    pub scratch: PathBuf,
    /// Told about each video.
    pub notify: Option<VideoHook>,
}

impl std::fmt::Debug for RenderStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderStage")
            .field("config", &self.config)
            .field("scratch", &self.scratch)
            .field("notify", &self.notify.is_some())
            .finish_non_exhaustive()
    }
}

/// The chat as subtitle lines (`agent a1: text`).
pub fn chat_cues(chat: &[ChatLine]) -> Vec<ChatCue> {
    chat.iter()
        .map(|c| ChatCue {
            ts_ms: c.ts,
            text: format!("{} {}: {}", c.from.role.as_str(), c.from.id, c.text),
        })
        .collect()
}

/// Reads the recording in `dir` (a `<room>/<epoch>` directory of an archive).
pub fn read_recording_dir(dir: &Path) -> Result<(Manifest, Vec<u8>, Vec<ChatLine>), CompactError> {
    let dir = std::fs::canonicalize(dir)?;
    let name = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CompactError::Permanent(format!(
                    "{} is not <archive>/<room>/<epoch>",
                    dir.display()
                ))
            })
    };
    let epoch = name(Some(&dir))?;
    let room = name(dir.parent())?;
    let root = dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| CompactError::Permanent(format!("{} has no archive root", dir.display())))?;
    read_recording(&super::FsArchive::new(root), &room, Some(&epoch))
}

/// Renders every recording of `room` that has no video status yet; returns how many videos it
/// wrote or failed.
pub fn render_room(
    archive: &dyn Archive,
    room: &str,
    stage: &RenderStage,
) -> Result<u32, CompactError> {
    let mut done = 0;
    for epoch in archive.list(room)? {
        let dir = room_dir(room, &epoch);
        let Some(bytes) = archive.get(&format!("{dir}/manifest.json"))? else {
            continue; // not a finished recording
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| CompactError::Permanent(format!("{dir}/manifest.json: {e}")))?;
        if let Some(status) = manifest.video {
            // Done before: tell again (a run after a crash between the manifest and the
            // notification; the webhook's id is of the fact, so it is queued once).
            if let Some(notify) = &stage.notify {
                let key = status.file.as_ref().map(|f| format!("{dir}/{f}"));
                notify(&VideoNotice {
                    room: room.to_owned(),
                    epoch,
                    key,
                    status,
                });
            }
            continue;
        }
        render_one(archive, room, &epoch, stage)?;
        done += 1;
    }
    Ok(done)
}

fn render_one(
    archive: &dyn Archive,
    room: &str,
    epoch: &str,
    stage: &RenderStage,
) -> Result<(), CompactError> {
    let dir = room_dir(room, epoch);
    let (mut manifest, events, chat) = read_recording(archive, room, Some(epoch))?;
    let file = format!("video.{}", stage.config.format.extension());
    let scratch = stage.scratch.join(room).join(epoch).join(&file);
    let cues = chat_cues(&chat);
    let source = Source {
        events: &events,
        chat: &cues,
        started_ms: manifest.started_ms,
    };
    let started = Instant::now();
    let now = crate::hub::now_us() / 1000;
    let (status, key) = match render::render(source, &stage.config, &scratch) {
        Ok(video) => {
            let key = format!("{dir}/{file}");
            archive.put_file(&key, &scratch)?;
            let _ = std::fs::remove_dir(stage.scratch.join(room).join(epoch));
            let _ = std::fs::remove_dir(stage.scratch.join(room));
            stage.metrics.ready(room, epoch, &video);
            let status = VideoStatus {
                status: VideoState::Ready,
                file: Some(file),
                error: None,
                video: Some(video),
                at_ms: now,
            };
            (status, Some(key))
        }
        Err(e) => {
            stage.metrics.failed(room, epoch, &e, started.elapsed());
            if matches!(e, RenderError::Setup(_)) {
                return Err(CompactError::Transient(e.to_string()));
            }
            let status = VideoStatus {
                status: VideoState::Failed,
                file: None,
                error: Some(e.to_string()),
                video: None,
                at_ms: now,
            };
            (status, None)
        }
    };
    manifest.video = Some(status.clone());
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CompactError::Permanent(e.to_string()))?;
    archive.put(&format!("{dir}/manifest.json"), &json)?;
    crate::audit::video(
        room,
        epoch,
        status.status == VideoState::Ready,
        key.as_deref(),
    );
    if let Some(notify) = &stage.notify {
        notify(&VideoNotice {
            room: room.to_owned(),
            epoch: epoch.to_owned(),
            key,
            status,
        });
    }
    Ok(())
}
