import { LeashError } from '../errors.ts';

/** Upper bound of one page, whatever the caller asks for. */
export const MAX_PAGE = 1000;

export const pageLimit = (limit: number): number =>
  Number.isFinite(limit) ? Math.min(MAX_PAGE, Math.max(1, Math.floor(limit))) : MAX_PAGE;

/**
 * A cursor is the opaque base64url of the last position a page examined (a lease listing member,
 * an audit event id), so a page never repeats or skips an item that existed throughout, whatever
 * is created or dropped meanwhile.
 */
export const encodeCursor = (position: string): string => Buffer.from(position, 'utf8').toString('base64url');

/** The position a cursor carries, as `parse` reads it; a cursor this server did not issue is a 400. */
export function decodeCursor<T>(cursor: string, parse: (position: string) => T | null): T {
  const parsed = parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (parsed === null) throw new LeashError('bad_request', 'the cursor is not one this server issued');
  return parsed;
}
