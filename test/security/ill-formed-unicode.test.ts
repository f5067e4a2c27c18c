/**
 * Proofs whose strings are not well-formed Unicode (a lone UTF-16 surrogate, written as a `\uD8xx`
 * escape in the JSON): valid JSON, signed by a trusted issuer, but Redis's Lua cjson cannot read a
 * record that holds one. Such a proof is refused before it becomes a lease (audit reason
 * malformed_claims); a valid surrogate pair, escaped or not, is an ordinary character.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeProof } from '../helpers/broker.ts';
import { deniedEvent, expectProofRefused, ghClaims, startSecurityEnv, type SecurityEnv } from './harness.ts';

let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv();
});
afterAll(async () => env?.close());

const now = (): number => Math.floor(Date.now() / 1000);
const MALFORMED = { code: 'invalid_request', reason: 'malformed_claims' };

async function expectMalformedClaims(proof: string): Promise<void> {
  const res = await expectProofRefused(env, proof, MALFORMED);
  expect((await deniedEvent(env, res.body.request_id))!.reason).toContain('malformed_claims');
}

describe('proofs holding a lone surrogate', () => {
  it('a sub ending in a lone high surrogate ("poison:x\\ud800") is refused, and no lease is written', async () => {
    const claims = ghClaims(env);
    await expectMalformedClaims(await env.issuers.github.mint({ ...claims, sub: `${claims.sub as string}:poison:x\ud800` }));
  });

  it('a lone low surrogate deep inside a claim value is refused', async () => {
    await expectMalformedClaims(await env.issuers.github.mint(ghClaims(env, { ctx: { a: [1, { b: ['ok', 'bad \udfff'] }] } })));
  });

  it('a lone surrogate in a claim name is refused', async () => {
    await expectMalformedClaims(await env.issuers.github.mint(ghClaims(env, { ['k\ud83d']: 'v' })));
  });

  it('a lone surrogate in a header string is refused', async () => {
    await expectMalformedClaims(await env.issuers.github.mint(ghClaims(env), { header: { x5u: 'https://x.test/\udbff' } }));
  });

  it('a high surrogate escape followed by an escaped backslash and a low one is still lone: refused', async () => {
    const claims = { ...ghClaims(env), iat: now(), exp: now() + 300 };
    const json = JSON.stringify(claims).replace(/}$/, ',"note":"\\ud83d\\\\ude00"}');
    const gh = env.issuers.github;
    await expectMalformedClaims(gh.signRaw({ alg: 'RS256', typ: 'JWT', kid: gh.currentKid() }, json));
  });

  it('a surrogate pair, raw or written as two escapes, is accepted', async () => {
    const gh = env.issuers.github;
    const claims = { ...ghClaims(env), iat: now(), exp: now() + 300, workflow: 'deploy 😀' };
    const escaped = JSON.stringify(claims).replace('😀', '\\ud83d\\ude00');
    expect(escaped).toContain('\\ud83d\\ude00');
    const res = await exchangeProof(env.broker.url, gh.signRaw({ alg: 'RS256', typ: 'JWT', kid: gh.currentKid() }, escaped));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.lease_id).toEqual(expect.any(String));
  });
});
