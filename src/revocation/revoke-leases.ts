import type { Deps } from '../deps.ts';
import type { Lease } from '../leases/lease.ts';
import type { LeaseSelector } from '../leases/store.ts';

export type RevocationPath = 'holder' | 'task' | 'operator' | 'bulk' | 'break_glass';

interface RevokeBy {
  reason: string;
  by: string;
  path: RevocationPath;
  requestId?: string;
}

/**
 * Every revocation path goes through here: flip the status now (visible to the next request),
 * then queue the effects for the worker. If queueing fails the periodic sweep still finalizes.
 */
export async function revokeLeases(deps: Deps, ids: string[], by: RevokeBy): Promise<Lease[]> {
  const at = Math.floor(deps.now() / 1000);
  const revoked: Lease[] = [];
  for (const id of ids) {
    const lease = await deps.store.revoke(id, { reason: by.reason, by: by.by, at, ...(by.requestId ? { request_id: by.requestId } : {}) });
    if (lease) revoked.push(lease);
  }
  await queueEffects(deps, revoked.map((l) => l.id), by.path);
  return revoked;
}

export async function revokeBySelector(deps: Deps, selector: LeaseSelector, by: RevokeBy): Promise<string[]> {
  const at = Math.floor(deps.now() / 1000);
  const ids = await deps.store.revokeWhere(selector, { reason: by.reason, by: by.by, at, ...(by.requestId ? { request_id: by.requestId } : {}) });
  await queueEffects(deps, ids, by.path);
  return ids;
}

async function queueEffects(deps: Deps, ids: string[], path: RevocationPath): Promise<void> {
  if (ids.length === 0) return;
  deps.metrics.revocations.inc({ path }, ids.length);
  try {
    await deps.revocations.enqueue(ids);
  } catch (err) {
    deps.log.warn({ err, count: ids.length }, 'could not queue revocation effects; the sweep will finalize them');
  }
}
