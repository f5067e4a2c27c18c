// Generates a dev signing key and a dev root + intermediate CA in the layout of keys/README.md.
// Usage: npm run keys:dev -- [--dir keys/dev] [--alg ES256|EdDSA] [--ca-key-type ec-p256|ec-p384|ed25519] [--force]
import 'reflect-metadata';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../src/mint/jwt/generate-key.ts';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: 'keys/dev' },
    alg: { type: 'string', default: 'ES256' },
    'ca-key-type': { type: 'string', default: 'ec-p256' },
    force: { type: 'boolean', default: false },
  },
});
const dir = values.dir!;
const alg = values.alg === 'EdDSA' ? 'EdDSA' : 'ES256';
const jwtDir = join(dir, 'jwt');
if (values.force || !existsSync(jwtDir) || !readdirSync(jwtDir).some((n) => n.endsWith('.pem'))) {
  const kid = await generateSigningKey(dir, alg);
  console.log(`signing key ${join(jwtDir, kid + '.pem')} (${alg})`);
} else {
  console.log(`signing key present in ${jwtDir}; --force adds a new one`);
}
const caKeyType = values['ca-key-type'] as 'ec-p256' | 'ec-p384' | 'ed25519';
await generateDevCa(dir, { keyType: caKeyType, force: values.force });
console.log(`dev CA in ${join(dir, 'ca')} (${caKeyType})`);
