import { createHash } from 'node:crypto';
import type { JWK } from 'jose';
import type { TrustedIssuer } from '../policy/types.ts';
import { fetchJson } from './http-json.ts';
import { checkHeader } from './header-checks.ts';
import { acceptedUntil, checkRegisteredClaims } from './fast-verify.ts';
import type { SignJob, Signed, Signer } from '../crypto/signer.ts';
import { loopSigner } from '../crypto/on-loop.ts';
import { sharedSignatureThread } from '../crypto/signature-thread.ts';
import { JwksCache } from './jwks-cache.ts';
import { selectKeys } from './key-select.ts';
import { ProofError, isProofError } from './proof-error.ts';
import { ProofUnderCheck, checkSignature } from './signature-check.ts';
import { checkSize, MAX_PROOF_BYTES, peekToken } from './token-peek.ts';
import { trustDomainOf } from '../policy/trust-domain.ts';

export interface ProofVerifierOptions {
  issuers: TrustedIssuer[];
  /** Tolerance for clock differences with issuers, in seconds (default 30). */
  clockSkewSeconds?: number;
  /**
   * Check signatures on a worker thread (default) or on the event loop. Off pays when every core
   * already runs an API process: the thread's hand-offs then only add waiting.
   */
  signatureThread?: boolean;
  /** Where signatures are checked (and access tokens signed); overrides signatureThread (tests). */
  signer?: Signer;
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds (tests move it). */
  now?: () => number;
  /** Least time between two JWKS refreshes caused by requests (unknown kid); default 30 s. */
  jwksMinRefreshIntervalMs?: number;
  /** Older keys are refreshed in the background; stale keys keep serving if that fails. Default 10 min. */
  jwksMaxAgeMs?: number;
  /** Keys not refetched for this long stop serving until a fetch succeeds (503 meanwhile). Default 1 h. */
  jwksMaxStaleMs?: number;
  httpTimeoutMs?: number;
  maxTokenBytes?: number;
  onJwksFetch?: (issuerName: string, ok: boolean) => void;
}

export interface VerifiedProof {
  issuer: TrustedIssuer;
  /** Verified claims: the only input policy matching and templates may read. */
  claims: Record<string, unknown>;
  subject: string;
  jti: string | null;
  /**
   * `${issuer.name}:jti:${jti}`, or without a jti `${issuer.name}:sha256:${base64url(sha256(signing input))}`,
   * the signing input being `header.payload` as sent: the signature segment is left out because
   * one proof has many valid spellings of it (ECDSA (r, s) and (r, n - s); base64url's unused
   * trailing bits), and each would otherwise be a fresh replay key for the same proof.
   */
  replayKey: string;
  /** The proof's `exp`, epoch seconds. */
  expiresAt: number;
  /**
   * The first whole second (epoch) from which this proof is refused anyway, skew included: by
   * min(exp, iat + max_proof_age). A replay guard only has to remember the proof until then (and a
   * second more): far shorter than `exp` for long-lived tokens such as Kubernetes' one-year ones.
   */
  acceptedUntil: number;
}

/**
 * A proof whose claims are checked and whose signature is being checked (on the signature thread,
 * unless that is turned off). The caller may decide and build from `unchecked` meanwhile, never
 * act on it: only what verified() resolves to is a proof.
 */
export interface PendingProof {
  /** Every check passed but the signature's. */
  readonly unchecked: VerifiedProof;
  /**
   * The proof once its signature holds; rejects with the refusal (bad_signature, key_mismatch)
   * otherwise. Must be awaited once start() has handed it out, even on the way to a refusal.
   * `then` is signed only if the signature holds, in the same trip to the signature thread as its
   * check when it comes before that trip leaves (the caller has not awaited anything since start()).
   */
  verified(then?: SignJob): Promise<VerifiedProof>;
  /** After verified() resolved: the signature of its `then`, or why it could not be made. */
  readonly signed: Signed | undefined;
}

/**
 * Seconds a replay guard must remember a proof: until a second after it could no longer be accepted
 * anyway (a margin for the guard's clock and whole-second expiry).
 */
export function replayTtlSeconds(proof: Pick<VerifiedProof, 'acceptedUntil'>, nowMs: number): number {
  return Math.max(1, Math.ceil(proof.acceptedUntil + 1 - nowMs / 1000));
}

/**
 * Verifies workload proofs (subject tokens) against the trusted issuers of the policy. Each step
 * below is one function; any refusal throws a ProofError (`invalid_request`) naming what failed,
 * and an issuer whose keys cannot be had at all gives a 503 `temporarily_unavailable`.
 */
export class ProofVerifier {
  private issuers: TrustedIssuer[];
  private readonly skew: number;
  private readonly now: () => number;
  private readonly maxTokenBytes: number;
  private readonly jwks: JwksCache;
  private readonly signer: Signer;

  constructor(opts: ProofVerifierOptions) {
    this.issuers = checkIssuerConfig(opts.issuers);
    this.skew = opts.clockSkewSeconds ?? 30;
    this.signer = opts.signer ?? ((opts.signatureThread ?? true) ? sharedSignatureThread() : loopSigner);
    if (!Number.isFinite(this.skew) || this.skew < 0) throw new TypeError('clockSkewSeconds must be >= 0');
    this.now = opts.now ?? Date.now;
    this.maxTokenBytes = opts.maxTokenBytes ?? MAX_PROOF_BYTES;
    const fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    const timeoutMs = opts.httpTimeoutMs ?? 5000;
    this.jwks = new JwksCache({
      getJson: (url) => fetchJson(url, { fetch: fetchImpl, timeoutMs }),
      now: this.now,
      minRefreshIntervalMs: opts.jwksMinRefreshIntervalMs ?? 30_000,
      maxAgeMs: opts.jwksMaxAgeMs ?? 600_000,
      maxStaleMs: opts.jwksMaxStaleMs ?? 3_600_000,
      ...(opts.onJwksFetch ? { onFetch: opts.onJwksFetch } : {}),
    });
  }

  /** Policy reload: issuers whose `issuer` and `jwks_uri` are unchanged keep their cached keys. */
  setIssuers(issuers: TrustedIssuer[]): void {
    this.issuers = checkIssuerConfig(issuers);
    this.jwks.retain(this.issuers);
  }

  async verify(token: string): Promise<VerifiedProof> {
    return (await this.start(token)).verified();
  }

  /**
   * verify() up to the signature, whose check is then under way: the caller works out what it
   * needs from the claims meanwhile and may have a signature of its own made in the same trip
   * (PendingProof.verified). A proof whose claims are refused waits for its signature here: a bad
   * signature outranks whatever unsigned claims got wrong.
   */
  async start(token: string): Promise<PendingProof> {
    const { issuer, alg, claims, candidates } = await this.prepare(token);
    let proof: VerifiedProof;
    try {
      this.checkClaims(issuer, claims);
      proof = toVerifiedProof(token, issuer, claims, this.skew);
    } catch (error) {
      // Held back: a bad signature outranks whatever the unsigned claims got wrong.
      await checkSignature(this.signer, token, alg, candidates, undefined, undefined);
      throw error;
    }
    return new ProofUnderCheck(proof, this.signer, token, alg, candidates);
  }

  /** The steps before the signature: size, decoding, issuer, header, and the keys to try. */
  private async prepare(token: string): Promise<{ issuer: TrustedIssuer; alg: string; claims: Record<string, unknown>; candidates: JWK[] }> {
    checkSize(token, this.maxTokenBytes);
    const peeked = peekToken(token);
    const issuer = findIssuer(this.issuers, peeked.claims);
    const alg = checkHeader(peeked.header, issuer);
    const candidates = await this.candidateKeys(issuer, alg, peeked.header.kid as string | undefined);
    return { issuer, alg, claims: peeked.claims, candidates };
  }

  private checkClaims(issuer: TrustedIssuer, claims: Record<string, unknown>): void {
    checkRegisteredClaims(claims, {
      issuer: issuer.issuer,
      audiences: issuer.audiences,
      now: Math.floor(this.now() / 1000),
      skewSeconds: this.skew,
      maxAgeSeconds: issuer.max_proof_age,
    });
  }

  /** Keys come only from the issuer's JWKS; an unknown kid gets one rate-limited refresh. */
  private async candidateKeys(issuer: TrustedIssuer, alg: string, kid: string | undefined): Promise<JWK[]> {
    const keys = await this.jwks.keysFor(issuer);
    try {
      return selectKeys(keys, alg, kid);
    } catch (err) {
      if (!(isProofError(err) && err.reason === 'unknown_kid')) throw err;
      const fresh = await this.jwks.refreshAfterUnknownKid(issuer);
      if (!fresh) throw err;
      return selectKeys(fresh, alg, kid);
    }
  }
}

/**
 * The policy loader validates issuers too; this catches what would otherwise surface per request
 * as a confusing refusal (jose rejecting a NaN max age) or a shared cache entry (duplicate names).
 */
function checkIssuerConfig(issuers: readonly TrustedIssuer[]): TrustedIssuer[] {
  const names = new Set<string>();
  for (const i of issuers) {
    const where = `trusted issuer ${JSON.stringify(i.name)}`;
    if (!i.name || names.has(i.name)) throw new TypeError(`${where}: name is empty or not unique`);
    names.add(i.name);
    if (typeof i.issuer !== 'string' || i.issuer === '') throw new TypeError(`${where}: issuer is empty`);
    if (!Array.isArray(i.audiences) || i.audiences.length === 0) throw new TypeError(`${where}: audiences is empty`);
    if (!Number.isFinite(i.max_proof_age) || i.max_proof_age <= 0) throw new TypeError(`${where}: max_proof_age must be > 0`);
  }
  return [...issuers];
}

/**
 * Picks the configured issuer for the (unverified) `iss`. Exact string match only: no
 * normalisation, since a trailing slash or case change is a different issuer to a verifier.
 */
function findIssuer(issuers: readonly TrustedIssuer[], claims: Record<string, unknown>): TrustedIssuer {
  const iss = claims.iss;
  if (iss === undefined) return trustDomainEntry(issuers, claims);
  if (typeof iss !== 'string') throw new ProofError('malformed', 'subject_token iss claim is not a string');
  const matches = issuers.filter((i) => i.issuer === iss);
  if (matches.length === 0) {
    throw new ProofError('untrusted_issuer', 'subject_token issuer is not trusted', `iss ${JSON.stringify(iss.slice(0, 200))}`);
  }
  return byAudience(matches, claims);
}

/**
 * A JWT-SVID need not carry `iss` (JWT-SVID spec section 3): the trust domain of its `sub`, a
 * SPIFFE ID, picks the `spiffe://<trust domain>` entry. Any other token without `iss` is refused.
 */
function trustDomainEntry(issuers: readonly TrustedIssuer[], claims: Record<string, unknown>): TrustedIssuer {
  const domain = trustDomainOf(claims.sub);
  const matches = domain === null ? [] : issuers.filter((i) => i.issuer === domain);
  if (matches.length === 0) throw new ProofError('missing_claim', 'subject_token has no iss claim');
  return byAudience(matches, claims);
}

function byAudience(matches: readonly TrustedIssuer[], claims: Record<string, unknown>): TrustedIssuer {
  const first = matches[0]!;
  if (matches.length === 1) return first;
  // Several entries for one iss (e.g. per audience): the unverified aud only chooses which entry's
  // checks apply; that entry's audience check still runs on the verified token.
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  return matches.find((i) => i.audiences.some((a) => aud.includes(a))) ?? first;
}

function toVerifiedProof(token: string, issuer: TrustedIssuer, claims: Record<string, unknown>, skewSeconds: number): VerifiedProof {
  const { sub, jti, exp, iat } = claims;
  if (typeof sub !== 'string' || sub === '') throw new ProofError('malformed', 'subject_token sub claim is not a non-empty string');
  if (jti !== undefined && (typeof jti !== 'string' || jti === '')) {
    throw new ProofError('malformed', 'subject_token jti claim is not a non-empty string');
  }
  // Both were checked to be numbers (iat may be absent from an SVID); JSON can still spell an infinite one (1e999).
  if (!Number.isFinite(exp) || (iat !== undefined && !Number.isFinite(iat))) {
    throw new ProofError('malformed', 'subject_token exp or iat claim is not a finite number');
  }
  const replayKey =
    jti === undefined
      ? `${issuer.name}:sha256:${createHash('sha256').update(token.slice(0, token.lastIndexOf('.'))).digest('base64url')}`
      : `${issuer.name}:jti:${jti}`;
  const expiresAt = exp as number;
  return {
    issuer,
    claims,
    subject: sub,
    jti: jti ?? null,
    replayKey,
    expiresAt,
    acceptedUntil: acceptedUntil(expiresAt, iat as number | undefined, skewSeconds, issuer.max_proof_age),
  };
}
