import { actName, taskName } from '../redis/keys.ts';
import { FIELDS, encodeLease } from './lease-codec.ts';
import { wellFormedJson } from '../util/well-formed.ts';
import { patchedRecord, readInNode } from './ending-plan.ts';
import type { LeaseSelector, RevokeInput } from './store.ts';

const REVOKED_AT = FIELDS.indexOf('revoked_at');

/**
 * What WALK_APPLY appends to a patched record (patchedRecord): the fields from revoked_at on, as
 * encodeLease writes them (trailing nulls dropped). The same for every lease of a revocation.
 */
export function revokedTail(input: RevokeInput): string {
  const a: unknown[] = [input.at, null, input.reason, input.by];
  while (a.length > 0 && a[a.length - 1] === null) a.pop();
  return `,${wellFormedJson(JSON.stringify(a)).slice(1)}`;
}

/** What a revocation walking an index does with one entry it read (see WALK_APPLY). */
export type PlannedRevocation =
  /** Flip it: the revoked record (or patchedRecord's stand-in), and its entry in the other index kind ('' for none). */
  | { op: 'revoke'; record: string; other: string }
  /** No record behind the entry: drop the entry. */
  | { op: 'stale' }
  /** Not a match (another issuer, past expiry, not active, the caller's own): it stays. */
  | { op: 'keep' }
  /** A record only Lua may read (unreadable to Node, escapes, invalid UTF-8): the step goes to Lua. */
  | { op: 'lua' };

/**
 * The revocation of one lease found through the `walked` index, worked out in Node as the sweep's
 * endings are (ending-plan.ts): the same match as REVOKE_SCAN's, and the record it writes.
 */
export function planRevocation(
  id: string,
  raw: string,
  walked: 'act' | 'task',
  selector: LeaseSelector,
  input: RevokeInput,
  keep: string | undefined,
): PlannedRevocation {
  if (raw === '') return { op: 'stale' };
  const stored = readInNode(id, raw);
  if (stored === null) return { op: 'lua' };
  const { lease } = stored;
  const s = selector;
  const matches =
    lease.status === 'active' && lease.expires_at > input.at && id !== keep &&
    (s.subject === undefined || s.subject === lease.subject) && (s.rule === undefined || s.rule === lease.rule) &&
    (s.issuer === undefined || s.issuer === lease.issuer || s.issuer === lease.proof_iss) &&
    (s.task_id === undefined || s.task_id === lease.task_id);
  if (!matches) return { op: 'keep' };
  const record =
    patchedRecord(raw, lease.kind, stored.stored, REVOKED_AT) ??
    encodeLease({ ...lease, status: 'revoked', revoked_at: input.at, reason: input.reason, revoked_by: input.by }, stored.issuedMs);
  const other = walked === 'act' ? (lease.task_id === null ? '' : taskName(lease.task_id)) : actName(lease.rule, lease.subject);
  return { op: 'revoke', record, other };
}
