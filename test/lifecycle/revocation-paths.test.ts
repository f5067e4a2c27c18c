import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { TestBroker } from '../helpers/broker.ts';
import {
  afterSweeps, api, auditOf, endingEvents, holderRevoke, introspect, issue, operatorToken, sleep, waitEnded, waitFor, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv,
} from './harness.ts';

/**
 * Every revocation path (holder, task completion, operator, bulk by subject / rule / issuer):
 * introspection says inactive in the very next request, and the worker runs the effects once.
 */

let env: LifecycleEnv;
let client: Redis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
const OP_SUB = 'repo:octo-org/ops:alice';

beforeAll(async () => {
  env = await startLifecycleEnv();
  ({ client, issuers, broker, op } = env);
});
afterAll(async () => env?.close());

const gh = (sub: string, extra: Record<string, string> = {}): Promise<Issued> => issue(broker.url, issuers.github, sub, extra);
const isActive = async (t: Issued): Promise<boolean> => (await introspect(broker.url, op.token, t.token)).body.active;

/** Waits for the endings, lets a few more sweeps run, then expects exactly one lease.revoked each. */
async function expectRevokedOnce(ids: string[], actor: string, reason: string): Promise<void> {
  for (const id of ids) {
    expect(await waitEnded(broker.url, op.token, id)).toMatchObject({ status: 'revoked', revoked_by: actor, reason });
  }
  await afterSweeps(broker);
  await waitFor('the revoke jobs to drain', async () => (await broker.deps.revocations.depth()) === 0, 10_000);
  const events = await endingEvents(client, broker.config.redisPrefix);
  for (const id of ids) {
    expect(events.get(id)?.map((e) => [e.type, e.actor, e.reason])).toEqual([['lease.revoked', actor, reason]]);
  }
}

describe('holder revocation (POST /revoke)', () => {
  it('is inactive at the next request, ends once, and does not end again at its expiry', async () => {
    const t = await gh('repo:octo-org/app:holder', { ttl: '2' });
    expect(await isActive(t)).toBe(true);
    expect((await holderRevoke(broker.url, t.token)).status).toBe(200);
    expect(await isActive(t)).toBe(false);
    // revoking again is a quiet no-op
    expect((await holderRevoke(broker.url, t.token)).status).toBe(200);
    await expectRevokedOnce([t.lease_id], 'holder:repo:octo-org/app:holder', 'revoked by holder');
    const lease = await broker.deps.store.get(t.lease_id);
    await sleep(Math.max(0, lease!.expires_at * 1000 - Date.now())); // past expiry...
    await afterSweeps(broker); // ...and swept since: it did not end again
    const events = await endingEvents(client, broker.config.redisPrefix);
    expect(events.get(t.lease_id)).toHaveLength(1);
    expect((await broker.deps.store.get(t.lease_id))!.status).toBe('revoked');
  });

  it('leaves an audit event that names the request, as an operator revocation does', async () => {
    const t = await gh('repo:octo-org/app:holder-audit');
    const res = await fetch(`${broker.url}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'job-77-revoke' },
      body: new URLSearchParams({ token: t.token }),
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    // the token is dead now: revoking it again is answered alike and leaves no second event
    expect((await holderRevoke(broker.url, t.token)).status).toBe(200);
    const audit = await auditOf(broker.url, op.token, t.lease_id);
    const byHolder = audit.filter((e) => e.type === 'holder.lease_revoke');
    expect(byHolder).toHaveLength(1);
    expect(byHolder[0]).toMatchObject({
      actor: 'holder:repo:octo-org/app:holder-audit', request_id: requestId, client_request_id: 'job-77-revoke',
      lease_id: t.lease_id, rule: (await broker.deps.store.get(t.lease_id))!.rule, reason: 'revoked by holder', changed: true,
    });
  });

  it('leaves no event for a token that is not a live Leash token', async () => {
    const before = (await api(broker.url, 'GET', '/v1/audit?type=holder.lease_revoke&limit=100', op.token)).body.events.length;
    expect((await holderRevoke(broker.url, 'not-a-token')).status).toBe(200);
    const after = (await api(broker.url, 'GET', '/v1/audit?type=holder.lease_revoke&limit=100', op.token)).body.events.length;
    expect(after).toBe(before);
  });
});

describe('task completion', () => {
  it('ends the three leases of the task and only those', async () => {
    const task = [await gh('repo:octo-org/app:t1', { task_id: 'build-1' }), await gh('repo:octo-org/app:t2', { task_id: 'build-1' }), await gh('repo:octo-org/lib:t3', { task_id: 'build-1' })];
    const other = await gh('repo:octo-org/app:t1', { task_id: 'build-2' });
    const res = await api(broker.url, 'POST', '/v1/tasks/build-1/complete', task[1]!.token);
    expect(res.status).toBe(200);
    expect(res.body.revoked).toBe(3);
    expect(res.body.lease_ids.sort()).toEqual(task.map((t) => t.lease_id).sort());
    for (const t of task) expect(await isActive(t)).toBe(false);
    expect(await isActive(other)).toBe(true);
    await expectRevokedOnce(task.map((t) => t.lease_id), 'task:repo:octo-org/app:t2', 'task completed');
    expect((await broker.deps.store.get(other.lease_id))!.status).toBe('active');
    const done = await broker.deps.audit.list({ type: 'task.completed', limit: 10 });
    expect(done.events.filter((e) => e.task_id === 'build-1')).toHaveLength(1);
    // completing again ends nothing more (and the task's tokens no longer authorise it)
    const again = await api(broker.url, 'POST', '/v1/tasks/build-1/complete', op.token);
    expect(again.body.revoked).toBe(0);
    expect((await api(broker.url, 'POST', '/v1/tasks/build-1/complete', task[0]!.token)).status).toBe(401);
  });
});

describe('operator revocation (POST /v1/leases/{id}/revoke)', () => {
  it('is inactive at the next request and audited with the operator as actor', async () => {
    const t = await gh('repo:octo-org/app:victim');
    const res = await api(broker.url, 'POST', `/v1/leases/${t.lease_id}/revoke`, op.token, { reason: 'compromised runner' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: t.lease_id, status: 'revoked', revoked_by: OP_SUB, reason: 'compromised runner' });
    expect(await isActive(t)).toBe(false);
    // a second revoke changes nothing
    const again = await api(broker.url, 'POST', `/v1/leases/${t.lease_id}/revoke`, op.token, { reason: 'again' });
    expect(again.status).toBe(200);
    expect(again.body.reason).toBe('compromised runner');
    await expectRevokedOnce([t.lease_id], OP_SUB, 'compromised runner');
    const audit = await auditOf(broker.url, op.token, t.lease_id);
    const ops = audit.filter((e) => e.type === 'operator.lease_revoke');
    expect(ops.map((e) => [e.actor, e.changed])).toEqual([[OP_SUB, false], [OP_SUB, true]]);
    expect(audit.filter((e) => e.type === 'lease.revoked').map((e) => e.actor)).toEqual([OP_SUB]);
  });
});

describe('GET /v1/audit since', () => {
  it('takes epoch seconds (like lease times), epoch milliseconds (like event times) or ISO 8601', async () => {
    const t = await gh('repo:octo-org/app:since');
    const [allowed] = (await api(broker.url, 'GET', `/v1/audit?lease_id=${t.lease_id}&type=exchange.allowed`, op.token)).body.events;
    const ms: number = allowed.time;
    const types = async (since: string): Promise<string[]> => {
      const r = await api(broker.url, 'GET', `/v1/audit?lease_id=${t.lease_id}&since=${encodeURIComponent(since)}`, op.token);
      expect(r.status).toBe(200);
      return r.body.events.map((e: { type: string }) => e.type);
    };
    expect(await types(String(ms))).toEqual(['exchange.allowed']);
    expect(await types(String(Math.floor(ms / 1000)))).toEqual(['exchange.allowed']);
    expect(await types(new Date(ms).toISOString())).toEqual(['exchange.allowed']);
    expect(await types(String(Math.floor(ms / 1000) + 2))).toEqual([]);
    expect(await types(String(ms + 2000))).toEqual([]);
    const bad = await api(broker.url, 'GET', '/v1/audit?since=yesterday', op.token);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/epoch seconds, epoch milliseconds or an ISO 8601 time/);
  });
});

describe('bulk revocation (POST /v1/leases/revoke)', () => {
  async function bulk(selector: Record<string, string>, hit: Issued[], spared: Issued[]): Promise<void> {
    const reason = `bulk ${Object.keys(selector).join('+')}`;
    const res = await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { ...selector, reason });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ revoked: hit.length });
    for (const t of hit) expect(await isActive(t)).toBe(false);
    for (const t of spared) expect(await isActive(t)).toBe(true);
    await expectRevokedOnce(hit.map((t) => t.lease_id), OP_SUB, reason);
    const events = (await api(broker.url, 'GET', '/v1/audit?type=operator.bulk_revoke&limit=50', op.token)).body.events;
    expect(events.filter((e: { reason: string }) => e.reason === reason)).toMatchObject([{ actor: OP_SUB, count: hit.length, selector }]);
  }

  it('by subject', async () => {
    const hit = [await gh('repo:octo-org/app:bulk-s'), await gh('repo:octo-org/app:bulk-s'), await gh('repo:octo-org/app:bulk-s')];
    const spared = [await gh('repo:octo-org/app:bulk-s2')];
    await bulk({ subject: 'repo:octo-org/app:bulk-s' }, hit, spared);
  });

  it('by rule', async () => {
    const hit = [await gh('repo:octo-org/batch:r1'), await gh('repo:octo-org/batch:r2')];
    const spared = [await gh('repo:octo-org/app:not-batch')];
    await bulk({ rule: 'batch' }, hit, [...spared, op]);
  });

  it('by issuer', async () => {
    const hit = [await issue(broker.url, issuers.gitlab, 'project_path:my-group/a'), await issue(broker.url, issuers.gitlab, 'project_path:my-group/b')];
    const spared = [await gh('repo:octo-org/app:github-one')];
    await bulk({ issuer: 'gitlab' }, hit, [...spared, op]);
  });

  it('by subject and rule together, and a selector that matches nothing', async () => {
    const hit = [await gh('repo:octo-org/batch:both')];
    const spared = [await gh('repo:octo-org/app:both')];
    await bulk({ subject: 'repo:octo-org/batch:both', rule: 'batch' }, hit, spared);
    expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'nobody' })).body).toEqual({ revoked: 0 });
  });
});

describe('the kill switch never locks its operator out', () => {
  it("keeps the caller's own lease unless include_self, and says so in the answer and the audit event", async () => {
    const who = 'bob';
    const sub = `repo:octo-org/ops:${who}`;
    const mine = await operatorToken(broker.url, issuers, broker.config.issuer, { who });
    const twin = await operatorToken(broker.url, issuers, broker.config.issuer, { who });
    const res = await api(broker.url, 'POST', '/v1/leases/revoke', mine.token, { subject: sub, reason: 'rotate ops' });
    expect(res.body).toEqual({ revoked: 1, kept_self: true });
    expect(await isActive(twin)).toBe(false);
    expect(await isActive(mine)).toBe(true);
    expect((await api(broker.url, 'GET', '/v1/leases?limit=1', mine.token)).status).toBe(200);
    const events = (await api(broker.url, 'GET', '/v1/audit?type=operator.bulk_revoke&limit=50', op.token)).body.events;
    expect(events.find((e: { reason: string }) => e.reason === 'rotate ops')).toMatchObject({ actor: sub, count: 1, kept_self: true });

    // A selection that does not hold the caller's lease says nothing about it.
    expect((await api(broker.url, 'POST', '/v1/leases/revoke', mine.token, { subject: 'nobody' })).body).toEqual({ revoked: 0 });

    const all = await api(broker.url, 'POST', '/v1/leases/revoke', mine.token, { subject: sub, include_self: true });
    expect(all.body).toEqual({ revoked: 1 });
    expect(await isActive(mine)).toBe(false);
    expect((await api(broker.url, 'GET', '/v1/leases?limit=1', mine.token)).status).toBe(401);
  });

  it('include_self must be a boolean', async () => {
    const res = await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'nobody', include_self: 'yes' });
    expect([res.status, res.body.error]).toEqual([400, 'bad_request']);
  });
});


describe('a subject far longer than usual (3,000 characters)', () => {
  it('is listed, audited and bulk revoked by its subject, as any other', async () => {
    const sub = `repo:octo-org/${'L'.repeat(3000)}`;
    const t = await gh(sub);
    const q = `subject=${encodeURIComponent(sub)}`;
    const listed = await api(broker.url, 'GET', `/v1/leases?${q}`, op.token);
    expect(listed.status).toBe(200);
    expect(listed.body.leases.map((l: { id: string }) => l.id)).toEqual([t.lease_id]);
    const audit = await api(broker.url, 'GET', `/v1/audit?${q}&type=exchange.allowed`, op.token);
    expect(audit.body.events.map((e: { lease_id: string }) => e.lease_id)).toEqual([t.lease_id]);

    expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: sub, reason: 'kill switch' })).body).toEqual({ revoked: 1 });
    expect(await isActive(t)).toBe(false);
    // The kill switch takes the longest subject a proof may hold, in its body.
    expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'x'.repeat(16_384) })).body).toEqual({ revoked: 0 });
    // Longer than any proof Leash reads: no lease can have it.
    const tooLong = await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'x'.repeat(16_385) });
    expect(tooLong.status).toBe(400);
  });
});
