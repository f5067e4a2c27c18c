import { afterAll, beforeAll, expect, it } from 'vitest';
import { SWEEP_QUEUE_NAME } from '../../src/revocation/bullmq-queue.ts';
import { startLifecycleEnv, sweepsDone, waitFor, type LifecycleEnv } from './harness.ts';

/**
 * BullMQ adds each sweep's successor as the sweep starts; when Redis fails at that moment no
 * successor is added, and without a mend the sweeps, and so every expiry, stop for good.
 */
let env: LifecycleEnv;
beforeAll(async () => {
  env = await startLifecycleEnv();
}, 60_000);
afterAll(async () => env?.close());

it('a sweep schedule that lost its next run is mended by the worker, and the sweeps resume', async () => {
  const queue = `{${env.broker.config.redisPrefix}bull}:${SWEEP_QUEUE_NAME}`;
  // What a Redis failure at the wrong moment leaves: no pending sweep at all (none delayed, none waiting).
  const dropPending = async (): Promise<number> => {
    const delayed = await env.client.zrange(`${queue}:delayed`, '0', '-1');
    const waiting = await env.client.lrange(`${queue}:wait`, '0', '-1');
    for (const id of delayed) await env.client.zrem(`${queue}:delayed`, id);
    for (const id of waiting) await env.client.lrem(`${queue}:wait`, '0', id);
    for (const id of [...delayed, ...waiting]) await env.client.del(`${queue}:${id}`);
    return delayed.length + waiting.length;
  };
  await waitFor('a pending sweep', async () => (await env.client.zcard(`${queue}:delayed`)) + (await env.client.llen(`${queue}:wait`)) > 0, 10_000, 20);
  // A sweep running now would add one more successor: drop until none is left for a moment.
  await waitFor('no pending sweep', async () => (await dropPending()) === 0 && (await dropPending()) === 0, 10_000, 50);
  const before = await sweepsDone(env.broker);
  await waitFor('the sweeps to resume', async () => (await sweepsDone(env.broker)) >= before + 3, 20_000, 100);
  expect(await sweepsDone(env.broker)).toBeGreaterThanOrEqual(before + 3);
}, 60_000);
