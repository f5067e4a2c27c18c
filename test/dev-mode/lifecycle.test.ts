import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMemoryAuditLog } from '../../src/audit/memory-audit-log.ts';
import { createMemoryLeaseStore } from '../../src/leases/memory-store.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import {
  afterSweeps, api, auditOf, closeIssuers, holderRevoke, introspect, issue, leaseFor, lifecyclePolicy, operatorToken, sleep, startIssuers,
  waitEnded, waitFor, type Issued, type Issuers,
} from '../lifecycle/harness.ts';

/** Dev mode (memory store, in-process queue and sweep): the same lifecycle as with Redis and BullMQ. */

let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
const OP_SUB = 'repo:octo-org/ops:alice';

beforeAll(async () => {
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers) });
  expect(broker.config.redisUrl).toBeUndefined();
  op = await operatorToken(broker.url, issuers, broker.config.issuer);
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
});

const gh = (sub: string, extra: Record<string, string> = {}): Promise<Issued> => issue(broker.url, issuers.github, sub, extra);
const isActive = async (t: Issued): Promise<boolean> => (await introspect(broker.url, op.token, t.token)).body.active;

/** Exactly one ending event of the given type for the lease, after a few more sweeps had the chance to run. */
async function expectOneEnding(leaseId: string, type: string, actor: string): Promise<void> {
  await waitEnded(broker.url, op.token, leaseId, 15_000);
  await afterSweeps(broker);
  const endings = (await auditOf(broker.url, op.token, leaseId)).filter((e) => e.type === 'lease.expired' || e.type === 'lease.revoked');
  expect(endings.map((e) => [e.type, e.actor])).toEqual([[type, actor]]);
}

// How soon after expires_at is the bench's figure (expiry lag); the bounds here only catch a hang.
it('expiry: a 2-second lease is expired by the sweep after expires_at and introspects inactive', async () => {
  const t = await gh('repo:octo-org/app:dev-expiry', { ttl: '2', task_id: 'dev-expiring' });
  expect(await isActive(t)).toBe(true);
  const { lease, at } = await waitFor('the dev lease to expire', async () => {
    const r = await api(broker.url, 'GET', `/v1/leases/${t.lease_id}`, op.token);
    return r.body.status === 'expired' ? { lease: r.body, at: Date.now() } : null;
  }, 15_000, 20);
  expect(at - lease.expires_at * 1000).toBeGreaterThanOrEqual(0);
  expect(at - lease.expires_at * 1000).toBeLessThan(15_000); // includes this client's polling delay
  expect(await isActive(t)).toBe(false);
  expect(await broker.deps.store.activeIdsOfTask('dev-expiring')).toEqual([]);
  expect(await broker.deps.store.countActive()).toBe(1); // the operator's own lease
  await expectOneEnding(t.lease_id, 'lease.expired', 'worker');
  const [ev] = (await auditOf(broker.url, op.token, t.lease_id)).filter((e) => e.type === 'lease.expired');
  expect(ev!.lag_ms as number).toBeGreaterThanOrEqual(0);
  expect(ev!.lag_ms as number).toBeLessThan(15_000); // milliseconds, not a performance claim
});

it('holder revocation: inactive at the next request, ended once, not again at expiry', async () => {
  const t = await gh('repo:octo-org/app:dev-holder', { ttl: '2' });
  expect((await holderRevoke(broker.url, t.token)).status).toBe(200);
  expect(await isActive(t)).toBe(false);
  await expectOneEnding(t.lease_id, 'lease.revoked', 'holder:repo:octo-org/app:dev-holder');
  const lease = await broker.deps.store.get(t.lease_id);
  await sleep(Math.max(0, lease!.expires_at * 1000 - Date.now())); // past expiry; expectOneEnding waits for sweeps
  await expectOneEnding(t.lease_id, 'lease.revoked', 'holder:repo:octo-org/app:dev-holder');
});

it('task completion: the three leases of the task end, the other task\'s does not', async () => {
  const task = [await gh('repo:octo-org/app:d1', { task_id: 'dev-task' }), await gh('repo:octo-org/app:d2', { task_id: 'dev-task' }), await gh('repo:octo-org/app:d3', { task_id: 'dev-task' })];
  const other = await gh('repo:octo-org/app:d1', { task_id: 'dev-other' });
  const r = await api(broker.url, 'POST', '/v1/tasks/dev-task/complete', task[0]!.token);
  expect(r.body.revoked).toBe(3);
  for (const t of task) expect(await isActive(t)).toBe(false);
  expect(await isActive(other)).toBe(true);
  for (const t of task) await expectOneEnding(t.lease_id, 'lease.revoked', 'task:repo:octo-org/app:d1');
});

it('operator and bulk revocation: inactive at once, audited with the operator as actor', async () => {
  const one = await gh('repo:octo-org/app:dev-victim');
  const r = await api(broker.url, 'POST', `/v1/leases/${one.lease_id}/revoke`, op.token, { reason: 'dev test' });
  expect(r.body).toMatchObject({ status: 'revoked', revoked_by: OP_SUB });
  expect(await isActive(one)).toBe(false);
  await expectOneEnding(one.lease_id, 'lease.revoked', OP_SUB);

  const many = [await gh('repo:octo-org/batch:x'), await gh('repo:octo-org/batch:y')];
  const spared = await gh('repo:octo-org/app:dev-spared');
  expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { rule: 'batch' })).body).toEqual({ revoked: 2 });
  for (const t of many) expect(await isActive(t)).toBe(false);
  expect(await isActive(spared)).toBe(true);
  for (const t of many) await expectOneEnding(t.lease_id, 'lease.revoked', OP_SUB);
  const bulk = (await api(broker.url, 'GET', '/v1/audit?type=operator.bulk_revoke', op.token)).body.events;
  expect(bulk).toMatchObject([{ actor: OP_SUB, count: 2, selector: { rule: 'batch' } }]);
});

it('the memory store, like Redis, does not revoke a lease past its expires_at: the sweep ends it as expired', async () => {
  const store = createMemoryLeaseStore({ audit: createMemoryAuditLog() });
  const now = Math.floor(Date.now() / 1000);
  const dead = leaseFor({ expires_at: now, subject: 'repo:octo-org/app:dead' });
  const live = leaseFor({ expires_at: now + 60, subject: 'repo:octo-org/app:dead' });
  await store.create(dead);
  await store.create(live);
  const input = { reason: 'late', by: 'operator:x', at: now };
  expect(await store.revoke(dead.id, input)).toBeNull();
  expect(await store.revokeWhere({ subject: 'repo:octo-org/app:dead' }, input)).toEqual([live.id]);
  const [ending] = await store.sweep(now * 1000, { limit: 10, pendingGraceMs: 60_000 });
  expect(ending!.lease).toMatchObject({ id: dead.id, status: 'expired', revoked_at: null });
});
