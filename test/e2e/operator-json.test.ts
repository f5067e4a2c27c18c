import { afterAll, beforeAll, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { exchangeProof } from '../helpers/broker.ts';

let env: E2E;
let op: string;
beforeAll(async () => {
  env = await startE2E();
  op = await env.operatorToken();
});
afterAll(async () => env?.close());

const lease = async (sub: string) => {
  const res = await exchangeProof(env.broker.url, await env.githubProof({ sub }), { scope: 'artifacts:read' });
  expect(res.status).toBe(200);
  return res.body.lease_id as string;
};

it('operator JSON bodies are read with application/json, text/plain or no content type; forms are refused', async () => {
  const sub = 'repo:octo-org/octo-repo:ref:refs/heads/main:json-body';
  const ids = [await lease(sub), await lease(sub)];
  const post = (body: string, type?: string) =>
    fetch(`${env.broker.url}/v1/leases/revoke`, { method: 'POST', body, headers: { authorization: `Bearer ${op}`, ...(type ? { 'content-type': type } : {}) } });

  const form = await post(`subject=${encodeURIComponent(sub)}`, 'application/x-www-form-urlencoded');
  expect(form.status).toBe(415);
  expect((await form.json()).error).toBe('unsupported_media_type');
  expect((await env.broker.deps.store.get(ids[0]!))!.status).toBe('active');

  // fetch sends a string body as text/plain unless told otherwise
  const plain = await fetch(`${env.broker.url}/v1/leases/revoke`, { method: 'POST', body: JSON.stringify({ subject: sub, reason: 'test' }), headers: { authorization: `Bearer ${op}` } });
  expect(plain.status).toBe(200);
  expect(await plain.json()).toEqual({ revoked: 2 });

  const one = await lease(sub);
  const single = await fetch(`${env.broker.url}/v1/leases/${one}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'leaked' }), headers: { authorization: `Bearer ${op}`, 'content-type': 'application/json' } });
  expect(single.status).toBe(200);
  expect(await single.json()).toMatchObject({ id: one, status: 'revoked', reason: 'leaked' });

  const bad = await post('{not json', 'application/json');
  expect(bad.status).toBe(400);
  expect((await bad.json()).error).toBe('bad_request');
});
