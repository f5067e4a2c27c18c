import type { AuditLog } from '../audit/events.ts';
import type { LeaseStore, Ending } from '../leases/store.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Logger } from '../observability/logger.ts';

export interface EndingDeps {
  store: LeaseStore;
  metrics: Metrics;
  log: Logger;
  now(): number;
  /** Its trim() keeps the audit caps over all streams together (Redis). */
  audit?: Pick<AuditLog, 'trim'>;
}

export const SWEEP_BATCH = 2_000;
const FINALIZE_CHUNK = 256;
/** A revoked lease whose effects job has not run after this long is finalized by the sweep. */
export const PENDING_GRACE_MS = 15_000;

function record(deps: EndingDeps, endings: Ending[]): void {
  // Counted per label pair, then added: a sweep ends thousands at once, and each inc() hashes its labels.
  const counts = new Map<string, { status: string; reason: string; n: number }>();
  for (const e of endings) {
    const status = e.lease.status;
    const reason = status === 'expired' ? 'ttl' : reasonLabel(e.lease.reason);
    const key = `${status} ${reason}`;
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { status, reason, n: 1 });
    if (status === 'expired') deps.metrics.expiryLagSeconds.observe(Math.max(0, e.ended_at_ms - e.lease.expires_at * 1000) / 1000);
  }
  for (const { status, reason, n } of counts.values()) deps.metrics.endings.inc({ status, reason }, n);
}

/** Labels stay low-cardinality: free-text operator reasons are folded into "operator". */
function reasonLabel(reason: string | null): string {
  if (reason === 'task completed' || reason === 'revoked by holder') return reason.replaceAll(' ', '_');
  return 'operator';
}

/** The `revoke` job: effects of leases already flipped to revoked. Idempotent by construction. */
export async function finalizeRevoked(deps: EndingDeps, ids: string[]): Promise<Ending[]> {
  const endings: Ending[] = [];
  // Many ids a script (finalizeMany); a chunk's ending time is read when the chunk starts.
  for (let i = 0; i < ids.length; i += FINALIZE_CHUNK) {
    endings.push(...(await deps.store.finalizeMany(ids.slice(i, i + FINALIZE_CHUNK), deps.now())));
  }
  record(deps, endings);
  return endings;
}

/**
 * The `sweep` job: expire what is due, finish revocations whose job went missing, read ahead what
 * comes due next, prune retention, trim audit.
 */
export async function sweepOnce(deps: EndingDeps): Promise<number> {
  let total = 0;
  for (;;) {
    // Each write stamped when it is made: a burst's sweep takes seconds, and its lag is what it was.
    const endings = await deps.store.sweep(deps.now(), { limit: SWEEP_BATCH, pendingGraceMs: PENDING_GRACE_MS, clock: deps.now });
    record(deps, endings);
    total += endings.length;
    if (endings.length < SWEEP_BATCH) break;
  }
  // Caught up: read what comes due next, so a burst of expiries costs its sweep only the writes.
  await deps.store.readAhead?.(deps.now());
  await deps.store.pruneRetained(deps.now());
  // The audit trim only drops old records: a failure is logged, and the next sweep tries again.
  await deps.audit?.trim?.().catch((err: unknown) => deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'audit trim failed'));
  deps.metrics.sweeps.inc();
  return total;
}
