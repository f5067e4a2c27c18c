/**
 * Lua for the `act` and `task` indexes: the active leases of one rule and subject pair, or of one
 * task. Most such sets are small (a few leases), and a key of their own would cost about 150
 * bytes a lease, so a small set is one field of a per-shard hash: a run of fixed-width entries,
 * the 22-character id then the expiry in ms as 9 base36 digits. A set that grows past SPILL
 * entries moves to a ZSET of its own (id -> expires ms) and its field holds '*', so large sets
 * keep O(log n) updates. Needs LUA_KEYS.
 */
export const INDEX_SPILL = 32;

export const LUA_INDEX = `
local IW, SPILL = 31, ${INDEX_SPILL}
local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36w9(n)
  n = math.floor(n)
  local s = ''
  while n > 0 do
    local r = n % 36
    s = string.sub(B36, r + 1, r + 1) .. s
    n = math.floor(n / 36)
  end
  return string.rep('0', 9 - #s) .. s
end
local function ixAdd(base, kind, name, id, expMs)
  local h = indexKey(base, kind)
  local v = redis.call('HGET', h, name)
  if v == '*' then
    redis.call('ZADD', spilledKey(base, kind, name), expMs, id)
    return
  end
  v = (v or '') .. id .. b36w9(expMs)
  if #v <= SPILL * IW then
    redis.call('HSET', h, name, v)
    return
  end
  local z = spilledKey(base, kind, name)
  for i = 1, #v, IW do
    redis.call('ZADD', z, tonumber(string.sub(v, i + 22, i + 30), 36), string.sub(v, i, i + 21))
  end
  redis.call('HSET', h, name, '*')
end
local function ixRem(base, kind, name, id)
  local h = indexKey(base, kind)
  local v = redis.call('HGET', h, name)
  if not v then return end
  if v == '*' then
    local z = spilledKey(base, kind, name)
    redis.call('ZREM', z, id)
    if redis.call('EXISTS', z) == 0 then redis.call('HDEL', h, name) end
    return
  end
  for i = 1, #v, IW do
    if string.sub(v, i, i + 21) == id then
      v = string.sub(v, 1, i - 1) .. string.sub(v, i + IW)
      if #v == 0 then redis.call('HDEL', h, name) else redis.call('HSET', h, name, v) end
      return
    end
  end
end
-- One call per 1000 arguments (unpack stays well under Lua's C stack limit).
local function each1000(cmd, key, list)
  for i = 1, #list, 1000 do redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
end
-- ixRem for many ids of many sets of one kind, in a few calls: one HMGET of the sets' fields, one
-- HSET and one HDEL for the small ones, a ZREM and an EXISTS per spilled one. \`idsOf\` maps each
-- name in \`names\` to its ids. In a storm of endings the calls, not the work, are the cost.
local function ixRemMany(base, kind, names, idsOf)
  if #names == 0 then return end
  local h = indexKey(base, kind)
  local vals = redis.call('HMGET', h, unpack(names))
  local sets, dels = {}, {}
  for i, name in ipairs(names) do
    local v = vals[i]
    if v == '*' then
      local z = spilledKey(base, kind, name)
      each1000('ZREM', z, idsOf[name])
      if redis.call('EXISTS', z) == 0 then dels[#dels + 1] = name end
    elseif v then
      local drop = {}
      for _, id in ipairs(idsOf[name]) do drop[id] = true end
      local kept = {}
      for j = 1, #v, IW do
        if not drop[string.sub(v, j, j + 21)] then kept[#kept + 1] = string.sub(v, j, j + IW - 1) end
      end
      if #kept == 0 then
        dels[#dels + 1] = name
      elseif #kept * IW ~= #v then
        sets[#sets + 1] = name
        sets[#sets + 1] = table.concat(kept)
      end
    end
  end
  each1000('HSET', h, sets)
  each1000('HDEL', h, dels)
end
-- Drops the entries that expired by now; returns how many are left.
local function ixLiveCount(base, kind, name, now)
  local h = indexKey(base, kind)
  local v = redis.call('HGET', h, name)
  if not v then return 0 end
  if v == '*' then
    local z = spilledKey(base, kind, name)
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    local n = redis.call('ZCARD', z)
    if n == 0 then redis.call('HDEL', h, name) end
    return n
  end
  local kept = {}
  for i = 1, #v, IW do
    if tonumber(string.sub(v, i + 22, i + 30), 36) > now then kept[#kept + 1] = string.sub(v, i, i + IW - 1) end
  end
  if #kept * IW ~= #v then
    if #kept == 0 then redis.call('HDEL', h, name) else redis.call('HSET', h, name, table.concat(kept)) end
  end
  return #kept
end
-- The ids of a set's leases that have not expired by \`now\` (an expiry leaves its entry for PRUNE).
local function ixLiveIds(base, kind, name, now)
  local v = redis.call('HGET', indexKey(base, kind), name)
  if not v then return {} end
  if v == '*' then return redis.call('ZRANGE', spilledKey(base, kind, name), '(' .. now, '+inf', 'BYSCORE') end
  local ids = {}
  for i = 1, #v, IW do
    if tonumber(string.sub(v, i + 22, i + 30), 36) > now then ids[#ids + 1] = string.sub(v, i, i + 21) end
  end
  return ids
end
-- One step of a revocation's walk over a set: all of a small one, or the next \`count\` entries of
-- a spilled one in order (not ZSCAN: ZREMs at random places of a large ZSET cost several times
-- those at its head, and a ZSET shrinking under ZSCAN is rescanned). The walk removes what it
-- revokes, so a step starts just after the last entry a step kept (\`anchor\`, 'score id', '' for
-- the head); were that entry gone meanwhile, at the first entry of its score: a kept entry seen
-- twice costs a read, a skipped one would stay active. Returns ids and whether the set is spilled.
local function ixWalk(base, kind, name, anchor, count)
  local v = redis.call('HGET', indexKey(base, kind), name)
  local ids = {}
  if not v then return ids, false end
  if v ~= '*' then
    for i = 1, #v, IW do ids[#ids + 1] = string.sub(v, i, i + 21) end
    return ids, false
  end
  local z = spilledKey(base, kind, name)
  local start = 0
  if anchor ~= '' then
    local sep = string.find(anchor, ' ', 1, true)
    local r = redis.call('ZRANK', z, string.sub(anchor, sep + 1))
    start = r and r + 1 or redis.call('ZCOUNT', z, '-inf', '(' .. string.sub(anchor, 1, sep - 1))
  end
  return redis.call('ZRANGE', z, start, start + count - 1), true
end
-- The anchor after \`id\`, an entry of a spilled set.
local function ixAnchor(base, kind, name, id)
  return redis.call('ZSCORE', spilledKey(base, kind, name), id) .. ' ' .. id
end
`;
