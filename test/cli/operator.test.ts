import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { AUD, type IssuerSet } from '../helpers/policies.ts';
import { runCli, spawnCli, waitFor, waitForReady } from './run-cli.ts';

let e2e: E2E;
let issuers: IssuerSet;
let broker: TestBroker;
let env: Record<string, string>;
let seq = 0;
const OPERATOR = 'repo:octo-org/ops:ref:refs/heads/main';

beforeAll(async () => {
  e2e = await startE2E();
  ({ issuers, broker } = e2e);
  await waitForReady(broker.url);
  // Operators enrol like anyone else: a proof matching the operators rule, audience = the broker.
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, sub: OPERATOR, jti: 'operator-1' });
  const res = await exchangeProof(broker.url, proof, { audience: broker.config.issuer });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  env = { LEASH_URL: broker.url, LEASH_TOKEN: res.body.access_token };
});
afterAll(async () => {
  await e2e?.close();
});

/** A workload lease of rule gh-deploy with its own subject; returns its lease id and token. */
async function workloadLease(extra: Record<string, string> = {}): Promise<{ id: string; token: string; subject: string }> {
  const n = ++seq;
  const subject = `repo:octo-org/octo-repo:job:${n}`;
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, sub: subject, jti: `op-${n}` });
  const res = await exchangeProof(broker.url, proof, { scope: 'artifacts:read', ...extra });
  expect(res.status).toBe(200);
  return { id: res.body.lease_id, token: res.body.access_token, subject };
}

describe('leash leases', { timeout: 120_000 }, () => {
  it('ls: a table of id, kind, status, rule, subject, task, expiry; --json with filters', async () => {
    const a = await workloadLease({ task_id: 'ls-task' });
    const r = await runCli(['leases', 'ls'], { env });
    expect(r.code, r.stderr).toBe(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+KIND\s+STATUS\s+RULE\s+SUBJECT\s+TASK\s+EXPIRES$/);
    // A 10-minute lease, shown rounded to the second: "in 10m" when the CLI runs within half a second of the lease's second.
    expect(rows.find((row) => row.startsWith(a.id))).toMatch(/jwt\s+active\s+gh-deploy\s+\S+\s+ls-task\s+in (9m|10m$)/);
    const j = await runCli(['leases', 'ls', '--task-id', 'ls-task', '--json'], { env });
    expect(JSON.parse(j.stdout).leases.map((l: { id: string }) => l.id)).toEqual([a.id]);
  });

  it('ls --limit pages and --all follows every page', async () => {
    for (let i = 0; i < 3; i++) await workloadLease({ task_id: 'paged' });
    const one = await runCli(['leases', 'ls', '--task-id', 'paged', '--limit', '2', '--json'], { env });
    const page = JSON.parse(one.stdout);
    expect(page.leases).toHaveLength(2);
    expect(page.next_cursor).toEqual(expect.any(String));
    const next = await runCli(['leases', 'ls', '--task-id', 'paged', '--limit', '2', '--cursor', page.next_cursor, '--json'], { env });
    expect(JSON.parse(next.stdout).leases).toHaveLength(1);
    const all = await runCli(['leases', 'ls', '--task-id', 'paged', '--limit', '2', '--all', '--json'], { env });
    expect(JSON.parse(all.stdout)).toMatchObject({ next_cursor: null });
    expect(JSON.parse(all.stdout).leases).toHaveLength(3);
  });

  it('show, then revoke one with a reason', async () => {
    const a = await workloadLease();
    const show = await runCli(['leases', 'show', a.id, '--json'], { env });
    expect(JSON.parse(show.stdout)).toMatchObject({ id: a.id, status: 'active', subject: a.subject });
    const human = await runCli(['leases', 'show', a.id], { env });
    expect(human.stdout).toMatch(/^status\s+active$/m);
    const r = await runCli(['leases', 'revoke', a.id, '--reason', 'rotated'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`revoked ${a.id}`);
    expect(await broker.deps.store.get(a.id)).toMatchObject({ status: 'revoked', reason: 'rotated', revoked_by: OPERATOR });
    const again = await runCli(['leases', 'revoke', a.id], { env });
    expect(again.stdout).toContain('already');
  });

  it('an unknown lease: exit 1 with not_found; no token: exit 2; a bad token: exit 1', async () => {
    const r = await runCli(['leases', 'show', 'AAAAAAAAAAAAAAAAAAAAAA'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not_found');
    expect((await runCli(['leases', 'ls'], { env: { LEASH_URL: broker.url } })).code).toBe(2);
    const bad = await runCli(['leases', 'ls', '--token', 'a.b.c'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid_token');
  });

  it('bulk revoke refuses without --yes when there is no terminal, and revokes with it', async () => {
    const a = await workloadLease({ task_id: 'bulk-1' });
    const b = await workloadLease({ task_id: 'bulk-1' });
    const refused = await runCli(['leases', 'revoke', '--task', 'bulk-1'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--yes');
    expect(await broker.deps.store.get(a.id)).toMatchObject({ status: 'active' });
    const r = await runCli(['leases', 'revoke', '--task', 'bulk-1', '--reason', 'incident 7', '--yes'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('revoked 2 leases');
    for (const id of [a.id, b.id]) expect(await broker.deps.store.get(id)).toMatchObject({ status: 'revoked', reason: 'incident 7' });
    const j = await runCli(['leases', 'revoke', '--subject', b.subject, '--yes', '--json'], { env });
    expect(JSON.parse(j.stdout)).toEqual({ revoked: 0 });
    expect((await runCli(['leases', 'revoke'], { env })).code).toBe(2);
    expect((await runCli(['leases', 'revoke', a.id, '--task', 'x'], { env })).code).toBe(2);
  });
});

describe('leash task complete', { timeout: 120_000 }, () => {
  it('any live token of the task ends every lease of the task', async () => {
    const a = await workloadLease({ task_id: 'build-99' });
    const b = await workloadLease({ task_id: 'build-99' });
    const other = await workloadLease({ task_id: 'build-100' });
    const r = await runCli(['task', 'complete', 'build-99', '--token', a.token], { env: { LEASH_URL: broker.url } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('task build-99 complete: 2 leases revoked');
    for (const id of [a.id, b.id]) expect(await broker.deps.store.get(id)).toMatchObject({ status: 'revoked' });
    expect(await broker.deps.store.get(other.id)).toMatchObject({ status: 'active' });
    // The token's own lease is gone, so it can no longer speak for the task.
    const again = await runCli(['task', 'complete', 'build-99', '--token', a.token], { env: { LEASH_URL: broker.url } });
    expect(again.code).toBe(1);
  });
});

describe('leash audit tail', { timeout: 120_000 }, () => {
  it('--json: one event per line, newest first, filterable', async () => {
    const a = await workloadLease();
    await runCli(['leases', 'revoke', a.id, '--reason', 'audit me'], { env });
    const r = await runCli(['audit', 'tail', '--json', '--lease-id', a.id], { env });
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(events.map((e) => e.type)).toContain('exchange.allowed');
    expect(events.find((e) => e.type === 'operator.lease_revoke')).toMatchObject({ actor: OPERATOR, reason: 'audit me', lease_id: a.id });
    const times = events.map((e) => e.time);
    expect(times).toEqual([...times].sort((x, y) => y - x));
    const human = await runCli(['audit', 'tail', '--type', 'operator.lease_revoke', '--since', '10m'], { env });
    expect(human.stdout).toContain(`lease_id=${a.id}`);
  });

  it('--follow prints new events as they happen', async () => {
    const tail = spawnCli(['audit', 'tail', '--follow', '--json', '--type', 'exchange.allowed', '--limit', '1'], { env });
    try {
      await waitFor(() => tail.stdout().split('\n').length >= 2, 10_000, 'the first page');
      const a = await workloadLease();
      const b = await workloadLease();
      await waitFor(() => tail.stdout().includes(b.id), 10_000, 'the followed events');
      const ids = tail.stdout().trim().split('\n').map((l) => JSON.parse(l).lease_id);
      expect(ids.slice(-2)).toEqual([a.id, b.id]);
    } finally {
      tail.child.kill('SIGTERM');
    }
  });
});

// Last in this file: it revokes every lease of the GitHub issuer, the shared operator's included.
describe('leash leases revoke --issuer (the kill switch)', { timeout: 120_000 }, () => {
  it("keeps the calling operator's own lease, says so, and --include-self revokes it too", async () => {
    const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, sub: OPERATOR, jti: 'operator-kill-switch' });
    const res = await exchangeProof(broker.url, proof, { audience: broker.config.issuer });
    expect(res.status).toBe(200);
    const mine = { LEASH_URL: broker.url, LEASH_TOKEN: res.body.access_token };
    const victim = await workloadLease();

    const r = await runCli(['leases', 'revoke', '--issuer', 'github', '--reason', 'incident 9', '--yes'], { env: mine });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept the lease of the token making this call');
    expect(await broker.deps.store.get(victim.id)).toMatchObject({ status: 'revoked' });
    expect(await broker.deps.store.get(res.body.lease_id)).toMatchObject({ status: 'active' });
    // The operator is not locked out: the next call works.
    expect((await runCli(['leases', 'ls', '--limit', '1'], { env: mine })).code).toBe(0);

    const all = await runCli(['leases', 'revoke', '--issuer', 'github', '--include-self', '--yes', '--json'], { env: mine });
    expect(JSON.parse(all.stdout)).toEqual({ revoked: 1 });
    expect(await broker.deps.store.get(res.body.lease_id)).toMatchObject({ status: 'revoked' });
  });
});
