import { ProofError } from './proof-error.ts';
import { isWellFormedDeep } from '../util/well-formed.ts';

/**
 * Reading a JWT before its signature is checked. Nothing here is trusted: the header and claims
 * only pick which configured issuer (and so which keys) the token will be verified against, and
 * let us refuse obviously bad tokens before spending a signature check or a JWKS fetch on them.
 */

export interface PeekedToken {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The largest proof Leash reads; no claim of one, its subject included, can be longer. */
export const MAX_PROOF_BYTES = 16_384;

export function checkSize(token: unknown, maxBytes: number): asserts token is string {
  if (typeof token !== 'string' || token.length === 0) {
    throw new ProofError('malformed', 'subject_token is missing or empty');
  }
  // Checked before any decoding so an oversized token costs nothing but this comparison.
  if (token.length > maxBytes || Buffer.byteLength(token, 'utf8') > maxBytes) {
    throw new ProofError('too_large', `subject_token is larger than ${maxBytes} bytes`);
  }
}

export function peekToken(token: string): PeekedToken {
  const parts = token.split('.');
  if (parts.length !== 3) {
    // Five parts would be a JWE: Leash accepts only signed (JWS compact) proofs.
    throw new ProofError('malformed', 'subject_token is not a signed JWT (expected three dot-separated parts)');
  }
  const [h, p, s] = parts as [string, string, string];
  // A length of 4n + 1 is not base64url (its last character holds no whole byte); Buffer would
  // drop that character, so one signature or segment would have several accepted spellings.
  if (!B64URL.test(h) || !B64URL.test(p) || (s !== '' && !B64URL.test(s)) || h.length % 4 === 1 || p.length % 4 === 1 || s.length % 4 === 1) {
    throw new ProofError('malformed', 'subject_token is not base64url encoded');
  }
  const header = decodeJsonObject(h, 'header');
  const claims = decodeJsonObject(p, 'payload');
  return { header, claims };
}

function decodeJsonObject(part: string, what: 'header' | 'payload'): Record<string, unknown> {
  let value: unknown;
  let text: string;
  try {
    text = strictUtf8.decode(Buffer.from(part, 'base64url'));
    value = JSON.parse(text);
  } catch {
    throw new ProofError('malformed', `subject_token ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProofError('malformed', `subject_token ${what} is not a JSON object`);
  }
  // The strict decoder refuses bad UTF-8, so a lone surrogate can only come from a \u escape:
  // most proofs have none and skip the walk. Such a string would make its lease unreadable to Lua.
  if (text.includes('\\u') && !isWellFormedDeep(value)) {
    throw new ProofError('malformed_claims', `subject_token ${what} holds a string that is not well-formed Unicode`);
  }
  return value as Record<string, unknown>;
}
