import { afterAll, beforeAll, expect, it } from 'vitest';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { command, info } from '../helpers/redis-nodes.ts';
import { startRedisSentinel, type TestRedisSentinel } from '../helpers/redis-sentinel.ts';
import { api, closeIssuers, lifecyclePolicy, operatorToken, startIssuers, uniq, waitFor, type Issued, type Issuers } from '../lifecycle/harness.ts';

/**
 * A primary the sentinels replace while it keeps Leash's connections open (here frozen with
 * SIGSTOP; a partition between it and the sentinels alone looks the same): ioredis alone stays on
 * it, so exchanges fail until it thaws and then write leases that its demotion wipes. Leash asks
 * the sentinels every second and moves to the primary they name.
 */
let sentinel: TestRedisSentinel;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
const logLines: string[] = [];

beforeAll(async () => {
  sentinel = await startRedisSentinel();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: sentinel.url, logLines });
  op = await operatorToken(broker.url, issuers, broker.config.issuer);
}, 120_000);
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await sentinel?.destroy();
});

const exchange = async (): Promise<{ status: number; body: any }> => {
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: `repo:octo-org/app:frozen-${uniq()}`, jti: `jti-${uniq()}` });
  return exchangeProof(broker.url, proof);
};

it('exchanges go to the new primary while the old one is frozen, and none of their leases is lost when it thaws', async () => {
  expect((await exchange()).status).toBe(200);
  const frozen = await sentinel.primary();
  const pid = frozen.pid()!;
  const handedOut: string[] = [];
  process.kill(pid, 'SIGSTOP');
  try {
    const promoted = await sentinel.waitForPromotion(frozen, { replicas: 1, timeoutMs: 30_000 });
    // Still frozen: only a client that left it can issue now.
    const first = await waitFor('an exchange to succeed on the promoted primary', async () => {
      const r = await exchange();
      return r.status === 200 ? r : null;
    }, 15_000, 200);
    handedOut.push(first.body.lease_id);
    for (let i = 0; i < 10; i++) {
      const r = await exchange();
      if (r.status === 200) handedOut.push(r.body.lease_id);
    }
    expect(handedOut.length).toBeGreaterThan(5);
    expect(logLines.some((l) => l.includes('Redis Sentinel names another primary') && l.includes(`:${promoted.port}`))).toBe(true);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // Thawed, the old primary is still a primary until the sentinels demote it; its resync from the
  // new one would wipe anything written to it meanwhile.
  await waitFor('the old primary to be demoted and in sync', async () => {
    const r = await info(frozen.port, 'replication');
    return r.role === 'slave' && r.master_link_status === 'up';
  }, 30_000, 200);
  for (let i = 0; i < 5; i++) {
    const r = await exchange();
    if (r.status === 200) handedOut.push(r.body.lease_id);
  }
  for (const id of handedOut) {
    const r = await api(broker.url, 'GET', `/v1/leases/${id}`, op.token);
    expect(r.status, id).toBe(200);
  }
}, 120_000);

it('/readyz names the primary the sentinels chose, not a default host', async () => {
  const primary = await sentinel.primary();
  await command(primary.port, 'CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru');
  try {
    const r = await api(broker.url, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.maxmemory_policy).toBe(`evicting: 127.0.0.1:${primary.port}=volatile-lru`);
  } finally {
    await command(primary.port, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
  }
}, 30_000);
