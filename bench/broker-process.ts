/**
 * Child-process entry: the compiled Leash broker (dist/) started the way src/main.ts starts it (createDeps +
 * createApp + serve + startRevocationWorker), configured by the same environment variables
 * (PORT, HOST, REDIS_URL, LEASH_POLICY, LEASH_KEYS_DIR, LEASH_ROLE, ...). Logs go to stdout as in
 * production (the parent points stdout at a file). Reports its URL to the parent over IPC.
 */
import 'reflect-metadata';
import { serve, type ServerType } from '@hono/node-server';
// The compiled build, as production runs it (`node dist/main.js`): run.ts builds it when src/ changed.
import { loadConfig } from '../dist/config.js';
import { createDeps } from '../dist/create-deps.js';
import { connectRedis } from '../dist/redis/connect.js';
import { createApp } from '../dist/app.js';
import { startRevocationWorker } from '../dist/revocation/bullmq-queue.js';
import { lowerWorkerCpuPriority } from '../dist/util/cpu-priority.js';
import { serveChild } from './child.ts';

serveChild(async () => {
  const config = loadConfig();
  const deps = await createDeps(config);
  const closers: (() => Promise<unknown>)[] = [];
  let url = '';
  if (config.role !== 'worker') {
    const app = createApp(deps);
    const server: ServerType = await new Promise((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
      s.once('error', reject);
    });
    closers.push(() => new Promise((r) => server.close(() => r(undefined))));
    url = `http://${config.host}:${config.port}`;
  }
  lowerWorkerCpuPriority(config);
  if (config.role !== 'api' && config.redisUrl) {
    const worker = await startRevocationWorker(connectRedis(config.redisUrl, { forBullmq: true }), config.redisPrefix, deps, {
      sweepIntervalMs: config.sweepIntervalMs,
    });
    closers.push(() => worker.close());
  }
  return {
    url: url || 'worker:',
    async close() {
      for (const c of closers.reverse()) await c().catch(() => undefined);
      await deps.close().catch(() => undefined);
    },
  };
});
