//! Recordings: the [`Archive`] they are written to ([`FsArchive`], a directory), the archive
//! layout and format (part files, events, chat, manifest; see the parent module's doc), and
//! reading them back. It does not decide when to archive (see the parent module's jobs).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assist_relay_proto::{Member, PageRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::job::{CompactError, Outcome};
use crate::hub::{Entry, EntryBody};

/// Version of the recording format.
pub const FORMAT_VERSION: u32 = 1;
/// zstd level of recordings (a good ratio at hundreds of MB/s).
const ZSTD_LEVEL: i32 = 6;

/// Durable storage for recordings: a directory today; an object store fits the same calls.
pub trait Archive: Send + Sync + 'static {
    /// Writes `bytes` under `key` atomically (all or nothing).
    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Reads `key`, if present.
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Keys under `prefix` (one level: names of the files in that directory), sorted.
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>>;
    /// Deletes `key` if present.
    fn delete(&self, key: &str) -> std::io::Result<()>;
    /// Moves the local file `src` under `key` atomically (a rendered video: too big to hold in
    /// memory twice where the archive can do better than this default).
    fn put_file(&self, key: &str, src: &Path) -> std::io::Result<()> {
        self.put(key, &std::fs::read(src)?)?;
        std::fs::remove_file(src)
    }
}

/// An [`Archive`] in a local directory: temporary file, fsync, rename, fsync of the directory.
#[derive(Debug, Clone)]
pub struct FsArchive {
    root: PathBuf,
}

impl FsArchive {
    /// An archive rooted at `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> FsArchive {
        FsArchive { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens `key` for reading (streaming a large file), if present.
    pub fn open(&self, key: &str) -> std::io::Result<Option<std::fs::File>> {
        match std::fs::File::open(self.path(key)?) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file of `key` under the root. A key that could leave the root (`..`, an absolute
    /// path) is refused whatever produced it: room ids are checked when they enter, and this is
    /// the second line.
    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        let rel = Path::new(key);
        if rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            Ok(self.root.join(rel))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("archive key {key:?} is not a relative path inside the archive"),
            ))
        }
    }
}

impl Archive for FsArchive {
    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(
            ".{}.{:016x}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            rand::random::<u64>()
        ));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    }

    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        match std::fs::read_dir(self.path(prefix)?) {
            Ok(dir) => {
                for e in dir {
                    let name = e?.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') {
                        out.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn put_file(&self, key: &str, src: &Path) -> std::io::Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        std::fs::File::open(src)?.sync_all()?;
        if std::fs::rename(src, &path).is_err() {
            // Another filesystem: copy to a temporary name beside the target, then rename.
            let tmp = dir.join(format!(".{:016x}.tmp", rand::random::<u64>()));
            std::fs::copy(src, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::remove_file(src)?;
        }
        std::fs::File::open(&dir)?.sync_all()
    }
}

/// One archived line.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Offset.
    o: u64,
    /// Acceptance time, ms.
    t: u64,
    /// rrweb event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<Box<serde_json::value::RawValue>>,
    /// Chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<ChatLine>,
}

/// A chat message in the archive and the transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatLine {
    /// Room offset.
    #[serde(default)]
    pub offset: u64,
    /// Sender's message id.
    pub id: String,
    /// Sender.
    pub from: Member,
    /// Text.
    pub text: String,
    /// Acceptance time, ms since the Unix epoch.
    pub ts: u64,
}

/// A file of the recording, as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileInfo {
    /// File name in the recording directory.
    pub name: String,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Bytes on disk (zstd).
    pub compressed_bytes: u64,
    /// `sha256:<hex>` of the uncompressed content.
    pub sha256: String,
}

/// The recording's manifest (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Room id.
    pub room: String,
    /// Room epoch.
    pub epoch: String,
    /// First and last offset archived.
    pub first_offset: u64,
    /// Last offset archived.
    pub last_offset: u64,
    /// First entry's acceptance time, ms since the Unix epoch.
    pub started_ms: u64,
    /// Last entry's acceptance time.
    pub ended_ms: u64,
    /// `ended_ms - started_ms`.
    pub duration_ms: u64,
    /// rrweb events.
    pub event_count: u64,
    /// rrweb events by type (`"2"`: FullSnapshot, ...).
    pub events_by_type: BTreeMap<String, u64>,
    /// Chat messages.
    pub chat_count: u64,
    /// Participants seen in the log (chat senders; customers publish events).
    pub participants: Vec<Member>,
    /// Page timeline (web pages and native screens) with offsets and times.
    pub pages: Vec<PageRecord>,
    /// The recording's files.
    pub files: Vec<FileInfo>,
    /// When the recording was written, ms since the Unix epoch.
    pub compacted_ms: u64,
    /// The video's status, once the render stage has run (absent before, and without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<super::video::VideoStatus>,
}

pub(super) fn room_dir(room: &str, epoch: &str) -> String {
    format!("{room}/{epoch}")
}

fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(bytes, ZSTD_LEVEL)
}

fn decompress_all(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::stream::decode_all(bytes)
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Appends `e` to a part's text as one JSON line.
pub(super) fn write_part_line(text: &mut Vec<u8>, e: &Entry) -> Result<(), CompactError> {
    let line = match &e.body {
        EntryBody::Event { event, .. } => Line {
            o: e.offset,
            t: e.accepted_us / 1000,
            // Read back from the room log unparsed; a recording is checked JSON, line by line.
            e: Some(event.raw().map(ToOwned::to_owned).ok_or_else(|| {
                CompactError::Permanent(format!("entry {} is not JSON", e.offset))
            })?),
            c: None,
        },
        EntryBody::Chat { id, from, text, ts } => Line {
            o: e.offset,
            t: e.accepted_us / 1000,
            e: None,
            c: Some(ChatLine {
                offset: e.offset,
                id: id.clone(),
                from: from.clone(),
                text: text.clone(),
                ts: *ts,
            }),
        },
    };
    serde_json::to_writer(&mut *text, &line).map_err(|e| CompactError::Permanent(e.to_string()))?;
    text.push(b'\n');
    Ok(())
}

/// Compresses a part's text and stores it as `<dir>/parts/<first>-<last>.jsonl.zst`; returns
/// the bytes written.
pub(super) async fn put_part(
    archive: &Arc<dyn Archive>,
    dir: &str,
    first: u64,
    last: u64,
    text: &[u8],
) -> Result<u64, CompactError> {
    let packed = compress(text)?;
    let written = packed.len() as u64;
    let key = format!("{dir}/parts/{first:020}-{last:020}.jsonl.zst");
    let archive = archive.clone();
    tokio::task::spawn_blocking(move || archive.put(&key, &packed))
        .await
        .map_err(|e| CompactError::Transient(e.to_string()))??;
    Ok(written)
}

/// An archived entry: offset, acceptance time (ms), and the event (`Ok`) or chat (`Err`).
pub type ArchivedEntry = (u64, u64, Result<Box<serde_json::value::RawValue>, ChatLine>);

/// Reads every part of a room epoch back, in offset order, without duplicates.
pub fn read_parts(
    archive: &dyn Archive,
    room: &str,
    epoch: &str,
) -> Result<Vec<ArchivedEntry>, CompactError> {
    let dir = room_dir(room, epoch);
    let mut seen = std::collections::BTreeMap::new();
    for name in archive.list(&format!("{dir}/parts"))? {
        let Some(bytes) = archive.get(&format!("{dir}/parts/{name}"))? else {
            continue;
        };
        let text = decompress_all(&bytes)?;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let l: Line = serde_json::from_slice(line)
                .map_err(|e| CompactError::Permanent(format!("archived part {name}: {e}")))?;
            let item = match (l.e, l.c) {
                (Some(e), _) => Ok(e),
                (None, Some(c)) => Err(c),
                (None, None) => continue,
            };
            seen.entry(l.o).or_insert((l.t, item));
        }
    }
    Ok(seen
        .into_iter()
        .map(|(o, (t, item))| (o, t, item))
        .collect())
}

/// Writes `events.json.zst`, `chat.json.zst` and, last, `manifest.json` from the parts, then
/// deletes the parts.
pub(super) fn write_recording(
    archive: &Arc<dyn Archive>,
    room: &str,
    epoch: &str,
    pages: Vec<PageRecord>,
    out: &mut Outcome,
) -> Result<(), CompactError> {
    let dir = room_dir(room, epoch);
    let items = read_parts(archive.as_ref(), room, epoch)?;
    let mut events = Vec::from(&b"["[..]);
    let mut chats = Vec::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut participants: Vec<Member> = Vec::new();
    let mut event_count = 0u64;
    for (_, _, item) in &items {
        match item {
            Ok(e) => {
                if event_count > 0 {
                    events.push(b',');
                }
                events.extend_from_slice(e.get().as_bytes());
                event_count += 1;
                let kind = assist_relay_proto::EventHead::scan(e)
                    .map(|h| h.kind.as_u8().to_string())
                    .unwrap_or_else(|_| "?".into());
                *by_type.entry(kind).or_default() += 1;
            }
            Err(c) => {
                if !participants.contains(&c.from) {
                    participants.push(c.from.clone());
                }
                chats.push(c.clone());
            }
        }
    }
    events.push(b']');
    let chat_json =
        serde_json::to_vec(&chats).map_err(|e| CompactError::Permanent(e.to_string()))?;
    let mut files = Vec::new();
    for (name, content) in [("events.json.zst", &events), ("chat.json.zst", &chat_json)] {
        let packed = compress(content)?;
        archive.put(&format!("{dir}/{name}"), &packed)?;
        out.bytes_out += packed.len() as u64;
        files.push(FileInfo {
            name: name.to_owned(),
            bytes: content.len() as u64,
            compressed_bytes: packed.len() as u64,
            sha256: sha256_hex(content),
        });
    }
    let started = items.first().map_or(0, |i| i.1);
    let ended = items.last().map_or(0, |i| i.1);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        room: room.to_owned(),
        epoch: epoch.to_owned(),
        first_offset: items.first().map_or(0, |i| i.0),
        last_offset: items.last().map_or(0, |i| i.0),
        started_ms: started,
        ended_ms: ended,
        duration_ms: ended.saturating_sub(started),
        event_count,
        events_by_type: by_type,
        chat_count: chats.len() as u64,
        participants,
        pages,
        files,
        compacted_ms: crate::hub::now_us() / 1000,
        video: None,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CompactError::Permanent(e.to_string()))?;
    archive.put(&format!("{dir}/manifest.json"), &json)?;
    write_index(archive.as_ref(), &manifest, &json)?;
    out.recording = Some(super::job::Recorded {
        epoch: epoch.to_owned(),
        manifest: format!("{dir}/manifest.json"),
        sha256: sha256_hex(&json),
    });
    for name in archive.list(&format!("{dir}/parts"))? {
        archive.delete(&format!("{dir}/parts/{name}"))?;
    }
    Ok(())
}

/// The directory of the recordings index, beside the rooms' (`~` is not allowed in room ids, so
/// no room's directory has this name). One entry per recording, `<compacted_ms, 13 digits>-<id>`
/// ([`index_key`]) plus `.json`, holding a copy of its manifest: names sort by time, so listing
/// the recordings of every room reads one directory and only the entries of the page asked.
pub const INDEX_DIR: &str = "~index";

/// A recording's id: `<room>:<epoch>` (URL-safe: both are ids; an epoch has no `:`, so the
/// last `:` separates them).
pub fn recording_id(room: &str, epoch: &str) -> String {
    format!("{room}:{epoch}")
}

/// The index key of a recording (its entry's name without `.json`): ordered by when it was made.
pub fn index_key(m: &Manifest) -> String {
    format!("{:013}-{}", m.compacted_ms, recording_id(&m.room, &m.epoch))
}

/// Writes the index entry of a recording whose manifest is `json`.
fn write_index(archive: &dyn Archive, m: &Manifest, json: &[u8]) -> std::io::Result<()> {
    archive.put(&format!("{INDEX_DIR}/{}.json", index_key(m)), json)
}

/// Indexes the finished recording in `dir` again (a job re-run after a crash between the
/// manifest and the index entry; the entry's name comes from the manifest, so this is
/// idempotent).
pub(super) fn reindex(archive: &dyn Archive, dir: &str) -> Result<(), CompactError> {
    let Some(json) = archive.get(&format!("{dir}/manifest.json"))? else {
        return Ok(());
    };
    let m: Manifest =
        serde_json::from_slice(&json).map_err(|e| CompactError::Permanent(e.to_string()))?;
    Ok(write_index(archive, &m, &json)?)
}

/// Reads a finished recording: manifest, events (JSON array text) and chat.
pub fn read_recording(
    archive: &dyn Archive,
    room: &str,
    epoch: Option<&str>,
) -> Result<(Manifest, Vec<u8>, Vec<ChatLine>), CompactError> {
    let epoch = match epoch {
        Some(e) => e.to_owned(),
        // The most recently compacted epoch.
        None => {
            let mut best: Option<(u64, String)> = None;
            for e in archive.list(room)? {
                let Some(bytes) = archive.get(&format!("{room}/{e}/manifest.json"))? else {
                    continue;
                };
                if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                    if best.as_ref().is_none_or(|(t, _)| m.compacted_ms >= *t) {
                        best = Some((m.compacted_ms, e));
                    }
                }
            }
            best.map(|(_, e)| e)
                .ok_or_else(|| CompactError::Permanent(format!("no recording of room {room}")))?
        }
    };
    let dir = room_dir(room, &epoch);
    let manifest: Manifest = serde_json::from_slice(
        &archive
            .get(&format!("{dir}/manifest.json"))?
            .ok_or_else(|| CompactError::Permanent(format!("no recording at {dir}")))?,
    )
    .map_err(|e| CompactError::Permanent(e.to_string()))?;
    let read = |name: &str| -> Result<Vec<u8>, CompactError> {
        let packed = archive
            .get(&format!("{dir}/{name}"))?
            .ok_or_else(|| CompactError::Permanent(format!("{dir}/{name} is missing")))?;
        Ok(decompress_all(&packed)?)
    };
    let events = read("events.json.zst")?;
    let chat: Vec<ChatLine> = serde_json::from_slice(&read("chat.json.zst")?)
        .map_err(|e| CompactError::Permanent(e.to_string()))?;
    Ok((manifest, events, chat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_archive_never_leaves_its_root() {
        let base = std::env::temp_dir().join(format!("relay-archive-unit-{}", std::process::id()));
        let root = base.join("archive");
        std::fs::create_dir_all(&root).expect("temp dir");
        let archive = FsArchive::new(&root);
        archive
            .put("room-1/e/manifest.json", b"{}")
            .expect("inside");
        assert!(archive
            .get("room-1/e/manifest.json")
            .expect("read")
            .is_some());
        for key in [
            "../escape/e/manifest.json",
            "./../escape/e/manifest.json",
            "room/../../escape/e/manifest.json",
            "/tmp/escape/e/manifest.json",
            "../e/manifest.json",
        ] {
            let err = archive.put(key, b"{}").expect_err(key);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{key}");
            assert!(archive.get(key).is_err(), "{key}");
            assert!(archive.list(key).is_err(), "{key}");
            assert!(archive.delete(key).is_err(), "{key}");
            assert!(matches!(
                CompactError::from(err),
                CompactError::Permanent(_)
            ));
        }
        assert!(!base.join("escape").exists());
        assert!(!base.join("e").exists());
        let _ = std::fs::remove_dir_all(&base);
    }
}
