import { createMemoryAuditLog } from '../../src/audit/memory-audit-log.ts';
import { auditLogContract } from './audit-log.contract.ts';

auditLogContract('memory', async (caps = {}) => createMemoryAuditLog(caps));
