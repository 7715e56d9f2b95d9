//! The room log in Redis Streams: append (one Lua script that assigns the offset, applies the
//! cap and the rates, and publishes), catch-up and resume reads, the room at a glance,
//! idempotency look-ups, typed-value hashes, and sealing. Uploads and the compactor's reads are
//! in `uploads` and `archive`; live delivery is in `bus` and `live`.

use std::sync::Arc;

use async_trait::async_trait;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Value};

use super::body::{encode_body, parse_entries, parse_pages};
use super::commands::unavailable;
use super::keys::Keys;
use super::shared::RedisStore;
use crate::hub::{now_us, Entry, EntryBody};
use crate::store::plan::{plan, Bounds};
use crate::store::{
    Appended, CatchUp, CatchUpRequest, NewEntry, RoomInfo, RoomLog, StoreError, TypedValues,
    Unavailable, MAX_PAGES, MAX_TYPED_HASHES,
};

/// How long an append waits for Redis before it fails with `unavailable` (the connection's
/// response timeout, 5 s, bounds every other command). An append is one short script; a Redis that
/// takes this long is hung, and the client learns it sooner (docs/operations.md).
const APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[async_trait]
impl RoomLog for RedisStore {
    async fn append(&self, room: &str, new: NewEntry) -> Result<Appended, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let blob = encode_body(&new.body);
        let etype: i64 = match &new.body {
            EntryBody::Event { kind, .. } => i64::from(kind.as_u8()),
            EntryBody::Chat { .. } => -1,
        };
        let inline = blob.len() <= inner.cfg.inline_max;
        let dedup_key = match &new.dedup {
            Some((sender, id)) => k.dedup(sender, id),
            None => k.no_dedup(),
        };
        let page = match &new.page {
            Some(p) => serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => String::new(),
        };
        let native = new
            .page
            .as_ref()
            .is_some_and(|p| p.kind == assist_relay_proto::PageKind::Native);
        let mut conn = inner.conn.clone();
        // EVALSHA with KEYS and ARGV in the order `scripts/append.lua` names them, built as one
        // command (a `ScriptInvocation` would copy every argument once more).
        let script = &inner.scripts.append;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash())
            .arg(5)
            .arg(&k.meta)
            .arg(&k.log)
            .arg(&k.chat)
            .arg(&dedup_key)
            .arg(&k.pages);
        let rates = new
            .sender
            .as_ref()
            .map_or([crate::limits::Gcra::default(); 4], |r| r.rates.0);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut numbers = [
            etype as f64,
            flag(inline),
            inner.log_cfg.chat_retain.max(1) as f64,
            inner.cfg.dedup_ttl.as_secs().max(1) as f64,
            flag(inner.cfg.cluster),
            flag(new.dedup.is_some()),
            flag(native),
            MAX_PAGES as f64,
            flag(inner.log_cfg.keep_until_archived),
            new.body.size() as f64,
            inner.log_cfg.max_log_bytes as f64,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        for (i, g) in rates.iter().enumerate() {
            numbers[11 + 2 * i] = g.interval_us;
            numbers[12 + 2 * i] = g.tolerance_us;
        }
        cmd.arg(format!("{:016x}", rand::random::<u64>()))
            .arg(blob)
            .arg(now_us())
            .arg(&k.channel)
            .arg(page)
            .arg(new.sender.as_ref().map_or("", |r| r.sender.as_str()))
            .arg(pack_f64(&numbers));
        let run = async {
            match cmd.query_async(&mut conn).await {
                // Redis restarted or flushed its scripts: load it again, once, and retry.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.prepare_invoke().load_async(&mut conn).await?;
                    cmd.query_async(&mut conn).await
                }
                other => other,
            }
        };
        // An append that Redis does not answer in time fails (the client resends it by id; if
        // Redis ran it after all, the resend is acknowledged as a duplicate).
        let Ok(reply) = tokio::time::timeout(APPEND_TIMEOUT, run).await else {
            return Err(StoreError::Unavailable(
                Unavailable::Timeout,
                format!("append unanswered after {APPEND_TIMEOUT:?}"),
            ));
        };
        let (_epoch, offset, dup, tail, kfn): (String, u64, i64, u64, i64) =
            reply.map_err(unavailable)?;
        if dup == 2 {
            return Err(StoreError::Closed);
        }
        if dup == 3 {
            return Err(StoreError::LogFull(crate::store::cap::LOG_FULL));
        }
        if dup == 4 {
            return Err(StoreError::RateLimited);
        }
        Ok(Appended {
            offset,
            duplicate: dup == 1,
            tail_bytes: tail,
            native_keyframe: kfn == 1,
        })
    }

    async fn catch_up(&self, room: &str, req: CatchUpRequest) -> Result<CatchUp, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        for _attempt in 0..5 {
            // 1. The log's bounds (creating the room's epoch if it has none yet).
            let (_, (epoch, head, floor, chat_floor, sealed), pages): (
                i64,
                (
                    Option<String>,
                    Option<u64>,
                    Option<u64>,
                    Option<u64>,
                    Option<u8>,
                ),
                Vec<Vec<u8>>,
            ) = redis::pipe()
                .atomic()
                .hset_nx(&k.meta, "epoch", format!("{:016x}", rand::random::<u64>()))
                .hmget(&k.meta, &["epoch", "head", "floor", "chat_floor", "sealed"])
                .lrange(&k.pages, 0, -1)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let bounds = Bounds {
                epoch: epoch.unwrap_or_default(),
                head: head.unwrap_or(0),
                floor: floor.unwrap_or(1),
                chat_floor: chat_floor.unwrap_or(1),
            };
            let p = plan(&bounds, &req);
            // 2. What the plan needs, with the bounds again to detect a trim in between.
            let mut pipe = redis::pipe();
            pipe.atomic().hmget(&k.meta, &["epoch", "head", "floor"]);
            if let Some(after) = p.log_after {
                pipe.xrange(&k.log, format!("{}-0", after + 1), "+");
            }
            if let Some(r) = p.chats {
                let hi = if r.before == u64::MAX {
                    "+".to_owned()
                } else {
                    format!("{}-0", r.before.saturating_sub(1))
                };
                let lo = format!("{}-0", r.after + 1);
                if r.limit == usize::MAX {
                    pipe.xrevrange(&k.chat, hi, lo);
                } else {
                    pipe.xrevrange_count(&k.chat, hi, lo, r.limit);
                }
            }
            let mut values: Vec<Value> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
            values.reverse();
            let (epoch2, head2, floor2): (Option<String>, Option<u64>, Option<u64>) =
                redis::from_redis_value(values.pop().unwrap_or(Value::Nil))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if epoch2.as_deref() != Some(bounds.epoch.as_str())
                || floor2.unwrap_or(1) != bounds.floor
            {
                continue; // the log moved under us: decide again
            }
            let mut log = Vec::new();
            if p.log_after.is_some() {
                let reply: StreamRangeReply =
                    redis::from_redis_value(values.pop().unwrap_or(Value::Nil))
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                log = parse_entries(reply)?;
            }
            let mut chats = Vec::new();
            if p.chats.is_some() {
                let reply: StreamRangeReply =
                    redis::from_redis_value(values.pop().unwrap_or(Value::Nil))
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                chats = parse_entries(reply)?;
                chats.reverse();
            }
            let epoch: Arc<str> = Arc::from(bounds.epoch.as_str());
            let entries = chats
                .into_iter()
                .chain(log)
                .map(|(offset, accepted, body)| {
                    Arc::new(Entry::new(offset, epoch.clone(), body).accepted_at(accepted))
                })
                .collect();
            return Ok(CatchUp {
                epoch,
                head: head2.unwrap_or(0),
                mode: p.mode,
                reason: p.reason,
                entries,
                pages: parse_pages(&pages),
                sealed: sealed == Some(1),
            });
        }
        Err(StoreError::Unavailable(
            Unavailable::Local,
            "the room log kept moving during catch-up".into(),
        ))
    }

    async fn info(&self, room: &str) -> Result<RoomInfo, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let ((epoch, head), pages): ((Option<String>, Option<u64>), Vec<Vec<u8>>) = redis::pipe()
            .hmget(&k.meta, &["epoch", "head"])
            .lrange(&k.pages, 0, -1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(RoomInfo {
            room: room.to_owned(),
            epoch: epoch.unwrap_or_default(),
            head: head.unwrap_or(0),
            pages: parse_pages(&pages),
        })
    }

    async fn stored_offset(
        &self,
        room: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        conn.get(k.dedup(sender, id)).await.map_err(unavailable)
    }

    async fn seal(&self, room: &str) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let mut conn = inner.conn.clone();
        // KEYS and ARGV in the order `scripts/seal.lua` names them.
        let closed: i64 = inner
            .scripts
            .seal
            .key(&k.meta)
            .arg(format!("{:016x}", rand::random::<u64>()))
            .arg(&k.channel)
            .arg(inner.sharded())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        // Out of the room directory (the listing skips a closed room should this fail).
        let _: Result<(), _> = redis::cmd("ZREM")
            .arg(super::keys::LIVE_ROOMS)
            .arg(room)
            .query_async(&mut conn)
            .await;
        Ok(closed == 1)
    }
}

#[async_trait]
impl TypedValues for RedisStore {
    async fn typed_hashes(&self, room: &str) -> Result<Vec<u64>, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let members: Vec<u64> = conn.smembers(&k.typed).await.map_err(unavailable)?;
        Ok(members)
    }

    async fn add_typed_hashes(&self, room: &str, hashes: &[u64]) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let n: usize = conn.scard(&k.typed).await.map_err(unavailable)?;
        let room_for = MAX_TYPED_HASHES.saturating_sub(n);
        if room_for == 0 {
            return Ok(());
        }
        let take = &hashes[..hashes.len().min(room_for)];
        let _: () = redis::pipe()
            .sadd(&k.typed, take)
            .ignore()
            .pexpire(&k.typed, self.inner.cfg.room_ttl.as_millis() as i64)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Numbers as `scripts/append.lua` unpacks them (`struct.unpack('<d...')`): little-endian f64,
/// exact for integers below 2^53 (offsets, byte counts, µs timestamps).
fn pack_f64(numbers: &[f64]) -> Vec<u8> {
    numbers.iter().flat_map(|n| n.to_le_bytes()).collect()
}
