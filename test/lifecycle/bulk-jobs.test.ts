import { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { QUEUE_NAME } from '../../src/revocation/bullmq-queue.ts';
import { WALK_CONNECTION_NAME } from '../../src/revocation/walk-process-wire.ts';
import { api, endingEvents, leaseFor, pool, startLifecycleEnv, waitFor, type LifecycleEnv } from './harness.ts';

// A kill switch over thousands of leases: its effects go out as several bounded revoke jobs (not one
// job holding every id), and every lease still ends exactly once.
let env: LifecycleEnv;
beforeAll(async () => {
  env = await startLifecycleEnv();
}, 60_000);
afterAll(async () => env?.close());

it('a bulk revocation of 12,000 leases is carried out in jobs of at most 5,000 ids, each lease ended once', async () => {
  const subject = 'repo:octo-org/bulk:jobs';
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const leases = Array.from({ length: 12_000 }, () => leaseFor({ subject, expires_at: expires }));
  await pool(leases, 64, (l) => env.broker.deps.store.create(l));

  const q = new Queue(QUEUE_NAME, { connection: { url: env.redis.url }, prefix: `{${env.broker.config.redisPrefix}bull}` });
  try {
    const res = await api(env.broker.url, 'POST', '/v1/leases/revoke', env.op.token, { subject, reason: 'kill switch' });
    expect(res.body).toEqual({ revoked: 12_000 });
    // The walk ran in the API's bulk revocation process, over that process's own connection.
    const clients = ((await env.client.client('LIST')) as string).split('\n');
    expect(clients.filter((c) => c.includes(` name=${WALK_CONNECTION_NAME} `)).map((c) => / cmd=(\S+)/.exec(c)?.[1])).toEqual(['evalsha']);
    const ended = await waitFor('every lease to end', async () => {
      const events = await endingEvents(env.client, env.broker.config.redisPrefix);
      return leases.every((l) => events.has(l.id)) ? events : null;
    }, 120_000, 500);
    for (const l of leases) expect(ended.get(l.id)).toHaveLength(1);
    const jobs = await q.getJobs(['completed', 'active', 'waiting', 'failed'], 0, 100);
    const sizes = jobs.map((j) => (j.data as { ids?: string[] }).ids?.length ?? 0).filter((n) => n > 0).sort((a, b) => b - a);
    expect(sizes).toEqual([5_000, 5_000, 2_000]);
  } finally {
    await q.close();
  }
}, 180_000);

it('with its walker gone, a bulk revocation is walked and its effects queued by the API process itself', async () => {
  const walker = env.broker.deps.walker!;
  process.kill(walker.pid()!, 'SIGKILL');
  await waitFor('the walker to be gone', async () => walker.pid() === undefined, 10_000, 20);
  const subject = 'repo:octo-org/bulk:no-walker';
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const leases = Array.from({ length: 300 }, () => leaseFor({ subject, expires_at: expires }));
  await pool(leases, 64, (l) => env.broker.deps.store.create(l));
  const res = await api(env.broker.url, 'POST', '/v1/leases/revoke', env.op.token, { subject, reason: 'kill switch' });
  expect(res.body).toEqual({ revoked: 300 });
  const ended = await waitFor('every lease to end', async () => {
    const events = await endingEvents(env.client, env.broker.config.redisPrefix);
    return leases.every((l) => events.has(l.id)) ? events : null;
  }, 60_000, 200);
  for (const l of leases) expect(ended.get(l.id)).toHaveLength(1);
}, 60_000);
