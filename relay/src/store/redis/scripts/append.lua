-- Appends one entry to a room log: assigns its offset, applies the rates across nodes and the
-- byte cap, trims below a new keyframe, records the idempotency key and the page timeline, and
-- publishes the entry, all in one step (store/redis/log.rs `append`).
--
-- It reads the room's meta hash once (HMGET) and writes it once (HSET), offsets and byte counts
-- and the rates' theoretical arrival times together: a stored incremental event costs HMGET,
-- TIME, XADD, HSET and PUBLISH (docs/benchmarks.md, "Redis time per append").
--
-- KEYS
--   meta   `ar:{R}:meta` hash (see store/redis/keys.rs), rates' arrival times included
--   log    `ar:{R}:log` stream
--   chat   `ar:{R}:chat` stream
--   dedup  `ar:{R}:d:<sender>\x1f<id>`, the idempotency key (a placeholder without one)
--   pages  `ar:{R}:pages` list
-- ARGV
--   1  new_epoch            the epoch a room without one starts
--   2  body                 the encoded entry (store/redis/body.rs)
--   3  accepted             acceptance time, µs since the Unix epoch (stored and published as is)
--   4  channel              the room's pub/sub channel
--   5  page                 the page record (JSON) a FullSnapshot starts, or ''
--   6  sender               the rate-limited participant, '' for none
--   7  numbers              19 little-endian f64 (`struct.pack('<d...')`, log.rs `numbers`), in this
--                           order: etype (rrweb event type, -1 for chat); inline (1: the body
--                           travels in the pub/sub message, else by reference); chat_retain (chat
--                           messages kept); dedup_ttl (seconds an idempotency key is kept);
--                           sharded (1: SPUBLISH, Redis Cluster); has_dedup (1: the entry has an
--                           idempotency key); native (1: the page is a native-page placeholder);
--                           max_pages (page records kept); keep_until_archived (1: entries below
--                           the keyframe stay until archived); size (payload bytes of the entry);
--                           max_log_bytes (the room log's byte cap, store/cap.rs); then interval
--                           and tolerance (µs) of the sender's entries, the sender's bytes, the
--                           room's entries and the room's bytes (limits/rates.rs `EntryRates`).
--                           Packed because each argument and each decimal conversion costs Redis
--                           more than the rest of a typical append (docs/benchmarks.md).
-- Returns {epoch, offset, status, tail bytes, native keyframe}; status 0 stored, 1 duplicate,
-- 2 closed, 3 over the byte cap, 4 over a rate.
local meta, log, chat, dedup, pages = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local new_epoch, body, accepted, channel, page, sender = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local etype, inline, chat_retain, dedup_ttl, sharded, has_dedup, native, max_pages, keep_until_archived,
  size, max_log_bytes, sender_entries_interval, sender_entries_tolerance, sender_bytes_interval,
  sender_bytes_tolerance, room_entries_interval, room_entries_tolerance, room_bytes_interval,
  room_bytes_tolerance = struct.unpack('<ddddddddddddddddddd', ARGV[7])
inline, sharded, has_dedup, keep_until_archived = inline == 1, sharded == 1, has_dedup == 1, keep_until_archived == 1

-- The rates' fields (limits/rates.rs): the sender's entries and bytes, the room's entries and bytes;
-- each a theoretical arrival time, µs, as one little-endian f64.
local rate_fields = {}
if sender ~= '' then rate_fields = {'r:m:' .. sender, 'r:b:' .. sender, 'r:m', 'r:b'} end
local m = redis.call('HMGET', meta, 'epoch', 'sealed', 'tail', 'kfn', 'kb', 'mb', 'lb', 'meta', 'head',
  unpack(rate_fields))
local epoch = m[1]
-- Fields written back with the final HSET.
local set = {}
local function put(k, v) set[#set + 1] = k; set[#set + 1] = v end
if not epoch then
  epoch = new_epoch
  put('epoch', epoch); put('floor', 1); put('chat_floor', 1)
elseif m[2] == '1' then
  return {epoch, 0, 2, 0, 0}
end
local tail, kfn = tonumber(m[3] or '0'), tonumber(m[4] or '0')
if has_dedup then
  local prev = redis.call('GET', dedup)
  if prev then return {epoch, tonumber(prev), 1, tail, kfn} end
end
-- Rates across nodes: GCRA for the sender's and the room's entries and payload bytes.
if sender ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local cost = {1, size, 1, size}
  local interval = {sender_entries_interval, sender_bytes_interval, room_entries_interval, room_bytes_interval}
  local tolerance = {sender_entries_tolerance, sender_bytes_tolerance, room_entries_tolerance, room_bytes_tolerance}
  local nt = {}
  for i = 1, 4 do
    local prev = m[9 + i]
    if prev then prev = struct.unpack('<d', prev) else prev = 0 end
    local at = math.max(prev, now) + cost[i] * interval[i]
    if at - now > tolerance[i] then return {epoch, 0, 4, 0, 0} end
    nt[i] = struct.pack('<d', at)
  end
  for i = 1, 4 do put(rate_fields[i], nt[i]) end
end
-- The byte cap (store/cap.rs): key bytes from the keyframe on, pending-Meta bytes, log bytes.
local kb, lb = tonumber(m[5] or '0'), tonumber(m[7] or '0')
local mb = nil
if m[8] then mb = tonumber(m[6] or '0') end
local over
if etype == 2 then over = (mb or 0) + size > max_log_bytes
elseif etype == 4 and not mb then over = false
else over = kb + size > max_log_bytes end
if over then return {epoch, 0, 3, tail, kfn} end
local floor = nil
local off = tostring(tonumber(m[9] or '0') + 1)
put('head', off)
local id = off .. '-0'
redis.call('XADD', log, id, 'b', body, 'a', accepted)
if etype == 4 then
  put('meta', off)
  mb = 0
elseif etype == 2 then
  local start = m[8] or off
  redis.call('HDEL', meta, 'meta', 'mb')
  kb, mb, floor = mb or 0, nil, start
  if not keep_until_archived then lb = kb end
  -- Entries before the new keyframe are no longer needed for live viewing; with recordings
  -- on they stay until the compactor has archived them.
  local keep_from = tonumber(start)
  if keep_until_archived then
    keep_from = math.min(keep_from, tonumber(redis.call('HGET', meta, 'archived') or '0') + 1)
  end
  redis.call('XTRIM', log, 'MINID', keep_from .. '-0')
  tail, kfn = 0, native
  put('floor', start); put('tail', 0); put('kfn', kfn)
  if page ~= '' then
    redis.call('RPUSH', pages, start .. '\31' .. page)
    redis.call('LTRIM', pages, -max_pages, -1)
  end
elseif etype >= 0 then
  tail = tail + string.len(body) - 3
  put('tail', tail)
elseif etype == -1 then
  redis.call('XADD', chat, id, 'b', body, 'a', accepted)
  if redis.call('XTRIM', chat, 'MAXLEN', chat_retain) > 0 then
    local first = redis.call('XRANGE', chat, '-', '+', 'COUNT', 1)[1][1]
    put('chat_floor', string.match(first, '^(%d+)'))
  end
end
kb, lb = kb + size, lb + size
if mb then mb = mb + size end
if lb > max_log_bytes then
  -- Over the cap: whatever is below the keyframe goes, archived or not.
  floor = floor or redis.call('HGET', meta, 'floor') or '1'
  redis.call('XTRIM', log, 'MINID', floor .. '-0')
  lb = kb
end
put('kb', kb); put('lb', lb)
if mb then put('mb', mb) end
redis.call('HSET', meta, unpack(set))
if has_dedup then redis.call('SET', dedup, off, 'EX', dedup_ttl) end
local msg = 'E' .. epoch .. ':' .. off .. ':' .. accepted .. ':'
if inline then msg = msg .. body end
if sharded then redis.call('SPUBLISH', channel, msg) else redis.call('PUBLISH', channel, msg) end
return {epoch, off, 0, tail, kfn}
