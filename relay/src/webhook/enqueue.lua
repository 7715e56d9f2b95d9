-- Adds one event to a webhook outbox partition, once per event id (webhook/redis.rs `push`):
-- one stream entry per endpoint. An id seen within `seen_ttl_ms` adds nothing, so a fact that
-- two nodes (or a job run twice) report is queued once.
--
-- KEYS
--   1 stream  `ar:webhooks:{pN}` the partition's stream
--   2 seen    `ar:webhooks:{pN}:seen:<id>` marker of the id
-- ARGV
--   1 seen_ttl_ms  how long the id is remembered
--   2 id           event id
--   3 room         room
--   4 type         event type
--   5 body         JSON body
--   6 at           emission time, ms
--   7..            endpoint URLs
-- Returns the number of entries added (0 for an id seen before).
local stream, seen = KEYS[1], KEYS[2]
local seen_ttl_ms, id, room, kind, body, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if not redis.call('SET', seen, '1', 'NX', 'PX', seen_ttl_ms) then return 0 end
local added = 0
for i = 7, #ARGV do
  redis.call('XADD', stream, '*', 'id', id, 'room', room, 'type', kind, 'url', ARGV[i], 'body', body, 'at', at)
  added = added + 1
end
return added
