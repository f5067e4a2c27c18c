import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { chmod, mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CA_FILES, CaLoadError } from './ca-store.ts';

export type CaGenerationKeyType = 'ec-p256' | 'ec-p384' | 'ed25519';

export interface GenerateDevCaOptions {
  keyType?: CaGenerationKeyType;
  force?: boolean;
  /** Names the CAs, so certificates from two dev setups are told apart at a glance. */
  trustDomain?: string;
}

const crypto = webcrypto as unknown as Crypto;
const DAY_MS = 86_400_000;
// Tolerates clocks that run a little behind the generating machine's.
const BACKDATE_MS = 5 * 60_000;

const ALGORITHMS: Record<CaGenerationKeyType, { key: EcKeyGenParams | Algorithm; sign: Algorithm | EcdsaParams }> = {
  'ec-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  'ec-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams },
  ed25519: { key: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
};

/** The dev root's CRL, signed once at generation (the root key is not kept). */
export const ROOT_CRL_FILE = join('ca', 'root.crl.pem');

/**
 * Writes a development root and intermediate CA under `<keysDir>/ca/`. The root's private key is
 * discarded: the broker never needs it, and a root key lying next to the issuing key would make
 * the two-level chain pointless. Re-running with `force` makes a fresh pair.
 */
export async function generateDevCa(keysDir: string, opts: GenerateDevCaOptions = {}): Promise<void> {
  const keyType = opts.keyType ?? 'ec-p256';
  const alg = ALGORITHMS[keyType];
  if (!alg) throw new TypeError(`unsupported CA key type ${String(keyType)}`);
  const trustDomain = opts.trustDomain ?? 'leash.dev';
  if (!/^[A-Za-z0-9.-]{1,64}$/.test(trustDomain)) throw new TypeError(`trust domain ${trustDomain} is not a host name`);

  const paths = [CA_FILES.root, CA_FILES.cert, CA_FILES.key].map((f) => join(keysDir, f));
  const present = await Promise.all(paths.map(exists));
  if (!opts.force) {
    if (present.every(Boolean)) return;
    // Half a CA on disk usually means a failed copy; replacing it silently could strand live certificates.
    if (present.some(Boolean)) {
      throw new CaLoadError(join(keysDir, 'ca'), `${join(keysDir, 'ca')} holds only part of a CA; pass force to replace it`);
    }
  }

  x509.cryptoProvider.set(crypto);
  const now = Date.now();
  const rootKeys = (await crypto.subtle.generateKey(alg.key, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caKeys = (await crypto.subtle.generateKey(alg.key, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caUsages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=Leash dev root CA (${trustDomain}), O=Leash dev`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: alg.sign,
    keys: rootKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(caUsages, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=Leash dev issuing CA (${trustDomain}), O=Leash dev`,
    issuer: root.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 1825 * DAY_MS),
    signingAlgorithm: alg.sign,
    publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caUsages, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root, false),
    ],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', caKeys.privateKey));
  // The root's key is about to be discarded, so the root signs its (empty) CRL now, valid as long
  // as the root. Relying parties that check the whole chain (Node's tls `crl` option sets
  // CRL_CHECK_ALL) need a CRL from every CA in it, not only from the issuing one.
  const rootCrl = await x509.X509CrlGenerator.create({
    issuer: root.subject,
    thisUpdate: new Date(now - BACKDATE_MS),
    nextUpdate: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: alg.sign,
    signingKey: rootKeys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(root, false)],
  });

  await mkdir(join(keysDir, 'ca'), { recursive: true, mode: 0o700 });
  const [rootPath, certPath, keyPath] = paths as [string, string, string];
  // The key goes last so a reader never sees a key without the certificate that names it.
  await writeAtomically(rootPath, root.toString('pem') + '\n', 0o644);
  await writeAtomically(certPath, intermediate.toString('pem') + '\n', 0o644);
  await writeAtomically(join(keysDir, ROOT_CRL_FILE), x509.PemConverter.encode(rootCrl.rawData, 'X509 CRL') + '\n', 0o644);
  await writeAtomically(keyPath, x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n', 0o600);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode, flag: 'w' });
  // writeFile's mode only applies to new files, and a stale temp file may exist.
  await chmod(tmp, mode);
  await rename(tmp, path);
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}
