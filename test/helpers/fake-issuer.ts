import { createHmac, generateKeyPairSync, randomUUID, sign, constants, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { TrustedIssuer } from '../../src/policy/types.ts';
import { ProofError, type ProofFailure } from '../../src/proofs/proof-error.ts';

/**
 * A real OIDC issuer over real HTTP on 127.0.0.1, for proof verification tests: discovery, a JWKS
 * with key rotation and outages, and minting of well-formed and deliberately broken tokens.
 * Signing is done with node:crypto rather than jose so tests can produce headers and payloads
 * that jose itself would refuse to sign (crit, non-JSON payloads, alg none, HS256 with a public key).
 */

export type FakeAlg = 'ES256' | 'RS256' | 'EdDSA' | 'PS256';

export interface MintOptions {
  /** Merged over the default header {alg, typ: 'JWT', kid}; may override alg. */
  header?: Record<string, unknown>;
  /** kid to put in the header; null leaves it out. Default: the current key's kid. */
  kid?: string | null;
  /** 'other': a key of the same type that is never published. */
  key?: 'current' | 'other';
  /** Claims to drop after re-stamping, e.g. ['exp']. */
  omit?: string[];
  /** Absolute times (epoch seconds) that win over re-stamping. */
  times?: { iat?: number; nbf?: number; exp?: number };
}

export interface FakeIssuer {
  /** The issuer identifier (`iss`), e.g. http://127.0.0.1:PORT or with a path. */
  url: string;
  jwksUri: string;
  discoveryUrl: string;
  alg: FakeAlg;
  currentKid(): string;
  mint(claims: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** Signs any header and payload bytes as given (payload need not be JSON). */
  signRaw(header: Record<string, unknown>, payload: string | Uint8Array, key?: 'current' | 'other'): string;
  mintUnsigned(claims: Record<string, unknown>): string;
  /** The classic RS/HS confusion: HMAC keyed with the issuer's public key bytes (SPKI PEM or JWK JSON). */
  mintHs256WithPublicKey(claims: Record<string, unknown>, form?: 'pem' | 'jwk'): string;
  publicJwk(which?: 'current' | 'other'): Record<string, unknown>;
  /** New current key; every older key stays published (overlap, as real issuers do). */
  rotate(): string;
  /** Extra raw entries appended to the published JWKS (e.g. oct or use=enc keys). */
  publishExtra(keys: Record<string, unknown>[]): void;
  setDown(down: boolean): void;
  /** The `issuer` the discovery document claims; null restores the real one. */
  setDiscoveryIssuer(issuer: string | null): void;
  setDelayMs(ms: number): void;
  /** JWKS fetches so far (answered or not). */
  requestCount(): number;
  discoveryCount(): number;
  close(): Promise<void>;
}

interface KeyRec {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function newKey(alg: FakeAlg): KeyRec {
  const kid = randomUUID();
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, ...pair };
}

function jwkOf(k: KeyRec, alg: FakeAlg): Record<string, unknown> {
  return { ...(k.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: k.kid, alg, use: 'sig' };
}

function signBytes(alg: FakeAlg, key: KeyObject, data: Buffer): Buffer {
  switch (alg) {
    case 'ES256':
      return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'RS256':
      return sign('sha256', data, key);
    case 'PS256':
      return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'EdDSA':
      return sign(null, data, key);
  }
}

const b64 = (v: string | Uint8Array): string => Buffer.from(v).toString('base64url');

/** Moves iat to now and keeps the claims' own spacing of nbf and exp (fixtures' documented offsets). */
function restamp(claims: Record<string, unknown>, now: number, times: MintOptions['times'], iss: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...claims };
  const base = typeof claims.iat === 'number' ? claims.iat : undefined;
  out.iss ??= iss;
  out.iat = now;
  if (typeof claims.nbf === 'number') out.nbf = base === undefined ? now : now + (claims.nbf - base);
  out.exp = typeof claims.exp === 'number' && base !== undefined ? now + (claims.exp - base) : now + 300;
  return { ...out, ...times };
}

export async function startFakeIssuer(
  opts: { alg?: FakeAlg; path?: string; now?: () => number } = {},
): Promise<FakeIssuer> {
  const alg = opts.alg ?? 'ES256';
  const path = (opts.path ?? '').replace(/\/$/, '');
  const clock = opts.now ?? Date.now;
  const keys: KeyRec[] = [newKey(alg)];
  const other = newKey(alg);
  let extra: Record<string, unknown>[] = [];
  let down = false;
  let delayMs = 0;
  let discoveryIssuer: string | null = null;
  let jwksHits = 0;
  let discoveryHits = 0;

  const server: Server = createServer((req, res) => {
    const route = (req.url ?? '').split('?')[0];
    const answer = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      }, delayMs);
    };
    if (route === `${path}/.well-known/openid-configuration`) {
      discoveryHits++;
      if (down) return answer(503, { error: 'down' });
      return answer(200, { issuer: discoveryIssuer ?? issuerUrl, jwks_uri: jwksUri, id_token_signing_alg_values_supported: [alg] });
    }
    if (route === `${path}/jwks`) {
      jwksHits++;
      if (down) return answer(503, { error: 'down' });
      return answer(200, { keys: [...keys.map((k) => jwkOf(k, alg)), ...extra] });
    }
    answer(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuerUrl = `http://127.0.0.1:${port}${path}`;
  const jwksUri = `${issuerUrl}/jwks`;
  const current = (): KeyRec => keys[keys.length - 1]!;
  const nowSec = (): number => Math.floor(clock() / 1000);

  const signRaw = (header: Record<string, unknown>, payload: string | Uint8Array, which: 'current' | 'other' = 'current'): string => {
    const input = `${b64(JSON.stringify(header))}.${b64(payload)}`;
    const key = which === 'other' ? other : current();
    return `${input}.${b64(signBytes(alg, key.privateKey, Buffer.from(input)))}`;
  };

  const payloadOf = (claims: Record<string, unknown>, o: MintOptions = {}): Record<string, unknown> => {
    const out = restamp(claims, nowSec(), o.times, issuerUrl);
    for (const name of o.omit ?? []) delete out[name];
    return out;
  };

  return {
    url: issuerUrl,
    jwksUri,
    discoveryUrl: `${issuerUrl}/.well-known/openid-configuration`,
    alg,
    currentKid: () => current().kid,
    async mint(claims, o = {}) {
      const kid = o.kid === undefined ? current().kid : o.kid;
      const header = { alg, typ: 'JWT', ...(kid === null ? {} : { kid }), ...o.header };
      return signRaw(header, JSON.stringify(payloadOf(claims, o)), o.key ?? 'current');
    },
    signRaw,
    mintUnsigned(claims) {
      return `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64(JSON.stringify(payloadOf(claims)))}.`;
    },
    mintHs256WithPublicKey(claims, form = 'pem') {
      const secret =
        form === 'pem'
          ? (current().publicKey.export({ type: 'spki', format: 'pem' }) as string)
          : JSON.stringify(jwkOf(current(), alg));
      const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: current().kid }))}.${b64(JSON.stringify(payloadOf(claims)))}`;
      return `${input}.${b64(createHmac('sha256', secret).update(input).digest())}`;
    },
    publicJwk: (which = 'current') => jwkOf(which === 'other' ? other : current(), alg),
    rotate() {
      keys.push(newKey(alg));
      return current().kid;
    },
    publishExtra(k) {
      extra = k;
    },
    setDown(d) {
      down = d;
    },
    setDiscoveryIssuer(i) {
      discoveryIssuer = i;
    },
    setDelayMs(ms) {
      delayMs = ms;
    },
    requestCount: () => jwksHits,
    discoveryCount: () => discoveryHits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export { fixtureClaims, fixtureExamples, type FixtureFile } from './claim-fixtures.ts';

/** The audience tests put in proofs and trust by default. */
export const TEST_AUDIENCE = 'https://leash.test';

/** A policy issuer entry trusting this fake issuer (name `fake`, via discovery unless overridden). */
export function trustedIssuerFor(fi: FakeIssuer, extra: Partial<TrustedIssuer> = {}): TrustedIssuer {
  return { name: 'fake', issuer: fi.url, audiences: [TEST_AUDIENCE], max_proof_age: 600, replay: 'single_use', ...extra };
}

/** Asserts a refusal with its fixed reason, and that neither description nor detail carry the token. */
export async function expectProofRefusal(p: Promise<unknown>, reason: ProofFailure, token?: string): Promise<ProofError> {
  const err = await p.then(
    () => new Error(`expected refusal ${reason}, but the proof was accepted`),
    (e: unknown) => e,
  );
  if (!(err instanceof ProofError)) throw err;
  const pe = err;
  expect({ reason: pe.reason, description: pe.description }).toMatchObject({ reason });
  expect(pe.code).toBe('invalid_request');
  expect(pe.status).toBe(400);
  for (const part of (token ?? '').split('.').filter((s) => s.length > 8)) {
    expect(pe.description).not.toContain(part);
    expect(pe.detail ?? '').not.toContain(part);
  }
  return pe;
}
