/**
 * One error type for every refusal Leash makes. `code` is the fixed RFC 6749 / RFC 6750 / Leash
 * string that callers and tests switch on; `description` is safe to send; `detail` is for the log
 * only (it may name internal state, never a token or key). `reason`, when set, is a finer stable
 * reason under the same wire `code` (ProofError, CsrError): audited and logged, never sent.
 * The codes are listed in docs/errors.md.
 */
export type ErrorCode =
  // RFC 6749 section 5.2 and RFC 8693 section 2.2.2
  | 'invalid_request'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'temporarily_unavailable'
  | 'server_error'
  // RFC 6750 section 3.1 (Leash's own protected endpoints)
  | 'invalid_token'
  | 'insufficient_scope'
  // non-OAuth endpoints
  | 'not_found'
  | 'method_not_allowed'
  | 'bad_request'
  | 'rate_limited'
  | 'payload_too_large'
  | 'unsupported_media_type';

export class LeashError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly description: string;
  readonly detail: string | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly reason: string | undefined;

  constructor(
    code: ErrorCode,
    description: string,
    opts: { status?: number; detail?: string; cause?: unknown; headers?: Record<string, string>; reason?: string } = {},
  ) {
    super(description, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LeashError';
    this.code = code;
    this.status = opts.status ?? defaultStatus(code);
    this.description = description;
    this.detail = opts.detail;
    this.headers = opts.headers;
    this.reason = opts.reason;
  }
}

function defaultStatus(code: ErrorCode): number {
  switch (code) {
    case 'invalid_token':
      return 401;
    case 'insufficient_scope':
      return 403;
    case 'not_found':
      return 404;
    case 'method_not_allowed':
      return 405;
    case 'payload_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    case 'rate_limited':
      return 429;
    case 'temporarily_unavailable':
      return 503;
    case 'server_error':
      return 500;
    default:
      return 400;
  }
}

/** The store (Redis) could not be reached or answered an error: fail closed with a 503. */
export class StoreUnavailableError extends LeashError {
  constructor(detail: string, cause?: unknown) {
    super('temporarily_unavailable', 'the lease store is unavailable; no credential was issued', {
      status: 503,
      detail,
      cause,
    });
    this.name = 'StoreUnavailableError';
  }
}

