/**
 * A lease record no script can read (bytes that are not a lease), through the real broker and its
 * BullMQ worker: introspection answers inactive, the sweep skips it, logs `unreadable lease` with
 * its id and counts it once, and every other lease of its shard still expires on time.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis as IORedis, type Redis } from 'ioredis';
import { redisKeys, shardOfSubject } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { api, closeIssuers, holderRevoke, introspect, issue, lifecyclePolicy, operatorToken, startIssuers, waitFor, type Issued, type Issuers } from './harness.ts';

let redis: TestRedis;
let client: Redis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
const lines: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new IORedis(redis.url);
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url, logLines: lines });
  op = await operatorToken(broker.url, issuers, broker.config.issuer);
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  client?.disconnect();
  await redis?.destroy();
});

const unreadableCount = async (): Promise<number> =>
  (await broker.deps.metrics.registry.getSingleMetric('leash_unreadable_records_total')!.get()).values[0]?.value ?? 0;
const unreadableLines = (): { lease_id: string }[] =>
  lines.map((l) => JSON.parse(l) as { msg: string; lease_id: string }).filter((l) => l.msg === 'unreadable lease');

it('is inactive to introspection, skipped and reported once by the sweep, and stops no other ending of its shard', async () => {
  const victimSub = 'repo:octo-org/app:victim';
  const shard = shardOfSubject(victimSub);
  const neighbours: string[] = [];
  for (let i = 0; neighbours.length < 3; i++) if (shardOfSubject(`repo:octo-org/app:n${i}`) === shard) neighbours.push(`repo:octo-org/app:n${i}`);
  const victim = await issue(broker.url, issuers.github, victimSub);
  const others = await Promise.all(neighbours.map((sub) => issue(broker.url, issuers.github, sub, { ttl: '1' })));
  expect((await introspect(broker.url, op.token, victim.token)).body).toMatchObject({ active: true });

  const keys = redisKeys(broker.config.redisPrefix);
  expect(shardOfLeaseId(victim.lease_id)).toBe(shard);
  await client.hset(keys.leases(shard), victim.lease_id, Buffer.from([0x5b, 0xff, 0x00, 0x7b]));
  await client.zadd(keys.due(shard), 0, victim.lease_id); // due now: the next sweep meets it first

  expect((await introspect(broker.url, op.token, victim.token)).body).toEqual({ active: false });
  await waitFor('the unreadable lease to be reported', async () => unreadableLines().length > 0);
  for (const o of others) {
    await waitFor(`lease ${o.lease_id} to expire`, async () => (await api(broker.url, 'GET', `/v1/leases/${o.lease_id}`, op.token)).body.status === 'expired');
  }
  expect(await client.zscore(keys.due(shard), victim.lease_id)).toBeNull();

  // Every reader and ending path treats it as no lease, without an error.
  expect((await api(broker.url, 'GET', `/v1/leases/${victim.lease_id}`, op.token)).status).toBe(404);
  expect((await api(broker.url, 'GET', '/v1/leases?limit=100', op.token)).status).toBe(200);
  expect((await api(broker.url, 'POST', `/v1/leases/${victim.lease_id}/revoke`, op.token, {})).status).toBe(404);
  expect((await holderRevoke(broker.url, victim.token)).status).toBe(200);
  expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: victimSub })).body).toEqual({ revoked: 0 });
  expect((await introspect(broker.url, op.token, victim.token)).body).toEqual({ active: false });

  expect(unreadableLines().map((l) => l.lease_id)).toEqual([victim.lease_id]);
  expect(await unreadableCount()).toBe(1);
});

it('a bulk revocation by subject, rule or issuer reports every record not even shaped like a lease, and ends the rest', async () => {
  const keys = redisKeys(broker.config.redisPrefix);
  // Not one of these is in a lease record's outer shape: a scan of every lease must still read them.
  const garbage = ['garbage\0\xff', '[1,2', '{"status":"active"}', '[]'];
  const selectors = [(sub: string) => ({ subject: sub }), () => ({ rule: 'gl-build' }), () => ({ issuer: 'gitlab' })];
  for (const [round, select] of selectors.entries()) {
    const sub = `gitlab-bulk-${round}`;
    const leases = await Promise.all(Array.from({ length: 6 }, () => issue(broker.url, issuers.gitlab, sub)));
    const bad = leases.slice(0, garbage.length);
    for (const [i, l] of bad.entries()) await client.hset(keys.leases(shardOfLeaseId(l.lease_id)), l.lease_id, garbage[i]!);
    const countBefore = await unreadableCount();

    const res = await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { ...select(sub), reason: 'kill switch' });
    expect(res.body).toEqual({ revoked: leases.length - bad.length });
    const reported = unreadableLines().map((l) => l.lease_id);
    for (const l of bad) expect(reported).toContain(l.lease_id);
    expect(await unreadableCount()).toBe(countBefore + bad.length);
    for (const l of leases) expect((await introspect(broker.url, op.token, l.token)).body).toEqual({ active: false });
  }
});
