/**
 * Attacks on the shape of POST /token requests: media types, repeated and smuggled parameters,
 * oversized and slow bodies, and other methods. Only a form body is read; anything else is
 * refused before the proof is looked at, so the same proof still works afterwards.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { exchangeProof, GRANT, ID_TOKEN, startBroker } from '../helpers/broker.ts';
import { waitFor } from '../helpers/wait.ts';
import { expectRefused, ghClaims, leaseCount, rawPost, sleep, startSecurityEnv, type SecurityEnv } from './harness.ts';

let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv();
});
afterAll(async () => env?.close());

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const proof = async (): Promise<string> => env.issuers.github.mint(ghClaims(env));
const fields = (p: string, extra: Record<string, string> = {}) => ({ grant_type: GRANT, subject_token: p, subject_token_type: ID_TOKEN, ...extra });
const tokenUrl = (): string => `${env.broker.url}/token`;

/** After a refusal that happened before the proof was read, the proof must still be exchangeable. */
async function stillUsable(p: string): Promise<void> {
  const res = await exchangeProof(env.broker.url, p);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

describe('media type: only application/x-www-form-urlencoded is read', () => {
  it.each<[string, (p: string) => { body: BodyInit; headers: Record<string, string> }]>([
    ['a JSON body', (p) => ({ body: JSON.stringify(fields(p)), headers: { 'content-type': 'application/json' } })],
    ['text/plain holding a form', (p) => ({ body: new URLSearchParams(fields(p)).toString(), headers: { 'content-type': 'text/plain' } })],
    ['no content type at all', (p) => ({ body: new TextEncoder().encode(new URLSearchParams(fields(p)).toString()), headers: {} })],
    ['two media types in one header', (p) => ({ body: new URLSearchParams(fields(p)).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded, application/json' } })],
    ['multipart/form-data', (p) => {
      const fd = new FormData();
      for (const [k, v] of Object.entries(fields(p))) fd.append(k, v);
      return { body: fd, headers: {} };
    }],
  ])('%s is refused (invalid_request)', async (_name, build) => {
    const p = await proof();
    const { body, headers } = build(p);
    await expectRefused(env, () => rawPost(tokenUrl(), body, headers), { code: 'invalid_request', description: /x-www-form-urlencoded/ }, p);
    await stillUsable(p);
  });

  it('the media type is matched case-insensitively and may carry a charset (control)', async () => {
    const res = await rawPost(tokenUrl(), new URLSearchParams(fields(await proof())).toString(), { 'content-type': 'Application/X-WWW-Form-URLEncoded; charset=UTF-8' });
    expect(res.status).toBe(200);
  });

  it('a gzip Content-Encoding is not decoded (no decompression bombs): the bytes are no form', async () => {
    const p = await proof();
    const body = gzipSync(new URLSearchParams(fields(p)).toString());
    await expectRefused(env, () => rawPost(tokenUrl(), body, { ...FORM, 'content-encoding': 'gzip' }), { code: 'invalid_request', description: /grant_type is required/ }, p);
    await stillUsable(p);
  });

  it('a JSON document sent as a form is one meaningless parameter name: refused', async () => {
    const p = await proof();
    await expectRefused(env, () => rawPost(tokenUrl(), JSON.stringify(fields(p)), FORM), { code: 'invalid_request', description: /grant_type is required/ }, p);
    await stillUsable(p);
  });
});

describe('repeated parameters: only audience and resource may repeat', () => {
  it.each(['grant_type', 'subject_token', 'subject_token_type', 'requested_token_type', 'scope', 'ttl', 'task_id'])('%s twice is refused', async (name) => {
    const p = await proof();
    const other = await proof();
    const values: Record<string, [string, string]> = {
      grant_type: [GRANT, GRANT],
      subject_token: [p, other],
      subject_token_type: [ID_TOKEN, ID_TOKEN],
      requested_token_type: ['urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:access_token'],
      scope: ['artifacts:read', 'deploy:write'],
      ttl: ['60', '3600'],
      task_id: ['t1', 't2'],
    };
    const form = new URLSearchParams(fields(p));
    form.delete(name);
    for (const v of values[name]!) form.append(name, v);
    await expectRefused(env, () => rawPost(tokenUrl(), form.toString(), FORM), { code: 'invalid_request', description: new RegExp(`${name} must not be repeated`) }, p);
    await stillUsable(p);
    await stillUsable(other);
  });

  it('a repeated audience narrows within the rule (control)', async () => {
    const res = await exchangeProof(env.broker.url, await proof(), { audience: ['https://deploy.acme.internal', 'https://artifacts.acme.internal'] });
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token).aud).toEqual(['https://deploy.acme.internal', 'https://artifacts.acme.internal']);
  });
});

describe('parameter smuggling', () => {
  it('scope in the query string is ignored; the body scope applies', async () => {
    const res = await rawPost(`${tokenUrl()}?scope=deploy:write&ttl=3600`, new URLSearchParams(fields(await proof(), { scope: 'artifacts:read', ttl: '60' })).toString(), FORM);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ scope: 'artifacts:read', expires_in: 60 });
  });

  it('a whole request in the query string with an empty body is refused', async () => {
    const p = await proof();
    await expectRefused(env, () => rawPost(`${tokenUrl()}?${new URLSearchParams(fields(p))}`, '', FORM), { code: 'invalid_request', description: /grant_type is required/ }, p);
    await stillUsable(p);
  });

  it('a subject_token in the query string is neither used nor burnt', async () => {
    const inQuery = await proof();
    const res = await rawPost(`${tokenUrl()}?subject_token=${encodeURIComponent(inQuery)}`, new URLSearchParams(fields(await proof())).toString(), FORM);
    expect(res.status).toBe(200);
    await stillUsable(inQuery);
  });

  it('look-alike parameter names (Scope, scope[], scope%00) are unknown and ignored: no extra scope', async () => {
    const body = `${new URLSearchParams(fields(await proof()))}&Scope=leash:admin&scope%5B%5D=leash:admin&scope%00=leash:admin`;
    const res = await rawPost(tokenUrl(), body, FORM);
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('deploy:write artifacts:read');
  });

  it('a ;-separated body (old CGI style) is not split: the grant type is then wrong', async () => {
    const p = await proof();
    const body = `grant_type=${encodeURIComponent(GRANT)};scope=leash:admin&subject_token=${p}&subject_token_type=${encodeURIComponent(ID_TOKEN)}`;
    await expectRefused(env, () => rawPost(tokenUrl(), body, FORM), { code: 'unsupported_grant_type' }, p);
    await stillUsable(p);
  });
});

describe('body size and pace', () => {
  it('a body over the limit is refused with 413 (with Content-Length)', async () => {
    const body = `${new URLSearchParams(fields(await proof()))}&pad=${'a'.repeat(70_000)}`;
    await expectRefused(env, () => rawPost(tokenUrl(), body, FORM), { status: 413, code: 'invalid_request', audited: false });
  });

  it('a body over the limit is refused with 413 (chunked, no Content-Length)', async () => {
    const chunk = new TextEncoder().encode('a'.repeat(8192));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const send = async () => {
      const res = await fetch(tokenUrl(), { method: 'POST', body: stream, headers: FORM, duplex: 'half' } as RequestInit);
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
    await expectRefused(env, send, { status: 413, code: 'invalid_request', audited: false });
  });

  it('a client trickling its body neither blocks other requests nor gets a credential', async () => {
    const slow = await proof();
    const leases = await leaseCount(env);
    const head = new URLSearchParams(fields(slow)).toString();
    const { port } = new URL(env.broker.url);
    const socket = connect(Number(port), '127.0.0.1');
    let answered = '';
    socket.on('data', (d) => (answered += d.toString()));
    socket.on('error', () => undefined);
    socket.write(`POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${head.length + 100}\r\n\r\n`);
    socket.write(head);
    let trickled = 0;
    const trickle = setInterval(() => { socket.write('&'); trickled++; }, 200);
    try {
      await waitFor('the body to start trickling', async () => trickled >= 1);
      const started = Date.now();
      const other = await exchangeProof(env.broker.url, await proof());
      expect(other.status).toBe(200);
      // Not blocked: the trickle takes 20 s to finish. A bound well short of that, not a performance claim.
      expect(Date.now() - started).toBeLessThan(10_000);
      // More of the body, and another full answer, since: the server has had its chance to answer early.
      const more = trickled + 5;
      await waitFor('five more trickled bytes', async () => trickled >= more, 10_000);
      expect((await fetch(`${env.broker.url}/healthz`)).status).toBe(200);
      expect(answered).toBe(''); // still waiting for the rest of the body, holding no lease
      expect(await leaseCount(env)).toBe(leases + 1);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    await sleep(100);
    expect(await leaseCount(env)).toBe(leases + 1);
    await stillUsable(slow);
  });

  it('a stalled body is cut off after LEASH_REQUEST_TIMEOUT_MS, and nothing is issued', async () => {
    const b = await startBroker({ policy: 'issuers: [{ name: x, issuer: "https://x.example", audiences: [a] }]\nrules: [{ name: r, issuer: x, grant: { scopes: [s] } }]\n', env: { LEASH_REQUEST_TIMEOUT_MS: '800' } });
    try {
      const { port } = new URL(b.url);
      const started = Date.now();
      const answer = await new Promise<string>((resolve) => {
        const sock = connect(Number(port), '127.0.0.1', () => {
          sock.write('POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=');
        });
        let data = '';
        sock.on('data', (d) => (data += d));
        sock.on('close', () => resolve(data));
        sock.on('error', () => resolve(data));
      });
      const took = Date.now() - started;
      expect(took).toBeLessThan(10_000); // cut off, not left hanging: a hang bound, not a performance claim
      expect(answer).not.toContain('access_token');
      expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
    } finally {
      await b.close();
    }
  });
});

describe('method confusion', () => {
  it.each(['GET', 'PUT', 'DELETE', 'PATCH', 'HEAD'])('%s /token is not an exchange (405, Allow: POST), even with the parameters', async (method) => {
    const p = await proof();
    const leases = await leaseCount(env);
    const qs = new URLSearchParams(fields(p));
    const res = await fetch(`${tokenUrl()}?${qs}`, { method, headers: { ...FORM, 'x-http-method-override': 'POST' }, ...(method === 'GET' || method === 'HEAD' ? {} : { body: qs.toString() }) });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    if (method !== 'HEAD') expect((await res.json()).error).toBe('invalid_request');
    expect(await leaseCount(env)).toBe(leases);
    await stillUsable(p);
  });

  it.each<[string, string, string]>([
    ['DELETE', '/v1/leases/l_anything', 'GET, HEAD'],
    ['PUT', '/v1/leases/revoke', 'POST'], // GET /v1/leases/{id} does not take "revoke" as an id
    ['GET', '/v1/tasks/build-1/complete', 'POST'],
    ['POST', '/.well-known/jwks.json', 'GET, HEAD'],
  ])('%s %s: 405 with the methods the path answers', async (method, path, allow) => {
    const res = await fetch(`${env.broker.url}${path}`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe(allow);
    expect((await res.json()).error).toBe('method_not_allowed');
  });

  it('an unknown path is still 404', async () => {
    const res = await fetch(`${env.broker.url}/v1/nothing-here`, { method: 'DELETE' });
    expect(res.status).toBe(404);
    expect((await res.json()).error).toBe('not_found');
  });

  it.each(['/token/', '/TOKEN', '/token%00', '//token'])('POST %s is not the token endpoint', async (path) => {
    const p = await proof();
    const res = await rawPost(`${env.broker.url}${path}`, new URLSearchParams(fields(p)).toString(), FORM);
    expect(res.status).toBe(404);
    await stillUsable(p);
  });
});
