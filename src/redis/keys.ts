/**
 * Every Redis key Leash uses is built here, in TypeScript for calls
 * made from Node and in LUA_KEYS for keys a script derives from a lease it has just read.
 *
 * Layout under the prefix (default `leash:`), per shard N in 0..15. `{sN}` is a Redis Cluster
 * hash tag: all keys of a shard share one slot, and each Lua script touches a single shard. A lease
 * lives in its subject's shard (shardOfSubject), which its id carries.
 *   {sN}:leases        HASH id -> compact JSON of the lease (lease-codec.ts)
 *   {sN}:due           ZSET id -> expires_at ms: active and revoked-not-finalized leases
 *   {sN}:all           ZSET id -> issued ms: listing order (score, then id), newest first
 *   {sN}:act           HASH <pair digest> -> small set of the active leases of a rule and subject
 *   {sN}:tasks         HASH <task digest> -> small set of the active leases of a task (in the shard)
 *   {sN}:act:<digest>  ZSET id -> expires_at ms: the same set once it outgrew a hash field
 *   {sN}:task:<digest> ZSET id -> expires_at ms: likewise for a task
 *   {sN}:pending       ZSET id -> revoked ms: revoked, effects not run yet
 *   {sN}:crl           ZSET `<serial>:<revoked_at>` -> expires_at ms
 *   {sN}:ended         LIST of pairs <ended ms>, <id> in the order leases ended: kept for the
 *                      retention period, then dropped from the head (an ending's push costs Redis a
 *                      few hundred instructions, a sorted-set insert thousands)
 *   {sN}:lapsed:act    SET of act set names that may hold entries of expired leases: an expiry
 *   {sN}:lapsed:task   leaves its index entries for the next sweep's PRUNE to drop by time
 *                      (and likewise for task sets), not in the burst
 *   {sN}:gone          ZSET id -> drop-after ms: quarantined records, and leases that ended before
 *                      `ended` existed (pruned by score, as they always were)
 *   {sN}:audit         STREAM of the audit events that issued or ended credentials, field `e` = JSON
 *   {sN}:replay:<key>  STRING, on Redis Cluster: a used proof's replay record, in its subject's shard
 *   {sN}:rl:<counter>  STRING, on Redis Cluster: a subject's exchange budget, in its shard
 * and, per refusal stream N in 0..15, under a hash tag of its own (never a lease shard's slot):
 *   {dN}:denials       STREAM of refusals (`exchange.denied`), capped apart so they never evict the above
 * Bodies and small indexes are hash fields, not keys of their own: a top-level key costs about
 * 50 bytes more, and the budget is 1 KB per active lease (see test/redis/leases-redis-memory).
 */
import * as nodeCrypto from 'node:crypto';

export const DEFAULT_PREFIX = 'leash:';

/** Leases are spread over this many Redis Cluster hash slots (shard tags `{s0}`..`{s15}`). */
export const SHARD_COUNT = 16;

/**
 * The shard of a subject: FNV-1a over its UTF-8 bytes. Every lease of a subject lives there, so the
 * per-(rule, subject) active index counted for `max_active_leases` shares one hash slot with the
 * leases it counts, and so does the replay record of the proof (whose `sub` is the lease's
 * subject): on Cluster the exchange claims it inside the lease's own script.
 */
export function shardOfSubject(subject: string): number {
  return shardOfString(subject);
}

/**
 * Where leases of a (rule, subject) pair were put before they went by subject alone. Such leases
 * keep their shard, which their id carries, until they end. Listing and revocation by pair look
 * there too, and so does the active count for `max_active_leases`, except on Cluster, where the
 * lease script cannot read another slot.
 */
export function legacyShardOf(rule: string, subject: string): number {
  return fnv1a(`${rule}\0${subject}`) % SHARD_COUNT;
}

/** Every shard a (rule, subject) pair's leases may be in: its subject's, then the legacy one. */
export function shardsOfPair(rule: string, subject: string): number[] {
  const now = shardOfSubject(subject);
  const before = legacyShardOf(rule, subject);
  return before === now ? [now] : [now, before];
}

/** A shard for records keyed by one string (audit events without a lease). */
export function shardOfString(value: string): number {
  return fnv1a(value) % SHARD_COUNT;
}

// 16 bytes in base64url: 21 full characters and a last one that carries 2 bits (A, Q, g or w).
const LEASE_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/**
 * Whether `id` has the shape of a lease id (anything else is unknown, never an error). A lease id
 * (newLeaseId, leases/lease-id.ts) carries its shard, so its keys are found from the id alone.
 */
export const isLeaseId = (id: string): boolean => LEASE_ID.test(id);

/** The shard encoded in a lease id; the caller checks isLeaseId first. */
export function shardOfLeaseId(id: string): number {
  // byte 0 = 6 bits of char 0 + high 2 bits of char 1; its low 4 bits are the last 2 of char 0 and those 2.
  const hi = B64URL.indexOf(id[0] ?? 'A');
  const lo = B64URL.indexOf(id[1] ?? 'A');
  return ((hi & 0x03) << 2) | (lo >> 4);
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  // Fold the high bits in: FNV's lowest bits alone mix poorly for short inputs.
  return ((h ^ (h >>> 16)) >>> 0);
}

/** Refusals are spread over this many streams, so a flood of them has no single hot key. */
export const DENIAL_STREAM_COUNT = 16;
/**
 * Audit streams in API order: 0..15 the lease shards' streams, 16..31 the refusal streams. An
 * event's id names its stream by this index.
 */
export const AUDIT_STREAM_COUNT = SHARD_COUNT + DENIAL_STREAM_COUNT;

export type IndexKind = 'act' | 'task';

export interface RedisKeys {
  readonly prefix: string;
  /** `<prefix>{sN}:`, the part every key of shard N starts with (scripts take it as ARGV). */
  base(shard: number): string;
  leases(shard: number): string;
  due(shard: number): string;
  all(shard: number): string;
  /** The hash of small `act` or `task` sets. */
  index(shard: number, kind: IndexKind): string;
  /** The ZSET a large set spilled to. */
  spilled(shard: number, kind: IndexKind, name: string): string;
  pending(shard: number): string;
  crl(shard: number): string;
  /** The retention list of ended leases (pairs of ended ms and id). */
  ended(shard: number): string;
  /** The names of the `kind` sets that may hold entries of expired leases. */
  lapsed(shard: number, kind: IndexKind): string;
  gone(shard: number): string;
  audit(shard: number): string;
  /** A used proof's replay record in shard N, where Cluster keeps it (see replayKey). */
  replay(shard: number, proofKey: string): string;
  /** A subject's budget counter in shard N, where Cluster keeps it (see rateLimitKey). */
  budget(shard: number, counter: string): string;
  /** Refusal stream N (0..DENIAL_STREAM_COUNT-1). */
  denials(n: number): string;
}

export function redisKeys(prefix: string = DEFAULT_PREFIX): RedisKeys {
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new TypeError('the Redis key prefix must be a string without { or } (they would break the shard hash tags)');
  }
  const bases = Array.from({ length: SHARD_COUNT }, (_, n) => `${prefix}{s${n}}:`);
  const denials = Array.from({ length: DENIAL_STREAM_COUNT }, (_, n) => `${prefix}{d${n}}:denials`);
  const base = (shard: number): string => {
    const b = bases[shard];
    if (b === undefined) throw new TypeError(`no shard ${shard}`);
    return b;
  };
  return {
    prefix,
    base,
    leases: (s) => `${base(s)}leases`,
    due: (s) => `${base(s)}due`,
    all: (s) => `${base(s)}all`,
    index: (s, kind) => `${base(s)}${kind === 'act' ? 'act' : 'tasks'}`,
    spilled: (s, kind, name) => `${base(s)}${kind}:${name}`,
    pending: (s) => `${base(s)}pending`,
    crl: (s) => `${base(s)}crl`,
    ended: (s) => `${base(s)}ended`,
    lapsed: (s, kind) => `${base(s)}lapsed:${kind}`,
    gone: (s) => `${base(s)}gone`,
    audit: (s) => `${base(s)}audit`,
    replay: (s, proofKey) => `${base(s)}replay:${proofKey}`,
    budget: (s, counter) => `${base(s)}rl:${counter}`,
    denials: (n) => {
      const key = denials[n];
      if (key === undefined) throw new TypeError(`no refusal stream ${n}`);
      return key;
    },
  };
}

/**
 * Index names are 96-bit digests, not the subject or task id itself: 24 bytes whatever their
 * length, which keeps a lease of a subject with a long name inside the memory budget.
 */
export const actName = (rule: string, subject: string): string => digest(`${rule}\0${subject}`);
export const taskName = (taskId: string): string => digest(taskId);
// crypto.hash (Node 20.12+) skips the Hash object: a third of the cost on every exchange and ending.
const oneShot = (nodeCrypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;
const digest = (s: string): string =>
  (oneShot ? oneShot('sha1', s, 'hex') : nodeCrypto.createHash('sha1').update(s, 'utf8').digest('hex')).slice(0, 24);

/** The same builders for Lua; `base` is RedisKeys.base(shard), passed in as an argument. */
export const LUA_KEYS = `
local function leasesKey(base) return base .. 'leases' end
local function dueKey(base) return base .. 'due' end
local function allKey(base) return base .. 'all' end
local function indexKey(base, kind) if kind == 'act' then return base .. 'act' end return base .. 'tasks' end
local function spilledKey(base, kind, name) return base .. kind .. ':' .. name end
local function pendingKey(base) return base .. 'pending' end
local function crlKey(base) return base .. 'crl' end
local function endedKey(base) return base .. 'ended' end
local function lapsedKey(base, kind) return base .. 'lapsed:' .. kind end
local function goneKey(base) return base .. 'gone' end
local function auditKey(base) return base .. 'audit' end
local function actName(rule, subject) return string.sub(redis.sha1hex(rule .. string.char(0) .. subject), 1, 24) end
local function taskName(task) return string.sub(redis.sha1hex(task), 1, 24) end
`;

/** An audit event's id: its stream entry id and stream index (`<ms>-<seq>-<stream>`), unique across streams. */
export const auditEventId = (streamId: string, shard: number): string => `${streamId}-${shard}`;

export function parseAuditEventId(id: string): { ms: number; seq: number; shard: number } | null {
  const m = /^(\d{1,16})-(\d{1,16})-(\d{1,2})$/.exec(id);
  if (!m) return null;
  const shard = Number(m[3]);
  return shard < AUDIT_STREAM_COUNT ? { ms: Number(m[1]), seq: Number(m[2]), shard } : null;
}

/**
 * Keys outside the lease shards. The replay record of a proof (`SET NX`, expiring with the proof)
 * on one Redis server or Sentinel: a single key looked up by its own name (on Cluster it is
 * RedisKeys.replay, in the lease's slot). The rate-limit counters, any slot (on Cluster a subject's
 * exchange budget is RedisKeys.budget).
 */
export const replayKey = (prefix: string, proofKey: string): string => `${prefix}replay:${proofKey}`;
export const rateLimitKey = (prefix: string, counter: string): string => `${prefix}rl:{${counter}}`;
/** HASH `<kid>:signed` / `<kid>:live` -> ms: when each signing key last signed (signing-record-redis.ts). */
export const signingRecordKey = (prefix: string): string => `${prefix}signing-keys`;
