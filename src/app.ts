import { Hono } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Deps } from './deps.ts';
import { LeashError } from './errors.ts';
import { logRequest, type RequestLogFields } from './observability/request-log.ts';
import { requestIds } from './http/request-id.ts';
import './http/context.ts';
import { errorStyleFor, renderError, toLeashError } from './request/error-response.ts';
import { bodyTooLarge } from './request/read-body.ts';
import { methodsAt } from './http/method-not-allowed.ts';
import { tokenRoutes } from './http/token.ts';
import { wellKnownRoutes } from './http/well-known.ts';
import { healthRoutes } from './http/health.ts';
import { introspectRoutes } from './http/introspect.ts';
import { revokeRoutes } from './http/revoke.ts';
import { taskRoutes } from './http/tasks.ts';
import { leaseRoutes } from './http/leases.ts';
import { auditRoutes } from './http/audit.ts';
import { crlRoutes } from './http/crl.ts';
import { metricsRoutes } from './http/metrics.ts';
import { openapiRoutes } from './http/openapi.ts';
import { docsRoutes } from './http/docs.ts';
import { dashboardRoutes } from './dashboard/routes.ts';
import { devIssuerRoutes } from './dev/dev-issuer-routes.ts';
import type { DevIssuer } from './dev/dev-issuer.ts';

export interface AppOptions {
  /** Served under /dev only in dev mode on a loopback host. */
  devIssuer?: DevIssuer;
}

/** Middleware order: request id, deps, client address, access log, body limit; then routes. */
export function createApp(deps: Deps, opts: AppOptions = {}): Hono {
  const app = new Hono();

  useRequestBasics(app, deps);
  app.use(async function limitDeclaredBody(c, next) {
    // A declared length over the limit is refused before reading; chunked bodies are capped
    // while they are read (read-body.ts).
    const declared = Number(c.req.header('content-length'));
    if (Number.isFinite(declared) && declared > deps.config.maxBodyBytes) {
      return renderError(c, bodyTooLarge(c.req.path, deps.config.maxBodyBytes), errorStyleFor(c.req.path));
    }
    await next();
  });

  // Operator answers hold leases, claims and audit events: never for a shared cache.
  app.use('/v1/*', async function noStore(c, next) {
    await next();
    if (!c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'no-store');
  });
  app.route('/', tokenRoutes());
  app.route('/', introspectRoutes());
  app.route('/', revokeRoutes());
  app.route('/', taskRoutes());
  app.route('/', leaseRoutes());
  app.route('/', auditRoutes());
  app.route('/', wellKnownRoutes());
  app.route('/', crlRoutes());
  app.route('/', healthRoutes());
  app.route('/', metricsRoutes({ public: deps.config.metricsPublic }));
  app.route('/', openapiRoutes());
  app.route('/', docsRoutes());
  app.route('/', dashboardRoutes());
  if (opts.devIssuer) app.route('/dev', devIssuerRoutes(opts.devIssuer));

  const allowedAt = methodsAt(app);
  app.notFound((c) => {
    const style = errorStyleFor(c.req.path);
    const allow = allowedAt(c.req.path);
    if (allow.length === 0) return renderError(c, new LeashError('not_found', `no route for ${c.req.method} ${c.req.path}`), style);
    const description = `${c.req.path} answers ${allow.join(', ')}, not ${c.req.method}`;
    // OAuth endpoints keep RFC 6749's error vocabulary.
    const code = style === 'oauth' ? 'invalid_request' : 'method_not_allowed';
    return renderError(c, new LeashError(code, description, { status: 405, headers: { Allow: allow.join(', ') } }), style);
  });
  app.onError((err, c) => {
    const e = toLeashError(err);
    // A refusal is told on the request's own access-log line; a server fault also gets its own.
    c.set('refusal', { code: e.code, detail: e.detail });
    if (e.status >= 500) deps.log.error({ request_id: c.get('requestId'), code: e.code, status: e.status, detail: e.detail, path: c.req.path }, e.description);
    return renderError(c, e, errorStyleFor(c.req.path));
  });
  return app;
}

/** Request id, deps, client address and the access log: every listener's requests get them. */
function useRequestBasics(app: Hono, deps: Deps): void {
  app.use(requestIds({ trustClient: deps.config.trustRequestId }));
  app.use(async function attachDeps(c, next) {
    c.set('deps', deps);
    c.set('clientAddr', clientAddressOf(c));
    await next();
  });
  app.use(async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const route = c.req.routePath ?? c.req.path;
    deps.metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    const fields: RequestLogFields = { request_id: c.get('requestId'), method: c.req.method, route, status: c.res.status, ms: Math.round((performance.now() - started) * 100) / 100, client: c.get('clientAddr') };
    const clientRequestId = c.get('clientRequestId');
    if (clientRequestId !== undefined) fields.client_request_id = clientRequestId;
    const refusal = c.get('refusal');
    if (refusal) fields.error = refusal;
    logRequest(deps.log, fields, c.get('audit'));
  });
}

/** The listener of LEASH_METRICS_PORT: metrics and health, nothing that issues or revokes. */
export function createOpsApp(deps: Deps): Hono {
  const app = new Hono();
  useRequestBasics(app, deps);
  app.route('/', healthRoutes());
  app.route('/', metricsRoutes({ public: true }));
  app.notFound((c) => c.json({ error: 'not_found', message: 'this port serves /metrics, /healthz and /readyz only' }, 404));
  return app;
}

function clientAddressOf(c: Parameters<typeof getConnInfo>[0]): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // app.request() in tests has no socket
  }
}
