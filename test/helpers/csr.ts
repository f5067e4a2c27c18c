/**
 * Builds PKCS#10 requests for tests with @peculiar/x509 over WebCrypto, an implementation
 * independent of Leash's own DER code, so the parser is tested against someone else's output.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';

export type TestCsrKeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-2048' | 'rsa-1024';

export interface MakeCsrOptions {
  keyType: TestCsrKeyType;
  uriSans?: readonly string[];
  dnsSans?: readonly string[];
  ipSans?: readonly string[];
  emailSans?: readonly string[];
  ca?: boolean;
  nameConstraints?: boolean;
  cn?: string;
  /** Raw extensions (OID, DER value) for cases the named options do not cover. */
  extraExtensions?: readonly { readonly oid: string; readonly value: Buffer }[];
}

export interface TestCsr {
  csrPem: string;
  privateKeyPem: string;
}

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const ALGS: Record<TestCsrKeyType, { gen: Algorithm | EcKeyGenParams | RsaHashedKeyGenParams; sign: Algorithm | EcdsaParams }> = {
  'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  'ec-p384': { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams },
  ed25519: { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  'rsa-2048': { gen: rsa(2048), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  'rsa-1024': { gen: rsa(1024), sign: { name: 'RSASSA-PKCS1-v1_5' } },
};

function rsa(modulusLength: number): RsaHashedKeyGenParams {
  return { name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
}

export async function generateKeys(keyType: TestCsrKeyType): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ALGS[keyType].gen, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function privateKeyPem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`;
}

export async function makeCsr(opts: MakeCsrOptions): Promise<TestCsr> {
  const keys = await generateKeys(opts.keyType);
  const csrPem = await buildCsr(opts, keys, ALGS[opts.keyType].sign);
  return { csrPem, privateKeyPem: await privateKeyPem(keys) };
}

async function buildCsr(opts: MakeCsrOptions, keys: CryptoKeyPair, signingAlgorithm: Algorithm | EcdsaParams): Promise<string> {
  const extensions: x509.Extension[] = [];
  const names: x509.JsonGeneralName[] = [
    ...(opts.uriSans ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsSans ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipSans ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.emailSans ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (opts.ca !== undefined) extensions.push(new x509.BasicConstraintsExtension(opts.ca, undefined, true));
  // NameConstraints { permittedSubtrees [0] { GeneralSubtree { dNSName [2] "example.com" } } }
  if (opts.nameConstraints) extensions.push(new x509.Extension('2.5.29.30', true, new Uint8Array(hex("3011a00f300d820b6578616d706c652e636f6d"))));
  for (const e of opts.extraExtensions ?? []) extensions.push(new x509.Extension(e.oid, false, new Uint8Array(e.value)));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(opts.cn === undefined ? {} : { name: `CN=${opts.cn}` }),
    keys,
    signingAlgorithm,
    extensions,
  });
  return csr.toString('pem');
}

const hex = (h: string): Buffer => Buffer.from(h, 'hex');

/** Flips one bit in the last byte of the signature: still well-formed DER, no longer valid. */
export function tamperCsrSignature(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  der[der.length - 1] = (der[der.length - 1] as number) ^ 0x01;
  return `${x509.PemConverter.encode(der, 'CERTIFICATE REQUEST')}\n`;
}

/** A request carrying one P-256 key but signed by another: proves nothing about the key it names. */
export async function mismatchedKeyCsr(): Promise<string> {
  const named = await generateKeys('ec-p256');
  const signer = await generateKeys('ec-p256');
  return buildCsr({ keyType: 'ec-p256', uriSans: [] }, { publicKey: named.publicKey, privateKey: signer.privateKey }, ALGS['ec-p256'].sign);
}

export const pemToDer = (pem: string): Buffer =>
  Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

export interface OpensslResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the openssl CLI, the independent judge of what Leash encodes. */
export function openssl(args: string[], input?: string | Buffer): OpensslResult {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
