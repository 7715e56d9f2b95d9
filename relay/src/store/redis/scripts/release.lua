-- A connection of a sender left: unless another one is present, its uploads expire after the
-- grace, at once when 0 (store/redis/uploads.rs `release_uploads`). Runs after staging.lua.
--
-- KEYS
--   1 presence        `ar:{R}:presence` sorted set
--   2 sender_uploads  `ar:{R}:ups:<sender>` sorted set
--   3, 4              the room's staging tally (bound by staging.lua)
-- ARGV
--   1 sender         the participant whose connection left
--   2 now_ms         now, ms since the Unix epoch
--   3 grace_ms       how long its uploads are kept
--   4 upload_prefix  `ar:{R}:up:<sender>\x1f`, the sender's upload keys less the upload id
-- Returns 0 if another connection of the sender is present, else 1.
local presence, sender_uploads = KEYS[1], KEYS[2]
local sender, now_ms = ARGV[1], ARGV[2]
local grace = tonumber(ARGV[3])
local upload_prefix = ARGV[4]

for _, m in ipairs(redis.call('ZRANGEBYSCORE', presence, now_ms, '+inf')) do
  if string.match(m, '^([^\31]*)') == sender then return 0 end
end
local until_ms = tonumber(now_ms) + grace
local pre = sender .. '\31'
for _, mem in ipairs(redis.call('ZRANGE', expiries, 0, -1)) do
  if string.sub(mem, 1, #pre) == pre then
    local up = string.sub(mem, #pre + 1)
    if grace == 0 then
      redis.call('DEL', upload_prefix .. up)
      redis.call('ZREM', sender_uploads, up)
      unstage(mem)
    elseif tonumber(redis.call('ZSCORE', expiries, mem)) > until_ms then
      redis.call('ZADD', expiries, until_ms, mem)
      redis.call('ZADD', sender_uploads, until_ms, up)
      redis.call('PEXPIRE', upload_prefix .. up, grace)
    end
  end
end
return 1
