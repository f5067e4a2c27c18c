import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { LeashScopeError, LeashTokenExpiredError, LeashTokenInvalidError, LeashUnavailableError, LeashRevokedError, type LeashVerifyError } from './errors.ts';
import { createIntrospectionCheck, type IntrospectionOptions } from './introspection.ts';
import { createLeashJwks } from './jwks.ts';

/** The claims of a Leash access token (RFC 9068 profile; README "Token exchange"). */
export interface LeashClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  /** The lease id. */
  jti: string;
  /** Space-separated granted scopes. */
  scope?: string;
  /** The policy rule that granted the token. */
  client_id?: string;
  task_id?: string;
}

export interface LeashVerifierOptions {
  /** Leash's LEASH_ISSUER, exactly as it appears in `iss`. */
  issuer: string;
  /** This resource server's identifier; the token's `aud` must contain it. */
  audience: string;
  /** Default `${issuer}/.well-known/jwks.json`. */
  jwksUri?: string;
  /** When set, every token is also checked live with Leash, so revocation lands within cacheTtlMs. */
  introspection?: IntrospectionOptions;
  /** Allowed clock difference with Leash for exp/nbf. Default 5. */
  clockToleranceSeconds?: number;
}

export interface VerifyOptions {
  /** Every one of these must be in the token's `scope`. */
  scopes?: string[];
}

export interface LeashVerifier {
  /** Resolves to the claims, or rejects with a LeashVerifyError subclass. */
  verify(token: string, opts?: VerifyOptions): Promise<LeashClaims>;
}

// Leash signs with ES256 (default) or EdDSA keys; anything else is a forgery attempt.
const ALGORITHMS = ['ES256', 'EdDSA'];
const MAX_TOKEN_CHARS = 8192;

/**
 * Builds a verifier for Leash access tokens. The JWKS is fetched lazily and cached no longer than
 * the max-age Leash sends with it; an unknown kid refetches it, so Leash's key rotation needs no
 * restart. Bad options throw TypeError here.
 */
export function createLeashVerifier(options: LeashVerifierOptions): LeashVerifier {
  const { issuer, audience } = checkOptions(options);
  const base = issuer.replace(/\/+$/, '');
  const jwks = createLeashJwks(new URL(options.jwksUri ?? `${base}/.well-known/jwks.json`));
  const isActive = options.introspection ? createIntrospectionCheck(`${base}/introspect`, options.introspection) : null;
  const clockTolerance = options.clockToleranceSeconds ?? 5;

  return {
    async verify(token, opts = {}) {
      const claims = await verifySignedClaims(token);
      requireScopes(claims, opts.scopes ?? []);
      if (isActive && !(await isActive(claims.jti, token))) {
        throw new LeashRevokedError('Leash reports the token inactive (revoked, task completed, or ended)');
      }
      return claims;
    },
  };

  async function verifySignedClaims(token: string): Promise<LeashClaims> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
      throw new LeashTokenInvalidError('the token is missing or not a compact JWT');
    }
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ALGORITHMS,
        clockTolerance,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti'],
      });
      if (payload.scope !== undefined && typeof payload.scope !== 'string') throw new LeashTokenInvalidError('the scope claim is not a string', { claim: 'scope' });
      return payload as LeashClaims;
    } catch (err) {
      throw toVerifyError(err);
    }
  }
}

function requireScopes(claims: LeashClaims, required: string[]): void {
  if (required.length === 0) return;
  const granted = new Set((claims.scope ?? '').split(' ').filter(Boolean));
  const missing = required.filter((s) => !granted.has(s));
  if (missing.length > 0) throw new LeashScopeError(required, missing);
}

const TOKEN_FAULTS = new Set([
  joseErrors.JWTClaimValidationFailed.code,
  joseErrors.JOSEAlgNotAllowed.code,
  joseErrors.JOSENotSupported.code,
  joseErrors.JWSInvalid.code,
  joseErrors.JWTInvalid.code,
  joseErrors.JWKSNoMatchingKey.code,
  joseErrors.JWKSMultipleMatchingKeys.code,
  joseErrors.JWSSignatureVerificationFailed.code,
]);

/** jose's errors split into "this token is bad" (401) and "Leash's keys are out of reach" (503). */
function toVerifyError(err: unknown): LeashVerifyError {
  if (err instanceof LeashTokenInvalidError) return err;
  if (err instanceof joseErrors.JWTExpired) return new LeashTokenExpiredError('the token has expired', { cause: err });
  if (err instanceof joseErrors.JOSEError && TOKEN_FAULTS.has(err.code)) {
    const claim = err instanceof joseErrors.JWTClaimValidationFailed ? err.claim : undefined;
    return new LeashTokenInvalidError(claim ? `the token's ${claim} claim is not acceptable` : 'the token is not a valid Leash token', { cause: err, ...(claim ? { claim } : {}) });
  }
  return new LeashUnavailableError("Leash's signing keys (JWKS) could not be fetched", { cause: err });
}

function checkOptions(o: LeashVerifierOptions): { issuer: string; audience: string } {
  if (!o || typeof o !== 'object') throw new TypeError('createLeashVerifier needs an options object');
  if (typeof o.issuer !== 'string' || !URL.canParse(o.issuer)) throw new TypeError('issuer must be the Leash issuer URL');
  if (typeof o.audience !== 'string' || o.audience.length === 0) throw new TypeError('audience must be a non-empty string');
  if (o.jwksUri !== undefined && !URL.canParse(o.jwksUri)) throw new TypeError('jwksUri must be a URL');
  const tol = o.clockToleranceSeconds;
  if (tol !== undefined && (!Number.isFinite(tol) || tol < 0 || tol > 300)) throw new TypeError('clockToleranceSeconds must be between 0 and 300');
  return { issuer: o.issuer, audience: o.audience };
}
