import { describe, expect, it } from 'vitest';
import { MemoryReplayGuard } from '../../src/leases/memory-replay-guard.ts';
import { ProofVerifier, replayTtlSeconds } from '../../src/proofs/proof-verifier.ts';
import { TEST_AUDIENCE, fixtureClaims, startFakeIssuer, trustedIssuerFor } from '../helpers/fake-issuer.ts';

describe('MemoryReplayGuard', () => {
  it('claims a key once until it expires, and gives it back on release', async () => {
    let t = 1_000_000;
    const guard = new MemoryReplayGuard({ now: () => t });
    expect(await guard.claim('k', 10)).toBe(true);
    expect(await guard.claim('k', 10)).toBe(false);
    expect(await guard.claim('other', 10)).toBe(true);
    t += 9_999;
    expect(await guard.claim('k', 10)).toBe(false);
    t += 1;
    expect(await guard.claim('k', 10)).toBe(true);
    await guard.release('k');
    expect(await guard.claim('k', 10)).toBe(true);
  });

  it('treats a ttl below one second as one second', async () => {
    let t = 0;
    const guard = new MemoryReplayGuard({ now: () => t });
    expect(await guard.claim('k', 0)).toBe(true);
    t += 999;
    expect(await guard.claim('k', -5)).toBe(false);
  });

  it('prunes expired keys lazily', async () => {
    let t = 0;
    const guard = new MemoryReplayGuard({ now: () => t, sweepIntervalMs: 1_000 });
    for (let i = 0; i < 100; i++) await guard.claim(`k${i}`, 1);
    expect(guard.size).toBe(100);
    t += 5_000;
    await guard.claim('fresh', 60);
    expect(guard.size).toBe(1);
  });

  it('a verified proof is exchangeable once: replayKey by jti, or by token hash', async () => {
    const fi = await startFakeIssuer();
    try {
      const verifier = new ProofVerifier({ issuers: [trustedIssuerFor(fi)] });
      const guard = new MemoryReplayGuard();
      const withJti = await verifier.verify(await fi.mint({ sub: 's', aud: TEST_AUDIENCE, jti: 'j-1' }));
      const ttl = replayTtlSeconds(withJti, Date.now());
      expect(ttl).toBeGreaterThanOrEqual(325);
      expect(ttl).toBeLessThanOrEqual(332);
      expect(await guard.claim(withJti.replayKey, ttl)).toBe(true);
      // Same jti in a freshly minted token: still the same proof identity.
      const again = await verifier.verify(await fi.mint({ sub: 's', aud: TEST_AUDIENCE, jti: 'j-1' }));
      expect(await guard.claim(again.replayKey, ttl)).toBe(false);
      const noJti = await fi.mint({ sub: 's', aud: TEST_AUDIENCE });
      const p1 = await verifier.verify(noJti);
      expect(p1.replayKey).toMatch(/^fake:sha256:[A-Za-z0-9_-]{43}$/);
      expect(await guard.claim(p1.replayKey, ttl)).toBe(true);
      expect(await guard.claim((await verifier.verify(noJti)).replayKey, ttl)).toBe(false);
    } finally {
      await fi.close();
    }
  });
});

describe('replay ttl at the edge of a proof\'s window (controllable clock)', () => {
  const T = 1_767_225_600; // the fixtures' iat
  const k8s = fixtureClaims('kubernetes-sa', 'pod-bound-default-projected');
  // [case, times, the last whole second the verifier accepts (skew 30, max_proof_age 600)]
  const cases: [string, { iat: number; exp: number }, number][] = [
    ['one-year exp, bounded by iat + max_proof_age (Kubernetes)', { iat: T, exp: T + 365 * 86_400 }, T + 600 + 30],
    ['bounded by exp', { iat: T, exp: T + 120 }, T + 120 + 30 - 1],
    ['bounded by a fractional exp', { iat: T, exp: T + 120.5 }, T + 120 + 30],
    ['bounded by a fractional iat + max_proof_age', { iat: T + 0.5, exp: T + 365 * 86_400 }, T + 600 + 30],
  ];

  it.each(cases)('%s: held until a second after the last instant the proof is accepted', async (_name, times, last) => {
    const fi = await startFakeIssuer();
    try {
      let t = T * 1000;
      const verifier = new ProofVerifier({ issuers: [trustedIssuerFor(fi, { max_proof_age: 600 })], clockSkewSeconds: 30, now: () => t });
      const token = await fi.mint({ ...k8s, iss: fi.url, aud: [TEST_AUDIENCE] }, { times: { ...times, nbf: T } });
      t = last * 1000 + 999;
      await verifier.verify(token); // still accepted in the last millisecond of its last second
      t = (last + 1) * 1000;
      await expect(verifier.verify(token)).rejects.toMatchObject({ reason: times.exp < T + 1000 ? 'expired' : 'too_old' });
      // Exchanged at any instant of its window's last two seconds, it is still remembered a second after.
      for (const at of [(last - 1) * 1000, (last - 1) * 1000 + 1, last * 1000 - 1, last * 1000, last * 1000 + 999]) {
        t = at;
        const proof = await verifier.verify(token);
        let g = at;
        const guard = new MemoryReplayGuard({ now: () => g });
        expect(await guard.claim(proof.replayKey, replayTtlSeconds(proof, at))).toBe(true);
        g = (last + 1) * 1000 + 999;
        expect(await guard.claim(proof.replayKey, 1)).toBe(false);
      }
    } finally {
      await fi.close();
    }
  });
});
