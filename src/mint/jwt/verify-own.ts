import { verify as cryptoVerify } from 'node:crypto';
import type { KeyStore } from './keystore.ts';

export interface LeashTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nbf?: number;
  jti: string;
  scope?: string;
  client_id?: string;
  task_id?: string;
  [claim: string]: unknown;
}

export type OwnTokenFailure = 'malformed' | 'unknown_kid' | 'bad_signature' | 'wrong_issuer' | 'expired' | 'not_yet_valid';

export type OwnTokenResult = { ok: true; claims: LeashTokenClaims; kid: string } | { ok: false; reason: OwnTokenFailure };

/** The longest token Leash accepts back, so also the longest it issues (exchange.ts). */
export const MAX_OWN_TOKEN_CHARS = 8192;

/**
 * Verifies a token Leash minted: signature by one of its published keys (alg fixed by the key,
 * never by the header), `typ` at+jwt, `iss`, and the time window. Lease state is checked by
 * the caller; a valid signature alone never means the credential is live.
 */
export function verifyOwnToken(token: string, keys: KeyStore, opts: { issuer: string; nowSeconds: number; skewSeconds: number }): OwnTokenResult {
  if (typeof token !== 'string' || token.length > MAX_OWN_TOKEN_CHARS) return { ok: false, reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'malformed' };
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: unknown; kid?: unknown; typ?: unknown };
  let claims: LeashTokenClaims;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null) return { ok: false, reason: 'malformed' };
  if (header.typ !== 'at+jwt' || typeof header.kid !== 'string') return { ok: false, reason: 'malformed' };
  const key = keys.byKid(header.kid);
  if (!key) return { ok: false, reason: 'unknown_kid' };
  if (header.alg !== key.alg) return { ok: false, reason: 'bad_signature' };
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  const ok =
    key.alg === 'EdDSA'
      ? cryptoVerify(null, data, key.publicKey, sig)
      : cryptoVerify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
  if (!ok) return { ok: false, reason: 'bad_signature' };
  if (claims.iss !== opts.issuer) return { ok: false, reason: 'wrong_issuer' };
  if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number' || typeof claims.sub !== 'string') return { ok: false, reason: 'malformed' };
  if (claims.exp <= opts.nowSeconds - opts.skewSeconds) return { ok: false, reason: 'expired' };
  if (typeof claims.nbf === 'number' && claims.nbf > opts.nowSeconds + opts.skewSeconds) return { ok: false, reason: 'not_yet_valid' };
  return { ok: true, claims, kid: key.kid };
}

export const audiencesOf = (claims: { aud?: unknown }): string[] =>
  Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : typeof claims.aud === 'string' ? [claims.aud] : [];

export const scopesOf = (claims: { scope?: unknown }): string[] =>
  typeof claims.scope === 'string' && claims.scope.length > 0 ? claims.scope.split(' ') : [];
