import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { RECENT_WINDOW_MS, SignatureThread, signOnLoop, verifyOnLoop, type SignatureMode } from '../../src/crypto/signature-thread.ts';
import { startSignatureWorker } from '../../src/crypto/worker-source.ts';

interface Alg {
  name: string;
  hash: string | null;
  mode: SignatureMode;
  pair: () => { privateKey: KeyObject; publicKey: KeyObject };
  sign: (input: Buffer, key: KeyObject) => Buffer;
}

const ALGS: Alg[] = [
  { name: 'ES256', hash: 'sha256', mode: 'p1363', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), sign: (d, k) => sign('sha256', d, { key: k, dsaEncoding: 'ieee-p1363' }) },
  { name: 'ES384', hash: 'sha384', mode: 'p1363', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }), sign: (d, k) => sign('sha384', d, { key: k, dsaEncoding: 'ieee-p1363' }) },
  { name: 'RS256', hash: 'sha256', mode: 'plain', pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), sign: (d, k) => sign('sha256', d, k) },
  { name: 'PS256', hash: 'sha256', mode: 'pss', pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), sign: (d, k) => sign('sha256', d, { key: k, padding: 6, saltLength: 32 }) },
  { name: 'EdDSA', hash: null, mode: 'plain', pair: () => generateKeyPairSync('ed25519'), sign: (d, k) => sign(null, d, k) },
];

const signingInput = (n: number): string =>
  `${Buffer.from('{"alg":"x"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: `job-${n}`, n })).toString('base64url')}`;

function checksFor(alg: Alg, count: number) {
  const { privateKey, publicKey } = alg.pair();
  const other = alg.pair().publicKey;
  return Array.from({ length: count }, (_, n) => {
    const input = signingInput(n);
    const signature = alg.sign(Buffer.from(input, 'latin1'), privateKey).toString('base64url');
    // Every third check is an attack: another payload under the same signature, or another key.
    const kind = n % 3 === 0 ? 'good' : n % 3 === 1 ? 'payload swapped' : 'other key';
    return {
      kind,
      check: {
        hash: alg.hash,
        mode: alg.mode,
        signingInput: kind === 'payload swapped' ? signingInput(n + 1) : input,
        signature,
        key: kind === 'other key' ? other : publicKey,
      },
    };
  });
}

describe('SignatureThread: proof signatures checked on a worker thread', () => {
  it.each(ALGS)('$name: a batch of good, swapped-payload and wrong-key signatures each gets its own answer', async (alg) => {
    const thread = new SignatureThread();
    const cases = checksFor(alg, 30);
    const answers = await Promise.all(cases.map((c) => thread.verify(c.check)));
    expect(answers).toEqual(cases.map((c) => c.kind === 'good'));
  });

  it.each(ALGS)('$name: the event-loop check (LEASH_SIGNATURE_THREAD=off) gives the same answers', (alg) => {
    const cases = checksFor(alg, 9);
    expect(cases.map((c) => verifyOnLoop(c.check))).toEqual(cases.map((c) => c.kind === 'good'));
  });

  it('a signature in the wrong encoding or truncated is refused, not an error', async () => {
    const thread = new SignatureThread();
    const [good] = checksFor(ALGS[0]!, 1);
    const der = { ...good!.check, mode: 'plain' as const };
    const truncated = { ...good!.check, signature: good!.check.signature.slice(0, 40) };
    const garbage = { ...good!.check, signature: '!!!' };
    expect(await Promise.all([thread.verify(good!.check), thread.verify(der), thread.verify(truncated), thread.verify(garbage)])).toEqual([true, false, false, false]);
  });

  it('checks sent to a worker that dies are answered correctly on the event loop', async () => {
    const dying = () => new Worker("require('node:worker_threads').parentPort.once('message', () => process.exit(3))", { eval: true });
    const thread = new SignatureThread(dying);
    const cases = checksFor(ALGS[0]!, 12);
    const answers = await Promise.all(cases.map((c) => thread.verify(c.check)));
    expect(answers).toEqual(cases.map((c) => c.kind === 'good'));
    // The next batch, within the restart back-off, is answered here too.
    const again = await Promise.all(cases.map((c) => thread.verify(c.check)));
    expect(again).toEqual(answers);
  });

  it('with loneJobsOnLoop, a lone check after a quiet spell runs on the event loop; a batch still goes to the worker', async () => {
    let started = 0;
    const counting = (): Worker => {
      started++;
      return startSignatureWorker();
    };
    const thread = new SignatureThread(counting, { loneJobsOnLoop: true });
    const cases = checksFor(ALGS[0]!, 12);
    // The first check ever, then one after a pause: neither starts the worker.
    expect(await thread.verify(cases[0]!.check)).toBe(true);
    await new Promise((r) => setTimeout(r, RECENT_WINDOW_MS));
    expect(await thread.verify(cases[1]!.check)).toBe(false);
    expect(started).toBe(0);
    // Twelve in one turn are one batch of twelve: the worker takes it.
    const answers = await Promise.all(cases.map((c) => thread.verify(c.check)));
    expect(answers).toEqual(cases.map((c) => c.kind === 'good'));
    expect(started).toBe(1);
  });

  it('without loneJobsOnLoop, even a lone check goes to the worker', async () => {
    let started = 0;
    const thread = new SignatureThread(() => {
      started++;
      return startSignatureWorker();
    });
    const [good] = checksFor(ALGS[0]!, 1);
    expect(await thread.verify(good!.check)).toBe(true);
    expect(started).toBe(1);
  });

  it('when no worker can be started, checks are answered on the event loop', async () => {
    const thread = new SignatureThread(() => {
      throw new Error('no threads left');
    });
    const cases = checksFor(ALGS[4]!, 6);
    expect(await Promise.all(cases.map((c) => thread.verify(c.check)))).toEqual(cases.map((c) => c.kind === 'good'));
  });

  it('a short-lived process waits for its answer, then exits (the worker is held only while checks are out)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-sigthread-'));
    const script = join(dir, 'check.mts');
    const module = fileURLToPath(new URL('../../src/crypto/signature-thread.ts', import.meta.url));
    writeFileSync(
      script,
      `import { generateKeyPairSync, sign } from 'node:crypto';
import { verifyOffLoop } from ${JSON.stringify(module)};
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signature = sign('sha256', Buffer.from('a.b'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
const check = () => verifyOffLoop({ hash: 'sha256', signingInput: 'a.b', signature, mode: 'p1363', key: publicKey });
// The first answer leaves the worker idle (and unref'd); the next checks must hold the process again.
await check();
const answers = await Promise.all(Array.from({ length: 50 }, check));
console.log('answered', answers.every(Boolean));
`,
    );
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe('answered true');
  });
});

// The access tokens Leash mints: ES256 (raw r || s, as JWS wants) and EdDSA.
const SIGNERS = ALGS.filter((a) => a.name === 'ES256' || a.name === 'EdDSA');
const signedBy = (alg: Alg, publicKey: KeyObject, input: string, signature: string): boolean =>
  verify(alg.hash, Buffer.from(input), alg.hash ? { key: publicKey, dsaEncoding: 'ieee-p1363' } : publicKey, Buffer.from(signature, 'base64url'));

describe('SignatureThread: access-token signatures made on the worker thread', () => {
  // A proof whose check holds: what every access-token signature rides with.
  const held = checksFor(ALGS[2]!, 1)[0]!.check;
  /** The signature made after `held`'s check, or why it could not be made. */
  const signAfterCheck = async (thread: SignatureThread, job: { hash: string | null; signingInput: string; key: KeyObject }): Promise<string> => {
    const r = await thread.verifyThenSign(held, job);
    if (!r.verified) throw new Error('the proof check did not hold');
    if (!r.signed.ok) throw r.signed.error;
    return r.signed.signature;
  };

  it.each(SIGNERS)('$name: every signature of a batch verifies under the public key, over its own input only', async (alg) => {
    const thread = new SignatureThread();
    const { privateKey, publicKey } = alg.pair();
    const inputs = Array.from({ length: 20 }, (_, n) => signingInput(n));
    const signatures = await Promise.all(inputs.map((signingInput) => signAfterCheck(thread, { hash: alg.hash, signingInput, key: privateKey })));
    inputs.forEach((input, n) => {
      expect(signedBy(alg, publicKey, input, signatures[n]!)).toBe(true);
      expect(signedBy(alg, publicKey, inputs[(n + 1) % inputs.length]!, signatures[n]!)).toBe(false);
    });
    if (alg.name === 'ES256') expect(Buffer.from(signatures[0]!, 'base64url')).toHaveLength(64);
  });

  it('a key that cannot sign fails its own job only; the rest of the batch is signed', async () => {
    const thread = new SignatureThread();
    const { privateKey, publicKey } = SIGNERS[0]!.pair();
    const jobs = [privateKey, publicKey, privateKey].map((key, n) => signAfterCheck(thread, { hash: 'sha256', signingInput: signingInput(n), key }));
    const [first, bad, third] = await Promise.allSettled(jobs);
    expect(first!.status).toBe('fulfilled');
    expect(third!.status).toBe('fulfilled');
    expect(bad!.status).toBe('rejected');
    expect(() => signOnLoop({ hash: 'sha256', signingInput: 'a.b', key: publicKey })).toThrow();
  });

  it('signatures and checks sent to a worker that dies are made on the event loop', async () => {
    const dying = () => new Worker("require('node:worker_threads').parentPort.once('message', () => process.exit(3))", { eval: true });
    const thread = new SignatureThread(dying);
    const alg = SIGNERS[0]!;
    const { privateKey, publicKey } = alg.pair();
    const cases = checksFor(alg, 6);
    const [signature, ...answers] = await Promise.all([
      signAfterCheck(thread, { hash: 'sha256', signingInput: 'x.y', key: privateKey }),
      ...cases.map((c) => thread.verify(c.check)),
    ]);
    expect(signedBy(alg, publicKey, 'x.y', signature as string)).toBe(true);
    expect(answers).toEqual(cases.map((c) => c.kind === 'good'));
  });
});

describe('SignatureThread: a signature made only once a check holds (one trip for both)', () => {
  const alg = SIGNERS[0]!;
  const minter = alg.pair();

  it.each(ALGS)('$name proofs: a good proof gets its token signed; a swapped payload or another key gets no signature', async (proofAlg) => {
    const thread = new SignatureThread();
    const cases = checksFor(proofAlg, 12);
    const results = await Promise.all(
      cases.map((c, n) => thread.verifyThenSign(c.check, { hash: 'sha256', signingInput: signingInput(100 + n), key: minter.privateKey })),
    );
    results.forEach((r, n) => {
      if (cases[n]!.kind !== 'good') return expect(r).toEqual({ verified: false });
      expect(r.verified && r.signed.ok).toBe(true);
      if (r.verified && r.signed.ok) expect(signedBy(alg, minter.publicKey, signingInput(100 + n), r.signed.signature)).toBe(true);
    });
  });

  it('a good proof whose token cannot be signed says why, and the check still counts as held', async () => {
    const thread = new SignatureThread();
    const [good, swapped] = checksFor(ALGS[2]!, 2);
    const unusable = { hash: 'sha256', signingInput: 'a.b', key: minter.publicKey };
    const [held, refused] = await Promise.all([thread.verifyThenSign(good!.check, unusable), thread.verifyThenSign(swapped!.check, unusable)]);
    expect(held.verified).toBe(true);
    expect(held.verified && !held.signed.ok && held.signed.error).toBeInstanceOf(Error);
    expect(refused).toEqual({ verified: false });
  });

  it('with the worker dead or unavailable, the event loop gives the same answers', async () => {
    const dying = () => new Worker("require('node:worker_threads').parentPort.once('message', () => process.exit(3))", { eval: true });
    const noThreads = () => {
      throw new Error('no threads left');
    };
    const cases = checksFor(ALGS[0]!, 6);
    const job = { hash: 'sha256', signingInput: 'x.y', key: minter.privateKey };
    for (const thread of [new SignatureThread(dying), new SignatureThread(noThreads)]) {
      const results = await Promise.all(cases.map((c) => thread.verifyThenSign(c.check, job)));
      expect(results.map((r) => r.verified)).toEqual(cases.map((c) => c.kind === 'good'));
      for (const r of results) if (r.verified) expect(r.signed.ok && signedBy(alg, minter.publicKey, 'x.y', r.signed.signature)).toBe(true);
    }
  });
});
