//! Cluster mode: room logs in Redis Streams, live fan-out over Redis pub/sub, presence in Redis.
//!
//! # Keys (all of one room share the hash tag `{room}`, so they live on one Redis Cluster slot)
//! - `ar:{R}:meta` hash: `epoch`, `head` (last offset), `floor` (the keyframe's first offset),
//!   `chat_floor`, `meta` (a Meta waiting for its FullSnapshot).
//! - `ar:{R}:log` stream: every entry from `floor` on, stream id `<offset>-0`.
//! - `ar:{R}:chat` stream: the last `--chat-retain` chat messages, same ids.
//! - `ar:{R}:d:<sender>\x1f<id>` string: offset of an idempotent send, with a TTL.
//! - `ar:{R}:presence` sorted set: one member per connection, scored by its expiry time.
//! - `ar:{R}:pages` list: the page timeline, `<offset>\x1f<page json>`, the last 200.
//! - `ar:{R}:typed` set: hashes of typed values (masking of their echoes).
//! - `ar:{R}:up:<sender>\x1f<upload>` hash: a staged upload (`m` count|size|digest, `b` bytes,
//!   `n` slices, `c<i>` slice i), expiring `--upload-ttl` after its last slice; and
//!   `ar:{R}:ups:<sender>` sorted set: that sender's uploads in progress, scored by expiry.
//! - channel `ar:{R}:ch`: live entries and presence changes.
//!
//! # Flow
//! `append` runs one Lua script that assigns the offset, appends, trims below a new keyframe,
//! records the idempotency key and publishes, so log, offsets and live fan-out never disagree.
//! Payloads over `--redis-inline-max-bytes` are published by reference and read from the stream.
//! Each node keeps one pub/sub connection. Its reader only routes messages to a bounded per-room
//! inbox; a per-room pump puts entries in offset order, fetches referenced payloads, fills gaps
//! from the stream, and broadcasts to the node's local members. After the pub/sub connection comes
//! back (jittered exponential backoff), every local member is told to recover from the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use assist_relay_proto::{EventKind, Member, PageRecord, Role};
use async_trait::async_trait;
use futures_util::StreamExt;
use prometheus::{IntCounter, IntGauge};
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Script, Value};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};

use super::plan::{plan, Bounds};
use super::{
    Appended, Broker, CatchUp, CatchUpRequest, ChunkIn, Entered, Entry, EntryBody, LogConfig,
    LogState, NewEntry, RoomInfo, RoomLog, RoomMsg, Staged, StoreError, Subscription, UploadLimits,
    MAX_PAGES, MAX_TYPED_HASHES,
};
use crate::hub::now_us;
use crate::hub::{Hub, HubConfig, Room};

/// Settings of the Redis backend.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, `rediss://` (TLS) or `redis+unix:///path`; with
    /// `cluster`, a comma-separated list of seed nodes of a Redis Cluster.
    pub url: String,
    /// Certificates for `rediss://` (None: the system's roots, no client certificate).
    pub tls: Option<RedisTls>,
    /// Payloads up to this size travel inside pub/sub messages; larger ones by reference.
    pub inline_max: usize,
    /// A connection's presence expires this long after its node last refreshed it.
    pub presence_ttl: Duration,
    /// How long idempotency keys are remembered.
    pub dedup_ttl: Duration,
    /// Room keys expire this long after the room's last member activity.
    pub room_ttl: Duration,
    /// Talk to a Redis Cluster (sharded pub/sub, SSUBSCRIBE/SPUBLISH) instead of one server.
    pub cluster: bool,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("tls", &self.tls.is_some())
            .field("inline_max", &self.inline_max)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// PEM files for TLS to Redis.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// Root certificates that verify the server, instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// Client certificate (mutual TLS), with `client_key`.
    pub client_cert: Option<Vec<u8>>,
    /// Private key of `client_cert`.
    pub client_key: Option<Vec<u8>>,
}

impl RedisTls {
    fn certificates(&self) -> redis::TlsCertificates {
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        redis::TlsCertificates {
            client_tls,
            root_cert: self.ca.clone(),
        }
    }
}

/// The Redis URL (or comma-separated seeds) with passwords replaced by `***`, for logs.
pub fn redacted_url(urls: &str) -> String {
    urls.split(',')
        .map(|u| redact_one(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(u: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(u) else {
        return "<unparsable URL>".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    // `redis+unix:` URLs carry the password as `?pass=`.
    let secret = |k: &str| k == "pass" || k == "password";
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// The command connection: one server (reconnecting manager) or a Redis Cluster (slot routing;
/// every key of a room shares its slot, so scripts and MULTI pipelines stay on one node).
#[derive(Clone)]
enum Commands {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Commands::Single(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
        }
    }
}

/// Counters the Redis backend reports (registered by the node's telemetry).
#[derive(Clone)]
pub struct RedisMetrics {
    /// Pub/sub reconnections.
    pub reconnects: IntCounter,
    /// Entries fetched from the stream to fill a pub/sub gap.
    pub gap_fills: IntCounter,
    /// Times local members were told to recover after an outage or an overflowing inbox.
    pub recoveries: IntCounter,
    /// Payload bytes of live entries this node keeps for its rooms' rings (see
    /// [`super::window`]).
    pub live_bytes: IntGauge,
}

const APPEND: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'sealed', 'tail', 'kfn', 'kb', 'mb', 'lb', 'meta')
local epoch = m[1]
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'head', 0, 'floor', 1, 'chat_floor', 1)
elseif m[2] == '1' then
  return {epoch, 0, 2, 0, 0}
end
local tail, kfn = tonumber(m[3] or '0'), tonumber(m[4] or '0')
if ARGV[10] == '1' then
  local prev = redis.call('GET', KEYS[4])
  if prev then return {epoch, tonumber(prev), 1, tail, kfn} end
end
-- Rates across nodes (quota.rs): GCRA for the sender's and the room's entries and payload bytes.
if ARGV[17] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local f = {'m:' .. ARGV[17], 'b:' .. ARGV[17], 'm', 'b'}
  local tat = redis.call('HMGET', KEYS[6], f[1], f[2], f[3], f[4])
  local cost = {1, tonumber(ARGV[15]), 1, tonumber(ARGV[15])}
  local nt = {}
  for i = 1, 4 do
    local at = math.max(tonumber(tat[i] or '0'), now) + cost[i] * tonumber(ARGV[16 + 2 * i])
    if at - now > tonumber(ARGV[17 + 2 * i]) then return {epoch, 0, 4, 0, 0} end
    nt[i] = string.format('%.0f', at)
  end
  redis.call('HSET', KEYS[6], f[1], nt[1], f[2], nt[2], f[3], nt[3], f[4], nt[4])
  redis.call('PEXPIRE', KEYS[6], 600000)
end
-- The byte cap (store/cap.rs): key bytes from the keyframe on, pending-Meta bytes, log bytes.
local size, max = tonumber(ARGV[15]), tonumber(ARGV[16])
local kb, lb = tonumber(m[5] or '0'), tonumber(m[7] or '0')
local mb = nil
if m[8] then mb = tonumber(m[6] or '0') end
local etype = tonumber(ARGV[3])
local over
if etype == 2 then over = (mb or 0) + size > max
elseif etype == 4 and not mb then over = false
else over = kb + size > max end
if over then return {epoch, 0, 3, tail, kfn} end
local floor = nil
local off = redis.call('HINCRBY', KEYS[1], 'head', 1)
local id = off .. '-0'
redis.call('XADD', KEYS[2], id, 'b', ARGV[2], 'a', ARGV[4])
if etype == 4 then
  redis.call('HSET', KEYS[1], 'meta', off)
  mb = 0
elseif etype == 2 then
  local start = redis.call('HGET', KEYS[1], 'meta') or off
  redis.call('HDEL', KEYS[1], 'meta', 'mb')
  kb, mb, floor = mb or 0, nil, start
  if ARGV[14] ~= '1' then lb = kb end
  -- Entries before the new keyframe are no longer needed for live viewing; with recordings
  -- on they stay until the compactor has archived them.
  local keep_from = tonumber(start)
  if ARGV[14] == '1' then
    keep_from = math.min(keep_from, tonumber(redis.call('HGET', KEYS[1], 'archived') or '0') + 1)
  end
  redis.call('XTRIM', KEYS[2], 'MINID', keep_from .. '-0')
  tail, kfn = 0, tonumber(ARGV[12])
  redis.call('HSET', KEYS[1], 'floor', start, 'tail', 0, 'kfn', ARGV[12])
  if ARGV[11] ~= '' then
    redis.call('RPUSH', KEYS[5], start .. '\31' .. ARGV[11])
    redis.call('LTRIM', KEYS[5], -tonumber(ARGV[13]), -1)
  end
elseif etype >= 0 then
  tail = redis.call('HINCRBY', KEYS[1], 'tail', string.len(ARGV[2]) - 3)
elseif etype == -1 then
  redis.call('XADD', KEYS[3], id, 'b', ARGV[2], 'a', ARGV[4])
  if redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[6]) > 0 then
    local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1][1]
    redis.call('HSET', KEYS[1], 'chat_floor', string.match(first, '^(%d+)'))
  end
end
kb, lb = kb + size, lb + size
if mb then mb = mb + size end
if lb > max then
  -- Over the cap: whatever is below the keyframe goes, archived or not.
  floor = floor or redis.call('HGET', KEYS[1], 'floor') or '1'
  redis.call('XTRIM', KEYS[2], 'MINID', floor .. '-0')
  lb = kb
end
if mb then
  redis.call('HSET', KEYS[1], 'kb', kb, 'lb', lb, 'mb', mb)
else
  redis.call('HSET', KEYS[1], 'kb', kb, 'lb', lb)
end
if ARGV[10] == '1' then redis.call('SET', KEYS[4], off, 'EX', ARGV[7]) end
local msg = 'E' .. epoch .. ':' .. off .. ':' .. ARGV[4] .. ':'
if ARGV[5] == '1' then msg = msg .. ARGV[2] end
if ARGV[9] == '1' then redis.call('SPUBLISH', ARGV[8], msg) else redis.call('PUBLISH', ARGV[8], msg) end
return {epoch, off, 0, tail, kfn}
"#;

/// Closes a room. KEYS: meta. ARGV: new epoch, channel, sharded. Returns 1 if this call closed it.
const SEAL: &str = r#"
if redis.call('HGET', KEYS[1], 'sealed') == '1' then return 0 end
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
redis.call('HSET', KEYS[1], 'sealed', 1)
if ARGV[3] == '1' then redis.call('SPUBLISH', ARGV[2], 'C') else redis.call('PUBLISH', ARGV[2], 'C') end
return 1
"#;

/// Marks entries archived and trims what is below both the keyframe and the archive mark.
/// KEYS: meta, log. ARGV: archived offset.
const ARCHIVED: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local upto = math.max(tonumber(ARGV[1]), tonumber(redis.call('HGET', KEYS[1], 'archived') or '0'))
redis.call('HSET', KEYS[1], 'archived', upto)
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '1')
redis.call('XTRIM', KEYS[2], 'MINID', math.min(upto + 1, floor) .. '-0')
if upto + 1 >= floor then redis.call('HSET', KEYS[1], 'lb', redis.call('HGET', KEYS[1], 'kb') or 0) end
return upto
"#;

/// The room's staging tally. KEYS[3] `stg` hash: `r` (the room's staged bytes), `s:<sender>` (one
/// sender's), `u:<sender>\x1f<upload>` (one upload's); KEYS[4] `stx` sorted set: every upload
/// `<sender>\x1f<upload>` scored by its expiry (ms). `unstage` takes an upload off the tally;
/// `reap` does so for every expired upload.
const STAGING: &str = r#"
local function unstage(member)
  local b = tonumber(redis.call('HGET', KEYS[3], 'u:' .. member) or '0')
  redis.call('HDEL', KEYS[3], 'u:' .. member)
  redis.call('ZREM', KEYS[4], member)
  if b > 0 then
    redis.call('HINCRBY', KEYS[3], 'r', -b)
    local s = 's:' .. string.match(member, '^([^\31]*)')
    if redis.call('HINCRBY', KEYS[3], s, -b) <= 0 then redis.call('HDEL', KEYS[3], s) end
  end
end
local function reap(now)
  for _, mem in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do unstage(mem) end
end
"#;

/// Stages one upload slice. KEYS: upload hash, sender's upload set, room's `stg`, `stx`.
/// ARGV: index, count, size, digest, data, max_uploads, ttl_ms, now_ms, upload id, sender,
/// participant share, room share
const STAGE: &str = r#"
local m = ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4]
local me = ARGV[10] .. '\31' .. ARGV[9]
local function drop(why)
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[9])
  unstage(me)
  return {'mismatch', why}
end
reap(ARGV[8])
local cur = redis.call('HGET', KEYS[1], 'm')
local first = '0'
if not cur then
  first = '1'
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[8])
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {'too_many'} end
  redis.call('HSET', KEYS[1], 'm', m, 'b', 0, 'n', 0)
elseif cur ~= m then
  return drop('count, size or digest differs from the upload\'s first slice')
end
local f = 'c' .. ARGV[1]
if redis.call('HEXISTS', KEYS[1], f) == 0 then
  local len = string.len(ARGV[5])
  local b = tonumber(redis.call('HGET', KEYS[1], 'b')) + len
  if b > tonumber(ARGV[3]) then return drop('the slices add up to more than size') end
  local t = redis.call('HMGET', KEYS[3], 'r', 's:' .. ARGV[10])
  if tonumber(t[1] or '0') + len > tonumber(ARGV[12]) or tonumber(t[2] or '0') + len > tonumber(ARGV[11]) then
    -- The room's or the sender's staging share is full: refuse the slice, keep the rest.
    if first == '1' then
      redis.call('DEL', KEYS[1])
      redis.call('ZREM', KEYS[2], ARGV[9])
    end
    return {'too_many'}
  end
  redis.call('HSET', KEYS[1], f, ARGV[5], 'b', b)
  redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HINCRBY', KEYS[3], 'r', len)
  redis.call('HINCRBY', KEYS[3], 's:' .. ARGV[10], len)
  redis.call('HINCRBY', KEYS[3], 'u:' .. me, len)
end
local expiry = tonumber(ARGV[8]) + tonumber(ARGV[7])
redis.call('ZADD', KEYS[2], expiry, ARGV[9])
redis.call('ZADD', KEYS[4], expiry, me)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
if tonumber(redis.call('HGET', KEYS[1], 'n')) < tonumber(ARGV[2]) then return {'partial', first} end
if tonumber(redis.call('HGET', KEYS[1], 'b')) ~= tonumber(ARGV[3]) then
  return drop('the slices do not add up to size')
end
return {'complete'}
"#;

/// Forgets an upload. KEYS: upload hash, sender's upload set, `stg`, `stx`. ARGV: upload id,
/// sender.
const DROP: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
unstage(ARGV[2] .. '\31' .. ARGV[1])
return 1
"#;

/// A connection of a sender left: unless another one is present, its uploads expire after the
/// grace (at once when 0). KEYS: presence, sender's upload set, `stg`, `stx`. ARGV: sender, now
/// (ms), grace (ms), upload key prefix (`ar:{R}:up:<sender>\x1f`).
const RELEASE: &str = r#"
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf')) do
  if string.match(m, '^([^\31]*)') == ARGV[1] then return 0 end
end
local grace = tonumber(ARGV[3])
local until_ms = tonumber(ARGV[2]) + grace
local pre = ARGV[1] .. '\31'
for _, mem in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if string.sub(mem, 1, #pre) == pre then
    local up = string.sub(mem, #pre + 1)
    if grace == 0 then
      redis.call('DEL', ARGV[4] .. up)
      redis.call('ZREM', KEYS[2], up)
      unstage(mem)
    elseif tonumber(redis.call('ZSCORE', KEYS[4], mem)) > until_ms then
      redis.call('ZADD', KEYS[4], until_ms, mem)
      redis.call('ZADD', KEYS[2], until_ms, up)
      redis.call('PEXPIRE', ARGV[4] .. up, grace)
    end
  end
end
return 1
"#;

/// Removes expired presence entries and announces participants left with no live connection.
/// Leaves `present` (sub -> role) and `now` for the rest of the script.
const REAP: &str = r#"
local now = tonumber(ARGV[1])
local function sub_of(m) return string.match(m, '^([^\31]*)') end
local function role_of(m) return string.match(m, '^[^\31]*\31([^\31]*)') end
local function publish(msg)
  if ARGV[3] == '1' then redis.call('SPUBLISH', ARGV[2], msg) else redis.call('PUBLISH', ARGV[2], msg) end
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now) end
local present = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do present[sub_of(m)] = role_of(m) end
local gone = {}
for _, m in ipairs(dead) do
  local s = sub_of(m)
  if not present[s] and not gone[s] then
    gone[s] = true
    publish('L' .. s .. '\31' .. role_of(m))
  end
end
"#;

/// Publishes guidance or signaling stamped with the room's epoch and head, storing nothing.
/// KEYS: meta. ARGV: channel, sharded, payload.
const RELAY: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head')
local msg = 'G' .. (m[1] or '') .. ':' .. (m[2] or '0') .. ':' .. ARGV[3]
if ARGV[2] == '1' then redis.call('SPUBLISH', ARGV[1], msg) else redis.call('PUBLISH', ARGV[1], msg) end
return 1
"#;

/// ARGV: now, channel, sharded, member, sub, role, max, expiry, room_ttl_ms, max_conns
const ENTER: &str = r#"
local me = ARGV[5]
local count = 0
for _ in pairs(present) do count = count + 1 end
local first = present[me] == nil
if first and count >= tonumber(ARGV[7]) then return {'full'} end
if not first then
  local mine = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
    if sub_of(m) == me then mine = mine + 1 end
  end
  if mine >= tonumber(ARGV[10]) then return {'conns'} end
end
redis.call('ZADD', KEYS[1], ARGV[8], ARGV[4])
if ARGV[6] == 'customer' then redis.call('HSET', KEYS[2], 'cseen', ARGV[1]) end
if first then
  present[me] = ARGV[6]
  publish('J' .. me .. '\31' .. ARGV[6])
end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[9]) end
local out = {'ok'}
for s, r in pairs(present) do table.insert(out, s .. '\31' .. r) end
return out
"#;

/// ARGV: now, channel, sharded, member, sub, role
const EXIT: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[4])
local still = false
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if sub_of(m) == ARGV[5] then still = true end
end
if not still and present[ARGV[5]] then publish('L' .. ARGV[5] .. '\31' .. ARGV[6]) end
return 1
"#;

/// Key names of one room.
struct Keys {
    meta: String,
    log: String,
    chat: String,
    presence: String,
    pages: String,
    typed: String,
    channel: String,
    room: String,
    /// Hash of the rates' theoretical arrival times (`m:<sub>`, `b:<sub>`, `m`, `b`; µs).
    rate: String,
}

impl Keys {
    fn of(room: &str) -> Keys {
        Keys {
            meta: format!("ar:{{{room}}}:meta"),
            log: format!("ar:{{{room}}}:log"),
            chat: format!("ar:{{{room}}}:chat"),
            presence: format!("ar:{{{room}}}:presence"),
            pages: format!("ar:{{{room}}}:pages"),
            typed: format!("ar:{{{room}}}:typed"),
            channel: format!("ar:{{{room}}}:ch"),
            rate: format!("ar:{{{room}}}:rate"),
            room: room.to_owned(),
        }
    }

    fn dedup(&self, sender: &str, id: &str) -> String {
        format!("ar:{{{}}}:d:{sender}\x1f{id}", self.room)
    }

    fn upload(&self, sender: &str, upload: &str) -> String {
        format!("ar:{{{}}}:up:{sender}\x1f{upload}", self.room)
    }

    /// The room's staging tally (`stg` hash, `stx` sorted set; see `STAGING`).
    fn staging(&self) -> (String, String) {
        (
            format!("ar:{{{}}}:stg", self.room),
            format!("ar:{{{}}}:stx", self.room),
        )
    }

    fn uploads(&self, sender: &str) -> String {
        format!("ar:{{{}}}:ups:{sender}", self.room)
    }

    fn room_of_channel(channel: &str) -> Option<&str> {
        channel.strip_prefix("ar:{")?.strip_suffix("}:ch")
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// What travels in the stream field `b` and, when small enough, in the pub/sub message.
/// `e` + rrweb type + source (255: none) + raw JSON, or `c` + chat JSON.
fn encode_body(body: &EntryBody) -> Vec<u8> {
    match body {
        EntryBody::Event {
            event,
            kind,
            source,
        } => {
            let json = event.get().as_bytes();
            let mut out = Vec::with_capacity(json.len() + 3);
            out.push(b'e');
            out.push(kind.as_u8());
            out.push(source.unwrap_or(255));
            out.extend_from_slice(json);
            out
        }
        EntryBody::Chat { id, from, text, ts } => {
            let chat = serde_json::json!({ "id": id, "from": from.id, "role": from.role, "text": text, "ts": ts });
            let mut out = b"c".to_vec();
            out.extend_from_slice(chat.to_string().as_bytes());
            out
        }
    }
}

fn decode_body(b: &[u8]) -> Result<EntryBody, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(why.to_owned());
    match b.first() {
        Some(b'e') if b.len() > 3 => {
            let event = serde_json::from_slice::<&RawValue>(&b[3..])
                .map_err(|_| corrupt("stored event is not JSON"))?
                .to_owned();
            let source = (b[2] != 255).then_some(b[2]);
            Ok(EntryBody::Event {
                event,
                kind: EventKind::from_u8(b[1]),
                source,
            })
        }
        Some(b'c') => {
            #[derive(serde::Deserialize)]
            struct Chat {
                id: String,
                from: String,
                role: Role,
                text: String,
                ts: u64,
            }
            let c: Chat =
                serde_json::from_slice(&b[1..]).map_err(|_| corrupt("stored chat is not valid"))?;
            Ok(EntryBody::Chat {
                id: c.id,
                from: Member {
                    id: c.from,
                    role: c.role,
                },
                text: c.text,
                ts: c.ts,
            })
        }
        _ => Err(corrupt("unknown stored entry")),
    }
}

fn offset_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

enum Inbound {
    Published(bytes::Bytes),
    Recover,
}

enum SubCmd {
    Subscribe(String, oneshot::Sender<Result<(), String>>),
    Unsubscribe(String),
}

/// Pub/sub messages a room's inbox holds at least before the room recovers from the log. Unlike
/// the broadcast ring, an mpsc channel allocates as it fills, so a large bound costs an idle room
/// nothing; it is not tied to a small `--room-buffer`.
const MIN_INBOX: usize = 1024;

/// What this backend keeps for a room with live subscribers here, as the hub room's feed
/// ([`crate::hub::Room::feed`]): it lives exactly as long as the room has subscribers on this
/// node, and dropping it stops the pump and unsubscribes the channel.
struct Feed {
    room: String,
    inner: std::sync::Weak<Inner>,
    inbox: mpsc::Sender<Inbound>,
    live: Arc<Live>,
    /// Becomes `Some(result)` once the SUBSCRIBE is confirmed (or failed).
    ready: watch::Receiver<Option<Result<(), String>>>,
    ready_tx: watch::Sender<Option<Result<(), String>>>,
    recover_pending: Arc<AtomicBool>,
    pump: tokio::task::JoinHandle<()>,
}

impl Feed {
    fn start(inner: &Arc<Inner>, room: &str, hub_room: std::sync::Weak<Room>) -> Feed {
        let (inbox_tx, inbox_rx) = mpsc::channel(inner.log_cfg.room_buffer.max(MIN_INBOX));
        let (ready_tx, ready_rx) = watch::channel(None);
        let live = Arc::new(Live::new(hub_room));
        let pump = tokio::spawn(pump(inner.clone(), room.to_owned(), inbox_rx, live.clone()));
        Feed {
            room: room.to_owned(),
            inner: Arc::downgrade(inner),
            inbox: inbox_tx,
            live,
            ready: ready_rx,
            ready_tx,
            recover_pending: Arc::new(AtomicBool::new(false)),
            pump,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(inner) = self.inner.upgrade() {
            inner.unsubscribe_channel(Keys::of(&self.room).channel);
        }
    }
}

/// The feed of `room`, if it has live subscribers here.
fn feed_of(inner: &Inner, room: &str) -> Option<Arc<Room>> {
    inner
        .hub
        .get(room)
        .filter(|r| r.feed_if::<Feed>().is_some())
}

struct Inner {
    conn: Commands,
    log_cfg: LogConfig,
    cfg: RedisConfig,
    metrics: RedisMetrics,
    append: Script,
    stage: Script,
    drop_up: Script,
    release: Script,
    seal: Script,
    archived: Script,
    enter: Script,
    exit: Script,
    reap: Script,
    /// The node's fan-out and its one room registry; a subscribed room's [`Feed`] is kept there.
    hub: Arc<Hub>,
    /// (room, conn) -> presence member, for refreshing.
    local: Mutex<HashMap<(String, u64), String>>,
    subs: mpsc::Sender<SubCmd>,
    pubsub_up: AtomicBool,
    ping_ok: AtomicBool,
    node_id: String,
}

/// The Redis room store (cluster mode). Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Jittered exponential backoff: 100 ms doubling to 5 s, each wait drawn from [d/2, d].
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d / 2 + d.mul_f64(rand::random::<f64>() / 2.0)
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
}

impl RedisStore {
    /// Connects (retrying with backoff for up to `patience`) and starts the pub/sub reader and
    /// the presence and health tasks.
    pub async fn connect(
        cfg: RedisConfig,
        log_cfg: LogConfig,
        metrics: RedisMetrics,
        patience: Duration,
    ) -> Result<RedisStore, StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Backoff::new();
        // Cluster pushes (SMESSAGE, SSUBSCRIBE) may arrive before `Inner` exists; they find it here.
        let router: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Default::default();
        let (conn, client) = if cfg.cluster {
            let seeds: Vec<String> = cfg
                .url
                .split(',')
                .map(|u| {
                    let u = u.trim();
                    if u.contains("protocol=") {
                        u.to_owned()
                    } else {
                        format!("{u}?protocol=resp3")
                    }
                })
                .collect();
            let push_router = router.clone();
            let mut builder = redis::cluster::ClusterClientBuilder::new(seeds);
            if let Some(tls) = &cfg.tls {
                builder = builder.certs(tls.certificates());
            }
            let cluster = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                .push_sender(move |push: redis::PushInfo| {
                    if let Some(inner) = push_router.get().and_then(std::sync::Weak::upgrade) {
                        route_push(&inner, push);
                    }
                    Ok::<(), redis::aio::SendError>(())
                })
                .build()
                .map_err(unavailable)?;
            let conn = loop {
                match cluster.get_async_connection().await {
                    Ok(c) => break c,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(unavailable(e))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis cluster not reachable yet; retrying");
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            };
            (Commands::Cluster(conn), None)
        } else {
            let client = match &cfg.tls {
                Some(tls) => redis::Client::build_with_tls(cfg.url.as_str(), tls.certificates()),
                None => redis::Client::open(cfg.url.as_str()),
            }
            .map_err(unavailable)?;
            let manager_cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2));
            let conn = loop {
                match client
                    .get_connection_manager_with_config(manager_cfg.clone())
                    .await
                {
                    Ok(c) => break c,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(unavailable(e))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis not reachable yet; retrying");
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            };
            (Commands::Single(conn), Some(client))
        };
        let (subs_tx, subs_rx) = mpsc::channel(1024);
        let hub = Hub::new(HubConfig {
            buffer: log_cfg.room_buffer,
            held: Some((log_cfg.room_buffer_bytes, metrics.live_bytes.clone())),
        });
        let inner = Arc::new(Inner {
            conn,
            log_cfg,
            cfg,
            metrics,
            append: Script::new(APPEND),
            stage: Script::new(&format!("{STAGING}{STAGE}")),
            drop_up: Script::new(&format!("{STAGING}{DROP}")),
            release: Script::new(&format!("{STAGING}{RELEASE}")),
            seal: Script::new(SEAL),
            archived: Script::new(ARCHIVED),
            enter: Script::new(&format!("{REAP}{ENTER}")),
            exit: Script::new(&format!("{REAP}{EXIT}")),
            reap: Script::new(&format!("{REAP}return 1")),
            hub,
            local: Mutex::new(HashMap::new()),
            subs: subs_tx,
            pubsub_up: AtomicBool::new(false),
            ping_ok: AtomicBool::new(true),
            node_id: format!("{:08x}", rand::random::<u32>()),
        });
        let _ = router.set(Arc::downgrade(&inner));
        match client {
            Some(client) => {
                tokio::spawn(pubsub_loop(inner.clone(), client, subs_rx));
            }
            // The cluster connection subscribes itself and resubscribes after failovers.
            None => inner.pubsub_up.store(true, Ordering::SeqCst),
        }
        tokio::spawn(presence_loop(Arc::downgrade(&inner)));
        tokio::spawn(health_loop(Arc::downgrade(&inner)));
        // Wait briefly for the pub/sub connection so that the node starts ready.
        for _ in 0..50 {
            if inner.pubsub_up.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(RedisStore { inner })
    }

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

impl Inner {
    fn sharded(&self) -> &'static str {
        if self.cfg.cluster {
            "1"
        } else {
            "0"
        }
    }

    /// SUBSCRIBE (through the node's pub/sub task) or, on a cluster, SSUBSCRIBE.
    async fn subscribe_channel(&self, channel: String) -> Result<(), String> {
        if let Commands::Cluster(c) = &self.conn {
            let mut c = c.clone();
            return c.ssubscribe(channel).await.map_err(|e| e.to_string());
        }
        let (tx, rx) = oneshot::channel();
        if self
            .subs
            .send(SubCmd::Subscribe(channel, tx))
            .await
            .is_err()
        {
            return Err("pub/sub task gone".to_owned());
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            _ => Err("pub/sub subscription timed out".to_owned()),
        }
    }

    fn unsubscribe_channel(&self, channel: String) {
        if let Commands::Cluster(c) = &self.conn {
            let mut c = c.clone();
            tokio::spawn(async move {
                let _ = c.sunsubscribe(channel).await;
            });
            return;
        }
        let _ = self.subs.try_send(SubCmd::Unsubscribe(channel));
    }

    async fn read_range(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, u64, EntryBody)>, StoreError> {
        let k = Keys::of(room);
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = conn
            .xrange(&k.log, format!("{from}-0"), format!("{to}-0"))
            .await
            .map_err(unavailable)?;
        parse_entries(reply)
    }
}

fn parse_entries(reply: StreamRangeReply) -> Result<Vec<(u64, u64, EntryBody)>, StoreError> {
    let mut out = Vec::with_capacity(reply.ids.len());
    for sid in reply.ids {
        let offset = offset_of(&sid.id)
            .ok_or_else(|| StoreError::Corrupt(format!("stream id {}", sid.id)))?;
        let body: Vec<u8> = sid
            .get("b")
            .ok_or_else(|| StoreError::Corrupt("entry without body".into()))?;
        let accepted: u64 = sid.get("a").unwrap_or(0);
        out.push((offset, accepted, decode_body(&body)?));
    }
    Ok(out)
}

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
            None => format!("ar:{{{room}}}:d:"),
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
        let mut script = inner.append.prepare_invoke();
        script
            .key(&k.meta)
            .key(&k.log)
            .key(&k.chat)
            .key(&dedup_key)
            .key(&k.pages)
            .key(&k.rate);
        script
            .arg(format!("{:016x}", rand::random::<u64>()))
            .arg(blob)
            .arg(etype)
            .arg(now_us())
            .arg(if inline { 1 } else { 0 })
            .arg(inner.log_cfg.chat_retain.max(1))
            .arg(inner.cfg.dedup_ttl.as_secs().max(1))
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(if new.dedup.is_some() { 1 } else { 0 })
            .arg(page)
            .arg(if native { 1 } else { 0 })
            .arg(MAX_PAGES)
            .arg(if inner.log_cfg.keep_until_archived {
                1
            } else {
                0
            })
            .arg(new.body.size())
            .arg(inner.log_cfg.max_log_bytes)
            .arg(new.sender.as_ref().map_or("", |r| r.sender.as_str()));
        for g in new
            .sender
            .as_ref()
            .map_or([crate::quota::Gcra::default(); 4], |r| r.rates.0)
        {
            script.arg(g.interval_us).arg(g.tolerance_us);
        }
        let (_epoch, offset, dup, tail, kfn): (String, u64, i64, u64, i64) =
            script.invoke_async(&mut conn).await.map_err(unavailable)?;
        if dup == 2 {
            return Err(StoreError::Closed);
        }
        if dup == 3 {
            return Err(StoreError::LogFull(super::cap::LOG_FULL));
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

    async fn stage_chunk(
        &self,
        room: &str,
        c: ChunkIn<'_>,
        limits: UploadLimits,
    ) -> Result<Staged, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let key = k.upload(c.sender, c.upload);
        let mut conn = inner.conn.clone();
        let (stg, stx) = k.staging();
        let reply: Vec<String> = inner
            .stage
            .key(&key)
            .key(k.uploads(c.sender))
            .key(&stg)
            .key(&stx)
            .arg(c.index)
            .arg(c.count)
            .arg(c.size)
            .arg(c.digest)
            .arg(c.data)
            .arg(limits.max_uploads)
            .arg(limits.ttl.as_millis().max(1) as u64)
            .arg(now_us() / 1000)
            .arg(c.upload)
            .arg(c.sender)
            .arg(limits.participant_share)
            .arg(limits.room_share)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("partial") => Ok(Staged::Partial {
                first: reply.get(1).map(String::as_str) == Some("1"),
            }),
            Some("too_many") => Ok(Staged::TooMany),
            Some("mismatch") => Ok(Staged::Mismatch(match reply.get(1).map(String::as_str) {
                Some("the slices add up to more than size") => {
                    "the slices add up to more than size"
                }
                Some("the slices do not add up to size") => "the slices do not add up to size",
                _ => "count, size or digest differs from the upload's first slice",
            })),
            Some("complete") => {
                // Read the slices back in batches (a 64 MiB upload is a few hundred slices).
                let mut whole = Vec::with_capacity(c.size as usize);
                let mut i = 0u32;
                while i < c.count {
                    let end = (i + 64).min(c.count);
                    let fields: Vec<String> = (i..end).map(|n| format!("c{n}")).collect();
                    let parts: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&fields)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    for part in parts {
                        match part {
                            Some(p) => whole.extend_from_slice(&p),
                            // Expired between the script and this read: start over.
                            None => return Ok(Staged::Mismatch("the upload expired")),
                        }
                    }
                    i = end;
                }
                Ok(Staged::Complete(whole))
            }
            other => Err(StoreError::Corrupt(format!("stage reply {other:?}"))),
        }
    }

    async fn drop_upload(&self, room: &str, sender: &str, upload: &str) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let (stg, stx) = k.staging();
        let _: i64 = self
            .inner
            .drop_up
            .key(k.upload(sender, upload))
            .key(k.uploads(sender))
            .key(&stg)
            .key(&stx)
            .arg(upload)
            .arg(sender)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release_uploads(
        &self,
        room: &str,
        sender: &str,
        grace: Duration,
    ) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let (stg, stx) = k.staging();
        let _: i64 = self
            .inner
            .release
            .key(&k.presence)
            .key(k.uploads(sender))
            .key(&stg)
            .key(&stx)
            .arg(sender)
            .arg(now_us() / 1000)
            .arg(grace.as_millis() as u64)
            .arg(k.upload(sender, ""))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
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

    async fn seal(&self, room: &str) -> Result<bool, StoreError> {
        self.seal_room(room).await
    }

    async fn log_state(&self, room: &str) -> Result<LogState, StoreError> {
        self.state_of(room).await
    }

    async fn read_log(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, StoreError> {
        self.range(room, after, upto, limit).await
    }

    async fn mark_archived(&self, room: &str, upto: u64) -> Result<(), StoreError> {
        self.archived_upto(room, upto).await
    }

    async fn remove_room(&self, room: &str) -> Result<(), StoreError> {
        self.remove(room).await
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
                let Some(room) = key
                    .strip_prefix("ar:{")
                    .and_then(|k| k.strip_suffix("}:meta"))
                else {
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

impl RedisStore {
    /// Runs one command on the store's connection (the compactor's job stream).
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.inner.conn.clone();
        cmd.query_async(&mut conn).await.map_err(unavailable)
    }

    async fn seal_room(&self, room: &str) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let mut conn = inner.conn.clone();
        let closed: i64 = inner
            .seal
            .key(&k.meta)
            .arg(format!("{:016x}", rand::random::<u64>()))
            .arg(&k.channel)
            .arg(inner.sharded())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(closed == 1)
    }

    #[allow(clippy::type_complexity)]
    async fn state_of(&self, room: &str) -> Result<LogState, StoreError> {
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

    async fn range(
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

    async fn archived_upto(&self, room: &str, upto: u64) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let _: i64 = self
            .inner
            .archived
            .key(&k.meta)
            .key(&k.log)
            .arg(upto)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, room: &str) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let _: () = conn
            .del(&[&k.meta, &k.log, &k.chat, &k.pages, &k.typed, &k.presence])
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Reads the page timeline list (`<offset>\x1f<json>`, offset filling a 0 in the record).
fn parse_pages(raw: &[Vec<u8>]) -> Vec<PageRecord> {
    raw.iter()
        .filter_map(|item| {
            let sep = item.iter().position(|&b| b == 0x1f)?;
            let start: u64 = std::str::from_utf8(&item[..sep]).ok()?.parse().ok()?;
            let mut page: PageRecord = serde_json::from_slice(&item[sep + 1..]).ok()?;
            if page.offset == 0 {
                page.offset = start;
            }
            Some(page)
        })
        .collect()
}

#[async_trait]
impl Broker for RedisStore {
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError> {
        let inner = &self.inner;
        let (sub, hub_room) = inner.hub.subscribe(room);
        let mut first = false;
        let weak = Arc::downgrade(&hub_room);
        let Some(feed) = hub_room.feed(|| {
            first = true;
            Feed::start(inner, room, weak)
        }) else {
            return Err(StoreError::Corrupt("room feed of another backend".into()));
        };
        let mut ready = feed.ready.clone();
        if first {
            let result = inner.subscribe_channel(Keys::of(room).channel).await;
            feed.ready_tx.send_replace(Some(result));
        }
        let outcome = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().map(|v| v.clone()))
            .flatten();
        match outcome {
            Some(Ok(())) => Ok(sub),
            Some(Err(e)) => Err(StoreError::Unavailable(e)),
            None => Err(StoreError::Unavailable(
                "pub/sub subscription timed out".into(),
            )),
        }
    }

    async fn enter(
        &self,
        room: &str,
        member: &Member,
        conn: u64,
        max_members: usize,
        max_conns: usize,
    ) -> Result<Entered, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let key = format!(
            "{}\x1f{}\x1f{}:{conn}",
            member.id,
            member.role.as_str(),
            inner.node_id
        );
        let now = now_us() / 1000;
        let expiry = now + inner.cfg.presence_ttl.as_millis() as u64;
        let mut c = inner.conn.clone();
        let reply: Vec<String> = inner
            .enter
            .key(&k.presence)
            .key(&k.meta)
            .key(&k.log)
            .key(&k.chat)
            .key(&k.pages)
            .key(&k.typed)
            .arg(now)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(&key)
            .arg(&member.id)
            .arg(member.role.as_str())
            .arg(max_members)
            .arg(expiry)
            .arg(inner.cfg.room_ttl.as_millis() as u64)
            .arg(max_conns)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("full") => return Ok(Entered::Full),
            Some("conns") => return Ok(Entered::TooManyConnections),
            _ => {}
        }
        lock(&inner.local).insert((room.to_owned(), conn), key);
        let mut members: Vec<Member> = reply
            .iter()
            .skip(1)
            .filter_map(|s| parse_member(s))
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Entered::Members(members))
    }

    async fn exit(&self, room: &str, member: &Member, conn: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(key) = lock(&inner.local).remove(&(room.to_owned(), conn)) else {
            return Ok(());
        };
        let k = Keys::of(room);
        let mut c = inner.conn.clone();
        let _: i64 = inner
            .exit
            .key(&k.presence)
            .arg(now_us() / 1000)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(&key)
            .arg(&member.id)
            .arg(member.role.as_str())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn relay(&self, room: &str, msg: crate::guide::Relayed) -> Result<(), StoreError> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(RELAY));
        let inner = &self.inner;
        let k = Keys::of(room);
        let mut c = inner.conn.clone();
        let _: i64 = script
            .key(&k.meta)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(msg.to_bytes())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    async fn healthy(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::SeqCst) && self.inner.ping_ok.load(Ordering::SeqCst)
    }
}

fn parse_member(s: &str) -> Option<Member> {
    let (id, role) = s.split_once('\x1f')?;
    Some(Member {
        id: id.to_owned(),
        role: role.parse().ok()?,
    })
}

/// The node's pub/sub connection: (re)connects with backoff, resubscribes, routes messages.
async fn pubsub_loop(inner: Arc<Inner>, client: redis::Client, mut cmds: mpsc::Receiver<SubCmd>) {
    let mut backoff = Backoff::new();
    let mut connected_before = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                inner.pubsub_up.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "redis pub/sub unreachable; retrying");
                let wait = tokio::time::sleep(backoff.next());
                tokio::pin!(wait);
                // Refuse subscriptions while down instead of letting them hang.
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        cmd = cmds.recv() => match cmd {
                            Some(SubCmd::Subscribe(_, ack)) => { let _ = ack.send(Err("redis pub/sub is down".into())); }
                            Some(SubCmd::Unsubscribe(_)) => {}
                            None => return,
                        }
                    }
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels: Vec<String> = Vec::new();
        inner
            .hub
            .each(|room, _| channels.push(Keys::of(room).channel));
        let mut ok = true;
        for ch in &channels {
            if sink.subscribe(ch).await.is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            tokio::time::sleep(backoff.next()).await;
            continue;
        }
        inner.pubsub_up.store(true, Ordering::SeqCst);
        backoff.reset();
        if connected_before {
            inner.metrics.reconnects.inc();
            tracing::info!(
                rooms = channels.len(),
                "redis pub/sub reconnected; local members recover from the log"
            );
            inner.hub.each(|_, r| {
                if let Some(f) = r.feed_if::<Feed>() {
                    request_recover(f);
                }
            });
        }
        connected_before = true;
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(SubCmd::Subscribe(ch, ack)) => {
                        let mut sink = sink.clone();
                        tokio::spawn(async move {
                            let _ = ack.send(sink.subscribe(ch).await.map_err(|e| e.to_string()));
                        });
                    }
                    Some(SubCmd::Unsubscribe(ch)) => {
                        // Someone may have subscribed again in the meantime.
                        let room = Keys::room_of_channel(&ch).map(str::to_owned);
                        if room.is_some_and(|r| feed_of(&inner, &r).is_none()) {
                            let mut sink = sink.clone();
                            tokio::spawn(async move { let _ = sink.unsubscribe(ch).await; });
                        }
                    }
                    None => return,
                },
                msg = stream.next() => match msg {
                    Some(msg) => route(&inner, &msg),
                    None => break,
                },
            }
        }
        inner.pubsub_up.store(false, Ordering::SeqCst);
        tracing::warn!("redis pub/sub connection lost; reconnecting");
    }
}

fn request_recover(r: &Feed) {
    if !r.recover_pending.swap(true, Ordering::SeqCst) {
        // Counted now, so the reader queues what follows behind the recovery.
        lock(&r.live.state).queued += 1;
        let inbox = r.inbox.clone();
        let flag = r.recover_pending.clone();
        let live = r.live.clone();
        tokio::spawn(async move {
            if inbox.send(Inbound::Recover).await.is_err() {
                let mut st = lock(&live.state);
                st.queued = st.queued.saturating_sub(1);
            }
            flag.store(false, Ordering::SeqCst);
        });
    }
}

/// Routes one pub/sub message to its room's pump without waiting (the reader must never stall:
/// Redis disconnects subscribers that fall behind).
fn route(inner: &Inner, msg: &redis::Msg) {
    route_payload(inner, msg.get_channel_name(), msg.get_payload_bytes());
}

/// Cluster mode: sharded messages go to their room; a (re)subscription confirmation for a room
/// that was already live means the connection to its shard was re-established, so its members
/// recover from the log.
fn route_push(inner: &Inner, push: redis::PushInfo) {
    let channel = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match push.kind {
        redis::PushKind::SMessage => {
            if let (Some(ch), Some(Value::BulkString(payload))) =
                (channel(push.data.first()), push.data.get(1))
            {
                route_payload(inner, &ch, payload);
            }
        }
        redis::PushKind::SSubscribe => {
            let Some(ch) = channel(push.data.first()) else {
                return;
            };
            let Some(room) = Keys::room_of_channel(&ch) else {
                return;
            };
            if let Some(hub_room) = feed_of(inner, room) {
                let Some(r) = hub_room.feed_if::<Feed>() else {
                    return;
                };
                let resubscribed = matches!(&*r.ready.borrow(), Some(Ok(())));
                if resubscribed {
                    inner.metrics.reconnects.inc();
                    request_recover(r);
                }
            }
        }
        _ => {}
    }
}

fn route_payload(inner: &Inner, channel: &str, payload: &[u8]) {
    let Some(room) = Keys::room_of_channel(channel) else {
        return;
    };
    let Some(hub_room) = feed_of(inner, room) else {
        return;
    };
    let Some(r) = hub_room.feed_if::<Feed>() else {
        return;
    };
    let mut st = lock(&r.live.state);
    if st.queued == 0 {
        match r.live.handle(&mut st, payload, room) {
            Step::Done => return,
            Step::Fetch { .. } => {}
        }
    }
    let payload = bytes::Bytes::copy_from_slice(payload);
    if r.inbox.try_send(Inbound::Published(payload)).is_ok() {
        st.queued += 1;
    } else {
        drop(st);
        // The pump is behind; its members will recover from the log instead.
        inner.metrics.recoveries.inc();
        request_recover(r);
    }
}

/// A room's live ordering state, shared by the pub/sub reader and the room's pump.
///
/// The reader handles a message itself (no task hand-off, no wake-up) when nothing is queued for
/// the room and the message needs no read from the log: the common case, an inline entry right
/// after the last one. Anything else (a gap, a payload published by reference, a recovery) goes
/// to the pump, and everything after it too until the pump's queue is empty again, so a room's
/// messages are always handled in arrival order.
struct Live {
    /// Where ordered entries go: the hub's room (weak: the room owns this feed).
    room: std::sync::Weak<Room>,
    state: Mutex<LiveState>,
}

struct LiveState {
    epoch: Arc<str>,
    last: Option<u64>,
    /// Messages handed to the pump and not yet handled. While non-zero the reader queues.
    queued: usize,
}

/// What handling a published message still needs.
enum Step<'a> {
    Done,
    /// Read `from..=offset` from the log (a gap before `offset`, or a payload published by
    /// reference); `body` is the inline payload, if any.
    Fetch {
        from: u64,
        gap: bool,
        offset: u64,
        accepted: u64,
        body: &'a [u8],
    },
}

impl Live {
    fn new(room: std::sync::Weak<Room>) -> Live {
        Live {
            room,
            state: Mutex::new(LiveState {
                epoch: Arc::from(""),
                last: None,
                queued: 0,
            }),
        }
    }

    /// Hands `msg` to the hub's room.
    fn send(&self, msg: RoomMsg) {
        if let Some(r) = self.room.upgrade() {
            r.send(msg);
        }
    }

    /// Handles one published message as far as it can without the log.
    fn handle<'a>(&self, st: &mut LiveState, bytes: &'a [u8], room: &str) -> Step<'a> {
        match bytes.first() {
            Some(b'C') => {
                self.send(RoomMsg::Closed);
            }
            Some(b'G') => {
                // `<epoch>:<head>:<payload>`: relayed in arrival order, which is stream order.
                let mut parts = bytes[1..].splitn(3, |&c| c == b':');
                let parsed = (|| {
                    let e = std::str::from_utf8(parts.next()?).ok()?;
                    let head = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
                    crate::guide::Relayed::from_bytes(e, head, parts.next()?)
                })();
                match parsed {
                    Some(r) => {
                        self.send(RoomMsg::Relay(Arc::new(r)));
                    }
                    None => tracing::warn!("unreadable relayed message"),
                }
            }
            Some(b'J') | Some(b'L') => {
                if let Some(m) = std::str::from_utf8(&bytes[1..]).ok().and_then(parse_member) {
                    let m = Arc::new(m);
                    self.send(if bytes[0] == b'J' {
                        RoomMsg::Joined(m)
                    } else {
                        RoomMsg::Left(m)
                    });
                }
            }
            Some(b'E') => {
                let Some((e, offset, accepted, body)) = parse_published(&bytes[1..]) else {
                    tracing::warn!("unreadable pub/sub message");
                    return Step::Done;
                };
                if *st.epoch != *e {
                    st.epoch = Arc::from(e);
                    st.last = None;
                }
                if st.last.is_some_and(|l| offset <= l) {
                    return Step::Done;
                }
                let gap_from = st.last.map(|l| l + 1).filter(|&from| from < offset);
                if gap_from.is_some() || body.is_empty() {
                    return Step::Fetch {
                        from: gap_from.unwrap_or(offset),
                        gap: gap_from.is_some(),
                        offset,
                        accepted,
                        body,
                    };
                }
                match decode_body(body) {
                    Ok(b) => self.emit(st, vec![(offset, accepted, b)]),
                    Err(err) => {
                        tracing::error!(error = %err, room, offset, "unreadable live entry");
                    }
                }
            }
            _ => {}
        }
        Step::Done
    }

    /// Broadcasts entries in offset order, skipping what was already sent.
    fn emit(&self, st: &mut LiveState, batch: Vec<(u64, u64, EntryBody)>) {
        for (off, acc, body) in batch {
            if st.last.is_some_and(|l| off <= l) {
                continue;
            }
            let entry = Entry::new(off, st.epoch.clone(), body).accepted_at(acc);
            if let Some(r) = self.room.upgrade() {
                r.deliver(entry);
            }
            st.last = Some(off);
        }
    }
}

/// Handles what the reader queued for one room: fetches referenced payloads, fills gaps, and
/// broadcasts, in arrival order.
async fn pump(
    inner: Arc<Inner>,
    room: String,
    mut inbox: mpsc::Receiver<Inbound>,
    live: Arc<Live>,
) {
    while let Some(msg) = inbox.recv().await {
        match msg {
            Inbound::Recover => {
                lock(&live.state).last = None;
                live.send(RoomMsg::Recover);
            }
            Inbound::Published(bytes) => {
                let step = live.handle(&mut lock(&live.state), &bytes, &room);
                if let Step::Fetch {
                    from,
                    gap,
                    offset,
                    accepted,
                    body,
                } = step
                {
                    // Nobody else touches the state meanwhile: the reader queues while this
                    // message is counted in `queued`.
                    let fetched = inner.read_range(&room, from, offset).await;
                    let mut st = lock(&live.state);
                    match fetched {
                        Ok(mut batch) => {
                            if gap {
                                inner
                                    .metrics
                                    .gap_fills
                                    .inc_by(batch.len().saturating_sub(1) as u64);
                            }
                            if !body.is_empty() && !batch.iter().any(|(o, _, _)| *o == offset) {
                                if let Ok(b) = decode_body(body) {
                                    batch.push((offset, accepted, b));
                                }
                            }
                            live.emit(&mut st, batch);
                        }
                        Err(err) => {
                            if matches!(err, StoreError::Corrupt(_)) {
                                tracing::error!(error = %err, room, offset, "corrupt room log entry");
                            }
                            live.send(RoomMsg::Recover);
                            st.last = None;
                        }
                    }
                }
            }
        }
        let mut st = lock(&live.state);
        st.queued = st.queued.saturating_sub(1);
    }
}

/// `<epoch>:<offset>:<accepted_us>:<body or nothing>`
fn parse_published(b: &[u8]) -> Option<(&str, u64, u64, &[u8])> {
    let mut parts = b.splitn(4, |&c| c == b':');
    let epoch = std::str::from_utf8(parts.next()?).ok()?;
    let offset = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let accepted = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((epoch, offset, accepted, parts.next().unwrap_or(&[])))
}

/// Refreshes this node's presence entries and reaps expired ones (members of dead nodes).
async fn presence_loop(weak: std::sync::Weak<Inner>) {
    let period = match weak.upgrade() {
        Some(i) => (i.cfg.presence_ttl / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let local: Vec<((String, u64), String)> = lock(&inner.local)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let now = now_us() / 1000;
        let expiry = now + inner.cfg.presence_ttl.as_millis() as u64;
        let mut by_room: HashMap<&str, Vec<&String>> = HashMap::new();
        for ((room, _), member) in &local {
            by_room.entry(room.as_str()).or_default().push(member);
        }
        let ttl = inner.cfg.room_ttl.as_millis() as i64;
        let mut conn = inner.conn.clone();
        let rooms: Vec<&str> = by_room.keys().copied().collect();
        // One pipeline per room: a room's keys share a slot; different rooms may not.
        for (room, members) in &by_room {
            let k = Keys::of(room);
            let mut pipe = redis::pipe();
            for m in members {
                pipe.cmd("ZADD")
                    .arg(&k.presence)
                    .arg("XX")
                    .arg(expiry)
                    .arg(*m)
                    .ignore();
            }
            // A customer is here: the room is not idle (see `idle_rooms`).
            if members.iter().any(|m| m.contains("\x1fcustomer\x1f")) {
                pipe.hset(&k.meta, "cseen", now).ignore();
            }
            for key in [&k.meta, &k.log, &k.chat, &k.presence, &k.pages, &k.typed] {
                pipe.pexpire(key, ttl).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "presence refresh failed");
            }
        }
        for room in rooms {
            let k = Keys::of(room);
            let r: Result<i64, _> = inner
                .reap
                .key(&k.presence)
                .arg(now)
                .arg(&k.channel)
                .arg(inner.sharded())
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "presence reap failed");
            }
        }
    }
}

/// Pings Redis every second; feeds `/readyz`.
async fn health_loop(weak: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let mut conn = inner.conn.clone();
        let ok = matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                redis::cmd("PING").query_async::<String>(&mut conn)
            )
            .await,
            Ok(Ok(_))
        );
        inner.ping_ok.store(ok, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn passwords_are_redacted_from_logged_urls() {
        assert_eq!(
            redacted_url("redis://:s3cret@10.0.0.7:6379/0"),
            "redis://:***@10.0.0.7:6379/0"
        );
        assert_eq!(
            redacted_url("rediss://relay:s3cret@a:6380,rediss://relay:s3cret@b:6380"),
            "rediss://relay:***@a:6380,rediss://relay:***@b:6380"
        );
        assert_eq!(
            redacted_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redacted_url("redis://10.0.0.7"), "redis://10.0.0.7");
        assert!(!redacted_url("not a url s3cret").contains("s3cret"));
    }
}
