import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SigningKey } from '../../src/mint/jwt/keystore.ts';
import { exchangeProof } from '../helpers/broker.ts';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';

// The access token is signed on the signature thread with the proof's check, before its lease is
// written. A signature that cannot be made (here: a signing key that turned out unusable) must end
// in no token and nothing written: no lease without a credential, no proof used up.
describe('an access token that cannot be signed', () => {
  let env: E2E;
  beforeAll(async () => {
    env = await startE2E();
  }, 60_000);
  afterAll(async () => env?.close());

  it('answers 500 server_error with no token, writes no lease and leaves the proof unclaimed', async () => {
    const keys = env.broker.deps.keys;
    const real = keys.active.bind(keys);
    // A public key cannot sign: node:crypto throws on the signature thread and on the event loop alike.
    keys.active = (): SigningKey => ({ ...real(), privateKey: real().publicKey });
    const subject = 'repo:octo-org/octo-repo:ref:refs/heads/main:mint-fails';
    const proof = await env.githubProof({ sub: subject });
    let res: Awaited<ReturnType<typeof exchangeProof>>;
    try {
      res = await exchangeProof(env.broker.url, proof);
    } finally {
      keys.active = real;
    }
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('server_error');
    expect(res.body.access_token).toBeUndefined();

    const store = env.broker.deps.store;
    expect((await store.list({ subject }, { limit: 10 })).leases).toEqual([]);

    // The broker goes on minting once its key signs again, for the same proof: it was not used up.
    const ok = await exchangeProof(env.broker.url, proof);
    expect(ok.status).toBe(200);
    expect(ok.body.access_token.split('.')).toHaveLength(3);
    expect((await store.list({ subject }, { limit: 10 })).leases.map((l) => l.status)).toEqual(['active']);
  });
});
