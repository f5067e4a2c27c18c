import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/mint/jwt/generate-key.ts';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';
import { buildIfStale } from './helpers/build.ts';

// The system tools the suite needs beyond Node; everything else comes from npm.
const SYSTEM_TOOLS: { cmd: string; args: string[]; install: string }[] = [
  { cmd: 'redis-server', args: ['--version'], install: 'apt-get install redis-server (Debian/Ubuntu) or brew install redis' },
  { cmd: 'redis-cli', args: ['--version'], install: 'apt-get install redis-tools (comes with redis-server)' },
  { cmd: 'openssl', args: ['version'], install: 'apt-get install openssl' },
];

function requireSystemTools(): void {
  const missing = SYSTEM_TOOLS.filter((t) => spawnSync(t.cmd, t.args, { stdio: 'ignore' }).error);
  if (missing.length > 0) {
    const lines = missing.map((t) => `  ${t.cmd}: ${t.install}`).join('\n');
    throw new Error(`the tests need these system tools on PATH:\n${lines}`);
  }
}

/**
 * Checks the machine, builds dist/ when src/ changed (the CLI tests run the compiled `leash`, as
 * users do), and makes one signing key and dev CA for the whole run (testKeysDir), removed after.
 */
export default async function setup(): Promise<() => void> {
  requireSystemTools();
  buildIfStale();
  const dir = mkdtempSync(join(tmpdir(), 'leash-keys-'));
  await generateSigningKey(dir);
  await generateDevCa(dir);
  process.env.LEASH_TEST_KEYS_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
