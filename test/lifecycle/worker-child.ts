/**
 * A revocation worker in a process of its own, for crash tests: the production BullMQ worker over
 * the Redis lease store. Env: REDIS_URL, REDIS_PREFIX, LEASH_SWEEP_INTERVAL_MS (default 100), and
 * optionally SWEEP_CHUNK / SWEEP_PAUSE_MS, which make each sweep end its leases in small chunks
 * with a pause between them, so a parent can SIGKILL the process in the middle of a batch.
 * Prints `ready` once the worker runs, `ended <n>` after each chunk it carried out, and `swept`
 * after each completed sweep (so a parent can wait for sweeps instead of sleeping).
 */
import { pino } from 'pino';
import { connectRedis } from '../../src/redis/connect.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { startRevocationWorker } from '../../src/revocation/bullmq-queue.ts';

const url = process.env.REDIS_URL;
const prefix = process.env.REDIS_PREFIX;
if (!url || !prefix) throw new Error('worker-child: REDIS_URL and REDIS_PREFIX are required');
const chunk = Number(process.env.SWEEP_CHUNK ?? 0);
const pauseMs = Number(process.env.SWEEP_PAUSE_MS ?? 0);

const redis = connectRedis(url);
redis.on('error', () => undefined);
const inner = createRedisLeaseStore({ redis, prefix });
const store: LeaseStore =
  chunk > 0
    ? {
        ...inner,
        async sweep(nowMs, opts) {
          const out = [];
          while (out.length < opts.limit) {
            const got = await inner.sweep(nowMs, { ...opts, limit: Math.min(chunk, opts.limit - out.length) });
            out.push(...got);
            if (got.length > 0) process.stdout.write(`ended ${got.length}\n`);
            if (got.length < chunk) break;
            await new Promise((r) => setTimeout(r, pauseMs));
          }
          return out;
        },
      }
    : inner;

const log = pino({ level: 'warn' });
const bull = connectRedis(url, { forBullmq: true });
bull.on('error', () => undefined);
const metrics = createMetrics();
const countSweep = metrics.sweeps.inc.bind(metrics.sweeps) as (value?: number) => void;
metrics.sweeps.inc = ((value?: number) => {
  countSweep(value);
  process.stdout.write('swept\n');
}) as typeof metrics.sweeps.inc;
await startRevocationWorker(bull, prefix, { store, metrics, log, now: Date.now }, {
  sweepIntervalMs: Number(process.env.LEASH_SWEEP_INTERVAL_MS ?? 100),
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
