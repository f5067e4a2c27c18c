import type { AuditEvent } from '../audit/events.ts';
import type { LeaseKind } from '../leases/lease.ts';

export const GRANT_TYPE_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_X509 = 'urn:leash:params:oauth:token-type:x509-certificate';

export const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN] as const;
export const REQUESTABLE_TOKEN_TYPES = [TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, TOKEN_TYPE_X509] as const;

/** What a `task_id` may be, wherever one is taken (token request, task completion, CLI). */
export const TASK_ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;
export const TASK_ID_RULE = 'task_id must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ / -';

/** A token-exchange request after form parsing and syntax checks, before any trust decision. */
export interface ExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  requestedTokenType: string;
  kind: LeaseKind;
  scopes: string[] | undefined;
  audiences: string[] | undefined;
  ttl: number | undefined;
  taskId: string | undefined;
  csr: string | undefined;
}

export interface ExchangeContext {
  clientAddr: string | null;
  requestId: string;
  /** The caller's own X-Request-Id, recorded beside (never as) request_id. */
  clientRequestId?: string | undefined;
  /** Given by the HTTP route: the decision's audit event then rides on the request's log line. */
  onAudit?: (event: AuditEvent) => void;
}

export interface ExchangeResponse {
  access_token: string;
  issued_token_type: string;
  token_type: 'Bearer' | 'N_A';
  expires_in: number;
  scope?: string;
  lease_id: string;
  certificate_chain?: string[];
}
