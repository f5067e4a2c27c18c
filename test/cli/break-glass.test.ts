import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { createRedisSigningRecord } from '../../src/mint/jwt/signing-record-redis.ts';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import type { TestBroker } from '../helpers/broker.ts';
import { freePort, type TestRedis } from '../helpers/redis-server.ts';
import { jwtPayload, runCli, waitForReady } from './run-cli.ts';

let e2e: E2E;
let redis: TestRedis;
let broker: TestBroker;
let env: Record<string, string>;

beforeAll(async () => {
  e2e = await startE2E();
  ({ redis, broker } = e2e);
  await waitForReady(broker.url);
  // What an operator on a broker host has: the broker's own configuration.
  env = { LEASH_KEYS_DIR: broker.keysDir, REDIS_URL: redis.url, REDIS_PREFIX: broker.config.redisPrefix, LEASH_ISSUER: broker.config.issuer };
});
afterAll(async () => {
  await e2e?.close();
});

describe('leash break-glass', { timeout: 120_000 }, () => {
  it('records a lease first, audits it, warns loudly, and prints a leash:admin token the broker accepts', async () => {
    const r = await runCli(['break-glass', '--subject', 'alice', '--reason', 'IdP outage INC-42', '--ttl', '10m', '--yes'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('BREAK-GLASS');
    const token = r.stdout.trim();
    const claims = jwtPayload(token);
    expect(claims).toMatchObject({ iss: broker.config.issuer, aud: broker.config.issuer, sub: 'break-glass:alice', scope: 'leash:admin', client_id: 'break-glass' });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);

    const lease = await broker.deps.store.get(claims.jti as string);
    expect(lease).toMatchObject({ status: 'active', kind: 'jwt', rule: 'break-glass', issuer: 'break-glass', subject: 'break-glass:alice', scopes: ['leash:admin'], expires_at: claims.exp });
    const audit = await broker.deps.audit.list({ type: 'break_glass.issued', lease_id: lease!.id, limit: 10 });
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]).toMatchObject({ actor: 'alice', reason: 'IdP outage INC-42', lease_id: lease!.id });
    expect(JSON.stringify(audit.events[0])).not.toContain(token.split('.')[2]);

    // The broker takes it like any operator token, and it can be revoked like any lease.
    const ls = await runCli(['leases', 'ls', '--rule', 'break-glass', '--json'], { env: { LEASH_URL: broker.url, LEASH_TOKEN: token } });
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout).leases.map((l: { id: string }) => l.id)).toContain(lease!.id);
    const revoke = await runCli(['leases', 'revoke', lease!.id, '--reason', 'done'], { env: { LEASH_URL: broker.url, LEASH_TOKEN: token } });
    expect(revoke.code, revoke.stderr).toBe(0);
    const after = await runCli(['leases', 'ls'], { env: { LEASH_URL: broker.url, LEASH_TOKEN: token } });
    expect(after.code).toBe(1);
  });

  it('records its key\'s use first, so keys prune keeps a key it signed with while the token may live', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-bg-keys-'));
    try {
      const old = await generateSigningKey(dir);
      const current = await generateSigningKey(dir);
      const ago = (s: number): Date => new Date(Date.now() - s * 1000);
      utimesSync(join(dir, 'jwt', `${old}.pem`), ago(3 * 86400), ago(3 * 86400));
      utimesSync(join(dir, 'jwt', `${current}.pem`), ago(2 * 86400), ago(2 * 86400));
      // The brokers stopped signing with `old` two days ago.
      const client = new Redis(redis.url);
      await createRedisSigningRecord(client, broker.config.redisPrefix).note(old, { signedUntilMs: Date.now() - 2 * 86400_000, liveUntilMs: Date.now() - 86400_000 });
      client.disconnect();
      const keysEnv = { ...env, LEASH_KEYS_DIR: dir };
      const r = await runCli(['break-glass', '--subject', 'bob', '--reason', 'old pin', '--ttl', '10m', '--yes', '--signing-kid', old], { env: keysEnv });
      expect(r.code, r.stderr).toBe(0);
      const prune = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--json'], { env: keysEnv });
      expect(prune.code, prune.stderr).toBe(0);
      expect(JSON.parse(prune.stdout).kept).toContainEqual(expect.objectContaining({ kid: old, reason: 'tokens_live' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses without --reason, without --yes (no terminal), or with a ttl over 1h: exit 2, nothing recorded', async () => {
    const before = (await broker.deps.store.list({ rule: 'break-glass' }, { limit: 100 })).leases.length;
    const noReason = await runCli(['break-glass', '--yes'], { env });
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain('--reason');
    expect((await runCli(['break-glass', '--reason', 'x'], { env })).code).toBe(2);
    expect((await runCli(['break-glass', '--reason', 'x', '--ttl', '2h', '--yes'], { env })).code).toBe(2);
    expect((await runCli(['break-glass', '--reason', 'x', '--yes'], { env: { ...env, REDIS_URL: undefined } })).code).toBe(2);
    expect((await broker.deps.store.list({ rule: 'break-glass' }, { limit: 100 })).leases).toHaveLength(before);
  });

  it('exit 2 naming REDIS_URL and its forms for a REDIS_URL of none of them, without echoing its password', async () => {
    const r = await runCli(['break-glass', '--reason', 'x', '--yes'], { env: { ...env, REDIS_URL: 'redis+sentinal://:hunter2@s1:26379/m' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('REDIS_URL');
    expect(r.stderr).toContain('redis+sentinel://');
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stdout).toBe('');
  });

  it('exit 1 saying Redis refused the credentials, without echoing them, when the password is wrong', async () => {
    const admin = new Redis(redis.url);
    try {
      await admin.call('ACL', 'SETUSER', 'cli-wrongpass', 'on', '>right-secret', '~*', '+@all');
      const url = redis.url.replace('redis://', 'redis://cli-wrongpass:wrong-secret@');
      const before = (await broker.deps.store.list({ rule: 'break-glass' }, { limit: 100 })).leases.length;
      const r = await runCli(['break-glass', '--reason', 'x', '--yes', '--redis-url', url], { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('Redis refused the credentials of --redis-url (or REDIS_URL): WRONGPASS');
      expect(r.stderr).not.toContain('wrong-secret');
      expect(r.stdout).toBe('');
      expect((await broker.deps.store.list({ rule: 'break-glass' }, { limit: 100 })).leases).toHaveLength(before);
    } finally {
      await admin.call('ACL', 'DELUSER', 'cli-wrongpass');
      admin.disconnect();
    }
  });

  it('exit 3 and no token when Redis is unreachable', async () => {
    const r = await runCli(['break-glass', '--reason', 'x', '--yes', '--redis-url', `redis://127.0.0.1:${await freePort()}`], { env });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
  });
});
