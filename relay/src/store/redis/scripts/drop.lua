-- Forgets an upload (store/redis/uploads.rs `drop_upload`). Runs after staging.lua.
--
-- KEYS
--   1 upload          `ar:{R}:up:<sender>\x1f<upload>` hash
--   2 sender_uploads  `ar:{R}:ups:<sender>` sorted set
--   3, 4              the room's staging tally (bound by staging.lua)
-- ARGV
--   1 upload_id  the upload id
--   2 sender     the uploading participant
-- Returns 1.
local upload, sender_uploads = KEYS[1], KEYS[2]
local upload_id, sender = ARGV[1], ARGV[2]

redis.call('DEL', upload)
redis.call('ZREM', sender_uploads, upload_id)
unstage(sender .. '\31' .. upload_id)
return 1
