/**
 * Every refusal of the verifier is one of these classes with a fixed `code` that callers switch
 * on (as panva/jose does). `status` and `oauthError` say how an HTTP resource server should answer
 * (RFC 6750 section 3.1); messages never carry the token.
 */
export type LeashVerifyCode =
  | 'ERR_LEASH_TOKEN_INVALID'
  | 'ERR_LEASH_TOKEN_EXPIRED'
  | 'ERR_LEASH_SCOPE'
  | 'ERR_LEASH_REVOKED'
  | 'ERR_LEASH_UNAVAILABLE';

export abstract class LeashVerifyError extends Error {
  abstract readonly code: LeashVerifyCode;
  /** The HTTP status a resource server should answer with. */
  abstract readonly status: 401 | 403 | 503;
  /** The RFC 6750 error code for WWW-Authenticate. */
  abstract readonly oauthError: 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Signature, issuer, audience, typ, algorithm or shape is wrong: not a token for this server. */
export class LeashTokenInvalidError extends LeashVerifyError {
  readonly code = 'ERR_LEASH_TOKEN_INVALID';
  readonly status = 401;
  readonly oauthError = 'invalid_token';
  /** The claim that failed (`aud`, `iss`, `typ`, ...) when jose named one. */
  readonly claim: string | undefined;
  constructor(message: string, options?: { cause?: unknown; claim?: string }) {
    super(message, options);
    this.claim = options?.claim;
  }
}

export class LeashTokenExpiredError extends LeashVerifyError {
  readonly code = 'ERR_LEASH_TOKEN_EXPIRED';
  readonly status = 401;
  readonly oauthError = 'invalid_token';
}

/** The token is valid but lacks scopes the operation needs. */
export class LeashScopeError extends LeashVerifyError {
  readonly code = 'ERR_LEASH_SCOPE';
  readonly status = 403;
  readonly oauthError = 'insufficient_scope';
  constructor(
    readonly required: string[],
    readonly missing: string[],
  ) {
    super(`the token lacks scope ${missing.join(' ')}`);
  }
}

/** Introspection answered `active: false`: the lease was revoked, its task completed, or it ended. */
export class LeashRevokedError extends LeashVerifyError {
  readonly code = 'ERR_LEASH_REVOKED';
  readonly status = 401;
  readonly oauthError = 'invalid_token';
}

/** Leash's JWKS or introspection could not be reached or answered oddly: fail closed. */
export class LeashUnavailableError extends LeashVerifyError {
  readonly code = 'ERR_LEASH_UNAVAILABLE';
  readonly status = 503;
  readonly oauthError = 'temporarily_unavailable';
}
