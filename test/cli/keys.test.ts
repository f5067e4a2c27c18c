import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKeyStore } from '../../src/mint/jwt/keystore.ts';
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

  it('prune removes keys retired longer ago than --older-than, never the active one', async () => {
    const kids: string[] = [];
    for (let i = 0; i < 3; i++) kids.push((await runCli(['keys', 'generate', '--dir', dir])).stdout.trim());
    // a created 3d ago, replaced by b 2d ago; b replaced by c (active) 1d ago.
    backdate(kids[0]!, 3 * 86400);
    backdate(kids[1]!, 2 * 86400);
    backdate(kids[2]!, 86400);
    const dry = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '36h', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(readdirSync(join(dir, 'jwt'))).toHaveLength(3);
    const tooShort = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '30m', '--policy', join(process.cwd(), 'policy.example.yaml')]);
    expect(tooShort.code).toBe(2);
    const r = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '36h', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).removed.map((x: { kid: string }) => x.kid)).toEqual([kids[0]]);
    expect(existsSync(keyFile(kids[0]!))).toBe(false);
    expect(existsSync(keyFile(kids[1]!))).toBe(true);
    const all = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1s']);
    expect(all.code).toBe(0);
    expect(readdirSync(join(dir, 'jwt'))).toEqual([`${kids[2]}.pem`]);
  });
});
