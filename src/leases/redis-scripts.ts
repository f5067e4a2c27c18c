import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { LUA_FIELDS } from './lease-codec.ts';
import { LUA_KEYS, LUA_LIST_MEMBER } from './redis-keys.ts';

/** A standalone, Sentinel or Cluster client. Scripts touch the keys of one shard (one slot) only. */
export type RedisClient = Redis | Cluster;

export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

const script = (body: string, prelude = true): LuaScript => {
  const lua = prelude ? PRELUDE + body : body;
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
};

/** One EVALSHA round trip; the script is sent (and cached by Redis) only after NOSCRIPT. */
export async function runScript(redis: RedisClient, s: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return await redis.eval(s.lua, keys.length, ...keys, ...args);
  }
}

// Shared by the scripts below. `finish` is the one place an ending happens: status, ended_at,
// schedule and index removal, retention, CRL entry and the audit event, all in one atomic step.
const PRELUDE = `${LUA_FIELDS}${LUA_KEYS}${LUA_LIST_MEMBER}
local NULL = cjson.null
local function decodeLease(raw)
  local t = cjson.decode(raw)
  for i = 1, NFIELDS do if t[i] == nil then t[i] = NULL end end
  return t
end
local function unlinkActive(base, id, t)
  redis.call('ZREM', actKey(base, t[F_RULE], t[F_SUBJECT]), id)
  if t[F_TASK_ID] ~= NULL then redis.call('ZREM', taskKey(base, t[F_TASK_ID]), id) end
end
local function revokeLease(base, id, t, at, reason, by, revokedMs)
  t[F_STATUS] = 'revoked'
  t[F_REVOKED_AT] = at
  t[F_REASON] = reason
  t[F_REVOKED_BY] = by
  local json = cjson.encode(t)
  redis.call('SET', leaseKey(base, id), json)
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
  local dropAt = now + retentionMs
  redis.call('SET', leaseKey(base, id), json, 'PXAT', dropAt)
  redis.call('ZREM', dueKey(base), id)
  redis.call('ZREM', pendingKey(base), id)
  redis.call('ZADD', goneKey(base), dropAt, listMember(t[F_ISSUED_MS], id))
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
 * KEYS lease, due, all, act, task; ARGV json, expires ms, list member, now ms, max active (-1: none),
 * id, has task (1/0). Returns 0, -1 (limit reached) or -2 (id exists).
 */
export const CREATE = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -2 end
local max = tonumber(ARGV[5])
if max >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])
  if redis.call('ZCARD', KEYS[4]) >= max then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[6])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[6])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[5], ARGV[2], ARGV[6]) end
return 0
`, false);

/** KEYS lease, pending; ARGV base, id, at s, reason, by, revoked ms. Returns the new JSON or nil. */
export const REVOKE = script(`
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local t = decodeLease(raw)
if t[F_STATUS] ~= 'active' then return false end
return revokeLease(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6])
`);

/** KEYS lease; ARGV base, id, now ms, retention ms, audit maxlen. Returns an ending tuple or nil. */
export const FINALIZE = script(`
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local t = decodeLease(raw)
if t[F_STATUS] ~= 'revoked' or t[F_ENDED_AT] ~= NULL then return false end
return finish(ARGV[1], ARGV[2], t, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
`);

/**
 * KEYS due, pending; ARGV base, now ms, limit, pending-before ms, retention ms, audit maxlen.
 * Ends due leases (expired, or revoked whose effects are pending), then revoked leases whose
 * effects job has been missing since before pending-before. Returns ending tuples.
 */
export const SWEEP = script(`
local base, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local retention, maxlen = tonumber(ARGV[5]), ARGV[6]
local out = {}
local function endAll(ids, onlyRevoked)
  for _, id in ipairs(ids) do
    local raw = redis.call('GET', leaseKey(base, id))
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
 * KEYS index to scan (due, a task index or an act index), pending; ARGV base, scan cursor, count,
 * at s, reason, by, revoked ms, selector JSON, "1" when scanning a task/act index (stale members
 * are dropped), then JSON-encoded selector values: a plain substring test on the stored JSON that
 * skips decoding leases that cannot match. Returns { next cursor, revoked ids... }.
 */
export const REVOKE_SCAN = script(`
local base = ARGV[1]
local sel = cjson.decode(ARGV[8])
local res = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local out = { res[1] }
local m = res[2]
for i = 1, #m, 2 do
  local id = m[i]
  local raw = redis.call('GET', leaseKey(base, id))
  if raw then
    local hit = true
    for j = 10, #ARGV do
      if not string.find(raw, ARGV[j], 1, true) then hit = false break end
    end
    if hit then
      local t = decodeLease(raw)
      if t[F_STATUS] == 'active' and (sel.subject == nil or sel.subject == t[F_SUBJECT])
        and (sel.rule == nil or sel.rule == t[F_RULE]) and (sel.issuer == nil or sel.issuer == t[F_ISSUER])
        and (sel.task_id == nil or sel.task_id == t[F_TASK_ID]) then
        revokeLease(base, id, t, tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])
        out[#out + 1] = id
      end
    end
  elseif ARGV[9] == '1' then
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`);

/** KEYS gone, all; ARGV base, now ms, limit. Drops leases past retention; returns how many. */
export const PRUNE = script(`
local ms = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(ms) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('DEL', leaseKey(ARGV[1], string.sub(m, 11)))
end
if #ms > 0 then redis.call('ZREM', KEYS[1], unpack(ms)) end
return #ms
`);
