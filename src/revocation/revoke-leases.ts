import type { Deps } from '../deps.ts';
import type { Lease } from '../leases/lease.ts';
import type { LeaseSelector, RevokeInput, RevokeWhereOptions } from '../leases/store.ts';

/** `internal`: Leash ended a lease itself (e.g. its credential could not be minted). */
export type RevocationPath = 'holder' | 'task' | 'operator' | 'bulk' | 'internal';

interface RevokeBy {
  reason: string;
  by: string;
  path: RevocationPath;
}

/**
 * Every revocation path goes through here: flip the status now (visible to the next request),
 * then queue the effects for the worker. If queueing fails the periodic sweep still finalizes.
 */
export async function revokeLeases(deps: Deps, ids: string[], by: RevokeBy): Promise<Lease[]> {
  const input = revokeInput(deps, by);
  // Concurrent flips are in flight together on the connection: a task's leases end in one round trip.
  const results = await Promise.all(ids.map((id) => deps.store.revoke(id, input)));
  const revoked = results.filter((l): l is Lease => l !== null);
  await queueEffects(deps, revoked.map((l) => l.id), by.path);
  return revoked;
}

/** Revokes what `selector` matches, then queues the effects; returns how many it revoked. */
export async function revokeBySelector(deps: Deps, selector: LeaseSelector, by: RevokeBy, opts: RevokeWhereOptions = {}): Promise<number> {
  const input = revokeInput(deps, by);
  // In the walker (walk-process.ts), which queues the effects itself; here when it cannot.
  const walked = await deps.walker?.revokeAndQueue(selector, input, opts);
  if (walked) {
    if (walked.revoked > 0) deps.metrics.revocations.inc({ path: by.path }, walked.revoked);
    if (walked.queueError !== undefined) unqueued(deps, walked.queueError, walked.revoked);
    return walked.revoked;
  }
  const ids = await deps.store.revokeWhere(selector, input, opts);
  await queueEffects(deps, ids, by.path);
  return ids.length;
}

function revokeInput(deps: Deps, by: RevokeBy): RevokeInput {
  return { reason: by.reason, by: by.by, at: Math.floor(deps.now() / 1000) };
}

async function queueEffects(deps: Deps, ids: string[], path: RevocationPath): Promise<void> {
  if (ids.length === 0) return;
  deps.metrics.revocations.inc({ path }, ids.length);
  try {
    await deps.revocations.enqueue(ids);
  } catch (err) {
    unqueued(deps, err, ids.length);
  }
}

function unqueued(deps: Deps, err: unknown, count: number): void {
  deps.log.warn({ err, count }, 'could not queue revocation effects; the sweep will finalize them');
}
