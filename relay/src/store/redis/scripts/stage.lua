-- Stages one upload slice (store/redis/uploads.rs `stage_chunk`). Runs after staging.lua.
--
-- KEYS
--   1 upload          `ar:{R}:up:<sender>\x1f<upload>` hash: `m` count|size|digest, `b` bytes,
--                     `n` slices, `c<i>` slice i
--   2 sender_uploads  `ar:{R}:ups:<sender>` sorted set: the sender's uploads, scored by expiry
--   3, 4              the room's staging tally (bound by staging.lua)
-- ARGV
--   1  index              slice number
--   2  count              number of slices
--   3  size               size of the whole event
--   4  digest             digest of the whole event
--   5  data               the slice
--   6  max_uploads        uploads one sender may have in progress
--   7  ttl_ms             how long an upload is kept after its last slice
--   8  now_ms             now, ms since the Unix epoch
--   9  upload_id          the upload id
--   10 sender             the uploading participant
--   11 participant_share  bytes one sender may have staged in the room
--   12 room_share         bytes the room may have staged
-- Returns {'partial', first ('1' or '0')}, {'complete'}, {'too_many'} or {'mismatch', why}.
local upload, sender_uploads = KEYS[1], KEYS[2]
local index, count, size, digest, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_uploads = tonumber(ARGV[6])
local ttl_ms = ARGV[7]
local now_ms = ARGV[8]
local upload_id, sender = ARGV[9], ARGV[10]
local participant_share, room_share = tonumber(ARGV[11]), tonumber(ARGV[12])

local m = count .. '|' .. size .. '|' .. digest
local me = sender .. '\31' .. upload_id
local function drop(why)
  redis.call('DEL', upload)
  redis.call('ZREM', sender_uploads, upload_id)
  unstage(me)
  return {'mismatch', why}
end
reap(now_ms)
local cur = redis.call('HGET', upload, 'm')
local first = '0'
if not cur then
  first = '1'
  redis.call('ZREMRANGEBYSCORE', sender_uploads, '-inf', now_ms)
  if redis.call('ZCARD', sender_uploads) >= max_uploads then return {'too_many'} end
  redis.call('HSET', upload, 'm', m, 'b', 0, 'n', 0)
elseif cur ~= m then
  return drop('count, size or digest differs from the upload\'s first slice')
end
local f = 'c' .. index
if redis.call('HEXISTS', upload, f) == 0 then
  local len = string.len(data)
  local b = tonumber(redis.call('HGET', upload, 'b')) + len
  if b > tonumber(size) then return drop('the slices add up to more than size') end
  local t = redis.call('HMGET', tally, 'r', 's:' .. sender)
  if tonumber(t[1] or '0') + len > room_share or tonumber(t[2] or '0') + len > participant_share then
    -- The room's or the sender's staging share is full: refuse the slice, keep the rest.
    if first == '1' then
      redis.call('DEL', upload)
      redis.call('ZREM', sender_uploads, upload_id)
    end
    return {'too_many'}
  end
  redis.call('HSET', upload, f, data, 'b', b)
  redis.call('HINCRBY', upload, 'n', 1)
  redis.call('HINCRBY', tally, 'r', len)
  redis.call('HINCRBY', tally, 's:' .. sender, len)
  redis.call('HINCRBY', tally, 'u:' .. me, len)
end
local expiry = tonumber(now_ms) + tonumber(ttl_ms)
redis.call('ZADD', sender_uploads, expiry, upload_id)
redis.call('ZADD', expiries, expiry, me)
for _, key in ipairs({upload, sender_uploads, tally, expiries}) do redis.call('PEXPIRE', key, ttl_ms) end
if tonumber(redis.call('HGET', upload, 'n')) < tonumber(count) then return {'partial', first} end
if tonumber(redis.call('HGET', upload, 'b')) ~= tonumber(size) then
  return drop('the slices do not add up to size')
end
return {'complete'}
