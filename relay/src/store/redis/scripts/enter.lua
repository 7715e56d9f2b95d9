-- Registers one connection of a participant, unless the room is full or the participant has its
-- most connections there (store/redis/presence.rs `enter`). Runs after reap.lua.
--
-- KEYS
--   1 presence                    bound by reap.lua
--   2 meta, 3 log, 4 chat, 5 pages, 6 typed
--                                 the room's other keys, whose expiry is pushed back
-- ARGV
--   1, 2, 3     now_ms, channel, sharded (bound by reap.lua)
--   4  member       the presence member `<sub>\x1f<role>\x1f<node>:<conn>`
--   5  sub          the participant
--   6  role         its role
--   7  max_members  participants the room admits
--   8  expiry       when the presence entry expires (ms)
--   9  room_ttl_ms  the room keys' expiry
--   10 max_conns    connections one participant may have in the room
-- Returns {'full', <left>...}, {'conns', <left>...}, or {'ok', flags, n, <n left>..., '<sub>\x1f<role>', ...}: flags
-- holds 'o' if this entry opened the room (its first since the room's keys were made) and 'j' if
-- it is the participant's first connection; then the n participants reap.lua announced as left;
-- then everyone present.
-- Also keeps the room directory's fields of meta: `opened` (first entry), `j:<sub>` (when the
-- participant's first connection present entered).
local meta, log, chat, pages, typed = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local member, me, role = ARGV[4], ARGV[5], ARGV[6]
local max_members = tonumber(ARGV[7])
local expiry = ARGV[8]
local room_ttl_ms = ARGV[9]
local max_conns = tonumber(ARGV[10])

local count = 0
for _ in pairs(present) do count = count + 1 end
local first = present[me] == nil
if first and count >= max_members then return {'full', unpack(left)} end
if not first then
  local mine = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', presence, now, '+inf')) do
    if sub_of(m) == me then mine = mine + 1 end
  end
  if mine >= max_conns then return {'conns', unpack(left)} end
end
redis.call('ZADD', presence, expiry, member)
if role == 'customer' then redis.call('HSET', meta, 'cseen', now_ms) end
local flags = ''
local opened_now = redis.call('HSETNX', meta, 'opened', now_ms) == 1
if first then
  redis.call('HSET', meta, 'j:' .. me, now_ms)
  present[me] = role
  publish('J' .. me .. '\31' .. role)
  flags = 'j'
  if opened_now and redis.call('HGET', meta, 'sealed') ~= '1' then
    flags = 'oj'
  end
end
for _, key in ipairs({presence, meta, log, chat, pages, typed}) do redis.call('PEXPIRE', key, room_ttl_ms) end
local out = {'ok', flags, tostring(#left)}
for _, l in ipairs(left) do table.insert(out, l) end
for s, r in pairs(present) do table.insert(out, s .. '\31' .. r) end
return out
