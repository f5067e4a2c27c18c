import type { JWK } from 'jose';
import type { PendingCheck, SignJob, Signed, Signer } from '../crypto/signer.ts';
import { checkOf, publicKeyOf } from './fast-verify.ts';
import { ProofError } from './proof-error.ts';
import type { PendingProof, VerifiedProof } from './proof-verifier.ts';

/**
 * The signature step of proof verification, through the Signer port (src/crypto/signer.ts): it
 * checks the proof's signature and makes, in the same job, the one signature its caller asked for
 * in the meantime. What is signed is opaque here: proofs/ knows nothing of leases or tokens.
 */

/** Where a signature to make waits for the check it goes with. */
interface SignSlot {
  then: SignJob | undefined;
  current: PendingCheck | undefined;
  holds: boolean;
  signature: Signed | undefined;
}

/** PendingProof: the proof, and the state of its signature check. */
export class ProofUnderCheck implements PendingProof, SignSlot {
  then: SignJob | undefined = undefined;
  current: PendingCheck | undefined = undefined;
  holds = false;
  signature: Signed | undefined = undefined;
  private readonly checked: Promise<VerifiedProof>;

  constructor(
    readonly unchecked: VerifiedProof,
    private readonly signer: Signer,
    token: string,
    alg: string,
    candidates: readonly JWK[],
  ) {
    // Queues the first key's check now, so a sign job given to verified() before the batch leaves rides with it.
    this.checked = checkSignature(signer, token, alg, candidates, this, unchecked);
    // A bad signature may be known before verified() is called (a lone check runs on the event
    // loop at low rates); verified() still hands it over, and meanwhile it is no unhandled rejection.
    this.checked.catch(() => undefined);
  }

  verified(then?: SignJob): Promise<VerifiedProof> {
    if (then) {
      this.then = then;
      // Joins the check under way unless its batch has left; then `signed` makes it once the check holds.
      this.current?.thenSign(then);
    }
    return this.checked;
  }

  get signed(): Signed | undefined {
    if (this.holds && this.signature === undefined && this.then) this.signature = this.signer.sign(this.then);
    return this.signature;
  }
}

/**
 * Tries each candidate key in turn and resolves to `result` once one holds; the slot's sign job
 * goes with each check, made only by the one that holds. Signature first: nothing in an unsigned
 * payload is worth an opinion, and the claims were decoded from exactly the bytes it covers.
 */
export async function checkSignature<T>(signer: Signer, token: string, alg: string, candidates: readonly JWK[], slot: SignSlot | undefined, result: T): Promise<T> {
  for (const jwk of candidates) {
    const check = checkOf(token, alg, publicKeyOf(jwk, alg));
    if (!check) continue;
    const pending = signer.check(check, slot?.then);
    if (slot) slot.current = pending;
    const answer = await pending.answer();
    if (!answer.verified) continue;
    if (slot) {
      slot.holds = true;
      slot.signature = answer.signed;
    }
    return result;
  }
  throw new ProofError('bad_signature', 'subject_token signature is invalid');
}
