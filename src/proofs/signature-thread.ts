import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Proof signatures are checked on one worker thread, in batches: every check queued during one
 * turn of the event loop goes over in a single message and comes back in another. An ES256 verify
 * is the largest single cost of an exchange (~70 µs); libuv's thread pool takes it off the event
 * loop too, but wakes a thread per check, and on a busy machine that thread mostly runs on the
 * event loop's own core. A batch per turn wakes the worker once for many checks.
 *
 * If the worker cannot be had (or dies), checks run on the event loop instead: slower, never wrong.
 */

/** How the signature bytes are read: DER/PKCS#1 v1.5, raw ECDSA (r || s), or RSA-PSS. */
export type SignatureMode = 'plain' | 'p1363' | 'pss';

interface Check {
  hash: string | null;
  signingInput: string;
  signature: string;
  mode: SignatureMode;
  key: KeyObject;
}

type Queued = Check & { resolve: (ok: boolean) => void };

/** The verify options of each mode besides the key: plain data, so they cross to the worker as they are. */
const MODE_OPTIONS: Record<SignatureMode, { dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number }> = {
  plain: {},
  p1363: { dsaEncoding: 'ieee-p1363' },
  pss: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
};

// Plain CommonJS run with `eval`, so the worker needs no TypeScript loader (tsx, vitest). A check
// that throws (a malformed signature, a key of the wrong type) is a signature that does not verify.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { verify } = require('node:crypto');
const keys = new Map();
parentPort.on('message', (m) => {
  if (m.reset) keys.clear();
  for (const [id, key] of m.keys) keys.set(id, key);
  const out = new Uint8Array(m.checks.length);
  for (let i = 0; i < m.checks.length; i++) {
    const [hash, input, sig, options, keyId] = m.checks[i];
    try {
      out[i] = verify(hash, Buffer.from(input, 'latin1'), { ...options, key: keys.get(keyId) }, Buffer.from(sig, 'base64url')) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort.postMessage({ batch: m.batch, out }, [out.buffer]);
});
`;

/** The same check on the event loop (no worker, a lost one, or the thread turned off). */
export function verifyOnLoop(c: Check): boolean {
  try {
    return cryptoVerify(c.hash, Buffer.from(c.signingInput, 'latin1'), { ...MODE_OPTIONS[c.mode], key: c.key }, Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
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
    return new Promise((resolve) => {
      this.queued.push({ ...check, resolve });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const checks = this.queued;
    this.queued = [];
    const worker = this.ensureWorker();
    if (!worker) {
      for (const c of checks) c.resolve(verifyOnLoop(c));
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
    const wire = checks.map((c) => {
      let id = this.keyIds.get(c.key);
      if (id === undefined) {
        id = this.nextKeyId++;
        this.keyIds.set(c.key, id);
        keys.push([id, c.key]);
        this.keysSent++;
      }
      return [c.hash, c.signingInput, c.signature, MODE_OPTIONS[c.mode], id] as const;
    });
    this.sent.set(batch, checks);
    // Held while checks are out, so a short-lived process waits for its answers.
    worker.ref();
    worker.postMessage({ batch, reset, keys, checks: wire });
  }

  private ensureWorker(): Worker | null {
    if (this.worker) return this.worker;
    if (Date.now() < this.restartAfter) return null;
    try {
      const worker = this.start();
      // An idle worker is never the reason a process stays up (tests, shutdown).
      worker.unref();
      worker.on('message', (m: { batch: number; out: Uint8Array }) => {
        const checks = this.sent.get(m.batch);
        if (!checks) return;
        this.sent.delete(m.batch);
        if (this.sent.size === 0) worker.unref();
        checks.forEach((c, i) => c.resolve(m.out[i] === 1));
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
    for (const c of pending) c.resolve(verifyOnLoop(c));
  }
}

let shared: SignatureThread | null = null;

/** True when `signature` over `signingInput` verifies under `key` (checked off the event loop). */
export function verifyOffLoop(check: Check): Promise<boolean> {
  shared ??= new SignatureThread();
  return shared.verify(check);
}
