import { StoreUnavailableError } from '../errors.ts';
import { DescMerge } from '../util/merge-desc.ts';
import {
  DENIAL_STREAM_COUNT, SHARD_COUNT, auditEventId, isLeaseId, parseAuditEventId, redisKeys, shardOfLeaseId, shardOfString,
} from '../redis/keys.ts';
import type { RedisClient } from '../redis/connect.ts';
import { trimToTotal } from './redis-audit-trim.ts';
import { matchesAudit } from './audit-filter.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../util/list-cursor.ts';
import type { AuditEvent, AuditFilter, AuditLog, AuditPage } from './events.ts';

/** Stream entries one list() call examines at most; a sparse filter pages on with a cursor. */
export const AUDIT_SCAN_BUDGET = 5_000;
/** `since` bounds the stream scan by entry time minus this much, for writers' clock skew. */
const SINCE_SKEW_MS = 5 * 60_000;
const BATCH = 200;

/** LEASH_AUDIT_MAX_EVENTS and LEASH_AUDIT_MAX_DENIALS by default. */
export const DEFAULT_AUDIT_MAX_EVENTS = 400_000;
export const DEFAULT_AUDIT_MAX_DENIALS = 400_000;

export interface RedisAuditLogOptions {
  /** The caller owns the connection; see createRedisLeaseStore for the options it should have. */
  redis: RedisClient;
  /** The lease store's prefix: endings are written to these streams by the store's scripts. */
  prefix?: string;
  /**
   * Events that issued or ended credentials kept in the 16 shard streams together. Each stream is
   * bounded by this on write (so a busy shard is never cut to a 16th), and trim() drops the
   * globally oldest beyond it; the lease store's scripts must get the same bound.
   */
  maxEvents?: number;
  /** Refusals kept in the refusal streams together; written round robin, each holds a 16th. */
  maxDenials?: number;
}

/** Refusals are recorded apart, so no flood of them can evict the record of a credential. */
export const isRefusal = (e: AuditEvent): boolean => e.type === 'exchange.denied';

interface Item {
  ms: number;
  seq: number;
  shard: number;
  event: AuditEvent | null;
}

/**
 * The shard stream an event goes to: a lease's own shard (so every event of a lease is in one
 * stream, next to the endings the store writes there), else the subject's shard, else a hash of
 * the actor or type.
 */
export function auditShardOf(e: AuditEvent): number {
  if (typeof e.lease_id === 'string' && isLeaseId(e.lease_id)) return shardOfLeaseId(e.lease_id);
  return shardOfString(e.subject ?? e.actor ?? e.type);
}

/**
 * Audit events in capped Redis streams (XADD field `e` = JSON), read back newest first: those that
 * issued or ended credentials in the 16 lease shards' streams, refusals in 16 streams of their own.
 * Stream index (the last part of an event id): shard N is N, refusal stream N is 16 + N.
 */
export function createRedisAuditLog(opts: RedisAuditLogOptions): AuditLog {
  const { redis } = opts;
  const keys = redisKeys(opts.prefix);
  const maxEvents = opts.maxEvents ?? DEFAULT_AUDIT_MAX_EVENTS;
  const denialMaxLen = Math.ceil((opts.maxDenials ?? DEFAULT_AUDIT_MAX_DENIALS) / DENIAL_STREAM_COUNT);
  const streamKey = (stream: number): string => (stream < SHARD_COUNT ? keys.audit(stream) : keys.denials(stream - SHARD_COUNT));
  // Round robin: every refusal stream gets the same share, so a 16th of the cap each is the cap.
  let nextDenials = Math.floor(Math.random() * DENIAL_STREAM_COUNT);
  const io = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw new StoreUnavailableError(`redis audit ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  };

  return {
    async write(event: AuditEvent): Promise<void> {
      const { id: _assigned, ...rest } = event;
      if (isRefusal(event)) {
        const key = keys.denials(nextDenials);
        nextDenials = (nextDenials + 1) % DENIAL_STREAM_COUNT;
        await io('write', () => redis.xadd(key, 'MAXLEN', '~', denialMaxLen, '*', 'e', JSON.stringify(rest)));
        return;
      }
      await io('write', () => redis.xadd(keys.audit(auditShardOf(event)), 'MAXLEN', '~', maxEvents, '*', 'e', JSON.stringify(rest)));
    },

    trim: () => io('trim', () => trimToTotal(redis, Array.from({ length: SHARD_COUNT }, (_, s) => keys.audit(s)), maxEvents)),

    async list(filter: AuditFilter): Promise<AuditPage> {
      const limit = pageLimit(filter.limit);
      const cursor = filter.cursor ? decodeCursor(filter.cursor, parseAuditEventId) : null;
      const streams = streamsFor(filter);
      const min = filter.since !== undefined ? String(Math.max(0, Math.floor(filter.since - SINCE_SKEW_MS))) : '-';
      const filtered = [filter.lease_id, filter.subject, filter.type, filter.since].some((v) => v !== undefined);
      const merge = new DescMerge<Item>(
        streams.map((shard) => {
          // Total order (ms, seq, stream): at the cursor's own stream id, lower streams come after it.
          let max = !cursor ? '+' : `${shard < cursor.shard ? '' : '('}${cursor.ms}-${cursor.seq}`;
          return async (count) => {
            const rows = await io('list', () => redis.xrevrange(streamKey(shard), max, min, 'COUNT', count));
            const last = rows[rows.length - 1];
            if (last) max = `(${last[0]}`;
            return rows.map(([id, fields]) => toItem(id, fields, shard));
          };
        }),
        (a, b) => a.ms - b.ms || a.seq - b.seq || a.shard - b.shard,
        filtered ? BATCH : Math.min(limit + 1, BATCH),
      );

      const events: AuditEvent[] = [];
      let last: Item | null = null;
      for (let examined = 0; events.length < limit && examined < AUDIT_SCAN_BUDGET; examined++) {
        const item = await merge.next();
        if (!item) break;
        last = item;
        if (item.event && matchesAudit(item.event, filter)) events.push(item.event);
      }
      const more = last !== null && !merge.exhausted;
      return { events, next_cursor: more ? encodeCursor(auditEventId(`${last!.ms}-${last!.seq}`, last!.shard)) : null };
    },
  };
}

const ALL_SHARDS = Array.from({ length: SHARD_COUNT }, (_, s) => s);
const ALL_DENIALS = Array.from({ length: DENIAL_STREAM_COUNT }, (_, n) => SHARD_COUNT + n);

/** The streams a filter can match in: a refusal has no lease, and a type lives on one side. */
function streamsFor(filter: AuditFilter): number[] {
  if (filter.lease_id !== undefined) return isLeaseId(filter.lease_id) ? [shardOfLeaseId(filter.lease_id)] : ALL_SHARDS;
  if (filter.type === undefined) return [...ALL_SHARDS, ...ALL_DENIALS];
  return isRefusal({ type: filter.type } as AuditEvent) ? ALL_DENIALS : ALL_SHARDS;
}

function toItem(streamId: string, fields: string[], shard: number): Item {
  const [ms, seq] = streamId.split('-').map(Number) as [number, number];
  let event: AuditEvent | null = null;
  const i = fields.indexOf('e');
  if (i >= 0 && i % 2 === 0) {
    try {
      event = Object.assign(JSON.parse(fields[i + 1]!) as AuditEvent, { id: auditEventId(streamId, shard) });
    } catch {
      event = null; // not ours: skipped, still counted as examined
    }
  }
  return { ms, seq, shard, event };
}
