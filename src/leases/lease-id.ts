import { randomFillSync } from 'node:crypto';
import { shardOf } from '../redis/keys.ts';

// 16 bytes in base64url: 21 full characters and a last one that carries 2 bits (A, Q, g or w).
const LEASE_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

// One call into the CSPRNG per 256 ids instead of one per id (as node:crypto's randomUUID does).
const ID_POOL = Buffer.alloc(16 * 256);
let poolOffset = ID_POOL.length;

/**
 * A new lease id: base64url of 16 random bytes whose low 4 bits of byte 0 carry the shard, so the
 * lease can be found from its id alone. 124 bits of entropy remain.
 */
export function newLeaseId(rule: string, subject: string): string {
  if (poolOffset === ID_POOL.length) {
    randomFillSync(ID_POOL);
    poolOffset = 0;
  }
  const bytes = ID_POOL.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  bytes[0] = (bytes[0]! & 0xf0) | shardOf(rule, subject);
  return bytes.toString('base64url');
}

/** Whether `id` has the shape of a lease id (anything else is unknown, never an error). */
export const isLeaseId = (id: string): boolean => LEASE_ID.test(id);

/** The shard encoded in a lease id; the caller checks isLeaseId first. */
export function shardOfLeaseId(id: string): number {
  // byte 0 = 6 bits of char 0 + high 2 bits of char 1; its low 4 bits are the last 2 of char 0 and those 2.
  const hi = B64URL.indexOf(id[0] ?? 'A');
  const lo = B64URL.indexOf(id[1] ?? 'A');
  return ((hi & 0x03) << 2) | (lo >> 4);
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
