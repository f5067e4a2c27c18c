import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/mint/jwt/generate-key.ts';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';

/** One signing key and dev CA for the whole run (test/helpers/broker.ts testKeysDir), removed after. */
export default async function setup(): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), 'leash-keys-'));
  await generateSigningKey(dir);
  await generateDevCa(dir);
  process.env.LEASH_TEST_KEYS_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
