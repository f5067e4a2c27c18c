import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

export type SigningAlg = 'ES256' | 'EdDSA';

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  /** mtime of the file, ms: "newest" decides the active key when none is named. */
  createdMs: number;
}

export class KeyLoadError extends Error {
  readonly code = 'ERR_KEYS';
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'KeyLoadError';
  }
}

/** Holds the JWT signing keys of `<keysDir>/jwt/<kid>.pem`; the active one signs, all are published. */
export interface KeyStore {
  active(): SigningKey;
  byKid(kid: string): SigningKey | undefined;
  all(): SigningKey[];
  jwks(): { keys: JWK[] };
  /** Re-reads the directory (rotation without restart); keeps the old set if the new one is bad. */
  reload(): void;
}

export function algOf(key: KeyObject, file: string): SigningAlg {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new KeyLoadError(file, `unsupported key type ${key.asymmetricKeyType}: use EC P-256 (ES256) or Ed25519 (EdDSA)`);
}

export function readSigningKeys(keysDir: string): SigningKey[] {
  const dir = join(keysDir, 'jwt');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pem'));
  } catch (err) {
    throw new KeyLoadError(dir, `cannot read the signing key directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (names.length === 0) throw new KeyLoadError(dir, 'no signing keys (<kid>.pem) found');
  return names.map((name) => readSigningKey(join(dir, name), name.slice(0, -'.pem'.length)));
}

function readSigningKey(file: string, kid: string): SigningKey {
  let pem: string;
  let createdMs: number;
  try {
    pem = readFileSync(file, 'utf8');
    createdMs = statSync(file).mtimeMs;
  } catch (err) {
    throw new KeyLoadError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new KeyLoadError(file, /ENCRYPTED/.test(pem) ? 'encrypted: Leash reads an unencrypted PKCS#8 PEM private key' : 'not a PKCS#8 PEM private key');
  }
  const alg = algOf(privateKey, file);
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  return { kid, alg, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' }, createdMs };
}

export interface KeyStoreOptions {
  activeKid?: string;
  /** Called after a reload succeeds: the signing record must learn of a newly active key at once. */
  onReload?: (active: SigningKey) => void;
}

export function createKeyStore(keysDir: string, opts: KeyStoreOptions = {}): KeyStore {
  let keys = new Map<string, SigningKey>();
  let current: SigningKey;
  let jwksDoc: { keys: JWK[] };

  const load = (): void => {
    const list = readSigningKeys(keysDir);
    const next = new Map(list.map((k) => [k.kid, k]));
    let active: SigningKey | undefined;
    if (opts.activeKid) {
      active = next.get(opts.activeKid);
      if (!active) throw new KeyLoadError(join(keysDir, 'jwt', `${opts.activeKid}.pem`), 'LEASH_SIGNING_KID names a key that does not exist');
    } else {
      active = [...list].sort((a, b) => b.createdMs - a.createdMs || b.kid.localeCompare(a.kid))[0]!;
    }
    keys = next;
    current = active;
    jwksDoc = { keys: list.map((k) => k.publicJwk) };
  };
  load();

  return {
    active: () => current,
    byKid: (kid) => keys.get(kid),
    all: () => [...keys.values()],
    jwks: () => jwksDoc,
    reload() {
      load();
      opts.onReload?.(current);
    },
  };
}

/** A kid that sorts by creation date and names the key: `<yyyymmdd>-<thumbprint prefix>`. */
export async function kidFor(publicKey: KeyObject, now = new Date()): Promise<string> {
  const thumb = await calculateJwkThumbprint(await exportJWK(publicKey));
  return `${now.toISOString().slice(0, 10).replaceAll('-', '')}-${thumb.slice(0, 12)}`;
}
