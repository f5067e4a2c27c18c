import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric Leash exports, on a registry of its own (tests create many apps in one process). */
export function createMetrics(opts: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    exchanges: new Counter({
      name: 'leash_exchanges_total',
      help: 'Token exchanges by outcome (issued, denied, error), error code, rule and credential kind',
      labelNames: ['outcome', 'code', 'rule', 'kind'] as const,
      registers: [registry],
    }),
    exchangeSeconds: new Histogram({
      name: 'leash_exchange_duration_seconds',
      help: 'Latency of POST /token',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    activeLeases: new Gauge({ name: 'leash_active_leases', help: 'Active leases in the store', registers: [registry] }),
    endings: new Counter({
      name: 'leash_lease_endings_total',
      help: 'Leases ended, by how (expired, revoked) and reason',
      labelNames: ['status', 'reason'] as const,
      registers: [registry],
    }),
    revocations: new Counter({
      name: 'leash_revocations_total',
      help: 'Revocations requested, by path (holder, task, operator, bulk, internal)',
      labelNames: ['path'] as const,
      registers: [registry],
    }),
    expiryLagSeconds: new Histogram({
      name: 'leash_expiry_lag_seconds',
      help: 'How long after expires_at the worker ended a lease',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    sweeps: new Counter({
      name: 'leash_sweeps_total',
      help: 'Expiry sweeps this process completed (a stalled count means expiries are not being ended)',
      registers: [registry],
    }),
    unreadableRecords: new Counter({
      name: 'leash_unreadable_records_total',
      help: 'Lease records a Redis script could not read (not JSON, or not a lease), taken out of the schedules',
      registers: [registry],
    }),
    queueDepth: new Gauge({ name: 'leash_queue_depth', help: 'Jobs waiting in the revocation queue', registers: [registry] }),
    caExpiry: new Gauge({
      name: 'leash_ca_expiry_timestamp_seconds',
      help: 'When the issuing CA (or the first certificate of its chain to expire) expires, epoch seconds: alert before it',
      registers: [registry],
    }),
    overdueLeases: new Gauge({
      name: 'leash_overdue_leases',
      help: 'Leases more than 10 s past their expiry that no worker has ended yet: above 0 for long, no worker is running or keeping up',
      registers: [registry],
    }),
    jwksFetches: new Counter({
      name: 'leash_jwks_fetches_total',
      help: 'JWKS and discovery fetches by issuer and result',
      labelNames: ['issuer', 'result'] as const,
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: 'leash_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
