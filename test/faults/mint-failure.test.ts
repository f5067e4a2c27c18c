import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SigningKey } from '../../src/mint/jwt/keystore.ts';
import { exchangeProof, X509_TYPE } from '../helpers/broker.ts';
import { makeCsr } from '../helpers/csr.ts';
import { waitFor } from '../helpers/wait.ts';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';

// The access token is signed on the signature thread with the proof's check, before its lease is
// written. A signature that cannot be made (here: a signing key that turned out unusable) must end
// in no token and nothing written: no lease without a credential, no proof used up.
describe('a credential that cannot be minted', () => {
  let env: E2E;
  beforeAll(async () => {
    env = await startE2E();
  }, 60_000);
  afterAll(async () => env?.close());

  /** Exchanges `proof` while `breakMinting` has the broker broken (it returns the repair): 500, nothing handed out. */
  async function refusedWhileBroken(breakMinting: () => () => void, proof: string, extra: Record<string, string> = {}): Promise<void> {
    const repair = breakMinting();
    let res: Awaited<ReturnType<typeof exchangeProof>>;
    try {
      res = await exchangeProof(env.broker.url, proof, extra);
    } finally {
      repair();
    }
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('server_error');
    expect(res.body.access_token).toBeUndefined();
  }

  it('answers 500 server_error with no token, writes no lease and leaves the proof unclaimed', async () => {
    const subject = 'repo:octo-org/octo-repo:ref:refs/heads/main:mint-fails';
    const proof = await env.githubProof({ sub: subject });
    await refusedWhileBroken(() => {
      const keys = env.broker.deps.keys;
      const real = keys.active.bind(keys);
      // A public key cannot sign: node:crypto throws on the signature thread and on the event loop alike.
      keys.active = (): SigningKey => ({ ...real(), privateKey: real().publicKey });
      return () => (keys.active = real);
    }, proof);

    const store = env.broker.deps.store;
    expect((await store.list({ subject }, { limit: 10 })).leases).toEqual([]);

    // The broker goes on minting once its key signs again, for the same proof: it was not used up.
    const ok = await exchangeProof(env.broker.url, proof);
    expect(ok.status).toBe(200);
    expect(ok.body.access_token.split('.')).toHaveLength(3);
    expect((await store.list({ subject }, { limit: 10 })).leases.map((l) => l.status)).toEqual(['active']);
  });

  // A certificate is issued after its lease is written: one that cannot be issued leaves a lease
  // with nothing behind it, which is ended, and the proof it used, which is freed.
  it('a certificate that cannot be issued answers 500, ends its lease and leaves the proof usable', async () => {
    const subject = 'repo:octo-org/octo-repo:ref:refs/heads/main:cert-mint-fails';
    const proof = await env.githubProof({ sub: subject });
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    await refusedWhileBroken(() => {
      const ca = env.broker.deps.ca!;
      const real = ca.issue.bind(ca);
      ca.issue = () => {
        throw new Error('the CA key is unusable');
      };
      return () => (ca.issue = real);
    }, proof, { requested_token_type: X509_TYPE, csr: csrPem });

    const store = env.broker.deps.store;
    const [written] = (await store.list({ subject }, { limit: 10 })).leases;
    await waitFor('the lease to be ended', async () => (await store.get(written!.id))?.status === 'revoked');
    expect(await store.get(written!.id)).toMatchObject({ reason: 'minting failed', revoked_by: 'leash' });

    const ok = await exchangeProof(env.broker.url, proof, { requested_token_type: X509_TYPE, csr: csrPem });
    expect(ok.status).toBe(200);
    expect(ok.body.access_token).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect((await exchangeProof(env.broker.url, proof, { requested_token_type: X509_TYPE, csr: csrPem })).body.error).toBe('invalid_request');
  });
});
