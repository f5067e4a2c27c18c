import { afterAll, beforeAll, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { exchangeProof } from '../helpers/broker.ts';
import { waitFor } from '../helpers/wait.ts';

let env: E2E;
const lines: string[] = [];
beforeAll(async () => {
  env = await startE2E({ logLines: lines });
});
afterAll(async () => env?.close());

const linesOf = (requestId: string) =>
  lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.request_id === requestId);

it('one JSON line per request, carrying the request id and the decision audit event', async () => {
  const ok = await exchangeProof(env.broker.url, await env.githubProof({ sub: 'repo:octo-org/octo-repo:ref:refs/heads/main:logs' }), { scope: 'artifacts:read' });
  expect(ok.status).toBe(200);
  const okId = ok.headers.get('x-request-id')!;
  const denied = await exchangeProof(env.broker.url, await env.githubProof(), { scope: 'root:all' });
  expect(denied.status).toBe(400);
  const deniedId = denied.headers.get('x-request-id')!;
  expect(denied.body.request_id).toBe(deniedId);
  await waitFor('both request log lines (written asynchronously)', async () => linesOf(okId).length > 0 && linesOf(deniedId).length > 0);

  const [okLine, ...okRest] = linesOf(okId);
  expect(okRest).toEqual([]);
  expect(okLine).toMatchObject({ msg: 'request', route: '/token', status: 200, audit: { type: 'exchange.allowed', request_id: okId, lease_id: ok.body.lease_id, rule: 'gh-deploy' } });

  const [deniedLine, ...deniedRest] = linesOf(deniedId);
  expect(deniedRest).toEqual([]);
  expect(deniedLine).toMatchObject({ msg: 'request', status: 400, error: { code: 'invalid_scope' }, audit: { type: 'exchange.denied', request_id: deniedId } });
  expect(deniedLine!.audit.reason).toMatch(/^invalid_scope/);

  // The same events are in the audit log (Redis), once each.
  const page = await env.broker.deps.audit.list({ limit: 50 });
  expect(page.events.filter((e) => e.request_id === okId).map((e) => e.type)).toEqual(['exchange.allowed']);
  expect(page.events.filter((e) => e.request_id === deniedId).map((e) => e.type)).toEqual(['exchange.denied']);
});
