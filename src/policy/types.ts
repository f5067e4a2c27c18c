import type { LeaseKind } from '../leases/lease.ts';

export type ReplayMode = 'single_use' | 'allow';

export interface TrustedIssuer {
  name: string;
  /** Exact `iss` the proof must carry. */
  issuer: string;
  /** The proof's `aud` must contain at least one of these. */
  audiences: string[];
  /** When absent, `<issuer>/.well-known/openid-configuration` gives it. */
  jwks_uri?: string;
  /** seconds */
  max_proof_age: number;
  replay: ReplayMode;
  /** Accepted signing algorithms; defaults to every asymmetric one Leash supports. */
  algorithms?: string[];
}

/** A match value: a glob string, any-of list, or a negation of either. */
export type Matcher = string | string[] | { not: string | string[] };

export type KeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

export interface X509Grant {
  uri_sans: string[];
  dns_sans: string[];
  key_types: KeyType[];
  server_auth: boolean;
}

export interface Grant {
  scopes: string[];
  audiences: string[];
  /** seconds, used when the request names none */
  ttl: number;
  /** seconds */
  max_ttl: number;
  credentials: LeaseKind[];
  /** Extra JWT claims; values are templates over verified claims. */
  claims: Record<string, string>;
  x509: X509Grant;
}

export interface Rule {
  name: string;
  /** Name of an entry in `issuers`. */
  issuer: string;
  match: Record<string, Matcher>;
  grant: Grant;
  limits: { max_active_leases?: number };
}

export interface Policy {
  issuers: TrustedIssuer[];
  rules: Rule[];
}

/** What the caller asks for; absent fields mean "what the rule grants by default". */
export interface GrantRequest {
  kind: LeaseKind;
  scopes?: string[];
  audiences?: string[];
  ttl?: number;
  /**
   * For a certificate: what keeps the request's CSR (its key type, the names and purposes it asks
   * for) from fitting one rule's x509 grant, or undefined when it fits. A rule it does not fit
   * cannot grant, like one that lacks a scope, so selection goes on to the next candidate.
   */
  x509Fit?: (x509: X509Decision) => Misfit | undefined;
}

/** The x509 part of a rule's grant with its SAN templates filled. */
export interface X509Decision {
  uri_sans: string[];
  dns_sans: string[];
  key_types: KeyType[];
  server_auth: boolean;
}

/** Why a request does not fit a rule, and the error to answer with when that rule's refusal is the one sent. */
export interface Misfit {
  reason: string;
  cause: unknown;
}

export type DenyCode = 'invalid_request' | 'invalid_scope' | 'invalid_target';

/** One line of the explanation: which rule was looked at and what held or failed. */
export interface TraceEntry {
  rule: string;
  outcome: 'not_candidate' | 'insufficient' | 'selected';
  reasons: string[];
}

export interface Allowed {
  allowed: true;
  rule: Rule;
  scopes: string[];
  audiences: string[];
  ttl: number;
  /** Grant claims with templates filled from verified claims. */
  claims: Record<string, string>;
  x509: X509Decision;
  max_active_leases: number | undefined;
  trace: TraceEntry[];
}

export interface Denied {
  allowed: false;
  code: DenyCode;
  /** Safe to send to the caller: names rules and claim keys, never claim values of secrets. */
  reason: string;
  /** The error behind the refusal, when a check outside the policy (the CSR's) made it. */
  cause?: unknown;
  trace: TraceEntry[];
}

export type Decision = Allowed | Denied;
