import { expect, it, afterAll, beforeAll } from 'vitest';
import { replayKey } from '../../src/redis/keys.ts';
import { isProofError } from '../../src/proofs/proof-error.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { exchangeProof } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { startE2eStack, type E2eStack } from '../helpers/e2e-stack.ts';

let stack: E2eStack;
/** The broker's clock runs with real time (as Redis's does), shifted by this many ms. */
let offsetMs = 0;

const SKEW = 30;
const MAX_PROOF_AGE = 3600; // the k8s issuer's max_proof_age in e2ePolicy

beforeAll(async () => {
  stack = await startE2eStack({ env: { LEASH_CLOCK_SKEW: String(SKEW) }, now: () => Date.now() + offsetMs });
});
afterAll(async () => {
  await stack?.close();
});

const k8s = () => stack.issuers.k8s;
const k8sClaims = (jti: string) => ({ ...fixtureClaims('kubernetes-sa'), iss: k8s().url, aud: [AUD], jti });

it('a one-year (Kubernetes-style) proof cannot be exchanged twice in the last second of its max_proof_age window', async () => {
  // Warm up (JWKS fetch) so the exchange below lands early in its second.
  expect((await exchangeProof(stack.broker.url, await k8s().mint(k8sClaims('warm-up')))).status).toBe(200);
  // Shift the broker's clock to just past a whole second: S is the second it is in.
  const real = Date.now();
  offsetMs = 1000 - (real % 1000) + 5;
  const S = Math.floor((Date.now() + offsetMs) / 1000);
  // Its last accepted second is S + 1 (floor(now) - iat - max_age <= skew), so it is accepted until S + 2.
  const iat = S + 1 - MAX_PROOF_AGE - SKEW;
  const acceptedUntil = S + 2;
  const proof = await k8s().mint(k8sClaims('edge-1'), { times: { iat, nbf: iat } });
  expect((await exchangeProof(stack.broker.url, proof)).status).toBe(200);
  const exchangedAt = Date.now() + offsetMs;
  expect(exchangedAt).toBeLessThan((S + 1) * 1000); // so a 1 s record would be gone in its last second

  // The record must outlive acceptance by a second (Redis's clock runs with the broker's here).
  const pttl = await stack.client.pttl(replayKey(stack.broker.config.redisPrefix, 'k8s:jti:edge-1'));
  expect(Date.now() + offsetMs + pttl).toBeGreaterThanOrEqual((acceptedUntil + 1) * 1000 - 50);

  // The attack: replay it over and over until the broker no longer accepts the proof at all.
  const accepted = async () => {
    try {
      await stack.broker.deps.proofs.verify(proof);
      return true;
    } catch (err) {
      if (isProofError(err) && err.reason === 'too_old') return false;
      throw err;
    }
  };
  const replays: { at: number; status: number }[] = [];
  while (await accepted()) {
    const at = Date.now() + offsetMs;
    replays.push({ at, status: (await exchangeProof(stack.broker.url, proof)).status });
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(Date.now() + offsetMs).toBeGreaterThanOrEqual(acceptedUntil * 1000);
  // Replays were tried in the last accepted second, a second or more after the exchange.
  expect(replays.some((r) => r.at >= exchangedAt + 1000 && r.at < acceptedUntil * 1000)).toBe(true);
  expect(replays.filter((r) => r.status === 200)).toEqual([]);
});
