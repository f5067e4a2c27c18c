/**
 * Templates over verified claims: `{{ claims.NAME }}` or `{{ claims./json/pointer }}`, literal
 * text elsewhere. A claim value is spliced in once and never parsed again, so a value that
 * itself looks like `{{ ... }}` stays plain text.
 */
import { CONTROL_CHARS, checkClaimKey, readClaim, scalarText } from './claims.ts';

export type TemplatePart = string | { key: string };
export interface Template {
  source: string;
  parts: TemplatePart[];
}
export type TemplateTarget = 'claim' | 'uri_san' | 'dns_san';
export type Rendered = { ok: true; value: string } | { ok: false; reason: string };

export class TemplateSyntaxError extends Error {
  override readonly name = 'TemplateSyntaxError';
  readonly code = 'ERR_TEMPLATE_SYNTAX';
}

/** Parses a template; throws TemplateSyntaxError on anything but literal text and claim references. */
export function compileTemplate(source: string): Template {
  const parts: TemplatePart[] = [];
  let at = 0;
  for (;;) {
    const open = source.indexOf('{{', at);
    const close = source.indexOf('}}', at);
    if (close >= 0 && (open < 0 || close < open)) throw new TemplateSyntaxError('"}}" without a matching "{{"');
    if (open < 0) break;
    if (open > at) parts.push(source.slice(at, open));
    const end = source.indexOf('}}', open + 2);
    if (end < 0) throw new TemplateSyntaxError('"{{" is never closed with "}}"');
    const inner = source.slice(open + 2, end).trim();
    const key = /^claims\.([^\s{}]+)$/.exec(inner)?.[1];
    if (key === undefined) {
      throw new TemplateSyntaxError(
        `unknown template expression "{{ ${inner} }}": use {{ claims.NAME }} or {{ claims./json/pointer }}`,
      );
    }
    const keyError = checkClaimKey(key);
    if (keyError) throw new TemplateSyntaxError(keyError);
    parts.push({ key });
    at = end + 2;
  }
  if (at < source.length) parts.push(source.slice(at));
  return { source, parts };
}

// What one claim value may contribute. URI values cannot open a query, fragment or
// percent-escape; DNS values stay inside one label, so the operator fixes the name's shape.
const URI_FRAGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@/-]*$/;
const DNS_FRAGMENT = /^[a-z0-9-]*$/;

function fill(template: Template, claims: Record<string, unknown>, allowed?: RegExp): Rendered {
  let value = '';
  for (const part of template.parts) {
    if (typeof part === 'string') {
      value += part;
      continue;
    }
    const raw = readClaim(claims, part.key);
    if (raw === undefined) return { ok: false, reason: `claim ${part.key} is absent` };
    const text = scalarText(raw);
    if (text === undefined) return { ok: false, reason: `claim ${part.key} is not a string, number or boolean` };
    if (CONTROL_CHARS.test(text)) return { ok: false, reason: `claim ${part.key} contains control characters` };
    if (allowed && !allowed.test(text)) {
      return { ok: false, reason: `claim ${part.key} holds characters not allowed at that place` };
    }
    value += text;
  }
  return { ok: true, value };
}

const URI_CHARS = /^[A-Za-z0-9._~!$&'()*+,;=:@/?#%[\]-]+$/;
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)+)$/;

function hasDotSegment(path: string): boolean {
  return path.split('/').some((segment) => segment === '.' || segment === '..');
}

/** SPIFFE ID of a workload: lowercase trust domain, non-empty path, no dot segments. */
export function isValidSpiffeId(value: string): boolean {
  const m = SPIFFE_ID.exec(value);
  if (!m || value.length > 2048 || m[1]!.length > 255) return false;
  return !hasDotSegment(m[2]!);
}

/** Absolute URI in plain ASCII with no whitespace; `spiffe:` URIs must be valid SPIFFE IDs. */
export function isValidUriSan(value: string): boolean {
  if (/^spiffe:/i.test(value)) return isValidSpiffeId(value);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:./.test(value) || !URI_CHARS.test(value)) return false;
  if (/%(?![0-9A-Fa-f]{2})/.test(value) || value.indexOf('#') !== value.lastIndexOf('#')) return false;
  const path = value.replace(/^[^:]+:(\/\/[^/?#]*)?/, '').split(/[?#]/)[0]!;
  if (hasDotSegment(path)) return false;
  return URL.canParse(value);
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lowercase hostname; `*.` only as the whole first label, and only when the caller allows it. */
export function isValidDnsName(value: string, allowWildcard: boolean): boolean {
  if (value.length > 253) return false;
  const wildcard = allowWildcard && value.startsWith('*.');
  const labels = (wildcard ? value.slice(2) : value).split('.');
  if (wildcard && labels.length < 2) return false;
  return labels.every((label) => DNS_LABEL.test(label));
}

/** Renders a JWT claim value. */
export function renderClaimValue(template: Template, claims: Record<string, unknown>): Rendered {
  return fill(template, claims);
}

export function renderUriSan(template: Template, claims: Record<string, unknown>): Rendered {
  const out = fill(template, claims, URI_FRAGMENT);
  if (out.ok && !isValidUriSan(out.value)) {
    const what = /^spiffe:/i.test(out.value) ? 'SPIFFE ID' : 'absolute URI';
    return { ok: false, reason: `uri SAN ${JSON.stringify(template.source)} did not render to a valid ${what}` };
  }
  return out;
}

export function renderDnsSan(template: Template, claims: Record<string, unknown>): Rendered {
  const out = fill(template, claims, DNS_FRAGMENT);
  // Only the operator can ask for a wildcard: claim values cannot contain `*` (DNS_FRAGMENT).
  const literalWildcard = typeof template.parts[0] === 'string' && template.parts[0].startsWith('*.');
  if (out.ok && !isValidDnsName(out.value, literalWildcard)) {
    return { ok: false, reason: `dns SAN ${JSON.stringify(template.source)} did not render to a valid DNS name` };
  }
  return out;
}

const SAMPLE = 'x';
// A fixed scheme and authority keep claims out of the SPIFFE trust domain or URI host.
// An opaque URI (urn:x:...) must have a literal character after the colon that is not `/`.
const FIXED_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:(?:[^/]|\/\/[^/?#]*[/?#])/;

/**
 * Load-time check of a template for the place it is used. Returns an error message or undefined.
 * Beyond syntax, each placeholder is tried with a sample value, so a template that could never
 * render a valid SAN (uppercase trust domain, stray `*`) fails at load, not on a request.
 */
export function checkTemplate(source: string, target: TemplateTarget): string | undefined {
  let template: Template;
  try {
    template = compileTemplate(source);
  } catch (err) {
    if (err instanceof TemplateSyntaxError) return err.message;
    throw err;
  }
  if (target === 'claim') return undefined;
  const static_ = template.parts.every((part) => typeof part === 'string');
  const sample: Template = {
    source,
    parts: template.parts.map((part) => (typeof part === 'string' ? part : SAMPLE)),
  };
  if (target === 'uri_san') {
    const head = template.parts[0];
    if (!static_ && (typeof head !== 'string' || !FIXED_AUTHORITY.test(head))) {
      return 'placeholders may only follow a literal scheme and authority (e.g. spiffe://example.org/...)';
    }
    if (renderUriSan(sample, {}).ok) return undefined;
    const what = /^spiffe:/i.test(source) ? 'SPIFFE ID' : 'absolute URI';
    return static_ ? `not a valid ${what}` : `cannot render a valid ${what} (tried each placeholder as "${SAMPLE}")`;
  }
  if (renderDnsSan(sample, {}).ok) return undefined;
  return static_
    ? 'not a valid lowercase DNS name (a wildcard only as a leading "*.")'
    : `cannot render a valid lowercase DNS name (tried each placeholder as "${SAMPLE}")`;
}
