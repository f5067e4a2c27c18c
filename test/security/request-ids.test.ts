/**
 * Request ids are Leash's: a client's X-Request-Id never becomes the `request_id` of its audit
 * events or log line (else an attacker could make its events share an id with someone else's).
 * A valid one (1-128 visible ASCII characters) is kept as `client_request_id`; anything else is
 * dropped. LEASH_TRUST_REQUEST_ID=true (behind a proxy that sets the header) makes a valid one
 * the request's id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.ts';
import { GRANT, ID_TOKEN, startBroker, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy } from '../helpers/policies.ts';
import { ghClaims, rawPost, startSecurityEnv, type HttpResult, type SecurityEnv } from './harness.ts';

let env: SecurityEnv;
let trusting: TestBroker;
const lines: string[] = [];
const trustingLines: string[] = [];
beforeAll(async () => {
  env = await startSecurityEnv({ broker: { logLines: lines } });
  trusting = await startBroker({ policy: e2ePolicy(env.issuers), redisUrl: env.redis.url, worker: false, env: { LEASH_TRUST_REQUEST_ID: 'true' }, logLines: trustingLines });
});
afterAll(async () => {
  await trusting?.close();
  await env?.close();
});

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function exchange(url: string, headers: Record<string, string>, scope?: string): Promise<HttpResult> {
  const proof = await env.issuers.github.mint(ghClaims(env));
  const form = new URLSearchParams({ grant_type: GRANT, subject_token: proof, subject_token_type: ID_TOKEN, ...(scope ? { scope } : {}) });
  return rawPost(`${url}/token`, form.toString(), { ...FORM, ...headers });
}

/** A request refused before it is an exchange (no proof at all): anonymous garbage. */
const garbage = (url: string, headers: Record<string, string>): Promise<HttpResult> =>
  rawPost(`${url}/token`, 'grant_type=nonsense', { ...FORM, ...headers });

/** The request's access-log line, waited for by its (server-made) id. */
async function logLine(from: string[], requestId: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const line = from.map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.msg === 'request' && l.request_id === requestId);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no log line for request ${requestId}`);
}

async function eventsWithId(broker: TestBroker, requestId: string): Promise<AuditEvent[]> {
  return (await broker.deps.audit.list({ limit: 500 })).events.filter((e) => e.request_id === requestId);
}

describe('X-Request-Id from a client', () => {
  it("cannot make an attacker's events share the request_id of someone else's", async () => {
    const victim = await exchange(env.broker.url, {});
    expect(victim.status).toBe(200);
    const victimId = victim.headers.get('x-request-id')!;
    expect(victimId).toBeTruthy();

    for (const attack of [() => garbage(env.broker.url, { 'x-request-id': victimId }), () => exchange(env.broker.url, { 'x-request-id': victimId }, 'root:all')]) {
      const res = await attack();
      expect(res.status).toBe(400);
      const ownId = res.headers.get('x-request-id')!;
      expect(ownId).not.toBe(victimId);
      expect(res.body.request_id).toBe(ownId);
      const [event] = await eventsWithId(env.broker, ownId);
      expect(event).toMatchObject({ type: 'exchange.denied', request_id: ownId, client_request_id: victimId });
      expect(await logLine(lines, ownId)).toMatchObject({ request_id: ownId, client_request_id: victimId });
    }
    // The victim's id still names the victim's event only.
    expect((await eventsWithId(env.broker, victimId)).map((e) => e.type)).toEqual(['exchange.allowed']);
    expect(lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request' && l.request_id === victimId)).toHaveLength(1);
  });

  it('a valid one is kept as client_request_id on an allowed exchange too', async () => {
    const res = await exchange(env.broker.url, { 'x-request-id': 'ci-run-42/step:7' });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id')!;
    expect(id).not.toBe('ci-run-42/step:7');
    const [event] = await eventsWithId(env.broker, id);
    expect(event).toMatchObject({ type: 'exchange.allowed', lease_id: res.body.lease_id, client_request_id: 'ci-run-42/step:7' });
    expect((await logLine(lines, id)).audit).toMatchObject({ request_id: id, client_request_id: 'ci-run-42/step:7' });
  });

  it.each([
    ['129 characters', 'a'.repeat(129)],
    ['a space', 'two words'],
    ['a non-ASCII character', 'caf\u00e9'],
  ])('one with %s is dropped', async (_name, given) => {
    const res = await garbage(env.broker.url, { 'x-request-id': given });
    expect(res.status).toBe(400);
    const id = res.headers.get('x-request-id')!;
    expect(id).not.toBe(given);
    const [event] = await eventsWithId(env.broker, id);
    expect(event).toBeDefined();
    expect(event).not.toHaveProperty('client_request_id');
    expect(await logLine(lines, id)).not.toHaveProperty('client_request_id');
  });

  it('128 visible ASCII characters are kept', async () => {
    const given = `${'!~'.repeat(63)}zz`;
    const res = await garbage(env.broker.url, { 'x-request-id': given });
    const [event] = await eventsWithId(env.broker, res.headers.get('x-request-id')!);
    expect(event).toMatchObject({ client_request_id: given });
  });

  it('with LEASH_TRUST_REQUEST_ID=true a valid one is the request id; an invalid one is replaced', async () => {
    const res = await garbage(trusting.url, { 'x-request-id': 'proxy-7f3a' });
    expect(res.headers.get('x-request-id')).toBe('proxy-7f3a');
    expect(res.body.request_id).toBe('proxy-7f3a');
    const [event] = await eventsWithId(trusting, 'proxy-7f3a');
    expect(event).toMatchObject({ type: 'exchange.denied', request_id: 'proxy-7f3a' });
    expect(event).not.toHaveProperty('client_request_id');
    expect(await logLine(trustingLines, 'proxy-7f3a')).not.toHaveProperty('client_request_id');

    const bad = await garbage(trusting.url, { 'x-request-id': 'x'.repeat(200) });
    const id = bad.headers.get('x-request-id')!;
    expect(id).not.toBe('x'.repeat(200));
    expect(await eventsWithId(trusting, id)).toHaveLength(1);
  });
});
