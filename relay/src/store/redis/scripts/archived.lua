-- Marks entries archived and trims what is below both the keyframe and the archive mark
-- (store/redis/archive.rs `mark_archived`).
--
-- KEYS
--   meta  `ar:{R}:meta` hash
--   log   `ar:{R}:log` stream
-- ARGV
--   1 upto  entries up to this offset are archived
-- Returns the archive mark afterwards (0 if the room has no log).
local meta, log = KEYS[1], KEYS[2]
local archived = tonumber(ARGV[1])

if redis.call('EXISTS', meta) == 0 then return 0 end
local upto = math.max(archived, tonumber(redis.call('HGET', meta, 'archived') or '0'))
redis.call('HSET', meta, 'archived', upto)
local floor = tonumber(redis.call('HGET', meta, 'floor') or '1')
redis.call('XTRIM', log, 'MINID', math.min(upto + 1, floor) .. '-0')
if upto + 1 >= floor then redis.call('HSET', meta, 'lb', redis.call('HGET', meta, 'kb') or 0) end
return upto
