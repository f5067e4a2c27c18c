import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { QUEUE_NAME } from '../../src/revocation/bullmq-queue.ts';
import { testKeysDir } from '../helpers/broker.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { MAIN, startChild, type Child } from './children.ts';
import {
  api, closeIssuers, endingEvents, holderRevoke, introspect, issue, lifecyclePolicy, operatorToken, pool,
  startIssuers, waitFor, type Issuers,
} from './harness.ts';

/**
 * Scale-out: two API processes and two worker processes (src/main.ts with LEASH_ROLE=api and
 * worker) over one Redis. 1,000 leases with TTLs of 2 to 4 s, about 30% revoked through the other
 * API process than the one that issued them: every lease ends exactly once.
 */

const N = 1_000;
const ISSUER = 'https://leash.multi.test';
const PREFIX = 'multi:';
let redis: TestRedis;
let client: Redis;
let issuers: Issuers;
let dir: string;
const children: Child[] = [];
const apis: string[] = [];
/** The workers' LEASH_METRICS_PORT listeners, where their sweeps are counted. */
const workerMetrics: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  issuers = await startIssuers();
  dir = mkdtempSync(join(tmpdir(), 'leash-multi-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, lifecyclePolicy(issuers));
  const base = {
    HOST: '127.0.0.1', REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, LEASH_POLICY: policy, LEASH_KEYS_DIR: await testKeysDir(),
    LEASH_ISSUER: ISSUER, LEASH_LOG_LEVEL: 'warn', LEASH_SWEEP_INTERVAL_MS: '100',
  };
  for (const n of [1, 2]) {
    const port = await freePort();
    children.push(startChild(MAIN, { ...base, PORT: String(port), LEASH_ROLE: 'api' }, `api ${n}`));
    apis.push(`http://127.0.0.1:${port}`);
    const metricsPort = await freePort();
    children.push(startChild(MAIN, { ...base, PORT: String(await freePort()), LEASH_METRICS_PORT: String(metricsPort), LEASH_ROLE: 'worker' }, `worker ${n}`));
    workerMetrics.push(`http://127.0.0.1:${metricsPort}`);
  }
  for (const url of apis) {
    await waitFor(`${url} to be ready`, async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 60_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}; ${children.map((c) => c.stderr()).join(' | ')}`); });
  }
  const q = new Queue(QUEUE_NAME, { connection: { url: redis.url }, prefix: `{${PREFIX}bull}` });
  try {
    await waitFor('both worker processes to connect', async () => (await q.getWorkersCount()) >= 2, 60_000, 100);
  } finally {
    await q.close();
  }
}, 150_000);

afterAll(async () => {
  for (const c of children) await c.kill('SIGTERM');
  await closeIssuers(issuers);
  client?.disconnect();
  await redis?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** leash_sweeps_total of one worker process, scraped from its metrics listener. */
async function sweepsOf(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^leash_sweeps_total (\S+)$/m.exec(text);
  if (!m) throw new Error(`no leash_sweeps_total at ${base}`);
  return Number(m[1]);
}

it('1,000 leases over two API and two worker processes, ~30% revoked: each ends exactly once', async () => {
  const op = await operatorToken(apis[0]!, issuers, ISSUER);
  const revoked = new Set<string>();
  const notInactive: string[] = [];
  const ids = await pool(Array.from({ length: N }, (_, i) => i), 12, async (i) => {
    const mine = apis[i % 2]!;
    const other = apis[(i + 1) % 2]!;
    const revoke = i % 10 < 3;
    // A lease to be revoked lives long enough that a loaded machine still revokes it before expiry.
    const t = await issue(mine, issuers.github, `repo:octo-org/multi:${i % 40}`, { ttl: String(revoke ? 60 : 2 + (i % 3)) });
    if (revoke) {
      if (i % 2 === 0) {
        expect((await holderRevoke(other, t.token)).status).toBe(200);
      } else {
        const r = await api(other, 'POST', `/v1/leases/${t.lease_id}/revoke`, op.token, { reason: 'multi' });
        expect(r.body.status).toBe('revoked');
      }
      revoked.add(t.lease_id);
      // Visible to the issuing process at once.
      if ((await introspect(mine, op.token, t.token)).body.active !== false) notInactive.push(t.lease_id);
    }
    return t.lease_id;
  });
  expect(notInactive).toEqual([]);
  expect(revoked.size).toBe(300);
  expect(new Set(ids).size).toBe(N);

  const done = await waitFor('every lease to end', async () => {
    const events = await endingEvents(client, PREFIX);
    return ids.every((id) => events.has(id)) ? events : null;
  }, 60_000, 250);
  // Two more sweeps in each worker and the revoke jobs drained: nothing may end twice.
  const from = await Promise.all(workerMetrics.map(sweepsOf));
  await waitFor('two more sweeps in each worker', async () => (await Promise.all(workerMetrics.map(sweepsOf))).every((n, w) => n >= from[w]! + 2), 20_000, 100);
  const q = new Queue(QUEUE_NAME, { connection: { url: redis.url }, prefix: `{${PREFIX}bull}` });
  try {
    await waitFor('the revoke jobs to drain', async () => {
      const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(c).every((n) => n === 0);
    }, 20_000, 100);
  } finally {
    await q.close();
  }
  const events = await endingEvents(client, PREFIX);
  expect(events.size).toBe(done.size);

  const store = createRedisLeaseStore({ redis: client, prefix: PREFIX });
  const leases = await pool(ids, 16, (id) => store.get(id));
  const tally = { revoked: 0, expired: 0 };
  for (const [i, id] of ids.entries()) {
    const lease = leases[i]!;
    const evs = events.get(id) ?? [];
    expect(evs).toHaveLength(1);
    expect(lease.ended_at).not.toBeNull();
    expect(lease.status).toBe(revoked.has(id) ? 'revoked' : 'expired');
    expect(evs[0]!.type).toBe(`lease.${lease.status}`);
    tally[lease.status as 'revoked' | 'expired']++;
  }
  expect(tally).toEqual({ revoked: 300, expired: 700 });
  expect(await store.countActive()).toBe(1); // the operator's own lease
  for (const c of children) expect(c.proc.exitCode).toBeNull();
}, 150_000);
