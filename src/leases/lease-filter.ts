import type { Lease } from './lease.ts';
import type { LeaseFilter } from './store.ts';

/** Whether a lease matches a listing or bulk-revocation filter (both stores and the HTTP layer). */
export const matchesFilter = (l: Lease, f: LeaseFilter): boolean =>
  (f.status === undefined || l.status === f.status) &&
  (f.subject === undefined || l.subject === f.subject) &&
  (f.rule === undefined || l.rule === f.rule) &&
  // `issuer` names the policy's issuer entry or, as users often have it at hand, its URL.
  (f.issuer === undefined || l.issuer === f.issuer || l.proof_iss === f.issuer) &&
  (f.task_id === undefined || l.task_id === f.task_id);
