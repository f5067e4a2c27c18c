/**
 * Every ending is an audit event in Redis and a line of the JSON log (the README says both). The
 * worker writes a script's lines together; each must still be its own line, the event as stored.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, auditOf, issue, startLifecycleEnv, waitFor, type LifecycleEnv } from './harness.ts';

let env: LifecycleEnv;
const lines: string[] = [];

beforeAll(async () => {
  env = await startLifecycleEnv({ logLines: lines });
});
afterAll(async () => {
  await env?.close();
});

it('logs each expiry once, on a line of its own, as the event the audit stream holds', async () => {
  // One subject: the leases share a shard, so one ending script takes them together.
  const leases = await Promise.all(Array.from({ length: 5 }, () => issue(env.broker.url, env.issuers.github, 'repo:octo-org/octo-repo:ref:refs/heads/main', { ttl: '1' })));
  for (const l of leases) {
    await waitFor(`lease ${l.lease_id} to expire`, async () => (await api(env.broker.url, 'GET', `/v1/leases/${l.lease_id}`, env.op.token)).body.status === 'expired');
  }
  const audited = lines.map((l) => JSON.parse(l) as { msg: string; audit?: { type: string; lease_id: string } }).filter((l) => l.msg === 'audit' && l.audit?.type === 'lease.expired');
  for (const l of leases) {
    const logged = audited.filter((a) => a.audit!.lease_id === l.lease_id);
    expect(logged).toHaveLength(1);
    const stored = (await auditOf(env.broker.url, env.op.token, l.lease_id)).filter((e: { type: string }) => e.type === 'lease.expired');
    expect(stored).toEqual([logged[0]!.audit]);
  }
});
