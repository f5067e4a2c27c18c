import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kidFor, type SigningAlg } from './keystore.ts';

/** Writes a new PKCS#8 signing key to `<keysDir>/jwt/<kid>.pem` (mode 0600) and returns its kid. */
export async function generateSigningKey(keysDir: string, alg: SigningAlg = 'ES256'): Promise<string> {
  const { privateKey, publicKey } =
    alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const kid = await kidFor(publicKey);
  const dir = join(keysDir, 'jwt');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, `${kid}.pem`), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  return kid;
}
