/**
 * Differential test of Leash's proof verification (ProofVerifier: token-peek, header-checks,
 * key-select and fast-verify) against jose's jwtVerify, on tokens over every algorithm Leash
 * accepts and many ways of getting a token wrong. The same token at the same instant must get the
 * same verdict (and, when both accept, the same claims), except where jwt-oracle.ts names a rule
 * by which Leash is deliberately stricter.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofVerifier } from '../../src/proofs/proof-verifier.ts';
import { ProofError } from '../../src/proofs/proof-error.ts';
import type { TrustedIssuer } from '../../src/policy/types.ts';
import { joseVerdict, leashStricter, type Outcome } from './jwt-oracle.ts';
import { AUDS, build, ISS, LEASH_ALGS, makeKeys, MAX_AGE, recipeArb, SKEW, type Keys, type Recipe } from './jwt-tokens.ts';

let keys: Keys;
let server: Server;
let verifier: ProofVerifier;
let clockMs = 0;
// A whole second, fixed for the run: each case moves only the milliseconds within it.
const baseSec = Math.floor(Date.now() / 1000);

beforeAll(async () => {
  keys = makeKeys();
  server = createServer((_req, res) => {
    const body = JSON.stringify(keys.jwks);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer: TrustedIssuer = {
    name: 'differential',
    issuer: ISS,
    audiences: AUDS,
    jwks_uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    max_proof_age: MAX_AGE,
    replay: 'single_use',
  };
  verifier = new ProofVerifier({ issuers: [issuer], clockSkewSeconds: SKEW, now: () => clockMs });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function leashVerdict(token: string, nowMs: number): Promise<Outcome> {
  clockMs = nowMs;
  try {
    return { ok: true, claims: (await verifier.verify(token)).claims };
  } catch (err) {
    // Anything but a proof refusal (a crash, a 503 for keys) is a failure of the test, not a verdict.
    if (!(err instanceof ProofError)) throw err;
    expect(err.code).toBe('invalid_request');
    return { ok: false, why: err.reason };
  }
}

async function agree(r: Recipe): Promise<void> {
  const { token, nowMs } = build(r, keys, baseSec);
  const jose = await joseVerdict(keys.jwks, token, nowMs);
  const leash = await leashVerdict(token, nowMs);
  const stricter = jose.ok ? leashStricter(token) : null;
  const context = { token: token.length > 600 ? `${token.slice(0, 600)}...` : token, jose: jose.ok ? 'accept' : jose.why, leash: leash.ok ? 'accept' : leash.why, stricter };
  expect(leash.ok, JSON.stringify(context)).toBe(jose.ok && stricter === null);
  // Same bytes parsed the same way: duplicate names resolve to the last, __proto__ stays a plain key.
  if (leash.ok && jose.ok) expect(JSON.stringify(leash.claims)).toBe(JSON.stringify(jose.claims));
}

/** A recipe that both verifiers must accept, for examples to vary one thing from. */
const valid = (over: Partial<Recipe> = {}): Recipe => ({
  alg: 'ES256',
  signer: 'right',
  kid: 'signer',
  headerExtra: { typ: 'JWT' },
  headerText: 'plain',
  fixture: ['github-actions', 0],
  claims: { iss: ISS, aud: AUDS[0], sub: 'fixture', jti: 'fixture', exp: 60, iat: 0, nbf: undefined },
  payloadText: 'plain',
  headerEnc: 'canonical',
  payloadEnc: 'canonical',
  sigEnc: 'canonical',
  tokenShape: 'three',
  nowMs: 500,
  ...over,
});

describe('proof verification: Leash and jose give the same verdict', () => {
  it.each(LEASH_ALGS.map((alg) => [alg]))('a valid %s proof is accepted by both, with the same claims', async (alg) => {
    const r = valid({ alg });
    const { token, nowMs } = build(r, keys, baseSec);
    expect((await joseVerdict(keys.jwks, token, nowMs)).ok).toBe(true);
    await agree(r);
    await agree({ ...r, kid: 'absent' });
  });

  // Found by this test: Buffer.from(s, 'base64url') drops a dangling 4n+1th character, so Leash
  // took an ES512 signature (176 characters) with one more appended, and a payload segment so
  // spelled; a length of 4n + 1 is not base64url at all (jose refuses it).
  it.each([
    ['ES512 signature', valid({ alg: 'ES512', sigEnc: 'dangling' })],
    ['payload', valid({ payloadEnc: 'dangling' })],
    ['header', valid({ alg: 'EdDSA', headerEnc: 'dangling' })],
  ])('a %s segment of 4n + 1 characters is refused by both', async (_what, r) => {
    await agree(r);
  });

  it('at and around every clock bound: exp, nbf, iat in the future and max_proof_age, with the skew', async () => {
    const cases: Recipe[] = [];
    for (const nowMs of [0, 999]) {
      for (const d of [-1, -0.5, 0, 0.5, 1]) {
        cases.push(valid({ nowMs, claims: { ...valid().claims, exp: -SKEW + d } }));
        cases.push(valid({ nowMs, claims: { ...valid().claims, nbf: SKEW + d } }));
        cases.push(valid({ nowMs, claims: { ...valid().claims, iat: SKEW + d } }));
        cases.push(valid({ nowMs, claims: { ...valid().claims, iat: -MAX_AGE - SKEW + d, exp: 60 } }));
      }
    }
    for (const r of cases) await agree(r);
  });

  it('on generated tokens (every algorithm, claims, headers, encodings and shapes)', async () => {
    await fc.assert(fc.asyncProperty(recipeArb, agree), { numRuns: 700, examples: [[valid({ alg: 'ES512', sigEnc: 'dangling' })]] });
  });
});
