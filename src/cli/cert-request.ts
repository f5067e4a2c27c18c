/**
 * The key pair and PKCS#10 request behind `leash exchange --cert`. The private key is generated
 * here and only ever written to the local key file: the broker sees the CSR (public key) alone.
 * Loaded lazily by exchange.ts, so other commands do not pay for @peculiar/x509.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { usageError } from './client.ts';

export const CERT_KEY_TYPES = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const;
export type CertKeyType = (typeof CERT_KEY_TYPES)[number];

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const ALGORITHMS: Record<CertKeyType, { generate: Algorithm | EcKeyGenParams | RsaHashedKeyGenParams; sign: Algorithm | EcdsaParams }> = {
  'ec-p256': { generate: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  'ec-p384': { generate: { name: 'ECDSA', namedCurve: 'P-384' } as EcKeyGenParams, sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams },
  ed25519: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  'rsa-2048': {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as RsaHashedKeyGenParams,
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

export function checkKeyType(value: string): CertKeyType {
  if (!(CERT_KEY_TYPES as readonly string[]).includes(value)) throw usageError(`--key-type must be one of ${CERT_KEY_TYPES.join(', ')}`);
  return value as CertKeyType;
}

export interface KeyAndCsr {
  privateKeyPem: string;
  csrPem: string;
}

/**
 * A fresh key pair and a CSR signed by it. The CSR carries no subject name and no SANs: the
 * certificate's identity comes from the broker's policy, and a CSR that asked for one would only
 * be refused or ignored.
 */
export async function createKeyAndCsr(keyType: CertKeyType): Promise<KeyAndCsr> {
  const { generate, sign } = ALGORITHMS[keyType];
  const keys = (await crypto.subtle.generateKey(generate, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: sign, extensions: [] });
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { privateKeyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`, csrPem: csr.toString('pem') };
}

export interface CertFiles {
  key: string;
  cert: string;
  chain: string;
}

/**
 * Writes `<prefix>.key.pem` (0600), `<prefix>.pem` (leaf) and `<prefix>.chain.pem` (leaf, then
 * the chain). All three go to temporary names first and are renamed only when all are written, so
 * a service reading them never sees a half-written file or a key without its certificate, and a
 * renewal replaces them in place.
 */
export function writeCertFiles(prefix: string, privateKeyPem: string, leafPem: string, chainPems: string[]): CertFiles {
  const files: CertFiles = { key: `${prefix}.key.pem`, cert: `${prefix}.pem`, chain: `${prefix}.chain.pem` };
  const pem = (text: string): string => (text.endsWith('\n') ? text : `${text}\n`);
  const entries: [path: string, text: string, mode: number][] = [
    [files.key, pem(privateKeyPem), 0o600],
    [files.cert, pem(leafPem), 0o644],
    [files.chain, [leafPem, ...chainPems].map(pem).join(''), 0o644],
  ];
  const suffix = `.${randomBytes(6).toString('hex')}.tmp`;
  let current = '';
  try {
    for (const [path, text, mode] of entries) {
      current = path;
      writeFileSync(path + suffix, text, { mode, flag: 'wx' });
    }
    for (const [path] of entries) {
      current = path;
      renameSync(path + suffix, path);
    }
  } catch (err) {
    for (const [path] of entries) rmSync(path + suffix, { force: true });
    throw usageError(`cannot write ${current} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return files;
}
