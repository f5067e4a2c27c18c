import { describe, expect, it } from 'vitest';
import { createMemoryAuditLog } from '../../src/audit/memory-audit-log.ts';
import type { Deps } from '../../src/deps.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { mayBeUndoneElsewhere } from '../../src/exchange/replay-after-outage.ts';
import { createMemoryLeaseStore } from '../../src/leases/memory-store.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { RedisOutages } from '../../src/redis/outages.ts';
import { makeLease, nowSeconds, revokeInput } from '../contract/lease-fixtures.ts';

/**
 * A proof's holder, written at a whole second `writtenS` seconds before now, on the real memory
 * store; this process's connection lost at the given times (ms before now).
 */
async function setup(opts: { writtenS: number; signsMsAgo: number[]; backMsAgo?: number }) {
  const store = createMemoryLeaseStore({ audit: createMemoryAuditLog() });
  const nowMs = Date.now();
  let clock = nowMs - Math.max(...opts.signsMsAgo, 0);
  const outages = new RedisOutages(() => clock);
  for (const ago of [...opts.signsMsAgo].sort((a, b) => b - a)) {
    clock = nowMs - ago;
    outages.seen();
  }
  if (opts.backMsAgo !== undefined) {
    clock = nowMs - opts.backMsAgo;
    outages.back();
  }
  clock = nowMs;
  const holder = makeLease({ issued_at: nowSeconds() - opts.writtenS, expires_at: nowSeconds() + 600 });
  const replay = { key: `test:jti:${Math.random()}`, ttlSeconds: 600 };
  await store.create(holder, { replay });
  const config = { redisMinReplicas: 0, redisWaitMs: 1_000 };
  const deps = { outages, store, config } as unknown as Deps;
  /** The check with the holder's write time set to `agoMs` before now. */
  const writtenAt = (writtenMs: number) =>
    mayBeUndoneElsewhere({ outages, config, store: { ...store, proofHolder: async () => ({ lease: holder, writtenMs }) } } as unknown as Deps, holder.subject, replay.key);
  // Off a whole second, which would read as a date rounded down (see the test of that below).
  const writtenAgo = (agoMs: number) => writtenAt((nowMs - agoMs) % 1000 === 0 ? nowMs - agoMs - 1 : nowMs - agoMs);
  return { store, holder, replayKey: replay.key, nowMs, writtenAt, writtenAgo, check: () => mayBeUndoneElsewhere(deps, holder.subject, replay.key), withStore: (s: LeaseStore) => mayBeUndoneElsewhere({ outages, store: s, config } as unknown as Deps, holder.subject, replay.key) };
}

describe('a replay refusal just after this process lost Redis', () => {
  it('is not held for an undoing without an outage, or once its last sign is 20 s old', async () => {
    expect(await (await setup({ writtenS: 2, signsMsAgo: [] })).check()).toBe(false);
    expect(await (await setup({ writtenS: 20, signsMsAgo: [19_000] })).check()).toBe(true);
    expect(await (await setup({ writtenS: 22, signsMsAgo: [20_500] })).check()).toBe(false);
  });

  it('is not held for a holder written once this process was back (Redis restarted at once)', async () => {
    const { writtenAgo } = await setup({ writtenS: 5, signsMsAgo: [3_000], backMsAgo: 2_900 });
    expect(await writtenAgo(2_950)).toBe(true);
    expect(await writtenAgo(2_850)).toBe(false);
    // Without a reconnection (a Cluster client stays ready), half a second after the first sign.
    const cluster = await setup({ writtenS: 5, signsMsAgo: [3_000] });
    expect(await cluster.writtenAgo(2_600)).toBe(true);
    expect(await cluster.writtenAgo(2_400)).toBe(false);
  });

  it('takes a write dated a whole second (written in a later second than it was made in) as up to a second later', async () => {
    const probe = await setup({ writtenS: 5, signsMsAgo: [] });
    const second = Math.floor(probe.nowMs / 1000) * 1000 - 5_000;
    // Lost at second - 100 ms, back 100 ms into the second: a lease dated that second may have been
    // written after the reconnection, so its replay is a replay (400).
    const { writtenAt } = await setup({ writtenS: 5, signsMsAgo: [probe.nowMs - (second - 100)], backMsAgo: probe.nowMs - (second + 100) });
    expect(await writtenAt(second + 50)).toBe(true);
    expect(await writtenAt(second)).toBe(false);
  });

  it('is held when the claim is gone by the time it is read: the undoing released it after the refusal', async () => {
    const { store, holder, replayKey, check } = await setup({ writtenS: 5, signsMsAgo: [2_000] });
    await store.revoke(holder.id, revokeInput({ reason: 'store unavailable', by: 'leash' }));
    expect(await store.releaseProof(holder.id, replayKey)).toBe(true);
    expect(await store.proofHolder(holder.subject, replayKey)).toBeNull();
    expect(await check()).toBe(true);
  });

  it('is held for a holder written from 10 s before the outage began to a second after', async () => {
    // The spell began 6 s ago and went on until 1 s ago.
    const signs = [6_000, 3_000, 1_000];
    expect(await (await setup({ writtenS: 7, signsMsAgo: signs })).check()).toBe(true);
    expect(await (await setup({ writtenS: 15, signsMsAgo: signs })).check()).toBe(true);
    // Written before that, or later in the spell or after it (a retry's own lease): a replay, 400.
    expect(await (await setup({ writtenS: 17, signsMsAgo: signs })).check()).toBe(false);
    expect(await (await setup({ writtenS: 4, signsMsAgo: signs })).check()).toBe(false);
    expect(await (await setup({ writtenS: 0, signsMsAgo: signs })).check()).toBe(false);
  });

  it('is held only while the holder is active or was ended by an undoing', async () => {
    const signs = [4_000, 1_000];
    const undone = await setup({ writtenS: 5, signsMsAgo: signs });
    await undone.store.revoke(undone.holder.id, revokeInput({ reason: 'store unavailable', by: 'leash' }));
    expect(await undone.check()).toBe(true);
    const byOperator = await setup({ writtenS: 5, signsMsAgo: signs });
    await byOperator.store.revoke(byOperator.holder.id, revokeInput());
    expect(await byOperator.check()).toBe(false);
    const otherReason = await setup({ writtenS: 5, signsMsAgo: signs });
    await otherReason.store.revoke(otherReason.holder.id, revokeInput({ reason: 'task completed', by: 'leash' }));
    expect(await otherReason.check()).toBe(false);
  });

  it('is held when the holder cannot be read: 503 either way', async () => {
    const { store, withStore } = await setup({ writtenS: 5, signsMsAgo: [2_000] });
    const unreadable: LeaseStore = { ...store, proofHolder: () => Promise.reject(new StoreUnavailableError('redis proofHolder: Connection is closed.')) };
    expect(await withStore(unreadable)).toBe(true);
  });
});
