/**
 * Well-formed Unicode for JSON that leaves Node: a lone UTF-16 surrogate is valid in a JS string
 * and in JSON text (as a `\uD8xx` escape), but Redis's Lua cjson refuses to decode it.
 */

/** Whether every string in a parsed JSON value (values and keys, any depth) is well-formed. */
export function isWellFormedDeep(value: unknown): boolean {
  // Iterative: a 16 KB token can nest thousands of levels deep.
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (!v.isWellFormed()) return false;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (!k.isWellFormed()) return false;
        stack.push(x);
      }
    }
  }
  return true;
}

// JSON.stringify writes a lone surrogate as a lower-case `\udxxx` escape and a valid pair as the
// character itself, so an escape preceded by an even run of backslashes is always a lone one.
const LONE_ESCAPE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

/**
 * JSON.stringify's text with each lone surrogate replaced by U+FFFD, as Node's UTF-8 encoder does.
 * The character itself, not an escape: the stored text then matches JSON.stringify of the same
 * value made well-formed (the bulk revoke's substring test relies on that).
 */
export function wellFormedJson(json: string): string {
  return json.includes('\\ud') ? json.replace(LONE_ESCAPE, '$1\ufffd') : json;
}
