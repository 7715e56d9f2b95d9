-- Closes a room (store/redis/log.rs `seal`): later appends fail, joins are refused, and every
-- node's members get `C` on the room's channel.
--
-- KEYS
--   meta       `ar:{R}:meta` hash
-- ARGV
--   1 new_epoch  the epoch a room without one gets
--   2 channel    the room's pub/sub channel
--   3 sharded    '1': SPUBLISH (Redis Cluster), else PUBLISH
-- Returns 1 if this call closed the room, 0 if it was closed already.
local meta = KEYS[1]
local new_epoch, channel, sharded = ARGV[1], ARGV[2], ARGV[3] == '1'

if redis.call('HGET', meta, 'sealed') == '1' then return 0 end
redis.call('HSETNX', meta, 'epoch', new_epoch)
redis.call('HSET', meta, 'sealed', 1)
if sharded then redis.call('SPUBLISH', channel, 'C') else redis.call('PUBLISH', channel, 'C') end
return 1
