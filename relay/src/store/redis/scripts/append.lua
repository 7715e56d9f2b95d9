-- Appends one entry to a room log: assigns its offset, applies the rates across nodes and the
-- byte cap, trims below a new keyframe, records the idempotency key and the page timeline, and
-- publishes the entry, all in one step (store/redis/log.rs `append`).
--
-- KEYS
--   meta   `ar:{R}:meta` hash (see store/redis/keys.rs)
--   log    `ar:{R}:log` stream
--   chat   `ar:{R}:chat` stream
--   dedup  `ar:{R}:d:<sender>\x1f<id>`, the idempotency key (a placeholder without one)
--   pages  `ar:{R}:pages` list
--   rates  `ar:{R}:rate` hash of the rates' theoretical arrival times
-- ARGV
--   1  new_epoch            the epoch a room without one starts
--   2  body                 the encoded entry (store/redis/body.rs)
--   3  etype                rrweb event type, -1 for chat
--   4  accepted             acceptance time, µs since the Unix epoch
--   5  inline               '1': the body travels in the pub/sub message; else by reference
--   6  chat_retain          chat messages kept in the chat stream
--   7  dedup_ttl            seconds an idempotency key is kept
--   8  channel              the room's pub/sub channel
--   9  sharded              '1': SPUBLISH (Redis Cluster), else PUBLISH
--   10 has_dedup            '1': the entry has an idempotency key
--   11 page                 the page record (JSON) a FullSnapshot starts, or ''
--   12 native               '1': that page is a native-page placeholder
--   13 max_pages            page timeline records kept
--   14 keep_until_archived  '1': entries below the keyframe stay until archived
--   15 size                 payload bytes of the entry
--   16 max_log_bytes        the room log's byte cap (store/cap.rs)
--   17 sender               the rate-limited participant, '' for none
--   18..25                  interval and tolerance (µs) of the sender's entries, the sender's
--                           bytes, the room's entries and the room's bytes (limits/rates.rs `EntryRates`)
-- Returns {epoch, offset, status, tail bytes, native keyframe}; status 0 stored, 1 duplicate,
-- 2 closed, 3 over the byte cap, 4 over a rate.
local meta, log, chat, dedup, pages, rates = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local new_epoch = ARGV[1]
local body = ARGV[2]
local etype = tonumber(ARGV[3])
local accepted = ARGV[4]
local inline = ARGV[5] == '1'
local chat_retain = ARGV[6]
local dedup_ttl = ARGV[7]
local channel = ARGV[8]
local sharded = ARGV[9] == '1'
local has_dedup = ARGV[10] == '1'
local page = ARGV[11]
local native = ARGV[12]
local max_pages = tonumber(ARGV[13])
local keep_until_archived = ARGV[14] == '1'
local size = tonumber(ARGV[15])
local max_log_bytes = tonumber(ARGV[16])
local sender = ARGV[17]
local sender_entries_interval, sender_entries_tolerance = tonumber(ARGV[18]), tonumber(ARGV[19])
local sender_bytes_interval, sender_bytes_tolerance = tonumber(ARGV[20]), tonumber(ARGV[21])
local room_entries_interval, room_entries_tolerance = tonumber(ARGV[22]), tonumber(ARGV[23])
local room_bytes_interval, room_bytes_tolerance = tonumber(ARGV[24]), tonumber(ARGV[25])

local m = redis.call('HMGET', meta, 'epoch', 'sealed', 'tail', 'kfn', 'kb', 'mb', 'lb', 'meta')
local epoch = m[1]
if not epoch then
  epoch = new_epoch
  redis.call('HSET', meta, 'epoch', epoch, 'head', 0, 'floor', 1, 'chat_floor', 1)
elseif m[2] == '1' then
  return {epoch, 0, 2, 0, 0}
end
local tail, kfn = tonumber(m[3] or '0'), tonumber(m[4] or '0')
if has_dedup then
  local prev = redis.call('GET', dedup)
  if prev then return {epoch, tonumber(prev), 1, tail, kfn} end
end
-- Rates across nodes (limits/rates.rs): GCRA for the sender's and the room's entries and payload bytes.
if sender ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local f = {'m:' .. sender, 'b:' .. sender, 'm', 'b'}
  local tat = redis.call('HMGET', rates, f[1], f[2], f[3], f[4])
  local cost = {1, size, 1, size}
  local interval = {sender_entries_interval, sender_bytes_interval, room_entries_interval, room_bytes_interval}
  local tolerance = {sender_entries_tolerance, sender_bytes_tolerance, room_entries_tolerance, room_bytes_tolerance}
  local nt = {}
  for i = 1, 4 do
    local at = math.max(tonumber(tat[i] or '0'), now) + cost[i] * interval[i]
    if at - now > tolerance[i] then return {epoch, 0, 4, 0, 0} end
    nt[i] = string.format('%.0f', at)
  end
  redis.call('HSET', rates, f[1], nt[1], f[2], nt[2], f[3], nt[3], f[4], nt[4])
  redis.call('PEXPIRE', rates, 600000)
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
local off = redis.call('HINCRBY', meta, 'head', 1)
local id = off .. '-0'
redis.call('XADD', log, id, 'b', body, 'a', accepted)
if etype == 4 then
  redis.call('HSET', meta, 'meta', off)
  mb = 0
elseif etype == 2 then
  local start = redis.call('HGET', meta, 'meta') or off
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
  tail, kfn = 0, tonumber(native)
  redis.call('HSET', meta, 'floor', start, 'tail', 0, 'kfn', native)
  if page ~= '' then
    redis.call('RPUSH', pages, start .. '\31' .. page)
    redis.call('LTRIM', pages, -max_pages, -1)
  end
elseif etype >= 0 then
  tail = redis.call('HINCRBY', meta, 'tail', string.len(body) - 3)
elseif etype == -1 then
  redis.call('XADD', chat, id, 'b', body, 'a', accepted)
  if redis.call('XTRIM', chat, 'MAXLEN', chat_retain) > 0 then
    local first = redis.call('XRANGE', chat, '-', '+', 'COUNT', 1)[1][1]
    redis.call('HSET', meta, 'chat_floor', string.match(first, '^(%d+)'))
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
if mb then
  redis.call('HSET', meta, 'kb', kb, 'lb', lb, 'mb', mb)
else
  redis.call('HSET', meta, 'kb', kb, 'lb', lb)
end
if has_dedup then redis.call('SET', dedup, off, 'EX', dedup_ttl) end
local msg = 'E' .. epoch .. ':' .. off .. ':' .. accepted .. ':'
if inline then msg = msg .. body end
if sharded then redis.call('SPUBLISH', channel, msg) else redis.call('PUBLISH', channel, msg) end
return {epoch, off, 0, tail, kfn}
