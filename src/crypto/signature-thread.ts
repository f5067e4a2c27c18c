import { constants, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Signatures are checked and made on one worker thread, in batches: every job queued during one
 * turn of the event loop goes over in a single message and comes back in another. An ES256 verify
 * (~70 µs) and sign (~45 µs) are the largest single costs of an exchange; libuv's thread pool takes
 * them off the event loop too, but wakes a thread per job, and on a busy machine that thread mostly
 * runs on the event loop's own core. A batch per turn wakes the worker once for many jobs.
 *
 * If the worker cannot be had (or dies), jobs run on the event loop instead: slower, never wrong.
 */

/** How the signature bytes are read: DER/PKCS#1 v1.5, raw ECDSA (r || s), or RSA-PSS. */
export type SignatureMode = 'plain' | 'p1363' | 'pss';

export interface Check {
  hash: string | null;
  signingInput: string;
  signature: string;
  mode: SignatureMode;
  key: KeyObject;
}

/** A signature to make: ECDSA keys give raw r || s (JWS), Ed25519 takes `hash: null`. */
export interface SignJob {
  hash: string | null;
  signingInput: string;
  key: KeyObject;
}

/** A signature made, or why it could not be. */
export type Signed = { ok: true; signature: string } | { ok: false; error: Error };

/** A check, and the signature made once it holds. */
export type CheckedThenSigned = { verified: false } | { verified: true; signed: Signed };

type Queued =
  | { kind: 'verify'; job: Check; resolve: (ok: boolean) => void }
  | { kind: 'verifyThenSign'; job: Check; then: SignJob; resolve: (result: CheckedThenSigned) => void };

/** The verify options of each mode besides the key: plain data, so they cross to the worker as they are. */
const MODE_OPTIONS: Record<SignatureMode, { dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number }> = {
  plain: {},
  p1363: { dsaEncoding: 'ieee-p1363' },
  pss: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
};

// Plain CommonJS run with `eval`, so the worker needs no TypeScript loader (tsx, vitest). A job is
// a tuple, [hash, input, options, keyId, signature] for a check, plus a sign job's [hash, input,
// options, keyId] for a check-then-sign: tuples cross to the worker several times cheaper than
// objects. A check that throws (a malformed signature, a key of the wrong type) is a signature
// that does not verify; a sign that throws after a check that held answers true.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { sign, verify } = require('node:crypto');
const keys = new Map();
const signed = (hash, input, options, keyId) => {
  try {
    return sign(hash, Buffer.from(input), Object.assign({ key: keys.get(keyId) }, options)).toString('base64url');
  } catch {
    return null;
  }
};
const verified = (hash, input, options, keyId, signature) => {
  try {
    return verify(hash, Buffer.from(input, 'latin1'), Object.assign({ key: keys.get(keyId) }, options), Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
};
parentPort.on('message', (m) => {
  if (m.reset) keys.clear();
  for (const [id, key] of m.keys) keys.set(id, key);
  const out = new Array(m.jobs.length);
  for (let i = 0; i < m.jobs.length; i++) {
    const j = m.jobs[i];
    if (!verified(j[0], j[1], j[2], j[3], j[4])) out[i] = false;
    else out[i] = j.length === 5 ? true : (signed(j[5], j[6], j[7], j[8]) ?? true);
  }
  parentPort.postMessage({ batch: m.batch, out });
});
`;

/** The same check on the event loop (no worker, a lost one, or the thread turned off). */
export function verifyOnLoop(c: Check): boolean {
  try {
    return cryptoVerify(c.hash, Buffer.from(c.signingInput, 'latin1'), Object.assign({ key: c.key }, MODE_OPTIONS[c.mode]), Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
}

const signOptions = (key: KeyObject): { dsaEncoding?: 'ieee-p1363' } => (key.asymmetricKeyType === 'ec' ? { dsaEncoding: 'ieee-p1363' } : {});

/** The signature (base64url) made on the event loop; throws what node:crypto throws. */
export function signOnLoop(j: SignJob): string {
  return cryptoSign(j.hash, Buffer.from(j.signingInput), Object.assign({ key: j.key }, signOptions(j.key))).toString('base64url');
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

function signedOnLoop(j: SignJob): Signed {
  try {
    return { ok: true, signature: signOnLoop(j) };
  } catch (err) {
    return { ok: false, error: asError(err) };
  }
}

function runOnLoop(q: Queued): void {
  if (q.kind === 'verify') q.resolve(verifyOnLoop(q.job));
  else q.resolve(verifyThenSignOnLoop(q.job, q.then));
}

function answer(q: Queued, out: boolean | string | undefined): void {
  if (q.kind === 'verify') return q.resolve(out === true);
  if (out === false || out === undefined) return q.resolve({ verified: false });
  // The worker's sign failed: the same sign here says why (or, if it works here, gives the signature).
  q.resolve({ verified: true, signed: typeof out === 'string' ? { ok: true, signature: out } : signedOnLoop(q.then) });
}

const MAX_KEYS_HELD = 256;
const RESTART_BACKOFF_MS = 1_000;

const startWorker = (): Worker => new Worker(WORKER_SOURCE, { eval: true, name: 'leash-signature-checks' });

export class SignatureThread {
  private worker: Worker | null = null;
  private queued: Queued[] = [];
  private flushScheduled = false;
  private readonly sent = new Map<number, Queued[]>();
  private nextBatch = 1;
  private keyIds = new WeakMap<KeyObject, number>();
  private nextKeyId = 1;
  private keysSent = 0;
  /** After a lost worker, checks stay here until then: a worker that keeps dying is not restarted per batch. */
  private restartAfter = 0;

  /** `start` makes the worker; tests give one that fails to show checks still get answered. */
  constructor(private readonly start: () => Worker = startWorker) {}

  verify(check: Check): Promise<boolean> {
    return new Promise((resolve) => this.enqueue({ kind: 'verify', job: check, resolve }));
  }

  /**
   * Checks, and only if the check holds makes `then`'s signature, in one trip to the worker: for
   * a signature whose content was worked out while the check was pending.
   */
  verifyThenSign(check: Check, then: SignJob): Promise<CheckedThenSigned> {
    return new Promise((resolve) => this.enqueue({ kind: 'verifyThenSign', job: check, then, resolve }));
  }

  private enqueue(q: Queued): void {
    this.queued.push(q);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queued;
    this.queued = [];
    const worker = this.ensureWorker();
    if (!worker) {
      for (const q of jobs) runOnLoop(q);
      return;
    }
    const batch = this.nextBatch++;
    // JWKS refreshes bring new key objects; the worker's copy is started afresh now and then so
    // retired keys do not pile up there.
    const reset = this.keysSent >= MAX_KEYS_HELD;
    if (reset) {
      this.keyIds = new WeakMap();
      this.keysSent = 0;
    }
    const keys: [number, KeyObject][] = [];
    const keyIdOf = (key: KeyObject): number => {
      let id = this.keyIds.get(key);
      if (id === undefined) {
        id = this.nextKeyId++;
        this.keyIds.set(key, id);
        keys.push([id, key]);
        this.keysSent++;
      }
      return id;
    };
    const wire = jobs.map((q): unknown[] => {
      const c = q.job;
      if (q.kind === 'verify') return [c.hash, c.signingInput, MODE_OPTIONS[c.mode], keyIdOf(c.key), c.signature];
      const t = q.then;
      return [c.hash, c.signingInput, MODE_OPTIONS[c.mode], keyIdOf(c.key), c.signature, t.hash, t.signingInput, signOptions(t.key), keyIdOf(t.key)];
    });
    this.sent.set(batch, jobs);
    // Held while jobs are out, so a short-lived process waits for its answers.
    worker.ref();
    worker.postMessage({ batch, reset, keys, jobs: wire });
  }

  private ensureWorker(): Worker | null {
    if (this.worker) return this.worker;
    if (Date.now() < this.restartAfter) return null;
    try {
      const worker = this.start();
      // An idle worker is never the reason a process stays up (tests, shutdown).
      worker.unref();
      worker.on('message', (m: { batch: number; out: (boolean | string)[] }) => {
        const jobs = this.sent.get(m.batch);
        if (!jobs) return;
        this.sent.delete(m.batch);
        if (this.sent.size === 0) worker.unref();
        jobs.forEach((q, i) => answer(q, m.out[i]));
      });
      worker.on('error', () => this.lost(worker));
      worker.on('exit', () => this.lost(worker));
      this.worker = worker;
      return worker;
    } catch {
      this.restartAfter = Date.now() + RESTART_BACKOFF_MS;
      return null;
    }
  }

  /** A lost worker's pending checks are done here; the next batch starts a new worker. */
  private lost(worker: Worker): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.restartAfter = Date.now() + RESTART_BACKOFF_MS;
    this.keyIds = new WeakMap();
    this.keysSent = 0;
    const pending = [...this.sent.values()].flat();
    this.sent.clear();
    for (const q of pending) runOnLoop(q);
  }
}

let shared: SignatureThread | null = null;
const thread = (): SignatureThread => (shared ??= new SignatureThread());

/** True when `signature` over `signingInput` verifies under `key` (checked off the event loop). */
export const verifyOffLoop = (check: Check): Promise<boolean> => thread().verify(check);

/** verifyOffLoop, then (only if the check holds) the signature of `then`, in one trip to the thread. */
export const verifyThenSignOffLoop = (check: Check, then: SignJob): Promise<CheckedThenSigned> => thread().verifyThenSign(check, then);

/** Both on the event loop: what verifyThenSignOffLoop answers, without the thread. */
export const verifyThenSignOnLoop = (check: Check, then: SignJob): CheckedThenSigned =>
  verifyOnLoop(check) ? { verified: true, signed: signedOnLoop(then) } : { verified: false };
