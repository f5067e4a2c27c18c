import type { KeyObject } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { checkThenSignOnLoop, signedOnLoop } from './on-loop.ts';
import type { Check, CheckAnswer, CheckedThenSigned, PendingCheck, SignJob, Signed, Signer } from './signer.ts';
import { startSignatureWorker, wireJob, type WireAnswer, type WireBatch, type WireJob } from './worker-source.ts';

export type { Check, CheckAnswer, CheckedThenSigned, SignJob, Signed, SignatureMode } from './signer.ts';
// Where mint/jwt/sign.ts and older callers find them.
export { signOnLoop, verifyOnLoop } from './on-loop.ts';

/**
 * Signatures are checked and made on one worker thread, in batches: every job queued during one
 * turn of the event loop goes over in a single message and comes back in another. An ES256 verify
 * (~70 µs) and sign (~45 µs) are the largest single costs of an exchange; libuv's thread pool takes
 * them off the event loop too, but wakes a thread per job, and on a busy machine that thread mostly
 * runs on the event loop's own core. A batch per turn wakes the worker once for many jobs.
 *
 * If the worker cannot be had (or dies), jobs run on the event loop instead: slower, never wrong.
 * At low rates the process's shared thread also leaves a lone job on the loop (LONE_JOB_MAX_RECENT).
 */

const NOT_VERIFIED: CheckAnswer = Object.freeze({ verified: false });

/** A check waiting for its batch: a sign job may still join it until the batch leaves. */
class QueuedCheck implements PendingCheck {
  sent = false;
  resolve!: (answer: CheckAnswer) => void;
  private readonly answered: Promise<CheckAnswer>;

  constructor(
    readonly job: Check,
    public then: SignJob | undefined,
  ) {
    this.answered = new Promise((resolve) => (this.resolve = resolve));
  }

  thenSign(job: SignJob): boolean {
    if (this.sent) return false;
    this.then = job;
    return true;
  }

  answer(): Promise<CheckAnswer> {
    return this.answered;
  }

  runOnLoop(): void {
    this.resolve(checkThenSignOnLoop(this.job, this.then));
  }

  /** The worker's answer: see WireAnswer. */
  settle(out: boolean | string | undefined): void {
    if (out !== true && typeof out !== 'string') return this.resolve(NOT_VERIFIED);
    const then = this.then;
    if (!then) return this.resolve({ verified: true, signed: undefined });
    // The worker's sign failed: the same sign here says why (or, if it works here, gives the signature).
    this.resolve({ verified: true, signed: typeof out === 'string' ? { ok: true, signature: out } : signedOnLoop(then) });
  }
}

const MAX_KEYS_HELD = 256;
const RESTART_BACKOFF_MS = 1_000;
/**
 * With `loneJobsOnLoop`, a batch of one job, with no batch out, runs on the event loop while jobs
 * come at under about 1,000 a second (at most LONE_JOB_MAX_RECENT in a decaying RECENT_WINDOW_MS).
 * At a few hundred exchanges a second nearly every batch is such a job, and handing it over costs
 * two thread wake-ups, which on a virtualised host took more CPU than the ES256 verify and sign
 * themselves (bench/README.md, eighteenth pass). Under load, jobs go to the thread as before: there
 * it runs them beside the event loop's other work.
 */
export const RECENT_WINDOW_MS = 20;
export const LONE_JOB_MAX_RECENT = 20;

export interface SignatureThreadOptions {
  /** Lone jobs at low rates run on the event loop (LONE_JOB_MAX_RECENT); the process's shared thread does this. */
  loneJobsOnLoop?: boolean;
}

export class SignatureThread implements Signer {
  private worker: Worker | null = null;
  private queued: QueuedCheck[] = [];
  private flushScheduled = false;
  private readonly sent = new Map<number, QueuedCheck[]>();
  private nextBatch = 1;
  private keyIds = new WeakMap<KeyObject, number>();
  private nextKeyId = 1;
  private keysSent = 0;
  /** After a lost worker, checks stay here until then: a worker that keeps dying is not restarted per batch. */
  private restartAfter = 0;
  private lastFlushAt = -Infinity;
  /** Jobs flushed lately, each weighed down by exp(-age / RECENT_WINDOW_MS). */
  private recentJobs = 0;
  private readonly loneJobsOnLoop: boolean;

  /** `start` makes the worker; tests give one that fails to show checks still get answered. */
  constructor(
    private readonly start: () => Worker = startSignatureWorker,
    opts: SignatureThreadOptions = {},
  ) {
    this.loneJobsOnLoop = opts.loneJobsOnLoop ?? false;
  }

  /** Queues the check (and `then`, signed only if it holds) for the next batch. */
  check(check: Check, then?: SignJob): PendingCheck {
    const q = new QueuedCheck(check, then);
    this.queued.push(q);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return q;
  }

  sign(job: SignJob): Signed {
    return signedOnLoop(job);
  }

  verify(check: Check): Promise<boolean> {
    return this.check(check).answer().then((a) => a.verified);
  }

  /**
   * Checks, and only if the check holds makes `then`'s signature, in one trip to the worker: for
   * a signature whose content was worked out while the check was pending.
   */
  verifyThenSign(check: Check, then: SignJob): Promise<CheckedThenSigned> {
    // With a sign job, a check that holds always carries its signature (or why it failed).
    return this.check(check, then).answer() as Promise<CheckedThenSigned>;
  }

  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queued;
    this.queued = [];
    const now = performance.now();
    this.recentJobs = this.recentJobs * Math.exp((this.lastFlushAt - now) / RECENT_WINDOW_MS) + jobs.length;
    this.lastFlushAt = now;
    const lone = this.loneJobsOnLoop && jobs.length === 1 && this.sent.size === 0 && this.recentJobs <= LONE_JOB_MAX_RECENT;
    const worker = lone ? null : this.ensureWorker();
    if (!worker) {
      for (const q of jobs) {
        q.sent = true;
        q.runOnLoop();
      }
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
    const wire = jobs.map((q): WireJob => {
      q.sent = true;
      return wireJob(q.job, q.then, keyIdOf);
    });
    this.sent.set(batch, jobs);
    // Held while jobs are out, so a short-lived process waits for its answers.
    worker.ref();
    const message: WireBatch = { batch, reset, keys, jobs: wire };
    worker.postMessage(message);
  }

  private ensureWorker(): Worker | null {
    if (this.worker) return this.worker;
    if (Date.now() < this.restartAfter) return null;
    try {
      const worker = this.start();
      // An idle worker is never the reason a process stays up (tests, shutdown).
      worker.unref();
      worker.on('message', (m: WireAnswer) => {
        const jobs = this.sent.get(m.batch);
        if (!jobs) return;
        this.sent.delete(m.batch);
        if (this.sent.size === 0) worker.unref();
        jobs.forEach((q, i) => q.settle(m.out[i]));
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
    for (const q of pending) q.runOnLoop();
  }
}

let shared: SignatureThread | null = null;

/** The process's one signature thread, started with its first batch. */
export const sharedSignatureThread = (): SignatureThread => (shared ??= new SignatureThread(startSignatureWorker, { loneJobsOnLoop: true }));

/** True when `signature` over `signingInput` verifies under `key` (off the event loop but at low rates). */
export const verifyOffLoop = (check: Check): Promise<boolean> => sharedSignatureThread().verify(check);
