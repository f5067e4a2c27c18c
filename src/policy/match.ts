/**
 * Claim matching for policy rules. Patterns are globs, never regular expressions, so a policy
 * author (or a claim value) cannot smuggle regex syntax in; `*` and `?` are the only
 * metacharacters and there is no escape, so what is not a wildcard is compared literally.
 */
import type { Matcher, Rule } from './types.ts';
import { CONTROL_CHARS, readClaim, scalarText } from './claims.ts';

export { readClaim } from './claims.ts';

export type Glob = (text: string) => boolean;

interface CompiledKey {
  key: string;
  negate: boolean;
  patterns: string[];
  globs: Glob[];
}

export interface MatchResult {
  matched: boolean;
  /** One line per key; names keys and policy patterns, never claim values. */
  reasons: string[];
}

/** Matches `*`-only globs by literal pieces: anchored prefix, suffix, and leftmost middles. */
function compileStarGlob(pattern: string): Glob {
  const pieces = pattern.split('*');
  const head = pieces[0]!;
  const tail = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((p) => p.length > 0);
  const minLength = head.length + tail.length + middle.reduce((n, p) => n + p.length, 0);
  return (text) => {
    if (text.length < minLength || !text.startsWith(head) || !text.endsWith(tail)) return false;
    let at = head.length;
    const end = text.length - tail.length;
    for (const piece of middle) {
      const found = text.indexOf(piece, at);
      if (found < 0 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  };
}

/** Iterative wildcard match over code points, so `?` is one code point even outside the BMP. */
function compileFullGlob(pattern: string): Glob {
  const p = Array.from(pattern);
  return (text) => {
    const s = Array.from(text);
    let pi = 0;
    let si = 0;
    let star = -1;
    let mark = 0;
    while (si < s.length) {
      if (pi < p.length && p[pi] === '*') {
        star = pi++;
        mark = si;
      } else if (pi < p.length && (p[pi] === '?' || p[pi] === s[si])) {
        pi++;
        si++;
      } else if (star >= 0) {
        pi = star + 1;
        si = ++mark;
      } else {
        return false;
      }
    }
    while (pi < p.length && p[pi] === '*') pi++;
    return pi === p.length;
  };
}

/** Anchored, case-sensitive glob: `*` any run (including `/`), `?` one code point. */
export function compileGlob(pattern: string): Glob {
  if (pattern.includes('?')) return compileFullGlob(pattern);
  if (pattern.includes('*')) return compileStarGlob(pattern);
  return (text) => text === pattern;
}

function compileKey(key: string, matcher: Matcher): CompiledKey {
  const negate = typeof matcher === 'object' && !Array.isArray(matcher);
  const raw = negate ? (matcher as { not: string | string[] }).not : (matcher as string | string[]);
  const patterns = typeof raw === 'string' ? [raw] : [...raw];
  return { key, negate, patterns, globs: patterns.map(compileGlob) };
}

// Keyed by the rule's match object: compiled once per loaded policy, not once per request.
const compiled = new WeakMap<object, CompiledKey[]>();

function compileMatch(match: Record<string, Matcher>): CompiledKey[] {
  let keys = compiled.get(match);
  if (!keys) {
    keys = Object.entries(match).map(([key, matcher]) => compileKey(key, matcher));
    compiled.set(match, keys);
  }
  return keys;
}

type ClaimTexts = { texts: string[]; onlyScalars: boolean } | { problem: string };

/**
 * The texts a claim offers for matching. Any value holding a control character is refused
 * outright: a newline or NUL inside a claim is how "refs/heads/main\n..." style tricks slip past
 * anchored comparisons in downstream systems, so such a claim matches nothing, not even `not`.
 */
function claimTexts(value: unknown): ClaimTexts {
  if (value === undefined) return { problem: 'absent' };
  const scalar = scalarText(value);
  if (scalar !== undefined) {
    return CONTROL_CHARS.test(scalar) ? { problem: 'contains control characters' } : { texts: [scalar], onlyScalars: true };
  }
  if (!Array.isArray(value)) return { problem: 'not a string, number, boolean or list' };
  const texts: string[] = [];
  let onlyScalars = true;
  for (const element of value) {
    const text = scalarText(element);
    if (text === undefined) onlyScalars = false;
    else if (CONTROL_CHARS.test(text)) return { problem: 'contains control characters' };
    else texts.push(text);
  }
  return { texts, onlyScalars };
}

const quote = (patterns: string[]): string => patterns.map((p) => JSON.stringify(p)).join(', ');

function matchKey(compiledKey: CompiledKey, claims: Record<string, unknown>): [boolean, string] {
  const { key, negate, patterns, globs } = compiledKey;
  const found = claimTexts(readClaim(claims, key));
  if ('problem' in found) return [false, `${key}: ${found.problem}`];
  for (const text of found.texts) {
    for (let i = 0; i < globs.length; i++) {
      if (!globs[i]!(text)) continue;
      return negate
        ? [false, `${key} matched excluded ${JSON.stringify(patterns[i])}`]
        : [true, `${key} matched ${JSON.stringify(patterns[i])}`];
    }
  }
  if (!negate) {
    return [false, `${key} did not match ${patterns.length > 1 ? 'any of ' : ''}${quote(patterns)}`];
  }
  // An element that is an object or null cannot be shown not to match, so exclusion fails closed.
  if (!found.onlyScalars) return [false, `${key}: list holds a non-scalar element, exclusion cannot hold`];
  return [true, `${key} matched none of ${quote(patterns)}`];
}

/** Whether every `match` key of the rule holds for these verified claims, with one reason per key. */
export function matchRule(rule: Pick<Rule, 'match'>, claims: Record<string, unknown>): MatchResult {
  const reasons: string[] = [];
  let matched = true;
  for (const compiledKey of compileMatch(rule.match)) {
    const [ok, reason] = matchKey(compiledKey, claims);
    reasons.push(reason);
    matched &&= ok;
  }
  return { matched, reasons };
}

/** Cheaper than matchRule when no explanation is needed: stops at the first key that fails. */
export function ruleMatches(rule: Pick<Rule, 'match'>, claims: Record<string, unknown>): boolean {
  return compileMatch(rule.match).every((k) => matchKey(k, claims)[0]);
}
