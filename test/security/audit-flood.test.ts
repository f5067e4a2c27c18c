/**
 * Audit retention under a flood of anonymous garbage: refusals live in streams of their own,
 * capped by LEASH_AUDIT_MAX_DENIALS, so they evict only older refusals and never the record of a
 * credential (`exchange.allowed` of a live lease). Before, every unparsable request went to the
 * one shard stream it shared with a 16th of the leases and trimmed their issuance events away.
 * LEASH_AUDIT_MAX_EVENTS is the total of credential events, whichever shards they are in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.ts';
import { shardOfString } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy } from '../helpers/policies.ts';
import { ghClaims, operatorToken, rawPost, startSecurityEnv, uniq, workloadToken, type SecurityEnv } from './harness.ts';

const MAX_DENIALS = 320;
let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv({ broker: { env: { LEASH_AUDIT_MAX_EVENTS: '1600', LEASH_AUDIT_MAX_DENIALS: String(MAX_DENIALS) } } });
});
afterAll(async () => env?.close());

async function auditPages(url: string, token: string, query: Record<string, string>): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | null = null;
  do {
    const qs = new URLSearchParams({ ...query, limit: '1000', ...(cursor ? { cursor } : {}) });
    const res = await fetch(`${url}/v1/audit?${qs}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { events: AuditEvent[]; next_cursor: string | null };
    out.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

describe('a flood of anonymous refusals', () => {
  it('evicts only older refusals: every live credential keeps its exchange.allowed event', async () => {
    // Live leases, at least three of them in the shard anonymous refusals were once written to.
    const hot = shardOfString('unverified');
    const leases: string[] = [];
    while (leases.filter((id) => shardOfLeaseId(id) === hot).length < 3) leases.push((await workloadToken(env)).leaseId);
    const { token } = await operatorToken(env);

    const flood = 2000;
    const sent: string[] = [];
    for (let i = 0; i < flood; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => rawPost(`${env.broker.url}/token`, 'grant_type=garbage', { 'content-type': 'application/x-www-form-urlencoded' })));
      for (const res of batch) {
        expect(res.status).toBe(400);
        sent.push(res.headers.get('x-request-id')!);
      }
    }

    const allowed = await auditPages(env.broker.url, token, { type: 'exchange.allowed' });
    expect(allowed.map((e) => e.lease_id)).toEqual(expect.arrayContaining(leases));
    for (const id of leases.filter((l) => shardOfLeaseId(l) === hot)) {
      expect((await auditPages(env.broker.url, token, { lease_id: id })).map((e) => e.type)).toEqual(['exchange.allowed']);
    }

    const refusals = await auditPages(env.broker.url, token, { type: 'exchange.denied' });
    expect(refusals.length).toBeLessThan(flood);
    const kept = new Set(refusals.map((e) => e.request_id));
    // The newest 300 (sent after all others, within the cap of 320) are all still there.
    for (const id of sent.slice(-300)) expect(kept.has(id), `refusal ${id}`).toBe(true);
    // The unfiltered listing merges both kinds, newest first, one page after another.
    const all = await auditPages(env.broker.url, token, {});
    expect(all.filter((e) => e.type === 'exchange.denied')).toEqual(refusals);
    expect(all.filter((e) => e.type === 'exchange.allowed')).toEqual(allowed);
  });
});

describe('LEASH_AUDIT_MAX_EVENTS', () => {
  let small: TestBroker;
  beforeAll(async () => {
    small = await startBroker({ policy: e2ePolicy(env.issuers), redisUrl: env.redis.url, env: { LEASH_AUDIT_MAX_EVENTS: '16' } });
  });
  afterAll(async () => small?.close());

  it('is the total kept over every shard: the worker trims the oldest, wherever they are', async () => {
    for (let i = 0; i < 40; i++) {
      expect((await rawPost(`${small.url}/token`, 'grant_type=garbage', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(400);
    }
    const { token } = await tokenOf(small, { sub: `repo:octo-org/ops:${uniq('op')}` });
    const issued: string[] = [];
    for (let i = 0; i < 40; i++) issued.push((await tokenOf(small)).leaseId);
    // The sweep (every 100 ms here) trims; wait until the total is back to the cap.
    let kept: AuditEvent[] = [];
    for (let i = 0; i < 200; i++) {
      kept = (await small.deps.audit.list({ limit: 1000 })).events.filter((e) => e.type !== 'exchange.denied');
      if (kept.length <= 16) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(kept.length).toBe(16);
    // The newest 16 credential events, spread over shards: the last 16 leases issued.
    expect(kept.map((e) => e.lease_id)).toEqual(issued.slice(-16).reverse());
    // Refusals are not counted against it.
    expect((await auditPages(small.url, token, { type: 'exchange.denied' })).length).toBe(40);
  });
});

/** A token of `broker` from a fresh GitHub proof (`sub` overrides the workload subject). */
async function tokenOf(broker: TestBroker, claims: Record<string, unknown> = {}): Promise<{ token: string; leaseId: string }> {
  const res = await exchangeProof(broker.url, await env.issuers.github.mint(ghClaims(env, claims)));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}
