/**
 * Principle 5: tokens and keys are never logged. A broker whose every log line is captured runs
 * a full flow (JWT and certificate exchanges, refusals, introspection, operator calls, forged
 * tokens, revocation, task completion); then no proof, access token, CSR, private key or signing
 * key appears in any log line, audit event or metrics line, whole or in part.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeProof, X509_TYPE } from '../helpers/broker.ts';
import { makeCsr } from '../helpers/csr.ts';
import { waitFor } from '../helpers/wait.ts';
import { ghClaims, operatorToken, rawPost, startSecurityEnv, uniq, type SecurityEnv } from './harness.ts';

const logLines: string[] = [];
let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv({ broker: { logLines } });
});
afterAll(async () => env?.close());

/** Pieces that would betray a secret: the whole thing, each JWT segment, each PEM body line. */
function fragmentsOf(secret: string): string[] {
  const pem = /-----BEGIN [^-]+-----([\s\S]*?)-----END/.exec(secret);
  if (pem) {
    const body = pem[1]!.replace(/\s+/g, '');
    const out: string[] = [];
    for (let i = 0; i + 32 <= body.length; i += 32) out.push(body.slice(i, i + 32));
    return out;
  }
  const parts = secret.split('.');
  // The payload segment of a token is as sensitive as the token for a replayable proof; a header
  // segment is shared by many tokens and proves nothing, but no line should carry it either.
  return [secret, ...parts.filter((p) => p.length >= 16)];
}

describe('secrets never reach the log, the audit trail or the metrics', () => {
  it('a full flow leaves no proof, token, CSR or key in any line', async () => {
    const secrets = new Map<string, string>();
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const post = (path: string, body: string, headers: Record<string, string> = form) => rawPost(`${env.broker.url}${path}`, body, headers);

    // A JWT for a task, and a certificate.
    const task = uniq('task');
    const p1 = await env.issuers.github.mint(ghClaims(env));
    secrets.set('proof (JWT exchange)', p1);
    const jwt = await exchangeProof(env.broker.url, p1, { task_id: task, scope: 'deploy:write' });
    expect(jwt.status).toBe(200);
    secrets.set('access token', jwt.body.access_token);

    const { csrPem, privateKeyPem } = await makeCsr({ keyType: 'ec-p256' });
    secrets.set('CSR', csrPem);
    secrets.set('CSR private key', privateKeyPem);
    const p2 = await env.issuers.github.mint(ghClaims(env));
    secrets.set('proof (certificate exchange)', p2);
    const cert = await exchangeProof(env.broker.url, p2, { requested_token_type: X509_TYPE, csr: csrPem, task_id: task });
    expect(cert.status).toBe(200);

    // Refusals: replay, policy, bad signature, wrong media type with the proof in a JSON body.
    expect((await exchangeProof(env.broker.url, p1)).status).toBe(400);
    const p3 = await env.issuers.github.mint(ghClaims(env));
    secrets.set('refused proof (scope)', p3);
    expect((await exchangeProof(env.broker.url, p3, { scope: 'root' })).status).toBe(400);
    const p4 = await env.issuers.github.mint(ghClaims(env), { key: 'other' });
    secrets.set('refused proof (signature)', p4);
    expect((await exchangeProof(env.broker.url, p4)).status).toBe(400);
    const p5 = await env.issuers.github.mint(ghClaims(env));
    secrets.set('proof in a JSON body', p5);
    expect((await post('/token', JSON.stringify({ subject_token: p5 }), { 'content-type': 'application/json' })).status).toBe(400);
    const p6 = await env.issuers.github.mint(ghClaims(env));
    secrets.set('refused CSR proof', p6);
    expect((await exchangeProof(env.broker.url, p6, { requested_token_type: X509_TYPE, csr: csrPem.replace('MI', 'MJ') })).status).toBe(400);

    // Operator: introspection, listing, audit, a forged bearer, an operator revocation.
    const op = await operatorToken(env);
    secrets.set('operator token', op.token);
    const bearer = { authorization: `Bearer ${op.token}` };
    expect((await post('/introspect', `token=${jwt.body.access_token}`, { ...form, ...bearer })).status).toBe(200);
    expect((await fetch(`${env.broker.url}/v1/leases`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${env.broker.url}/v1/audit`, { headers: bearer })).status).toBe(200);
    const forged = `${op.token.slice(0, -8)}AAAAAAAA`;
    secrets.set('forged bearer', forged);
    expect((await fetch(`${env.broker.url}/v1/leases`, { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
    const other = await exchangeProof(env.broker.url, await env.issuers.github.mint(ghClaims(env)));
    secrets.set('revoked by operator', other.body.access_token);
    expect((await post(`/v1/leases/${other.body.lease_id}/revoke`, '{"reason":"test"}', { 'content-type': 'application/json', ...bearer })).status).toBe(200);

    // Holder revocation, garbage revocation, task completion (ends the certificate too).
    const third = await exchangeProof(env.broker.url, await env.issuers.github.mint(ghClaims(env)), { task_id: uniq('t') });
    secrets.set('revoked by holder', third.body.access_token);
    expect((await post('/revoke', `token=${third.body.access_token}`)).status).toBe(200);
    expect((await post('/revoke', 'token=not-a-token-but-secret-looking-0123456789')).status).toBe(200);
    secrets.set('garbage revocation', 'not-a-token-but-secret-looking-0123456789');
    const done = await fetch(`${env.broker.url}/v1/tasks/${task}/complete`, { method: 'POST', headers: { authorization: `Bearer ${jwt.body.access_token}` } });
    expect(done.status).toBe(200);
    // The worker's ending effects log too: wait until they ran.
    await waitFor('the revocations to be carried out', async () => {
      const ended = await Promise.all([other, third].map(async (t) => (await env.broker.deps.store.get(t.body.lease_id))?.ended_at != null));
      return ended.every(Boolean) && (await env.broker.deps.revocations.depth()) === 0;
    }, 15_000);

    // Leash's own private keys, as stored on disk.
    const jwtDir = join(env.broker.keysDir, 'jwt');
    for (const f of readdirSync(jwtDir).filter((n) => n.endsWith('.pem'))) secrets.set(`signing key ${f}`, readFileSync(join(jwtDir, f), 'utf8'));
    secrets.set('CA key', readFileSync(join(env.broker.keysDir, 'ca', 'ca.key.pem'), 'utf8'));

    const audit = JSON.stringify((await env.broker.deps.audit.list({ limit: 1000 })).events);
    const scrape = await fetch(`${env.broker.url}/metrics`, { headers: bearer });
    expect(scrape.status).toBe(200);
    const metrics = await scrape.text();
    expect(logLines.length).toBeGreaterThan(20);
    expect(logLines.some((l) => l.includes('exchange.denied'))).toBe(true);
    const leaks: string[] = [];
    for (const [what, secret] of secrets) {
      for (const fragment of fragmentsOf(secret)) {
        const line = logLines.find((l) => l.includes(fragment));
        if (line) leaks.push(`${what} in log line: ${line.slice(0, 200)}`);
        if (audit.includes(fragment)) leaks.push(`${what} in the audit trail`);
        if (metrics.includes(fragment)) leaks.push(`${what} in /metrics`);
      }
    }
    expect(leaks).toEqual([]);
  });
});
