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
-- The record Node sent for an entry (ending-plan.ts patchedRecord): '#<n>' stands for \`was\`, the
-- active record as read and checked unchanged, with its status set to \`status\`, n nulls and then
-- \`tail\` appended (9 is the length of '"active",'). Any other value is the record itself.
local function recordOf(spec, was, status, tail)
  if string.byte(spec, 1) ~= 35 then return spec end
  local at = string.find(was, '"active",', 1, true)
  return string.sub(was, 1, at - 1) .. '"' .. status .. '",' .. string.sub(was, at + 9, -2)
    .. string.rep(',null', tonumber(string.sub(spec, 2))) .. tail
end
local function isNum(v) return type(v) == 'number' and v == v and v > -math.huge and v < math.huge end
local function isList(v)
  if type(v) ~= 'table' then return false end
  for _, x in pairs(v) do if type(x) ~= 'string' then return false end end
  return true
end
local STATUSES = { active = true, revoked = true, expired = true }
local function optStr(v) return v == NULL or type(v) == 'string' end
local function optNum(v) return v == NULL or isNum(v) end
-- The shape every script relies on (and cjson.encode can write back). As strict as Node's
-- decodeLease or looser, never stricter: Lua must read what Node may call active. Written out
-- field by field: it runs for every lease a sweep ends, and loops over tables cost 3x as much.
local function wellShaped(t)
  if type(t) ~= 'table' then return false end
  for i = 1, NFIELDS do if t[i] == nil then t[i] = NULL end end
  local kind = t[F_KIND]
  return STATUSES[t[F_STATUS]] == true and (kind == 'jwt' or kind == 'x509')
    and type(t[F_RULE]) == 'string' and type(t[F_ISSUER]) == 'string' and type(t[F_SUBJECT]) == 'string'
    and type(t[F_PROOF_ISS]) == 'string' and isNum(t[F_ISSUED_MS]) and isNum(t[F_EXPIRES_AT])
    and optStr(t[F_TASK_ID]) and optStr(t[F_SERIAL]) and optStr(t[F_PROOF_SUB]) and optStr(t[F_PROOF_JTI])
    and optStr(t[F_CLIENT_ADDR]) and optStr(t[F_REASON]) and optStr(t[F_REVOKED_BY])
    and optNum(t[F_REVOKED_AT]) and optNum(t[F_ENDED_AT]) and isList(t[F_SCOPES]) and isList(t[F_AUDIENCES])
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
local function unlinkLater(batch, kind, name, id)
  local b = batch[kind]
  local ids = b.idsOf[name]
  if not ids then
    ids = {}
    b.idsOf[name] = ids
    b.names[#b.names + 1] = name
  end
  ids[#ids + 1] = id
end
-- An expiry leaves its index entries where they are (each carries its expiry, and every reader of
-- an index already meets entries of leases expired but not yet ended): the set's name goes into
-- the shard's lapsed set, once a script, and PRUNE drops the expired entries after the burst.
local function pruneLater(batch, kind, name)
  local b = batch.lapsed[kind]
  if b.seen[name] then return end
  b.seen[name] = true
  b.names[#b.names + 1] = name
end
-- \`walked\`: the kind of index a revocation walks, which removes its ids in one go itself. With
-- \`batch\`, the removals wait for flush() (ixRemMany).
local function unlinkActive(base, id, t, walked, batch)
  local act = walked ~= 'act' and actName(t[F_RULE], t[F_SUBJECT]) or nil
  local task = (t[F_TASK_ID] ~= NULL and walked ~= 'task') and taskName(t[F_TASK_ID]) or nil
  if batch then
    if act then unlinkLater(batch, 'act', act, id) end
    if task then unlinkLater(batch, 'task', task, id) end
  else
    if act then ixRem(base, 'act', act, id) end
    if task then ixRem(base, 'task', task, id) end
  end
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
-- With \`batch\` (from newBatch), the schedule updates are left for flush() to make in one call each.
local function finish(base, id, t, now, maxlen, batch)
  local expired = t[F_STATUS] == 'active'
  t[F_ENDED_AT] = math.floor(now / 1000)
  if expired then
    t[F_STATUS] = 'expired'
    unlinkActive(base, id, t, nil, batch)
  end
  local json = cjson.encode(t)
  if batch then
    batch.done[id] = true
    batch.records[#batch.records + 1] = id
    batch.records[#batch.records + 1] = json
    batch.due[#batch.due + 1] = id
    if not expired then batch.pending[#batch.pending + 1] = id end
    batch.ended[#batch.ended + 1] = now
    batch.ended[#batch.ended + 1] = id
  else
    redis.call('HSET', leasesKey(base), id, json)
    redis.call('ZREM', dueKey(base), id)
    redis.call('ZREM', pendingKey(base), id)
    redis.call('RPUSH', endedKey(base), now, id)
  end
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
-- What a script's endings leave to flush(): \`done\` marks the ids ended in this script, whose
-- records are written only at the flush.
local function newBatch()
  return { done = {}, records = {}, due = {}, pending = {}, ended = {},
    act = { names = {}, idsOf = {} }, task = { names = {}, idsOf = {} },
    lapsed = { act = { names = {}, seen = {} }, task = { names = {}, seen = {} } } }
end
local function flush(base, batch)
  each1000('HSET', leasesKey(base), batch.records)
  ixRemMany(base, 'act', batch.act.names, batch.act.idsOf)
  ixRemMany(base, 'task', batch.task.names, batch.task.idsOf)
  each1000('ZREM', dueKey(base), batch.due)
  each1000('ZREM', pendingKey(base), batch.pending)
  each1000('RPUSH', endedKey(base), batch.ended)
  for _, kind in ipairs({ 'act', 'task' }) do
    local names = batch.lapsed[kind].names
    if #names > 0 then each1000('SADD', lapsedKey(base, kind), names) end
  end
end
`;

/**
 * KEYS leases, due, all, act hash, tasks hash; ARGV base, id, json, expires ms, issued ms, now ms,
 * max active (-1: none), act name, task name ('' for none), audit event JSON ('' for none), audit
 * maxlen, replay ttl s (0: no replay record), budget limit (0: none), budget window ms, and the
 * base of the pair's legacy shard whose active leases count too ('' for none; keys.ts
 * legacyShardOf: one Redis server only). Then KEYS the replay record, when given, and the budget
 * counter, when given (on Cluster both in the lease's slot).
 * Returns 0 (or the audit entry's stream id), -1 (limit), -2 (exists), -3 (proof replayed) or
 * {-4, window ms left} (over budget). The allow event goes in with the lease, so a lease never
 * exists without the decision that made it.
 */
export const CREATE = script(`${LUA_BUDGET}
local base, id, expMs = ARGV[1], ARGV[2], tonumber(ARGV[4])
local max = tonumber(ARGV[7])
local replay = tonumber(ARGV[12]) > 0 and KEYS[6] or nil
local budget = tonumber(ARGV[13])
local legacyBase = ARGV[15]
-- The replay record: a replay is the first refusal to report, and the record stays written only
-- once nothing else refuses, so no other refusal burns the proof. It holds the lease's id, so that
-- RELEASE_PROOF frees it only for the lease that claimed it. Without a lease limit the claim
-- is one SET NX; with one, the count decides before the claim.
-- A record naming this very lease is a resend of this create, whose first send wrote it (ioredis
-- Cluster sends a command again when its node's connection closed): -2, as for an existing id.
local claimed = false
if replay then
  if max < 0 and redis.call('SET', replay, id, 'EX', ARGV[12], 'NX') then
    claimed = true
  else
    local holder = redis.call('GET', replay)
    if holder == id then return -2 end
    if holder then return -3 end
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
if max >= 0 then
  local n = ixLiveCount(base, 'act', ARGV[8], tonumber(ARGV[6]))
  if legacyBase ~= '' then n = n + ixLiveCount(legacyBase, 'act', ARGV[8], tonumber(ARGV[6])) end
  if n >= max then return -1 end
end
if redis.call('HSETNX', KEYS[1], id, ARGV[3]) == 0 then
  if claimed then redis.call('DEL', replay) end
  return -2
end
if replay and not claimed then redis.call('SET', replay, id, 'EX', ARGV[12]) end
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
return finish(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), ARGV[5])
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
    out[#out + 1] = finish(base, id, t, now, maxlen)
  end
end
return { out, bad }
`);

/**
 * KEYS the replay record; ARGV the lease id. Frees a single-use proof claimed by that lease, and
 * only then: a later exchange of the proof (after the record was freed once) holds it with its own
 * lease. Returns 1 when freed, else 0.
 */
export const RELEASE_PROOF = scriptOf(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * KEYS due, pending, leases; ARGV now ms, limit, pending-before ms. Read only: what a sweep may end
 * now, for Node to work out the endings (APPLY_ENDINGS writes them): the due leases, then revoked
 * ones whose effects job has been missing since pending-before, `limit` in all. Returns { due ids,
 * their records, pending ids, their records }, '' for a missing record.
 */
export const DUE_RECORDS = scriptOf(`
local function read(ids)
  if #ids == 0 then return {} end
  local raws = redis.call('HMGET', KEYS[3], unpack(ids))
  for i = 1, #ids do if not raws[i] then raws[i] = '' end end
  return raws
end
local limit = tonumber(ARGV[2])
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, limit)
local pending = {}
if #due < limit then
  pending = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, limit - #due)
end
return { due, read(due), pending, read(pending) }
`);

/**
 * KEYS due, leases; ARGV after ms (exclusive), until ms, offset, count. Read only: leases due in
 * (after, until], from the offset-th on in the schedule's order, for the sweep to work out their
 * expiries before they are due (endings-ahead.ts). Returns { ids, their records ('' for a missing
 * one), their due times }.
 */
export const UPCOMING_RECORDS = scriptOf(`
local r = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', ARGV[3], ARGV[4], 'WITHSCORES')
local ids, scores = {}, {}
for i = 1, #r, 2 do
  ids[#ids + 1] = r[i]
  scores[#scores + 1] = r[i + 1]
end
if #ids == 0 then return { {}, {}, {} } end
local raws = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #ids do if not raws[i] then raws[i] = '' end end
return { ids, raws, scores }
`);

/**
 * KEYS due, pending, leases; ARGV base, now ms, retention ms (unused: an ended lease is retained
 * by when it ended), audit maxlen, then 9 per entry: id, op, the record as DUE_RECORDS read it, the
 * ended record, its audit event JSON, act name, task name ('' for none), CRL member ('' for none),
 * CRL score. ops: 'x' ends an active lease as expired (its index entries left for PRUNE), 'r' ends
 * a revoked one (CRL entry), 'd' drops the id from due and pending, 'p' from pending. An entry is
 * applied only while its record is still exactly as read ('' for none), so of two sweeps, or a
 * sweep and a finalize, racing on a lease, one ends it. Node works out the records and events:
 * decoding and encoding JSON in Lua was most of an ending's cost to Redis, which every exchange
 * waits on. Returns per entry its audit stream id, '' for none or skipped.
 */
export const APPLY_ENDINGS = script(`
local base, now, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local W, FIRST = 9, 5
-- Made once: a number passed to redis.call is formatted anew each time.
local endedAt = string.format('%d', now)
local audit = auditKey(base)
local n = (#ARGV - FIRST + 1) / W
local ids, out = {}, {}
for i = 0, n - 1 do ids[i + 1] = ARGV[FIRST + i * W] end
local cur = n > 0 and redis.call('HMGET', KEYS[3], unpack(ids)) or {}
local batch = newBatch()
for i = 0, n - 1 do
  local a = FIRST + i * W
  local id, op = ARGV[a], ARGV[a + 1]
  local sid = ''
  if (cur[i + 1] or '') == ARGV[a + 2] then
    if op == 'x' or op == 'r' then
      batch.records[#batch.records + 1] = id
      batch.records[#batch.records + 1] = ARGV[a + 3]
      batch.due[#batch.due + 1] = id
      batch.ended[#batch.ended + 1] = endedAt
      batch.ended[#batch.ended + 1] = id
      if op == 'x' then
        pruneLater(batch, 'act', ARGV[a + 5])
        if ARGV[a + 6] ~= '' then pruneLater(batch, 'task', ARGV[a + 6]) end
      else
        batch.pending[#batch.pending + 1] = id
        if ARGV[a + 7] ~= '' then redis.call('ZADD', crlKey(base), ARGV[a + 8], ARGV[a + 7]) end
      end
      sid = redis.call('XADD', audit, '*', 'e', ARGV[a + 4])
    elseif op == 'd' then
      batch.due[#batch.due + 1] = id
      batch.pending[#batch.pending + 1] = id
    elseif op == 'p' then
      batch.pending[#batch.pending + 1] = id
    end
  end
  out[i + 1] = sid
end
flush(base, batch)
-- Trimmed once for the script's events, not as each is added: the cap is approximate either way.
if n > 0 then redis.call('XTRIM', audit, 'MAXLEN', '~', maxlen) end
return out
`);

/**
 * KEYS due, pending, leases; ARGV base, now ms, retention ms, audit maxlen, how many due ids
 * follow, the due ids, then the pending ids. The endings Node leaves to Lua: records it cannot read,
 * or whose text may not survive the trip through a JS string (escapes, invalid UTF-8). Lua reads
 * them as finish() always has, and quarantines what it cannot. Returns { ending tuples, ids of
 * unreadable records quarantined now }.
 */
export const END_IDS = script(`
local base, now = ARGV[1], tonumber(ARGV[2])
local retention, maxlen = tonumber(ARGV[3]), ARGV[4]
local ndue = tonumber(ARGV[5])
local out, bad = {}, {}
local batch = newBatch()
local function endAll(ids, onlyRevoked)
  if #ids == 0 then return end
  local raws = redis.call('HMGET', KEYS[3], unpack(ids))
  for i, id in ipairs(ids) do
    local raw = raws[i] or nil
    local t = raw and not batch.done[id] and decodeLease(raw)
    if batch.done[id] then
      batch.pending[#batch.pending + 1] = id
    elseif raw and not t then
      if quarantine(base, id, now, retention) then bad[#bad + 1] = id end
    elseif not t or t[F_ENDED_AT] ~= NULL then
      batch.due[#batch.due + 1] = id
      batch.pending[#batch.pending + 1] = id
    elseif t[F_STATUS] == 'revoked' or not onlyRevoked then
      out[#out + 1] = finish(base, id, t, now, maxlen, batch)
    else
      batch.pending[#batch.pending + 1] = id
    end
  end
end
local due, pending = {}, {}
for i = 6, #ARGV do
  if i < 6 + ndue then due[#due + 1] = ARGV[i] else pending[#pending + 1] = ARGV[i] end
end
endAll(due, false)
endAll(pending, true)
flush(base, batch)
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
      -- surrogate escape reads with U+FFFD in its place, not in its raw text: decoded too. So is
      -- one not even in a record's outer shape, so that it is reported as unreadable, not passed over.
      local hit = true
      if source == 'due' and string.byte(raw, -1) == 93 and (string.find(raw, '^%["jwt","') or string.find(raw, '^%["x509","'))
        and not string.find(raw, LONE) then
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
if source ~= 'due' then ixRemMany(base, source, { ARGV[10] }, { [ARGV[10]] = drop }) end
if anchor and spilled and nextCursor ~= '0' then nextCursor = ixAnchor(base, source, ARGV[10], anchor) end
return { nextCursor, revoked, bad }
`);

/**
 * KEYS index hash, leases; ARGV base, kind, name, cursor ('0' or '^' for the head, else an
 * anchor), count. Read only: one step of a revocation's walk over an act or task set (ixWalk), for
 * Node to work out the flips (WALK_APPLY writes them). Returns { ids, their records ('' for none),
 * 1 when the set is spilled }.
 */
export const WALK_READ = script(`
local cursor = ARGV[4]
local ids, spilled = ixWalk(ARGV[1], ARGV[2], ARGV[3], (cursor == '0' or cursor == '^') and '' or cursor, tonumber(ARGV[5]))
local raws = {}
if #ids > 0 then
  raws = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do if not raws[i] then raws[i] = '' end end
end
return { ids, raws, spilled and 1 or 0 }
`);

/**
 * KEYS pending, leases; ARGV base, kind, name, pending score, cursor the step was read at, 1 when
 * the walk goes on past this step, the tail of a patched revoked record (revocation-plan.ts
 * revokedTail), then 5 per entry in WALK_READ's order: id, op ('r' revoke, 's' drop a stale entry,
 * 'k' keep), the record as read ('' for none), the revoked record or its stand-in (recordOf), the
 * lease's name in the other index kind ('' for none). An 'r' or 's' entry is applied only while its record
 * is still exactly as read: the record written, the lease put in pending and out of both indexes;
 * otherwise it is kept. As REVOKE_SCAN, the next step starts after the last kept entry. Returns
 * { per entry 1 when applied else 0, the next cursor ('0': done) }.
 */
export const WALK_APPLY = script(`
local base, kind, name, score, cursor, tail = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]
local FIRST, W = 8, 5
local n = (#ARGV - FIRST + 1) / W
local ids, out = {}, {}
for i = 0, n - 1 do ids[i + 1] = ARGV[FIRST + i * W] end
local cur = n > 0 and redis.call('HMGET', KEYS[2], unpack(ids)) or {}
local other = kind == 'act' and 'task' or 'act'
local batch = newBatch()
local records, pending, drop, kept = {}, {}, {}, {}
for i = 0, n - 1 do
  local a = FIRST + i * W
  local id, op = ARGV[a], ARGV[a + 1]
  local applied = 0
  if op ~= 'k' and (cur[i + 1] or '') == ARGV[a + 2] then
    applied = 1
    drop[#drop + 1] = id
    if op == 'r' then
      records[#records + 1] = id
      records[#records + 1] = recordOf(ARGV[a + 3], ARGV[a + 2], 'revoked', tail)
      pending[#pending + 1] = score
      pending[#pending + 1] = id
      if ARGV[a + 4] ~= '' then unlinkLater(batch, other, ARGV[a + 4], id) end
    end
  else
    kept[#kept + 1] = id
  end
  out[i + 1] = applied
end
each1000('HSET', KEYS[2], records)
each1000('ZADD', KEYS[1], pending)
ixRemMany(base, kind, { name }, { [name] = drop })
ixRemMany(base, other, batch[other].names, batch[other].idsOf)
-- The anchor is the last kept entry still in the set: one whose record changed may have left it.
local nextCursor = '0'
if ARGV[6] == '1' then
  nextCursor = cursor == '0' and '^' or cursor
  local z = spilledKey(base, kind, name)
  for i = #kept, 1, -1 do
    local sc = redis.call('ZSCORE', z, kept[i])
    if sc then
      nextCursor = sc .. ' ' .. kept[i]
      break
    end
  end
end
return { out, nextCursor }
`);

/** KEYS index hash; ARGV base, kind, name, now ms. The ids of an act or task set's leases not expired by then (read only). */
export const INDEX_IDS = script(`
return ixLiveIds(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
`);

/**
 * KEYS ended, gone, all, leases, lapsed act names, lapsed task names; ARGV ended-before ms, now ms,
 * limit, base, sets. Drops up to `limit` leases past retention: from the head of the `ended` list
 * those that ended at or before the first argument, then from `gone` those whose drop-after score
 * has passed. Then drops the expired entries of up to `sets` act and as many task sets that an
 * expiry left them in (a few calls a set: fewer than leases, so the script stays short).
 * Returns { leases dropped, 1 when there may be more sets to prune else 0 }.
 */
export const PRUNE = script(`
local limit, now, base, sets = tonumber(ARGV[3]), tonumber(ARGV[2]), ARGV[4], tonumber(ARGV[5])
local function drop(ids)
  redis.call('ZREM', KEYS[3], unpack(ids))
  redis.call('HDEL', KEYS[4], unpack(ids))
end
local n, before = 0, tonumber(ARGV[1])
local head = redis.call('LINDEX', KEYS[1], 0)
if head and tonumber(head) <= before then
  local entries = redis.call('LRANGE', KEYS[1], 0, 2 * limit - 1)
  local ids = {}
  for i = 1, #entries - 1, 2 do
    if tonumber(entries[i]) > before then break end
    ids[#ids + 1] = entries[i + 1]
  end
  redis.call('LTRIM', KEYS[1], 2 * #ids, -1)
  drop(ids)
  n = #ids
end
if n < limit then
  local ids = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, limit - n)
  if #ids > 0 then
    drop(ids)
    redis.call('ZREM', KEYS[2], unpack(ids))
  end
  n = n + #ids
end
local more = 0
for k, kind in ipairs({ 'act', 'task' }) do
  local names = redis.call('SPOP', KEYS[4 + k], sets)
  for _, name in ipairs(names) do ixLiveCount(base, kind, name, now) end
  if #names == sets then more = 1 end
end
return { n, more }
`);
