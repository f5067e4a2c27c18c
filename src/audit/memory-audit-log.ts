import type { AuditEvent, AuditFilter, AuditLog, AuditPage } from './events.ts';
import { decodeAuditCursor, matchesAudit } from './audit-filter.ts';
import { encodeCursor, pageLimit } from '../leases/list-cursor.ts';

/** Dev-mode audit log: the newest `maxEvents` events in process memory (default 100,000). */
export function createMemoryAuditLog(opts: { maxEvents?: number } = {}): AuditLog {
  const maxEvents = opts.maxEvents ?? 100_000;
  const events: (AuditEvent & { id: string })[] = [];
  let seq = 0;

  return {
    async write(event: AuditEvent): Promise<void> {
      events.push({ ...structuredClone(event), id: String(++seq) });
      // Trim in chunks so a full log does not shift the array on every write.
      if (events.length > maxEvents + 1000) events.splice(0, events.length - maxEvents);
    },

    async list(filter: AuditFilter): Promise<AuditPage> {
      const limit = pageLimit(filter.limit);
      const before = filter.cursor ? decodeAuditCursor(filter.cursor, (id) => (/^\d{1,15}$/.test(id) ? Number(id) : null)) : Infinity;
      const out: AuditEvent[] = [];
      for (let i = events.length - 1; i >= 0; i--) {
        const e = events[i]!;
        if (Number(e.id) >= before || !matchesAudit(e, filter)) continue;
        if (out.length === limit) return { events: out, next_cursor: encodeCursor(out[out.length - 1]!.id!) };
        out.push(structuredClone(e));
      }
      return { events: out, next_cursor: null };
    },
  };
}
