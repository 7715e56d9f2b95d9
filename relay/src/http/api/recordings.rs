//! The recordings the compactor wrote, read from the node's `--archive-dir` (in cluster mode the
//! compactor is another process: give the nodes the same storage, read-only is enough):
//! - `GET /v1/recordings?room=&since=&limit=&cursor=`: recordings with their manifests, oldest
//!   first by when they were made (`since`: made at or after, ms); every room's from the
//!   archive's index ([`INDEX_DIR`]), one room's from its directory;
//! - `GET /v1/recordings/{id}`: one recording and its manifest;
//! - `GET /v1/recordings/{id}/events`: its rrweb events, a JSON array, decompressed as it is
//!   sent (a chunked body; never whole in memory).
//!
//! A recording's id is `<room>:<epoch>` ([`recording_id`]).

use std::io::Read as _;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{api_error, json_response};
use crate::compactor::{index_key, recording_id, Archive as _, FsArchive, Manifest, INDEX_DIR};
use crate::node::Node;

/// Recordings per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// Most recordings per page.
const MAX_LIMIT: usize = 500;
/// Bytes of events read and sent at a time.
const CHUNK: usize = 64 * 1024;

/// One recording as the API shows it.
#[derive(Debug, Serialize)]
struct Recording {
    /// `<room>:<epoch>`.
    id: String,
    room: String,
    epoch: String,
    /// Where its events are (`GET`, same key).
    events_url: String,
    manifest: Manifest,
}

impl Recording {
    fn of(manifest: Manifest) -> Recording {
        let id = recording_id(&manifest.room, &manifest.epoch);
        Recording {
            events_url: format!("/v1/recordings/{id}/events"),
            id,
            room: manifest.room.clone(),
            epoch: manifest.epoch.clone(),
            manifest,
        }
    }
}

/// A documented refusal, boxed (an answer is large and the happy path is common).
type Refusal = Box<Response>;

/// The node's archive, or the documented refusal.
fn archive(node: &Node) -> Result<FsArchive, Refusal> {
    let Some(dir) = node.config.archive_dir.as_ref() else {
        return Err(Box::new(api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "recordings_off",
            "this node runs with --recordings false and has no archive",
        )));
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(FsArchive::new(dir)),
        _ => Err(Box::new(archive_unavailable(&format!(
            "cannot read the archive directory {}: give the node --archive-dir on the storage \
             the compactor writes (cluster mode: a shared volume)",
            dir.display()
        )))),
    }
}

fn archive_unavailable(message: &str) -> Response {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "archive_unavailable",
        message,
    )
}

/// Splits a recording id into (room, epoch), both valid ids.
fn parse_id(id: &str) -> Result<(&str, &str), Refusal> {
    let bad = || {
        Box::new(api_error(
            StatusCode::BAD_REQUEST,
            "invalid_recording_id",
            "a recording id is <room>:<epoch>",
        ))
    };
    let (room, epoch) = id.rsplit_once(':').ok_or_else(bad)?;
    if assist_relay_proto::validate_id("room", room).is_err()
        || assist_relay_proto::validate_id("epoch", epoch).is_err()
    {
        return Err(bad());
    }
    Ok((room, epoch))
}

/// The manifest of a recording, `None` if there is no finished recording under that id.
fn read_manifest(
    archive: &FsArchive,
    room: &str,
    epoch: &str,
) -> Result<Option<Manifest>, Refusal> {
    let json = archive
        .get(&format!("{room}/{epoch}/manifest.json"))
        .map_err(|e| Box::new(archive_unavailable(&e.to_string())))?;
    Ok(json.and_then(|j| serde_json::from_slice(&j).ok()))
}

fn not_found(id: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "recording_not_found",
        format!("no finished recording {id}"),
    )
}

/// `GET /v1/recordings/{id}`.
pub async fn one(node: &Node, id: &str) -> Response {
    let (room, epoch) = match parse_id(id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let archive = match archive(node) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match read_manifest(&archive, room, epoch) {
        Ok(Some(m)) => json_response(StatusCode::OK, &Recording::of(m)),
        Ok(None) => not_found(id),
        Err(r) => *r,
    }
}

/// `GET /v1/recordings/{id}/events`: streamed, with the digest of what is sent
/// (`x-content-sha256`, the manifest's) so the receiver can check it.
pub async fn events(node: &Node, id: &str) -> Response {
    let (room, epoch) = match parse_id(id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let archive = match archive(node) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let manifest = match read_manifest(&archive, room, epoch) {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(id),
        Err(r) => return *r,
    };
    let file = match archive.open(&format!("{room}/{epoch}/events.json.zst")) {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(id),
        Err(e) => return archive_unavailable(&e.to_string()),
    };
    let mut decoder = match zstd::stream::read::Decoder::new(file) {
        Ok(d) => d,
        Err(e) => return archive_unavailable(&e.to_string()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match decoder.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                // The body ends in an error: the client sees a cut transfer, not a short array.
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        buf.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return; // the client went away
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(digest) = manifest
        .files
        .iter()
        .find(|f| f.name == "events.json.zst")
        .and_then(|f| HeaderValue::from_str(&f.sha256).ok())
    {
        h.insert("x-content-sha256", digest);
    }
    resp
}

/// A page of the listing.
#[derive(Debug, Serialize)]
struct Listing {
    recordings: Vec<Recording>,
    /// Where the next page starts (pass as `cursor`); null at the end.
    next: Option<String>,
}

/// `GET /v1/recordings?room=&since=&limit=&cursor=`.
pub async fn list(node: &Node, query: Option<&str>) -> Response {
    let bad = |code: &str, m: &str| api_error(StatusCode::BAD_REQUEST, code, m);
    let mut room = None;
    let mut since = 0u64;
    let mut limit = DEFAULT_LIMIT;
    let mut after: Option<String> = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "room" if !v.is_empty() => {
                if let Err(e) = assist_relay_proto::validate_id("room", &v) {
                    return bad("invalid_query", &e);
                }
                room = Some(v.into_owned());
            }
            "since" if !v.is_empty() => match v.parse() {
                Ok(t) => since = t,
                Err(_) => return bad("invalid_query", "since is ms since the Unix epoch"),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => return bad("invalid_query", "limit must be 1 to 500"),
            },
            "cursor" if !v.is_empty() => {
                match hex::decode(&*v)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(c) => after = Some(c),
                    None => {
                        return bad(
                            "invalid_cursor",
                            "cursor must be a `next` value of an earlier page",
                        )
                    }
                }
            }
            _ => {}
        }
    }
    let archive = match archive(node) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    // Directory reads: off the async workers.
    let page = tokio::task::spawn_blocking(move || {
        page(&archive, room.as_deref(), since, limit, after.as_deref())
    })
    .await;
    match page {
        Ok(Ok((recordings, next))) => json_response(
            StatusCode::OK,
            &Listing {
                recordings,
                next: next.map(hex::encode),
            },
        ),
        Ok(Err(e)) => archive_unavailable(&e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// One page: recordings with an index key above `after` and made at or after `since`, in key
/// order, and the last key when more follow.
fn page(
    archive: &FsArchive,
    room: Option<&str>,
    since: u64,
    limit: usize,
    after: Option<&str>,
) -> std::io::Result<(Vec<Recording>, Option<String>)> {
    let since_key = format!("{since:013}");
    let keep = |key: &str| key >= since_key.as_str() && after.is_none_or(|a| key > a);
    let mut out = Vec::new();
    let mut more = false;
    match room {
        // One room: its epochs' manifests (a handful), sorted by their index keys.
        Some(room) => {
            let mut found: Vec<(String, Manifest)> = Vec::new();
            for epoch in archive.list(room)? {
                let Some(json) = archive.get(&format!("{room}/{epoch}/manifest.json"))? else {
                    continue; // not finished
                };
                if let Ok(m) = serde_json::from_slice::<Manifest>(&json) {
                    let key = index_key(&m);
                    if keep(&key) {
                        found.push((key, m));
                    }
                }
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            more = found.len() > limit;
            out.extend(found.into_iter().take(limit));
        }
        // Every room: the index, read only for the entries of the page.
        None => {
            for name in archive.list(INDEX_DIR)? {
                let Some(key) = name.strip_suffix(".json") else {
                    continue;
                };
                if !keep(key) {
                    continue;
                }
                if out.len() == limit {
                    more = true;
                    break;
                }
                let Some(json) = archive.get(&format!("{INDEX_DIR}/{name}"))? else {
                    continue;
                };
                if let Ok(m) = serde_json::from_slice::<Manifest>(&json) {
                    out.push((key.to_owned(), m));
                }
            }
        }
    }
    let next = if more {
        out.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok((
        out.into_iter().map(|(_, m)| Recording::of(m)).collect(),
        next,
    ))
}
