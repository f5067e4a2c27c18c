import { LOGGED_WITH_REQUEST, type AuditEvent } from '../audit/events.ts';
import type { Deps } from '../deps.ts';
import type { LeashError } from '../errors.ts';
import type { Lease } from '../leases/lease.ts';
import { readClaim } from '../policy/match.ts';
import type { Allowed, Decision } from '../policy/types.ts';
import type { VerifiedProof } from '../proofs/proof-verifier.ts';
import type { ExchangeContext, ExchangeRequest } from './request.ts';

/** `<code>: <description>`; a refusal with a finer reason names it (`invalid_request: malformed_claims: ...`). */
const deniedReason = (error: LeashError): string =>
  error.reason === undefined ? `${error.code}: ${error.description}` : `${error.code}: ${error.reason}: ${error.description}`;

function asked(req: ExchangeRequest): Record<string, unknown> {
  return { kind: req.kind, scopes: req.scopes ?? null, audiences: req.audiences ?? null, ttl: req.ttl ?? null, task_id: req.taskId ?? null };
}

/** The claims the selected rule looked at: enough to explain the match, nothing more. */
function matchedClaims(decision: Allowed, proof: VerifiedProof): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(decision.rule.match)) out[key] = readClaim(proof.claims, key) ?? null;
  return out;
}

/** Hands the event to the request's log line when there is one (see LOGGED_WITH_REQUEST). */
function withRequestLog(ctx: ExchangeContext, event: AuditEvent): AuditEvent {
  if (!ctx.onAudit) return event;
  const marked = Object.assign(event, { [LOGGED_WITH_REQUEST]: true });
  ctx.onAudit(marked);
  return marked;
}

/** The allow decision; the lease store writes it atomically with the lease it explains. */
export function allowedEvent(deps: Deps, ctx: ExchangeContext, req: ExchangeRequest, proof: VerifiedProof, decision: Allowed, lease: Lease): AuditEvent {
  return withRequestLog(ctx, {
    type: 'exchange.allowed',
    time: deps.now(),
    actor: proof.subject,
    request_id: ctx.requestId,
    client_request_id: ctx.clientRequestId,
    lease_id: lease.id,
    rule: lease.rule,
    issuer: lease.issuer,
    subject: lease.subject,
    proof_jti: proof.jti,
    task_id: lease.task_id,
    asked: asked(req),
    granted: { kind: lease.kind, scopes: lease.scopes, audiences: lease.audiences, ttl: lease.expires_at - lease.issued_at, serial: lease.serial },
    claims: matchedClaims(decision, proof),
    client_addr: ctx.clientAddr,
  });
}

export async function auditDenied(
  deps: Deps,
  ctx: ExchangeContext,
  req: ExchangeRequest,
  proof: VerifiedProof | undefined,
  decision: Decision | undefined,
  error: LeashError,
): Promise<void> {
  await deps.audit.write(withRequestLog(ctx, {
    type: 'exchange.denied',
    time: deps.now(),
    actor: proof?.subject ?? 'unverified',
    request_id: ctx.requestId,
    client_request_id: ctx.clientRequestId,
    rule: decision?.allowed ? decision.rule.name : undefined,
    issuer: proof?.issuer.name,
    subject: proof?.subject,
    proof_jti: proof?.jti ?? null,
    asked: asked(req),
    reason: deniedReason(error),
    trace: decision?.trace,
    client_addr: ctx.clientAddr,
  }));
}

/**
 * A POST /token refused before it became an exchange request (wrong media type, a repeated or
 * malformed parameter): still a denial, so it is audited too. Nothing from the body is recorded.
 */
export async function auditUnparsed(deps: Deps, ctx: ExchangeContext, error: LeashError): Promise<void> {
  await deps.audit.write(withRequestLog(ctx, {
    type: 'exchange.denied',
    time: deps.now(),
    actor: 'unverified',
    request_id: ctx.requestId,
    client_request_id: ctx.clientRequestId,
    proof_jti: null,
    reason: deniedReason(error),
    client_addr: ctx.clientAddr,
  }));
}
