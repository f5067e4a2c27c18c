/**
 * Attacks on the workload proof (the subject_token of POST /token). Every refusal is checked by
 * expectRefused: 400 invalid_request, no lease, no replay record, an exchange.denied audit event,
 * and the token never echoed back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactVerify, decodeJwt, importJWK } from 'jose';
import { exchangeProof } from '../helpers/broker.ts';
import { fixtureClaims, startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { e2ePolicy } from '../helpers/policies.ts';
import { AUD, expectProofRefused, ghClaims, leaseCount, startSecurityEnv, type SecurityEnv } from './harness.ts';

let env: SecurityEnv;
beforeAll(async () => {
  // The SPIFFE issuer (ES256, proofs without jti) is made single use here for the replay cases.
  env = await startSecurityEnv({ policy: (i) => e2ePolicy(i).replace('replay: allow', 'replay: single_use') });
});
afterAll(async () => env?.close());

const b64 = (v: string | Uint8Array): string => Buffer.from(v).toString('base64url');
const now = (): number => Math.floor(Date.now() / 1000);
const github = (): FakeIssuer => env.issuers.github;
const header = (): Record<string, unknown> => ({ alg: 'RS256', typ: 'JWT', kid: github().currentKid() });

describe('signature algorithm attacks', () => {
  it('alg none (unsigned) is refused', async () => {
    await expectProofRefused(env, github().mintUnsigned(ghClaims(env)), { code: 'invalid_request', reason: 'alg_not_allowed' });
  });

  it.each(['pem', 'jwk'] as const)('HS256 keyed with the issuer public key (%s form) is refused', async (form) => {
    await expectProofRefused(env, github().mintHs256WithPublicKey(ghClaims(env), form), { code: 'invalid_request', reason: 'alg_not_allowed' });
  });

  it('duplicate alg in the header: the last one (none) wins, as in every parser Leash uses, and is refused', async () => {
    const claims = { ...ghClaims(env), iat: now(), exp: now() + 300 };
    const rawHeader = `{"alg":"RS256","typ":"JWT","kid":"${github().currentKid()}","alg":"none"}`;
    await expectProofRefused(env, `${b64(rawHeader)}.${b64(JSON.stringify(claims))}.`, { code: 'invalid_request', reason: 'alg_not_allowed' });
  });
});

describe('key confusion between trusted issuers', () => {
  it('kid of another trusted issuer (gitlab key, github iss) is refused: keys come only from the iss JWKS', async () => {
    const proof = await env.issuers.gitlab.mint(ghClaims(env));
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'unknown_kid' });
  });

  it('the same, without a kid: no github key verifies the gitlab signature', async () => {
    const proof = await env.issuers.gitlab.mint(ghClaims(env), { kid: null });
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'bad_signature' });
  });

  it('a genuine token of issuer A re-labelled with iss of issuer B is refused (B has no such key)', async () => {
    const proof = await github().mint(ghClaims(env, { iss: env.issuers.gitlab.url }));
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'unknown_kid' });
  });

  it('an iss that differs only by a trailing slash is another, untrusted issuer', async () => {
    const proof = await github().mint(ghClaims(env, { iss: `${github().url}/` }));
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'untrusted_issuer' });
  });
});

describe('key-locating headers (jku, x5u, jwk, x5c) are ignored and never fetched', () => {
  let attacker: FakeIssuer;
  beforeAll(async () => {
    attacker = await startFakeIssuer({ alg: 'RS256' });
  });
  afterAll(async () => attacker?.close());

  const hostile = (): Record<string, unknown> => ({
    jku: attacker.jwksUri,
    x5u: `${attacker.jwksUri}?x5u=1`,
    jwk: attacker.publicJwk(),
    x5c: [Buffer.from('attacker certificate').toString('base64')],
  });

  it('signed by the attacker key, with its kid and every key-locating header: refused', async () => {
    const proof = await attacker.mint(ghClaims(env), { header: hostile() });
    await expectProofRefused(env, proof, { code: 'invalid_request' });
  });

  it('signed by the attacker key, no kid, embedded jwk only: refused', async () => {
    const proof = await attacker.mint(ghClaims(env), { kid: null, header: { jwk: attacker.publicJwk() } });
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'bad_signature' });
  });

  it('a genuine token carrying the same headers is accepted: the headers are simply ignored', async () => {
    const res = await exchangeProof(env.broker.url, await github().mint(ghClaims(env), { header: hostile() }));
    expect(res.status).toBe(200);
  });

  it('the attacker server was never contacted (JWKS, discovery or x5u)', () => {
    expect(attacker.requestCount()).toBe(0);
    expect(attacker.discoveryCount()).toBe(0);
  });
});

describe('header and payload shape', () => {
  it.each([
    ['crit naming a registered claim', { crit: ['exp'], exp: 1 }],
    ['crit b64=false (RFC 7797)', { crit: ['b64'], b64: false }],
    ['crit naming an unknown extension', { crit: ['urn:x'], 'urn:x': true }],
  ])('%s is refused', async (_name, extra) => {
    const proof = await github().mint(ghClaims(env), { header: extra });
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'crit' });
  });

  it.each([
    ['not JSON', 'not json'],
    ['a JSON array', '[1,2,3]'],
    ['JSON null', 'null'],
    ['a JSON string', '"sub"'],
    ['truncated JSON', '{"sub":"x"'],
  ])('payload that is %s is refused', async (_name, payload) => {
    await expectProofRefused(env, github().signRaw(header(), payload), { code: 'invalid_request', reason: 'malformed' });
  });

  it('payload that is not UTF-8 is refused', async () => {
    const bytes = Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xff, 0xfe, 0xc0]), Buffer.from('"}')]);
    await expectProofRefused(env, github().signRaw(header(), bytes), { code: 'invalid_request', reason: 'malformed' });
  });

  it('a JWE-shaped (five part) token is refused', async () => {
    await expectProofRefused(env, 'a.b.c.d.e', { code: 'invalid_request', reason: 'malformed' });
  });

  it('a token over 16 KiB is refused before any decoding', async () => {
    const proof = await github().mint(ghClaims(env, { padding: 'x'.repeat(17 * 1024) }));
    expect(proof.length).toBeGreaterThan(16 * 1024);
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'too_large' });
  });
});

/**
 * Duplicate claim names. RFC 7519 section 4 allows a parser to keep the lexically last member;
 * JSON.parse does, and so does every reader in Leash (token peek, jose, policy, lease, audit),
 * because they all parse the same signed bytes with JSON.parse. So there is no parser
 * differential inside Leash: the subject that matched policy is the one leased and minted. The
 * issuer signed those exact bytes, so an attacker cannot add a member without the issuer's key.
 * Residual risk (documented, accepted): a different consumer of the same proof that keeps the
 * first member would read another subject; Leash never forwards proofs, so this is not ours.
 */
describe('duplicate claims in the payload JSON: the last member wins, consistently', () => {
  async function exchangeDuplicated(first: string, last: string) {
    const claims: Record<string, unknown> = { ...ghClaims(env), iat: now(), exp: now() + 300 };
    delete claims.sub;
    const body = `{"sub":${JSON.stringify(first)},${JSON.stringify(claims).slice(1, -1)},"sub":${JSON.stringify(last)}}`;
    const res = await exchangeProof(env.broker.url, github().signRaw(header(), body));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const minted = decodeJwt(res.body.access_token);
    const lease = await env.broker.deps.store.get(res.body.lease_id);
    const allowed = (await env.broker.deps.audit.list({ lease_id: res.body.lease_id, type: 'exchange.allowed', limit: 5 })).events[0];
    return { minted, lease, allowed };
  }

  it('operator subject first, workload subject last: the workload rule, lease and token', async () => {
    const last = 'repo:octo-org/octo-repo:ref:refs/heads/main:dup-1';
    const { minted, lease, allowed } = await exchangeDuplicated('repo:octo-org/ops:dup-1', last);
    expect(minted).toMatchObject({ sub: last, client_id: 'gh-deploy' });
    expect(String(minted.scope)).not.toContain('leash:admin');
    expect(lease).toMatchObject({ subject: last, proof_sub: last, rule: 'gh-deploy' });
    expect(allowed).toMatchObject({ subject: last, rule: 'gh-deploy' });
  });

  it('workload subject first, operator subject last: the operator rule, and everything names that subject', async () => {
    const last = 'repo:octo-org/ops:dup-2';
    const { minted, lease, allowed } = await exchangeDuplicated('repo:octo-org/octo-repo:ref:refs/heads/main:dup-2', last);
    expect(minted).toMatchObject({ sub: last, client_id: 'operators' });
    expect(lease).toMatchObject({ subject: last, proof_sub: last, rule: 'operators' });
    expect(allowed).toMatchObject({ subject: last, rule: 'operators' });
  });
});

describe('time and audience claims', () => {
  it('iat in the future (beyond the clock skew) is refused', async () => {
    const t = now();
    const proof = await github().mint(ghClaims(env), { times: { iat: t + 600, nbf: t - 10, exp: t + 900 } });
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'iat_in_future' });
  });

  it('exp absent is refused', async () => {
    await expectProofRefused(env, await github().mint(ghClaims(env), { omit: ['exp'] }), { code: 'invalid_request', reason: 'missing_claim' });
  });

  it('iat absent is refused (max_proof_age cannot be checked)', async () => {
    await expectProofRefused(env, await github().mint(ghClaims(env), { omit: ['iat'] }), { code: 'invalid_request', reason: 'missing_claim' });
  });

  it('expired is refused', async () => {
    const t = now();
    const proof = await github().mint(ghClaims(env), { times: { iat: t - 400, nbf: t - 400, exp: t - 100 } });
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'expired' });
  });

  it('exp spelled as a string is refused', async () => {
    const claims = { ...ghClaims(env), iat: now(), exp: String(now() + 300) };
    await expectProofRefused(env, github().signRaw(header(), JSON.stringify(claims)), { code: 'invalid_request' });
  });

  /**
   * Accepted by design: `aud` means "intended for", and a proof intended for Leash and for
   * someone else is still intended for Leash (RFC 7519 4.1.3). The single-use replay guard is
   * what stops the other audience's copy from being exchanged here twice.
   */
  it('aud array with one accepted and one foreign value is accepted, and then single use', async () => {
    const proof = await github().mint(ghClaims(env, { aud: ['https://foreign.example', AUD] }));
    expect((await exchangeProof(env.broker.url, proof)).status).toBe(200);
    const leases = await leaseCount(env);
    const again = await exchangeProof(env.broker.url, proof);
    expect(again.body.error_description).toMatch(/already been exchanged/);
    expect(await leaseCount(env)).toBe(leases);
  });

  it('aud array with only foreign values is refused', async () => {
    const proof = await github().mint(ghClaims(env, { aud: ['https://foreign.example', `${AUD}/`] }));
    await expectProofRefused(env, proof, { code: 'invalid_request', reason: 'audience' });
  });
});

/**
 * Without a jti, a proof's replay identity is a hash. One proof has several valid spellings of its
 * signature: base64url leaves unused bits in the last character, and an ECDSA (r, s) is also valid
 * as (r, n - s). Each spelling must still be the same proof (fixed: the hash now covers only the
 * signed `header.payload`, src/proofs/proof-verifier.ts).
 */
describe('replay identity of proofs without a jti', () => {
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const P256_N = BigInt('0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551');

  it('RS256: flipping an unused trailing bit of the signature encoding is not a new proof', async () => {
    const claims = ghClaims(env);
    delete claims.jti;
    const proof = await github().mint(claims);
    const [h, p, s] = proof.split('.') as [string, string, string];
    const respelled = `${h}.${p}.${s.slice(0, -1)}${B64URL[B64URL.indexOf(s.at(-1)!) ^ 1]}`;
    expect(Buffer.from(respelled.split('.')[2]!, 'base64url')).toEqual(Buffer.from(s, 'base64url'));
    expect((await exchangeProof(env.broker.url, proof)).status).toBe(200);
    await expectProofRefused(env, respelled, { code: 'invalid_request', description: /already been exchanged/ });
  });

  it('ES256: the malleated signature (r, n - s) verifies, and is not a new proof', async () => {
    const spiffe = env.issuers.spiffe;
    const proof = await spiffe.mint({ ...fixtureClaims('spiffe-jwt-svid'), iss: spiffe.url, aud: [AUD] });
    expect(decodeJwt(proof).jti).toBeUndefined();
    const [h, p, s] = proof.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    const highS = (P256_N - BigInt(`0x${sig.subarray(32).toString('hex')}`)).toString(16).padStart(64, '0');
    const malleated = `${h}.${p}.${Buffer.concat([sig.subarray(0, 32), Buffer.from(highS, 'hex')]).toString('base64url')}`;
    await compactVerify(malleated, await importJWK(spiffe.publicJwk() as never, 'ES256')); // a valid signature
    expect((await exchangeProof(env.broker.url, proof, { scope: 'db:read' })).status).toBe(200);
    await expectProofRefused(env, malleated, { code: 'invalid_request', description: /already been exchanged/ }, { scope: 'db:read' });
  });
});
