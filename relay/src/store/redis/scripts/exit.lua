-- Removes one connection of a participant and announces it left if that was its last
-- (store/redis/presence.rs `exit`). Runs after reap.lua.
--
-- KEYS
--   1 presence  bound by reap.lua
--   2 meta      `ar:{R}:meta` hash: the room directory's `j:<sub>` goes with the last connection,
--               and an agent leaving sets `aseen` (only while the room exists)
-- ARGV
--   1, 2, 3  now_ms, channel, sharded (bound by reap.lua)
--   4 member  the presence member `<sub>\x1f<role>\x1f<node>:<conn>`
--   5 sub     the participant
--   6 role    its role
-- Returns `left` (reap.lua's), with this participant if that was its last connection.
local meta = KEYS[2]
local member, sub, role = ARGV[4], ARGV[5], ARGV[6]

redis.call('ZREM', presence, member)
local still = false
for _, m in ipairs(redis.call('ZRANGEBYSCORE', presence, now, '+inf')) do
  if sub_of(m) == sub then still = true end
end
if not still and present[sub] then
  publish('L' .. sub .. '\31' .. role)
  table.insert(left, sub .. '\31' .. role)
end
if not still and redis.call('EXISTS', meta) == 1 then
  redis.call('HDEL', meta, 'j:' .. sub)
  if role == 'agent' then redis.call('HSET', meta, 'aseen', now_ms) end
end
return left
