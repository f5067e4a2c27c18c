import type { AuditEvent } from '../audit/events.ts';
import type { Deps } from '../deps.ts';
import { isLive, type Lease } from '../leases/lease.ts';

/** Enough for any dashboard view; beyond it the operator API's filters are the tool. */
const MAX_SCANNED = 10_000;
const PAGE = 1000;
const TOP = 25;
const EXPIRING = 50;
const DENIALS = 25;

export interface Overview {
  /** Active leases per the store's own counter (may exceed `scanned`). */
  activeTotal: number;
  scanned: number;
  truncated: boolean;
  byRule: [string, number][];
  /** The busiest subjects only; `subjects` is how many there are. */
  bySubject: [string, number][];
  subjects: number;
  soonest: Lease[];
  /** null when the operator lacks leash:audit:read. */
  denials: AuditEvent[] | null;
}

/** Reads what the dashboard shows: active leases (grouped, soonest expiries) and recent denials. */
export async function gatherOverview(deps: Deps, opts: { withDenials: boolean }): Promise<Overview> {
  const nowSeconds = Math.floor(deps.now() / 1000);
  const [active, activeTotal, denials] = await Promise.all([
    scanActive(deps, nowSeconds),
    deps.store.countActive(),
    opts.withDenials ? deps.audit.list({ type: 'exchange.denied', limit: DENIALS, cursor: null }).then((p) => p.events) : Promise.resolve(null),
  ]);
  const bySubject = countBy(active.leases, (l) => l.subject);
  return {
    activeTotal,
    scanned: active.leases.length,
    truncated: active.truncated,
    byRule: countBy(active.leases, (l) => l.rule),
    bySubject: bySubject.slice(0, TOP),
    subjects: bySubject.length,
    soonest: [...active.leases].sort((a, b) => a.expires_at - b.expires_at || a.id.localeCompare(b.id)).slice(0, EXPIRING),
    denials,
  };
}

async function scanActive(deps: Deps, nowSeconds: number): Promise<{ leases: Lease[]; truncated: boolean }> {
  const leases: Lease[] = [];
  let cursor: string | null = null;
  do {
    const page = await deps.store.list({ status: 'active' }, { limit: PAGE, cursor });
    // A lease past expires_at whose ending has not run yet is already dead for introspection.
    for (const l of page.leases) if (isLive(l, nowSeconds)) leases.push(l);
    cursor = page.next_cursor;
  } while (cursor && leases.length < MAX_SCANNED);
  return { leases: leases.slice(0, MAX_SCANNED), truncated: cursor !== null };
}

function countBy(leases: Lease[], key: (l: Lease) => string): [string, number][] {
  const counts = new Map<string, number>();
  for (const l of leases) counts.set(key(l), (counts.get(key(l)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
