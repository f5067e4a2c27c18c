/**
 * The policy file's schema. Every object is strict: in security configuration a misspelt key
 * (`max_tll`, `matches`) silently falling back to a default is worse than refusing to start.
 */
import { z } from 'zod';
import { parseDuration } from '../util/duration.ts';
import { CONTROL_CHARS, checkClaimKey } from './claims.ts';
import { checkTemplate, type TemplateTarget } from './template.ts';
import type { Grant, KeyType, Matcher, Policy } from './types.ts';
import { TRUST_DOMAIN, isTrustDomain } from './trust-domain.ts';

export const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export const KEY_TYPES = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
/** Claims Leash sets itself on minted tokens; a rule may not override them. */
export const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'scope', 'client_id', 'task_id', 'act', 'cnf'];
const DEFAULT_TTL = 900;
/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
// Defaults below are built per parse, since a parsed policy is frozen and must share nothing.
const DEFAULT_KEY_TYPES: KeyType[] = ['ec-p256', 'ec-p384', 'ed25519'];

type Issue = { message: string; path?: PropertyKey[] };
type Checked<T> = { value: T } | { issues: Issue[] };

/** A schema driven by a hand-written check, for shapes where zod's own messages would be vague. */
function checked<T>(check: (input: unknown) => Checked<T>) {
  return z.unknown().transform((input, ctx): T => {
    const result = check(input);
    if ('value' in result) return result.value;
    for (const issue of result.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path ?? [] });
    return z.NEVER;
  });
}

const fail = <T>(message: string): Checked<T> => ({ issues: [{ message }] });

const duration = checked<number>((input) => {
  const seconds = typeof input === 'string' || typeof input === 'number' ? parseDuration(input) : undefined;
  return seconds === undefined ? fail('must be a duration like 90s, 10m, 1h, 1d, 1h30m, or whole seconds') : { value: seconds };
});

const text = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !CONTROL_CHARS.test(s) && s.trim() === s, 'must not contain control characters or surrounding spaces');

function checkUrl(value: string, bareIssuer: boolean): string | undefined {
  if (/\s/.test(value) || !URL.canParse(value)) return 'must be an absolute URL without spaces';
  const url = new URL(value);
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    return 'must use https (plain http only for localhost, 127.0.0.1 or [::1])';
  }
  if (url.username || url.password) return 'must not contain a user name or password';
  // OpenID Connect Discovery: an issuer identifier has no query or fragment.
  if (bareIssuer && (url.hash || url.search)) return 'must not have a query or fragment';
  if (url.hash) return 'must not have a fragment';
  return undefined;
}

const url = (bareIssuer: boolean) =>
  z.string().superRefine((value, ctx) => {
    const message = checkUrl(value, bareIssuer);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

const list = <T extends z.ZodType>(item: T) => z.array(item).transform((items) => [...new Set(items)] as z.output<T>[]);

const issuerId = z.string().superRefine((value, ctx) => {
  if (isTrustDomain(value)) {
    if (!TRUST_DOMAIN.test(value)) {
      ctx.addIssue({ code: 'custom', message: 'a SPIFFE trust domain must be spiffe://<trust domain> (lowercase a-z, 0-9, ., _ and -; no path)' });
    }
    return;
  }
  const message = checkUrl(value, true);
  if (message) ctx.addIssue({ code: 'custom', message });
});

const issuer = z.strictObject({
  name: z.string().regex(/^[a-z0-9_-]{1,64}$/, 'must be 1-64 characters of a-z, 0-9, _ and -'),
  issuer: issuerId,
  audiences: list(text).refine((a) => a.length > 0, 'must list at least one audience'),
  jwks_uri: url(false).optional(),
  max_proof_age: duration.default(3600),
  replay: z.enum(['single_use', 'allow'], { error: 'must be single_use or allow' }).default('single_use'),
  algorithms: list(
    z.enum(ALGORITHMS, { error: `must be one of ${ALGORITHMS.join(', ')} (HS* and none are never accepted)` }),
  )
    .refine((a) => a.length > 0, 'must list at least one algorithm, or be left out')
    .optional(),
}).superRefine((i, ctx) => {
  if (isTrustDomain(i.issuer) && i.jwks_uri === undefined) {
    ctx.addIssue({ code: 'custom', path: ['jwks_uri'], message: 'is required for a SPIFFE trust domain, which has no discovery document (the JWKS of its bundle endpoint or SPIRE OIDC discovery provider)' });
  }
});

function checkMatcher(input: unknown): Checked<Matcher> {
  const pattern = (v: unknown) => typeof v === 'string' && !CONTROL_CHARS.test(v);
  const patterns = (v: unknown) => pattern(v) || (Array.isArray(v) && v.length > 0 && v.every(pattern));
  if (patterns(input)) return { value: input as string | string[] };
  const isObject = typeof input === 'object' && input !== null && !Array.isArray(input);
  if (isObject && Object.keys(input).length === 1 && patterns((input as { not?: unknown }).not)) {
    return { value: input as { not: string | string[] } };
  }
  return fail('must be a glob string, a non-empty list of globs, or {not: glob or list} (no control characters)');
}

/** A mapping of claim keys, checked by hand because zod's record silently drops `__proto__`. */
function claimRecord<T>(checkKey: (key: string) => string | undefined, checkValue: (value: unknown) => Checked<T>) {
  return checked<Record<string, T>>((input) => {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('must be a mapping');
    const issues: Issue[] = [];
    const entries: [string, T][] = [];
    for (const [key, value] of Object.entries(input)) {
      const keyProblem = key === '__proto__' ? 'is not a usable key' : checkKey(key);
      const result = keyProblem ? fail<T>(keyProblem) : checkValue(value);
      if ('value' in result) entries.push([key, result.value]);
      else issues.push(...result.issues.map((i) => ({ message: i.message, path: [key, ...(i.path ?? [])] })));
    }
    return issues.length > 0 ? { issues } : { value: Object.fromEntries(entries) };
  });
}

const templateOf = (target: TemplateTarget) => (value: unknown): Checked<string> => {
  if (typeof value !== 'string') return fail('must be a template string');
  const problem = checkTemplate(value, target);
  return problem ? fail(problem) : { value };
};

const templates = (target: TemplateTarget) =>
  z.array(z.string().superRefine((value, ctx) => {
    const problem = checkTemplate(value, target);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }));

const x509 = z.strictObject({
  uri_sans: templates('uri_san').default(() => []),
  dns_sans: templates('dns_san').default(() => []),
  key_types: list(z.enum(KEY_TYPES, { error: `must be one of ${KEY_TYPES.join(', ')}` }))
    .refine((k) => k.length > 0, 'must list at least one key type')
    .default(() => [...DEFAULT_KEY_TYPES]),
  server_auth: z.boolean().default(false),
});

const reservedClaim = (key: string) =>
  RESERVED_CLAIMS.includes(key) ? `"${key}" is reserved: Leash sets it on every token` : checkClaimKey(key);

const grant = z
  .strictObject({
    scopes: list(z.string().regex(SCOPE_TOKEN, 'is not an RFC 6749 scope token (printable ASCII without space, " or \\)')),
    audiences: list(text).default(() => []),
    ttl: duration.optional(),
    max_ttl: duration.optional(),
    credentials: list(z.enum(['jwt', 'x509'], { error: 'must be jwt or x509' }))
      .refine((c) => c.length > 0, 'must list at least one credential kind')
      .default(() => ['jwt' as const]),
    claims: claimRecord(reservedClaim, templateOf('claim')).default(() => ({})),
    x509: x509.prefault({}),
  })
  .transform((g, ctx): Grant => {
    const ttl = g.ttl ?? Math.min(DEFAULT_TTL, g.max_ttl ?? DEFAULT_TTL);
    const max_ttl = g.max_ttl ?? ttl;
    const flag = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (ttl > max_ttl) flag('max_ttl', `must be at least ttl (${ttl}s), is ${max_ttl}s`);
    if (g.credentials.includes('x509') && g.x509.uri_sans.length + g.x509.dns_sans.length === 0) {
      flag('x509', 'a rule granting x509 needs at least one uri_sans or dns_sans entry');
    }
    if (g.x509.uri_sans.length > 1 && g.x509.uri_sans.some((t) => /^spiffe:/i.test(t))) {
      ctx.addIssue({ code: 'custom', path: ['x509', 'uri_sans'], message: 'a certificate with a SPIFFE ID is an X509-SVID, which carries exactly one URI SAN (use dns_sans for other names)' });
    }
    return { ...g, ttl, max_ttl };
  });

const rule = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ and -'),
  issuer: z.string(),
  match: claimRecord(checkClaimKey, checkMatcher).default(() => ({})),
  grant,
  limits: z
    .strictObject({
      max_active_leases: z
        .number({ error: 'must be a whole number' })
        .int('must be a whole number')
        .positive('must be at least 1')
        .optional(),
    })
    .prefault({}),
});

type Named = { name?: unknown; issuer?: unknown };
const named = (items: unknown): Named[] =>
  Array.isArray(items) ? items.map((i) => (typeof i === 'object' && i !== null ? (i as Named) : {})) : [];

/** Cross-entry checks; also run when entries have other errors, so one load reports everything. */
function checkReferences(input: unknown, ctx: z.RefinementCtx): void {
  const { issuers, rules } = (input ?? {}) as { issuers?: unknown; rules?: unknown };
  const flag = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const firstIndex = (items: Named[], field: 'name' | 'issuer', list: string) => {
    const seen = new Map<unknown, number>();
    items.forEach((item, i) => {
      const value = item[field];
      if (typeof value !== 'string') return;
      const first = seen.get(value);
      if (first === undefined) seen.set(value, i);
      else flag([list, i, field], `duplicate ${field} "${value}" (also at ${list}[${first}])`);
    });
    return seen;
  };
  const issuerNames = firstIndex(named(issuers), 'name', 'issuers');
  // Two entries for one `iss` would make the proof check pick between audiences and keys.
  firstIndex(named(issuers), 'issuer', 'issuers');
  firstIndex(named(rules), 'name', 'rules');
  named(rules).forEach((r, i) => {
    if (typeof r.issuer === 'string' && !issuerNames.has(r.issuer)) {
      const defined = [...issuerNames.keys()].join(', ') || 'none';
      flag(['rules', i, 'issuer'], `unknown issuer "${r.issuer}": name one of the issuers entries (${defined})`);
    }
  });
}

export const policySchema: z.ZodType<Policy> = z
  .strictObject({
    issuers: z.array(issuer).min(1, 'must list at least one trusted issuer'),
    rules: z.array(rule).min(1, 'must list at least one rule'),
  })
  .superRefine((value, ctx) => checkReferences(value, ctx), { when: () => true });
