/**
 * Property, end to end over HTTP (test/unit/policy-property.test.ts covers the pure decision
 * function only): random scope, audience and TTL requests against a real broker and Redis never
 * yield a token whose scope, aud or lifetime exceed the grant of the one rule it names
 * (client_id), never combine two rules, and every refusal writes no lease and no replay record
 * and is audited. A reference model also checks the converse: a request that one rule alone
 * grants is not refused.
 */
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeProof } from '../helpers/broker.ts';
import type { IssuerSet } from '../helpers/policies.ts';
import { AUD, deniedEvent, leaseCount, replayKeys, startSecurityEnv, uniq, type SecurityEnv } from './harness.ts';

interface RuleModel { name: string; gold: boolean; scopes: string[]; audiences: string[]; ttl: number; maxTtl: number }
const RULES: RuleModel[] = [
  { name: 'narrow', gold: false, scopes: ['a:read', 'a:write'], audiences: ['https://a.example', 'https://b.example'], ttl: 60, maxTtl: 300 },
  { name: 'wide', gold: true, scopes: ['a:read', 'b:read', 'b:write'], audiences: ['https://b.example', 'https://c.example'], ttl: 120, maxTtl: 3600 },
];
const SCOPES = ['a:read', 'a:write', 'b:read', 'b:write', 'c:admin', 'leash:admin'];
const AUDIENCES = ['https://a.example', 'https://b.example', 'https://c.example', 'https://d.example'];

const policy = (i: IssuerSet): string => `
issuers:
  - { name: ci, issuer: "${i.github.url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:
${RULES.map((r) => `  - name: ${r.name}
    issuer: ci
    match: { sub: "prop:*"${r.gold ? ', tier: gold' : ''} }
    grant: { scopes: [${r.scopes.join(', ')}], audiences: [${r.audiences.join(', ')}], ttl: ${r.ttl}, max_ttl: ${r.maxTtl} }`).join('\n')}
`;

let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv({ policy });
});
afterAll(async () => env?.close());

interface Ask { tier: 'gold' | 'silver' | undefined; scopes: string[] | undefined; audiences: string[] | undefined; ttl: string | undefined }

/** Subsets drawn mostly from one rule's own pool, so that about half the requests are grantable. */
const subsetOf = (pools: string[][], all: string[]): fc.Arbitrary<string[] | undefined> =>
  fc.option(
    fc.oneof(
      ...pools.map((pool) => ({ weight: 3, arbitrary: fc.uniqueArray(fc.constantFrom(...pool), { minLength: 1, maxLength: pool.length }) })),
      { weight: 2, arbitrary: fc.uniqueArray(fc.constantFrom(...all), { minLength: 1, maxLength: 4 }) },
    ),
    { nil: undefined, freq: 3 },
  );

const askArb: fc.Arbitrary<Ask> = fc.record({
  tier: fc.constantFrom<Ask['tier']>('gold', 'gold', 'silver', undefined),
  scopes: subsetOf(RULES.map((r) => r.scopes), SCOPES),
  audiences: subsetOf(RULES.map((r) => r.audiences), AUDIENCES),
  ttl: fc.option(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 1, max: 4000 }).map(String) },
      { weight: 1, arbitrary: fc.constantFrom('0', '-5', '1.5', '1e3', '007', '', '300', '301', '3600', '3601') },
    ),
    { nil: undefined, freq: 2 },
  ),
});

/** The reference: the first candidate rule that alone grants the whole request, if any. */
function modelRule(ask: Ask): RuleModel | undefined {
  const ttl = ask.ttl === undefined ? undefined : /^[1-9][0-9]{0,8}$/.test(ask.ttl) ? Number(ask.ttl) : NaN;
  return RULES.find((r) =>
    (!r.gold || ask.tier === 'gold') &&
    (ask.scopes ?? []).every((s) => r.scopes.includes(s)) &&
    (ask.audiences ?? []).every((a) => r.audiences.includes(a)) &&
    (ttl === undefined || (ttl >= 1 && ttl <= r.maxTtl)),
  );
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

describe('HTTP-level grant properties', () => {
  it('issued tokens stay within the one rule they name; refusals write nothing', async () => {
    const jwks = createLocalJWKSet(env.broker.deps.keys.jwks());
    let issued = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(askArb, async (ask) => {
        const jti = uniq('prop');
        const proof = await env.issuers.github.mint({ iss: env.issuers.github.url, aud: AUD, sub: `prop:${jti}`, jti, ...(ask.tier ? { tier: ask.tier } : {}) });
        const leasesBefore = await leaseCount(env);
        const res = await exchangeProof(env.broker.url, proof, {
          ...(ask.scopes ? { scope: ask.scopes.join(' ') } : {}),
          ...(ask.audiences ? { audience: ask.audiences } : {}),
          ...(ask.ttl !== undefined ? { ttl: ask.ttl } : {}),
        });
        const expected = modelRule(ask);
        const replayKey = `${env.broker.config.redisPrefix}replay:ci:jti:${jti}`;

        if (res.status !== 200) {
          refused++;
          expect(expected, `refused although rule ${expected?.name} grants ${JSON.stringify(ask)}: ${JSON.stringify(res.body)}`).toBeUndefined();
          expect(res.status).toBe(400);
          expect(['invalid_request', 'invalid_scope', 'invalid_target']).toContain(res.body.error);
          expect(await leaseCount(env)).toBe(leasesBefore);
          expect(await replayKeys(env)).not.toContain(replayKey);
          expect(await deniedEvent(env, res.body.request_id)).toBeDefined();
          return;
        }

        issued++;
        expect(expected, `issued although no rule alone grants ${JSON.stringify(ask)}`).toBeDefined();
        const { payload, protectedHeader } = await jwtVerify(res.body.access_token, jwks, { issuer: env.broker.config.issuer });
        expect(protectedHeader.typ).toBe('at+jwt');
        const rule = RULES.find((r) => r.name === payload.client_id)!;
        expect(rule.name).toBe(expected!.name);
        const scopes = String(payload.scope).split(' ');
        const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud!];
        const lifetime = payload.exp! - payload.iat!;
        // Never beyond the rule ...
        expect(scopes.every((s) => rule.scopes.includes(s))).toBe(true);
        expect(auds.every((a) => rule.audiences.includes(a))).toBe(true);
        expect(lifetime).toBeLessThanOrEqual(rule.maxTtl);
        // ... and exactly what was asked, or the rule's defaults when nothing was.
        expect(sameSet(scopes, ask.scopes ?? rule.scopes)).toBe(true);
        expect(sameSet(auds, ask.audiences ?? rule.audiences)).toBe(true);
        expect(lifetime).toBe(ask.ttl === undefined ? rule.ttl : Number(ask.ttl));
        // The lease says the same, was recorded once, and the proof is spent.
        const lease = await env.broker.deps.store.get(res.body.lease_id);
        expect(lease).toMatchObject({ id: payload.jti, rule: rule.name, status: 'active', expires_at: payload.exp, issued_at: payload.iat });
        expect(sameSet(lease!.scopes, scopes) && sameSet(lease!.audiences, auds)).toBe(true);
        expect(await leaseCount(env)).toBe(leasesBefore + 1);
        expect(await replayKeys(env)).toContain(replayKey);
      }),
      { numRuns: 100 },
    );
    // Both outcomes were exercised, or the property proved little.
    expect(issued).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });
});
