import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import type { Check, CheckAnswer, PendingCheck, SignJob, Signed, Signer } from './signer.ts';
import { MODE_OPTIONS, signOptions } from './worker-source.ts';

/**
 * The signature worker's jobs done on the event loop with node:crypto's public one-shot API: for
 * LEASH_SIGNATURE_THREAD=off, and whenever the worker cannot start or dies. Same calls, same
 * answers, same bytes as the worker (test/unit/crypto-worker-source.test.ts holds them together).
 */

/** True when the check holds; a malformed signature or a key of the wrong type is false. */
export function verifyOnLoop(c: Check): boolean {
  try {
    return cryptoVerify(c.hash, Buffer.from(c.signingInput, 'latin1'), Object.assign({ key: c.key }, MODE_OPTIONS[c.mode]), Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
}

/** The signature (base64url); throws what node:crypto throws. */
export function signOnLoop(j: SignJob): string {
  return cryptoSign(j.hash, Buffer.from(j.signingInput), Object.assign({ key: j.key }, signOptions(j.key))).toString('base64url');
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export function signedOnLoop(j: SignJob): Signed {
  try {
    return { ok: true, signature: signOnLoop(j) };
  } catch (err) {
    return { ok: false, error: asError(err) };
  }
}

const NOT_VERIFIED: CheckAnswer = Object.freeze({ verified: false });

/** The check, then (only if it holds) the signature. */
export function checkThenSignOnLoop(check: Check, then: SignJob | undefined): CheckAnswer {
  if (!verifyOnLoop(check)) return NOT_VERIFIED;
  return { verified: true, signed: then ? signedOnLoop(then) : undefined };
}

/** Done when its answer is asked for: a sign job attached before that goes with the check. */
class CheckOnLoop implements PendingCheck {
  constructor(
    private readonly job: Check,
    private then: SignJob | undefined,
  ) {}

  thenSign(job: SignJob): boolean {
    this.then = job;
    return true;
  }

  answer(): Promise<CheckAnswer> {
    return Promise.resolve(checkThenSignOnLoop(this.job, this.then));
  }
}

/** LEASH_SIGNATURE_THREAD=off: every check and signature on the event loop. */
export const loopSigner: Signer = {
  check: (check, then) => new CheckOnLoop(check, then),
  sign: signedOnLoop,
};
