import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { AHEAD_MS } from '../../src/leases/endings-ahead.ts';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import type { Lease } from '../../src/leases/lease.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { sweepOnce } from '../../src/revocation/endings.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { makeLease, nowSeconds, revokeInput } from '../contract/lease-fixtures.ts';
import { connectTestRedis, uniquePrefix, withTestRedis } from '../contract/redis-client.ts';

/**
 * The sweep reads expiries due in the next seconds ahead of time (readAhead), so that a burst of
 * them costs its sweep only the writes. Reading ahead must never change what ends, when, or how
 * often: these run a real store on a real Redis, passing the clock in.
 */
describe('expiries read ahead', () => {
  let redis: Redis;
  let url: string;
  withTestRedis((r, server) => {
    redis = r;
    url = server.url;
  });

  const sweep = (store: LeaseStore, nowMs: number) => store.sweep(nowMs, { limit: 10_000, pendingGraceMs: 15_000 });

  /** `n` active leases over many subjects (so every shard has some), all expiring at `expiresAt`. */
  async function burst(store: LeaseStore, n: number, expiresAt: number): Promise<Lease[]> {
    const leases = Array.from({ length: n }, (_, i) =>
      makeLease({ subject: `repo:octo-org/app-${i % 97}:ref:refs/heads/main`, issued_at: expiresAt - 600, expires_at: expiresAt, task_id: i % 3 === 0 ? `task-${i}` : null }),
    );
    for (const l of leases) await store.create(l);
    return leases;
  }

  /** A store of its own holding `n` leases that expire 5 s from now, read ahead. */
  async function burstReadAhead(n: number) {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const expiresAt = nowSeconds() + 5;
    const leases = await burst(store, n, expiresAt);
    await store.readAhead!(Date.now());
    return { prefix, store, expiresAt, leases };
  }

  async function auditCount(prefix: string): Promise<number> {
    const keys = redisKeys(prefix);
    const lens = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.xlen(keys.audit(s))));
    return lens.reduce((a, b) => a + b, 0);
  }

  async function dueCount(prefix: string): Promise<number> {
    const keys = redisKeys(prefix);
    const n = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.zcard(keys.due(s))));
    return n.reduce((a, b) => a + b, 0);
  }

  it('ends a burst read ahead at its due time, each lease once, as a sweep without reading ahead would', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const expiresAt = nowSeconds() + 5;
    const leases = await burst(store, 300, expiresAt);
    const before = await auditCount(prefix);

    expect(await store.readAhead!(Date.now())).toBe(300);
    // Read, not ended: the leases are still active, and a sweep before their expiry ends none.
    expect((await store.get(leases[0]!.id))?.status).toBe('active');
    expect(await sweep(store, expiresAt * 1000 - 1)).toEqual([]);

    const endedAt = expiresAt * 1000 + 40;
    const endings = await sweep(store, endedAt);
    expect(endings.map((e) => e.lease.id).sort()).toEqual(leases.map((l) => l.id).sort());
    expect(endings.every((e) => e.lease.status === 'expired' && e.ended_at_ms === endedAt)).toBe(true);
    expect(await auditCount(prefix)).toBe(before + 300);
    expect(await dueCount(prefix)).toBe(0);
    for (const l of leases.slice(0, 20)) {
      expect(await store.get(l.id)).toMatchObject({ status: 'expired', ended_at: Math.floor(endedAt / 1000), scopes: l.scopes, proof_jti: l.proof_jti });
    }
    // The sweep's prune drops their act and task index entries: no active lease is left to count or revoke.
    await store.pruneRetained(endedAt);
    const keys = redisKeys(prefix);
    for (let s = 0; s < SHARD_COUNT; s++) {
      expect(await redis.hlen(keys.index(s, 'act'))).toBe(0);
      expect(await redis.hlen(keys.index(s, 'task'))).toBe(0);
    }
    expect(await store.activeIdsOfTask('task-0')).toEqual([]);
    expect(await store.countActive()).toBe(0);
    // And nothing ends twice.
    expect(await sweep(store, endedAt + 1_000)).toEqual([]);
    expect(await auditCount(prefix)).toBe(before + 300);
  });

  it('stamps each write of a long sweep with the clock as it is made, never before the sweep', async () => {
    const { prefix, store, expiresAt, leases: ahead } = await burstReadAhead(300);
    // Written after the read: the sweep reads these from the schedule, stamped as well.
    const late = await burst(store, 20, expiresAt);
    const sweepMs = expiresAt * 1000 + 40;
    // A clock behind the sweep's time at first (it must not stamp before it), then 1.5 s a reading.
    let reading = -1;
    const clock = (): number => sweepMs - 700 + 1_500 * ++reading;
    const endings = await store.sweep(sweepMs, { limit: 10_000, pendingGraceMs: 15_000, clock });

    expect(endings.map((e) => e.lease.id).sort()).toEqual([...ahead, ...late].map((l) => l.id).sort());
    const stamps = new Set(endings.map((e) => e.ended_at_ms));
    expect(Math.min(...stamps)).toBe(sweepMs);
    // 300 read ahead are at least three writes of their own, the 20 read later one more.
    expect(stamps.size).toBeGreaterThanOrEqual(4);
    expect([...stamps].every((ms) => ms === sweepMs || (ms - (sweepMs - 700)) % 1_500 === 0)).toBe(true);
    // The record, its audit event and the ending agree on each lease's time.
    const keys = redisKeys(prefix);
    const events = new Map<string, { time: number; lag_ms: number }>();
    for (let s = 0; s < SHARD_COUNT; s++) {
      for (const [, fields] of await redis.xrange(keys.audit(s), '-', '+')) {
        const e = JSON.parse(fields[1]!) as { type: string; lease_id: string; time: number; lag_ms: number };
        if (e.type === 'lease.expired') events.set(e.lease_id, e);
      }
    }
    for (const e of endings) {
      expect(events.get(e.lease.id)).toMatchObject({ time: e.ended_at_ms, lag_ms: e.ended_at_ms - expiresAt * 1000 });
      expect(e.lease.ended_at).toBe(Math.floor(e.ended_at_ms / 1000));
    }
    for (const e of endings.slice(0, 20)) expect((await store.get(e.lease.id))?.ended_at).toBe(e.lease.ended_at);
  });

  it('reads each schedule entry once, past entries it cannot take (revoked leases)', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const now = nowSeconds();
    // Revoked leases come first in the schedule; a read that did not count them would read them
    // again every time and never reach the active ones behind them.
    const revoked = await burst(store, 250, now + 3);
    for (const l of revoked) await store.revoke(l.id, revokeInput({ at: now }));
    await burst(store, 60, now + 4);
    expect(await store.readAhead!(now * 1000)).toBe(310);
    expect(await store.readAhead!(now * 1000)).toBe(0);
    // Leases written later are read by a later call.
    await burst(store, 5, now + 4);
    expect(await store.readAhead!(now * 1000)).toBe(5);
  });

  it('reads only what is due within AHEAD_MS, and holds no more than its cap', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix, readAheadMax: 50 });
    const nowMs = nowSeconds() * 1000;
    await burst(store, 3, (nowMs + AHEAD_MS + 1_000) / 1000);
    expect(await store.readAhead!(nowMs)).toBe(0);
    await burst(store, 80, (nowMs + AHEAD_MS - 1_000) / 1000);
    // Full at 50: a later call reads nothing more until a sweep has taken some out.
    expect(await store.readAhead!(nowMs)).toBe(50);
    expect(await store.readAhead!(nowMs)).toBe(0);
    const dueMs = nowMs + AHEAD_MS - 1_000;
    expect(await sweep(store, dueMs)).toHaveLength(80);
    // The 3 beyond the window come into it later.
    expect(await store.readAhead!(nowMs + 5_000)).toBe(3);
  });

  it('ends a lease revoked after it was read ahead as revoked, never as expired', async () => {
    const { store, expiresAt, leases } = await burstReadAhead(40);
    const target = leases[7]!;
    await store.revoke(target.id, revokeInput({ at: expiresAt - 1, reason: 'task completed' }));

    const endings = await sweep(store, expiresAt * 1000 + 10);
    expect(endings).toHaveLength(40);
    const ended = endings.find((e) => e.lease.id === target.id);
    expect(ended?.lease).toMatchObject({ status: 'revoked', reason: 'task completed' });
    expect(await store.get(target.id)).toMatchObject({ status: 'revoked', reason: 'task completed' });
    expect(endings.filter((e) => e.lease.status === 'expired')).toHaveLength(39);
  });

  it('leaves an expiry another worker ended first: one ending, one audit event', async () => {
    const prefix = uniquePrefix();
    const mine = createRedisLeaseStore({ redis, prefix });
    const other = createRedisLeaseStore({ redis, prefix });
    const expiresAt = nowSeconds() + 5;
    await burst(mine, 50, expiresAt);
    const before = await auditCount(prefix);
    await mine.readAhead!(Date.now());
    expect(await sweep(other, expiresAt * 1000 + 5)).toHaveLength(50);
    expect(await sweep(mine, expiresAt * 1000 + 10)).toEqual([]);
    expect(await auditCount(prefix)).toBe(before + 50);
  });

  it('ends on time a lease written after the read with an earlier expiry', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const now = nowSeconds();
    await burst(store, 30, now + 6);
    await store.readAhead!(now * 1000);
    const [early] = await burst(store, 1, now + 2);
    await store.readAhead!(now * 1000 + 500);
    expect((await sweep(store, (now + 2) * 1000 + 1)).map((e) => e.lease.id)).toEqual([early!.id]);
    expect(await sweep(store, (now + 6) * 1000 + 1)).toHaveLength(30);
  });

  it('loses nothing when Redis fails as the sweep writes what it read ahead', async () => {
    const client = await connectTestRedis(url);
    try {
      const prefix = uniquePrefix();
      const store = createRedisLeaseStore({ redis: client, prefix });
      const expiresAt = nowSeconds() + 5;
      const leases = await burst(store, 120, expiresAt);
      await store.readAhead!(Date.now());
      const ended = once(client, 'end');
      client.disconnect();
      await ended;
      await expect(sweep(store, expiresAt * 1000 + 10)).rejects.toBeInstanceOf(StoreUnavailableError);
      await client.connect();
      // What was taken out of the read-ahead for the failed write is still due: the next sweep ends it.
      const endings = await sweep(store, expiresAt * 1000 + 20);
      expect(endings.map((e) => e.lease.id).sort()).toEqual(leases.map((l) => l.id).sort());
    } finally {
      client.disconnect();
    }
  });

  it('is done by the worker’s sweep job once it has caught up', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const now = nowSeconds();
    const [due] = await burst(store, 1, now - 1);
    await burst(store, 25, now + 5);
    let clock = now * 1000;
    const deps = { store, metrics: createMetrics(), log: createLogger({ level: 'silent', pretty: false }), now: () => clock };
    expect(await sweepOnce(deps)).toBe(1);
    expect((await store.get(due!.id))?.status).toBe('expired');
    // The 25 to come were read by that sweep: a read now finds nothing new.
    expect(await store.readAhead!(clock)).toBe(0);
    clock = (now + 5) * 1000 + 1;
    expect(await sweepOnce(deps)).toBe(25);
  });
});
