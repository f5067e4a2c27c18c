import { randomFillSync } from 'node:crypto';

/** Leases are spread over this many Redis Cluster hash slots (shard tags `{s0}`..`{s15}`). */
export const SHARD_COUNT = 16;

// 16 bytes in base64url: 21 full characters and a last one that carries 2 bits (A, Q, g or w).
const LEASE_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/**
 * The shard of a (rule, subject) pair: FNV-1a over the UTF-8 bytes of `rule \0 subject`. Every
 * lease of that pair lives in this shard, so the per-subject active index counted for
 * `max_active_leases` shares one hash slot with the leases it counts.
 */
export function shardOf(rule: string, subject: string): number {
  return fnv1a(`${rule}\0${subject}`) % SHARD_COUNT;
}

/** A shard for records keyed by one string (audit events without a lease). */
export function shardOfString(value: string): number {
  return fnv1a(value) % SHARD_COUNT;
}

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

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  // Fold the high bits in: FNV's lowest bits alone mix poorly for short inputs.
  return ((h ^ (h >>> 16)) >>> 0);
}
