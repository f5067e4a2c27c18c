import type { Deps } from '../deps.ts';
import { ABANDON_REASONS } from './abandoned-leases.ts';

/** How long after Redis was last out of reach a replay refusal is checked for a lost answer. */
const AFTER_OUTAGE_MS = 10_000;
/** A lease written this long before the outage began may have had its answer lost in it (issued_at is whole seconds). */
const WRITTEN_BEFORE_MS = 10_000;
const WRITTEN_AFTER_START_MS = 1_000;

/**
 * Whether a proof refused as a replay may be held by a lease whose write got no answer, in an API
 * process other than this one, which is undoing it (abandoned-leases.ts frees only its own). The
 * CI job's retry of its 503 then lands here, behind a load balancer, before that undoing does:
 * it is told to retry (503), not that its proof was used (a final 400). Only just after this
 * process, too, lost touch with Redis, and only for a holder written as that began that was not
 * ended since, or was ended by such an undoing. A true replay of it meets 503s for those seconds,
 * then 400: no credential either way.
 */
export async function mayBeUndoneElsewhere(deps: Deps, subject: string, proofKey: string): Promise<boolean> {
  const spell = deps.outages.recent(AFTER_OUTAGE_MS);
  if (spell === null) return false;
  const holder = await deps.store.proofHolder(subject, proofKey).catch(() => null);
  if (holder === null) return false;
  const writtenMs = holder.issued_at * 1000;
  if (writtenMs < spell.startMs - WRITTEN_BEFORE_MS || writtenMs > spell.startMs + WRITTEN_AFTER_START_MS) return false;
  if (holder.status === 'active') return true;
  return holder.status === 'revoked' && holder.revoked_by === 'leash' && (ABANDON_REASONS as readonly string[]).includes(holder.reason ?? '');
}
