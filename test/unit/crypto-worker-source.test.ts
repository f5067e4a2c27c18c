import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkThenSignOnLoop, verifyOnLoop } from '../../src/crypto/on-loop.ts';
import { SignatureThread } from '../../src/crypto/signature-thread.ts';
import type { Check, SignJob } from '../../src/crypto/signer.ts';
import { startSignatureWorker, wireJob, type WireAnswer, type WireBatch } from '../../src/crypto/worker-source.ts';

// The worker is a CommonJS string run with eval: no type checker or linter reads it. These tests run
// it on the Node in use, against node:crypto's public one-shot API on the main thread (what
// LEASH_SIGNATURE_THREAD=off and the fallback use), so a Node upgrade that changes eval'd workers,
// `require` in them, KeyObjects crossing postMessage or sign/verify options fails here first.

const input = (n: number): string => `${Buffer.from('{"alg":"x"}').toString('base64url')}.${Buffer.from(JSON.stringify({ n })).toString('base64url')}`;

const PROOF_ALGS = [
  { name: 'ES256', hash: 'sha256', mode: 'p1363', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), opts: { dsaEncoding: 'ieee-p1363' } },
  { name: 'ES512', hash: 'sha512', mode: 'p1363', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-521' }), opts: { dsaEncoding: 'ieee-p1363' } },
  { name: 'RS256', hash: 'sha256', mode: 'plain', pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), opts: {} },
  { name: 'PS384', hash: 'sha384', mode: 'pss', pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), opts: { padding: 6, saltLength: 48 } },
  { name: 'EdDSA', hash: null, mode: 'plain', pair: () => generateKeyPairSync('ed25519'), opts: {} },
] as const;

/** A good check and three that must fail: another payload, another key, a truncated signature. */
function checksFor(alg: (typeof PROOF_ALGS)[number]): Check[] {
  const { privateKey, publicKey } = alg.pair();
  const signature = sign(alg.hash, Buffer.from(input(1)), { key: privateKey, ...alg.opts }).toString('base64url');
  const good: Check = { hash: alg.hash, signingInput: input(1), signature, mode: alg.mode, key: publicKey };
  return [good, { ...good, signingInput: input(2) }, { ...good, key: alg.pair().publicKey }, { ...good, signature: signature.slice(0, 20) }];
}

const minter = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const edMinter = generateKeyPairSync('ed25519');
const signedBy = (publicKey: KeyObject, signingInput: string, signature: string): boolean =>
  verify(publicKey.asymmetricKeyType === 'ec' ? 'sha256' : null, Buffer.from(signingInput), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));

describe('the signature worker source, run on this Node', () => {
  let worker: Worker;
  let nextBatch = 1;
  const keyIds = new Map<KeyObject, number>();

  /** Sends one batch the way SignatureThread does and waits for its answer. */
  const run = (jobs: [Check, SignJob | undefined][], reset = false): Promise<WireAnswer['out']> => {
    const keys: [number, KeyObject][] = [];
    const keyId = (key: KeyObject): number => {
      let id = keyIds.get(key);
      if (id === undefined) {
        keyIds.set(key, (id = keyIds.size + 1));
        keys.push([id, key]);
      }
      return id;
    };
    const batch: WireBatch = { batch: nextBatch++, reset, keys, jobs: jobs.map(([c, then]) => wireJob(c, then, keyId)) };
    return new Promise((resolve, reject) => {
      const onMessage = (m: WireAnswer): void => {
        if (m.batch !== batch.batch) return;
        worker.off('message', onMessage).off('error', reject);
        resolve(m.out);
      };
      worker.on('message', onMessage).on('error', reject);
      worker.postMessage(batch);
    });
  };

  beforeAll(() => {
    worker = startSignatureWorker();
  });
  afterAll(() => worker.terminate());

  it.each(PROOF_ALGS)('$name: checks get the answers node:crypto gives on the main thread', async (alg) => {
    const checks = checksFor(alg);
    const out = await run(checks.map((c) => [c, undefined]));
    expect(out).toEqual(checks.map((c) => verifyOnLoop(c)));
    expect(out).toEqual([true, false, false, false]);
  });

  it.each([
    ['ES256', minter],
    ['EdDSA', edMinter],
  ] as const)('%s access tokens: signed only after a check that holds, and the signature verifies', async (_, signer) => {
    const checks = checksFor(PROOF_ALGS[0]);
    const then = (n: number): SignJob => ({ hash: signer.privateKey.asymmetricKeyType === 'ec' ? 'sha256' : null, signingInput: input(100 + n), key: signer.privateKey });
    const out = await run(checks.map((c, n) => [c, then(n)]));
    expect(typeof out[0]).toBe('string');
    expect(signedBy(signer.publicKey, input(100), out[0] as string)).toBe(true);
    expect(signedBy(signer.publicKey, input(101), out[0] as string)).toBe(false);
    expect(out.slice(1)).toEqual([false, false, false]);
    // The main thread's answer for the same jobs, signature aside (ECDSA signatures differ per run).
    const onLoop = checks.map((c, n) => checkThenSignOnLoop(c, then(n)));
    expect(onLoop.map((a) => a.verified)).toEqual([true, false, false, false]);
    if (signer === edMinter) expect(onLoop[0]!.verified && onLoop[0]!.signed?.ok && onLoop[0]!.signed.signature).toBe(out[0]);
  });

  it('a sign that fails after a check that holds answers true (the main thread then says why)', async () => {
    const [good] = checksFor(PROOF_ALGS[0]);
    const out = await run([[good!, { hash: 'sha256', signingInput: input(1), key: minter.publicKey }]]);
    expect(out).toEqual([true]);
  });

  it('keys are held by id across batches until a reset', async () => {
    const [good] = checksFor(PROOF_ALGS[4]);
    expect(await run([[good!, undefined]])).toEqual([true]);
    // Sent before: this batch names the key by id only.
    expect(await run([[good!, undefined]])).toEqual([true]);
    // A reset drops it: a check naming only its id no longer holds.
    expect(await run([[good!, undefined]], true)).toEqual([false]);
  });
});

describe('when the worker cannot run, the main thread does its jobs', () => {
  // What an upgrade that broke the source would look like: the worker throws as it loads.
  const broken = (): Worker => new Worker("throw new ReferenceError('require is not defined')", { eval: true });
  const noThread = (): Worker => {
    throw new Error('no threads left');
  };

  it.each([
    ['a worker whose source fails to load', broken],
    ['no worker at all', noThread],
  ] as const)('%s: checks are answered and tokens signed as the worker would', async (_, start) => {
    const thread = new SignatureThread(start);
    for (const alg of PROOF_ALGS) {
      const checks = checksFor(alg);
      const answers = await Promise.all(checks.map((c, n) => thread.check(c, { hash: 'sha256', signingInput: input(n), key: minter.privateKey }).answer()));
      expect(answers.map((a) => a.verified)).toEqual([true, false, false, false]);
      const first = answers[0]!;
      expect(first.verified && first.signed?.ok && signedBy(minter.publicKey, input(0), first.signed.signature)).toBe(true);
    }
  });
});
