-- Publishes guidance or signaling stamped with the room's epoch and head, storing nothing
-- (store/redis/bus.rs `relay`).
--
-- KEYS
--   1 meta  `ar:{R}:meta` hash
-- ARGV
--   1 channel  the room's pub/sub channel
--   2 sharded  '1': SPUBLISH (Redis Cluster), else PUBLISH
--   3 payload  the relayed message (guide.rs `Relayed::to_bytes`)
-- Returns 1.
local meta = KEYS[1]
local channel, sharded, payload = ARGV[1], ARGV[2] == '1', ARGV[3]

local m = redis.call('HMGET', meta, 'epoch', 'head')
local msg = 'G' .. (m[1] or '') .. ':' .. (m[2] or '0') .. ':' .. payload
if sharded then redis.call('SPUBLISH', channel, msg) else redis.call('PUBLISH', channel, msg) end
return 1
