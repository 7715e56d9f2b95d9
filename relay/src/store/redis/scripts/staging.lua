-- The room's staging tally: a prelude of stage.lua, drop.lua and release.lua, which pass it as
-- their KEYS[3] and KEYS[4] (bound here, once).
--
-- KEYS
--   3 tally     `ar:{R}:stg` hash: `r` (the room's staged bytes), `s:<sender>` (one sender's),
--               `u:<sender>\x1f<upload>` (one upload's)
--   4 expiries  `ar:{R}:stx` sorted set: every upload `<sender>\x1f<upload>` scored by its
--               expiry (ms)
-- `unstage` takes an upload off the tally; `reap` does so for every expired upload.
local tally, expiries = KEYS[3], KEYS[4]

local function unstage(member)
  local b = tonumber(redis.call('HGET', tally, 'u:' .. member) or '0')
  redis.call('HDEL', tally, 'u:' .. member)
  redis.call('ZREM', expiries, member)
  if b > 0 then
    redis.call('HINCRBY', tally, 'r', -b)
    local s = 's:' .. string.match(member, '^([^\31]*)')
    if redis.call('HINCRBY', tally, s, -b) <= 0 then redis.call('HDEL', tally, s) end
  end
end
local function reap(now)
  for _, mem in ipairs(redis.call('ZRANGEBYSCORE', expiries, '-inf', now)) do unstage(mem) end
end
