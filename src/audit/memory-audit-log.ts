import type { AuditEvent, AuditFilter, AuditLog, AuditPage } from './events.ts';
import { matchesAudit } from './audit-filter.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../util/list-cursor.ts';

type Stored = AuditEvent & { id: string };

/**
 * Dev-mode audit log in process memory: the newest `maxEvents` events that issued or ended
 * credentials (default 100,000) and, apart, the newest `maxDenials` refusals (default 100,000).
 */
export function createMemoryAuditLog(opts: { maxEvents?: number; maxDenials?: number } = {}): AuditLog {
  const credentials = capped(opts.maxEvents ?? 100_000);
  const denials = capped(opts.maxDenials ?? 100_000);
  let seq = 0;

  return {
    async write(event: AuditEvent): Promise<void> {
      (event.type === 'exchange.denied' ? denials : credentials).push({ ...structuredClone(event), id: String(++seq) });
    },

    async list(filter: AuditFilter): Promise<AuditPage> {
      const limit = pageLimit(filter.limit);
      const before = filter.cursor ? decodeCursor(filter.cursor, (id) => (/^\d{1,15}$/.test(id) ? Number(id) : null)) : Infinity;
      const out: AuditEvent[] = [];
      // Both arrays are in id order: merge them from their ends, newest first.
      let i = credentials.events.length - 1;
      let j = denials.events.length - 1;
      while (i >= 0 || j >= 0) {
        const a = credentials.events[i];
        const b = denials.events[j];
        const e = !b || (a && Number(a.id) > Number(b.id)) ? (i--, a!) : (j--, b);
        if (Number(e.id) >= before || !matchesAudit(e, filter)) continue;
        if (out.length === limit) return { events: out, next_cursor: encodeCursor(out[out.length - 1]!.id!) };
        out.push(structuredClone(e));
      }
      return { events: out, next_cursor: null };
    },
  };
}

/** Newest `max` events; trimmed in chunks so a full log does not shift the array on every write. */
function capped(max: number): { events: Stored[]; push(e: Stored): void } {
  const slack = Math.min(1000, Math.ceil(max / 10));
  const events: Stored[] = [];
  return {
    events,
    push(e) {
      events.push(e);
      if (events.length > max + slack) events.splice(0, events.length - max);
    },
  };
}
