import type { KeyObject } from 'node:crypto';
import type { SignatureMode } from './worker-source.ts';

export type { SignatureMode } from './worker-source.ts';

/** A signature to check: `signature` (base64url) over `signingInput` under `key`. */
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

/** A check's answer, and the signature made once it holds (absent when none was asked for). */
export type CheckAnswer = { verified: false } | { verified: true; signed: Signed | undefined };

/** The answer of a check that came with a sign job. */
export type CheckedThenSigned = { verified: false } | { verified: true; signed: Signed };

/** A check under way. */
export interface PendingCheck {
  /**
   * Asks for `job` to be signed too, only if the check holds, in the same trip as the check. False
   * when it comes too late (the check has left): the caller signs it itself once the check holds.
   */
  thenSign(job: SignJob): boolean;
  /** The check's answer, and the signature asked for; never rejects. */
  answer(): Promise<CheckAnswer>;
}

/**
 * Where proof signatures are checked and access tokens signed: the signature thread
 * (signature-thread.ts) or the event loop (on-loop.ts, LEASH_SIGNATURE_THREAD=off). A proof's
 * check and its access token's signature go in one job, so they cost one trip between them.
 */
export interface Signer {
  check(check: Check, then?: SignJob): PendingCheck;
  /** Signs now, on the event loop: for a job that came too late to go with its check. */
  sign(job: SignJob): Signed;
}
