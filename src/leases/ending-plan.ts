import type { AuditEvent } from '../audit/events.ts';
import { actName, taskName } from '../redis/keys.ts';
import { endingEvent, expiredEventFields, expiredEventJson } from './ending-event.ts';
import { FIELDS, decodeLease, encodeLease, type StoredLease } from './lease-codec.ts';
import type { Lease } from './lease.ts';

/** 'x' expire, 'r' end a revocation, 'd' drop from due and pending, 'p' drop from pending. */
export type EndingOp = 'x' | 'r' | 'd' | 'p';

/** One entry of APPLY_ENDINGS (redis-scripts.ts): what the sweep does with a record it read. */
export interface PlannedEnding {
  id: string;
  op: EndingOp;
  /** The record as read ('' when missing): the script applies the entry only if it is unchanged. */
  was: string;
  /** For 'x' and 'r': the ended lease, its record and audit event. */
  ended: { lease: Lease; record: string; event: AuditEvent; eventJson: string } | null;
  act: string;
  task: string;
  crlMember: string;
  crlScore: number;
}

/**
 * A record as Node may read it, or null for one only Lua may: unreadable to Node, or whose text may
 * not survive the trip through a JS string and back (escapes, or invalid UTF-8 read as U+FFFD),
 * which the write scripts' unchanged-record check would then refuse for good.
 */
export function readInNode(id: string, raw: string): StoredLease | null {
  if (raw.includes('\\u') || raw.includes('\ufffd')) return null;
  return decodeLease(id, raw);
}

/**
 * The ending of a record the sweep read from `due` (due by now) or `pending` (effects job missing),
 * worked out in Node; or 'lua' for a record Node leaves to the Lua path (END_IDS): one it cannot
 * read, one in a state only Lua's finish() has handled, or one whose text may not survive the trip
 * through a JS string and back (escapes, or invalid UTF-8 read as U+FFFD), which the script's
 * unchanged-record check would then refuse for good.
 */
export function planEnding(id: string, raw: string, from: 'due' | 'pending', nowMs: number): PlannedEnding | 'lua' {
  const plan = (op: EndingOp, ended: PlannedEnding['ended'] = null): PlannedEnding => ({ id, op, was: raw, ended, act: '', task: '', crlMember: '', crlScore: 0 });
  if (raw === '') return plan('d');
  const stored = readInNode(id, raw);
  if (stored === null) return 'lua';
  const { lease, issuedMs } = stored;
  if (lease.ended_at !== null) return plan('d');
  if (lease.status === 'active' && from === 'pending') return plan('p');
  // Lua's finish() has always taken these; nothing Leash writes today is in either state.
  if (lease.status === 'expired' || (lease.status === 'revoked' && lease.revoked_at === null)) return 'lua';
  if (lease.status === 'active') return expiryAt(expiryOf(id, raw, stored, lease.expires_at * 1000), nowMs);
  const endedLease: Lease = { ...lease, ended_at: Math.floor(nowMs / 1000) };
  const event = endingEvent(endedLease, nowMs);
  const p = plan('r', { lease: endedLease, record: encodeLease(endedLease, issuedMs), event, eventJson: JSON.stringify(event) });
  if (lease.serial !== null) {
    p.crlMember = `${lease.serial}:${lease.revoked_at}`;
    p.crlScore = lease.expires_at * 1000;
  }
  return p;
}

/**
 * An active lease's expiry, worked out but for the time it happens: what the sweep reads ahead of a
 * lease's expiry (endings-ahead.ts) and what it does with a due record alike.
 */
export interface PreparedExpiry {
  id: string;
  /** The lease's score in the expiry schedule (epoch ms). */
  dueMs: number;
  /** The record as read: the write applies only while it is unchanged. */
  was: string;
  lease: Lease;
  issuedMs: number;
  /** The expired record but for its ending time and closing bracket (expiredRecordHead), or null when it must be encoded anew. */
  expiredHead: string | null;
  act: string;
  task: string;
  /** expiredEventFields of the lease: its event's JSON but for the time. */
  eventFields: string;
}

function expiryOf(id: string, raw: string, stored: StoredLease, dueMs: number): PreparedExpiry {
  const { lease } = stored;
  return {
    id,
    dueMs,
    was: raw,
    lease,
    issuedMs: stored.issuedMs,
    expiredHead: expiredRecordHead(raw, lease.kind, stored.stored),
    act: actName(lease.rule, lease.subject),
    task: lease.task_id === null ? '' : taskName(lease.task_id),
    eventFields: expiredEventFields(lease),
  };
}

/**
 * The expiry of a record read before it is due, or null for one that is not an active lease Node
 * may read (missing, ended, revoked, or only Lua's): the sweep takes those as they come due.
 */
export function prepareExpiry(id: string, raw: string, dueMs: number): PreparedExpiry | null {
  if (raw === '') return null;
  const stored = readInNode(id, raw);
  if (stored === null || stored.lease.status !== 'active' || stored.lease.ended_at !== null) return null;
  return expiryOf(id, raw, stored, dueMs);
}

/**
 * The ending of a prepared expiry at `nowMs`: only the ending time and the audit event are left to
 * do. It uses the prepared expiry up: its lease becomes the ended lease, not a copy (a burst's
 * sweep ends 100,000 at once, and copies held to the end of a sweep call were most of what the
 * worker's scavenges handed on to its old generation).
 */
export function expiryAt(p: PreparedExpiry, nowMs: number): PlannedEnding {
  const endedLease = p.lease;
  endedLease.status = 'expired';
  endedLease.ended_at = Math.floor(nowMs / 1000);
  const event = endingEvent(endedLease, nowMs);
  const record = p.expiredHead === null ? encodeLease(endedLease, p.issuedMs) : `${p.expiredHead}${endedLease.ended_at}]`;
  const eventJson = expiredEventJson(p.eventFields, nowMs, p.lease.expires_at);
  return { id: p.id, op: 'x', was: p.was, ended: { lease: endedLease, record, event, eventJson }, act: p.act, task: p.task, crlMember: '', crlScore: 0 };
}

/** Index of ended_at in the stored array (lease-codec.ts FIELDS). */
const ENDED_AT = FIELDS.indexOf('ended_at');

/**
 * The nulls to append to an active record as read so that the field at index `from` comes next, or
 * null when the text is not in the shape the patches below rely on: `["<kind>","active",...]`
 * holding fewer than `from` fields (encodeLease drops trailing nulls, so an active lease's record
 * ends before the fields an ending or a revocation sets).
 */
function nullsBefore(raw: string, kind: Lease['kind'], stored: number, from: number): number | null {
  return raw.startsWith(`["${kind}","active",`) && raw.endsWith(']') && stored <= from ? from - stored : null;
}

/**
 * The new record of an active lease as a revocation's walk (WALK_APPLY) makes it from the record it
 * checked is unchanged (redis-scripts.ts recordOf): `#<n>` stands for that record with its status
 * swapped, n nulls and then the fields from index `from` on appended. Sending this instead of the
 * record halves what a step writes to Redis. Null when the text is not in that shape (the caller then
 * sends the record encodeLease makes).
 */
export function patchedRecord(raw: string, kind: Lease['kind'], stored: number, from: number): string | null {
  const n = nullsBefore(raw, kind, stored, from);
  return n === null ? null : `#${n}`;
}

/**
 * The expired record of an active one, as read, but for its ending time and closing bracket: the
 * status swapped, then the nulls up to ended_at. Made when the expiry is read ahead, so the ending
 * only appends the time; Redis then stores the text it is sent (its Lua hashes every byte of each
 * string it makes, and building the record there made two). Null when the text is not in that shape.
 */
export function expiredRecordHead(raw: string, kind: Lease['kind'], stored: number): string | null {
  const n = nullsBefore(raw, kind, stored, ENDED_AT);
  if (n === null) return null;
  return `["${kind}","expired",${raw.slice(`["${kind}","active",`.length, -1)}${',null'.repeat(n)},`;
}

/** APPLY_ENDINGS's ARGV after its first four. */
export function endingArgs(plans: PlannedEnding[]): (string | number)[] {
  const args: (string | number)[] = [];
  for (const p of plans) {
    args.push(p.id, p.op, p.was, p.ended?.record ?? '', p.ended?.eventJson ?? '', p.act, p.task, p.crlMember, p.crlScore);
  }
  return args;
}
