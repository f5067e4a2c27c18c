/**
 * The policy decision: which rule, if any, grants this request for this proof. Pure and
 * synchronous; it runs on every exchange, so per-rule work is compiled once and cached.
 */
import type { LeaseKind } from '../leases/lease.ts';
import { matchRule } from './match.ts';
import { compileTemplate, renderClaimValue, renderDnsSan, renderUriSan, type Rendered, type Template } from './template.ts';
import type { Allowed, Decision, DenyCode, GrantRequest, Policy, Rule, TraceEntry } from './types.ts';

export interface Proof {
  /** Name of the trusted issuer entry the proof was verified against (not its URL). */
  issuer: string;
  /** Verified claims of the proof. */
  claims: Record<string, unknown>;
}

interface CompiledRule {
  scopes: ReadonlySet<string>;
  audiences: ReadonlySet<string>;
  credentials: ReadonlySet<LeaseKind>;
  claims: [string, Template][];
  uriSans: Template[];
  dnsSans: Template[];
}

type Granted = Omit<Allowed, 'allowed' | 'rule' | 'trace' | 'max_active_leases'>;
type Refusal = { code: DenyCode; reason: string; cause?: unknown };

const compiledRules = new WeakMap<Rule, CompiledRule>();

function compileRule(rule: Rule): CompiledRule {
  let compiled = compiledRules.get(rule);
  if (!compiled) {
    const { grant } = rule;
    compiled = {
      scopes: new Set(grant.scopes),
      audiences: new Set(grant.audiences),
      credentials: new Set(grant.credentials),
      claims: Object.entries(grant.claims).map(([name, source]) => [name, compileTemplate(source)]),
      uriSans: grant.x509.uri_sans.map(compileTemplate),
      dnsSans: grant.x509.dns_sans.map(compileTemplate),
    };
    compiledRules.set(rule, compiled);
  }
  return compiled;
}

/** The requested values, deduplicated in request order, or the whole grant when none are named. */
function narrow(requested: string[] | undefined, granted: ReadonlySet<string>): { values: string[]; missing?: string } {
  if (!requested || requested.length === 0) return { values: [...granted] };
  const values = [...new Set(requested)];
  return { values, missing: values.find((value) => !granted.has(value)) };
}

type Render = (template: Template, claims: Record<string, unknown>) => Rendered;

/** Every template rendered, or the first failure's reason. */
function renderAll(templates: Template[], claims: Record<string, unknown>, render: Render): string[] | string {
  const values: string[] = [];
  for (const template of templates) {
    const out = render(template, claims);
    if (!out.ok) return out.reason;
    values.push(out.value);
  }
  return values;
}

/** Whether this one rule alone grants the whole request; its first shortfall otherwise. */
function grantWhole(rule: Rule, claims: Record<string, unknown>, request: GrantRequest): Granted | Refusal {
  const compiled = compileRule(rule);
  const { grant, name } = rule;
  if (!compiled.credentials.has(request.kind)) {
    return { code: 'invalid_request', reason: `rule ${name} does not issue ${String(request.kind)} credentials` };
  }
  const scopes = narrow(request.scopes, compiled.scopes);
  if (scopes.missing !== undefined) {
    return { code: 'invalid_scope', reason: `scope ${JSON.stringify(scopes.missing)} is not granted by rule ${name}` };
  }
  const audiences = narrow(request.audiences, compiled.audiences);
  if (audiences.missing !== undefined) {
    return { code: 'invalid_target', reason: `audience ${JSON.stringify(audiences.missing)} is not granted by rule ${name}` };
  }
  const ttl = request.ttl ?? grant.ttl;
  if (!Number.isSafeInteger(ttl) || ttl < 1) {
    return { code: 'invalid_request', reason: 'ttl must be a whole number of seconds, at least 1' };
  }
  if (ttl > grant.max_ttl) {
    return { code: 'invalid_request', reason: `ttl ${ttl}s exceeds max_ttl ${grant.max_ttl}s of rule ${name}` };
  }
  const rendered: Record<string, string> = {};
  for (const [claim, template] of compiled.claims) {
    const out = renderClaimValue(template, claims);
    if (!out.ok) return { code: 'invalid_request', reason: `rule ${name} claims.${claim}: ${out.reason}` };
    rendered[claim] = out.value;
  }
  const { key_types, server_auth } = grant.x509;
  const x509 = { uri_sans: [] as string[], dns_sans: [] as string[], key_types: [...key_types], server_auth };
  if (request.kind === 'x509') {
    const uris = renderAll(compiled.uriSans, claims, renderUriSan);
    if (typeof uris === 'string') return { code: 'invalid_request', reason: `rule ${name} x509.uri_sans: ${uris}` };
    const dns = renderAll(compiled.dnsSans, claims, renderDnsSan);
    if (typeof dns === 'string') return { code: 'invalid_request', reason: `rule ${name} x509.dns_sans: ${dns}` };
    x509.uri_sans = uris;
    x509.dns_sans = dns;
    const misfit = request.x509Fit?.(x509);
    if (misfit) return { code: 'invalid_request', reason: `rule ${name}: ${misfit.reason}`, cause: misfit.cause };
  }
  return { scopes: scopes.values, audiences: audiences.values, ttl, claims: rendered, x509 };
}

/**
 * Decides a request and explains the decision. Candidates are the rules of the proof's issuer
 * whose every match key holds; the first candidate, in file order, that alone grants the whole
 * request is used. Grants are never combined and a request is never silently trimmed: when no
 * candidate suffices, the first candidate's first shortfall is the answer.
 */
export function explain(policy: Policy, proof: Proof, request: GrantRequest): Decision {
  const trace: TraceEntry[] = [];
  let refusal: Refusal | undefined;
  for (const rule of policy.rules) {
    if (rule.issuer !== proof.issuer) continue;
    const match = matchRule(rule, proof.claims);
    if (!match.matched) {
      trace.push({ rule: rule.name, outcome: 'not_candidate', reasons: match.reasons });
      continue;
    }
    const outcome = grantWhole(rule, proof.claims, request);
    if ('code' in outcome) {
      trace.push({ rule: rule.name, outcome: 'insufficient', reasons: [...match.reasons, outcome.reason] });
      refusal ??= outcome;
      continue;
    }
    trace.push({ rule: rule.name, outcome: 'selected', reasons: match.reasons });
    return { allowed: true, rule, max_active_leases: rule.limits.max_active_leases, trace, ...outcome };
  }
  // Claim values stay out of the reason: it goes back to a caller who may not own the proof.
  if (!refusal) return { allowed: false, code: 'invalid_request', reason: 'no policy rule matches this proof', trace };
  return { allowed: false, trace, ...refusal };
}
