-- Removes expired presence entries and announces participants left with no live connection:
-- a prelude of enter.lua and exit.lua, and on its own (plus `return 1`) the presence loop's reap
-- (store/redis/presence.rs). Leaves `present` (sub -> role), `now`, `sub_of`, `publish` and
-- `left` (`<sub>\x1f<role>` of each participant announced as left, for the webhooks) for the
-- rest of the script; alone it returns `left`.
--
-- KEYS
--   1 presence  `ar:{R}:presence` sorted set: one member `<sub>\x1f<role>\x1f<node>:<conn>`
--               per connection, scored by its expiry (ms)
-- ARGV
--   1 now_ms   now, ms since the Unix epoch
--   2 channel  the room's pub/sub channel
--   3 sharded  '1': SPUBLISH (Redis Cluster), else PUBLISH
local presence = KEYS[1]
local now_ms = ARGV[1]
local channel, sharded = ARGV[2], ARGV[3] == '1'

local now = tonumber(now_ms)
local function sub_of(m) return string.match(m, '^([^\31]*)') end
local function role_of(m) return string.match(m, '^[^\31]*\31([^\31]*)') end
local function publish(msg)
  if sharded then redis.call('SPUBLISH', channel, msg) else redis.call('PUBLISH', channel, msg) end
end
local dead = redis.call('ZRANGEBYSCORE', presence, '-inf', '(' .. now)
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', presence, '-inf', '(' .. now) end
local present = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', presence, now, '+inf')) do present[sub_of(m)] = role_of(m) end
local gone = {}
local left = {}
for _, m in ipairs(dead) do
  local s = sub_of(m)
  if not present[s] and not gone[s] then
    gone[s] = true
    publish('L' .. s .. '\31' .. role_of(m))
    table.insert(left, s .. '\31' .. role_of(m))
  end
end
