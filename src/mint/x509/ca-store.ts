import 'reflect-metadata';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { children, DerError, readOid, readRoot, value, whole } from './der-reader.ts';
import type { Tlv } from './der-reader.ts';
import { createCrlBuilder } from './crl.ts';
import type { CrlInput } from './crl.ts';
import { createIssuer, keyIdentifierOf } from './issuer.ts';
import type { CaKeyType, IssuedCertificate, IssueInput, SigningContext } from './issuer.ts';
import { OID } from './oids.ts';

export type { CaKeyType, CrlInput, IssuedCertificate, IssueInput };

export interface CertificateAuthority {
  /** Issuing CA first, then any further intermediates; never the root. */
  chainPem: string[];
  rootPem: string;
  keyType: CaKeyType;
  /** The earliest notAfter of the chain and its root (epoch seconds): no certificate may outlive it. */
  notAfter: number;
  /** Set when the issuing CA carries name constraints, which Leash does not check SANs against. */
  nameConstrained: boolean;
  /** The CA's key identifier in hex: its CRL is also at `<crlUrl>/<keyIdHex>`, the URL its certificates name. */
  keyIdHex: string;
  issue(input: IssueInput): IssuedCertificate;
  /** A DER CRL signed by the issuing CA. */
  buildCrl(input: CrlInput): Buffer;
}

export const CA_FILES = {
  key: join('ca', 'ca.key.pem'),
  cert: join('ca', 'ca.pem'),
  root: join('ca', 'root.pem'),
  /** One folder a CA taken out of service, each with its ca.pem and ca.key.pem: it signs CRLs only. */
  retired: join('ca', 'retired'),
} as const;

/** A CA no longer issuing, kept so that its certificates still have a CRL until they expire. */
export interface RetiredAuthority {
  keyIdHex: string;
  /** Its certificate's notAfter (epoch seconds): none of its certificates outlives it. */
  notAfter: number;
  buildCrl(input: CrlInput): Buffer;
}

/** The CA files under `<keysDir>/ca/` cannot be used; the message names the file to look at. */
export class CaLoadError extends Error {
  override readonly name = 'CaLoadError';
  readonly code = 'ERR_CA';
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CERT_PEM_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Loads the issuing CA from `<keysDir>/ca/` and checks that it can actually issue: the key
 * matches the certificate, the chain verifies up to the root, and nothing has expired. Every
 * failure names the file to look at, because this runs at start-up. Its certificates name
 * `<crlUrl>/<key id>` as their CRL distribution point: a URL that stays this CA's own after it is
 * retired, which `<crlUrl>` itself (the current CA's) does not.
 */
export async function loadCertificateAuthority(keysDir: string, opts: { crlUrl: string }): Promise<CertificateAuthority> {
  const keyPath = join(keysDir, CA_FILES.key);
  const certPath = join(keysDir, CA_FILES.cert);
  const rootPath = join(keysDir, CA_FILES.root);
  const [keyPem, certText, rootText] = await Promise.all([readText(keyPath), readText(certPath), readText(rootPath)]);

  const key = importPrivateKey(keyPem, keyPath);
  const roots = parseCertificates(rootText, rootPath);
  const root = roots[0] as X509Certificate;
  if (roots.length !== 1) throw new CaLoadError(rootPath, `${rootPath} must hold exactly one certificate, the root`);
  if (!root.verify(root.publicKey)) throw new CaLoadError(rootPath, `${rootPath} is not a self-signed root certificate`);
  // A bundle that repeats the root is common; the chain handed out must not include it.
  const chain = parseCertificates(certText, certPath).filter((c) => !c.raw.equals(root.raw));
  if (chain.length === 0) throw new CaLoadError(certPath, `${certPath} holds no intermediate certificate`);
  const issuing = chain[0] as X509Certificate;

  const notCa = `${certPath}: the first certificate is not a CA certificate`;
  const parsed = checkCaCertificate(issuing, certPath, { notCa, who: "the issuing CA's", needs: ['keyCertSign', 'cRLSign'] });
  if (!issuing.ca) throw new CaLoadError(certPath, notCa);
  if (!issuing.checkPrivateKey(key)) throw new CaLoadError(keyPath, `${keyPath} does not match the certificate in ${certPath}`);
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i] as X509Certificate;
    const parent = chain[i + 1] ?? root;
    if (!cert.checkIssued(parent) || !cert.verify(parent.publicKey)) {
      throw new CaLoadError(certPath, `${certPath}: certificate ${i + 1} is not issued by ${i + 1 < chain.length ? 'the next one' : rootPath}`);
    }
  }
  const now = Date.now();
  for (const [cert, path] of [...chain.map((c) => [c, certPath] as const), [root, rootPath] as const]) {
    if (Date.parse(cert.validTo) < now) throw new CaLoadError(path, `${path}: certificate ${cert.subject} expired at ${cert.validTo}`);
    if (Date.parse(cert.validFrom) > now + 5 * 60_000) {
      throw new CaLoadError(path, `${path}: certificate ${cert.subject} is not valid before ${cert.validFrom}`);
    }
  }

  const keyType = caKeyType(key, keyPath);
  // No certificate may outlive any certificate of its chain, the root included.
  const notAfter = Math.min(...[...chain, root].map((c) => Math.floor(Date.parse(c.validTo) / 1000)));
  const ctx: SigningContext = { key, keyType, ...issuerFields(issuing.raw), caNotAfter: notAfter };
  const keyIdHex = ctx.keyId.toString('hex');
  return {
    chainPem: chain.map((c) => ensureNewline(c.toString())),
    rootPem: ensureNewline(root.toString()),
    keyType,
    notAfter,
    nameConstrained: parsed.getExtension(OID.nameConstraints) !== null,
    keyIdHex,
    issue: createIssuer(ctx, `${opts.crlUrl}/${keyIdHex}`),
    buildCrl: createCrlBuilder(ctx),
  };
}

/**
 * The CAs under `<keysDir>/ca/retired/<name>/` (folders, or links to them), each a ca.pem and its
 * ca.key.pem, that have not expired. An expired one is skipped before its key is read: its
 * certificates have all expired, and its key may be gone. A folder that cannot be used (no CA, no
 * cRLSign, a key that does not match) stops the start naming the file, as the issuing CA's do.
 */
export async function loadRetiredAuthorities(keysDir: string, nowMs = Date.now()): Promise<{ loaded: RetiredAuthority[]; expired: string[] }> {
  const dir = join(keysDir, CA_FILES.retired);
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: [], expired: [] };
    throw new CaLoadError(dir, `cannot read ${dir} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e });
  }
  const loaded: RetiredAuthority[] = [];
  const expired: string[] = [];
  for (const name of names) {
    const entry = join(dir, name);
    const isDir = await stat(entry).then((st) => st.isDirectory(), (e: NodeJS.ErrnoException) => {
      throw new CaLoadError(entry, `cannot read ${entry} (${e.code ?? 'error'})`, { cause: e });
    });
    if (!isDir) continue;
    const keyPath = join(dir, name, 'ca.key.pem');
    const certPath = join(dir, name, 'ca.pem');
    const cert = parseCertificates(await readText(certPath), certPath)[0] as X509Certificate;
    const notAfter = Math.floor(Date.parse(cert.validTo) / 1000);
    if (notAfter * 1000 <= nowMs) {
      expired.push(name);
      continue;
    }
    checkCaCertificate(cert, certPath, { notCa: `${certPath}: not a CA certificate`, who: 'its', needs: ['cRLSign'] });
    const key = importPrivateKey(await readText(keyPath), keyPath);
    if (!cert.checkPrivateKey(key)) throw new CaLoadError(keyPath, `${keyPath} does not match the certificate in ${certPath}`);
    const ctx: SigningContext = { key, keyType: caKeyType(key, keyPath), ...issuerFields(cert.raw), caNotAfter: notAfter };
    loaded.push({ keyIdHex: ctx.keyId.toString('hex'), notAfter, buildCrl: createCrlBuilder(ctx) });
  }
  return { loaded, expired };
}

const USAGE_NEEDED = {
  keyCertSign: { bit: x509.KeyUsageFlags.keyCertSign, why: 'so it cannot sign certificates' },
  cRLSign: { bit: x509.KeyUsageFlags.cRLSign, why: 'so relying parties would refuse the CRL it signs' },
} as const;

/**
 * basicConstraints CA:TRUE, and a keyUsage (when present) with each bit the CA needs: one lacking
 * either signs what relying parties then refuse, every certificate or the CRL (and with a
 * hard-failing CRL check, every certificate again). Returns the parsed certificate.
 */
function checkCaCertificate(
  cert: X509Certificate,
  certPath: string,
  opts: { notCa: string; who: string; needs: readonly (keyof typeof USAGE_NEEDED)[] },
): x509.X509Certificate {
  const parsed = new x509.X509Certificate(new Uint8Array(cert.raw));
  if (!parsed.getExtension(x509.BasicConstraintsExtension)?.ca) throw new CaLoadError(certPath, opts.notCa);
  const usages = parsed.getExtension(x509.KeyUsagesExtension)?.usages;
  for (const need of opts.needs) {
    const { bit, why } = USAGE_NEEDED[need];
    if (usages !== undefined && !(usages & bit)) throw new CaLoadError(certPath, `${certPath}: ${opts.who} keyUsage lacks ${need}, ${why}`);
  }
  return parsed;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new CaLoadError(path, `cannot read CA file ${path} (${code})`, { cause: e });
  }
}

/** PKCS#8 as the layout says, or the SEC1 and PKCS#1 PEM that `openssl ecparam`/`genrsa` write. */
function importPrivateKey(pem: string, path: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new CaLoadError(path, `${path} is encrypted: Leash reads an unencrypted PKCS#8 PEM private key`);
  }
  if (!/-----BEGIN (EC |RSA )?PRIVATE KEY-----/.test(pem)) throw new CaLoadError(path, `${path} must be a PKCS#8 PEM private key`);
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new CaLoadError(path, `${path} is not a valid private key`, { cause: e });
  }
}

function parseCertificates(text: string, path: string): X509Certificate[] {
  const blocks = text.match(CERT_PEM_RE) ?? [];
  if (blocks.length === 0) throw new CaLoadError(path, `${path} holds no PEM certificate`);
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (e) {
      throw new CaLoadError(path, `${path}: certificate ${i + 1} is not valid`, { cause: e });
    }
  });
}

function caKeyType(key: KeyObject, path: string): CaKeyType {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'ec' && curve === 'secp384r1') return 'ec-p384';
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'rsa';
  throw new CaLoadError(path, `${path}: CA key type ${key.asymmetricKeyType ?? '?'} ${curve ?? ''} is not supported`.trim());
}

/** The subject Name bytes and key identifier of the issuing CA certificate. */
function issuerFields(certDer: Buffer): { issuerName: Buffer; keyId: Buffer } {
  const cert = readRoot(certDer, 0x30, 'Certificate');
  const tbs = children(certDer, cert)[0] as Tlv;
  const fields = children(certDer, tbs);
  // Skip the optional [0] version so the indexes below follow RFC 5280's field order.
  const f = fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
  const subject = f[4];
  const spki = f[5];
  if (!subject || !spki) throw new DerError('malformed CA certificate');
  const extensions = f.find((t) => t.tag === 0xa3);
  return {
    issuerName: Buffer.from(whole(certDer, subject)),
    keyId: subjectKeyIdOf(certDer, extensions) ?? keyIdentifierOf(Buffer.from(whole(certDer, spki))),
  };
}

function subjectKeyIdOf(certDer: Buffer, extensions: Tlv | undefined): Buffer | undefined {
  if (!extensions) return undefined;
  const list = children(certDer, extensions)[0];
  if (!list) return undefined;
  for (const ext of children(certDer, list)) {
    const parts = children(certDer, ext);
    const id = parts[0];
    const val = parts[parts.length - 1];
    if (!id || !val || readOid(certDer, id) !== OID.subjectKeyIdentifier) continue;
    const inner = value(certDer, val);
    return Buffer.from(value(inner, readRoot(inner, 0x04, 'SubjectKeyIdentifier')));
  }
  return undefined;
}

const ensureNewline = (pem: string): string => (pem.endsWith('\n') ? pem : `${pem}\n`);
