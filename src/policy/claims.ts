/**
 * Reading verified claims by policy key: a top-level claim name, or an RFC 6901 JSON Pointer
 * (a key starting with `/`) into nested claims such as Kubernetes' `kubernetes.io` object.
 */

const pointerCache = new Map<string, readonly string[]>();

/** The reference tokens of a JSON Pointer, or undefined when `~` is not followed by 0 or 1. */
export function parsePointer(pointer: string): readonly string[] | undefined {
  const cached = pointerCache.get(pointer);
  if (cached) return cached;
  if (!pointer.startsWith('/') || /~(?![01])/.test(pointer)) return undefined;
  // ~1 before ~0, so that "~01" becomes "~1" and not "/" (RFC 6901 section 4).
  const tokens = pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
  // Keys come from the policy, so the cache is bounded by the size of the policy.
  pointerCache.set(pointer, tokens);
  return tokens;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The claim a policy key names, or undefined when absent. Only own properties are followed, so
 * `constructor` or `__proto__` can never resolve to something the token did not carry.
 */
export function readClaim(claims: Record<string, unknown>, key: string): unknown {
  if (!key.startsWith('/')) return Object.hasOwn(claims, key) ? claims[key] : undefined;
  const tokens = parsePointer(key);
  if (!tokens) return undefined;
  let node: unknown = claims;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9]\d*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (isRecord(node) && Object.hasOwn(node, token)) {
      node = node[token];
    } else {
      return undefined;
    }
  }
  return node;
}

/** U+0000-U+001F and U+007F. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** The text of a string, number or boolean claim; undefined for anything else. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/** Whether a policy key is a usable claim name or a well-formed JSON Pointer. */
export function checkClaimKey(key: string): string | undefined {
  if (key.length === 0) return 'claim key must not be empty';
  if (CONTROL_CHARS.test(key)) return 'claim key must not contain control characters';
  if (key.startsWith('/') && !parsePointer(key)) {
    return 'invalid JSON Pointer: "~" must be followed by 0 or 1';
  }
  return undefined;
}
