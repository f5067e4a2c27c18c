import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { Socket } from 'node:net';
import { MAX_HELD } from '../../src/redis/write-batching.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { makeLease } from '../contract/lease-fixtures.ts';
import { connectTestRedis, readsProcessed, uniquePrefix, withTestRedis } from '../contract/redis-client.ts';

let redis: Redis;
let url: string;
withTestRedis((r, server) => {
  redis = r;
  url = server.url;
});


describe('lease writes issued in one turn of the event loop', () => {
  it('reach Redis together (a handful of socket reads for 200 scripts), and each gets its own answer', async () => {
    const observer = await connectTestRedis(url);
    try {
      const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
      const leases = Array.from({ length: 200 }, (_, i) => makeLease({ subject: `repo:octo-org/batch-${i}:ref:refs/heads/main` }));
      // Redis learns the script first, so what follows is EVALSHA only.
      await store.create(makeLease({ subject: 'repo:octo-org/warm-up:ref:refs/heads/main' }));
      const before = await readsProcessed(observer);
      await Promise.all(leases.map((l) => store.create(l)));
      // The observer's own INFO is one read of the difference.
      const reads = (await readsProcessed(observer)) - before - 1;
      expect(reads).toBeGreaterThan(0);
      // Measured: about 7 reads with all writes held to the end of the turn, about 90 with a write
      // each; writes of MAX_HELD commands make about 200 / MAX_HELD.
      expect(reads).toBeLessThan(40);
      const stored = await Promise.all(leases.map((l) => store.get(l.id)));
      expect(stored.map((l) => l?.subject)).toEqual(leases.map((l) => l.subject));
    } finally {
      observer.disconnect();
    }
  });

  it(`leave in writes of at most ${MAX_HELD}: the first go to Redis while the turn is still issuing the rest`, async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
    await store.create(makeLease({ subject: 'repo:octo-org/warm-up:ref:refs/heads/main' }));
    const socket = redis.stream as Socket;
    const leases = Array.from({ length: MAX_HELD + 1 }, (_, i) => makeLease({ subject: `repo:octo-org/held-${i}:ref:refs/heads/main` }));
    const writes = leases.slice(0, MAX_HELD).map((l) => store.create(l));
    // Held: nothing of this turn has reached the socket yet.
    const heldBytes = socket.writableLength;
    expect(heldBytes).toBeGreaterThan(0);
    writes.push(store.create(leases[MAX_HELD]!));
    // The first MAX_HELD left when the next one came; only that one is held now.
    expect(socket.writableLength).toBeGreaterThan(0);
    expect(socket.writableLength).toBeLessThan(heldBytes / 2);
    await Promise.all(writes);
    const stored = await Promise.all(leases.map((l) => store.get(l.id)));
    expect(stored.map((l) => l?.subject)).toEqual(leases.map((l) => l.subject));
  });
});
