/**
 * Generates a development CA (root + issuing intermediate) under `<dir>/ca/`.
 *   tsx scripts/generate-dev-ca.ts [--dir keys/dev] [--key-type ec-p256|ec-p384|ed25519] [--force]
 */
import { parseArgs } from 'node:util';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../src/mint/x509/generate-ca.ts';

const KEY_TYPES: readonly CaGenerationKeyType[] = ['ec-p256', 'ec-p384', 'ed25519'];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: process.env.LEASH_KEYS_DIR ?? 'keys/dev' },
      'key-type': { type: 'string', default: 'ec-p256' },
      'trust-domain': { type: 'string' },
      force: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const keyType = values['key-type'] as CaGenerationKeyType;
  if (!KEY_TYPES.includes(keyType)) {
    throw new Error(`--key-type must be one of ${KEY_TYPES.join(', ')}, not ${values['key-type']}`);
  }
  const opts: Parameters<typeof generateDevCa>[1] = { keyType, force: values.force };
  if (values['trust-domain'] !== undefined) opts.trustDomain = values['trust-domain'];
  await generateDevCa(values.dir, opts);
  console.log(`dev CA ready in ${values.dir}/ca (root.pem, ca.pem, ca.key.pem; the root key is not kept)`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
