/**
 * Attacks through claim values and request parameters on policy evaluation: glob and template
 * injection, look-alike characters, malformed scopes, audiences and TTLs, and trying to add two
 * rules' grants together. A refusal must leave no lease, no replay record (the same proof is then
 * exchanged successfully) and an exchange.denied audit event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { X509Certificate } from 'node:crypto';
import { exchangeProof, X509_TYPE } from '../helpers/broker.ts';
import { makeCsr } from '../helpers/csr.ts';
import type { IssuerSet } from '../helpers/policies.ts';
import { AUD, expectProofRefused, startSecurityEnv, uniq, type SecurityEnv } from './harness.ts';

const policy = (i: IssuerSet): string => `
issuers:
  - { name: ci, issuer: "${i.github.url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:
  - name: app-main
    issuer: ci
    match: { repository: acme/app, ref: refs/heads/main }
    grant: { scopes: [deploy:write], audiences: [https://deploy.acme.internal], ttl: 5m, max_ttl: 10m }
  - name: app-features
    issuer: ci
    match: { repository: acme/app, ref: "refs/heads/feature/*" }
    grant: { scopes: [preview:write], audiences: [https://preview.acme.internal], ttl: 5m, max_ttl: 10m }
  - name: svc-single
    issuer: ci
    match: { repository: "acme/svc-?" }
    grant: { scopes: [svc:read], audiences: [https://svc.acme.internal] }
  - name: templated
    issuer: ci
    match: { environment: templ }
    grant:
      scopes: [tpl:read]
      audiences: [https://tpl.acme.internal]
      credentials: [jwt, x509]
      claims: { repo: "{{ claims.repository }}" }
      x509:
        uri_sans: ["spiffe://acme.internal/repo/{{ claims.repository }}"]
        dns_sans: ["{{ claims.service }}.svc.acme.internal"]
  - name: union-a
    issuer: ci
    match: { sub: "union:*" }
    grant: { scopes: [a:read], audiences: [https://a.acme.internal], ttl: 5m, max_ttl: 10m }
  - name: union-b
    issuer: ci
    match: { sub: "union:*" }
    grant: { scopes: [b:read], audiences: [https://b.acme.internal], ttl: 5m, max_ttl: 1h }
`;

let env: SecurityEnv;
let csrPem: string;
beforeAll(async () => {
  env = await startSecurityEnv({ policy });
  csrPem = (await makeCsr({ keyType: 'ec-p256' })).csrPem;
});
afterAll(async () => env?.close());

const proofOf = (claims: Record<string, unknown>): Promise<string> =>
  env.issuers.github.mint({ iss: env.issuers.github.url, aud: AUD, sub: uniq('sub'), jti: uniq('jti'), ...claims });
const NO_RULE = { code: 'invalid_request', description: /no policy rule matches this proof/ };

describe('glob injection: claim values are compared as text, never read as patterns', () => {
  const main = { repository: 'acme/app', ref: 'refs/heads/main' };
  it.each<[string, Record<string, unknown>]>([
    ['a literal * in the claim', { ...main, repository: 'acme/*' }],
    ['a bare * in every claim', { repository: '*', ref: '*' }],
    ['a ? in the claim', { ...main, repository: 'acme/ap?' }],
    ['a trailing newline', { ...main, repository: 'acme/app\n' }],
    ['a newline-joined second ref', { ...main, ref: 'refs/heads/main\nrefs/heads/evil' }],
    ['a NUL byte', { ...main, repository: 'acme/app\u0000' }],
    ['a Cyrillic a (U+0430) in acme/\u0430pp', { ...main, repository: 'acme/\u0430pp' }],
    ['a fullwidth a (U+FF41)', { ...main, repository: '\uff41cme/app' }],
    ['a decomposed accent where none is expected', { ...main, repository: 'acme/app\u0301' }],
    ['a trailing space', { ...main, repository: 'acme/app ' }],
    ['different case', { ...main, repository: 'ACME/APP' }],
    ['a dot-dot path', { ...main, repository: 'acme/app/../app' }],
    ['an object claim', { ...main, repository: { not: 'x' } }],
    ['a list with a control character element', { ...main, repository: ['acme/app', 'x\n'] }],
    ['a feature-branch glob followed by a newline', { ...main, ref: 'refs/heads/feature/x\nrefs/heads/main' }],
    ['? against zero characters', { repository: 'acme/svc-' }],
    ['? against two characters', { repository: 'acme/svc-ab' }],
  ])('%s matches no rule', async (_name, claims) => {
    await expectProofRefused(env, await proofOf(claims), NO_RULE);
  });

  // Documented glob semantics (src/policy/match.ts): `*` spans `/`, `?` is one code point. Both
  // only ever select the rule the policy author wrote, with that rule's own narrow grant.
  it('`*` spans `/`: refs/heads/feature/a/b matches feature/*, and gets only that rule', async () => {
    const res = await exchangeProof(env.broker.url, await proofOf({ repository: 'acme/app', ref: 'refs/heads/feature/a/b' }));
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token)).toMatchObject({ client_id: 'app-features', scope: 'preview:write', aud: 'https://preview.acme.internal' });
  });

  it('`?` is one code point (even outside the BMP, or a look-alike): acme/svc-\u{1F600} matches acme/svc-?', async () => {
    const res = await exchangeProof(env.broker.url, await proofOf({ repository: 'acme/svc-\u{1F600}' }));
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token)).toMatchObject({ client_id: 'svc-single', scope: 'svc:read' });
  });
});

describe('template injection: claim values are spliced once, as data', () => {
  it('a claim holding {{ claims.sub }} is copied literally into the minted JWT, never expanded', async () => {
    const res = await exchangeProof(env.broker.url, await proofOf({ environment: 'templ', repository: '{{ claims.sub }}' }));
    expect(res.status).toBe(200);
    const minted = decodeJwt(res.body.access_token);
    expect(minted.repo).toBe('{{ claims.sub }}');
    expect(minted.repo).not.toBe(minted.sub);
  });

  it('a claim with a control character cannot be templated into a JWT claim', async () => {
    await expectProofRefused(env, await proofOf({ environment: 'templ', repository: 'acme/app\nadmin: true' }), { code: 'invalid_request', description: /claims\.repo/ });
  });

  it('a benign claim renders the SANs the policy names (control case)', async () => {
    const res = await exchangeProof(env.broker.url, await proofOf({ environment: 'templ', repository: 'acme/app', service: 'api' }), { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status).toBe(200);
    const cert = new X509Certificate(res.body.access_token);
    expect(cert.subjectAltName?.split(', ').sort()).toEqual(['DNS:api.svc.acme.internal', 'URI:spiffe://acme.internal/repo/acme/app']);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a template expression in a URI SAN', { repository: '{{ claims.sub }}', service: 'api' }],
    ['dot-dot segments in a SPIFFE path', { repository: 'a/../../admin', service: 'api' }],
    ['a lone dot-dot', { repository: '..', service: 'api' }],
    ['percent-encoded dot-dot', { repository: 'a/%2e%2e/admin', service: 'api' }],
    ['a query in a URI SAN', { repository: 'a?x=1', service: 'api' }],
    ['a fragment in a URI SAN', { repository: 'a#frag', service: 'api' }],
    ['a space in a URI SAN', { repository: 'a b', service: 'api' }],
    ['a dot in a DNS label (another domain)', { repository: 'acme/app', service: 'evil.com' }],
    ['a wildcard DNS label', { repository: 'acme/app', service: '*' }],
    ['upper case in a DNS label', { repository: 'acme/app', service: 'API' }],
    ['a newline in a DNS label', { repository: 'acme/app', service: 'api\n' }],
  ])('x509 with %s is refused, and the proof stays usable', async (_name, claims) => {
    const proof = await proofOf({ environment: 'templ', ...claims });
    await expectProofRefused(env, proof, { code: 'invalid_request', description: /x509\.(uri|dns)_sans/ }, { requested_token_type: X509_TYPE, csr: csrPem });
    if (!/\n/.test(String(claims.service))) expect((await exchangeProof(env.broker.url, proof)).status).toBe(200);
  });
});

describe('request parameters only narrow one rule', () => {
  const ok = { repository: 'acme/app', ref: 'refs/heads/main' };

  it('scope strings with spaces, control characters or non-ASCII are refused (invalid_scope)', async () => {
    const proof = await proofOf(ok);
    for (const scope of ['deploy:write  deploy:write', ' deploy:write', 'deploy:write ', 'deploy:write\tx', 'deploy:write\nx', 'deploy:write\u0000', 'deploy"write', 'deploy\\write', '\uff44eploy:write', '']) {
      await expectProofRefused(env, proof, { code: 'invalid_scope' }, { scope });
    }
    const res = await exchangeProof(env.broker.url, proof, { scope: 'deploy:write' });
    expect(res.status).toBe(200);
  });

  it('audiences and resources not granted are refused (invalid_target)', async () => {
    const proof = await proofOf(ok);
    const bad = ['https://evil.example', 'https://deploy.acme.internal.evil', 'HTTPS://DEPLOY.ACME.INTERNAL', 'https://deploy.acme.internal/', 'https://deploy.acme.internal\n', 'https://deploy.acme.internal https://evil'];
    for (const audience of bad) await expectProofRefused(env, proof, { code: 'invalid_target' }, { audience });
    await expectProofRefused(env, proof, { code: 'invalid_target' }, { resource: 'https://evil.example' });
    await expectProofRefused(env, proof, { code: 'invalid_target' }, { audience: ['https://deploy.acme.internal', 'https://evil.example'] });
    const res = await exchangeProof(env.broker.url, proof, { audience: 'https://deploy.acme.internal' });
    expect(res.status).toBe(200);
  });

  it('TTL zero, negative, fractional, exponent, padded, hex, non-ASCII digits, huge, or above max_ttl is refused', async () => {
    const proof = await proofOf(ok);
    for (const ttl of ['0', '-1', '1.5', '1e3', ' 60', '60 ', '0x10', '+60', '\uff16\uff10', '9999999999', '999999999', '601', '']) {
      await expectProofRefused(env, proof, { code: 'invalid_request', description: /ttl/ }, { ttl });
    }
    const res = await exchangeProof(env.broker.url, proof, { ttl: '600' });
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBe(600);
  });

  it('two matching rules are never added up: the union is refused, each part alone is granted by its own rule', async () => {
    const proof = await proofOf({ sub: `union:${uniq('u')}` });
    await expectProofRefused(env, proof, { code: 'invalid_scope' }, { scope: 'a:read b:read' });
    await expectProofRefused(env, proof, { code: 'invalid_target' }, { audience: ['https://a.acme.internal', 'https://b.acme.internal'] });
    // union-b allows an hour but not a:read; union-a has a:read but only 10 minutes.
    await expectProofRefused(env, proof, { code: 'invalid_request', description: /max_ttl/ }, { scope: 'a:read', ttl: '3600' });
    // union-a has the scope but not the audience (its refusal, the first candidate's, is the answer).
    await expectProofRefused(env, proof, { code: 'invalid_target' }, { scope: 'a:read', audience: 'https://b.acme.internal' });

    const a = await exchangeProof(env.broker.url, proof, { scope: 'a:read' });
    expect(a.status).toBe(200);
    expect(decodeJwt(a.body.access_token)).toMatchObject({ client_id: 'union-a', scope: 'a:read', aud: 'https://a.acme.internal' });
    const b = await exchangeProof(env.broker.url, await proofOf({ sub: `union:${uniq('u')}` }), { scope: 'b:read', ttl: '3600' });
    expect(b.status).toBe(200);
    expect(b.body.expires_in).toBe(3600);
    expect(decodeJwt(b.body.access_token)).toMatchObject({ client_id: 'union-b', scope: 'b:read', aud: 'https://b.acme.internal' });
  });
});
