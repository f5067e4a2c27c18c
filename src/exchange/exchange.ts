import { LeashError, StoreUnavailableError } from '../errors.ts';
import type { Deps } from '../deps.ts';
import type { Lease } from '../leases/lease.ts';
import { BudgetExceededError, LeaseExistsError, LeaseLimitError, ProofReplayedError, type CreateOptions } from '../leases/store.ts';
import { RATE_LIMIT_WINDOW_MS, rateLimited } from '../rate-limit/rate-limiter.ts';
import { newLeaseId } from '../leases/lease-id.ts';
import { explain } from '../policy/decide.ts';
import type { Allowed, Decision, Misfit, X509Decision } from '../policy/types.ts';
import { replayTtlSeconds, type PendingProof, type VerifiedProof } from '../proofs/proof-verifier.ts';
import type { Signed } from '../crypto/signer.ts';
import { checkCsrAgainstGrant, parseCsr, type ParsedCsr } from '../mint/x509/csr.ts';
import { generateSerialHex } from '../mint/x509/issuer.ts';
import { accessTokenResponse, accessTokenSignJob } from './mint-access-token.ts';
import { MAX_OWN_TOKEN_CHARS } from '../mint/jwt/verify-own.ts';
import { mintCertificate } from './mint-certificate.ts';
import { allowedEvent, auditDenied } from './audit-exchange.ts';
import type { AuditEvent } from '../audit/events.ts';
import { NotReplicatedError } from '../redis/replicated-write.ts';
import { mayHaveReachedRedis } from '../redis/connect.ts';
import { heldAcrossOutage, mayBeUndoneElsewhere } from './replay-after-outage.ts';
import { abandon, type ReplayClaim } from './abandoned-leases.ts';
import type { ExchangeContext, ExchangeRequest, ExchangeResponse } from './request.ts';

/**
 * verify -> decide -> lease -> (signature holds) -> record -> mint. The proof's signature is
 * checked on the signature thread while the exchange decides and builds the lease and its access
 * token from the claims; the token is signed in that same trip, only if the check holds. A
 * certificate request waits for the check first: its CSR, which counts in choosing the rule, is
 * read only from a proof that holds.
 * Nothing is acted on before it holds, and any refusal made meanwhile waits for it (refused()).
 * The lease write also claims the proof, charges the subject's budget and records the allow event,
 * atomically; a credential is only handed out after it, and any refusal before it leaves no lease
 * and no replay record behind. A JWT that could not be signed is refused before anything is written.
 */
export async function exchange(deps: Deps, req: ExchangeRequest, ctx: ExchangeContext): Promise<ExchangeResponse> {
  let pending: PendingProof | undefined;
  let proof: VerifiedProof | undefined;
  let decision: Decision | undefined;
  try {
    pending = await deps.proofs.start(req.subjectToken);
    // A certificate request waits for the proof's signature before its CSR is read at all: what a
    // forged proof may cost stays the proof's check alone.
    if (req.kind === 'x509') proof = await pending.verified();
    const csr = req.kind === 'x509' ? parseCsr(req.csr!) : undefined;
    decision = decide(deps, proof ?? pending.unchecked, req, csr);
    if (!decision.allowed) throw decision.cause instanceof LeashError ? decision.cause : new LeashError(decision.code, decision.reason);
    const lease = buildLease(deps, req, ctx, pending.unchecked, decision);
    if (csr) checkCertificateAuthority(deps, lease);
    const accessToken = req.kind === 'jwt' ? accessTokenSignJob(deps, lease, decision) : undefined;
    proof ??= await pending.verified(accessToken);
    const token = accessToken ? signedToken(accessToken.signingInput, pending.signed) : undefined;
    if (token !== undefined) refuseOversized(token);
    const replay = replayClaim(deps, proof);
    await recordLease(deps, proof, lease, decision, replay, allowedEvent(deps, ctx, req, proof, decision, lease));
    const response = token !== undefined ? accessTokenResponse(req, lease, token) : await mintCertificateOrRevoke(deps, lease, decision, csr!, replay);
    deps.metrics.exchanges.inc({ outcome: 'issued', code: '', rule: lease.rule, kind: lease.kind });
    return response;
  } catch (err) {
    throw await refused(deps, ctx, req, pending, proof, decision, err);
  }
}

/**
 * Audits and counts a refusal. One made while the proof's signature was still being checked waits
 * for that check: a bad signature outranks it, and a proof that holds is named in the audit.
 */
async function refused(
  deps: Deps,
  ctx: ExchangeContext,
  req: ExchangeRequest,
  pending: PendingProof | undefined,
  proof: VerifiedProof | undefined,
  decision: Decision | undefined,
  err: unknown,
): Promise<LeashError> {
  if (pending && !proof) {
    try {
      proof = await pending.verified();
    } catch (signatureErr) {
      err = signatureErr;
    }
  }
  // Worked out from claims whose signature did not hold: nothing to audit.
  if (!proof) decision = undefined;
  const e = err instanceof LeashError ? err : new LeashError('server_error', 'the exchange failed', { cause: err, detail: String(err) });
  await auditDenied(deps, ctx, req, proof, decision, e).catch((auditErr) =>
    deps.log.error({ err: auditErr, request_id: ctx.requestId }, 'audit write failed for a refused exchange'),
  );
  const rule = decision?.allowed ? decision.rule.name : '';
  deps.metrics.exchanges.inc({ outcome: e.code === 'temporarily_unavailable' || e.status >= 500 ? 'error' : 'denied', code: e.code, rule, kind: req.kind });
  return e;
}

function decide(deps: Deps, proof: VerifiedProof, req: ExchangeRequest, csr: ParsedCsr | undefined): Decision {
  return explain(deps.policy(), { issuer: proof.issuer.name, claims: proof.claims }, {
    kind: req.kind,
    ...(req.scopes ? { scopes: req.scopes } : {}),
    ...(req.audiences ? { audiences: req.audiences } : {}),
    ...(req.ttl !== undefined ? { ttl: req.ttl } : {}),
    ...(csr ? { x509Fit: (grant: X509Decision) => csrMisfit(csr, grant) } : {}),
  });
}

/** The CSR's key type, names and purposes against one rule's grant: a rule it does not fit cannot grant it. */
function csrMisfit(csr: ParsedCsr, grant: X509Decision): Misfit | undefined {
  try {
    checkCsrAgainstGrant(csr, grant);
    return undefined;
  } catch (err) {
    if (err instanceof LeashError) return { reason: err.message, cause: err };
    throw err;
  }
}

/**
 * Refused before anything is written: a token Leash would not accept back (introspection,
 * downscoping, `leash/verify` stop at MAX_OWN_TOKEN_CHARS) is no credential. Proofs may be twice
 * that long, so a long subject or task id, or many scopes and audiences, can get here.
 */
function refuseOversized(token: string): void {
  if (token.length <= MAX_OWN_TOKEN_CHARS) return;
  throw new LeashError(
    'invalid_request',
    `the access token would be ${token.length} characters, over the ${MAX_OWN_TOKEN_CHARS} that Leash accepts back; ask for fewer scopes or audiences, or use a shorter subject or task_id`,
  );
}

function signedToken(signingInput: string, signed: Signed | undefined): string {
  if (!signed?.ok) {
    const cause = signed?.error ?? new Error('no signature was made');
    throw new LeashError('server_error', 'the credential could not be minted', { status: 500, cause, detail: String(cause) });
  }
  return `${signingInput}.${signed.signature}`;
}

/**
 * Refused before anything is written: no CA, or a certificate that would outlive the CA's chain
 * (which a relying party would refuse). An expired CA is the operator's to mend; a CA that merely
 * ends sooner than this lease could still issue a shorter one.
 */
function checkCertificateAuthority(deps: Deps, lease: Lease): void {
  const ca = deps.ca;
  if (!ca) throw new LeashError('invalid_request', 'this broker has no certificate authority configured');
  if (lease.expires_at <= ca.notAfter) return;
  const caEnds = new Date(ca.notAfter * 1000).toISOString();
  if (ca.notAfter <= lease.issued_at) {
    throw new LeashError('server_error', `the CA's certificate chain expired at ${caEnds}: no certificate can be issued until it is renewed`, { status: 500 });
  }
  throw new LeashError(
    'invalid_request',
    `a certificate of ${lease.expires_at - lease.issued_at}s would outlive the CA's certificate chain, which expires at ${caEnds}: ask for a ttl of at most ${ca.notAfter - lease.issued_at}s`,
  );
}

/** The one place a lease is made; an x509 lease has its certificate's serial from the start. */
function buildLease(deps: Deps, req: ExchangeRequest, ctx: ExchangeContext, proof: VerifiedProof, decision: Allowed): Lease {
  const issuedAt = Math.floor(deps.now() / 1000);
  return {
    id: newLeaseId(proof.subject),
    kind: req.kind,
    status: 'active',
    rule: decision.rule.name,
    issuer: proof.issuer.name,
    subject: proof.subject,
    scopes: decision.scopes,
    audiences: decision.audiences,
    task_id: req.taskId ?? null,
    serial: req.kind === 'x509' ? generateSerialHex() : null,
    issued_at: issuedAt,
    expires_at: issuedAt + decision.ttl,
    revoked_at: null,
    ended_at: null,
    reason: null,
    revoked_by: null,
    proof_iss: proof.issuer.issuer,
    proof_sub: proof.subject,
    proof_jti: proof.jti,
    client_addr: ctx.clientAddr,
  };
}

/**
 * A certificate is issued after its lease is written; if that fails, nothing was handed out, so the
 * lease is ended and the proof freed (with retries), as for a write that was not confirmed.
 */
async function mintCertificateOrRevoke(deps: Deps, lease: Lease, decision: Allowed, csr: ParsedCsr, replay: ReplayClaim): Promise<ExchangeResponse> {
  try {
    return await mintCertificate(deps, lease, decision, csr);
  } catch (err) {
    await abandon(deps, lease, replay, 'minting failed');
    throw new LeashError('server_error', 'the credential could not be minted', { status: 500, cause: err, detail: `lease ${lease.id}: ${String(err)}` });
  }
}

/** The proof's claim, made with its lease: single-use proofs only. */
function replayClaim(deps: Deps, proof: VerifiedProof): ReplayClaim {
  return proof.issuer.replay === 'single_use' ? { key: proof.replayKey, ttlSeconds: replayTtlSeconds(proof, deps.now()) } : undefined;
}

async function recordLease(deps: Deps, proof: VerifiedProof, lease: Lease, decision: Allowed, replay: ReplayClaim, audit: AuditEvent): Promise<void> {
  const opts: CreateOptions = { audit };
  if (decision.max_active_leases !== undefined) opts.maxActive = decision.max_active_leases;
  // The proof is claimed in the same atomic step as the lease: one round trip, and a refusal
  // (lease limit, budget) leaves it unclaimed so it can be tried again; a write whose outcome is
  // unknown (store down) is undone below, its claim freed.
  if (replay) opts.replay = replay;
  // The subject's budget is charged in that step too, past the replay check: replays of a leaked,
  // used proof cannot lock its subject out (they count against their address only).
  const perSubject = deps.config.rateLimitPerSubject;
  if (perSubject > 0) opts.budget = { key: `sub:${proof.issuer.name}:${proof.subject}`, limit: perSubject, windowMs: RATE_LIMIT_WINDOW_MS };
  try {
    await createFreeingAbandonedProof(deps, lease, opts);
  } catch (err) {
    if (err instanceof ProofReplayedError) {
      if (replay && (await mayBeUndoneElsewhere(deps, lease.subject, replay.key))) throw heldAcrossOutage();
      throw new LeashError('invalid_request', 'subject_token has already been exchanged (single use)');
    }
    // A fresh id already written is this write sent twice (ioredis Cluster resends a command whose
    // node's connection closed): the first send wrote it, and its answer is lost. Undone as such.
    if (err instanceof LeaseExistsError) {
      await abandon(deps, lease, replay, 'store unavailable');
      throw new StoreUnavailableError(`redis create: lease ${lease.id} was written by an earlier send whose answer was lost`, err);
    }
    if (err instanceof BudgetExceededError) throw rateLimited('subject', err.retryAfterMs);
    if (err instanceof LeaseLimitError) {
      throw new LeashError('invalid_request', `this subject already holds the maximum of ${err.limit} active leases under rule ${lease.rule}`);
    }
    // Written but not confirmed by enough replicas, or maybe written (Redis never answered): no
    // credential is handed out (503), so the lease is ended and the proof freed, with retries.
    if (err instanceof StoreUnavailableError && mayHaveReachedRedis(err)) {
      await abandon(deps, lease, replay, err instanceof NotReplicatedError ? 'not replicated' : 'store unavailable');
    }
    throw err;
  }
}

/**
 * A proof held by a lease this process abandoned (a 503 whose write it could not confirm) is the
 * CI job's retry of that 503: it is freed now and the lease written, rather than refused as a
 * replay until the next try at undoing the abandoned lease.
 */
async function createFreeingAbandonedProof(deps: Deps, lease: Lease, opts: CreateOptions): Promise<void> {
  try {
    await deps.store.create(lease, opts);
  } catch (err) {
    if (!(err instanceof ProofReplayedError && opts.replay && (await deps.abandoned.releaseNow(opts.replay.key)))) throw err;
    await deps.store.create(lease, opts);
  }
}

