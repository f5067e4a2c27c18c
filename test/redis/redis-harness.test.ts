import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

let redis: TestRedis;
beforeAll(async () => { redis = await startRedis({ persist: true }); });
afterAll(async () => { await redis.destroy(); });

it('starts a private redis-server that keeps data across a restart when persistent', async () => {
  const c = new Redis(redis.url);
  await c.set('k', 'v');
  c.disconnect();
  await redis.restart();
  const c2 = new Redis(redis.url);
  expect(await c2.get('k')).toBe('v');
  c2.disconnect();
});
