import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, GRANT, ID_TOKEN, X509_TYPE, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';
import { TokenRequestForm, formToObject } from '../../src/exchange/token-request-schema.ts';
import { parseTokenRequest } from '../../src/exchange/parse-token-request.ts';

type Json = Record<string, any>;

/** The documented endpoints (README "HTTP API", plus /docs and the dashboard), with the methods each must have. */
const DOCUMENTED_ENDPOINTS: [string, string[]][] = [
  ['/token', ['post']],
  ['/introspect', ['post']],
  ['/revoke', ['post']],
  ['/v1/tasks/{task_id}/complete', ['post']],
  ['/v1/leases', ['get']],
  ['/v1/leases/{id}', ['get']],
  ['/v1/leases/{id}/revoke', ['post']],
  ['/v1/leases/revoke', ['post']],
  ['/v1/audit', ['get']],
  ['/.well-known/jwks.json', ['get']],
  ['/.well-known/oauth-authorization-server', ['get']],
  ['/crl', ['get']],
  ['/healthz', ['get']],
  ['/readyz', ['get']],
  ['/metrics', ['get']],
  ['/openapi.json', ['get']],
  ['/docs', ['get']],
  ['/dashboard', ['get']],
  ['/dashboard/login', ['post']],
  ['/dashboard/leases/{id}/revoke', ['post']],
];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let issuers: IssuerSet;
let broker: TestBroker;
let doc: Json;
let res: Response;

beforeAll(async () => {
  issuers = { github: await startFakeIssuer(), gitlab: await startFakeIssuer(), k8s: await startFakeIssuer(), spiffe: await startFakeIssuer() };
  broker = await startBroker({ policy: e2ePolicy(issuers) }); // memory store: the document needs no Redis
  res = await fetch(`${broker.url}/openapi.json`);
  doc = JSON.parse(await res.clone().text());
});
afterAll(async () => {
  await broker?.close();
  for (const i of Object.values(issuers ?? {})) await i.close();
});

function collectRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => collectRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else collectRefs(v, out);
    }
  }
  return out;
}

describe('GET /openapi.json', () => {
  it('is JSON, OpenAPI 3.1.x, with info, servers and components', () => {
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: 'Leash', version: expect.any(String) });
    expect(doc.servers).toEqual([{ url: broker.config.issuer }]);
    for (const name of ['Lease', 'LeasePage', 'OAuthError', 'ApiError', 'TokenRequestForm', 'TokenResponse', 'LeaseListQuery', 'RevokeOneBody', 'BulkRevokeBody', 'AuditQuery', 'Introspection']) {
      expect(doc.components.schemas, name).toHaveProperty(name);
    }
    expect(doc.components.securitySchemes.leashBearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(doc.components['x-leash-operator-scopes'])).toEqual(expect.arrayContaining(['leash:leases:read', 'leash:leases:revoke', 'leash:audit:read', 'leash:metrics', 'leash:admin']));
  });

  it.each(DOCUMENTED_ENDPOINTS)('documents %s with its methods', (path, methods) => {
    const item = doc.paths[path];
    expect(item, path).toBeDefined();
    expect(Object.keys(item).filter((k) => METHODS.includes(k)).sort()).toEqual(expect.arrayContaining(methods));
    for (const m of methods) {
      expect(item[m].summary, `${m} ${path}`).toEqual(expect.any(String));
      expect(Object.keys(item[m].responses).length, `${m} ${path}`).toBeGreaterThan(0);
      for (const p of path.match(/\{[^}]+\}/g) ?? []) {
        expect(item[m].parameters.some((x: Json) => x.in === 'path' && `{${x.name}}` === p && x.required === true), `${m} ${path} ${p}`).toBe(true);
      }
    }
  });

  it('every $ref resolves and operationIds are unique', () => {
    for (const r of collectRefs(doc)) {
      expect(r.startsWith('#/components/schemas/'), r).toBe(true);
      expect(doc.components.schemas, r).toHaveProperty(r.slice('#/components/schemas/'.length));
    }
    const ids = Object.values(doc.paths).flatMap((item: any) => Object.values(item).map((op: any) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('OAuth endpoints answer {error, error_description}; the others {error, message}', () => {
    expect(doc.paths['/token'].post.responses['400'].content['application/json'].schema.$ref).toBe('#/components/schemas/OAuthError');
    expect(doc.paths['/introspect'].post.responses['401'].content['application/json'].schema.$ref).toBe('#/components/schemas/OAuthError');
    expect(doc.paths['/v1/leases'].get.responses['403'].content['application/json'].schema.$ref).toBe('#/components/schemas/ApiError');
    expect(doc.components.schemas.OAuthError.required).toEqual(['error', 'error_description']);
    expect(doc.components.schemas.ApiError.required).toEqual(['error', 'message']);
  });

  it('every endpoint that reads or writes the lease store lists its 503', () => {
    const needStore: Array<[string, string]> = [
      ['/token', 'post'], ['/introspect', 'post'], ['/revoke', 'post'], ['/v1/tasks/{task_id}/complete', 'post'],
      ['/v1/leases', 'get'], ['/v1/leases/{id}', 'get'], ['/v1/leases/{id}/revoke', 'post'], ['/v1/leases/revoke', 'post'],
      ['/v1/audit', 'get'], ['/crl', 'get'], ['/metrics', 'get'], ['/readyz', 'get'],
    ];
    for (const [path, method] of needStore) expect(doc.paths[path][method].responses['503'], `${method} ${path}`).toBeDefined();
  });

  it('every operation taking a body lists 413; every answer names X-Request-Id, 401s WWW-Authenticate, 429s and 503s Retry-After', () => {
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
      for (const [method, op] of Object.entries(item)) {
        const responses = op.responses as Record<string, Json & { headers?: Record<string, unknown> }>;
        if (op.requestBody) expect(responses['413'], `${method} ${path}`).toBeDefined();
        for (const [status, r] of Object.entries(responses)) {
          expect(r.headers?.['X-Request-Id'], `${method} ${path} ${status}`).toBeDefined();
          if (status === '429' || status === '503') expect(r.headers?.['Retry-After'], `${method} ${path} ${status}`).toBeDefined();
          if (status === '401' && !path.startsWith('/dashboard')) expect(r.headers?.['WWW-Authenticate'], `${method} ${path}`).toBeDefined();
        }
      }
    }
    expect(doc.paths['/token'].post.responses['500']).toBeDefined();
  });

  it('operator endpoints name their scope (or leash:admin); /token and /revoke need no bearer', () => {
    expect(doc.paths['/v1/leases'].get.security).toEqual([{ leashBearer: ['leash:leases:read'] }, { leashBearer: ['leash:admin'] }]);
    expect(doc.paths['/v1/leases/revoke'].post.security).toEqual([{ leashBearer: ['leash:leases:revoke'] }, { leashBearer: ['leash:admin'] }]);
    expect(doc.paths['/v1/audit'].get.security).toEqual([{ leashBearer: ['leash:audit:read'] }, { leashBearer: ['leash:admin'] }]);
    expect(doc.paths['/introspect'].post.security).toEqual([{ leashBearer: ['leash:introspect'] }, { leashBearer: ['leash:admin'] }]);
    expect(doc.paths['/metrics'].get.security).toEqual([{ leashBearer: ['leash:metrics'] }, { leashBearer: ['leash:admin'] }]);
    expect(doc.paths['/token'].post.security).toEqual([]);
    expect(doc.paths['/revoke'].post.security).toEqual([]);
  });

  it('query parameters come from the zod schemas the routes validate with', () => {
    const names = (path: string) => doc.paths[path].get.parameters.map((p: Json) => p.name).sort();
    expect(names('/v1/leases')).toEqual(['cursor', 'issuer', 'limit', 'rule', 'status', 'subject', 'task_id']);
    expect(names('/v1/audit')).toEqual(['cursor', 'lease_id', 'limit', 'since', 'subject', 'type']);
    const status = doc.paths['/v1/leases'].get.parameters.find((p: Json) => p.name === 'status');
    expect(status.schema.enum).toEqual(['active', 'revoked', 'expired']);
    expect(doc.components.schemas.BulkRevokeBody.properties).toHaveProperty('reason');
    expect(doc.paths['/token'].post.requestBody.content).toHaveProperty('application/x-www-form-urlencoded');
  });

  it('the Lease schema has exactly the fields of a real lease', async () => {
    const op = { ...fixtureClaims('github-actions', 'push-main'), sub: 'repo:octo-org/ops:ref:refs/heads/main', repository: 'octo-org/ops', iss: issuers.github.url, aud: AUD };
    const r = await exchangeProof(broker.url, await issuers.github.mint(op), { scope: 'leash:admin', audience: broker.config.issuer });
    expect(r.status).toBe(200);
    const lease = await (await fetch(`${broker.url}/v1/leases/${r.body.lease_id}`, { headers: { authorization: `Bearer ${r.body.access_token}` } })).json();
    expect(Object.keys(doc.components.schemas.Lease.properties).sort()).toEqual(Object.keys(lease).sort());
    expect(Object.keys(doc.components.schemas.TokenResponse.properties)).toEqual(expect.arrayContaining(Object.keys(r.body)));
  });
});

describe('TokenRequestForm agrees with parseTokenRequest', () => {
  const base = { grant_type: GRANT, subject_token: 'eyJ.x.y', subject_token_type: ID_TOKEN };
  const cases: [string, [string, string][]][] = [
    ['minimal', Object.entries(base)],
    ['all extensions', [...Object.entries(base), ['scope', 'a:b c'], ['audience', 'https://a'], ['audience', 'https://b'], ['resource', 'https://c'], ['ttl', '60'], ['task_id', 'run-1'], ['client_id', 'x'], ['unknown', '1'], ['unknown', '2']]],
    ['certificate with csr', [...Object.entries(base), ['requested_token_type', X509_TYPE], ['csr', 'MIIB']]],
    ['wrong grant', [['grant_type', 'client_credentials'], ['subject_token', 't'], ['subject_token_type', ID_TOKEN]]],
    ['no subject token', [['grant_type', GRANT], ['subject_token_type', ID_TOKEN]]],
    ['bad subject token type', [...Object.entries({ ...base, subject_token_type: 'urn:x' })]],
    ['bad requested type', [...Object.entries(base), ['requested_token_type', 'urn:x']]],
    ['double space in scope', [...Object.entries(base), ['scope', 'a  b']]],
    ['empty scope', [...Object.entries(base), ['scope', '']]],
    ['ttl zero', [...Object.entries(base), ['ttl', '0']]],
    ['ttl not a number', [...Object.entries(base), ['ttl', '1e3']]],
    ['task id with space', [...Object.entries(base), ['task_id', 'a b']]],
    ['audience with space', [...Object.entries(base), ['audience', 'a b']]],
    ['17 audiences', [...Object.entries(base), ...Array.from({ length: 17 }, (_, i) => ['audience', `https://a${i}`] as [string, string])]],
    ['x509 without csr', [...Object.entries(base), ['requested_token_type', X509_TYPE]]],
    ['csr without x509', [...Object.entries(base), ['csr', 'MIIB']]],
    ['actor token', [...Object.entries(base), ['actor_token', 'a'], ['actor_token_type', ID_TOKEN]]],
    ['repeated scope', [...Object.entries(base), ['scope', 'a'], ['scope', 'b']]],
  ];
  it.each(cases)('%s', (_name, pairs) => {
    const form = new URLSearchParams(pairs);
    let parsed = true;
    try {
      parseTokenRequest(form);
    } catch {
      parsed = false;
    }
    expect(TokenRequestForm.safeParse(formToObject(form)).success).toBe(parsed);
  });
});

describe('GET /docs', () => {
  it('lists every operation of the document as plain HTML with no external assets', async () => {
    const r = await fetch(`${broker.url}/docs`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await r.text();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const m of Object.keys(item).filter((k) => METHODS.includes(k))) {
        expect(page, `${m} ${path}`).toContain(`<span class="method">${m.toUpperCase()}</span> <code>${path}</code>`);
      }
    }
    expect(page).not.toMatch(/<script|<link|<img|src=|@import/i);
    expect(page).not.toMatch(/href="https?:/i);
    expect(page).toContain('leash:leases:revoke');
    // The document's `code` spans are rendered, not shown as backticks.
    expect(page).toContain('<code>{active: false}</code>');
    expect(page).not.toContain('`');
  });
});
