import { once } from 'node:events';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startBroker, testKeysDir } from '../helpers/broker.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { baseArgs, spawnRedisNode } from '../helpers/redis-nodes.ts';
import { MAIN, startChild } from '../lifecycle/children.ts';
import { api, closeIssuers, lifecyclePolicy, startIssuers, waitFor, type Issuers } from '../lifecycle/harness.ts';

/** A Redis that may evict keys would drop leases and revocations silently: Leash refuses it. */
let redis: TestRedis;
let client: Redis;
let issuers: Issuers;
beforeAll(async () => {
  issuers = await startIssuers();
  redis = await startRedis();
  client = new Redis(redis.url);
  await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
});
afterAll(async () => {
  client?.disconnect();
  await redis?.destroy();
  await closeIssuers(issuers);
});

const brokerEnv = async (extra: Record<string, string> = {}): Promise<Record<string, string>> => ({
  PORT: String(await freePort()), HOST: '127.0.0.1', REDIS_URL: redis.url, LEASH_KEYS_DIR: await testKeysDir(), LEASH_POLICY: 'policy.example.yaml', ...extra,
});

it('an allkeys-lru Redis stops the start naming maxmemory-policy; LEASH_ALLOW_EVICTION=1 starts with a warning', async () => {
  const refused = startChild(MAIN, await brokerEnv(), 'broker');
  const [code] = (await once(refused.proc, 'exit')) as [number | null];
  expect(code).toBe(1);
  expect(refused.stderr()).toMatch(/^leash: cannot start: Redis maxmemory-policy is not noeviction \(.*=allkeys-lru\)/m);
  expect(refused.stderr()).toContain('LEASH_ALLOW_EVICTION');

  const allowed = startChild(MAIN, await brokerEnv({ LEASH_ALLOW_EVICTION: '1' }), 'broker');
  try {
    const warning = await allowed.waitLine((l) => l.includes('maxmemory-policy'), 60_000);
    expect(JSON.parse(warning)).toMatchObject({ level: 40, msg: expect.stringContaining('LEASH_ALLOW_EVICTION=1') });
    await allowed.waitLine((l) => l.includes('leash listening'), 60_000);
  } finally {
    await allowed.kill('SIGTERM');
  }
}, 180_000);

it('/readyz is not ready while a primary may evict, and ready again once it may not', async () => {
  await client.config('SET', 'maxmemory-policy', 'noeviction');
  const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url });
  try {
    expect((await api(broker.url, 'GET', '/readyz')).body.checks.maxmemory_policy).toBe('noeviction');
    await client.config('SET', 'maxmemory-policy', 'volatile-lru');
    const r = await api(broker.url, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.maxmemory_policy).toMatch(/^evicting: .*=volatile-lru/);
    await client.config('SET', 'maxmemory-policy', 'noeviction');
    await waitFor('ready again', async () => (await api(broker.url, 'GET', '/readyz')).status === 200);
  } finally {
    await broker.close();
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
  }
});

it('a Redis that refuses CONFIG (managed Redis) starts with a warning naming maxmemory-policy', async () => {
  const port = await freePort();
  const dir = `${redis.dir}/managed-${port}`;
  const managed = await spawnRedisNode(port, dir, [...baseArgs(port, dir), '--rename-command', 'CONFIG', '']);
  const lines: string[] = [];
  const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${port}`, logLines: lines });
  try {
    const warning = lines.map((l) => JSON.parse(l)).find((l) => String(l.msg).includes('maxmemory-policy'));
    expect(warning).toMatchObject({ level: 40 });
    const r = await api(broker.url, 'GET', '/readyz');
    expect(r.status).toBe(200);
    expect(r.body.checks.maxmemory_policy).toMatch(/^unknown \(CONFIG refused/);
  } finally {
    await broker.close();
    await managed.kill();
  }
});
