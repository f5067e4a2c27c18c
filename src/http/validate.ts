import type { Context } from 'hono';
import { z } from 'zod';
import { LeashError } from '../errors.ts';
import { readBody } from '../request/read-body.ts';

/**
 * A page size in a query: decimal digits only (Number() would take 0x3, 1e2 and ' 1'), 1 to 1000,
 * 100 when absent.
 */
export const limitParam = z
  .string()
  .regex(/^[0-9]{1,4}$/, 'must be a whole number from 1 to 1000')
  .transform(Number)
  .pipe(z.number().int().min(1).max(1000))
  .default(100);

/** zod parse with one clear message naming the field, in the non-OAuth error format. */
export function validate<T extends z.ZodType>(schema: T, input: unknown, where: 'query' | 'body'): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? ` ${issue.path.join('.')}` : '';
  throw new LeashError('bad_request', `${where}${field}: ${issue.message}`);
}

/**
 * A request's query with one value a key; a key given twice is refused, not narrowed to its first
 * value (a listing asked for two statuses would silently show one).
 */
export function singleQuery(c: Context): Record<string, string> {
  const all = c.req.queries();
  for (const [key, values] of Object.entries(all)) {
    if (values.length > 1) throw new LeashError('bad_request', `query ${key}: given ${values.length} times; give it once`);
  }
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v[0] ?? '']));
}

export async function readJson(c: Context, opts: { optional?: boolean } = {}): Promise<unknown> {
  const raw = await readBody(c, c.get('deps').config.maxBodyBytes);
  if (raw.trim() === '') {
    if (opts.optional) return {};
    throw new LeashError('bad_request', 'a JSON body is required');
  }
  // Bearer-authenticated endpoints cannot be driven cross-site, so a JSON body sent without a
  // content type (or as text/plain, fetch's default) is read as JSON; a form or multipart is refused.
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'application/json' && type !== 'text/plain' && !type.endsWith('+json')) {
    throw new LeashError('unsupported_media_type', 'the body must be application/json');
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new LeashError('bad_request', 'the body is not valid JSON');
  }
}
