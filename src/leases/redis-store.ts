import type { AuditEvent } from '../audit/events.ts';
import { auditEventJson, withStreamId } from '../audit/event-json.ts';
import { StoreUnavailableError } from '../errors.ts';
import type { CreateOptions, Ending, LeaseFilter, LeasePage, LeaseSelector, LeaseStore, RevokeInput, RevokeWhereOptions, SweepOptions } from './store.ts';
import { BudgetExceededError, LeaseExistsError, LeaseLimitError, ProofReplayedError, type ProofHolder } from './store.ts';
import type { Lease } from './lease.ts';
import { checkNewLease, decodeLease, encodeLease, issuedMsFor } from './lease-codec.ts';
import { listLeases } from './redis-list.ts';
import { legacyReplayRecords } from './legacy-replay.ts';
import { SHARD_COUNT, actName, auditEventId, legacyShardOf, rateLimitKey, redisKeys, replayKey, shardOfSubject, shardsOfPair, taskName } from '../redis/keys.ts';
import { isLeaseId, shardOfLeaseId } from './lease-id.ts';
import { probeShards } from './redis-probe.ts';
import { APPLY_ENDINGS, CREATE, DUE_RECORDS, END_IDS, FINALIZE, FINALIZE_MANY, INDEX_IDS, PRUNE, RELEASE_PROOF, REVOKE, REVOKE_SCAN, UPCOMING_RECORDS, WALK_APPLY, WALK_READ } from './redis-scripts.ts';
import { endingArgs, expiryAt, planEnding, prepareExpiry, type PlannedEnding, type PreparedExpiry } from './ending-plan.ts';
import { AHEAD_MAX, AHEAD_MS, AHEAD_PER_SWEEP, BURST_MIN, createEndingsAhead } from './endings-ahead.ts';
import { planRevocation, revokedTail } from './revocation-plan.ts';
import { runScript, type LuaScript } from '../redis/scripts.ts';
import { isCluster, sendWrite, type RedisClient } from '../redis/connect.ts';
import { mapInLanes } from '../util/lanes.ts';
import { NO_WAIT, NotReplicatedError, waitForReplicas, type Durability } from '../redis/replicated-write.ts';

export const DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600;
/** Each shard's audit stream is bounded by the whole cap; the audit log's trim() keeps the total. */
export const DEFAULT_AUDIT_MAXLEN = 400_000;
/**
 * Leases one revokeWhere step visits: a script holds every other client (the exchanges) until it
 * returns, so a step stays at a few ms of Redis (a flip worked out in Lua costs ~26 µs, one worked
 * out in Node about half that).
 */
const SCAN_COUNT = 200;
/**
 * Revoked leases one finalizeMany step ends at most: the exchanges wait behind its script, so it
 * stays at a few ms of Redis (the worker runs a few jobs at once).
 */
const FINALIZE_SCRIPT_MAX = 64;
/**
 * How long after a bulk revocation the sweep may take over its effects, were its jobs never queued
 * (the API process died mid-walk): a million leases take 30-60 s to walk on two cores.
 */
export const BULK_EFFECTS_AFTER_MS = 120_000;
/**
 * A walk over every shard (bulk revocation by `task_id`, or through `due`) goes this many shards at
 * a time, as the sweep does: all sixteen at once put sixteen scripts on the walk's connection,
 * which Redis runs back to back (it runs all of a connection's waiting commands in one go) while
 * the exchanges' commands wait.
 */
const WALK_LANES = 2;
const PRUNE_CHUNK = 1_000;
/** Index sets a PRUNE script drops expired entries from, of each kind (a few calls each). */
const PRUNE_SETS_CHUNK = 100;
/**
 * Shards pruned at a time. After a storm of expiries every shard has index sets to prune, and all
 * sixteen shards' scripts at once held Redis for 10-20 ms while the exchanges' commands waited.
 */
const PRUNE_LANES = 1;
/**
 * Leases one sweep step ends at most, and how many steps are in flight. Two let Redis write one
 * step while Node works out the next; at 100,000 expiries in one second, four in flight ended them
 * ~10% sooner but raised the exchange's p99 from 14.5 to 20 ms, one lifted neither p99 nor lag.
 */
const SWEEP_SCRIPT_MAX = 100;
const SWEEP_IN_FLIGHT = 2;
/**
 * APPLY_ENDINGS scripts of expiries read ahead in flight at once, each sent a turn after the last.
 * Three: the worker runs at nice 10 (LEASH_WORKER_NICE), so in a storm the API takes the core from
 * it, and a third script queued keeps Redis ending leases meanwhile. With two, the 100,000-expiry
 * storm's lag p99 was longer in seven interleaved pairs of eight (bench/README.md, nineteenth pass).
 */
const AHEAD_IN_FLIGHT = 3;
/** Records one readAhead script reads at most (read only: no record is decoded in Lua). */
const READ_AHEAD_SCRIPT_MAX = 100;

export interface RedisLeaseStoreOptions {
  /**
   * The caller owns the connection (and closes it). For fail-closed behaviour when Redis is down,
   * create it so commands fail fast instead of queueing: `maxRetriesPerRequest: 1`,
   * `enableOfflineQueue: false`, `commandTimeout: 2000`, `connectTimeout: 2000`. No `keyPrefix`:
   * pass `prefix` here instead (scripts build keys the client would not prefix).
   */
  redis: RedisClient;
  /** Default `leash:`. */
  prefix?: string;
  /** How long ended leases stay readable and listed, for audit, before pruneRetained drops them; default 7 days. */
  retentionSeconds?: number;
  auditMaxLenPerShard?: number;
  /**
   * Called with the audit events of the endings (or the creation) a script wrote to the stream,
   * one call a script, so the process that ran them can also log each (once). Must not throw.
   */
  onAuditEvents?: (events: AuditEvent[]) => void;
  /**
   * Called once with the id of each record a script could not read (not JSON, or not a lease), as
   * it takes the record out of the schedules so it stops no other ending. Must not throw.
   */
  onUnreadable?: (id: string) => void;
  /**
   * LEASH_REDIS_MIN_REPLICAS / LEASH_REDIS_WAIT_MS: creations (with their replay record),
   * revocations and endings count as done only once WAIT confirms them on this many replicas;
   * otherwise they fail with NotReplicatedError (503). Default: no WAIT.
   */
  durability?: Durability;
  /** Expiries readAhead holds at most (default AHEAD_MAX, 100,000: about 170 MB of heap). */
  readAheadMax?: number;
}

type Tuple = [id: string, json: string, eventJson: string, streamId: string];

/** Selector values, reasons and actors reach Lua well-formed (a lone surrogate reads as U+FFFD there). */
const wf = (s: string): string => s.toWellFormed();

/** The production lease store: one EVALSHA per write, each touching one hash slot. */
export function createRedisLeaseStore(opts: RedisLeaseStoreOptions): LeaseStore {
  const { redis } = opts;
  const clientPrefix = (redis.options as { keyPrefix?: string }).keyPrefix;
  if (clientPrefix) throw new TypeError('createRedisLeaseStore: use the prefix option, not an ioredis keyPrefix');
  const keys = redisKeys(opts.prefix);
  const retentionSeconds = opts.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
  if (!(retentionSeconds >= 0)) throw new TypeError('createRedisLeaseStore: retentionSeconds must be >= 0');
  const retentionMs = Math.round(retentionSeconds * 1000);
  const maxlen = opts.auditMaxLenPerShard ?? DEFAULT_AUDIT_MAXLEN;
  const shards = Array.from({ length: SHARD_COUNT }, (_, s) => s);
  const durability = opts.durability ?? NO_WAIT;
  const ahead = createEndingsAhead(SHARD_COUNT);
  const aheadMax = opts.readAheadMax ?? AHEAD_MAX;

  const io = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(`redis ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  };

  const unreadable = (ids: string[]): void => {
    for (const id of ids) {
      try {
        opts.onUnreadable?.(id);
      } catch {
        // Reporting must never fail the endings of the others.
      }
    }
  };

  const report = (events: AuditEvent[]): void => {
    if (events.length === 0) return;
    try {
      opts.onAuditEvents?.(events);
    } catch {
      // Logging must never undo or fail an ending that already happened.
    }
  };

  /** Lua's ending tuples as endings, their audit events reported in one call. */
  const toEndings = (shard: number, nowMs: number, tuples: Tuple[]): Ending[] => {
    const events: AuditEvent[] = [];
    const endings: Ending[] = [];
    for (const [id, json, eventJson, streamId] of tuples) {
      if (opts.onAuditEvents) {
        try {
          events.push(Object.assign(JSON.parse(eventJson) as AuditEvent, { id: auditEventId(streamId, shard) }));
        } catch {
          // An event that does not parse is still in the stream; the ending stands.
        }
      }
      // Lua wrote this JSON from a lease it had read, so it reads back.
      const stored = decodeLease(id, json);
      if (stored) endings.push({ lease: stored.lease, ended_at_ms: nowMs });
    }
    report(events);
    return endings;
  };

  /** Revokes the matching active leases found in one set: a shard's `due`, or an act or task set. */
  async function revokeScan(
    shard: number,
    source: { kind: 'due' } | { kind: 'act' | 'task'; name: string },
    selector: LeaseSelector,
    input: RevokeInput,
    keep: string | undefined,
  ): Promise<string[]> {
    const scanKey = source.kind === 'due' ? keys.due(shard) : keys.index(shard, source.kind);
    const name = source.kind === 'due' ? '' : source.name;
    const sel = Object.fromEntries(Object.entries(selector).flatMap(([k, v]) => (v === undefined ? [] : [[k, wf(v)]])));
    const needles = Object.values(sel).map((v) => JSON.stringify(v));
    const revokedMs = Math.round(input.at * 1000);
    // Its effects are queued once every step is done (revoke-leases.ts), so its pending entries
    // score BULK_EFFECTS_AFTER_MS later: the sweep, which takes over effects whose job went missing,
    // started on a long walk's early flips 15 s in and competed with it for Redis to the end.
    const pendingFrom = revokedMs + BULK_EFFECTS_AFTER_MS;
    let steps = 0;
    const step = async (cursor: string): Promise<[string, string[]]> => {
      // Each step's pending entries score a little above the last step's (1/1024 ms, exact in a
      // double), so they go in at the ZSET's tail; see REVOKE_SCAN.
      const pendingScore = pendingFrom + Math.min(steps++, 1_000_000) / 1024;
      const [next, revoked, bad] = (await io('revokeWhere', () =>
        runScript(redis, REVOKE_SCAN, [scanKey, keys.pending(shard), keys.leases(shard)], [
          keys.base(shard), cursor, SCAN_COUNT, input.at, wf(input.reason), wf(input.by), revokedMs,
          // `keep` is a lease id, the record's key and not in its JSON: never a needle.
          JSON.stringify(keep === undefined ? sel : { ...sel, keep }), source.kind, name, retentionMs, pendingScore, ...needles,
        ]),
      )) as [string, string[], string[]];
      unreadable(bad);
      if (revoked.length > 0) await io('revokeWhere', () => waitForReplicas(redis, durability, keys.leases(shard)));
      return [next, revoked];
    };
    // Through an index, Node works out the flips between a read and a write script, as the sweep
    // does its endings: Lua's decode and re-encode of each record was most of a flip's Redis cost.
    // A step holding a record only Lua may read is done by REVOKE_SCAN instead.
    const nodeSel: LeaseSelector = { subject: sel['subject'], rule: sel['rule'], issuer: sel['issuer'], task_id: sel['task_id'] };
    const tail = revokedTail(input);
    type Read = [ids: string[], raws: string[], spilled: number];
    const read = (kind: 'act' | 'task', cursor: string): Promise<Read> => {
      const r = io('revokeWhere', () =>
        runScript(redis, WALK_READ, [keys.index(shard, kind), keys.leases(shard)], [keys.base(shard), kind, name, cursor, SCAN_COUNT]),
      ) as Promise<Read>;
      // A read sent ahead may be left behind by a failing write: its failure is that write's.
      r.catch(() => undefined);
      return r;
    };
    const walk = async (kind: 'act' | 'task'): Promise<string[]> => {
      const ids: string[] = [];
      // The next step's read, and the cursor it was read at (what its write must be told).
      let next: { at: string; read: Promise<Read> } | null = { at: '0', read: read(kind, '0') };
      while (next !== null) {
        const cursor = next.at;
        const [stepIds, raws, spilled] = await next.read;
        next = null;
        if (stepIds.length === 0) break;
        const plans = stepIds.map((id, i) => planRevocation(id, raws[i] ?? '', kind, nodeSel, input, keep));
        if (plans.some((p) => p.op === 'lua')) {
          const [to, revoked] = await step(cursor);
          for (const id of revoked) ids.push(id);
          if (to !== '0') next = { at: to, read: read(kind, to) };
          continue;
        }
        const more = spilled === 1 && stepIds.length === SCAN_COUNT;
        const pendingScore = pendingFrom + Math.min(steps++, 1_000_000) / 1024;
        const args: (string | number)[] = [keys.base(shard), kind, name, pendingScore, cursor, more ? 1 : 0, tail];
        plans.forEach((p, i) => {
          const op = p.op === 'revoke' ? 'r' : p.op === 'stale' ? 's' : 'k';
          args.push(stepIds[i]!, op, raws[i] ?? '', p.op === 'revoke' ? p.record : '', p.op === 'revoke' ? p.other : '');
        });
        const applying = io('revokeWhere', () => runScript(redis, WALK_APPLY, [keys.pending(shard), keys.leases(shard)], args)) as Promise<[number[], string]>;
        // A step that keeps nothing leaves the anchor where it was: the next read goes out now,
        // behind this write on the connection, so Redis runs it as soon as the write is done. Were
        // an entry kept after all (its record changed meanwhile), that read sees it again: an
        // anchor at or before the true one rereads, it never skips.
        const ahead = more && plans.every((p) => p.op !== 'keep') ? { at: cursor, read: read(kind, cursor) } : null;
        const [applied, to] = await applying;
        const revoked = stepIds.filter((_, i) => plans[i]!.op === 'revoke' && applied[i] === 1);
        if (revoked.length > 0) await io('revokeWhere', () => waitForReplicas(redis, durability, keys.leases(shard)));
        for (const id of revoked) ids.push(id);
        if (to !== '0') next = ahead ?? { at: to, read: read(kind, to) };
      }
      return ids;
    };
    if (source.kind !== 'due') return walk(source.kind);
    // Every lease of the shard's `due`, one ZSCAN step after another.
    const ids: string[] = [];
    for (let cursor = '0'; ; ) {
      const [next, revoked] = await step(cursor);
      for (const id of revoked) ids.push(id);
      if (next === '0') return ids;
      cursor = next;
    }
  }

  /**
   * Endings left to Lua (END_IDS, FINALIZE_MANY: ARGV base, now, retention, maxlen, then `args`):
   * the ending tuples turned into endings, unreadable records reported.
   */
  async function luaEndings(shard: number, nowMs: number, what: string, s: LuaScript, scriptKeys: string[], args: (string | number)[]): Promise<Ending[]> {
    const [tuples, bad] = (await io(what, () =>
      runScript(redis, s, scriptKeys, [keys.base(shard), nowMs, retentionMs, maxlen, ...args]),
    )) as [Tuple[], string[]];
    unreadable(bad);
    return toEndings(shard, nowMs, tuples);
  }

  /** Writes endings worked out in Node (APPLY_ENDINGS); answers each entry's audit stream id, '' where not applied. */
  function writeEndings(shard: number, nowMs: number, plans: PlannedEnding[], what: string): Promise<string[]> {
    const setKeys = [keys.due(shard), keys.pending(shard), keys.leases(shard)];
    return io(what, () => runScript(redis, APPLY_ENDINGS, setKeys, [keys.base(shard), nowMs, retentionMs, maxlen, ...endingArgs(plans)])) as Promise<string[]>;
  }

  /** The endings writeEndings applied, their events reported. */
  function appliedEndings(shard: number, nowMs: number, plans: PlannedEnding[], sids: string[]): Ending[] {
    const endings: Ending[] = [];
    const events: AuditEvent[] = [];
    plans.forEach((p, i) => {
      const sid = sids[i];
      if (!sid || p.ended === null) return;
      events.push(withStreamId(p.ended.event, p.ended.eventJson, auditEventId(sid, shard)));
      endings.push({ lease: p.ended.lease, ended_at_ms: nowMs });
    });
    report(events);
    return endings;
  }

  async function applyEndings(shard: number, nowMs: number, plans: PlannedEnding[], what: string): Promise<Ending[]> {
    if (plans.length === 0) return [];
    return appliedEndings(shard, nowMs, plans, await writeEndings(shard, nowMs, plans, what));
  }

  /**
   * The shard's endings, and how many entries the call used up. Redis reads the due records and
   * writes the endings; Node works out each ending in between (ending-plan.ts), leaving to Lua only
   * the records it cannot take.
   */
  async function sweepShard(shard: number, dueBy: number, limit: number, pendingGraceMs: number, stamp: () => number): Promise<{ endings: Ending[]; used: number }> {
    const setKeys = [keys.due(shard), keys.pending(shard), keys.leases(shard)];
    const [dueIds, dueRaws, pendingIds, pendingRaws] = (await io('sweep', () =>
      runScript(redis, DUE_RECORDS, setKeys, [dueBy, limit, dueBy - pendingGraceMs]),
    )) as [string[], string[], string[], string[]];
    const nowMs = stamp();
    const plans: PlannedEnding[] = [];
    const toLua = { due: [] as string[], pending: [] as string[] };
    const seen = new Set<string>();
    const plan = (ids: string[], raws: string[], from: 'due' | 'pending'): void => {
      ids.forEach((id, i) => {
        // A revoked lease past its expiry is in both sets: its first entry ends it.
        if (seen.has(id)) return;
        seen.add(id);
        const p = planEnding(id, raws[i] ?? '', from, nowMs);
        if (p === 'lua') toLua[from].push(id);
        else plans.push(p);
      });
    };
    plan(dueIds, dueRaws, 'due');
    plan(pendingIds, pendingRaws, 'pending');
    const endings = await applyEndings(shard, nowMs, plans, 'sweep');
    if (toLua.due.length + toLua.pending.length > 0) {
      endings.push(...(await luaEndings(shard, nowMs, 'sweep', END_IDS, setKeys, [toLua.due.length, ...toLua.due, ...toLua.pending])));
    }
    // Endings already happened (and are logged); unconfirmed, the sweep fails and runs again.
    if (endings.length > 0) await io('sweep', () => waitForReplicas(redis, durability, keys.leases(shard)));
    return { endings, used: dueIds.length + pendingIds.length };
  }

  /**
   * Ends the expiries read ahead that are due by now, taking up to `limit`. Those whose record
   * changed since stay due, for sweepShard to read again. AHEAD_IN_FLIGHT scripts in flight, each
   * sent in a turn of its own and the next as soon as one is answered, before that answer is
   * handled: Redis always has the next script while Node handles an answer and encodes the one
   * after. (Two sent in the same turn ran back to back with their answers written together, so
   * Redis and Node took turns.)
   */
  async function sweepAhead(dueBy: number, limit: number, stamp: () => number): Promise<Ending[]> {
    const endings: Ending[] = [];
    const wrote = new Set<number>();
    let used = 0;
    const open = [...shards];
    const next = (): { shard: number; at: number; plans: PlannedEnding[] } | null => {
      while (used < limit && open.length > 0) {
        const shard = open.shift()!;
        const ready = ahead.take(shard, dueBy, Math.min(SWEEP_SCRIPT_MAX, limit - used));
        if (ready.length === 0) continue;
        used += ready.length;
        open.push(shard);
        const at = stamp();
        return { shard, at, plans: ready.map((p) => expiryAt(p, at)) };
      }
      return null;
    };
    const inFlight: { shard: number; at: number; plans: PlannedEnding[]; answer: Promise<string[]> }[] = [];
    const send = (): void => {
      const step = next();
      if (step === null) return;
      const answer = writeEndings(step.shard, step.at, step.plans, 'sweep');
      // Failing, it is reported when its turn comes to be awaited (a script that failed ended nothing).
      answer.catch(() => undefined);
      inFlight.push({ ...step, answer });
    };
    // The write leaves at the end of a turn (write-batching.ts): each script in a turn of its own.
    const turn = (): Promise<unknown> => new Promise((resolve) => setImmediate(resolve));
    send();
    for (let i = 1; i < AHEAD_IN_FLIGHT && inFlight.length === i; i++) {
      await turn();
      send();
    }
    // After a failed script nothing more is sent, but the scripts already sent are still waited
    // for: one that applied has endings to report. Then the sweep fails with the first error.
    let failed: { err: unknown } | null = null;
    while (inFlight.length > 0) {
      const step = inFlight.shift()!;
      let sids: string[];
      try {
        sids = await step.answer;
      } catch (err) {
        failed ??= { err };
        continue;
      }
      if (failed === null) send();
      await turn();
      const applied = appliedEndings(step.shard, step.at, step.plans, sids);
      if (applied.length > 0) wrote.add(step.shard);
      endings.push(...applied);
    }
    if (failed !== null) throw failed.err;
    // Endings already happened (and are logged); unconfirmed, the sweep fails and runs again. One
    // WAIT a shard written: on a Cluster each goes to the node that holds the shard.
    for (const shard of wrote) await io('sweep', () => waitForReplicas(redis, durability, keys.leases(shard)));
    return endings;
  }

  /** Reads the shard's expiries due in (now, now + AHEAD_MS] past those held, up to `max`. */
  async function readShardAhead(shard: number, nowMs: number, max: number): Promise<number> {
    const [ids, raws, scores] = (await io('readAhead', () =>
      runScript(redis, UPCOMING_RECORDS, [keys.due(shard), keys.leases(shard)], [nowMs, nowMs + AHEAD_MS, ahead.heldAfter(shard, nowMs), max]),
    )) as [string[], string[], string[]];
    ahead.add(
      shard,
      ids.map((id, i) => {
        const dueMs = Number(scores[i]);
        return { id, dueMs, expiry: prepareExpiry(id, raws[i] ?? '', dueMs) };
      }),
    );
    return ids.length;
  }

  // The replay record and the subject's budget go in with the lease. On Cluster they are in the
  // lease's slot: a lease's subject is its proof's `sub`, and the budget is the subject's, so both
  // are always in the same shard. Elsewhere they keep the names they have always had.
  const cluster = isCluster(redis);
  const replayKeyOf = (shard: number, proofKey: string): string => (cluster ? keys.replay(shard, proofKey) : replayKey(keys.prefix, proofKey));
  const earlierReplays = cluster ? legacyReplayRecords(redis, keys.prefix) : null;
  const budgetKeyOf = (shard: number, counter: string): string => (cluster ? keys.budget(shard, counter) : rateLimitKey(keys.prefix, counter));

  return {
    async create(lease: Lease, createOpts: CreateOptions = {}): Promise<void> {
      checkNewLease(lease);
      const max = createOpts.maxActive;
      if (max !== undefined && !(Number.isSafeInteger(max) && max >= 0)) throw new TypeError('create(): maxActive must be a whole number >= 0');
      const shard = shardOfLeaseId(lease.id);
      const now = Date.now();
      const issuedMs = issuedMsFor(lease.issued_at, now);
      const expiresMs = lease.expires_at * 1000;
      const { replay, budget } = createOpts;
      const leaseKeys = [keys.leases(shard), keys.due(shard), keys.all(shard), keys.index(shard, 'act'), keys.index(shard, 'task')];
      // A legacy-shard id (checkNewLease takes one) would put the replay record where the proof's
      // next use does not look for it on Cluster.
      if (replay && shard !== shardOfSubject(lease.subject)) throw new TypeError('create(): a lease with a replay record needs an id from newLeaseId(subject)');
      const ttl = replay ? Math.max(1, Math.ceil(replay.ttlSeconds)) : 0;
      const replayAt = replay ? replayKeyOf(shard, replay.key) : '';
      if (replay) leaseKeys.push(replayAt);
      if (replay && earlierReplays && (await io('create', () => earlierReplays.used(replay.key)))) throw new ProofReplayedError();
      const charged = budget && budget.limit > 0 ? budget : undefined;
      if (charged) leaseKeys.push(budgetKeyOf(shard, charged.key));
      // Leases of the pair made before leases went by subject alone count too, where one script may
      // read another slot (not on Cluster).
      const legacy = max !== undefined && !cluster ? legacyShardOf(lease.rule, lease.subject) : shard;
      const legacyBase = legacy !== shard ? keys.base(legacy) : '';
      let res: unknown;
      try {
        res = await io('create', () => sendWrite(redis, () =>
          runScript(redis, CREATE, leaseKeys, [
            keys.base(shard), lease.id, encodeLease(lease, issuedMs), expiresMs, issuedMs, now, max ?? -1,
            actName(lease.rule, lease.subject), lease.task_id === null ? '' : taskName(lease.task_id),
            createOpts.audit ? auditEventJson(createOpts.audit) : '', maxlen, ttl,
            charged?.limit ?? 0, charged?.windowMs ?? 0, legacyBase,
          ], durability),
        ));
      } catch (err) {
        // A refusal (a negative code, or the budget's) wrote no lease, so it needs no replica to confirm it.
        // Otherwise the lease and its replay record may be written: the caller, which hands out
        // nothing, ends the lease and releases the proof (exchange/abandoned-leases.ts).
        if (err instanceof NotReplicatedError && (typeof err.result === 'number' ? err.result < 0 : Array.isArray(err.result))) res = err.result;
        else throw err;
      }
      if (res === -1) throw new LeaseLimitError(max ?? 0);
      if (res === -2) throw new LeaseExistsError(lease.id);
      if (res === -3) throw new ProofReplayedError();
      if (Array.isArray(res)) throw new BudgetExceededError(Number(res[1]));
      if (createOpts.audit && typeof res === 'string') report([Object.assign({}, createOpts.audit, { id: auditEventId(res, shard) })]);
    },

    async releaseProof(leaseId: string, proofKey: string): Promise<boolean> {
      if (!isLeaseId(leaseId)) return false;
      const freed = await io('releaseProof', () => runScript(redis, RELEASE_PROOF, [replayKeyOf(shardOfLeaseId(leaseId), proofKey)], [leaseId]));
      return freed === 1;
    },

    async get(id: string): Promise<Lease | null> {
      if (!isLeaseId(id)) return null;
      const raw = await io('get', () => redis.hget(keys.leases(shardOfLeaseId(id)), id));
      // An unreadable record is no lease: unknown to readers, inactive to introspection.
      return raw === null ? null : (decodeLease(id, raw)?.lease ?? null);
    },

    async proofHolder(subject: string, proofKey: string): Promise<ProofHolder | null> {
      // Records written before they named their lease hold no id: no holder to tell.
      const id = await io('proofHolder', () => redis.get(replayKeyOf(shardOfSubject(subject), proofKey)));
      if (id === null || !isLeaseId(id)) return null;
      const raw = await io('proofHolder', () => redis.hget(keys.leases(shardOfLeaseId(id)), id));
      const stored = raw === null ? null : decodeLease(id, raw);
      return stored ? { lease: stored.lease, writtenMs: stored.issuedMs } : null;
    },

    async revoke(id: string, input: RevokeInput): Promise<Lease | null> {
      if (!isLeaseId(id)) return null;
      const shard = shardOfLeaseId(id);
      const res = await io('revoke', () =>
        runScript(redis, REVOKE, [keys.leases(shard), keys.pending(shard)], [
          keys.base(shard), id, input.at, wf(input.reason), wf(input.by), Math.round(input.at * 1000), retentionMs,
        ], durability),
      );
      if (res === 1) unreadable([id]);
      return typeof res === 'string' ? (decodeLease(id, res)?.lease ?? null) : null;
    },

    async revokeWhere(selector: LeaseSelector, input: RevokeInput, opts: RevokeWhereOptions = {}): Promise<string[]> {
      const { subject, rule, issuer, task_id } = selector;
      if (subject === undefined && rule === undefined && issuer === undefined && task_id === undefined) {
        throw new TypeError('revokeWhere(): the selector needs at least one of subject, rule, issuer, task_id');
      }
      const sel: LeaseSelector = { subject, rule, issuer, task_id };
      let found: string[][];
      if (task_id !== undefined) {
        const name = taskName(task_id);
        found = await mapInLanes(shards, WALK_LANES, (s) => revokeScan(s, { kind: 'task', name }, sel, input, opts.keep));
      } else if (rule !== undefined && subject !== undefined) {
        const name = actName(rule, subject);
        found = [];
        for (const s of shardsOfPair(rule, subject)) found.push(await revokeScan(s, { kind: 'act', name }, sel, input, opts.keep));
      } else {
        found = await mapInLanes(shards, WALK_LANES, (s) => revokeScan(s, { kind: 'due' }, sel, input, opts.keep));
      }
      // No id twice: an id has one shard, and a scan revokes a lease once (a step skips ids it saw,
      // and a later visit finds it revoked). A Set of a million ids held the event loop 0.8 s,
      // 3.7 s on a busy machine; flat() of them 0.2-0.5 s, concat a tenth of that.
      return found.length === 1 ? found[0]! : ([] as string[]).concat(...found);
    },

    async activeIdsOfTask(taskId: string): Promise<string[]> {
      const name = taskName(taskId);
      const per = await Promise.all(
        shards.map((s) => io('activeIdsOfTask', () => runScript(redis, INDEX_IDS, [keys.index(s, 'task')], [keys.base(s), 'task', name, Date.now()]))),
      );
      return [...new Set((per as string[][]).flat())];
    },

    list(filter: LeaseFilter, page: { limit: number; cursor?: string | null }): Promise<LeasePage> {
      return listLeases(redis, keys, io, filter, page);
    },

    async countActive(): Promise<number> {
      // Revoked leases stay in `due` until finalized; `pending` holds exactly those.
      const per = await Promise.all(
        shards.map((s) => io('countActive', () => Promise.all([redis.zcard(keys.due(s)), redis.zcard(keys.pending(s))]))),
      );
      return per.reduce((n, [due, pending]) => n + due - pending, 0);
    },

    async countOverdue(beforeMs: number): Promise<number> {
      const per = await Promise.all(shards.map((s) => io('countOverdue', () => redis.zcount(keys.due(s), '-inf', `(${beforeMs}`))));
      return per.reduce((n, c) => n + c, 0);
    },

    async finalize(id: string, nowMs: number): Promise<Ending | null> {
      if (!isLeaseId(id)) return null;
      const shard = shardOfLeaseId(id);
      const tuple = await io('finalize', () =>
        runScript(redis, FINALIZE, [keys.leases(shard)], [keys.base(shard), id, nowMs, retentionMs, maxlen]),
      );
      if (tuple === 1) unreadable([id]);
      if (!Array.isArray(tuple)) return null;
      const [ending] = toEndings(shard, nowMs, [tuple as Tuple]);
      await io('finalize', () => waitForReplicas(redis, durability, keys.leases(shard)));
      return ending ?? null;
    },

    async finalizeMany(ids: string[], nowMs: number): Promise<Ending[]> {
      const byShard = new Map<number, string[]>();
      for (const id of new Set(ids)) {
        if (!isLeaseId(id)) continue;
        const s = shardOfLeaseId(id);
        const list = byShard.get(s);
        if (list) list.push(id);
        else byShard.set(s, [id]);
      }
      const out: Ending[] = [];
      // One script at a time: the worker's concurrent jobs are what runs several at once.
      for (const [shard, list] of byShard) {
        for (let i = 0; i < list.length; i += FINALIZE_SCRIPT_MAX) {
          const chunk = list.slice(i, i + FINALIZE_SCRIPT_MAX);
          // As in the sweep: Node works out the endings of revoked records, Lua takes the rest
          // (unreadable, escapes). Active, ended or missing leases have nothing to finalize.
          const raws = await io('finalize', () => redis.hmget(keys.leases(shard), ...chunk));
          const plans: PlannedEnding[] = [];
          const toLua: string[] = [];
          chunk.forEach((id, k) => {
            const p = planEnding(id, raws[k] ?? '', 'pending', nowMs);
            if (p === 'lua') toLua.push(id);
            else if (p.op === 'r') plans.push(p);
          });
          const endings = await applyEndings(shard, nowMs, plans, 'finalize');
          if (toLua.length > 0) {
            endings.push(...(await luaEndings(shard, nowMs, 'finalize', FINALIZE_MANY, [keys.leases(shard)], toLua)));
          }
          if (endings.length > 0) await io('finalize', () => waitForReplicas(redis, durability, keys.leases(shard)));
          out.push(...endings);
        }
      }
      return out;
    },

    async sweep(nowMs: number, sweepOpts: SweepOptions): Promise<Ending[]> {
      // Small scripts, few in flight, shards round-robin: Redis runs a connection's queued scripts
      // back to back, so 16 shards' worth at once held the exchanges' commands for 100 ms and more.
      let budget = Math.max(0, Math.floor(sweepOpts.limit));
      const clock = sweepOpts.clock;
      const stamp = clock === undefined ? () => nowMs : () => Math.max(nowMs, clock());
      const out = await sweepAhead(nowMs, budget, stamp);
      // What it took and could not end (its record changed) is still due: the lanes read it below.
      budget -= out.length;
      const open = [...shards];
      const lane = async (): Promise<void> => {
        while (budget > 0 && open.length > 0) {
          const s = open.shift()!;
          const n = Math.min(SWEEP_SCRIPT_MAX, budget);
          budget -= n;
          const r = await sweepShard(s, nowMs, n, sweepOpts.pendingGraceMs, stamp);
          out.push(...r.endings);
          budget += n - r.used;
          // A shard that used its whole share may have more.
          if (r.used >= n) open.push(s);
        }
      };
      await Promise.all(Array.from({ length: SWEEP_IN_FLIGHT }, lane));
      return out;
    },

    async readAhead(nowMs: number): Promise<number> {
      // Shards in turn, one small script at a time: reading ahead is never urgent, the exchanges are.
      let budget = Math.min(AHEAD_PER_SWEEP, aheadMax - ahead.size());
      let total = 0;
      const open = [...shards];
      while (budget > 0 && open.length > 0) {
        const s = open.shift()!;
        const n = Math.min(READ_AHEAD_SCRIPT_MAX, budget);
        const got = await readShardAhead(s, nowMs, n);
        budget -= got;
        total += got;
        if (got >= n) open.push(s);
      }
      return total;
    },

    nextBurstMs: (afterMs: number): number | null => ahead.nextBurst(afterMs, BURST_MIN),

    async crlEntries(sinceSeconds: number): Promise<{ serial: string; revoked_at: number; expires_at: number }[]> {
      const sinceMs = sinceSeconds * 1000;
      const per = await Promise.all(
        shards.map((s) =>
          io('crlEntries', async () => {
            await redis.zremrangebyscore(keys.crl(s), '-inf', `(${sinceMs}`);
            return redis.zrange(keys.crl(s), sinceMs, '+inf', 'BYSCORE', 'WITHSCORES');
          }),
        ),
      );
      const entries = per.flatMap((flat) => {
        const rows: { serial: string; revoked_at: number; expires_at: number }[] = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const member = flat[i]!;
          const cut = member.lastIndexOf(':');
          rows.push({ serial: member.slice(0, cut), revoked_at: Number(member.slice(cut + 1)), expires_at: Number(flat[i + 1]) / 1000 });
        }
        return rows;
      });
      return entries.sort((a, b) => a.revoked_at - b.revoked_at || (a.serial < b.serial ? -1 : 1));
    },

    async pruneRetained(nowMs: number): Promise<number> {
      const per = await mapInLanes(shards, PRUNE_LANES, async (s) => {
        let total = 0;
        for (;;) {
          const [n, more] = (await io('pruneRetained', () =>
            runScript(
              redis,
              PRUNE,
              [keys.ended(s), keys.gone(s), keys.all(s), keys.leases(s), keys.lapsed(s, 'act'), keys.lapsed(s, 'task')],
              [nowMs - retentionMs, nowMs, PRUNE_CHUNK, keys.base(s), PRUNE_SETS_CHUNK],
            ),
          )) as [number, number];
          total += n;
          if (n < PRUNE_CHUNK && more === 0) return total;
        }
      });
      return per.reduce((a, b) => a + b, 0);
    },

    async probe(): Promise<void> {
      await io('probe', () => probeShards(redis, opts.prefix));
    },

    // The caller owns the connection.
    async close(): Promise<void> {},
  };
}
