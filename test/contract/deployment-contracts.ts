import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { withDeploymentClient, type StartDeployment } from '../helpers/deployment-client.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { leaseStoreContract } from './lease-store.contract.ts';
import { uniquePrefix } from './redis-client.ts';

/**
 * The one suite every store passes, on a real Redis deployment the file starts (Cluster, Sentinel)
 * and reaches through `REDIS_URL`'s client as the broker does.
 */
export function deploymentContracts(name: string, start: StartDeployment): void {
  const client = withDeploymentClient(start);

  leaseStoreContract(name, async (opts = {}) => {
    const prefix = uniquePrefix();
    return { store: createRedisLeaseStore({ redis: client(), prefix, ...opts }), audit: createRedisAuditLog({ redis: client(), prefix }) };
  });
  auditLogContract(name, async (caps = {}) => createRedisAuditLog({ redis: client(), prefix: uniquePrefix(), ...caps }));
}
