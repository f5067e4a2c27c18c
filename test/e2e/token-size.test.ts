import { afterAll, beforeAll, expect, it } from 'vitest';
import { replayKey } from '../../src/redis/keys.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { exchangeProof } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { startE2eStack, type E2eStack } from '../helpers/e2e-stack.ts';

/**
 * Proofs may be up to 16 KB, Leash's own tokens at most 8,192 characters (what introspection,
 * downscoping and leash/verify accept back). A proof whose subject would make a longer token is
 * refused before anything is written, instead of yielding a credential Leash itself rejects.
 */
let stack: E2eStack;

beforeAll(async () => {
  stack = await startE2eStack();
});
afterAll(async () => {
  await stack?.close();
});

const k8s = () => stack.issuers.k8s;
const claimsWithSub = (name: string, jti: string) => ({
  ...fixtureClaims('kubernetes-sa'),
  iss: k8s().url,
  aud: [AUD],
  jti,
  sub: `system:serviceaccount:kube-system:${name}`,
});

async function leaseCount(): Promise<number> {
  let n = 0;
  for (const key of await stack.client.keys(`${stack.broker.config.redisPrefix}*leases`)) n += await stack.client.hlen(key);
  return n;
}

it('refuses, writing nothing, a proof whose token would be longer than Leash accepts back', async () => {
  const before = await leaseCount();
  const proof = await k8s().mint(claimsWithSub('x'.repeat(7_000), 'long-sub'));
  expect(proof.length).toBeLessThan(16_384);
  const res = await exchangeProof(stack.broker.url, proof);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('invalid_request');
  expect(res.body.error_description).toMatch(/over the 8192 that Leash accepts back/);
  expect(await leaseCount()).toBe(before);
  expect(await stack.client.exists(replayKey(stack.broker.config.redisPrefix, 'k8s:jti:long-sub'))).toBe(0);
});

it('issues a token for a long subject that still fits', async () => {
  const res = await exchangeProof(stack.broker.url, await k8s().mint(claimsWithSub('y'.repeat(2_000), 'fits')));
  expect(res.status).toBe(200);
  expect(res.body.access_token.length).toBeLessThanOrEqual(8_192);
});
