import { Hono } from 'hono';
import type { AuditEvent } from '../audit/events.ts';
import { LeashError } from '../errors.ts';
import { auditUnparsed } from '../exchange/audit-exchange.ts';
import { exchange } from '../exchange/exchange.ts';
import { parseTokenRequest } from '../exchange/parse-token-request.ts';
import type { ExchangeRequest } from '../exchange/request.ts';
import { readForm } from '../request/read-form.ts';

/** POST /token: RFC 8693 token exchange. */
export function tokenRoutes(): Hono {
  const app = new Hono();
  app.post('/token', async (c) => {
    const deps = c.get('deps');
    const started = performance.now();
    const clientAddr = c.get('clientAddr');
    // The decision's audit event rides on this request's access-log line (one line per request).
    const ctx = { clientAddr, requestId: c.get('requestId'), clientRequestId: c.get('clientRequestId'), onAudit: (e: AuditEvent) => c.set('audit', e) };
    let outcome = 'denied';
    try {
      await deps.rateLimiter.checkClient(clientAddr ?? 'unknown');
      let req: ExchangeRequest;
      try {
        req = parseTokenRequest(await readForm(c));
      } catch (err) {
        // Refused before exchange() (which audits its own refusals): a denial all the same.
        if (err instanceof LeashError) {
          await auditUnparsed(deps, ctx, err).catch((auditErr) =>
            deps.log.error({ err: auditErr, request_id: ctx.requestId }, 'audit write failed for a refused token request'),
          );
        }
        throw err;
      }
      const res = await exchange(deps, req, ctx);
      outcome = 'issued';
      return c.json(res, 200, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    } finally {
      deps.metrics.exchangeSeconds.observe({ outcome }, (performance.now() - started) / 1000);
    }
  });
  return app;
}
