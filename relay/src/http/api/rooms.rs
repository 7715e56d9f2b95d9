//! `GET /v1/rooms` (and, in demo mode, `GET /demo/rooms` on the public listener): the live rooms
//! over every node, from the store's [`crate::store::Directory`], filtered by state and paged
//! with an opaque cursor.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{api_error, json_response};
use crate::node::Node;
use crate::store::directory::{LiveRoom, RoomState};

/// Rooms per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Most rooms per page.
pub const MAX_LIMIT: usize = 500;
/// Most directory entries one request looks at when a state filter skips rooms: past it the
/// answer has fewer rooms than `limit` and a `next` cursor to go on from.
const MAX_SCANNED: usize = 2000;

/// The query of a listing.
#[derive(Debug, Default)]
struct Query {
    state: Option<RoomState>,
    limit: usize,
    after: Option<String>,
}

/// The query, or the refusal's (code, message).
fn parse_query(q: Option<&str>) -> Result<Query, (&'static str, String)> {
    let bad = |code: &'static str, m: String| Err((code, m));
    let mut out = Query {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match &*k {
            "state" if !v.is_empty() => match v.parse() {
                Ok(s) => out.state = Some(s),
                Err(e) => return bad("invalid_query", e),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => out.limit = n,
                _ => return bad("invalid_query", format!("limit must be 1 to {MAX_LIMIT}")),
            },
            "cursor" if !v.is_empty() => {
                match hex::decode(&*v)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(room) => out.after = Some(room),
                    None => {
                        return bad(
                            "invalid_cursor",
                            "cursor must be a `next` value of an earlier page".into(),
                        )
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A page of the listing.
#[derive(Debug, Serialize)]
struct Listing {
    rooms: Vec<LiveRoom>,
    /// Where the next page starts (pass as `cursor`); null at the end.
    next: Option<String>,
}

/// Answers a listing request with the query string `query` (authorization is the caller's).
pub async fn listing(node: &Node, query: Option<&str>) -> Response {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err((code, m)) => return api_error(StatusCode::BAD_REQUEST, code, m),
    };
    let mut rooms = Vec::new();
    let mut after = q.after;
    let mut scanned = 0;
    let next = loop {
        let page = match node.log.live_rooms(after.as_deref(), q.limit).await {
            Ok(p) => p,
            Err(e) => {
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            }
        };
        scanned += q.limit;
        let mut cut = None;
        let count = page.rooms.len();
        for (i, room) in page.rooms.into_iter().enumerate() {
            if q.state.is_some_and(|s| s != room.state) {
                continue;
            }
            rooms.push(room);
            if rooms.len() == q.limit {
                cut = Some(i + 1 < count);
                break;
            }
        }
        let last = || rooms.last().map(|r| r.room.clone());
        // The cursor is a position in id order: nothing is skipped or repeated however rooms
        // come and go between pages.
        match (cut, page.more_after) {
            (Some(true), _) | (Some(false), Some(_)) => break last(),
            (Some(false), None) | (None, None) => break None,
            (None, Some(more)) if scanned >= MAX_SCANNED => break Some(more),
            (None, Some(more)) => after = Some(more),
        }
    };
    json_response(
        StatusCode::OK,
        &Listing {
            rooms,
            next: next.map(hex::encode),
        },
    )
}
