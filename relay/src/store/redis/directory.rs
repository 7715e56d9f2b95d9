//! The room directory in Redis: [`LIVE_ROOMS`] orders the rooms that may be live by id; each
//! room's presence (live members only: a dead node's entries have expired), meta fields and last
//! page are read by `scripts/live.lua`, one room per call (a room's keys share a slot; different
//! rooms may not), the rooms of a page concurrently.

use async_trait::async_trait;
use futures_util::future::join_all;

use super::body::{parse_member, parse_pages};
use super::commands::unavailable;
use super::keys::{Keys, LIVE_ROOMS};
use super::shared::RedisStore;
use crate::store::directory::{now_ms, DirectoryPage, LiveRoom, RoomSeen};
use crate::store::{Directory, StoreError};

/// What `live.lua` found.
enum Found {
    /// No key of the room is left: drop it from the index.
    Gone,
    /// Closed: not listed.
    Closed,
    /// Open, possibly with nobody present.
    Live(RoomSeen),
}

impl RedisStore {
    async fn read_live(&self, room: &str, now: u64) -> Result<Found, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        // KEYS and ARGV in the order `scripts/live.lua` names them.
        let reply: Vec<Vec<u8>> = self
            .inner
            .scripts
            .live
            .key(&k.presence)
            .key(&k.meta)
            .key(&k.pages)
            .arg(now)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let text = |i: usize| {
            reply
                .get(i)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
        };
        match text(0) {
            "gone" => return Ok(Found::Gone),
            "live" => {}
            _ => return Ok(Found::Closed),
        }
        let page = reply
            .get(3)
            .filter(|b| !b.is_empty())
            .and_then(|b| parse_pages(std::slice::from_ref(b)).pop());
        let members = reply
            .get(4..)
            .unwrap_or_default()
            .chunks(2)
            .filter_map(|pair| {
                let m = parse_member(std::str::from_utf8(pair.first()?).ok()?)?;
                let joined = pair
                    .get(1)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                Some((m, joined))
            })
            .collect();
        Ok(Found::Live(RoomSeen {
            opened_ms: text(1).parse().unwrap_or(0),
            members,
            agent_seen_ms: text(2).parse().ok(),
            page,
        }))
    }
}

#[async_trait]
impl Directory for RedisStore {
    async fn live_rooms(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DirectoryPage, StoreError> {
        let min = match after {
            Some(a) => format!("({a}"),
            None => "-".to_owned(),
        };
        let mut ids: Vec<String> = self
            .command(
                redis::cmd("ZRANGEBYLEX")
                    .arg(LIVE_ROOMS)
                    .arg(min)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1),
            )
            .await?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let now = now_ms();
        let found = join_all(ids.iter().map(|id| self.read_live(id, now))).await;
        let mut rooms = Vec::new();
        let mut gone = Vec::new();
        for (id, f) in ids.iter().zip(found) {
            match f? {
                Found::Gone => gone.push(id.as_str()),
                Found::Closed => {}
                Found::Live(seen) => rooms.extend(LiveRoom::build(id, seen)),
            }
        }
        if !gone.is_empty() {
            // A member entering right now adds its room again (and every presence refresh does).
            let mut rem = redis::cmd("ZREM");
            rem.arg(LIVE_ROOMS).arg(&gone);
            if let Err(e) = self.command::<()>(&rem).await {
                tracing::debug!(error = %e, "room directory cleanup failed");
            }
        }
        Ok(DirectoryPage {
            rooms,
            more_after: if more { ids.last().cloned() } else { None },
        })
    }
}
