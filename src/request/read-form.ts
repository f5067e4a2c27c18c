import type { Context } from 'hono';
import { LeashError } from '../errors.ts';
import { parseForm } from './parse-form.ts';
import { readBody } from './read-body.ts';

/**
 * Reads an application/x-www-form-urlencoded body (RFC 6749 section 3.2). Another media type is
 * refused rather than guessed at, so a JSON body cannot smuggle parameters past the checks.
 */
export async function readForm(c: Context): Promise<URLSearchParams> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new LeashError('invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const text = await readBody(c, c.get('deps').config.maxBodyBytes);
  // As URLSearchParams, never throws on odd input: a bad escape stays as sent, bad UTF-8 becomes U+FFFD.
  return parseForm(text);
}
