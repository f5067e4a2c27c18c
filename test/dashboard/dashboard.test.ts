import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';

const SCREENSHOT = resolve('test-output/dashboard.png');
// Attacker-influenced claim values: they must show as text, never as markup.
const HOSTILE_SUB = `repo:octo-org/octo-repo:<script>alert(1)</script>&"'`;
const HOSTILE_DENIED_SUB = 'repo:evil/<img src=x onerror=alert(2)>';

let redis: TestRedis;
let issuers: IssuerSet;
let broker: TestBroker;
let chromium: TestBrowser;
let browser: BrowserContext;
let seq = 0;

beforeAll(async () => {
  redis = await startRedis();
  issuers = { github: await startFakeIssuer(), gitlab: await startFakeIssuer(), k8s: await startFakeIssuer(), spiffe: await startFakeIssuer() };
  broker = await startBroker({ policy: e2ePolicy(issuers), redisUrl: redis.url });
  chromium = await launchBrowser();
  browser = chromium.context;
});
afterAll(async () => {
  await chromium?.close();
  await broker?.close();
  for (const i of Object.values(issuers ?? {})) await i.close();
  await redis?.destroy();
});

async function exchange(claims: Record<string, unknown>, extra: Record<string, string> = {}) {
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `dash-${++seq}`, ...claims });
  return exchangeProof(broker.url, proof, extra);
}

async function operatorToken(scope: string): Promise<{ token: string; leaseId: string }> {
  const res = await exchange({ sub: `repo:octo-org/ops:ref:refs/heads/main:${seq}`, repository: 'octo-org/ops' }, { scope, audience: broker.config.issuer });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}

async function workloadLease(sub: string): Promise<{ token: string; leaseId: string }> {
  const res = await exchange({ sub }, { task_id: `task-${seq}` });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}

async function signIn(page: Page, token: string) {
  await page.goto(`${broker.url}/dashboard`);
  await page.fill('textarea#token', token);
  const [response] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return response!;
}

const introspect = async (token: string, asToken: string) =>
  (await fetch(`${broker.url}/introspect`, { method: 'POST', body: new URLSearchParams({ token }), headers: { authorization: `Bearer ${asToken}`, 'content-type': 'application/x-www-form-urlencoded' } })).json();

/** GET /dashboard as a browser holding this session cookie would. */
const dashboardWithCookie = (token: string) => fetch(`${broker.url}/dashboard`, { redirect: 'manual', headers: { cookie: `leash_dashboard=${token}` } });

describe('operator dashboard in headless Chromium', () => {
  it('without a session shows only the sign-in form, no data', async () => {
    const { leaseId } = await workloadLease('repo:octo-org/octo-repo:anonymous-check');
    const page = await browser.newPage();
    const res = await page.goto(`${broker.url}/dashboard`);
    expect(res!.status()).toBe(200);
    await expect(page.locator('textarea#token').count()).resolves.toBe(1);
    const content = await page.content();
    expect(content).not.toContain(leaseId);
    expect(content).not.toContain('Soonest expiries');
    await page.close();

    const stale = await dashboardWithCookie('not-a-token');
    expect(stale.status).toBe(401);
    expect(stale.headers.get('set-cookie')).toMatch(/leash_dashboard=;.*Max-Age=0/i);
    expect(await stale.text()).not.toContain(leaseId);
  });

  it('refuses a token without an operator scope, and a token for another audience', async () => {
    const page = await browser.newPage();
    const introspectOnly = await operatorToken('leash:introspect');
    const res = await signIn(page, introspectOnly.token);
    expect(res.status()).toBe(403);
    await expect(page.locator('.notice.bad').innerText()).resolves.toContain('lacks leash:leases:read');
    expect(await page.content()).not.toContain(introspectOnly.token);
    expect((await browser.cookies(broker.url)).filter((c) => c.name === 'leash_dashboard')).toEqual([]);

    const workload = await workloadLease('repo:octo-org/octo-repo:not-an-operator');
    const res2 = await signIn(page, workload.token);
    expect(res2.status()).toBe(401);
    expect(await page.content()).not.toContain(workload.token);
    expect((await browser.cookies(broker.url)).filter((c) => c.name === 'leash_dashboard')).toEqual([]);
    await page.close();
  });

  it('signs in, shows a real lease escaped, revokes it with a click', async () => {
    const admin = await operatorToken('leash:admin');
    const workload = await workloadLease(HOSTILE_SUB);
    const denied = await exchange({ sub: HOSTILE_DENIED_SUB }, { scope: 'not:granted' });
    expect(denied.status).toBe(400);

    const page = await browser.newPage();
    const res = await signIn(page, admin.token);
    expect(res.status()).toBe(200);
    expect(page.url()).toBe(`${broker.url}/dashboard`);

    const [cookie] = (await browser.cookies(broker.url + '/dashboard')).filter((c) => c.name === 'leash_dashboard');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/dashboard', secure: false });

    const row = page.locator(`tr[data-lease-id="${workload.leaseId}"]`);
    await expect(row.count()).resolves.toBe(1);
    await expect(row.innerText()).resolves.toContain(HOSTILE_SUB);
    await expect(page.locator('#denials').innerText()).resolves.toContain(HOSTILE_DENIED_SUB);
    await expect(page.locator('script, img').count()).resolves.toBe(0);
    await expect(page.locator('body').innerText()).resolves.toMatch(/gh-deploy\s+\d+/);

    const html = await page.content();
    for (const secret of [admin.token, workload.token]) expect(html).not.toContain(secret);
    expect(html).not.toContain(admin.token.split('.')[2]!);

    // What a human sees: the lease table and the denials panel are laid out, not hidden.
    await expect(row.isVisible()).resolves.toBe(true);
    await expect(page.locator('#denials').isVisible()).resolves.toBe(true);
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true }); // kept for a human reviewer, not asserted

    await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Revoke' }).click()]);
    expect(page.url()).toBe(`${broker.url}/dashboard?revoked=${workload.leaseId}`);
    await expect(page.locator('.notice.ok').innerText()).resolves.toContain(`Lease ${workload.leaseId} revoked.`);
    await expect(page.locator(`tr[data-lease-id="${workload.leaseId}"]`).count()).resolves.toBe(0);

    const lease = await broker.deps.store.get(workload.leaseId);
    expect(lease).toMatchObject({ status: 'revoked', revoked_by: lease!.revoked_by, reason: 'revoked by operator (dashboard)' });
    expect(lease!.revoked_by).toMatch(/^repo:octo-org\/ops:/);
    expect(await introspect(workload.token, admin.token)).toEqual({ active: false });
    const audit = await broker.deps.audit.list({ type: 'operator.lease_revoke', lease_id: workload.leaseId, limit: 5, cursor: null });
    expect(audit.events[0]).toMatchObject({ actor: lease!.revoked_by, via: 'dashboard', changed: true });
    await page.close();
  });

  it('a revoke without the session CSRF token, or from another origin, is refused', async () => {
    const admin = await operatorToken('leash:admin');
    const workload = await workloadLease('repo:octo-org/octo-repo:csrf-check');
    const url = `/dashboard/leases/${workload.leaseId}/revoke`;
    const send = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${broker.url}${url}`, { method: 'POST', redirect: 'manual', body, headers: { cookie: `leash_dashboard=${admin.token}`, 'content-type': 'application/x-www-form-urlencoded', ...headers } });
    expect((await send('csrf=wrong')).status).toBe(403);
    expect((await send('')).status).toBe(403);
    const page = await dashboardWithCookie(admin.token);
    const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    expect((await send(`csrf=${csrf}`, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await broker.deps.store.get(workload.leaseId))!.status).toBe('active');
    const ok = await send(`csrf=${csrf}`, { origin: broker.url });
    expect(ok.status).toBe(303);
    expect((await broker.deps.store.get(workload.leaseId))!.status).toBe('revoked');
  });

  it('a revoked operator token loses access at once', async () => {
    const admin = await operatorToken('leash:admin');
    expect((await dashboardWithCookie(admin.token)).status).toBe(200);
    await fetch(`${broker.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: admin.token }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const after = await dashboardWithCookie(admin.token);
    expect(after.status).toBe(401);
    expect(await after.text()).toContain('Signed out');
  });
});
