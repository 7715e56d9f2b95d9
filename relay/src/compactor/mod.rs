//! Room logs become recordings.
//!
//! A closed room (and, while a session runs, everything before its current keyframe) is
//! archived by the compactor before it leaves the room store, so a long session keeps the store
//! bounded by keyframe + tail while the final recording still holds everything.
//!
//! # Jobs
//! A [`Job`] names a room and whether it is a `live` pass (archive what lies below the keyframe)
//! or the `final` one (seal, archive the rest, write the recording, delete the room). Nodes queue
//! jobs through a [`JobQueue`]: in cluster mode a Redis Stream that `relay compactor` processes
//! consume as a group ([`worker`]); in embedded mode an in-process queue ([`spawn_embedded`]).
//!
//! # Archive layout (under the archive root; see [`Archive`])
//! - `<room>/<epoch>/parts/<first>-<last>.jsonl.zst`: archived entries, one JSON line each:
//!   `{"o":offset,"t":accepted_ms,"e":<rrweb event>}` or `{"o":..,"t":..,"c":<chat>}`;
//! - `<room>/<epoch>/events.json.zst`: the session's rrweb events, a JSON array in offset order;
//! - `<room>/<epoch>/chat.json.zst`: the chat transcript, a JSON array;
//! - `<room>/<epoch>/manifest.json`: written last; its presence means the recording is complete;
//! - `~index/<compacted_ms>-<room>:<epoch>.json`: a copy of each manifest, written after it, so
//!   that the HTTP API lists recordings by time cheaply ([`INDEX_DIR`]; `<room>:<epoch>` is the
//!   recording's id, [`recording_id`]).
//!
//! Every file is written to a temporary name, fsynced and renamed, so a crash leaves either the
//! old state or the new one. Re-running a finished job finds the manifest and only cleans up.

mod job;
mod metrics;
mod recording;
pub mod video;
pub mod worker;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::job::{CompactError, Job, JobKind, JobQueue, Outcome, Recorded};
pub use self::recording::{
    index_key, read_parts, read_recording, recording_id, Archive, ArchivedEntry, ChatLine,
    FileInfo, FsArchive, Manifest, FORMAT_VERSION, INDEX_DIR,
};
use self::recording::{put_part, room_dir, write_part_line, write_recording};

use crate::store::{Archival, RoomLog, Store, StoreError, Unavailable};
use crate::webhook::{Event, EventKind, Webhooks};

/// Entries read from the store per request.
const PAGE: usize = 1000;

/// Runs one job against a room store and an archive.
pub async fn run_job(
    log: &(impl RoomLog + Archival + ?Sized),
    archive: &Arc<dyn Archive>,
    job: &Job,
) -> Result<Outcome, CompactError> {
    let mut out = Outcome::default();
    if job.kind == JobKind::Render {
        // Run by a worker's render stage (`video`), never here.
        return Err(CompactError::Permanent(
            "a render job reached a worker without a render stage (--render video)".into(),
        ));
    }
    let mut state = log.log_state(&job.room).await?;
    if job.kind == JobKind::Final && state.exists && !state.sealed {
        log.seal(&job.room).await?;
        state = log.log_state(&job.room).await?;
    }
    if !state.exists {
        return Ok(out); // nothing stored (already compacted and removed, or never used)
    }
    if job.kind == JobKind::Final && state.head == 0 {
        // Closed before anything was stored: nothing to record.
        log.remove_room(&job.room).await?;
        return Ok(out);
    }
    let dir = room_dir(&job.room, &state.epoch);
    let manifest = format!("{dir}/manifest.json");
    if job.kind == JobKind::Final {
        if let Some(json) = archive.get(&manifest).map_err(CompactError::from)? {
            // Done before (a re-run after a crash between writing and cleaning up).
            recording::reindex(archive.as_ref(), &dir)?;
            log.remove_room(&job.room).await?;
            out.recorded = true;
            out.recording = Some(Recorded {
                epoch: state.epoch.clone(),
                manifest,
                sha256: recording::sha256_hex(&json),
            });
            return Ok(out);
        }
    }
    let upto = match job.kind {
        JobKind::Live => state.floor.saturating_sub(1),
        JobKind::Final | JobKind::Render => state.head,
    };
    if upto > state.archived {
        archive_range(
            log,
            archive,
            &job.room,
            &dir,
            state.archived,
            upto,
            &mut out,
        )
        .await?;
        log.mark_archived(&job.room, upto).await?;
    }
    if job.kind == JobKind::Final {
        let pages = log.info(&job.room).await?.pages;
        write_recording(archive, &job.room, &state.epoch, pages, &mut out)?;
        crate::audit::recording_written(&job.room, &state.epoch, &format!("{dir}/manifest.json"));
        log.remove_room(&job.room).await?;
        out.recorded = true;
    }
    Ok(out)
}

/// Writes the entries in `(after, upto]` as one part file.
async fn archive_range(
    log: &(impl RoomLog + Archival + ?Sized),
    archive: &Arc<dyn Archive>,
    room: &str,
    dir: &str,
    after: u64,
    upto: u64,
    out: &mut Outcome,
) -> Result<(), CompactError> {
    let mut text = Vec::new();
    let mut cursor = after;
    let mut first = None;
    let mut last = after;
    loop {
        let entries = log.read_log(room, cursor, upto, PAGE).await?;
        let Some(tail) = entries.last() else { break };
        cursor = tail.offset;
        for e in &entries {
            first.get_or_insert(e.offset);
            last = e.offset;
            out.entries += 1;
            out.bytes_in += e.body.size() as u64;
            write_part_line(&mut text, e)?;
        }
        if cursor >= upto {
            break;
        }
    }
    let Some(first) = first else {
        return Ok(()); // nothing stored in that range (trimmed without recordings)
    };
    out.bytes_out += put_part(archive, dir, first, last, &text).await?;
    Ok(())
}

/// The in-process queue of embedded mode.
pub struct EmbeddedQueue {
    tx: tokio::sync::mpsc::Sender<Job>,
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).await.map_err(|_| {
            StoreError::Unavailable(Unavailable::Local, "the compactor stopped".into())
        })
    }
}

/// Closes the rooms whose customer has been gone for `idle` (at most 100 per call); returns
/// them. Each gets a final job.
pub async fn close_idle_rooms(
    log: &(impl RoomLog + Archival + ?Sized),
    queue: &dyn JobQueue,
    idle: std::time::Duration,
    hooks: &Webhooks,
) -> Result<Vec<String>, StoreError> {
    let rooms = log.idle_rooms(idle, 100).await?;
    for room in &rooms {
        // Listed open; if the final job seals it before this call does, the close is still
        // this call's to report (its id comes from the epoch, so it is reported once).
        let epoch = log.log_state(room).await.ok().map(|s| s.epoch);
        queue
            .enqueue(Job {
                room: room.clone(),
                kind: JobKind::Final,
            })
            .await?;
        if log.seal(room).await? {
            crate::audit::session_ended(room, "idle", true);
            tracing::info!(room = %room, "room closed: its customer has been gone too long");
        }
        hooks
            .emit(Event::room_closed(room, epoch.as_deref(), "idle", None))
            .await;
    }
    Ok(rooms)
}

/// Emits `recording.ready` for a final job that recorded something, or `recording.failed` for
/// one given up on (`failed`: why). Their ids come from the room's epoch (or the job), so a job
/// run twice reports once in cluster mode.
pub async fn report(hooks: &Webhooks, job: &Job, out: Result<&Outcome, &str>) {
    if job.kind != JobKind::Final {
        return;
    }
    let event = match out {
        Ok(Outcome {
            recording: Some(r), ..
        }) => {
            let data = serde_json::json!({
                "recording": recording_id(&job.room, &r.epoch),
                "epoch": r.epoch, "manifest": r.manifest, "sha256": r.sha256,
            });
            Event::of_fact(EventKind::RecordingReady, &job.room, &r.epoch, data)
        }
        Ok(_) => return, // nothing was stored: no recording
        Err(why) => {
            let data = serde_json::json!({ "reason": why });
            Event::new(EventKind::RecordingFailed, &job.room, data)
        }
    };
    hooks.emit(event).await;
}

/// How often idle rooms are looked for.
pub fn idle_sweep_period(idle: std::time::Duration) -> std::time::Duration {
    (idle / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    )
}

/// Starts the in-process compactor of embedded mode; returns its queue. With `idle_close`,
/// rooms whose customer has been gone that long are closed and recorded.
pub fn spawn_embedded(
    log: Arc<dyn Store>,
    archive: Arc<dyn Archive>,
    metrics: metrics::CompactorMetrics,
    idle_close: Option<std::time::Duration>,
    hooks: Webhooks,
) -> Arc<EmbeddedQueue> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(10_000);
    if let Some(idle) = idle_close {
        let queue = EmbeddedQueue { tx: tx.clone() };
        let log = log.clone();
        let hooks = hooks.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(idle_sweep_period(idle));
            loop {
                tick.tick().await;
                if queue.tx.is_closed() {
                    return;
                }
                if let Err(e) = close_idle_rooms(log.as_ref(), &queue, idle, &hooks).await {
                    tracing::warn!(error = %e, "idle room sweep failed");
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let started = std::time::Instant::now();
            let mut attempt = 0;
            loop {
                attempt += 1;
                match run_job(log.as_ref(), &archive, &job).await {
                    Ok(out) => {
                        metrics.record_done(&out, started.elapsed());
                        report(&hooks, &job, Ok(&out)).await;
                        break;
                    }
                    Err(CompactError::Transient(why)) if attempt < 5 => {
                        metrics.failed.inc();
                        tracing::warn!(room = %job.room, error = %why, "compaction failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                    }
                    Err(e) => {
                        metrics.dead.inc();
                        tracing::error!(room = %job.room, kind = job.kind.as_str(), error = %e, "compaction job abandoned");
                        report(&hooks, &job, Err(&e.to_string())).await;
                        break;
                    }
                }
            }
        }
    });
    Arc::new(EmbeddedQueue { tx })
}
