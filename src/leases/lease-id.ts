import { randomFillSync } from 'node:crypto';
import { shardOfSubject } from '../redis/keys.ts';

// Read back where the key layout needs them (the audit log routes a lease's events by its shard).
export { isLeaseId, shardOfLeaseId } from '../redis/keys.ts';

// One call into the CSPRNG per 256 ids instead of one per id (as node:crypto's randomUUID does).
const ID_POOL = Buffer.alloc(16 * 256);
let poolOffset = ID_POOL.length;

/**
 * A new lease id for a lease of `subject`: base64url of 16 random bytes whose low 4 bits of byte 0
 * carry the subject's shard, so the lease can be found from its id alone. 124 bits of entropy remain.
 */
export function newLeaseId(subject: string): string {
  if (poolOffset === ID_POOL.length) {
    randomFillSync(ID_POOL);
    poolOffset = 0;
  }
  const bytes = ID_POOL.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  bytes[0] = (bytes[0]! & 0xf0) | shardOfSubject(subject);
  return bytes.toString('base64url');
}
