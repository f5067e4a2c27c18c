import { LeashError } from '../errors.ts';
import type { Lease } from './lease.ts';
import type { LeaseFilter } from './store.ts';
import { isListMember } from './list-member.ts';

/** Upper bound of one page, whatever the caller asks for. */
export const MAX_PAGE = 1000;

export const pageLimit = (limit: number): number =>
  Number.isFinite(limit) ? Math.min(MAX_PAGE, Math.max(1, Math.floor(limit))) : MAX_PAGE;

/**
 * Both stores page over the same total order (listMember: issue time in ms, then id) and use
 * the last examined position as the cursor, so a page never repeats or skips a lease that
 * existed throughout, whatever is created or dropped meanwhile.
 */
export const encodeCursor = (member: string): string => Buffer.from(member, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const member = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isListMember(member)) throw new LeashError('bad_request', 'the cursor is not one this server issued');
  return member;
}

export const matchesFilter = (l: Lease, f: LeaseFilter): boolean =>
  (f.status === undefined || l.status === f.status) &&
  (f.subject === undefined || l.subject === f.subject) &&
  (f.rule === undefined || l.rule === f.rule) &&
  // `issuer` names the policy's issuer entry or, as users often have it at hand, its URL.
  (f.issuer === undefined || l.issuer === f.issuer || l.proof_iss === f.issuer) &&
  (f.task_id === undefined || l.task_id === f.task_id);
