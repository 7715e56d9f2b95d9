//! The vocabulary of compaction jobs: what a job asks for ([`Job`], [`JobKind`]), where nodes
//! queue them ([`JobQueue`]), how one fails ([`CompactError`]) and what it did ([`Outcome`]).
//! It does not run jobs (see the parent module) or write recordings (see `recording`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Which pass a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Archive the entries below the current keyframe, then trim them from the store.
    Live,
    /// Seal the room, archive the rest, write the recording, delete the room from the store.
    Final,
    /// Render the room's recordings that have no video yet (the render stage, `--render video`).
    Render,
}

impl JobKind {
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Live => "live",
            JobKind::Final => "final",
            JobKind::Render => "render",
        }
    }
    /// From the wire string.
    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "live" => Some(JobKind::Live),
            "final" => Some(JobKind::Final),
            "render" => Some(JobKind::Render),
            _ => None,
        }
    }
}

/// One unit of compaction work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Room id.
    pub room: String,
    /// Live or final.
    pub kind: JobKind,
}

/// Where nodes put jobs.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Queues a job (at least once).
    async fn enqueue(&self, job: Job) -> Result<(), StoreError>;
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Worth retrying (the store or the disk failed).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (corrupt data); the job is dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for CompactError {
    fn from(e: StoreError) -> CompactError {
        match e {
            StoreError::Corrupt(why) => CompactError::Permanent(format!("corrupt room log: {why}")),
            other => CompactError::Transient(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CompactError {
    fn from(e: std::io::Error) -> CompactError {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            // A key outside the archive (see `FsArchive`): retrying cannot help.
            CompactError::Permanent(format!("archive: {e}"))
        } else {
            CompactError::Transient(format!("archive: {e}"))
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Entries archived by this run.
    pub entries: u64,
    /// Payload bytes read from the store.
    pub bytes_in: u64,
    /// Bytes written to the archive.
    pub bytes_out: u64,
    /// The final recording was written (or found complete).
    pub recorded: bool,
    /// Where it is (a final job that recorded something).
    pub recording: Option<Recorded>,
}

/// A finished recording, as `recording.ready` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The room's epoch (a room id names several sessions over time).
    pub epoch: String,
    /// Archive key of `manifest.json`.
    pub manifest: String,
    /// `sha256:<hex>` of `manifest.json` (which lists every file's own digest).
    pub sha256: String,
}
