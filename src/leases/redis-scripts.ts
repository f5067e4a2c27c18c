import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { LUA_FIELDS } from './lease-codec.ts';
import { LUA_INDEX } from './redis-index-lua.ts';
import { LUA_KEYS } from './redis-keys.ts';
import { corkUntilNextTurn } from './redis-write-batching.ts';
import { NO_WAIT, writeThenWait, type Durability } from '../redis/replicated-write.ts';

/** A standalone, Sentinel or Cluster client. Scripts touch the keys of one shard (one slot) only. */
export type RedisClient = Redis | Cluster;

export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

const script = (body: string): LuaScript => {
  const lua = PRELUDE + body;
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
};

/**
 * One EVALSHA round trip; the script is sent (and cached by Redis) only after NOSCRIPT. The scripts
 * run in one turn of the event loop leave in one write (redis-write-batching.ts). With
 * `durability.replicas` > 0 the script and a WAIT go in one pipeline (replicated-write.ts).
 */
export async function runScript(redis: RedisClient, s: LuaScript, keys: string[], args: (string | number)[], durability: Durability = NO_WAIT): Promise<unknown> {
  corkUntilNextTurn(redis);
  if (durability.replicas > 0) {
    return writeThenWait(redis, durability, (p) => p.evalsha(s.sha, keys.length, ...keys, ...args), (err) =>
      err.message.startsWith('NOSCRIPT') ? (p) => p.eval(s.lua, keys.length, ...keys, ...args) : null,
    );
  }
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return await redis.eval(s.lua, keys.length, ...keys, ...args);
  }
}

// Shared by the scripts below. `finish` is the one place an ending happens: status, ended_at,
// schedule and index removal, retention, CRL entry and the audit event, in one atomic step.
const PRELUDE = `${LUA_FIELDS}${LUA_KEYS}${LUA_INDEX}
local NULL = cjson.null
local function decodeLease(raw)
  local t = cjson.decode(raw)
  for i = 1, NFIELDS do if t[i] == nil then t[i] = NULL end end
  return t
end
local function unlinkActive(base, id, t)
  ixRem(base, 'act', actName(t[F_RULE], t[F_SUBJECT]), id)
  if t[F_TASK_ID] ~= NULL then ixRem(base, 'task', taskName(t[F_TASK_ID]), id) end
end
-- With \`batch\`, the pending entry is left for the caller to add in one ZADD with the others.
local function revokeLease(base, id, t, at, reason, by, revokedMs, batch)
  t[F_STATUS] = 'revoked'
  t[F_REVOKED_AT] = at
  t[F_REASON] = reason
  t[F_REVOKED_BY] = by
  local json = cjson.encode(t)
  redis.call('HSET', leasesKey(base), id, json)
  if batch then
    batch[#batch + 1] = revokedMs
    batch[#batch + 1] = id
  else
    redis.call('ZADD', pendingKey(base), revokedMs, id)
  end
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
 * maxlen, replay ttl s; optional KEYS[6] the replay record (standalone Redis: any slot is fine).
 * Returns 0 (or the audit entry's stream id), -1 (limit), -2 (exists) or -3 (proof replayed). The
 * allow event goes in with the lease, so a lease never exists without the decision that made it.
 */
export const CREATE = script(`
local base, id, expMs = ARGV[1], ARGV[2], tonumber(ARGV[4])
local max = tonumber(ARGV[7])
-- KEYS[6], when given, is the proof's replay record: a replay is the first refusal to report, and
-- the record stays written only once nothing else refuses, so no other refusal burns the proof.
-- Without a lease limit the claim is one SET NX; with one, the count decides before the claim.
local claimed = false
if KEYS[6] then
  if max < 0 then
    if not redis.call('SET', KEYS[6], '1', 'EX', ARGV[12], 'NX') then return -3 end
    claimed = true
  elseif redis.call('EXISTS', KEYS[6]) == 1 then
    return -3
  end
end
if max >= 0 and ixLiveCount(base, 'act', ARGV[8], tonumber(ARGV[6])) >= max then return -1 end
if redis.call('HSETNX', KEYS[1], id, ARGV[3]) == 0 then
  if claimed then redis.call('DEL', KEYS[6]) end
  return -2
end
if KEYS[6] and not claimed then redis.call('SET', KEYS[6], '1', 'EX', ARGV[12]) end
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
 * KEYS leases, pending; ARGV base, id, at s, reason, by, revoked ms. Returns the new JSON, or nil
 * when the lease is not active or its expires_at is not after `at` (the sweep ends it as expired).
 */
export const REVOKE = script(`
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local t = decodeLease(raw)
-- Past expires_at the lease is already dead (introspection says so): it ends as expired, not revoked.
if t[F_STATUS] ~= 'active' or t[F_EXPIRES_AT] <= tonumber(ARGV[3]) then return false end
return revokeLease(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6])
`);

/** KEYS leases; ARGV base, id, now ms, retention ms, audit maxlen. Returns an ending tuple or nil. */
export const FINALIZE = script(`
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local t = decodeLease(raw)
if t[F_STATUS] ~= 'revoked' or t[F_ENDED_AT] ~= NULL then return false end
return finish(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
`);

/**
 * KEYS due, pending, leases; ARGV base, now ms, limit, pending-before ms, retention ms, audit
 * maxlen. Ends due leases (expired, or revoked with effects pending), then revoked leases whose
 * effects job has been missing since before pending-before. Returns ending tuples.
 */
export const SWEEP = script(`
local base, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local retention, maxlen = tonumber(ARGV[5]), ARGV[6]
local out = {}
local function endAll(ids, onlyRevoked)
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', KEYS[3], id)
    local t = raw and decodeLease(raw)
    if not t or t[F_ENDED_AT] ~= NULL then
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
if #out < limit then
  endAll(redis.call('ZRANGE', KEYS[2], '-inf', ARGV[4], 'BYSCORE', 'LIMIT', 0, limit - #out), true)
end
return out
`);

/**
 * KEYS the set to scan (due, or the act or tasks hash), pending, leases; ARGV base, cursor, count,
 * at s, reason, by, revoked ms, selector JSON, source ('due', 'act' or 'task'), index name, then
 * the JSON-encoded selector values: a plain substring test on the stored JSON skips decoding
 * leases that cannot match. Returns { next cursor, revoked ids... }.
 */
export const REVOKE_SCAN = script(`
local base, source = ARGV[1], ARGV[9]
local sel = cjson.decode(ARGV[8])
local ids, nextCursor = {}, '0'
if source == 'due' then
  local res = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
  for i = 1, #res[2], 2 do ids[#ids + 1] = res[2][i] end
  nextCursor = res[1]
else
  ids, nextCursor = ixIds(base, source, ARGV[10], ARGV[2], ARGV[3])
end
local out, pending = { nextCursor }, {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[3], id)
  if raw then
    local hit = true
    for j = 11, #ARGV do
      if not string.find(raw, ARGV[j], 1, true) then hit = false break end
    end
    if hit then
      local t = decodeLease(raw)
      if t[F_STATUS] == 'active' and t[F_EXPIRES_AT] > tonumber(ARGV[4]) and (sel.subject == nil or sel.subject == t[F_SUBJECT])
        and (sel.rule == nil or sel.rule == t[F_RULE]) and (sel.issuer == nil or sel.issuer == t[F_ISSUER] or sel.issuer == t[F_PROOF_ISS])
        and (sel.task_id == nil or sel.task_id == t[F_TASK_ID]) then
        revokeLease(base, id, t, tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], pending)
        out[#out + 1] = id
      end
    end
  elseif source ~= 'due' then
    ixRem(base, source, ARGV[10], id)
  end
end
for i = 1, #pending, 1000 do -- unpack stays well under Lua's C stack limit
  redis.call('ZADD', KEYS[2], unpack(pending, i, math.min(i + 999, #pending)))
end
return out
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
