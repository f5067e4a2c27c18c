import { afterAll, expect, it } from 'vitest';
import { connectRedis, type RedisClient } from '../../src/redis/connect.ts';
import { RedisOutages, watchOutages } from '../../src/redis/outages.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

let redis: TestRedis | undefined;
let client: RedisClient | undefined;
afterAll(async () => {
  client?.disconnect();
  await redis?.destroy();
});

it('counts a lost connection as an outage only once the client has been ready: failed first connects are none', async () => {
  redis = await startRedis();
  await redis.stop();
  client = connectRedis(redis.url);
  const outages = new RedisOutages();
  watchOutages(client, outages);
  const errors: unknown[] = [];
  client.on('error', (e) => errors.push(e));
  await waitFor('connection attempts to fail', async () => errors.length >= 2, 10_000);
  expect(outages.recent(60_000)).toBeNull();

  await redis.start();
  await waitFor('the client to be ready', async () => client!.status === 'ready', 10_000);
  expect(outages.recent(60_000)).toBeNull();

  await redis.stop();
  const spell = await waitFor('the lost connection to count', async () => outages.recent(60_000), 10_000);
  expect(spell.lastMs).toBeGreaterThanOrEqual(spell.startMs);
  expect(spell.backMs).toBeUndefined();
  await redis.start();
  const back = await waitFor('the client to be back', async () => outages.recent(60_000)?.backMs, 10_000);
  expect(back).toBeGreaterThanOrEqual(spell.startMs);
});
