import type { Deps } from '../deps.ts';
import { LeashError } from '../errors.ts';
import type { ProofHolder } from '../leases/store.ts';
import { ABANDON_REASONS } from './abandoned-leases.ts';

/**
 * How long after its last sign of trouble a replay refusal is checked for a lost answer: the
 * undoing process may take a few seconds to get through, and on a Cluster runs again 10 s later.
 */
const AFTER_OUTAGE_MS = 20_000;
/**
 * How long before an outage's first sign a write may have been sent and its answer lost with the
 * connection: a command waits at most its timeout (2 s, and LEASH_REDIS_WAIT_MS with replicas to
 * wait for), with room for the writer's clock to be a little off this one's.
 */
const IN_FLIGHT_BEFORE_MS = 10_000;
/**
 * How long after it a lost write may still date from (this process may notice a moment late).
 * Short, and not until the last sign: a lease written once Redis is back (the retry's own) must be
 * refused as a replay again at once, and a Redis restarted at once is back within a second.
 */
const IN_FLIGHT_AFTER_MS = 500;

/**
 * Whether a proof refused as a replay may be held by a lease whose write got no answer in another
 * API process, which is undoing it (abandoned-leases.ts frees only its own). The CI job's retry of
 * that 503 can land here, behind a load balancer, first. Only within 20 s of this process, too,
 * losing its connection, and only for a holder written as that began, before the reconnection, not
 * ended since or ended by such an undoing. A holder that cannot be read, or is no longer there,
 * counts too: the answer is then 503 either way, or the retry finds the proof free.
 */
export async function mayBeUndoneElsewhere(deps: Deps, subject: string, proofKey: string): Promise<boolean> {
  const spell = deps.outages.recent(AFTER_OUTAGE_MS);
  if (spell === null) return false;
  let holder: ProofHolder | null;
  try {
    holder = await deps.store.proofHolder(subject, proofKey);
  } catch {
    return true;
  }
  // Refused as a replay, then found unclaimed: the undoing released it in between, and the retry
  // gets it. (A record too old to name its lease reads so too; it is then refused once the spell ends.)
  if (holder === null) return true;
  const waitMs = deps.config.redisMinReplicas > 0 ? deps.config.redisWaitMs : 0;
  // Written once this process was back is written after the outage: a Redis restarted at once.
  const until = Math.min(spell.startMs + IN_FLIGHT_AFTER_MS, spell.backMs ?? Infinity);
  // A lease written in a later second than the one it was made in is dated that earlier second's
  // start (issued_at): it may have been written up to a second later.
  const latestMs = holder.writtenMs % 1000 === 0 ? holder.writtenMs + 999 : holder.writtenMs;
  if (holder.writtenMs < spell.startMs - IN_FLIGHT_BEFORE_MS - waitMs || latestMs >= until) return false;
  const { lease } = holder;
  if (lease.status === 'active') return true;
  return lease.status === 'revoked' && lease.revoked_by === 'leash' && (ABANDON_REASONS as readonly string[]).includes(lease.reason ?? '');
}

/** The 503 for such a refusal: no credential, and the job retries as for any outage. */
export const heldAcrossOutage = (): LeashError =>
  new LeashError('temporarily_unavailable', 'subject_token is held by an exchange that may be undone after a Redis outage; retry shortly', { status: 503 });
