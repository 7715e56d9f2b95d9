//! What the compactor reads and trims in Redis: where a room's log stands, ranges of it, the
//! archive mark (`scripts/archived.lua`), removing a room, and the rooms whose customer has been
//! gone. It does not write recordings (see `crate::compactor`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::StreamRangeReply;
use redis::AsyncCommands;

use super::body::parse_entries;
use super::commands::unavailable;
use super::keys::Keys;
use super::shared::RedisStore;
use crate::hub::{now_us, Entry};
use crate::store::{Archival, LogState, StoreError};

impl RedisStore {
    /// Deletes every key of a room, as if its log had been lost (tests and operators).
    pub async fn delete_room(&self, room: &str) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let _: () = conn
            .del(&[&k.meta, &k.log, &k.chat, &k.pages, &k.typed])
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Archival for RedisStore {
    #[allow(clippy::type_complexity)]
    async fn log_state(&self, room: &str) -> Result<LogState, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let (epoch, head, floor, archived, sealed): (
            Option<String>,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            Option<u8>,
        ) = redis::cmd("HMGET")
            .arg(&k.meta)
            .arg(&["epoch", "head", "floor", "archived", "sealed"])
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(LogState {
            exists: epoch.is_some(),
            epoch: epoch.unwrap_or_default(),
            head: head.unwrap_or(0),
            floor: floor.unwrap_or(1),
            archived: archived.unwrap_or(0),
            sealed: sealed == Some(1),
        })
    }

    async fn read_log(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, StoreError> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let reply: StreamRangeReply = conn
            .xrange_count(
                &k.log,
                format!("{}-0", after + 1),
                format!("{upto}-0"),
                limit.min(1_000_000),
            )
            .await
            .map_err(unavailable)?;
        let epoch: Arc<str> = Arc::from("");
        Ok(parse_entries(reply)?
            .into_iter()
            .map(|(offset, accepted, body)| {
                Arc::new(Entry::new(offset, epoch.clone(), body).accepted_at(accepted))
            })
            .collect())
    }

    async fn mark_archived(&self, room: &str, upto: u64) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        // KEYS and ARGV in the order `scripts/archived.lua` names them.
        let _: i64 = self
            .inner
            .scripts
            .archived
            .key(&k.meta)
            .key(&k.log)
            .arg(upto)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove_room(&self, room: &str) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        // Members still connected are reported as left now (their connections end with the
        // room): reap.lua with a `now` past every expiry takes them all, atomically, so a
        // later exit of theirs reports nothing twice.
        // KEYS and ARGV in the order `scripts/reap.lua` names them.
        let left: Vec<String> = self
            .inner
            .scripts
            .reap
            .key(&k.presence)
            .arg(u64::from(u32::MAX) * 1_000_000)
            .arg(&k.channel)
            .arg(self.inner.sharded())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let _: () = conn
            .del(&[&k.meta, &k.log, &k.chat, &k.pages, &k.typed, &k.presence])
            .await
            .map_err(unavailable)?;
        let _: () = conn
            .zrem(super::keys::LIVE_ROOMS, room)
            .await
            .map_err(unavailable)?;
        self.report_left(room, &left).await;
        Ok(())
    }

    async fn idle_rooms(
        &self,
        gone_for: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // Rooms record when a customer was last seen (`cseen`, refreshed by every node's
        // presence loop while one is connected). SCAN walks the meta keys of one server; on a
        // Redis Cluster it walks the node the connection routes SCAN to.
        let now = now_us() / 1000;
        let cutoff = now.saturating_sub(gone_for.as_millis() as u64);
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg("ar:{*}:meta")
                .arg("COUNT")
                .arg(500);
            let (next, keys): (u64, Vec<String>) = self.command(&scan).await?;
            for key in keys {
                let Some(room) = Keys::room_of_meta(&key) else {
                    continue;
                };
                let mut get = redis::cmd("HMGET");
                get.arg(&key).arg("cseen").arg("sealed");
                let (seen, sealed): (Option<u64>, Option<u8>) = self.command(&get).await?;
                if sealed != Some(1) && seen.is_some_and(|t| t <= cutoff) {
                    // `cseen` lags by up to a presence refresh: a live customer entry wins.
                    let mut live = redis::cmd("ZRANGEBYSCORE");
                    live.arg(Keys::of(room).presence).arg(now).arg("+inf");
                    let present: Vec<String> = self.command(&live).await?;
                    if present.iter().any(|m| m.contains("\x1fcustomer\x1f")) {
                        continue;
                    }
                    out.push(room.to_owned());
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}
