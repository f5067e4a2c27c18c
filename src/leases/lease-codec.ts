import type { Lease, LeaseKind, LeaseStatus } from './lease.ts';
import { isLeaseId, shardOfLeaseId } from './lease-id.ts';
import { shardsOfPair } from '../redis/keys.ts';
import { wellFormedJson } from '../util/well-formed.ts';

/**
 * The stored form of a lease is a JSON array in this field order, not an object: field names would
 * cost about 200 bytes a lease, a fifth of the memory budget. The id is the key, not stored;
 * `proof_sub` is null when equal to `subject`; trailing nulls are dropped, so the fields that stay
 * null while a lease is active come last. `issued_ms` keeps sub-second listing order.
 */
export const FIELDS = [
  'kind', 'status', 'rule', 'issuer', 'subject', 'scopes', 'audiences', 'task_id', 'serial',
  'issued_ms', 'expires_at', 'proof_iss', 'proof_sub', 'proof_jti', 'client_addr',
  'revoked_at', 'ended_at', 'reason', 'revoked_by',
] as const;

/** `local F_KIND = 1` ... for the Lua scripts (1-based). */
export const LUA_FIELDS =
  FIELDS.map((f, i) => `local F_${f.toUpperCase()} = ${i + 1}`).join('\n') + `\nlocal NFIELDS = ${FIELDS.length}\n`;

/** The millisecond issue time used for ordering: now when the lease is issued this second. */
export const issuedMsFor = (issuedAt: number, nowMs: number): number =>
  Math.floor(nowMs / 1000) === issuedAt ? nowMs : issuedAt * 1000;

export function encodeLease(l: Lease, issuedMs: number): string {
  const a: unknown[] = [
    l.kind, l.status, l.rule, l.issuer, l.subject, l.scopes, l.audiences, l.task_id, l.serial,
    issuedMs, l.expires_at, l.proof_iss, l.proof_sub === l.subject ? null : l.proof_sub, l.proof_jti,
    l.client_addr, l.revoked_at, l.ended_at, l.reason, l.revoked_by,
  ];
  let n = a.length;
  while (n > 0 && a[n - 1] === null) n--;
  // Lua's cjson must be able to read every record (a lone surrogate would stall its shard).
  return wellFormedJson(JSON.stringify(n === a.length ? a : a.slice(0, n)));
}

export interface StoredLease {
  lease: Lease;
  issuedMs: number;
  /** How many elements the stored array holds (trailing nulls are not stored). */
  stored: number;
}

const STATUSES: ReadonlySet<unknown> = new Set(['active', 'revoked', 'expired']);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const optStr = (v: unknown): boolean => v == null || typeof v === 'string';
const optNum = (v: unknown): boolean => v == null || isNum(v);
// Lua's cjson writes an empty array as {}: that reads as empty too.
const isList = (v: unknown): boolean =>
  Array.isArray(v) ? v.every(isStr) : typeof v === 'object' && v !== null && Object.keys(v).length === 0;

/**
 * Whether a parsed record has the shape of a lease. At least as strict as the Lua scripts'
 * wellShaped (redis-scripts.ts): a record the scripts cannot end must never read as active here.
 */
function wellShaped(a: unknown): a is unknown[] {
  return (
    Array.isArray(a) && (a[0] === 'jwt' || a[0] === 'x509') && STATUSES.has(a[1]) && isStr(a[2]) && isStr(a[3]) &&
    isStr(a[4]) && isList(a[5]) && isList(a[6]) && optStr(a[7]) && optStr(a[8]) && isNum(a[9]) && isNum(a[10]) &&
    isStr(a[11]) && optStr(a[12]) && optStr(a[13]) && optStr(a[14]) && optNum(a[15]) && optNum(a[16]) &&
    optStr(a[17]) && optStr(a[18])
  );
}

/** The lease a stored record holds, or null when the record is unreadable (not JSON, or not a lease). */
export function decodeLease(id: string, json: string): StoredLease | null {
  let a: unknown;
  try {
    a = JSON.parse(json);
  } catch {
    return null;
  }
  if (!wellShaped(a)) return null;
  const str = (i: number): string => a[i] as string;
  const opt = <T>(i: number): T | null => (a[i] ?? null) as T | null;
  const list = (i: number): string[] => (Array.isArray(a[i]) ? (a[i] as string[]) : []);
  const issuedMs = a[9] as number;
  const subject = str(4);
  return {
    issuedMs,
    stored: a.length,
    lease: {
      id,
      kind: str(0) as LeaseKind,
      status: str(1) as LeaseStatus,
      rule: str(2),
      issuer: str(3),
      subject,
      scopes: list(5),
      audiences: list(6),
      task_id: opt<string>(7),
      serial: opt<string>(8),
      issued_at: Math.floor(issuedMs / 1000),
      expires_at: a[10] as number,
      proof_iss: str(11),
      proof_sub: opt<string>(12) ?? subject,
      proof_jti: opt<string>(13),
      client_addr: opt<string>(14),
      revoked_at: opt<number>(15),
      ended_at: opt<number>(16),
      reason: opt<string>(17),
      revoked_by: opt<string>(18),
    },
  };
}

/**
 * What create() accepts: a fresh active lease whose id came from newLeaseId(subject), or carries
 * the (rule, subject) pair's legacy shard (a lease as Leash made them before; tests of the upgrade
 * write such leases). Anything else is a programming mistake, so a TypeError (not a refusal to the
 * client).
 */
export function checkNewLease(l: Lease): void {
  const bad = (why: string): never => {
    throw new TypeError(`create(): ${why}`);
  };
  if (!isLeaseId(l.id)) bad('the lease id must come from newLeaseId(subject)');
  if (!shardsOfPair(l.rule, l.subject).includes(shardOfLeaseId(l.id))) bad('the lease id was made for another subject (use newLeaseId(subject))');
  if (l.status !== 'active' || l.revoked_at !== null || l.ended_at !== null) bad('a new lease must be active and not revoked or ended');
  if (!Number.isSafeInteger(l.issued_at) || !Number.isSafeInteger(l.expires_at)) bad('issued_at and expires_at must be whole epoch seconds');
  if (l.task_id === '') bad('task_id must be null or a non-empty string');
  if (l.kind !== 'jwt' && l.kind !== 'x509') bad(`unknown kind ${String(l.kind)}`);
}
