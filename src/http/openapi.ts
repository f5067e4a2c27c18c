import { Hono } from 'hono';
import { z } from 'zod';
import { TokenRequestForm, TokenResponse } from '../exchange/token-request-schema.ts';
import { TASK_ID_PATTERN } from '../exchange/request.ts';
import { AuditQuery } from './audit.ts';
import { BulkRevokeBody, LeaseListQuery, RevokeOneBody } from './leases.ts';

type Json = Record<string, unknown>;
type Op = Json & { summary: string; tags: string[] };

export const OPERATOR_SCOPES = {
  'leash:leases:read': 'list and read leases; sign in to the dashboard',
  'leash:leases:revoke': 'revoke leases, one or in bulk; complete any task',
  'leash:audit:read': 'read audit events (and the dashboard denials)',
  'leash:introspect': 'RFC 7662 introspection, for resource servers',
  'leash:metrics': 'scrape /metrics on the API port (unless LEASH_METRICS_PUBLIC)',
  'leash:admin': 'every operator scope',
} as const;

const text = z.string();
const epoch = z.number().int().describe('Unix epoch seconds');
const OAuthError = z.object({ error: text.describe('RFC 6749 section 5.2 / RFC 8693 / RFC 6750 code'), error_description: text, request_id: text.optional() });
const ApiError = z.object({ error: text.describe('e.g. invalid_token, insufficient_scope, bad_request, not_found'), message: text, request_id: text.optional() });
const Lease = z.object({
  id: text, kind: z.enum(['jwt', 'x509']), status: z.enum(['active', 'revoked', 'expired']),
  rule: text, issuer: text.describe('name of the trusted issuer in the policy'), subject: text,
  scopes: z.array(text), audiences: z.array(text), task_id: text.nullable(), serial: text.nullable().describe('certificate serial, hex'),
  issued_at: epoch, expires_at: epoch, revoked_at: epoch.nullable(), ended_at: epoch.nullable(),
  reason: text.nullable(), revoked_by: text.nullable(), proof_iss: text, proof_sub: text, proof_jti: text.nullable(), client_addr: text.nullable(),
});
const LeasePage = z.object({ leases: z.array(Lease), next_cursor: text.nullable() });
const AuditEvent = z.looseObject({
  id: text.describe('<ms>-<seq>-<stream>: streams 0-15 hold events that issued or ended credentials, 16-31 refusals'),
  type: text, time: z.number().describe('epoch milliseconds'), actor: text.optional(),
  request_id: text.optional().describe("Leash's id of the request (X-Request-Id on its answer)"),
  client_request_id: text.optional().describe("the caller's own X-Request-Id, when it sent one of 1-128 visible ASCII characters"),
  lease_id: text.optional(), subject: text.optional(), rule: text.optional(), reason: text.optional(),
});
const AuditPage = z.object({ events: z.array(AuditEvent), next_cursor: text.nullable() });
const Introspection = z.looseObject({ active: z.boolean(), scope: text.optional(), client_id: text.optional(), sub: text.optional(), aud: z.union([text, z.array(text)]).optional(), exp: epoch.optional(), iat: epoch.optional(), jti: text.optional(), token_type: text.optional(), lease_id: text.optional(), task_id: text.optional() });
const TokenForm = z.object({ token: text.min(1), token_type_hint: text.optional().describe('accepted and ignored') });
const TaskCompletion = z.object({ task_id: text, revoked: z.number().int(), lease_ids: z.array(text) });
const BulkRevokeResult = z.object({
  revoked: z.number().int(),
  /** Present (true) when the caller's own lease matched and was kept (no include_self). */
  kept_self: z.literal(true).optional(),
});
const Jwks = z.object({ keys: z.array(z.looseObject({ kty: text, kid: text, alg: text.optional(), use: text.optional() })) });
const ServerMetadata = z.looseObject({ issuer: text, token_endpoint: text, introspection_endpoint: text, revocation_endpoint: text, jwks_uri: text, grant_types_supported: z.array(text) });
const Health = z.object({ status: text });
const Readiness = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(text, text) });
const LoginForm = z.object({ token: text.min(1).describe('an operator Leash token (leash:leases:read or leash:admin)') });
const CsrfForm = z.object({ csrf: text.describe('the CSRF token from the dashboard page') });

const SCHEMAS = {
  TokenRequestForm, TokenResponse, OAuthError, ApiError, Lease, LeasePage, LeaseListQuery, RevokeOneBody, BulkRevokeBody,
  BulkRevokeResult, AuditQuery, AuditEvent, AuditPage, Introspection, TokenForm, TaskCompletion, Jwks, ServerMetadata,
  Health, Readiness, LoginForm, CsrfForm,
} satisfies Record<string, z.ZodType>;

/** Every schema through zod's own JSON Schema (2020-12, OpenAPI 3.1's dialect), cross-referenced by name. */
function buildComponentSchemas(): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(SCHEMAS)) registry.add(schema, { id });
  // io 'input': the request side of transforms (AuditQuery.since) and coercions is what clients send.
  const { schemas } = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}`, io: 'input', unrepresentable: 'any' });
  return Object.fromEntries(Object.entries(schemas).map(([id, s]) => {
    const { $schema: _s, $id: _i, ...rest } = s as Json;
    return [id, rest];
  }));
}

const ref = (name: keyof typeof SCHEMAS): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json): Json => ({ 'application/json': { schema } });
const ok = (description: string, name?: keyof typeof SCHEMAS): Json => ({ description, ...(name ? { content: json(ref(name)) } : {}) });
const form = (name: keyof typeof SCHEMAS): Json => ({ required: true, content: { 'application/x-www-form-urlencoded': { schema: ref(name) } } });
const jsonBody = (name: keyof typeof SCHEMAS, required: boolean): Json => ({ required, content: json(ref(name)) });
const html = (description: string): Json => ({ description, content: { 'text/html': { schema: { type: 'string' } } } });
const seeOther = { description: 'redirect back to /dashboard', headers: { Location: { schema: { type: 'string' } } } };

/** Error answers by status, in the endpoint's style: OAuth `{error, error_description}` or API `{error, message}`. */
function describeErrors(style: 'oauth' | 'api', ...statuses: number[]): Json {
  const why: Record<number, string> = {
    400: 'bad request', 401: 'no, bad or ended Leash token', 403: 'the token lacks the scope', 404: 'not found',
    413: 'body too large (LEASH_MAX_BODY_BYTES)', 415: 'a form, multipart or other non-JSON body (JSON is read with no content type, text/plain or any +json type too)',
    429: 'rate limited', 500: 'Leash failed (the issuing CA has expired)', 503: 'lease store unavailable',
  };
  const name = style === 'oauth' ? 'OAuthError' : 'ApiError';
  return Object.fromEntries(statuses.map((s) => [String(s), { description: why[s] ?? 'error', content: json(ref(name)) }]));
}

/** Security alternatives: the named scope, or leash:admin (OpenAPI 3.1 allows scopes on bearer). */
const operatorSecurity = (scope: keyof typeof OPERATOR_SCOPES): Json[] => [{ leashBearer: [scope] }, { leashBearer: ['leash:admin'] }];

/** A JSON Schema object's properties as query parameters. */
function toQueryParameters(schemas: Record<string, Json>, name: 'LeaseListQuery' | 'AuditQuery', descriptions: Record<string, string>): Json[] {
  const props = (schemas[name]!.properties ?? {}) as Record<string, Json>;
  const required = new Set((schemas[name]!.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([p, schema]) => ({ name: p, in: 'query', required: required.has(p), schema, ...(descriptions[p] ? { description: descriptions[p] } : {}) }));
}

const pathParam = (name: string, description: string): Json => ({ name, in: 'path', required: true, schema: { type: 'string' }, description });

function describePaths(schemas: Record<string, Json>): Record<string, Record<string, Op>> {
  const leaseId = pathParam('id', 'the lease id (the JWT jti)');
  return {
    '/token': { post: { tags: ['oauth'], operationId: 'exchangeToken', summary: 'RFC 8693 token exchange: a workload proof for a scoped, TTL-bound credential', security: [], requestBody: form('TokenRequestForm'), responses: { '200': ok('the credential and its lease id', 'TokenResponse'), ...describeErrors('oauth', 400, 413, 429, 500, 503) } } },
    '/introspect': { post: { tags: ['oauth'], operationId: 'introspectToken', summary: 'RFC 7662 introspection; active only while the lease is', security: operatorSecurity('leash:introspect'), requestBody: form('TokenForm'), responses: { '200': ok('`{active: false}` or the claims', 'Introspection'), ...describeErrors('oauth', 400, 401, 403, 503) } } },
    '/revoke': { post: { tags: ['oauth'], operationId: 'revokeToken', summary: 'RFC 7009 revocation; the token is its own authority', description: 'Answers 200 for unknown or already ended tokens too.', security: [], requestBody: form('TokenForm'), responses: { '200': { description: 'revoked, or nothing to revoke' }, ...describeErrors('oauth', 400, 503) } } },
    '/v1/tasks/{task_id}/complete': { post: { tags: ['tasks'], operationId: 'completeTask', summary: 'End every lease of a task', description: 'Authorised by any live token of the task (any audience), or an operator token with leash:leases:revoke.', security: [{ leashBearer: [] }], parameters: [{ ...pathParam('task_id', '1 to 128 of A-Z a-z 0-9 . _ : @ / -'), schema: { type: 'string', pattern: TASK_ID_PATTERN.source } }], responses: { '200': ok('what was ended', 'TaskCompletion'), ...describeErrors('api', 400, 401, 403, 503) } } },
    '/v1/leases': { get: { tags: ['operator'], operationId: 'listLeases', summary: 'List leases, newest first, with filters and cursor pagination', security: operatorSecurity('leash:leases:read'), parameters: toQueryParameters(schemas, 'LeaseListQuery', { issuer: 'policy issuer name, or its URL', cursor: 'next_cursor of the previous page', limit: '1 to 1000, default 100' }), responses: { '200': ok('a page of leases', 'LeasePage'), ...describeErrors('api', 400, 401, 403, 503) } } },
    '/v1/leases/{id}': { get: { tags: ['operator'], operationId: 'getLease', summary: 'Read one lease', security: operatorSecurity('leash:leases:read'), parameters: [leaseId], responses: { '200': ok('the lease', 'Lease'), ...describeErrors('api', 401, 403, 404, 503) } } },
    '/v1/leases/{id}/revoke': { post: { tags: ['operator'], operationId: 'revokeLease', summary: 'Revoke one lease, with a reason', security: operatorSecurity('leash:leases:revoke'), parameters: [leaseId], requestBody: jsonBody('RevokeOneBody', false), responses: { '200': ok('the lease after revocation', 'Lease'), ...describeErrors('api', 400, 401, 403, 404, 415, 503) } } },
    '/v1/leases/revoke': { post: { tags: ['operator'], operationId: 'bulkRevokeLeases', summary: 'Bulk revoke by selector (subject, task_id, rule, issuer: at least one); the caller\'s own lease is kept unless include_self is true', security: operatorSecurity('leash:leases:revoke'), requestBody: jsonBody('BulkRevokeBody', true), responses: { '200': ok('how many were revoked', 'BulkRevokeResult'), ...describeErrors('api', 400, 401, 403, 415, 503) } } },
    '/v1/audit': { get: { tags: ['operator'], operationId: 'listAudit', summary: 'Audit events, newest first', security: operatorSecurity('leash:audit:read'), parameters: toQueryParameters(schemas, 'AuditQuery', { since: 'epoch seconds, epoch milliseconds (from 1e11 on) or an ISO 8601 time', type: 'e.g. exchange.denied, lease.revoked' }), responses: { '200': ok('a page of events', 'AuditPage'), ...describeErrors('api', 400, 401, 403, 503) } } },
    '/.well-known/jwks.json': { get: { tags: ['discovery'], operationId: 'getJwks', summary: 'Public keys of every signing key in keys/jwt/ (leash keys prune removes retired ones)', security: [], responses: { '200': ok('JWK Set', 'Jwks') } } },
    '/.well-known/oauth-authorization-server': { get: { tags: ['discovery'], operationId: 'getServerMetadata', summary: 'RFC 8414 authorization server metadata', security: [], responses: { '200': ok('metadata', 'ServerMetadata') } } },
    '/crl': { get: { tags: ['discovery'], operationId: 'getCrl', summary: 'DER CRL of revoked certificates, kept past their expiry (RFC 5280 3.3)', security: [], responses: { '200': { description: 'the CRL', content: { 'application/pkix-crl': { schema: { type: 'string', contentMediaType: 'application/pkix-crl' } } } }, ...describeErrors('api', 404, 503) } } },
    '/crl/{keyId}': { get: { tags: ['discovery'], operationId: 'getCrlOfCa', summary: 'The CRL of one CA, current or retired, by its key id in hex: the distribution point its certificates name', security: [], parameters: [{ name: 'keyId', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-fA-F]+$' } }], responses: { '200': { description: 'the CRL', content: { 'application/pkix-crl': { schema: { type: 'string', contentMediaType: 'application/pkix-crl' } } } }, ...describeErrors('api', 404, 503) } } },
    '/healthz': { get: { tags: ['operations'], operationId: 'getHealth', summary: 'Liveness', security: [], responses: { '200': ok('alive', 'Health') } } },
    '/readyz': { get: { tags: ['operations'], operationId: 'getReadiness', summary: 'Readiness: a lease written and read on every shard, keys loaded, Redis guards; the CA\'s expiry named', security: [], responses: { '200': ok('ready', 'Readiness'), '503': ok('not ready', 'Readiness') } } },
    '/metrics': { get: { tags: ['operations'], operationId: 'getMetrics', summary: 'Prometheus metrics', description: 'Needs leash:metrics or leash:admin unless LEASH_METRICS_PUBLIC=true (the default in dev mode); the LEASH_METRICS_PORT listener serves it without a token.', security: operatorSecurity('leash:metrics'), responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...describeErrors('api', 401, 403, 503) } } },
    '/openapi.json': { get: { tags: ['discovery'], operationId: 'getOpenApi', summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } } } },
    '/docs': { get: { tags: ['discovery'], operationId: 'getDocs', summary: 'This document as an HTML page', security: [], responses: { '200': html('API reference') } } },
    '/dashboard': { get: { tags: ['dashboard'], operationId: 'getDashboard', summary: 'Operator dashboard (HTML); a sign-in form without a session', security: [{ dashboardSession: [] }, {}], responses: { '200': html('the dashboard, or the sign-in form') } } },
    '/dashboard/login': { post: { tags: ['dashboard'], operationId: 'dashboardLogin', summary: 'Sign in with an operator token; sets the session cookie', security: [], requestBody: form('LoginForm'), responses: { '303': seeOther, '401': html('not a live Leash token for this broker'), '403': html('the token lacks leash:leases:read'), ...describeErrors('api', 400) } } },
    '/dashboard/logout': { post: { tags: ['dashboard'], operationId: 'dashboardLogout', summary: 'Sign out (clears the cookie)', security: [{ dashboardSession: [] }], requestBody: form('CsrfForm'), responses: { '303': seeOther, '401': html('no session: the sign-in form'), '403': html('bad CSRF token') } } },
    '/dashboard/leases/{id}/revoke': { post: { tags: ['dashboard'], operationId: 'dashboardRevokeLease', summary: 'Revoke one lease from the dashboard', security: [{ dashboardSession: ['leash:leases:revoke'] }], parameters: [leaseId], requestBody: form('CsrfForm'), responses: { '303': seeOther, '401': html('no live session'), '403': html('bad CSRF token or missing leash:leases:revoke'), '404': html('no such lease') } } },
  };
}

/** The OpenAPI 3.1 document of every Leash endpoint, for one issuer (its server URL). */
export function buildOpenApiDocument(issuer: string): Json & { paths: Record<string, Record<string, Op>> } {
  const schemas = buildComponentSchemas();
  const scopeList = Object.entries(OPERATOR_SCOPES).map(([s, d]) => `- \`${s}\`: ${d}`).join('\n');
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Leash',
      version: '0.1.0',
      description: `Short-lived credential broker: verified workload proofs in, scoped TTL-bound JWTs and X.509 certificates out, every credential a lease.\n\nOperator scopes (granted by policy like any other scope, with audience ${issuer}):\n${scopeList}`,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: issuer }],
    tags: [
      { name: 'oauth', description: 'RFC 8693, 7662, 7009; errors are `{error, error_description}`' },
      { name: 'tasks', description: 'task completion' },
      { name: 'operator', description: 'operator API; errors are `{error, message}`' },
      { name: 'discovery', description: 'keys, metadata, CRL, this document' },
      { name: 'operations', description: 'health and metrics' },
      { name: 'dashboard', description: 'server-rendered operator pages' },
    ],
    paths: withCommonAnswers(describePaths(schemas)),
    components: {
      schemas,
      securitySchemes: {
        leashBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: `A Leash access token whose aud includes ${issuer} and whose lease is active. The scopes listed per operation are alternatives (leash:admin grants all).` },
        dashboardSession: { type: 'apiKey', in: 'cookie', name: 'leash_dashboard', description: 'HttpOnly cookie set by POST /dashboard/login; re-verified on every request.' },
      },
      'x-leash-operator-scopes': OPERATOR_SCOPES,
    },
  };
}

const OAUTH_PATHS = new Set(['/token', '/introspect', '/revoke']);
const header = (description: string, schema: Json = { type: 'string' }): Json => ({ description, schema });

/**
 * What every operation may answer besides its own: a body over the limit (413) where it takes one,
 * and the lease store's 503 on the dashboard's operations; and the headers answers carry:
 * X-Request-Id on each, WWW-Authenticate on 401 and 403, Retry-After on 429 and 503.
 */
function withCommonAnswers(paths: Record<string, Record<string, Op>>): Record<string, Record<string, Op>> {
  for (const [path, ops] of Object.entries(paths)) {
    for (const op of Object.values(ops)) {
      const responses = op.responses as Record<string, Json>;
      const style = OAUTH_PATHS.has(path) ? 'oauth' : 'api';
      const add = (...statuses: number[]): void => {
        for (const [s, r] of Object.entries(describeErrors(style, ...statuses))) responses[s] ??= r as Json;
      };
      if (op.requestBody) add(413);
      if (path.startsWith('/dashboard')) add(503);
      for (const [status, response] of Object.entries(responses)) {
        const headers: Record<string, Json> = { ...((response.headers as Record<string, Json> | undefined) ?? {}) };
        headers['X-Request-Id'] = header('the id of this request, as in the logs and audit events');
        if ((status === '401' || status === '403') && !path.startsWith('/dashboard')) headers['WWW-Authenticate'] = header('RFC 6750 challenge');
        if (status === '429' || status === '503') headers['Retry-After'] = header('seconds to wait before retrying', { type: 'integer' });
        responses[status] = { ...response, headers };
      }
    }
  }
  return paths;
}

/** GET /openapi.json; the document is built once per issuer (config does not change at run time). */
export function openapiRoutes(): Hono {
  const app = new Hono();
  let cached: { issuer: string; body: string } | undefined;
  app.get('/openapi.json', (c) => {
    const issuer = c.get('deps').config.issuer;
    if (cached?.issuer !== issuer) cached = { issuer, body: JSON.stringify(buildOpenApiDocument(issuer)) };
    return c.body(cached.body, 200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'public, max-age=300' });
  });
  return app;
}
