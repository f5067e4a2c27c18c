/**
 * The oracle of the differential proof tests: jose's jwtVerify configured with the expectations a
 * Leash issuer entry states, plus each rule by which Leash is deliberately stricter than jose,
 * worked out from the token text alone (never from Leash's code).
 */
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { AUDS, ISS, LEASH_ALGS, MAX_AGE, MAX_TOKEN_BYTES, SKEW } from './jwt-tokens.ts';

export type Outcome = { ok: true; claims: JWTPayload } | { ok: false; why: string };

const options = (nowMs: number): JWTVerifyOptions => ({
  issuer: ISS,
  audience: AUDS,
  algorithms: [...LEASH_ALGS],
  clockTolerance: SKEW,
  maxTokenAge: MAX_AGE,
  // exp: Leash (RFC 8693 proofs must be short-lived) requires it; iat: by maxTokenAge; sub: the lease's subject.
  requiredClaims: ['exp', 'iat', 'sub'],
  currentDate: new Date(nowMs),
  // No typ: neither verifier checks it (GitHub sends JWT, Kubernetes none, SPIRE JOSE).
});

/**
 * jose's verdict, with jose's documented loop for a kid-less token that several published keys
 * fit (Leash tries each fitting key too): the first key that verifies wins, a key that fails for
 * any reason but a bad signature ends the loop.
 */
export async function joseVerdict(jwks: { keys: Record<string, unknown>[] }, token: string, nowMs: number): Promise<Outcome> {
  const getKey = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
  try {
    return { ok: true, claims: (await jwtVerify(token, getKey, options(nowMs))).payload };
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) return { ok: false, why: codeOf(err) };
    for await (const key of err) {
      try {
        return { ok: true, claims: (await jwtVerify(token, key, options(nowMs))).payload };
      } catch (inner) {
        if (inner instanceof errors.JWSSignatureVerificationFailed) continue;
        return { ok: false, why: codeOf(inner) };
      }
    }
    return { ok: false, why: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' };
  }
}

const codeOf = (e: unknown): string => (e as { code?: string }).code ?? (e as Error).name;

const B64URL = /^[A-Za-z0-9_-]*$/;
const decodeJson = (segment: string): unknown => JSON.parse(new TextDecoder().decode(Buffer.from(segment.replace(/\s/g, ''), 'base64')));

function wellFormedDeep(v: unknown): boolean {
  if (typeof v === 'string') return v.isWellFormed();
  if (Array.isArray(v)) return v.every(wellFormedDeep);
  if (typeof v === 'object' && v !== null) return Object.entries(v).every(([k, x]) => k.isWellFormed() && wellFormedDeep(x));
  return true;
}

const nonEmptyString = (v: unknown): boolean => typeof v === 'string' && v !== '';

/**
 * Why Leash refuses a token that jose accepts, or null when it must accept it too. Each rule is a
 * deliberate choice, with the rule it comes from:
 */
export function leashStricter(token: string): string | null {
  // ProofVerifier's maxTokenBytes (16 KiB): an oversized token costs one comparison (docs/errors.md, too_large).
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return 'too_large';
  const parts = token.split('.');
  // RFC 7515 section 2: base64url "without the inclusion of any line breaks, whitespace, or other
  // additional characters" and with trailing '=' omitted. jose's atob skips whitespace and takes padding.
  if (parts.some((p) => !B64URL.test(p))) return 'not base64url (RFC 7515 section 2)';
  const header = decodeJson(parts[0]!) as Record<string, unknown>;
  const claims = decodeJson(parts[1]!) as Record<string, unknown>;
  // A string that is not well-formed Unicode (a lone surrogate), anywhere in
  // header or claims, is refused (malformed_claims): Redis's Lua cjson cannot read it back.
  if (!wellFormedDeep(header) || !wellFormedDeep(claims)) return 'malformed_claims';
  // RFC 7515 section 4.1.11: Leash understands no JWS extension, so any crit is refused; jose
  // understands b64 and accepts crit ["b64"] with b64: true.
  if (header.crit !== undefined) return 'crit';
  // The lease's subject and the replay key: sub must be a non-empty string (jose only requires
  // sub to be present), and a jti, when given, a non-empty string (jose does not look at jti).
  if (!nonEmptyString(claims.sub)) return 'sub not a non-empty string';
  if (claims.jti !== undefined && !nonEmptyString(claims.jti)) return 'jti not a non-empty string';
  // JSON can spell infinity (1e999): jose takes exp = Infinity as never expiring and nbf =
  // -Infinity as always valid; Leash records the proof's exp with its lease and replay record,
  // so each time claim must be a finite number.
  for (const name of ['exp', 'iat', 'nbf']) {
    const v = claims[name];
    if (typeof v === 'number' && !Number.isFinite(v)) return `${name} not finite`;
  }
  return null;
}
