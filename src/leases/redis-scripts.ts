import { LUA_FIELDS } from './lease-codec.ts';
import { LUA_BUDGET } from './redis-budget-lua.ts';
import { LUA_INDEX } from './redis-index-lua.ts';
import { LUA_KEYS } from '../redis/keys.ts';
import { scriptOf, type LuaScript } from '../redis/scripts.ts';

/** The lease store's scripts: each touches the keys of one shard (one slot) only. */
const script = (body: string): LuaScript => scriptOf(PRELUDE + body);

// Shared by the scripts below. `finish` is the one place an ending happens: status, ended_at,
// schedule and index removal, retention, CRL entry and the audit event, in one atomic step.
const PRELUDE = `${LUA_FIELDS}${LUA_KEYS}${LUA_INDEX}
local NULL = cjson.null
local BS = string.char(92)
-- Node's JSON.stringify writes a lone UTF-16 surrogate as a \\udxxx escape, which cjson refuses;
-- read it as U+FFFD, as Node's UTF-8 encoder (and so every index digest) does. An even run of
-- backslashes before the u is escaped backslashes, not an escape.
local LONE = '(' .. BS .. '+)u[dD][89a-fA-F]%x%x'
local function repairSurrogates(raw)
  return (string.gsub(raw, LONE, function(bs)
    if #bs % 2 == 0 then return nil end
    return string.sub(bs, 2) .. BS .. 'ufffd'
  end))
end
local function isNum(v) return type(v) == 'number' and v == v and v > -math.huge and v < math.huge end
local function isList(v)
  if type(v) ~= 'table' then return false end
  for _, x in pairs(v) do if type(x) ~= 'string' then return false end end
  return true
end
local STATUSES = { active = true, revoked = true, expired = true }
-- Built once: a table literal in wellShaped cost each record read ~1 µs of Redis.
local STR_FIELDS = { F_RULE, F_ISSUER, F_SUBJECT, F_PROOF_ISS }
local NUM_FIELDS = { F_ISSUED_MS, F_EXPIRES_AT }
local OPT_STR_FIELDS = { F_TASK_ID, F_SERIAL, F_PROOF_SUB, F_PROOF_JTI, F_CLIENT_ADDR, F_REASON, F_REVOKED_BY }
local OPT_NUM_FIELDS = { F_REVOKED_AT, F_ENDED_AT }
-- The shape every script relies on (and cjson.encode can write back). As strict as Node's
-- decodeLease or looser, never stricter: Lua must read what Node may call active.
local function wellShaped(t)
  if type(t) ~= 'table' then return false end
  for i = 1, NFIELDS do if t[i] == nil then t[i] = NULL end end
  if not (STATUSES[t[F_STATUS]] and (t[F_KIND] == 'jwt' or t[F_KIND] == 'x509')) then return false end
  for i = 1, #STR_FIELDS do if type(t[STR_FIELDS[i]]) ~= 'string' then return false end end
  for i = 1, #NUM_FIELDS do if not isNum(t[NUM_FIELDS[i]]) then return false end end
  for i = 1, #OPT_STR_FIELDS do
    local v = t[OPT_STR_FIELDS[i]]
    if v ~= NULL and type(v) ~= 'string' then return false end
  end
  for i = 1, #OPT_NUM_FIELDS do
    local v = t[OPT_NUM_FIELDS[i]]
    if v ~= NULL and not isNum(v) then return false end
  end
  return isList(t[F_SCOPES]) and isList(t[F_AUDIENCES])
end
-- The lease as a table, or nil when the record cannot be read (see quarantine).
local function decodeLease(raw)
  local ok, t = pcall(cjson.decode, raw)
  if not ok then ok, t = pcall(cjson.decode, repairSurrogates(raw)) end
  if ok and wellShaped(t) then return t end
  return nil
end
-- An unreadable record can never end normally: it leaves the schedules (so it can never stall its
-- shard) and is kept for retention like an ended lease. True the first time, so Node reports it once.
local function quarantine(base, id, now, retentionMs)
  redis.call('ZREM', dueKey(base), id)
  redis.call('ZREM', pendingKey(base), id)
  return redis.call('ZADD', goneKey(base), 'NX', now + retentionMs, id) == 1
end
-- \`walked\`: the kind of index a revocation walks, which removes its ids in one go itself.
local function unlinkActive(base, id, t, walked)
  if walked ~= 'act' then ixRem(base, 'act', actName(t[F_RULE], t[F_SUBJECT]), id) end
  if t[F_TASK_ID] ~= NULL and walked ~= 'task' then ixRem(base, 'task', taskName(t[F_TASK_ID]), id) end
end
local function revokedJson(t, at, reason, by)
  t[F_STATUS] = 'revoked'
  t[F_REVOKED_AT] = at
  t[F_REASON] = reason
  t[F_REVOKED_BY] = by
  return cjson.encode(t)
end
local function revokeLease(base, id, t, at, reason, by, revokedMs)
  local json = revokedJson(t, at, reason, by)
  redis.call('HSET', leasesKey(base), id, json)
  redis.call('ZADD', pendingKey(base), revokedMs, id)
  unlinkActive(base, id, t)
  return json
end
local function finish(base, id, t, now, retentionMs, maxlen)
  local expired = t[F_STATUS] == 'active'
  if expired then
    t[F_STATUS] = 'expired'
    unlinkActive(base, id, t)
  end
  t[F_ENDED_AT] = math.floor(now / 1000)
  local json = cjson.encode(t)
  redis.call('HSET', leasesKey(base), id, json)
  redis.call('ZREM', dueKey(base), id)
  redis.call('ZREM', pendingKey(base), id)
  redis.call('ZADD', goneKey(base), now + retentionMs, id)
  local ev = { time = now, lease_id = id, rule = t[F_RULE], issuer = t[F_ISSUER], subject = t[F_SUBJECT],
    task_id = t[F_TASK_ID], kind = t[F_KIND], serial = t[F_SERIAL] }
  if expired then
    ev.type = 'lease.expired'
    ev.actor = 'worker'
    ev.reason = 'expired'
    ev.lag_ms = now - t[F_EXPIRES_AT] * 1000
  else
    ev.type = 'lease.revoked'
    ev.actor = (t[F_REVOKED_BY] ~= NULL) and t[F_REVOKED_BY] or 'worker'
    ev.reason = (t[F_REASON] ~= NULL) and t[F_REASON] or 'revoked'
    if t[F_SERIAL] ~= NULL then
      redis.call('ZADD', crlKey(base), t[F_EXPIRES_AT] * 1000, t[F_SERIAL] .. ':' .. tostring(t[F_REVOKED_AT]))
    end
  end
  local evJson = cjson.encode(ev)
  local sid = redis.call('XADD', auditKey(base), 'MAXLEN', '~', maxlen, '*', 'e', evJson)
  return { id, json, evJson, sid }
end
`;

/**
 * KEYS leases, due, all, act hash, tasks hash; ARGV base, id, json, expires ms, issued ms, now ms,
 * max active (-1: none), act name, task name ('' for none), audit event JSON ('' for none), audit
 * maxlen, replay ttl s (0: no replay record), budget limit (0: none), budget window ms. Then KEYS
 * the replay record, when given, and the budget counter, when given (standalone Redis: any slot).
 * Returns 0 (or the audit entry's stream id), -1 (limit), -2 (exists), -3 (proof replayed) or
 * {-4, window ms left} (over budget). The allow event goes in with the lease, so a lease never
 * exists without the decision that made it.
 */
export const CREATE = script(`${LUA_BUDGET}
local base, id, expMs = ARGV[1], ARGV[2], tonumber(ARGV[4])
local max = tonumber(ARGV[7])
local replay = tonumber(ARGV[12]) > 0 and KEYS[6] or nil
local budget = tonumber(ARGV[13])
-- The replay record: a replay is the first refusal to report, and the record stays written only
-- once nothing else refuses, so no other refusal burns the proof. Without a lease limit the claim
-- is one SET NX; with one, the count decides before the claim.
local claimed = false
if replay then
  if max < 0 then
    if not redis.call('SET', replay, '1', 'EX', ARGV[12], 'NX') then return -3 end
    claimed = true
  elseif redis.call('EXISTS', replay) == 1 then
    return -3
  end
end
-- The budget is charged after the replay check: a refused replay never uses up its subject's.
if budget > 0 then
  local left = overBudget(KEYS[replay and 7 or 6], budget, ARGV[14])
  if left then
    if claimed then redis.call('DEL', replay) end
    return { -4, left }
  end
end
if max >= 0 and ixLiveCount(base, 'act', ARGV[8], tonumber(ARGV[6])) >= max then return -1 end
if redis.call('HSETNX', KEYS[1], id, ARGV[3]) == 0 then
  if claimed then redis.call('DEL', replay) end
  return -2
end
if replay and not claimed then redis.call('SET', replay, '1', 'EX', ARGV[12]) end
redis.call('ZADD', KEYS[2], expMs, id)
redis.call('ZADD', KEYS[3], ARGV[5], id)
ixAdd(base, 'act', ARGV[8], id, expMs)
if ARGV[9] ~= '' then ixAdd(base, 'task', ARGV[9], id, expMs) end
if ARGV[10] ~= '' then
  return redis.call('XADD', auditKey(base), 'MAXLEN', '~', ARGV[11], '*', 'e', ARGV[10])
end
return 0
`);

/**
 * KEYS the budget counter; ARGV limit, window ms. Charges it on its own, where the counter cannot
 * share the lease's slot (Cluster). Returns -1 within the budget, else the window's ms left.
 */
export const CHARGE = script(`${LUA_BUDGET}
return overBudget(KEYS[1], tonumber(ARGV[1]), ARGV[2]) or -1
`);

/**
 * KEYS leases, pending; ARGV base, id, at s, reason, by, revoked ms, retention ms. Returns the new
 * JSON, or nil when the lease is not active or its expires_at is not after `at` (the sweep ends it
 * as expired), or 1 (0 when seen before) for an unreadable record, quarantined.
 */
export const REVOKE = script(`
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local t = decodeLease(raw)
if not t then return quarantine(ARGV[1], ARGV[2], tonumber(ARGV[6]), tonumber(ARGV[7])) and 1 or 0 end
-- Past expires_at the lease is already dead (introspection says so): it ends as expired, not revoked.
if t[F_STATUS] ~= 'active' or t[F_EXPIRES_AT] <= tonumber(ARGV[3]) then return false end
return revokeLease(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6])
`);

/**
 * KEYS leases; ARGV base, id, now ms, retention ms, audit maxlen. Returns an ending tuple, nil, or
 * 1 (0 when seen before) for an unreadable record, quarantined.
 */
export const FINALIZE = script(`
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local t = decodeLease(raw)
if not t then return quarantine(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])) and 1 or 0 end
if t[F_STATUS] ~= 'revoked' or t[F_ENDED_AT] ~= NULL then return false end
return finish(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
`);

/**
 * KEYS leases; ARGV base, now ms, retention ms, audit maxlen, then ids (of this shard): FINALIZE of
 * each. Returns { ending tuples, ids of unreadable records quarantined now }.
 */
export const FINALIZE_MANY = script(`
local base, now, retention, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out, bad = {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local raw = redis.call('HGET', KEYS[1], id)
  local t = raw and decodeLease(raw)
  if raw and not t then
    if quarantine(base, id, now, retention) then bad[#bad + 1] = id end
  elseif t and t[F_STATUS] == 'revoked' and t[F_ENDED_AT] == NULL then
    out[#out + 1] = finish(base, id, t, now, retention, maxlen)
  end
end
return { out, bad }
`);

/**
 * KEYS due, pending, leases; ARGV base, now ms, limit, pending-before ms, retention ms, audit
 * maxlen. Ends due leases (expired, or revoked with effects pending), then revoked leases whose
 * effects job has been missing since before pending-before. Returns { ending tuples, ids of
 * unreadable records quarantined now }; both count against the limit.
 */
export const SWEEP = script(`
local base, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local retention, maxlen = tonumber(ARGV[5]), ARGV[6]
local out, bad = {}, {}
local function endAll(ids, onlyRevoked)
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', KEYS[3], id)
    local t = raw and decodeLease(raw)
    if raw and not t then
      if quarantine(base, id, now, retention) then bad[#bad + 1] = id end
    elseif not t or t[F_ENDED_AT] ~= NULL then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    elseif t[F_STATUS] == 'revoked' or not onlyRevoked then
      out[#out + 1] = finish(base, id, t, now, retention, maxlen)
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
endAll(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit), false)
if #out + #bad < limit then
  endAll(redis.call('ZRANGE', KEYS[2], '-inf', ARGV[4], 'BYSCORE', 'LIMIT', 0, limit - #out - #bad), true)
end
return { out, bad }
`);

/**
 * KEYS the set to scan (due, or the act or tasks hash), pending, leases; ARGV base, cursor, count,
 * at s, reason, by, revoked ms, selector JSON, source ('due', 'act' or 'task'), index name,
 * retention ms, pending score, then the JSON-encoded selector values: in a scan of `due`, a plain
 * substring test on the stored JSON skips decoding leases that cannot match. The cursor is a ZSCAN
 * cursor for `due`, an ixWalk anchor ('^' for the head) for an index; '0' starts and ends both.
 * Returns { next cursor, revoked ids, ids of unreadable records quarantined now }.
 */
export const REVOKE_SCAN = script(`
local base, source, cursor, count = ARGV[1], ARGV[9], ARGV[2], tonumber(ARGV[3])
local sel = cjson.decode(ARGV[8])
local at, revokedMs, retention = tonumber(ARGV[4]), tonumber(ARGV[7]), tonumber(ARGV[11])
local ids, spilled, nextCursor = {}, false, '0'
if source == 'due' then
  local res = redis.call('ZSCAN', KEYS[1], cursor, 'COUNT', count)
  for i = 1, #res[2], 2 do ids[#ids + 1] = res[2][i] end
  nextCursor = res[1]
else
  ids, spilled = ixWalk(base, source, ARGV[10], (cursor == '0' or cursor == '^') and '' or cursor, count)
  -- A spilled set's walk ends with its first short step; a small set is read whole at once.
  if spilled and #ids == count then nextCursor = cursor == '0' and '^' or cursor end
end
-- Writes go out in a few variadic commands: one per lease cost Redis more than the lease's own work.
local revoked, bad, pending, records, drop, seen, anchor = {}, {}, {}, {}, {}, {}, nil
for _, id in ipairs(ids) do
  if not seen[id] then -- ZSCAN may return an id twice
    seen[id] = true
    local raw = redis.call('HGET', KEYS[3], id)
    -- An index entry without a record is stale: it goes.
    local gone = not raw
    if raw then
      -- The substring test only thins out a scan of every lease ('due'): an index's own leases are
      -- all decoded, so an unreadable one there is found and dropped. A record holding a lone
      -- surrogate escape reads with U+FFFD in its place, not in its raw text: decoded too.
      local hit = true
      if source == 'due' and not string.find(raw, LONE) then
        for j = 13, #ARGV do
          if not string.find(raw, ARGV[j], 1, true) then hit = false break end
        end
      end
      if hit then
        local t = decodeLease(raw)
        if not t then
          if quarantine(base, id, revokedMs, retention) then bad[#bad + 1] = id end
          gone = true
        elseif t[F_STATUS] == 'active' and t[F_EXPIRES_AT] > at and (sel.subject == nil or sel.subject == t[F_SUBJECT])
          and (sel.rule == nil or sel.rule == t[F_RULE]) and (sel.issuer == nil or sel.issuer == t[F_ISSUER] or sel.issuer == t[F_PROOF_ISS])
          and (sel.task_id == nil or sel.task_id == t[F_TASK_ID]) and id ~= sel.keep then
          records[#records + 1] = id
          records[#records + 1] = revokedJson(t, at, ARGV[5], ARGV[6])
          pending[#pending + 1] = ARGV[12]
          pending[#pending + 1] = id
          unlinkActive(base, id, t, source)
          revoked[#revoked + 1] = id
          gone = true
        end
      end
    end
    if gone then drop[#drop + 1] = id else anchor = id end
  end
end
for i = 1, #records, 1000 do -- unpack stays well under Lua's C stack limit
  redis.call('HSET', KEYS[3], unpack(records, i, math.min(i + 999, #records)))
end
-- The pending score grows step by step, so these land at the ZSET's tail: the same score for every
-- lease of a large revocation put each at a random place among the others, at ~15 µs each.
for i = 1, #pending, 1000 do
  redis.call('ZADD', KEYS[2], unpack(pending, i, math.min(i + 999, #pending)))
end
if source ~= 'due' then ixRemMany(base, source, ARGV[10], drop) end
if anchor and spilled and nextCursor ~= '0' then nextCursor = ixAnchor(base, source, ARGV[10], anchor) end
return { nextCursor, revoked, bad }
`);

/** KEYS index hash; ARGV base, kind, name. The ids in an act or task set (read only). */
export const INDEX_IDS = script(`
local ids, cursor = ixIds(ARGV[1], ARGV[2], ARGV[3], '0', 1000)
while cursor ~= '0' do
  local more
  more, cursor = ixIds(ARGV[1], ARGV[2], ARGV[3], cursor, 1000)
  for _, id in ipairs(more) do ids[#ids + 1] = id end
end
return ids
`);

/** KEYS gone, all, leases; ARGV now ms, limit. Drops leases past retention; returns how many. */
export const PRUNE = script(`
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[2], unpack(ids))
  redis.call('HDEL', KEYS[3], unpack(ids))
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return #ids
`);
