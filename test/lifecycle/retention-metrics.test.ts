import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisKeys } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { retainedEndedAt } from '../helpers/retention.ts';
import type { TestBroker } from '../helpers/broker.ts';
import {
  api, holderRevoke, issue, waitEnded, waitFor, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv,
} from './harness.ts';

/**
 * Retention of ended leases (LEASH_RETENTION=3 s) and the lifecycle metrics after real traffic.
 * Three seconds, not one: the test reads the ended lease before retention drops it, and a loaded
 * machine can take over a second between the ending and that read.
 */

let env: LifecycleEnv;
let client: Redis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;

beforeAll(async () => {
  env = await startLifecycleEnv({ env: { LEASH_RETENTION: '3' } });
  ({ client, issuers, broker, op } = env);
  expect(broker.config.retentionSeconds).toBe(3);
});
afterAll(async () => env?.close());

describe('retention', () => {
  it('an ended lease is readable at first, then gone (404) after retention, with nothing left in Redis', async () => {
    const revoked = await issue(broker.url, issuers.github, 'repo:octo-org/app:retained');
    const expiring = await issue(broker.url, issuers.github, 'repo:octo-org/app:retained-ttl', { ttl: '1' });
    await api(broker.url, 'POST', `/v1/leases/${revoked.lease_id}/revoke`, op.token, { reason: 'retention test' });
    const keys = redisKeys(broker.config.redisPrefix);
    await Promise.all(([[revoked, 'revoked'], [expiring, 'expired']] as const).map(async ([t, status]) => {
      const ended = await waitEnded(broker.url, op.token, t.lease_id, 15_000);
      expect(ended.status).toBe(status);
      const shard = shardOfLeaseId(t.lease_id);
      const dropAfter = (await retainedEndedAt(client, keys, shard, t.lease_id))! + 3000; // ended ms + retention
      expect(dropAfter).toBeGreaterThan(Date.now());
      const listed = await api(broker.url, 'GET', `/v1/leases?subject=${encodeURIComponent(ended.subject)}`, op.token);
      expect(listed.body.leases.map((l: { id: string }) => l.id)).toContain(t.lease_id);

      await waitFor(`${status} lease to pass retention`, async () => (await api(broker.url, 'GET', `/v1/leases/${t.lease_id}`, op.token)).status === 404, 15_000, 50);
      expect(Date.now()).toBeGreaterThanOrEqual(dropAfter); // not dropped before its time
      const r = await api(broker.url, 'GET', `/v1/leases/${t.lease_id}`, op.token);
      expect(r.body).toMatchObject({ error: 'not_found' });
      const after = await api(broker.url, 'GET', `/v1/leases?subject=${encodeURIComponent(ended.subject)}`, op.token);
      expect(after.body.leases).toEqual([]);
      expect(await client.hexists(keys.leases(shard), t.lease_id)).toBe(0);
      for (const k of [keys.all(shard), keys.gone(shard), keys.due(shard), keys.pending(shard)]) expect(await client.zscore(k, t.lease_id)).toBeNull();
      expect(await retainedEndedAt(client, keys, shard, t.lease_id)).toBeNull();
    }));
    // The audit keeps the record after the lease itself is gone.
    const audit = await api(broker.url, 'GET', `/v1/audit?lease_id=${revoked.lease_id}`, op.token);
    expect(audit.body.events.map((e: { type: string }) => e.type)).toContain('lease.revoked');
  });
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

describe('metrics', () => {
  it('after traffic, /metrics shows active leases, endings, revocations, expiry lag and queue depth', async () => {
    const expiring = await Promise.all([0, 1, 2].map((i) => issue(broker.url, issuers.github, `repo:octo-org/app:metrics-${i}`, { ttl: '1' })));
    const held = await issue(broker.url, issuers.github, 'repo:octo-org/app:metrics-held');
    const kept = await issue(broker.url, issuers.github, 'repo:octo-org/app:metrics-kept');
    await holderRevoke(broker.url, held.token);
    await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'repo:octo-org/batch:none' });
    const find = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

    // Scraped until the endings are counted and the queue has drained to 0 (the sweep's own
    // schedule is not backlog). Ended leases may be gone already: retention is 3 s here.
    const samples = await waitFor('the endings to be counted and the queue to drain', async () => {
      const r = await fetch(`${broker.url}/metrics`, { headers: { authorization: `Bearer ${op.token}` } });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
      const s = parseMetrics(await r.text());
      const done = (find(s, 'leash_lease_endings_total', { status: 'expired', reason: 'ttl' }) ?? 0) >= 3
        && find(s, 'leash_lease_endings_total', { status: 'revoked', reason: 'revoked_by_holder' }) === 1;
      return done && find(s, 'leash_queue_depth') === 0 ? s : null;
    }, 20_000, 100);
    const one = (name: string, labels: Record<string, string> = {}): number | undefined => find(samples, name, labels);

    expect(one('leash_active_leases')).toBe(await broker.deps.store.countActive());
    expect(one('leash_active_leases')).toBeGreaterThanOrEqual(2); // the operator's and `kept`
    expect((await broker.deps.store.get(kept.lease_id))!.status).toBe('active');
    expect(expiring.map((t) => t.expires_in)).toEqual([1, 1, 1]);
    expect(one('leash_lease_endings_total', { status: 'expired', reason: 'ttl' })).toBeGreaterThanOrEqual(3);
    expect(one('leash_lease_endings_total', { status: 'revoked', reason: 'revoked_by_holder' })).toBe(1);
    expect(one('leash_revocations_total', { path: 'holder' })).toBe(1);
    expect(one('leash_revocations_total', { path: 'bulk' })).toBeUndefined(); // matched nothing
    const lagCount = one('leash_expiry_lag_seconds_count')!;
    expect(lagCount).toBeGreaterThanOrEqual(3);
    // In seconds (a figure in ms would be ~1000x): how small it is, is the bench's expiry lag section.
    expect(one('leash_expiry_lag_seconds_sum')! / lagCount).toBeLessThan(15);
    expect(one('leash_expiry_lag_seconds_bucket', { le: '+Inf' })).toBe(lagCount);
    expect(one('leash_queue_depth')).toBe(0);
  });
});
