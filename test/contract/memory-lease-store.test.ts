import { createMemoryAuditLog } from '../../src/audit/memory-audit-log.ts';
import { createMemoryLeaseStore } from '../../src/leases/memory-store.ts';
import { leaseStoreContract } from './lease-store.contract.ts';

leaseStoreContract('memory', async (opts = {}) => {
  const audit = createMemoryAuditLog();
  return { store: createMemoryLeaseStore({ ...opts, audit }), audit };
});
