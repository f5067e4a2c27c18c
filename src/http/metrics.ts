import { Hono, type MiddlewareHandler } from 'hono';
import { requireScope } from './authenticate.ts';

export const METRICS_SCOPE = 'leash:metrics';
/** How late an ending may be before it counts as overdue: a worker sweeps every 250 ms. */
const OVERDUE_AFTER_MS = 10_000;

/**
 * Prometheus metrics. They name the policy's rules and issuers with per-rule counts, so on the API
 * port they need leash:metrics (or leash:admin) unless `public` (LEASH_METRICS_PUBLIC); the
 * LEASH_METRICS_PORT listener serves them openly, for a scraper on an internal network.
 */
export function metricsRoutes(opts: { public: boolean }): Hono {
  const app = new Hono();
  const guard: MiddlewareHandler = opts.public ? (_c, next) => next() : requireScope(METRICS_SCOPE);
  app.get('/metrics', guard, async (c) => {
    const deps = c.get('deps');
    // Gauges that live in Redis are read at scrape time, so every replica reports the same truth.
    await Promise.all([
      deps.store.countActive().then((n) => deps.metrics.activeLeases.set(n)).catch(() => undefined),
      deps.revocations.depth().then((n) => deps.metrics.queueDepth.set(n)).catch(() => undefined),
      deps.store.countOverdue(deps.now() - OVERDUE_AFTER_MS).then((n) => deps.metrics.overdueLeases.set(n)).catch(() => undefined),
    ]);
    return c.body(await deps.metrics.registry.metrics(), 200, { 'Content-Type': deps.metrics.registry.contentType });
  });
  return app;
}
