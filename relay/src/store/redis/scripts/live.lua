-- Reads what the room directory shows of one room (store/redis/directory.rs `live_rooms`):
-- whether it is closed or gone, when it opened, when an agent was last there, its current page
-- and who is present with when each entered. Read-only.
--
-- KEYS
--   1 presence  `ar:{R}:presence` sorted set (members `<sub>\x1f<role>\x1f<node>:<conn>`,
--               scored by expiry)
--   2 meta      `ar:{R}:meta` hash (`sealed`, `opened`, `aseen`, `j:<sub>`)
--   3 pages     `ar:{R}:pages` list (`<offset>\x1f<page json>`)
-- ARGV
--   1 now_ms    now, ms since the Unix epoch
-- Returns {'gone'} (no meta, nobody present), {'closed'}, or
-- {'live', opened, aseen, last_page, '<sub>\x1f<role>', joined, ...} ('' for what is missing).
local presence, meta, pages = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])

local live = redis.call('ZRANGEBYSCORE', presence, now, '+inf')
if #live == 0 and redis.call('EXISTS', meta) == 0 then return {'gone'} end
if redis.call('HGET', meta, 'sealed') == '1' then return {'closed'} end
local out = {'live', redis.call('HGET', meta, 'opened') or '', redis.call('HGET', meta, 'aseen') or '',
  redis.call('LINDEX', pages, -1) or ''}
local seen = {}
for _, m in ipairs(live) do
  local sub, role = string.match(m, '^([^\31]*)\31([^\31]*)')
  if sub and not seen[sub] then
    seen[sub] = true
    table.insert(out, sub .. '\31' .. role)
    table.insert(out, redis.call('HGET', meta, 'j:' .. sub) or '')
  end
end
return out
