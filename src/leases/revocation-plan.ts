import { actName, taskName } from '../redis/keys.ts';
import { encodeLease } from './lease-codec.ts';
import { readInNode } from './ending-plan.ts';
import type { LeaseSelector, RevokeInput } from './store.ts';

/** What a revocation walking an index does with one entry it read (see WALK_APPLY). */
export type PlannedRevocation =
  /** Flip it: the revoked record, and its entry in the other index kind ('' for none). */
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
  const record = encodeLease({ ...lease, status: 'revoked', revoked_at: input.at, reason: input.reason, revoked_by: input.by }, stored.issuedMs);
  const other = walked === 'act' ? (lease.task_id === null ? '' : taskName(lease.task_id)) : actName(lease.rule, lease.subject);
  return { op: 'revoke', record, other };
}
