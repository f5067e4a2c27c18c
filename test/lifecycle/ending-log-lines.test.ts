/**
 * Every ending is an audit event in Redis and a line of the JSON log (the README says both). The
 * worker writes a script's lines together; each must still be its own line, the event as stored.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { api, auditOf, closeIssuers, issue, lifecyclePolicy, operatorToken, startIssuers, waitFor, type Issued, type Issuers } from './harness.ts';

let redis: TestRedis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
const lines: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url, logLines: lines });
  op = await operatorToken(broker.url, issuers, broker.config.issuer);
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await redis?.destroy();
});

it('logs each expiry once, on a line of its own, as the event the audit stream holds', async () => {
  // One subject: the leases share a shard, so one ending script takes them together.
  const leases = await Promise.all(Array.from({ length: 5 }, () => issue(broker.url, issuers.github, 'repo:octo-org/octo-repo:ref:refs/heads/main', { ttl: '1' })));
  for (const l of leases) {
    await waitFor(`lease ${l.lease_id} to expire`, async () => (await api(broker.url, 'GET', `/v1/leases/${l.lease_id}`, op.token)).body.status === 'expired');
  }
  const audited = lines.map((l) => JSON.parse(l) as { msg: string; audit?: { type: string; lease_id: string } }).filter((l) => l.msg === 'audit' && l.audit?.type === 'lease.expired');
  for (const l of leases) {
    const logged = audited.filter((a) => a.audit!.lease_id === l.lease_id);
    expect(logged).toHaveLength(1);
    const stored = (await auditOf(broker.url, op.token, l.lease_id)).filter((e: { type: string }) => e.type === 'lease.expired');
    expect(stored).toEqual([logged[0]!.audit]);
  }
});
