import { constants, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Check, SignJob } from './signer.ts';

/**
 * The signature worker: its source, how it is started and the messages it takes. The one place
 * that knows the worker is a CommonJS string run with `eval` (so it needs no TypeScript loader
 * under tsx or vitest) and that this string leans on node:crypto's one-shot sign/verify, on
 * KeyObjects crossing postMessage and on `require` inside an eval'd worker.
 * test/unit/crypto-worker-source.test.ts runs it against the real Node and fails if an upgrade
 * changes any of that; if the worker cannot start or dies, signature-thread.ts does its jobs on
 * the main thread with the same public node:crypto calls (verifyOnLoop, signOnLoop).
 */

/** How the signature bytes are read: DER/PKCS#1 v1.5, raw ECDSA (r || s), or RSA-PSS. */
export type SignatureMode = 'plain' | 'p1363' | 'pss';

/** The verify options of each mode besides the key: plain data, so they cross to the worker as they are. */
export const MODE_OPTIONS: Record<SignatureMode, { dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number }> = {
  plain: {},
  p1363: { dsaEncoding: 'ieee-p1363' },
  pss: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
};

const P1363 = { dsaEncoding: 'ieee-p1363' } as const;
const NO_OPTIONS = {} as const;

/** JWS wants ECDSA signatures as raw r || s; other keys take no option. */
export const signOptions = (key: KeyObject): { dsaEncoding?: 'ieee-p1363' } => (key.asymmetricKeyType === 'ec' ? P1363 : NO_OPTIONS);

/**
 * One job on the wire: [hash, input, options, keyId, signature] for a check, plus a sign job's
 * [hash, input, options, keyId] to make only if the check holds: tuples cross to the worker
 * several times cheaper than objects.
 */
export type WireJob = unknown[];

/** A check (and the signature to make if it holds) as the worker takes it; `keyId` names each key in the batch. */
export function wireJob(c: Check, then: SignJob | undefined, keyId: (key: KeyObject) => number): WireJob {
  if (!then) return [c.hash, c.signingInput, MODE_OPTIONS[c.mode], keyId(c.key), c.signature];
  return [c.hash, c.signingInput, MODE_OPTIONS[c.mode], keyId(c.key), c.signature, then.hash, then.signingInput, signOptions(then.key), keyId(then.key)];
}

/** A batch: keys not sent before ride along by id; `reset` drops the worker's old ones first. */
export interface WireBatch {
  batch: number;
  reset: boolean;
  keys: [number, KeyObject][];
  jobs: WireJob[];
}

/**
 * The answer per job: false (the check does not hold), true (it holds; with a sign job: the sign
 * failed there) or the signature made after it (base64url).
 */
export interface WireAnswer {
  batch: number;
  out: (boolean | string)[];
}

// A check that throws (a malformed signature, a key of the wrong type) is a signature that does
// not verify; a sign that throws after a check that held answers true.
export const WORKER_SOURCE = `
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

/** Starts the worker from WORKER_SOURCE; throws what `new Worker` throws when no thread can be had. */
export const startSignatureWorker = (): Worker => new Worker(WORKER_SOURCE, { eval: true, name: 'leash-signature-checks' });
