import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createKeyStore } from '../../src/mint/jwt/keystore.ts';
import { createFileSigningRecord } from '../../src/mint/jwt/signing-record-file.ts';
import { createRedisSigningRecord } from '../../src/mint/jwt/signing-record-redis.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { runCli } from './run-cli.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leash-cli-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const keyFile = (kid: string): string => join(dir, 'jwt', `${kid}.pem`);
/** Moves a key's file time back, as if it had been created that long ago. */
const backdate = (kid: string, secondsAgo: number): void => {
  const t = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(keyFile(kid), t, t);
};

describe('leash keys', { timeout: 120_000 }, () => {
  it('generate writes a 0600 PKCS#8 key the broker loads, and prints its kid', async () => {
    const r = await runCli(['keys', 'generate', '--dir', dir]);
    expect(r.code).toBe(0);
    const kid = r.stdout.trim();
    expect(statSync(keyFile(kid)).mode & 0o777).toBe(0o600);
    expect(createKeyStore(dir).active()).toMatchObject({ kid, alg: 'ES256' });
    const ed = await runCli(['keys', 'generate', '--alg', 'EdDSA', '--json'], { env: { LEASH_KEYS_DIR: dir } });
    expect(JSON.parse(ed.stdout)).toMatchObject({ alg: 'EdDSA' });
  });

  it('list marks the active key as the broker decides: newest, or LEASH_SIGNING_KID', async () => {
    const a = (await runCli(['keys', 'generate', '--dir', dir])).stdout.trim();
    const b = (await runCli(['keys', 'generate', '--dir', dir])).stdout.trim();
    backdate(a, 60);
    const r = await runCli(['keys', 'list', '--dir', dir, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ kid: a, active: false }),
      expect.objectContaining({ kid: b, active: true }),
    ]);
    const pinned = await runCli(['keys', 'list', '--dir', dir], { env: { LEASH_SIGNING_KID: a } });
    expect(pinned.stdout).toMatch(new RegExp(`${a}\\s+ES256\\s+\\S+\\s+\\*`));
    const table = await runCli(['keys', 'list', '--dir', dir]);
    expect(table.stdout.split('\n')[0]).toMatch(/^KID\s+ALG\s+CREATED\s+ACTIVE/);
    expect(table.stdout).toMatch(new RegExp(`${b}.*\\*`));
    expect((await runCli(['keys', 'list', '--dir', join(dir, 'none')])).code).toBe(2);
  });

  it('rotate adds a newer key that becomes active; the old one stays published', async () => {
    const old = (await runCli(['keys', 'generate', '--dir', dir, '--alg', 'EdDSA'])).stdout.trim();
    backdate(old, 60);
    const r = await runCli(['keys', 'rotate', '--dir', dir]);
    expect(r.code).toBe(0);
    const kid = r.stdout.trim();
    expect(kid).not.toBe(old);
    expect(r.stderr).toContain('kill -HUP');
    const store = createKeyStore(dir);
    expect(store.active()).toMatchObject({ kid, alg: 'EdDSA' });
    expect(store.jwks().keys.map((k) => k.kid).sort()).toEqual([kid, old].sort());
  });

  it('prune removes keys last signed longer ago than --older-than, never the active one', async () => {
    const kids: string[] = [];
    for (let i = 0; i < 3; i++) kids.push((await runCli(['keys', 'generate', '--dir', dir])).stdout.trim());
    // a created 3d ago, replaced by b 2d ago; b replaced by c (active) 1d ago.
    backdate(kids[0]!, 3 * 86400);
    backdate(kids[1]!, 2 * 86400);
    backdate(kids[2]!, 86400);
    // Without the brokers' record of signatures, prune refuses rather than guess from file times.
    const blind = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1s']);
    expect(blind.code).toBe(2);
    expect(readdirSync(join(dir, 'jwt'))).toHaveLength(3);

    // What dev brokers record: a signed until 2d ago, b until 1d ago, each with tokens of up to 1h.
    const record = createFileSigningRecord(dir);
    await record.note(kids[0]!, { signedUntilMs: Date.now() - 2 * 86400_000, liveUntilMs: Date.now() - 2 * 86400_000 + 3600_000 });
    await record.note(kids[1]!, { signedUntilMs: Date.now() - 86400_000, liveUntilMs: Date.now() - 86400_000 + 3600_000 });
    const dry = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '36h', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(readdirSync(join(dir, 'jwt'))).toHaveLength(3);
    const tooShort = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '30m', '--policy', join(process.cwd(), 'policy.example.yaml')]);
    expect(tooShort.code).toBe(2);
    const r = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '36h', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.removed.map((x: { kid: string }) => x.kid)).toEqual([kids[0]]);
    expect(out.kept).toEqual([
      expect.objectContaining({ kid: kids[1], reason: 'signed_recently' }),
      expect.objectContaining({ kid: kids[2], reason: 'active' }),
    ]);
    expect(existsSync(keyFile(kids[0]!))).toBe(false);
    expect(existsSync(keyFile(kids[1]!))).toBe(true);
    const all = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1s']);
    expect(all.code).toBe(0);
    expect(readdirSync(join(dir, 'jwt'))).toEqual([`${kids[2]}.pem`]);
  });

  it('prune keeps a key whose tokens may be live, and one no broker recorded, however old their files', async () => {
    const kids: string[] = [];
    for (let i = 0; i < 3; i++) kids.push((await runCli(['keys', 'generate', '--dir', dir])).stdout.trim());
    backdate(kids[0]!, 3 * 86400);
    backdate(kids[1]!, 2 * 86400);
    backdate(kids[2]!, 86400);
    // a last signed 2h ago, but with a token lifetime (say a break-glass token's) that runs an hour more.
    await createFileSigningRecord(dir).note(kids[0]!, { signedUntilMs: Date.now() - 7200_000, liveUntilMs: Date.now() + 3600_000 });
    const r = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.removed).toEqual([]);
    expect(out.kept).toEqual([
      expect.objectContaining({ kid: kids[0], reason: 'tokens_live' }),
      expect.objectContaining({ kid: kids[1], reason: 'no_record' }),
      expect.objectContaining({ kid: kids[2], reason: 'active' }),
    ]);
    expect(readdirSync(join(dir, 'jwt'))).toHaveLength(3);
  });

  it('prune reads the brokers\' record from Redis; an unreachable Redis removes nothing', async () => {
    const old = (await runCli(['keys', 'generate', '--dir', dir])).stdout.trim();
    const current = (await runCli(['keys', 'generate', '--dir', dir])).stdout.trim();
    backdate(old, 2 * 86400);
    backdate(current, 86400);
    const redis = await startRedis();
    try {
      const client = new Redis(redis.url);
      await createRedisSigningRecord(client, 'kp:').note(old, { signedUntilMs: Date.now() - 3 * 3600_000, liveUntilMs: Date.now() - 2 * 3600_000 });
      client.disconnect();
      const down = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--redis-url', 'redis://127.0.0.1:1']);
      expect(down.code).toBe(3);
      const otherPrefix = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--json'], { env: { REDIS_URL: redis.url } });
      expect(JSON.parse(otherPrefix.stdout).kept).toContainEqual(expect.objectContaining({ kid: old, reason: 'no_record' }));
      const r = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--json'], { env: { REDIS_URL: redis.url, REDIS_PREFIX: 'kp:' } });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).removed.map((x: { kid: string }) => x.kid)).toEqual([old]);
      expect(readdirSync(join(dir, 'jwt'))).toEqual([`${current}.pem`]);
    } finally {
      await redis.destroy();
    }
  });
});
