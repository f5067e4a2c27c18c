import { describe, expect, it } from 'vitest';
import { decodeLease, encodeLease } from '../../src/leases/lease-codec.ts';
import { SHARD_COUNT, legacyShardOf, shardOfSubject, shardsOfPair } from '../../src/redis/keys.ts';
import { idOfListMember, listMember, msOfListMember } from '../../src/leases/list-member.ts';
import { isLeaseId, newLeaseId, shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { makeLease } from '../contract/lease-fixtures.ts';

describe('lease ids', () => {
  it('carry the shard of their subject in 22 base64url characters', () => {
    for (let i = 0; i < 2000; i++) {
      const subject = `repo:o/r${i}:ref:refs/heads/main`;
      const id = newLeaseId(subject);
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(isLeaseId(id)).toBe(true);
      expect(shardOfLeaseId(id)).toBe(shardOfSubject(subject));
    }
  });

  it('a pair is looked up in its subject\'s shard, then in the shard its leases had before', () => {
    let apart = 0;
    for (let i = 0; i < 200; i++) {
      const subject = `repo:o/r${i}:ref:refs/heads/main`;
      const shards = shardsOfPair('deploy', subject);
      expect(shards[0]).toBe(shardOfSubject(subject));
      expect(shards).toContain(legacyShardOf('deploy', subject));
      expect(new Set(shards).size).toBe(shards.length);
      if (shards.length === 2) apart++;
    }
    // Most pairs had another shard before: the lookups by pair must visit both.
    expect(apart).toBeGreaterThan(150);
  });

  it('are unique and spread subjects evenly over the shards', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newLeaseId('s')));
    expect(ids.size).toBe(10_000);
    const counts = new Array<number>(SHARD_COUNT).fill(0);
    for (let i = 0; i < 16_000; i++) counts[shardOfSubject(`repo:org-${i % 97}/app-${i}`)]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(200);
  });

  it('reject anything that is not an id', () => {
    for (const bad of ['', 'abc', 'x'.repeat(22), `${newLeaseId('s')}A`, '../../etc/passwd'.padEnd(22, 'A')]) {
      expect(isLeaseId(bad)).toBe(false);
    }
  });
});

describe('listing positions', () => {
  it('sort as strings like (issued ms, id)', () => {
    const a = listMember(1_700_000_000_000, 'A'.repeat(22));
    const b = listMember(1_700_000_000_001, '0'.repeat(22));
    expect(a < b).toBe(true);
    expect(msOfListMember(b)).toBe(1_700_000_000_001);
    expect(idOfListMember(b)).toBe('0'.repeat(22));
  });
});

describe('lease codec', () => {
  it('round-trips every field in a compact array', () => {
    const lease = makeLease({ kind: 'x509', serial: 'ff01', task_id: 't', proof_sub: 'someone-else', revoked_at: 5, reason: 'r', revoked_by: 'b' });
    const json = encodeLease(lease, lease.issued_at * 1000 + 123);
    expect(json.startsWith('[')).toBe(true);
    expect(decodeLease(lease.id, json)).toEqual({ lease, issuedMs: lease.issued_at * 1000 + 123, stored: JSON.parse(json).length });
  });

  it('drops trailing nulls and a proof subject equal to the subject', () => {
    const lease = makeLease();
    const json = encodeLease(lease, lease.issued_at * 1000);
    expect(json.endsWith('"203.0.113.7"]')).toBe(true);
    expect(json.split(lease.subject)).toHaveLength(2);
    expect(decodeLease(lease.id, json)?.lease).toEqual(lease);
  });

  it("reads Lua's {} for an empty array", () => {
    const lease = makeLease({ scopes: [] });
    const json = encodeLease(lease, lease.issued_at * 1000).replace('[]', '{}');
    expect(decodeLease(lease.id, json)?.lease.scopes).toEqual([]);
  });

  it('writes a lone surrogate as U+FFFD, the character Lua and the index digests read there', () => {
    const lease = makeLease({ subject: 'poison:x\ud800', proof_jti: 'a\\ud800\udfff', reason: 'pair \ud83d\ude00 ok' });
    const json = encodeLease(lease, lease.issued_at * 1000);
    for (const v of JSON.parse(json) as unknown[]) if (typeof v === 'string') expect(v.isWellFormed()).toBe(true);
    expect(decodeLease(lease.id, json)?.lease).toEqual({
      ...lease, subject: 'poison:x\ufffd', proof_sub: 'poison:x\ufffd', proof_jti: 'a\\ud800\ufffd',
    });
  });

  it('reads a record that is not JSON, or not a lease, as unreadable (null)', () => {
    const good = JSON.parse(encodeLease(makeLease(), 1_700_000_000_000)) as unknown[];
    const variants: unknown[][] = [
      [], ['jwt'], good.map((v, i) => (i === 1 ? 'paused' : v)), good.map((v, i) => (i === 4 ? 7 : v)),
      good.map((v, i) => (i === 5 ? [1] : v)), good.map((v, i) => (i === 5 ? { a: 'b' } : v)), good.map((v, i) => (i === 10 ? '9' : v)),
    ];
    for (const text of ['', 'not json {', '"x"', '{}', 'null', '[1e999]', ...variants.map((v) => JSON.stringify(v))]) {
      expect(decodeLease(makeLease().id, text)).toBeNull();
    }
    expect(decodeLease(makeLease().id, JSON.stringify(good))).not.toBeNull();
  });
});
