import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, verify } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { ProofVerifier, type VerifiedProof } from '../../src/proofs/proof-verifier.ts';
import type { Signed } from '../../src/crypto/signer.ts';
import { SignatureThread } from '../../src/crypto/signature-thread.ts';
import { startSignatureWorker, type WireBatch } from '../../src/crypto/worker-source.ts';
import {
  TEST_AUDIENCE as AUD,
  expectProofRefusal as refused,
  fixtureClaims,
  startFakeIssuer,
  trustedIssuerFor as trusted,
  type FakeIssuer,
} from '../helpers/fake-issuer.ts';

const now = (): number => Math.floor(Date.now() / 1000);

describe('ProofVerifier refuses', () => {
  let fi: FakeIssuer;
  let verifier: ProofVerifier;
  let base: Record<string, unknown>;

  beforeAll(async () => {
    fi = await startFakeIssuer({ alg: 'ES256' });
    verifier = new ProofVerifier({ issuers: [trusted(fi)] });
    base = { ...fixtureClaims('github-actions', 'push-main'), iss: fi.url, aud: AUD };
    await verifier.verify(await fi.mint(base)); // warm the cache: refusals below are not about fetching
  });
  afterAll(() => fi.close());

  it('alg none', async () => {
    const token = fi.mintUnsigned(base);
    await refused(verifier.verify(token), 'alg_not_allowed', token);
  });

  it('HS256 keyed with the public key (PEM and JWK bytes)', async () => {
    for (const form of ['pem', 'jwk'] as const) {
      const token = fi.mintHs256WithPublicKey(base, form);
      await refused(verifier.verify(token), 'alg_not_allowed', token);
    }
  });

  it('HS256 even when the policy lists it, and an alg the issuer entry does not list', async () => {
    const v = new ProofVerifier({ issuers: [trusted(fi, { algorithms: ['HS256', 'RS256'] })] });
    await refused(v.verify(fi.mintHs256WithPublicKey(base)), 'alg_not_allowed');
    await refused(v.verify(await fi.mint(base)), 'alg_not_allowed');
  });

  it('an unknown kid', async () => {
    await refused(verifier.verify(await fi.mint(base, { kid: 'no-such-key' })), 'unknown_kid');
  });

  it('a signature by another key under a published kid', async () => {
    const token = await fi.mint(base, { key: 'other' });
    await refused(verifier.verify(token), 'bad_signature', token);
  });

  it('a tampered payload', async () => {
    const [h, , s] = (await fi.mint(base)).split('.');
    const forged = Buffer.from(JSON.stringify({ ...base, sub: 'repo:evil/evil:ref:refs/heads/main', iat: now(), exp: now() + 60 })).toString('base64url');
    await refused(verifier.verify(`${h}.${forged}.${s}`), 'bad_signature');
  });

  it('a wrong iss (trailing slash, case): exact match only', async () => {
    await refused(verifier.verify(await fi.mint({ ...base, iss: `${fi.url}/` })), 'untrusted_issuer');
    await refused(verifier.verify(await fi.mint({ ...base, iss: fi.url.replace('http', 'HTTP') })), 'untrusted_issuer');
    await refused(verifier.verify(await fi.mint(base, { omit: ['iss'] })), 'missing_claim');
  });

  it('an untrusted issuer, without ever fetching its keys', async () => {
    const stranger = await startFakeIssuer();
    try {
      await refused(verifier.verify(await stranger.mint({ ...base, iss: stranger.url })), 'untrusted_issuer');
      // Another issuer's token claiming our trusted iss: its kid is not in the trusted JWKS.
      await refused(verifier.verify(await stranger.mint({ ...base, iss: fi.url })), 'unknown_kid');
      expect(stranger.requestCount() + stranger.discoveryCount()).toBe(0);
    } finally {
      await stranger.close();
    }
  });

  it('a wrong aud (string, list, absent)', async () => {
    await refused(verifier.verify(await fi.mint({ ...base, aud: 'https://other.example' })), 'audience');
    await refused(verifier.verify(await fi.mint({ ...base, aud: ['https://a.example', 'https://b.example'] })), 'audience');
    await refused(verifier.verify(await fi.mint(base, { omit: ['aud'] })), 'missing_claim');
  });

  it('an expired proof, beyond the clock skew only', async () => {
    await refused(verifier.verify(await fi.mint(base, { times: { iat: now() - 300, exp: now() - 31 } })), 'expired');
    await expect(verifier.verify(await fi.mint(base, { times: { iat: now() - 300, exp: now() - 20 } }))).resolves.toBeTruthy();
  });

  it('nbf in the future', async () => {
    await refused(verifier.verify(await fi.mint(base, { times: { nbf: now() + 120 } })), 'not_yet_valid');
  });

  it("iat older than the issuer's max_proof_age (+ skew)", async () => {
    await refused(verifier.verify(await fi.mint(base, { times: { iat: now() - 640, exp: now() + 60 } })), 'too_old');
    await expect(verifier.verify(await fi.mint(base, { times: { iat: now() - 610, exp: now() + 60 } }))).resolves.toBeTruthy();
  });

  it('iat in the future beyond the skew', async () => {
    await refused(verifier.verify(await fi.mint(base, { times: { iat: now() + 120, exp: now() + 600 } })), 'iat_in_future');
  });

  it('exp, iat or sub absent', async () => {
    for (const claim of ['exp', 'iat', 'sub']) {
      const e = await refused(verifier.verify(await fi.mint(base, { omit: [claim] })), 'missing_claim');
      // The description names the missing claim: that is the user's only hint which one to add.
      expect(e.description).toBe(`subject_token has no ${claim} claim`);
    }
  });

  it('claims of the wrong type', async () => {
    await refused(verifier.verify(await fi.mint({ ...base, jti: 42 })), 'malformed');
    await refused(verifier.verify(await fi.mint({ ...base, sub: '' })), 'malformed');
    await refused(verifier.verify(await fi.mint({ ...base, iss: 7 })), 'malformed');
    await refused(verifier.verify(await fi.mint(base, { times: { exp: '2099' as unknown as number } })), 'malformed');
  });

  it('a string that is not well-formed Unicode, at any depth, as a value or a key, in claims or header', async () => {
    await refused(verifier.verify(await fi.mint({ ...base, sub: 'poison:x\ud800' })), 'malformed_claims');
    await refused(verifier.verify(await fi.mint({ ...base, a: [{ b: { c: ['\udfff'] } }] })), 'malformed_claims');
    await refused(verifier.verify(await fi.mint({ ...base, ['\udbff']: 1 })), 'malformed_claims');
    await refused(verifier.verify(await fi.mint(base, { header: { x: '\ud83d' } })), 'malformed_claims');
    await verifier.verify(await fi.mint({ ...base, jti: `pair-${now()}`, name: '\ud83d\ude00 \\ud800' }));
  });

  it('a crit header', async () => {
    const token = await fi.mint(base, { header: { crit: ['exp'], exp: 1 } });
    await refused(verifier.verify(token), 'crit');
    await refused(verifier.verify(await fi.mint(base, { header: { crit: ['b64'], b64: false } })), 'crit');
  });

  it('a non-JSON payload, a JSON non-object payload, and malformed compact forms', async () => {
    const header = { alg: 'ES256', kid: fi.currentKid() };
    await refused(verifier.verify(fi.signRaw(header, 'iss=me;sub=you')), 'malformed');
    await refused(verifier.verify(fi.signRaw(header, '["a"]')), 'malformed');
    await refused(verifier.verify(fi.signRaw(header, new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]))), 'malformed');
    for (const bad of ['', 'abc', 'a.b', 'a.b.c.d.e', 'e30.e30.@@@', '!!.e30.abc']) {
      await refused(verifier.verify(bad), 'malformed');
    }
  });

  it('a huge token, before fetching or parsing anything', async () => {
    const before = fi.requestCount();
    const token = await fi.mint({ ...base, padding: 'x'.repeat(20_000) });
    await refused(verifier.verify(token), 'too_large');
    expect(fi.requestCount()).toBe(before);
    const small = new ProofVerifier({ issuers: [trusted(fi)], maxTokenBytes: 100 });
    await refused(small.verify(await fi.mint(base)), 'too_large');
  });

  it('a header alg that does not fit the key its kid names', async () => {
    await refused(verifier.verify(await fi.mint(base, { header: { alg: 'ES384' } })), 'key_mismatch');
    await refused(verifier.verify(await fi.mint(base, { header: { alg: 'RS256' } })), 'key_mismatch');
    await refused(verifier.verify(await fi.mint(base, { header: { alg: 'EdDSA' } })), 'key_mismatch');
  });
});

describe('ProofVerifier key selection', () => {
  it('ignores JWKS entries with use=enc, symmetric keys and private keys', async () => {
    const fi = await startFakeIssuer({ alg: 'EdDSA' });
    try {
      const pub = fi.publicJwk();
      fi.publishExtra([
        { ...pub, kid: 'enc-key', use: 'enc' },
        { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
        { ...pub, kid: 'ops-key', key_ops: ['encrypt'] },
      ]);
      const v = new ProofVerifier({ issuers: [trusted(fi)] });
      const claims = { sub: 's', aud: AUD };
      await expect(v.verify(await fi.mint(claims))).resolves.toBeTruthy();
      await refused(v.verify(await fi.mint(claims, { kid: 'enc-key' })), 'unknown_kid');
      await refused(v.verify(await fi.mint(claims, { kid: 'ops-key' })), 'unknown_kid');
      await refused(v.verify(await fi.mint(claims, { kid: 'hmac' })), 'unknown_kid');
    } finally {
      await fi.close();
    }
  });
});

// The exchange decides and builds its access token from the claims while their signature is being
// checked, and has the token signed in the same trip: nothing of that may outlive a refusal.
describe('ProofVerifier.start: a signature made in the same trip as the proof check', () => {
  let fi: FakeIssuer;
  let verifier: ProofVerifier;
  let base: Record<string, unknown>;
  const minter = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const job = { hash: 'sha256', signingInput: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0', key: minter.privateKey };
  const signedBy = (signature: string): boolean =>
    verify('sha256', Buffer.from(job.signingInput), { key: minter.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  /** What the exchange does: start, work out the job from the unchecked claims, have it signed with the check. */
  const startThenSign = async (v: ProofVerifier, token: string): Promise<{ proof: VerifiedProof; signed: Signed | undefined }> => {
    const pending = await v.start(token);
    const proof = await pending.verified(job);
    return { proof, signed: pending.signed };
  };

  beforeAll(async () => {
    fi = await startFakeIssuer({ alg: 'ES256' });
    verifier = new ProofVerifier({ issuers: [trusted(fi)] });
    base = { ...fixtureClaims('github-actions', 'push-main'), iss: fi.url, aud: AUD };
  });
  afterAll(() => fi.close());

  it('a good proof: the proof and its signature come back', async () => {
    const r = await startThenSign(verifier, await fi.mint(base));
    expect(r.proof.subject).toBe(base.sub);
    expect(r.signed?.ok).toBe(true);
    const signature = r.signed?.ok ? r.signed.signature : '';
    expect(signedBy(signature)).toBe(true);
  });

  it('a forged proof is bad_signature, whatever its claims also got wrong, and nothing is signed', async () => {
    for (const times of [undefined, { iat: now() - 300, exp: now() - 120 }]) {
      const token = await fi.mint(base, { key: 'other', ...(times ? { times } : {}) });
      await refused(startThenSign(verifier, token), 'bad_signature', token);
    }
    const [h, , s] = (await fi.mint(base)).split('.');
    const forged = Buffer.from(JSON.stringify({ ...base, sub: 'repo:evil/evil:ref:refs/heads/main', iat: now(), exp: now() + 60 })).toString('base64url');
    await refused(startThenSign(verifier, `${h}.${forged}.${s}`), 'bad_signature');
    const pending = await verifier.start(`${h}.${forged}.${s}`);
    await expect(pending.verified(job)).rejects.toThrow();
    expect(pending.signed).toBeUndefined();
  });

  it("a genuine proof with a bad claim gets that claim's refusal; an error met meanwhile fails only a proof that verifies", async () => {
    await refused(startThenSign(verifier, await fi.mint(base, { times: { iat: now() - 300, exp: now() - 120 } })), 'expired');
    // The exchange's contract (refused() in exchange.ts): a refusal made while the check is under
    // way waits for it, and a bad signature outranks it.
    const throwing = async (token: string): Promise<never> => {
      const pending = await verifier.start(token);
      try {
        throw new Error('plan failed');
      } catch (err) {
        await pending.verified();
        throw err;
      }
    };
    await expect(throwing(await fi.mint(base))).rejects.toThrow('plan failed');
    await refused(throwing(await fi.mint(base, { key: 'other' })), 'bad_signature');
  });

  it('with several candidate keys (no kid), the signature is made after the right key is found', async () => {
    const rotating = await startFakeIssuer({ alg: 'ES256' });
    try {
      rotating.rotate(); // two keys published: a proof without kid is tried against both
      const v = new ProofVerifier({ issuers: [trusted(rotating)] });
      const claims = { ...base, iss: rotating.url };
      const r = await startThenSign(v, await rotating.mint(claims, { kid: null }));
      expect(r.signed?.ok).toBe(true);
      await refused(startThenSign(v, await rotating.mint(claims, { kid: null, key: 'other' })), 'bad_signature');
    } finally {
      await rotating.close();
    }
  });

  it('the check and the signature go to the thread as one job of one batch', async () => {
    const batches: WireBatch[] = [];
    const recording = (): Worker => {
      const worker = startSignatureWorker();
      const post = worker.postMessage.bind(worker);
      worker.postMessage = (m: WireBatch) => {
        batches.push(m);
        post(m);
      };
      return worker;
    };
    const v = new ProofVerifier({ issuers: [trusted(fi)], signer: new SignatureThread(recording) });
    const r = await startThenSign(v, await fi.mint(base));
    expect(r.signed?.ok && signedBy(r.signed.signature)).toBe(true);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.jobs).toHaveLength(1);
    // [check: hash, input, options, keyId, signature] + [sign: hash, input, options, keyId]
    expect(batches[0]!.jobs[0]).toHaveLength(9);
    expect(batches[0]!.jobs[0]![6]).toBe(job.signingInput);
  });

  it('a job given after the check has left is still signed, only once the check holds', async () => {
    const late = async (token: string): Promise<Signed | undefined> => {
      const pending = await verifier.start(token);
      await new Promise((resolve) => setImmediate(resolve)); // the batch leaves without the job
      await pending.verified(job);
      return pending.signed;
    };
    const signed = await late(await fi.mint(base));
    expect(signed?.ok && signedBy(signed.signature)).toBe(true);
    await refused(late(await fi.mint(base, { key: 'other' })), 'bad_signature');
  });

  it('LEASH_SIGNATURE_THREAD=off: the same answers, checked and signed on the event loop', async () => {
    const v = new ProofVerifier({ issuers: [trusted(fi)], signatureThread: false });
    const r = await startThenSign(v, await fi.mint(base));
    expect(r.signed?.ok && signedBy(r.signed.signature)).toBe(true);
    await refused(startThenSign(v, await fi.mint(base, { key: 'other' })), 'bad_signature');
    await refused(startThenSign(v, await fi.mint(base, { times: { iat: now() - 300, exp: now() - 120 } })), 'expired');
  });
});
