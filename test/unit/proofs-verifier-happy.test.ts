import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofVerifier, replayTtlSeconds } from '../../src/proofs/proof-verifier.ts';
import {
  TEST_AUDIENCE as AUD,
  expectProofRefusal,
  fixtureClaims,
  fixtureExamples,
  startFakeIssuer,
  trustedIssuerFor as trusted,
  type FakeAlg,
  type FakeIssuer,
} from '../helpers/fake-issuer.ts';

describe('ProofVerifier accepts real-world workload proofs', () => {
  let fi: FakeIssuer;
  let verifier: ProofVerifier;

  beforeAll(async () => {
    fi = await startFakeIssuer({ alg: 'RS256' });
    verifier = new ProofVerifier({ issuers: [trusted(fi)] });
  });
  afterAll(() => fi.close());

  const fixtures = ['github-actions', 'gitlab-ci', 'kubernetes-sa', 'circleci', 'buildkite'] as const;
  for (const file of fixtures) {
    for (const ex of fixtureExamples(file)) {
      it(`${file} / ${ex.name}`, async () => {
        const token = await fi.mint({ ...ex.claims, iss: fi.url, aud: AUD });
        const proof = await verifier.verify(token);
        expect(proof.issuer.name).toBe('fake');
        expect(proof.subject).toBe(ex.claims.sub);
        // Custom claims come through untouched (nested objects, numbers, booleans, null).
        for (const [k, v] of Object.entries(ex.claims)) {
          if (!['iss', 'aud', 'iat', 'nbf', 'exp'].includes(k)) expect(proof.claims[k]).toEqual(v);
        }
        if (typeof ex.claims.jti === 'string') {
          expect(proof.jti).toBe(ex.claims.jti);
          expect(proof.replayKey).toBe(`fake:jti:${ex.claims.jti}`);
        } else {
          expect(proof.jti).toBeNull();
          // The signing input, not the whole token: ECDSA signatures are malleable, so the same
          // signed claims can come with several valid signatures.
          const hash = createHash('sha256').update(token.slice(0, token.lastIndexOf('.'))).digest('base64url');
          expect(proof.replayKey).toBe(`fake:sha256:${hash}`);
        }
        expect(proof.expiresAt).toBe(proof.claims.exp);
      });
    }
  }

  it('kubernetes-sa: aud as a list, one-year exp bounded for replay by max_proof_age', async () => {
    const claims = fixtureClaims('kubernetes-sa', 'pod-bound-default-projected');
    const token = await fi.mint({ ...claims, iss: fi.url, aud: [AUD] });
    const proof = await verifier.verify(token);
    expect(proof.subject).toBe('system:serviceaccount:kube-system:coredns');
    expect((proof.claims['kubernetes.io'] as { namespace: string }).namespace).toBe('kube-system');
    expect(proof.expiresAt - (proof.claims.iat as number)).toBe(1798761600 - 1767225600);
    // Accepted while floor(now) <= iat + 600 + 30 (skew); remembered a second beyond that.
    expect(proof.acceptedUntil).toBe((proof.claims.iat as number) + 600 + 30 + 1);
    expect(replayTtlSeconds(proof, Date.now())).toBeLessThanOrEqual(632);
    expect(replayTtlSeconds(proof, Date.now())).toBeGreaterThan(630);
  });
});

describe('ProofVerifier across key types and issuer URLs', () => {
  const algs: FakeAlg[] = ['ES256', 'RS256', 'PS256', 'EdDSA'];
  for (const alg of algs) {
    it(`verifies ${alg} via OIDC discovery on an issuer with a path`, async () => {
      const fi = await startFakeIssuer({ alg, path: '/tenant/a' });
      try {
        expect(fi.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/tenant\/a$/);
        const verifier = new ProofVerifier({ issuers: [trusted(fi)] });
        const gh = fixtureClaims('github-actions', 'environment-production');
        const proof = await verifier.verify(await fi.mint({ ...gh, iss: fi.url, aud: AUD }));
        expect(proof.subject).toBe(gh.sub);
        expect(fi.discoveryCount()).toBe(1);
        expect(fi.requestCount()).toBe(1);
      } finally {
        await fi.close();
      }
    });
  }

  it('SPIFFE JWT-SVIDs: ES256 with a list aud; and RS256 with no kid and a string aud', async () => {
    const es = await startFakeIssuer({ alg: 'ES256' });
    const rs = await startFakeIssuer({ alg: 'RS256' });
    try {
      const verifier = new ProofVerifier({
        issuers: [trusted(es, { name: 'spire-a' }), trusted(rs, { name: 'spire-b', jwks_uri: rs.jwksUri })],
      });
      const [a, b] = fixtureExamples('spiffe-jwt-svid');
      // A SPIRE server configured with an issuer (jwt_issuer): the iss selects the entry as for any
      // OIDC issuer. mint stamps iat. (Without iss: the trust-domain test below.)
      const ta = await es.mint({ ...a!.claims, aud: [AUD] }, { header: { typ: 'JWT' } });
      const pa = await verifier.verify(ta);
      expect(pa.subject).toBe('spiffe://staging.example.com/payments/web-fe');
      expect(pa.issuer.name).toBe('spire-a');
      expect(pa.jti).toBeNull();

      rs.rotate(); // two published keys: the kid-less token must still find the right one
      const tb = await rs.mint({ ...b!.claims, aud: AUD }, { kid: null, header: { typ: 'JOSE' } });
      const pb = await verifier.verify(tb);
      expect(pb.subject).toBe('spiffe://k8s-west.example.com/ns/staging/sa/default');
      expect(rs.discoveryCount()).toBe(0); // configured jwks_uri: no discovery
    } finally {
      await es.close();
      await rs.close();
    }
  });

  it('SPIFFE JWT-SVIDs without iss or iat, trusted by a spiffe://<trust domain> entry', async () => {
    const es = await startFakeIssuer({ alg: 'ES256' });
    const rs = await startFakeIssuer({ alg: 'RS256' });
    const domain = (issuer: string, fi: FakeIssuer, name: string) => ({ ...trusted(fi, { name, jwks_uri: fi.jwksUri }), issuer, max_proof_age: 600 });
    try {
      const verifier = new ProofVerifier({
        issuers: [domain('spiffe://staging.example.com', es, 'staging'), domain('spiffe://k8s-west.example.com', rs, 'west'), trusted(es, { name: 'oidc' })],
      });
      const [a, b] = fixtureExamples('spiffe-jwt-svid');
      const now = Math.floor(Date.now() / 1000);
      // The fixture's iat kept (SPIRE sets it), iss dropped
      const pa = await verifier.verify(await es.mint({ ...a!.claims, aud: [AUD] }, { omit: ['iss'] }));
      expect(pa.issuer.name).toBe('staging');
      // The spec's minimal token: sub, aud, exp only; typ JOSE, no kid. Without iat the replay
      // record lasts until exp.
      const minimal = await rs.mint({ ...b!.claims, aud: AUD }, { kid: null, header: { typ: 'JOSE' }, omit: ['iss', 'iat'], times: { exp: now + 300 } });
      const pb = await verifier.verify(minimal);
      expect(pb).toMatchObject({ subject: 'spiffe://k8s-west.example.com/ns/staging/sa/default', jti: null, acceptedUntil: now + 300 + 30 });
      expect(pb.issuer.name).toBe('west');
      // iss equal to the trust domain is accepted too
      expect((await verifier.verify(await es.mint({ ...a!.claims, aud: [AUD], iss: 'spiffe://staging.example.com' }))).issuer.name).toBe('staging');

      // Refusals. A trust domain's own ID (no workload path) is no workload, with or without iss.
      await expectProofRefusal(verifier.verify(await es.mint({ ...a!.claims, sub: 'spiffe://staging.example.com', aud: [AUD] }, { omit: ['iss'] })), 'missing_claim');
      await expectProofRefusal(verifier.verify(await es.mint({ ...a!.claims, sub: 'spiffe://staging.example.com', aud: [AUD], iss: 'spiffe://staging.example.com' })), 'untrusted_issuer');
      // A trust domain the policy does not name: no issuer.
      await expectProofRefusal(verifier.verify(await es.mint({ ...a!.claims, sub: 'spiffe://evil.example.com/x', aud: [AUD] }, { omit: ['iss'] })), 'missing_claim');
      // Signed by another trust domain's key (or an unpublished one): the trust domain's bundle decides.
      await expectProofRefusal(verifier.verify(await rs.mint({ ...a!.claims, aud: [AUD] }, { kid: null, omit: ['iss'] })), 'unknown_kid');
      await expectProofRefusal(verifier.verify(await es.mint({ ...a!.claims, aud: [AUD] }, { key: 'other', kid: null, omit: ['iss'] })), 'bad_signature');
      // No iat and usable for longer than max_proof_age (10 min): its age cannot be bounded.
      await expectProofRefusal(verifier.verify(await rs.mint({ ...b!.claims, aud: AUD }, { omit: ['iss', 'iat'], times: { exp: now + 3600 } })), 'too_old');
      // Only a trust-domain entry waives iat; an OIDC issuer still needs it.
      await expectProofRefusal(verifier.verify(await es.mint({ sub: 'x', aud: AUD }, { omit: ['iat'] })), 'missing_claim');
      // A token naming a SPIFFE ID under another issuer's iss is that issuer's business, not the trust domain's.
      await expectProofRefusal(verifier.verify(await es.mint({ ...a!.claims, aud: [AUD], iss: 'https://elsewhere.example' })), 'untrusted_issuer');
      // A non-SPIFFE token without iss is refused as before.
      await expectProofRefusal(verifier.verify(await es.mint({ sub: 'repo:x', aud: AUD }, { omit: ['iss'] })), 'missing_claim');
    } finally {
      await es.close();
      await rs.close();
    }
  });

  it('accepts an aud array with one allowed and one foreign audience', async () => {
    const fi = await startFakeIssuer();
    try {
      const verifier = new ProofVerifier({ issuers: [trusted(fi)] });
      const token = await fi.mint({ sub: 'x', aud: ['https://someone-else.example', AUD] });
      expect((await verifier.verify(token)).subject).toBe('x');
    } finally {
      await fi.close();
    }
  });

  it('picks, among entries with the same iss, the one whose audiences the token names', async () => {
    const fi = await startFakeIssuer();
    try {
      const verifier = new ProofVerifier({
        issuers: [trusted(fi, { name: 'one', audiences: ['https://a'] }), trusted(fi, { name: 'two', audiences: ['https://b'] })],
      });
      expect((await verifier.verify(await fi.mint({ sub: 's', aud: 'https://b' }))).issuer.name).toBe('two');
      expect((await verifier.verify(await fi.mint({ sub: 's', aud: 'https://a' }))).issuer.name).toBe('one');
    } finally {
      await fi.close();
    }
  });
});
