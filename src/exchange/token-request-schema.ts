import { z } from 'zod';
import {
  GRANT_TYPE_TOKEN_EXCHANGE,
  REQUESTABLE_TOKEN_TYPES,
  SUBJECT_TOKEN_TYPES,
  TASK_ID_PATTERN,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_X509,
} from './request.ts';

/**
 * The form parameters of POST /token as a zod schema, for the OpenAPI document. It mirrors the
 * rules parseTokenRequest (parse-token-request.ts) enforces and is checked against it in
 * test/e2e/openapi.test.ts, so the two cannot drift apart silently. Repeatable parameters
 * (audience, resource) are arrays; form values are strings, so ttl is a digit string.
 */
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;
const TARGET = z.string().min(1).max(512).regex(/^[^\x00-\x20\x7F]+$/);
const MAX_AUDIENCES = 16;

export const TokenRequestForm = z
  .looseObject({
    grant_type: z.literal(GRANT_TYPE_TOKEN_EXCHANGE),
    subject_token: z.string().min(1).describe('The workload proof: a JWT or OIDC ID token from a trusted issuer.'),
    subject_token_type: z.enum(SUBJECT_TOKEN_TYPES),
    requested_token_type: z.enum(REQUESTABLE_TOKEN_TYPES).optional().describe(`Default ${TOKEN_TYPE_ACCESS_TOKEN}; ${TOKEN_TYPE_X509} asks for a certificate and needs csr.`),
    scope: z.string().regex(SCOPE).optional().describe('Space-separated scopes; only narrows the grant of the matching rule. Absent: the full scopes of the rule.'),
    audience: z.array(TARGET).optional().describe('Repeatable. Only narrows the audiences of the rule.'),
    resource: z.array(TARGET).optional().describe('Repeatable; treated like audience.'),
    ttl: z.string().regex(/^[1-9][0-9]{0,8}$/).optional().describe('Seconds asked for, up to the rule max_ttl (Leash extension).'),
    task_id: z.string().regex(TASK_ID_PATTERN).optional().describe('Binds the lease to a task, ended by POST /v1/tasks/{task_id}/complete (Leash extension).'),
    csr: z.string().min(1).optional().describe('PKCS#10 request, PEM or base64url DER; only with the X.509 token type (Leash extension).'),
    actor_token: z.never().optional().describe('Delegation is not supported yet: refused with invalid_request.'),
    actor_token_type: z.never().optional().describe('Delegation is not supported yet: refused with invalid_request.'),
    client_id: z.string().optional().describe('Tolerated and ignored: the proof is the credential.'),
  })
  .refine((f) => (f.audience?.length ?? 0) + (f.resource?.length ?? 0) <= MAX_AUDIENCES, { message: `at most ${MAX_AUDIENCES} audience and resource values` })
  .refine((f) => (f.requested_token_type === TOKEN_TYPE_X509) === (f.csr !== undefined), { message: 'csr is required with, and only with, the X.509 token type' })
  .meta({ description: 'RFC 8693 token exchange request (application/x-www-form-urlencoded). Unknown parameters are ignored; others must not repeat.' });

export const TokenResponse = z
  .strictObject({
    access_token: z.string().describe('The JWT access token, or the leaf certificate in PEM.'),
    issued_token_type: z.enum([TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, TOKEN_TYPE_X509]),
    token_type: z.enum(['Bearer', 'N_A']),
    expires_in: z.number().int().positive(),
    scope: z.string().optional(),
    lease_id: z.string().describe('The lease backing the credential (the JWT jti).'),
    certificate_chain: z.array(z.string()).optional().describe('PEM certificates up to, not including, the root.'),
  })
  .meta({ description: 'RFC 8693 section 2.2.1 response, plus lease_id.' });

/**
 * The form as the schema sees it: repeatable parameters always arrays, others a string, and a
 * repeated single an array too (which the schema then refuses, as parseTokenRequest does).
 */
export function formToObject(form: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of new Set(form.keys())) {
    const values = form.getAll(name);
    out[name] = name === 'audience' || name === 'resource' || values.length > 1 ? values : values[0]!;
  }
  return out;
}
