-- Takes or keeps the lease on a webhook outbox partition (webhook/redis.rs `partition_loop`):
-- only its holder delivers the partition, so a room's events go out in order.
--
-- KEYS
--   1 lease  `ar:webhooks:{pN}:lease`
-- ARGV
--   1 holder    this process's consumer name
--   2 lease_ms  lease length
-- Returns 1 if `holder` holds the lease now, 0 if another process does.
local lease = KEYS[1]
local holder, lease_ms = ARGV[1], ARGV[2]

local current = redis.call('GET', lease)
if current and current ~= holder then return 0 end
redis.call('SET', lease, holder, 'PX', lease_ms)
return 1
