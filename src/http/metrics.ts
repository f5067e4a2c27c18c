import { Hono } from 'hono';

export function metricsRoutes(): Hono {
  const app = new Hono();
  app.get('/metrics', async (c) => {
    const deps = c.get('deps');
    // Gauges that live in Redis are read at scrape time, so every replica reports the same truth.
    await Promise.all([
      deps.store.countActive().then((n) => deps.metrics.activeLeases.set(n)).catch(() => undefined),
      deps.revocations.depth().then((n) => deps.metrics.queueDepth.set(n)).catch(() => undefined),
    ]);
    return c.body(await deps.metrics.registry.metrics(), 200, { 'Content-Type': deps.metrics.registry.contentType });
  });
  return app;
}
