import { Hono } from 'hono';
import { exchange } from '../exchange/exchange.ts';
import { parseTokenRequest } from '../exchange/parse-token-request.ts';
import { readForm } from './read-form.ts';

/** POST /token: RFC 8693 token exchange. */
export function tokenRoutes(): Hono {
  const app = new Hono();
  app.post('/token', async (c) => {
    const deps = c.var.deps;
    const started = performance.now();
    const clientAddr = c.var.clientAddr;
    let outcome = 'denied';
    try {
      await deps.rateLimiter.checkClient(clientAddr ?? 'unknown');
      const req = parseTokenRequest(await readForm(c));
      const res = await exchange(deps, req, { clientAddr, requestId: c.var.requestId });
      outcome = 'issued';
      return c.json(res, 200, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    } finally {
      deps.metrics.exchangeSeconds.observe({ outcome }, (performance.now() - started) / 1000);
    }
  });
  return app;
}
