import { Hono } from 'hono';

/** Liveness says the process answers; readiness says it can issue (store reachable, keys loaded). */
export function healthRoutes(): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const r = await c.get('deps').ready();
    return c.json({ status: r.ok ? 'ready' : 'not_ready', checks: r.checks }, r.ok ? 200 : 503, r.ok ? {} : { 'Retry-After': '2' });
  });
  return app;
}
