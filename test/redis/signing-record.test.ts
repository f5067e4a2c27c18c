import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { createKeyStore } from '../../src/mint/jwt/keystore.ts';
import { SIGNING_HORIZON_MS, startSigningHeartbeat, type SigningHeartbeat } from '../../src/mint/jwt/signing-heartbeat.ts';
import type { SigningRecord } from '../../src/mint/jwt/signing-record.ts';
import { createFileSigningRecord } from '../../src/mint/jwt/signing-record-file.ts';
import { createRedisSigningRecord } from '../../src/mint/jwt/signing-record-redis.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

let redis: TestRedis;
let client: Redis;
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'leash-signing-record-'));
  dirs.push(d);
  return d;
};
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const records: [string, () => SigningRecord][] = [
  ['redis', () => createRedisSigningRecord(client, `sr${++n}:`)],
  ['file', () => createFileSigningRecord(tempDir())],
];

describe.each(records)('%s signing record', (_name, make) => {
  it('only ever raises a kid\'s record: a broker writing an older time never shortens it', async () => {
    const record = make();
    await record.note('k1', { signedUntilMs: 2_000, liveUntilMs: 5_000 });
    await record.note('k1', { signedUntilMs: 1_000, liveUntilMs: 9_000 });
    await record.note('k:2', { signedUntilMs: 3_000, liveUntilMs: 4_000 });
    const read = await record.read();
    expect(read.get('k1')).toEqual({ signedUntilMs: 2_000, liveUntilMs: 9_000 });
    expect(read.get('k:2')).toEqual({ signedUntilMs: 3_000, liveUntilMs: 4_000 });
    expect(read.has('k3')).toBe(false);
  });
});

it('a torn Redis record (one field of two) reads as live forever', async () => {
  const prefix = `torn${++n}:`;
  await client.hset(`${prefix}signing-keys`, 'k1:signed', '1000');
  expect((await createRedisSigningRecord(client, prefix).read()).get('k1')).toEqual({ signedUntilMs: 1000, liveUntilMs: Infinity });
});

describe('signing heartbeat', () => {
  it('vouches for the active key a horizon ahead, and for a newly active key at its reload', async () => {
    const dir = tempDir();
    const first = await generateSigningKey(dir);
    const record = createRedisSigningRecord(client, `hb${++n}:`);
    let heartbeat: SigningHeartbeat | undefined;
    const keys = createKeyStore(dir, { onReload: () => void heartbeat?.beat() });
    const now = 1_700_000_000_000;
    heartbeat = startSigningHeartbeat({ keys, record, longestTokenSeconds: () => 3600, clockSkewSeconds: 30, now: () => now, log: pino({ level: 'silent' }) });
    try {
      await heartbeat.beat();
      expect((await record.read()).get(first)).toEqual({ signedUntilMs: now + SIGNING_HORIZON_MS, liveUntilMs: now + SIGNING_HORIZON_MS + 3630_000 });

      const second = await generateSigningKey(dir);
      const later = new Date(Date.now() + 5_000);
      utimesSync(join(dir, 'jwt', `${second}.pem`), later, later);
      keys.reload();
      const deadline = Date.now() + 5_000;
      while (!(await record.read()).has(second)) {
        if (Date.now() > deadline) throw new Error('the reload did not record the new key');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      heartbeat.stop();
    }
  });

  it('a failed write is logged with the kid and never thrown', async () => {
    const dir = tempDir();
    const kid = await generateSigningKey(dir);
    const lines: string[] = [];
    const failing: SigningRecord = { note: () => Promise.reject(new Error('down')), read: async () => new Map() };
    const heartbeat = startSigningHeartbeat({
      keys: createKeyStore(dir),
      record: failing,
      longestTokenSeconds: () => 60,
      clockSkewSeconds: 30,
      now: Date.now,
      log: pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) }),
    });
    try {
      await expect(heartbeat.beat()).resolves.toBeUndefined();
      expect(JSON.parse(lines[0]!)).toMatchObject({ kid });
    } finally {
      heartbeat.stop();
    }
  });
});
