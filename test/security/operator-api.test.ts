/**
 * Authentication and authorisation of Leash's own endpoints: operator API
 * and introspection need a live Leash token for Leash's audience with the scope (no or bad token
 * 401, valid token without the scope 403); POST /revoke and task completion take possession of a
 * live token of that lease or task as the authority, and nothing more.
 */
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2ePolicy, type IssuerSet } from '../helpers/policies.ts';
import { ghClaims, operatorToken, startSecurityEnv, uniq, workloadToken, type SecurityEnv } from './harness.ts';
import { exchangeProof } from '../helpers/broker.ts';

// e2ePolicy plus auditors (leash:audit:read only) and scrapers (leash:metrics only), both for Leash's audience.
const policy = (i: IssuerSet): string => `${e2ePolicy(i)}
  - name: auditors
    issuer: github
    match: { repository: octo-org/auditors }
    grant: { scopes: [leash:audit:read], audiences: ["\${LEASH_ISSUER}"], ttl: 10m }
  - name: scrapers
    issuer: github
    match: { repository: octo-org/scrapers }
    grant: { scopes: [leash:metrics], audiences: ["\${LEASH_ISSUER}"], ttl: 10m }
`;

let env: SecurityEnv;
let offsetMs = 0;
beforeAll(async () => {
  env = await startSecurityEnv({ policy, broker: { now: () => Date.now() + offsetMs } });
});
afterAll(async () => env?.close());

const url = (path: string): string => `${env.broker.url}${path}`;
const b64 = (v: string): string => Buffer.from(v).toString('base64url');

async function auditorToken(): Promise<string> {
  const res = await exchangeProof(env.broker.url, await env.issuers.github.mint(ghClaims(env, { repository: 'octo-org/auditors' })));
  expect(res.status).toBe(200);
  return res.body.access_token;
}

/** Same header and claims (so a live lease id), signed by a key Leash never had. */
function forgeWithForeignKey(token: string): string {
  const [h, p] = token.split('.') as [string, string];
  const ed = env.broker.deps.keys.active().alg === 'EdDSA';
  const { privateKey } = ed ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sig = ed ? sign(null, Buffer.from(`${h}.${p}`), privateKey) : sign('sha256', Buffer.from(`${h}.${p}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${sig.toString('base64url')}`;
}

/** HS256 keyed with Leash's public signing key (PEM or JWK), header naming Leash's kid. */
function hs256WithLeashKey(token: string, form: 'pem' | 'jwk'): string {
  const key = env.broker.deps.keys.active();
  const secret = form === 'pem' ? (key.publicKey.export({ type: 'spki', format: 'pem' }) as string) : JSON.stringify(key.publicJwk);
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }))}.${token.split('.')[1]}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function algNone(token: string): string {
  return `${b64(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: env.broker.deps.keys.active().kid }))}.${token.split('.')[1]}.`;
}

interface Victim { token: string; leaseId: string; subject: string }
async function victim(task?: string): Promise<Victim> {
  const w = await workloadToken(env, task ? { task_id: task } : {});
  return { ...w, subject: (await env.broker.deps.store.get(w.leaseId))!.subject };
}

type Call = (authorization: string | undefined, v: Victim) => Promise<Response>;
const withAuth = (authorization: string | undefined, extra: Record<string, string> = {}): Record<string, string> => ({ ...(authorization ? { authorization } : {}), ...extra });
const json = { 'content-type': 'application/json' };
const ENDPOINTS: [string, Call][] = [
  ['GET /v1/leases', (a) => fetch(url('/v1/leases'), { headers: withAuth(a) })],
  ['GET /v1/leases/{id}', (a, v) => fetch(url(`/v1/leases/${v.leaseId}`), { headers: withAuth(a) })],
  ['POST /v1/leases/{id}/revoke', (a, v) => fetch(url(`/v1/leases/${v.leaseId}/revoke`), { method: 'POST', headers: withAuth(a, json), body: '{"reason":"attack"}' })],
  ['POST /v1/leases/revoke', (a, v) => fetch(url('/v1/leases/revoke'), { method: 'POST', headers: withAuth(a, json), body: JSON.stringify({ subject: v.subject }) })],
  ['GET /v1/audit', (a) => fetch(url('/v1/audit'), { headers: withAuth(a) })],
  ['GET /metrics', (a) => fetch(url('/metrics'), { headers: withAuth(a) })],
  ['POST /introspect', (a, v) => fetch(url('/introspect'), { method: 'POST', headers: withAuth(a, { 'content-type': 'application/x-www-form-urlencoded' }), body: `token=${v.token}` })],
];

/** The refusal, its code, and that the victim's lease was neither revoked nor disclosed. */
async function expectDenied(call: Call, authorization: string | undefined, status: 401 | 403): Promise<void> {
  const v = await victim();
  const res = await call(authorization, v);
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(JSON.parse(text).error).toBe(status === 401 ? 'invalid_token' : 'insufficient_scope');
  // RFC 6750 section 3.1: without credentials (or with another scheme) the challenge names no error.
  const bearer = authorization?.startsWith('Bearer ') === true;
  expect(res.headers.get('www-authenticate')).toBe(
    status === 403 ? 'Bearer realm="leash", error="insufficient_scope"' : bearer ? 'Bearer realm="leash", error="invalid_token"' : 'Bearer realm="leash"',
  );
  expect(text).not.toContain(v.leaseId);
  expect(text).not.toContain(v.token);
  expect((await env.broker.deps.store.get(v.leaseId))!.status).toBe('active');
}

describe.each(ENDPOINTS)('%s', (_name, call) => {
  it('no Authorization header: 401', () => expectDenied(call, undefined, 401));
  it('a garbage bearer, and a non-Bearer scheme: 401', async () => {
    await expectDenied(call, 'Bearer garbage', 401);
    await expectDenied(call, `Basic ${Buffer.from('admin:admin').toString('base64')}`, 401);
  });
  it('a workload token (live Leash token, not for Leash\'s audience): 401 that says so', async () => {
    await expectDenied(call, `Bearer ${(await workloadToken(env)).token}`, 401);
    const res = await call(`Bearer ${(await workloadToken(env)).token}`, await victim());
    expect(await res.text()).toContain(`its aud does not include ${env.broker.config.issuer}`);
  });
  it('a Leash-audience token without the scope: 403', async () => {
    const token = _name === 'GET /v1/audit' ? (await operatorToken(env, { scope: 'leash:introspect' })).token : await auditorToken();
    await expectDenied(call, `Bearer ${token}`, 403);
  });
  it('an expired operator token: 401', async () => {
    const { token } = await operatorToken(env, { ttl: '2' });
    offsetMs = 5_000;
    try {
      await expectDenied(call, `Bearer ${token}`, 401);
    } finally {
      offsetMs = 0;
    }
  });
  it('an operator token revoked through POST /revoke: 401', async () => {
    const { token } = await operatorToken(env);
    const revoked = await fetch(url('/revoke'), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` });
    expect(revoked.status).toBe(200);
    await expectDenied(call, `Bearer ${token}`, 401);
  });
  it('a live operator token re-signed by a foreign key under Leash\'s kid: 401', async () => {
    await expectDenied(call, `Bearer ${forgeWithForeignKey((await operatorToken(env)).token)}`, 401);
  });
  it('alg confusion: HS256 with Leash\'s public key (PEM, JWK), and alg none: 401', async () => {
    const { token } = await operatorToken(env);
    for (const forged of [hs256WithLeashKey(token, 'pem'), hs256WithLeashKey(token, 'jwk'), algNone(token)]) await expectDenied(call, `Bearer ${forged}`, 401);
  });
  it('a live operator token with the scope: allowed (control)', async () => {
    const { token } = await operatorToken(env);
    const res = await call(`Bearer ${token}`, await victim());
    expect(res.status, await res.text()).toBe(200);
  });
});

describe('GET /metrics on the API port (not LEASH_METRICS_PUBLIC: a broker with Redis)', () => {
  it('tells an anonymous caller nothing of the policy; a leash:metrics token reads the per-rule counts, and nothing else', async () => {
    expect(env.broker.config.metricsPublic).toBe(false);
    await workloadToken(env); // an exchange of rule gh-deploy (issuer github), so the metrics name them
    const anonymous = await fetch(url('/metrics'));
    const refusal = await anonymous.text();
    expect(anonymous.status).toBe(401);
    for (const name of ['gh-deploy', 'leash_exchanges_total']) expect(refusal).not.toContain(name);

    const proof = await env.issuers.github.mint(ghClaims(env, { repository: 'octo-org/scrapers' }));
    const scraper = await exchangeProof(env.broker.url, proof);
    expect(scraper.status, JSON.stringify(scraper.body)).toBe(200);
    expect(scraper.body.scope).toBe('leash:metrics');
    const bearer = { authorization: `Bearer ${scraper.body.access_token}` };
    const scraped = await fetch(url('/metrics'), { headers: bearer });
    expect(scraped.status).toBe(200);
    const text = await scraped.text();
    expect(text).toContain('rule="gh-deploy"');
    // The scope reads metrics only: the operator API stays shut to it.
    const leases = await fetch(url('/v1/leases'), { headers: bearer });
    expect(leases.status).toBe(403);
    expect((await leases.json()).error).toBe('insufficient_scope');
  });
});

const revoke = (token: string): Promise<Response> =>
  fetch(url('/revoke'), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(token)}` });
const statusOf = async (leaseId: string): Promise<string> => (await env.broker.deps.store.get(leaseId))!.status;

describe('POST /revoke: possession is the authority, for that one lease only', () => {
  it('someone else\'s token revokes exactly its own lease, not the holder\'s other leases or the caller\'s', async () => {
    const task = uniq('task');
    const first = await victim(task);
    const sameSubjectOther = await workloadToken(env, { task_id: task });
    const caller = await workloadToken(env);
    const res = await revoke(first.token);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    expect(await statusOf(first.leaseId)).toBe('revoked');
    expect(await statusOf(sameSubjectOther.leaseId)).toBe('active');
    expect(await statusOf(caller.leaseId)).toBe('active');
  });

  it('garbage, forged and confused tokens answer 200 and revoke nothing', async () => {
    const v = await victim();
    for (const t of ['garbage', 'a.b.c', forgeWithForeignKey(v.token), hs256WithLeashKey(v.token, 'pem'), algNone(v.token)]) {
      const res = await revoke(t);
      expect(res.status).toBe(200);
    }
    expect(await statusOf(v.leaseId)).toBe('active');
  });

  it('no token, or two, is a malformed request (400 invalid_request)', async () => {
    const v = await victim();
    const none = await fetch(url('/revoke'), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    expect([none.status, (await none.json()).error]).toEqual([400, 'invalid_request']);
    const two = await fetch(url('/revoke'), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${v.token}&token=${v.token}` });
    expect([two.status, (await two.json()).error]).toEqual([400, 'invalid_request']);
    expect(await statusOf(v.leaseId)).toBe('active');
  });
});

describe('POST /v1/tasks/{id}/complete', () => {
  const complete = (task: string, authorization?: string): Promise<Response> =>
    fetch(url(`/v1/tasks/${task}/complete`), { method: 'POST', headers: withAuth(authorization) });

  it('a live token of another task: 403, and nothing of the target task is revoked', async () => {
    const target = uniq('task');
    const v = await victim(target);
    const other = await workloadToken(env, { task_id: uniq('task') });
    const res = await complete(target, `Bearer ${other.token}`);
    expect([res.status, (await res.json()).error]).toEqual([403, 'insufficient_scope']);
    expect(await statusOf(v.leaseId)).toBe('active');
    expect(await statusOf(other.leaseId)).toBe('active');
  });

  it('a token with no task, an auditor token, and an operator token without leases:revoke: 403', async () => {
    const target = uniq('task');
    const v = await victim(target);
    const noRevokeScope = (await operatorToken(env, { scope: 'leash:introspect' })).token;
    for (const t of [(await workloadToken(env)).token, await auditorToken(), noRevokeScope]) {
      expect((await complete(target, `Bearer ${t}`)).status).toBe(403);
    }
    expect(await statusOf(v.leaseId)).toBe('active');
  });

  it('no token, or a forged one: 401', async () => {
    const target = uniq('task');
    const v = await victim(target);
    expect((await complete(target)).status).toBe(401);
    expect((await complete(target, `Bearer ${forgeWithForeignKey(v.token)}`)).status).toBe(401);
    expect((await complete(target, `Bearer ${hs256WithLeashKey(v.token, 'jwk')}`)).status).toBe(401);
    expect(await statusOf(v.leaseId)).toBe('active');
  });

  it('a token of the task ends every lease of that task and nothing else (control)', async () => {
    const target = uniq('task');
    const a = await victim(target);
    const b = await workloadToken(env, { task_id: target });
    const bystander = await workloadToken(env, { task_id: uniq('task') });
    const res = await complete(target, `Bearer ${b.token}`);
    expect(res.status).toBe(200);
    expect((await res.json()).revoked).toBe(2);
    expect([await statusOf(a.leaseId), await statusOf(b.leaseId), await statusOf(bystander.leaseId)]).toEqual(['revoked', 'revoked', 'active']);
  });
});

describe('operator API: a request it would answer wrongly is refused, naming the fault', () => {
  const get = async (path: string, token: string) => {
    const res = await fetch(url(path), { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  };
  const post = async (path: string, token: string, body: unknown) => {
    const res = await fetch(url(path), { method: 'POST', headers: { authorization: `Bearer ${token}`, ...json }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const taskRule = 'task_id must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ / -';

  it('a filter given twice, not narrowed to its first value', async () => {
    const op = (await operatorToken(env)).token;
    expect(await get('/v1/leases?status=active&status=expired', op)).toMatchObject({ status: 400, body: { error: 'bad_request', message: 'query status: given 2 times; give it once' } });
    expect((await get('/v1/audit?type=a&type=b', op)).status).toBe(400);
  });

  it('a task_id no task can have, in a listing or a kill switch: not "nothing found"', async () => {
    const op = (await operatorToken(env)).token;
    expect(await get('/v1/leases?task_id=bad%20id!', op)).toMatchObject({ status: 400, body: { message: `query task_id: ${taskRule}` } });
    expect(await post('/v1/leases/revoke', op, { task_id: 'bad id!' })).toMatchObject({ status: 400, body: { message: `body task_id: ${taskRule}` } });
  });

  it('a page size in anything but decimal digits', async () => {
    const op = (await operatorToken(env)).token;
    for (const limit of ['0x3', '1e2', '%201', '0', '1001']) expect((await get(`/v1/leases?limit=${limit}`, op)).status, limit).toBe(400);
    const ok = await fetch(url('/v1/leases?limit=3'), { headers: { authorization: `Bearer ${op}` } });
    expect(ok.status).toBe(200);
    // What it holds is for the operator alone: no shared cache may keep it.
    expect(ok.headers.get('cache-control')).toBe('no-store');
  });

  it('a GET of the bulk revoke route is 405, not a read of a lease named "revoke"', async () => {
    const res = await fetch(url('/v1/leases/revoke'));
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect((await res.json()).error).toBe('method_not_allowed');
    expect((await fetch(url('/v1/leases/revoke'), { method: 'PUT' })).headers.get('allow')).toBe('POST');
  });

  it('a message names the body or query once', async () => {
    const op = (await operatorToken(env)).token;
    expect((await post('/v1/leases/revoke', op, {})).body.message).toBe('body: name at least one of subject, task_id, rule, issuer');
    expect((await get('/v1/leases?foo=bar', op)).body.message).toBe('query: Unrecognized key: "foo"');
  });
});
