/** Listing positions: both stores page over this one total order, and cursors carry a position. */
const MEMBER_TIME_WIDTH = 9; // base36 milliseconds: 9 digits last until the year 5138

/**
 * A listing position as one string (issued ms in base36, then id) that sorts like (score, id) in
 * the `all` index; cursors carry it, and the memory store sorts by it.
 */
export const listMember = (issuedMs: number, id: string): string =>
  `${Math.max(0, Math.floor(issuedMs)).toString(36).padStart(MEMBER_TIME_WIDTH, '0')}:${id}`;

export const idOfListMember = (member: string): string => member.slice(MEMBER_TIME_WIDTH + 1);

export const msOfListMember = (member: string): number => parseInt(member.slice(0, MEMBER_TIME_WIDTH), 36);

export const isListMember = (member: string): boolean => /^[0-9a-z]{9}:[A-Za-z0-9_-]{22}$/.test(member);

/** The listing position a lease-list cursor carries (util/list-cursor.ts), or null for a forged one. */
export const listMemberOf = (position: string): string | null => (isListMember(position) ? position : null);
